//! Shared by the json_* tests: finding captures and the shared directory, running tcplens.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's shared directory (CONTRACT.md, corpus): `TCPLENS_SHARED`, else the first
/// `shared` directory beside the crate or beside one of its ancestors.
pub fn shared_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TCPLENS_SHARED").map(PathBuf::from) {
        return p.is_dir().then_some(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .skip(1)
        .map(|a| a.join("shared"))
        .find(|p| p.join("CONTRACT.md").is_file())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        {
            out.push(p);
        }
    }
}

/// Every capture in testdata/ and, when present, the shared corpus.
pub fn captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata"),
        &mut out,
    );
    if let Some(s) = shared_dir() {
        walk(&s.join("corpus"), &mut out);
    }
    out
}

/// Runs `tcplens read FILE ARGS…`; returns the exit status and standard output.
pub fn run_tcplens(file: &Path, args: &[&str]) -> (i32, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_tcplens"))
        .arg("read")
        .arg(file)
        .args(args)
        .env("TZ", "GMT0")
        .output()
        .expect("run tcplens");
    (out.status.code().unwrap_or(-1), out.stdout)
}
