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

/// Kernel counters of the client (`nstat`, from the truth files) against our per-packet
/// annotations of the client's packets, on captures taken in the client's namespace (so every
/// packet the client sent is in the capture).
#[test]
fn client_counters_match_annotations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kernel");
    // (kernel counter, our annotation kinds counted on client packets)
    let pairs: [(&str, &[&str]); 4] = [
        ("TcpExtTCPWinProbe", &["zero_window_probe"]),
        ("TcpExtTCPSynRetrans", &["syn_retransmission"]),
        (
            "TcpRetransSegs",
            &["retransmission", "out_of_order", "syn_retransmission"],
        ),
        ("TcpExtTCPKeepAlive", &["keep_alive"]),
    ];
    let (mut checked, mut nonzero) = (0, 0);
    for (name, t) in scenarios() {
        if t["capture"]["namespace"] != "tl-cli" {
            continue;
        }
        let counters = &t["nstat_delta"]["client_ns"];
        let recs = run(&dir.join(t["capture"]["file"].as_str().unwrap()));
        let client = t["client"].as_str().unwrap_or("");
        for (counter, kinds) in pairs {
            let want = counters[counter].as_u64().unwrap_or(0);
            let got = recs
                .iter()
                .filter(|r| r["type"] == "packet" && r["src"] == client)
                .filter(|r| {
                    let a = r["annotations"].as_array().unwrap();
                    let has = |k: &str| a.iter().any(|x| x == k);
                    // A Linux zero-window probe looks like a keep-alive; the kernel counts it
                    // as a window probe only.
                    let zwp = has("zero_window_probe") && counter == "TcpExtTCPKeepAlive";
                    kinds.iter().any(|k| has(k)) && !zwp
                })
                .count() as u64;
            assert_eq!(got, want, "{name}: {counter}");
            checked += 1;
            nonzero += u32::from(want > 0);
        }
    }
    eprintln!("{checked} counters checked, {nonzero} of them non-zero");
    assert!(
        checked >= 100 && nonzero >= 8,
        "{checked} counters, {nonzero} non-zero"
    );
}
