//! The run: the only module that makes threads or channels (crossbeam).
//!
//! One capture thread reads frames, numbers every frame with a 0-based
//! index, decodes, applies `--ports`, and shards segments by
//! `FlowKey::shard` to N worker threads, each owning one `Engine` (whole
//! flows, no locks). Workers send reports and a watermark to the output
//! stage, which runs on the calling thread (it owns the `Printer`).
//!
//! Invariants, on which file-mode output identical for any `--threads`
//! rests: ticks depend only on the input (every `TICK_FRAMES` frames and
//! whenever packet time moved `TICK_PERIOD` past the last tick), so every
//! engine sees the same clock at the same indexes; a worker's watermark is
//! the lowest `ReportOrder::trigger` it can still produce, so the output
//! stage prints a report only when its trigger is below every watermark.
//! Engines must stamp each report with the index of the call that produced
//! it. File mode blocks and loses nothing; live mode never blocks the
//! capture thread (`try_send`) and counts what it drops. Nothing here parses
//! packets or formats verdicts.

pub mod budget;
pub mod config;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::capture::decode::{self, DecodeCounters};
use crate::capture::segment::PortSet;
use crate::capture::segment::{Segment, Timestamp};
use crate::capture::source::{Capture, CaptureError, KernelStats, Read};
use crate::flow::engine::{self, Engine, EngineCounters, Limits, Options};
use crate::pipeline::config::Config;
use crate::report::answers::Answers;
use crate::report::calibration::Calibration;
use crate::report::gauges::Gauges;
use crate::report::output::Printer;
use crate::report::resumption::SessionMemory;
use crate::report::stats::{ProcessingTime, Summary, merge_entries};
use crate::tls::keylog::KeyLog;
use crate::verdict::{Event, Report, ReportOrder};

/// Reports per message at end of input.
const FINISH_CHUNK: usize = 512;

/// Segments per channel message (amortises the channel's cost).
pub const BATCH: usize = 128;
/// Payload bytes per batch before it is sent (a batch of full-size
/// segments stays under ~200 KiB).
const BATCH_BYTES: usize = 128 * 1024;
/// A tick at least every this many frames.
pub const TICK_FRAMES: u64 = 4096;
/// A tick whenever packet time advanced this much since the last one.
pub const TICK_PERIOD: Timestamp = Timestamp(1_000_000);
/// Emptied batches waiting to be reused, per worker.
pub const RECYCLED_PER_WORKER: usize = 8;

/// Heap bytes one batch may hold: its byte arena (allocated once at
/// `BATCH_BYTES`; a batch is sent before a segment would overflow it) and
/// its segment list. A single segment larger than the arena (offloaded
/// frames up to the snaplen) grows one arena once; such a batch is not
/// recycled.
pub fn batch_footprint() -> usize {
    BATCH_BYTES + BATCH * std::mem::size_of::<(u64, Segment<(u32, u32)>)>()
}

/// What `budget` divides the memory by: a batch's and a flow table's cost.
pub fn sizes() -> budget::Sizes {
    budget::Sizes {
        batch_bytes: batch_footprint(),
        loose_batches: RECYCLED_PER_WORKER + 1,
        table_bytes: engine::table_bytes,
    }
}

/// Each engine's limits: the bounds asked for, with the flow limit and
/// buffer budget the memory plan gives one worker.
pub fn engine_limits(plan: &budget::Plan) -> Limits {
    let b = &plan.bounds;
    let secs = |s: u32| Timestamp(i64::from(s) * 1_000_000);
    Limits {
        max_flows: plan.max_flows,
        stream_buffer: b.stream_buffer,
        stream_segments: b.ooo_segments,
        handshake_buffer: b.handshake_buffer,
        records_before_verdict: b.records,
        buffer_budget: plan.buffer_budget,
        idle_timeout: secs(b.idle_secs),
        embryonic_timeout: secs(b.syn_secs),
        closed_linger: secs(b.closed_secs),
    }
}

/// What the pipeline needs from the configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workers: usize,
    pub ports: Option<PortSet>,
    pub count: Option<u64>,
    /// Each worker's engine limits (`budget::plan`).
    pub limits: Limits,
    /// What every engine keeps and reports besides its verdicts.
    pub options: Options,
    /// `--calibrate`: tally the size rule against decrypted handshakes.
    pub calibrate: bool,
    /// Batches queued per worker before the capture thread waits (file) or
    /// drops (live).
    pub queue_batches: usize,
    /// The bounds in force, for the summary.
    pub limits_line: String,
    /// Print a line per verdict (off with `--summary-only`).
    pub flow_lines: bool,
    /// Print a line per close (`--close`).
    pub close_lines: bool,
}

impl Plan {
    pub fn from_config(config: &Config) -> Plan {
        // The memory budget and the flow limit are for the whole process:
        // each of N workers gets 1/N (its shard's share of the flows).
        let workers = config.threads.max(1);
        let budget = budget::plan(&config.bounds, workers, &sizes());
        Plan {
            workers,
            ports: config.ports.clone(),
            count: config.count,
            calibrate: config.calibrate,
            limits: engine_limits(&budget),
            options: Options {
                preview_bytes: config.preview_bytes,
                // Closes feed close lines and the metrics' closed flows and
                // bytes; without either, none are made.
                closes: config.close_lines || config.metrics.is_some(),
                keylog: None,
            },
            queue_batches: budget.queue_batches,
            limits_line: budget.describe(),
            flow_lines: config.flow_lines,
            close_lines: config.close_lines,
        }
    }
}

/// How a run ended, when it did not fail.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    /// stdout went away (`| head`): exit 0 quietly.
    pub stdout_closed: bool,
    /// Reading stopped on an error after the run started (a truncated
    /// file); what was read is printed and summarised, then exit 1.
    pub read_error: Option<CaptureError>,
    /// `--calibrate`: the tally over every printed verdict.
    pub calibration: Option<Calibration>,
}

/// A failure of the run itself.
#[derive(Debug)]
pub enum RunError {
    Output(io::Error),
    Internal(&'static str),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Output(e) => write!(f, "cannot write output: {e}"),
            RunError::Internal(what) => write!(f, "internal error: {what}; please report it"),
        }
    }
}

impl std::error::Error for RunError {}

/// Segments for one worker with their payloads in one shared byte arena:
/// no allocation per segment. Emptied batches go back to the capture thread
/// (the recycle channel) and are filled again.
pub struct Batch {
    /// (frame index, segment whose payload is `(offset, len)` in `bytes`).
    segments: Vec<(u64, Segment<(u32, u32)>)>,
    bytes: Vec<u8>,
}

impl Batch {
    fn new() -> Self {
        // The arena is allocated once at its full size (no doubling past
        // it: `fits` sends the batch first); a recycled batch keeps it, so
        // steady state allocates nothing.
        Batch {
            segments: Vec::with_capacity(BATCH),
            bytes: Vec::with_capacity(BATCH_BYTES),
        }
    }

    /// Whether `len` more payload bytes fit the arena without growing it
    /// (an empty batch takes any segment).
    fn fits(&self, len: usize) -> bool {
        self.segments.is_empty() || self.bytes.len() + len <= BATCH_BYTES
    }

    fn clear(&mut self) {
        self.segments.clear();
        self.bytes.clear();
    }

    fn is_full(&self) -> bool {
        self.segments.len() >= BATCH || self.bytes.len() >= BATCH_BYTES
    }

    fn push(&mut self, index: u64, seg: Segment<&[u8]>) {
        let offset = self.bytes.len() as u32;
        self.bytes.extend_from_slice(seg.payload);
        let len = seg.payload.len() as u32;
        self.segments
            .push((index, seg.map_payload(|_| (offset, len))));
    }
}

enum ToWorker {
    Segments(Batch),
    Tick { index: u64, now: Timestamp },
    Finish { index: u64 },
}

enum FromWorker {
    Reports {
        worker: usize,
        reports: Vec<Report>,
        /// The worker will send no report that sorts below this.
        watermark: ReportOrder,
    },
    Done {
        // Boxed: the counters outgrew the report message, and every
        // message on the channel is as large as the largest variant.
        counters: Box<EngineCounters>,
        processing: ProcessingTime,
    },
}

/// Decides when the capture thread broadcasts a tick. Pure: a function of
/// frame indexes and packet times only (plus wall time when idle, live).
#[derive(Debug, Clone, Default)]
pub struct TickClock {
    /// Highest packet time seen: the engines' clock never runs backwards.
    now: Option<Timestamp>,
    last_tick: Option<Timestamp>,
}

impl TickClock {
    /// Frame `index` with time `ts` is about to be dispatched; returns the
    /// tick to broadcast before it, if one is due.
    pub fn on_frame(&mut self, index: u64, ts: Timestamp) -> Option<Timestamp> {
        let now = self.now.map_or(ts, |n| n.max(ts));
        self.now = Some(now);
        let last = *self.last_tick.get_or_insert(now);
        let due = (index > 0 && index.is_multiple_of(TICK_FRAMES))
            || now.0.saturating_sub(last.0) >= TICK_PERIOD.0;
        if due {
            self.last_tick = Some(now);
        }
        due.then_some(now)
    }

    /// Live capture idle: tick at wall time (never before packet time).
    pub fn on_idle(&mut self, wall: Timestamp) -> Timestamp {
        let now = self.now.map_or(wall, |n| n.max(wall));
        self.now = Some(now);
        self.last_tick = Some(now);
        now
    }
}

/// The output stage's ordering, without threads: reports wait in a heap
/// until no worker can still produce one that sorts before them.
#[derive(Debug)]
pub struct ReorderBuffer {
    heap: BinaryHeap<Reverse<Queued>>,
    /// Per worker: the lowest order it can still report.
    watermarks: Vec<ReportOrder>,
    /// Arrival number: keeps equal orders (one flow, one call) in the
    /// order their worker sent them.
    seq: u64,
    /// Reports that arrived below their worker's watermark.
    pub late: u64,
}

#[derive(Debug)]
struct Queued {
    order: ReportOrder,
    seq: u64,
    report: Report,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.order, self.seq) == (other.order, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.order, self.seq).cmp(&(other.order, other.seq))
    }
}

impl ReorderBuffer {
    pub fn new(workers: usize) -> Self {
        ReorderBuffer {
            heap: BinaryHeap::new(),
            watermarks: vec![
                ReportOrder {
                    trigger: 0,
                    flow: 0
                };
                workers.max(1)
            ],
            seq: 0,
            late: 0,
        }
    }

    /// Queue a report from `worker`. A report below that worker's own
    /// watermark breaks the engine's contract (it may print out of order):
    /// it is counted in `late`, never dropped.
    pub fn push(&mut self, worker: usize, report: Report) {
        if self
            .watermarks
            .get(worker)
            .is_some_and(|&w| report.order < w)
        {
            self.late += 1;
        }
        self.seq += 1;
        self.heap.push(Reverse(Queued {
            order: report.order,
            seq: self.seq,
            report,
        }));
    }

    /// Worker `worker` will report nothing with a trigger below `watermark`.
    pub fn advance(&mut self, worker: usize, watermark: u64) {
        self.advance_to(
            worker,
            ReportOrder {
                trigger: watermark,
                flow: 0,
            },
        );
    }

    /// Worker `worker` will report nothing that sorts below `watermark`
    /// (end of input: the same trigger for every flow, flows in order).
    pub fn advance_to(&mut self, worker: usize, watermark: ReportOrder) {
        if let Some(w) = self.watermarks.get_mut(worker) {
            *w = (*w).max(watermark);
        }
    }

    /// The next report that is safe to print, if any.
    pub fn pop_ready(&mut self) -> Option<Report> {
        let low = self
            .watermarks
            .iter()
            .copied()
            .min()
            .unwrap_or(ReportOrder {
                trigger: u64::MAX,
                flow: u64::MAX,
            });
        if self.heap.peek().is_some_and(|Reverse(q)| q.order < low) {
            self.heap.pop().map(|Reverse(q)| q.report)
        } else {
            None
        }
    }

    /// End of run: the next report in order, ready or not.
    pub fn pop_any(&mut self) -> Option<Report> {
        self.heap.pop().map(|Reverse(q)| q.report)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The capture thread's side of the worker channels.
struct Dispatcher {
    txs: Vec<Sender<ToWorker>>,
    batches: Vec<Batch>,
    /// Emptied batches coming back from the workers.
    recycled: Receiver<Batch>,
    live: bool,
    dropped_segments: u64,
    dropped_ticks: u64,
    /// A worker is gone (it panicked): stop reading.
    broken: bool,
}

impl Dispatcher {
    fn new(txs: Vec<Sender<ToWorker>>, recycled: Receiver<Batch>, live: bool) -> Self {
        let batches = txs.iter().map(|_| Batch::new()).collect();
        Dispatcher {
            txs,
            batches,
            recycled,
            live,
            dropped_segments: 0,
            dropped_ticks: 0,
            broken: false,
        }
    }

    /// Send one message; live mode may drop it (`may_drop`) rather than wait.
    /// Returns whether it was dropped.
    fn send(&mut self, worker: usize, msg: ToWorker, may_drop: bool) -> bool {
        let Some(tx) = self.txs.get(worker) else {
            return true;
        };
        if self.live && may_drop {
            match tx.try_send(msg) {
                Ok(()) => false,
                Err(TrySendError::Full(_)) => true,
                Err(TrySendError::Disconnected(_)) => {
                    self.broken = true;
                    true
                }
            }
        } else if tx.send(msg).is_err() {
            self.broken = true;
            true
        } else {
            false
        }
    }

    fn push(&mut self, worker: usize, index: u64, seg: Segment<&[u8]>) {
        if self
            .batches
            .get(worker)
            .is_some_and(|b| !b.fits(seg.payload.len()))
        {
            self.flush_one(worker, true);
        }
        let full = match self.batches.get_mut(worker) {
            Some(b) => {
                b.push(index, seg);
                b.is_full()
            }
            None => false,
        };
        if full {
            self.flush_one(worker, true);
        }
    }

    fn flush_one(&mut self, worker: usize, may_drop: bool) {
        let Some(b) = self.batches.get_mut(worker) else {
            return;
        };
        if b.segments.is_empty() {
            return;
        }
        let fresh = self.recycled.try_recv().unwrap_or_else(|_| Batch::new());
        let batch = std::mem::replace(b, fresh);
        let n = batch.segments.len() as u64;
        if self.send(worker, ToWorker::Segments(batch), may_drop) {
            self.dropped_segments += n;
        }
    }

    fn tick(&mut self, index: u64, now: Timestamp) {
        for w in 0..self.txs.len() {
            self.flush_one(w, true);
            if self.send(w, ToWorker::Tick { index, now }, true) {
                self.dropped_ticks += 1;
            }
        }
    }

    /// End of input: flush and finish every worker, waiting even live.
    fn finish(&mut self, index: u64) {
        for w in 0..self.txs.len() {
            self.flush_one(w, false);
            self.send(w, ToWorker::Finish { index }, false);
        }
    }
}

/// What the capture thread hands back.
struct CaptureEnd {
    packets: u64,
    decode: DecodeCounters,
    ports_skipped: u64,
    dropped_segments: u64,
    dropped_ticks: u64,
    kernel: Option<KernelStats>,
    error: Option<CaptureError>,
}

fn capture_loop(
    mut capture: Capture,
    mut disp: Dispatcher,
    ports: Option<&PortSet>,
    keylog: Option<&KeyLog>,
    stop: &AtomicBool,
    gauges: &Gauges,
) -> CaptureEnd {
    let shards = disp.txs.len();
    let mut index: u64 = 0;
    let mut clock = TickClock::default();
    let mut decode_counters = DecodeCounters::default();
    let mut ports_skipped = 0;
    let mut error = None;
    let mut publish_due = false;
    while !stop.load(Ordering::Relaxed) && !disp.broken {
        match capture.read_next() {
            Err(e) => {
                error = Some(e);
                break;
            }
            Ok(Read::End) => break,
            Ok(Read::Drained) => {}
            Ok(Read::Timeout) => {
                let now = clock.on_idle(wall_clock());
                disp.tick(index, now);
                // Live: pick up key log lines the proxy appended.
                if let Some(k) = keylog {
                    k.poll();
                }
                publish(gauges, index, &disp, &mut capture);
            }
            Ok(Read::Frame(frame)) => {
                if let Some(now) = clock.on_frame(index, frame.ts) {
                    disp.tick(index, now);
                    if let Some(k) = keylog {
                        k.poll();
                    }
                    // The frame borrows the capture: publish after it.
                    publish_due = true;
                }
                if let Some(seg) = decode::decode_borrowed(&frame, &mut decode_counters) {
                    let wanted =
                        ports.is_none_or(|p| p.contains(seg.src.port) || p.contains(seg.dst.port));
                    if wanted {
                        let shard = seg.key().shard(shards);
                        disp.push(shard, index, seg);
                    } else {
                        ports_skipped += 1;
                    }
                }
                index += 1;
            }
        }
        if publish_due {
            publish_due = false;
            publish(gauges, index, &disp, &mut capture);
        }
    }
    disp.finish(index);
    publish(gauges, index, &disp, &mut capture);
    CaptureEnd {
        packets: index,
        decode: decode_counters,
        ports_skipped,
        dropped_segments: disp.dropped_segments,
        dropped_ticks: disp.dropped_ticks,
        kernel: capture.stats(),
        error,
    }
}

/// Live counters for the metrics endpoint and the progress bar, at ticks.
fn publish(gauges: &Gauges, packets: u64, disp: &Dispatcher, capture: &mut Capture) {
    gauges.publish_capture(
        packets,
        disp.dropped_segments,
        disp.dropped_ticks,
        capture.stats(),
    );
}

fn worker_loop(
    worker: usize,
    plan: &Plan,
    rx: Receiver<ToWorker>,
    tx: Sender<FromWorker>,
    recycle: Sender<Batch>,
    gauges: &Gauges,
) {
    let mut engine = Engine::new(plan.limits.clone(), plan.options.clone());
    let mut processing = ProcessingTime::default();
    let mut reports = Vec::new();
    for msg in rx {
        let (watermark, last) = match msg {
            ToWorker::Segments(mut batch) => {
                let mut next = 0;
                for (index, seg) in batch.segments.drain(..) {
                    let bytes = &batch.bytes;
                    let seg = seg.map_payload(|(offset, len)| {
                        let (o, l) = (offset as usize, len as usize);
                        bytes.get(o..o + l).unwrap_or_default()
                    });
                    // Time one segment in SAMPLE_EVERY: two clock reads
                    // per packet would cost more than the rest of a
                    // decided flow's packet.
                    if index.is_multiple_of(ProcessingTime::SAMPLE_EVERY) {
                        let started = Instant::now();
                        engine.on_segment(seg, index, &mut reports);
                        let nanos = started.elapsed().as_nanos();
                        processing.record(u64::try_from(nanos).unwrap_or(u64::MAX));
                    } else {
                        engine.on_segment(seg, index, &mut reports);
                    }
                    next = index.saturating_add(1);
                }
                batch.clear();
                // Back to the capture thread; if it has enough, drop it. An
                // arena grown by one oversized segment is not kept.
                if batch.bytes.capacity() <= BATCH_BYTES {
                    let _ = recycle.try_send(batch);
                }
                (
                    ReportOrder {
                        trigger: next,
                        flow: 0,
                    },
                    false,
                )
            }
            ToWorker::Tick { index, now } => {
                engine.on_tick(now, index, &mut reports);
                gauges.publish_engine(worker, engine.counters());
                (
                    ReportOrder {
                        trigger: index,
                        flow: 0,
                    },
                    false,
                )
            }
            ToWorker::Finish { index } => {
                // End of input reports every open flow: in chunks, so a SYN
                // flood's 100k+ pending flows never sit in memory as reports
                // all at once. Each chunk's watermark lets the output print.
                while let Some(next_flow) = engine.finish_some(index, FINISH_CHUNK, &mut reports) {
                    let msg = FromWorker::Reports {
                        worker,
                        reports: std::mem::take(&mut reports),
                        watermark: ReportOrder {
                            trigger: index,
                            flow: next_flow,
                        },
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
                (
                    ReportOrder {
                        trigger: u64::MAX,
                        flow: u64::MAX,
                    },
                    true,
                )
            }
        };
        let msg = FromWorker::Reports {
            worker,
            reports: std::mem::take(&mut reports),
            watermark,
        };
        if tx.send(msg).is_err() || last {
            break;
        }
    }
    gauges.publish_engine(worker, engine.counters());
    let _ = tx.send(FromWorker::Done {
        counters: Box::new(engine.counters().clone()),
        processing,
    });
}

/// The output stage's state: ordering, counting, `-c`, broken pipe.
struct Output<'a, W: Write> {
    printer: &'a mut Printer<W>,
    summary: Summary,
    count: Option<u64>,
    /// Stop printing (count reached, stdout closed, or write failed).
    done: bool,
    stdout_closed: bool,
    error: Option<io::Error>,
    stop: &'a AtomicBool,
    /// TLS <= 1.2 sessions, so resumptions inherit their verdicts.
    sessions: SessionMemory,
    calibration: Option<Calibration>,
    answers: &'a mut Answers,
    flow_lines: bool,
    close_lines: bool,
}

impl<W: Write> Output<'_, W> {
    fn emit(&mut self, report: Report) {
        if self.done {
            return;
        }
        let flow = report.order.flow;
        match report.event {
            Event::Verdict(mut verdict) => {
                self.sessions.link(&mut verdict);
                let printed = if self.flow_lines {
                    self.printer.print(&verdict)
                } else {
                    Ok(())
                };
                match printed {
                    Ok(()) => {
                        self.summary.record(&verdict);
                        self.answers.on_verdict(flow, &verdict);
                        if let Some(c) = self.calibration.as_mut() {
                            c.record(&verdict);
                        }
                        if self.count.is_some_and(|c| self.summary.printed() >= c) {
                            let flushed = self.printer.flush();
                            self.end(flushed);
                        }
                    }
                    Err(e) => self.end(Err(e)),
                }
            }
            Event::Close(close) => {
                let ids = self.answers.on_close(flow, &close);
                if self.close_lines
                    && let Err(e) = self.printer.print_close(&close, &ids)
                {
                    self.end(Err(e));
                }
            }
        }
    }

    /// Between messages: progress, a live summary that is due.
    fn wake(&mut self) {
        if self.done {
            return;
        }
        if let Err(e) = self.answers.on_wake(self.printer) {
            self.end(Err(e));
        }
    }

    /// Stop printing and ask the capture thread to stop reading.
    fn end(&mut self, res: io::Result<()>) {
        self.done = true;
        self.stop.store(true, Ordering::Relaxed);
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.stdout_closed = true,
            Err(e) => self.error = Some(e),
        }
    }
}

/// Run the pipeline over an opened capture until the input ends, `stop`
/// is set (signal), `-c` is reached or stdout closes. `answers` sees every
/// report in print order and publishes through its `Gauges`.
pub fn run<W: Write>(
    capture: Capture,
    plan: &Plan,
    printer: &mut Printer<W>,
    answers: &mut Answers,
    stop: &AtomicBool,
) -> Result<RunOutcome, RunError> {
    let gauges = answers.gauges();
    let gauges = &*gauges;
    let workers = plan.workers.max(1);
    let live = capture.is_live();
    let (out_tx, out_rx) = bounded::<FromWorker>(workers * 4 + 16);
    let mut to_workers = Vec::with_capacity(workers);
    let mut worker_rxs = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = bounded::<ToWorker>(plan.queue_batches.max(1));
        to_workers.push(tx);
        worker_rxs.push(rx);
    }
    // Emptied batches return to the capture thread through this; a few per
    // worker are enough to stop allocating in steady state.
    let (recycle_tx, recycle_rx) = bounded::<Batch>(workers * RECYCLED_PER_WORKER);
    let mut output = Output {
        printer,
        summary: Summary::default(),
        count: plan.count,
        done: false,
        stdout_closed: false,
        error: None,
        stop,
        sessions: SessionMemory::default(),
        calibration: plan.calibrate.then(Calibration::default),
        answers,
        flow_lines: plan.flow_lines,
        close_lines: plan.close_lines,
    };
    let mut processing = ProcessingTime::default();
    let mut engine_counters = EngineCounters::default();
    let mut reorder = ReorderBuffer::new(workers);

    let (capture_end, worker_panicked) = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(workers);
        for (i, rx) in worker_rxs.into_iter().enumerate() {
            let tx = out_tx.clone();
            let recycle = recycle_tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("mtlsniff-worker-{i}"))
                .spawn_scoped(s, move || worker_loop(i, plan, rx, tx, recycle, gauges));
            match h {
                Ok(h) => handles.push(h),
                Err(_) => {
                    // Too few threads: dropping rx makes the dispatcher see a
                    // broken worker and stop; report it as internal.
                    return (None, true);
                }
            }
        }
        drop(out_tx);
        drop(recycle_tx);
        let disp = Dispatcher::new(to_workers, recycle_rx, live);
        let ports = plan.ports.as_ref();
        let keylog = plan.options.keylog.as_deref();
        let capture_handle = std::thread::Builder::new()
            .name("mtlsniff-capture".into())
            .spawn_scoped(s, move || {
                capture_loop(capture, disp, ports, keylog, stop, gauges)
            });

        for msg in out_rx.iter() {
            match msg {
                FromWorker::Reports {
                    worker,
                    reports,
                    watermark,
                } => {
                    if live {
                        for r in reports {
                            output.emit(r);
                        }
                    } else {
                        for r in reports {
                            reorder.push(worker, r);
                        }
                        reorder.advance_to(worker, watermark);
                        while let Some(r) = reorder.pop_ready() {
                            output.emit(r);
                        }
                    }
                    output.wake();
                }
                FromWorker::Done {
                    counters,
                    processing: p,
                } => {
                    engine_counters.merge(&counters);
                    processing.merge(&p);
                }
            }
        }
        while let Some(r) = reorder.pop_any() {
            output.emit(r);
        }
        let mut panicked = false;
        for h in handles {
            panicked |= h.join().is_err();
        }
        let end = match capture_handle {
            Ok(h) => h.join().ok(),
            Err(_) => None,
        };
        let failed = panicked || end.is_none();
        (end, failed)
    });

    if !output.done
        && let Err(e) = output.printer.flush()
    {
        output.end(Err(e));
    }
    if let Some(e) = output.error {
        return Err(RunError::Output(e));
    }
    let Some(end) = capture_end else {
        return Err(RunError::Internal(
            "a pipeline thread could not start or panicked",
        ));
    };
    if worker_panicked {
        return Err(RunError::Internal("a worker thread panicked"));
    }
    let mut summary = output.summary;
    summary.packets = end.packets;
    summary.limits = Some(plan.limits_line.clone());
    summary.kernel = end.kernel;
    summary.dropped_segments = end.dropped_segments;
    summary.dropped_ticks = end.dropped_ticks;
    summary.ports_skipped = end.ports_skipped;
    summary.processing = processing;
    merge_entries(&mut summary.counters, &end.decode.entries());
    merge_entries(&mut summary.counters, &engine_counters.entries());
    merge_entries(
        &mut summary.counters,
        &[
            ("output.late_reports", reorder.late),
            ("sessions.inherited", output.sessions.inherited),
            ("sessions.forgotten", output.sessions.forgotten),
            (
                "close.identities_forgotten",
                output.answers.close_ids_forgotten(),
            ),
        ],
    );
    if let Some(k) = &plan.options.keylog {
        merge_entries(&mut summary.counters, &k.counters().entries());
    }
    // Everything is counted and printed: the gauges are final.
    gauges.finish();
    Ok(RunOutcome {
        summary,
        stdout_closed: output.stdout_closed,
        read_error: end.error,
        calibration: output.calibration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::Endpoint;
    use crate::verdict::{Basis, Class, ClientCert, Outcome, Verdict};

    fn report(trigger: u64, flow: u64) -> Report {
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        Report {
            order: ReportOrder { trigger, flow },
            event: Event::Verdict(Verdict {
                class: Class::Tls,
                outcome: Outcome::Ok,
                basis: Basis::Observed,
                client_cert: ClientCert::NotSent,
                reason: format!("{trigger}/{flow}"),
                ..Verdict::new(ep(1), ep(2), Timestamp(0), Timestamp(0))
            }),
        }
    }

    fn reason_mut(r: &mut Report) -> &mut String {
        match &mut r.event {
            Event::Verdict(v) => &mut v.reason,
            Event::Close(_) => unreachable!("test reports are verdicts"),
        }
    }

    fn drain_ready(b: &mut ReorderBuffer) -> Vec<(u64, u64)> {
        std::iter::from_fn(|| b.pop_ready())
            .map(|r| (r.order.trigger, r.order.flow))
            .collect()
    }

    #[test]
    fn reorder_waits_for_the_slowest_worker() {
        let mut b = ReorderBuffer::new(2);
        b.push(0, report(5, 1));
        b.push(0, report(3, 0));
        b.advance(0, 10);
        // Worker 1 may still report trigger 0..: nothing is safe.
        assert!(drain_ready(&mut b).is_empty());
        b.advance(1, 4);
        assert_eq!(drain_ready(&mut b), vec![(3, 0)]);
        // A late report below the other worker's watermark but not below
        // the minimum still sorts first.
        b.push(1, report(4, 7));
        b.push(1, report(4, 2));
        b.advance(1, 6);
        assert_eq!(drain_ready(&mut b), vec![(4, 2), (4, 7), (5, 1)]);
        assert!(b.is_empty());
    }

    #[test]
    fn reorder_is_strict_at_the_watermark_and_stable_on_ties() {
        let mut b = ReorderBuffer::new(1);
        b.push(0, report(8, 1));
        b.advance(0, 8);
        assert!(
            drain_ready(&mut b).is_empty(),
            "trigger 8 may still gain a lower flow"
        );
        let mut first = report(9, 3);
        *reason_mut(&mut first) = "first".into();
        b.push(0, first);
        let mut second = report(9, 3);
        *reason_mut(&mut second) = "second".into();
        b.push(0, second);
        b.advance(0, u64::MAX);
        let got: Vec<String> = std::iter::from_fn(|| b.pop_ready())
            .map(|r| r.into_verdict().unwrap().reason)
            .collect();
        assert_eq!(got, vec!["8/1", "first", "second"]);
        b.advance(0, 3); // watermarks never go back
        b.push(0, report(1, 1));
        assert_eq!(drain_ready(&mut b), vec![(1, 1)]);
        assert_eq!(
            b.late, 1,
            "a report below its worker's watermark is counted"
        );
    }

    #[test]
    fn reorder_output_is_independent_of_arrival_interleaving() {
        // Two workers' report streams, each in trigger order, interleaved
        // two different ways: the printed order must be the same.
        let w0 = [(1, 1), (4, 0), (9, 9)];
        let w1 = [(2, 2), (4, 3), (7, 2)];
        let run = |schedule: &[usize]| {
            let mut b = ReorderBuffer::new(2);
            let (mut i0, mut i1) = (0, 0);
            let mut out = Vec::new();
            for &w in schedule {
                let (list, i) = if w == 0 {
                    (&w0, &mut i0)
                } else {
                    (&w1, &mut i1)
                };
                if let Some(&(t, f)) = list.get(*i) {
                    b.push(w, report(t, f));
                    *i += 1;
                    b.advance(w, t + 1);
                } else {
                    b.advance(w, u64::MAX);
                }
                out.extend(drain_ready(&mut b));
            }
            out.extend(std::iter::from_fn(|| b.pop_any()).map(|r| (r.order.trigger, r.order.flow)));
            out
        };
        let a = run(&[0, 0, 0, 0, 1, 1, 1, 1]);
        let c = run(&[1, 0, 1, 0, 1, 0, 1, 0]);
        assert_eq!(a, c);
        assert_eq!(a, vec![(1, 1), (2, 2), (4, 0), (4, 3), (7, 2), (9, 9)]);
    }

    #[test]
    fn ticks_follow_frame_count_and_packet_time_only() {
        let mut c = TickClock::default();
        let sec = TICK_PERIOD.0;
        assert_eq!(c.on_frame(0, Timestamp(10 * sec)), None);
        assert_eq!(c.on_frame(1, Timestamp(10 * sec + 999_999)), None);
        assert_eq!(
            c.on_frame(2, Timestamp(11 * sec)),
            Some(Timestamp(11 * sec))
        );
        // Time going backwards does not move the clock back.
        assert_eq!(c.on_frame(3, Timestamp(5 * sec)), None);
        assert_eq!(
            c.on_frame(TICK_FRAMES, Timestamp(5 * sec)),
            Some(Timestamp(11 * sec))
        );
        assert_eq!(
            c.on_frame(TICK_FRAMES + 1, Timestamp(12 * sec)),
            Some(Timestamp(12 * sec))
        );
        assert_eq!(c.on_idle(Timestamp(3 * sec)), Timestamp(12 * sec));
        assert_eq!(c.on_idle(Timestamp(20 * sec)), Timestamp(20 * sec));
        assert_eq!(c.on_frame(TICK_FRAMES + 2, Timestamp(20 * sec + 10)), None);
    }
}
