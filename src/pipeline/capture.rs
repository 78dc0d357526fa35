//! The capture thread: reading frames, numbering every frame with a
//! 0-based index, decoding, `--ports`, sharding segments by
//! `FlowKey::shard` into per-worker batches, and ticks.
//!
//! `Intake` is that per-frame work without threads or channels, so
//! `run_offline` numbers, ticks, filters and shards exactly as the capture
//! thread does. `Dispatcher` is the capture thread's side of the worker
//! channels: file mode blocks and loses nothing; live mode never blocks
//! (`try_send`) and counts what it drops. Nothing here looks inside
//! payloads or keeps flow state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::capture::decode::{self, DecodeCounters, Frame};
use crate::capture::mapped::Mapping;
use crate::capture::segment::{PortSet, Segment, Timestamp};
use crate::capture::source::{Capture, CaptureError, KernelStats, Read};
use crate::report::gauges::Gauges;
use crate::tls::keylog::KeyLog;

use super::batch::{Batch, ToWorker};
use super::clock::{TickClock, wall_clock};

/// Per-frame work of the capture thread, shared with `run_offline`.
pub(super) struct Intake<'a> {
    /// Index of the next frame (= frames read so far).
    pub(super) index: u64,
    clock: TickClock,
    pub(super) decode: DecodeCounters,
    ports: Option<&'a PortSet>,
    pub(super) ports_skipped: u64,
    keylog: Option<&'a KeyLog>,
    secrets_skipped: bool,
    shards: usize,
}

impl<'a> Intake<'a> {
    pub(super) fn new(
        shards: usize,
        ports: Option<&'a PortSet>,
        keylog: Option<&'a KeyLog>,
    ) -> Self {
        Intake {
            index: 0,
            clock: TickClock::default(),
            decode: DecodeCounters::default(),
            ports,
            ports_skipped: 0,
            keylog,
            secrets_skipped: false,
            shards: shards.max(1),
        }
    }

    /// The next frame has packet time `ts`: the tick to broadcast before
    /// it, stamped with its index, if one is due.
    pub(super) fn tick(&mut self, ts: Timestamp) -> Option<(u64, Timestamp)> {
        let now = self.clock.on_frame(self.index, ts)?;
        Some((self.index, now))
    }

    /// Live capture idle: a tick at wall time.
    pub(super) fn idle(&mut self) -> (u64, Timestamp) {
        (self.index, self.clock.on_idle(wall_clock()))
    }

    /// A pipe quiet for `quiet`: a tick at the last packet time plus it.
    pub(super) fn quiet(&mut self, quiet: Duration) -> (u64, Timestamp) {
        (self.index, self.clock.on_quiet(quiet))
    }

    /// A pcapng Decryption Secrets Block met in the stream: to the key
    /// log, as a file's are. Without one (no `--keylog`, no secrets before
    /// the first packet, so none was planned for) it is skipped, said once.
    pub(super) fn secrets(&mut self, text: &[u8]) {
        match self.keylog {
            Some(k) => k.add_capture_block(text),
            None => {
                if !self.secrets_skipped {
                    tracing::warn!(
                        "a Decryption Secrets Block after the first packet was skipped: pass the \
                         key log with --keylog, or put the secrets first (editcap --inject-secrets)"
                    );
                }
                self.secrets_skipped = true;
            }
        }
    }

    /// At a tick, after it is sent: pick up key log lines the proxy
    /// appended (live; a file's key log is read once).
    pub(super) fn poll_keylog(&self) {
        if let Some(k) = self.keylog {
            k.poll();
        }
    }

    /// Decode the next frame (None: not a TCP segment, counted).
    pub(super) fn decode<'f>(&mut self, frame: &'f Frame<'f>) -> Option<Segment<&'f [u8]>> {
        decode::decode_borrowed(frame, &mut self.decode)
    }

    /// The worker that owns this segment's flow, or None when `--ports`
    /// leaves it out (counted).
    pub(super) fn shard<P>(&mut self, seg: &Segment<P>) -> Option<usize> {
        let wanted = self
            .ports
            .is_none_or(|p| p.contains(seg.src.port) || p.contains(seg.dst.port));
        if !wanted {
            self.ports_skipped += 1;
            return None;
        }
        Some(seg.key().shard(self.shards))
    }

    /// The frame is dealt with: number the next one.
    pub(super) fn advance(&mut self) {
        self.index += 1;
    }
}

/// The capture thread's side of the worker channels.
pub(super) struct Dispatcher {
    txs: Vec<Sender<ToWorker>>,
    batches: Vec<Batch>,
    /// Emptied batches coming back from the workers.
    recycled: Receiver<Batch>,
    live: bool,
    mapping: Option<Mapping>,
    pub(super) dropped_segments: u64,
    pub(super) dropped_ticks: u64,
    /// A worker is gone (it panicked): stop reading.
    pub(super) broken: bool,
}

impl Dispatcher {
    /// `mapping`: the mapped file frames come from, whose payloads the
    /// batches then point into instead of copying.
    pub(super) fn new(
        txs: Vec<Sender<ToWorker>>,
        recycled: Receiver<Batch>,
        live: bool,
        mapping: Option<Mapping>,
    ) -> Self {
        let batches = txs.iter().map(|_| Batch::new(mapping.clone())).collect();
        Dispatcher {
            txs,
            batches,
            recycled,
            live,
            mapping,
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

    pub(super) fn push(&mut self, worker: usize, index: u64, seg: Segment<&[u8]>) {
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
        let fresh = (self.recycled.try_recv()).unwrap_or_else(|_| Batch::new(self.mapping.clone()));
        let batch = std::mem::replace(b, fresh);
        let n = batch.segments.len() as u64;
        if self.send(worker, ToWorker::Segments(batch), may_drop) {
            self.dropped_segments += n;
        }
    }

    pub(super) fn tick(&mut self, index: u64, now: Timestamp) {
        for w in 0..self.txs.len() {
            self.flush_one(w, true);
            if self.send(w, ToWorker::Tick { index, now }, true) {
                self.dropped_ticks += 1;
            }
        }
    }

    /// End of input: flush and finish every worker, waiting even live.
    pub(super) fn finish(&mut self, index: u64) {
        for w in 0..self.txs.len() {
            self.flush_one(w, false);
            self.send(w, ToWorker::Finish { index }, false);
        }
    }
}

/// What the capture thread hands back (and `run_offline` too).
pub(super) struct CaptureEnd {
    pub(super) packets: u64,
    pub(super) decode: DecodeCounters,
    pub(super) ports_skipped: u64,
    pub(super) dropped_segments: u64,
    pub(super) dropped_ticks: u64,
    pub(super) kernel: Option<KernelStats>,
    pub(super) error: Option<CaptureError>,
}

/// The capture thread: read until the input ends, `stop` is set or a
/// worker is gone; then finish every worker.
pub(super) fn capture_loop(
    mut capture: Capture,
    mut disp: Dispatcher,
    mut intake: Intake<'_>,
    stop: &AtomicBool,
    gauges: &Gauges,
) -> CaptureEnd {
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
                let (index, now) = intake.idle();
                disp.tick(index, now);
                intake.poll_keylog();
                publish(gauges, intake.index, &disp, &mut capture);
            }
            Ok(Read::Quiet(quiet)) => {
                let (index, now) = intake.quiet(quiet);
                disp.tick(index, now);
                publish(gauges, intake.index, &disp, &mut capture);
            }
            Ok(Read::Secrets(text)) => intake.secrets(text),
            Ok(Read::Frame(frame)) => {
                if let Some((index, now)) = intake.tick(frame.ts) {
                    disp.tick(index, now);
                    intake.poll_keylog();
                    // The frame borrows the capture: publish after it.
                    publish_due = true;
                }
                if let Some(seg) = intake.decode(&frame)
                    && let Some(shard) = intake.shard(&seg)
                {
                    disp.push(shard, intake.index, seg);
                }
                intake.advance();
            }
        }
        if publish_due {
            publish_due = false;
            publish(gauges, intake.index, &disp, &mut capture);
        }
    }
    disp.finish(intake.index);
    publish(gauges, intake.index, &disp, &mut capture);
    CaptureEnd {
        packets: intake.index,
        decode: intake.decode,
        ports_skipped: intake.ports_skipped,
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
