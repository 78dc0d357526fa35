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
        // `wide_bar` takes what the terminal's width leaves: the line never
        // wraps (a fixed 30-cell bar wrapped at 80 columns, issue 16 §2).
        let style =
            ProgressStyle::with_template("{wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}")
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
    fn the_bar_fits_the_terminal_width() {
        use indicatif::{InMemoryTerm, TermLike};
        for cols in [60u16, 80, 120] {
            let term = InMemoryTerm::new(4, cols);
            let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.pcap");
            let source = crate::capture::source::Source::File(demo);
            let capture = crate::capture::source::Capture::open(
                &source,
                &crate::capture::source::Options {
                    snaplen: 65_535,
                    buffer_bytes: None,
                    immediate: false,
                    filter: None,
                },
            )
            .unwrap();
            let probe = capture.input_probe().unwrap();
            let gauges = Arc::new(Gauges::default());
            let mut p = Progress::with_target(
                probe,
                gauges,
                ProgressDrawTarget::term_like(Box::new(term.clone())),
            );
            p.last = Instant::now() - REFRESH;
            p.update(123_456);
            p.bar.tick();
            let screen = term.contents();
            let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "{cols} columns: the bar wrapped:\n{screen}");
            assert!(lines[0].contains("123456 flows"), "{screen}");
            assert!(
                lines[0].chars().count() <= usize::from(term.width()),
                "{screen}"
            );
        }
    }

    #[test]
    fn message_scales_the_rate() {
        assert_eq!(message(12.4, 3), "12 packets/s, 3 flows");
        assert_eq!(message(12_345.0, 0), "12.3k packets/s, 0 flows");
        assert_eq!(message(2_500_000.0, 1), "2.5M packets/s, 1 flows");
    }
}
