//! The per-worker engine: a bounded flow table, two reassembled streams per
//! flow, and a classifier per flow. STUB: API only, being implemented.

use crate::segment::{Segment, Timestamp};
use crate::verdict::Report;

/// Bounds on one engine (one worker shard).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Flows tracked at once by this engine.
    pub max_flows: usize,
    /// Bytes buffered per direction (in-order unconsumed + out-of-order).
    pub stream_buffer: usize,
    /// Largest handshake message reassembled (TLS 1.2 Certificate chains).
    pub handshake_buffer: usize,
    /// Idle time after which an established flow is reported and dropped.
    pub idle_timeout: Timestamp,
    /// Idle time for a flow that never got past SYN.
    pub embryonic_timeout: Timestamp,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: 262_144,
            stream_buffer: 256 * 1024,
            handshake_buffer: 64 * 1024,
            idle_timeout: Timestamp(300 * 1_000_000),
            embryonic_timeout: Timestamp(30 * 1_000_000),
        }
    }
}

/// Counters of one engine; summed across workers for the summary.
#[derive(Debug, Clone, Default)]
pub struct EngineCounters {
    pub flows_created: u64,
}

impl EngineCounters {
    pub fn merge(&mut self, other: &EngineCounters) {
        self.flows_created += other.flows_created;
    }
    /// `(name, value)` pairs for the summary, in a fixed order.
    pub fn entries(&self) -> Vec<(&'static str, u64)> {
        vec![("flows.created", self.flows_created)]
    }
}

pub struct Engine {
    limits: Limits,
    counters: EngineCounters,
}

impl Engine {
    pub fn new(limits: Limits) -> Self {
        Engine { limits, counters: EngineCounters::default() }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Feed one segment. `index` is the packet's position in the input
    /// (0-based, counted by the capture thread over all packets); verdicts
    /// made final by this segment are appended to `out`.
    pub fn on_segment(&mut self, seg: Segment, index: u64, out: &mut Vec<Report>) {
        let _ = (seg, index, out);
    }

    /// Packet-time clock tick, sent to every worker at the same packet
    /// positions whatever the thread count: expire idle flows.
    pub fn on_tick(&mut self, now: Timestamp, index: u64, out: &mut Vec<Report>) {
        let _ = (now, index, out);
    }

    /// End of input: report every flow still open, in first-seen order.
    pub fn finish(&mut self, index: u64, out: &mut Vec<Report>) {
        let _ = (index, out);
    }

    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }
}
