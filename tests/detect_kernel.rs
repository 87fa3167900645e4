//! The detectors against real-kernel truth (testdata/kernel/detect: nstat SyncookiesSent/Recv,
//! `ss state syn-recv` and `ss state time-wait` samples, per-connection cookie facts) and the
//! public one-way floods of the shared corpus (StopDDoS, label only).
//!
//! Each test prints its confusion counts; docs/detectors.md quotes them.

use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use tcplens::analysis::{AnalysisConfig, Analyzer, ConnSummary};
use tcplens::capture::file::FileSource;
use tcplens::decode;
use tcplens::detect::{CookieVerdict, DetectConfig, Detectors, Figures, Finding, FindingKind};

mod common;

struct Out {
    findings: Vec<Finding>,
    conns: Vec<(ConnSummary, Option<CookieVerdict>)>,
}

fn run(path: &Path) -> Out {
    let mut src = FileSource::open(path.to_str().unwrap()).expect("capture opens");
    let mut an = Analyzer::new(AnalysisConfig::default());
    let mut det = Detectors::new(DetectConfig::default());
    let mut conns = Vec::new();
    let mut take = |an: &mut Analyzer, det: &mut Detectors| {
        for mut c in an.drain_ended() {
            det.connection(&mut c);
            conns.push((c, det.last_verdict()));
        }
    };
    let r = src.run(|frame| {
        if let Some(seg) = decode::decode(frame).segment {
            let info = an.packet(&seg);
            det.packet(&seg, info);
            take(&mut an, &mut det);
        }
        ControlFlow::Continue(())
    });
    assert!(r.is_ok(), "{path:?}: {r:?}");
    det.end_of_capture();
    an.finish();
    take(&mut an, &mut det);
    det.finish();
    Out {
        findings: det.findings().to_vec(),
        conns,
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kernel/detect")
}

fn truth(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(dir().join(format!("{name}.truth.json"))).unwrap(),
    )
    .unwrap()
}

fn of_kind(o: &Out, k: FindingKind) -> Vec<&Finding> {
    o.findings.iter().filter(|f| f.kind == k).collect()
}

fn secs(t: tcplens::capture::Timestamp) -> f64 {
    t.0 as f64 / 1e9
}

const ALL: [&str; 9] = [
    "busy_normal_v4",
    "syncookies_always_v4_ts1",
    "syncookies_always_v4_ts2",
    "syncookies_always_v6_ts1",
    "syncookies_always_v6_ts2",
    "synflood_cookies_v4",
    "synflood_nocookies_v4",
    "timewait_client_first_v4",
    "timewait_server_first_v4",
];

/// The truth of every connection with a SYN-ACK: was it a cookie?
fn cookie_truth(name: &str, t: &Value) -> HashMap<SocketAddr, bool> {
    let mut m = HashMap::new();
    let addr = |v: &Value| v.as_str().unwrap().parse::<SocketAddr>().unwrap();
    if name.starts_with("syncookies_always") {
        for c in t["connections"].as_array().unwrap() {
            m.insert(
                addr(&c["client"]),
                c["synack_was_cookie"].as_bool().unwrap(),
            );
        }
    } else if name.starts_with("synflood") {
        for c in t["legit_connections"].as_array().unwrap() {
            if let Some(b) = c["synack_was_cookie"].as_bool() {
                m.insert(addr(&c["client"]), b);
            }
        }
        // Spoofed tuples: with syncookies=1 every SYN-ACK is a cookie except those of the
        // half-open request sockets (the ones the server resent); with 0, none is.
        let cookies_on = name == "synflood_cookies_v4";
        let stateful: Vec<SocketAddr> = t["synack_times_rel_of_halfopen_spoofed"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect();
        let sent = t["nstat_delta"]["server_ns"]["TcpExtSyncookiesSent"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(cookies_on, sent > 0, "{name}: nstat SyncookiesSent {sent}");
        for s in stateful {
            m.insert(s, false);
        }
        m.insert("255.255.255.255:0".parse().unwrap(), cookies_on); // default for the rest
    } else {
        m.insert("255.255.255.255:0".parse().unwrap(), false);
    }
    m
}

#[test]
fn syn_cookie_verdicts_per_connection() {
    let (mut tp, mut fp, mut fn_, mut tn) = (0u32, 0u32, 0u32, 0u32);
    for name in ALL {
        let t = truth(name);
        let o = run(&dir().join(format!("{name}.pcap")));
        let m = cookie_truth(name, &t);
        let default = m.get(&"255.255.255.255:0".parse().unwrap()).copied();
        let (mut a, mut b, mut c, mut d) = (0, 0, 0, 0);
        for (conn, v) in &o.conns {
            let Some(v) = v else { continue };
            let Some(truth) = m.get(&conn.client).copied().or(default) else {
                continue;
            };
            assert_eq!(
                conn.syn_cookie, v.cookie,
                "summary field follows the verdict"
            );
            match (v.cookie, truth) {
                (true, true) => a += 1,
                (true, false) => b += 1,
                (false, true) => c += 1,
                (false, false) => d += 1,
            }
        }
        eprintln!("syn_cookie {name}: tp {a} fp {b} fn {c} tn {d}");
        if name.starts_with("syncookies_always") {
            // Judged: every connection of the capture (22, all cookies by nstat).
            assert_eq!(a + c, 22, "{name}");
        }
        (tp, fp, fn_, tn) = (tp + a, fp + b, fn_ + c, tn + d);
    }
    let precision = f64::from(tp) / f64::from(tp + fp);
    let recall = f64::from(tp) / f64::from(tp + fn_);
    eprintln!(
        "syn_cookie overall: tp {tp} fp {fp} fn {fn_} tn {tn}: precision {precision:.3} recall {recall:.3}"
    );
    assert!(precision >= 0.99, "precision {precision}");
    assert!(recall >= 0.95, "recall {recall}");
    assert!(tn >= 400, "negatives judged: {tn}");
}

#[test]
fn syn_cookie_verdicts_on_cookie_only_captures() {
    // Without a flood, the structural signals alone: the TSval bits need a shared clock
    // (tcp_timestamps=2); with per-connection offsets (=1), timestamp clients with an MSS in
    // the cookie table leave no trace.
    for (name, min) in [
        ("syncookies_always_v4_ts2", 20),
        ("syncookies_always_v6_ts2", 20),
        ("syncookies_always_v4_ts1", 14),
        ("syncookies_always_v6_ts1", 14),
    ] {
        let o = run(&dir().join(format!("{name}.pcap")));
        let n = o
            .conns
            .iter()
            .filter(|(_, v)| v.is_some_and(|v| v.cookie))
            .count();
        assert!(n >= min, "{name}: {n} cookie verdicts");
        let f = of_kind(&o, FindingKind::SynCookies);
        assert_eq!(f.len(), 1, "{name}");
        assert_eq!(f[0].subject, truth(name)["server"].as_str().unwrap());
    }
}

#[test]
fn findings_per_capture() {
    // (capture, syn_flood expected, syn_cookies expected, time_wait_buildup host expected)
    let expect: [(&str, bool, bool, Option<&str>); 9] = [
        ("busy_normal_v4", false, false, None),
        ("syncookies_always_v4_ts1", false, true, None),
        ("syncookies_always_v4_ts2", false, true, None),
        ("syncookies_always_v6_ts1", false, true, None),
        ("syncookies_always_v6_ts2", false, true, None),
        ("synflood_cookies_v4", true, true, None),
        ("synflood_nocookies_v4", true, false, None),
        ("timewait_client_first_v4", false, false, Some("10.231.0.1")),
        ("timewait_server_first_v4", false, false, Some("10.231.0.2")),
    ];
    let mut score: HashMap<FindingKind, (u32, u32, u32)> = HashMap::new();
    for (name, flood, cookies, tw) in expect {
        let t = truth(name);
        let o = run(&dir().join(format!("{name}.pcap")));
        let server = t["server"].as_str().unwrap();
        for (k, want) in [
            (FindingKind::SynFlood, flood.then_some(server)),
            (FindingKind::SynCookies, cookies.then_some(server)),
            (FindingKind::TimeWaitBuildup, tw),
        ] {
            let got = of_kind(&o, k);
            let e = score.entry(k).or_default();
            let hit = want.is_some_and(|w| got.iter().any(|f| f.subject == w));
            e.0 += u32::from(hit);
            e.1 += got
                .iter()
                .filter(|f| Some(f.subject.as_str()) != want)
                .count() as u32;
            e.2 += u32::from(want.is_some() && !hit);
        }
        if flood {
            let f = of_kind(&o, FindingKind::SynFlood)[0];
            let b = &t["burst"];
            let (s, e) = (
                b["capture_window_epoch"][0].as_f64().unwrap_or(0.0),
                b["capture_window_epoch"][1].as_f64().unwrap_or(f64::MAX),
            );
            assert!(
                secs(f.first_time) >= s - 0.01 && secs(f.last_time) <= e + 0.01,
                "{name}: flood {}..{} outside burst {s}..{e}",
                secs(f.first_time),
                secs(f.last_time)
            );
            let Figures::SynFlood(x) = &f.figures else {
                unreachable!()
            };
            // ss -tan state syn-recv sampled every 0.25 s: the server's half-open queue.
            let ss_peak = t["server_syn_recv_samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s[1].as_u64().unwrap())
                .max()
                .unwrap();
            assert_eq!(u64::from(x.peak_half_open_stateful), ss_peak, "{name}");
            assert_eq!(
                u64::from(x.suspect_syns),
                b["spoofed_syns_in_capture"].as_u64().unwrap(),
                "{name}"
            );
            // A linear-counting estimate: within 2 % (+1).
            let hosts = b["distinct_spoofed_hosts"].as_u64().unwrap();
            assert!(
                x.distinct_sources.abs_diff(hosts) <= hosts / 50 + 1,
                "{name}: {} sources, truth {hosts}",
                x.distinct_sources
            );
            assert_eq!(
                u64::from(x.synack_retransmissions),
                t["synack_retransmissions_total"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(x.synack_backoff_s, [1, 2, 4], "{name}");
            assert!(!x.one_way);
            assert!(f.confidence >= 0.9, "{name}: {}", f.confidence);
        }
        if let Some(host) = tw {
            let f = of_kind(&o, FindingKind::TimeWaitBuildup)[0];
            let Figures::TimeWait(x) = &f.figures else {
                unreachable!()
            };
            let role = if name.contains("server_first") {
                "server_ns"
            } else {
                "client_ns"
            };
            let ss_peak = t["time_wait_peak"][role].as_u64().unwrap();
            // The capture sees every entry; ss samples every 0.25 s and may miss the last ones.
            let ours = u64::from(x.peak_time_wait);
            assert!(
                ours >= ss_peak && ours <= ss_peak + ss_peak / 10 + 5,
                "{name} {host}: peak {ours}, ss {ss_peak}"
            );
            if role == "server_ns" {
                assert_eq!(x.as_client, 0);
            } else {
                assert_eq!(x.as_server, 0);
                let (lo, hi) = (x.client_port_min.unwrap(), x.client_port_max.unwrap());
                assert!((40000..=40999).contains(&lo) && (40000..=40999).contains(&hi));
            }
        }
    }
    for (k, (tp, fp, fn_)) in &score {
        eprintln!("{}: tp {tp} fp {fp} fn {fn_}", k.as_str());
        assert_eq!((*fp, *fn_), (0, 0), "{}", k.as_str());
    }
}

fn corpus() -> Option<PathBuf> {
    common::shared_dir()
        .map(|p| p.join("corpus/stopddos"))
        .filter(|p| p.is_dir())
}

#[test]
fn stopddos_one_way_floods() {
    let dir = corpus().expect("shared corpus (set TCPLENS_SHARED)");
    // The ECE/CWR SYN flood: 9639 SYNs from as many sources to one port in 0.4 s, no reply
    // direction, capture ending with the burst.
    let o = run(&dir.join("pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng"));
    let f = of_kind(&o, FindingKind::SynFlood);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].subject, "10.10.10.10:30120");
    let Figures::SynFlood(x) = &f[0].figures else {
        unreachable!()
    };
    assert!(x.one_way && x.suspect_syns == 9639 && x.synacks == 0);
    assert!(f[0].confidence <= 0.75);
    assert!(o.findings.len() == 1);
    // SYN-ACK reflection toward a victim: no SYN seen, so no flood on any port and no
    // cookie verdicts; the low-rate SYN mix (at most 2 SYNs per second per port): nothing.
    for name in [
        "amp.TCP.reflection.SYNACK.pcap",
        "amp.TCP.syn.optionallyACK.optionallysamePort.pcapng",
    ] {
        let o = run(&dir.join(name));
        assert!(o.findings.is_empty(), "{name}: {:?}", o.findings);
    }
}
