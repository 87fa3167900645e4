//! The hand-written connection records (`--json` items and `--ndjson` `connection` lines) are
//! the bytes serde_json writes for the same `ConnRecord` / `ConnLine`, and parse to the same
//! JSON value, for every connection of every capture in testdata/ and the shared corpus.
//!
//! serde_json is the reference here: the published schema is generated from these serde types.

mod json_support;

use json_support::captures;
use std::ops::ControlFlow;
use tcplens::analysis::{AnalysisConfig, Analyzer};
use tcplens::capture::file::FileSource;
use tcplens::decode;
use tcplens::detect::{DetectConfig, Detectors};
use tcplens::report::json::{ConnRecord, ConnTracker};
use tcplens::report::ndjson::{ConnLine, write_connection};

/// Compares both writers on one connection record; returns a description of a difference.
fn compare(rec: &ConnRecord<'_>) -> Option<String> {
    let want = serde_json::to_vec(rec).unwrap();
    let mut got = Vec::new();
    rec.write_json(&mut got);
    let (w, g): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&want).unwrap(),
        serde_json::from_slice(&got).expect("hand-written --json record parses"),
    );
    if w != g || want != got {
        return Some(format!(
            "--json\n serde: {}\n  hand: {}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got)
        ));
    }
    let mut want = serde_json::to_vec(&ConnLine::new(rec)).unwrap();
    want.push(b'\n');
    let mut got = Vec::new();
    write_connection(&mut got, rec);
    let (w, g): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&want).unwrap(),
        serde_json::from_slice(&got).expect("hand-written --ndjson record parses"),
    );
    (w != g || want != got).then(|| {
        format!(
            "--ndjson\n serde: {}\n  hand: {}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got)
        )
    })
}

#[test]
fn hand_written_connection_records_match_serde_on_every_capture() {
    let mut records = 0;
    let mut files = 0;
    let mut failures = Vec::new();
    for path in captures() {
        let Ok(mut source) = FileSource::open(path.to_str().unwrap()) else {
            continue;
        };
        files += 1;
        let mut analyzer = Analyzer::new(AnalysisConfig::default());
        let mut det = Detectors::new(DetectConfig::default());
        let mut notes = ConnTracker::default();
        let mut check = |analyzer: &mut Analyzer, det: &mut Detectors, notes: &mut ConnTracker| {
            for mut c in analyzer.drain_ended() {
                det.connection(&mut c);
                let n = notes.take(c.id);
                records += 1;
                if let Some(diff) = compare(&ConnRecord::new(&c, &n)) {
                    failures.push(format!("{}: connection {}: {diff}", path.display(), c.id));
                }
            }
        };
        // Damaged captures still give their connections up to the damage.
        let _ = source.run(|frame| {
            if let Some(seg) = decode::decode(frame).segment {
                let info = analyzer.packet(&seg);
                det.packet(&seg, info);
                notes.packet(info);
                check(&mut analyzer, &mut det, &mut notes);
            }
            ControlFlow::Continue(())
        });
        det.end_of_capture();
        analyzer.finish();
        check(&mut analyzer, &mut det, &mut notes);
    }
    assert!(
        failures.is_empty(),
        "{} of {records} records differ:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
    assert!(
        files > 100 && records > 1000,
        "{files} files, {records} records"
    );
    eprintln!("{files} captures, {records} connection records compared");
}
