//! The capture stage on good captures, checked against what tcpdump 4.99.3 and tshark 4.0
//! printed for the same files (testdata/synthetic/*.expected, made by
//! scripts/make-synthetic-captures.py --goldens).

mod support;

use std::io::{self, Read};
use std::ops::ControlFlow;
use support::golden;
use tcplens::capture::file::{FileSource, Format};
use tcplens::capture::{CaptureError, Linktype, Precision, Timestamp};

/// A frame copied out of the reader's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owned {
    number: u64,
    ts: i64,
    linktype: Linktype,
    iface: u32,
    origlen: u32,
    data: Vec<u8>,
}

fn collect(src: &mut FileSource) -> (Vec<Owned>, Result<(), CaptureError>) {
    let mut frames = Vec::new();
    let r = src.run(|f| {
        frames.push(Owned {
            number: f.number,
            ts: f.ts.0,
            linktype: f.linktype,
            iface: f.iface,
            origlen: f.origlen,
            data: f.data.to_vec(),
        });
        ControlFlow::Continue(())
    });
    (frames, r)
}

fn read_ok(name: &str) -> (Vec<Owned>, FileSource) {
    let mut src = FileSource::open(&golden::path(name)).unwrap();
    let (frames, r) = collect(&mut src);
    r.unwrap_or_else(|e| panic!("{name}: {e}"));
    (frames, src)
}

/// A byte source that hands out at most `chunk` bytes per read, and reports `Interrupted`
/// before every other read, like a slow pipe.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    interrupt: bool,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = self.chunk.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn trickle(data: Vec<u8>, chunk: usize) -> Box<dyn Read + Send> {
    Box::new(Trickle {
        data,
        pos: 0,
        chunk,
        interrupt: false,
    })
}

/// Captures tcpdump reads to the end: every frame must match its number, time and bytes.
const TCPDUMP_READABLE: &[&str] = &[
    "tcp-le-us.pcap",
    "tcp-le-ns.pcap",
    "tcp-be-us.pcap",
    "tcp-be-ns.pcap",
    "tcp6-le-ns.pcap",
    "tcp-raw-be-us.pcap",
    "tcp-modified.pcap",
    "tcp-be-ns.pcapng",
    "spb-tsoffset.pcapng",
    "odd-caplen-over-snaplen.pcap",
    "odd-zero-length.pcap",
    "odd-extra-blocks.pcapng",
];

#[test]
fn frames_match_tcpdump() {
    for name in TCPDUMP_READABLE {
        let (want, trailer) = golden::tcpdump(name);
        assert_eq!(trailer.exit, 0, "{name}: tcpdump read it to the end");
        let (got, _) = read_ok(name);
        assert_eq!(got.len(), want.len(), "{name}: packet count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.number, w.number, "{name}");
            if let Some(ts) = w.ts_ns {
                assert_eq!(g.ts, ts, "{name} packet {}: timestamp", w.number);
            }
            assert_eq!(g.data, w.data, "{name} packet {}: captured bytes", w.number);
        }
    }
}

/// Captures tshark reads the same way libpcap does (tshark gives interface ids and lengths).
const TSHARK_READABLE: &[&str] = &[
    "tcp-le-us.pcap",
    "tcp-le-ns.pcap",
    "tcp-be-us.pcap",
    "tcp-be-ns.pcap",
    "tcp6-le-ns.pcap",
    "tcp-raw-be-us.pcap",
    "tcp-modified.pcap",
    "tcp-be-ns.pcapng",
    "two-interfaces.pcapng",
    "spb-tsoffset.pcapng",
    "odd-zero-length.pcap",
];

#[test]
fn frames_match_tshark() {
    for name in TSHARK_READABLE {
        let (want, trailer) = golden::tshark(name);
        assert_eq!(trailer.exit, 0, "{name}: tshark read it to the end");
        let (got, src) = read_ok(name);
        assert_eq!(got.len(), want.len(), "{name}: packet count");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.number, w.number, "{name}");
            if let Some(ts) = w.ts_ns {
                assert_eq!(g.ts, ts, "{name} packet {}: timestamp", w.number);
            }
            assert_eq!(g.iface, w.iface.unwrap_or(0), "{name} packet {}", w.number);
            assert_eq!(g.data.len(), w.caplen, "{name} packet {}: caplen", w.number);
            assert_eq!(g.origlen, w.origlen, "{name} packet {}: origlen", w.number);
        }
        let info = src.info();
        assert_eq!(info.packets, want.len() as u64, "{name}");
        let bytes: usize = want.iter().map(|w| w.caplen).sum();
        assert_eq!(info.bytes, bytes as u64, "{name}");
        let times: Vec<i64> = want.iter().filter_map(|w| w.ts_ns).collect();
        assert_eq!(info.first_ts.map(|t| t.0), times.first().copied(), "{name}");
        if want.last().unwrap().ts_ns.is_some() {
            assert_eq!(info.last_ts.map(|t| t.0), times.last().copied(), "{name}");
        }
    }
}

/// tcpdump refuses files whose interfaces differ in link type or whose sections differ in byte
/// order; tshark reads them, and so must we.
#[test]
fn two_interfaces_two_sections() {
    let (want, _) = golden::tshark("two-interfaces.pcapng");
    let (tcpdump, trailer) = golden::tcpdump("two-interfaces.pcapng");
    assert!(tcpdump.is_empty() && trailer.exit == 1);
    let (got, src) = read_ok("two-interfaces.pcapng");
    assert_eq!(got.len(), 20);
    // Section 1: even packets on the Ethernet interface 0, odd on the RAW interface 1; section 2
    // (big-endian): all on its own RAW interface 0.
    for (g, w) in got.iter().zip(&want) {
        let raw = w.iface == Some(1) || w.number > 10;
        let lt = if raw {
            Linktype::RAW
        } else {
            Linktype::ETHERNET
        };
        assert_eq!(g.linktype, lt, "packet {}", g.number);
    }
    let info = src.info();
    assert_eq!(info.format, Format::Pcapng);
    assert_eq!(info.linktypes, vec![Linktype::ETHERNET, Linktype::RAW]);
    // Interface snaplens 262144, 65535 and 0 (= no limit).
    assert_eq!(info.snaplen, Some(0));
    assert_eq!(src.precision(), Precision::Nano);
}

#[test]
fn spb_takes_min_of_origlen_and_snaplen_and_the_offset_as_time() {
    let (got, src) = read_ok("spb-tsoffset.pcapng");
    let (want, _) = golden::tshark("spb-tsoffset.pcapng");
    // Packets 7-11 are SPBs; 11 has origlen 97 on a 96-byte snaplen interface.
    assert!(want[6..].iter().all(|w| w.ts_ns.is_none()));
    assert_eq!((want[10].caplen, want[10].origlen), (96, 97));
    assert_eq!((got[10].data.len(), got[10].origlen), (96, 97));
    // An SPB has no time; libpcap (sf-pcapng.c) sets t = 0, so the time is if_tsoffset alone.
    for g in &got[6..] {
        assert_eq!(g.ts, -3600 * 1_000_000_000, "packet {}", g.number);
    }
    assert_eq!(src.info().snaplen, Some(96));
    // if_tsresol 3 is milliseconds: not finer than tcpdump's default microseconds.
    assert_eq!(src.precision(), Precision::Micro);
}

#[test]
fn format_precision_and_info_of_pcap() {
    for (name, precision) in [
        ("tcp-le-us.pcap", Precision::Micro),
        ("tcp-be-ns.pcap", Precision::Nano),
        ("tcp-modified.pcap", Precision::Micro),
    ] {
        let (_, src) = read_ok(name);
        assert_eq!(src.format(), Format::Pcap, "{name}");
        assert_eq!(src.precision(), precision, "{name}");
        assert_eq!(src.info().snaplen, Some(262_144), "{name}");
        assert_eq!(src.info().linktypes, vec![Linktype::ETHERNET], "{name}");
    }
    let (_, src) = read_ok("tcp-raw-be-us.pcap");
    assert_eq!(src.info().linktypes, vec![Linktype::RAW]);
    let (_, src) = read_ok("odd-caplen-over-snaplen.pcap");
    assert_eq!(src.info().snaplen, Some(64));
}

/// The format comes from the magic bytes, whatever the file is called.
#[test]
fn format_ignores_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to, format) in [
        ("tcp-be-ns.pcapng", "capture.pcap", Format::Pcapng),
        ("tcp-le-us.pcap", "capture.pcapng", Format::Pcap),
        ("tcp-le-us.pcap", "noext", Format::Pcap),
    ] {
        let p = dir.path().join(to);
        std::fs::copy(golden::path(from), &p).unwrap();
        let mut src = FileSource::open(p.to_str().unwrap()).unwrap();
        assert_eq!(src.format(), format);
        assert_eq!(collect(&mut src).0.len(), 10);
    }
}

/// A pipe may deliver one byte per read: every capture, good or bad, reads exactly as from a
/// file (same frames, same error at the same place).
#[test]
fn tiny_reads_give_the_same_result() {
    for name in golden::captures() {
        let path = golden::path(&name);
        let whole = match FileSource::open(&path) {
            Ok(mut s) => {
                let (f, r) = collect(&mut s);
                (f, r.map_err(|e| e.to_string()))
            }
            Err(e) => (Vec::new(), Err(e.to_string())),
        };
        let bytes = std::fs::read(&path).unwrap();
        for chunk in [1, 3, 7, 23, 4096] {
            let got = match FileSource::from_reader(&path, trickle(bytes.clone(), chunk)) {
                Ok(mut s) => {
                    let (f, r) = collect(&mut s);
                    (f, r.map_err(|e| e.to_string()))
                }
                Err(e) => (Vec::new(), Err(e.to_string())),
            };
            assert_eq!(got, whole, "{name} read {chunk} bytes at a time");
        }
    }
}

/// `run` stops when the callback breaks, and a second call goes on with the next frame.
#[test]
fn break_and_resume() {
    let (all, _) = read_ok("two-interfaces.pcapng");
    let mut src = FileSource::open(&golden::path("two-interfaces.pcapng")).unwrap();
    let mut first = Vec::new();
    src.run(|f| {
        first.push(f.number);
        if f.number == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(first, [1, 2, 3]);
    let (rest, r) = collect(&mut src);
    r.unwrap();
    assert_eq!(rest, all[3..]);
}

/// A block larger than the starting buffer (here a 3 MiB block the reader skips) makes
/// the buffer grow; the frames around it still come through, from a file and a slow pipe.
#[test]
fn large_block_grows_the_buffer() {
    let pcapng = std::fs::read(golden::path("tcp-be-ns.pcapng")).unwrap();
    // SHB (28 bytes) + IDB with if_tsresol (32 bytes), then EPBs, all big-endian.
    let (head, epbs) = pcapng.split_at(60);
    let mut big = Vec::from(head);
    big.extend_from_slice(&epbs[..216]); // two 108-byte EPBs: the SYN and the SYN-ACK
    let len: u32 = 3 << 20;
    big.extend_from_slice(&0x0BAD_BEEFu32.to_be_bytes());
    big.extend_from_slice(&len.to_be_bytes());
    big.resize(big.len() + len as usize - 12, 0xAB);
    big.extend_from_slice(&len.to_be_bytes());
    big.extend_from_slice(&epbs[216..]);
    let (want, _) = read_ok("tcp-be-ns.pcapng");
    for chunk in [usize::MAX, 65_536, 1000] {
        let mut src = FileSource::from_reader("big", trickle(big.clone(), chunk)).unwrap();
        let (got, r) = collect(&mut src);
        r.unwrap();
        assert_eq!(got, want, "chunk {chunk}");
    }
}

/// A record of 200 000 bytes (under libpcap's 262144 maximum) is read whole.
#[test]
fn large_pcap_record() {
    let mut f = std::fs::read(golden::path("tcp-le-us.pcap")).unwrap();
    f.truncate(24);
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    for (sec, usec) in [(1, 2), (3, 4)] {
        for v in [sec, usec, 200_000, 200_000] {
            f.extend_from_slice(&u32::to_le_bytes(v));
        }
        f.extend_from_slice(&data);
    }
    let mut src = FileSource::from_reader("big", trickle(f, 50_000)).unwrap();
    let (got, r) = collect(&mut src);
    r.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].data, data);
    assert_eq!(got[1].ts, Timestamp::from_parts(3, 4000).0);
}
