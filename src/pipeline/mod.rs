//! The pipeline: from an opened capture to ordered reports, with threads
//! (`run`) or without (`run_offline`), both built from the same parts.
//!
//! ```text
//! capture thread (capture.rs)   worker i (worker.rs)     output stage (output.rs)
//! Intake: index, tick, decode,  one Engine per shard  ->  ReorderBuffer, sessions,
//! --ports, shard -> Dispatcher  ==batches (batch.rs)==>   calibration -> Sink
//! ```
//!
//! `run.rs` is the only place that makes the pipeline's threads and
//! channels; `offline.rs` drives the same `Intake`, engines and
//! `OutputStage` in-process. `clock.rs` decides ticks, `reorder.rs` the
//! print order, `printing.rs` is the binary's sink (printer, answers, `-c`,
//! broken pipe), `budget.rs` divides the memory budget, `config.rs` holds
//! the validated configuration the shell hands over.
//!
//! Invariants, on which file-mode output identical for any `--threads`
//! rests: ticks depend only on the input (every `TICK_FRAMES` frames and
//! whenever packet time moved `TICK_PERIOD` past the last tick), so every
//! engine sees the same clock at the same indexes; a worker's watermark is
//! the lowest `ReportOrder` it can still produce, so the output stage
//! prints a report only when it sorts below every watermark. Engines must
//! stamp each report with the index of the call that produced it. File
//! mode blocks and loses nothing; live mode never blocks the capture
//! thread and counts what it drops. Nothing here parses packets, formats
//! verdicts or reads the command line.

pub mod budget;
pub mod config;

mod batch;
mod capture;
mod clock;
mod offline;
mod output;
mod printing;
mod reorder;
mod run;
mod worker;

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::capture::segment::PortSet;
use crate::capture::source::CaptureError;
use crate::flow::engine::Limits;
use crate::pipeline::config::Config;
use crate::report::calibration::Calibration;
use crate::report::stats::Summary;
use crate::tls::keylog::KeyLog;

pub use batch::{BATCH, RECYCLED_PER_WORKER, batch_footprint};
pub use clock::{TICK_FRAMES, TICK_PERIOD, TickClock};
pub use offline::{Input, OfflineRun, run_offline};
pub use output::{OutputStage, Sink};
pub use reorder::ReorderBuffer;
pub use run::run;

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
        let budget = crate::pipeline::budget::plan(&config.bounds, workers, config.preview_bytes);
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

/// How a run ended, when it did not fail.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    /// stdout went away (`| head`): exit 0 quietly.
    pub stdout_closed: bool,
    /// Reading stopped on an error after the run started (a truncated
    /// file); what was read is printed and summarised, then exit 1.
    pub read_error: Option<CaptureError>,
    /// `--calibrate`: the tally over every printed verdict.
    pub calibration: Option<Calibration>,
}

/// A failure of the run itself.
#[derive(Debug)]
pub enum RunError {
    Output(io::Error),
    Internal(&'static str),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Output(e) => write!(f, "cannot write output: {e}"),
            RunError::Internal(what) => write!(f, "internal error: {what}; please report it"),
        }
    }
}

impl std::error::Error for RunError {}
