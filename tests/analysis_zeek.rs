//! Zeek's `conn_state` and `history` per connection against Zeek's own btest baselines
//! (corpus/zeek: conn.log files and the RST-behaviour output), matched by 4-tuple in order.
//! Not compared here, with the reason (see docs/analysis-vs-tshark.md):
//! `syn-bad` (Zeek drops a segment with a bad checksum; we do not verify checksums) and
//! `retransmit-timeout` (our 300 s idle timeout splits a connection Zeek keeps).

use serde_json::Value;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

mod common;

/// The corpus' Zeek folder.
fn zeek_dir() -> std::path::PathBuf {
    common::shared_dir()
        .expect("the shared corpus (set TCPLENS_SHARED)")
        .join("corpus/zeek")
}

fn connections(pcap: &str) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .arg("read")
        .arg(zeek_dir().join(pcap))
        .arg("--ndjson")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "connection")
        .collect()
}

/// Rows of a Zeek log as field maps (header from `#fields` or a bare first line).
fn zeek_rows(log: &str) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(zeek_dir().join(log)).unwrap();
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            header = Some(f.split('\t').map(String::from).collect());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        match &header {
            None => header = Some(line.split('\t').map(String::from).collect()),
            Some(h) => rows.push(
                h.iter()
                    .cloned()
                    .zip(line.split('\t').map(String::from))
                    .collect(),
            ),
        }
    }
    rows
}

fn check_conn_log(pcap: &str, log: &str) -> usize {
    let ours = connections(pcap);
    let mut used = vec![false; ours.len()];
    let mut checked = 0;
    for row in zeek_rows(log) {
        if row.get("proto").is_some_and(|p| p != "tcp") {
            continue;
        }
        let ep = |h: &str, p: &str| {
            SocketAddr::new(row[h].parse::<IpAddr>().unwrap(), row[p].parse().unwrap())
        };
        let (orig, resp) = (ep("id.orig_h", "id.orig_p"), ep("id.resp_h", "id.resp_p"));
        let i = (0..ours.len())
            .find(|&i| {
                !used[i]
                    && ours[i]["client"]
                        .as_str()
                        .unwrap()
                        .parse::<SocketAddr>()
                        .unwrap()
                        == orig
                    && ours[i]["server"]
                        .as_str()
                        .unwrap()
                        .parse::<SocketAddr>()
                        .unwrap()
                        == resp
            })
            .unwrap_or_else(|| panic!("{pcap}: no connection {orig} -> {resp}"));
        used[i] = true;
        assert_eq!(
            ours[i]["zeek_history"],
            row["history"].as_str(),
            "{pcap} {orig}"
        );
        if let Some(state) = row.get("conn_state") {
            assert_eq!(ours[i]["zeek_conn_state"], state.as_str(), "{pcap} {orig}");
        }
        checked += 1;
    }
    let tcp_ours = ours.len();
    assert_eq!(checked, tcp_ours, "{pcap}: connection count");
    checked
}

#[test]
fn wikipedia_conn_log() {
    assert_eq!(
        check_conn_log(
            "wikipedia/wikipedia.pcap",
            "wikipedia/core.tcp.rxmit-history.conn-2.log"
        ),
        10
    );
}

#[test]
fn modbus_conn_log_with_reused_tuple() {
    assert_eq!(
        check_conn_log(
            "modbus-p502/modbus-and-non-modbus-p502.pcap",
            "modbus-p502/scripts.base.protocols.modbus.modbus_and_non_modbus_on_port_502.conn.log"
        ),
        8
    );
}

#[test]
fn flipped_connections_without_syn() {
    check_conn_log(
        "missing-syn/missing-syn.pcap",
        "missing-syn/core.tcp.missing-syn.conn.log",
    );
    check_conn_log(
        "flip-without-syn/http-on-irc-port-missing-syn.pcapng",
        "flip-without-syn/core.tcp.flip-without-syn.conn.log",
    );
    check_conn_log(
        "ctu-64702-888/ctu-64702-888.pcap",
        "ctu-64702-888/core.conn-size-flip.conn.log.ctu",
    );
}

#[test]
fn rst_behaviour_baseline() {
    let expected = std::fs::read_to_string(
        zeek_dir().join("rst-behavior/scripts.base.protocols.conn.conn_state-RST-behavior.out"),
    )
    .unwrap();
    let lines: Vec<&str> = expected.lines().filter(|l| !l.starts_with('#')).collect();
    // The baseline's order, per its MANIFEST note.
    let pcaps = [
        "single-rst.pcap",
        "syn-then-rst.pcap",
        "syn-then-ack-then-rst.pcap",
        "syn-then-stuff-then-rst.pcap",
    ];
    assert_eq!(lines.len(), pcaps.len());
    for (pcap, line) in pcaps.iter().zip(lines) {
        let c = connections(&format!("rst-behavior/{pcap}"));
        assert_eq!(c.len(), 1);
        let got = format!(
            "{}, {}",
            c[0]["zeek_history"].as_str().unwrap(),
            c[0]["zeek_conn_state"].as_str().unwrap()
        );
        assert_eq!(got, line, "{pcap}");
    }
}
