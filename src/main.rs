//! The `mtlsniff` binary: a thin shell over the library.
//!
//! It owns the process edges: parsing argv (clap exits 2 on usage errors),
//! logging to stderr, looking at stdout and stderr (terminal or not),
//! SIGINT/SIGTERM (live, or lingering metrics) and SIGUSR1 (live summary),
//! dropping privileges once the source is open (before any thread exists),
//! wiring the answers (edges, verify mode, metrics server, progress bar),
//! the end-of-run output, and the exit status (0 success or `| head`, 1
//! runtime error, 2 usage error, 3 input lost, 4 `--expect` not met). It
//! must not hold logic a test could want: the pipeline is `pipeline::run`,
//! what the configuration asks for is `shell::wiring`, the end of the run
//! and the exit status are `shell::ending`. Every error a user can cause
//! ends as one line on stderr.
#![warn(clippy::too_many_lines)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use mtlsniff::capture::fanout;
use mtlsniff::capture::source::{self, Capture, Source};
use mtlsniff::pipeline::config::{Config, LogLevel, Mode};
use mtlsniff::pipeline::{self, Plan};
use mtlsniff::report::gauges::Gauges;
use mtlsniff::report::metrics::{Metrics, MetricsServer};
use mtlsniff::report::output::Printer;
use mtlsniff::shell::cli::{self, Args};
use mtlsniff::shell::ending::{self, EXIT_RUNTIME, EXIT_USAGE, Ending};
use mtlsniff::shell::privilege;
use mtlsniff::shell::wiring::{self, Terminals};
use mtlsniff::tls::keylog::{self, KeyLog};
use mtlsniff::workload::Shared;
use mtlsniff::workload::pods;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Write to stderr without panicking if stderr is gone (`eprintln!` would).
fn stderr_line(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

fn init_logging(level: LogLevel) {
    let filter = match level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let mut targets = Targets::new().with_default(filter);
    if !matches!(level, LogLevel::Debug | LogLevel::Trace) {
        // --k8s: the Kubernetes client logs each failed request itself;
        // the watch says what failed and what to do, once (workload/watch.rs).
        // (Targets, not EnvFilter: that one links a regex engine, resident
        // code in every run.)
        for quiet in ["kube_client", "kube_runtime"] {
            targets = targets.with_target(quiet, LevelFilter::OFF);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(filter)
        .with_target(false)
        // Colours only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .finish()
        .with(targets)
        .try_init();
}

fn list_interfaces() -> Result<ExitCode, String> {
    let list = source::list_interfaces().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for (i, iface) in list.iter().enumerate() {
        if writeln!(out, "{}.{}", i + 1, iface).is_err() {
            break; // stdout closed: nothing more to say
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the pipeline reads: one capture, or a live fanout group.
enum Input {
    One(Capture),
    Group(fanout::Group),
}

/// Open the source: live on Linux, an AF_PACKET fanout group of
/// `--threads` sockets unless `--no-fanout` or it does not apply (then one
/// libpcap socket). With it, live only, which path was taken and why, for
/// `--stats`.
fn open_input(
    config: &Config,
    source: &Source,
    options: &source::Options,
) -> Result<(Input, Option<String>), String> {
    let one = |why: &dyn std::fmt::Display| {
        format!(
            "libpcap, one socket and {} worker thread(s) ({why})",
            config.threads
        )
    };
    let name = match source {
        Source::Live(name) if !config.no_fanout => name,
        Source::Live(_) => {
            let capture = Capture::open(source, options).map_err(|e| e.to_string())?;
            return Ok((Input::One(capture), Some(one(&fanout::NoFanout::Asked))));
        }
        Source::File(_) => {
            let capture = Capture::open(source, options).map_err(|e| e.to_string())?;
            return Ok((Input::One(capture), None));
        }
    };
    match fanout::open(name, options, config.threads).map_err(|e| e.to_string())? {
        fanout::Opened::Group(group) => {
            let path = format!(
                "AF_PACKET fanout, {} socket(s), each captured and judged by its own thread",
                group.members.len()
            );
            Ok((Input::Group(group), Some(path)))
        }
        fanout::Opened::Single(capture, why) => Ok((Input::One(capture), Some(one(&why)))),
    }
}

/// Stdin's pcapng secrets before its first packet (read as the capture
/// opened) join the key log, made for them if there was none, so the
/// memory plan counts them as it counts a file's.
fn with_leading_secrets(
    config: &Config,
    capture: &mut Capture,
    keylog: Option<KeyLog>,
) -> Result<Option<KeyLog>, String> {
    let texts = capture.take_leading_secrets();
    let keylog = if texts.is_empty() {
        keylog
    } else {
        let store =
            keylog.unwrap_or_else(|| KeyLog::new(mtlsniff::pipeline::secrets_budget(config)));
        for text in &texts {
            store.add_capture_block(text);
        }
        Some(store)
    };
    if config.calibrate && keylog.is_none() {
        return Err(
            "error: --calibrate needs secrets: --keylog FILE, or a pcapng input that carries \
             Decryption Secrets Blocks"
                .to_string(),
        );
    }
    Ok(keylog)
}

/// `--k8s`: how long the capture waits for the pods' first list.
const K8S_FIRST_LIST: Duration = Duration::from_secs(10);

fn run(
    config: &Config,
    keylog: Option<KeyLog>,
    workloads: Option<Shared>,
) -> Result<ExitCode, String> {
    let source = match &config.mode {
        Mode::ListInterfaces => return list_interfaces(),
        Mode::Sniff(source) => source,
    };
    let tty = Terminals {
        stdout: std::io::stdout().is_terminal(),
        stderr: std::io::stderr().is_terminal(),
    };
    let options = wiring::capture_options(config);
    if source.is_live() {
        // A `cap_net_raw+p` binary (the container image's) holds the
        // capability as permitted only; libpcap needs it effective.
        let raised = privilege::raise_net_raw();
        tracing::debug!(cap_net_raw_effective = raised, "before opening the capture");
    }
    let (mut input, path) = open_input(config, source, &options)?;
    let keylog = match &mut input {
        Input::One(capture) => with_leading_secrets(config, capture, keylog)?,
        Input::Group(_) => keylog,
    };
    // The socket is open and filtered: nothing from here on needs a
    // privilege. This must come before the first thread (the signal
    // handler's, the pipeline's): capabilities are per thread.
    let dropped = privilege::relinquish(config.user.as_deref())?;
    tracing::info!(
        user = ?dropped.user,
        bounding_set_cleared = dropped.bounding_cleared,
        "privileges dropped: no capabilities, no-new-privileges set"
    );
    let live = source.is_live();
    wiring::check_graph(config)?;
    // --k8s: the pods watch starts once privileges are gone (capabilities
    // are per thread) and the capture waits for its first list.
    let workloads = match workloads {
        Some(dir) => Some(dir),
        None if config.k8s => {
            let budget = mtlsniff::pipeline::workloads_budget(config);
            match mtlsniff::pipeline::start_watch(budget, K8S_FIRST_LIST) {
                Ok(dir) => Some(dir),
                Err(e) => {
                    // Like a flag that cannot work: exit 2, saying what to do.
                    stderr_line(&format!("mtlsniff: error: {e}"));
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            }
        }
        None => None,
    };
    let gauges = Arc::new(Gauges::default());
    let (metrics, _metrics_server) = serve_metrics(config, &gauges, workloads.as_ref())?.unzip();
    let probe = match &input {
        Input::One(capture) => wiring::shows_progress(config, live, tty)
            .then(|| capture.input_probe())
            .flatten(),
        Input::Group(_) => None,
    };
    let mut answers = wiring::answers(config, &gauges, metrics, probe);
    if let Some(dir) = &workloads {
        answers = answers.with_workloads(dir.clone());
    }
    if live && config.edges_summary.is_some() {
        let usr1 = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&usr1))
            .map_err(|e| format!("cannot install the SIGUSR1 handler: {e}"))?;
        answers = answers.with_live_summary(config.summary_interval, Some(usr1));
    }
    let stop = Arc::new(AtomicBool::new(false));
    // A pipe (`tcpdump -U -w - | mtlsniff -r -`) stops on Ctrl-C as live
    // capture does: what was read is reported, with the summary.
    let pipe = matches!(source, Source::File(p) if p.as_os_str() == "-");
    if live || pipe || wiring::lingers(config) {
        stop_on_signals(&stop)?;
    }
    let stdout = std::io::stdout();
    let line_buffered = wiring::line_buffered(config, tty);
    let mut printer =
        Printer::new(stdout.lock(), config.format, line_buffered).detailed(config.detailed);
    if let Some(dir) = workloads {
        printer = printer.with_workloads(dir);
    }
    let plan = Plan::from_config(config, keylog);
    let outcome = match input {
        Input::One(capture) => pipeline::run(capture, &plan, &mut printer, &mut answers, &stop),
        Input::Group(group) => {
            pipeline::run_fanout(group, &plan, &mut printer, &mut answers, &stop)
        }
    }
    .map_err(|e| e.to_string())?;
    answers.finish_progress();
    let mut stderr = std::io::stderr();
    let ending = ending::finish(config, &outcome, &mut printer, &answers, &mut stderr);
    if let Some(path) = path.filter(|_| config.stats) {
        stderr_line(&format!("mtlsniff: capture: {path}"));
    }
    match ending {
        Ending::Exit(code) => Ok(ExitCode::from(code)),
        Ending::Fail(msg) => Err(msg),
        Ending::Linger(code) => {
            if wiring::lingers(config) && !live {
                linger(config.metrics_linger, &stop);
            }
            Ok(ExitCode::from(code))
        }
    }
}

/// `--metrics`: start the server (its own thread, outliving the pipeline);
/// the answers count into the `Metrics`.
fn serve_metrics(
    config: &Config,
    gauges: &Arc<Gauges>,
    workloads: Option<&Shared>,
) -> Result<Option<(Metrics, MetricsServer)>, String> {
    let Some(addr) = config.metrics else {
        return Ok(None);
    };
    let (metrics, registry) = if let Some(dir) = workloads {
        Metrics::with_workloads(Arc::clone(gauges), dir.clone())
    } else {
        Metrics::new(Arc::clone(gauges))
    };
    let server = MetricsServer::start(addr, registry)?;
    // Port 0 asks the system to choose: the answer is printed even with
    // -qq, as nothing else tells where to scrape.
    if wiring::stderr_says(config) || addr.port() == 0 {
        stderr_line(&format!(
            "mtlsniff: metrics on http://{}/metrics",
            server.addr()
        ));
    }
    Ok(Some((metrics, server)))
}

/// SIGINT/SIGTERM: the first signal stops reading, drains and summarises;
/// another one a second later leaves now. (Repeats within the second are
/// the same request: `timeout` and process-group kills send two.)
fn stop_on_signals(stop: &Arc<AtomicBool>) -> Result<(), String> {
    let flag = Arc::clone(stop);
    let first = OnceLock::new();
    ctrlc::set_handler(move || {
        let at = *first.get_or_init(Instant::now);
        if flag.swap(true, Ordering::SeqCst) && at.elapsed() >= Duration::from_secs(1) {
            std::process::exit(130);
        }
    })
    .map_err(|e| format!("cannot install the SIGINT handler: {e}"))
}

/// File done: serve the final values for `--metrics-linger`, or until
/// SIGINT/SIGTERM.
fn linger(how_long: Duration, stop: &AtomicBool) {
    let until = Instant::now() + how_long;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// mimalloc: a segment is a small allocation made on the capture thread
/// and freed on a worker; the system allocator spends ~17% of the time
/// there (perf, issue 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (mimalloc.h; the
/// Rust bindings have no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // mimalloc commits its arenas eagerly on Linux, and with transparent
    // huge pages each touched 2 MiB of an arena becomes resident whole:
    // tens of MiB of peak RSS that no data structure holds, enough to break
    // the --memory budget (tests/flood.rs). Small pages keep RSS to what is
    // used; the kernel checks this flag at every fault.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with integer arguments; failure only leaves THP on.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    // Freed memory goes back to the kernel at once rather than after
    // mimalloc's default delay (10 ms, times 10 for arenas): the flow
    // table's old copy, freed when it grows, otherwise stays resident
    // through a SYN flood and breaks the --memory budget (tests/flood.rs:
    // 71 -> 53 MiB at --memory 64). No measurable cost on the line-rate
    // benchmark: the hot path recycles its buffers.
    // SAFETY: sets a process-wide option before any thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = match cli::config(args, cores) {
        Ok(c) => c,
        Err(e) => {
            stderr_line(&format!("mtlsniff: error: {e} (see --help)"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(config.log_level);
    // The key log is read before the capture opens: an unreadable one is a
    // usage error (exit 2), like a flag that cannot work.
    let (capture_file, live) = match &config.mode {
        Mode::Sniff(Source::File(p)) => (Some(p.as_path()), false),
        Mode::Sniff(Source::Live(_)) => (None, true),
        Mode::ListInterfaces => (None, false),
    };
    // Its secrets are held to their share of --memory (budget.rs).
    let secrets = mtlsniff::pipeline::secrets_budget(&config);
    let keylog = match keylog::for_run(config.keylog.as_deref(), capture_file, live, secrets) {
        Ok(k) => k,
        Err(e) => {
            stderr_line(&format!("mtlsniff: error: {e}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Stdin's secrets are known once it is open (`with_leading_secrets`).
    let stdin = capture_file.is_some_and(|p| p.as_os_str() == "-");
    if config.calibrate && keylog.is_none() && !stdin {
        stderr_line(
            "mtlsniff: error: --calibrate needs secrets: --keylog FILE, or a pcapng input that \
             carries Decryption Secrets Blocks",
        );
        return ExitCode::from(EXIT_USAGE);
    }
    // So is the pods list (--k8s-pods), held to its share of --memory.
    let workloads = match &config.k8s_pods {
        Some(path) => match pods::read_path(path, mtlsniff::pipeline::workloads_budget(&config)) {
            Ok(dir) => Some(Shared::new(dir)),
            Err(e) => {
                stderr_line(&format!("mtlsniff: error: {e}"));
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => None,
    };
    match run(&config, keylog, workloads) {
        Ok(code) => code,
        Err(msg) => {
            stderr_line(&format!("mtlsniff: {msg}"));
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
