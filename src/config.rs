//! The validated run configuration, built from the parsed flags once all parsing is done.

use crate::analysis::AnalysisConfig;
use crate::cli::OutputArgs;
use crate::detect::DetectConfig;
use std::io::IsTerminal;

/// Which report the run produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// tcpdump lines with an annotation after each, tables at the end.
    Annotated,
    /// Only tcpdump's line for each TCP packet.
    Plain,
    /// Only the end-of-run tables.
    Summary,
    /// One JSON document at the end.
    Json,
    /// One JSON record per line, streamed.
    Ndjson,
}

/// How timestamps are printed (tcpdump's `-t` family).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    /// `HH:MM:SS.ffffff` in local time (default).
    Clock,
    /// No timestamp (`-t`).
    None,
    /// Seconds since the epoch (`-tt`).
    Epoch,
    /// Delta since the previous packet (`-ttt`).
    Delta,
    /// Date and local time (`-tttt`).
    Date,
    /// Delta since the first packet (`-ttttt`).
    SinceFirst,
}

/// How the tcpdump line is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineFormat {
    /// Timestamp style.
    pub time: TimeFormat,
    /// Nanosecond digits.
    pub nano: bool,
    /// Absolute sequence numbers (`-S`).
    pub absolute: bool,
    /// Packet numbers (`-#`).
    pub number: bool,
    /// Link-level header (`-e`).
    pub link_header: bool,
    /// Verbosity (`-v` count).
    pub verbose: u8,
}

/// Everything a run needs, checked.
#[derive(Clone, Debug)]
pub struct Config {
    /// The report.
    pub mode: Mode,
    /// The tcpdump line's format.
    pub line: LineFormat,
    /// Spell out handshake and close arithmetic.
    pub explain: bool,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Flush the output after every packet (live capture streams as packets arrive).
    pub flush_each: bool,
    /// Timers and limits of the TCP analysis.
    pub analysis: AnalysisConfig,
    /// Colour the annotations (standard output is a terminal).
    pub color: bool,
    /// Rows of the end-of-run connection table.
    pub table_rows: usize,
    /// Thresholds of the cross-connection detectors.
    pub detect: DetectConfig,
}

/// Seconds (from the command line) to nanoseconds, checked.
fn secs_to_ns(name: &str, s: f64) -> anyhow::Result<i64> {
    if !(s.is_finite() && s > 0.0 && s < 1e9) {
        anyhow::bail!("--{name} must be a positive number of seconds, got {s}");
    }
    Ok((s * 1e9) as i64)
}

impl Config {
    /// Checks the output flags and builds the configuration.
    pub fn from_output_args(a: &OutputArgs) -> anyhow::Result<Config> {
        let mode = if a.plain {
            Mode::Plain
        } else if a.summary {
            Mode::Summary
        } else if a.json {
            Mode::Json
        } else if a.ndjson {
            Mode::Ndjson
        } else {
            Mode::Annotated
        };
        let time = match a.t {
            0 => TimeFormat::Clock,
            1 => TimeFormat::None,
            2 => TimeFormat::Epoch,
            3 => TimeFormat::Delta,
            4 => TimeFormat::Date,
            5 => TimeFormat::SinceFirst,
            n => anyhow::bail!("-t given {n} times: at most 5 (-ttttt)"),
        };
        if a.count == Some(0) {
            // tcpdump refuses it too: "invalid packet count 0".
            anyhow::bail!("invalid packet count 0 (-c takes a number of packets, at least 1)");
        }
        let analysis = AnalysisConfig {
            msl_ns: secs_to_ns("msl", a.msl)?,
            idle_ns: secs_to_ns("idle-timeout", a.idle_timeout)?,
            max_connections: a.max_connections.max(1),
            ..AnalysisConfig::default()
        };
        if a.syn_flood_threshold == 0 || a.time_wait_threshold == 0 || a.syn_cookie_min == 0 {
            anyhow::bail!(
                "--syn-flood-threshold, --time-wait-threshold and --syn-cookie-min must be at least 1"
            );
        }
        let detect = DetectConfig {
            window_ns: secs_to_ns("syn-window", a.syn_window)?,
            grace_ns: secs_to_ns("syn-grace", a.syn_grace)?,
            syn_flood_threshold: a.syn_flood_threshold,
            half_open_timeout_ns: secs_to_ns("half-open-timeout", a.half_open_timeout)?,
            time_wait_threshold: a.time_wait_threshold,
            two_msl_ns: analysis.msl_ns.saturating_mul(2),
            cookie_min: a.syn_cookie_min,
            max_tracked: analysis.max_connections,
            ..DetectConfig::default()
        };
        Ok(Config {
            mode,
            line: LineFormat {
                time,
                nano: a.nano,
                absolute: a.absolute,
                number: a.number,
                link_header: a.link_header,
                verbose: a.verbose,
            },
            explain: a.explain,
            count: a.count,
            flush_each: false,
            analysis,
            color: std::io::stdout().is_terminal(),
            table_rows: a.table_rows,
            detect,
        })
    }
}
