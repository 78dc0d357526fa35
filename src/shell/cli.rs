//! Command line: clap's derive `Args` (what the user typed) and the validated
//! `Config` (what the run uses), in ripgrep's two stages.
//!
//! This file owns flag names, defaults, help text and every usage check. It
//! must not do I/O: `config` is a pure function of the parsed
//! arguments and the core count the caller measured, so the validation table
//! below tests it without a terminal, a file or a network device. Invariant:
//! a `Config` that exists is runnable as far as the command line can tell
//! (exactly one source, counts and sizes in range); what only the system can
//! refuse (a missing interface, a bad filter) is found later, when opening.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};

use crate::report::answers::SummaryFormat;
use crate::report::expect::Expectation;
use crate::report::graph::GraphFormat;
use crate::report::only::Only;

use crate::capture::segment::PortSet;
use crate::capture::source::Source;
use crate::pipeline::budget::{self, Bounds};
use crate::pipeline::config::{Config, LogLevel, Mode};
use crate::report::output::{Buffering, Format};
// Istio's HBONE port (tunnelled mTLS) and the ports meshes redirect to with
// iptables: always tracked whatever `--ports` says.
use crate::classify::mesh::REDIRECT_PORTS;

/// libpcap's largest snapshot length (MAXIMUM_SNAPLEN), also tcpdump's default.
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// More workers than this only costs memory.
pub const MAX_THREADS: usize = 256;

const EXAMPLES: &str = "\
Examples:
  mtlsniff -r capture.pcapng                classify every TCP flow in a file
  tcpdump -i eth0 -U -w - | mtlsniff -r -   read a capture from stdin
  mtlsniff -i any --ports 9080,8000         live, only these ports (+ mesh ports)
  mtlsniff -i eth0 port 9080 or port 15008  live, with a capture filter
  mtlsniff -r x.pcap --json | jq .class     JSON Lines, one object per flow
  mtlsniff -r x.pcap --keylog keys.log      prove TLS 1.3 verdicts by decrypting
                                            the handshake (SSLKEYLOGFILE format)
  mtlsniff -r x.pcap --keylog k --calibrate size rule vs decryption (stderr)
  mtlsniff -r x.pcap --summary-only --graph edges.svg
                                            who talks to whom, and a picture
  mtlsniff -r x.pcap --ports 9080 --expect mtls
                                            CI: exit 4 if a flow was not mTLS
  mtlsniff -i eth0 --metrics 0.0.0.0:9909   serve Prometheus /metrics
  kubectl get pods -A -o json > pods.json
  mtlsniff -r x.pcap --k8s-pods pods.json --expect mtls --namespace shop
                                            name workloads; is namespace shop STRICT?
  mtlsniff -D                               list interfaces

Limits (every one is counted in the summary when it bites):
  --memory caps the whole process. Key log secrets (--keylog, pcapng DSBs)
  get at most 1/8, the oldest dropped first (keylog.clients_dropped). After
  a 16 MiB reserve (code, libpcap, output), each of the N workers gets 1/N
  of the rest: at most 1/8 for its
  queue of packet batches, at most half of the remainder for its flow table
  (the flow limit, split among the workers, is lowered until the table
  fits), and the rest for flows still waiting for a verdict: their state,
  stream buffers and handshake buffers, checked before every allocation. A
  flow that does not fit is reported unknown (mem.flows_given_up). The
  summary's `limits:` line shows the numbers in force. A full table evicts
  SYN-only flows first (flows.evicted_embryonic), then decided ones
  (flows.evicted_decided); a flow waiting for its verdict is never evicted:
  new flows are refused (flows.table_full). The kernel buffer (-B) is
  outside the budget.

Live capture needs CAP_NET_RAW: run with sudo, or
  setcap cap_net_raw+ep $(which mtlsniff)
or, in Kubernetes, kubectl debug --profile=netadmin. Once the capture is
open mtlsniff drops every capability, sets no-new-privileges, and with
-Z USER switches to that user.

Exit status: 0 success (and --expect met), 1 runtime error (also a damaged
capture file: what was read is reported first), 2 usage error, 3 input lost
(kernel or queue drops, full flow table, limits or memory budget; see the
summary), 4 --expect not met (a flow fell short, or with --strict an unknown
flow); 4 wins over 1 and 3.";

/// What the user typed, as clap parsed it. Validate with `config`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "mtlsniff",
    version,
    about = "Passive TLS / mTLS detector: one verdict line per TCP flow.",
    after_help = EXAMPLES
)]
pub struct Args {
    /// Read packets from a pcap or pcapng file ('-' for stdin).
    #[arg(short = 'r', long = "read", value_name = "FILE", conflicts_with_all = ["interface", "list_interfaces"])]
    pub read: Option<PathBuf>,

    /// Capture live on this interface ('any' for all).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        conflicts_with = "list_interfaces"
    )]
    pub interface: Option<String>,

    /// List the interfaces a live capture can use, then exit.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// Track only TCP flows on these ports (comma-separated); 15008 (Istio
    /// HBONE) and the mesh redirect ports (15001, 15006, 4140, 4143) are
    /// always tracked. Default: every TCP flow.
    #[arg(long = "ports", value_name = "PORT,...", value_delimiter = ',', value_parser = port_or_empty)]
    pub ports: Vec<Option<u16>>,

    /// Print JSON Lines instead of text.
    #[arg(long = "json")]
    pub json: bool,

    /// For plaintext flows, also print the first bytes each way as
    /// printable ASCII (like tcpdump -A), so you see what leaks.
    #[arg(short = 'A', long = "ascii")]
    pub ascii: bool,

    /// Flush stdout after every line (default when stdout is a terminal).
    #[arg(short = 'l', long = "line-buffered")]
    pub line_buffered: bool,

    /// Stop after printing N flow verdicts.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,

    /// Bytes captured per packet, live only (0 = default).
    #[arg(short = 's', long = "snaplen", value_name = "SNAPLEN", default_value_t = DEFAULT_SNAPLEN)]
    pub snaplen: u32,

    /// Kernel capture buffer in KiB, live only (default 65536: with it one
    /// worker kept up with 500k packets/s without drops on a 2-core machine,
    /// where libpcap's 2 MiB dropped from 230k).
    #[arg(short = 'B', long = "buffer-size", value_name = "KiB")]
    pub buffer_kib: Option<u32>,

    /// Worker threads (default: available cores minus one, at least 1;
    /// reading a file, every core: see README, walk mode).
    /// Live on Linux, the size of the AF_PACKET fanout group: N sockets,
    /// each captured and judged by its own thread.
    #[arg(long = "threads", value_name = "N")]
    pub threads: Option<usize>,

    /// Live: capture through one libpcap socket feeding the worker threads,
    /// not an AF_PACKET fanout group (which -i any, IP-only links and
    /// systems other than Linux never use).
    #[arg(long = "no-fanout")]
    pub no_fanout: bool,

    /// More detail, as in tcpdump: each text line also shows its evidence
    /// (certificate request, client certificate, flight sizes, alert,
    /// ALPN), Community ID and reason, the edges table its full
    /// identities, and the summary every counter and limit (as --stats).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Less output on stderr: -q errors only and no summary, -qq nothing.
    #[arg(short = 'q', long = "quiet", action = ArgAction::Count)]
    pub quiet: u8,

    /// Diagnostic log on stderr (default warn; -q makes it error, -qq off).
    #[arg(long = "log-level", value_name = "LEVEL", value_enum)]
    pub log_level: Option<LogLevelArg>,

    /// Show only flows of these classes or outcomes, in every view (flow
    /// and close lines, JSON, the edges summary); the summary on stderr,
    /// the metrics and --expect still count every flow. KEY is class
    /// (plaintext, tls, mtls, unknown) or outcome (ok, rejected,
    /// incomplete, unknown); repeat --only to require both.
    #[arg(long = "only", value_name = "KEY=V,...")]
    pub only: Vec<String>,

    /// The full summary on stderr: every counter, the limits in force,
    /// time to verdict and engine time (the default is one or two lines).
    #[arg(long = "stats")]
    pub stats: bool,

    /// Key log (SSLKEYLOGFILE / RFC 9850 format: Envoy key_log, curl,
    /// Firefox, Python, Go KeyLogWriter). TLS 1.3 handshakes whose client
    /// random it lists are decrypted (handshake messages only; never
    /// application data): basis 'decrypted'. Live, lines the proxy appends
    /// are picked up as they come. Secrets in a pcapng input's Decryption
    /// Secrets Blocks are used even without this flag. A key log decrypts
    /// traffic: keep it private and delete it after use.
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylog: Option<PathBuf>,

    /// With --keylog: after the run, print on stderr how the TLS 1.3 size
    /// rule compares with what decryption proves (confusion matrix, client
    /// flight sizes per class, every disagreement).
    #[arg(long = "calibrate")]
    pub calibrate: bool,

    /// After opening the capture, drop privileges and switch to this user
    /// (its primary group, no supplementary groups), as tcpdump -Z does.
    #[arg(short = 'Z', long = "relinquish-privileges", value_name = "USER")]
    pub user: Option<String>,

    /// Memory budget for the whole process, in MiB (default 256; at least
    /// 32). See "Limits" below for how it is divided.
    #[arg(long = "memory", value_name = "MiB", help_heading = "Limits")]
    pub memory_mib: Option<usize>,

    /// Flows tracked at once, for the whole process (default 262144);
    /// the memory budget may lower it.
    #[arg(long = "max-flows", value_name = "N", help_heading = "Limits")]
    pub max_flows: Option<usize>,

    /// Bytes buffered per direction of a flow, in-order and out-of-order,
    /// in KiB (default 256; at least 20, one whole TLS record).
    #[arg(long = "stream-buffer", value_name = "KiB", help_heading = "Limits")]
    pub stream_buffer_kib: Option<usize>,

    /// Out-of-order segments held per direction (default 256).
    #[arg(long = "ooo-segments", value_name = "N", help_heading = "Limits")]
    pub ooo_segments: Option<usize>,

    /// Longest handshake message kept whole, in KiB (default 64; at least
    /// 4). Longer certificate chains are read from their prefix.
    #[arg(long = "handshake-buffer", value_name = "KiB", help_heading = "Limits")]
    pub handshake_buffer_kib: Option<usize>,

    /// TLS records read per direction before a verdict is forced
    /// (default 64; at least 4).
    #[arg(long = "max-records", value_name = "N", help_heading = "Limits")]
    pub max_records: Option<u32>,

    /// Seconds without packets before a flow with payload is concluded
    /// (default 300).
    #[arg(long = "idle-timeout", value_name = "SECS", help_heading = "Limits")]
    pub idle_timeout: Option<u32>,

    /// Seconds before a flow that never carried payload (SYN only) is
    /// dropped (default 30).
    #[arg(long = "syn-timeout", value_name = "SECS", help_heading = "Limits")]
    pub syn_timeout: Option<u32>,

    /// Seconds a closed flow whose verdict is out is kept to absorb late
    /// packets (default 10).
    #[arg(long = "closed-timeout", value_name = "SECS", help_heading = "Limits")]
    pub closed_timeout: Option<u32>,

    /// Also print a line when a flow ends (FIN, RST, idle, end of input):
    /// bytes each way, packets, duration, how it ended, its verdict.
    #[arg(long = "close")]
    pub close: bool,

    /// At the end, print the edges summary on stdout: flows grouped by
    /// client and server, with a SECURED column (all / mixed / none mTLS).
    #[arg(long = "summary")]
    pub summary: bool,

    /// The edges summary's form (default: table, or json with --json).
    /// Implies --summary.
    #[arg(long = "summary-format", value_name = "FORMAT", value_enum)]
    pub summary_format: Option<SummaryFormatArg>,

    /// Live: also print the edges summary every DURATION (e.g. 30s, 5m);
    /// SIGUSR1 prints it at any time. Implies --summary.
    #[arg(long = "summary-interval", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub summary_interval: Option<Duration>,

    /// Print no line per flow: only the edges summary (implies --summary)
    /// and, with --close, close lines.
    #[arg(long = "summary-only")]
    pub summary_only: bool,

    /// Verify mode: exit 4 if any decided flow on the tracked ports (--ports)
    /// falls short (mtls: a client certificate; tls: TLS without one;
    /// encrypted: either), printing each offender on stderr. The wire-level
    /// counterpart of a mesh's STRICT PeerAuthentication check: flows the
    /// server refused do not fail it.
    #[arg(long = "expect", value_name = "CLASS", value_enum)]
    pub expect: Option<ExpectArg>,

    /// With --expect: unknown flows fail too, and so does a run with no
    /// decided flow.
    #[arg(long = "strict", requires = "expect")]
    pub strict: bool,

    /// Serve Prometheus metrics on ADDR:PORT at /metrics (port 0: any free
    /// port; the address is printed on stderr).
    #[arg(long = "metrics", value_name = "ADDR:PORT")]
    pub metrics: Option<String>,

    /// Reading a file with --metrics: keep serving the final values this
    /// long after the file is done (SIGINT ends it sooner). Default 0: exit.
    #[arg(long = "metrics-linger", value_name = "DURATION", value_parser = humantime::parse_duration, requires = "metrics")]
    pub metrics_linger: Option<Duration>,

    /// At the end, draw the edges to FILE: Graphviz DOT, or SVG when FILE
    /// ends in .svg (needs Graphviz's dot).
    #[arg(long = "graph", value_name = "FILE")]
    pub graph: Option<PathBuf>,

    /// Name Kubernetes workloads: read the output of `kubectl get pods -A
    /// -o json` (`-`: stdin). Pod IPs map to namespace, workload, pod,
    /// service account and node in every view; a SPIFFE id that is not the
    /// pod's is flagged identity_mismatch.
    #[arg(long = "k8s-pods", value_name = "FILE", group = "workloads")]
    pub k8s_pods: Option<PathBuf>,

    /// Name Kubernetes workloads by watching pods through the Kubernetes
    /// API: in a pod, its service account (deploy/kubernetes/rbac.yaml
    /// grants get/list/watch pods); elsewhere KUBECONFIG or ~/.kube/config.
    /// The capture starts once the pods are listed.
    #[arg(long = "k8s", group = "workloads")]
    pub k8s: bool,

    /// With --expect and --k8s-pods or --k8s: check only flows whose
    /// client or server pod is in namespace NS (repeat or comma list).
    #[arg(long = "namespace", value_name = "NS", value_delimiter = ',', requires_all = ["expect", "workloads"])]
    pub namespace: Vec<String>,

    /// Capture filter in pcap-filter(7) syntax, as in tcpdump.
    #[arg(value_name = "FILTER")]
    pub filter: Vec<String>,
}

/// `--log-level` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevelArg {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// `--summary-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormatArg {
    Table,
    Tsv,
    Json,
}

/// `--expect` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExpectArg {
    Mtls,
    Tls,
    Encrypted,
}

impl From<ExpectArg> for Expectation {
    fn from(e: ExpectArg) -> Expectation {
        match e {
            ExpectArg::Mtls => Expectation::Mtls,
            ExpectArg::Tls => Expectation::Tls,
            ExpectArg::Encrypted => Expectation::Encrypted,
        }
    }
}

/// `ADDR:PORT`, or `:PORT` for every IPv4 address (as Prometheus writes it).
fn parse_listen(s: &str) -> Result<SocketAddr, UsageError> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse().map_err(|_| {
        usage(format!(
            "--metrics: {s:?} is not ADDR:PORT (e.g. 127.0.0.1:9909, [::]:9909, :9909)"
        ))
    })
}

/// Default kernel capture buffer (`-B`), in KiB: measured by
/// scripts/bench-live.sh (issue 4).
pub const DEFAULT_BUFFER_KIB: u32 = 64 * 1024;

/// How much of each direction `-A` shows: enough for a request line and a
/// few headers, bounded so a flow costs at most twice this.
pub const PREVIEW_BYTES: usize = 256;

/// A command line that parsed but makes no sense; exit status 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// Worker count when `--threads` is absent: leave one core to the capture
/// thread, but always at least one worker.
pub fn default_threads(cores: usize) -> usize {
    cores.saturating_sub(1).clamp(1, MAX_THREADS)
}

/// `--threads` absent with `-r FILE` (not stdin): one thread per core. A
/// classic pcap file then runs in walk mode (`pipeline/walk.rs`), with no
/// capture thread to leave a core to; measured faster than `--threads 1`
/// on 2 cores (README, walk mode). Other input keeps `default_threads`.
pub fn default_threads_for(cores: usize, args: &Args) -> usize {
    match &args.read {
        Some(path) if path.as_os_str() != "-" => cores.clamp(1, MAX_THREADS),
        _ => default_threads(cores),
    }
}

/// The default worker count, lowered until each worker's minimum fits the
/// `--memory` asked for: a default must not turn a budget that one worker
/// could use into an error (an explicit `--threads` is checked as asked).
fn fitting_threads(default: usize, args: &Args) -> usize {
    let Some(mib) = args.memory_mib else {
        return default;
    };
    let sizes = crate::pipeline::sizes();
    let fits = |w: usize| budget::min_memory(w, &sizes) <= mib.saturating_mul(1 << 20);
    (1..=default).rev().find(|&w| fits(w)).unwrap_or(1)
}

/// Validate parsed arguments into the run's configuration. `cores` is
/// what the caller measured (`std::thread::available_parallelism`), passed
/// in to keep this pure. Checks run in a fixed order: the first problem is
/// the one reported.
pub fn config(args: Args, cores: usize) -> Result<Config, UsageError> {
    // The budget is checked for the worker count asked for (a bad
    // --threads is reported below).
    let default = fitting_threads(default_threads_for(cores, &args), &args);
    let workers = args
        .threads
        .filter(|n| (1..=MAX_THREADS).contains(n))
        .unwrap_or(default);
    let bounds = bounds(&args, workers)?;
    let filter = Some(args.filter.join(" ").trim().to_string()).filter(|f| !f.is_empty());
    let mode = mode(&args)?;
    let listing = mode == Mode::ListInterfaces;
    if listing && filter.is_some() {
        return Err(usage("-D takes no filter expression"));
    }
    let ports = ports(&args.ports)?;
    check_keylog_and_count(&args, listing)?;
    let snaplen = snaplen(args.snaplen)?;
    let buffer_bytes = buffer_bytes(args.buffer_kib)?;
    let threads = threads(args.threads, default)?;
    if args.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
        return Err(usage("-Z needs a user name"));
    }
    let live = matches!(mode, Mode::Sniff(Source::Live(_)));
    let metrics = metrics(&args, live)?;
    if args.graph.as_deref() == Some(std::path::Path::new("")) {
        return Err(usage("--graph needs a file name (FILE.dot or FILE.svg)"));
    }
    if args.namespace.iter().any(|n| n.trim().is_empty()) {
        return Err(usage("--namespace needs a namespace name"));
    }
    if let Some(g) = args.graph.as_deref().filter(|g| !GraphFormat::known(g)) {
        let dot = g.with_extension("dot");
        return Err(usage(format!(
            "--graph {}: write FILE.dot, FILE.gv or FILE.svg; for another format render the DOT \
             file, e.g. dot -Tpng {} -o {}",
            g.display(),
            dot.display(),
            g.display()
        )));
    }
    let only = if args.only.is_empty() {
        None
    } else {
        let mut only = Only::default();
        for spec in &args.only {
            only.add(spec).map_err(usage)?;
        }
        Some(only)
    };
    Ok(Config {
        only,
        flow_lines: !args.summary_only,
        close_lines: args.close,
        edges_summary: edges_summary(&args),
        summary_interval: args.summary_interval,
        expect: args.expect.map(Expectation::from),
        strict: args.strict,
        metrics,
        metrics_linger: args.metrics_linger.unwrap_or(Duration::ZERO),
        graph: args.graph,
        k8s_pods: args.k8s_pods,
        k8s: args.k8s,
        namespaces: args.namespace,
        preview_bytes: if args.ascii { PREVIEW_BYTES } else { 0 },
        mode,
        filter,
        ports,
        format: if args.json {
            Format::Json
        } else {
            Format::Text
        },
        buffering: if args.line_buffered {
            Buffering::Line
        } else {
            Buffering::Auto
        },
        count: args.count,
        snaplen,
        buffer_bytes,
        threads,
        no_fanout: args.no_fanout,
        log_level: log_level(args.log_level, args.quiet),
        unanswered_lines: args.verbose > 0,
        summary: args.quiet == 0,
        detailed: args.verbose > 0,
        stats: args.stats || args.verbose > 0,
        keylog: args.keylog,
        calibrate: args.calibrate,
        bounds,
        user: args.user,
    })
}

/// Exactly one of -r, -i and -D.
fn mode(args: &Args) -> Result<Mode, UsageError> {
    match (args.list_interfaces, &args.read, &args.interface) {
        (true, None, None) => Ok(Mode::ListInterfaces),
        (false, Some(path), None) => Ok(Mode::Sniff(Source::File(path.clone()))),
        (false, None, Some(iface)) if iface.trim().is_empty() => {
            Err(usage("-i needs an interface name (list them with -D)"))
        }
        (false, None, Some(iface)) => Ok(Mode::Sniff(Source::Live(iface.clone()))),
        (false, None, None) => Err(usage(
            "nothing to read: give -r FILE (or -r - for stdin) or -i IFACE (list interfaces with -D)",
        )),
        _ => Err(usage("use only one of -r, -i and -D")),
    }
}

/// `--calibrate` needs a key log, `-D` takes none, `-c` counts from 1.
fn check_keylog_and_count(args: &Args, listing: bool) -> Result<(), UsageError> {
    // A pcapng may carry its own secrets (Decryption Secrets Blocks): a
    // file without --keylog is checked once they are read (main.rs).
    if args.calibrate && args.keylog.is_none() && args.read.is_none() {
        return Err(usage(
            "--calibrate needs --keylog FILE (or -r a pcapng with its secrets): it compares the \
             size rule with decrypted handshakes",
        ));
    }
    if listing && args.keylog.is_some() {
        return Err(usage("-D takes no --keylog"));
    }
    if args.count == Some(0) {
        return Err(usage("-c: the count must be at least 1"));
    }
    Ok(())
}

/// One `--ports` item; an empty one (`80,` or `80,,443`) is skipped, as a
/// shell list often ends with a comma.
fn port_or_empty(s: &str) -> Result<Option<u16>, String> {
    match s.trim() {
        "" => Ok(None),
        p => p
            .parse()
            .map(Some)
            .map_err(|_| format!("{p:?} is not a TCP port (1-65535)")),
    }
}

/// `--ports`, plus Istio's HBONE port (tunnelled mTLS) and the mesh
/// redirect ports (the SYN half of a redirected connection goes to one).
fn ports(ports: &[Option<u16>]) -> Result<Option<PortSet>, UsageError> {
    let given = !ports.is_empty();
    let ports: Vec<u16> = ports.iter().flatten().copied().collect();
    if given && ports.is_empty() {
        return Err(usage(
            "--ports needs at least one port (e.g. --ports 443,8443)",
        ));
    }
    if ports.is_empty() {
        return Ok(None);
    }
    if ports.contains(&0) {
        return Err(usage("--ports: 0 is not a TCP port (use 1-65535)"));
    }
    Ok(Some(PortSet::new(
        ports.iter().copied().chain(REDIRECT_PORTS),
    )))
}

/// `-s`: tcpdump's rule, 0 means the default; libpcap clamps anything
/// larger than its maximum, so say so instead.
fn snaplen(s: u32) -> Result<u32, UsageError> {
    match s {
        0 => Ok(DEFAULT_SNAPLEN),
        s if s > DEFAULT_SNAPLEN => Err(usage(format!(
            "-s: snaplen {s} is larger than the maximum {DEFAULT_SNAPLEN}"
        ))),
        s => Ok(s),
    }
}

/// `-B` in bytes; it must fit libpcap's `int`.
fn buffer_bytes(kib: Option<u32>) -> Result<Option<u32>, UsageError> {
    match kib {
        None => Ok(Some(DEFAULT_BUFFER_KIB * 1024)),
        Some(0) => Err(usage("-B: the buffer size must be at least 1 KiB")),
        Some(kib) => match kib.checked_mul(1024).filter(|&b| i32::try_from(b).is_ok()) {
            Some(b) => Ok(Some(b)),
            None => Err(usage(format!(
                "-B: {kib} KiB is too large (at most {} KiB)",
                i32::MAX / 1024
            ))),
        },
    }
}

fn threads(threads: Option<usize>, default: usize) -> Result<usize, UsageError> {
    match threads {
        None => Ok(default),
        Some(0) => Err(usage("--threads must be at least 1")),
        Some(n) if n > MAX_THREADS => {
            Err(usage(format!("--threads: {n} is more than {MAX_THREADS}")))
        }
        Some(n) => Ok(n),
    }
}

/// `--log-level` when given, else warnings lowered by `-q` (errors only)
/// and `-qq` (nothing).
fn log_level(asked: Option<LogLevelArg>, quiet: u8) -> LogLevel {
    match (asked, quiet) {
        (Some(LogLevelArg::Off), _) | (None, 2..) => LogLevel::Off,
        (Some(LogLevelArg::Error), _) | (None, 1) => LogLevel::Error,
        (Some(LogLevelArg::Warn), _) | (None, 0) => LogLevel::Warn,
        (Some(LogLevelArg::Info), _) => LogLevel::Info,
        (Some(LogLevelArg::Debug), _) => LogLevel::Debug,
        (Some(LogLevelArg::Trace), _) => LogLevel::Trace,
    }
}

/// `--summary-interval` and `--metrics-linger` each belong to one kind of
/// source; then the `--metrics` address.
fn metrics(args: &Args, live: bool) -> Result<Option<SocketAddr>, UsageError> {
    if args.no_fanout && !live {
        return Err(usage(
            "--no-fanout is for live capture (-i): a file is read by one reader",
        ));
    }
    if args.summary_interval.is_some() && !live {
        return Err(usage(
            "--summary-interval is for live capture (-i); a file's summary is printed at its end",
        ));
    }
    if args.summary_interval == Some(Duration::ZERO) {
        return Err(usage("--summary-interval must be longer than 0"));
    }
    if args.metrics_linger.is_some() && live {
        return Err(usage(
            "--metrics-linger is for files (-r): live capture serves metrics until it stops",
        ));
    }
    args.metrics.as_deref().map(parse_listen).transpose()
}

/// The edges summary's form, when one is asked for.
fn edges_summary(args: &Args) -> Option<SummaryFormat> {
    (args.summary
        || args.summary_only
        || args.summary_interval.is_some()
        || args.summary_format.is_some())
    .then_some(match args.summary_format {
        Some(SummaryFormatArg::Table) => SummaryFormat::Table,
        Some(SummaryFormatArg::Tsv) => SummaryFormat::Tsv,
        Some(SummaryFormatArg::Json) => SummaryFormat::Json,
        None if args.json => SummaryFormat::Json,
        None => SummaryFormat::Table,
    })
}

/// `value` or `default`, checked against `min..=max`, in the flag's unit.
fn bounded<T: Copy + PartialOrd + fmt::Display>(
    flag: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
    unit: &str,
) -> Result<T, UsageError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(usage(format!(
            "{flag}: {v}{unit} is out of range ({min}{unit} to {max}{unit})"
        )));
    }
    Ok(v)
}

/// The limits from the command line (sizes in bytes), for `workers`
/// workers (the memory budget must hold each one's minimum).
fn bounds(args: &Args, workers: usize) -> Result<Bounds, UsageError> {
    let d = Bounds::default();
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    // Upper ends keep byte counts far from overflow and catch typos.
    let memory = bounded(
        "--memory",
        args.memory_mib,
        budget::default_memory(workers, &crate::pipeline::sizes()) / MIB,
        budget::min_memory(workers, &crate::pipeline::sizes()) / MIB,
        1 << 20,
        " MiB",
    )
    .map_err(|e| {
        if workers > 1 {
            usage(format!("{e} with {workers} worker threads"))
        } else {
            e
        }
    })?;
    let max_flows = bounded("--max-flows", args.max_flows, d.max_flows, 1, 1 << 28, "")?;
    let stream = bounded(
        "--stream-buffer",
        args.stream_buffer_kib,
        d.stream_buffer / KIB,
        20,
        1 << 20,
        " KiB",
    )?;
    let ooo = bounded(
        "--ooo-segments",
        args.ooo_segments,
        d.ooo_segments,
        1,
        1 << 20,
        "",
    )?;
    let handshake = bounded(
        "--handshake-buffer",
        args.handshake_buffer_kib,
        d.handshake_buffer / KIB,
        4,
        16 * 1024,
        " KiB",
    )?;
    let records = bounded("--max-records", args.max_records, d.records, 4, 1 << 20, "")?;
    let day = 86_400;
    let idle = bounded(
        "--idle-timeout",
        args.idle_timeout,
        d.idle_secs,
        1,
        day,
        " s",
    )?;
    let syn = bounded("--syn-timeout", args.syn_timeout, d.syn_secs, 1, day, " s")?;
    let closed = bounded(
        "--closed-timeout",
        args.closed_timeout,
        d.closed_secs,
        1,
        day,
        " s",
    )?;
    Ok(Bounds {
        memory: memory * MIB,
        max_flows,
        stream_buffer: stream * KIB,
        ooo_segments: ooo,
        handshake_buffer: handshake * KIB,
        records,
        idle_secs: idle,
        syn_secs: syn,
        closed_secs: closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("mtlsniff").chain(argv.iter().copied()))
    }

    fn config(argv: &[&str]) -> Result<Config, String> {
        let args = parse(argv).map_err(|e| format!("clap: {}", e.kind()))?;
        super::config(args, 8).map_err(|e| e.0)
    }

    #[test]
    fn help_and_examples_render() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        let help = Args::command().render_long_help().to_string();
        assert!(help.contains("Examples:"));
        assert!(help.contains("CAP_NET_RAW"));
        // Every bound is a flag with its default in the help.
        for flag in [
            "--memory",
            "--max-flows",
            "--stream-buffer",
            "--ooo-segments",
            "--handshake-buffer",
            "--max-records",
            "--idle-timeout",
            "--syn-timeout",
            "--closed-timeout",
            "--relinquish-privileges",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
        assert!(help.contains("3 input lost"));
    }

    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "one row per case: the table reads best whole"
    )]
    fn validation_table() {
        // (argv, Ok(check) or Err(substring of the message))
        type Check = fn(&Config) -> bool;
        let table: &[(&[&str], Result<Check, &str>)] = &[
            (
                &["-r", "x.pcap"],
                Ok(|c| c.mode == Mode::Sniff(Source::File("x.pcap".into()))),
            ),
            (
                &["-r", "-"],
                Ok(|c| c.mode == Mode::Sniff(Source::File("-".into()))),
            ),
            (
                &["-i", "any"],
                Ok(|c| c.mode == Mode::Sniff(Source::Live("any".into()))),
            ),
            (&["-D"], Ok(|c| c.mode == Mode::ListInterfaces)),
            (
                &["-i", "eth0", "port", "9080", "or", "port", "15008"],
                Ok(|c| c.filter.as_deref() == Some("port 9080 or port 15008")),
            ),
            (
                &["-r", "x", "tcp", "-c", "3"],
                Ok(|c| c.filter.as_deref() == Some("tcp") && c.count == Some(3)),
            ),
            (&["-r", "x", ""], Ok(|c| c.filter.is_none())),
            (
                &["-r", "x"],
                Ok(|c| {
                    c.ports.is_none()
                        && c.threads == 8
                        && c.snaplen == DEFAULT_SNAPLEN
                        && c.format == Format::Text
                        && c.buffering == Buffering::Auto
                        && c.log_level == LogLevel::Warn
                        && c.summary
                }),
            ),
            (
                &["-r", "x", "--ports", "9080,8000"],
                Ok(|c| {
                    c.ports.as_ref().map(PortSet::ports)
                        == Some(vec![4140, 4143, 8000, 9080, 15001, 15006, 15008])
                }),
            ),
            (&["-r", "x", "--ports", "0"], Err("not a TCP port")),
            (
                &["-r", "x", "--ports", "80,"],
                Ok(|c| {
                    c.ports
                        .as_ref()
                        .is_some_and(|p| p.contains(80) && !p.contains(81))
                }),
            ),
            (&["-r", "x", "--ports", ","], Err("at least one port")),
            (
                &[
                    "-r",
                    "x",
                    "--only",
                    "class=tls,plaintext",
                    "--only",
                    "outcome=rejected",
                ],
                Ok(|c| {
                    c.only
                        .as_ref()
                        .is_some_and(|o| o.classes.len() == 2 && o.outcomes.len() == 1)
                }),
            ),
            (
                &["-r", "x", "--only", "class=secure"],
                Err("one of plaintext"),
            ),
            (
                &["-r", "x", "--summary-format", "tsv"],
                Ok(|c| c.edges_summary == Some(SummaryFormat::Tsv)),
            ),
            (&["-r", "x", "--ports", "70000"], Err("clap")),
            (&["-r", "x", "--ports", "http"], Err("clap")),
            (
                &["-r", "x", "--json", "-l"],
                Ok(|c| c.format == Format::Json && c.buffering == Buffering::Line),
            ),
            (&["-r", "x", "-c", "0"], Err("at least 1")),
            (
                &["-r", "x", "-s", "0"],
                Ok(|c| c.snaplen == DEFAULT_SNAPLEN),
            ),
            (&["-r", "x", "-s", "96"], Ok(|c| c.snaplen == 96)),
            (&["-r", "x", "-s", "262145"], Err("larger than the maximum")),
            (&["-r", "x", "-s", "-1"], Err("clap")),
            (
                &["-r", "x", "-B", "4096"],
                Ok(|c| c.buffer_bytes == Some(4096 * 1024)),
            ),
            (
                &["-i", "eth0"],
                Ok(|c| c.buffer_bytes == Some(DEFAULT_BUFFER_KIB * 1024)),
            ),
            (&["-r", "x", "-B", "0"], Err("at least 1 KiB")),
            (&["-r", "x", "-B", "4194304"], Err("too large")),
            (&["-r", "x", "--threads", "3"], Ok(|c| c.threads == 3)),
            (&["-r", "x", "--threads", "0"], Err("at least 1")),
            (
                &["-i", "eth0", "--calibrate"],
                Err("--calibrate needs --keylog"),
            ),
            (&["-r", "x.pcapng", "--calibrate"], Ok(|c| c.calibrate)),
            (
                &["-r", "x", "--keylog", "k.log", "--calibrate"],
                Ok(|c| c.keylog.as_deref() == Some(std::path::Path::new("k.log")) && c.calibrate),
            ),
            (&["-r", "x"], Ok(|c| c.keylog.is_none() && !c.calibrate)),
            (
                &["-r", "x", "--no-fanout"],
                Err("--no-fanout is for live capture"),
            ),
            (&["-i", "eth0", "--no-fanout"], Ok(|c| c.no_fanout)),
            (&["-i", "eth0"], Ok(|c| !c.no_fanout)),
            (&["-D", "--keylog", "k"], Err("-D takes no --keylog")),
            (&["-r", "x", "--threads", "100000"], Err("more than")),
            (
                &["-r", "x", "-v"],
                Ok(|c| c.log_level == LogLevel::Warn && c.detailed && c.stats),
            ),
            (&["-r", "x"], Ok(|c| !c.detailed && !c.stats && c.summary)),
            (&["-r", "x", "--stats"], Ok(|c| !c.detailed && c.stats)),
            (
                &["-r", "x", "--log-level", "trace"],
                Ok(|c| c.log_level == LogLevel::Trace && !c.detailed),
            ),
            (
                &["-r", "x", "-q", "--log-level", "info"],
                Ok(|c| c.log_level == LogLevel::Info && !c.summary),
            ),
            (
                &["-r", "x", "-q"],
                Ok(|c| c.log_level == LogLevel::Error && !c.summary),
            ),
            (&["-r", "x", "-qqq"], Ok(|c| c.log_level == LogLevel::Off)),
            (&[], Err("nothing to read")),
            (&["tcp"], Err("nothing to read")),
            (&["-i", " "], Err("needs an interface")),
            (&["-r", "x", "-i", "eth0"], Err("clap")),
            (&["-D", "-i", "eth0"], Err("clap")),
            (&["-D", "tcp"], Err("no filter")),
            (
                &["-r", "x"],
                Ok(|c| c.bounds == Bounds::default() && c.user.is_none()),
            ),
            (
                &[
                    "-r",
                    "x",
                    "--memory",
                    "64",
                    "--max-flows",
                    "5000",
                    "--stream-buffer",
                    "32",
                ],
                Ok(|c| {
                    c.bounds.memory == 64 << 20
                        && c.bounds.max_flows == 5000
                        && c.bounds.stream_buffer == 32 << 10
                }),
            ),
            (
                &[
                    "-r",
                    "x",
                    "--ooo-segments",
                    "8",
                    "--handshake-buffer",
                    "16",
                    "--max-records",
                    "10",
                ],
                Ok(|c| {
                    c.bounds.ooo_segments == 8
                        && c.bounds.handshake_buffer == 16 << 10
                        && c.bounds.records == 10
                }),
            ),
            (
                &[
                    "-r",
                    "x",
                    "--idle-timeout",
                    "60",
                    "--syn-timeout",
                    "5",
                    "--closed-timeout",
                    "2",
                ],
                Ok(|c| {
                    c.bounds.idle_secs == 60 && c.bounds.syn_secs == 5 && c.bounds.closed_secs == 2
                }),
            ),
            (
                &["-r", "x", "--memory", "8"],
                Err("--memory: 8 MiB is out of range"),
            ),
            (&["-r", "x", "--max-flows", "0"], Err("--max-flows")),
            (&["-r", "x", "--stream-buffer", "4"], Err("--stream-buffer")),
            (
                &["-r", "x", "--handshake-buffer", "1"],
                Err("--handshake-buffer"),
            ),
            (&["-r", "x", "--max-records", "0"], Err("--max-records")),
            (&["-r", "x", "--syn-timeout", "0"], Err("--syn-timeout")),
            (
                &["-i", "lo", "-Z", "nobody"],
                Ok(|c| c.user.as_deref() == Some("nobody")),
            ),
            (&["-i", "lo", "-Z", ""], Err("-Z needs")),
            (&["--bogus"], Err("clap")),
            (
                &["-r", "x", "--close", "--summary"],
                Ok(|c| {
                    c.close_lines && c.flow_lines && c.edges_summary == Some(SummaryFormat::Table)
                }),
            ),
            (
                &["-r", "x", "--summary-only", "--summary-format", "tsv"],
                Ok(|c| !c.flow_lines && c.edges_summary == Some(SummaryFormat::Tsv)),
            ),
            (
                &["-r", "x"],
                Ok(|c| c.edges_summary.is_none() && !c.close_lines),
            ),
            (
                &["-r", "x", "--json", "--summary"],
                Ok(|c| c.edges_summary == Some(SummaryFormat::Json)),
            ),
            (
                &[
                    "-r",
                    "x",
                    "--json",
                    "--summary",
                    "--summary-format",
                    "table",
                ],
                Ok(|c| c.edges_summary == Some(SummaryFormat::Table)),
            ),
            (&["-r", "x", "--summary-format", "xml"], Err("clap")),
            (
                &["-i", "eth0", "--summary-interval", "30s"],
                Ok(|c| {
                    c.summary_interval == Some(Duration::from_secs(30)) && c.edges_summary.is_some()
                }),
            ),
            (
                &["-r", "x", "--summary-interval", "30s"],
                Err("live capture"),
            ),
            (
                &["-i", "eth0", "--summary-interval", "0s"],
                Err("longer than 0"),
            ),
            (&["-i", "eth0", "--summary-interval", "soon"], Err("clap")),
            (
                &["-r", "x", "--expect", "mtls", "--strict"],
                Ok(|c| c.expect == Some(Expectation::Mtls) && c.strict),
            ),
            (
                &["-r", "x", "--expect", "encrypted"],
                Ok(|c| c.expect == Some(Expectation::Encrypted) && !c.strict),
            ),
            (&["-r", "x", "--expect", "secure"], Err("clap")),
            (&["-r", "x", "--strict"], Err("clap")),
            (
                &["-r", "x", "--metrics", "127.0.0.1:0"],
                Ok(|c| {
                    c.metrics == Some("127.0.0.1:0".parse().unwrap()) && c.metrics_linger.is_zero()
                }),
            ),
            (
                &["-r", "x", "--metrics", ":9909", "--metrics-linger", "1m"],
                Ok(|c| {
                    c.metrics == Some("0.0.0.0:9909".parse().unwrap())
                        && c.metrics_linger == Duration::from_secs(60)
                }),
            ),
            (
                &["-i", "eth0", "--metrics", "[::1]:9909"],
                Ok(|c| c.metrics.is_some()),
            ),
            (&["-r", "x", "--metrics", "localhost"], Err("not ADDR:PORT")),
            (&["-r", "x", "--metrics-linger", "1m"], Err("clap")),
            (
                &["-i", "eth0", "--metrics", ":1", "--metrics-linger", "1m"],
                Err("for files"),
            ),
            (
                &["-r", "x", "--graph", "e.svg"],
                Ok(|c| c.graph.as_deref() == Some(std::path::Path::new("e.svg"))),
            ),
            (&["-r", "x", "--graph", "e.GV"], Ok(|c| c.graph.is_some())),
            (
                &["-r", "x", "--graph", "e.png"],
                Err("dot -Tpng e.dot -o e.png"),
            ),
            (&["-r", "x", "--graph", "edges"], Err("write FILE.dot")),
        ];
        for (argv, want) in table {
            let got = config(argv);
            match (want, &got) {
                (Ok(check), Ok(c)) => assert!(check(c), "{argv:?}: unexpected config {c:?}"),
                (Err(needle), Err(msg)) => {
                    assert!(
                        msg.contains(needle),
                        "{argv:?}: error {msg:?} lacks {needle:?}"
                    )
                }
                _ => panic!("{argv:?}: got {got:?}"),
            }
        }
    }

    #[test]
    fn a_file_gets_every_core_live_and_stdin_leave_one() {
        let cfg = |argv: &[&str]| super::config(parse(argv).unwrap(), 2).unwrap().threads;
        assert_eq!(cfg(&["-r", "x.pcap"]), 2);
        assert_eq!(cfg(&["-r", "-"]), 1);
        assert_eq!(cfg(&["-i", "eth0"]), 1);
        assert_eq!(cfg(&["-r", "x.pcap", "--threads", "1"]), 1);
    }

    #[test]
    fn a_default_thread_count_shrinks_to_fit_the_memory_asked_for() {
        let cfg = |argv: &[&str]| super::config(parse(argv).unwrap(), 64);
        let mib = |w| budget::min_memory(w, &crate::pipeline::sizes()) / (1 << 20);
        // 64 cores, a budget that holds a few workers but not 64.
        let small = mib(4).to_string();
        assert!(mib(64) > mib(4));
        let threads = cfg(&["-r", "x.pcap", "--memory", &small]).unwrap().threads;
        assert!((4..64).contains(&threads), "{threads}");
        assert!(mib(threads) <= mib(4) && mib(threads + 1) > mib(4));
        // Asked for explicitly, the same count is an error that says so.
        let err = cfg(&["-r", "x.pcap", "--memory", &small, "--threads", "64"]).unwrap_err();
        assert!(err.to_string().contains("with 64 worker threads"), "{err}");
    }

    #[test]
    fn default_threads_leaves_a_core_but_never_zero() {
        assert_eq!(default_threads(0), 1);
        assert_eq!(default_threads(1), 1);
        assert_eq!(default_threads(2), 1);
        assert_eq!(default_threads(16), 15);
        assert_eq!(default_threads(10_000), MAX_THREADS);
    }

    #[test]
    fn port_set_contains_exactly_its_ports() {
        let s = PortSet::new([0, 1, 63, 64, 443, 65535]);
        for p in [0, 1, 63, 64, 443, 65535] {
            assert!(s.contains(p), "{p}");
        }
        for p in [2, 62, 65, 442, 444, 65534] {
            assert!(!s.contains(p), "{p}");
        }
        assert_eq!(s.ports(), vec![0, 1, 63, 64, 443, 65535]);
    }
}
