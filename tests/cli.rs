//! End-to-end tests of the `mtlsniff` binary: exit statuses, one-line error
//! messages, determinism across `--threads`, and `| head` behaviour.
//!
//! These run the built binary as a user would; they must not depend on
//! what the engine concludes (its verdicts are tested beside it), only on
//! what the shell promises. Tests that need the shared pcaps fail under CI
//! when `../shared` is absent and skip, saying so, elsewhere
//! (tests/support/shared.rs).

#[path = "support/mod.rs"]
mod support;
use support::shared;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mtlsniff")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The public pcaps; None (and a SKIP line) when ../shared is absent
/// outside CI, a failure under CI.
fn public_pcaps() -> Option<PathBuf> {
    shared::public("a cli test over the public captures")
}

fn pcap_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read pcaps dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    files
}

fn scratch(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mtlsniff-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("write scratch file");
    path
}

/// The error is exactly one line, starts with our name, says `want`.
fn assert_one_line_error(o: &Output, want: &str) {
    let err = stderr(o);
    assert_eq!(
        err.lines().count(),
        1,
        "expected one line on stderr, got:\n{err}"
    );
    assert!(err.starts_with("mtlsniff: "), "{err}");
    assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    assert!(
        o.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn version_exits_0() {
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("mtlsniff "));
}

#[test]
fn help_has_examples() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Examples:") && out.contains("--ports"),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--bogus"][..],
        &[],
        &["-r", "x.pcap", "-i", "eth0"],
        &["-r", "x.pcap", "-c", "0"],
        &["-r", "x.pcap", "--threads", "0"],
        &["-r", "x.pcap", "--ports", "nope"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn missing_file_exits_1_with_one_line() {
    let o = run(&["-r", "/nonexistent/capture.pcap"]);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(&o, "/nonexistent/capture.pcap");
}

#[test]
fn non_pcap_file_exits_1_with_one_line() {
    let path = scratch("not-a-pcap.txt", b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    let o = run(&["-r", path.to_str().expect("utf-8 temp path")]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(o.status.code(), Some(1));
    assert_one_line_error(&o, "not a pcap or pcapng");
}

#[test]
fn bad_filter_exits_1_quoting_pcap() {
    let Some(dir) = public_pcaps() else { return };
    let file = dir.join("zeek__http-get.pcap");
    let o = bin()
        .arg("-r")
        .arg(&file)
        .args(["port", "and", "or"])
        .output()
        .expect("run mtlsniff");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_one_line_error(&o, "bad capture filter \"port and or\"");
}

#[test]
fn missing_interface_exits_1_and_points_to_list() {
    let o = run(&["-i", "mtlsniff-no-such-if0"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Without privileges the permission message may come first; both
    // say what to do.
    let err = stderr(&o);
    assert!(err.contains("-D") || err.contains("CAP_NET_RAW"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn reads_a_pcap_and_exits_0() {
    let Some(dir) = public_pcaps() else { return };
    let o = bin()
        .arg("-r")
        .arg(dir.join("zeek__http-get.pcap"))
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(" packets, 1 flows: "),
        "summary missing: {}",
        stderr(&o)
    );
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.pcap")
}

/// Issue 16 §2: a short line by default (the demo's fit 160 columns),
/// evidence and reason with `-v` (tcpdump's meaning), one summary line
/// unless `--stats` or `-v` asks for every counter.
#[test]
fn default_lines_are_short_and_v_adds_the_evidence() {
    let o = bin().arg("-r").arg(demo()).output().expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(out.lines().count(), 9, "{out}");
    for line in out.lines() {
        assert!(line.chars().count() <= 160, "{} chars: {line}", line.len());
        assert!(!line.contains("reason="), "{line}");
    }
    assert!(out.contains(": mtls      ok         tls=1.2 basis=observed client_id=client-p256 server_id=localhost\n"), "{out}");
    assert_eq!(
        stderr(&o),
        "mtlsniff: 135 packets, 9 flows: 2 plaintext (1 ok, 1 rejected), 3 tls (1 ok, 2 rejected), \
         3 mtls (3 ok), 1 unknown (1 ok); no loss\n"
    );
    let v = bin().arg("-r").arg(demo()).arg("-v").output().expect("run");
    let detailed = String::from_utf8_lossy(&v.stdout).to_string();
    for (short, long) in out.lines().zip(detailed.lines()) {
        assert!(
            long.starts_with(short),
            "-v starts with the short line:\n{short}\n{long}"
        );
        assert!(long.contains(" reason=\""), "{long}");
    }
    assert!(
        detailed.contains(" cert_req=yes client_cert=sent(2) "),
        "{detailed}"
    );
    // -v no longer raises the log level: no INFO lines, and the summary is
    // the full one.
    let err = stderr(&v);
    assert!(!err.contains("INFO"), "{err}");
    assert!(
        err.contains("mtlsniff: counters: decode.frames=135"),
        "{err}"
    );
    assert!(err.contains("mtlsniff: limits: "), "{err}");
    let stats = bin()
        .arg("-r")
        .arg(demo())
        .arg("--stats")
        .output()
        .expect("run");
    assert_eq!(stats.stdout, o.stdout, "--stats changes only stderr");
    let full = stderr(&stats);
    assert!(
        full.contains("mtlsniff: counters: decode.frames=135"),
        "{full}"
    );
    assert!(
        full.contains("mtlsniff: time to verdict (packet time): p50 "),
        "{full}"
    );
    // The log moved to --log-level; colours only on a terminal.
    let log = bin()
        .arg("-r")
        .arg(demo())
        .args(["--log-level", "info", "-q"])
        .output()
        .expect("run");
    let err = stderr(&log);
    assert!(err.contains("INFO"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour escapes on a pipe: {err:?}");
}

#[test]
fn reads_stdin_with_dash() {
    let Some(dir) = public_pcaps() else { return };
    let bytes = std::fs::read(dir.join("zeek__http-get.pcap")).expect("read pcap");
    let from_file = bin()
        .arg("-r")
        .arg(dir.join("zeek__http-get.pcap"))
        .output()
        .expect("run");
    let mut child = on_stdin(&[]);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("feed stdin");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, from_file.stdout);
}

#[test]
fn output_is_identical_for_any_thread_count() {
    let Some(dir) = public_pcaps() else { return };
    let files = pcap_files(&dir);
    assert!(!files.is_empty(), "no pcaps in {}", dir.display());
    for file in files {
        for format in [None, Some("--json")] {
            let mut reference: Option<(Option<i32>, Vec<u8>)> = None;
            for threads in ["1", "2", "4"] {
                let mut cmd = bin();
                cmd.arg("-q")
                    .arg("-r")
                    .arg(&file)
                    .args(["--threads", threads]);
                cmd.args(format);
                let o = cmd.output().expect("run mtlsniff");
                let got = (o.status.code(), o.stdout);
                match &reference {
                    None => reference = Some(got),
                    Some(want) => assert!(
                        *want == got,
                        "{} {format:?}: --threads {threads} differs from --threads 1\n\
                         --- threads 1 (exit {:?}):\n{}\n--- threads {threads} (exit {:?}):\n{}",
                        file.display(),
                        want.0,
                        String::from_utf8_lossy(&want.1),
                        got.0,
                        String::from_utf8_lossy(&got.1),
                    ),
                }
            }
        }
    }
}

#[test]
fn count_stops_after_n_verdicts() {
    let Some(dir) = public_pcaps() else { return };
    let file = dir.join("ndpi__alexa-app.pcapng");
    if !file.exists() {
        eprintln!("skipped: {} is absent", file.display());
        return;
    }
    let all = bin().arg("-r").arg(&file).output().expect("run");
    let n = all.stdout.iter().filter(|&&b| b == b'\n').count();
    let o = bin()
        .arg("-r")
        .arg(&file)
        .args(["-c", "2"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first_two: Vec<&[u8]> = all
        .stdout
        .split_inclusive(|&b| b == b'\n')
        .take(2)
        .collect();
    assert_eq!(
        o.stdout,
        first_two.concat(),
        "-c 2 must print the first two of {n} verdicts"
    );
}

/// `mtlsniff ... | head -1`: the reader goes away; mtlsniff exits 0 and
/// says nothing on stderr.
#[test]
fn broken_pipe_exits_0_quietly() {
    let Some(dir) = public_pcaps() else { return };
    // The file with the most verdicts, so writes outlast the reader.
    let file = [
        "ndpi__alexa-app.pcapng",
        "suricata__tls-subjectaltname.pcap",
        "zeek__http-get.pcap",
    ]
    .iter()
    .map(|f| dir.join(f))
    .find(|p| p.exists());
    let Some(file) = file else {
        eprintln!("skipped: no fixture pcap found");
        return;
    };
    for read_lines in [0, 1] {
        let mut child = bin()
            .arg("-r")
            .arg(&file)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        for _ in 0..read_lines {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
        }
        drop(reader); // close the read end, like head exiting
        let o = child.wait_with_output().expect("wait");
        assert_eq!(
            o.status.code(),
            Some(0),
            "read {read_lines}: {}",
            stderr(&o)
        );
        let err = stderr(&o);
        // Either the pipe broke (quiet), or everything fit in the pipe
        // before it closed (then the summary is printed): never an error.
        assert!(
            !err.to_lowercase().contains("error") && !err.contains("panicked"),
            "read {read_lines}: {err}"
        );
    }
}

/// Our own fixture, by name.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// mtlsniff reading `-r -` with `args`, its three streams piped.
fn on_stdin(args: &[&str]) -> std::process::Child {
    bin()
        .args(["-r", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// `mtlsniff -r - ARGS` with `input` on stdin (closed after it), and
/// `mtlsniff -r FILE ARGS` on the same bytes.
fn stdin_and_file(input: &[u8], args: &[&str]) -> (Output, Output) {
    let path = scratch("stdin-and-file.pcap", input);
    let mut child = on_stdin(args);
    let mut stdin = child.stdin.take().expect("stdin");
    // A reader that stops early (an error) closes the pipe: not our failure.
    let _ = stdin.write_all(input);
    drop(stdin);
    let piped = child.wait_with_output().expect("wait");
    let file = bin()
        .arg("-r")
        .arg(&path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let _ = std::fs::remove_file(&path);
    (piped, file)
}

#[test]
fn a_quiet_pipe_shows_verdicts_before_it_ends() {
    // tcpdump -U -w - | mtlsniff -r -: the packets so far are all there,
    // the writer is still alive, no more come. libpcap's reader would sit
    // on them until more packet time or the end.
    let bytes = std::fs::read(demo()).expect("read demo");
    let mut child = on_stdin(&["-l"]);
    let mut stdin = child.stdin.take().expect("stdin");
    // Half now (some flows complete), the rest after the first line.
    let half = bytes.len() / 2;
    stdin.write_all(&bytes[..half]).expect("feed");
    stdin.flush().expect("flush");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(std::time::Duration::from_secs(20));
    let first = first.expect("no verdict line within 20 s while the pipe was open and quiet");
    assert!(first.contains(" IP 127.0.0.1:"), "{first}");
    stdin.write_all(&bytes[half..]).expect("feed the rest");
    drop(stdin);
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    let rest: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(0));
    // Every flow once, as the file gives them.
    let file = run(&["-r", demo().to_str().expect("utf-8 path")]);
    let from_file = String::from_utf8_lossy(&file.stdout);
    let mut piped: Vec<String> = std::iter::once(first).chain(rest).collect();
    let mut expected: Vec<String> = from_file.lines().map(str::to_string).collect();
    piped.sort();
    expected.sort();
    assert_eq!(piped, expected);
}

#[test]
fn pcapng_secrets_on_stdin_decrypt_as_from_the_file() {
    let name = "tls13-openssl-mtls-dsb.pcapng";
    let bytes = std::fs::read(fixture(name)).expect("read fixture");
    let (piped, file) = stdin_and_file(&bytes, &["--json", "-v"]);
    assert_eq!(piped.status.code(), Some(0), "{}", stderr(&piped));
    let out = String::from_utf8_lossy(&piped.stdout);
    assert!(out.contains("\"basis\":\"decrypted\""), "{out}");
    assert_eq!(piped.stdout, file.stdout);
    // Every secret the file's blocks gave (the labels a verdict uses: 4 for
    // TLS 1.3 with the client's traffic secret) came from stdin too.
    assert!(
        stderr(&piped).contains("keylog.secrets_from_capture=4"),
        "{}",
        stderr(&piped)
    );
}

#[test]
fn stdin_keeps_the_capture_filter_and_both_formats() {
    let demo_bytes = std::fs::read(demo()).expect("read demo");
    let (piped, file) = stdin_and_file(&demo_bytes, &["port", "47245"]);
    assert_eq!(piped.status.code(), Some(0), "{}", stderr(&piped));
    assert_eq!(piped.stdout, file.stdout);
    assert_eq!(String::from_utf8_lossy(&piped.stdout).lines().count(), 2);
    let bad = stdin_and_file(&demo_bytes, &["port", "nonsense"]).0;
    assert_one_line_error(&bad, "bad capture filter");
}

#[test]
fn damaged_stdin_is_one_line_naming_the_offset() {
    let bytes = std::fs::read(demo()).expect("read demo");
    let (cut, _) = stdin_and_file(&bytes[..3000], &["-q"]);
    assert_eq!(cut.status.code(), Some(1), "{}", stderr(&cut));
    let err = stderr(&cut);
    assert!(
        err.contains("truncated record at byte 2164") && err.contains("damaged or truncated"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    for garbage in [&b""[..], b"not a capture at all, just words", &bytes[..10]] {
        let (o, _) = stdin_and_file(garbage, &[]);
        assert_eq!(o.status.code(), Some(1));
        assert_one_line_error(&o, "stdin is not a pcap or pcapng capture");
    }
}

#[test]
fn ctrl_c_on_a_pipe_reports_what_was_read() {
    // `tcpdump -U -w - | mtlsniff -r -`, then Ctrl-C: the verdicts so far
    // and the summary, exit 0, as a live capture stops.
    let bytes = std::fs::read(demo()).expect("read demo");
    let mut child = on_stdin(&[]);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&bytes).expect("feed");
    stdin.flush().expect("flush");
    // Past a quiet tick: everything written has been read.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let o = child.wait_with_output().expect("wait");
    drop(stdin);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let file = run(&["-r", demo().to_str().expect("utf-8 path")]);
    assert_eq!(o.stdout, file.stdout);
    assert!(stderr(&o).contains("packets"), "no summary: {}", stderr(&o));
}
