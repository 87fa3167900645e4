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
                    // A simultaneous opener's SYN-ACK repeats its SYN's seq, so tshark (and
                    // we) flag it as a retransmission; the kernel sends it as its first
                    // SYN-ACK and does not count it.
                    let open = has("simultaneous_open") && counter == "TcpRetransSegs";
                    kinds.iter().any(|k| has(k)) && !zwp && !open
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

/// One tcpdump `-n -S` line of a truth file: sender `addr:port`, flags, seq range, ack.
struct Line {
    src: String,
    flags: String,
    seq: Option<(u32, u32)>,
    ack: Option<u32>,
}

fn parse_tcpdump(l: &str) -> Option<Line> {
    let rest = l.split_once(" IP ").or_else(|| l.split_once(" IP6 "))?.1;
    let (src, _) = rest.split_once(" > ")?;
    // tcpdump writes addr.port; make it addr:port ([addr]:port for IPv6).
    let (a, p) = src.rsplit_once('.')?;
    let src = if a.contains(':') {
        format!("[{a}]:{p}")
    } else {
        format!("{a}:{p}")
    };
    let flags = l.split_once("Flags [")?.1.split_once(']')?.0.to_string();
    let num = |key: &str| {
        l.split_once(key)
            .map(|(_, r)| r.split([',', ' ']).next().unwrap_or("").to_string())
    };
    let seq = num(", seq ").and_then(|s| match s.split_once(':') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => s.parse().ok().map(|a| (a, a)),
    });
    let ack = num(", ack ").and_then(|s| s.parse().ok());
    Some(Line {
        src,
        flags,
        seq,
        ack,
    })
}

/// `--explain` spells out the handshake and close arithmetic: every number it names must be
/// the one real tcpdump printed (`tcpdump_n_S` in the truth files) and the RFC 9293 rule
/// (a SYN and a FIN each consume one sequence number; a RST in SYN-SENT must ACK the SYN).
#[test]
fn explain_arithmetic_matches_tcpdump() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kernel");
    let mut checked = 0;
    for (name, t) in scenarios() {
        let (Some(client), Some(lines)) = (t["client"].as_str(), t["tcpdump_n_S"].as_array())
        else {
            continue;
        };
        let lines: Vec<Line> = lines
            .iter()
            .filter_map(|l| parse_tcpdump(l.as_str()?))
            .collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tcplens"))
            .arg("read")
            .arg(dir.join(t["capture"]["file"].as_str().unwrap()))
            .arg("--explain")
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut want = Vec::new();
        let syn = lines.iter().find(|l| l.flags == "S" && l.src == client);
        let synack = lines.iter().find(|l| l.flags == "S." && l.src != client);
        if let Some((c, _)) = syn.and_then(|l| l.seq) {
            want.push(format!("= seq {c} is the client's ISN"));
            if let Some(sa) = synack {
                let s = sa.seq.unwrap().0;
                want.push(format!(
                    "= ack {} = client ISN {c} + 1: the SYN consumes one sequence number; seq {s} is the server's ISN",
                    c.wrapping_add(1)
                ));
                if lines
                    .iter()
                    .any(|l| l.flags == "." && l.ack == Some(s.wrapping_add(1)))
                {
                    want.push(format!("= ack {} = server ISN {s} + 1", s.wrapping_add(1)));
                }
            }
            if let Some(r) = lines.iter().find(|l| l.flags == "R." && l.src != client)
                && synack.is_none()
            {
                want.push(format!(
                    "= RST ack {} vs client ISN {c} + 1",
                    r.ack.unwrap()
                ));
            }
        }
        for side_is_client in [true, false] {
            let fin = lines
                .iter()
                .find(|l| l.flags.contains('F') && (l.src == client) == side_is_client);
            let Some(fin_at) = fin.and_then(|l| l.seq).map(|s| s.1) else {
                continue;
            };
            want.push(format!(
                "FIN at seq {fin_at}: its ACK must be {}",
                fin_at.wrapping_add(1)
            ));
            if lines.iter().any(|l| {
                (l.src == client) != side_is_client && l.ack == Some(fin_at.wrapping_add(1))
            }) {
                want.push(format!(
                    "ack {} = FIN seq {fin_at} + 1: the FIN consumes one sequence number",
                    fin_at.wrapping_add(1)
                ));
            }
        }
        if !t["time_wait_on"].is_null() {
            want.push("TIME_WAIT lasts 2 MSL (60.00 s)".into());
        }
        for w in &want {
            assert!(text.contains(w.as_str()), "{name}: --explain lacks «{w}»");
            checked += 1;
        }
    }
    eprintln!("{checked} explain lines checked");
    assert!(checked >= 100, "only {checked} explain lines checked");
}
