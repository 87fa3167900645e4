//! The TCP analysis, the detectors and the reports on arbitrary segment sequences: no panic,
//! the same output for the same input, `--json` / `--ndjson` always valid against the
//! published schemas (docs/schema/), and memory bounded by `--max-connections` even when the
//! capture's clock goes backwards or a SYN flood fills the flow table.
//!
//! Segments are built from bytes as fuzz/src/lib.rs `segments` builds them for the `analysis`
//! fuzz target (few endpoints, so connections collide; sequence numbers raw or just past what
//! the direction last sent, so handshakes and closes happen; times that jump both ways).

use proptest::prelude::*;
use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::OsStr;
use std::io::Cursor;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use tcplens::analysis::{AnalysisConfig, Analyzer};
use tcplens::capture::Timestamp;
use tcplens::capture::file::FileSource;
use tcplens::config::Config;
use tcplens::decode::{OptionSummary, Segment, TcpFlags};
use tcplens::detect::{DetectConfig, Detectors};
use tcplens::pipeline::Run;

mod common;

/// Counts live heap bytes per thread (tests run in parallel), for the memory-bound test.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|c| c.set(c.get() + delta));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ADDRS: [&str; 6] = [
    "10.0.0.1",
    "10.0.0.2",
    "192.0.2.7",
    "::1",
    "2001:db8::2",
    "0.0.0.0",
];
const PORTS: [u16; 4] = [80, 443, 40000, 0];

/// Bytes read front to back, zero past the end.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// Segments from bytes (fuzz/src/lib.rs `segments`, with payloads of at most 1023 bytes and
/// times within u32 seconds so they also fit a pcap).
fn segments(data: &[u8]) -> Vec<Segment> {
    let mut b = Bytes(data);
    let mut out = Vec::new();
    let mut next = [0u32; 6 * 4 * 6 * 4];
    let mut ts: i64 = 1_700_000_000_000_000_000;
    while !b.0.is_empty() {
        let ends = b.u8();
        let ports = b.u8();
        let (s, d) = (usize::from(ends & 7) % 6, usize::from(ends >> 3 & 7) % 6);
        let (sp, dp) = (usize::from(ports & 3), usize::from(ports >> 2 & 3));
        let dir = ((s * 4 + sp) * 6 + d) * 4 + dp;
        let rev = ((d * 4 + dp) * 6 + s) * 4 + sp;
        let flags = TcpFlags(b.u16() & 0x1ff);
        let ctl = b.u8();
        let (raw_seq, raw_ack) = (b.u32(), b.u32());
        let seq = if ctl & 1 != 0 {
            raw_seq
        } else {
            next[dir]
                .wrapping_add(raw_seq >> 24)
                .wrapping_sub(raw_seq >> 28 << 4)
        };
        let ack = if ctl & 2 != 0 {
            raw_ack
        } else {
            next[rev].wrapping_add(raw_ack >> 28)
        };
        let window = b.u16();
        let payload_len = if ctl & 4 != 0 {
            u32::from(b.u16() & 0x3ff)
        } else {
            0
        };
        let step = i64::from(b.u16() as i16);
        ts = match ctl >> 4 & 3 {
            0 => ts + step * 1_000,
            1 => ts + step * 1_000_000,
            2 => ts + step * 1_000_000_000,
            _ => ts - step.abs() * 100_000_000,
        }
        .clamp(0, i64::from(u32::MAX) * 1_000_000_000);
        ts -= ts % 1000; // microseconds, as a pcap stores them
        let o = b.u8();
        let mut options = OptionSummary {
            mss: (o & 1 != 0).then(|| b.u16()),
            wscale: (o & 2 != 0).then(|| b.u8()),
            sack_permitted: o & 4 != 0,
            timestamps: (o & 8 != 0).then(|| (b.u32(), b.u32())),
            ..OptionSummary::default()
        };
        if o & 0x10 != 0 {
            options.sack_count = b.u8() % 5;
            for blk in options
                .sack
                .iter_mut()
                .take(usize::from(options.sack_count))
            {
                let l = ack.wrapping_add(u32::from(b.u16()));
                *blk = (l, l.wrapping_add(u32::from(b.u8()) << 4));
            }
        }
        let ttl = if o & 0x20 != 0 { b.u8() } else { 64 };
        next[dir] = seq
            .wrapping_add(payload_len)
            .wrapping_add(u32::from(flags.syn()) + u32::from(flags.fin()));
        out.push(Segment {
            number: out.len() as u64 + 1,
            ts: Timestamp(ts),
            src: ADDRS[s].parse().unwrap(),
            dst: ADDRS[d].parse().unwrap(),
            sport: PORTS[sp],
            dport: PORTS[dp],
            seq,
            ack,
            flags,
            window,
            payload_len,
            options,
            ttl,
        });
    }
    out
}

/// A configuration through the real command line.
fn config(args: &[&str]) -> Config {
    use clap::Parser;
    let argv = ["tcplens", "read", "-"].iter().chain(args);
    let cli = tcplens::cli::Cli::try_parse_from(argv).expect("valid flags");
    let tcplens::cli::Command::Read { output, .. } = cli.command else {
        unreachable!("read")
    };
    let mut cfg = Config::from_output_args(&output).expect("valid flags");
    cfg.color = false;
    cfg
}

/// Limits small enough that eviction, idle expiry and the detectors are reached by a few
/// hundred segments.
const SMALL: [&str; 12] = [
    "--max-connections",
    "5",
    "--idle-timeout",
    "2",
    "--msl",
    "0.5",
    "--syn-flood-threshold",
    "2",
    "--time-wait-threshold",
    "2",
    "--syn-cookie-min",
    "1",
];

/// Everything the analysis and the detectors say, as text: each packet's `PacketInfo`, each
/// connection summary, the findings and the counts.
fn analyse(segs: &[Segment], cfg: &Config) -> Vec<String> {
    let mut an = Analyzer::new(cfg.analysis);
    let mut det = Detectors::new(cfg.detect);
    let mut log = Vec::new();
    let end = |an: &mut Analyzer, det: &mut Detectors, log: &mut Vec<String>| {
        for mut c in an.drain_ended() {
            det.connection(&mut c);
            log.push(format!("{c:?}"));
        }
        for f in det.drain_fired() {
            log.push(format!(
                "fired {:?} {} {:?}",
                f.kind, f.subject, f.first_time
            ));
        }
    };
    for seg in segs {
        let info = an.packet(seg);
        log.push(format!("{info:?}"));
        det.packet(seg, info);
        assert!(an.live() <= cfg.analysis.max_connections);
        end(&mut an, &mut det, &mut log);
    }
    det.end_of_capture();
    an.finish();
    end(&mut an, &mut det, &mut log);
    det.finish();
    for f in det.findings() {
        log.push(serde_json::to_string(f).unwrap());
    }
    log.push(format!("{:?}", an.stats()));
    assert_eq!(an.stats().packets, segs.len() as u64);
    log
}

/// `segs` as a little-endian microsecond pcap of raw IP packets (link type 101), each with
/// its TCP options and a zero payload.
fn pcap(segs: &[Segment]) -> Vec<u8> {
    let mut out = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    out.extend_from_slice(&[2, 0, 4, 0]); // version 2.4
    for v in [0u32, 0, 262_144, 101] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for s in segs {
        let mut opts = Vec::new();
        let o = &s.options;
        if let Some(m) = o.mss {
            opts.extend_from_slice(&[2, 4]);
            opts.extend_from_slice(&m.to_be_bytes());
        }
        if let Some(w) = o.wscale {
            opts.extend_from_slice(&[3, 3, w]);
        }
        if o.sack_permitted {
            opts.extend_from_slice(&[4, 2]);
        }
        if let Some((a, b)) = o.timestamps {
            opts.extend_from_slice(&[8, 10]);
            opts.extend_from_slice(&a.to_be_bytes());
            opts.extend_from_slice(&b.to_be_bytes());
        }
        let room = (40 - opts.len()).saturating_sub(2) / 8;
        let n = usize::from(o.sack_count).min(room);
        if n > 0 {
            opts.extend_from_slice(&[5, 2 + 8 * n as u8]);
            for (l, r) in &o.sack[..n] {
                opts.extend_from_slice(&l.to_be_bytes());
                opts.extend_from_slice(&r.to_be_bytes());
            }
        }
        while opts.len() % 4 != 0 {
            opts.push(1);
        }
        let tcp_len = 20 + opts.len() + s.payload_len as usize;
        let mut pkt = Vec::new();
        match (s.src, s.dst) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                pkt.extend_from_slice(&[0x45, 0]);
                pkt.extend_from_slice(&(20 + tcp_len as u16).to_be_bytes());
                pkt.extend_from_slice(&[0, 0, 0x40, 0, s.ttl, 6, 0, 0]);
                pkt.extend_from_slice(&a.octets());
                pkt.extend_from_slice(&b.octets());
            }
            (a, b) => {
                let v6 = |x: IpAddr| match x {
                    IpAddr::V4(x) => x.to_ipv6_mapped(),
                    IpAddr::V6(x) => x,
                };
                pkt.extend_from_slice(&[0x60, 0, 0, 0]);
                pkt.extend_from_slice(&(tcp_len as u16).to_be_bytes());
                pkt.extend_from_slice(&[6, s.ttl]);
                pkt.extend_from_slice(&v6(a).octets());
                pkt.extend_from_slice(&v6(b).octets());
            }
        }
        pkt.extend_from_slice(&s.sport.to_be_bytes());
        pkt.extend_from_slice(&s.dport.to_be_bytes());
        pkt.extend_from_slice(&s.seq.to_be_bytes());
        pkt.extend_from_slice(&s.ack.to_be_bytes());
        let doff = ((20 + opts.len()) / 4) as u8;
        pkt.push(doff << 4 | (s.flags.0 >> 8) as u8);
        pkt.push(s.flags.0 as u8);
        pkt.extend_from_slice(&s.window.to_be_bytes());
        pkt.extend_from_slice(&[0, 0, 0, 0]);
        pkt.extend_from_slice(&opts);
        pkt.resize(pkt.len() + s.payload_len as usize, 0);
        let (sec, usec) = (s.ts.0 / 1_000_000_000, s.ts.0 % 1_000_000_000 / 1000);
        for v in [sec as u32, usec as u32, pkt.len() as u32, pkt.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&pkt);
    }
    out
}

/// Runs the whole pipeline over capture bytes; returns its output.
fn run(bytes: Vec<u8>, cfg: &Config) -> Vec<u8> {
    let mut src = FileSource::from_reader("gen", Box::new(Cursor::new(bytes))).expect("a pcap");
    let mut out = Vec::new();
    let mut run = Run::new(cfg, "gen", None, &mut out);
    let r = src.run(|f| run.on_frame(f));
    let info = src.info().clone();
    run.finish(r, Some(&info), None).expect("output to a Vec");
    out
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).expect("a valid schema")
}

/// The `--json` and `--ndjson` schemas, compiled once.
static SCHEMAS: std::sync::LazyLock<(jsonschema::Validator, jsonschema::Validator)> =
    std::sync::LazyLock::new(|| {
        (
            validator("tcplens-report.schema.json"),
            validator("tcplens-ndjson.schema.json"),
        )
    });

fn valid(v: &jsonschema::Validator, doc: &Value, what: &str) -> Result<(), TestCaseError> {
    let errs: Vec<String> = v
        .iter_errors(doc)
        .take(3)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    prop_assert!(errs.is_empty(), "{what}: {errs:?}\n{doc}");
    Ok(())
}

proptest! {
    // Each case runs the analysis twice and the pipeline eight times.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The same segments give the same analysis, findings and report bytes, run after run
    /// (no hash-order or address-dependent output), with default and small limits.
    #[test]
    fn analysis_is_deterministic(data in proptest::collection::vec(any::<u8>(), 0..3000),
                                 small in any::<bool>()) {
        let segs = segments(&data);
        let cfg = config(if small { &SMALL } else { &[] });
        prop_assert_eq!(analyse(&segs, &cfg), analyse(&segs, &cfg));
        for mode in ["--json", "--ndjson", "--summary", "--explain"] {
            let mut args = if small { SMALL.to_vec() } else { Vec::new() };
            args.push(mode);
            let cfg = config(&args);
            let bytes = pcap(&segs);
            prop_assert_eq!(run(bytes.clone(), &cfg), run(bytes, &cfg), "{}", mode);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any order of the same segments (times then go backwards and forwards at random) is
    /// analysed without a panic, within the flow-table bound, with every packet counted.
    #[test]
    fn any_order_never_panics(
        (segs, order) in proptest::collection::vec(any::<u8>(), 0..3000)
            .prop_map(|d| segments(&d))
            .prop_flat_map(|s| {
                let n = s.len();
                (Just(s), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            }),
        small in any::<bool>(),
    ) {
        let mut shuffled: Vec<Segment> = order.iter().map(|&i| segs[i]).collect();
        for (i, s) in shuffled.iter_mut().enumerate() {
            s.number = i as u64 + 1;
        }
        let cfg = config(if small { &SMALL } else { &[] });
        analyse(&shuffled, &cfg);
    }

    /// `--json` is one document and every `--ndjson` line one record, valid against
    /// docs/schema/, whose counts agree, for captures built from arbitrary segments.
    #[test]
    fn json_reports_are_valid(data in proptest::collection::vec(any::<u8>(), 0..2500),
                              small in any::<bool>(), count in 0u64..40) {
        let segs = segments(&data);
        let bytes = pcap(&segs);
        let mut args = if small { SMALL.to_vec() } else { Vec::new() };
        let c = count.to_string();
        if count > 0 {
            args.extend(["-c", &c]);
        }
        let expect = segs.len() as u64;
        let expect = if count > 0 { expect.min(count) } else { expect };

        let (doc_schema, line_schema) = &*SCHEMAS;
        let mut json = args.clone();
        json.push("--json");
        let out = run(bytes.clone(), &config(&json));
        let doc: Value = serde_json::from_slice(&out).map_err(|e| {
            TestCaseError::fail(format!("--json: {e}\n{}", String::from_utf8_lossy(&out)))
        })?;
        valid(doc_schema, &doc, "--json")?;
        prop_assert_eq!(doc["stats"]["tcp_packets"].as_u64(), Some(expect));
        prop_assert_eq!(
            doc["connections"].as_array().map(|a| a.len() as u64),
            doc["stats"]["connections"].as_u64()
        );

        let mut nd = args;
        nd.push("--ndjson");
        let out = run(bytes, &config(&nd));
        let text = String::from_utf8(out).expect("UTF-8");
        let mut packets = 0;
        let mut last = Value::Null;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| TestCaseError::fail(format!("--ndjson: {e}\n{line}")))?;
            valid(line_schema, &v, "--ndjson")?;
            packets += u64::from(v["type"] == "packet");
            last = v;
        }
        prop_assert_eq!(&last["type"], "summary");
        prop_assert_eq!(packets, expect);
        prop_assert_eq!(last["tcp_packets"].as_u64(), Some(expect));
        prop_assert_eq!(&last["inputs"], &doc["inputs"]);
    }
}

fn syn(i: u32, ts: i64) -> Segment {
    Segment {
        number: u64::from(i) + 1,
        ts: Timestamp(ts),
        src: IpAddr::from([198, 18, (i >> 16) as u8, (i >> 8) as u8]),
        dst: IpAddr::from([10, 0, 0, 1]),
        sport: 1024 + (i & 0xff) as u16,
        dport: 80,
        seq: i.wrapping_mul(2_654_435_761),
        ack: 0,
        flags: TcpFlags(TcpFlags::SYN),
        window: 64240,
        payload_len: 0,
        options: OptionSummary {
            mss: Some(1460),
            ..OptionSummary::default()
        },
        ttl: 64,
    }
}

/// Live heap bytes allocated by this thread.
fn live() -> isize {
    LIVE.with(Cell::get)
}

/// A packet dated far in the future, then a long run of spoofed SYNs, SYN-ACKs and closed
/// connections dated normally: the detectors' clock stays at the future date, so nothing they
/// queue by time ever comes due. Memory must still be bounded by the connection limit (it is
/// not allowed to grow with the packet count).
#[test]
fn memory_is_bounded_when_the_clock_goes_back() {
    let analysis = AnalysisConfig {
        max_connections: 64,
        ..AnalysisConfig::default()
    };
    let detect = DetectConfig {
        max_tracked: 64,
        ..DetectConfig::default()
    };
    let mut an = Analyzer::new(analysis);
    let mut det = Detectors::new(detect);
    let feed = |seg: &Segment, an: &mut Analyzer, det: &mut Detectors| {
        let info = an.packet(seg);
        det.packet(seg, info);
        for mut c in an.drain_ended() {
            det.connection(&mut c);
        }
        det.drain_fired().for_each(drop);
    };
    feed(&syn(u32::MAX, i64::MAX / 2), &mut an, &mut det);
    let base = 1_700_000_000_000_000_000i64;
    // Each round: a spoofed SYN answered by a SYN-ACK (half-open), and a whole connection
    // closed by the client (TIME_WAIT).
    let round = |i: u32, an: &mut Analyzer, det: &mut Detectors| {
        let t = base + i64::from(i) * 1000;
        let s = syn(i, t);
        let (c, srv) = ((s.src, s.sport), (s.dst, s.dport));
        let seg = |from: (IpAddr, u16), to: (IpAddr, u16), f: u16, seq: u32, ack: u32| Segment {
            src: from.0,
            sport: from.1,
            dst: to.0,
            dport: to.1,
            flags: TcpFlags(f),
            seq,
            ack,
            ..s
        };
        const A: u16 = TcpFlags::ACK;
        const F: u16 = TcpFlags::FIN | TcpFlags::ACK;
        feed(&s, an, det);
        feed(&seg(srv, c, TcpFlags::SYN | A, 7, s.seq + 1), an, det);
        // 256 hosts, so the per-host maps (capped at MAX_KEYS) stay small.
        let c2 = (IpAddr::from([10, 1, 0, i as u8]), 1024 + (i >> 8) as u16);
        let x = seg(c2, srv, TcpFlags::SYN, 100, 0);
        for p in [
            x,
            seg(srv, c2, TcpFlags::SYN | A, 500, 101),
            seg(c2, srv, A, 101, 501),
            seg(c2, srv, F, 101, 501),
            seg(srv, c2, A, 501, 102),
            seg(srv, c2, F, 501, 102),
            seg(c2, srv, A, 102, 502),
        ] {
            feed(&p, an, det);
        }
    };
    for i in 0..5_000 {
        round(i, &mut an, &mut det);
    }
    let warm = live();
    for i in 5_000..65_000 {
        round(i, &mut an, &mut det);
    }
    let grown = live() - warm;
    assert!(an.live() <= 64);
    assert!(an.stats().evicted > 100_000, "{:?}", an.stats());
    // 60 000 rounds of 9 packets: one queued entry per round would be ≥ 960 KB.
    assert!(
        grown < 256 * 1024,
        "heap grew by {grown} bytes over 540 000 packets"
    );
}

/// A generated SYN flood (10 000 spoofed SYNs on 200 ordinary connections) with a flow table
/// of 1 000: the table never holds more, the flood's connections are evicted and counted, and
/// every connection is reported once; with the default limit nothing is evicted and the count
/// is gen-pcap's.
#[test]
fn syn_flood_is_evicted_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    let args = ["--flows", "200", "--syn-flood", "10000", "--quiet", "--out"];
    common::gen_pcap(args.map(OsStr::new).into_iter().chain([pcap.as_os_str()]));
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("flood.pcap.truth.json")).unwrap(),
    )
    .unwrap();
    let json = |args: &[&str]| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_tcplens"))
            .arg("read")
            .arg(&pcap)
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let t = |k: &str| truth["counts"][k].as_u64().expect(k);
    let conns = t("tcp_connections");
    // The default limit holds them all: exactly gen-pcap's connections, none evicted.
    let all = json(&[]);
    assert_eq!(all["stats"]["connections"].as_u64(), Some(conns));
    assert_eq!(all["stats"]["evicted"].as_u64(), Some(0));
    let doc = json(&["--max-connections", "1000"]);
    let stats = &doc["stats"];
    // Packets of evicted connections start new (mid-stream) ones: more connections, each
    // reported once.
    let seen = stats["connections"].as_u64().unwrap();
    assert!(seen >= conns, "{stats}");
    assert_eq!(
        doc["connections"].as_array().map(|a| a.len() as u64),
        Some(seen)
    );
    assert!(
        stats["peak_live_connections"].as_u64().unwrap() <= 1000,
        "{stats}"
    );
    let evicted = stats["evicted"].as_u64().unwrap();
    let by_evicted = doc["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["end"] == "evicted")
        .count() as u64;
    assert_eq!(
        evicted, by_evicted,
        "evictions counted = records that say so"
    );
    // The flood's connections that no spoofed source reset never end by themselves (none
    // completes, and the capture is shorter than the idle timeout): all but the 1 000 held at
    // the end had to be evicted.
    let stuck = t("conn_syn_flood") - t("syn_flood_reset_by_source");
    assert!(
        evicted + 1000 >= stuck,
        "evicted {evicted}, stuck {stuck}: {stats}"
    );
}

/// Regression (`analysis` fuzz target, testdata/regress/fuzz-analysis/
/// payload-len-near-2-32-with-syn-fin): a segment whose payload length plus its SYN and FIN
/// passes 2^32 overflowed `len + syn + fin` in the analysis (conn.rs, zeek.rs). Sequence space
/// wraps, so the sum now wraps too. The decoder keeps payload lengths below 2^32 − 20, so only
/// segments built directly reach it.
#[test]
fn segment_length_wraps_sequence_space() {
    for flags in [
        TcpFlags::SYN | TcpFlags::FIN,
        TcpFlags::FIN | TcpFlags::ACK,
        TcpFlags::RST | TcpFlags::SYN | TcpFlags::FIN,
    ] {
        for len in [u32::MAX, u32::MAX - 1] {
            let s = Segment {
                flags: TcpFlags(flags),
                payload_len: len,
                seq: u32::MAX,
                ..syn(1, 1_000_000_000)
            };
            let back = Segment {
                src: s.dst,
                dst: s.src,
                sport: s.dport,
                dport: s.sport,
                number: 2,
                ..s
            };
            for args in [&[][..], &["--json"], &["--ndjson"], &["--explain"]] {
                let cfg = config(args);
                analyse(&[s, back, s], &cfg);
                run(pcap(&[]), &cfg);
            }
        }
    }
}

/// Regression (`analysis` fuzz target, testdata/regress/fuzz-analysis/
/// connection-duration-saturates-to-i64-min): a connection whose packets run from the latest
/// time to the earliest has a duration that saturates to i64::MIN, whose `abs()` overflowed in
/// the table's duration formatting (report/annotate.rs `Dur`).
#[test]
fn backwards_connection_duration_formats() {
    assert_eq!(
        tcplens::report::annotate::Dur(i64::MIN).to_string(),
        "-9223372036.85 s"
    );
    let a = syn(1, i64::MAX);
    let b = Segment {
        ts: Timestamp(i64::MIN),
        number: 2,
        flags: TcpFlags(TcpFlags::ACK),
        ..a
    };
    for args in [&["--summary"][..], &[], &["--json"], &["--ndjson"]] {
        let cfg = config(args);
        analyse(&[a, b], &cfg);
        let mut out = Vec::new();
        let mut rep = tcplens::report::analysis::AnalysisReport::new(&cfg);
        let mut det = Detectors::new(cfg.detect);
        for s in [a, b] {
            rep.packet(&mut out, &s, &mut det).unwrap();
        }
        let stats = tcplens::stats::Stats::default();
        rep.finish(&mut out, &stats, &[], &mut det).unwrap();
        assert!(!out.is_empty());
    }
}

/// Regression (`analysis` fuzz target, testdata/regress/fuzz-analysis/
/// syn-window-1ns-times-span-i64): with `--syn-window` under 20 ns a rate window's buckets are
/// 1 ns wide, so bucket numbers span the whole i64 range and `head - b` overflowed in
/// `detect::sketch::Window::add` when a time far before the window followed one far after.
#[test]
fn tiny_syn_window_with_extreme_times() {
    let mut w = tcplens::detect::sketch::Window::new(1);
    w.add(i64::MAX, 1);
    w.add(i64::MIN + 1, 1);
    assert_eq!(w.sum(i64::MAX), 1);
    let cfg = config(&[
        "--syn-window",
        "1e-9",
        "--syn-flood-threshold",
        "1",
        "--json",
    ]);
    let segs: Vec<Segment> = [i64::MAX, i64::MIN + 1, 0, i64::MAX]
        .iter()
        .enumerate()
        .map(|(i, &t)| syn(i as u32, t))
        .collect();
    analyse(&segs, &cfg);
}

/// Regression (`analysis` fuzz target, testdata/regress/fuzz-analysis/
/// syn-cookie-wait-across-i64-times): the SYN-cookie judge subtracted capture times (the wait
/// after the SYN-ACK, the server's TSval clock) and TIME_WAIT's figures subtracted entry times
/// unchecked; times from both ends of i64 overflowed. They saturate now.
#[test]
fn detector_time_differences_saturate() {
    const A: u16 = TcpFlags::ACK;
    let cfg = config(&[
        "--json",
        "--syn-cookie-min",
        "1",
        "--time-wait-threshold",
        "1",
    ]);
    let mut segs = Vec::new();
    for (i, (t_syn, t_synack, t_rest)) in [
        (0, i64::MAX, i64::MIN + 1),
        (i64::MIN + 1, i64::MIN + 1, i64::MAX),
        (i64::MAX, i64::MIN + 1, i64::MIN + 1),
    ]
    .into_iter()
    .enumerate()
    {
        let s = syn(i as u32, t_syn);
        let opts = OptionSummary {
            timestamps: Some((1000, 0)),
            ..s.options
        };
        let back = |f: u16, seq: u32, ack: u32, ts: i64| Segment {
            src: s.dst,
            dst: s.src,
            sport: s.dport,
            dport: s.sport,
            flags: TcpFlags(f),
            seq,
            ack,
            ts: Timestamp(ts),
            options: opts,
            ..s
        };
        let fwd = |f: u16, seq: u32, ack: u32, ts: i64| Segment {
            flags: TcpFlags(f),
            seq,
            ack,
            ts: Timestamp(ts),
            ..s
        };
        let x = s.seq.wrapping_add(1);
        segs.extend([
            Segment { options: opts, ..s },
            back(TcpFlags::SYN | A, 7, x, t_synack),
            fwd(A, x, 8, t_rest),
            fwd(TcpFlags::FIN | A, x, 8, t_rest),
            back(A, 8, x + 1, t_rest),
            back(TcpFlags::FIN | A, 8, x + 1, t_rest),
            fwd(A, x + 1, 9, t_rest),
        ]);
    }
    for (n, s) in segs.iter_mut().enumerate() {
        s.number = n as u64 + 1;
    }
    analyse(&segs, &cfg);
    run(pcap(&[]), &cfg);
}

/// Closed connections on some of the generator's 4-tuples (sequence numbers near 0, where its
/// segments land), from `t0` on: handshake (or none: mid-stream), 3 bytes, a FIN from either
/// side, the other's FIN-ACK, the last ACK.
fn closed_connections(t0: i64) -> Vec<Segment> {
    let tuples = [
        (0, 2, 1, 0),
        (1, 2, 0, 1),
        (3, 2, 4, 0),
        (2, 3, 0, 0),
        (4, 1, 3, 2),
    ];
    let mut out = Vec::new();
    let mut ts = t0;
    for (i, &(c, cp, s, sp)) in tuples.iter().enumerate() {
        let (ci, si) = (u32::MAX - 1, (u32::MAX - 2).wrapping_add(i as u32));
        let cli = Segment {
            number: 0,
            ts: Timestamp(0),
            src: ADDRS[c].parse().unwrap(),
            dst: ADDRS[s].parse().unwrap(),
            sport: PORTS[cp],
            dport: PORTS[sp],
            seq: ci,
            ack: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window: 1000,
            payload_len: 0,
            options: OptionSummary {
                wscale: (i % 2 == 0).then_some(3),
                ..OptionSummary::default()
            },
            ttl: 64,
        };
        let srv = Segment {
            src: cli.dst,
            dst: cli.src,
            sport: cli.dport,
            dport: cli.sport,
            seq: si,
            ..cli
        };
        let (a, f) = (TcpFlags::ACK, TcpFlags::FIN);
        let mut steps = vec![
            (cli, TcpFlags::SYN, ci, 0, 0),
            (srv, TcpFlags::SYN | a, si, ci.wrapping_add(1), 0),
            (cli, a, ci.wrapping_add(1), si.wrapping_add(1), 0),
        ];
        if i == 3 {
            steps.clear(); // mid-stream
        }
        steps.push((cli, a, ci.wrapping_add(1), si.wrapping_add(1), 3));
        steps.push((srv, a, si.wrapping_add(1), ci.wrapping_add(4), 0));
        let (first, second) = if i % 2 == 0 { (cli, srv) } else { (srv, cli) };
        let next = |s: &Segment| {
            if s.src == cli.src {
                ci.wrapping_add(4)
            } else {
                si.wrapping_add(1)
            }
        };
        steps.push((first, f | a, next(&first), next(&second), 0));
        steps.push((
            second,
            f | a,
            next(&second),
            next(&first).wrapping_add(1),
            0,
        ));
        steps.push((
            first,
            a,
            next(&first).wrapping_add(1),
            next(&second).wrapping_add(1),
            0,
        ));
        for (tpl, flags, seq, ack, len) in steps {
            ts += 7_000_000;
            out.push(Segment {
                ts: Timestamp(ts),
                seq,
                ack,
                flags: TcpFlags(flags),
                payload_len: len,
                options: if flags & TcpFlags::SYN != 0 {
                    tpl.options
                } else {
                    OptionSummary::default()
                },
                ..tpl
            });
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Late packets of closed connections whose record is out (the connection packed into a
    /// tail, or kept whole when it does not pack) are analysed exactly as if the connection
    /// had been kept whole until 2 MSL (a close linger longer than the capture): the same
    /// annotations, states and numbers for every packet; each record is emitted once, and
    /// every packet is counted in a record or as a late one.
    #[test]
    fn tails_analyse_as_whole_connections(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        linger_ms in prop_oneof![Just(0i64), 0..4000i64],
        max in prop_oneof![Just(usize::MAX), 3..12usize],
        idle_s in prop_oneof![Just(40i64), 1..12i64],
        ordered in any::<bool>(),
    ) {
        let t0 = 1_700_000_000_000_000_000 - 2_000_000_000;
        let mut segs = closed_connections(t0);
        let mut rest = segments(&data);
        // Most of them on the closed connections' 4-tuples, either way.
        let ends: Vec<_> = segs.iter().map(|s| (s.src, s.sport, s.dst, s.dport)).collect();
        for (k, s) in rest.iter_mut().enumerate() {
            if k % 4 != 3 {
                let (a, ap, b, bp) = ends[k * 7 % ends.len()];
                (s.src, s.sport, s.dst, s.dport) = (a, ap, b, bp);
            }
        }
        if ordered {
            // Time only goes forward: the common case, where tails always pack.
            let mut t = segs.last().unwrap().ts.0;
            for s in &mut rest {
                t += (s.ts.0 % 3_000_000_000).abs();
                s.ts = Timestamp(t);
            }
        }
        segs.extend(rest);
        for (i, s) in segs.iter_mut().enumerate() {
            s.number = i as u64 + 1;
        }
        let whole = AnalysisConfig {
            msl_ns: 7_000_000_000,
            idle_ns: idle_s * 1_000_000_000,
            reset_linger_ns: 1_000_000_000,
            close_linger_ns: i64::MAX,
            max_connections: max,
        };
        let tails = AnalysisConfig { close_linger_ns: linger_ms * 1_000_000, ..whole };
        let (mut a, mut b) = (Analyzer::new(whole), Analyzer::new(tails));
        let (mut ids_a, mut ids_b, mut counted) = (Vec::new(), Vec::new(), 0);
        let mut late = 0;
        for s in &segs {
            let whole_info = *a.packet(s);
            let want = format!("{whole_info:?}");
            let mut got = *b.packet(s);
            late += u64::from(got.after_record);
            if got.after_record {
                // A hint for the detectors, which hold nothing of a connection once its
                // record is out: a tail does not keep it.
                got.client_acked = whole_info.client_acked;
            }
            got.after_record = false;
            got.replaced = None;
            prop_assert_eq!(want, format!("{got:?}"), "packet {}", s.number);
            ids_a.extend(a.drain_ended().map(|c| c.id));
            for c in b.drain_ended() {
                ids_b.push(c.id);
                counted += c.client_counts.packets + c.server_counts.packets;
            }
            prop_assert_eq!(a.live(), b.live());
        }
        a.finish();
        b.finish();
        ids_a.extend(a.drain_ended().map(|c| c.id));
        for c in b.drain_ended() {
            ids_b.push(c.id);
            counted += c.client_counts.packets + c.server_counts.packets;
        }
        ids_a.sort_unstable();
        ids_b.sort_unstable();
        prop_assert_eq!(ids_a, ids_b.clone());
        ids_b.dedup();
        prop_assert_eq!(ids_b.len() as u64, b.stats().connections, "one record each");
        prop_assert_eq!(late, b.stats().time_wait_packets);
        prop_assert_eq!(counted + late, segs.len() as u64);
        prop_assert_eq!(a.stats().peak_live, b.stats().peak_live);
    }
}
