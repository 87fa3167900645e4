//! Damaged, cut-short and hostile input: one clear error naming the file, the packet number and
//! the byte offset of the damaged record; every packet before it delivered; exit status 2;
//! never a panic and never an allocation sized by an untrusted length.
//!
//! Truth: testdata/synthetic/damage.tsv (where the generator put the damage) and what tcpdump
//! 4.99.3 printed before giving up on each file (*.tcpdump.expected).

mod support;

use assert_cmd::Command;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ops::ControlFlow;
use support::golden;
use tcplens::capture::CaptureError;
use tcplens::capture::file::FileSource;

/// Records the largest single allocation each thread makes, so a test can show that a length
/// field claiming gigabytes did not turn into an allocation.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Frames (number, time, bytes) up to the damage, and the error.
type Read = (Vec<(u64, i64, Vec<u8>)>, Option<CaptureError>);

fn read_bytes(name: &str, bytes: Vec<u8>) -> Read {
    let mut src = match FileSource::from_reader(name, Box::new(std::io::Cursor::new(bytes))) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut frames = Vec::new();
    let r = src.run(|f| {
        frames.push((f.number, f.ts.0, f.data.to_vec()));
        ControlFlow::Continue(())
    });
    (frames, r.err())
}

fn read_path(path: &str) -> Read {
    let mut src = match FileSource::open(path) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut frames = Vec::new();
    let r = src.run(|f| {
        frames.push((f.number, f.ts.0, f.data.to_vec()));
        ControlFlow::Continue(())
    });
    (frames, r.err())
}

/// What each damage report must say (tcplens' own wording; the place comes from damage.tsv).
const DETAILS: &[(&str, &str)] = &[
    (
        "bad-block-huge.pcapng",
        "block length 4294967280 exceeds the maximum of 16777216",
    ),
    (
        "bad-block-len-small.pcapng",
        "block length 8 is less than 32",
    ),
    (
        "bad-block-len-unaligned.pcapng",
        "block length 86 is not a multiple of 4",
    ),
    (
        "bad-block-trailer.pcapng",
        "block lengths differ (104 at the start, 108 at the end)",
    ),
    (
        "bad-caplen-over-max.pcap",
        "captured length 300000 exceeds the maximum of 262144",
    ),
    (
        "bad-caplen-past-eof.pcap",
        "file ends inside a record (88 of 1416 bytes)",
    ),
    (
        "bad-empty.pcap",
        "empty input, not a pcap or pcapng capture",
    ),
    (
        "bad-epb-caplen-over-block.pcapng",
        "captured length 2000 does not fit in its 88-byte block",
    ),
    (
        "bad-epb-caplen-over-snaplen.pcapng",
        "captured length 74 exceeds the interface's snapshot length of 64",
    ),
    (
        "bad-epb-undeclared-iface.pcapng",
        "packet for interface 1, but the section declares 1 interface",
    ),
    (
        "bad-huge-caplen.pcap",
        "captured length 4294967280 exceeds the maximum of 262144",
    ),
    (
        "bad-iface-from-previous-section.pcapng",
        "packet for interface 1, but the section declares 1 interface",
    ),
    (
        "bad-not-a-capture.pcap",
        "not a pcap or pcapng capture (first bytes 54 68 69 73)",
    ),
    (
        "bad-section-bom.pcapng",
        "section header with a bad byte-order magic",
    ),
    (
        "bad-short-header.pcap",
        "pcap file header cut short (10 of 24 bytes)",
    ),
    (
        "bad-short-header.pcapng",
        "pcapng section header cut short (20 of 28 bytes)",
    ),
    (
        "bad-spb-no-idb.pcapng",
        "simple packet block before any interface description",
    ),
    (
        "bad-truncated-data.pcap",
        "file ends inside a record (46 of 70 bytes)",
    ),
    (
        "bad-truncated-header.pcap",
        "file ends inside a record (7 of 16 bytes)",
    ),
    (
        "bad-truncated.pcapng",
        "file ends inside a block (48 of 88 bytes)",
    ),
];

fn detail_of(name: &str) -> &'static str {
    DETAILS.iter().find(|(n, _)| *n == name).unwrap().1
}

#[test]
fn every_bad_capture_is_in_the_table() {
    let bad: Vec<String> = golden::captures()
        .into_iter()
        .filter(|n| n.starts_with("bad-"))
        .collect();
    let manifest: Vec<String> = golden::damage_manifest().into_iter().map(|m| m.0).collect();
    let table: Vec<&str> = DETAILS.iter().map(|d| d.0).collect();
    assert_eq!(bad, manifest);
    assert_eq!(bad, table);
}

/// The error names the file, the packet and the byte offset of the damaged record's header;
/// everything before it is delivered exactly as tcpdump printed it; tcpdump also gave up there.
#[test]
fn damage_is_reported_where_it_is() {
    for (name, packet, offset) in golden::damage_manifest() {
        let path = golden::path(&name);
        let (frames, err) = read_path(&path);
        let err = err.unwrap_or_else(|| panic!("{name}: no error"));
        assert!(err.is_damage(), "{name}: {err:?}");
        let want = format!(
            "{path}: {} at packet {packet}, byte offset {offset}",
            detail_of(&name)
        );
        assert_eq!(err.to_string(), want, "{name}");
        match &err {
            CaptureError::Damaged {
                packet: p,
                offset: o,
                ..
            } => assert_eq!((*p, *o), (packet, offset), "{name}"),
            e => panic!("{name}: {e:?}"),
        }

        let (tcpdump, trailer) = golden::tcpdump(&name);
        assert_ne!(trailer.exit, 0, "{name}: tcpdump found it bad too");
        assert_eq!(
            frames.len() as u64,
            packet - 1,
            "{name}: frames before damage"
        );
        assert_eq!(
            tcpdump.len(),
            frames.len(),
            "{name}: tcpdump printed as many"
        );
        for ((number, ts, data), t) in frames.iter().zip(&tcpdump) {
            assert_eq!(*number, t.number, "{name}");
            assert_eq!(Some(*ts), t.ts_ns, "{name} packet {number}");
            assert_eq!(*data, t.data, "{name} packet {number}");
        }
    }
}

/// Lengths claiming gigabytes are rejected from the header: no allocation near their size.
#[test]
fn huge_lengths_are_not_allocated() {
    for name in ["bad-huge-caplen.pcap", "bad-block-huge.pcapng"] {
        let bytes = std::fs::read(golden::path(name)).unwrap();
        LARGEST.with(|m| m.set(0));
        let (frames, err) = read_bytes(name, bytes);
        let largest = LARGEST.with(|m| m.get());
        assert!(err.unwrap().is_damage());
        assert_eq!(frames.len(), 2);
        // The reader's 64 KiB starting buffer is the largest thing it needs here.
        assert!(largest <= 1 << 16, "{name}: allocated {largest} bytes");
    }
}

/// Every possible cut of a good file: whole records before the cut are delivered, and unless
/// the cut falls between records, the error points at the first record it cuts into. Record
/// boundaries are found here by walking the lengths, independently of the reader.
#[test]
fn every_truncation_point() {
    for name in ["tcp-le-ns.pcap", "tcp-be-us.pcap", "two-interfaces.pcapng"] {
        let full = std::fs::read(golden::path(name)).unwrap();
        let blocks = boundaries(&full);
        let (all, err) = read_bytes(name, full.clone());
        assert!(err.is_none());
        for cut in 0..full.len() {
            let (frames, err) = read_bytes(name, full[..cut].to_vec());
            // Blocks wholly before the cut, and the packets among them.
            let whole: Vec<&(usize, usize, bool)> =
                blocks.iter().filter(|(s, l, _)| s + l <= cut).collect();
            let packets = whole.iter().filter(|b| b.2).count();
            assert_eq!(frames, all[..packets], "{name} cut at {cut}");
            let at = whole.last().map_or(0, |(s, l, _)| s + l);
            if cut == at && cut > 0 {
                assert!(err.is_none(), "{name} cut at {cut}: {err:?}");
                continue;
            }
            match err {
                Some(CaptureError::Damaged { packet, offset, .. }) => {
                    assert_eq!(packet, packets as u64 + 1, "{name} cut at {cut}");
                    // A cut inside the file header is reported at offset 0.
                    let first = blocks[0].1;
                    let want = if cut < first { 0 } else { at };
                    assert_eq!(offset, want as u64, "{name} cut at {cut}");
                }
                e => panic!("{name} cut at {cut}: {e:?}"),
            }
        }
    }
}

/// (start, length, is a packet) of every record or block, from the length fields.
fn boundaries(f: &[u8]) -> Vec<(usize, usize, bool)> {
    let u32_at = |at: usize, be: bool| {
        let b: [u8; 4] = f[at..at + 4].try_into().unwrap();
        if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut v = Vec::new();
    if f[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let (mut at, mut be) = (0, false);
        while at < f.len() {
            if f[at..at + 4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                be = f[at + 8] == 0x1a;
            }
            let len = u32_at(at + 4, be) as usize;
            let ty = u32_at(at, be);
            v.push((at, len, ty == 6 || ty == 3));
            at += len;
        }
    } else {
        let be = f[0] == 0xa1;
        v.push((0, 24, false));
        let mut at = 24;
        while at < f.len() {
            let len = 16 + u32_at(at + 8, be) as usize;
            v.push((at, len, true));
            at += len;
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes behind a valid magic never panic, and any damage lies inside the input.
    #[test]
    fn random_bytes_never_panic(magic in 0usize..4, rest in proptest::collection::vec(any::<u8>(), 0..600)) {
        let heads: [&[u8]; 4] = [
            &[0xd4, 0xc3, 0xb2, 0xa1],
            &[0xa1, 0xb2, 0x3c, 0x4d],
            &[0x0a, 0x0d, 0x0d, 0x0a],
            &[0x34, 0xcd, 0xb2, 0xa1],
        ];
        let mut bytes = heads[magic].to_vec();
        bytes.extend_from_slice(&rest);
        let len = bytes.len() as u64;
        let (frames, err) = read_bytes("random", bytes);
        if let Some(CaptureError::Damaged { packet, offset, .. }) = err {
            prop_assert!(offset <= len);
            prop_assert_eq!(packet, frames.len() as u64 + 1);
        }
    }

    /// Good captures with a few bytes changed never panic; frames keep their numbering.
    #[test]
    fn mutated_captures_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let name = ["tcp-le-us.pcap", "tcp-be-ns.pcapng", "two-interfaces.pcapng", "spb-tsoffset.pcapng"][which];
        let mut bytes = std::fs::read(golden::path(name)).unwrap();
        for (i, b) in &edits {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        let len = bytes.len() as u64;
        LARGEST.with(|m| m.set(0));
        let (frames, err) = read_bytes(name, bytes);
        let largest = LARGEST.with(|m| m.get());
        prop_assert!(largest <= 1 << 16, "largest allocation {} bytes, {:?}", largest, err);
        for (i, f) in frames.iter().enumerate() {
            prop_assert_eq!(f.0, i as u64 + 1);
        }
        if let Some(CaptureError::Damaged { packet, offset, .. }) = err {
            prop_assert!(offset <= len);
            prop_assert_eq!(packet, frames.len() as u64 + 1);
        }
    }
}

// ---------------------------------------------------------------- through the binary

fn tcplens() -> Command {
    Command::cargo_bin("tcplens").unwrap()
}

/// Exit status 2, one `tcplens:` error line, and the packets before the damage printed with
/// the numbers tcpdump gave them.
#[test]
fn binary_exits_2_and_prints_everything_before_the_damage() {
    for (name, packet, offset) in golden::damage_manifest() {
        let path = golden::path(&name);
        let out = tcplens()
            .args(["read", &path, "--plain", "-#"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("tcplens:"))
            .collect();
        let want = format!(
            "tcplens: {path}: {} at packet {packet}, byte offset {offset}",
            detail_of(&name)
        );
        assert_eq!(errors, [want.as_str()], "{name}");
        let (tcpdump, _) = golden::tcpdump(&name);
        let numbers: Vec<u64> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        // Every TCP packet tcpdump printed before the damage, cut ones ("[|tcp]") included.
        let want: Vec<u64> = tcpdump
            .iter()
            .filter(|t| t.text.contains("Flags [") || t.text.contains("[|tcp]"))
            .map(|t| t.number)
            .collect();
        assert_eq!(numbers, want, "{name}");
    }
}

#[test]
fn binary_reads_damaged_stdin() {
    let bytes = std::fs::read(golden::path("bad-truncated-data.pcap")).unwrap();
    let out = tcplens()
        .args(["read", "-", "--plain", "-#"])
        .write_stdin(bytes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "tcplens: -: file ends inside a record (46 of 70 bytes) at packet 5, byte offset 362"
        ),
        "{stderr}"
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 4);
}

/// A pipe written a byte at a time: the binary reads it all, exit 0.
#[test]
fn binary_reads_a_slow_pipe() {
    use std::io::Write;
    use std::process::{Command as Std, Stdio};
    let bytes = std::fs::read(golden::path("two-interfaces.pcapng")).unwrap();
    let mut child = Std::new(assert_cmd::cargo::cargo_bin!("tcplens"))
        .args(["read", "-", "--plain", "-#"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for b in bytes {
            stdin.write_all(&[b]).unwrap();
            stdin.flush().unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 20);
}

#[test]
fn binary_missing_file_exits_1() {
    let out = tcplens()
        .args(["read", "/nonexistent/no-such.pcap", "--plain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    // One line, the cause said once.
    assert_eq!(
        stderr,
        "tcplens: /nonexistent/no-such.pcap: No such file or directory (os error 2)\n"
    );
}

/// Usage errors, bad option values, a filter libpcap rejects and unreadable input: exit 1,
/// with a message and no output. Asking for help or the version is not an error.
#[test]
fn binary_usage_and_setup_errors_exit_1() {
    let file = golden::path("tcp-le-us.pcap");
    let dir = golden::dir();
    let cases: &[(&[&str], &str)] = &[
        (&["read", &file, "--bogus"], "unexpected argument '--bogus'"),
        (&["read"], "<FILE>"),
        (&["read", &file, "--plain", "--json"], "cannot be used with"),
        (&["read", &file, "-c", "x"], "invalid value 'x'"),
        // tcpdump: "invalid packet count 0"; reading one packet instead would be a surprise.
        (&["read", &file, "-c", "0"], "invalid packet count 0"),
        (&["read", &file, "-tttttt"], "at most 5"),
        (&["read", &file, "tcp", "and", "and"], "syntax error"),
        (
            &["read", &file, "--plain", "ether", "proto", "nonsense"],
            "filter expression",
        ),
        (&["read", dir.to_str().unwrap()], "is a directory"),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, message) in cases {
        let out = tcplens().args(*args).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    for args in [&["--help"][..], &["--version"], &["read", "--help"]] {
        let out = tcplens().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

/// Empty standard input is no capture: damage at packet 1, offset 0, exit 2.
#[test]
fn binary_empty_stdin_exits_2() {
    let out = tcplens()
        .args(["read", "-", "--plain"])
        .write_stdin(Vec::<u8>::new())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "tcplens: -: empty input, not a pcap or pcapng capture at packet 1, byte offset 0"
        ),
        "{stderr}"
    );
}

/// Legal oddities tcpdump reads to the end are not damage.
#[test]
fn binary_exits_0_on_odd_but_legal_captures() {
    for name in [
        "odd-zero-length.pcap",
        "odd-caplen-over-snaplen.pcap",
        "odd-extra-blocks.pcapng",
    ] {
        let (_, trailer) = golden::tcpdump(name);
        assert_eq!(trailer.exit, 0);
        tcplens()
            .args(["read", &golden::path(name), "--plain"])
            .assert()
            .code(0);
    }
}
