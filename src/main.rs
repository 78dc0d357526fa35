//! The `mtlsniff` binary: a thin shell over the library.
//!
//! It owns the process edges: parsing argv (clap exits 2 on usage errors),
//! logging to stderr, looking at stdout and stderr (terminal or not),
//! SIGINT/SIGTERM (live, or lingering metrics) and SIGUSR1 (live summary),
//! wiring the answers (edges, verify mode, metrics server, progress bar),
//! the end-of-run output, and the exit status (0 success or `| head`, 1
//! runtime error, 2 usage error, 3 `--expect` not met). It must not hold
//! pipeline logic: that is `pipeline::run`. Every error a user can cause
//! ends as one line on stderr.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use mtlsniff::answers::{Answers, SummaryFormat};
use mtlsniff::capture::{self, Capture, Options};
use mtlsniff::cli::{Args, Buffering, Config, LogLevel, Mode};
use mtlsniff::edges::EdgeTable;
use mtlsniff::expect::Tally;
use mtlsniff::gauges::Gauges;
use mtlsniff::graph::{self, GraphFormat};
use mtlsniff::metrics::{Metrics, MetricsServer};
use mtlsniff::output::Printer;
use mtlsniff::pipeline::{self, Plan};
use mtlsniff::progress::Progress;
use tracing_subscriber::filter::LevelFilter;

/// Write to stderr without panicking if stderr is gone (`eprintln!` would).
fn stderr_line(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Exit status when `--expect` is not met (1 and 2 are taken by runtime and
/// usage errors, so a script can tell "not mTLS" from "could not check").
const EXIT_EXPECT_FAILED: u8 = 3;

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
    let list = capture::list_interfaces().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for (i, iface) in list.iter().enumerate() {
        if writeln!(out, "{}.{}", i + 1, iface).is_err() {
            break; // stdout closed: nothing more to say
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run(config: &Config) -> Result<ExitCode, String> {
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
    let plan = Plan::from_config(config);
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
    if let Some(e) = outcome.read_error {
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
    Ok(status)
}

/// mimalloc: a segment is a small allocation made on the capture thread
/// and freed on a worker; the system allocator spends ~17% of the time
/// there (perf, issue 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
    match run(&config) {
        Ok(code) => code,
        Err(msg) => {
            stderr_line(&format!("mtlsniff: {msg}"));
            ExitCode::from(1)
        }
    }
}
