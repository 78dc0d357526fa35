//! The `mtlsniff` binary: a thin shell over the library.
//!
//! It owns the process edges: parsing argv (clap exits 2 on usage errors),
//! logging to stderr, looking at stdout (terminal or not), SIGINT/SIGTERM in
//! live mode, dropping privileges once the source is open (before any
//! thread exists), the summary, and the exit status (0 success or `| head`,
//! 1 runtime error, 2 usage error, 3 input lost). It must not hold pipeline
//! logic: that is `pipeline::run`. Every error a user can cause ends as one
//! line on stderr.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use mtlsniff::capture::{self, Capture, Options};
use mtlsniff::cli::{Args, Buffering, Config, LogLevel, Mode, Source};
use mtlsniff::keylog::{self, KeyLog};
use mtlsniff::output::Printer;
use mtlsniff::pipeline::{self, Plan};
use mtlsniff::privilege;
use tracing_subscriber::filter::LevelFilter;

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

    let stop = Arc::new(AtomicBool::new(false));
    if capture.is_live() {
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
    plan.limits.keylog = keylog.map(Arc::new);
    let outcome = pipeline::run(capture, &plan, &mut printer, &stop).map_err(|e| e.to_string())?;
    if outcome.stdout_closed {
        return Ok(ExitCode::SUCCESS);
    }
    if config.summary {
        let _ = std::io::stderr()
            .lock()
            .write_all(outcome.summary.render().as_bytes());
    }
    // Asked for explicitly: printed even with -q, on stderr so stdout
    // stays one verdict per line (JSON Lines stays parseable).
    if let Some(c) = &outcome.calibration {
        let _ = std::io::stderr().lock().write_all(c.render().as_bytes());
    }
    match outcome.read_error {
        Some(e) => Err(e.to_string()),
        // Every verdict was printed, but packets or evidence were lost on
        // the way (the summary says which): a script must not read that as
        // a clean run.
        None if outcome.summary.lost() => Ok(ExitCode::from(EXIT_INPUT_LOST)),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Exit status of a run that finished but lost input (`Summary::lost`).
const EXIT_INPUT_LOST: u8 = 3;

/// mimalloc: a segment is a small allocation made on the capture thread
/// and freed on a worker; the system allocator spends ~17% of the time
/// there (perf, issue 4).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
