//! The end of a run: what is shown after the last flow line (the edges
//! summary on stdout, the graph file, the summary, the verify conclusion
//! and the calibration on stderr) and the exit status, arbitrated here:
//! 0 success (also `| head`), 1 runtime error, 2 usage error, 3 input
//! lost, 4 `--expect` not met; 4 wins over 1 and 3. It must not read
//! packets or print flow lines; `main` only turns the `Ending` into a
//! process exit.

use std::io::Write;

use crate::pipeline::RunOutcome;
use crate::pipeline::config::Config;
use crate::report::answers::{Answers, SummaryFormat};
use crate::report::graph;
use crate::report::output::Printer;

use super::wiring;

/// A runtime error: what the user can act on is in the message.
pub const EXIT_RUNTIME: u8 = 1;
/// A command line that cannot work (clap's own status for bad flags).
pub const EXIT_USAGE: u8 = 2;
/// The run finished but lost input (`Summary::lost`).
pub const EXIT_INPUT_LOST: u8 = 3;
/// `--expect` not met (1, 2 and 3 are taken by runtime errors, usage errors
/// and lost input, so a script can tell "not mTLS" from "could not check").
pub const EXIT_EXPECT_FAILED: u8 = 4;

/// How the process ends, once the end of the run is shown.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// Exit now with this status.
    Exit(u8),
    /// Exit with this status after `--metrics-linger`, if any.
    Linger(u8),
    /// Exit 1 with this message.
    Fail(String),
}

/// The exit status of a run that read its input to the end: `--expect`
/// not met outranks lost input.
pub fn status(expect_failed: bool, lost: bool) -> u8 {
    if expect_failed {
        EXIT_EXPECT_FAILED
    } else if lost {
        EXIT_INPUT_LOST
    } else {
        0
    }
}

/// Show the end of the run (stdout through `printer`, the rest on
/// `stderr`) and decide the exit.
pub fn finish<W: Write, E: Write>(
    config: &Config,
    outcome: &RunOutcome,
    printer: &mut Printer<W>,
    answers: &Answers,
    stderr: &mut E,
) -> Ending {
    let expect_failed = answers.tally().is_some_and(|t| !t.passed());
    let early = if expect_failed { EXIT_EXPECT_FAILED } else { 0 };
    if outcome.stdout_closed {
        return Ending::Exit(early);
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
            return Ending::Exit(early); // stdout went away: as `| head`
        }
    }
    if let (Some(path), Some(edges)) = (&config.graph, answers.edges())
        && let Err(e) = graph::write(edges, path)
    {
        return Ending::Fail(e);
    }
    // A stderr that is gone is not worth failing the run for.
    if config.summary {
        let text = if config.stats {
            outcome.summary.render()
        } else {
            outcome.summary.render_brief()
        };
        let _ = stderr.write_all(text.as_bytes());
        if let Some(line) = answers.workloads_line() {
            let _ = writeln!(stderr, "mtlsniff: {line}");
        }
    }
    if wiring::stderr_says(config)
        && let Some(t) = answers.tally()
    {
        let _ = writeln!(stderr, "mtlsniff: {}", t.conclusion());
    }
    // Asked for explicitly: printed even with -q, on stderr so stdout
    // stays one verdict per line (JSON Lines stays parseable).
    if let Some(c) = &outcome.calibration {
        let _ = stderr.write_all(c.render().as_bytes());
    }
    match &outcome.read_error {
        // A flow fell short of --expect in what was read: that finding
        // outranks the damaged file, and both are said.
        Some(e) if expect_failed => {
            let _ = writeln!(stderr, "mtlsniff: {e}");
            Ending::Exit(EXIT_EXPECT_FAILED)
        }
        Some(e) => Ending::Fail(e.to_string()),
        // Every verdict was printed, but packets or evidence may have been
        // lost on the way (the summary says which): a script must not read
        // that as a clean run.
        None => Ending::Linger(status(expect_failed, outcome.summary.lost())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_outranks_lost_input() {
        assert_eq!(status(false, false), 0);
        assert_eq!(status(false, true), EXIT_INPUT_LOST);
        assert_eq!(status(true, false), EXIT_EXPECT_FAILED);
        assert_eq!(status(true, true), EXIT_EXPECT_FAILED);
    }
}
