//! The threaded run: the only place that makes the pipeline's threads and
//! channels (crossbeam). One capture thread (`capture::capture_loop`), N
//! workers (`worker::worker_loop`), and the output stage on the calling
//! thread (it owns the `Printer`); or, live with an AF_PACKET fanout group,
//! one member thread per socket (`fanout::Member`) instead of the capture
//! thread and workers; or, with `--threads N` (N >= 2) on a mapped file
//! without a filter, N walker threads (`walk::Walker`), each walking the
//! whole file and judging its shard (`walk_mode` decides). Everything each thread does is in those
//! modules and in `output`; this file only wires them and collects what
//! they hand back. With `--k8s` it also makes the pods watch's thread
//! (`start_watch`), which outlives the pipeline.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::capture::fanout::Group;
use crate::capture::source::Capture;
use crate::flow::engine::EngineCounters;
use crate::report::answers::Answers;
use crate::report::gauges::Gauges;
use crate::report::output::Printer;
use crate::report::stats::ProcessingTime;
use crate::workload::{Directory, Shared, watch};

use super::batch::{Batch, FromWorker, RECYCLED_PER_WORKER, ToWorker};
use super::capture::{CaptureEnd, Dispatcher, Intake, capture_loop};
use super::fanout::{Member, Totals, merge_ends};
use super::inflight::{InFlight, WhenFull};
use super::output::{OutputStage, summarise};
use super::printing::Printing;
use super::walk::{Frames, Walker};
use super::worker::{Ends, Outbox, worker_loop};
use super::{Plan, RunError, RunOutcome};

/// Run the pipeline over an opened capture until the input ends, `stop`
/// is set (signal), `-c` is reached or stdout closes. `answers` sees every
/// report in print order and publishes through its `Gauges`.
pub fn run<W: Write>(
    capture: Capture,
    plan: &Plan,
    printer: &mut Printer<W>,
    answers: &mut Answers,
    stop: &AtomicBool,
) -> Result<RunOutcome, RunError> {
    let n = plan.workers;
    let (input, mode) = if n < 2 || capture.mapping().is_none() {
        (Input::Capture(capture), None)
    } else if capture.walk_again().is_none() {
        // A compiled filter cannot be shared between threads.
        let why = "walk mode declined: a capture filter is given";
        (Input::Capture(capture), Some(why.to_string()))
    } else {
        match walkers(capture, n) {
            Ok(frames) => {
                let mode = format!("walk mode: {n} walkers, each reading the whole file");
                (Input::Walk(frames), Some(mode))
            }
            Err(capture) => (Input::Capture(*capture), None),
        }
    };
    let mut outcome = run_input(input, plan, printer, answers, stop)?;
    // --stats says how a mapped file was read with several threads.
    if let (Some(mode), Some(limits)) = (mode, outcome.summary.limits.as_mut()) {
        limits.push_str("; ");
        limits.push_str(&mode);
    }
    Ok(outcome)
}

/// Walker 0 takes the capture's own walk; the others walk the same
/// mapping again. The capture back when it is not a walk of that kind.
fn walkers(capture: Capture, n: usize) -> Result<Vec<Frames>, Box<Capture>> {
    let others: Vec<Frames> = (1..n)
        .filter_map(|_| capture.walk_again())
        .map(|(records, link)| Frames { records, link })
        .collect();
    let (records, link) = capture.into_walk()?;
    Ok(std::iter::once(Frames { records, link })
        .chain(others)
        .collect())
}

/// `run` over a fanout group: one thread per member, each capturing and
/// judging its share; `plan.workers` engines' worth of memory is split
/// among the members as among workers.
pub fn run_fanout<W: Write>(
    group: Group,
    plan: &Plan,
    printer: &mut Printer<W>,
    answers: &mut Answers,
    stop: &AtomicBool,
) -> Result<RunOutcome, RunError> {
    run_input(Input::Fanout(group), plan, printer, answers, stop)
}

/// Where the run's packets come from.
enum Input {
    Capture(Capture),
    Fanout(Group),
    /// Walk mode: one walk of the mapped file per walker.
    Walk(Vec<Frames>),
}

fn run_input<W: Write>(
    input: Input,
    plan: &Plan,
    printer: &mut Printer<W>,
    answers: &mut Answers,
    stop: &AtomicBool,
) -> Result<RunOutcome, RunError> {
    let gauges = answers.gauges();
    let (workers, ordered) = match &input {
        Input::Capture(c) => (plan.workers.max(1), !c.is_live()),
        Input::Fanout(g) => (g.members.len().max(1), false),
        Input::Walk(w) => (w.len(), true),
    };
    // Reports in flight: a file waits for the output stage, live input
    // drops what does not fit (counted, a loss).
    let when_full = if ordered {
        WhenFull::Wait
    } else {
        WhenFull::Drop
    };
    let meters = Arc::new(InFlight::new(workers, plan.reports, when_full));
    let mut stage = OutputStage::new(workers, ordered, plan.calibrate).metered(Arc::clone(&meters));
    let mut sink = Printing::new(printer, answers, plan, stop);
    let totals = Totals::default();
    let threads = std::thread::scope(|s| {
        let running = match input {
            Input::Capture(capture) => start(s, capture, plan, (&gauges, &meters), stop),
            Input::Fanout(group) => Some(start_members(
                s,
                group,
                plan,
                (&gauges, &meters),
                stop,
                &totals,
            )),
            Input::Walk(frames) => Some(start_walkers(s, frames, plan, (&gauges, &meters), stop)),
        };
        let Some(running) = running else {
            return Threads::default();
        };
        let mut threads = Threads::default();
        threads.output(&running.out_rx, &mut stage, &mut sink);
        threads.join(running);
        threads
    });
    sink.flush();
    if let Some(e) = sink.error {
        return Err(RunError::Output(e));
    }
    let Some(end) = threads.end else {
        return Err(RunError::Internal(
            "a pipeline thread could not start or panicked",
        ));
    };
    if threads.panicked {
        return Err(RunError::Internal("a worker thread panicked"));
    }
    let forgotten = sink.answers.close_ids_forgotten();
    let summary = summarise(
        sink.summary,
        &end,
        &threads.engine,
        threads.processing,
        &stage,
        forgotten,
        plan,
    );
    // Everything is counted and printed: the gauges are final.
    gauges.finish();
    Ok(RunOutcome {
        summary,
        stdout_closed: sink.stdout_closed,
        read_error: end.error,
        calibration: stage.calibration(),
    })
}

/// The running threads, as the output stage sees them.
struct Running<'scope> {
    out_rx: Receiver<FromWorker>,
    workers: Vec<ScopedJoinHandle<'scope, ()>>,
    /// The capture thread, or every fanout member.
    captures: Vec<std::io::Result<ScopedJoinHandle<'scope, CaptureEnd>>>,
}

/// What the threads handed back.
#[derive(Default)]
struct Threads {
    /// None: the capture thread did not start, panicked, or a worker could
    /// not start.
    end: Option<CaptureEnd>,
    panicked: bool,
    engine: EngineCounters,
    processing: ProcessingTime,
}

impl Threads {
    /// The output stage's loop on the calling thread, until every worker
    /// is done: reports to the stage and the sink, final counters here.
    fn output<W: Write>(
        &mut self,
        out_rx: &Receiver<FromWorker>,
        stage: &mut OutputStage,
        sink: &mut Printing<'_, W>,
    ) {
        for msg in out_rx.iter() {
            match msg {
                FromWorker::Reports {
                    worker,
                    reports,
                    watermark,
                } => {
                    stage.receive(worker, reports, watermark, sink);
                    sink.wake();
                }
                FromWorker::Done {
                    counters,
                    processing,
                } => {
                    self.engine.merge(&counters);
                    self.processing.merge(&processing);
                }
            }
        }
        stage.drain(sink);
    }

    fn join(&mut self, running: Running<'_>) {
        for h in running.workers {
            self.panicked |= h.join().is_err();
        }
        let n = running.captures.len();
        let ends: Vec<CaptureEnd> = running
            .captures
            .into_iter()
            .filter_map(|c| c.ok().and_then(|h| h.join().ok()))
            .collect();
        self.end = if ends.len() == n {
            merge_ends(ends)
        } else {
            None
        };
        self.panicked |= self.end.is_none();
    }
}

/// Start the workers and the capture thread. None when a worker could not
/// start (too few threads): the run fails as internal.
fn start<'scope>(
    s: &'scope Scope<'scope, '_>,
    capture: Capture,
    plan: &'scope Plan,
    (gauges, meters): (&'scope Gauges, &'scope InFlight),
    stop: &'scope AtomicBool,
) -> Option<Running<'scope>> {
    let workers = plan.workers.max(1);
    let (out_tx, out_rx) = bounded::<FromWorker>(workers * 4 + 16);
    // Emptied batches return to the capture thread through this; a few per
    // worker are enough to stop allocating in steady state.
    let (recycle_tx, recycle_rx) = bounded::<Batch>(workers * RECYCLED_PER_WORKER);
    let mut to_workers: Vec<Sender<ToWorker>> = Vec::with_capacity(workers);
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, rx) = bounded::<ToWorker>(plan.queue_batches.max(1));
        to_workers.push(tx);
        let (tx, recycle) = (out_tx.clone(), recycle_tx.clone());
        let h = std::thread::Builder::new()
            .name(format!("mtlsniff-worker-{i}"))
            .spawn_scoped(s, move || {
                let ends = Ends {
                    rx,
                    out: Outbox { tx, meters },
                    recycle,
                    gauges,
                };
                worker_loop(i, plan, ends)
            });
        // Too few threads: dropping the senders ends the workers started.
        handles.push(h.ok()?);
    }
    let disp = Dispatcher::new(to_workers, recycle_rx, capture.is_live(), capture.mapping());
    let keylog = plan.options.keylog.as_deref();
    let intake = Intake::new(workers, plan.ports.as_ref(), keylog);
    let capture = std::thread::Builder::new()
        .name("mtlsniff-capture".into())
        .spawn_scoped(s, move || capture_loop(capture, disp, intake, stop, gauges));
    Some(Running {
        out_rx,
        workers: handles,
        captures: vec![capture],
    })
}

/// Start one thread per fanout member.
fn start_members<'scope>(
    s: &'scope Scope<'scope, '_>,
    group: Group,
    plan: &'scope Plan,
    (gauges, meters): (&'scope Gauges, &'scope InFlight),
    stop: &'scope AtomicBool,
    totals: &'scope Totals,
) -> Running<'scope> {
    let n = group.members.len();
    let (out_tx, out_rx) = bounded::<FromWorker>(n * 4 + 16);
    let since = group.since;
    let captures = group
        .members
        .into_iter()
        .enumerate()
        .map(|(index, capture)| {
            let member = Member {
                index,
                since,
                plan,
                out: Outbox {
                    tx: out_tx.clone(),
                    meters,
                },
                stop,
                totals,
                gauges,
            };
            std::thread::Builder::new()
                .name(format!("mtlsniff-member-{index}"))
                .spawn_scoped(s, move || member.run(capture))
        })
        .collect();
    Running {
        out_rx,
        workers: Vec::new(),
        captures,
    }
}

/// Start one thread per walker.
fn start_walkers<'scope>(
    s: &'scope Scope<'scope, '_>,
    frames: Vec<Frames>,
    plan: &'scope Plan,
    (gauges, meters): (&'scope Gauges, &'scope InFlight),
    stop: &'scope AtomicBool,
) -> Running<'scope> {
    let n = frames.len();
    let (out_tx, out_rx) = bounded::<FromWorker>(n * 4 + 16);
    let captures = frames
        .into_iter()
        .enumerate()
        .map(|(index, frames)| {
            let walker = Walker {
                index,
                shards: n,
                plan,
                out: Outbox {
                    tx: out_tx.clone(),
                    meters,
                },
                stop,
                gauges,
            };
            std::thread::Builder::new()
                .name(format!("mtlsniff-walker-{index}"))
                .spawn_scoped(s, move || walker.run(frames))
        })
        .collect();
    Running {
        out_rx,
        workers: Vec::new(),
        captures,
    }
}

/// `--k8s`: start the pods watch on its own thread (its tokio runtime is
/// made there, so runs without `--k8s` have none) over a directory of at
/// most `budget` bytes, and wait at most `wait` for its first list. The
/// thread lives until the process ends. Err: one line saying what to do.
pub fn start_watch(budget: usize, wait: Duration) -> Result<Shared, String> {
    let dir = Shared::new(Directory::new(budget));
    let (ready_tx, ready_rx) = sync_channel(1);
    let feed = dir.clone();
    std::thread::Builder::new()
        .name("mtlsniff-k8s".into())
        .spawn(move || watch::serve(feed, ready_tx))
        .map_err(|e| format!("--k8s: cannot start the pods watch thread: {e}"))?;
    match ready_rx.recv_timeout(wait) {
        Ok(Ok(())) => Ok(dir),
        Ok(Err(e)) => Err(e.to_string()),
        Err(RecvTimeoutError::Timeout) => Err(format!(
            "--k8s: the Kubernetes API did not list the pods within {} s: check that the \
             cluster is reachable and answering, or give a pods list with --k8s-pods FILE",
            wait.as_secs()
        )),
        Err(RecvTimeoutError::Disconnected) => {
            Err("--k8s: the pods watch ended before listing the pods".to_string())
        }
    }
}
