//! Drives one run: capture -> decode -> (filter, flows, analysis, detectors) -> reports.

use crate::capture::file::FileSource;
use crate::capture::{CaptureError, Frame};
use crate::config::{Config, Mode};
use crate::decode::{self, Kind};
use crate::filter::Filter;
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
}

/// Reads a capture file and writes the configured report to `out`.
///
/// Errors are I/O errors on `out` (a broken pipe among them) or an input that cannot be read at
/// all; damage part-way through is reported in the [`Outcome`].
pub fn run_file(
    path: &str,
    cfg: &Config,
    mut filter: Option<Filter>,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let mut source = FileSource::open(path)?;
    let mut printer = TcpdumpPrinter::new(cfg.line);
    let mut stats = Stats::default();
    let mut fatal: Option<anyhow::Error> = None;
    let limit = cfg.count.unwrap_or(u64::MAX);
    let mut passed = 0u64;
    let result = source.run(|frame| {
        if let Some(f) = filter.as_mut() {
            match f.matches(frame) {
                Ok(true) => {}
                Ok(false) => return ControlFlow::Continue(()),
                Err(e) => {
                    fatal = Some(e.into());
                    return ControlFlow::Break(());
                }
            }
        }
        // Like tcpdump's -# and -c, numbering and counting start after the filter.
        passed += 1;
        let frame = &Frame {
            number: passed,
            ..*frame
        };
        let d = decode::decode(frame);
        stats.count(d.kind);
        if d.kind == Kind::Tcp && matches!(cfg.mode, Mode::Plain | Mode::Annotated) {
            let r = printer
                .write_line(out, frame, &d)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = r {
                fatal = Some(e.into());
                return ControlFlow::Break(());
            }
        }
        if passed >= limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(e) = fatal {
        return Err(e);
    }
    out.flush()?;
    let damage = match result {
        Ok(()) => None,
        Err(e) if e.is_damage() => Some(e),
        Err(e) => return Err(e.into()),
    };
    Ok(Outcome { stats, damage })
}
