//! Drives one run: capture -> decode -> filter -> (flows, analysis, detectors) -> reports.
//!
//! [`Run`] holds every stage after the capture; [`run_file`] and [`run_live`] feed it frames.
//! A run has two halves: the front (filter, decode, the tcpdump line) and the back (analysis,
//! detectors, the reports, the output). A file is read with the front on a second thread,
//! handing over batches of printed lines and segments, so reading, decoding and printing
//! overlap with the analysis and the writing; live capture runs both halves on one thread, so
//! each packet is written as it arrives.

use crate::capture::file::{CaptureInfo, FileSource};
use crate::capture::{CaptureError, Frame, Linktype};
use crate::config::{Config, Mode};
use crate::decode::{self, Decoded, Segment};
use crate::detect::Detectors;
use crate::filter::Filter;
use crate::report::analysis::{AnalysisReport, Deferred, RecordWriter};
use crate::report::json::{InputCounts, InputError, InputRec};
use crate::report::tcpdump::TcpdumpPrinter;
use crate::stats::Stats;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

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
    front: Front,
    back: Back<'o>,
    /// The input's name, for the reports.
    input: String,
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

/// The front half: filter, decode and the tcpdump line.
///
/// Aligned (as is [`Back`]) so that no cache line holds fields of both halves: they run on two
/// threads, and the counters the front bumps per frame sat on a line with the back's, which
/// cost ~0.09 s of CPU per million packets in cache-line transfers (measured).
#[repr(align(128))]
struct Front {
    filter: Option<Filter>,
    printer: TcpdumpPrinter,
    /// The mode prints tcpdump lines.
    prints: bool,
    /// Stop after this many frames passed the filter (`-c`).
    count: Option<u64>,
    stats: Stats,
    /// Frames that passed the filter: tcpdump's `-#` and `-c` count these.
    passed: u64,
    /// What was read, for the JSON reports.
    counts: InputCounts,
}

impl Front {
    /// Counts, filters, numbers, decodes and prints (appending to `text`) one frame, and hands
    /// its TCP segment to `segment` with the length of `text` after its line. The segment is
    /// lent, not returned: it is copied once, where the caller keeps it. `Ok(None)`: the
    /// filter dropped the frame; `Ok(Some(last))`: `last` when the `-c` count is reached.
    #[inline(always)]
    fn frame(
        &mut self,
        frame: &Frame<'_>,
        text: &mut Vec<u8>,
        segment: impl FnOnce(usize, &Segment),
    ) -> Result<Option<bool>, Fatal> {
        let c = &mut self.counts;
        c.read += 1;
        c.bytes += frame.data.len() as u64;
        c.first.get_or_insert(frame.ts);
        c.last = Some(frame.ts);
        if let Some(f) = self.filter.as_mut() {
            match f.matches(frame) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => return Err(Fatal::Filter(e.into())),
            }
        }
        self.passed += 1;
        self.counts.matched = self.passed;
        let frame = &Frame {
            number: self.passed,
            ..*frame
        };
        let mut d = Decoded::empty();
        decode::decode_into(frame, &mut d);
        self.stats.count(d.kind);
        if self.prints {
            self.printer.append_packet(text, frame, &d);
        }
        if let Some(seg) = &d.segment {
            segment(text.len(), seg);
        }
        let last = self.count.is_some_and(|c| self.passed >= c);
        if last {
            self.counts.stopped_by_count = true;
        }
        Ok(Some(last))
    }
}

/// The back half: analysis, detectors and the reports, written to the output (aligned: see
/// [`Front`]).
#[repr(align(128))]
struct Back<'o> {
    analysis: AnalysisReport,
    detectors: Detectors,
    out: &'o mut (dyn Write + Send),
    flush_each: bool,
    /// The line of the frame in hand (one-thread path).
    line: Vec<u8>,
}

impl<'o> Run<'o> {
    /// Sets up the stages for one run over `input` writing to `out`.
    pub fn new(
        cfg: &Config,
        input: &str,
        filter: Option<Filter>,
        out: &'o mut (dyn Write + Send),
    ) -> Self {
        Run {
            front: Front {
                filter,
                printer: TcpdumpPrinter::new(cfg.line),
                prints: matches!(cfg.mode, Mode::Plain | Mode::Annotated),
                count: cfg.count,
                stats: Stats::default(),
                passed: 0,
                counts: InputCounts::default(),
            },
            back: Back {
                analysis: AnalysisReport::new(cfg),
                detectors: Detectors::new(cfg.detect),
                out,
                flush_each: cfg.flush_each,
                line: Vec::with_capacity(512),
            },
            input: input.to_string(),
            fatal: None,
        }
    }

    /// Handles one captured frame; `Break` ends the capture.
    pub fn on_frame(&mut self, frame: &Frame<'_>) -> ControlFlow<()> {
        let b = &mut self.back;
        b.line.clear();
        let mut segment = None;
        let last = match self
            .front
            .frame(frame, &mut b.line, |_, s| segment = Some(*s))
        {
            Ok(Some(last)) => last,
            Ok(None) => return ControlFlow::Continue(()),
            Err(f) => {
                self.fatal = Some(f);
                return ControlFlow::Break(());
            }
        };
        let mut written = b.out.write_all(&b.line);
        if let (Ok(()), Some(seg)) = (&written, &segment) {
            written = b.analysis.packet(b.out, seg, &mut b.detectors);
        }
        if written.is_ok() && b.flush_each {
            written = b.out.flush();
        }
        if let Err(e) = written {
            return self.fail(e.into());
        }
        if last {
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
                let inputs = [InputRec::new(
                    &self.input,
                    info,
                    live,
                    self.front.counts,
                    error,
                )];
                let b = &mut self.back;
                b.analysis
                    .finish(b.out, &self.front.stats, &inputs, &mut b.detectors)?;
                b.out.flush()?;
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
            stats: self.front.stats,
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
    out: &mut (dyn Write + Send),
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
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    if cfg.flush_each || !two_cores {
        let result = source.run(|frame| run.on_frame(frame));
        return run.finish(result, Some(source.info()), None);
    }
    let frames = match cfg.mode {
        Mode::Ndjson => NDJSON_BATCH_FRAMES,
        Mode::Annotated => BATCH_FRAMES / 2,
        _ => BATCH_FRAMES,
    };
    let (result, source) = run_split(&mut run, source, cfg.mode != Mode::Plain, frames);
    run.finish(result, Some(source.info()), None)
}

/// Frames that passed the filter per batch handed from the front thread to the back (half as
/// many in the annotated mode, whose batches also carry lines and annotations: 5M peak RSS
/// −0.7 MiB, CPU unchanged).
const BATCH_FRAMES: usize = 1024;
/// Frames per batch in `--ndjson`, whose back writes a ~450-byte record per packet into the
/// batch (a 1024-frame batch held ~460 KB of them): a quarter, so that what the queued batches
/// hold stays near the other modes'.
const NDJSON_BATCH_FRAMES: usize = 256;
/// Printed text per batch, in bytes, before it is handed over (~500 lines).
const BATCH_TEXT: usize = 64 * 1024;
/// Batches in flight between the threads: bounds the memory of the hand-over. Batches without
/// printed lines are small, and more of them let the back go on while the front writes a burst
/// (the JSON records of the hundreds of connections a sweep ends at once): `--json` 0.34 ->
/// 0.29-0.31 s wall on the 1M workload with 8 instead of 4.
const BATCHES_IN_FLIGHT: usize = 8;
/// Batches in flight when they carry printed lines (up to [`BATCH_TEXT`] each).
const TEXT_BATCHES_IN_FLIGHT: usize = 4;
/// Batches that exist besides those in flight: the front's, the back's, the writer's and one
/// finished. A batch keeps the capacity its buffers grew to, so the number that ever existed
/// is what the run holds until its end: uncapped, bursts took it to ~28 (~15 MB of `--ndjson`
/// records at 1024 frames a batch, 5M workload). At the cap the front writes finished batches
/// or waits for one to be written; it is then ahead of the back anyway.
const BATCHES_SPARE: usize = 4;
/// How many segments ahead the back asks for a connection to be brought into the cache (and
/// twice as many for the index line its lookup reads): 4 and 8 measured the same, 2 worse.
const PREFETCH_AHEAD: usize = 4;
/// A batch buffer larger than this is shrunk when the batch is reused.
const KEEP_CAPACITY: usize = 1 << 20;
/// The merge buffer is written out when it holds this much; pieces this large are written as
/// they are, not copied into it. A batch's lines and reports are less, so this bounds only the
/// bursts of JSON records (a sweep ending hundreds of connections), whose merge buffer touched
/// ~1 MiB with a 1 MiB bound.
const MERGE_BYTES: usize = 256 * 1024;

/// A batch of frames on its way through the two threads and out: the front fills `text` and
/// `items`, the back `extra`, `later` and `cuts`, then either thread writes it.
#[derive(Default)]
struct Batch {
    /// The tcpdump lines, back to back.
    text: Vec<u8>,
    /// Per frame with a segment (only when the mode analyses): where its line ends in `text`,
    /// and the segment.
    items: Vec<(usize, Segment)>,
    /// What the reports add after the lines (annotations, findings, NDJSON records), back to
    /// back.
    extra: Vec<u8>,
    /// The JSON reports' notes and the connections whose records the writer writes, each at
    /// its place in `extra`: the back hands them over instead of writing them.
    later: Deferred,
    /// Where the report text of a frame ends: all of it follows the frame's line.
    cuts: Vec<Cut>,
}

/// The `extra` text up to `extra` and the `later` records up to `ended` follow the `text` up
/// to `text`.
#[derive(Clone, Copy)]
struct Cut {
    text: usize,
    extra: usize,
    ended: usize,
}

impl Batch {
    /// Empties the batch for reuse. A buffer that one burst made large (e.g. the JSON records
    /// of thousands of connections ending in one sweep) is given back, so the batches held
    /// in the queues stay near their usual size.
    fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
        self.extra.clear();
        self.later.clear();
        self.cuts.clear();
        for v in [&mut self.text, &mut self.extra] {
            if v.capacity() > KEEP_CAPACITY {
                v.shrink_to(BATCH_TEXT);
            }
        }
    }
}

impl Back<'_> {
    /// Analyses a batch's segments, keeping what the reports write in `b.extra` and what the
    /// JSON reports leave to the writer in `b.later`. `keys` is scratch space.
    ///
    /// Each connection is asked into the cache ahead of its packet, in two steps
    /// ([`AnalysisReport::prefetch`]): the flow table's index line twice [`PREFETCH_AHEAD`]
    /// packets ahead, the connection itself [`PREFETCH_AHEAD`] packets ahead.
    fn analyse(
        analysis: &mut AnalysisReport,
        det: &mut Detectors,
        b: &mut Batch,
        keys: &mut Vec<crate::analysis::FlowKey>,
    ) -> io::Result<()> {
        let d = PREFETCH_AHEAD;
        keys.clear();
        keys.extend(b.items.iter().map(|(_, seg)| analysis.flow_key(seg)));
        for k in keys.iter().take(2 * d) {
            analysis.prefetch(k, 0);
        }
        for (i, ((end, seg), key)) in b.items.iter().zip(keys.iter()).enumerate() {
            if let Some(k) = keys.get(i + 2 * d) {
                analysis.prefetch(k, 0);
            }
            if let Some(k) = keys.get(i + d) {
                analysis.prefetch(k, 1);
            }
            let before = (b.extra.len(), b.later.records());
            analysis.packet_deferred(&mut b.extra, &mut b.later, seg, key, det)?;
            if (b.extra.len(), b.later.records()) != before {
                b.cuts.push(Cut {
                    text: *end,
                    extra: b.extra.len(),
                    ended: b.later.records(),
                });
            }
        }
        Ok(())
    }
}

/// The output while the two threads run: finished batches are queued and written in order by
/// whichever thread has time (the front when the back is behind, the back when it waits for
/// the front), so the cost of the write calls, of merging lines and annotations, and of the
/// JSON reports' notes and connection records lands on the less loaded thread.
struct Output<'o> {
    /// The writer; held while writing, so batches leave in queue order.
    writer: Mutex<Writer<'o>>,
    /// Finished and written batches.
    queues: Mutex<Queues>,
    /// Wakes the front waiting for a batch to fill (see [`Output::next_batch`]).
    wake: Condvar,
    /// A write failed: the run stops.
    failed: AtomicBool,
}

#[derive(Default)]
struct Queues {
    /// Finished batches, oldest first.
    ready: VecDeque<Batch>,
    /// Written batches, for the front to fill again.
    free: Vec<Batch>,
    /// The front waits in [`Output::next_batch`].
    front_waits: bool,
    /// The back takes no more batches.
    back_done: bool,
}

struct Writer<'o> {
    out: &'o mut (dyn Write + Send),
    /// Writes the JSON connection records the back left in the batches.
    records: RecordWriter,
    /// A batch's lines with what the reports add, merged for one write call.
    merged: Vec<u8>,
    /// The first write error; nothing is written after it.
    error: Option<io::Error>,
}

/// A lock that a panic on the other thread does not poison: the panic is re-raised at the join.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<'o> Output<'o> {
    fn new(out: &'o mut (dyn Write + Send), records: RecordWriter) -> Self {
        Output {
            writer: Mutex::new(Writer {
                out,
                records,
                merged: Vec::new(),
                error: None,
            }),
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
            failed: AtomicBool::new(false),
        }
    }

    /// Queues a finished batch.
    fn push(&self, b: Batch) {
        let mut q = lock(&self.queues);
        q.ready.push_back(b);
        if q.front_waits {
            self.wake.notify_one();
        }
    }

    /// The back takes no more batches: the front must not wait for it.
    fn back_done(&self) {
        lock(&self.queues).back_done = true;
        self.wake.notify_one();
    }

    /// A batch for the front to fill: a written one, else a new one while fewer than `most`
    /// were made (`made` counts them), else the front writes a finished batch, or waits for
    /// the back to finish one or for the back's write to end.
    fn next_batch(&self, made: &mut usize, most: usize, pace: &mut Pace) -> Batch {
        let mut poll = None;
        loop {
            let mut q = lock(&self.queues);
            let b = if let Some(b) = q.free.pop() {
                Some(b)
            } else if *made < most || q.back_done {
                *made += 1;
                Some(Batch::default())
            } else {
                None
            };
            if let Some(b) = b {
                if let Some(p) = &poll {
                    pace.waited(p);
                }
                return b;
            }
            if q.ready.is_empty() {
                // The other batches are in flight, with the back, or being written by it.
                if poll.get_or_insert_with(|| pace.wait()).within() {
                    drop(q);
                    Poll::spin();
                    continue;
                }
                q.front_waits = true;
                let mut q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                q.front_waits = false;
                continue;
            }
            drop(q);
            self.write_ready(true, 1);
        }
    }

    /// Writes the queued batches, at most `most` of them; returns how many it wrote. `wait`:
    /// also when the other thread is writing (then after it); otherwise leave them to it.
    fn write_ready(&self, wait: bool, most: usize) -> usize {
        let mut w = if wait {
            lock(&self.writer)
        } else {
            match self.writer.try_lock() {
                Ok(w) => w,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return 0,
            }
        };
        for written in 0..most {
            let Some(mut b) = lock(&self.queues).ready.pop_front() else {
                return written;
            };
            if w.error.is_none()
                && let Err(e) = w.write(&b)
            {
                w.error = Some(e);
                self.failed.store(true, Ordering::Relaxed);
            }
            b.clear();
            let mut q = lock(&self.queues);
            q.free.push(b);
            if q.front_waits {
                self.wake.notify_one();
            }
        }
        most
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

impl Writer<'_> {
    /// Writes a batch's lines, each followed by what the reports added after it, the
    /// connection records written here.
    fn write(&mut self, b: &Batch) -> io::Result<()> {
        let written = self.write_merged(b);
        self.records.end_batch(&b.later);
        written
    }

    fn write_merged(&mut self, b: &Batch) -> io::Result<()> {
        if b.cuts.is_empty() {
            return self.out.write_all(&b.text);
        }
        self.merged.clear();
        let (mut t, mut x, mut e) = (0, 0, 0);
        for cut in &b.cuts {
            self.piece(b.text.get(t..cut.text).unwrap_or_default())?;
            for i in e..cut.ended {
                let at = b.later.place(i);
                self.piece(b.extra.get(x..at).unwrap_or_default())?;
                x = at;
                self.records.write(&b.later, i, &mut self.merged);
                // Writes the merge buffer out if the record made it large.
                self.piece(&[])?;
            }
            self.piece(b.extra.get(x..cut.extra).unwrap_or_default())?;
            (t, x, e) = (cut.text, cut.extra, cut.ended);
        }
        self.piece(b.text.get(t..).unwrap_or_default())?;
        self.out.write_all(&self.merged)
    }

    /// Adds a piece to the merge buffer; a large one goes out on its own, after what is merged.
    /// The buffer so stays below twice [`MERGE_BYTES`].
    fn piece(&mut self, p: &[u8]) -> io::Result<()> {
        if p.len() < MERGE_BYTES {
            self.merged.extend_from_slice(p);
            if self.merged.len() < MERGE_BYTES {
                return Ok(());
            }
            let r = self.out.write_all(&self.merged);
            self.merged.clear();
            return r;
        }
        self.out.write_all(&self.merged)?;
        self.merged.clear();
        self.out.write_all(p)
    }
}

/// Calls [`Output::back_done`] when the back's loop ends, also by a panic, so that the front
/// never waits for a batch the back will not finish (the scope then joins it and the panic
/// goes on).
struct BackDone<'a, 'o>(&'a Output<'o>);

impl Drop for BackDone<'_, '_> {
    fn drop(&mut self) {
        self.0.back_done();
    }
}

/// Runs the front (read, filter, decode, print) on a second thread and the back (analysis,
/// reports) on this one; either writes (see [`Output`]). Frames reach the back in order, in
/// batches; the output is the same as one thread's. An output error stops the reading at the
/// next batch. A batch is handed over at `frames` frames (or [`BATCH_TEXT`] bytes of lines).
fn run_split(
    run: &mut Run<'_>,
    mut source: FileSource,
    analyses: bool,
    frames: usize,
) -> (Result<(), CaptureError>, FileSource) {
    let in_flight = if run.front.prints {
        TEXT_BATCHES_IN_FLIGHT
    } else {
        BATCHES_IN_FLIGHT
    };
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(in_flight);
    let front = &mut run.front;
    let Back {
        analysis,
        detectors,
        out,
        ..
    } = &mut run.back;
    let output_owned = Output::new(&mut **out, analysis.record_writer());
    let output = &output_owned;
    let (result, fatal, source, back_err) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut batch = Batch::default();
            let mut made = 1;
            let mut fatal = None;
            let mut pace = Pace::new();
            // Hands the batch over and takes the next to fill; false when the back has
            // stopped.
            let mut hand_over = |batch: &mut Batch| {
                let sent = match full_tx.try_send(std::mem::take(batch)) {
                    Ok(()) => true,
                    Err(TrySendError::Disconnected(_)) => false,
                    // The back is behind: write what it finished, then wait for it.
                    Err(TrySendError::Full(mut b)) => {
                        output.write_ready(false, usize::MAX);
                        let poll = pace.wait();
                        let sent = loop {
                            match full_tx.try_send(b) {
                                Ok(()) => break true,
                                Err(TrySendError::Disconnected(_)) => break false,
                                Err(TrySendError::Full(again))
                                    if poll.again() && !output.failed() =>
                                {
                                    b = again;
                                }
                                Err(TrySendError::Full(again)) => {
                                    break !output.failed() && full_tx.send(again).is_ok();
                                }
                            }
                        };
                        pace.waited(&poll);
                        sent
                    }
                };
                if sent {
                    *batch = output.next_batch(&mut made, in_flight + BATCHES_SPARE, &mut pace);
                }
                sent
            };
            let result = source.run(|frame| {
                let items = &mut batch.items;
                let keep = |end, seg: &Segment| {
                    if analyses {
                        items.push((end, *seg));
                    }
                };
                let last = match front.frame(frame, &mut batch.text, keep) {
                    Ok(Some(last)) => last,
                    Ok(None) => return ControlFlow::Continue(()),
                    Err(f) => {
                        fatal = Some(f);
                        return ControlFlow::Break(());
                    }
                };
                if (batch.items.len() >= frames || batch.text.len() >= BATCH_TEXT)
                    && !hand_over(&mut batch)
                {
                    return ControlFlow::Break(());
                }
                if last {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if !batch.text.is_empty() || !batch.items.is_empty() {
                let _ = hand_over(&mut batch);
            }
            (result, fatal, source)
        });
        let back_done = BackDone(output);
        let mut back_err = None;
        let mut keys = Vec::with_capacity(BATCH_FRAMES);
        let mut pace = Pace::new();
        loop {
            let mut b = match full_rx.try_recv() {
                Ok(b) => b,
                Err(mpsc::TryRecvError::Disconnected) => break,
                // Nothing to analyse yet: write what is finished while waiting, a batch at a
                // time, so that the next batch to analyse does not wait long.
                Err(mpsc::TryRecvError::Empty) => {
                    let mut next = None;
                    while next.is_none() && output.write_ready(false, 1) > 0 {
                        next = full_rx.try_recv().ok();
                    }
                    let poll = pace.wait();
                    while next.is_none() && poll.again() {
                        match full_rx.try_recv() {
                            Ok(b) => next = Some(b),
                            Err(mpsc::TryRecvError::Empty) => {}
                            Err(mpsc::TryRecvError::Disconnected) => break,
                        }
                    }
                    let next = next.map_or_else(|| full_rx.recv(), Ok);
                    pace.waited(&poll);
                    match next {
                        Ok(b) => b,
                        Err(_) => break,
                    }
                }
            };
            if output.failed() {
                break;
            }
            if let Err(e) = Back::analyse(analysis, detectors, &mut b, &mut keys) {
                back_err = Some(e);
                break;
            }
            output.push(b);
        }
        // Wakes the front if it waits to hand over a batch or for one to fill.
        drop(full_rx);
        drop(back_done);
        let (result, fatal, source) = reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        output.write_ready(true, usize::MAX);
        (result, fatal, source, back_err)
    });
    let writer = output_owned
        .writer
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    analysis.resume(writer.records);
    let out_err = writer.error.or(back_err);
    // An output error comes first: nothing more can be written.
    run.fatal = out_err.map(|e| Fatal::Output(e.into())).or(fatal);
    (result, source)
}

/// How long a thread that waits for the other polls before it sleeps. A sleep costs both: the
/// other thread a futex call to wake it (~3-4% of the back's time in the annotated mode, where
/// each thread waited ~300-500 times a run, ~90 µs on average), the sleeper the way out of the
/// scheduler and back. 200 µs is also how long the guest's idle loop polls before it halts.
const POLL: Duration = Duration::from_micros(200);

/// One thread's waits: it polls only while it works at least as long between two waits as it
/// last waited, i.e. while it is the busier thread and its waits are short. The other kind of
/// thread (the back in `--plain`, which only writes; the front in `--summary`, which only
/// decodes) sleeps at once: polling there spins most of the run (`--plain` 1M: CPU 0.31 ->
/// 0.40 s for ~5% less wall). The annotated mode polls and gained from the rule as well
/// (1M 0.312 -> 0.299 s, 5M 1.65 -> 1.52 s, medians of interleaved runs).
struct Pace {
    /// When the last wait ended.
    since: Instant,
    /// How long it was.
    last: Duration,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            since: Instant::now(),
            last: Duration::ZERO,
        }
    }

    /// Starts a wait: its polling phase, empty when the thread worked less than it last waited.
    fn wait(&self) -> Poll {
        let now = Instant::now();
        let limit = if now.duration_since(self.since) >= self.last {
            POLL
        } else {
            Duration::ZERO
        };
        Poll { start: now, limit }
    }

    /// The wait `p` started is over.
    fn waited(&mut self, p: &Poll) {
        self.since = Instant::now();
        self.last = self.since.duration_since(p.start);
    }
}

/// A wait's polling phase.
struct Poll {
    start: Instant,
    limit: Duration,
}

impl Poll {
    /// Spins a little; false once the phase is over (then sleep).
    fn again(&self) -> bool {
        Poll::spin();
        self.within()
    }

    fn within(&self) -> bool {
        self.start.elapsed() < self.limit
    }

    fn spin() {
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    }
}

/// Captures live and writes the configured report to `out`; returns libpcap's counters too.
#[cfg(feature = "live")]
pub fn run_live(
    opts: crate::capture::live::LiveOptions,
    cfg: &Config,
    out: &mut (dyn Write + Send),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A pace whose last wait lasted `last` and ended `ago`.
    fn pace(ago: Duration, last: Duration) -> Pace {
        Pace {
            since: Instant::now() - ago,
            last,
        }
    }

    #[test]
    fn a_thread_that_worked_longer_than_it_last_waited_polls() {
        let ms = Duration::from_millis;
        assert_eq!(pace(ms(3), ms(2)).wait().limit, POLL);
        assert_eq!(Pace::new().wait().limit, POLL);
    }

    #[test]
    fn a_thread_that_mostly_waits_sleeps_at_once() {
        let ms = Duration::from_millis;
        let p = pace(ms(1), ms(50)).wait();
        assert_eq!(p.limit, Duration::ZERO);
        assert!(!p.again());
    }

    #[test]
    fn a_wait_is_measured_from_its_start_to_its_end() {
        let mut pace = pace(Duration::ZERO, Duration::ZERO);
        let p = pace.wait();
        std::thread::sleep(Duration::from_millis(5));
        pace.waited(&p);
        assert!(pace.last >= Duration::from_millis(5), "{:?}", pace.last);
        // Right after a 5 ms wait the thread has worked less than that: no polling.
        assert_eq!(pace.wait().limit, Duration::ZERO);
    }
}
