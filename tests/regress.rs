//! Inputs the fuzzers found (testdata/regress/, described in its LIST): each runs through the
//! library pipeline under every printing flag combination without a panic, and the LIST
//! entries print what tcpdump 4.99.3 printed for them (NAME.out, scripts/fuzz.sh
//! regress-goldens), up to the application-layer suffix tcplens does not print.

mod common;

use clap::Parser;
use common::{compare, packets, tcplens};
use std::path::{Path, PathBuf};
use tcplens::cli::{Cli, Command};
use tcplens::config::{Config, LineFormat, TimeFormat};
use tcplens::pipeline::run_file;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/regress")
}

/// Every -v level, -e, -S, --nano and -t format: 192 configurations.
fn every_format() -> Vec<Config> {
    let times = [
        TimeFormat::Clock,
        TimeFormat::None,
        TimeFormat::Epoch,
        TimeFormat::Delta,
        TimeFormat::Date,
        TimeFormat::SinceFirst,
    ];
    // Every other setting as the command line's defaults give it.
    let cli = Cli::try_parse_from(["tcplens", "read", "-", "--plain"]).expect("flags");
    let Command::Read { output, .. } = cli.command else {
        unreachable!("read")
    };
    let base = Config::from_output_args(&output).expect("config");
    let mut v = Vec::new();
    for bits in 0..32u8 {
        for time in times {
            v.push(Config {
                line: LineFormat {
                    time,
                    nano: bits & 4 != 0,
                    absolute: bits & 8 != 0,
                    number: true,
                    link_header: bits & 16 != 0,
                    verbose: bits & 3,
                },
                ..base.clone()
            });
        }
    }
    v
}

#[test]
fn regression_inputs_never_panic() {
    let mut captures: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    captures.sort();
    assert!(captures.len() >= 4, "{captures:?}");
    for path in &captures {
        let path = path.to_str().unwrap();
        for cfg in every_format() {
            let mut out = Vec::new();
            let outcome = run_file(path, &cfg, None, &mut out).unwrap();
            assert!(outcome.damage.is_none(), "{path}: {:?}", outcome.damage);
            // Every frame in these files is TCP by its IP header: one numbered line each.
            let text = String::from_utf8(out).unwrap();
            let numbered = text.lines().filter(|l| l.get(5..7) == Some("  ")).count() as u64;
            assert_eq!(numbered, outcome.stats.packets, "{path} {:?}", cfg.line);
        }
    }
}

#[test]
fn regression_inputs_print_as_tcpdump() {
    let list = std::fs::read_to_string(dir().join("LIST")).unwrap();
    let mut entries = 0;
    let mut failures = Vec::new();
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(capture)) = (words.next(), words.next()) else {
            panic!("bad LIST line: {line}");
        };
        let flags: Vec<&str> = words.collect();
        entries += 1;
        let expected = std::fs::read_to_string(dir().join(format!("{name}.out")))
            .unwrap_or_else(|e| panic!("{name}.out: {e} (run scripts/fuzz.sh regress-goldens)"));
        let reference = packets(&expected);
        let mine = packets(&tcplens(&dir().join(capture), &flags));
        assert_eq!(
            mine.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>(),
            "{name}: packets printed"
        );
        failures.extend(compare(&mine, &reference, &[]).1);
    }
    assert!(entries >= 6, "LIST has {entries} entries");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
