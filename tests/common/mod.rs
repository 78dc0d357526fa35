//! Shared by the integration tests: run a capture through decode and one
//! engine in-process, the same path the binary's workers take.

#![allow(dead_code)]

use std::path::Path;

use mtlsniff::capture::segment::Segment;
use mtlsniff::flow::engine::{Engine, EngineCounters, Limits, Options};
use mtlsniff::report::resumption::SessionMemory;
use mtlsniff::verdict::Verdict;

/// Every TCP segment of a capture, in file order. Reading stops at the end
/// of the file or at a damaged record.
pub fn segments(path: &Path) -> Vec<Segment> {
    match mtlsniff::capture::source::file_segments(path) {
        Ok((segments, _)) => segments,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    }
}

/// Verdicts for a list of segments, in report order.
pub fn verdicts_of(segs: &[Segment], limits: Limits) -> Vec<Verdict> {
    run_engine(segs, limits).0
}

/// One engine over a list of segments: verdicts in report order, and the
/// engine's counters.
pub fn run_engine(segs: &[Segment], limits: Limits) -> (Vec<Verdict>, EngineCounters) {
    run_engine_with(segs, limits, Options::default())
}

/// `run_engine` with run options (a key log, closes, previews).
pub fn run_engine_with(
    segs: &[Segment],
    limits: Limits,
    options: Options,
) -> (Vec<Verdict>, EngineCounters) {
    let mut engine = Engine::new(limits, options);
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        engine.on_segment(s.clone(), i as u64, &mut out);
    }
    engine.finish(segs.len() as u64, &mut out);
    out.sort_by_key(|r| r.order);
    // As the binary's output stage does: resumptions inherit the verdict of
    // the full handshake that created their session.
    let mut sessions = SessionMemory::default();
    let verdicts = out
        .into_iter()
        .filter_map(|r| r.into_verdict())
        .map(|mut v| {
            sessions.link(&mut v);
            v
        })
        .collect();
    (verdicts, engine.counters().clone())
}

/// Verdicts for a capture with default limits.
pub fn verdicts(path: &Path) -> Vec<Verdict> {
    verdicts_of(&segments(path), Limits::default())
}

/// Rows of a tab-separated file with a header, as column-name maps.
pub fn tsv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}
