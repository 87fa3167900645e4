//! The two-thread pipeline's annotated output (the front's tcpdump lines merged with the
//! back's annotations and finding lines, batch by batch, by whichever thread writes) must be
//! the one-thread path's (live capture, `flush_each`), byte for byte, with and without
//! `--explain` and colour. It was written for handing the annotations to the writer (session
//! 6, not kept), and failed when they were placed after a packet's finding lines.
//!
//! The captures: every one in testdata/ and the shared corpus, and gen-pcap workloads
//! generated at test time (losses, resets, closes, a SYN flood whose finding line falls among
//! the annotations), which span many batches.

mod common;
mod json_support;

use common::split::{self, read_config};
use std::path::Path;
use tcplens::config::Config;

/// Runs both paths and asserts the same bytes; returns the output.
fn compare(path: &Path, flags: &[&str], color: bool) -> Vec<u8> {
    let cfg = Config {
        color,
        ..read_config(flags)
    };
    let what = format!("{} {flags:?} color {color}", path.display());
    split::compare(path, &cfg, &what)
}

/// The annotated mode, with `--explain`, stopped part-way by `-c`, and with connections ended
/// early by a short 2 MSL and by the connection limit; each also in colour.
const MODES: [&[&str]; 5] = [
    &[],
    &["--explain"],
    &["--explain", "-c", "3000"],
    &["--msl", "1"],
    &["--explain", "--max-connections", "40"],
];

fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

#[test]
fn split_annotated_output_is_the_one_thread_output_on_every_capture() {
    let captures = json_support::captures();
    assert!(captures.len() > 20, "{captures:?}");
    let mut handshakes = 0;
    for path in &captures {
        for flags in MODES {
            for color in [false, true] {
                handshakes += count(&compare(path, flags, color), "handshake 2/3");
            }
        }
    }
    // Annotations other than the quiet lines were there to compare.
    assert!(handshakes > 100, "{handshakes} handshake annotations");
}

#[test]
fn split_annotated_output_is_the_one_thread_output_on_generated_workloads() {
    let dir = tempfile::tempdir().unwrap();
    for (i, pcap) in split::workloads(dir.path()).iter().enumerate() {
        for flags in MODES {
            for color in [false, true] {
                let bytes = compare(pcap, flags, color);
                let what = format!("w{i} {flags:?} color {color}");
                if flags.contains(&"-c") {
                    continue;
                }
                // Enough output that the run spans many batches, with all kinds of annotations.
                assert!(bytes.len() > 200_000, "{what}: {} bytes", bytes.len());
                assert!(count(&bytes, "handshake ") > 300, "{what}");
                assert!(count(&bytes, "retransmission") > 10, "{what}");
                if flags.contains(&"--explain") {
                    assert!(count(&bytes, "      = ") > 100, "{what}");
                }
                if i == 1 && !flags.contains(&"--max-connections") {
                    assert!(count(&bytes, "!! finding ") > 0, "{what}");
                }
            }
        }
    }
}
