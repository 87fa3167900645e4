//! Whole-pipeline throughput: read + decode + print (`--plain`) and read + decode + analysis
//! (`--summary`) over the shared gen-pcap workload, in packets/s and MB/s.
//!
//! The workload is generated on first use into `target/bench-data/` (never committed):
//! `TCPLENS_BENCH_FLOWS` flows (default 21000: 986k packets, 418 MB) with seed 1. Set
//! `TCPLENS_SHARED` to the shared folder if it is not `../shared` beside the crate.
//! Run with `cargo bench --bench pipeline`.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tcplens::cli::{Cli, Command as Cmd};
use tcplens::config::Config;

fn workload() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let flows = std::env::var("TCPLENS_BENCH_FLOWS").unwrap_or_else(|_| "21000".into());
    let dir = root.join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let out = dir.join(format!("gen-{flows}-seed1.pcap"));
    if !out.exists() {
        let shared = std::env::var_os("TCPLENS_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../shared"));
        let script = shared.join("tools/gen-pcap/gen_pcap.py");
        eprintln!("generating {} with {}", out.display(), script.display());
        let tmp = out.with_extension("tmp");
        let ok = Command::new("python3")
            .arg(&script)
            .args(["--flows", &flows, "--seed", "1", "--out"])
            .arg(&tmp)
            .args(["--truth", "/dev/null"])
            .status()
            .expect("run python3")
            .success();
        assert!(ok, "gen_pcap.py failed");
        std::fs::rename(&tmp, &out).expect("rename workload");
    }
    out
}

fn measure(name: &str, path: &Path, runs: usize) {
    // The flags as the command line gives them, defaults included.
    let cli = Cli::try_parse_from(["tcplens", "read", "-", name]).expect("flags");
    let Cmd::Read { output, .. } = cli.command else {
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
    times.sort_by(f64::total_cmp);
    let median = times[runs / 2];
    println!(
        "{name:<10} {packets} packets  median {median:.3} s (min {:.3}, max {:.3})  {:.2} Mpkt/s  {:.0} MB/s",
        times[0],
        times[runs - 1],
        packets as f64 / median / 1e6,
        bytes / median / 1e6
    );
}

fn main() {
    let path = workload();
    for mode in ["--plain", "--summary"] {
        measure(mode, &path, 5);
    }
}
