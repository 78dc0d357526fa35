//! What a validated `Config` asks of the run, decided without touching the
//! process: the capture options, the answers the output stage keeps
//! (edges, verify tally, identities for close lines, progress bar), when
//! the progress bar may show, how stdout is buffered, whether metrics
//! outlive a file. `main.rs` measures the terminals, opens the capture and
//! the metrics server and installs signal handlers; it asks here what to do
//! with them. Nothing here does I/O, except `check_graph`, which looks for
//! Graphviz before the capture is read rather than after.

use std::sync::Arc;

use crate::capture::source::{InputProbe, Options};
use crate::pipeline::config::{Config, LogLevel};
use crate::report::answers::{Answers, SummaryFormat};
use crate::report::edges::EdgeTable;
use crate::report::expect::Tally;
use crate::report::gauges::Gauges;
use crate::report::graph::{self, GraphFormat};
use crate::report::metrics::Metrics;
use crate::report::output::Buffering;
use crate::report::progress::Progress;

/// Which standard streams are terminals (measured once by `main`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminals {
    pub stdout: bool,
    pub stderr: bool,
}

/// How the capture is opened.
pub fn capture_options(config: &Config) -> Options {
    Options {
        snaplen: config.snaplen,
        buffer_bytes: config.buffer_bytes,
        // Immediate mode stays off even with -l: line buffering is about
        // stdout, while immediate mode makes libpcap size each ring slot
        // for a 64 KiB offloaded frame, leaving a few dozen slots in the
        // buffer (drops from 10k pps, scripts/bench-live.sh). The 250 ms
        // read timeout already bounds how late a verdict can be.
        immediate: false,
        filter: config.filter.clone(),
    }
}

/// Flush stdout after every line: asked for, or stdout is a terminal.
pub fn line_buffered(config: &Config, tty: Terminals) -> bool {
    config.buffering == Buffering::Line || tty.stdout
}

/// Anything on stderr at all (not `-qq`).
pub fn stderr_says(config: &Config) -> bool {
    config.log_level != LogLevel::Off
}

/// File mode with metrics: serve the final values after the end.
pub fn lingers(config: &Config) -> bool {
    config.metrics.is_some() && !config.metrics_linger.is_zero()
}

/// The progress bar shows for a file, at the default verbosity or more,
/// when stderr is a terminal that flow lines do not also stream to (they
/// are the progress then, and would tear the bar).
pub fn shows_progress(config: &Config, live: bool, tty: Terminals) -> bool {
    let lines_on_terminal = tty.stdout && (config.flow_lines || config.close_lines);
    !live && config.log_level >= LogLevel::Warn && tty.stderr && !lines_on_terminal
}

/// `--graph x.svg` needs Graphviz's `dot`: say so before reading anything.
pub fn check_graph(config: &Config) -> Result<(), String> {
    if let Some(path) = &config.graph {
        writable(path).map_err(|e| {
            format!(
                "--graph {}: cannot write there ({e}); the graph is written at the end of the run, \
                 as the user mtlsniff runs as then (-Z)",
                path.display()
            )
        })?;
    }
    match &config.graph {
        Some(path) if GraphFormat::of(path) == GraphFormat::Svg && !graph::dot_available() => {
            Err(format!(
                "--graph {}: SVG needs Graphviz's dot (install graphviz), or write a .dot file",
                path.display()
            ))
        }
        _ => Ok(()),
    }
}

/// Whether this process (its user now, after `-Z`) may write `path`: the
/// file itself when it exists, else its directory. Nothing is created.
fn writable(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let target = if path.exists() {
        path.to_path_buf()
    } else {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        }
    };
    let c = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: access(2) reads a NUL-terminated path we own; no other effect.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The answers `config` asks for, publishing through `gauges`: `metrics`
/// when its server runs, a progress bar over `probe` when one shows. The
/// live summary needs a signal handler: `main` adds it.
pub fn answers(
    config: &Config,
    gauges: &Arc<Gauges>,
    metrics: Option<Metrics>,
    probe: Option<InputProbe>,
) -> Answers {
    let mut answers = Answers::new(Arc::clone(gauges)).with_full_table(config.detailed);
    if config.edges_summary.is_some() || config.graph.is_some() {
        // With a pods list the edges are between workloads.
        let table = if config.names_workloads() {
            EdgeTable::default().by_workload()
        } else {
            EdgeTable::default()
        };
        answers = answers.with_edges(table, config.edges_summary.unwrap_or(SummaryFormat::Table));
    }
    if let Some(e) = config.expect {
        answers = answers.with_tally(
            Tally::new(e, config.strict, config.ports.clone())
                .with_namespaces(config.namespaces.clone()),
            stderr_says(config),
        );
    }
    if config.close_lines {
        answers = answers.with_close_ids();
    }
    if let Some(m) = metrics {
        answers = answers.with_metrics(m);
    }
    if let Some(probe) = probe {
        answers = answers.with_progress(Progress::new(probe, Arc::clone(gauges)));
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::cli::{self, Args};
    use clap::Parser;

    fn config(argv: &[&str]) -> Config {
        let args = Args::try_parse_from(std::iter::once("mtlsniff").chain(argv.iter().copied()));
        cli::config(args.expect("parses"), 4).expect("valid")
    }

    #[test]
    fn progress_shows_only_for_a_file_on_a_quiet_terminal() {
        let tty = |stdout, stderr| Terminals { stdout, stderr };
        let file = config(&["-r", "x"]);
        assert!(shows_progress(&file, false, tty(false, true)));
        assert!(!shows_progress(&file, true, tty(false, true)), "live");
        assert!(
            !shows_progress(&file, false, tty(false, false)),
            "stderr piped"
        );
        assert!(
            !shows_progress(&file, false, tty(true, true)),
            "lines on the terminal"
        );
        let only = config(&["-r", "x", "--summary-only"]);
        assert!(shows_progress(&only, false, tty(true, true)), "no lines");
        assert!(!shows_progress(
            &config(&["-r", "x", "-q"]),
            false,
            tty(false, true)
        ));
    }

    #[test]
    fn buffering_linger_and_stderr_follow_the_flags() {
        let tty = Terminals::default();
        assert!(!line_buffered(&config(&["-r", "x"]), tty));
        assert!(line_buffered(&config(&["-r", "x", "-l"]), tty));
        assert!(line_buffered(
            &config(&["-r", "x"]),
            Terminals {
                stdout: true,
                stderr: false
            }
        ));
        assert!(!lingers(&config(&["-r", "x", "--metrics", ":0"])));
        assert!(lingers(&config(&[
            "-r",
            "x",
            "--metrics",
            ":0",
            "--metrics-linger",
            "1s"
        ])));
        assert!(stderr_says(&config(&["-r", "x", "-q"])));
        assert!(!stderr_says(&config(&["-r", "x", "-qq"])));
    }

    #[test]
    fn capture_options_carry_the_filter_and_never_immediate_mode() {
        let o = capture_options(&config(&["-r", "x", "-l", "tcp", "port", "443"]));
        assert_eq!(o.filter.as_deref(), Some("tcp port 443"));
        assert!(!o.immediate);
    }
}
