//! Shared by the integration tests: captures and segments through
//! `pipeline::run_offline`, the in-process run of the binary's file mode
//! (numbering, ticks, engines, order, session links), and fixture tables.

#![allow(dead_code)]

use std::path::Path;

use mtlsniff::capture::segment::Segment;
use mtlsniff::flow::engine::{EngineCounters, Limits, Options};
use mtlsniff::pipeline::{Input, OfflineRun, Plan, run_offline};
use mtlsniff::verdict::Verdict;

/// Every TCP segment of a capture, in file order. Reading stops at the end
/// of the file or at a damaged record.
pub fn segments(path: &Path) -> Vec<Segment> {
    match mtlsniff::capture::source::file_segments(path) {
        Ok((segments, _)) => segments,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    }
}

/// One offline run (one engine with `limits`) over `input`.
pub fn offline(input: Input<'_>, limits: Limits) -> OfflineRun {
    offline_with(input, limits, Options::default())
}

/// One offline run (one engine with `limits` and `options`) over `input`.
pub fn offline_with(input: Input<'_>, limits: Limits, options: Options) -> OfflineRun {
    run_offline(input, &Plan::with_limits(limits, options)).unwrap_or_else(|e| panic!("{e}"))
}

/// Verdicts for a list of segments, in print order.
pub fn verdicts_of(segs: &[Segment], limits: Limits) -> Vec<Verdict> {
    offline(Input::Segments(segs), limits).into_verdicts()
}

/// Verdicts for a list of segments in print order, and the engine's
/// counters.
pub fn run_engine(segs: &[Segment], limits: Limits) -> (Vec<Verdict>, EngineCounters) {
    run_engine_with(segs, limits, Options::default())
}

/// `run_engine` with run options (a key log, closes, previews).
pub fn run_engine_with(
    segs: &[Segment],
    limits: Limits,
    options: Options,
) -> (Vec<Verdict>, EngineCounters) {
    let run = offline_with(Input::Segments(segs), limits, options);
    let engine = run.engine.clone();
    (run.into_verdicts(), engine)
}

/// Verdicts for a capture with default limits, as `mtlsniff -r` prints them.
pub fn verdicts(path: &Path) -> Vec<Verdict> {
    offline(Input::File(path), Limits::default()).into_verdicts()
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

/// Peak RSS in KiB (the kernel's VmHWM at exit, from `wait4`) and exit code of a child run to completion, stdout and
/// stderr collected.
pub fn run_measured(mut cmd: std::process::Command) -> (i64, Option<i32>, String, String) {
    // Reaped by wait4 below (std's wait would not give the rusage).
    #[allow(clippy::zombie_processes)]
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mtlsniff");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 on our own child's pid with valid out-parameters; the
    // std handle is not waited on afterwards.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (
        ru.ru_maxrss,
        code,
        out_t.join().unwrap_or_default(),
        err_t.join().unwrap_or_default(),
    )
}
