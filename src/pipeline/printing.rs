//! The binary's `Sink`: each report in print order goes to the `Printer`
//! (flow and close lines), the summary's tally and the `Answers` (edges,
//! verify, metrics, progress); `-c` stops after N printed verdicts; a
//! broken pipe (`| head`) stops quietly; any other write error ends the
//! run. Stopping asks the capture thread to stop reading (`stop`). It runs
//! on the output thread only; it must not reorder or decide anything.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::report::answers::Answers;
use crate::report::only::Only;
use crate::report::output::Printer;
use crate::report::stats::Summary;
use crate::verdict::{Event, Report};

use super::Plan;
use super::output::Sink;

/// The printing end of a run.
pub(super) struct Printing<'a, W: Write> {
    printer: &'a mut Printer<W>,
    pub(super) answers: &'a mut Answers,
    /// Printed verdicts by class and outcome, time to verdict.
    pub(super) summary: Summary,
    count: Option<u64>,
    only: Option<Only>,
    flow_lines: bool,
    close_lines: bool,
    /// Verdicts `--only` let through (all of them without it): `-c` counts
    /// these.
    shown: u64,
    /// Stop printing (count reached, stdout closed, or write failed).
    done: bool,
    pub(super) stdout_closed: bool,
    pub(super) error: Option<io::Error>,
    stop: &'a AtomicBool,
}

impl<'a, W: Write> Printing<'a, W> {
    pub(super) fn new(
        printer: &'a mut Printer<W>,
        answers: &'a mut Answers,
        plan: &Plan,
        stop: &'a AtomicBool,
    ) -> Self {
        Printing {
            printer,
            answers,
            summary: Summary::default(),
            count: plan.count,
            only: plan.only.clone(),
            flow_lines: plan.flow_lines,
            close_lines: plan.close_lines,
            shown: 0,
            done: false,
            stdout_closed: false,
            error: None,
            stop,
        }
    }

    /// Between messages: progress, a live summary that is due.
    pub(super) fn wake(&mut self) {
        if self.done {
            return;
        }
        if let Err(e) = self.answers.on_wake(self.printer) {
            self.end(Err(e));
        }
    }

    /// End of run: flush what is buffered, unless printing already ended.
    pub(super) fn flush(&mut self) {
        if !self.done
            && let Err(e) = self.printer.flush()
        {
            self.end(Err(e));
        }
    }

    /// Stop printing and ask the capture thread to stop reading.
    fn end(&mut self, res: io::Result<()>) {
        self.done = true;
        self.stop.store(true, Ordering::Relaxed);
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.stdout_closed = true,
            Err(e) => self.error = Some(e),
        }
    }
}

impl<W: Write> Sink for Printing<'_, W> {
    fn take(&mut self, report: Report) -> bool {
        if self.done {
            return false;
        }
        let flow = report.order.flow;
        match report.event {
            Event::Verdict(verdict) => {
                let shown = self
                    .only
                    .as_ref()
                    .is_none_or(|o| o.keeps(verdict.class, verdict.outcome));
                let printed = if self.flow_lines && shown {
                    self.printer.print(&verdict)
                } else {
                    Ok(())
                };
                match printed {
                    Ok(()) => {
                        self.summary.record(&verdict);
                        self.answers.on_verdict(flow, &verdict, shown);
                        if shown {
                            self.shown += 1;
                        }
                        if let Some(c) = self.count.filter(|&c| self.shown >= c) {
                            // Said in the summary: the packets and counters
                            // go past this frame, the lines stop at it.
                            // The pipeline's orders are doubled
                            // (pipeline/worker.rs): frame trigger / 2.
                            self.summary.count_stop = Some((c, report.order.trigger / 2 + 1));
                            let flushed = self.printer.flush();
                            self.end(flushed);
                        }
                    }
                    Err(e) => self.end(Err(e)),
                }
            }
            Event::Close(close) => {
                let ids = self.answers.on_close(flow, &close);
                let shown = self
                    .only
                    .as_ref()
                    .is_none_or(|o| o.keeps(close.decided.class, close.decided.outcome));
                if self.close_lines
                    && shown
                    && let Err(e) = self.printer.print_close(&close, &ids)
                {
                    self.end(Err(e));
                }
            }
        }
        !self.done
    }
}
