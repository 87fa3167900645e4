//! Whole-pipeline throughput: read + decode + print (`--plain`) and read + decode + analysis
//! (`--summary`) over the shared gen-pcap workload, in packets/s and MB/s.
//!
//! The workload is generated on first use into `target/bench-data/` (never committed):
//! `TCPLENS_BENCH_FLOWS` flows (default 21000: 986k packets, 418 MB) with seed 1. Set
//! `TCPLENS_SHARED` to the shared folder if it is not `../shared` beside the crate.
//! Run with `cargo bench --bench pipeline`; `benches/stages.rs` splits the same path by stage.

mod support;

use std::path::Path;
use std::time::Instant;
use tcplens::cli::OutputArgs;
use tcplens::config::Config;

fn measure(name: &str, path: &Path, args: OutputArgs, runs: usize) {
    let cfg = Config::from_output_args(&args).expect("config");
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
    println!(
        "{name:<10} {packets} packets  median {median:.3} s (min {min:.3}, max {max:.3})  {:.2} Mpkt/s  {:.0} MB/s",
        packets as f64 / median / 1e6,
        bytes / median / 1e6
    );
}

fn main() {
    let path = support::workload();
    let runs = support::runs();
    let plain = OutputArgs {
        plain: true,
        ..OutputArgs::default()
    };
    measure("--plain", &path, plain, runs);
    let summary = OutputArgs {
        summary: true,
        ..OutputArgs::default()
    };
    measure("--summary", &path, summary, runs);
}
