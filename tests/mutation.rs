//! Deterministic mutations of every good capture in testdata/ (corpus/, kernel/, synthetic/
//! minus the bad-* files): cuts at seeded offsets and seeded byte flips, each run through the
//! library pipeline as `tcplens read FILE --plain -# …` runs it. For every mutated file:
//!
//! - no panic, and reading never fails with anything but damage;
//! - damage names the file, the packet and the byte offset; the packet is the one after the
//!   last delivered, and the place is not before the mutation;
//! - nothing before the damage is lost: every packet whose record lies wholly before the
//!   mutated byte prints exactly the lines it printed unmutated;
//! - a cut is reported exactly: at the first record it cuts into (found here by walking the
//!   unmutated file's length fields, independently of the reader), or not at all when it falls
//!   between records;
//! - the counts balance: frames the reader delivered = packets counted = the sum over kinds,
//!   and the printed packets are the TCP kinds plus at most the malformed ones.

mod common;

use clap::Parser;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tcplens::capture::CaptureError;
use tcplens::cli::{Cli, Command};
use tcplens::config::Config;
use tcplens::decode::Kind;
use tcplens::pipeline::{Outcome, run_file};

/// Mutations of each kind per capture.
const CUTS: usize = 6;
const FLIPS: usize = 8;

/// xorshift64*: small, seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Rng {
        // FNV-1a of the file name: each capture gets its own fixed sequence.
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn captures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut v = Vec::new();
    for dir in ["corpus", "kernel", "synthetic"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap();
            if (name.ends_with(".pcap") || name.ends_with(".pcapng")) && !name.starts_with("bad-") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// One record (pcap) or block (pcapng) of an unmutated file, found from the length fields.
#[derive(Clone, Copy, Debug)]
struct Rec {
    start: usize,
    end: usize,
    /// Packets in records before this one.
    before: u64,
    packet: bool,
}

fn records(f: &[u8]) -> Vec<Rec> {
    let u32_at = |at: usize, be: bool| {
        let b: [u8; 4] = f[at..at + 4].try_into().unwrap();
        if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut v: Vec<Rec> = Vec::new();
    let mut push = |start: usize, len: usize, packet: bool| {
        let before = v.last().map_or(0, |r| r.before + u64::from(r.packet));
        v.push(Rec {
            start,
            end: start + len,
            before,
            packet,
        });
    };
    if f[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let (mut at, mut be) = (0, false);
        while at < f.len() {
            if f[at..at + 4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                be = f[at + 8] == 0x1a;
            }
            let len = u32_at(at + 4, be) as usize;
            let ty = u32_at(at, be);
            push(at, len, ty == 6 || ty == 3);
            at += len;
        }
    } else {
        let be = f[0] == 0xa1;
        let hdr = if f[..4] == [0x34, 0xcd, 0xb2, 0xa1] {
            24
        } else {
            16
        };
        push(0, 24, false);
        let mut at = 24;
        while at < f.len() {
            let len = hdr + u32_at(at + 8, be) as usize;
            push(at, len, true);
            at += len;
        }
    }
    assert_eq!(
        v.last().unwrap().end,
        f.len(),
        "records do not tile the file"
    );
    v
}

/// The record holding byte `pos`.
fn record_at(recs: &[Rec], pos: usize) -> Rec {
    *recs.iter().find(|r| r.start <= pos && pos < r.end).unwrap()
}

/// Output formats the mutations rotate through (all numbered, so lines map to packets), built
/// through the real command line so every default is the binary's.
fn formats() -> [Config; 4] {
    let cfg = |flags: &[&str]| {
        let mut args = vec!["tcplens", "read", "-", "--plain", "-#"];
        args.extend_from_slice(flags);
        let cli = Cli::try_parse_from(args).expect("flags");
        let Command::Read { output, .. } = cli.command else {
            unreachable!("read")
        };
        Config::from_output_args(&output).expect("config")
    };
    [
        cfg(&[]),
        cfg(&["-v", "-e", "-S"]),
        cfg(&["-tttt", "--nano"]),
        cfg(&["-ttt", "-vv"]),
    ]
}

struct Ran {
    outcome: Outcome,
    printed: BTreeMap<u64, String>,
}

fn run(path: &Path, cfg: &Config) -> Ran {
    let mut out = Vec::new();
    let outcome = run_file(path.to_str().unwrap(), cfg, None, &mut out)
        .unwrap_or_else(|e| panic!("{}: not damage but {e:#}", path.display()));
    let printed = common::packets(&String::from_utf8(out).expect("output is UTF-8"));
    Ran { outcome, printed }
}

fn count(o: &Outcome, kinds: &[Kind]) -> u64 {
    o.stats
        .by_kind
        .iter()
        .filter(|(k, _)| kinds.contains(k))
        .map(|(_, n)| n)
        .sum()
}

/// The checks every run must pass, mutated or not.
fn check_balance(what: &str, r: &Ran) {
    let o = &r.outcome;
    let by_kind: u64 = o.stats.by_kind.iter().map(|(_, n)| n).sum();
    assert_eq!(o.stats.packets, by_kind, "{what}: packets vs kinds");
    let delivered = o.input.as_ref().map_or(0, |i| i.packets);
    assert_eq!(o.stats.packets, delivered, "{what}: counted vs read");
    let tcp = count(
        o,
        &[
            Kind::Tcp,
            Kind::TcpTruncated,
            Kind::TcpBadHeader,
            Kind::TcpFragment,
        ],
    );
    let printed = r.printed.len() as u64;
    let malformed = count(o, &[Kind::Malformed]);
    assert!(
        tcp <= printed && printed <= tcp + malformed,
        "{what}: printed {printed} packets, {tcp} TCP, {malformed} malformed"
    );
    if let Some((&last, _)) = r.printed.last_key_value() {
        assert!(last <= o.stats.packets, "{what}: printed packet {last}");
    }
}

/// Damage must name the file, the packet after the last delivered and a byte offset inside it.
fn check_damage(what: &str, path: &Path, len: usize, r: &Ran) -> Option<(u64, u64)> {
    let e = r.outcome.damage.as_ref()?;
    let CaptureError::Damaged { packet, offset, .. } = e else {
        panic!("{what}: {e:?}");
    };
    let text = e.to_string();
    let place = format!("at packet {packet}, byte offset {offset}");
    assert!(
        text.starts_with(&format!("{}: ", path.display())) && text.ends_with(&place),
        "{what}: {text}"
    );
    assert_eq!(*packet, r.outcome.stats.packets + 1, "{what}: {text}");
    assert!(*offset <= len as u64, "{what}: {text}");
    Some((*packet, *offset))
}

/// The packets numbered up to `k` print the same lines as unmutated.
fn check_prefix(what: &str, k: u64, mutated: &Ran, original: &Ran) {
    assert!(
        mutated.outcome.stats.packets >= k,
        "{what}: only {} of the {k} packets before the mutation read",
        mutated.outcome.stats.packets
    );
    let before = |m: &BTreeMap<u64, String>| -> Vec<(u64, String)> {
        m.range(..=k).map(|(n, t)| (*n, t.clone())).collect()
    };
    assert_eq!(
        before(&mutated.printed),
        before(&original.printed),
        "{what}: output before the mutation changed"
    );
}

#[test]
fn cuts_and_flips_of_every_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let formats = formats();
    let mut runs = 0;
    let mut damaged = 0;
    let files = captures();
    assert!(files.len() >= 60, "only {} captures", files.len());
    for (i, path) in files.iter().enumerate() {
        let name = path.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        let recs = records(&bytes);
        let cfg = &formats[i % formats.len()];
        let original = run(path, cfg);
        check_balance(name, &original);
        assert!(original.outcome.damage.is_none(), "{name} is damaged");
        let mut rng = Rng::new(name);

        // Cuts: seeded offsets, plus one at a record boundary and one inside the last record.
        let mut cuts: Vec<usize> = (0..CUTS).map(|_| rng.below(bytes.len())).collect();
        let r = recs[rng.below(recs.len())];
        let last = recs[recs.len() - 1];
        cuts.extend([r.end, last.start + (last.end - last.start) / 2]);
        for cut in cuts {
            let what = format!("{name} cut at {cut} ({:?})", cfg.line);
            let p = tmp.path().join(format!("cut{cut}-{name}"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let m = run(&p, cfg);
            runs += 1;
            check_balance(&what, &m);
            let whole: Vec<&Rec> = recs.iter().filter(|r| r.end <= cut).collect();
            let k = whole.last().map_or(0, |r| r.before + u64::from(r.packet));
            check_prefix(&what, k, &m, &original);
            match check_damage(&what, &p, cut, &m) {
                None => {
                    assert!(
                        cut > 0 && whole.last().unwrap().end == cut,
                        "{what}: no damage"
                    );
                    assert_eq!(m.outcome.stats.packets, k, "{what}");
                }
                Some((packet, offset)) => {
                    damaged += 1;
                    let into = record_at(&recs, cut);
                    // A cut inside the file header (or first section header) is at offset 0.
                    let want = if into.start == 0 {
                        0
                    } else {
                        into.start as u64
                    };
                    assert_eq!((packet, offset), (k + 1, want), "{what}");
                }
            }
        }

        // Byte flips: a seeded position and mask, and one in a record's length field.
        let mut flips: Vec<usize> = (0..FLIPS - 1).map(|_| rng.below(bytes.len())).collect();
        if recs.len() > 1 {
            let r = recs[1 + rng.below(recs.len() - 1)];
            let length_field = if bytes[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                4
            } else {
                8
            };
            flips.push(r.start + length_field + rng.below(4));
        }
        for pos in flips {
            let mask = (rng.below(255) + 1) as u8;
            let what = format!("{name} byte {pos} ^ {mask:#04x} ({:?})", cfg.line);
            let mut b = bytes.clone();
            b[pos] ^= mask;
            let p = tmp.path().join(format!("flip{pos}-{name}"));
            std::fs::write(&p, &b).unwrap();
            let m = run(&p, cfg);
            runs += 1;
            check_balance(&what, &m);
            let hit = record_at(&recs, pos);
            check_prefix(&what, hit.before, &m, &original);
            if let Some((packet, offset)) = check_damage(&what, &p, b.len(), &m) {
                damaged += 1;
                assert!(packet > hit.before, "{what}: damage at packet {packet}");
                assert!(
                    offset >= hit.start as u64,
                    "{what}: damage at offset {offset}"
                );
            }
        }
    }
    // The sample must reach damage often enough to mean something.
    assert!(
        damaged * 4 > runs,
        "{damaged} of {runs} mutated files were damaged"
    );
}

/// The walker the test trusts agrees with the reader on the unmutated files.
#[test]
fn record_walker_counts_what_the_reader_reads() {
    for path in captures() {
        let bytes = std::fs::read(&path).unwrap();
        let recs = records(&bytes);
        let packets = recs.iter().filter(|r| r.packet).count() as u64;
        let r = run(&path, &formats()[0]);
        assert_eq!(r.outcome.stats.packets, packets, "{}", path.display());
    }
}
