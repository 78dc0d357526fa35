//! The output stage's ordering, without threads: reports wait, per worker,
//! until no worker can still produce one that sorts before them.
//!
//! Invariant: a report leaves only when its `ReportOrder` is below every
//! worker's watermark (the lowest order that worker can still report), and
//! equal orders (one flow, one call) leave in arrival order. This is what
//! makes file-mode output identical for any `--threads`. A report below
//! its own worker's watermark breaks the engine's contract: it is counted
//! (`late`), never dropped. Nothing here prints or makes threads.
//!
//! Shape: each worker sends its reports already in order, so each worker
//! has a queue kept sorted by (order, arrival) and the next report is the
//! least of the queues' fronts: a merge of sorted runs. A report that
//! arrives out of its worker's order (the contract broken, or a message's
//! reports not sorted) is inserted at its place, so the order is the same
//! as a heap's, always. A heap moved every report (hundreds of bytes)
//! log(n) times on the output thread; a queue moves it once in, once out.

use std::collections::VecDeque;

use crate::verdict::{Report, ReportOrder};

/// Reports waiting for every worker's watermark to pass them.
#[derive(Debug)]
pub struct ReorderBuffer {
    /// Per worker (by the index it sent): its reports, sorted by
    /// (order, seq).
    runs: Vec<VecDeque<Queued>>,
    /// Per worker: the lowest order it can still report.
    watermarks: Vec<ReportOrder>,
    /// Arrival number: keeps equal orders (one flow, one call) in the
    /// order their worker sent them.
    seq: u64,
    /// Reports waiting, over all runs.
    len: usize,
    /// Reports that arrived below their worker's watermark.
    pub late: u64,
}

#[derive(Debug)]
struct Queued {
    order: ReportOrder,
    seq: u64,
    report: Report,
}

impl Queued {
    fn key(&self) -> (ReportOrder, u64) {
        (self.order, self.seq)
    }
}

impl ReorderBuffer {
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        ReorderBuffer {
            runs: (0..workers).map(|_| VecDeque::new()).collect(),
            watermarks: vec![
                ReportOrder {
                    trigger: 0,
                    flow: 0
                };
                workers
            ],
            seq: 0,
            len: 0,
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
        if worker >= self.runs.len() {
            // A worker index the run did not announce: its own queue, no
            // watermark of its own (as before: only known workers hold
            // reports back).
            self.runs.resize_with(worker + 1, VecDeque::new);
        }
        let q = Queued {
            order: report.order,
            seq: self.seq,
            report,
        };
        let run = &mut self.runs[worker];
        // The newest seq: after every queued report of an equal or lower
        // order, before any higher one.
        if run.back().is_none_or(|b| b.order <= q.order) {
            run.push_back(q);
        } else {
            let at = run.partition_point(|b| b.order <= q.order);
            run.insert(at, q);
        }
        self.len += 1;
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

    /// The worker whose queue holds the least report, and its order.
    fn least(&self) -> Option<(usize, ReportOrder)> {
        self.runs
            .iter()
            .enumerate()
            .filter_map(|(w, run)| run.front().map(|q| (q.key(), w)))
            .min()
            .map(|((order, _), w)| (w, order))
    }

    fn pop_from(&mut self, worker: usize) -> Option<(usize, Report)> {
        let q = self.runs.get_mut(worker)?.pop_front()?;
        self.len -= 1;
        Some((worker, q.report))
    }

    /// The next report that is safe to print, if any, with the worker
    /// that sent it.
    pub fn pop_ready(&mut self) -> Option<(usize, Report)> {
        let low = self
            .watermarks
            .iter()
            .copied()
            .min()
            .unwrap_or(ReportOrder {
                trigger: u64::MAX,
                flow: u64::MAX,
            });
        match self.least() {
            Some((w, order)) if order < low => self.pop_from(w),
            _ => None,
        }
    }

    /// End of run: the next report in order, ready or not, with the
    /// worker that sent it.
    pub fn pop_any(&mut self) -> Option<(usize, Report)> {
        let (w, _) = self.least()?;
        self.pop_from(w)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::Endpoint;
    use crate::capture::segment::Timestamp;
    use crate::verdict::Event;
    use crate::verdict::{Basis, Class, ClientCert, Outcome, Verdict};

    fn report(trigger: u64, flow: u64) -> Report {
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        Report {
            order: ReportOrder { trigger, flow },
            event: Event::Verdict(Box::new(Verdict {
                class: Class::Tls,
                outcome: Outcome::Ok,
                basis: Basis::Observed,
                client_cert: ClientCert::NotSent,
                reason: format!("{trigger}/{flow}"),
                ..Verdict::new(ep(1), ep(2), Timestamp(0), Timestamp(0))
            })),
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
            .map(|(_, r)| (r.order.trigger, r.order.flow))
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
            .map(|(_, r)| r.into_verdict().unwrap().reason)
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
            out.extend(
                std::iter::from_fn(|| b.pop_any()).map(|(_, r)| (r.order.trigger, r.order.flow)),
            );
            out
        };
        let a = run(&[0, 0, 0, 0, 1, 1, 1, 1]);
        let c = run(&[1, 0, 1, 0, 1, 0, 1, 0]);
        assert_eq!(a, c);
        assert_eq!(a, vec![(1, 1), (2, 2), (4, 0), (4, 3), (7, 2), (9, 9)]);
    }

    /// The merge of per-worker queues against the obvious model (every
    /// report in one list, the least (order, arrival) first), for any
    /// interleaving of pushes (in order or not), watermarks and pops.
    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Push(usize, u64, u64),
            Advance(usize, u64, u64),
            PopReady,
            PopAny,
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => (0..3usize, 0..6u64, 0..3u64).prop_map(|(w, t, f)| Step::Push(w, t, f)),
                2 => (0..3usize, 0..7u64, 0..3u64).prop_map(|(w, t, f)| Step::Advance(w, t, f)),
                2 => Just(Step::PopReady),
                1 => Just(Step::PopAny),
            ]
        }

        proptest! {
            #[test]
            fn queues_pop_what_a_heap_pops(steps in prop::collection::vec(step(), 0..80)) {
                let mut b = ReorderBuffer::new(2);
                // (order, seq, worker), and the watermarks of workers 0, 1.
                let mut model: Vec<(ReportOrder, u64, usize)> = Vec::new();
                let mut marks = [ReportOrder { trigger: 0, flow: 0 }; 2];
                let mut seq = 0;
                let got_of = |r: Option<(usize, Report)>| r.map(|(w, r)| {
                    let tag: u64 = r.into_verdict().unwrap().reason.parse().unwrap();
                    (w, tag)
                });
                for s in steps {
                    let want = match s {
                        Step::Push(w, t, f) => {
                            seq += 1;
                            let mut r = report(t, f);
                            *reason_mut(&mut r) = seq.to_string();
                            b.push(w, r);
                            model.push((ReportOrder { trigger: t, flow: f }, seq, w));
                            continue;
                        }
                        Step::Advance(w, t, f) => {
                            let o = ReportOrder { trigger: t, flow: f };
                            b.advance_to(w, o);
                            if let Some(m) = marks.get_mut(w) {
                                *m = (*m).max(o);
                            }
                            continue;
                        }
                        Step::PopReady | Step::PopAny => {
                            let low = marks.iter().copied().min().unwrap();
                            let least = (0..model.len()).min_by_key(|&i| (model[i].0, model[i].1));
                            let ok = |i: &usize| matches!(s, Step::PopAny) || model[*i].0 < low;
                            least.filter(ok).map(|i| {
                                let (_, tag, w) = model.remove(i);
                                (w, tag)
                            })
                        }
                    };
                    let got = if matches!(s, Step::PopAny) { b.pop_any() } else { b.pop_ready() };
                    prop_assert_eq!(got_of(got), want);
                    prop_assert_eq!(b.len(), model.len());
                }
            }
        }
    }
}
