//! Runs the TCP analysis beside the printers: one call per TCP packet, one at the end.

use crate::analysis::{AnalysisConfig, Analyzer, ConnSummary};
use crate::config::{Config, Mode};
use crate::decode::Segment;
use crate::detect::Detectors;
use crate::report::annotate::Annotator;
use crate::report::findings;
use crate::report::json::{ConnNotes, ConnRecord, ConnTracker, DocWriter, InputRec, StatsRec};
use crate::report::ndjson::{NdjsonWriter, write_connection};
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
        self.packet_to(&mut Sink::Now(out), seg, det)
    }

    /// [`Self::packet`], except that the JSON connection records are not written: the
    /// connections are pushed to `ended`, each with its place in `out`, for a writer on another
    /// thread to write ([`Ended::write`]).
    pub fn packet_deferred(
        &mut self,
        out: &mut Vec<u8>,
        ended: &mut Vec<Ended>,
        seg: &Segment,
        det: &mut Detectors,
    ) -> io::Result<()> {
        self.packet_to(&mut Sink::Later(out, ended), seg, det)
    }

    fn packet_to(
        &mut self,
        out: &mut Sink<'_>,
        seg: &Segment,
        det: &mut Detectors,
    ) -> io::Result<()> {
        if self.mode == Mode::Plain {
            return Ok(());
        }
        let info = self.analyzer.packet(seg);
        det.packet(seg, info);
        match self.mode {
            Mode::Annotated => self.annotator.write(out.bytes(), info)?,
            // After its record, a connection has no notes: they went out with it.
            Mode::Ndjson => {
                if !info.after_record {
                    self.notes.packet(info);
                }
                self.ndjson.packet(out.bytes(), seg, info)?;
            }
            Mode::Json if !info.after_record => self.notes.packet(info),
            Mode::Json | Mode::Summary | Mode::Plain => {}
        }
        self.flush_ended(out, det)
    }

    fn flush_ended(&mut self, out: &mut Sink<'_>, det: &mut Detectors) -> io::Result<()> {
        for mut c in self.analyzer.drain_ended() {
            det.connection(&mut c);
            let json = match self.mode {
                Mode::Ndjson => false,
                Mode::Json => true,
                Mode::Plain => continue,
                Mode::Annotated | Mode::Summary => {
                    self.table.push(c);
                    continue;
                }
            };
            let notes = self.notes.take(c.id);
            match out {
                Sink::Now(out) if json => {
                    self.doc.connection(*out, &ConnRecord::new(&c, &notes))?
                }
                Sink::Now(out) => self.ndjson.connection(*out, &ConnRecord::new(&c, &notes))?,
                Sink::Later(bytes, ended) => {
                    if json {
                        self.doc.connection_deferred(bytes);
                    }
                    ended.push(Ended {
                        at: bytes.len(),
                        json,
                        summary: c,
                        notes,
                    });
                }
            }
        }
        // A finding's one-line form goes into the annotated stream as it fires.
        for f in det.drain_fired() {
            if self.mode == Mode::Annotated {
                findings::write_line(out.bytes(), &f)?;
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
        self.flush_ended(&mut Sink::Now(out), det)?;
        det.finish();
        self.flush_ended(&mut Sink::Now(out), det)?;
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

/// Where the reports of a packet go.
enum Sink<'a> {
    /// Everything is written as it comes.
    Now(&'a mut dyn Write),
    /// The bytes go into a batch; the connections whose records the JSON reports write are
    /// left for the batch's writer.
    Later(&'a mut Vec<u8>, &'a mut Vec<Ended>),
}

impl Sink<'_> {
    /// Where the bytes go.
    fn bytes(&mut self) -> &mut dyn Write {
        match self {
            Sink::Now(out) => *out,
            Sink::Later(bytes, _) => *bytes,
        }
    }
}

/// A connection that ended, with its notes, whose JSON record is still to be written: the
/// analysing thread hands it over by value, and the thread that writes the output turns it into
/// text ([`AnalysisReport::packet_deferred`]).
#[derive(Debug)]
pub struct Ended {
    /// Where the record goes: after this many bytes of the batch's report text.
    pub at: usize,
    /// `--json` (an item of `connections`) or `--ndjson` (a `connection` line).
    json: bool,
    summary: ConnSummary,
    notes: ConnNotes,
}

impl Ended {
    /// Appends the record: the bytes the report would have written in its place.
    pub fn write(&self, out: &mut Vec<u8>) {
        let rec = ConnRecord::new(&self.summary, &self.notes);
        if self.json {
            rec.write_json(out);
        } else {
            write_connection(out, &rec);
        }
    }
}
