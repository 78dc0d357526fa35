//! Walk mode: `--threads N` (N >= 2) on a mapped classic pcap file without
//! a filter runs N walker threads instead of a capture thread and N
//! workers. Each walker walks the whole mapping itself (its own `Mapped`
//! over the same mapping; walker 0 takes the capture's own,
//! `Capture::into_walk`, whose offset the progress bar reads), places
//! every frame with the minimal parse (`capture::shard`) and decodes and
//! judges in full only the frames of its own shard, reading payloads
//! straight from the mapping: no capture thread, no channel of segments,
//! no batch, no copy.
//!
//! Determinism rests on every walker seeing every frame: each numbers
//! frames and decides ticks (`Intake`, `TickClock`) exactly as the capture
//! thread would, and runs its engine's tick where a worker would get it,
//! so reports carry the same doubled orders (`worker::stamp`) and the
//! output stage prints the same bytes for any `--threads`. Counting rests
//! on each frame being decoded with counters exactly once: by the owner of
//! its shard, or, when the minimal parse cannot place it, by walker 0
//! (every walker decodes such a frame to find its shard; only walker 0
//! counts it). The packets and the capture gauges are walker 0's, `--ports`
//! is the owner's. A walker sends its reports and a watermark at least
//! every `MARK_FRAMES` frames, so the output stage never waits long on a
//! walker with nothing to say. It must not make threads (`run.rs` does)
//! or print.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::capture::decode::{DecodeCounters, Frame, LinkType, decode_borrowed};
use crate::capture::mapped::Mapped;
use crate::capture::segment::Timestamp;
use crate::capture::shard::{Place, place};
use crate::capture::source::CaptureError;
use crate::flow::engine::Engine;
use crate::report::gauges::Gauges;
use crate::report::stats::ProcessingTime;
use crate::verdict::Report;

use super::batch::FromWorker;
use super::capture::{CaptureEnd, Intake};
use super::plan::Plan;
use super::worker::{Call, Outbox, finish, judge_segment, on_tick, stamp};

/// Frames between two watermarks of a walker (more often when reports
/// pile up: `MARK_REPORTS`).
const MARK_FRAMES: u64 = 2048;
/// Reports a walker holds before sending them.
const MARK_REPORTS: usize = 256;

/// A walker's frames: its own walk over the mapped file, read straight
/// from the mapping (walker 0's is the capture's own walk, whose offset the
/// progress bar reads), and their link type.
pub(super) struct Frames {
    pub(super) records: Mapped,
    pub(super) link: LinkType,
}

impl Frames {
    /// The next frame; None at the end; Err at a damaged record.
    fn next(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        let link = self.link;
        let record = self
            .records
            .next_record(|_| true)
            .map_err(|detail| CaptureError::Read {
                detail,
                live: false,
            })?;
        Ok(record.map(|r| r.frame(link)))
    }
}

/// What a walker needs besides its frames.
pub(super) struct Walker<'a> {
    /// This walker's shard, and its number for the output stage.
    pub(super) index: usize,
    pub(super) shards: usize,
    pub(super) plan: &'a Plan,
    pub(super) out: Outbox<'a>,
    pub(super) stop: &'a AtomicBool,
    pub(super) gauges: &'a Gauges,
}

/// A walker's engine and the reports it has not sent yet (stamped).
struct Judge {
    engine: Engine,
    reports: Vec<Report>,
    processing: ProcessingTime,
    /// Counts of full decodes made only to find a frame's shard: not
    /// this walker's to count (walker 0 counts them).
    scratch: DecodeCounters,
}

impl Walker<'_> {
    /// The walker's loop, until the file ends or is damaged, `stop` is set
    /// or the output stage is gone; then every open flow is reported.
    pub(super) fn run(self, mut frames: Frames) -> CaptureEnd {
        let plan = self.plan;
        let mut intake = Intake::new(
            self.shards,
            plan.ports.as_ref(),
            plan.options.keylog.as_deref(),
        );
        let mut judge = Judge {
            engine: Engine::new(plan.limits.clone(), plan.options.clone()),
            reports: Vec::new(),
            processing: ProcessingTime::default(),
            scratch: DecodeCounters::default(),
        };
        let mut error = None;
        let mut unmarked = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let frame = match frames.next() {
                Err(e) => {
                    error = Some(e);
                    break;
                }
                Ok(None) => break,
                Ok(Some(frame)) => frame,
            };
            if let Some(tick) = intake.tick(frame.ts) {
                if !self.tick(&mut judge, tick) {
                    break;
                }
                if self.index == 0 {
                    intake.poll_keylog();
                    self.gauges.publish_capture(intake.index, 0, 0, None);
                }
                unmarked = 0;
            }
            self.frame(&mut intake, &mut judge, &frame);
            intake.advance();
            unmarked += 1;
            if (unmarked >= MARK_FRAMES || judge.reports.len() >= MARK_REPORTS)
                && !self.send(&mut judge, intake.index)
            {
                break;
            }
            if unmarked >= MARK_FRAMES {
                unmarked = 0;
            }
        }
        self.end(&mut judge, intake, error)
    }

    /// Decode and judge the frame if it is this walker's.
    fn frame(&self, intake: &mut Intake<'_>, judge: &mut Judge, frame: &Frame<'_>) {
        let index = intake.index;
        let (seg, placed) = match place(frame, self.shards) {
            Place::Shard(s) if s != self.index => return,
            Place::Shard(_) => (intake.decode(frame), true),
            Place::Unknown if self.index == 0 => (intake.decode(frame), false),
            Place::Unknown => (decode_borrowed(frame, &mut judge.scratch), false),
        };
        let Some(seg) = seg else {
            return;
        };
        // A frame the minimal parse could not place may be another's.
        if !placed && seg.key().shard(self.shards) != self.index {
            return;
        }
        // `--ports` as `Intake::shard` applies it, counted by the owner.
        let wanted = (self.plan.ports.as_ref())
            .is_none_or(|p| p.contains(seg.src.port) || p.contains(seg.dst.port));
        if !wanted {
            intake.ports_skipped += 1;
            return;
        }
        let before = judge.reports.len();
        judge_segment(
            &mut judge.engine,
            seg,
            index,
            &mut judge.processing,
            &mut judge.reports,
        );
        if let Some(new) = judge.reports.get_mut(before..) {
            stamp(new, Call::Segment);
        }
    }

    /// Send the reports so far and the watermark before frame `next`: a
    /// tick or a segment at `next` or later. False when the output stage
    /// is gone.
    fn send(&self, judge: &mut Judge, next: u64) -> bool {
        self.out.send_before(self.index, &mut judge.reports, next)
    }

    /// A tick before frame `index`: the reports before it go first, then
    /// idle flows expire in chunks (`worker::on_tick`), as a worker's.
    fn tick(&self, judge: &mut Judge, (index, now): (u64, Timestamp)) -> bool {
        if !judge.reports.is_empty() && !self.send(judge, index) {
            return false;
        }
        let sent = on_tick(
            self.index,
            &mut judge.engine,
            (index, now),
            &self.out,
            &mut judge.reports,
        )
        .is_some_and(|after| self.out.send(self.index, &mut judge.reports, after));
        self.gauges
            .publish_engine(self.index, judge.engine.counters());
        sent
    }

    /// End of input: the reports so far, every open flow in chunks
    /// (`worker::finish`), the engine's counters; what this walker counted.
    fn end(
        &self,
        judge: &mut Judge,
        intake: Intake<'_>,
        error: Option<CaptureError>,
    ) -> CaptureEnd {
        let index = intake.index;
        if self.send(judge, index) {
            finish(
                self.index,
                &mut judge.engine,
                index,
                &self.out,
                &mut judge.reports,
            );
        }
        self.gauges
            .publish_engine(self.index, judge.engine.counters());
        if self.index == 0 {
            self.gauges.publish_capture(index, 0, 0, None);
        }
        let _ = self.out.tx.send(FromWorker::Done {
            counters: Box::new(judge.engine.counters().clone()),
            processing: std::mem::take(&mut judge.processing),
        });
        CaptureEnd {
            // Every walker saw every frame: walker 0 says how many.
            packets: if self.index == 0 { index } else { 0 },
            decode: intake.decode,
            ports_skipped: intake.ports_skipped,
            dropped_segments: 0,
            dropped_ticks: 0,
            kernel: None,
            error,
        }
    }
}
