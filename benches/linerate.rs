//! Offline line-rate benchmark: `cargo bench --bench linerate`.
//!
//! Generates (and caches under target/bench/) large pcaps from the fixtures'
//! real handshakes, then, on each file read from the page cache, times side
//! by side: mtlsniff (`--threads 1`, `--threads 2`, as child processes), the
//! libpcap read floor (a loop that only reads packets with the `pcap`
//! crate), tcpdump and tshark when installed. Also: verdict accuracy against
//! the generated labels, bytes per tracked flow before and after its
//! verdict, peak memory under a SYN flood, and per-packet processing time
//! percentiles. The report is printed and written to target/bench/report.md.
//!
//! Scale: `MTLSNIFF_BENCH_SCALE=small` (about 1/20) or `full` (default), or
//! `--scale small`. `MTLSNIFF_BENCH_REPEAT=N` times each tool N times and
//! keeps the fastest run. `MTLSNIFF_BENCH_TSHARK=0` leaves tshark out;
//! `MTLSNIFF_BENCH_FLOOD=0` leaves out the flood-with-expiry table.

// `gen` is a reserved keyword in edition 2024: the module keeps its path.
#[path = "gen/mod.rs"]
mod synth;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use hdrhistogram::Histogram;
use mtlsniff::capture::decode::{self, DecodeCounters, Frame, LinkType};
use mtlsniff::capture::segment::{Endpoint, Segment, Timestamp};
use mtlsniff::flow::engine::{Engine, Limits, Options};
use mtlsniff::pipeline::TickClock;

const MTLSNIFF: &str = env!("CARGO_BIN_EXE_mtlsniff");
const CHILD_ENV: &str = "MTLSNIFF_BENCH_CHILD";

// ---------------------------------------------------------------- scale

#[derive(Debug, Clone)]
struct Scale {
    name: String,
    mixed_flows: u64,
    tiny_flows: u64,
    syn_flood: u64,
    syn_real: u64,
    /// Issue 13's flood: SYNs at 200k/s and the real flows running past
    /// the SYN-only timeout.
    expiry_syns: u64,
    expiry_real: u64,
    mem_flows: usize,
    repeat: usize,
}

impl Scale {
    fn from_env() -> Scale {
        let mut name = std::env::var("MTLSNIFF_BENCH_SCALE").unwrap_or_else(|_| "full".into());
        let args: Vec<String> = std::env::args().collect();
        if let Some(i) = args.iter().position(|a| a == "--scale")
            && let Some(v) = args.get(i + 1)
        {
            name = v.clone();
        }
        let f = match name.as_str() {
            "full" => 1.0,
            "small" => 0.05,
            other => other.parse::<f64>().unwrap_or_else(|_| {
                eprintln!("MTLSNIFF_BENCH_SCALE: full, small or a fraction (got {other})");
                std::process::exit(2)
            }),
        };
        let n = |x: f64| ((x * f) as u64).max(1);
        let repeat = std::env::var("MTLSNIFF_BENCH_REPEAT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if f < 0.5 { 3 } else { 1 });
        Scale {
            name,
            mixed_flows: n(200_000.0),
            tiny_flows: n(4_000.0),
            syn_flood: n(2_000_000.0),
            syn_real: n(500.0).max(10),
            expiry_syns: n(2_000_000.0),
            expiry_real: n(3_312.0).max(10),
            mem_flows: n(200_000.0).max(1_000) as usize,
            repeat,
        }
    }
}

// ---------------------------------------------------------------- children

/// Max RSS (KiB) and wall time of one child process, reaped with wait4.
#[derive(Debug, Clone, Default)]
struct Run {
    secs: f64,
    maxrss_kib: i64,
    ok: bool,
    stdout_lines: u64,
    stdout: Vec<u8>,
    stderr: String,
}

/// The last stderr line of a `measure` child: the tool's ru_maxrss.
const MAXRSS_TAG: &str = "linerate-child-maxrss-kib=";

/// `cmd` run by a small helper (this binary in `measure` mode) that reports
/// its peak RSS. Measured from here, a child's ru_maxrss would count this
/// process's pages: std spawns with vfork (CLONE_VM), and the kernel keeps
/// the pre-exec high-water mark in the child's maxrss, so a child smaller
/// than the generator that spawned it read as large as the generator.
fn measured(cmd: &Command) -> Command {
    let argv: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut m = Command::new(std::env::current_exe().expect("current_exe"));
    for (k, v) in cmd.get_envs() {
        match (k.to_str(), v) {
            (Some(CHILD_ENV), Some(v)) => m.env("MTLSNIFF_BENCH_INNER", v),
            (_, Some(v)) => m.env(k, v),
            (_, None) => m.env_remove(k),
        };
    }
    m.env("MTLSNIFF_BENCH_ARGV", argv.join("\x1f"));
    m.env(CHILD_ENV, "measure");
    m
}

/// Child: run the command in MTLSNIFF_BENCH_ARGV on this process's stdio,
/// print its ru_maxrss last on stderr, exit with its status.
fn child_measure() {
    let argv = std::env::var("MTLSNIFF_BENCH_ARGV").expect("argv");
    let mut words = argv.split('\x1f');
    let mut c = Command::new(words.next().expect("program"));
    c.args(words).env_remove(CHILD_ENV);
    if let Ok(inner) = std::env::var("MTLSNIFF_BENCH_INNER") {
        c.env(CHILD_ENV, inner);
    }
    let child = c.spawn().expect("spawn");
    let mut status = 0i32;
    // SAFETY: wait4 on our own child's pid with valid out-parameters.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    eprintln!("\n{MAXRSS_TAG}{}", ru.ru_maxrss);
    let ok = r == pid && libc::WIFEXITED(status);
    std::process::exit(if ok { libc::WEXITSTATUS(status) } else { 1 });
}

/// Runs `cmd` (through `measured`); stdout is counted (or kept whole with
/// `keep`), stderr kept.
fn run(cmd: &mut Command, keep: bool) -> Run {
    let cmd = &mut measured(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Run {
                stderr: format!("spawn failed: {e}"),
                ..Run::default()
            };
        }
    };
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut lines = 0u64;
        let mut kept = Vec::new();
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                    if keep {
                        kept.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
        (lines, kept)
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let mut status = 0i32;
    // SAFETY: plain FFI call on our own child's pid; `ru` is a valid
    // out-parameter.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let secs = t0.elapsed().as_secs_f64();
    let (stdout_lines, stdout) = out_t.join().unwrap_or_default();
    let mut stderr = err_t.join().unwrap_or_default();
    let ok = r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // The tool's own peak, from the helper's last line (not `ru`: the
    // helper's, see `measured`).
    let maxrss_kib = stderr
        .rfind(MAXRSS_TAG)
        .and_then(|i| {
            let v = stderr[i + MAXRSS_TAG.len()..].trim().parse().ok();
            stderr.truncate(i);
            v
        })
        .unwrap_or(ru.ru_maxrss);
    Run {
        secs,
        maxrss_kib,
        ok,
        stdout_lines,
        stdout,
        stderr,
    }
}

/// Fastest of `n` runs (its own max RSS).
fn best_of(n: usize, mut f: impl FnMut() -> Run) -> Run {
    let mut best: Option<Run> = None;
    for _ in 0..n.max(1) {
        let r = f();
        if !r.ok {
            return r;
        }
        if best.as_ref().is_none_or(|b| r.secs < b.secs) {
            best = Some(r);
        }
    }
    best.unwrap_or_default()
}

fn self_cmd(mode: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current_exe"));
    c.env(CHILD_ENV, mode);
    c
}

/// Child: the libpcap read floor. Reads every packet, counts packets and
/// captured bytes, nothing else.
fn child_floor(path: &str) {
    let mut cap = pcap::Capture::from_file(path).expect("open pcap");
    let (mut packets, mut bytes) = (0u64, 0u64);
    while let Ok(p) = cap.next_packet() {
        packets += 1;
        bytes += p.data.len() as u64;
    }
    println!("{packets} {bytes}");
}

fn vm_rss_kib() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Child: bytes per tracked flow. Feeds one engine `n` copies (fresh
/// addresses) of a fixture flow, cut just before its verdict ("pending") or
/// just after it ("done", no FIN: the flow stays tracked), and prints the
/// VmRSS growth divided by `n`.
fn child_mem(fixture: &str, state: &str, n: usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let segs = synth::read_segments(&dir.join(fixture));
    let mut scratch = Engine::new(Limits::default(), Options::default());
    let mut out = Vec::new();
    let mut at = None;
    for (i, s) in segs.iter().enumerate() {
        scratch.on_segment(s.clone(), i as u64, &mut out);
        if !out.is_empty() {
            at = Some(i);
            break;
        }
    }
    let at = at.expect("the fixture flow has a verdict");
    let cut = match state {
        "done" => at + 1,
        "syn" => 1,
        _ => at,
    };
    let prefix: Vec<Segment> = segs[..cut].to_vec();
    drop(scratch);
    let client = segs[0].src;
    let mut engine = Engine::new(Limits::default(), Options::default());
    let mut out = Vec::with_capacity(16);
    let before = vm_rss_kib();
    let mut idx = 0u64;
    for k in 0..n as u32 {
        let c = Endpoint {
            ip: std::net::IpAddr::V4((0x0A00_0000 | k).into()),
            port: 10_000 + (k % 50_000) as u16,
        };
        let s = Endpoint {
            ip: std::net::IpAddr::V4((0xAC10_0000 | (k % 1000)).into()),
            port: 443,
        };
        for seg in &prefix {
            let mut seg = seg.clone();
            if seg.src == client {
                (seg.src, seg.dst) = (c, s);
            } else {
                (seg.src, seg.dst) = (s, c);
            }
            engine.on_segment(seg, idx, &mut out);
            idx += 1;
        }
        out.clear();
    }
    let after = vm_rss_kib();
    let flows = engine.flow_count();
    println!(
        "{} {} {}",
        (after - before) as f64 * 1024.0 / n as f64,
        flows,
        prefix.len()
    );
}

// ---------------------------------------------------------------- measurements

struct Row {
    tool: String,
    run: Run,
    packets: u64,
    file_bytes: u64,
}

impl Row {
    fn pps(&self) -> f64 {
        self.packets as f64 / self.run.secs
    }
    fn mbps(&self) -> f64 {
        self.file_bytes as f64 / 1e6 / self.run.secs
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn warm(path: &Path) {
    let mut f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).is_ok_and(|n| n > 0) {}
}

/// mtlsniff's `--threads` default for `-r FILE`: one per core (walk mode).
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1)
}

struct Tools {
    tcpdump: bool,
    tshark: bool,
}

/// Every tool on one file.
fn measure(g: &synth::Generated, tools: &Tools, repeat: usize, extra_default: bool) -> Vec<Row> {
    let f = g.pcap.to_str().expect("utf-8 path").to_string();
    warm(&g.pcap);
    let row = |tool: &str, run: Run| {
        if !run.ok {
            eprintln!(
                "linerate: {tool} failed on {f}: {}",
                run.stderr.lines().last().unwrap_or("")
            );
        }
        Row {
            tool: tool.to_string(),
            run,
            packets: g.stats.packets,
            file_bytes: g.stats.file_bytes,
        }
    };
    let mut rows = Vec::new();
    eprintln!("linerate:   libpcap floor");
    let floor = best_of(repeat, || {
        run(self_cmd("floor").env("MTLSNIFF_BENCH_FILE", &f), true)
    });
    if floor.ok {
        let got: u64 = String::from_utf8_lossy(&floor.stdout)
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert_eq!(got, g.stats.packets, "floor packet count");
    }
    rows.push(row("libpcap read floor (pcap crate)", floor));
    let mut threads = vec![1usize, 2];
    if extra_default && !threads.contains(&default_threads()) {
        threads.push(default_threads());
    }
    for t in threads {
        eprintln!("linerate:   mtlsniff --threads {t}");
        let r = best_of(repeat, || {
            run(
                Command::new(MTLSNIFF).args(["-q", "--threads", &t.to_string(), "-r", &f]),
                false,
            )
        });
        let d = if t == default_threads() {
            " (default)"
        } else {
            ""
        };
        rows.push(row(&format!("mtlsniff --threads {t}{d}"), r));
    }
    if tools.tcpdump {
        eprintln!("linerate:   tcpdump");
        let r = best_of(repeat, || {
            run(
                Command::new("tcpdump").args(["-n", "-r", &f, "-w", "/dev/null"]),
                false,
            )
        });
        rows.push(row("tcpdump -r F -w /dev/null", r));
    }
    if tools.tshark {
        eprintln!("linerate:   tshark");
        let r = best_of(repeat, || {
            run(
                Command::new("tshark").args(["-n", "-r", &f, "-Y", "tls.handshake.type == 11"]),
                false,
            )
        });
        rows.push(row("tshark -n -r F -Y 'tls.handshake.type == 11'", r));
    }
    rows
}

#[derive(Default)]
struct Accuracy {
    labelled: usize,
    reported: usize,
    matched: usize,
    class_ok: usize,
    outcome_ok: usize,
    missing: usize,
    /// Unlabelled flows reported with a class other than unknown.
    extra_classified: usize,
    unlabelled: usize,
    /// Extra reports for an already reported labelled connection.
    duplicates: usize,
    dup_classes: BTreeMap<String, usize>,
    confusion: BTreeMap<String, usize>,
    counters: String,
    secs: f64,
}

/// Runs `mtlsniff --json -r F` (default settings) once and compares each
/// reported flow's class with its label. Output is parsed as it streams.
fn accuracy(g: &synth::Generated) -> Accuracy {
    use std::io::BufRead;
    let labels = synth::read_labels(&g.labels);
    let f = g.pcap.to_str().expect("utf-8 path");
    let t0 = Instant::now();
    let mut child = Command::new(MTLSNIFF)
        .args(["--json", "-r", f])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mtlsniff");
    let mut err = child.stderr.take().expect("stderr");
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut a = Accuracy {
        labelled: labels.len(),
        ..Accuracy::default()
    };
    let mut seen = std::collections::HashSet::new();
    let out = std::io::BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
    for line in out.split(b'\n') {
        let Ok(line) = line else { break };
        if line.is_empty() {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        a.reported += 1;
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        let (client, server, class, outcome) = (s("client"), s("server"), s("class"), s("outcome"));
        let fwd = (client.clone(), server.clone());
        let rev = (server, client);
        let (key, label) = match labels.get(&fwd) {
            Some(l) => (fwd, Some(l)),
            None => (rev.clone(), labels.get(&rev)),
        };
        match label {
            Some((lc, lo)) => {
                if !seen.insert(key) {
                    // A second report for one labelled connection (the
                    // flow was split, e.g. evicted then seen again).
                    a.duplicates += 1;
                    *a.dup_classes.entry(class).or_default() += 1;
                    continue;
                }
                a.matched += 1;
                if *lc == class {
                    a.class_ok += 1;
                } else {
                    *a.confusion.entry(format!("{lc}->{class}")).or_default() += 1;
                }
                if *lo == outcome {
                    a.outcome_ok += 1;
                }
            }
            None => {
                a.unlabelled += 1;
                if class != "unknown" {
                    a.extra_classified += 1;
                }
            }
        }
    }
    let status = child.wait().expect("wait");
    a.secs = t0.elapsed().as_secs_f64();
    let stderr = err_t.join().unwrap_or_default();
    assert!(status.success(), "mtlsniff --json failed: {stderr}");
    a.counters = stderr
        .lines()
        .filter(|l| l.contains("counters:") || l.contains("flows:"))
        .map(|l| l.trim_start_matches("mtlsniff: ").to_string())
        .collect::<Vec<_>>()
        .join("\n");
    a.missing = a.labelled.saturating_sub(a.matched);
    a
}

struct Percentiles {
    packets: u64,
    secs: f64,
    hist: Histogram<u64>,
    ticks: Histogram<u64>,
    max_flows: usize,
}

/// In-process: decode + Engine::on_segment per packet, one engine (the
/// `--threads 1` worker's path without the channel), ticks at the
/// pipeline's positions, timed separately.
fn percentiles(path: &Path) -> Percentiles {
    let mut cap = pcap::Capture::from_file(path).expect("open");
    let link = LinkType(cap.get_datalink().0);
    let mut counters = DecodeCounters::default();
    let mut engine = Engine::new(Limits::default(), Options::default());
    let mut clock = TickClock::default();
    let mut out = Vec::new();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).expect("hist");
    let mut ticks = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).expect("hist");
    let mut index = 0u64;
    let mut max_flows = 0;
    let t0 = Instant::now();
    while let Ok(p) = cap.next_packet() {
        let ts = Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec);
        if let Some(now) = clock.on_frame(index, ts) {
            let t = Instant::now();
            engine.on_tick(now, index, &mut out);
            ticks.saturating_record(t.elapsed().as_nanos() as u64);
            out.clear();
            max_flows = max_flows.max(engine.flow_count());
        }
        let t = Instant::now();
        let frame = Frame {
            ts,
            link,
            data: p.data,
            orig_len: p.header.len,
        };
        if let Some(seg) = decode::decode_borrowed(&frame, &mut counters) {
            engine.on_segment(seg, index, &mut out);
        }
        hist.saturating_record(t.elapsed().as_nanos() as u64);
        out.clear();
        index += 1;
    }
    engine.finish(index, &mut out);
    Percentiles {
        packets: index,
        secs: t0.elapsed().as_secs_f64(),
        hist,
        ticks,
        max_flows,
    }
}

// ---------------------------------------------------------------- report

/// A Markdown table with padded columns (readable as plain text too).
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i >= w.len() {
                w.push(0);
            }
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if i == 0 {
                let _ = write!(s, " {c}{} |", " ".repeat(pad));
            } else {
                let _ = write!(s, " {}{c} |", " ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut s = line(head.iter().map(|h| h.to_string()).collect());
    s.push('|');
    for (i, n) in w.iter().enumerate() {
        s.push(' ');
        s.push_str(&"-".repeat(n.saturating_sub(1)));
        s.push_str(if i == 0 { "- |" } else { ": |" });
    }
    s.push('\n');
    for r in rows {
        s.push_str(&line(r.clone()));
    }
    s
}

fn tool_table(rows: &[Row]) -> String {
    let floor = rows.first().filter(|r| r.run.ok).map(Row::pps);
    let tshark = rows
        .iter()
        .find(|r| r.tool.starts_with("tshark") && r.run.ok)
        .map(Row::pps);
    let ratio =
        |x: Option<f64>, pps: f64| x.map_or("n/a".to_string(), |b| format!("{:.2}x", pps / b));
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            if !r.run.ok {
                return vec![
                    r.tool.clone(),
                    "FAILED".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ];
            }
            vec![
                r.tool.clone(),
                format!("{:.2}", r.run.secs),
                format!("{:.0}", r.pps()),
                format!("{:.1}", r.mbps()),
                format!("{:.1}", r.run.maxrss_kib as f64 / 1024.0),
                ratio(floor, r.pps()),
                ratio(tshark, r.pps()),
                r.run.stdout_lines.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "tool",
            "time s",
            "packets/s",
            "MB/s",
            "peak RSS MiB",
            "vs floor",
            "vs tshark",
            "stdout lines",
        ],
        &body,
    )
}

fn describe(g: &synth::Generated) -> String {
    let s = &g.stats;
    format!(
        "`{}`: {} flows, {} packets, {:.1} MB file ({:.0}% of frame bytes are bulk payload), {:.1} s of capture, up to {} flows open at once{}",
        g.pcap.file_name().unwrap_or_default().to_string_lossy(),
        s.flows,
        s.packets,
        s.file_bytes as f64 / 1e6,
        100.0 * s.bulk_payload_bytes as f64 / s.frame_bytes.max(1) as f64,
        s.duration_s,
        s.max_open,
        if g.cached {
            " (cached)".to_string()
        } else {
            format!(" (generated in {:.1} s)", g.gen_secs)
        }
    )
}

fn acc_line(a: &Accuracy) -> String {
    let mut conf: Vec<String> = a
        .confusion
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if conf.is_empty() {
        conf.push("none".into());
    }
    let dups: Vec<String> = a
        .dup_classes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    format!(
        "{}/{} labelled flows classified correctly ({:.3}%) by their first report; outcome agrees on {}; missing from output {}; wrong class: {}; second reports for a labelled connection: {}{}; unlabelled flows reported {} (of which not `unknown`: {}); --json run {:.2} s",
        a.class_ok,
        a.labelled,
        100.0 * a.class_ok as f64 / a.labelled.max(1) as f64,
        a.outcome_ok,
        a.missing,
        conf.join(", "),
        a.duplicates,
        if dups.is_empty() {
            String::new()
        } else {
            format!(" ({})", dups.join(", "))
        },
        a.unlabelled,
        a.extra_classified,
        a.secs
    )
}

fn pass(b: bool) -> &'static str {
    if b { "PASS" } else { "FAIL" }
}

/// SYNs from distinct spoofed sources at this rate (issue 13: 200k/s).
const EXPIRY_PPS: [u64; 2] = [200_000, 50_000];

/// The flood shapes of `flood_expiry`: name, generator, SYN rates.
type Gen = fn(&Path, &Path, &[synth::Template], (u64, u64), u64, u64) -> synth::GenStats;
const FLOOD_SHAPES: [(&str, Gen, &[u64]); 2] = [
    ("SYN", synth::gen_synflood_expiry, &EXPIRY_PPS),
    ("SYN+data", synth::gen_syndata_expiry, &[200_000]),
];

/// One row of `flood_expiry`: a run of `f` and what it showed.
fn flood_row(
    f: &str,
    labels: &BTreeMap<(String, String), (String, String)>,
    who: (&str, u64),
    memory: Option<&str>,
    threads: &str,
    verbose: bool,
) -> (bool, Vec<String>) {
    let (shape, pps) = who;
    let mib: i64 = memory.map_or(256, |m| m.parse().unwrap_or(256));
    let v = if verbose { " -v" } else { "" };
    eprintln!("linerate:   flood {shape} {pps}/s --memory {mib} --threads {threads}{v}");
    let mut cmd = Command::new(MTLSNIFF);
    cmd.args(["--json", "--stats", "--threads", threads, "-r", f]);
    if let Some(m) = memory {
        cmd.args(["--memory", m]);
    }
    if verbose {
        cmd.arg("-v");
    }
    let r = run(&mut cmd, true);
    let classified = classified_labels(&r.stdout, labels);
    let counter = |name: &str| {
        r.stderr
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("0")
            .to_string()
    };
    // A SYN+data flood gives flows up (counted loss): exit 3.
    let finished = r.ok || r.stderr.contains("exit status 3");
    let under = finished && r.maxrss_kib <= mib * 1024;
    let row = vec![
        shape.into(),
        format!("{pps}/s"),
        format!(
            "{mib} MiB{}",
            if memory.is_none() { " (default)" } else { "" }
        ),
        threads.into(),
        if verbose { "yes" } else { "no" }.into(),
        format!("{:.1} MiB", r.maxrss_kib as f64 / 1024.0),
        pass(under).into(),
        format!("{classified}/{}", labels.len()),
        counter("flows.unanswered"),
        counter("mem.oldest_given_up"),
        counter("reports.stalls"),
        r.stdout_lines.to_string(),
        format!("{:.1}", r.secs),
    ];
    (under && classified == labels.len(), row)
}

/// Issue 13's flood shapes: `expiry_syns` distinct spoofed SYNs at 200k
/// (and 50k) packets/s, and as many spoofed SYN+data flows (half a
/// ClientHello each, never finished) at 200k/s, with `expiry_real` fixture
/// flows arriving until 40 s after the flood, so the SYN-only flows the
/// full table holds expire (30 s) while real flows still arrive. Peak RSS
/// for the default budget and 64 MiB, 1 and 2 threads, with and without
/// `-v` (every unanswered SYN a report in flight), against `--memory`;
/// and whether every real flow got its class. Returns the report section.
fn flood_expiry(scale: &Scale, templates: &[synth::Template], dir: &Path, tkey: &str) -> String {
    let mut rows = Vec::new();
    let mut all_ok = true;
    for (shape, generate, rates) in FLOOD_SHAPES {
        for &pps in rates {
            let name = if shape == "SYN" {
                "synflood"
            } else {
                "syndata"
            };
            let g = synth::cached(
                dir,
                &format!("{name}-expiry-{}-{pps}", scale.expiry_syns),
                &format!("{} {} {pps} {tkey}", scale.expiry_syns, scale.expiry_real),
                |p, l| {
                    generate(
                        p,
                        l,
                        templates,
                        (scale.expiry_syns, pps),
                        scale.expiry_real,
                        40,
                    )
                },
            );
            let labels = synth::read_labels(&g.labels);
            let f = g.pcap.to_str().expect("utf-8 path").to_string();
            warm(&g.pcap);
            for memory in [None, Some("64")] {
                for threads in ["1", "2"] {
                    for verbose in [false, true] {
                        let (ok, row) =
                            flood_row(&f, &labels, (shape, pps), memory, threads, verbose);
                        all_ok &= ok;
                        rows.push(row);
                    }
                }
            }
        }
    }
    let mut out = format!(
        "\n## SYN floods with expiry while the table is full (issue 13)\n\n{} distinct spoofed SYNs (or SYN+data flows: half a ClientHello each, never finished) at each rate, {} real fixture flows arriving until 40 s after the flood (past the 30 s SYN-only timeout); `mtlsniff --json --stats --threads T [--memory M] [-v] -r F`; peak RSS = ru_maxrss (wait4). {}\n\n",
        scale.expiry_syns,
        scale.expiry_real,
        if all_ok {
            "All under --memory, every real flow classified."
        } else {
            "**Not all under --memory or classified.**"
        }
    );
    out.push_str(&table(
        &[
            "shape",
            "rate",
            "--memory",
            "threads",
            "-v",
            "peak RSS",
            "<= --memory",
            "real flows classified",
            "flows.unanswered",
            "mem.oldest_given_up",
            "reports.stalls",
            "lines",
            "secs",
        ],
        &rows,
    ));
    out
}

/// How many labelled flows a `--json` output gives their labelled class.
fn classified_labels(
    stdout: &[u8],
    labels: &BTreeMap<(String, String), (String, String)>,
) -> usize {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            let key = (
                v["client"].as_str().unwrap_or_default().to_string(),
                v["server"].as_str().unwrap_or_default().to_string(),
            );
            labels
                .get(&key)
                .is_some_and(|(class, _)| v["class"].as_str() == Some(class.as_str()))
        })
        .count()
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        match mode.as_str() {
            "measure" => child_measure(),
            "floor" => child_floor(&std::env::var("MTLSNIFF_BENCH_FILE").expect("file")),
            "mem" => child_mem(
                &std::env::var("MTLSNIFF_BENCH_FIXTURE").expect("fixture"),
                &std::env::var("MTLSNIFF_BENCH_STATE").expect("state"),
                std::env::var("MTLSNIFF_BENCH_N")
                    .expect("n")
                    .parse()
                    .expect("n"),
            ),
            other => panic!("unknown child mode {other}"),
        }
        return;
    }
    // `cargo test --all-targets` (the project's test command) runs bench
    // binaries too, without `--bench`: the benchmark takes minutes, so it
    // only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("linerate: skipped outside `cargo bench --bench linerate`");
        return;
    }
    let started = Instant::now();
    let scale = Scale::from_env();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target").join("bench");
    eprintln!("linerate: scale {} ({scale:?})", scale.name);
    let templates = synth::load_templates(&root.join("fixtures"));
    assert!(!templates.is_empty(), "no usable fixtures");
    eprintln!(
        "linerate: {} fixture flows as templates: {}",
        templates.len(),
        templates
            .iter()
            .map(|t| t.file.trim_end_matches(".pcap"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    // A key per file: the parameters and the template set.
    let tkey = templates
        .iter()
        .map(|t| format!("{}:{}", t.file, t.segs.len()))
        .collect::<Vec<_>>()
        .join(",");
    let tkey = format!("{:016x}", {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in tkey.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h
    });
    eprintln!(
        "linerate: generating (or reusing) files in {}",
        dir.display()
    );
    // MTLSNIFF_BENCH_ONLY=flood: only the flood's peak-RSS table.
    // MTLSNIFF_BENCH_FLOOD=0 leaves the flood table out (it takes most of
    // the run): for iterating on the line-rate tables.
    let flood_table = if std::env::var("MTLSNIFF_BENCH_FLOOD").as_deref() == Ok("0") {
        "## SYN floods with expiry (issue 13)\n\nNot run (MTLSNIFF_BENCH_FLOOD=0).\n".to_string()
    } else {
        flood_expiry(&scale, &templates, &dir, &tkey)
    };
    if std::env::var("MTLSNIFF_BENCH_ONLY").as_deref() == Ok("flood") {
        println!("{flood_table}");
        return;
    }
    let mixed = synth::cached(
        &dir,
        &format!("mixed-{}", scale.mixed_flows),
        &format!("{} {tkey}", scale.mixed_flows),
        |p, l| synth::gen_mixed(p, l, &templates, scale.mixed_flows),
    );
    let tiny = synth::cached(
        &dir,
        &format!("tiny64-{}", scale.tiny_flows),
        &format!("{} {tkey}", scale.tiny_flows),
        |p, l| synth::gen_tiny(p, l, &templates, scale.tiny_flows),
    );
    let flood = synth::cached(
        &dir,
        &format!("synflood-{}", scale.syn_flood),
        &format!("{} {} {tkey}", scale.syn_flood, scale.syn_real),
        |p, l| synth::gen_synflood(p, l, &templates, scale.syn_flood, scale.syn_real),
    );
    let flood_q = synth::cached(
        &dir,
        &format!("synflood-{}", scale.syn_flood / 4),
        &format!(
            "{} {} {tkey}",
            scale.syn_flood / 4,
            (scale.syn_real / 4).max(10)
        ),
        |p, l| {
            synth::gen_synflood(
                p,
                l,
                &templates,
                scale.syn_flood / 4,
                (scale.syn_real / 4).max(10),
            )
        },
    );
    let tools = Tools {
        tcpdump: have("tcpdump"),
        tshark: have("tshark") && std::env::var("MTLSNIFF_BENCH_TSHARK").as_deref() != Ok("0"),
    };

    let mut report = String::new();
    let _ = writeln!(
        report,
        "# mtlsniff offline line-rate benchmark\n\nscale `{}`; {} cores (mtlsniff default --threads {}); best of {} run(s) per tool; files read from the page cache; MB/s = pcap file bytes / wall time; peak RSS = ru_maxrss of the child (wait4).\n",
        scale.name,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        default_threads(),
        scale.repeat
    );
    let commit = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        report,
        "mtlsniff commit `{commit}` (plus uncommitted changes, if any).\n"
    );
    if !tools.tcpdump || !tools.tshark {
        let _ = writeln!(
            report,
            "Not measured: {}{}\n",
            if tools.tcpdump {
                ""
            } else {
                "tcpdump (not installed) "
            },
            if tools.tshark {
                ""
            } else {
                "tshark (not installed or MTLSNIFF_BENCH_TSHARK=0)"
            }
        );
    }

    let files: [(&str, &synth::Generated); 3] = [
        ("mixed plaintext/tls/mtls with bulk data", &mixed),
        (
            "worst case: every payload in 10-byte segments (64-byte frames)",
            &tiny,
        ),
        (
            "worst case: SYN flood of distinct flows + real handshakes",
            &flood,
        ),
    ];
    let mut mixed_rows = Vec::new();
    let mut accs = Vec::new();
    for (i, (name, g)) in files.iter().enumerate() {
        eprintln!("linerate: measuring {}", g.pcap.display());
        let rows = measure(g, &tools, scale.repeat, i == 0);
        let _ = writeln!(report, "## {}\n\n{}\n", name, describe(g));
        report.push_str(&tool_table(&rows));
        eprintln!("linerate:   accuracy (--json)");
        let a = accuracy(g);
        let _ = writeln!(report, "\nAccuracy: {}\n", acc_line(&a));
        if !a.counters.is_empty() {
            let _ = writeln!(
                report,
                "Summary of the --json run:\n\n```\n{}\n```\n",
                a.counters
            );
        }
        if i == 0 {
            mixed_rows = rows;
        } else if i == 2 {
            // Peak memory bound: the same flood at a quarter of the flows.
            let q = best_of(1, || {
                run(
                    Command::new(MTLSNIFF).args([
                        "-q",
                        "-r",
                        flood_q.pcap.to_str().unwrap_or_default(),
                    ]),
                    false,
                )
            });
            let full_rss = rows
                .iter()
                .find(|r| r.tool.contains("(default)"))
                .map_or(0, |r| r.run.maxrss_kib);
            accs.push((a, Some((q.maxrss_kib, full_rss))));
            continue;
        }
        accs.push((a, None));
        // Partial report, in case a later step is interrupted.
        let _ = std::fs::write(
            dir.join(format!("report-{}.partial.md", scale.name)),
            &report,
        );
    }

    // Memory per flow, each measurement in a fresh child process.
    eprintln!("linerate: memory per flow");
    let mut mem_rows = Vec::new();
    let mut worst_done = 0f64;
    for fixture in [
        "tls12-openssl-mtls-p256.pcap",
        "tls13-openssl-mtls-p256.pcap",
        "plaintext-http-curl.pcap",
    ] {
        let mut cells = vec![fixture.trim_end_matches(".pcap").to_string()];
        for state in ["syn", "pending", "done"] {
            if state == "syn" && !fixture.starts_with("tls12") {
                cells.push("(same)".into());
                continue;
            }
            let r = run(
                self_cmd("mem")
                    .env("MTLSNIFF_BENCH_FIXTURE", fixture)
                    .env("MTLSNIFF_BENCH_STATE", state)
                    .env("MTLSNIFF_BENCH_N", scale.mem_flows.to_string()),
                true,
            );
            let out = String::from_utf8_lossy(&r.stdout).to_string();
            let v: Vec<f64> = out
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            if !r.ok || v.len() < 3 {
                cells.push(format!("failed: {}", r.stderr.lines().last().unwrap_or("")));
                continue;
            }
            if state == "done" {
                worst_done = worst_done.max(v[0]);
            }
            cells.push(format!(
                "{:.0} B ({} pkts/flow, {} tracked)",
                v[0], v[2], v[1]
            ));
        }
        mem_rows.push(cells);
    }

    eprintln!("linerate: per-packet percentiles (in-process, mixed file)");
    let pc = percentiles(&mixed.pcap);
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;

    // Targets.
    let floor_pps = mixed_rows.first().filter(|r| r.run.ok).map(Row::pps);
    let tshark_pps = mixed_rows
        .iter()
        .find(|r| r.tool.starts_with("tshark") && r.run.ok)
        .map(Row::pps);
    let def = mixed_rows
        .iter()
        .find(|r| r.tool.contains("(default)") && r.run.ok)
        .map(Row::pps);
    let mut targets = Vec::new();
    match (def, floor_pps) {
        (Some(d), Some(f)) => targets.push(vec![
            "mixed: mtlsniff (default threads) >= 0.8x libpcap floor packets/s".into(),
            format!("{:.2}x", d / f),
            pass(d / f >= 0.8).into(),
        ]),
        _ => targets.push(vec![
            "mixed: >= 0.8x floor".into(),
            "n/a".into(),
            "FAIL".into(),
        ]),
    }
    match (def, tshark_pps) {
        (Some(d), Some(t)) => targets.push(vec![
            "mixed: mtlsniff (default threads) >= 30x tshark packets/s".into(),
            format!("{:.1}x", d / t),
            pass(d / t >= 30.0).into(),
        ]),
        _ => targets.push(vec![
            "mixed: >= 30x tshark".into(),
            "n/a (tshark not run)".into(),
            "n/a".into(),
        ]),
    }
    targets.push(vec![
        "< 256 bytes per flow once its verdict is out (worst fixture)".into(),
        format!("{worst_done:.0} B"),
        pass(worst_done < 256.0).into(),
    ]);
    if let Some((_, Some((q, full)))) = accs.get(2) {
        let ratio = *full as f64 / (*q).max(1) as f64;
        targets.push(vec![
            format!(
                "SYN flood peak RSS bounded: {} SYNs vs {} (ratio <= 1.5; linear growth would be 4)",
                scale.syn_flood,
                scale.syn_flood / 4
            ),
            format!(
                "{:.1} MiB vs {:.1} MiB = {ratio:.2}",
                *full as f64 / 1024.0,
                *q as f64 / 1024.0
            ),
            pass(ratio <= 1.5 && *full > 0).into(),
        ]);
    }
    for (name, (a, _)) in ["mixed", "64-byte", "SYN flood"].iter().zip(&accs) {
        targets.push(vec![
            format!(
                "{name}: every labelled flow gets its class, once (a fast wrong answer is no answer)"
            ),
            format!(
                "{}/{} correct, {} second reports",
                a.class_ok, a.labelled, a.duplicates
            ),
            pass(a.class_ok == a.labelled && a.duplicates == 0 && a.extra_classified == 0).into(),
        ]);
    }

    let _ = writeln!(
        report,
        "## Memory per tracked flow\n\nIn-process: one `Engine` (default limits) fed {} flows, each a copy (fresh addresses) of a fixture flow cut after its SYN, just before its verdict (mid-handshake) or just after it (verdict out; no FIN, so the flow stays tracked); VmRSS growth / flows, each in a fresh process.\n",
        scale.mem_flows
    );
    report.push_str(&table(
        &["fixture flow", "SYN only", "mid-handshake", "verdict out"],
        &mem_rows,
    ));
    let _ = writeln!(
        report,
        "\n## Per-packet processing time (in-process, mixed file)\n\ndecode + `Engine::on_segment`, one engine, {} packets in {:.2} s ({:.0} packets/s, timer overhead included); up to {} flows tracked.\n",
        pc.packets,
        pc.secs,
        pc.packets as f64 / pc.secs,
        pc.max_flows
    );
    report.push_str(&table(
        &[
            "",
            "mean µs",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
            "count",
        ],
        &[
            vec![
                "per packet".into(),
                format!("{:.2}", pc.hist.mean() / 1000.0),
                format!("{:.2}", us(&pc.hist, 0.5)),
                format!("{:.2}", us(&pc.hist, 0.99)),
                format!("{:.2}", us(&pc.hist, 0.999)),
                format!("{:.1}", pc.hist.max() as f64 / 1000.0),
                pc.hist.len().to_string(),
            ],
            vec![
                "per tick (idle expiry scan)".into(),
                format!("{:.1}", pc.ticks.mean() / 1000.0),
                format!("{:.1}", us(&pc.ticks, 0.5)),
                format!("{:.1}", us(&pc.ticks, 0.99)),
                format!("{:.1}", us(&pc.ticks, 0.999)),
                format!("{:.1}", pc.ticks.max() as f64 / 1000.0),
                pc.ticks.len().to_string(),
            ],
        ],
    ));
    report.push_str(&flood_table);
    let _ = writeln!(report, "\n## Targets\n");
    report.push_str(&table(&["target", "measured", "result"], &targets));
    let _ = writeln!(
        report,
        "\nTotal bench time {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    println!("{report}");
    // The full-scale report is report.md; other scales do not overwrite it.
    let out = dir.join(if scale.name == "full" {
        "report.md".to_string()
    } else {
        format!("report-{}.md", scale.name)
    });
    std::fs::write(&out, &report).expect("write report");
    eprintln!("linerate: report written to {}", out.display());
}
