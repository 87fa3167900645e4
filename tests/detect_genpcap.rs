//! The detectors against gen-pcap's ground truth: busy synthetic traffic with and without its
//! spoofed SYN burst. Captures are generated at test time into a temporary directory.

use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

mod common;
use std::process::Command;

struct Run {
    findings: Vec<Value>,
    flows: Vec<Value>,
    start_us: f64,
}

fn generate(dir: &Path, args: &[&str]) -> Run {
    let pcap = dir.join("w.pcap");
    let flows = dir.join("w.jsonl");
    let more = [
        OsStr::new("--out"),
        pcap.as_os_str(),
        OsStr::new("--flow-truth"),
        flows.as_os_str(),
        OsStr::new("--quiet"),
    ];
    common::gen_pcap(args.iter().map(OsStr::new).chain(more));
    let out = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .arg("read")
        .arg(&pcap)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("w.pcap.truth.json")).unwrap())
            .unwrap();
    Run {
        findings: doc["findings"].as_array().unwrap().clone(),
        flows: std::fs::read_to_string(&flows)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        start_us: truth["params"]["start"].as_f64().unwrap() * 1e6,
    }
}

fn kind<'a>(r: &'a Run, k: &str) -> Vec<&'a Value> {
    r.findings.iter().filter(|f| f["kind"] == k).collect()
}

fn ns(v: &Value) -> f64 {
    v.as_str().unwrap().parse::<f64>().unwrap()
}

/// TIME_WAIT entries per host from the flow truth: the side that sent the first FIN, both on
/// a simultaneous close.
fn tw_entries(flows: &[Value]) -> HashMap<IpAddr, u64> {
    let mut m = HashMap::new();
    for f in flows {
        let close = f["close"].as_str().unwrap_or("");
        let ep = |k: &str| f[k].as_str().unwrap().parse::<SocketAddr>().unwrap().ip();
        let hosts: Vec<IpAddr> = if close.starts_with("client_") {
            vec![ep("client")]
        } else if close.starts_with("server_") {
            vec![ep("server")]
        } else if close == "simultaneous" {
            vec![ep("client"), ep("server")]
        } else {
            vec![]
        };
        for h in hosts {
            *m.entry(h).or_insert(0) += 1;
        }
    }
    m
}

fn check_time_wait(r: &Run) {
    let truth = tw_entries(&r.flows);
    for f in kind(r, "time_wait_buildup") {
        let host: IpAddr = f["subject"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            f["figures"]["entered"].as_u64().unwrap(),
            truth[&host],
            "TIME_WAIT entries of {host}"
        );
        // The peak can never exceed the entries.
        assert!(f["figures"]["peak_time_wait"].as_u64().unwrap() <= truth[&host]);
    }
    // Hosts with fewer entries than the threshold cannot reach it: no finding for them.
    for (h, n) in &truth {
        if *n < 200 {
            assert!(
                !kind(r, "time_wait_buildup")
                    .iter()
                    .any(|f| f["subject"] == h.to_string()),
                "{h}"
            );
        }
    }
}

#[test]
fn busy_traffic_without_flood_gives_no_syn_flood() {
    for seed in ["1", "2", "3"] {
        let dir = tempfile::tempdir().unwrap();
        let r = generate(
            dir.path(),
            &["--flows", "2000", "--seed", seed, "--syn-flood", "0"],
        );
        assert!(
            kind(&r, "syn_flood").is_empty(),
            "seed {seed}: {:?}",
            r.findings
        );
        assert!(
            kind(&r, "syn_cookies").is_empty(),
            "seed {seed}: {:?}",
            r.findings
        );
        check_time_wait(&r);
    }
}

#[test]
fn default_flood_is_found_at_its_port_and_time() {
    for (seed, flows) in [("1", "2000"), ("4", "3000"), ("5", "1000")] {
        let dir = tempfile::tempdir().unwrap();
        let r = generate(dir.path(), &["--flows", flows, "--seed", seed]);
        let flood: Vec<&Value> = r
            .flows
            .iter()
            .filter(|f| f["kind"] == "syn_flood")
            .collect();
        let target = flood[0]["server"].as_str().unwrap();
        let t0 = flood
            .iter()
            .map(|f| f["start_us"].as_f64().unwrap())
            .fold(f64::MAX, f64::min);
        let t1 = flood
            .iter()
            .map(|f| f["start_us"].as_f64().unwrap())
            .fold(0.0, f64::max);
        let found = kind(&r, "syn_flood");
        assert_eq!(found.len(), 1, "seed {seed}: {found:?}");
        let f = found[0];
        assert_eq!(f["subject"], target);
        let (a, b) = (
            ns(&f["first_time_ns"]) / 1e3 - r.start_us,
            ns(&f["last_time_ns"]) / 1e3 - r.start_us,
        );
        assert!(
            (a - t0).abs() < 2.0 && (b - t1).abs() < 2.0,
            "seed {seed}: {a}..{b} vs {t0}..{t1} µs"
        );
        let fig = &f["figures"];
        let n = |v: &Value| v.as_u64().unwrap();
        // Every flood SYN fails without retransmission; only they do.
        assert_eq!(n(&fig["suspect_syns"]) as usize, flood.len());
        let half_open = flood.iter().filter(|f| f["close"] == "half_open").count();
        let reset = flood
            .iter()
            .filter(|f| f["close"] == "rst_by_spoofed_source")
            .count();
        let unanswered = flood.iter().filter(|f| f["close"] == "unanswered").count();
        assert_eq!(n(&fig["half_open"]) as usize, half_open, "seed {seed}");
        assert_eq!(n(&fig["source_rsts"]) as usize, reset, "seed {seed}");
        assert_eq!(n(&fig["unanswered"]) as usize, unanswered, "seed {seed}");
        assert!(fig["one_way"] == false);
        check_time_wait(&r);
    }
}
