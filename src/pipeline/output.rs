//! The output stage without threads: what happens to every report between
//! the workers and whoever shows it, shared by the threaded `run` and by
//! `run_offline` so the two cannot drift apart.
//!
//! In order: reports wait in the `ReorderBuffer` until no worker can still
//! produce one that sorts first (file mode; live shows them as they come);
//! a TLS <= 1.2 resumption inherits the verdict of the full handshake that
//! created its session (`SessionMemory`: it must see every verdict, in
//! order, whatever the shard); `--calibrate` tallies the verdict; then a
//! `Sink` takes the report (the binary's printer and answers, or a list).
//! Once the sink refuses one, nothing more is linked, tallied or handed
//! on. Each report handed on (or refused) gives its bytes back to its
//! worker's meter of reports in flight (`inflight`), when the run has one:
//! in groups of at most `RELEASE_EVERY` reports and at the end of each
//! message, since each give-back takes the meter's lock and wakes waiters. Also here: the summary's assembly from every stage's counters.
//! Nothing here prints, makes threads or looks at packets.

use crate::flow::engine::EngineCounters;
use crate::report::calibration::Calibration;
use crate::report::resumption::SessionMemory;
use crate::report::stats::{ProcessingTime, Summary, merge_entries};
use crate::verdict::{Event, Report, ReportOrder};

use std::sync::Arc;

use super::Plan;
use super::capture::CaptureEnd;
use super::inflight::{InFlight, report_bytes};
use super::reorder::ReorderBuffer;

/// Reports handed on before their bytes go back to their workers' meters
/// at the latest (also at the end of every message): small against a
/// worker's share, so a waiting worker sees room soon.
const RELEASE_EVERY: u64 = 64;

/// Where the output stage hands each report, in print order.
pub trait Sink {
    /// One report, its verdict linked. False: take no more (`-c` reached,
    /// stdout gone, a write failed).
    fn take(&mut self, report: Report) -> bool;
}

/// In-process users: every report, in order.
impl Sink for Vec<Report> {
    fn take(&mut self, report: Report) -> bool {
        self.push(report);
        true
    }
}

/// Ordering, session links and calibration, in front of a `Sink`.
#[derive(Debug)]
pub struct OutputStage {
    /// None: live, reports go out as they arrive.
    reorder: Option<ReorderBuffer>,
    /// TLS <= 1.2 sessions, so resumptions inherit their verdicts.
    sessions: SessionMemory,
    calibration: Option<Calibration>,
    /// The sink refused a report: hand on nothing more.
    closed: bool,
    /// The workers' meters of reports in flight (threaded runs).
    inflight: Option<Arc<InFlight>>,
    /// Per worker: bytes and reports handed on, not yet given back.
    unreleased: Vec<(usize, u64)>,
    /// Reports in `unreleased`, over all workers.
    unreleased_count: u64,
}

impl OutputStage {
    /// `ordered`: wait for watermarks (file mode); otherwise arrival order.
    pub fn new(workers: usize, ordered: bool, calibrate: bool) -> Self {
        OutputStage {
            reorder: ordered.then(|| ReorderBuffer::new(workers)),
            sessions: SessionMemory::default(),
            calibration: calibrate.then(Calibration::default),
            closed: false,
            inflight: None,
            unreleased: Vec::new(),
            unreleased_count: 0,
        }
    }

    /// The threaded run: give each report's bytes back to `meters` once it
    /// is handed on.
    pub(super) fn metered(mut self, meters: Arc<InFlight>) -> Self {
        self.inflight = Some(meters);
        self
    }

    /// `worker`'s reports, after which it will report nothing that sorts
    /// below `watermark`; whatever became ready goes to `sink`.
    pub fn receive(
        &mut self,
        worker: usize,
        reports: Vec<Report>,
        watermark: ReportOrder,
        sink: &mut impl Sink,
    ) {
        if let Some(reorder) = self.reorder.as_mut() {
            for r in reports {
                reorder.push(worker, r);
            }
            reorder.advance_to(worker, watermark);
            while let Some((w, r)) = self.reorder.as_mut().and_then(ReorderBuffer::pop_ready) {
                self.emit(w, r, sink);
            }
        } else {
            for r in reports {
                self.emit(worker, r, sink);
            }
        }
        self.give_back();
    }

    /// End of run: everything still waiting, in order, ready or not.
    pub fn drain(&mut self, sink: &mut impl Sink) {
        while let Some((w, r)) = self.reorder.as_mut().and_then(ReorderBuffer::pop_any) {
            self.emit(w, r, sink);
        }
        self.give_back();
    }

    /// Hand `report` (from `worker`) on, then count its bytes to give
    /// back: it leaves memory with this call either way.
    fn emit(&mut self, worker: usize, report: Report, sink: &mut impl Sink) {
        // Measured before linking changes it: the bytes its worker charged.
        let bytes = self.inflight.as_ref().map(|_| report_bytes(&report));
        self.hand_on(report, sink);
        let Some(bytes) = bytes else { return };
        if worker >= self.unreleased.len() {
            self.unreleased.resize(worker + 1, (0, 0));
        }
        let slot = &mut self.unreleased[worker];
        slot.0 += bytes;
        slot.1 += 1;
        self.unreleased_count += 1;
        if self.unreleased_count >= RELEASE_EVERY {
            self.give_back();
        }
    }

    /// Give the bytes of the reports handed on back to their workers.
    fn give_back(&mut self) {
        if self.unreleased_count == 0 {
            return;
        }
        self.unreleased_count = 0;
        let Some(meters) = &self.inflight else { return };
        for (worker, slot) in self.unreleased.iter_mut().enumerate() {
            let (bytes, reports) = std::mem::take(slot);
            if reports > 0 {
                meters.release_many(worker, bytes, reports);
            }
        }
    }

    fn hand_on(&mut self, mut report: Report, sink: &mut impl Sink) {
        if self.closed {
            return;
        }
        match &mut report.event {
            Event::Verdict(verdict) => {
                self.sessions.link(verdict);
                // Tallied before the sink shows it: if showing fails, the
                // run ends without printing the tally.
                if let Some(c) = self.calibration.as_mut() {
                    c.record(verdict);
                }
            }
            // Every view of a close (line, JSON, metrics) sees it after
            // this, so all agree with the linked verdict.
            Event::Close(close) => self.sessions.link_close(close),
        }
        self.closed = !sink.take(report);
    }

    /// `--calibrate`: the tally over every verdict handed on.
    pub fn calibration(&mut self) -> Option<Calibration> {
        self.calibration.take()
    }

    /// The output stage's own counters, for the summary (and those of the
    /// reports in flight, when metered).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = vec![
            (
                "output.late_reports",
                self.reorder.as_ref().map_or(0, |r| r.late),
            ),
            ("sessions.inherited", self.sessions.inherited),
            ("sessions.forgotten", self.sessions.forgotten),
        ];
        if let Some(m) = &self.inflight {
            c.extend(m.counters());
        }
        c
    }
}

/// The summary of a run: what the sink counted (`summary`), then every
/// stage's numbers, counters in the order the summary lists them.
pub(super) fn summarise(
    mut summary: Summary,
    end: &CaptureEnd,
    engine: &EngineCounters,
    processing: ProcessingTime,
    stage: &OutputStage,
    close_ids_forgotten: u64,
    plan: &Plan,
) -> Summary {
    summary.packets = end.packets;
    summary.limits = Some(plan.limits_line.clone()).filter(|l| !l.is_empty());
    summary.kernel = end.kernel;
    summary.dropped_segments = end.dropped_segments;
    summary.dropped_ticks = end.dropped_ticks;
    summary.ports_skipped = end.ports_skipped;
    summary.processing = processing;
    merge_entries(&mut summary.counters, &end.decode.entries());
    summary.skipped.merge(&end.decode.skipped);
    merge_entries(&mut summary.counters, &engine.entries());
    merge_entries(&mut summary.counters, &stage.counters());
    merge_entries(
        &mut summary.counters,
        &[("close.identities_forgotten", close_ids_forgotten)],
    );
    if let Some(k) = &plan.options.keylog {
        merge_entries(&mut summary.counters, &k.counters().entries());
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::verdict::Verdict;

    fn order(trigger: u64, flow: u64) -> ReportOrder {
        ReportOrder { trigger, flow }
    }

    fn report(trigger: u64, flow: u64) -> Report {
        let ep = |port| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        Report {
            order: order(trigger, flow),
            event: Event::Verdict(Box::new(Verdict::new(
                ep(1),
                ep(2),
                Timestamp(0),
                Timestamp(0),
            ))),
        }
    }

    /// Takes `.0` reports, then refuses.
    struct Takes(usize, Vec<ReportOrder>);

    impl Sink for Takes {
        fn take(&mut self, report: Report) -> bool {
            self.1.push(report.order);
            self.1.len() < self.0
        }
    }

    #[test]
    fn ordered_stage_waits_for_every_watermark_and_stops_at_a_refusal() {
        let mut stage = OutputStage::new(2, true, false);
        let mut sink = Takes(2, Vec::new());
        stage.receive(0, vec![report(3, 0), report(1, 1)], order(5, 0), &mut sink);
        assert!(sink.1.is_empty(), "worker 1 may still report trigger 0");
        stage.receive(1, vec![report(2, 2)], order(4, 0), &mut sink);
        assert_eq!(sink.1, vec![order(1, 1), order(2, 2)]);
        stage.drain(&mut sink);
        assert_eq!(sink.1.len(), 2, "nothing is handed on after a refusal");
    }

    #[test]
    fn live_stage_hands_on_in_arrival_order_and_tallies() {
        let mut stage = OutputStage::new(2, false, true);
        let mut sink: Vec<Report> = Vec::new();
        stage.receive(1, vec![report(9, 9)], order(0, 0), &mut sink);
        stage.receive(0, vec![report(1, 1)], order(0, 0), &mut sink);
        let got: Vec<ReportOrder> = sink.iter().map(|r| r.order).collect();
        assert_eq!(got, vec![order(9, 9), order(1, 1)]);
        assert!(stage.calibration().is_some_and(|c| c.flows() <= 2));
        assert_eq!(stage.counters()[0], ("output.late_reports", 0));
    }

    /// Every report's bytes go back to its worker's meter by the end of
    /// the message that let it out, however many a group holds.
    #[test]
    fn a_metered_stage_gives_every_byte_back() {
        use super::super::inflight::WhenFull;
        let meters = Arc::new(InFlight::new(2, usize::MAX / 4, WhenFull::Wait));
        let mut stage = OutputStage::new(2, true, false).metered(Arc::clone(&meters));
        let mut sink: Vec<Report> = Vec::new();
        let batch = |w: u64| -> Vec<Report> { (0..100).map(|f| report(w * 1000 + f, f)).collect() };
        let (b0, b1) = (batch(0), batch(1));
        assert!(meters.admit(0, &b0) && meters.admit(1, &b1));
        stage.receive(0, b0, order(u64::MAX, 0), &mut sink);
        assert!(sink.is_empty() && meters.used(0) > 0, "held for worker 1");
        stage.receive(1, b1, order(1050, 0), &mut sink);
        assert_eq!(sink.len(), 150);
        assert_eq!(meters.used(0), 0);
        assert!(meters.used(1) > 0, "worker 1's last 50 still wait");
        stage.drain(&mut sink);
        assert_eq!((sink.len(), meters.used(1)), (200, 0));
    }
}
