//! Whole-pipeline throughput: read + decode + print (`--plain`), the default annotated text
//! (print + analysis + annotations, interleaved), read + decode + analysis (`--summary`) and
//! the JSON document (`--json`) over the shared gen-pcap workload, in packets/s and MB/s.
//!
//! The workload is generated on first use into `target/bench-data/` (never committed):
//! `TCPLENS_BENCH_FLOWS` flows (default 21000: 986k packets, 418 MB) with seed 1. Set
//! `TCPLENS_SHARED` to the shared folder if it is not `../shared` beside the crate.
//! Run with `cargo bench --bench pipeline`; `benches/stages.rs` splits the same path by stage.

mod support;

use clap::Parser;
use std::path::Path;
use std::time::Instant;
use tcplens::cli::{Cli, Command};
use tcplens::config::Config;

fn measure(mode: &str, path: &Path, runs: usize) {
    // The flags as the command line gives them, defaults included ("" for the default mode).
    let args = ["tcplens", "read", "-", mode];
    let cli = Cli::try_parse_from(args.iter().filter(|a| !a.is_empty())).expect("flags");
    let Command::Read { output, .. } = cli.command else {
        unreachable!("read")
    };
    let cfg = Config::from_output_args(&output).expect("config");
    let bytes = std::fs::metadata(path).expect("workload").len() as f64;
    let mut times = Vec::with_capacity(runs);
    let mut packets = 0;
    for _ in 0..runs {
        let mut sink = std::io::sink();
        let start = Instant::now();
        let outcome = tcplens::pipeline::run_file(path.to_str().unwrap(), &cfg, None, &mut sink)
            .expect("run");
        times.push(start.elapsed().as_secs_f64());
        packets = outcome.stats.packets;
    }
    let (median, min, max) = support::spread(&mut times);
    let mode = if mode.is_empty() { "annotated" } else { mode };
    println!(
        "{mode:<10} {packets} packets  median {median:.3} s (min {min:.3}, max {max:.3})  {:.2} Mpkt/s  {:.0} MB/s",
        packets as f64 / median / 1e6,
        bytes / median / 1e6
    );
}

fn main() {
    let path = support::workload();
    let runs = support::runs();
    for mode in ["--plain", "", "--summary", "--json"] {
        measure(mode, &path, runs);
    }
}
