//! Filter parity: `tcplens read FILE EXPR --plain -#` prints the same TCP packets, with the same
//! text and numbers, as `tcpdump -# -n -r FILE EXPR`, for a list of expressions over the
//! shipped captures. Skipped, with a notice, when tcpdump is missing.

#![cfg(feature = "live")]

mod common;

use common::*;
use std::path::{Path, PathBuf};

const EXPRESSIONS: &[&str] = &[
    "tcp port 53",
    "host 192.168.1.11 and tcp port 53",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0",
    "ip6",
    "vlan",
    "net 10.231.0.0/16 and not port 22",
    "src port 80 or dst port 80",
    "tcp and greater 100",
    "less 80",
];

fn shipped_captures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files = Vec::new();
    for dir in ["corpus", "kernel"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        files.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng")),
        );
    }
    files.sort();
    files
}

#[test]
fn filters_match_tcpdump() {
    let Some(td) = tcpdump() else {
        eprintln!("filter_parity: skipped (tcpdump not found)");
        return;
    };
    let files = shipped_captures();
    assert!(files.len() > 20, "shipped captures missing");
    let mut failures = Vec::new();
    let mut compared = 0;
    for expr in EXPRESSIONS {
        for f in &files {
            let out = std::process::Command::new(&td)
                .args(["-#", "-n", "-r"])
                .arg(f)
                .arg(expr)
                .env("TZ", "GMT0")
                .output()
                .expect("run tcpdump");
            if !out.status.success() && out.stdout.is_empty() {
                // libpcap refuses the expression for this link type; so must tcplens.
                let mine = std::process::Command::new(env!("CARGO_BIN_EXE_tcplens"))
                    .arg("read")
                    .arg(f)
                    .args(["--plain", expr])
                    .output()
                    .expect("run tcplens");
                assert_eq!(mine.status.code(), Some(1), "{} {expr}", f.display());
                continue;
            }
            let reference = packets(&String::from_utf8_lossy(&out.stdout));
            let mine = packets(&tcplens(f, &[expr]));
            let tcp = libpcap_tcp_numbers_filtered(&td, f, Some(expr));
            let (n, fails) = compare(&mine, &reference, &tcp);
            compared += n;
            failures.extend(
                fails
                    .into_iter()
                    .map(|x| format!("{} \"{expr}\": {x}", f.display())),
            );
        }
    }
    eprintln!(
        "filter_parity: {compared} TCP packets compared, {} differ",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
