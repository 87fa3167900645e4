//! The TCP analysis, the detectors and every report over arbitrary sequences of TCP segments,
//! built directly from the input ([`segments`]: few endpoints, so connections collide; any
//! flags, numbers, options; times that go backwards and jump). Input: two bytes of limits
//! ([`analysis_config`]: small flow tables, short timers, low thresholds) then the segments.
//!
//! The segments go through `Analyzer` + `Detectors` directly (checking the flow-table bound
//! after every packet and the counts at the end), then through `AnalysisReport` in every mode
//! exactly as `pipeline::Run` feeds it: annotations, `--explain`, the summary tables, `--ndjson`
//! and `--json`, whose output must parse and agree with the analysis' counts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tcplens::analysis::{Analyzer, EndReason};
use tcplens::config::{Config, Mode};
use tcplens::decode::{Kind, Segment};
use tcplens::detect::Detectors;
use tcplens::report::analysis::AnalysisReport;
use tcplens::report::json::{InputCounts, InputRec};
use tcplens::stats::Stats;
use tcplens_fuzz::{analysis_config, assert_printable, segments};

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let cfg = analysis_config(a, b);
    let segs = segments(rest);
    direct(&cfg, &segs);
    let mut stats = Stats::default();
    for _ in &segs {
        stats.count(Kind::Tcp);
    }
    let counts = InputCounts {
        read: segs.len() as u64,
        matched: segs.len() as u64,
        first: segs.first().map(|s| s.ts),
        last: segs.last().map(|s| s.ts),
        ..InputCounts::default()
    };
    for (mode, explain) in [
        (Mode::Annotated, false),
        (Mode::Annotated, true),
        (Mode::Summary, false),
        (Mode::Ndjson, false),
        (Mode::Json, false),
    ] {
        let cfg = Config {
            mode,
            explain,
            ..cfg.clone()
        };
        let out = report(&cfg, &segs, &stats, counts);
        match mode {
            Mode::Json => check_json(&out, segs.len() as u64),
            Mode::Ndjson => check_ndjson(&out, segs.len() as u64),
            _ => assert_printable(&out),
        }
    }
});

/// Analyzer and detectors fed as `AnalysisReport::packet` feeds them, with the invariants.
fn direct(cfg: &Config, segs: &[Segment]) {
    let max = cfg.analysis.max_connections;
    let mut an = Analyzer::new(cfg.analysis);
    let mut det = Detectors::new(cfg.detect);
    let mut ended = Vec::new();
    for seg in segs {
        let info = an.packet(seg);
        assert_eq!(info.number, seg.number);
        assert!(info.from.is_some(), "every packet belongs to a side");
        assert!(info.transitions().count() <= 4);
        det.packet(seg, info);
        assert!(an.live() <= max, "{} live > max {max}", an.live());
        for mut c in an.drain_ended() {
            det.connection(&mut c);
            ended.push(c);
        }
        det.drain_fired().for_each(drop);
    }
    det.end_of_capture();
    an.finish();
    for mut c in an.drain_ended() {
        det.connection(&mut c);
        ended.push(c);
    }
    det.finish();
    assert_eq!(an.live(), 0);
    let st = *an.stats();
    assert_eq!(st.packets, segs.len() as u64);
    assert_eq!(
        ended.len() as u64,
        st.connections,
        "one summary per connection"
    );
    assert!(st.peak_live <= max as u64);
    let mut ids: Vec<u64> = ended.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    assert!(
        ids.iter().copied().eq(0..st.connections),
        "ids 0.. once each"
    );
    let sent: u64 = ended
        .iter()
        .map(|c| c.client_counts.packets + c.server_counts.packets)
        .sum();
    assert_eq!(
        sent + st.time_wait_packets,
        st.packets,
        "every packet counted on one side or after its record"
    );
    let n = |r: EndReason| ended.iter().filter(|c| c.end == r).count() as u64;
    assert_eq!(n(EndReason::Evicted), st.evicted);
    assert_eq!(n(EndReason::Idle), st.idle_expired);
    assert!(det.untracked() <= st.packets);
    for f in det.findings() {
        assert!((0.0..=1.0).contains(&f.confidence), "{f:?}");
        assert!(f.first_time <= f.last_time, "{f:?}");
    }
}

/// One run of the reports in `cfg.mode`, as `pipeline::Run` drives them.
fn report(cfg: &Config, segs: &[Segment], stats: &Stats, counts: InputCounts) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rep = AnalysisReport::new(cfg);
    let mut det = Detectors::new(cfg.detect);
    for seg in segs {
        rep.packet(&mut out, seg, &mut det).expect("a Vec");
    }
    let inputs = [InputRec::new("fuzz", None, None, counts, None)];
    rep.finish(&mut out, stats, &inputs, &mut det)
        .expect("a Vec");
    out
}

fn parse(line: &[u8]) -> Value {
    match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => panic!("invalid JSON ({e}):\n{}", String::from_utf8_lossy(line)),
    }
}

fn check_stats(stats: &Value, n: u64) {
    assert_eq!(stats["tcp_packets"].as_u64(), Some(n), "{stats}");
    assert_eq!(stats["packets"].as_u64(), Some(n), "{stats}");
}

fn check_json(out: &[u8], n: u64) {
    let doc = parse(out);
    check_stats(&doc["stats"], n);
    let conns = doc["connections"].as_array().expect("connections");
    assert_eq!(
        Some(conns.len() as u64),
        doc["stats"]["connections"].as_u64()
    );
    assert!(doc["findings"].is_array());
}

fn check_ndjson(out: &[u8], n: u64) {
    let text = std::str::from_utf8(out).expect("UTF-8");
    let (mut packets, mut conns, mut summary) = (0, 0, None);
    for line in text.lines() {
        let v = parse(line.as_bytes());
        match v["type"].as_str() {
            Some("packet") => packets += 1,
            Some("connection") => conns += 1,
            Some("finding") => {}
            Some("summary") => {
                assert!(summary.is_none(), "one summary");
                summary = Some(v);
            }
            t => panic!("record type {t:?}: {line}"),
        }
    }
    let summary = summary.expect("a summary record");
    // The summary record carries the statistics at its top level.
    check_stats(&summary, n);
    assert_eq!(packets, n);
    assert_eq!(Some(conns), summary["connections"].as_u64());
    assert!(text.ends_with('\n'));
}
