//! How the memory budget (`--memory`) and the user's bounds become the
//! limits of each worker, before anything is allocated.
//!
//! This file owns the arithmetic only: a pure function from `Bounds` (what
//! the command line asked for), the worker count and `Sizes` (what a batch
//! and a flow table cost, measured by the pipeline and the engine that own
//! them) to a `Plan` (how many flows, buffer bytes and queued batches each
//! worker gets). It must not allocate, measure or make threads, and it
//! imports neither the engine nor the pipeline: they pass their sizes in,
//! the pipeline turns the plan into each engine's `Limits`, the engine
//! enforces them. Invariant: for any budget at least `MIN_MEMORY`, the
//! plan's parts add up to no more than the budget: a process reserve, the
//! worker queues, and per worker a flow table, a buffer budget and the
//! resident window of a mapped input file (`Sizes::window_bytes`).
//!
//! The split, per worker after the reserve: at most an eighth for its queue
//! of batches, then at most half of the rest for its flow table (the flow
//! limit is lowered until the table fits), and everything else for the
//! pending flows' state and buffers (the engine's `Limits::buffer_budget`),
//! but an eighth of that (`REPORTS_SHARE`) for the worker's reports in
//! flight (`pipeline::inflight`: built, not yet printed). Taken from the
//! buffers, not the table, so the flow limit is what it was without it.
//!
//! Secrets (a key log, a pcapng's Decryption Secrets Blocks) come first:
//! their table may hold `secrets_budget` bytes, an eighth of the budget
//! (`SECRETS_SHARE`), and the plan divides what they leave. An eighth:
//! the same share a worker's queue gets, enough at the default 256 MiB for
//! some 100,000 TLS 1.3 connections' secrets (about 300 bytes each) while
//! the flows keep seven eighths; a larger key log keeps its newest lines.
//!
//! A pods list (`--k8s-pods`) is held to `workloads_budget`, a sixteenth
//! (`WORKLOADS_SHARE`: some 50,000 pod addresses at the default 256 MiB),
//! taken off the top before the rest is planned.

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Default `--memory`: the whole process, in bytes.
pub const DEFAULT_MEMORY: usize = 256 * MIB;
/// Smallest `--memory` accepted (more with many workers: `min_memory`).
pub const MIN_MEMORY: usize = 32 * MIB;
/// Each worker's budget for pending flows is at least this.
pub const MIN_BUFFER_BUDGET: usize = 2 * MIB;
/// Bytes set aside for what is not per flow: code, libpcap's file buffer,
/// thread stacks, the output stage (reordering, TLS session memory of 65,536
/// sessions), the summary.
pub const PROCESS_RESERVE: usize = 16 * MIB;
/// The reports in flight get this fraction of what a worker's table
/// leaves (module docs): 13.2 MiB of the default budget's one worker,
/// thousands of reports, enough that workers and the output stage overlap.
pub const REPORTS_SHARE: usize = 8;
/// Default `--max-flows`, for the whole process.
pub const DEFAULT_MAX_FLOWS: usize = 262_144;
/// A worker's flow table never gets fewer slots than this, whatever the
/// budget says (the minimum budget leaves room for it).
pub const MIN_FLOWS_PER_WORKER: usize = 1024;
/// Default `--stream-buffer`, per direction.
pub const DEFAULT_STREAM_BUFFER: usize = 256 * KIB;
/// Default `--ooo-segments`, per direction.
pub const DEFAULT_OOO_SEGMENTS: usize = 256;
/// Default `--handshake-buffer`: the longest handshake message kept whole.
pub const DEFAULT_HANDSHAKE_BUFFER: usize = 64 * KIB;
/// Default idle timeouts, in seconds, by flow state.
pub const DEFAULT_IDLE_SECS: u32 = 300;
pub const DEFAULT_SYN_SECS: u32 = 30;
pub const DEFAULT_CLOSED_SECS: u32 = 10;
/// Batches queued per worker: at least this many (a worker must be able to
/// fall behind a little), at most this many (more only adds latency).
pub const MIN_QUEUE_BATCHES: usize = 4;
pub const MAX_QUEUE_BATCHES: usize = 256;

/// What the command line asked for (bytes, counts, seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    pub memory: usize,
    pub max_flows: usize,
    pub stream_buffer: usize,
    pub ooo_segments: usize,
    pub handshake_buffer: usize,
    pub records: u32,
    pub idle_secs: u32,
    pub syn_secs: u32,
    pub closed_secs: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            memory: DEFAULT_MEMORY,
            max_flows: DEFAULT_MAX_FLOWS,
            stream_buffer: DEFAULT_STREAM_BUFFER,
            ooo_segments: DEFAULT_OOO_SEGMENTS,
            handshake_buffer: DEFAULT_HANDSHAKE_BUFFER,
            records: crate::classify::RECORDS_BEFORE_VERDICT,
            idle_secs: DEFAULT_IDLE_SECS,
            syn_secs: DEFAULT_SYN_SECS,
            closed_secs: DEFAULT_CLOSED_SECS,
        }
    }
}

/// What the plan divides memory by, measured by the stages that own each
/// cost (`pipeline::sizes` fills it in).
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Heap bytes one batch of segments may hold (`pipeline::batch_footprint`).
    pub batch_bytes: usize,
    /// Batches per worker outside its queue: the one being filled and the
    /// recycled ones (`pipeline::RECYCLED_PER_WORKER` + 1).
    pub loose_batches: usize,
    /// Worst-case heap bytes of a flow table limited to this many flows
    /// (`flow::engine::table_bytes`).
    pub table_bytes: fn(usize) -> usize,
    /// Bytes of a mapped input file one walk keeps resident
    /// (`capture::window::RESIDENT_MAX`); walk mode has a walk per worker,
    /// so each worker sets this much aside, whatever the input.
    pub window_bytes: usize,
}

/// The budget's share for secrets: an eighth (see the module docs).
pub const SECRETS_SHARE: usize = 8;

/// The reserve plus each of `workers` workers' minimum queue, a table of
/// `MIN_FLOWS_PER_WORKER` flows and `MIN_BUFFER_BUDGET`.
fn least_bytes(workers: usize, sizes: &Sizes) -> usize {
    let batches = sizes.loose_batches + MIN_QUEUE_BATCHES;
    let per_worker = batches * sizes.batch_bytes
        + sizes.window_bytes
        + (sizes.table_bytes)(MIN_FLOWS_PER_WORKER)
        + MIN_BUFFER_BUDGET;
    PROCESS_RESERVE + workers.max(1) * per_worker
}

/// The smallest budget that gives each of `workers` workers its minimum
/// queue, a table of `MIN_FLOWS_PER_WORKER` flows and `MIN_BUFFER_BUDGET`.
pub fn min_memory(workers: usize, sizes: &Sizes) -> usize {
    // Rounded up to whole MiB, as the flag counts.
    MIN_MEMORY.max(least_bytes(workers, sizes).div_ceil(MIB) * MIB)
}

/// Bytes the secrets of a run with `memory` and `workers` may hold: an
/// eighth of the budget, less when the workers' minimum leaves less (many
/// workers at the smallest budget), so the parts still add up.
pub fn secrets_budget(memory: usize, workers: usize, sizes: &Sizes) -> usize {
    (memory / SECRETS_SHARE).min(memory.saturating_sub(least_bytes(workers, sizes)))
}

/// The budget's share for a pods list: a sixteenth (see the module docs).
pub const WORKLOADS_SHARE: usize = 16;

/// Bytes a pods list's directory may hold: a sixteenth of the budget, less
/// when the workers' minimum and the secrets leave less.
pub fn workloads_budget(memory: usize, workers: usize, sizes: &Sizes) -> usize {
    let left = memory
        .saturating_sub(least_bytes(workers, sizes))
        .saturating_sub(secrets_budget(memory, workers, sizes));
    (memory / WORKLOADS_SHARE).min(left)
}

/// The budget when `--memory` is not given: the default, or the minimum
/// for this many workers when that is more.
pub fn default_memory(workers: usize, sizes: &Sizes) -> usize {
    DEFAULT_MEMORY.max(min_memory(workers, sizes))
}

/// What every worker gets: the bounds as asked, except the flow limit,
/// which the budget may lower, plus the buffer budget and queue length
/// the budget leaves. The pipeline makes each engine's `Limits` from it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workers: usize,
    /// Total budget, bytes.
    pub memory: usize,
    /// The command line's bounds (per direction, per flow, timeouts).
    pub bounds: Bounds,
    /// Flows each worker's table holds (`Limits::max_flows`).
    pub max_flows: usize,
    /// Bytes each worker may hold for pending flows (`Limits::buffer_budget`).
    pub buffer_budget: usize,
    /// Batches each worker's queue holds.
    pub queue_batches: usize,
    /// Bytes each worker's reports in flight may hold (`pipeline::inflight`).
    pub reports: usize,
    /// Bytes set aside for secrets (at most `secrets_budget`).
    pub secrets: usize,
}

/// Divide `bounds.memory` among `workers` (see the module docs), once
/// `secrets` bytes (at most `secrets_budget`; 0 without a key log) are set
/// aside for secrets.
pub fn plan(bounds: &Bounds, workers: usize, sizes: &Sizes, secrets: usize) -> Plan {
    let workers = workers.max(1);
    let secrets = secrets.min(secrets_budget(bounds.memory, workers, sizes));
    let batch = sizes.batch_bytes;
    // Outside the queues: each worker's batch being filled, the recycled
    // ones, and its walk's window of a mapped file.
    let loose = workers.saturating_mul(
        sizes
            .loose_batches
            .saturating_mul(batch)
            .saturating_add(sizes.window_bytes),
    );
    let share = bounds
        .memory
        .saturating_sub(secrets)
        .saturating_sub(PROCESS_RESERVE)
        .saturating_sub(loose)
        / workers;
    let queue_batches = (share / 8 / batch).clamp(MIN_QUEUE_BATCHES, MAX_QUEUE_BATCHES);
    let rest = share.saturating_sub(queue_batches * batch);
    let asked = bounds.max_flows.div_ceil(workers).max(1);
    // The budget may lower the flow limit, but never below a floor that
    // the minimum budget leaves room for (nor above what was asked).
    let floor = asked.min(MIN_FLOWS_PER_WORKER);
    let mut flows = asked;
    let table_share = (rest / 2).min(rest.saturating_sub(MIN_BUFFER_BUDGET));
    while flows > floor && (sizes.table_bytes)(flows) > table_share {
        flows = (flows - flows / 16).max(floor);
    }
    let pending = rest.saturating_sub((sizes.table_bytes)(flows));
    let reports = pending.saturating_sub(MIN_BUFFER_BUDGET) / REPORTS_SHARE;
    let buffer_budget = pending - reports;
    Plan {
        workers,
        memory: bounds.memory,
        bounds: bounds.clone(),
        max_flows: flows,
        buffer_budget,
        queue_batches,
        reports,
        secrets,
    }
}

impl Plan {
    /// One line for the summary: every bound in force.
    pub fn describe(&self) -> String {
        let b = &self.bounds;
        let mib = |b: usize| b as f64 / MIB as f64;
        let secrets = if self.secrets > 0 {
            format!("{:.1} MiB for key log secrets; ", mib(self.secrets))
        } else {
            String::new()
        };
        format!(
            "limits: memory {:.0} MiB; {secrets}per worker (x{}): {} flows, {:.1} MiB for pending flows, {:.1} MiB for reports in flight, {} queued batches; \
             per direction: {} KiB stream buffer, {} out-of-order segments, {} KiB handshake message, {} records; \
             idle timeouts: {}s, {}s SYN-only, {}s after close",
            mib(self.memory),
            self.workers,
            self.max_flows,
            mib(self.buffer_budget),
            mib(self.reports),
            self.queue_batches,
            b.stream_buffer / KIB,
            b.ooo_segments,
            b.handshake_buffer / KIB,
            b.records,
            b.idle_secs,
            b.syn_secs,
            b.closed_secs,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::engine::{self, Limits};
    use crate::pipeline;

    fn sizes() -> Sizes {
        pipeline::sizes()
    }

    fn total(p: &Plan) -> usize {
        let per_worker = engine::table_bytes(p.max_flows)
            + p.buffer_budget
            + p.reports
            + p.queue_batches * pipeline::batch_footprint();
        let loose = p.workers
            * ((pipeline::RECYCLED_PER_WORKER + 1) * pipeline::batch_footprint()
                + crate::capture::window::RESIDENT_MAX);
        PROCESS_RESERVE + loose + p.workers * per_worker + p.secrets
    }

    #[test]
    fn the_parts_never_exceed_the_budget() {
        for memory in [MIN_MEMORY, 64 * MIB, DEFAULT_MEMORY, 4096 * MIB] {
            for workers in [1, 2, 3, 7, 16, 64] {
                let memory = memory.max(min_memory(workers, &sizes()));
                let b = Bounds {
                    memory,
                    ..Bounds::default()
                };
                let secrets = secrets_budget(memory, workers, &sizes());
                assert!(secrets <= memory / SECRETS_SHARE);
                let with = plan(&b, workers, &sizes(), secrets);
                assert_eq!(with.secrets, secrets);
                assert!(total(&with) <= memory, "{memory} / {workers}: {with:?}");
                assert!(with.buffer_budget >= MIN_BUFFER_BUDGET, "{with:?}");
                let p = plan(&b, workers, &sizes(), 0);
                assert!(
                    total(&p) <= memory,
                    "{memory} / {workers}: {} > {memory}",
                    total(&p)
                );
                assert!(p.max_flows >= MIN_FLOWS_PER_WORKER);
                assert!(p.buffer_budget >= MIN_BUFFER_BUDGET, "{p:?}");
                assert!(p.queue_batches >= MIN_QUEUE_BATCHES);
                assert!(
                    p.max_flows * workers <= DEFAULT_MAX_FLOWS + workers * MIN_FLOWS_PER_WORKER
                );
            }
        }
    }

    #[test]
    fn the_default_budget_holds_most_of_the_default_flow_limit() {
        let p = plan(&Bounds::default(), 1, &sizes(), 0);
        // 256 MiB hold 216,000 flows in one worker's table (two tables'
        // worth while a full one is rebuilt, see engine::table_bytes);
        // 512 MiB all of them.
        assert!(p.max_flows > DEFAULT_MAX_FLOWS * 3 / 4, "{p:?}");
        let big = plan(
            &Bounds {
                memory: 512 * MIB,
                ..Bounds::default()
            },
            1,
            &sizes(),
            0,
        );
        assert_eq!(big.max_flows, DEFAULT_MAX_FLOWS);
        // A smaller budget lowers the flow limit instead of overrunning.
        let small = plan(
            &Bounds {
                memory: 64 * MIB,
                ..Bounds::default()
            },
            1,
            &sizes(),
            0,
        );
        assert!(small.max_flows < DEFAULT_MAX_FLOWS, "{small:?}");
        assert!(small.buffer_budget < p.buffer_budget);
        let line = p.describe();
        assert!(
            line.contains("memory 256 MiB") && line.contains(&format!("{} flows", p.max_flows)),
            "{line}"
        );
    }

    /// Secrets get an eighth of the budget: 4 MiB of the smallest, 32 MiB
    /// of the default (`tls::keylog::DEFAULT_BUDGET`, what tests and tools
    /// use without a plan); what they take, the flows do not get.
    #[test]
    fn secrets_get_an_eighth_and_the_flows_the_rest() {
        let one = |memory| secrets_budget(memory, 1, &sizes());
        assert_eq!(one(MIN_MEMORY), 4 * MIB);
        assert_eq!(one(DEFAULT_MEMORY), crate::tls::keylog::DEFAULT_BUDGET);
        let b = Bounds::default();
        let without = plan(&b, 1, &sizes(), 0);
        let with = plan(&b, 1, &sizes(), one(DEFAULT_MEMORY));
        assert!(
            with.buffer_budget + with.secrets
                <= without.buffer_budget + (sizes().table_bytes)(without.max_flows)
        );
        assert!(
            with.describe().contains("32.0 MiB for key log secrets"),
            "{}",
            with.describe()
        );
        assert!(!without.describe().contains("key log"));
        // Never more than asked for, nor than the share.
        assert_eq!(
            plan(&b, 1, &sizes(), usize::MAX).secrets,
            one(DEFAULT_MEMORY)
        );
        // Many workers at their smallest budget: what the minimum leaves.
        let m = min_memory(64, &sizes());
        assert!(secrets_budget(m, 64, &sizes()) < MIB);
    }

    /// `engine::Limits::default()` is plain numbers (the engine is below
    /// the pipeline and cannot ask this file): they must stay what the
    /// plan gives the only worker of a run with the default bounds, which
    /// is what the pipeline would build (`pipeline::engine_limits`).
    #[test]
    fn the_engine_default_limits_are_the_default_plan() {
        let p = plan(&Bounds::default(), 1, &sizes(), 0);
        assert_eq!(Limits::default(), pipeline::engine_limits(&p));
    }
}
