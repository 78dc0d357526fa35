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
//! broken pipe), `plan.rs` turns the validated configuration
//! (`config.rs`, what the shell hands over) into the run's numbers, with
//! `budget.rs` dividing the memory budget; `inflight.rs` meters the reports
//! between the workers and the printer.
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
mod fanout;
mod inflight;
mod offline;
mod output;
mod plan;
mod printing;
mod reorder;
mod run;
mod walk;
mod worker;

use std::fmt;
use std::io;

use crate::capture::source::CaptureError;
use crate::report::calibration::Calibration;
use crate::report::stats::Summary;

pub use batch::{BATCH, RECYCLED_PER_WORKER, batch_footprint};
pub use clock::{TICK_FRAMES, TICK_PERIOD, TickClock};
pub use offline::{Input, OfflineRun, run_offline};
pub use output::{OutputStage, Sink};
pub use plan::{Plan, engine_limits, secrets_budget, sizes, workloads_budget};
pub use reorder::ReorderBuffer;
pub use run::{run, run_fanout, start_watch};

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
