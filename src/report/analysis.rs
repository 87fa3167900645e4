//! Runs the TCP analysis beside the printers: one call per TCP packet, one at the end.

use crate::analysis::{AnalysisConfig, Analyzer};
use crate::config::{Config, Mode};
use crate::decode::Segment;
use crate::report::annotate::Annotator;
use crate::report::json::{
    ConnRecord, ConnTracker, DocWriter, FindingRecord, FindingView, InputRec, StatsRec,
};
use crate::report::ndjson::NdjsonWriter;
use crate::report::table::ConnTable;
use crate::stats::Stats;
use std::io::{self, Write};

/// The analyzer plus the reports that show it.
#[derive(Debug)]
pub struct AnalysisReport {
    analyzer: Analyzer,
    mode: Mode,
    annotator: Annotator,
    ndjson: NdjsonWriter,
    doc: DocWriter,
    /// Per-connection notes for the JSON reports (empty in the other modes).
    notes: ConnTracker,
    /// Findings held for the `--json` document.
    findings: Vec<FindingRecord>,
    table: ConnTable,
    table_width: Option<u16>,
}

impl AnalysisReport {
    /// Set up for the run's configuration.
    pub fn new(cfg: &Config) -> Self {
        Self::build(cfg.analysis, cfg.mode, cfg.explain, cfg.color)
    }

    /// A default analysis, for tests and tools.
    pub fn with_mode(mode: Mode, explain: bool) -> Self {
        Self::build(AnalysisConfig::default(), mode, explain, false)
    }

    fn build(analysis: AnalysisConfig, mode: Mode, explain: bool, color: bool) -> Self {
        AnalysisReport {
            analyzer: Analyzer::new(analysis),
            mode,
            annotator: Annotator::new(explain, color),
            ndjson: NdjsonWriter::new(),
            doc: DocWriter::new(),
            notes: ConnTracker::default(),
            findings: Vec::new(),
            table: ConnTable::new(),
            table_width: if color { None } else { Some(220) },
        }
    }

    /// Analyses one TCP segment and writes what the mode shows of it (after its tcpdump line).
    pub fn packet(&mut self, out: &mut dyn Write, seg: &Segment) -> io::Result<()> {
        if self.mode == Mode::Plain {
            return Ok(());
        }
        let info = self.analyzer.packet(seg);
        match self.mode {
            Mode::Annotated => self.annotator.write(out, info)?,
            Mode::Ndjson => {
                self.notes.packet(info);
                self.ndjson.packet(out, seg, info)?;
            }
            Mode::Json => self.notes.packet(info),
            Mode::Summary | Mode::Plain => {}
        }
        self.flush_ended(out)
    }

    /// Reports a detector's finding: a `finding` record with `--ndjson`, an item of `findings`
    /// with `--json` (held until the end: detectors report rarely); other modes ignore it.
    pub fn finding(&mut self, out: &mut dyn Write, f: FindingRecord) -> io::Result<()> {
        match self.mode {
            Mode::Ndjson => self.ndjson.finding(out, FindingView::new(&f)),
            Mode::Json => {
                self.findings.push(f);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn flush_ended(&mut self, out: &mut dyn Write) -> io::Result<()> {
        for c in self.analyzer.drain_ended() {
            match self.mode {
                Mode::Ndjson => {
                    let n = self.notes.take(c.id);
                    self.ndjson.connection(out, &ConnRecord::new(&c, &n))?;
                }
                Mode::Json => {
                    let n = self.notes.take(c.id);
                    self.doc.connection(out, &ConnRecord::new(&c, &n))?;
                }
                Mode::Plain => {}
                Mode::Annotated | Mode::Summary => self.table.push(c),
            }
        }
        Ok(())
    }

    /// Ends the run: remaining connections, then the tables, the `summary` record or the rest
    /// of the JSON document. `decode` counts every frame by kind; `inputs` describes the input.
    pub fn finish(
        &mut self,
        out: &mut dyn Write,
        decode: &Stats,
        inputs: &[InputRec],
    ) -> io::Result<()> {
        if self.mode == Mode::Plain {
            return Ok(());
        }
        self.analyzer.finish();
        self.flush_ended(out)?;
        let stats = *self.analyzer.stats();
        match self.mode {
            Mode::Annotated | Mode::Summary => self.table.write(out, self.table_width),
            Mode::Ndjson => self
                .ndjson
                .summary(out, StatsRec::new(decode, &stats), inputs),
            Mode::Json => {
                self.doc
                    .finish(out, &self.findings, StatsRec::new(decode, &stats), inputs)
            }
            Mode::Plain => Ok(()),
        }
    }
}
