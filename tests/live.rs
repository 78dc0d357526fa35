//! Live capture end to end: two network namespaces joined by a veth pair, real
//! `openssl s_server`/`s_client` TLS 1.2 and 1.3 (with and without a client
//! certificate) and one plaintext HTTP request across it, captured at the same
//! time by `mtlsniff -i` and by `tcpdump -w`. The verdicts printed live must be
//! the same as those `mtlsniff -r` prints from tcpdump's file.
//!
//! Needs root (network namespaces, raw capture), `ip`, `openssl`, `tcpdump` and
//! `python3` (plaintext HTTP server); without them the test prints `SKIP: ...`
//! on stderr and passes. Everything it creates (namespaces `mtls-srv-<pid>` and
//! `mtls-cli-<pid>`, the veth pair between them, 10.199.x.0/24 addresses inside
//! those namespaces only, a temp dir, its child processes) is removed by a Drop
//! guard, also on panic. Run: `cargo test --test live -- --nocapture`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const MTLS_PORT: u16 = 8443; // s_server -Verify 1: client certificate required
const TLS_PORT: u16 = 8444; // s_server without client-certificate request
const HTTP_PORT: u16 = 8080; // python3 -m http.server
/// Hard cap on the whole test; every individual wait is much shorter.
const TEST_BUDGET: Duration = Duration::from_secs(55);
/// How long a live capture may take to stop after SIGINT (its read timeout is 250 ms).
const SIGINT_GRACE: Duration = Duration::from_secs(3);
/// How long after the last flow closes its verdict may take to appear with -l.
const VERDICT_GRACE: Duration = Duration::from_secs(3);
const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

fn skip(why: &str) {
    eprintln!("SKIP: live capture test: {why}");
}

/// `name` on PATH or in the usual sbin directories (`ip` is in /usr/sbin,
/// which a non-login PATH may lack).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Run to completion, returning stdout or a message with stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Text a child writes to a pipe, collected by a thread.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<String>>);

impl Sink {
    fn collect(pipe: impl Read + Send + 'static) -> Sink {
        let sink = Sink::default();
        let s = sink.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut line = String::new();
            while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                s.0.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        sink
    }
    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Sink,
    err: Sink,
}

/// Everything this test created; Drop undoes it in reverse: processes (by PID),
/// namespaces (which takes the veth pair with them), the temp dir.
struct Lab {
    ip: PathBuf,
    namespaces: Vec<String>,
    dir: PathBuf,
    procs: Vec<Proc>,
    deadline: Instant,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            if matches!(p.child.try_wait(), Ok(None)) {
                let _ = p.child.kill(); // SIGKILL to this child's PID only
            }
            let _ = p.child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new(&self.ip)
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// `ip netns exec NS prog args...`, stdout/stderr collected. `ip netns exec`
    /// execs the program, so the child's PID is the program's PID.
    fn spawn(&mut self, name: &str, ns: &str, prog: &Path, args: &[&str]) -> usize {
        let mut child = Command::new(&self.ip)
            .args(["netns", "exec", ns])
            .arg(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let out = Sink::collect(child.stdout.take().unwrap());
        let err = Sink::collect(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            stdin,
            out,
            err,
        });
        self.procs.len() - 1
    }

    fn describe(&self, i: usize) -> String {
        let p = &self.procs[i];
        format!(
            "--- {} (pid {}) stdout:\n{}\n--- {} stderr:\n{}",
            p.name,
            p.child.id(),
            p.out.text(),
            p.name,
            p.err.text()
        )
    }

    /// Wait until `pattern` appears in the child's stdout or stderr; fail if it
    /// exits first or `timeout` passes.
    fn wait_for(&mut self, i: usize, pattern: &str, timeout: Duration) {
        let end = Instant::now() + timeout.min(self.left());
        loop {
            let p = &mut self.procs[i];
            if p.out.text().contains(pattern) || p.err.text().contains(pattern) {
                return;
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                thread::sleep(Duration::from_millis(100)); // let the readers finish
                panic!("exited ({st}) before {pattern:?}\n{}", self.describe(i));
            }
            if Instant::now() >= end {
                panic!("timed out waiting for {pattern:?}\n{}", self.describe(i));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the child to exit (bounded), returning whether it succeeded.
    fn wait_exit(&mut self, i: usize, timeout: Duration) -> bool {
        self.try_wait_exit(i, timeout).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {timeout:?}\n{}",
                self.procs[i].name,
                self.describe(i)
            )
        })
    }

    /// Like `wait_exit`, but `None` if the child is still running at the end.
    fn try_wait_exit(&mut self, i: usize, timeout: Duration) -> Option<bool> {
        let end = Instant::now() + timeout.min(self.left());
        loop {
            match self.procs[i].child.try_wait() {
                Ok(Some(st)) => {
                    thread::sleep(Duration::from_millis(100)); // let the readers finish
                    return Some(st.success());
                }
                Ok(None) if Instant::now() < end => thread::sleep(Duration::from_millis(50)),
                _ => return None,
            }
        }
    }

    /// SIGINT to this child's PID (how a user stops a live capture).
    fn interrupt(&self, i: usize) {
        let pid = self.procs[i].child.id().to_string();
        run(Command::new("kill").args(["-INT", &pid])).expect("kill -INT");
    }
}

/// flow key (client, server) -> (class, outcome, basis, tls_version)
type Verdicts = BTreeMap<(String, String), [String; 4]>;

fn parse_verdicts(jsonl: &str) -> Result<Verdicts, String> {
    let mut map = Verdicts::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("bad JSON line {line:?}: {e}"))?;
        let field = |k: &str| match &v[k] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(), // null stays "null"
        };
        let key = (field("client"), field("server"));
        let val = [
            field("class"),
            field("outcome"),
            field("basis"),
            field("tls_version"),
        ];
        if map.insert(key.clone(), val).is_some() {
            return Err(format!("flow {key:?} reported twice"));
        }
    }
    Ok(map)
}

#[test]
fn live_capture_matches_file() {
    let started = Instant::now();
    if !is_root() {
        return skip("not root (needs network namespaces and raw capture)");
    }
    let mut tools = BTreeMap::new();
    for t in ["ip", "openssl", "tcpdump", "python3"] {
        match find_tool(t) {
            Some(p) => {
                tools.insert(t, p);
            }
            None => return skip(&format!("`{t}` not found")),
        }
    }
    let (ip, openssl, tcpdump, python3) = (
        &tools["ip"],
        &tools["openssl"],
        &tools["tcpdump"],
        &tools["python3"],
    );
    let curl = find_tool("curl");
    let bash = find_tool("bash").unwrap_or_else(|| PathBuf::from("/bin/bash"));
    let mtlsniff = PathBuf::from(env!("CARGO_BIN_EXE_mtlsniff"));

    let pid = std::process::id();
    let ns_srv = format!("mtls-srv-{pid}");
    let ns_cli = format!("mtls-cli-{pid}");
    let (veth_srv, veth_cli) = (format!("mtv{pid}s"), format!("mtv{pid}c")); // <= 15 chars
    let net = 20 + pid % 200;
    let (srv_ip, cli_ip) = (format!("10.199.{net}.1"), format!("10.199.{net}.2"));
    let dir = std::env::temp_dir().join(format!("mtlsniff-live-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "hello from the live test\n").unwrap();

    let mut lab = Lab {
        ip: ip.clone(),
        namespaces: Vec::new(),
        dir: dir.clone(),
        procs: Vec::new(),
        deadline: started + TEST_BUDGET,
    };

    // Namespaces first: if the kernel or container will not let root make one,
    // that is an environment limit, not a failure of mtlsniff.
    for ns in [&ns_srv, &ns_cli] {
        if let Err(e) = run(Command::new(ip).args(["netns", "add", ns])) {
            return skip(&format!("cannot create a network namespace: {e}"));
        }
        lab.namespaces.push(ns.clone());
        // No IPv6 inside: no router solicitations or MLD reports, so the veth
        // is silent once the test's own flows are done (see the SIGINT check).
        for conf in ["all", "default"] {
            let knob = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
            let _ = run(Command::new(ip)
                .args(["netns", "exec", ns, "sh", "-c"])
                .arg(format!("[ ! -e {knob} ] || echo 1 > {knob}")));
        }
    }
    // The veth pair is created directly inside the two namespaces: nothing
    // appears on, or is addressed on, the host's side.
    let ns_ip = |ns: &str, args: &[&str]| {
        run(Command::new(ip).args(["-n", ns]).args(args)).unwrap_or_else(|e| panic!("{e}"));
    };
    run(Command::new(ip).args([
        "link", "add", &veth_srv, "netns", &ns_srv, "type", "veth", "peer", "name", &veth_cli,
        "netns", &ns_cli,
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    for (ns, veth, addr) in [(&ns_srv, &veth_srv, &srv_ip), (&ns_cli, &veth_cli, &cli_ip)] {
        ns_ip(ns, &["addr", "add", &format!("{addr}/24"), "dev", veth]);
        ns_ip(ns, &["link", "set", "lo", "up"]);
        ns_ip(ns, &["link", "set", veth, "up"]);
    }

    // Throw-away P-256 PKI.
    let pki = env!("CARGO_MANIFEST_DIR").to_string() + "/tests/live/mkpki.sh";
    run(Command::new(&bash).args([pki.as_str(), dir.to_str().unwrap(), srv_ip.as_str()]))
        .unwrap_or_else(|e| panic!("PKI generation failed: {e}"));
    let f = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let (ca, srv_cert, srv_key, cli_cert, cli_key) = (
        f("ca.pem"),
        f("server.pem"),
        f("server-key.pem"),
        f("client.pem"),
        f("client-key.pem"),
    );

    // Servers.
    let accept = |port: u16| format!("{srv_ip}:{port}");
    let (a_mtls, a_tls) = (accept(MTLS_PORT), accept(TLS_PORT));
    let s_mtls = lab.spawn(
        "s_server (client cert required)",
        &ns_srv,
        openssl,
        &[
            "s_server", "-accept", &a_mtls, "-cert", &srv_cert, "-key", &srv_key, "-CAfile", &ca,
            "-Verify", "1", "-www",
        ],
    );
    let s_tls = lab.spawn(
        "s_server (no client cert)",
        &ns_srv,
        openssl,
        &[
            "s_server", "-accept", &a_tls, "-cert", &srv_cert, "-key", &srv_key, "-www",
        ],
    );
    let port = HTTP_PORT.to_string();
    let www = f("www");
    let s_http = lab.spawn(
        "python3 http.server",
        &ns_srv,
        python3,
        &[
            "-u",
            "-m",
            "http.server",
            &port,
            "--bind",
            &srv_ip,
            "--directory",
            &www,
        ],
    );
    lab.wait_for(s_mtls, "ACCEPT", Duration::from_secs(10));
    lab.wait_for(s_tls, "ACCEPT", Duration::from_secs(10));
    lab.wait_for(s_http, "Serving HTTP", Duration::from_secs(10));

    // Both captures on the server's end of the veth, started together.
    let pcap = f("live.pcap");
    let dump = lab.spawn(
        "tcpdump",
        &ns_srv,
        tcpdump,
        &[
            "-i",
            &veth_srv,
            "-n",
            "-s",
            "0",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-w",
            &pcap,
        ],
    );
    let sniff = lab.spawn(
        "mtlsniff -i",
        &ns_srv,
        &mtlsniff,
        &["-i", &veth_srv, "--json", "-l"],
    );
    lab.wait_for(dump, "listening on", Duration::from_secs(10));
    // mtlsniff logs nothing when its capture is open: give it a moment, and
    // make sure it is still running.
    thread::sleep(Duration::from_millis(1500));
    if let Ok(Some(st)) = lab.procs[sniff].child.try_wait() {
        thread::sleep(Duration::from_millis(100));
        panic!("mtlsniff -i exited early ({st})\n{}", lab.describe(sniff));
    }

    // Clients, one at a time, each bounded.
    let clients: [(&str, &str, &str, bool); 4] = [
        ("TLS 1.3 with client cert", &a_mtls, "-tls1_3", true),
        ("TLS 1.3 no client cert", &a_tls, "-tls1_3", false),
        ("TLS 1.2 with client cert", &a_mtls, "-tls1_2", true),
        ("TLS 1.2 no client cert", &a_tls, "-tls1_2", false),
    ];
    for (name, target, version, with_cert) in clients {
        let mut args = vec![
            "s_client",
            "-connect",
            target,
            version,
            "-CAfile",
            &ca,
            "-verify_return_error",
            "-ign_eof",
        ];
        if with_cert {
            args.extend(["-cert", cli_cert.as_str(), "-key", cli_key.as_str()]);
        }
        let c = lab.spawn(&format!("s_client {name}"), &ns_cli, openssl, &args);
        let mut stdin = lab.procs[c].stdin.take().unwrap();
        stdin.write_all(REQUEST).unwrap();
        drop(stdin); // -ign_eof: s_client reads the answer until the server closes
        let ok = lab.wait_exit(c, Duration::from_secs(10));
        let out = lab.procs[c].out.text();
        assert!(
            ok && out.contains("HTTP/1.0 200"),
            "client {name} failed\n{}",
            lab.describe(c)
        );
    }
    let url = format!("http://{srv_ip}:{HTTP_PORT}/");
    let c = match &curl {
        Some(curl) => lab.spawn(
            "curl (plaintext HTTP)",
            &ns_cli,
            curl,
            &["-sS", "--max-time", "10", "-o", "/dev/null", &url],
        ),
        None => {
            let script = format!(
                "exec 3<>/dev/tcp/{srv_ip}/{HTTP_PORT}; \
                 printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3 >/dev/null"
            );
            lab.spawn("bash (plaintext HTTP)", &ns_cli, &bash, &["-c", &script])
        }
    };
    assert!(
        lab.wait_exit(c, Duration::from_secs(10)),
        "plaintext client failed\n{}",
        lab.describe(c)
    );

    // Live problems found below are collected, the verdict comparison still
    // runs, and the test fails at the end with all of them.
    let mut live_faults: Vec<String> = Vec::new();
    // With -l, each flow's verdict should be printed soon after the flow ends
    // (all five have closed by now), without waiting for more traffic.
    let flows = 5;
    let end = Instant::now() + VERDICT_GRACE;
    while lab.procs[sniff].out.text().lines().count() < flows && Instant::now() < end {
        thread::sleep(Duration::from_millis(50));
    }
    let printed = lab.procs[sniff].out.text().lines().count();
    if printed < flows {
        live_faults.push(format!(
            "with -l, mtlsniff -i had printed only {printed} of {flows} verdicts \
             {VERDICT_GRACE:?} after the last flow closed (the interface was idle \
             from then on)"
        ));
    }
    thread::sleep(Duration::from_secs(1)); // the last ACKs, for tcpdump
    // Stop both captures with SIGINT: tcpdump first, so that nothing after
    // this point is in the file.
    lab.interrupt(dump);
    lab.wait_exit(dump, Duration::from_secs(10));
    // The interface is now idle. A live capture must still stop promptly on
    // SIGINT, flush its verdicts and print its summary.
    lab.interrupt(sniff);
    let sniff_ok = match lab.try_wait_exit(sniff, SIGINT_GRACE) {
        Some(ok) => ok,
        None => {
            // Note it, then wake the capture with one UDP datagram (not TCP, so
            // no flow) to see whether the rest works; the test fails at the end.
            live_faults.push(format!(
                "mtlsniff -i did not exit within {SIGINT_GRACE:?} of SIGINT on an idle \
                 interface; it exited only after another packet arrived \
                 (likely blocked in pcap_next_ex: on Linux TPACKET_V3 the libpcap read \
                 timeout does not fire when no packets arrive)"
            ));
            let script = format!("echo wake > /dev/udp/{srv_ip}/9");
            let w = lab.spawn("bash (UDP wake-up)", &ns_cli, &bash, &["-c", &script]);
            lab.wait_exit(w, Duration::from_secs(5));
            match lab.try_wait_exit(sniff, Duration::from_secs(5)) {
                Some(ok) => ok,
                None => panic!(
                    "mtlsniff -i ignores SIGINT even after a packet\n{}",
                    lab.describe(sniff)
                ),
            }
        }
    };
    assert!(
        sniff_ok,
        "mtlsniff -i did not exit cleanly on SIGINT\n{}",
        lab.describe(sniff)
    );
    let live_out = lab.procs[sniff].out.text();

    let file = Command::new(&mtlsniff)
        .args(["-r", &pcap, "--json"])
        .stdin(Stdio::null())
        .output()
        .expect("mtlsniff -r");
    let file_out = String::from_utf8_lossy(&file.stdout).into_owned();
    let report = format!(
        "=== live (mtlsniff -i {veth_srv} --json -l) ===\n{live_out}\n{}\n\
         === file (mtlsniff -r {pcap} --json) ===\n{file_out}\n--- stderr:\n{}",
        lab.procs[sniff].err.text(),
        String::from_utf8_lossy(&file.stderr)
    );
    assert!(file.status.success(), "mtlsniff -r failed\n{report}");
    eprintln!("{report}");

    let live = parse_verdicts(&live_out).unwrap_or_else(|e| panic!("live: {e}\n{report}"));
    let from_file = parse_verdicts(&file_out).unwrap_or_else(|e| panic!("file: {e}\n{report}"));
    assert_eq!(
        live, from_file,
        "live verdicts differ from the file's\n{report}"
    );

    // Expected classes, by server port (client ports are ephemeral).
    let mut by_port: BTreeMap<u16, Vec<(String, String)>> = BTreeMap::new();
    for ((_, server), [class, _, _, version]) in &live {
        let port = server.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        assert!(
            server.starts_with(&srv_ip),
            "unexpected flow to {server}\n{report}"
        );
        by_port
            .entry(port)
            .or_default()
            .push((class.clone(), version.clone()));
    }
    for v in by_port.values_mut() {
        v.sort();
    }
    let pair = |c: &str, v: &str| (c.to_string(), v.to_string());
    let expected = BTreeMap::from([
        (HTTP_PORT, vec![pair("plaintext", "null")]),
        (MTLS_PORT, vec![pair("mtls", "1.2"), pair("mtls", "1.3")]),
        (TLS_PORT, vec![pair("tls", "1.2"), pair("tls", "1.3")]),
    ]);
    assert_eq!(
        by_port, expected,
        "unexpected verdicts (port -> [(class, tls_version)])\n{report}"
    );

    assert!(
        live_faults.is_empty(),
        "live mode: {}\n(the verdicts themselves match the file's)\n{report}",
        live_faults.join("\nlive mode: ")
    );
    eprintln!("live test passed in {:.1?}", started.elapsed());
}
