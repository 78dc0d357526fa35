//! The validated run configuration: what the shell hands the pipeline.
//! `shell::cli` builds it from the command line (no I/O between parsing and
//! validating); the pipeline and `main` only read it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::capture::segment::PortSet;
use crate::capture::source::Source;
use crate::pipeline::budget::Bounds;
use crate::report::answers::SummaryFormat;
use crate::report::expect::Expectation;
use crate::report::only::Only;
use crate::report::output::{Buffering, Format};

/// What the run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    ListInterfaces,
    Sniff(Source),
}

/// Log verbosity on stderr, from `--log-level` / `-q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// A validated run configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// pcap-filter expression, the positional words joined by spaces.
    pub filter: Option<String>,
    /// None: track every TCP flow.
    pub ports: Option<PortSet>,
    pub format: Format,
    pub buffering: Buffering,
    /// Stop after this many printed verdicts.
    pub count: Option<u64>,
    pub snaplen: u32,
    /// Kernel buffer in bytes (fits libpcap's `int`).
    pub buffer_bytes: Option<u32>,
    pub threads: usize,
    /// Live: capture through one libpcap socket and worker threads even
    /// where an AF_PACKET fanout group of `threads` members would do.
    pub no_fanout: bool,
    pub log_level: LogLevel,
    /// Print the summary on stderr at exit.
    pub summary: bool,
    /// `-v`: text lines with their evidence and reason, full identities.
    pub detailed: bool,
    /// The full summary (`--stats`, `-v`), not its one or two lines.
    pub stats: bool,
    /// `--only`: the lines and edges shown (the summary counts all).
    pub only: Option<Only>,
    /// Bytes of each direction of a plaintext flow to show (-A); 0 = off.
    pub preview_bytes: usize,
    /// `--keylog`: read (and, live, followed) by the caller before the run.
    pub keylog: Option<PathBuf>,
    /// `--calibrate`: size rule against decryption, on stderr.
    pub calibrate: bool,
    /// Memory budget and per-flow bounds.
    pub bounds: Bounds,
    /// `-Z`: the user to switch to once the capture is open.
    pub user: Option<String>,
    /// A line per verdict (off with `--summary-only`).
    pub flow_lines: bool,
    /// A line per close (`--close`).
    pub close_lines: bool,
    /// A line per unanswered SYN (`-v`); otherwise they are only counted.
    pub unanswered_lines: bool,
    /// The edges summary at the end, in this form.
    pub edges_summary: Option<SummaryFormat>,
    /// Live: the edges summary again every this long.
    pub summary_interval: Option<Duration>,
    pub expect: Option<Expectation>,
    pub strict: bool,
    pub metrics: Option<SocketAddr>,
    /// File mode with metrics: serve this long after the end.
    pub metrics_linger: Duration,
    pub graph: Option<PathBuf>,
    /// `--k8s-pods`: a pods list naming workloads (read by the shell).
    pub k8s_pods: Option<PathBuf>,
    /// `--k8s`: watch pods through the Kubernetes API (started by the
    /// shell; `pipeline::run::start_watch`).
    pub k8s: bool,
    /// `--namespace`: `--expect` checks only flows with a pod in these.
    pub namespaces: Vec<String>,
}

impl Config {
    /// Flows are placed in workloads: a pods list or the pods watch.
    pub fn names_workloads(&self) -> bool {
        self.k8s || self.k8s_pods.is_some()
    }
}
