//! What the pipeline publishes while it runs, for readers on other threads
//! (the metrics endpoint, the progress bar): packets read, loss and the
//! engines' counters, as of the last clock tick.
//!
//! It owns a handful of atomics and one small mutex-guarded list of engine
//! counters. Writers publish only at ticks (every `TICK_FRAMES` frames or
//! second of packet time), never per packet, so the hot path pays nothing;
//! readers get a `Snapshot` that may be up to one tick old. It must not
//! decide or format anything, and the end-of-run `Summary` stays the exact
//! account: gauges are a live view.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::capture::source::KernelStats;
use crate::flow::engine::EngineCounters;

/// Live counters shared between the pipeline's threads and their readers.
#[derive(Debug, Default)]
pub struct Gauges {
    packets: AtomicU64,
    dropped_segments: AtomicU64,
    dropped_ticks: AtomicU64,
    kernel_received: AtomicU64,
    kernel_dropped: AtomicU64,
    kernel_if_dropped: AtomicU64,
    /// Per worker: its engine's counters at its last tick.
    engines: Mutex<Vec<EngineCounters>>,
    /// The input is done (end of file, or the live capture stopped).
    finished: AtomicBool,
}

/// One consistent-enough reading of the gauges.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub packets: u64,
    pub dropped_segments: u64,
    pub dropped_ticks: u64,
    pub kernel: KernelStats,
    /// Summed over workers.
    pub engine: EngineCounters,
    pub finished: bool,
}

impl Gauges {
    /// The capture thread, at a tick or at the end.
    pub fn publish_capture(
        &self,
        packets: u64,
        dropped_segments: u64,
        dropped_ticks: u64,
        kernel: Option<KernelStats>,
    ) {
        self.packets.store(packets, Ordering::Relaxed);
        self.dropped_segments
            .store(dropped_segments, Ordering::Relaxed);
        self.dropped_ticks.store(dropped_ticks, Ordering::Relaxed);
        if let Some(k) = kernel {
            self.kernel_received.store(k.received, Ordering::Relaxed);
            self.kernel_dropped.store(k.dropped, Ordering::Relaxed);
            self.kernel_if_dropped
                .store(k.if_dropped, Ordering::Relaxed);
        }
    }

    /// A worker, at a tick or when it is done.
    pub fn publish_engine(&self, worker: usize, counters: &EngineCounters) {
        // A poisoned lock means a reader panicked mid-read; the counters
        // are plain numbers, still usable.
        let mut engines = self.engines.lock().unwrap_or_else(|e| e.into_inner());
        if engines.len() <= worker {
            engines.resize_with(worker + 1, EngineCounters::default);
        }
        if let Some(slot) = engines.get_mut(worker) {
            slot.clone_from(counters);
        }
    }

    /// The input is done; what the gauges hold now is final.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut engine = EngineCounters::default();
        for c in self
            .engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            engine.merge(c);
        }
        Snapshot {
            packets: self.packets.load(Ordering::Relaxed),
            dropped_segments: self.dropped_segments.load(Ordering::Relaxed),
            dropped_ticks: self.dropped_ticks.load(Ordering::Relaxed),
            kernel: KernelStats {
                received: self.kernel_received.load(Ordering::Relaxed),
                dropped: self.kernel_dropped.load(Ordering::Relaxed),
                if_dropped: self.kernel_if_dropped.load(Ordering::Relaxed),
            },
            engine,
            finished: self.finished.load(Ordering::Acquire),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_workers_and_keeps_the_latest_publication() {
        let g = Gauges::default();
        let mut a = EngineCounters {
            flows_created: 3,
            ..EngineCounters::default()
        };
        let b = EngineCounters {
            flows_created: 4,
            flows_evicted_embryonic: 2,
            ..EngineCounters::default()
        };
        g.publish_engine(1, &b);
        g.publish_engine(0, &a);
        a.flows_created = 5;
        g.publish_engine(0, &a);
        g.publish_capture(100, 7, 1, None);
        let s = g.snapshot();
        assert_eq!(s.engine.flows_created, 9);
        assert_eq!(s.engine.flows_evicted_embryonic, 2);
        assert_eq!(
            (s.packets, s.dropped_segments, s.dropped_ticks),
            (100, 7, 1)
        );
        assert!(!s.finished);
        g.publish_capture(
            120,
            7,
            1,
            Some(KernelStats {
                received: 130,
                dropped: 10,
                if_dropped: 0,
            }),
        );
        g.finish();
        let s = g.snapshot();
        assert_eq!((s.packets, s.kernel.dropped), (120, 10));
        assert!(s.finished);
    }
}
