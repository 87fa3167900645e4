//! Runs the TCP analysis beside the printers: one call per TCP packet, one at the end.

use crate::analysis::{AnalysisConfig, Analyzer};
use crate::config::{Config, Mode};
use crate::decode::Segment;
use crate::detect::{Detectors, Finding};
use crate::report::annotate::Annotator;
use crate::report::findings;
use crate::report::ndjson::{ConnRecord, NdjsonWriter, StatsRec};
use crate::report::table::ConnTable;
use std::io::{self, Write};

/// An `--ndjson` finding record.
#[derive(serde::Serialize)]
struct TypedFinding<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    f: &'a Finding,
}

/// The analyzer plus the reports that show it.
#[derive(Debug)]
pub struct AnalysisReport {
    analyzer: Analyzer,
    mode: Mode,
    annotator: Annotator,
    ndjson: NdjsonWriter,
    table: ConnTable,
    table_width: Option<u16>,
}

impl AnalysisReport {
    /// Set up for the run's configuration.
    pub fn new(cfg: &Config) -> Self {
        AnalysisReport {
            analyzer: Analyzer::new(cfg.analysis),
            mode: cfg.mode,
            annotator: Annotator::new(cfg.explain, cfg.color),
            ndjson: NdjsonWriter::new(),
            table: ConnTable::new(),
            table_width: if cfg.color { None } else { Some(220) },
        }
    }

    /// A default analysis, for tests and tools.
    pub fn with_mode(mode: Mode, explain: bool) -> Self {
        AnalysisReport {
            analyzer: Analyzer::new(AnalysisConfig::default()),
            mode,
            annotator: Annotator::new(explain, false),
            ndjson: NdjsonWriter::new(),
            table: ConnTable::new(),
            table_width: Some(220),
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
            Mode::Ndjson => self.ndjson.packet(out, seg, info)?,
            _ => {}
        }
        self.flush_ended(out, det)
    }

    fn flush_ended(&mut self, out: &mut dyn Write, det: &mut Detectors) -> io::Result<()> {
        for mut c in self.analyzer.drain_ended() {
            det.connection(&mut c);
            match self.mode {
                Mode::Ndjson => self.ndjson.connection(out, &c)?,
                Mode::Plain => {}
                _ => self.table.push(c),
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

    /// Ends the run: remaining connections, then the tables, the summary or the JSON document.
    /// `input` names the capture, `packets` counts every frame read.
    pub fn finish(
        &mut self,
        out: &mut dyn Write,
        input: &str,
        packets: u64,
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
                findings::write_table(out, det.findings(), self.table_width)
            }
            Mode::Ndjson => {
                for f in det.findings() {
                    serde_json::to_writer(
                        &mut *out,
                        &TypedFinding {
                            r#type: "finding",
                            f,
                        },
                    )?;
                    writeln!(out)?;
                }
                self.ndjson.summary(out, packets, &stats)
            }
            Mode::Json => {
                let doc = serde_json::json!({
                    "inputs": [input],
                    "stats": StatsRec::new(packets, &stats, false),
                    "connections": self.table.rows().iter().map(|c| ConnRecord::new(c, false)).collect::<Vec<_>>(),
                    "findings": det.findings(),
                });
                serde_json::to_writer_pretty(&mut *out, &doc)?;
                writeln!(out)
            }
            Mode::Plain => Ok(()),
        }
    }
}
