//! Drives one run: capture -> decode -> filter -> (flows, analysis, detectors) -> reports.
//!
//! [`Run`] holds every stage after the capture; [`run_file`] and [`run_live`] feed it frames.

use crate::capture::file::{CaptureInfo, FileSource};
use crate::capture::{CaptureError, Frame, Linktype};
use crate::config::{Config, Mode};
use crate::decode;
use crate::detect::Detectors;
use crate::filter::Filter;
use crate::report::analysis::AnalysisReport;
use crate::report::json::{InputCounts, InputError, InputRec};
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
    /// What was read, for the JSON reports.
    counts: InputCounts,
    /// An error that must end the run.
    fatal: Option<Fatal>,
}

/// Errors that end a run early.
enum Fatal {
    /// Writing the report failed: nothing more can be written.
    Output(anyhow::Error),
    /// The filter failed: the reports still end properly.
    Filter(anyhow::Error),
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
            counts: InputCounts::default(),
            fatal: None,
        }
    }

    /// Handles one captured frame; `Break` ends the capture.
    pub fn on_frame(&mut self, frame: &Frame<'_>) -> ControlFlow<()> {
        let c = &mut self.counts;
        c.read += 1;
        c.bytes += frame.data.len() as u64;
        c.first.get_or_insert(frame.ts);
        c.last = Some(frame.ts);
        if let Some(f) = self.filter.as_mut() {
            match f.matches(frame) {
                Ok(true) => {}
                Ok(false) => return ControlFlow::Continue(()),
                Err(e) => {
                    self.fatal = Some(Fatal::Filter(e.into()));
                    return ControlFlow::Break(());
                }
            }
        }
        self.passed += 1;
        self.counts.matched = self.passed;
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
            self.counts.stopped_by_count = true;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// An output error: the run stops without writing more.
    fn fail(&mut self, e: anyhow::Error) -> ControlFlow<()> {
        self.fatal = Some(Fatal::Output(e));
        ControlFlow::Break(())
    }

    /// Ends the run with the capture's result: writes the end-of-run reports, which name the
    /// error that stopped reading, if any. `info` is what the file reader found, `live` the
    /// live interface's link type.
    pub fn finish(
        mut self,
        capture: Result<(), CaptureError>,
        info: Option<&CaptureInfo>,
        live: Option<Linktype>,
    ) -> anyhow::Result<Outcome> {
        let error = match (&self.fatal, &capture) {
            (Some(Fatal::Output(_)), _) => None,
            (Some(Fatal::Filter(e)), _) => Some(InputError::filter(&self.input, e)),
            (None, Err(e)) => Some(InputError::capture(e)),
            (None, Ok(())) => None,
        };
        match self.fatal.take() {
            Some(Fatal::Output(e)) => return Err(e),
            fatal => {
                let inputs = [InputRec::new(&self.input, info, live, self.counts, error)];
                self.analysis
                    .finish(self.out, &self.stats, &inputs, &mut self.detectors)?;
                self.out.flush()?;
                if let Some(Fatal::Filter(e)) = fatal {
                    return Err(e);
                }
            }
        }
        let damage = match capture {
            Ok(()) => None,
            Err(e) if e.is_damage() => Some(e),
            Err(e) => return Err(e.into()),
        };
        Ok(Outcome {
            stats: self.stats,
            damage,
            input: info.cloned(),
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
        // The JSON reports are still one valid document, naming the error.
        Err(e) if matches!(cfg.mode, Mode::Json | Mode::Ndjson) => {
            return Run::new(cfg, path, None, out).finish(Err(e), None, None);
        }
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
    run.finish(result, Some(source.info()), None)
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
    let outcome = run.finish(result, None, Some(source.linktype()))?;
    Ok((outcome, source.stats()))
}
