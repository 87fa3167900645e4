//! Per-stage cost of the read -> decode -> print path, so a regression shows where it is.
//!
//! Each line adds one stage to the one before, over the same workload as `benches/pipeline.rs`
//! (`TCPLENS_BENCH_FLOWS`, default 21000 flows: 986k packets, 418 MB, in
//! `target/bench-data/`; `TCPLENS_BENCH_RUNS` runs, default 5):
//!
//! - `read`: the capture stage alone (file reads, framing checks, pcap-parser), every frame
//!   touched;
//! - `+ decode`: link, IP and TCP headers and the option summary of every frame;
//! - `+ seq table`: tcpdump's relative-sequence lookup (a hash table keyed by conversation,
//!   the printer's only per-connection state) for every ACK-bearing TCP segment;
//! - `+ format`: the whole tcpdump line (seq table included) into a `Vec` cleared every MiB,
//!   so no output I/O is timed;
//! - `+ analysis` (on `+ decode`, not on the printer): the flow table's lookup and the
//!   per-connection TCP analysis of every TCP segment (`Analyzer::packet`), the ended
//!   connections' records taken;
//! - `+ detectors`: the cross-connection detectors on top (`Detectors::packet` and
//!   `connection`).
//!
//! Run: `cargo bench --bench stages`. The time of a stage is its line minus the line it adds
//! to (the line above; for `+ analysis`, `+ decode`).
//! Wall time and, on Linux, the thread's CPU time (`/proc/thread-self/schedstat`) are shown:
//! on a shared machine the CPU time is the steadier one.

mod support;

use std::hint::black_box;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;
use tcplens::analysis::{AnalysisConfig, Analyzer};
use tcplens::capture::file::FileSource;
use tcplens::config::{LineFormat, TimeFormat};
use tcplens::decode::{TcpFlags, decode};
use tcplens::detect::{DetectConfig, Detectors};
use tcplens::report::seqtable::SeqTable;
use tcplens::report::tcpdump::TcpdumpPrinter;

/// One pass over the capture; `per_frame` returns a number folded into the result so no
/// stage is optimised away. Returns (frames, fold).
fn pass(path: &Path, mut per_frame: impl FnMut(&tcplens::capture::Frame<'_>) -> u64) -> (u64, u64) {
    let mut src = FileSource::open(path.to_str().expect("utf-8 path")).expect("open workload");
    let (mut frames, mut fold) = (0u64, 0u64);
    src.run(|f| {
        frames += 1;
        fold = fold.wrapping_add(per_frame(f));
        ControlFlow::Continue(())
    })
    .expect("read workload");
    (frames, black_box(fold))
}

/// One stage: its name and a pass over the capture returning (frames, fold).
type Stage = (&'static str, fn(&Path) -> (u64, u64));

fn read_only(path: &Path) -> (u64, u64) {
    pass(path, |f| f.data.len() as u64 + f.ts.0 as u64)
}

fn read_decode(path: &Path) -> (u64, u64) {
    pass(path, |f| {
        let d = decode(f);
        d.segment.map_or(d.kind as u64, |s| {
            u64::from(s.seq) + u64::from(s.sport) + u64::from(s.payload_len)
        })
    })
}

fn read_decode_seqtable(path: &Path) -> (u64, u64) {
    let mut table = SeqTable::default();
    pass(path, |f| {
        let d = decode(f);
        let Some(s) = d.segment else {
            return d.kind as u64;
        };
        if !s.flags.has(TcpFlags::ACK) {
            return u64::from(s.seq);
        }
        let (v4s, v4d, v6s, v6d);
        let (src, dst): (&[u8], &[u8]) = match (s.src, s.dst) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                (v4s, v4d) = (a.octets(), b.octets());
                (&v4s, &v4d)
            }
            (a, b) => {
                v6s = to16(a);
                v6d = to16(b);
                (&v6s, &v6d)
            }
        };
        let r = table.relative(
            s.src.is_ipv6(),
            src,
            dst,
            s.sport,
            s.dport,
            s.seq,
            s.ack,
            s.flags.syn(),
        );
        u64::from(r.seq) + u64::from(r.ack)
    })
}

fn to16(a: std::net::IpAddr) -> [u8; 16] {
    match a {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(a) => a.octets(),
    }
}

fn read_decode_format(path: &Path) -> (u64, u64) {
    let mut printer = TcpdumpPrinter::new(LineFormat {
        time: TimeFormat::Clock,
        nano: false,
        absolute: false,
        number: false,
        link_header: false,
        verbose: 0,
    });
    let mut sink: Vec<u8> = Vec::with_capacity(2 << 20);
    let mut total = 0u64;
    let r = pass(path, |f| {
        let d = decode(f);
        let printed = printer
            .write_packet(&mut sink, f, &d)
            .expect("write to a Vec");
        if sink.len() >= 1 << 20 {
            total += sink.len() as u64;
            sink.clear();
        }
        u64::from(printed)
    });
    (r.0, r.1.wrapping_add(black_box(total + sink.len() as u64)))
}

/// `+ analysis`, and with `detect` `+ detectors`.
fn read_decode_analyse(path: &Path, detect: bool) -> (u64, u64) {
    let mut analyzer = Analyzer::new(AnalysisConfig::default());
    let mut detectors = Detectors::new(DetectConfig::default());
    let r = pass(path, |f| {
        let Some(seg) = decode(f).segment else {
            return 0;
        };
        let info = analyzer.packet(&seg);
        let fold = info.conn + u64::from(info.rel_seq);
        if detect {
            detectors.packet(&seg, info);
        }
        for mut c in analyzer.drain_ended() {
            if detect {
                detectors.connection(&mut c);
            }
        }
        fold
    });
    (r.0, r.1.wrapping_add(black_box(detectors.untracked())))
}

fn read_decode_analysis(path: &Path) -> (u64, u64) {
    read_decode_analyse(path, false)
}

fn read_decode_detectors(path: &Path) -> (u64, u64) {
    read_decode_analyse(path, true)
}

/// Nanoseconds this thread has run on a CPU, where Linux tells it.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() {
    let path = support::workload();
    let runs = support::runs();
    let bytes = std::fs::metadata(&path).expect("workload").len() as f64;
    // Once untimed, so every stage reads from the page cache.
    read_only(&path);
    let stages: [Stage; 6] = [
        ("read", read_only),
        ("+ decode", read_decode),
        ("+ seq table", read_decode_seqtable),
        ("+ format (Vec sink)", read_decode_format),
        ("+ decode + analysis", read_decode_analysis),
        ("+ detectors", read_decode_detectors),
    ];
    println!("{}: {runs} runs per stage, medians", path.display());
    let mut times = vec![Vec::with_capacity(runs); stages.len()];
    let mut cpu = vec![Vec::with_capacity(runs); stages.len()];
    let mut frames = 0;
    // Interleaved, so a slow moment of a shared machine does not land on one stage.
    for _ in 0..runs {
        for (i, (_, f)) in stages.iter().enumerate() {
            let (start, cpu0) = (Instant::now(), cpu_ns());
            frames = f(&path).0;
            times[i].push(start.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (cpu0, cpu_ns()) {
                cpu[i].push(b.saturating_sub(a) as f64 / 1e9);
            }
        }
    }
    for (((name, _), t), c) in stages.iter().zip(&mut times).zip(&mut cpu) {
        let (median, min, max) = support::spread(t);
        // Rates from the CPU time when there is one, else from the wall time.
        let cpu_median = (!c.is_empty()).then(|| support::spread(c).0);
        let base = cpu_median.unwrap_or(median);
        println!(
            "  {name:<22} wall {median:6.3} s (min {min:.3}, max {max:.3})  cpu {}  {:6.1} ns/frame  {:5.2} Mpkt/s  {:5.0} MB/s",
            cpu_median.map_or("-".to_string(), |c| format!("{c:6.3} s")),
            base * 1e9 / frames.max(1) as f64,
            frames as f64 / base / 1e6,
            bytes / base / 1e6
        );
    }
}
