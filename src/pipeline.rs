//! Drives one run: capture -> decode -> filter -> (flows, analysis, detectors) -> reports.
//!
//! [`Run`] holds every stage after the capture; [`run_file`] and [`run_live`] feed it frames.

use crate::capture::file::{CaptureInfo, FileSource};
use crate::capture::{CaptureError, Frame};
use crate::config::{Config, Mode};
use crate::decode;
use crate::detect::Detectors;
use crate::filter::Filter;
use crate::report::analysis::AnalysisReport;
use crate::report::tcpdump::TcpdumpPrinter;
use crate::stats::Stats;
use std::io::Write;
use std::ops::ControlFlow;

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Counts by kind.
    pub stats: Stats,
    /// The damage that stopped reading early, if any.
    pub damage: Option<CaptureError>,
    /// What the capture stage read (absent for live input and unreadable headers).
    pub input: Option<CaptureInfo>,
}

/// The stages after the capture, fed one frame at a time.
pub struct Run<'o> {
    cfg: Config,
    filter: Option<Filter>,
    printer: TcpdumpPrinter,
    analysis: AnalysisReport,
    detectors: Detectors,
    /// The input's name, for the reports.
    input: String,
    stats: Stats,
    out: &'o mut dyn Write,
    /// Frames that passed the filter: tcpdump's `-#` and `-c` count these.
    passed: u64,
    /// An error that must end the run (output I/O, a filter that fails to compile).
    fatal: Option<anyhow::Error>,
}

impl<'o> Run<'o> {
    /// Sets up the stages for one run over `input` writing to `out`.
    pub fn new(cfg: &Config, input: &str, filter: Option<Filter>, out: &'o mut dyn Write) -> Self {
        Run {
            cfg: cfg.clone(),
            filter,
            printer: TcpdumpPrinter::new(cfg.line),
            analysis: AnalysisReport::new(cfg),
            detectors: Detectors::new(cfg.detect),
            input: input.to_string(),
            stats: Stats::default(),
            out,
            passed: 0,
            fatal: None,
        }
    }

    /// Handles one captured frame; `Break` ends the capture.
    pub fn on_frame(&mut self, frame: &Frame<'_>) -> ControlFlow<()> {
        if let Some(f) = self.filter.as_mut() {
            match f.matches(frame) {
                Ok(true) => {}
                Ok(false) => return ControlFlow::Continue(()),
                Err(e) => return self.fail(e.into()),
            }
        }
        self.passed += 1;
        let frame = &Frame {
            number: self.passed,
            ..*frame
        };
        let d = decode::decode(frame);
        self.stats.count(d.kind);
        if matches!(self.cfg.mode, Mode::Plain | Mode::Annotated)
            && let Err(e) = self.printer.write_packet(self.out, frame, &d)
        {
            return self.fail(e.into());
        }
        if let Some(seg) = &d.segment
            && let Err(e) = self.analysis.packet(self.out, seg, &mut self.detectors)
        {
            return self.fail(e.into());
        }
        if self.cfg.flush_each
            && let Err(e) = self.out.flush()
        {
            return self.fail(e.into());
        }
        if self.cfg.count.is_some_and(|c| self.passed >= c) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn fail(&mut self, e: anyhow::Error) -> ControlFlow<()> {
        self.fatal = Some(e);
        ControlFlow::Break(())
    }

    /// Ends the run with the capture's result: writes the end-of-run reports.
    pub fn finish(mut self, capture: Result<(), CaptureError>) -> anyhow::Result<Outcome> {
        if let Some(e) = self.fatal {
            return Err(e);
        }
        self.analysis.finish(
            self.out,
            &self.input,
            self.stats.packets,
            &mut self.detectors,
        )?;
        self.out.flush()?;
        let damage = match capture {
            Ok(()) => None,
            Err(e) if e.is_damage() => Some(e),
            Err(e) => return Err(e.into()),
        };
        Ok(Outcome {
            stats: self.stats,
            damage,
            input: None,
        })
    }
}

/// Reads a capture file (`-` for standard input) and writes the configured report to `out`.
///
/// Errors are I/O errors on `out` (a broken pipe among them) or an input that cannot be read at
/// all; damage part-way through is reported in the [`Outcome`].
pub fn run_file(
    path: &str,
    cfg: &Config,
    filter: Option<Filter>,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let mut source = match FileSource::open(path) {
        Ok(source) => source,
        // No capture header: nothing to report, but it is bad input (exit 2), not an I/O error.
        Err(e) if e.is_damage() => {
            return Ok(Outcome {
                stats: Stats::default(),
                damage: Some(e),
                input: None,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let filter = filter.map(|mut f| {
        f.set_big_endian(source.info().big_endian);
        f
    });
    let mut run = Run::new(cfg, path, filter, out);
    let result = source.run(|frame| run.on_frame(frame));
    let mut outcome = run.finish(result)?;
    outcome.input = Some(source.info().clone());
    Ok(outcome)
}

/// Captures live and writes the configured report to `out`; returns libpcap's counters too.
#[cfg(feature = "live")]
pub fn run_live(
    opts: crate::capture::live::LiveOptions,
    cfg: &Config,
    out: &mut dyn Write,
) -> anyhow::Result<(Outcome, crate::capture::live::LiveStats)> {
    let mut source = crate::capture::live::LiveSource::open(opts.clone())?;
    // tcpdump's announcement: scripts wait for it before they send traffic.
    eprintln!(
        "tcplens: listening on {}, link-type {}, snapshot length {} bytes",
        opts.iface,
        source.linktype(),
        opts.snaplen
    );
    // The kernel already filtered: no user-space filter.
    let mut run = Run::new(cfg, &opts.iface, None, out);
    let result = source.run(|frame| run.on_frame(frame));
    let outcome = run.finish(result)?;
    Ok((outcome, source.stats()))
}
