//! Reports in flight: a byte meter per worker for the reports it has built
//! and the output stage has not yet handed on (in the channel, in the
//! `ReorderBuffer`), charged to the memory budget (`budget::Plan::reports`,
//! a share of each worker's buffer budget).
//!
//! A worker charges a message's reports before sending it (`admit`); the
//! output stage gives each report's bytes back once it has handed it to the
//! sink (`release`). When a worker's share is full: in file mode the worker
//! waits (back pressure: output stays deterministic, nothing is lost); in
//! live mode the message's reports are dropped and counted
//! (`reports.dropped`, a loss). A wait can stall for good: worker A waits
//! for reports the output stage holds until worker B's watermark passes
//! them, while B waits for input the capture thread cannot send because
//! A's queue is full. So a wait that sees no report handed on at all for
//! `STALL_WAIT` is cut: the worker sends anyway (over its share by one
//! message), counted in `reports.stalls`. That changes memory, never the
//! output. A message is always admitted when its worker has nothing in
//! flight, so a message larger than the share cannot wait forever either.
//!
//! Invariant: what a worker has in flight is at most its share plus one
//! message (plus one more per counted stall). Nothing here makes threads,
//! prints or looks at packets; the meter is shared by `Arc` between the
//! threads `run` makes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::tls::identity::CertIdentity;
use crate::verdict::{CertSeen, Event, Report, Verdict};

/// How long a waiting worker tolerates no report at all being handed on
/// before it calls the wait a stall and sends anyway. Long against the
/// output stage's pace (a report takes microseconds), short enough that a
/// stall costs the run little.
pub const STALL_WAIT: Duration = Duration::from_millis(200);

/// What to do when a worker's share is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// File mode: wait for the output stage (back pressure).
    Wait,
    /// Live mode: drop the reports and count them.
    Drop,
}

/// The per-worker meters and what they counted.
#[derive(Debug)]
pub struct InFlight {
    /// Bytes each worker may have in flight.
    share: usize,
    when_full: WhenFull,
    used: Vec<AtomicUsize>,
    /// Reports handed on so far (any worker): a waiting worker's sign of
    /// progress.
    handed_on: AtomicU64,
    lock: Mutex<()>,
    freed: Condvar,
    stalls: AtomicU64,
    dropped: AtomicU64,
    /// Highest bytes in flight seen, summed over workers.
    peak: AtomicUsize,
}

impl InFlight {
    pub fn new(workers: usize, share: usize, when_full: WhenFull) -> Self {
        InFlight {
            share,
            when_full,
            used: (0..workers.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            handed_on: AtomicU64::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
            stalls: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    fn meter(&self, worker: usize) -> Option<&AtomicUsize> {
        self.used.get(worker)
    }

    fn fits(&self, worker: usize, bytes: usize) -> bool {
        self.meter(worker).is_none_or(|m| {
            let used = m.load(Ordering::Acquire);
            used == 0 || used.saturating_add(bytes) <= self.share
        })
    }

    fn charge(&self, worker: usize, bytes: usize) {
        if let Some(m) = self.meter(worker) {
            m.fetch_add(bytes, Ordering::AcqRel);
        }
        let total: usize = self.used.iter().map(|m| m.load(Ordering::Relaxed)).sum();
        self.peak.fetch_max(total, Ordering::Relaxed);
    }

    /// `worker` wants to send `reports`: charge them and return true, after
    /// waiting for room if the share is full (file mode); false when they
    /// are to be dropped (live mode, share full; counted). Messages without
    /// reports (a watermark only) always go.
    pub fn admit(&self, worker: usize, reports: &[Report]) -> bool {
        if reports.is_empty() {
            return true;
        }
        let bytes: usize = reports.iter().map(report_bytes).sum();
        if self.fits(worker, bytes) {
            self.charge(worker, bytes);
            return true;
        }
        if self.when_full == WhenFull::Drop {
            self.dropped
                .fetch_add(reports.len() as u64, Ordering::Relaxed);
            return false;
        }
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.fits(worker, bytes) {
                break;
            }
            let seen = self.handed_on.load(Ordering::Acquire);
            let (g, timeout) = self
                .freed
                .wait_timeout(guard, STALL_WAIT)
                .unwrap_or_else(|e| e.into_inner());
            guard = g;
            if timeout.timed_out() && self.handed_on.load(Ordering::Acquire) == seen {
                // No report went out in all that time: the wait cannot end
                // by itself (module docs). Send anyway.
                self.stalls.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        drop(guard);
        self.charge(worker, bytes);
        true
    }

    /// The output stage handed on (or dropped) a report of `worker` that
    /// was charged `bytes` (`report_bytes` before it was linked).
    #[cfg(test)]
    pub fn release(&self, worker: usize, bytes: usize) {
        self.release_many(worker, bytes, 1);
    }

    /// The output stage handed on (or dropped) `reports` reports of
    /// `worker`, charged `bytes` in all: one lock and wake-up for many
    /// (the output stage gives back in small groups, `output::RELEASE_EVERY`).
    pub fn release_many(&self, worker: usize, bytes: usize, reports: u64) {
        if let Some(m) = self.meter(worker) {
            // Saturating: a report is never released twice, but a meter
            // must not wrap if one were.
            let _ = m.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(bytes))
            });
        }
        self.handed_on.fetch_add(reports, Ordering::AcqRel);
        // Under the lock, so a worker between its check and its wait
        // cannot miss the wake-up.
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.freed.notify_all();
    }

    /// Bytes `worker` has in flight now.
    #[cfg(test)]
    pub fn used(&self, worker: usize) -> usize {
        self.meter(worker).map_or(0, |m| m.load(Ordering::Acquire))
    }

    /// The summary's counters: stalls cut, reports dropped (live, a loss),
    /// peak bytes in flight.
    pub fn counters(&self) -> [(&'static str, u64); 3] {
        [
            ("reports.stalls", self.stalls.load(Ordering::Relaxed)),
            ("reports.dropped", self.dropped.load(Ordering::Relaxed)),
            (
                "reports.peak_bytes",
                self.peak.load(Ordering::Relaxed) as u64,
            ),
        ]
    }
}

/// Heap bytes of a string or list, with the allocator's bookkeeping.
fn alloc(capacity: usize) -> usize {
    if capacity == 0 { 0 } else { capacity + 16 }
}

fn string(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, |s| alloc(s.capacity()))
}

fn cert(c: &Option<CertSeen>) -> usize {
    let Some(CertSeen::Parsed(c)) = c else {
        return 0;
    };
    let CertIdentity {
        subject,
        common_name,
        issuer,
        sans,
        spiffe,
        sha256,
        ..
    } = c;
    alloc(subject.capacity())
        + string(common_name)
        + alloc(issuer.capacity())
        + alloc(sans.capacity() * std::mem::size_of::<String>())
        + sans.iter().map(|s| alloc(s.capacity())).sum::<usize>()
        + string(spiffe)
        + alloc(sha256.capacity())
}

fn verdict_heap(v: &Verdict) -> usize {
    let list = |l: &Vec<String>| {
        alloc(l.capacity() * std::mem::size_of::<String>())
            + l.iter().map(|s| alloc(s.capacity())).sum::<usize>()
    };
    alloc(v.reason.capacity())
        + string(&v.sni)
        + list(&v.alpn_offered)
        + string(&v.alpn_selected)
        + string(&v.proxy_identity)
        + string(&v.starttls)
        + string(&v.app_proto)
        + string(&v.preview_to_server)
        + string(&v.preview_to_client)
        + v.flight
            .as_ref()
            .map_or(0, |f| alloc(f.records.capacity() * 2))
        + alloc(v.session.offers.capacity() * 8)
        + alloc(v.session.resumes.capacity() * 8)
        + v.mesh.as_ref().map_or(0, |m| alloc(m.evidence.capacity()))
        + v.identity_hint
            .as_ref()
            .map_or(0, |h| alloc(h.value.capacity()))
        + cert(&v.client_certificate)
        + cert(&v.server_certificate)
}

/// Bytes one report costs in flight: its slot in the message the worker
/// sends, its slot in the `ReorderBuffer`'s queues (whose buffers grow by
/// doubling, so a slot is counted twice over the two), and what its
/// strings and lists hold; a verdict's own box too.
pub fn report_bytes(r: &Report) -> usize {
    let slot = std::mem::size_of::<Report>();
    3 * slot
        + match &r.event {
            Event::Verdict(v) => alloc(std::mem::size_of::<Verdict>()) + verdict_heap(v),
            Event::Close(_) => 0,
        }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::verdict::ReportOrder;

    fn report(reason: &str) -> Report {
        let ep = |port| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        Report {
            order: ReportOrder {
                trigger: 1,
                flow: 1,
            },
            event: Event::Verdict(Box::new(Verdict {
                reason: reason.into(),
                ..Verdict::new(ep(1), ep(2), Timestamp(0), Timestamp(0))
            })),
        }
    }

    #[test]
    fn a_report_costs_its_slots_and_its_strings() {
        let short = report_bytes(&report("x"));
        let long = report_bytes(&report(&"y".repeat(1000)));
        assert!(short >= 3 * std::mem::size_of::<Report>());
        assert!(long >= short + 999, "{short} {long}");
    }

    /// Live: a full share drops the message and counts its reports;
    /// releasing makes room again; an empty message always goes.
    #[test]
    fn live_drops_and_counts_when_full() {
        let one = report_bytes(&report("r"));
        let m = InFlight::new(2, one * 2, WhenFull::Drop);
        let two = [report("r"), report("r")];
        assert!(m.admit(0, &two));
        assert_eq!(m.used(0), 2 * one);
        assert!(!m.admit(0, &two[..1]), "full");
        assert!(m.admit(1, &two[..1]), "the other worker has its own share");
        assert!(m.admit(0, &[]));
        m.release(0, one);
        assert!(m.admit(0, &two[..1]));
        let c = m.counters();
        assert_eq!(c[1], ("reports.dropped", 1));
        assert_eq!(c[0], ("reports.stalls", 0));
        assert!(c[2].1 >= 3 * one as u64);
    }

    /// A message larger than the share goes when nothing is in flight.
    #[test]
    fn an_oversized_message_goes_alone() {
        let m = InFlight::new(1, 1, WhenFull::Drop);
        assert!(m.admit(0, &[report("a"), report("b")]));
        assert!(!m.admit(0, &[report("c")]));
    }

    /// File mode: a full share waits until the output stage hands a report
    /// on, with no stall counted.
    #[test]
    fn file_mode_waits_for_the_output_stage() {
        let one = report_bytes(&report("r"));
        let m = Arc::new(InFlight::new(1, one, WhenFull::Wait));
        assert!(m.admit(0, &[report("r")]));
        let waiter = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || m.admit(0, &[report("r")]))
        };
        // The waiter is blocked until this release (no stall: a report
        // was handed on well within STALL_WAIT of its wait).
        std::thread::sleep(Duration::from_millis(20));
        m.release(0, one);
        assert!(waiter.join().unwrap());
        assert_eq!(m.used(0), one);
        assert_eq!(m.counters()[0], ("reports.stalls", 0));
    }

    /// A wait nothing can end is cut after `STALL_WAIT`, counted.
    #[test]
    fn a_wait_without_progress_is_cut_and_counted() {
        let one = report_bytes(&report("r"));
        let m = InFlight::new(1, one, WhenFull::Wait);
        assert!(m.admit(0, &[report("r")]));
        assert!(m.admit(0, &[report("r")]));
        assert_eq!(m.counters()[0], ("reports.stalls", 1));
        assert_eq!(m.used(0), 2 * one, "sent over the share, counted");
    }
}
