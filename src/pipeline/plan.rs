//! `Plan`: what the pipeline needs from the validated `Config`, once the
//! memory budget is divided (`budget::plan`): worker count, each engine's
//! limits, queue sizes, what is printed. Pure arithmetic and copying; it
//! must not open or allocate anything.

use std::sync::Arc;

use crate::capture::segment::PortSet;
use crate::capture::segment::Timestamp;
use crate::capture::source::Source;
use crate::flow::engine::{self, Limits, Options};
use crate::pipeline::batch::{RECYCLED_PER_WORKER, batch_footprint};
use crate::pipeline::budget;
use crate::pipeline::config::{Config, Mode};
use crate::tls::keylog::KeyLog;

/// What the pipeline needs from the configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workers: usize,
    pub ports: Option<PortSet>,
    pub count: Option<u64>,
    /// Each worker's engine limits (`budget::plan`).
    pub limits: Limits,
    /// What every engine keeps and reports besides its verdicts.
    pub options: Options,
    /// `--calibrate`: tally the size rule against decrypted handshakes.
    pub calibrate: bool,
    /// Batches queued per worker before the capture thread waits (file) or
    /// drops (live).
    pub queue_batches: usize,
    /// Bytes each worker's reports in flight may hold (`inflight`).
    pub reports: usize,
    /// The bounds in force, for the summary.
    pub limits_line: String,
    /// Print a line per verdict (off with `--summary-only`).
    pub flow_lines: bool,
    /// `--only`: which lines are printed (all are counted).
    pub only: Option<crate::report::only::Only>,
    /// Print a line per close (`--close`).
    pub close_lines: bool,
}

impl Plan {
    /// The plan of a run of `config`, whose engines share `keylog` (read
    /// by the shell before the capture opens).
    pub fn from_config(config: &Config, keylog: Option<KeyLog>) -> Plan {
        // The memory budget and the flow limit are for the whole process:
        // each of N workers gets 1/N (its shard's share of the flows).
        let workers = config.threads.max(1);
        // A followed key log may grow to its budget during the run; a read
        // one holds what it holds now, and the flows get the rest.
        let secrets = keylog.as_ref().map_or(0, |k| {
            if k.is_following() {
                secrets_budget(config)
            } else {
                k.bytes()
            }
        });
        // The pods' share (--k8s-pods, --k8s) comes off the top.
        let mut bounds = config.bounds.clone();
        let pods = if config.names_workloads() {
            workloads_budget(config)
        } else {
            0
        };
        bounds.memory = bounds.memory.saturating_sub(pods);
        let budget = budget::plan(&bounds, workers, &sizes(), secrets);
        let queue_batches = queue_batches(config, budget.queue_batches);
        let planned_queue = format!("{} queued batches", budget.queue_batches);
        Plan {
            workers,
            ports: config.ports.clone(),
            count: config.count,
            calibrate: config.calibrate,
            limits: engine_limits(&budget),
            options: Options {
                preview_bytes: config.preview_bytes,
                // Closes feed close lines and the metrics' closed flows and
                // bytes; without either, none are made.
                closes: config.close_lines || config.metrics.is_some(),
                unanswered: config.unanswered_lines,
                keylog: keylog.map(Arc::new),
            },
            queue_batches,
            reports: budget.reports,
            limits_line: if pods > 0 {
                format!(
                    "{}; pods list: {:.1} MiB of --memory {} MiB, the rest as above",
                    budget.describe(),
                    pods as f64 / (1 << 20) as f64,
                    config.bounds.memory >> 20
                )
            } else {
                budget.describe()
            }
            .replace(&planned_queue, &format!("{queue_batches} queued batches")),
            flow_lines: config.flow_lines,
            only: config.only.clone(),
            close_lines: config.close_lines,
        }
    }

    /// One worker with these engine limits and options, every port, every
    /// line: what tests and fuzz targets hand `run_offline`.
    pub fn with_limits(limits: Limits, options: Options) -> Plan {
        Plan {
            workers: 1,
            ports: None,
            count: None,
            limits,
            options,
            calibrate: false,
            queue_batches: 1,
            // In-process runs hand each report on as it is made.
            reports: usize::MAX,
            limits_line: String::new(),
            flow_lines: true,
            only: None,
            close_lines: false,
        }
    }
}

/// Batches queued per worker when `-c N` reads a file: the capture thread
/// waits on a full queue, so reading stops a few batches after the N-th
/// verdict instead of `budget`'s hundreds of batches later (issue 16 §1).
/// The output is the same: file mode loses nothing whatever the depth.
pub const COUNT_QUEUE_BATCHES: usize = 2;

/// The queue depth: `budget`'s, but short for `-c` on a file (live mode
/// keeps its depth: it drops rather than waits).
fn queue_batches(config: &Config, planned: usize) -> usize {
    let file = matches!(config.mode, Mode::Sniff(Source::File(_)));
    if file && config.count.is_some() {
        planned.min(COUNT_QUEUE_BATCHES)
    } else {
        planned
    }
}

/// The bytes the run's key log may hold (`budget::secrets_budget`): what
/// the shell builds its `KeyLog` with, before the capture opens.
pub fn secrets_budget(config: &Config) -> usize {
    budget::secrets_budget(config.bounds.memory, config.threads.max(1), &sizes())
}

/// The bytes a pods list may hold (`budget::workloads_budget`): what the
/// shell reads `--k8s-pods` with.
pub fn workloads_budget(config: &Config) -> usize {
    budget::workloads_budget(config.bounds.memory, config.threads.max(1), &sizes())
}

/// What `budget` divides the memory by: a batch's and a flow table's cost.
pub fn sizes() -> budget::Sizes {
    budget::Sizes {
        batch_bytes: batch_footprint(),
        loose_batches: RECYCLED_PER_WORKER + 1,
        table_bytes: engine::table_bytes,
        window_bytes: crate::capture::window::RESIDENT_MAX,
    }
}

/// Each engine's limits: the bounds asked for, with the flow limit and
/// buffer budget the memory plan gives one worker.
pub fn engine_limits(plan: &budget::Plan) -> Limits {
    let b = &plan.bounds;
    let secs = |s: u32| Timestamp(i64::from(s) * 1_000_000);
    Limits {
        max_flows: plan.max_flows,
        stream_buffer: b.stream_buffer,
        stream_segments: b.ooo_segments,
        handshake_buffer: b.handshake_buffer,
        records_before_verdict: b.records,
        buffer_budget: plan.buffer_budget,
        idle_timeout: secs(b.idle_secs),
        embryonic_timeout: secs(b.syn_secs),
        closed_linger: secs(b.closed_secs),
    }
}
