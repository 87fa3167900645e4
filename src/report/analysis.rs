//! Runs the TCP analysis beside the printers: one call per TCP packet, one at the end.

use crate::analysis::{AnalysisConfig, Analyzer};
use crate::config::{Config, Mode};
use crate::decode::Segment;
use crate::detect::Detectors;
use crate::report::annotate::Annotator;
use crate::report::findings;
use crate::report::json::{ConnRecord, ConnTracker, DocWriter, InputRec, StatsRec};
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
    table: ConnTable,
    table_width: Option<u16>,
}

impl AnalysisReport {
    /// Set up for the run's configuration.
    pub fn new(cfg: &Config) -> Self {
        let mut report = Self::build(cfg.analysis, cfg.mode, cfg.explain, cfg.color);
        report.table = ConnTable::with_limit(cfg.table_rows);
        report
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
            table: ConnTable::new(),
            table_width: if color { None } else { Some(220) },
        }
    }

    /// Analyses one TCP segment, feeds the detectors and writes what the mode shows of it
    /// (after its tcpdump line).
    pub fn packet(
        &mut self,
        out: &mut dyn Write,
        seg: &Segment,
        det: &mut Detectors,
    ) -> io::Result<()> {
        if self.mode == Mode::Plain {
            return Ok(());
        }
        let info = self.analyzer.packet(seg);
        det.packet(seg, info);
        match self.mode {
            Mode::Annotated => self.annotator.write(out, info)?,
            // After its record, a connection has no notes: they went out with it.
            Mode::Ndjson => {
                if !info.after_record {
                    self.notes.packet(info);
                }
                self.ndjson.packet(out, seg, info)?;
            }
            Mode::Json if !info.after_record => self.notes.packet(info),
            Mode::Json | Mode::Summary | Mode::Plain => {}
        }
        self.flush_ended(out, det)
    }

    fn flush_ended(&mut self, out: &mut dyn Write, det: &mut Detectors) -> io::Result<()> {
        for mut c in self.analyzer.drain_ended() {
            det.connection(&mut c);
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
        // A finding's one-line form goes into the annotated stream as it fires.
        for f in det.drain_fired() {
            if self.mode == Mode::Annotated {
                findings::write_line(out, &f)?;
            }
        }
        Ok(())
    }

    /// Ends the run: remaining connections, then the tables, the findings and the `summary`
    /// record, or the rest of the JSON document. `decode` counts every frame by kind; `inputs`
    /// describes the input.
    pub fn finish(
        &mut self,
        out: &mut dyn Write,
        decode: &Stats,
        inputs: &[InputRec],
        det: &mut Detectors,
    ) -> io::Result<()> {
        if self.mode == Mode::Plain {
            return Ok(());
        }
        det.end_of_capture();
        self.analyzer.finish();
        self.flush_ended(out, det)?;
        det.finish();
        self.flush_ended(out, det)?;
        let stats = *self.analyzer.stats();
        match self.mode {
            Mode::Annotated | Mode::Summary => {
                self.table.write(out, self.table_width)?;
                writeln!(
                    out,
                    "flow table: {} connections, at most {} live at once, {} ended by the idle \
                     timeout, {} evicted by --max-connections, {} packets after their \
                     connection's record (TIME_WAIT)",
                    stats.connections,
                    stats.peak_live,
                    stats.idle_expired,
                    stats.evicted,
                    stats.time_wait_packets
                )?;
                findings::write_table(out, det.findings(), self.table_width)
            }
            Mode::Ndjson => {
                // Findings are complete only now (figures grow until the end of the run).
                for f in det.findings() {
                    self.ndjson.finding(out, f)?;
                }
                self.ndjson
                    .summary(out, StatsRec::new(decode, &stats), inputs)
            }
            Mode::Json => {
                self.doc
                    .finish(out, det.findings(), StatsRec::new(decode, &stats), inputs)
            }
            Mode::Plain => Ok(()),
        }
    }
}
