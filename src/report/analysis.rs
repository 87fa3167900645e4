//! Runs the TCP analysis beside the printers: one call per TCP packet, one at the end.

use crate::analysis::{AnalysisConfig, Analyzer, ConnSummary, FlowKey, PacketInfo};
use crate::config::{Config, Mode};
use crate::decode::Segment;
use crate::detect::Detectors;
use crate::report::annotate::Annotator;
use crate::report::findings;
use crate::report::json::{ConnRecord, ConnTracker, DocWriter, InputRec, NoteDetail, StatsRec};
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
        self.packet_to(&mut Sink::Now(out), seg, None, det)
    }

    /// [`Self::packet`], except that the JSON reports' per-connection work is left to a
    /// [`RecordWriter`], on another thread: each packet's note for its connection and each
    /// connection that ended (with its place in `out`) go into `later`. `key` is the
    /// segment's [`Self::flow_key`].
    pub fn packet_deferred(
        &mut self,
        out: &mut Vec<u8>,
        later: &mut Deferred,
        seg: &Segment,
        key: &FlowKey,
        det: &mut Detectors,
    ) -> io::Result<()> {
        self.packet_to(&mut Sink::Later(out, later), seg, Some(key), det)
    }

    /// The analysis's key of the connection of `seg` ([`Analyzer::flow_key`]).
    #[inline]
    pub fn flow_key(&self, seg: &Segment) -> FlowKey {
        self.analyzer.flow_key(seg)
    }

    /// A hint that a packet with this [`Self::flow_key`] is analysed soon
    /// ([`Analyzer::prefetch`]).
    #[inline]
    pub fn prefetch(&self, key: &FlowKey, step: u8) {
        self.analyzer.prefetch(key, step);
    }

    /// A writer for the records of [`Self::packet_deferred`]; it takes the notes gathered so
    /// far, which [`Self::resume`] gives back.
    pub fn record_writer(&mut self) -> RecordWriter {
        RecordWriter {
            notes: std::mem::take(&mut self.notes),
            note: 0,
        }
    }

    /// Takes back the notes from the writer of the deferred records, once it has written all of
    /// them: from here on, records are written by this report again.
    pub fn resume(&mut self, w: RecordWriter) {
        self.notes = w.notes;
    }

    fn packet_to(
        &mut self,
        out: &mut Sink<'_>,
        seg: &Segment,
        key: Option<&FlowKey>,
        det: &mut Detectors,
    ) -> io::Result<()> {
        if self.mode == Mode::Plain {
            return Ok(());
        }
        let info = match key {
            Some(k) => self.analyzer.packet_keyed(seg, k),
            None => self.analyzer.packet(seg),
        };
        det.packet(seg, info);
        match self.mode {
            Mode::Annotated => self.annotator.write(out.bytes(), info)?,
            Mode::Json | Mode::Ndjson => {
                // After its record, a connection has no notes: they went out with it.
                if !info.after_record {
                    match out {
                        Sink::Now(_) => self.notes.packet(info),
                        Sink::Later(_, later) => later.note(info),
                    }
                }
                if self.mode == Mode::Ndjson {
                    self.ndjson.packet(out.bytes(), seg, info)?;
                }
            }
            Mode::Summary | Mode::Plain => {}
        }
        self.flush_ended(out, det)
    }

    fn flush_ended(&mut self, out: &mut Sink<'_>, det: &mut Detectors) -> io::Result<()> {
        // Most packets end no connection and fire nothing: no drains to set up then.
        if !self.analyzer.has_ended() && !det.has_fired() {
            return Ok(());
        }
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
            match out {
                Sink::Now(out) => {
                    let notes = self.notes.take(c.id);
                    let rec = ConnRecord::new(&c, &notes);
                    if json {
                        self.doc.connection(*out, &rec)?;
                    } else {
                        self.ndjson.connection(*out, &rec)?;
                    }
                }
                Sink::Later(bytes, later) => {
                    if json {
                        self.doc.connection_deferred(bytes);
                    }
                    later.ended.push(Ended {
                        at: bytes.len(),
                        json,
                        notes: later.notes.len(),
                        summary: c,
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
        // A chunk of connections at a time, each written before the next is ended.
        loop {
            let more = self.analyzer.finish_some();
            self.flush_ended(&mut Sink::Now(out), det)?;
            if !more {
                break;
            }
        }
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
    /// The bytes go into a batch; the JSON reports' notes and records are left for the batch's
    /// writer.
    Later(&'a mut Vec<u8>, &'a mut Deferred),
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

/// The JSON reports' per-connection work of a batch of packets, handed by the analysing thread
/// to the thread that writes the output ([`AnalysisReport::packet_deferred`]): the notes of
/// the packets that have a detail (an annotation kind or a state change: about one in six),
/// and the connections that ended, by value. Appending to these (reused) vectors is all the
/// analysing thread does for the notes and records.
#[derive(Debug, Default)]
pub struct Deferred {
    /// Per analysed packet with a detail, before its connection's record: its connection id,
    /// its number and the detail.
    notes: Vec<(u64, u64, NoteDetail)>,
    /// Connections whose records are still to be written, in order.
    ended: Vec<Ended>,
}

/// Ended connections a [`Deferred`] keeps room for when it is cleared (about 256 KiB).
const ENDED_KEEP: usize = (256 << 10) / std::mem::size_of::<Ended>();

/// A connection that ended; its record is still to be written.
#[derive(Debug)]
struct Ended {
    /// Where the record goes: after this many bytes of the batch's report text.
    at: usize,
    /// `--json` (an item of `connections`) or `--ndjson` (a `connection` line).
    json: bool,
    /// The notes of the batch that come before the record.
    notes: usize,
    summary: ConnSummary,
}

impl Deferred {
    #[inline]
    fn note(&mut self, p: &PacketInfo) {
        if let Some(d) = NoteDetail::of(p) {
            self.notes.push((p.conn, p.number, d));
        }
    }

    /// Connections whose records are still to be written.
    pub fn records(&self) -> usize {
        self.ended.len()
    }

    /// Where the record of connection `i` goes: after this many bytes of the batch's report
    /// text.
    pub fn place(&self, i: usize) -> usize {
        self.ended.get(i).map_or(0, |e| e.at)
    }

    /// Empties it for the next batch. The connections a burst ended (a sweep ends thousands
    /// at once) give their room back, as the batch's text buffers do.
    pub fn clear(&mut self) {
        self.notes.clear();
        self.ended.clear();
        if self.ended.capacity() > ENDED_KEEP {
            self.ended.shrink_to(ENDED_KEEP / 16);
        }
    }
}

/// Writes the records of [`Deferred`] batches, in order, and keeps the notes of the live
/// connections from their notes ([`AnalysisReport::record_writer`]).
#[derive(Debug)]
pub struct RecordWriter {
    notes: ConnTracker,
    /// How many of the current batch's notes are applied.
    note: usize,
}

impl RecordWriter {
    /// Appends the record of connection `i` of the batch `d`; `i` counts up from 0 within a
    /// batch, and [`Self::end_batch`] follows each batch.
    pub fn write(&mut self, d: &Deferred, i: usize, out: &mut Vec<u8>) {
        let Some(e) = d.ended.get(i) else {
            return;
        };
        self.apply(d, e.notes);
        let notes = self.notes.take(e.summary.id);
        let rec = ConnRecord::new(&e.summary, &notes);
        if e.json {
            rec.write_json(out);
        } else {
            write_connection(out, &rec);
        }
    }

    /// Applies the rest of the batch's notes.
    pub fn end_batch(&mut self, d: &Deferred) {
        self.apply(d, d.notes.len());
        self.note = 0;
    }

    /// Applies the batch's notes up to `end`.
    fn apply(&mut self, d: &Deferred, end: usize) {
        for (conn, number, detail) in d.notes.get(self.note..end).unwrap_or_default() {
            self.notes.note(*conn, *number, detail);
        }
        self.note = self.note.max(end);
    }
}
