//! What the whole-run benches share: the gen-pcap workload, made once into `target/bench-data/`
//! (never committed; `scripts/bench-vs-peers.sh` uses the same files), and a median.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared folder: `TCPLENS_SHARED`, else `shared` beside the crate (or beside the
/// folder of worktrees).
pub fn shared() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("TCPLENS_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared"), root.join("../../shared")])
        .find(|p| p.join("tools/gen-pcap/gen_pcap.py").is_file())
}

/// `gen_pcap.py --flows $TCPLENS_BENCH_FLOWS --seed 1` (default 21000 flows: 986k packets,
/// 418 MB), generated on first use.
pub fn workload() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let flows = std::env::var("TCPLENS_BENCH_FLOWS").unwrap_or_else(|_| "21000".into());
    let dir = root.join("target/bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let out = dir.join(format!("gen-{flows}-seed1.pcap"));
    if !out.exists() {
        let shared = shared().expect("shared folder not found: set TCPLENS_SHARED");
        let script = shared.join("tools/gen-pcap/gen_pcap.py");
        eprintln!("generating {} with {}", out.display(), script.display());
        let tmp = out.with_extension("tmp");
        let ok = Command::new("python3")
            .arg(&script)
            .args(["--flows", &flows, "--seed", "1", "--quiet", "--out"])
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

/// Timed runs per measurement: `TCPLENS_BENCH_RUNS`, default 5.
pub fn runs() -> usize {
    std::env::var("TCPLENS_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(5)
}

/// Sorts the times and returns (median, min, max).
pub fn spread(times: &mut [f64]) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0], times[times.len() - 1])
}
