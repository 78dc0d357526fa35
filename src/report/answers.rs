//! Everything the output stage derives from the ordered reports besides the
//! per-flow lines: the edges summary, the verify-mode tally and its offender
//! lines, Prometheus counters, identities for close lines, the progress bar,
//! and when a live summary is due (SIGUSR1, `--summary-interval`).
//!
//! It owns no thread and sees reports in the order they are printed (file
//! mode: `ReportOrder`), so every answer it keeps is deterministic for any
//! `--threads`. Each part is off unless asked for, and each is bounded: the
//! edge table by its cap, close identities by `MAX_CLOSE_IDS`. It must not
//! decide verdicts nor write per-flow lines (the `Printer` does); it writes
//! only blocks (the summary) through the printer and lines on stderr.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::capture::segment::Timestamp;
use crate::report::edges::EdgeTable;
use crate::report::expect::{Finding, Tally};
use crate::report::gauges::Gauges;
use crate::report::metrics::Metrics;
use crate::report::output::{CloseIds, Printer, escape_text};
use crate::report::progress::Progress;
use crate::report::workloads::WorkloadCounts;
use crate::verdict::{CertSeen, FlowClose, Verdict};
use crate::workload::{Placement, Shared};

/// Flows whose identities wait for their close line; as many as the flow
/// table holds by default. Past it identities are left off (counted).
pub const MAX_CLOSE_IDS: usize = 262_144;
/// Distinct identity strings shared between flows (interned).
const MAX_INTERNED: usize = 65_536;

/// How the edges summary is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryFormat {
    Table,
    Tsv,
    Json,
}

/// Identities seen in a verdict, kept until the flow's close line.
#[derive(Debug, Default)]
struct CloseIdentities {
    open: FxHashMap<u64, CloseIds>,
    interned: FxHashSet<Arc<str>>,
    forgotten: u64,
}

impl CloseIdentities {
    fn intern(&mut self, s: String) -> Arc<str> {
        if let Some(a) = self.interned.get(s.as_str()) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        if self.interned.len() < MAX_INTERNED {
            self.interned.insert(Arc::clone(&a));
        }
        a
    }

    fn remember(&mut self, flow: u64, v: &Verdict) {
        let id = |c: &Option<CertSeen>| c.as_ref().map(CertSeen::id);
        let (client, server) = (id(&v.client_certificate), id(&v.server_certificate));
        if client.is_none() && server.is_none() {
            return;
        }
        if self.open.len() >= MAX_CLOSE_IDS {
            self.forgotten += 1;
            return;
        }
        let ids = CloseIds {
            client_id: client.map(|s| self.intern(s)),
            server_id: server.map(|s| self.intern(s)),
        };
        self.open.insert(flow, ids);
    }
}

/// When the edges summary is printed during a live run.
#[derive(Debug)]
struct Schedule {
    every: Option<Duration>,
    next: Instant,
    /// Set by SIGUSR1.
    signal: Option<Arc<AtomicBool>>,
}

/// The line above a periodic or SIGUSR1 edges table: the wall-clock time
/// it was taken (UTC, as the flow lines write packet time) and the flows
/// counted so far.
fn live_header(now: SystemTime, flows: u64) -> String {
    let micros = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    format!(
        "mtlsniff edges at {} UTC, {flows} flows so far\n",
        Timestamp(micros).date_time()
    )
}

/// The output stage's answers; see the module doc.
pub struct Answers {
    gauges: Arc<Gauges>,
    edges: Option<(EdgeTable, SummaryFormat)>,
    schedule: Option<Schedule>,
    tally: Option<Tally>,
    /// Write verify-mode lines (offenders, unknowns) on stderr.
    tally_lines: bool,
    metrics: Option<Metrics>,
    close_ids: Option<CloseIdentities>,
    progress: Option<Progress>,
    flows: u64,
    /// `--k8s-pods`: the directory each verdict is placed with, and counts.
    workloads: Option<(Shared, WorkloadCounts)>,
    /// `-v`: the aligned table with every identity whole.
    full_table: bool,
}

impl Answers {
    /// Nothing asked for: every hook is a no-op.
    pub fn new(gauges: Arc<Gauges>) -> Self {
        Answers {
            gauges,
            edges: None,
            schedule: None,
            tally: None,
            tally_lines: false,
            metrics: None,
            close_ids: None,
            progress: None,
            flows: 0,
            workloads: None,
            full_table: false,
        }
    }

    /// `-v`: the aligned edges table keeps every identity whole.
    pub fn with_full_table(mut self, on: bool) -> Self {
        self.full_table = on;
        self
    }

    pub fn gauges(&self) -> Arc<Gauges> {
        Arc::clone(&self.gauges)
    }

    /// Keep the edge table (for `--summary` and `--graph`).
    pub fn with_edges(mut self, table: EdgeTable, format: SummaryFormat) -> Self {
        self.edges = Some((table, format));
        self
    }

    /// Live: print the summary every `every` and whenever `signal` is set.
    pub fn with_live_summary(
        mut self,
        every: Option<Duration>,
        signal: Option<Arc<AtomicBool>>,
    ) -> Self {
        let next = Instant::now() + every.unwrap_or(Duration::ZERO);
        self.schedule = Some(Schedule {
            every,
            next,
            signal,
        });
        self
    }

    /// Verify mode; `lines`: write each offender and unknown on stderr.
    pub fn with_tally(mut self, tally: Tally, lines: bool) -> Self {
        self.tally = Some(tally);
        self.tally_lines = lines;
        self
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Remember identities for close lines.
    pub fn with_close_ids(mut self) -> Self {
        self.close_ids = Some(CloseIdentities::default());
        self
    }

    /// Place every verdict in its workloads (`--k8s-pods`): the edges by
    /// workload, the metrics' workload labels, `--namespace`.
    pub fn with_workloads(mut self, dir: Shared) -> Self {
        self.workloads = Some((dir, WorkloadCounts::default()));
        self
    }

    /// The summary's workload line, with a pods list.
    pub fn workloads_line(&self) -> Option<String> {
        self.workloads.as_ref().map(|(d, c)| c.line(&d.read()))
    }

    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// A verdict, in print order; `flow` is its `ReportOrder::flow`.
    /// `shown`: `--only` lets it through, so the edges view counts it
    /// (metrics and `--expect` count every flow).
    pub fn on_verdict(&mut self, flow: u64, v: &Verdict, shown: bool) {
        self.flows += 1;
        let placed = self.workloads.as_mut().map(|(d, counts)| {
            let p = Placement::of(&d.read(), v);
            counts.record(&p);
            p
        });
        if let Some((t, _)) = &mut self.edges.as_mut().filter(|_| shown) {
            match &placed {
                Some(p) => t.record_placed(v, p),
                None => t.record(v),
            }
        }
        if let Some(m) = &self.metrics {
            m.on_verdict_placed(v, placed.as_ref());
        }
        if let Some(c) = &mut self.close_ids {
            c.remember(flow, v);
        }
        if let Some(t) = &mut self.tally {
            let finding = t.check_placed(v, placed.as_ref());
            let label = match finding {
                Finding::Offender => "short",
                Finding::Unknown => "unknown",
                Finding::Meets | Finding::Refused | Finding::Untracked => return,
            };
            if self.tally_lines {
                let line = format!(
                    "mtlsniff: expect {}: {label} {} > {}: {} {}: {}",
                    t.expectation.as_str(),
                    v.client,
                    v.server,
                    v.class.as_str(),
                    v.outcome.as_str(),
                    escape_text(&v.reason)
                );
                self.stderr_line(&line);
            }
        }
    }

    /// A close, in print order: counts it and returns the identities its
    /// line shows.
    pub fn on_close(&mut self, flow: u64, c: &FlowClose) -> CloseIds {
        if let Some(m) = &self.metrics {
            let placed = self
                .workloads
                .as_ref()
                .map(|(d, _)| Placement::at(&d.read(), c.client, c.server, c.first_seen));
            m.on_close_placed(c, placed.as_ref());
        }
        self.close_ids
            .as_mut()
            .and_then(|ids| ids.open.remove(&flow))
            .unwrap_or_default()
    }

    /// Called whenever the output stage wakes: progress, and the live
    /// summary when it is due.
    pub fn on_wake<W: Write>(&mut self, printer: &mut Printer<W>) -> io::Result<()> {
        if let Some(p) = &mut self.progress {
            p.update(self.flows);
        }
        let Some(s) = &mut self.schedule else {
            return Ok(());
        };
        let signalled = s
            .signal
            .as_ref()
            .is_some_and(|f| f.swap(false, Ordering::Relaxed));
        let now = Instant::now();
        let timed = s.every.is_some_and(|_| now >= s.next);
        if let Some(every) = s.every
            && timed
        {
            s.next = now + every;
        }
        if (signalled || timed)
            && let Some(text) = self.summary_text()
        {
            // A table stands apart from the flow lines around it, under a
            // header that says when it was taken; TSV and JSON stay
            // line-oriented.
            let table = matches!(self.edges, Some((_, SummaryFormat::Table)));
            printer.print_block(&if table {
                format!("\n{}{text}", live_header(SystemTime::now(), self.flows))
            } else {
                text
            })?;
        }
        Ok(())
    }

    /// The edges summary in its format, if one is kept.
    pub fn summary_text(&self) -> Option<String> {
        let (t, format) = self.edges.as_ref()?;
        Some(match format {
            SummaryFormat::Table if self.full_table => t.render_table_full(),
            SummaryFormat::Table => t.render_table(),
            SummaryFormat::Tsv => t.render_tsv(),
            SummaryFormat::Json => t.render_json(),
        })
    }

    pub fn edges(&self) -> Option<&EdgeTable> {
        self.edges.as_ref().map(|(t, _)| t)
    }

    pub fn tally(&self) -> Option<&Tally> {
        self.tally.as_ref()
    }

    /// Close lines printed without identities because `MAX_CLOSE_IDS` was
    /// reached.
    pub fn close_ids_forgotten(&self) -> u64 {
        self.close_ids.as_ref().map_or(0, |c| c.forgotten)
    }

    /// Erase the progress bar (before the summary goes to stderr).
    pub fn finish_progress(&mut self) {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
    }

    /// One line on stderr, under the progress bar if there is one. A
    /// stderr that is gone is not worth failing the run for.
    pub fn stderr_line(&self, line: &str) {
        let write = || {
            let _ = writeln!(io::stderr().lock(), "{line}");
        };
        match &self.progress {
            Some(p) => p.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::report::expect::Expectation;
    use crate::report::output::Format;
    use crate::verdict::{Class, Decided, Ending, Outcome};

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn close_lines_get_the_identities_of_their_verdict_once() {
        let mut a = Answers::new(Arc::default()).with_close_ids();
        let mut v = Verdict::new(ep(1), ep(2), Timestamp(0), Timestamp(1));
        v.client_certificate = Some(CertSeen::Unparsable);
        a.on_verdict(7, &v, true);
        let close = FlowClose {
            ts: Timestamp(5),
            first_seen: Timestamp(0),
            client: ep(1),
            server: ep(2),
            redirected_to: None,
            ending: Ending::Fin,
            decided: Decided {
                class: Class::Mtls,
                outcome: Outcome::Ok,
                basis: crate::verdict::Basis::Observed,
                mesh: None,
            },
            bytes_to_server: 0,
            bytes_to_client: 0,
            packets: 0,
        };
        assert_eq!(a.on_close(8, &close), CloseIds::default());
        let ids = a.on_close(7, &close);
        assert_eq!(ids.client_id.as_deref(), Some("?"));
        assert_eq!(ids.server_id, None);
        assert_eq!(
            a.on_close(7, &close),
            CloseIds::default(),
            "forgotten after its close"
        );
    }

    #[test]
    fn the_live_summary_is_printed_on_the_signal_only_when_asked() {
        let signal = Arc::new(AtomicBool::new(false));
        let mut a = Answers::new(Arc::default())
            .with_edges(EdgeTable::default(), SummaryFormat::Tsv)
            .with_live_summary(None, Some(Arc::clone(&signal)))
            .with_tally(Tally::new(Expectation::Mtls, false, None), false);
        let mut v = Verdict::new(ep(1), ep(2), Timestamp(0), Timestamp(1));
        v.class = Class::Plaintext;
        a.on_verdict(0, &v, true);
        let mut printer = Printer::new(Vec::new(), Format::Text, false);
        a.on_wake(&mut printer).unwrap();
        assert!(printer.into_inner().unwrap().is_empty());
        signal.store(true, Ordering::Relaxed);
        let mut printer = Printer::new(Vec::new(), Format::Text, false);
        a.on_wake(&mut printer).unwrap();
        let out = String::from_utf8(printer.into_inner().unwrap()).unwrap();
        assert!(out.starts_with("SECURED\tCLIENT\tSERVER"), "{out}");
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!signal.load(Ordering::Relaxed), "the signal is consumed");
        assert_eq!(a.tally().unwrap().offenders, 1);
    }
}
