//! Differential test over every capture of the shared public corpus: tcplens `--plain` against
//! tcpdump (4.99.3) with no flags, `-S`, `-v` and `-e` (each with `-#`), on every packet
//! libpcap calls TCP and every packet tcplens prints. Skipped, with a notice, when tcpdump or
//! the corpus is missing.
//!
//! Comparison rule (tests/common): equal text, or tcplens stops at `length N` where tcpdump
//! goes on with an application-layer decoder (DNS, HTTP, BGP, …: deliberately not done).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Differences accepted, with the reason: (file name, packet number or 0 for all, reason).
const ALLOW: &[(&str, u64, &str)] = &[
    // tcpdump prints the record's raw fraction field even when it is >= 1 s (e.g.
    // "10.1000000"); tcplens's capture stage normalises timestamps to nanoseconds.
    (
        "heapoverflow-tcp_print.4.99.3.pcap",
        1,
        "timestamp fraction >= 1 s",
    ),
    (
        "tcp-auth-heapoverflow.4.99.3.pcap",
        1,
        "timestamp fraction >= 1 s",
    ),
    ("kday4.4.99.3.pcap", 2, "timestamp fraction >= 1 s"),
    ("kday7.4.99.3.pcap", 2, "timestamp fraction >= 1 s"),
    (
        "timestamp_invalid_micro.pcap",
        2,
        "timestamp fraction >= 1 s",
    ),
    (
        "timestamp_invalid_micro.pcap",
        3,
        "timestamp fraction >= 1 s",
    ),
    // Link types tcplens does not decode (tcpdump prints TCP inside them).
    (
        "arcnet-rfc1201-arp-icmp-http.pcap",
        0,
        "link type ARCNET_LINUX not decoded",
    ),
];

/// The index of the allow-list entry that covers this failure, if any.
fn allowed(file: &Path, fail: &str) -> Option<usize> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let num = fail
        .strip_prefix("packet ")
        .and_then(|s| s.split(':').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    ALLOW
        .iter()
        .position(|(f, n, _)| *f == name && (*n == 0 || *n == num))
}

fn corpus_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        std::env::var_os("TCPLENS_CORPUS").map(PathBuf::from),
        Some(root.join("../shared/corpus")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_dir())
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut ents: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    ents.sort();
    for p in ents {
        if p.is_dir() {
            captures(&p, out);
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".cap"))
        {
            out.push(p);
        }
    }
}

const FLAG_SETS: [&[&str]; 4] = [&[], &["-S"], &["-v"], &["-e"]];

#[test]
fn corpus_matches_tcpdump() {
    let (Some(td), Some(dir)) = (tcpdump(), corpus_dir()) else {
        eprintln!("corpus_diff: skipped (tcpdump or ../shared/corpus not found)");
        return;
    };
    let mut files = Vec::new();
    captures(&dir, &mut files);
    assert!(!files.is_empty(), "no captures under {}", dir.display());
    let work = Mutex::new(files.into_iter());
    // (file, per flag set (compared, failed), unexpected failures)
    let results = Mutex::new(Vec::new());
    let used = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some(f) = work.lock().unwrap().next() else {
                        break;
                    };
                    let tcp = libpcap_tcp_numbers(&td, &f);
                    let mut per = Vec::new();
                    let mut bad = Vec::new();
                    for flags in FLAG_SETS {
                        let reference = packets(&run(std::process::Command::new(&td)
                            .args(["-#", "-n", "-r"])
                            .arg(&f)
                            .args(flags)));
                        let mine = packets(&tcplens(&f, flags));
                        let (n, fails) = compare(&mine, &reference, &tcp);
                        per.push((n, fails.len()));
                        for x in fails {
                            match allowed(&f, &x) {
                                Some(i) => used.lock().unwrap().push(i),
                                None => bad.push(format!("[{}] {x}", flags.join(" "))),
                            }
                        }
                    }
                    results.lock().unwrap().push((f, per, bad));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut totals = [(0usize, 0usize); 4];
    let mut failures = Vec::new();
    for (f, per, bad) in &results {
        let name = f.strip_prefix(&dir).unwrap_or(f).display().to_string();
        let rates: Vec<String> = per
            .iter()
            .zip(FLAG_SETS)
            .map(|((n, k), fl)| {
                let label = if fl.is_empty() { "plain" } else { fl[0] };
                format!("{label} {}/{n}", n - k)
            })
            .collect();
        eprintln!("{name}: {}", rates.join(", "));
        for (t, (n, k)) in totals.iter_mut().zip(per) {
            t.0 += n;
            t.1 += k;
        }
        for b in bad {
            failures.push(format!("{name} {b}"));
        }
    }
    for ((n, k), fl) in totals.iter().zip(FLAG_SETS) {
        let label = if fl.is_empty() { "plain" } else { fl[0] };
        eprintln!(
            "TOTAL {label}: {}/{n} TCP packets match ({:.3}%)",
            n - k,
            100.0 * (n - k) as f64 / (*n).max(1) as f64
        );
    }
    // A stale allow-list entry hides nothing today but could hide a regression tomorrow.
    let used = used.into_inner().unwrap();
    for (i, (f, n, why)) in ALLOW.iter().enumerate() {
        if !used.contains(&i) && results.iter().any(|r| r.0.ends_with(f)) {
            failures.push(format!(
                "allow-list entry ({f}, {n}, {why}) no longer needed"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences not in the allow-list:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
