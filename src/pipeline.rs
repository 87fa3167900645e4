//! Drives one run: capture -> decode -> (filter, flows, analysis, detectors) -> reports.

use crate::capture::CaptureError;
use crate::capture::file::FileSource;
use crate::config::{Config, Mode};
use crate::decode::{self, Kind};
use crate::report::analysis::AnalysisReport;
use crate::report::tcpdump::TcpdumpPrinter;
use crate::stats::Stats;
use std::io::{self, Write};
use std::ops::ControlFlow;

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Counts by kind.
    pub stats: Stats,
    /// The damage that stopped reading early, if any.
    pub damage: Option<CaptureError>,
}

/// Reads a capture file and writes the configured report to `out`.
///
/// Errors are I/O errors on `out` (a broken pipe among them) or an input that cannot be read at
/// all; damage part-way through is reported in the [`Outcome`].
pub fn run_file(path: &str, cfg: &Config, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let mut source = FileSource::open(path)?;
    let mut printer = TcpdumpPrinter::new(cfg.line);
    let mut stats = Stats::default();
    let mut io_err: Option<io::Error> = None;
    let limit = cfg.count.unwrap_or(u64::MAX);
    let mut analysis = AnalysisReport::new(cfg);
    let result = source.run(|frame| {
        let d = decode::decode(frame);
        stats.count(d.kind);
        if d.kind == Kind::Tcp && matches!(cfg.mode, Mode::Plain | Mode::Annotated) {
            let r = printer
                .write_line(out, frame, &d)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = r {
                io_err = Some(e);
                return ControlFlow::Break(());
            }
        }
        if let Some(seg) = &d.segment
            && let Err(e) = analysis.packet(out, seg)
        {
            io_err = Some(e);
            return ControlFlow::Break(());
        }
        if stats.packets >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(e) = io_err {
        return Err(e.into());
    }
    analysis.finish(out, path, stats.packets)?;
    out.flush()?;
    let damage = match result {
        Ok(()) => None,
        Err(e) if e.is_damage() => Some(e),
        Err(e) => return Err(e.into()),
    };
    Ok(Outcome { stats, damage })
}
