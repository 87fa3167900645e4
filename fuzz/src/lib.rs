//! Helpers shared by the fuzz targets: how a fuzz input becomes link types, printing flags and
//! a sequence of frames, and the checks every target makes on what tcplens produced.
//!
//! A new target over frames (the TCP analysis, for one) reuses [`frames`] and [`LINKTYPES`], so
//! its seeds are the `decode_print` seeds (see scripts/fuzz.sh and docs/robustness.md).

use tcplens::capture::{Linktype, Timestamp};
use tcplens::config::{Config, LineFormat, Mode, TimeFormat};
use tcplens::decode::{OptionSummary, Segment, TcpFlags};

/// Link types the first input byte picks from: every supported one, and one that is not.
pub const LINKTYPES: [Linktype; 9] = [
    Linktype::NULL,
    Linktype::ETHERNET,
    Linktype::RAW,
    Linktype::LOOP,
    Linktype::LINUX_SLL,
    Linktype::IPV4,
    Linktype::IPV6,
    Linktype::LINUX_SLL2,
    Linktype(147),
];

const TIMES: [TimeFormat; 6] = [
    TimeFormat::Clock,
    TimeFormat::None,
    TimeFormat::Epoch,
    TimeFormat::Delta,
    TimeFormat::Date,
    TimeFormat::SinceFirst,
];

/// tcpdump's printing flags from two bytes, so the fuzzer reaches every combination of -v (0-3),
/// -e, -S, --nano, -# and the -t family.
pub fn line_format(flags: u8, time: u8) -> LineFormat {
    LineFormat {
        time: TIMES[usize::from(time) % TIMES.len()],
        nano: flags & 0x10 != 0,
        absolute: flags & 0x08 != 0,
        number: flags & 0x20 != 0,
        link_header: flags & 0x04 != 0,
        verbose: flags & 0x03,
    }
}

/// A whole-run configuration from two bytes: every output mode, every printing flag, `-c`.
pub fn config(flags: u8, time: u8) -> Config {
    let mode = match flags >> 6 {
        0 | 1 => Mode::Plain,
        2 => Mode::Annotated,
        _ => [Mode::Summary, Mode::Json, Mode::Ndjson][usize::from(time >> 4) % 3],
    };
    Config {
        mode,
        line: line_format(flags, time),
        explain: time & 0x08 != 0,
        // `-c 0` is a usage error (Config::from_output_args), so counts start at 1.
        count: (time & 0x80 != 0).then_some(u64::from(time & 0x0f).max(1)),
        // Never ANSI colour, whatever the fuzzer's standard output is.
        color: false,
        ..defaults()
    }
}

/// Every other setting (analysis and detector limits, …) as the command line's defaults give it.
fn defaults() -> Config {
    use clap::Parser;
    let cli = tcplens::cli::Cli::try_parse_from(["tcplens", "read", "-"]).expect("defaults");
    let tcplens::cli::Command::Read { output, .. } = cli.command else {
        unreachable!("read")
    };
    Config::from_output_args(&output).expect("defaults")
}

/// One frame cut from a fuzz input.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    /// The on-the-wire length the record claims (arbitrary: it may be less than `data.len()`).
    pub origlen: u32,
    /// The capture time (arbitrary, negative ones too).
    pub ts: Timestamp,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Bytes of the header in front of each frame: caplen (u16), origlen (u32), time (i64), all
/// big-endian.
pub const FRAME_HEADER: usize = 14;

/// At most this many frames are taken from one input, so one input stays cheap.
pub const MAX_FRAMES: usize = 64;

/// Splits `data` into frames, each `[caplen u16][origlen u32][ts i64][caplen bytes]`; a caplen
/// past the end takes what is left.
pub fn frames(mut data: &[u8]) -> impl Iterator<Item = RawFrame<'_>> {
    std::iter::from_fn(move || {
        let (head, rest) = data.split_first_chunk::<FRAME_HEADER>()?;
        let caplen = usize::from(u16::from_be_bytes([head[0], head[1]])).min(rest.len());
        let origlen = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&head[6..14]);
        let (frame, rest) = rest.split_at(caplen);
        data = rest;
        Some(RawFrame {
            origlen,
            ts: Timestamp(i64::from_be_bytes(ts)),
            data: frame,
        })
    })
    .take(MAX_FRAMES)
}

/// tcplens' text output is valid UTF-8 without control characters other than tab and newline:
/// hostile bytes are escaped (as tcpdump's `fn_print_char` does) and never reach a terminal raw.
pub fn assert_printable(out: &[u8]) {
    // Text is UTF-8 (annotations and tables use arrows and box drawing) without control
    // characters other than newline and tab.
    let text = match std::str::from_utf8(out) {
        Ok(t) => t,
        Err(e) => panic!("output is not UTF-8: {e}\n{}", String::from_utf8_lossy(out)),
    };
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| c.is_control() && c != '\n' && c != '\t')
    {
        panic!("control character {c:?} at byte {at} in output:\n{text}");
    }
}

/// Reads fuzz bytes front to back; past the end every read is zero, so any input is usable.
#[derive(Clone, Debug)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    /// No bytes left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

/// The analysis target's limits from two bytes: a flow table of 1 to 16 connections (or the
/// default) so eviction is reached, short or default timers, low detector thresholds so
/// findings fire on a few packets.
pub fn analysis_config(a: u8, b: u8) -> Config {
    let mut cfg = defaults();
    cfg.color = false;
    if a & 0x80 == 0 {
        cfg.analysis.max_connections = usize::from(a & 0x0f) + 1;
        cfg.detect.max_tracked = cfg.analysis.max_connections;
    }
    if a & 0x40 != 0 {
        // Timers of microseconds to seconds: TIME_WAIT, idle and linger expire within the input.
        let ns = 1_000i64 << (2 * (a >> 4 & 3) + 8);
        cfg.analysis.msl_ns = ns;
        cfg.analysis.idle_ns = ns * 3;
        cfg.analysis.reset_linger_ns = ns / 2;
        cfg.detect.two_msl_ns = ns * 2;
    }
    if b & 0x80 != 0 {
        cfg.detect.syn_flood_threshold = u32::from(b & 3) + 1;
        cfg.detect.time_wait_threshold = u32::from(b >> 2 & 3) + 1;
        cfg.detect.cookie_min = 1;
    }
    if b & 0x40 != 0 {
        // Windows down to one nanosecond (`--syn-window 1e-9` is accepted by the command line).
        let ns = 1i64 << (3 * (b >> 4 & 3));
        cfg.detect.window_ns = ns;
        cfg.detect.grace_ns = ns * 3;
        cfg.detect.hold_ns = ns * 10;
        cfg.detect.half_open_timeout_ns = ns * 63;
    }
    cfg.table_rows = usize::from(b & 7) + 1;
    cfg
}

/// Addresses of the analysis target: few, so connections collide; IPv4 and IPv6 mixed.
const ADDRS: [&str; 6] = [
    "10.0.0.1",
    "10.0.0.2",
    "192.0.2.7",
    "::1",
    "2001:db8::2",
    "0.0.0.0",
];
/// Ports of the analysis target.
const PORTS: [u16; 4] = [80, 443, 40000, 0];

/// Most segments built from one input.
pub const MAX_SEGMENTS: usize = 512;

/// TCP segments built directly from fuzz bytes, as the decoder would hand them to the
/// analysis. Each segment takes up to 32 bytes: endpoints from a small set (so connections
/// collide and 4-tuples are reused), any flags, sequence and acknowledgment numbers either raw
/// or just past what that direction / the peer last sent (so real handshakes, data and closes
/// are reached), any window, payload length (huge ones too), options and TTL, and a capture
/// time that moves forwards, backwards, jumps by seconds to centuries or hits the extremes.
pub fn segments(data: &[u8]) -> Vec<Segment> {
    let mut b = Bytes(data);
    let mut out = Vec::new();
    // Next sequence number each (src, sport, dst, dport) sent, by index.
    let mut next = [0u32; 6 * 4 * 6 * 4];
    let mut ts: i64 = 1_700_000_000_000_000_000;
    while !b.is_empty() && out.len() < MAX_SEGMENTS {
        let ends = b.u8();
        let ports = b.u8();
        let (s, d) = (usize::from(ends & 7) % 6, usize::from(ends >> 3 & 7) % 6);
        let (sp, dp) = (usize::from(ports & 3), usize::from(ports >> 2 & 3));
        let dir = ((s * 4 + sp) * 6 + d) * 4 + dp;
        let rev = ((d * 4 + dp) * 6 + s) * 4 + sp;
        let flags = TcpFlags(b.u16() & 0x1ff);
        let ctl = b.u8();
        let raw_seq = b.u32();
        let raw_ack = b.u32();
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
        let len = u32::from(b.u16());
        let payload_len = match ctl >> 2 & 3 {
            0 => 0,
            1 | 2 => len,
            _ => len << 16 | len,
        };
        let step = i64::from(b.u16() as i16);
        ts = match ctl >> 4 & 7 {
            0 => ts.saturating_add(step * 1_000),
            1 => ts.saturating_add(step * 1_000_000),
            2 => ts.saturating_add(step * 1_000_000_000),
            3 => ts.saturating_add(step.saturating_mul(3_000_000_000_000_000)),
            4 => ts.saturating_sub(step.unsigned_abs() as i64 * 100_000_000),
            5 => [i64::MIN, i64::MAX, 0, -1][usize::from(step as u16 & 3)],
            _ => ts,
        };
        let o = b.u8();
        let mut options = OptionSummary {
            mss: (o & 1 != 0).then(|| b.u16()),
            wscale: (o & 2 != 0).then(|| b.u8()),
            sack_permitted: o & 4 != 0,
            timestamps: (o & 8 != 0).then(|| (b.u32(), b.u32())),
            fast_open: o & 0x80 != 0,
            ..OptionSummary::default()
        };
        if o & 0x10 != 0 {
            // SACK blocks near the acknowledgment number, and a count up to 255 (the decoder
            // keeps 4 and counts the rest).
            let n = b.u8();
            options.sack_count = if n & 0x80 != 0 { n } else { n & 3 };
            for blk in options.sack.iter_mut() {
                let l = ack.wrapping_add(u32::from(b.u16()));
                *blk = (l, l.wrapping_add(u32::from(b.u8()) << 4));
            }
        }
        let ttl = if o & 0x20 != 0 { b.u8() } else { 64 };
        if flags.syn() || flags.fin() || payload_len > 0 {
            next[dir] = seq
                .wrapping_add(payload_len)
                .wrapping_add(u32::from(flags.syn()) + u32::from(flags.fin()));
        } else {
            next[dir] = seq;
        }
        out.push(Segment {
            number: out.len() as u64 + 1,
            ts: Timestamp(ts),
            src: ADDRS[s].parse().expect("address"),
            dst: ADDRS[d].parse().expect("address"),
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

/// `--json` output is one JSON object.
pub fn json_document(out: &[u8]) {
    if let Err(e) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(out) {
        panic!("invalid --json ({e}):\n{}", String::from_utf8_lossy(out));
    }
}

/// `--ndjson` output is lines of JSON objects, each with a `type`, the last a `summary`.
pub fn json_lines(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("--ndjson is UTF-8");
    let mut last = None;
    for line in text.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => panic!("invalid --ndjson line ({e}):\n{line}"),
        };
        last = Some(v["type"].as_str().expect("a type").to_string());
    }
    assert_eq!(last.as_deref(), Some("summary"), "{text}");
}
