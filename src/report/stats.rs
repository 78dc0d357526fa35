//! The end-of-run summary: what was read, what was printed, what was lost.
//!
//! This file owns the `Summary` counters, the time-to-verdict histogram (the
//! only user of hdrhistogram) and the summary's text. It must not count
//! anything itself from packets or threads: the pipeline fills a `Summary`
//! and turns it into text for stderr: `render_brief` by default (one line:
//! packets, flows by class and outcome, loss; a second only when input was
//! lost, naming what fired; warnings only when they apply), `render` with
//! `--stats` or `-v` (every non-zero counter, limits, timings). Invariant:
//! `render` prints only non-zero counters, so a clean run stays short.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::capture::decode::{Skipped, SkippedTypes};
use crate::capture::source::{KernelStats, link_name};
use crate::verdict::{Class, Outcome, Verdict};

/// Highest time-to-verdict recorded exactly (one day, in microseconds);
/// longer ones saturate.
const TTV_MAX_MICROS: u64 = 86_400 * 1_000_000;

/// Longest engine time per segment recorded exactly (one second, in
/// nanoseconds); longer ones saturate.
const SEGMENT_MAX_NANOS: u64 = 1_000_000_000;

/// Percentiles of one quantity (3 significant digits, values from 1 to a
/// ceiling past which they saturate). `None` only if hdrhistogram refused
/// the bounds, which are constants: the summary then shows nothing rather
/// than crash.
pub struct Percentiles {
    hist: Option<Histogram<u64>>,
}

impl Percentiles {
    fn up_to(ceiling: u64) -> Self {
        Percentiles {
            hist: Histogram::new_with_bounds(1, ceiling, 3).ok(),
        }
    }

    fn record_value(&mut self, value: u64) {
        if let Some(h) = &mut self.hist {
            h.saturating_record(value);
        }
    }

    pub fn merge(&mut self, other: &Percentiles) {
        if let (Some(h), Some(o)) = (&mut self.hist, &other.hist) {
            // Same bounds on both sides: adding cannot fail; if it ever
            // did, the summary would under-count, not crash.
            let _ = h.add(o);
        }
    }
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::len)
    }
    /// The value at quantile `q` (0.0..=1.0).
    pub fn quantile(&self, q: f64) -> u64 {
        self.hist.as_ref().map_or(0, |h| h.value_at_quantile(q))
    }
    pub fn max(&self) -> u64 {
        self.hist.as_ref().map_or(0, Histogram::max)
    }
}

impl std::fmt::Debug for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Percentiles")
            .field("count", &self.count())
            .finish()
    }
}

/// Packet-time delay from a flow's first packet to its verdict, in
/// microseconds.
#[derive(Debug)]
pub struct TimeToVerdict(pub Percentiles);

impl Default for TimeToVerdict {
    fn default() -> Self {
        TimeToVerdict(Percentiles::up_to(TTV_MAX_MICROS))
    }
}

impl TimeToVerdict {
    pub fn record(&mut self, micros: i64) {
        // Clock steps backwards in a capture are not our error: clamp.
        self.0.record_value(u64::try_from(micros).unwrap_or(0));
    }
}

impl std::ops::Deref for TimeToVerdict {
    type Target = Percentiles;
    fn deref(&self) -> &Percentiles {
        &self.0
    }
}

/// Engine time per segment (wall clock, nanoseconds), on a sample of
/// segments: timing every one would cost two clock reads per packet.
#[derive(Debug)]
pub struct ProcessingTime(pub Percentiles);

impl Default for ProcessingTime {
    fn default() -> Self {
        ProcessingTime(Percentiles::up_to(SEGMENT_MAX_NANOS))
    }
}

impl ProcessingTime {
    /// Segments sampled: one in this many is timed.
    pub const SAMPLE_EVERY: u64 = 64;

    pub fn record(&mut self, nanos: u64) {
        self.0.record_value(nanos.max(1));
    }
    pub fn merge(&mut self, other: &ProcessingTime) {
        self.0.merge(&other.0);
    }
}

impl std::ops::Deref for ProcessingTime {
    type Target = Percentiles;
    fn deref(&self) -> &Percentiles {
        &self.0
    }
}

/// `850ns`, `12.5us`, `3.2ms`.
pub fn human_nanos(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", ns as f64 / 1e3)
    } else {
        format!("{:.1}ms", ns as f64 / 1e6)
    }
}

/// Skipped frames (unknown ethertype or link type) worth a warning, in
/// percent of the frames read: below it, stray frames of an odd protocol
/// on a switch port; at or above it, traffic that may hold flows.
pub const SKIPPED_WARN_PERCENT: u64 = 1;
/// Values the warning names; the rest are summed as `other`.
const SKIPPED_NAMED: usize = 4;

/// Everything the summary reports.
#[derive(Debug, Default)]
pub struct Summary {
    /// Frames read from the source.
    pub packets: u64,
    /// Printed verdicts by class and outcome, indexed like `Class::ALL` x `Outcome::ALL`.
    pub flows: [[u64; 4]; 4],
    /// Live only.
    pub kernel: Option<KernelStats>,
    /// Segments dropped because a worker's queue was full (live only).
    pub dropped_segments: u64,
    /// Clock ticks dropped the same way (harmless: the next one catches up).
    pub dropped_ticks: u64,
    /// Segments skipped by `--ports`.
    pub ports_skipped: u64,
    /// `DecodeCounters::entries`, then `EngineCounters::entries`.
    pub counters: Vec<(&'static str, u64)>,
    /// The unknown ethertypes and link types decode skipped frames for.
    pub skipped: SkippedTypes,
    pub time_to_verdict: TimeToVerdict,
    /// The bounds in force (`budget::Plan::describe`).
    pub limits: Option<String>,
    /// Engine time per segment, sampled (`ProcessingTime::SAMPLE_EVERY`).
    pub processing: ProcessingTime,
    /// `-c N` ended the run: N, and the packet whose verdict was the Nth.
    pub count_stop: Option<(u64, u64)>,
}

/// Counters that mean mtlsniff itself lost input or evidence: segments it
/// refused (full flow table, per-direction limits) or flows it gave up
/// (memory budget), or reports dropped because the printer fell behind
/// (live, `reports.dropped`: the meter of reports in flight was full).
/// With kernel and queue drops they make `lost()` true.
/// Gaps (`stream.gaps`) are not here: they are holes in the input, which a
/// capture file may have been written with.
pub const LOSS_COUNTERS: [&str; 4] = [
    "flows.table_full",
    "stream.limit_hits",
    "mem.flows_given_up",
    "reports.dropped",
];

fn class_index(c: Class) -> usize {
    Class::ALL.iter().position(|&x| x == c).unwrap_or(0)
}

fn outcome_index(o: Outcome) -> usize {
    Outcome::ALL.iter().position(|&x| x == o).unwrap_or(0)
}

/// `850us`, `12.5ms`, `3.20s`, `2m05s`, `3h05m`, `2d04h`: the two
/// largest units, as a person reads a duration.
pub fn human_micros(us: u64) -> String {
    let s = us / 1_000_000;
    if us < 1_000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else if us < 60_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if s < 3_600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3_600)
    }
}

impl Summary {
    /// Count one printed verdict.
    pub fn record(&mut self, v: &Verdict) {
        if let Some(slot) = self
            .flows
            .get_mut(class_index(v.class))
            .and_then(|row| row.get_mut(outcome_index(v.outcome)))
        {
            *slot += 1;
        }
        self.time_to_verdict
            .record(v.ts.0.saturating_sub(v.first_seen.0));
    }

    /// The run lost packets or evidence of its own doing: kernel drops
    /// (received but not delivered, or dropped by the interface), segments
    /// dropped because a worker fell behind (live), or a `LOSS_COUNTERS`
    /// counter above zero. The binary exits 3 then.
    pub fn lost(&self) -> bool {
        let kernel = self
            .kernel
            .is_some_and(|k| k.dropped > 0 || k.if_dropped > 0);
        let counted = self
            .counters
            .iter()
            .any(|(name, v)| *v > 0 && LOSS_COUNTERS.contains(name));
        kernel || self.dropped_segments > 0 || counted
    }

    /// Verdicts printed.
    pub fn printed(&self) -> u64 {
        self.flows.iter().flatten().sum()
    }

    /// The default summary: `N packets, M flows: ...; no loss` in one
    /// line; when input was lost, a second line names each source of loss
    /// that fired (the reason for exit status 3); the skipped-header and key
    /// log warnings when they apply. The rest is `render`'s (`--stats`).
    pub fn render_brief(&self) -> String {
        let mut s = String::new();
        let mut by_class = Vec::new();
        for (ci, c) in Class::ALL.iter().enumerate() {
            let row = self.flows.get(ci).copied().unwrap_or_default();
            let total: u64 = row.iter().sum();
            if total == 0 {
                continue;
            }
            let outcomes: Vec<String> = Outcome::ALL
                .iter()
                .zip(row)
                .filter(|(_, n)| *n > 0)
                .map(|(o, n)| format!("{n} {}", o.as_str()))
                .collect();
            by_class.push(format!("{total} {} ({})", c.as_str(), outcomes.join(", ")));
        }
        let flows = if by_class.is_empty() {
            String::new()
        } else {
            format!(": {}", by_class.join(", "))
        };
        let loss = self.loss_sources();
        let _ = writeln!(
            s,
            "mtlsniff: {} packets, {} flows{flows}; {}",
            self.packets,
            self.printed(),
            if loss.is_empty() {
                "no loss"
            } else {
                "INPUT LOST"
            }
        );
        if let Some(line) = self.count_line(false) {
            let _ = writeln!(s, "mtlsniff: {line}");
        }
        if !loss.is_empty() {
            let _ = writeln!(
                s,
                "mtlsniff: input lost ({}): some flows may be missing or unknown; exit status 3 \
                 (--stats for every counter)",
                loss.join(", ")
            );
        }
        for line in [
            self.unanswered_line(),
            self.keylog_line(),
            self.skipped_line(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = writeln!(s, "mtlsniff: {line}");
        }
        s
    }

    /// `-c N` stopped the run: where, and why the counts go further.
    fn count_line(&self, full: bool) -> Option<String> {
        let (n, at) = self.count_stop?;
        Some(format!(
            "stopped by -c {n} at packet {at}; the {} packets read ahead of the output were \
             processed, not printed ({})",
            self.packets.saturating_sub(at),
            if full {
                "the counters below count them"
            } else {
                "--stats counts them"
            }
        ))
    }

    /// What made `lost()` true, each with its number, by the name the full
    /// summary and the metrics use.
    pub fn loss_sources(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(k) = self.kernel {
            if k.dropped > 0 {
                out.push(format!("kernel dropped {}", k.dropped));
            }
            if k.if_dropped > 0 {
                out.push(format!("interface dropped {}", k.if_dropped));
            }
        }
        if self.dropped_segments > 0 {
            out.push(format!(
                "{} segments dropped, workers behind",
                self.dropped_segments
            ));
        }
        for (name, v) in &self.counters {
            if *v > 0 && LOSS_COUNTERS.contains(name) {
                out.push(format!("{name}={v}"));
            }
        }
        out
    }

    /// The full summary (`--stats`, `-v`): a few lines, each starting
    /// `mtlsniff: `, only non-zero counters.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "mtlsniff: {} packets read, {} flows reported",
            self.packets,
            self.printed()
        );
        if let Some(line) = self.count_line(true) {
            let _ = writeln!(s, "mtlsniff: {line}");
        }
        let mut flows = Vec::new();
        for (ci, c) in Class::ALL.iter().enumerate() {
            for (oi, o) in Outcome::ALL.iter().enumerate() {
                let n = self
                    .flows
                    .get(ci)
                    .and_then(|r| r.get(oi))
                    .copied()
                    .unwrap_or(0);
                if n > 0 {
                    flows.push(format!("{}/{} {}", c.as_str(), o.as_str(), n));
                }
            }
        }
        if !flows.is_empty() {
            let _ = writeln!(s, "mtlsniff: flows: {}", flows.join(", "));
        }
        if let Some(t) = &self.time_to_verdict_line() {
            let _ = writeln!(s, "mtlsniff: {t}");
        }
        let p = &self.processing;
        if p.count() > 0 {
            let _ = writeln!(
                s,
                "mtlsniff: engine time per segment (1 in {} timed): p50 {} p99 {} p99.9 {} max {}",
                ProcessingTime::SAMPLE_EVERY,
                human_nanos(p.quantile(0.5)),
                human_nanos(p.quantile(0.99)),
                human_nanos(p.quantile(0.999)),
                human_nanos(p.max())
            );
        }
        if let Some(k) = self.kernel.filter(|k| *k != KernelStats::default()) {
            // Drops first: they are the loss. libpcap's received count is
            // not comparable with packets read (on `lo` it counts each
            // packet once each way), so it is named for what it is.
            let _ = writeln!(
                s,
                "mtlsniff: kernel: {} dropped, {} dropped by interface ({} passed the filter, \
                 as libpcap counts them: twice per packet on loopback)",
                k.dropped, k.if_dropped, k.received
            );
        }
        if self.dropped_segments > 0 || self.dropped_ticks > 0 {
            let mut parts = Vec::new();
            if self.dropped_segments > 0 {
                parts.push(format!("{} segments", self.dropped_segments));
            }
            if self.dropped_ticks > 0 {
                parts.push(format!("{} ticks", self.dropped_ticks));
            }
            let _ = writeln!(
                s,
                "mtlsniff: dropped (workers behind, queue full): {}",
                parts.join(", ")
            );
        }
        let mut counters: Vec<String> = self
            .counters
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if self.ports_skipped > 0 {
            counters.push(format!("ports.skipped={}", self.ports_skipped));
        }
        if !counters.is_empty() {
            let _ = writeln!(s, "mtlsniff: counters: {}", counters.join(" "));
        }
        if let Some(u) = self.unanswered_line() {
            let _ = writeln!(s, "mtlsniff: {u}");
        }
        if let Some(k) = self.keylog_line() {
            let _ = writeln!(s, "mtlsniff: {k}");
        }
        if let Some(w) = self.skipped_line() {
            let _ = writeln!(s, "mtlsniff: {w}");
        }
        if let Some(limits) = &self.limits {
            let _ = writeln!(s, "mtlsniff: {limits}");
        }
        if self.lost() {
            let _ = writeln!(
                s,
                "mtlsniff: input lost ({}): some flows may be missing or unknown; exit status 3",
                self.loss_sources().join(", ")
            );
        }
        s
    }

    /// A counter's value, 0 when absent.
    fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(k, _)| *k == name)
            .map_or(0, |(_, v)| *v)
    }

    /// Unanswered SYNs (the client's SYN and nothing back: a scan, a
    /// flood, a dead server) are not decided flows: one line says how many
    /// and how they ended, whatever `-v` printed of them.
    fn unanswered_line(&self) -> Option<String> {
        let n = self.counter("flows.unanswered");
        (n > 0).then(|| {
            format!(
                "unanswered SYNs: {n} ({} evicted, {} expired, {} open at end): counted, \
                 not verdicts (-v prints a line for each)",
                self.counter("flows.unanswered_evicted"),
                self.counter("flows.unanswered_expired"),
                self.counter("flows.unanswered_at_end"),
            )
        })
    }

    /// Key log trouble: flows its secrets did not decrypt, malformed lines.
    fn keylog_line(&self) -> Option<String> {
        let count = |name: &str| {
            self.counters
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(0, |(_, v)| *v)
        };
        let (mismatch, malformed) = (
            count("decrypt.key_mismatch"),
            count("keylog.lines_malformed"),
        );
        (mismatch > 0 || malformed > 0).then(|| {
            format!(
                "key log: {mismatch} flow(s) whose secrets did not decrypt them (a wrong or \
                 corrupted key log? they keep their inferred verdicts), {malformed} malformed line(s)"
            )
        })
    }

    /// The warning that frames were skipped for a header mtlsniff does
    /// not decode, once they are at least `SKIPPED_WARN_PERCENT` of the
    /// frames read: the top values by frames, then the rest. Flows in them
    /// were never seen, so every reason says "not seen".
    fn skipped_line(&self) -> Option<String> {
        let total = self.skipped.total();
        if total == 0
            || total.saturating_mul(100) < self.packets.saturating_mul(SKIPPED_WARN_PERCENT)
        {
            return None;
        }
        let top = self.skipped.top();
        let mut parts: Vec<String> = top
            .iter()
            .take(SKIPPED_NAMED)
            .map(|(what, n)| match what {
                Skipped::EtherType(t) => format!("ethertype 0x{t:04x} {n}"),
                Skipped::Link(l) => format!("link type {} ({}) {n}", link_name(*l), l.0),
            })
            .collect();
        let rest = top
            .iter()
            .skip(SKIPPED_NAMED)
            .fold(self.skipped.other, |t, (_, n)| t.saturating_add(*n));
        if rest > 0 {
            parts.push(format!("other {rest}"));
        }
        Some(format!(
            "warning: {total} of {} frames skipped: a link header or ethertype mtlsniff does not \
             decode ({}); flows inside them are not seen",
            self.packets,
            parts.join(", ")
        ))
    }

    fn time_to_verdict_line(&self) -> Option<String> {
        let t = &self.time_to_verdict;
        (t.count() > 0).then(|| {
            format!(
                "time to verdict (packet time): p50 {} p99 {} p99.9 {} max {}",
                human_micros(t.quantile(0.5)),
                human_micros(t.quantile(0.99)),
                human_micros(t.quantile(0.999)),
                human_micros(t.max())
            )
        })
    }
}

/// Sum `(name, value)` lists that share names, keeping first-seen order.
pub fn merge_entries(into: &mut Vec<(&'static str, u64)>, more: &[(&'static str, u64)]) {
    for &(k, v) in more {
        match into.iter_mut().find(|(name, _)| *name == k) {
            Some((_, total)) => *total += v,
            None => into.push((k, v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::verdict::Basis;

    fn verdict(class: Class, outcome: Outcome, ttv_us: i64) -> Verdict {
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        Verdict {
            class,
            outcome,
            basis: Basis::Observed,
            ..Verdict::new(
                ep(40000),
                ep(443),
                Timestamp(1_000_000),
                Timestamp(1_000_000 + ttv_us),
            )
        }
    }

    #[test]
    fn skipped_headers_warn_in_one_line_naming_the_top_values() {
        let mut s = Summary {
            packets: 1000,
            ..Summary::default()
        };
        s.skipped.add(Skipped::EtherType(0x8909), 400);
        s.skipped
            .add(Skipped::Link(crate::capture::decode::LinkType(9)), 5);
        for t in 0..5u16 {
            s.skipped.add(Skipped::EtherType(0x7000 + t), 1);
        }
        let r = s.render();
        let lines: Vec<&str> = r.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(
            lines,
            [
                "mtlsniff: warning: 410 of 1000 frames skipped: a link header or ethertype \
                 mtlsniff does not decode (ethertype 0x8909 400, link type PPP (9) 5, \
                 ethertype 0x7000 1, ethertype 0x7001 1, other 3); flows inside them are not seen"
            ],
            "{r}"
        );
        // Below 1% of the frames: stray frames, no warning.
        let mut quiet = Summary {
            packets: 1000,
            ..Summary::default()
        };
        quiet.skipped.add(Skipped::EtherType(0x88e5), 9);
        assert!(!quiet.render().contains("warning"), "{}", quiet.render());
        quiet.skipped.add(Skipped::EtherType(0x88e5), 1);
        assert!(
            quiet.render().contains("ethertype 0x88e5 10"),
            "{}",
            quiet.render()
        );
    }

    #[test]
    fn brief_summary_names_the_counter_behind_exit_3() {
        let mut s = Summary {
            packets: 10,
            ..Summary::default()
        };
        s.record(&verdict(Class::Mtls, Outcome::Ok, 1));
        assert_eq!(
            s.render_brief(),
            "mtlsniff: 10 packets, 1 flows: 1 mtls (1 ok); no loss\n"
        );
        merge_entries(
            &mut s.counters,
            &[("flows.table_full", 3), ("stream.gaps", 2)],
        );
        let r = s.render_brief();
        assert!(r.contains("; INPUT LOST\n"), "{r}");
        assert!(r.contains("input lost (flows.table_full=3)"), "{r}");
        assert!(!r.contains("gaps"), "gaps are not loss: {r}");
        // Live reports dropped on a full meter of reports in flight are a
        // loss; a stall (file mode, nothing dropped) is not.
        let mut live = Summary::default();
        merge_entries(
            &mut live.counters,
            &[("reports.stalls", 2), ("reports.dropped", 0)],
        );
        assert!(!live.lost());
        merge_entries(&mut live.counters, &[("reports.dropped", 5)]);
        assert!(live.lost());
        let r = live.render_brief();
        assert!(r.contains("input lost (reports.dropped=5)"), "{r}");
    }

    #[test]
    fn empty_summary_is_one_line() {
        let s = Summary {
            packets: 3,
            ..Summary::default()
        };
        assert_eq!(s.render(), "mtlsniff: 3 packets read, 0 flows reported\n");
    }

    #[test]
    fn summary_shows_only_nonzero_counters() {
        let mut s = Summary {
            packets: 100,
            ..Summary::default()
        };
        s.record(&verdict(Class::Mtls, Outcome::Ok, 1_500));
        s.record(&verdict(Class::Mtls, Outcome::Ok, 2_500));
        s.record(&verdict(Class::Tls, Outcome::Rejected, -5));
        s.kernel = Some(KernelStats {
            received: 100,
            dropped: 2,
            if_dropped: 0,
        });
        s.dropped_segments = 7;
        s.ports_skipped = 4;
        merge_entries(
            &mut s.counters,
            &[("decode.frames", 100), ("decode.not_tcp", 0)],
        );
        merge_entries(&mut s.counters, &[("decode.frames", 1)]);
        let r = s.render();
        assert!(r.contains("100 packets read, 3 flows reported"), "{r}");
        assert!(r.contains("flows: tls/rejected 1, mtls/ok 2"), "{r}");
        assert!(
            r.contains("kernel: 2 dropped, 0 dropped by interface (100 passed"),
            "{r}"
        );
        assert!(
            r.contains("input lost (kernel dropped 2, 7 segments dropped, workers behind)"),
            "{r}"
        );
        let brief = s.render_brief();
        assert_eq!(
            brief,
            "mtlsniff: 100 packets, 3 flows: 1 tls (1 rejected), 2 mtls (2 ok); INPUT LOST\n\
             mtlsniff: input lost (kernel dropped 2, 7 segments dropped, workers behind): some \
             flows may be missing or unknown; exit status 3 (--stats for every counter)\n"
        );
        assert!(
            r.contains("dropped (workers behind, queue full): 7 segments"),
            "{r}"
        );
        assert!(
            r.contains("counters: decode.frames=101 ports.skipped=4"),
            "{r}"
        );
        assert!(!r.contains("not_tcp"), "{r}");
        assert!(
            r.contains("time to verdict (packet time): p50 1.5ms p99 2.5ms p99.9 2.5ms max 2.5ms"),
            "{r}"
        );
        assert!(!r.contains("engine time"), "nothing sampled: {r}");
        for ns in [100, 200, 300, 40_000] {
            s.processing.record(ns);
        }
        let mut other = ProcessingTime::default();
        other.record(2_000_000);
        s.processing.merge(&other);
        let r = s.render();
        assert!(
            r.contains(
                "engine time per segment (1 in 64 timed): p50 300ns p99 2.0ms p99.9 2.0ms max 2.0ms"
            ),
            "{r}"
        );
        assert!(r.lines().all(|l| l.starts_with("mtlsniff: ")), "{r}");
        assert!(!r.contains("key log:"), "{r}");
        merge_entries(&mut s.counters, &[("decrypt.key_mismatch", 2)]);
        let r = s.render();
        assert!(
            r.contains("key log: 2 flow(s) whose secrets did not decrypt them"),
            "{r}"
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_micros(0), "0us");
        assert_eq!(human_micros(999), "999us");
        assert_eq!(human_micros(12_500), "12.5ms");
        assert_eq!(human_micros(3_200_000), "3.20s");
        assert_eq!(human_micros(125_000_000), "2m05s");
        // Issue 16 §2: `p99 1440m36s` read as minutes; hours and days now.
        assert_eq!(human_micros(86_436_000_000), "1d00h");
        assert_eq!(human_micros(11_100_000_000), "3h05m");
    }
}
