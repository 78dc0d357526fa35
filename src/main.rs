//! The `mtlsniff` binary: a thin shell over the library.
//!
//! It owns the process edges: parsing argv (clap exits 2 on usage errors),
//! logging to stderr, looking at stdout and stderr (terminal or not),
//! SIGINT/SIGTERM (live, or lingering metrics) and SIGUSR1 (live summary),
//! dropping privileges once the source is open (before any thread exists),
//! wiring the answers (edges, verify mode, metrics server, progress bar),
//! the end-of-run output, and the exit status (0 success or `| head`, 1
//! runtime error, 2 usage error, 3 input lost, 4 `--expect` not met). It
//! must not hold pipeline logic: that is `pipeline::run`. Every error a
//! user can cause ends as one line on stderr.
#![warn(clippy::too_many_lines)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use mtlsniff::capture::source::Source;
use mtlsniff::capture::source::{self, Capture, Options};
use mtlsniff::pipeline::config::{Config, LogLevel, Mode};
use mtlsniff::pipeline::{self, Plan};
use mtlsniff::report::answers::{Answers, SummaryFormat};
use mtlsniff::report::edges::EdgeTable;
use mtlsniff::report::expect::Tally;
use mtlsniff::report::gauges::Gauges;
use mtlsniff::report::graph::{self, GraphFormat};
use mtlsniff::report::metrics::{Metrics, MetricsServer};
use mtlsniff::report::output::Buffering;
use mtlsniff::report::output::Printer;
use mtlsniff::report::progress::Progress;
use mtlsniff::shell::cli::Args;
use mtlsniff::shell::privilege;
use mtlsniff::tls::keylog::{self, KeyLog};
use tracing_subscriber::filter::LevelFilter;

/// Write to stderr without panicking if stderr is gone (`eprintln!` would).
fn stderr_line(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Exit status when `--expect` is not met (1, 2 and 3 are taken by runtime errors,
/// usage errors and lost input, so a script can tell "not mTLS" from "could
/// not check").
const EXIT_EXPECT_FAILED: u8 = 4;

fn init_logging(level: LogLevel) {
    let filter = match level {
        LogLevel::Off => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(filter)
        .with_target(false)
        .without_time()
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

fn run(config: &Config, keylog: Option<KeyLog>) -> Result<ExitCode, String> {
    let source = match &config.mode {
        Mode::ListInterfaces => return list_interfaces(),
        Mode::Sniff(source) => source,
    };
    let stdout = std::io::stdout();
    let line_buffered = config.buffering == Buffering::Line || stdout.is_terminal();
    let options = Options {
        snaplen: config.snaplen,
        buffer_bytes: config.buffer_bytes,
        // Immediate mode stays off even with -l: line buffering is about
        // stdout, while immediate mode makes libpcap size each ring slot
        // for a 64 KiB offloaded frame, leaving a few dozen slots in the
        // buffer (drops from 10k pps, scripts/bench-live.sh). The 250 ms
        // read timeout already bounds how late a verdict can be.
        immediate: false,
        filter: config.filter.clone(),
    };
    let capture = Capture::open(source, &options).map_err(|e| e.to_string())?;
    // The socket is open and filtered: nothing from here on needs a
    // privilege. This must come before the first thread (the signal
    // handler's, the pipeline's): capabilities are per thread.
    let dropped = privilege::relinquish(config.user.as_deref())?;
    tracing::info!(
        user = ?dropped.user,
        bounding_set_cleared = dropped.bounding_cleared,
        "privileges dropped: no capabilities, no-new-privileges set"
    );
    let live = capture.is_live();
    // -qq: nothing at all on stderr.
    let stderr_says = config.log_level != LogLevel::Off;

    if let Some(path) = &config.graph
        && GraphFormat::of(path) == GraphFormat::Svg
        && !graph::dot_available()
    {
        return Err(format!(
            "--graph {}: SVG needs Graphviz's dot (install graphviz), or write a .dot file",
            path.display()
        ));
    }

    let gauges = Arc::new(Gauges::default());
    let mut answers = Answers::new(Arc::clone(&gauges));
    if config.edges_summary.is_some() || config.graph.is_some() {
        answers = answers.with_edges(
            EdgeTable::default(),
            config.edges_summary.unwrap_or(SummaryFormat::Table),
        );
    }
    if let Some(e) = config.expect {
        answers = answers.with_tally(
            Tally::new(e, config.strict, config.ports.clone()),
            stderr_says,
        );
    }
    if config.close_lines {
        answers = answers.with_close_ids();
    }
    let _metrics_server = match config.metrics {
        Some(addr) => {
            let (metrics, registry) = Metrics::new(Arc::clone(&gauges));
            let server = MetricsServer::start(addr, registry)?;
            if stderr_says {
                stderr_line(&format!(
                    "mtlsniff: metrics on http://{}/metrics",
                    server.addr()
                ));
            }
            answers = answers.with_metrics(metrics);
            Some(server)
        }
        None => None,
    };
    // The bar shares the terminal only with stderr: when flow lines also
    // stream to it, they are the progress (and would tear the bar).
    let lines_on_terminal = stdout.is_terminal() && (config.flow_lines || config.close_lines);
    if !live
        && config.log_level >= LogLevel::Warn
        && std::io::stderr().is_terminal()
        && !lines_on_terminal
        && let Some(probe) = capture.input_probe()
    {
        answers = answers.with_progress(Progress::new(probe, Arc::clone(&gauges)));
    }
    if live && config.edges_summary.is_some() {
        let usr1 = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&usr1))
            .map_err(|e| format!("cannot install the SIGUSR1 handler: {e}"))?;
        answers = answers.with_live_summary(config.summary_interval, Some(usr1));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let lingers = config.metrics.is_some() && !config.metrics_linger.is_zero();
    if live || lingers {
        let flag = Arc::clone(&stop);
        let first = OnceLock::new();
        ctrlc::set_handler(move || {
            // First signal: stop reading, drain, summarise. Another one a
            // second later: leave now. (Repeats within the second are the
            // same request: `timeout` and process-group kills send two.)
            let at = *first.get_or_init(Instant::now);
            if flag.swap(true, Ordering::SeqCst) && at.elapsed() >= Duration::from_secs(1) {
                std::process::exit(130);
            }
        })
        .map_err(|e| format!("cannot install the SIGINT handler: {e}"))?;
    }

    let mut printer = Printer::new(stdout.lock(), config.format, line_buffered);
    let mut plan = Plan::from_config(config);
    plan.options.keylog = keylog.map(Arc::new);
    let outcome = pipeline::run(capture, &plan, &mut printer, &mut answers, &stop)
        .map_err(|e| e.to_string())?;
    answers.finish_progress();
    let expect_failed = answers.tally().is_some_and(|t| !t.passed());
    let status = if expect_failed {
        ExitCode::from(EXIT_EXPECT_FAILED)
    } else {
        ExitCode::SUCCESS
    };
    if outcome.stdout_closed {
        return Ok(status);
    }
    if config.edges_summary.is_some()
        && let Some(text) = answers.summary_text()
    {
        // Aligned tables read better apart from the flow lines; TSV and
        // JSON stay line-oriented.
        let gap = config.edges_summary == Some(SummaryFormat::Table)
            && (config.flow_lines || config.close_lines)
            && outcome.summary.printed() > 0;
        let block = if gap { format!("\n{text}") } else { text };
        if printer.print_block(&block).is_err() {
            return Ok(status); // stdout went away: as `| head`
        }
    }
    if let (Some(path), Some(edges)) = (&config.graph, answers.edges()) {
        graph::write(edges, path)?;
    }
    if config.summary {
        let _ = std::io::stderr()
            .lock()
            .write_all(outcome.summary.render().as_bytes());
    }
    if stderr_says && let Some(t) = answers.tally() {
        stderr_line(&format!("mtlsniff: {}", t.conclusion()));
    }
    // Asked for explicitly: printed even with -q, on stderr so stdout
    // stays one verdict per line (JSON Lines stays parseable).
    if let Some(c) = &outcome.calibration {
        let _ = std::io::stderr().lock().write_all(c.render().as_bytes());
    }
    if let Some(e) = outcome.read_error {
        if expect_failed {
            // A flow fell short of --expect in what was read: that finding
            // outranks the damaged file, and both are said.
            stderr_line(&format!("mtlsniff: {e}"));
            return Ok(status);
        }
        return Err(e.to_string());
    }
    if lingers && !live {
        // File done: serve the final values for --metrics-linger, or
        // until SIGINT/SIGTERM.
        let until = Instant::now() + config.metrics_linger;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if !expect_failed && outcome.summary.lost() {
        // Every verdict was printed, but packets or evidence were lost on
        // the way (the summary says which): a script must not read that as
        // a clean run.
        return Ok(ExitCode::from(EXIT_INPUT_LOST));
    }
    Ok(status)
}

/// Exit status of a run that finished but lost input (`Summary::lost`).
const EXIT_INPUT_LOST: u8 = 3;

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
    let config = match Config::from_args(args, cores) {
        Ok(c) => c,
        Err(e) => {
            stderr_line(&format!("mtlsniff: error: {e} (see --help)"));
            return ExitCode::from(2);
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
    let keylog = match keylog::for_run(config.keylog.as_deref(), capture_file, live) {
        Ok(k) => k,
        Err(e) => {
            stderr_line(&format!("mtlsniff: error: {e}"));
            return ExitCode::from(2);
        }
    };
    match run(&config, keylog) {
        Ok(code) => code,
        Err(msg) => {
            stderr_line(&format!("mtlsniff: {msg}"));
            ExitCode::from(1)
        }
    }
}
