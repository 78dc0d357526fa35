//! `run_offline`: the binary's file mode in-process, without threads. The
//! one harness tests, fuzz targets and benchmarks drive the pipeline with.
//!
//! It does what the threaded `run` does, with the same parts: `Intake`
//! numbers every frame, ticks, decodes, applies `--ports` and shards (one
//! `Engine` per worker, `Plan::workers` of them, fed in turn); every
//! engine's reports go through the same `OutputStage` (order, session
//! links, calibration) after every frame, with the watermark the worker
//! thread would send; end of input is reported in the same chunks. So its
//! reports, in order, are those `mtlsniff -r` prints for the same `Plan`,
//! whatever the worker count. What to print, `-c` and answers are the
//! caller's business. It must not make threads; an input that cannot be
//! opened is the only `Err`.

use std::path::Path;

use crate::capture::decode::{DecodeCounters, Frame};
use crate::capture::segment::{Segment, Timestamp};
use crate::capture::source::{Capture, CaptureError, Options, Read, Source};
use crate::flow::engine::{Engine, EngineCounters};
use crate::report::calibration::Calibration;
use crate::report::stats::{ProcessingTime, Summary};
use crate::verdict::{Report, ReportOrder, Verdict};

use super::Plan;
use super::capture::{CaptureEnd, Intake};
use super::output::{OutputStage, summarise};
use super::worker::{Call, DONE, doubled_mark, finish_chunk, stamp};

/// What an offline run reads. Frames are numbered from 0 in input order
/// (frames that do not decode count too), as the capture thread numbers
/// them; a segment counts as one frame.
pub enum Input<'a> {
    /// A capture file (or `-` for stdin), opened as `-r` opens it, without
    /// a filter.
    File(&'a Path),
    /// A capture already opened (with a filter, say).
    Capture(Capture),
    /// Frames in memory (hand-made wire bytes).
    Frames(&'a [Frame<'a>]),
    /// Segments already decoded.
    Segments(&'a [Segment]),
}

/// Everything an offline run produced.
#[derive(Debug)]
pub struct OfflineRun {
    /// Every report in print order, verdicts linked to their sessions.
    pub reports: Vec<Report>,
    /// The summary `mtlsniff -r` would print (no processing times).
    pub summary: Summary,
    pub decode: DecodeCounters,
    /// All engines' counters, merged.
    pub engine: EngineCounters,
    /// `Plan::calibrate`: the tally over every verdict.
    pub calibration: Option<Calibration>,
    /// The most bytes one engine held for pending flows after a segment.
    pub peak_buffered: usize,
    /// Reading stopped on this error (a damaged file); what was read is in
    /// the reports.
    pub read_error: Option<CaptureError>,
}

impl OfflineRun {
    /// The verdicts, in print order (closes left out).
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        verdicts_in(&self.reports)
    }

    /// The verdicts, owned, in print order.
    pub fn into_verdicts(self) -> Vec<Verdict> {
        self.reports
            .into_iter()
            .filter_map(Report::into_verdict)
            .collect()
    }
}

fn verdicts_in(reports: &[Report]) -> impl Iterator<Item = &Verdict> {
    reports.iter().filter_map(Report::verdict)
}

/// Run `input` through `plan`'s engines and the output stage, in-process:
/// the reports `mtlsniff -r` would print, in the same order. Err only when
/// a file cannot be opened.
pub fn run_offline(input: Input<'_>, plan: &Plan) -> Result<OfflineRun, CaptureError> {
    let mut run = Offline::new(plan);
    let mut error = None;
    match input {
        Input::File(path) => error = run.capture(open(path)?),
        Input::Capture(capture) => error = run.capture(capture),
        Input::Frames(frames) => frames.iter().for_each(|f| run.frame(f)),
        Input::Segments(segments) => segments.iter().for_each(|s| run.segment(s)),
    }
    Ok(run.finish(plan, error))
}

/// A capture file as `-r` opens it (the options only matter live).
fn open(path: &Path) -> Result<Capture, CaptureError> {
    let options = Options {
        snaplen: 0,
        buffer_bytes: None,
        immediate: false,
        filter: None,
    };
    Capture::open(&Source::File(path.to_path_buf()), &options)
}

/// One offline run in progress.
struct Offline<'p> {
    intake: Intake<'p>,
    engines: Vec<Engine>,
    /// Per engine: reports of the current frame.
    out: Vec<Vec<Report>>,
    stage: OutputStage,
    reports: Vec<Report>,
    peak_buffered: usize,
}

impl<'p> Offline<'p> {
    fn new(plan: &'p Plan) -> Self {
        let workers = plan.workers.max(1);
        Offline {
            intake: Intake::new(workers, plan.ports.as_ref(), plan.options.keylog.as_deref()),
            engines: (0..workers)
                .map(|_| Engine::new(plan.limits.clone(), plan.options.clone()))
                .collect(),
            out: vec![Vec::new(); workers],
            // Orders doubled as the workers send them (worker.rs), so a
            // tick's reports sort as they do in a threaded run.
            stage: OutputStage::new(workers, true, plan.calibrate),
            reports: Vec::new(),
            peak_buffered: 0,
        }
    }

    /// Read a capture to its end or its first error.
    fn capture(&mut self, mut capture: Capture) -> Option<CaptureError> {
        loop {
            match capture.read_next() {
                Ok(Read::Frame(frame)) => self.frame(&frame),
                // In-process runs are deterministic: no wall-clock ticks.
                Ok(Read::Drained | Read::Timeout | Read::Quiet(_)) => {}
                Ok(Read::Secrets(text)) => self.intake.secrets(text),
                Ok(Read::End) => return None,
                Err(e) => return Some(e),
            }
        }
    }

    /// One frame, as the capture thread deals with it, then its reports.
    fn frame(&mut self, frame: &Frame<'_>) {
        self.tick(frame.ts);
        match self.intake.decode(frame) {
            Some(seg) => self.dispatch(seg),
            None => self.intake.advance(),
        }
        self.deliver();
    }

    /// A segment decoded already: one frame.
    fn segment(&mut self, seg: &Segment) {
        self.tick(seg.ts);
        self.dispatch(seg.as_view());
        self.deliver();
    }

    /// The tick due before the next frame, to every engine.
    fn tick(&mut self, ts: Timestamp) {
        if let Some((index, now)) = self.intake.tick(ts) {
            for (engine, out) in self.engines.iter_mut().zip(&mut self.out) {
                engine.on_tick(now, index, out);
                stamp(out, Call::Clock);
            }
            self.intake.poll_keylog();
        }
    }

    /// The next frame's segment, to the engine that owns its flow.
    fn dispatch(&mut self, seg: Segment<&[u8]>) {
        let index = self.intake.index;
        if let Some(w) = self.intake.shard(&seg)
            && let (Some(engine), Some(out)) = (self.engines.get_mut(w), self.out.get_mut(w))
        {
            let start = out.len();
            engine.on_segment(seg, index, out);
            stamp(out.get_mut(start..).unwrap_or_default(), Call::Segment);
            self.peak_buffered = self.peak_buffered.max(engine.buffered_bytes());
        }
        self.intake.advance();
    }

    /// After a frame: every engine is past it (the watermark a worker
    /// sends after a batch ending with it).
    fn deliver(&mut self) {
        let watermark = doubled_mark(
            ReportOrder {
                trigger: self.intake.index,
                flow: 0,
            },
            Call::Clock,
        );
        for (w, out) in self.out.iter_mut().enumerate() {
            self.stage
                .receive(w, std::mem::take(out), watermark, &mut self.reports);
        }
    }

    /// End of input, every engine a chunk at a time in turn (as the
    /// workers' messages interleave), then the summary.
    fn finish(mut self, plan: &Plan, error: Option<CaptureError>) -> OfflineRun {
        let index = self.intake.index;
        let mut open: Vec<usize> = (0..self.engines.len()).collect();
        while !open.is_empty() {
            open.retain(|&w| {
                let (Some(engine), Some(out)) = (self.engines.get_mut(w), self.out.get_mut(w))
                else {
                    return false;
                };
                let watermark = doubled_mark(finish_chunk(engine, index, out), Call::Clock);
                stamp(out, Call::Clock);
                self.stage
                    .receive(w, std::mem::take(out), watermark, &mut self.reports);
                watermark != DONE
            });
        }
        self.stage.drain(&mut self.reports);
        let mut engine = EngineCounters::default();
        for e in &self.engines {
            engine.merge(e.counters());
        }
        // As the binary's sink counts every verdict it prints.
        let mut summary = Summary::default();
        verdicts_in(&self.reports).for_each(|v| summary.record(v));
        let end = CaptureEnd {
            packets: index,
            decode: self.intake.decode.clone(),
            ports_skipped: self.intake.ports_skipped,
            dropped_segments: 0,
            dropped_ticks: 0,
            kernel: None,
            error: None,
        };
        let stage = &self.stage;
        let summary = summarise(
            summary,
            &end,
            &engine,
            ProcessingTime::default(),
            stage,
            0,
            plan,
        );
        OfflineRun {
            reports: self.reports,
            summary,
            decode: end.decode,
            engine,
            calibration: self.stage.calibration(),
            peak_buffered: self.peak_buffered,
            read_error: error,
        }
    }
}
