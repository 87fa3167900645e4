//! The two-thread pipeline leaves the JSON reports' per-connection work (the notes of each
//! packet and the connection records) to the thread that writes the output; the one-thread
//! path (live capture, `flush_each`) writes them as the analysis goes. Both must give the same
//! bytes, and an output error must still end the two-thread run with that error.
//!
//! The captures: every one in testdata/ and the shared corpus (their connections mostly end at
//! the end of the run), and gen-pcap workloads generated at test time, whose connections end
//! all through the run (closes, resets, the once-a-second sweep ending hundreds at once), so
//! records fall inside batches, across batch ends and between many packets' notes.

mod common;
mod json_support;

use common::split::{self, read_config};
use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::Path;
use tcplens::pipeline::run_file;

/// Runs both paths and asserts the same bytes; returns the output's length.
fn compare(path: &Path, flags: &[&str]) -> usize {
    let what = format!("{} {flags:?}", path.display());
    split::compare(path, &read_config(flags), &what).len()
}

/// Both reports, stopped part-way by `-c`, and with connections ended early by a short 2 MSL
/// and by the connection limit.
const MODES: [&[&str]; 5] = [
    &["--json"],
    &["--ndjson"],
    &["--json", "-c", "3000"],
    &["--ndjson", "--msl", "1"],
    &["--json", "--max-connections", "40"],
];

#[test]
fn deferred_records_match_inline_records_on_every_capture() {
    let captures = json_support::captures();
    assert!(captures.len() > 20, "{captures:?}");
    for path in &captures {
        for flags in MODES {
            compare(path, flags);
        }
    }
}

#[test]
fn deferred_records_match_inline_records_on_generated_workloads() {
    let dir = tempfile::tempdir().unwrap();
    for pcap in split::workloads(dir.path()) {
        for flags in MODES {
            let bytes = compare(&pcap, flags);
            // Enough output that the run spans many batches.
            assert!(bytes > 200_000, "{flags:?}: {bytes} bytes");
        }
    }
}

/// A writer that takes `room` bytes, then fails as a full disk does.
struct Full {
    room: usize,
    taken: usize,
}

impl Write for Full {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.taken + b.len() > self.room {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        self.taken += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_output_error_ends_the_run_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("w.pcap");
    let args = ["--flows", "300", "--seed", "2", "--out"].map(OsStr::new);
    common::gen_pcap(args.into_iter().chain([pcap.as_os_str()]));
    for flags in [&["--json"][..], &["--ndjson"]] {
        let cfg = read_config(flags);
        let (all, _) = split::run(&pcap, &cfg, false);
        // Early, in the middle (records written by the output's writer), and at the last bytes.
        for room in [10, all.len() / 2, all.len() - 1] {
            let mut out = Full { room, taken: 0 };
            let e = run_file(pcap.to_str().unwrap(), &cfg, None, &mut out)
                .expect_err("the output filled up");
            assert!(
                e.chain().any(|c| c
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::StorageFull)),
                "{flags:?} {room}: {e:#}"
            );
            assert!(out.taken <= room);
        }
    }
}
