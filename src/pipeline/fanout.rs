//! A fanout member's thread (`capture/fanout.rs`): one AF_PACKET socket of
//! the group, read, decoded and judged to completion by one `Engine`, with
//! no packet crossing a thread. The kernel already gave this member whole
//! flows (the group's program follows `FlowKey::shard`'s rule), so there
//! is no sharding here: `--ports` still applies, reports go to the output
//! stage (live: in arrival order) and the end of input finishes the engine
//! in chunks as a worker does.
//!
//! Frames stamped before the group was complete are skipped: until every
//! socket joined, a packet may have reached more than one. Only at the
//! start: a socket's ring is in arrival order, so after its first later
//! frame nothing is skipped again (a clock stepped back later loses
//! nothing). The members'
//! kernel counters (PACKET_STATISTICS, one per socket) and packet counts
//! are summed in `Totals` for the metrics and progress gauges and, at the
//! end, in the merged `CaptureEnd`. It must not make threads (`run.rs`
//! does) or print.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::capture::segment::Timestamp;
use crate::capture::source::{Capture, KernelStats, Read};
use crate::flow::engine::Engine;
use crate::report::gauges::Gauges;
use crate::report::stats::ProcessingTime;
use crate::verdict::{Report, ReportOrder};

use super::batch::FromWorker;
use super::capture::{CaptureEnd, Intake};
use super::inflight::InFlight;
use super::plan::Plan;
use super::worker::{Call, DONE, doubled_mark, finish_chunk, stamp};

/// Each member's packets and kernel counters, summed for the gauges.
#[derive(Debug, Default)]
pub(super) struct Totals {
    members: Mutex<Vec<(u64, Option<KernelStats>)>>,
}

impl Totals {
    /// Member `i`'s latest figures; publishes the sum.
    fn publish(&self, i: usize, packets: u64, kernel: Option<KernelStats>, gauges: &Gauges) {
        let mut all = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if all.len() <= i {
            all.resize(i + 1, (0, None));
        }
        if let Some(slot) = all.get_mut(i) {
            *slot = (packets, kernel);
        }
        let packets = all.iter().map(|(p, _)| p).sum();
        let kernel = sum_kernel(all.iter().map(|(_, k)| *k));
        gauges.publish_capture(packets, 0, 0, kernel);
    }
}

/// The sum of the members' kernel counters (None when none could say).
fn sum_kernel(each: impl Iterator<Item = Option<KernelStats>>) -> Option<KernelStats> {
    each.flatten().reduce(|a, b| KernelStats {
        received: a.received + b.received,
        dropped: a.dropped + b.dropped,
        if_dropped: a.if_dropped + b.if_dropped,
    })
}

/// What a member needs besides its socket.
pub(super) struct Member<'a> {
    pub(super) index: usize,
    pub(super) since: Timestamp,
    pub(super) plan: &'a Plan,
    pub(super) tx: Sender<FromWorker>,
    pub(super) stop: &'a AtomicBool,
    pub(super) totals: &'a Totals,
    pub(super) gauges: &'a Gauges,
    /// Reports in flight, charged before sending (live: full drops them,
    /// counted).
    pub(super) meters: &'a InFlight,
}

/// A member's engine and what it has made so far.
struct Judge {
    engine: Engine,
    reports: Vec<Report>,
    processing: ProcessingTime,
}

impl Judge {
    fn segment(&mut self, intake: &mut Intake<'_>, frame: &crate::capture::decode::Frame<'_>) {
        let index = intake.index;
        if let Some(seg) = intake.decode(frame)
            && intake.shard(&seg).is_some()
        {
            // Time one segment in SAMPLE_EVERY, as a worker does.
            if index.is_multiple_of(ProcessingTime::SAMPLE_EVERY) {
                let started = Instant::now();
                self.engine.on_segment(seg, index, &mut self.reports);
                let nanos = started.elapsed().as_nanos();
                self.processing
                    .record(u64::try_from(nanos).unwrap_or(u64::MAX));
            } else {
                self.engine.on_segment(seg, index, &mut self.reports);
            }
        }
        intake.advance();
    }
}

impl Member<'_> {
    /// Hand the reports made so far to the output stage; false when it is
    /// gone.
    fn send(&self, judge: &mut Judge, trigger: u64) -> bool {
        if judge.reports.is_empty() {
            return true;
        }
        // Orders doubled as a worker's are (`worker::stamp`), so `-c`
        // reads the frame index the same way; live output is unordered.
        let mut reports = std::mem::take(&mut judge.reports);
        stamp(&mut reports, Call::Segment);
        if !self.meters.admit(self.index, &reports) {
            return true;
        }
        let msg = FromWorker::Reports {
            worker: self.index,
            reports,
            watermark: doubled_mark(ReportOrder { trigger, flow: 0 }, Call::Clock),
        };
        self.tx.send(msg).is_ok()
    }

    fn publish(&self, intake: &Intake<'_>, capture: &mut Capture, engine: &Engine) {
        self.totals
            .publish(self.index, intake.index, capture.stats(), self.gauges);
        self.gauges.publish_engine(self.index, engine.counters());
    }

    /// The member's loop, until the interface fails, `stop` is set or the
    /// output stage is gone; then every open flow is reported.
    pub(super) fn run(self, mut capture: Capture) -> CaptureEnd {
        let plan = self.plan;
        let mut intake = Intake::new(1, plan.ports.as_ref(), plan.options.keylog.as_deref());
        let mut judge = Judge {
            engine: Engine::new(plan.limits.clone(), plan.options.clone()),
            reports: Vec::new(),
            processing: ProcessingTime::default(),
        };
        let mut error = None;
        let mut publish_due = false;
        let mut starting = true;
        while !self.stop.load(Ordering::Relaxed) {
            match capture.read_next() {
                Err(e) => {
                    error = Some(e);
                    break;
                }
                Ok(Read::End) => break,
                Ok(Read::Drained | Read::Quiet(_) | Read::Secrets(_)) => {}
                Ok(Read::Timeout) => {
                    let (index, now) = intake.idle();
                    judge.engine.on_tick(now, index, &mut judge.reports);
                    intake.poll_keylog();
                    self.publish(&intake, &mut capture, &judge.engine);
                }
                // Possibly seen by another member too: before the start.
                Ok(Read::Frame(frame)) if starting && frame.ts < self.since => {}
                Ok(Read::Frame(frame)) => {
                    starting = false;
                    if let Some((index, now)) = intake.tick(frame.ts) {
                        judge.engine.on_tick(now, index, &mut judge.reports);
                        intake.poll_keylog();
                        // The frame borrows the capture: publish after it.
                        publish_due = true;
                    }
                    judge.segment(&mut intake, &frame);
                }
            }
            if publish_due {
                publish_due = false;
                self.publish(&intake, &mut capture, &judge.engine);
            }
            if !self.send(&mut judge, intake.index) {
                break;
            }
        }
        self.finish(&mut judge, intake.index);
        self.publish(&intake, &mut capture, &judge.engine);
        CaptureEnd {
            packets: intake.index,
            decode: intake.decode,
            ports_skipped: intake.ports_skipped,
            dropped_segments: 0,
            dropped_ticks: 0,
            kernel: capture.stats(),
            error,
        }
    }

    /// End of input: every open flow reported, in chunks; then the engine's
    /// counters.
    fn finish(&self, judge: &mut Judge, index: u64) {
        loop {
            let watermark = finish_chunk(&mut judge.engine, index, &mut judge.reports);
            let mut reports = std::mem::take(&mut judge.reports);
            stamp(&mut reports, Call::Clock);
            if !self.meters.admit(self.index, &reports) {
                reports.clear();
            }
            let msg = FromWorker::Reports {
                worker: self.index,
                reports,
                watermark: doubled_mark(watermark, Call::Clock),
            };
            if self.tx.send(msg).is_err() || watermark == DONE {
                break;
            }
        }
        let _ = self.tx.send(FromWorker::Done {
            counters: Box::new(judge.engine.counters().clone()),
            processing: std::mem::take(&mut judge.processing),
        });
    }
}

/// The members' ends as one: counts summed, the first error kept.
pub(super) fn merge_ends(ends: Vec<CaptureEnd>) -> Option<CaptureEnd> {
    let mut iter = ends.into_iter();
    let mut all = iter.next()?;
    let mut kernels = vec![all.kernel];
    for end in iter {
        all.packets += end.packets;
        all.decode.merge(&end.decode);
        all.ports_skipped += end.ports_skipped;
        all.dropped_segments += end.dropped_segments;
        all.dropped_ticks += end.dropped_ticks;
        kernels.push(end.kernel);
        all.error = all.error.or(end.error);
    }
    all.kernel = sum_kernel(kernels.into_iter());
    Some(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::DecodeCounters;

    #[test]
    fn kernel_counters_are_summed_per_socket() {
        let k = |r, d| {
            Some(KernelStats {
                received: r,
                dropped: d,
                if_dropped: 0,
            })
        };
        let end = |packets, kernel| CaptureEnd {
            packets,
            decode: DecodeCounters::default(),
            ports_skipped: 1,
            dropped_segments: 0,
            dropped_ticks: 0,
            kernel,
            error: None,
        };
        let all = merge_ends(vec![end(5, k(10, 1)), end(7, None), end(2, k(4, 3))]).unwrap();
        assert_eq!((all.packets, all.ports_skipped), (14, 3));
        assert_eq!(all.kernel, k(14, 4));
        assert!(merge_ends(Vec::new()).is_none());
    }
}
