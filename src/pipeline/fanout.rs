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

use crate::capture::segment::Timestamp;
use crate::capture::source::{Capture, KernelStats, Read};
use crate::flow::engine::Engine;
use crate::report::gauges::Gauges;
use crate::report::stats::ProcessingTime;
use crate::verdict::Report;

use super::batch::FromWorker;
use super::capture::{CaptureEnd, Intake};
use super::plan::Plan;
use super::worker::{Call, Outbox, finish, judge_segment, on_tick, stamp};

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
    /// To the output stage, through the meter of reports in flight (live:
    /// a full meter drops them, counted), as a worker's.
    pub(super) out: Outbox<'a>,
    pub(super) stop: &'a AtomicBool,
    pub(super) totals: &'a Totals,
    pub(super) gauges: &'a Gauges,
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
            judge_segment(
                &mut self.engine,
                seg,
                index,
                &mut self.processing,
                &mut self.reports,
            );
        }
        intake.advance();
    }
}

impl Member<'_> {
    /// Hand the segment's reports to the output stage; false when it is
    /// gone. Orders doubled as a worker's are (`worker::stamp`), so `-c`
    /// reads the frame index the same way; live output is unordered.
    fn send(&self, judge: &mut Judge, trigger: u64) -> bool {
        if judge.reports.is_empty() {
            return true;
        }
        stamp(&mut judge.reports, Call::Segment);
        self.out
            .send_before(self.index, &mut judge.reports, trigger)
    }

    /// A tick: idle flows expired and sent in chunks, as a worker's
    /// (`worker::on_tick`), so a flood's expiry is never all in memory;
    /// false when the output stage is gone.
    fn tick(&self, judge: &mut Judge, (index, now): (u64, Timestamp)) -> bool {
        on_tick(
            self.index,
            &mut judge.engine,
            (index, now),
            &self.out,
            &mut judge.reports,
        )
        .is_some_and(|after| self.out.send(self.index, &mut judge.reports, after))
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
                    if !self.tick(&mut judge, intake.idle()) {
                        break;
                    }
                    intake.poll_keylog();
                    self.publish(&intake, &mut capture, &judge.engine);
                }
                // Possibly seen by another member too: before the start.
                Ok(Read::Frame(frame)) if starting && frame.ts < self.since => {}
                Ok(Read::Frame(frame)) => {
                    starting = false;
                    if let Some(tick) = intake.tick(frame.ts) {
                        if !self.tick(&mut judge, tick) {
                            break;
                        }
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

    /// End of input: every open flow reported, in chunks (as a worker's,
    /// `worker::finish`); then the engine's counters.
    fn finish(&self, judge: &mut Judge, index: u64) {
        finish(
            self.index,
            &mut judge.engine,
            index,
            &self.out,
            &mut judge.reports,
        );
        let _ = self.out.tx.send(FromWorker::Done {
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
