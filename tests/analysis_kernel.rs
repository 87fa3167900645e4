//! The analysis against real Linux kernel captures (testdata/kernel, made by the `kernel`
//! helper in network namespaces): final states, handshake result, close initiator and TIME_WAIT
//! holder from the kernel's own truth (`ss` states, kernel counters). tshark's per-frame flags
//! on the same captures are compared in tests/analysis_tshark.rs. Each allowed difference is
//! explained in docs/analysis-vs-tshark.md.

use serde_json::Value;
use std::path::Path;

/// (scenario, field) where the capture cannot show the kernel's final answer.
const STATE_ALLOWED: &[(&str, &str)] = &[
    // connect() gives up after its SYN retries; nothing on the wire says when.
    ("syn_timeout_v4", "client_state"),
    ("syn_timeout_linear_v4", "client_state"),
];

fn run(pcap: &Path) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .arg("read")
        .arg(pcap)
        .arg("--ndjson")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn scenarios() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kernel");
    let mut v: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p
                .file_name()?
                .to_str()?
                .strip_suffix(".truth.json")?
                .to_string();
            Some((
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            ))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn final_states_and_close_roles_match_the_kernel() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kernel");
    let mut checked = 0;
    for (name, t) in scenarios() {
        let Some(client) = t["client"].as_str() else {
            continue;
        };
        let recs = run(&dir.join(t["capture"]["file"].as_str().unwrap()));
        let conn = recs.iter().rev().find(|r| {
            r["type"] == "connection" && r["client"] == client && r["server"] == t["server"]
        });
        let c = conn.unwrap_or_else(|| panic!("{name}: the kernel's connection not found"));
        for (ours, theirs) in [
            ("client_state", "client_final_state"),
            ("server_state", "server_final_state"),
            ("handshake", "handshake"),
            ("close_initiator", "close_initiator"),
            ("time_wait_on", "time_wait_on"),
        ] {
            if t.get(theirs).is_none() || STATE_ALLOWED.contains(&(name.as_str(), ours)) {
                continue;
            }
            assert_eq!(c[ours], t[theirs], "{name}: {ours}");
            checked += 1;
        }
    }
    eprintln!("{checked} kernel facts checked");
    assert!(checked >= 100, "only {checked} facts checked");
}
