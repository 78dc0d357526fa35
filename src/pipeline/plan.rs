//! `Plan`: what the pipeline needs from the validated `Config`, once the
//! memory budget is divided (`budget::plan`): worker count, each engine's
//! limits, queue sizes, what is printed. Pure arithmetic and copying; it
//! must not open or allocate anything.

use std::sync::Arc;

use crate::capture::segment::PortSet;
use crate::flow::engine::Limits;
use crate::pipeline::budget;
use crate::pipeline::config::Config;
use crate::tls::keylog::KeyLog;

/// What the pipeline needs from the configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workers: usize,
    pub ports: Option<PortSet>,
    pub count: Option<u64>,
    /// Each worker's engine limits (`budget::plan`).
    pub limits: Limits,
    /// `--calibrate`: tally the size rule against decrypted handshakes.
    pub calibrate: bool,
    /// Batches queued per worker before the capture thread waits (file) or
    /// drops (live).
    pub queue_batches: usize,
    /// The bounds in force, for the summary.
    pub limits_line: String,
    /// Print a line per verdict (off with `--summary-only`).
    pub flow_lines: bool,
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
        let budget = budget::plan(&config.bounds, workers, config.preview_bytes);
        Plan {
            workers,
            ports: config.ports.clone(),
            count: config.count,
            calibrate: config.calibrate,
            limits: Limits {
                // Closes feed close lines and the metrics' closed flows and
                // bytes; without either, none are made.
                closes: config.close_lines || config.metrics.is_some(),
                keylog: keylog.map(Arc::new),
                ..budget.limits.clone()
            },
            queue_batches: budget.queue_batches,
            limits_line: budget.describe(),
            flow_lines: config.flow_lines,
            close_lines: config.close_lines,
        }
    }

    /// One worker with these engine limits, every port, every line: what
    /// tests and fuzz targets hand `run_offline`.
    pub fn with_limits(limits: Limits) -> Plan {
        Plan {
            workers: 1,
            ports: None,
            count: None,
            limits,
            calibrate: false,
            queue_batches: 1,
            limits_line: String::new(),
            flow_lines: true,
            close_lines: false,
        }
    }
}
