//! Issue 7, "answers people act on", end to end through the binary: close
//! lines and the edges summary against golden files (and identical for any
//! `--threads`), verify mode's exit statuses, the Prometheus endpoint
//! scraped over loopback and parsed with an exposition-format parser (and,
//! when Debian's `prometheus` is installed, scraped by a real Prometheus),
//! the graph parsed as DOT, and the progress bar on a pseudo-terminal.
//!
//! `MTLSNIFF_BLESS=1 cargo test --test answers` rewrites the golden files
//! under `fixtures/expected/answers/`. Network tests use 127.0.0.1 only;
//! every process started here is ended here, by its handle. The one test
//! over the public captures fails under CI without ../shared and skips,
//! saying so, elsewhere (tests/support/shared.rs).

#[path = "support/mod.rs"]
mod support;
use support::processes::{self, Http, Reaped};
use support::shared;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mtlsniff")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mtlsniff-answers-{}-{name}", std::process::id()))
}

/// Compare with (or, blessing, write) `fixtures/expected/answers/<name>`.
fn golden(name: &str, got: &str) {
    let path = fixture("expected/answers").join(name);
    if std::env::var_os("MTLSNIFF_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing {}: run MTLSNIFF_BLESS=1 cargo test --test answers",
            path.display()
        )
    });
    assert!(
        got == want,
        "{} differs (MTLSNIFF_BLESS=1 to rewrite)\n-- expected:\n{want}-- got:\n{got}",
        path.display()
    );
}

/// Ends a child process we started when the test is done, pass or fail.
#[test]
fn close_lines_match_their_golden_files_for_any_thread_count() {
    let demo = fixture("demo.pcap");
    let demo = demo.to_str().unwrap();
    for (json, ext) in [(false, "txt"), (true, "json")] {
        let mut outputs = Vec::new();
        for threads in ["1", "2", "4"] {
            let mut args = vec!["-r", demo, "-q", "--close", "--threads", threads];
            if json {
                args.push("--json");
            }
            let o = run(&args);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
            outputs.push(text(&o.stdout));
        }
        assert!(
            outputs.iter().all(|o| *o == outputs[0]),
            "close output depends on --threads"
        );
        let out = &outputs[0];
        // Every verdict has exactly one close, after it.
        let verdicts = out.lines().filter(|l| !is_close(l)).count();
        let closes = out.lines().filter(|l| is_close(l)).count();
        assert_eq!((verdicts, closes), (9, 9), "{out}");
        golden(&format!("demo.pcap.close.{ext}"), out);
    }
}

fn is_close(line: &str) -> bool {
    line.contains(": close ") || line.starts_with(r#"{"event":"close""#)
}

#[test]
fn summary_matches_its_golden_files_in_every_format() {
    for name in [
        "demo.pcap",
        "tls12-openssl-istio-sidecar.pcap",
        "plaintext-proxyv2-tlv-d0.pcap",
        "tls13-openssl-linkerd.pcap",
    ] {
        let path = fixture(name);
        for format in ["table", "tsv", "json"] {
            let o = run(&[
                "-r",
                path.to_str().unwrap(),
                "-q",
                "--summary-only",
                "--summary-format",
                format,
            ]);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
            golden(&format!("{name}.summary.{format}"), &text(&o.stdout));
        }
    }
}

#[test]
fn summary_follows_the_flow_lines_after_a_blank_line() {
    let o = run(&[
        "-r",
        fixture("demo.pcap").to_str().unwrap(),
        "-q",
        "--summary",
    ]);
    let out = text(&o.stdout);
    let (flows, table) = out
        .split_once("\n\n")
        .expect("a blank line before the table");
    assert_eq!(flows.lines().count(), 9);
    assert!(table.starts_with("CLIENT "), "{table}");
    assert!(
        table.contains("client-p256  localhost  ") && table.contains(" all "),
        "{table}"
    );
}

/// Verify mode: 0 when met, 4 when a flow falls short (each offender on
/// stderr with its reason), unknown flows fail only with --strict; 1, 2 and
/// 3 keep their meaning.
#[test]
fn verify_mode_exit_statuses() {
    let demo = fixture("demo.pcap");
    let demo = demo.to_str().unwrap();
    let o = run(&["-r", demo, "-q", "--expect", "mtls"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("mtlsniff: expect mtls: short 127.0.0.1:36732 > 127.0.0.1:47220: tls ok: TLS 1.3 client flight 74 B"),
        "{err}"
    );
    assert!(
        err.contains(
            "expect mtls: short 127.0.0.1:55848 > 127.0.0.1:47246: plaintext ok: clear text"
        ),
        "{err}"
    );
    assert!(
        err.contains("expect mtls: unknown 127.0.0.1:60746 > 127.0.0.1:47245: unknown ok: resumed"),
        "{err}"
    );
    assert_eq!(err.matches(": short ").count(), 2, "{err}");
    assert!(
        err.ends_with("mtlsniff: expect mtls: FAIL: 2 of 8 decided flows fall short (3 refused by the server; 1 unknown, not failing without --strict)\n"),
        "{err}"
    );
    assert_eq!(
        text(&o.stdout).lines().count(),
        9,
        "flow lines still on stdout"
    );

    let table: &[(&[&str], i32, &str)] = &[
        // Only the mTLS servers (47245 also had a resumption: unknown).
        (
            &["--ports", "47211,47223,47245", "--expect", "mtls"],
            0,
            "OK: 0 of 3",
        ),
        (
            &[
                "--ports",
                "47211,47223,47245",
                "--expect",
                "mtls",
                "--strict",
            ],
            4,
            "failing with --strict",
        ),
        (
            &["--ports", "47211,47223", "--expect", "mtls", "--strict"],
            0,
            "OK: 0 of 2",
        ),
        // A server that refused a client without a certificate held the policy.
        (
            &["--ports", "47235", "--expect", "mtls"],
            0,
            "1 refused by the server",
        ),
        (&["--ports", "47220", "--expect", "tls"], 0, "OK: 0 of 1"),
        (&["--ports", "47220", "--expect", "mtls"], 4, "FAIL: 1 of 1"),
        (
            &["--ports", "47220,47223", "--expect", "encrypted"],
            0,
            "OK: 0 of 2",
        ),
        (
            &["--ports", "47246", "--expect", "encrypted"],
            4,
            "FAIL: 1 of 1",
        ),
        // Nothing decided: vacuous without --strict, a failure with it.
        (&["--expect", "mtls", "port", "1"], 0, "OK: 0 of 0"),
        (
            &["--expect", "mtls", "--strict", "port", "1"],
            4,
            "nothing verified",
        ),
    ];
    for (extra, code, says) in table {
        let mut args = vec!["-r", demo, "-q"];
        args.extend_from_slice(extra);
        let o = run(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(*code), "{extra:?}: {err}");
        assert!(err.contains(says), "{extra:?} lacks {says:?}: {err}");
    }

    // -qq: silent, the status still tells.
    let o = run(&["-r", demo, "-qq", "--expect", "mtls"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    // A run that cannot check is 1, a bad command line 2: never 0 or 4.
    let o = run(&["-r", "/nonexistent/x.pcap", "--expect", "mtls"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let o = run(&["-r", demo, "--strict"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let o = run(&["-r", demo, "--expect", "secure"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

/// Start mtlsniff with `--metrics 127.0.0.1:0` and return it with the
/// address it printed on stderr.
fn start_with_metrics(args: &[&str]) -> (Reaped, SocketAddr) {
    let mut mtlsniff = bin();
    mtlsniff.args(args);
    processes::start_with_metrics(mtlsniff)
}

/// GET `path` over loopback; the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let (status, body) = http_get_any(addr, path);
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    body
}

/// GET `path` over loopback; the status line and the body.
fn http_get_any(addr: SocketAddr, path: &str) -> (String, String) {
    processes::http_get(addr, path, Http::V11).expect("HTTP response")
}

fn scrape_until_finished(addr: SocketAddr) -> prometheus_parse::Scrape {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http_get(addr, "/metrics");
        let scrape =
            prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
        let finished = scrape
            .samples
            .iter()
            .any(|s| s.metric == "mtlsniff_input_finished" && value(s) == 1.0);
        if finished {
            return scrape;
        }
        assert!(Instant::now() < deadline, "input never finished:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn value(s: &prometheus_parse::Sample) -> f64 {
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    }
}

/// Sum of `metric` over the samples whose labels include all of `labels`.
fn sum(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(value)
        .sum()
}

#[test]
fn metrics_are_served_and_parse_as_prometheus_exposition() {
    let demo = fixture("demo.pcap");
    let (_child, addr) =
        start_with_metrics(&["-r", demo.to_str().unwrap(), "--metrics-linger", "60s"]);
    let scrape = scrape_until_finished(addr);
    let opened = "mtlsniff_tcp_connections_opened_total";
    assert_eq!(sum(&scrape, opened, &[]), 9.0);
    assert_eq!(
        sum(
            &scrape,
            opened,
            &[("connection_security_policy", "mutual_tls")]
        ),
        3.0
    );
    assert_eq!(
        sum(&scrape, opened, &[("class", "mtls"), ("basis", "inferred")]),
        2.0
    );
    assert_eq!(
        sum(
            &scrape,
            opened,
            &[("class", "tls"), ("outcome", "rejected")]
        ),
        2.0
    );
    assert_eq!(
        sum(
            &scrape,
            opened,
            &[
                ("class", "unknown"),
                ("connection_security_policy", "unknown")
            ]
        ),
        1.0
    );
    assert_eq!(
        sum(&scrape, opened, &[("connection_security_policy", "none")]),
        5.0
    );
    // Every flow of the demo closed with FINs; bytes are whole flows'.
    let closed = "mtlsniff_tcp_connections_closed_total";
    assert_eq!(sum(&scrape, closed, &[("ended", "fin")]), 9.0);
    assert_eq!(
        sum(
            &scrape,
            "mtlsniff_tcp_sent_bytes_total",
            &[("class", "plaintext")]
        ),
        158.0
    );
    assert_eq!(
        sum(
            &scrape,
            "mtlsniff_tcp_received_bytes_total",
            &[("class", "plaintext")]
        ),
        1157.0
    );
    assert_eq!(sum(&scrape, "mtlsniff_packets_total", &[]), 135.0);
    assert_eq!(sum(&scrape, "mtlsniff_flows_created_total", &[]), 9.0);
    // The histogram: 9 observations, all within a second of packet time.
    let ttv: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "mtlsniff_time_to_verdict_seconds")
        .collect();
    assert!(!ttv.is_empty(), "no time-to-verdict histogram");
    let mut count_under_1s = 0.0;
    for s in ttv {
        let prometheus_parse::Value::Histogram(buckets) = &s.value else {
            panic!("not a histogram: {s:?}");
        };
        count_under_1s += buckets
            .iter()
            .find(|b| b.less_than > 1.0)
            .map_or(0.0, |b| b.count);
    }
    assert_eq!(count_under_1s, 9.0);
    // No address is ever a label value.
    assert!(
        scrape
            .samples
            .iter()
            .all(|s| s.labels.values().all(|v| !v.contains("127.0.0.1"))),
        "an address leaked into a label"
    );
}

#[test]
fn a_real_prometheus_scrapes_the_endpoint() {
    let Some(prometheus) = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        eprintln!("skipped: Prometheus is not installed (apt-get install prometheus)");
        return;
    };
    let demo = fixture("demo.pcap");
    let (_mtlsniff, target) =
        start_with_metrics(&["-r", demo.to_str().unwrap(), "--metrics-linger", "120s"]);
    let dir = scratch("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mtlsniff\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let (prom, web) = processes::start_prometheus(prometheus, &config, &dir);
    let query = "/api/v1/query?query=sum(mtlsniff_tcp_connections_opened_total%7Bconnection_security_policy%3D%22mutual_tls%22%7D)";
    let deadline = Instant::now() + Duration::from_secs(90);
    let answer = loop {
        let body = TcpStream::connect_timeout(&web, Duration::from_secs(1))
            .ok()
            .map(|_| http_get_any(web, query).1);
        if let Some(b) = body.filter(|b| b.contains(r#""value":["#)) {
            break b;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had the series; its log: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let json: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(json["status"], "success", "{answer}");
    assert_eq!(json["data"]["result"][0]["value"][1], "3", "{answer}");
    drop(prom);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn graph_is_valid_dot_with_padlocks_and_red_plaintext() {
    let dot_file = scratch("edges.dot");
    let o = run(&[
        "-r",
        fixture("demo.pcap").to_str().unwrap(),
        "-q",
        "--summary-only",
        "--graph",
        dot_file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let dot = std::fs::read_to_string(&dot_file).expect("the graph file");
    let graph = graphviz_rust::parse(&dot).unwrap_or_else(|e| panic!("not DOT: {e}\n{dot}"));
    let graphviz_rust::dot_structures::Graph::DiGraph { stmts, .. } = graph else {
        panic!("not a digraph:\n{dot}");
    };
    let edges = stmts
        .iter()
        .filter(|s| matches!(s, graphviz_rust::dot_structures::Stmt::Edge(_)))
        .count();
    assert_eq!(edges, 8, "one edge per summary row:\n{dot}");
    assert!(dot.contains("\u{1f512} mtls 1"), "closed padlock:\n{dot}");
    assert!(dot.contains("\u{1f513} tls 1"), "open padlock:\n{dot}");
    assert_eq!(
        dot.matches(", color=red,").count(),
        2,
        "plaintext edges red:\n{dot}"
    );
    assert!(dot.contains("color=darkgreen"), "{dot}");

    if Command::new("dot").arg("-V").output().is_err() {
        eprintln!("skipped the SVG half: Graphviz's dot is not installed");
        let _ = std::fs::remove_file(&dot_file);
        return;
    }
    let check = Command::new("dot")
        .args(["-Tsvg", "-o", "/dev/null"])
        .arg(&dot_file)
        .output()
        .unwrap();
    assert!(check.status.success(), "dot: {}", text(&check.stderr));
    let svg_file = scratch("edges.svg");
    let o = run(&[
        "-r",
        fixture("demo.pcap").to_str().unwrap(),
        "-q",
        "--graph",
        svg_file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let svg = std::fs::read_to_string(&svg_file).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("client&#45;p256"),
        "{svg}"
    );
    let _ = std::fs::remove_file(&dot_file);
    let _ = std::fs::remove_file(&svg_file);
}

/// Run under `script`, which gives the child a pseudo-terminal; the
/// transcript (stdout and stderr) comes back on script's stdout.
fn on_a_terminal(args: &str) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux's script is not installed");
        return None;
    }
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_mtlsniff"));
    let o = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    assert!(o.status.success(), "{}", text(&o.stdout));
    Some(text(&o.stdout))
}

#[test]
fn progress_bar_only_on_a_terminal_and_never_when_quiet() {
    let demo = fixture("demo.pcap");
    let demo = demo.to_str().unwrap();
    let Some(tty) = on_a_terminal(&format!("-r {demo} > /dev/null")) else {
        return;
    };
    assert!(tty.contains("packets/s"), "no progress bar:\n{tty}");
    assert!(tty.contains("flows") && tty.contains("ETA"), "{tty}");
    let summary_only = on_a_terminal(&format!("-r {demo} --summary-only")).unwrap();
    assert!(summary_only.contains("packets/s"), "{summary_only}");
    let quiet = on_a_terminal(&format!("-r {demo} -q > /dev/null")).unwrap();
    assert!(!quiet.contains("packets/s"), "-q shows a bar:\n{quiet}");
    // Flow lines streaming to the same terminal are the progress.
    let lines = on_a_terminal(&format!("-r {demo}")).unwrap();
    assert!(
        !lines.contains("packets/s"),
        "bar torn by flow lines:\n{lines}"
    );
    let piped = run(&["-r", demo]);
    assert!(!text(&piped.stderr).contains("packets/s"), "bar on a pipe");
}

/// Close lines and the summary come out in the same order whatever the
/// worker count, on every public capture (idle expiries, resets, flows
/// open at the end): file mode stays deterministic.
#[test]
fn close_lines_and_summary_are_identical_for_any_thread_count_on_public_captures() {
    let Some(dir) = shared::public("close lines over the public captures") else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut closes = 0;
    for file in files {
        let mut reference: Option<Output> = None;
        for threads in ["1", "3"] {
            let o = run(&[
                "-q",
                "-r",
                file.to_str().unwrap(),
                "--close",
                "--summary",
                "--summary-format",
                "tsv",
                "--threads",
                threads,
            ]);
            match &reference {
                None => reference = Some(o),
                Some(want) => assert!(
                    want.stdout == o.stdout && want.status.code() == o.status.code(),
                    "{}: --threads {threads} differs from --threads 1",
                    file.display()
                ),
            }
        }
        let out = text(&reference.unwrap().stdout);
        closes += out.lines().filter(|l| is_close(l)).count();
    }
    assert!(
        closes > 100,
        "only {closes} close lines over the public captures"
    );
}

/// Live, as root: SIGUSR1 prints the edges summary while capturing on the
/// loopback interface; SIGINT ends the run with the final summary. Skips
/// when not root or when `lo` cannot be captured.
#[test]
fn live_summary_on_sigusr1() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: live capture needs root");
        return;
    }
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut child = bin()
        .args([
            "-i",
            "lo",
            "-l",
            "-q",
            "--summary",
            "--summary-format",
            "tsv",
        ])
        .args(["tcp", "port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mtlsniff");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = Reaped(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Give the capture a moment to open, then talk HTTP over loopback.
    std::thread::sleep(Duration::from_millis(1500));
    if let Ok(Some(status)) = child.0.try_wait() {
        let mut err = String::new();
        let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
        eprintln!("skipped: cannot capture on lo ({status}): {err}");
        return;
    }
    let talk = std::thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = c.read(&mut buf);
        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let _ = client.read(&mut buf);
    drop(client);
    talk.join().unwrap();

    let row = format!("127.0.0.1\t127.0.0.1:{port}\t1\t0\t0\t1\t");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut tables = 0;
    while tables == 0 {
        assert!(Instant::now() < deadline, "no summary on SIGUSR1: {seen:?}");
        // SAFETY: kill on the pid of a child we started and have not reaped.
        unsafe { libc::kill(pid, libc::SIGUSR1) };
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            tables += usize::from(line.starts_with(&row));
            seen.push(line);
        }
    }
    assert!(
        seen.iter().any(|l| l.contains(": plaintext ok ")),
        "verdict line first: {seen:?}"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = rx.iter().collect();
    assert!(
        rest.iter().any(|l| l.starts_with(&row)),
        "final summary at exit: {rest:?}"
    );
}
