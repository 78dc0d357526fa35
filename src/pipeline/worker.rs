//! A worker thread: one `Engine` over one shard of the flows (whole flows,
//! no locks). It turns batches, ticks and the end of input into reports,
//! each message answered with the watermark the output stage orders by:
//! the lowest `ReportOrder` this worker can still produce. It must stamp
//! every report with the index of the call that produced it (the engine
//! does), and it must not print or look at other shards.

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::flow::engine::Engine;
use crate::report::gauges::Gauges;
use crate::report::stats::ProcessingTime;
use crate::verdict::{Report, ReportOrder};

use super::batch::{BATCH_BYTES, Batch, FromWorker, ToWorker};
use super::plan::Plan;

/// Reports per message at end of input.
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

/// The worker thread's loop, until the end of input or the output stage
/// is gone.
pub(super) fn worker_loop(
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
        let watermark = match msg {
            ToWorker::Segments(batch) => {
                on_batch(&mut engine, batch, &recycle, &mut processing, &mut reports)
            }
            ToWorker::Tick { index, now } => {
                engine.on_tick(now, index, &mut reports);
                gauges.publish_engine(worker, engine.counters());
                ReportOrder {
                    trigger: index,
                    flow: 0,
                }
            }
            ToWorker::Finish { index } => loop {
                let watermark = finish_chunk(&mut engine, index, &mut reports);
                if watermark == DONE {
                    break DONE;
                }
                let msg = FromWorker::Reports {
                    worker,
                    reports: std::mem::take(&mut reports),
                    watermark,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            },
        };
        let msg = FromWorker::Reports {
            worker,
            reports: std::mem::take(&mut reports),
            watermark,
        };
        if tx.send(msg).is_err() || watermark == DONE {
            break;
        }
    }
    gauges.publish_engine(worker, engine.counters());
    let _ = tx.send(FromWorker::Done {
        counters: Box::new(engine.counters().clone()),
        processing,
    });
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
        // Time one segment in SAMPLE_EVERY: two clock reads per packet
        // would cost more than the rest of a decided flow's packet.
        if index.is_multiple_of(ProcessingTime::SAMPLE_EVERY) {
            let started = Instant::now();
            engine.on_segment(seg, index, reports);
            let nanos = started.elapsed().as_nanos();
            processing.record(u64::try_from(nanos).unwrap_or(u64::MAX));
        } else {
            engine.on_segment(seg, index, reports);
        }
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
