//! Processes a test starts and talks to over loopback: a child that is
//! ended when dropped (`Reaped`), mtlsniff serving `/metrics` on a port it
//! chose (`start_with_metrics`), a real Prometheus scraping it
//! (`start_prometheus`), and a plain HTTP GET. Std only, like the rest of
//! `support`; it starts only what the caller asks for, and only on
//! 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A process ended (and waited for) when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `mtlsniff` (a command with its arguments) with `--metrics
/// 127.0.0.1:0` and return it with the address it printed on stderr.
pub fn start_with_metrics(mut mtlsniff: Command) -> (Reaped, SocketAddr) {
    let mut child = mtlsniff
        .args(["--metrics", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mtlsniff");
    let stderr = child.stderr.take().expect("stderr");
    let child = Reaped(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("mtlsniff ended before printing the metrics address")
            .expect("read stderr");
        if let Some(rest) = line.strip_prefix("mtlsniff: metrics on http://") {
            break rest
                .trim_end_matches("/metrics")
                .parse()
                .expect("an address");
        }
    };
    // Keep reading stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// A free loopback port (bound, then released for the process we start).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Start the `prometheus` binary with `config`, its data and its log
/// (`prometheus.log`) in `dir`, its web API on a free loopback port.
pub fn start_prometheus(prometheus: &Path, config: &Path, dir: &Path) -> (Reaped, SocketAddr) {
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus.log");
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    (Reaped(child), web)
}

/// Which HTTP a request speaks. Prometheus answers HTTP/1.0 without
/// chunked encoding, which a test reading to EOF needs; tiny_http answers
/// HTTP/1.1 with `Connection: close` the same way.
#[derive(Debug, Clone, Copy)]
pub enum Http {
    V10,
    V11,
}

/// GET `path` over loopback: the status line and the body, or None when
/// the server cannot be reached or answers no HTTP.
pub fn http_get(addr: SocketAddr, path: &str, http: Http) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    match http {
        Http::V10 => write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n"),
        Http::V11 => write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ),
    }
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.lines().next().unwrap_or_default().to_string();
    Some((status, body.to_string()))
}

/// The body of a 200 answer to an HTTP/1.0 GET of `path`, or None.
pub fn http_get_ok(addr: SocketAddr, path: &str) -> Option<String> {
    http_get(addr, path, Http::V10)
        .filter(|(status, _)| status.split(' ').nth(1) == Some("200"))
        .map(|(_, body)| body)
}
