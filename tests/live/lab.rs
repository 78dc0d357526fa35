//! The live lab shared by tests/live.rs and tests/image.rs: two network
//! namespaces joined by a veth pair, real `openssl s_server`/`s_client`
//! TLS 1.2 and 1.3 (with and without a client certificate) and one
//! plaintext HTTP request across it, a `tcpdump -w` on the server's end,
//! and the verdicts those five flows must get. Each test brings its own
//! live capture (the host binary, or the image under podman) and compares
//! it with `mtlsniff -r` of tcpdump's file.
//!
//! Everything the lab creates (namespaces `<tag>-srv-<pid>` and
//! `<tag>-cli-<pid>`, the veth pair made directly inside them, 10.199.x.0/24
//! addresses inside those namespaces only, a temp dir, its child processes)
//! is removed by `Lab`'s Drop, also on panic; children are ended by their
//! PID. Nothing is addressed or sent outside the two namespaces.
//! Included by `#[path = "live/lab.rs"] mod lab;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const MTLS_PORT: u16 = 8443; // s_server -Verify 1: client certificate required
pub const TLS_PORT: u16 = 8444; // s_server without client-certificate request
pub const HTTP_PORT: u16 = 8080; // python3 -m http.server
/// The flows `run_clients` makes.
pub const FLOWS: usize = 5;
const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

/// `name` on PATH or in the usual sbin directories (`ip` is in /usr/sbin,
/// which a non-login PATH may lack).
pub fn find_tool(name: &str) -> Option<PathBuf> {
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

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Run to completion, returning stdout or a message with stderr.
pub fn run(cmd: &mut Command) -> Result<String, String> {
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
pub struct Sink(Arc<Mutex<String>>);

impl Sink {
    pub fn collect(pipe: impl Read + Send + 'static) -> Sink {
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
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

pub struct Proc {
    pub name: String,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub out: Sink,
    pub err: Sink,
}

/// Everything this test created; Drop undoes it in reverse: processes (by PID),
/// namespaces (which takes the veth pair with them), the temp dir.
pub struct Lab {
    pub ip: PathBuf,
    pub namespaces: Vec<String>,
    pub dir: PathBuf,
    pub procs: Vec<Proc>,
    pub deadline: Instant,
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
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// `ip netns exec NS prog args...`, stdout/stderr collected. `ip netns exec`
    /// execs the program, so the child's PID is the program's PID.
    pub fn spawn(&mut self, name: &str, ns: &str, prog: &Path, args: &[&str]) -> usize {
        let mut cmd = Command::new(&self.ip);
        cmd.args(["netns", "exec", ns]).arg(prog).args(args);
        self.spawn_command(name, cmd)
    }

    /// Start `cmd` with its stdio piped, stdout/stderr collected; the Drop
    /// guard ends it by its PID.
    pub fn spawn_command(&mut self, name: &str, mut cmd: Command) -> usize {
        let mut child = cmd
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

    pub fn describe(&self, i: usize) -> String {
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
    pub fn wait_for(&mut self, i: usize, pattern: &str, timeout: Duration) {
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
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> bool {
        self.try_wait_exit(i, timeout).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {timeout:?}\n{}",
                self.procs[i].name,
                self.describe(i)
            )
        })
    }

    /// Like `wait_exit`, but `None` if the child is still running at the end.
    pub fn try_wait_exit(&mut self, i: usize, timeout: Duration) -> Option<bool> {
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
    pub fn interrupt(&self, i: usize) {
        let pid = self.procs[i].child.id().to_string();
        run(Command::new("kill").args(["-INT", &pid])).expect("kill -INT");
    }
}

/// flow key (client, server) -> (class, outcome, basis, tls_version)
pub type Verdicts = BTreeMap<(String, String), [String; 4]>;

pub fn parse_verdicts(jsonl: &str) -> Result<Verdicts, String> {
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

/// The programs the lab runs.
pub struct Tools {
    pub ip: PathBuf,
    pub openssl: PathBuf,
    pub tcpdump: PathBuf,
    pub python3: PathBuf,
    pub curl: Option<PathBuf>,
    pub bash: PathBuf,
}

impl Tools {
    /// All of them, or the name of the one missing (a reason to skip).
    pub fn find() -> Result<Tools, String> {
        let need = |t: &str| find_tool(t).ok_or_else(|| format!("`{t}` not found"));
        Ok(Tools {
            ip: need("ip")?,
            openssl: need("openssl")?,
            tcpdump: need("tcpdump")?,
            python3: need("python3")?,
            curl: find_tool("curl"),
            bash: find_tool("bash").unwrap_or_else(|| PathBuf::from("/bin/bash")),
        })
    }
}

/// The two namespaces, their veth ends and addresses, and the PKI's files.
pub struct Net {
    pub ns_srv: String,
    pub ns_cli: String,
    pub veth_srv: String,
    pub veth_cli: String,
    pub srv_ip: String,
    pub cli_ip: String,
}

impl Lab {
    /// The namespaces, the veth pair and a throw-away PKI; `Err` when the
    /// kernel or container will not let root make a namespace (an
    /// environment limit, a reason to skip). `tag` (<= 6 chars) keeps two
    /// tests' names apart.
    pub fn build(tools: &Tools, tag: &str, budget: Duration) -> Result<(Lab, Net), String> {
        let started = Instant::now();
        let ip = &tools.ip;
        let pid = std::process::id();
        let net = Net {
            ns_srv: format!("{tag}-srv-{pid}"),
            ns_cli: format!("{tag}-cli-{pid}"),
            veth_srv: format!("{tag}{pid}s"),
            veth_cli: format!("{tag}{pid}c"),
            srv_ip: format!("10.199.{}.1", 20 + pid % 200),
            cli_ip: format!("10.199.{}.2", 20 + pid % 200),
        };
        assert!(
            net.veth_srv.len() <= 15,
            "interface name {} too long",
            net.veth_srv
        );
        let dir = std::env::temp_dir().join(format!("mtlsniff-{tag}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/index.html"), "hello from the live test\n").unwrap();
        let mut lab = Lab {
            ip: ip.clone(),
            namespaces: Vec::new(),
            dir,
            procs: Vec::new(),
            deadline: started + budget,
        };
        for ns in [&net.ns_srv, &net.ns_cli] {
            run(Command::new(ip).args(["netns", "add", ns]))
                .map_err(|e| format!("cannot create a network namespace: {e}"))?;
            lab.namespaces.push(ns.clone());
            // No IPv6 inside: no router solicitations or MLD reports, so the
            // veth is silent once the test's own flows are done.
            for conf in ["all", "default"] {
                let knob = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
                let _ = run(Command::new(ip)
                    .args(["netns", "exec", ns, "sh", "-c"])
                    .arg(format!("[ ! -e {knob} ] || echo 1 > {knob}")));
            }
        }
        // The veth pair is created directly inside the two namespaces:
        // nothing appears on, or is addressed on, the host's side.
        let ns_ip = |ns: &str, args: &[&str]| {
            run(Command::new(ip).args(["-n", ns]).args(args)).unwrap_or_else(|e| panic!("{e}"));
        };
        run(Command::new(ip).args([
            "link",
            "add",
            &net.veth_srv,
            "netns",
            &net.ns_srv,
            "type",
            "veth",
            "peer",
            "name",
            &net.veth_cli,
            "netns",
            &net.ns_cli,
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        for (ns, veth, addr) in [
            (&net.ns_srv, &net.veth_srv, &net.srv_ip),
            (&net.ns_cli, &net.veth_cli, &net.cli_ip),
        ] {
            ns_ip(ns, &["addr", "add", &format!("{addr}/24"), "dev", veth]);
            ns_ip(ns, &["link", "set", "lo", "up"]);
            ns_ip(ns, &["link", "set", veth, "up"]);
        }
        // Throw-away P-256 PKI.
        let pki = env!("CARGO_MANIFEST_DIR").to_string() + "/tests/live/mkpki.sh";
        run(Command::new(&tools.bash).args([
            pki.as_str(),
            lab.dir.to_str().unwrap(),
            net.srv_ip.as_str(),
        ]))
        .unwrap_or_else(|e| panic!("PKI generation failed: {e}"));
        Ok((lab, net))
    }

    /// A file in the lab's temp dir.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// The mTLS and TLS `s_server`s and the HTTP server, in the server's
    /// namespace, once they listen.
    pub fn start_servers(&mut self, tools: &Tools, net: &Net) {
        let (ca, cert, key, www) = (
            self.file("ca.pem"),
            self.file("server.pem"),
            self.file("server-key.pem"),
            self.file("www"),
        );
        let a_mtls = format!("{}:{MTLS_PORT}", net.srv_ip);
        let a_tls = format!("{}:{TLS_PORT}", net.srv_ip);
        let s_mtls = self.spawn(
            "s_server (client cert required)",
            &net.ns_srv,
            &tools.openssl,
            &[
                "s_server", "-accept", &a_mtls, "-cert", &cert, "-key", &key, "-CAfile", &ca,
                "-Verify", "1", "-www",
            ],
        );
        let s_tls = self.spawn(
            "s_server (no client cert)",
            &net.ns_srv,
            &tools.openssl,
            &[
                "s_server", "-accept", &a_tls, "-cert", &cert, "-key", &key, "-www",
            ],
        );
        let port = HTTP_PORT.to_string();
        let s_http = self.spawn(
            "python3 http.server",
            &net.ns_srv,
            &tools.python3,
            &[
                "-u",
                "-m",
                "http.server",
                &port,
                "--bind",
                &net.srv_ip,
                "--directory",
                &www,
            ],
        );
        self.wait_for(s_mtls, "ACCEPT", Duration::from_secs(10));
        self.wait_for(s_tls, "ACCEPT", Duration::from_secs(10));
        self.wait_for(s_http, "Serving HTTP", Duration::from_secs(10));
    }

    /// `tcpdump -w PCAP` on the server's end of the veth, once it listens.
    pub fn start_tcpdump(&mut self, tools: &Tools, net: &Net, pcap: &str) -> usize {
        let dump = self.spawn(
            "tcpdump",
            &net.ns_srv,
            &tools.tcpdump,
            &[
                "-i",
                &net.veth_srv,
                "-n",
                "-s",
                "0",
                "-U",
                "--immediate-mode",
                "-Z",
                "root",
                "-w",
                pcap,
            ],
        );
        self.wait_for(dump, "listening on", Duration::from_secs(10));
        dump
    }

    /// The `FLOWS` flows, one at a time, each bounded: TLS 1.3 and 1.2 with
    /// and without a client certificate, then plaintext HTTP (curl, or
    /// bash's /dev/tcp without it). Panics if a client fails.
    pub fn run_clients(&mut self, tools: &Tools, net: &Net) {
        let (ca, cli_cert, cli_key) = (
            self.file("ca.pem"),
            self.file("client.pem"),
            self.file("client-key.pem"),
        );
        let a_mtls = format!("{}:{MTLS_PORT}", net.srv_ip);
        let a_tls = format!("{}:{TLS_PORT}", net.srv_ip);
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
            let c = self.spawn(
                &format!("s_client {name}"),
                &net.ns_cli,
                &tools.openssl,
                &args,
            );
            let mut stdin = self.procs[c].stdin.take().unwrap();
            stdin.write_all(REQUEST).unwrap();
            drop(stdin); // -ign_eof: s_client reads the answer until the server closes
            let ok = self.wait_exit(c, Duration::from_secs(10));
            let out = self.procs[c].out.text();
            assert!(
                ok && out.contains("HTTP/1.0 200"),
                "client {name} failed\n{}",
                self.describe(c)
            );
        }
        let srv_ip = &net.srv_ip;
        let url = format!("http://{srv_ip}:{HTTP_PORT}/");
        let c = match &tools.curl {
            Some(curl) => self.spawn(
                "curl (plaintext HTTP)",
                &net.ns_cli,
                curl,
                &["-sS", "--max-time", "10", "-o", "/dev/null", &url],
            ),
            None => {
                let script = format!(
                    "exec 3<>/dev/tcp/{srv_ip}/{HTTP_PORT}; \
                     printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3 >/dev/null"
                );
                let bash = tools.bash.clone();
                self.spawn(
                    "bash (plaintext HTTP)",
                    &net.ns_cli,
                    &bash,
                    &["-c", &script],
                )
            }
        };
        assert!(
            self.wait_exit(c, Duration::from_secs(10)),
            "plaintext client failed\n{}",
            self.describe(c)
        );
    }

    /// Wait (bounded by `grace`) until child `i` has printed `lines` lines.
    pub fn printed_lines(&self, i: usize, lines: usize, grace: Duration) -> usize {
        let end = Instant::now() + grace;
        while self.procs[i].out.text().lines().count() < lines && Instant::now() < end {
            thread::sleep(Duration::from_millis(50));
        }
        self.procs[i].out.text().lines().count()
    }
}

/// A live capture's verdicts (`live_out`, JSON Lines; `what` names the
/// capture) against `mtlsniff -r` of tcpdump's file (`file_out`): the
/// same verdicts, and each the one the lab's flow must get.
pub fn check_live_against_file(
    what: &str,
    live_out: &str,
    file_out: &str,
    net: &Net,
    report: &str,
) {
    let live = parse_verdicts(live_out).unwrap_or_else(|e| {
        panic!(
            "{what}: {e}
{report}"
        )
    });
    let from_file = parse_verdicts(file_out).unwrap_or_else(|e| {
        panic!(
            "file: {e}
{report}"
        )
    });
    assert_eq!(
        live, from_file,
        "the {what} verdicts differ from the file's\n{report}"
    );
    check_expected(&live, net, report);
}

/// The verdicts the lab's flows must get, checked by server port (client
/// ports are ephemeral): plaintext on HTTP, mtls 1.2 and 1.3 on the mTLS
/// server, tls 1.2 and 1.3 on the other.
pub fn check_expected(verdicts: &Verdicts, net: &Net, report: &str) {
    let mut by_port: BTreeMap<u16, Vec<(String, String)>> = BTreeMap::new();
    for ((_, server), [class, _, _, version]) in verdicts {
        let port = server.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        assert!(
            server.starts_with(&net.srv_ip),
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
}
