//! The progress bar shown while a capture file is read and stderr is a
//! terminal (indicatif): bytes done of the file's size, packets per second,
//! flows reported, ETA.
//!
//! This file owns the bar's look and its update rule. It must not decide
//! when a bar is wanted (the binary does: a regular file, stderr a terminal,
//! no flow lines streaming to that terminal,
//! not `--quiet`) nor count anything: bytes come from the file offset
//! (`InputProbe`), packets from `Gauges`, flows from the output stage.
//! Updates are cheap and rate-limited (`REFRESH`), and the bar is cleared
//! before anything else is written to stderr, so it never mixes with the
//! summary or verify-mode lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::capture::source::InputProbe;
use crate::report::gauges::Gauges;

/// How often the bar is recomputed.
const REFRESH: Duration = Duration::from_millis(100);

pub struct Progress {
    bar: ProgressBar,
    probe: InputProbe,
    gauges: Arc<Gauges>,
    last: Instant,
    started: Instant,
}

impl Progress {
    /// A bar on stderr for a file of `probe.size()` bytes.
    pub fn new(probe: InputProbe, gauges: Arc<Gauges>) -> Progress {
        Progress::with_target(probe, gauges, ProgressDrawTarget::stderr())
    }

    pub fn with_target(
        probe: InputProbe,
        gauges: Arc<Gauges>,
        target: ProgressDrawTarget,
    ) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(probe.size()), target);
        let style = ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let now = Instant::now();
        Progress {
            bar,
            probe,
            gauges,
            last: now - REFRESH,
            started: now,
        }
    }

    /// Bring the bar up to date (at most every `REFRESH`).
    pub fn update(&mut self, flows: u64) {
        let now = Instant::now();
        if now.duration_since(self.last) < REFRESH {
            return;
        }
        self.last = now;
        let packets = self.gauges.snapshot().packets;
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-3);
        self.bar.set_position(self.probe.offset());
        self.bar.set_message(message(packets as f64 / secs, flows));
    }

    /// Run `f` (which writes to stderr) with the bar hidden.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Done: erase the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The bar's message: `12.3k packets/s, 42 flows`.
fn message(pps: f64, flows: u64) -> String {
    let rate = if pps >= 1e6 {
        format!("{:.1}M", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1}k", pps / 1e3)
    } else {
        format!("{pps:.0}")
    };
    format!("{rate} packets/s, {flows} flows")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_scales_the_rate() {
        assert_eq!(message(12.4, 3), "12 packets/s, 3 flows");
        assert_eq!(message(12_345.0, 0), "12.3k packets/s, 0 flows");
        assert_eq!(message(2_500_000.0, 1), "2.5M packets/s, 1 flows");
    }
}
