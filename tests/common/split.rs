//! The two-thread file pipeline against the one-thread path (live capture's, `flush_each`):
//! both must write the same bytes and end the same way.

use clap::Parser;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use tcplens::cli::{Cli, Command as Sub};
use tcplens::config::Config;
use tcplens::pipeline::run_file;

/// The validated configuration of `tcplens read - FLAGS`.
pub fn read_config(flags: &[&str]) -> Config {
    let mut args = vec!["tcplens", "read", "-"];
    args.extend_from_slice(flags);
    let cli = Cli::try_parse_from(args).expect("flags");
    let Sub::Read { output, .. } = cli.command else {
        unreachable!("read")
    };
    Config::from_output_args(&output).expect("config")
}

/// Output and exit summary of one run; `one_thread` takes the live capture's path.
pub fn run(path: &Path, cfg: &Config, one_thread: bool) -> (Vec<u8>, String) {
    let cfg = Config {
        flush_each: one_thread,
        ..cfg.clone()
    };
    let mut out = Vec::new();
    let end = match run_file(path.to_str().unwrap(), &cfg, None, &mut out) {
        Ok(o) => format!("{:?} {:?}", o.stats, o.damage.map(|d| d.to_string())),
        Err(e) => format!("error {e:#}"),
    };
    (out, end)
}

/// Runs both paths and asserts the same bytes and the same end (`what` names the run in a
/// failure); returns the output.
pub fn compare(path: &Path, cfg: &Config, what: &str) -> Vec<u8> {
    let (split, split_end) = run(path, cfg, false);
    let (inline, inline_end) = run(path, cfg, true);
    assert_eq!(split_end, inline_end, "{what}");
    if split != inline {
        let at = split
            .iter()
            .zip(&inline)
            .position(|(a, b)| a != b)
            .unwrap_or(split.len().min(inline.len()));
        let show = |b: &[u8]| {
            String::from_utf8_lossy(&b[at.saturating_sub(200)..(at + 200).min(b.len())])
                .into_owned()
        };
        panic!(
            "{what}: the two-thread output differs from the one-thread output at byte {at}\n \
             two threads: {}\n one thread:  {}",
            show(&split),
            show(&inline)
        );
    }
    split
}

/// Two gen-pcap workloads written into `dir`, whose runs span many batches: connections end
/// all through them (closes, resets, the once-a-second sweep ending hundreds at once), the
/// second in pcapng with IPv6 and a SYN flood.
pub fn workloads(dir: &Path) -> Vec<PathBuf> {
    let args: [&[&str]; 2] = [
        &["--flows", "300", "--seed", "1"],
        &[
            "--flows",
            "150",
            "--seed",
            "7",
            "--pcapng",
            "--ipv6-share",
            "0.3",
            "--syn-flood",
            "200",
        ],
    ];
    args.iter()
        .enumerate()
        .map(|(i, args)| {
            let pcap = dir.join(format!("w{i}.cap"));
            let out = [OsStr::new("--out"), pcap.as_os_str()];
            super::gen_pcap(args.iter().map(OsStr::new).chain(out));
            pcap
        })
        .collect()
}
