//! `--json` and `--ndjson` end to end: damaged inputs still give one valid document naming the
//! damage (positions from testdata/synthetic/damage.tsv, written by the script that made the
//! files), a closed pipe ends the run quietly with status 0, `-c` is not damage, the two JSON
//! forms agree, and JSON and text tell the same facts for the same capture.

mod common;
mod json_support;

use json_support::{captures, run_tcplens};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ndjson(file: &Path, args: &[&str]) -> (i32, Vec<Value>) {
    let mut a = vec!["--ndjson"];
    a.extend_from_slice(args);
    let (code, out) = run_tcplens(file, &a);
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (code, lines)
}

fn json(file: &Path, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out) = run_tcplens(file, &a);
    (code, serde_json::from_slice(&out).unwrap())
}

#[test]
fn damaged_inputs_still_give_a_document_naming_the_damage() {
    let dir = root().join("testdata/synthetic");
    let tsv = std::fs::read_to_string(dir.join("damage.tsv")).unwrap();
    let mut checked = 0;
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, packet, offset): (&str, u64, u64) =
            (f[0], f[1].parse().unwrap(), f[2].parse().unwrap());
        let file = dir.join(name);
        let (code, doc) = json(&file, &[]);
        assert_eq!(code, 2, "{name}: exit status");
        let input = &doc["inputs"][0];
        assert_eq!(input["complete"], false, "{name}");
        let err = &input["error"];
        assert_eq!(err["kind"], "damaged", "{name}: {err}");
        assert_eq!(err["file"], file.to_str().unwrap(), "{name}");
        assert_eq!(err["packet"], packet, "{name}: {err}");
        assert_eq!(err["offset"], offset, "{name}: {err}");
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("at packet {packet}, byte offset {offset}")),
            "{name}: {msg}"
        );
        // Every frame before the damage was read and reported.
        assert_eq!(input["packets_read"], packet - 1, "{name}");
        for c in doc["connections"].as_array().unwrap() {
            assert!(c["last_packet"].as_u64().unwrap() < packet, "{name}: {c}");
        }
        let (code, lines) = ndjson(&file, &[]);
        assert_eq!(code, 2);
        let last = lines.last().unwrap();
        assert_eq!(last["type"], "summary");
        assert_eq!(last["inputs"], doc["inputs"], "{name}");
        checked += 1;
    }
    assert!(checked >= 15, "damage.tsv rows: {checked}");
}

#[test]
fn missing_file_gives_a_document_and_status_1() {
    let (code, doc) = json(Path::new("/nonexistent/x.pcap"), &[]);
    assert_eq!(code, 1);
    assert_eq!(doc["inputs"][0]["error"]["kind"], "io");
    assert_eq!(doc["connections"], serde_json::json!([]));
}

#[test]
fn count_limit_is_not_damage() {
    let file = root().join("testdata/kernel/loss_fast_retransmit_v4.pcap");
    let (code, doc) = json(&file, &["-c", "5"]);
    assert_eq!(code, 0);
    let input = &doc["inputs"][0];
    assert_eq!(input["stopped_by_count"], true);
    assert_eq!(input["complete"], false);
    assert_eq!(input["error"], Value::Null);
    assert_eq!(input["packets_matched"], 5);
    assert_eq!(doc["stats"]["tcp_packets"], 5);
}

/// A pcap of `n` SYNs from distinct ports (Ethernet, IPv4, TCP): enough output to fill a pipe.
fn many_syns(n: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..n {
        let mut f = vec![0u8; 54];
        f[12] = 0x08; // IPv4
        f[14] = 0x45;
        f[17] = 40; // total length
        f[22] = 64; // TTL
        f[23] = 6; // TCP
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&(10_000 + i).to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[38..42].copy_from_slice(&1000u32.to_be_bytes());
        f[46] = 0x50; // data offset 5
        f[47] = 0x02; // SYN
        f[48..50].copy_from_slice(&1024u16.to_be_bytes());
        b.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        b.extend_from_slice(&u32::from(i).to_le_bytes());
        b.extend_from_slice(&54u32.to_le_bytes());
        b.extend_from_slice(&54u32.to_le_bytes());
        b.extend_from_slice(&f);
    }
    b
}

#[test]
fn closed_pipe_ends_quietly_with_status_0() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("syns.pcap");
    std::fs::write(&file, many_syns(3000)).unwrap();
    for mode in ["--ndjson", "--json", "--summary"] {
        // `tcplens read x.pcap --ndjson | head -1`: the reader goes away after one line.
        let mut child = Command::new(env!("CARGO_BIN_EXE_tcplens"))
            .arg("read")
            .arg(&file)
            .arg(mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{mode}: no output");
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(0), "{mode}: {err}");
        if mode != "--summary" {
            assert_eq!(err, "", "{mode}: must be quiet");
        }
    }
    // The output really is larger than a pipe holds, so the writes above did fail.
    let (code, out) = run_tcplens(&file, &["--ndjson"]);
    assert_eq!(code, 0);
    assert!(out.len() > 1 << 20, "{}", out.len());
}

/// The annotation kinds a text annotation line shows, by its phrases (report/annotate.rs).
fn text_kinds(line: &str) -> BTreeSet<&'static str> {
    const PHRASES: [(&str, &str); 27] = [
        ("handshake 1/3", "handshake_syn"),
        ("handshake 2/3", "handshake_synack"),
        ("handshake 3/3", "handshake_ack"),
        ("simultaneous open ", "simultaneous_open"),
        ("split handshake 4/4", "split_handshake"),
        (
            "tshark: retransmission (same seq as its SYN)",
            "retransmission",
        ),
        ("SYN retransmission", "syn_retransmission"),
        ("SYN-ACK retransmission", "synack_retransmission"),
        ("refused: server answered", "refused"),
        ("RST by ", "rst"),
        ("fast retransmission (after", "fast_retransmission"),
        (
            "spurious retransmission (already",
            "spurious_retransmission",
        ),
        ("out-of-order", "out_of_order"),
        ("previous segment not captured", "lost_segment"),
        ("ACKs a segment that was not captured", "ack_lost_segment"),
        ("duplicate ACK #", "duplicate_ack"),
        ("zero window: the receiver", "zero_window"),
        ("zero-window probe", "zero_window_probe"),
        ("zero-window probe ACK", "zero_window_probe_ack"),
        ("window update", "window_update"),
        ("window full: the receiver", "window_full"),
        ("keep-alive", "keep_alive"),
        ("keep-alive ACK", "keep_alive_ack"),
        ("mid-stream: handshake not captured", "midstream"),
        ("port reuse: a new connection", "port_reuse"),
        ("SYN carries data", "syn_with_data"),
        ("ack is not the peer's ISN + 1", "bad_handshake_ack"),
    ];
    let mut set = BTreeSet::new();
    for (p, k) in PHRASES {
        let found = match k {
            // A phrase that is the start of a longer one counts only on its own.
            "zero_window_probe" => line
                .match_indices(p)
                .any(|(i, _)| !line[i + p.len()..].starts_with(" ACK")),
            // Also skips "(… tshark says keep-alive)" on Linux's zero-window probe.
            // ... and "after keep-alives … never answered" on a RST.
            "keep_alive" => line.match_indices(p).any(|(i, _)| {
                let rest = &line[i + p.len()..];
                !rest.starts_with(" ACK") && !rest.starts_with(')') && !rest.starts_with('s')
            }),
            "synack_retransmission" | "syn_retransmission" => {
                line.contains(&format!("· {p}")) || line.contains(&format!("↳ {p}"))
            }
            _ => line.contains(p),
        };
        if found {
            set.insert(k);
        }
    }
    // A refusal is a RST.
    if set.contains("refused") {
        set.insert("rst");
    }
    // Plain retransmission: shown unless a more specific kind says it.
    let plain = line
        .split(" · ")
        .any(|part| part.trim_start_matches("    ↳ ") == "retransmission");
    if plain {
        set.insert("retransmission");
    }
    set
}

/// The kinds a packet record's annotations would show as text (the text folds a few).
fn shown_kinds(rec: &Value) -> BTreeSet<&'static str> {
    let names: BTreeSet<String> = rec["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let has = |k: &str| names.contains(k);
    let mut set = BTreeSet::new();
    for k in [
        "handshake_syn",
        "handshake_synack",
        "handshake_ack",
        "simultaneous_open",
        "split_handshake",
        "syn_retransmission",
        "synack_retransmission",
        "refused",
        "rst",
        "fast_retransmission",
        "spurious_retransmission",
        "out_of_order",
        "lost_segment",
        "ack_lost_segment",
        "duplicate_ack",
        "zero_window",
        "zero_window_probe",
        "zero_window_probe_ack",
        "window_update",
        "window_full",
        "keep_alive",
        "keep_alive_ack",
        "midstream",
        "port_reuse",
        "syn_with_data",
        "bad_handshake_ack",
    ] {
        if has(k) {
            set.insert(k);
        }
    }
    // The text names a retransmission once, by its most specific kind.
    if has("retransmission")
        && !has("fast_retransmission")
        && !has("spurious_retransmission")
        && !has("syn_retransmission")
        && !has("synack_retransmission")
    {
        set.insert("retransmission");
    }
    // Linux's zero-window probe is shown as a probe only (tshark's keep-alive, see docs).
    if has("keep_alive") && has("zero_window_probe") && !has("keep_alive_ack") {
        set.remove("keep_alive");
    }
    set
}

/// The text names `side`'s state `to`: `side to`, or at the end of a chain a side passing
/// through states shows (`server CLOSE_WAIT → LAST_ACK`).
fn shows_state(ann: &str, side: &str, to: &str) -> bool {
    ann.match_indices(&format!("{side} ")).any(|(i, m)| {
        let rest = &ann[i + m.len()..];
        let chain = rest.split([',', '·', '(', ')', ':']).next().unwrap_or("");
        let last = chain.rsplit(" → ").next().unwrap_or("");
        last.split_whitespace().next() == Some(to)
    })
}

/// The connection table's rows: id → cells.
fn table_rows(text: &str) -> BTreeMap<u64, Vec<String>> {
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('│')) {
        let cells: Vec<String> = line
            .trim_matches('│')
            .split('┆')
            .map(|c| c.trim().to_string())
            .collect();
        if let Ok(id) = cells[0].parse() {
            rows.insert(id, cells);
        }
    }
    rows
}

fn dash_or(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

/// Text and JSON from one capture: the same annotations per packet, the same state changes,
/// the same connection table, and `--json` equal to what `--ndjson` streamed.
fn agree(file: &Path) -> Result<usize, String> {
    let name = file.display();
    let (code, lines) = ndjson(file, &[]);
    let (jcode, doc) = json(file, &[]);
    // Every connection gets a table row (the default lists the first 2000).
    let (tcode, text) = run_tcplens(file, &["-#", "--table-rows", "1000000"]);
    if code != jcode || code != tcode {
        return Err(format!("{name}: exit {code} / {jcode} / {tcode}"));
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let (packets_text, table_text) = text.split_once("TCP connections (").unwrap_or((&text, ""));
    let by_number = common::packets(packets_text);
    let mut conns_nd = Vec::new();
    let mut per_conn: BTreeMap<u64, (BTreeMap<String, u64>, Vec<Value>)> = BTreeMap::new();
    let mut summary = Value::Null;
    let mut findings = Vec::new();
    let mut n_packets = 0;
    for rec in &lines {
        match rec["type"].as_str().unwrap() {
            "packet" => {
                n_packets += 1;
                let num = rec["number"].as_u64().unwrap();
                let Some(t) = by_number.get(&num) else {
                    return Err(format!("{name}: packet {num} not in the text"));
                };
                let ann = t
                    .lines()
                    .find(|l| l.starts_with("    ↳ "))
                    .ok_or(format!("{name}: packet {num} has no annotation line"))?;
                let (tk, jk) = (text_kinds(ann), shown_kinds(rec));
                if tk != jk {
                    return Err(format!(
                        "{name}: packet {num}: text {tk:?} json {jk:?}\n{ann}"
                    ));
                }
                // Each side's final state after a change is in the text.
                let mut last: BTreeMap<&str, &str> = BTreeMap::new();
                for tr in rec["transitions"].as_array().unwrap() {
                    last.insert(tr["side"].as_str().unwrap(), tr["to"].as_str().unwrap());
                }
                for (side, to) in last {
                    if !shows_state(ann, side, to) {
                        return Err(format!("{name}: packet {num}: {side} {to} not in\n{ann}"));
                    }
                }
                let e = per_conn
                    .entry(rec["connection"].as_u64().unwrap())
                    .or_default();
                for a in rec["annotations"].as_array().unwrap() {
                    *e.0.entry(a.as_str().unwrap().to_string()).or_default() += 1;
                }
                for tr in rec["transitions"].as_array().unwrap() {
                    let mut t = tr.clone();
                    t["packet"] = num.into();
                    e.1.push(t);
                }
            }
            "connection" => {
                let mut c = rec.clone();
                c.as_object_mut().unwrap().remove("type");
                conns_nd.push(c);
            }
            "finding" => {
                let mut f = rec.clone();
                f.as_object_mut().unwrap().remove("type");
                findings.push(f);
            }
            "summary" => summary = rec.clone(),
            t => return Err(format!("{name}: record type {t}")),
        }
    }
    // --json holds what --ndjson streamed.
    if doc["connections"].as_array().unwrap() != &conns_nd {
        return Err(format!("{name}: --json connections differ from --ndjson"));
    }
    if doc["findings"].as_array().unwrap() != &findings {
        return Err(format!("{name}: --json findings differ from --ndjson"));
    }
    if doc["inputs"] != summary["inputs"] || doc["stats"]["annotations"] != summary["annotations"] {
        return Err(format!(
            "{name}: --json stats/inputs differ from the summary"
        ));
    }
    // Per-connection counts and histories are the packets' own.
    for c in &conns_nd {
        let id = c["id"].as_u64().unwrap();
        let (counts, history) = per_conn.remove(&id).unwrap_or_default();
        for (k, v) in c["annotations"].as_object().unwrap() {
            if v.as_u64().unwrap() != counts.get(k).copied().unwrap_or(0) {
                return Err(format!(
                    "{name}: connection {id}: {k} = {v}, packets say {counts:?}"
                ));
            }
        }
        let truncated = c["state_history_truncated"] == true;
        let listed = c["state_history"].as_array().unwrap();
        if !truncated && listed != &history {
            return Err(format!(
                "{name}: connection {id}: state history {listed:?} vs {history:?}"
            ));
        }
    }
    if !per_conn.is_empty() {
        return Err(format!(
            "{name}: packets of unreported connections {:?}",
            per_conn.keys()
        ));
    }
    // The text table's rows are the JSON connections.
    let rows = table_rows(table_text);
    if rows.len() != conns_nd.len() {
        return Err(format!(
            "{name}: {} table rows, {} connections",
            rows.len(),
            conns_nd.len()
        ));
    }
    for c in &conns_nd {
        let id = c["id"].as_u64().unwrap();
        let r = &rows[&id];
        let want = [
            (1, c["client"].as_str().unwrap().to_string()),
            (2, c["server"].as_str().unwrap().to_string()),
            (3, dash_or(&c["handshake"])),
            (4, dash_or(&c["client_state"])),
            (5, dash_or(&c["server_state"])),
            (12, dash_or(&c["close"])),
            (13, dash_or(&c["close_initiator"])),
            (14, dash_or(&c["time_wait_on"])),
            (15, dash_or(&c["zeek_conn_state"])),
            (16, dash_or(&c["zeek_history"])),
        ];
        for (i, v) in want {
            if r[i] != v {
                return Err(format!(
                    "{name}: connection {id} column {i}: text {} json {v}",
                    r[i]
                ));
            }
        }
        let pk = format!(
            "{}/{}",
            c["client_sent"]["packets"], c["server_sent"]["packets"]
        );
        if r[9] != pk {
            return Err(format!(
                "{name}: connection {id} packets: text {} json {pk}",
                r[9]
            ));
        }
    }
    Ok(n_packets)
}

/// Disagreements found by this test and left to the text printer's owners: (capture file
/// name, packet, what). An entry that no longer disagrees fails the test, so it is removed.
const KNOWN: [(&str, u64, &str); 0] = [];

fn known(err: &str) -> Option<usize> {
    KNOWN
        .iter()
        .position(|(f, n, _)| err.contains(&format!("/{f}: packet {n}:")))
}

#[test]
fn json_and_text_tell_the_same_facts() {
    let files: Vec<PathBuf> = captures()
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("/synthetic/bad-"))
        .collect();
    let mut failures = Vec::new();
    let mut packets = 0;
    for f in &files {
        match agree(f) {
            Ok(n) => packets += n,
            Err(e) => failures.push(e),
        }
    }
    let mut used = [false; KNOWN.len()];
    failures.retain(|e| match known(e) {
        Some(i) => {
            used[i] = true;
            false
        }
        None => true,
    });
    let corpus = json_support::shared_dir().is_some();
    for (i, u) in used.iter().enumerate() {
        // The known cases live in the shared corpus.
        if corpus && !u {
            failures.push(format!("stale KNOWN entry: {:?}", KNOWN[i]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let least = if corpus { 5000 } else { 500 };
    assert!(packets > least, "TCP packets compared: {packets}");
}
