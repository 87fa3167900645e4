//! Readers for the golden files `scripts/make-synthetic-captures.py --goldens` wrote from
//! tcpdump 4.99.3 and tshark 4.0 output (the tests never run those tools themselves).
#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};

/// The directory of the synthetic captures.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/synthetic")
}

/// A capture's path as a string.
pub fn path(name: &str) -> String {
    dir().join(name).to_str().unwrap().to_string()
}

/// How the tool ended: its exit status and its stderr lines (minus the "reading from" banner).
#[derive(Debug, Default)]
pub struct Trailer {
    pub exit: i32,
    pub stderr: Vec<String>,
}

fn trailer_line(t: &mut Trailer, line: &str) -> bool {
    if let Some(code) = line.strip_prefix("## exit=") {
        t.exit = code.parse().unwrap();
    } else if let Some(msg) = line.strip_prefix("## stderr=") {
        t.stderr.push(msg.to_string());
    } else {
        return false;
    }
    true
}

/// One packet as `tcpdump -# -n -tt --nano -xx` printed it.
#[derive(Debug)]
pub struct TcpdumpPacket {
    pub number: u64,
    /// Nanoseconds since the epoch; `None` when tcpdump printed no time.
    pub ts_ns: Option<i64>,
    /// The captured bytes from the `-xx` hex dump.
    pub data: Vec<u8>,
    /// The text after the number.
    pub text: String,
}

/// Parses `NAME.tcpdump.expected`.
pub fn tcpdump(name: &str) -> (Vec<TcpdumpPacket>, Trailer) {
    let text = std::fs::read_to_string(dir().join(format!("{name}.tcpdump.expected"))).unwrap();
    let mut packets: Vec<TcpdumpPacket> = Vec::new();
    let mut t = Trailer::default();
    for line in text.lines() {
        if trailer_line(&mut t, line) {
            continue;
        }
        if let Some(hex) = line.strip_prefix("\t0x") {
            let (_, bytes) = hex.split_once(":  ").unwrap();
            let p = packets.last_mut().unwrap();
            for group in bytes.split_whitespace() {
                for i in (0..group.len()).step_by(2) {
                    p.data
                        .push(u8::from_str_radix(&group[i..i + 2], 16).unwrap());
                }
            }
            continue;
        }
        let (number, rest) = line.trim_start().split_once("  ").unwrap();
        let first = rest.split(' ').next().unwrap();
        let ts_ns = first.split_once('.').and_then(|(s, f)| {
            let (s, f): (i64, i64) = (s.parse().ok()?, f.parse().ok()?);
            assert_eq!(
                first.len() - first.find('.').unwrap(),
                10,
                "--nano gives 9 digits"
            );
            Some(s * 1_000_000_000 + f)
        });
        packets.push(TcpdumpPacket {
            number: number.parse().unwrap(),
            ts_ns,
            data: Vec::new(),
            text: rest.to_string(),
        });
    }
    (packets, t)
}

/// One packet as tshark's `-T fields -e frame.number -e frame.time_epoch -e frame.interface_id
/// -e frame.cap_len -e frame.len` printed it.
#[derive(Debug)]
pub struct TsharkPacket {
    pub number: u64,
    pub ts_ns: Option<i64>,
    pub iface: Option<u32>,
    pub caplen: usize,
    pub origlen: u32,
}

/// Parses `NAME.tshark.expected`.
pub fn tshark(name: &str) -> (Vec<TsharkPacket>, Trailer) {
    let text = std::fs::read_to_string(dir().join(format!("{name}.tshark.expected"))).unwrap();
    let mut packets = Vec::new();
    let mut t = Trailer::default();
    for line in text.lines() {
        if trailer_line(&mut t, line) {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let ts_ns = (!f[1].is_empty()).then(|| {
            let (s, frac) = f[1].split_once('.').unwrap();
            assert_eq!(frac.len(), 9);
            s.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap()
        });
        packets.push(TsharkPacket {
            number: f[0].parse().unwrap(),
            ts_ns,
            iface: f[2].parse().ok(),
            caplen: f[3].parse().unwrap(),
            origlen: f[4].parse().unwrap(),
        });
    }
    (packets, t)
}

/// `damage.tsv`: (file, packet, offset) of every bad capture, as the generator placed them.
pub fn damage_manifest() -> Vec<(String, u64, u64)> {
    std::fs::read_to_string(dir().join("damage.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// Every capture in the directory (not the golden files).
pub fn captures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    v.sort();
    v
}
