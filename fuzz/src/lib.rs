//! Helpers shared by the fuzz targets: how a fuzz input becomes link types, printing flags and
//! a sequence of frames, and the checks every target makes on what tcplens produced.
//!
//! A new target over frames (the TCP analysis, for one) reuses [`frames`] and [`LINKTYPES`], so
//! its seeds are the `decode_print` seeds (see scripts/fuzz.sh and docs/robustness.md).

use tcplens::capture::{Linktype, Timestamp};
use tcplens::config::{Config, LineFormat, Mode, TimeFormat};

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
