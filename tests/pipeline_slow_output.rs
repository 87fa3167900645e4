//! The two-thread pipeline holds a fixed number of batches: when the output is slow, the front
//! runs out of them and writes finished ones itself or waits for the back to finish or write
//! one. The output must still be the one-thread path's, byte for byte, and the run must end.

mod common;

use common::split::read_config;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;
use tcplens::config::Config;
use tcplens::pipeline::run_file;

fn config(flags: &[&str], one_thread: bool) -> Config {
    Config {
        flush_each: one_thread,
        ..read_config(flags)
    }
}

/// A writer that sleeps on every write call when `slow`, so that finished batches pile up.
struct Slow {
    out: Vec<u8>,
    calls: usize,
    slow: bool,
}

impl Write for Slow {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.slow {
            std::thread::sleep(Duration::from_micros(500));
        }
        self.out.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn run(path: &Path, flags: &[&str], one_thread: bool) -> (Vec<u8>, usize) {
    let mut out = Slow {
        out: Vec::new(),
        calls: 0,
        slow: !one_thread,
    };
    run_file(
        path.to_str().unwrap(),
        &config(flags, one_thread),
        None,
        &mut out,
    )
    .expect("the run ends");
    (out.out, out.calls)
}

#[test]
fn a_slow_output_gives_the_one_thread_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("w.pcap");
    let args = ["--flows", "300", "--seed", "3", "--out"].map(OsStr::new);
    common::gen_pcap(args.into_iter().chain([pcap.as_os_str()]));
    // The modes that write as the run goes (`--json` and `--summary` write little before the end).
    for flags in [&[][..], &["--ndjson"], &["--plain"]] {
        let (split, calls) = run(&pcap, flags, false);
        // More write calls than the 8 to 12 batches that exist.
        assert!(calls > 12, "{flags:?}: {calls} write calls");
        let (inline, _) = run(&pcap, flags, true);
        assert!(split == inline, "{flags:?}: the outputs differ");
    }
}
