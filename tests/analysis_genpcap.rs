//! The analysis against gen-pcap's ground truth: the generator writes a capture plus one JSON
//! line per TCP connection saying what it injected (kind, close, retransmissions, dup ACKs).
//! Captures are generated at test time (about half a second) into a temporary directory.

use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;

mod common;
use std::process::Command;

struct Run {
    conns: Vec<Value>,
    summary: Value,
    truth: Vec<Value>,
    counts: Value,
}

fn generate_and_analyse(dir: &Path, args: &[&str]) -> Run {
    let pcap = dir.join("w.pcap");
    let flows = dir.join("w.jsonl");
    let out_args = [OsStr::new("--out"), pcap.as_os_str()];
    let truth_args = [OsStr::new("--flow-truth"), flows.as_os_str()];
    common::gen_pcap(
        args.iter()
            .map(OsStr::new)
            .chain(out_args)
            .chain(truth_args),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .arg("read")
        .arg(&pcap)
        .arg("--ndjson")
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut conns = Vec::new();
    let mut summary = Value::Null;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("connection") => conns.push(v),
            Some("summary") => summary = v,
            _ => {}
        }
    }
    let truth = std::fs::read_to_string(&flows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let t: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("w.pcap.truth.json")).unwrap())
            .unwrap();
    Run {
        conns,
        summary,
        truth,
        counts: t["counts"].clone(),
    }
}

fn addr(v: &Value) -> SocketAddr {
    v.as_str().unwrap().parse().unwrap()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Compares every connection with its truth line (matched by client and server, in order).
fn compare(run: &Run) {
    assert_eq!(run.conns.len(), run.truth.len(), "connection count");
    let mut ours: HashMap<(SocketAddr, SocketAddr), Vec<&Value>> = HashMap::new();
    for c in &run.conns {
        ours.entry((addr(&c["client"]), addr(&c["server"])))
            .or_default()
            .push(c);
    }
    for list in ours.values_mut() {
        list.sort_by_key(|c| n(&c["id"]));
        list.reverse();
    }
    let mut truth: Vec<&Value> = run.truth.iter().collect();
    truth.sort_by_key(|t| n(&t["start_us"]));
    for t in truth {
        let key = (addr(&t["client"]), addr(&t["server"]));
        let c = ours
            .get_mut(&key)
            .and_then(|l| l.pop())
            .unwrap_or_else(|| panic!("no connection for {t}"));
        let kind = t["kind"].as_str().unwrap();
        let close = t["close"].as_str().unwrap_or("");
        let hs = match (kind, close) {
            ("closed" | "reset" | "left_open", _) => "complete",
            ("refused", _) => "refused",
            ("unanswered", _) | ("syn_flood", "unanswered") => "unanswered",
            ("midstream", _) => "not_seen",
            ("syn_flood", _) => "incomplete",
            _ => panic!("unknown kind {kind}"),
        };
        assert_eq!(c["handshake"], hs, "handshake of {t}\n{c}");
        let (init, tw, ck) = match close {
            c if c.starts_with("client_") => ("client", "client", ""),
            c if c.starts_with("server_") => ("server", "server", ""),
            "simultaneous" => ("simultaneous", "both", "simultaneous"),
            // A RST abort has no close initiator (as in the kernel truth files).
            "rst_by_client" | "rst_by_spoofed_source" | "rst_by_server" => ("", "", "reset"),
            _ => ("", "", ""),
        };
        if init.is_empty() {
            assert!(
                c["close_initiator"].is_null(),
                "close initiator of {t}\n{c}"
            );
        } else {
            assert_eq!(c["close_initiator"], init, "close initiator of {t}\n{c}");
        }
        if !tw.is_empty() {
            assert_eq!(c["time_wait_on"], tw, "TIME_WAIT holder of {t}\n{c}");
        }
        let expect_close = if close.ends_with("3seg") {
            "three_way"
        } else if close.ends_with("4seg") {
            "four_way"
        } else {
            ck
        };
        if !expect_close.is_empty() {
            assert_eq!(c["close"], expect_close, "close kind of {t}\n{c}");
        }
        // Data retransmissions (incl. reordered segments) exclude SYN / SYN-ACK resends.
        let (cs, ss) = (&c["client_sent"], &c["server_sent"]);
        let retrans = n(&cs["retransmissions"]) + n(&ss["retransmissions"])
            - n(&c["syn_retransmissions"])
            - n(&c["synack_retransmissions"]);
        assert_eq!(
            retrans,
            n(&t["retrans"]) + n(&t["ooo"]),
            "retransmissions of {t}\n{c}"
        );
        let dups = n(&cs["dup_acks"]) + n(&ss["dup_acks"]);
        assert_eq!(dups, n(&t["dup_acks"]), "duplicate ACKs of {t}\n{c}");
        let reused = t["tuple_reuse"].as_bool().unwrap_or(false);
        assert_eq!(c["port_reuse"], reused, "port reuse of {t}");
    }
}

/// Run-wide counts: the frames flagged in the retransmission family equal the injected
/// retransmissions (SYN ones included) plus the swapped segments, as tshark finds too
/// (gen-pcap README); duplicate ACKs equal the emitted ones.
fn compare_totals(run: &Run) {
    let a = &run.summary["annotations"];
    // A frame is in the family once: retransmission covers fast and spurious ones.
    let family = n(&a["retransmission"]) + n(&a["out_of_order"]);
    assert_eq!(
        family,
        n(&run.counts["retransmissions_injected"]) + n(&run.counts["out_of_order_injected"])
    );
    assert_eq!(n(&a["duplicate_ack"]), n(&run.counts["dup_acks"]));
    assert_eq!(n(&a["rst"]), n(&run.counts["rst_segments"]));
    assert_eq!(
        n(&run.summary["connections"]),
        n(&run.counts["tcp_connections"])
    );
}

#[test]
fn default_workload_matches_truth() {
    let dir = tempfile::tempdir().unwrap();
    let run = generate_and_analyse(dir.path(), &["--flows", "240", "--seed", "1"]);
    compare(&run);
    compare_totals(&run);
}

#[test]
fn wrapping_sequence_numbers_and_reused_tuples_match_truth() {
    let dir = tempfile::tempdir().unwrap();
    let run = generate_and_analyse(
        dir.path(),
        &[
            "--flows",
            "160",
            "--seed",
            "7",
            "--wrap-share",
            "0.5",
            "--reuse-share",
            "0.2",
            "--rate",
            "50",
        ],
    );
    assert!(
        n(&run.counts["seq_wrap_connections"]) > 0,
        "workload has no wraps"
    );
    assert!(n(&run.counts["tuple_reuse"]) > 0, "workload has no reuse");
    compare(&run);
    compare_totals(&run);
}
