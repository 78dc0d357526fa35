//! A worker thread: one `Engine` over one shard of the flows (whole flows,
//! no locks). It turns batches, ticks and the end of input into reports,
//! each message answered with the watermark the output stage orders by:
//! the lowest `ReportOrder` this worker can still produce. It must stamp
//! every report with the index of the call that produced it (the engine
//! does), and it must not print or look at other shards. Every message's
//! reports are charged to the worker's meter of reports in flight
//! (`inflight`) before they are sent: in file mode that waits for room,
//! in live mode a full meter drops them (counted). A tick's expiry and the
//! end of input go out in chunks of `FINISH_CHUNK` reports, so neither is
//! ever in memory all at once.
//!
//! The pipeline's report orders are doubled (`stamp`): a tick's or the
//! end's reports at frame index i sort as 2i, the segment of frame i's as
//! 2i+1, so a tick's chunks can go out before the segment at the same
//! index (each chunk's watermark is exact) and the output stage can print
//! them. The reports the pipeline hands on keep the doubled order (their
//! frame index is `trigger / 2`), so they leave in `ReportOrder`.
//! File-mode output stays the same for any `--threads`: the doubled order
//! depends on the input only, and `run_offline` stamps its reports the
//! same way.

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::capture::segment::{Segment, Timestamp};
use crate::flow::engine::Engine;
use crate::report::gauges::Gauges;
use crate::report::stats::ProcessingTime;
use crate::verdict::{Report, ReportOrder};

use super::batch::{BATCH_BYTES, Batch, FromWorker, ToWorker};
use super::inflight::InFlight;
use super::plan::Plan;

/// Reports per message at end of input and at a tick's expiry.
pub(super) const FINISH_CHUNK: usize = 512;

/// Past every report: the watermark of a worker that is done.
pub(super) const DONE: ReportOrder = ReportOrder {
    trigger: u64::MAX,
    flow: u64::MAX,
};

/// End of input reports every open flow in chunks, so a SYN flood's 100k+
/// pending flows never sit in memory as reports all at once. Appends one
/// chunk to `reports` and returns its watermark (`DONE` after the last).
/// Shared with `run_offline`.
pub(super) fn finish_chunk(
    engine: &mut Engine,
    index: u64,
    reports: &mut Vec<Report>,
) -> ReportOrder {
    match engine.finish_some(index, FINISH_CHUNK, reports) {
        Some(next_flow) => ReportOrder {
            trigger: index,
            flow: next_flow,
        },
        None => DONE,
    }
}

/// Where a worker's (or a fanout member's) reports go: the output stage's
/// channel, through the meter of reports in flight.
pub(super) struct Outbox<'a> {
    pub tx: Sender<FromWorker>,
    pub meters: &'a InFlight,
}

/// A worker's ends of the channels and what it shares with the others.
pub(super) struct Ends<'a> {
    pub rx: Receiver<ToWorker>,
    pub out: Outbox<'a>,
    pub recycle: Sender<Batch>,
    pub gauges: &'a Gauges,
}

impl Outbox<'_> {
    /// Send `reports` (charged to the meter first) and the watermark after
    /// them; false when the output stage is gone.
    pub(super) fn send(
        &self,
        worker: usize,
        reports: &mut Vec<Report>,
        watermark: ReportOrder,
    ) -> bool {
        // The reports leave in a vector of their exact size and `reports`
        // keeps its room for the next ones: handing the vector itself over
        // made every message regrow one from nothing (a realloc and a copy
        // of every report per doubling, 2% of a walker's instructions).
        // Its room is the most one message held, which it held before too.
        let mut sent = Vec::with_capacity(reports.len());
        sent.append(reports);
        let mut reports = sent;
        if !self.meters.admit(worker, &reports) {
            // Live, meter full: dropped and counted; the watermark goes.
            reports.clear();
        }
        let msg = FromWorker::Reports {
            worker,
            reports,
            watermark,
        };
        self.tx.send(msg).is_ok()
    }

    /// Send `reports` and the watermark before frame `next`: whatever
    /// comes next is a tick or a segment at `next` or later.
    pub(super) fn send_before(&self, worker: usize, reports: &mut Vec<Report>, next: u64) -> bool {
        let before = ReportOrder {
            trigger: next,
            flow: 0,
        };
        self.send(worker, reports, doubled_mark(before, Call::Clock))
    }
}

/// The doubled order between threads (module docs): `trigger` of a tick
/// or the end (`Call::Clock`) or of a segment (`Call::Segment`).
#[derive(Clone, Copy)]
pub(super) enum Call {
    Clock,
    Segment,
}

fn doubled(trigger: u64, call: Call) -> u64 {
    let t = trigger.saturating_mul(2);
    match call {
        Call::Clock => t,
        Call::Segment => t.saturating_add(1),
    }
}

/// Double the orders of the reports `call` made.
pub(super) fn stamp(reports: &mut [Report], call: Call) {
    for r in reports {
        r.order.trigger = doubled(r.order.trigger, call);
    }
}

/// A watermark of the undoubled engine (`finish_chunk`'s), doubled.
pub(super) fn doubled_mark(w: ReportOrder, call: Call) -> ReportOrder {
    if w == DONE {
        return DONE;
    }
    ReportOrder {
        trigger: doubled(w.trigger, call),
        flow: w.flow,
    }
}

/// The worker thread's loop, until the end of input or the output stage
/// is gone.
pub(super) fn worker_loop(worker: usize, plan: &Plan, ends: Ends<'_>) {
    let mut engine = Engine::new(plan.limits.clone(), plan.options.clone());
    let mut processing = ProcessingTime::default();
    let mut reports = Vec::new();
    for msg in ends.rx.iter() {
        let watermark = match msg {
            ToWorker::Segments(batch) => {
                let next = on_batch(
                    &mut engine,
                    batch,
                    &ends.recycle,
                    &mut processing,
                    &mut reports,
                );
                stamp(&mut reports, Call::Segment);
                // The next call is a tick or a segment at `next` or later.
                doubled_mark(next, Call::Clock)
            }
            ToWorker::Tick { index, now } => {
                let Some(after) =
                    on_tick(worker, &mut engine, (index, now), &ends.out, &mut reports)
                else {
                    return;
                };
                ends.gauges.publish_engine(worker, engine.counters());
                after
            }
            ToWorker::Finish { index } => {
                finish(worker, &mut engine, index, &ends.out, &mut reports);
                break;
            }
        };
        if !ends.out.send(worker, &mut reports, watermark) {
            break;
        }
    }
    ends.gauges.publish_engine(worker, engine.counters());
    let _ = ends.out.tx.send(FromWorker::Done {
        counters: Box::new(engine.counters().clone()),
        processing,
    });
}

/// End of input: every open flow reported and sent, a chunk of
/// `FINISH_CHUNK` reports at a time, the last with the `DONE` watermark.
/// False when the output stage is gone.
pub(super) fn finish(
    worker: usize,
    engine: &mut Engine,
    index: u64,
    out: &Outbox<'_>,
    reports: &mut Vec<Report>,
) -> bool {
    loop {
        let watermark = finish_chunk(engine, index, reports);
        stamp(reports, Call::Clock);
        if !out.send(worker, reports, doubled_mark(watermark, Call::Clock)) {
            return false;
        }
        if watermark == DONE {
            return true;
        }
    }
}

/// A tick: expire idle flows, sending a chunk of `FINISH_CHUNK` reports
/// at a time. The last chunk stays in `reports`, to be sent with the
/// watermark returned (the segment at `index` is next, at the earliest).
/// None when the output stage is gone.
pub(super) fn on_tick(
    worker: usize,
    engine: &mut Engine,
    (index, now): (u64, Timestamp),
    out: &Outbox<'_>,
    reports: &mut Vec<Report>,
) -> Option<ReportOrder> {
    while let Some(next) = engine.on_tick_some(now, index, FINISH_CHUNK, reports) {
        stamp(reports, Call::Clock);
        let watermark = ReportOrder {
            trigger: doubled(index, Call::Clock),
            flow: next,
        };
        if !out.send(worker, reports, watermark) {
            return None;
        }
    }
    stamp(reports, Call::Clock);
    let after = ReportOrder {
        trigger: index,
        flow: 0,
    };
    Some(doubled_mark(after, Call::Segment))
}

/// One segment through the engine; one in `SAMPLE_EVERY` is timed (two
/// clock reads per packet would cost more than the rest of a decided
/// flow's packet).
pub(super) fn judge_segment(
    engine: &mut Engine,
    seg: Segment<&[u8]>,
    index: u64,
    processing: &mut ProcessingTime,
    reports: &mut Vec<Report>,
) {
    if index.is_multiple_of(ProcessingTime::SAMPLE_EVERY) {
        let started = Instant::now();
        engine.on_segment(seg, index, reports);
        let nanos = started.elapsed().as_nanos();
        processing.record(u64::try_from(nanos).unwrap_or(u64::MAX));
    } else {
        engine.on_segment(seg, index, reports);
    }
}

/// Feed one batch to the engine and send it back for reuse; returns the
/// watermark after it.
fn on_batch(
    engine: &mut Engine,
    mut batch: Batch,
    recycle: &Sender<Batch>,
    processing: &mut ProcessingTime,
    reports: &mut Vec<Report>,
) -> ReportOrder {
    let mut next = 0;
    let segments = std::mem::take(&mut batch.segments);
    for (index, seg) in &segments {
        let (index, seg) = (*index, seg.clone().map_payload(|at| batch.payload(at)));
        judge_segment(engine, seg, index, processing, reports);
        next = index.saturating_add(1);
    }
    batch.segments = segments;
    batch.clear();
    // Back to the capture thread; if it has enough, drop it. An arena grown
    // by one oversized segment is not kept.
    if batch.bytes.capacity() <= BATCH_BYTES {
        let _ = recycle.try_send(batch);
    }
    ReportOrder {
        trigger: next,
        flow: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::Endpoint;
    use crate::verdict::{Event, Verdict};

    fn report(trigger: u64, flow: u64) -> Report {
        let ep = |port| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        Report {
            order: ReportOrder { trigger, flow },
            event: Event::Verdict(Box::new(Verdict::new(
                ep(1),
                ep(2),
                Timestamp(0),
                Timestamp(0),
            ))),
        }
    }

    /// A tick at frame 5 expires flow 9; the segment of frame 5 reports
    /// flow 1. Doubled, the tick's report sorts first, and the watermark a
    /// tick's chunk sends (its next flow, 100) never passes the segment's
    /// report, which is what lets the chunk be printed before it.
    #[test]
    fn a_ticks_reports_sort_before_the_same_frames_segment() {
        let mut tick = vec![report(5, 9)];
        stamp(&mut tick, Call::Clock);
        let mut seg = vec![report(5, 1)];
        stamp(&mut seg, Call::Segment);
        assert!(tick[0].order < seg[0].order);
        let chunk = ReportOrder {
            trigger: doubled(5, Call::Clock),
            flow: 100,
        };
        assert!(seg[0].order > chunk && tick[0].order < chunk);
        // After a batch ending at frame 4, nothing of frame 5 is passed.
        let after_batch = doubled_mark(
            ReportOrder {
                trigger: 5,
                flow: 0,
            },
            Call::Clock,
        );
        assert!(after_batch <= tick[0].order);
        // After the tick, its reports are passed, the segment's are not.
        let after_tick = doubled_mark(
            ReportOrder {
                trigger: 5,
                flow: 0,
            },
            Call::Segment,
        );
        assert!(tick[0].order < after_tick && after_tick <= seg[0].order);
        assert_eq!(doubled_mark(DONE, Call::Clock), DONE);
    }
}
