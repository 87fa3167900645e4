//! Golden-file tests: tcplens `--plain -#` on every entry of testdata/golden/LIST against the
//! output tcpdump 4.99.3 produced (scripts/make-goldens.sh), byte for byte up to the
//! application-layer suffix tcplens deliberately does not print (see tests/common). Also
//! checks that every packet libpcap calls TCP (NAME.tcp) is printed. Needs no tcpdump.

mod common;

use common::*;
use std::path::Path;

#[test]
fn golden_files_match() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let g = root.join("testdata/golden");
    let list = std::fs::read_to_string(g.join("LIST")).expect("testdata/golden/LIST");
    let mut failures = Vec::new();
    let mut entries = 0;
    for line in list.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(capture)) = (words.next(), words.next()) else {
            panic!("bad LIST line: {line}");
        };
        let flags: Vec<&str> = words.collect();
        entries += 1;
        let expected = std::fs::read_to_string(g.join(format!("{name}.out")))
            .unwrap_or_else(|e| panic!("{name}.out: {e} (run scripts/make-goldens.sh)"));
        let tcp: Vec<u64> = std::fs::read_to_string(g.join(format!("{name}.tcp")))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let mine = packets(&tcplens(&root.join(capture), &flags));
        let reference = packets(&expected);
        assert!(
            !mine.is_empty() || tcp.is_empty(),
            "{name}: tcplens printed nothing"
        );
        let (_, fails) = compare(&mine, &reference, &tcp);
        for f in fails {
            failures.push(format!("{name} ({capture} {}): {f}", flags.join(" ")));
        }
    }
    assert!(entries > 0, "LIST has no entries");
    assert!(
        failures.is_empty(),
        "{} golden differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn comparison_rule_rejects_missing_tcp_trailers() {
    let mine = "    1  00:00:00.000000 IP 1.2.3.4.1 > 5.6.7.8.2: Flags [R.], seq 1:9, ack 1, win 0, length 8";
    assert!(matches(mine, &format!("{mine}: HTTP")));
    assert!(matches(mine, &format!("{mine} 17177+ [1au] A? x. (56)")));
    assert!(!matches(mine, &format!("{mine} [RST abc]")));
    assert!(!matches(mine, &format!("{mine} [|tcp]")));
    assert!(!matches(&mine[..mine.len() - 1], mine));
}
