//! A stand-in for the Kubernetes API server, for the `--k8s` tests: a
//! small HTTP/1.1 server on 127.0.0.1 that answers the two requests the
//! pods watch makes, list (`GET /api/v1/pods`, a PodList) and watch (`GET
//! /api/v1/pods?watch=true`, newline-delimited watch events, chunked, held
//! open), with Pod objects in the API's schema. It is not a cluster: no
//! authentication, no resource versions beyond one counter, no other
//! resources. A test sets what it answers (`Answer`) and pushes watch
//! events (`send`).
//!
//! Shared by tests/k8s_watch.rs and tests/deploy.rs through
//! `#[path = "kube_stand_in/mod.rs"] mod kube_stand_in;`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// What the stand-in answers to every request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A PodList of these items; watches stay open for `send`.
    Pods(Vec<Value>),
    /// This HTTP status with a `Status` body (401, 403, ...).
    Status(u16),
}

/// The running stand-in. Dropping it stops accepting; its threads end
/// with the test process.
pub struct StandIn {
    pub addr: SocketAddr,
    watches: Arc<Mutex<Vec<Sender<String>>>>,
    /// Requests seen (method and target), in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    pub fn start(answer: Answer) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        let addr = listener.local_addr().unwrap();
        let watches: Arc<Mutex<Vec<Sender<String>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (w, r) = (Arc::clone(&watches), Arc::clone(&requests));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (answer, w, r) = (answer.clone(), Arc::clone(&w), Arc::clone(&r));
                std::thread::spawn(move || serve(conn, &answer, &w, &r));
            }
        });
        StandIn {
            addr,
            watches,
            requests,
        }
    }

    /// A kubeconfig pointing at the stand-in over plain http, written in
    /// `dir` (readable by everyone: a test may run mtlsniff as another
    /// user).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "stand-in", "cluster": {"server": format!("http://{}", self.addr)}}],
            "users": [{"name": "tester", "user": {"token": "stand-in-token"}}],
            "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "tester"}}],
            "current-context": "stand-in"
        });
        let path = dir.join("kubeconfig");
        std::fs::write(&path, config.to_string()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// A watch event (`ADDED`, `MODIFIED`, `DELETED`) to every open watch;
    /// how many watches got it.
    pub fn send(&self, kind: &str, pod: &Value) -> usize {
        let line = json!({"type": kind, "object": pod}).to_string();
        let mut watches = self.watches.lock().unwrap();
        watches.retain(|tx| tx.send(line.clone()).is_ok());
        watches.len()
    }

    /// Open watches.
    pub fn watching(&self) -> usize {
        self.watches.lock().unwrap().len()
    }
}

fn serve(
    conn: TcpStream,
    answer: &Answer,
    watches: &Mutex<Vec<Sender<String>>>,
    requests: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut head = String::new();
        if reader.read_line(&mut head).unwrap_or(0) == 0 {
            return;
        }
        // The rest of the request head; pods requests have no body.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
        requests.lock().unwrap().push(head.trim_end().to_string());
        let done = match answer {
            Answer::Status(code) => respond(&mut out, *code, &status(*code)),
            Answer::Pods(_) if !target.starts_with("/api/v1/pods") => {
                respond(&mut out, 404, &status(404))
            }
            Answer::Pods(_) if target.contains("watch=true") || target.contains("watch=1") => {
                let (tx, rx) = channel();
                watches.lock().unwrap().push(tx);
                stream_watch(&mut out, &rx);
                return;
            }
            Answer::Pods(items) => {
                let list = json!({
                    "apiVersion": "v1", "kind": "PodList",
                    "metadata": {"resourceVersion": "1000"},
                    "items": items,
                });
                respond(&mut out, 200, &list.to_string())
            }
        };
        if done.is_err() {
            return;
        }
    }
}

fn status(code: u16) -> String {
    let reason = match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        _ => "InternalError",
    };
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("pods is {reason} (stand-in)"), "reason": reason, "code": code
    })
    .to_string()
}

fn respond(out: &mut TcpStream, code: u16, body: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// The watch response: chunked, one event per chunk, open until the test
/// process ends (or the client goes).
fn stream_watch(out: &mut TcpStream, events: &Receiver<String>) {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if out
        .write_all(head.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    loop {
        match events.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                let chunk = format!("{line}\n");
                let sent =
                    write!(out, "{:x}\r\n{chunk}\r\n", chunk.len()).and_then(|()| out.flush());
                if sent.is_err() {
                    return;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The pods of `fixtures/k8s/pods.json` (the `--k8s-pods` fixture), as
/// the stand-in's list.
pub fn fixture_pods(path: &Path) -> Vec<Value> {
    let list: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    list["items"].as_array().unwrap().clone()
}
