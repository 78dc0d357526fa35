//! `--k8s` (issue 12 §3): the pods watch through the Kubernetes API, run
//! by the real binary against a stand-in API server (`kube_stand_in`: a
//! small HTTP server on 127.0.0.1 that speaks list and watch for pods, not
//! a cluster) reached through a kubeconfig over plain http.
//!
//! What it shows: the watch names the same workloads as `--k8s-pods` on
//! the same pods (text, JSON, close lines, `--expect --namespace`); a pod
//! added and deleted through the watch is seen (`mtlsniff_k8s_pods`);
//! 401, 403, an unreachable API and a missing config end the run with one
//! line saying what to do and exit 2; `--k8s` and `--k8s-pods` exclude
//! each other. What a real cluster adds (TLS, tokens, RBAC enforcement,
//! resource versions, watch timeouts) is not tested here.

#[path = "support/mod.rs"]
mod support;

#[path = "kube_stand_in/mod.rs"]
mod kube_stand_in;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kube_stand_in::{Answer, StandIn, fixture_pods};
use support::processes;

fn k8s() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/k8s")
}

/// A directory of this test's own (kubeconfig, HOME).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlsniff-k8s-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// mtlsniff on the k8s fixture with `--k8s` and `kubeconfig` (None: no
/// config at all), never the machine's own kube config or cluster.
fn with_k8s(kubeconfig: Option<&Path>, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
    cmd.arg("-r")
        .arg(k8s().join("cluster.pcap"))
        .arg("--k8s")
        .args(args)
        .env("HOME", home)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .stdin(Stdio::null());
    match kubeconfig {
        Some(k) => cmd.env("KUBECONFIG", k),
        None => cmd.env_remove("KUBECONFIG"),
    };
    cmd
}

fn with_pods_file(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
        .arg("-r")
        .arg(k8s().join("cluster.pcap"))
        .arg("--k8s-pods")
        .arg(k8s().join("pods.json"))
        .args(args)
        .output()
        .unwrap()
}

fn stand_in() -> StandIn {
    StandIn::start(Answer::Pods(fixture_pods(&k8s().join("pods.json"))))
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn the_watch_names_the_same_workloads_as_the_pods_list() {
    let api = stand_in();
    let dir = scratch("same");
    let config = api.kubeconfig(&dir);
    for args in [
        &["-q"][..],
        &["-q", "--json"],
        &["-q", "--close"],
        &["-q", "--close", "--json"],
        &["-q", "--summary-only", "--summary"],
    ] {
        let watched = with_k8s(Some(&config), &dir, args).output().unwrap();
        let watched = ok_stdout(&watched);
        let listed = ok_stdout(&with_pods_file(args));
        assert!(
            watched.contains("frontend"),
            "{args:?}: no workload named\n{watched}"
        );
        assert_eq!(watched, listed, "{args:?}");
    }
    let requests = api.requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with("GET /api/v1/pods?")),
        "all namespaces' pods are listed: {requests:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn expect_by_namespace_works_with_the_watch() {
    let api = stand_in();
    let dir = scratch("ns");
    let config = api.kubeconfig(&dir);
    for (ns, code) in [("monitoring", 4), ("default", 0), ("shop,default", 4)] {
        let args = ["-q", "--expect", "mtls", "--namespace", ns];
        let watched = with_k8s(Some(&config), &dir, &args).output().unwrap();
        let listed = with_pods_file(&args);
        assert_eq!(watched.status.code(), Some(code), "{ns}");
        assert_eq!(watched.status.code(), listed.status.code(), "{ns}");
        let shorts = |o: &Output| {
            String::from_utf8_lossy(&o.stderr)
                .matches("expect mtls: short")
                .count()
        };
        assert_eq!(shorts(&watched), shorts(&listed), "{ns}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value of an unlabelled metric in a scrape.
fn metric(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn wait_for_metric(addr: std::net::SocketAddr, name: &str, want: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = processes::http_get_ok(addr, "/metrics").unwrap_or_default();
        if metric(&body, name) == Some(want) {
            return body;
        }
        assert!(Instant::now() < deadline, "{name} never {want}:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_pod_added_and_deleted_through_the_watch_is_seen() {
    let pods = fixture_pods(&k8s().join("pods.json"));
    let listed = pods.len() as u64;
    let api = stand_in();
    let dir = scratch("events");
    let config = api.kubeconfig(&dir);
    let mut cmd = with_k8s(Some(&config), &dir, &["-q", "--metrics-linger", "60s"]);
    cmd.stdout(Stdio::null());
    let (_child, addr) = processes::start_with_metrics(cmd);
    let body = wait_for_metric(addr, "mtlsniff_k8s_pods", listed);
    assert_eq!(
        metric(&body, "mtlsniff_k8s_watch_errors_total"),
        Some(0),
        "{body}"
    );
    assert_eq!(
        metric(&body, "mtlsniff_k8s_watch_relists_total"),
        Some(0),
        "{body}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.watching() == 0 {
        assert!(Instant::now() < deadline, "the watch never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut new = pods[0].clone();
    new["metadata"]["name"] = "frontend-7d9f8b6c5d-zzzzz".into();
    new["metadata"]["uid"] = "3f1c2a9e-0000-4000-8000-0000000000aa".into();
    new["status"]["podIP"] = "10.244.1.99".into();
    new["status"]["podIPs"] = serde_json::json!([{"ip": "10.244.1.99"}]);
    assert_eq!(api.send("ADDED", &new), 1);
    wait_for_metric(addr, "mtlsniff_k8s_pods", listed + 1);
    // Modified: the same pod, still one.
    api.send("MODIFIED", &new);
    api.send("DELETED", &pods[1]);
    api.send("DELETED", &new);
    wait_for_metric(addr, "mtlsniff_k8s_pods", listed - 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run that must end at start: exit 2 and one line on stderr.
fn refused(cmd: &mut Command) -> String {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("mtlsniff: error: --k8s: "), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing captured");
    assert!(started.elapsed() < Duration::from_secs(15), "{stderr}");
    stderr
}

#[test]
fn api_refusals_end_the_start_with_one_line_saying_what_to_do() {
    let dir = scratch("refused");
    let unauthorized = StandIn::start(Answer::Status(401));
    let k = unauthorized.kubeconfig(&dir);
    let e = refused(&mut with_k8s(Some(&k), &dir, &["-q"]));
    assert!(e.contains("401") && e.contains("credentials"), "{e}");

    let forbidden = StandIn::start(Answer::Status(403));
    let k = forbidden.kubeconfig(&dir);
    let e = refused(&mut with_k8s(Some(&k), &dir, &["-q"]));
    assert!(
        e.contains("403") && e.contains("deploy/kubernetes/rbac.yaml"),
        "{e}"
    );

    // Nothing listens on a port just freed.
    let port = processes::free_port();
    let unreachable = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": format!("http://127.0.0.1:{port}")}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c"
    });
    let k = dir.join("unreachable");
    std::fs::write(&k, unreachable.to_string()).unwrap();
    let e = refused(&mut with_k8s(Some(&k), &dir, &["-q"]));
    assert!(
        e.contains("cannot reach the Kubernetes API") && e.contains(&port.to_string()),
        "{e}"
    );

    // No kubeconfig and not in a pod.
    let e = refused(&mut with_k8s(None, &dir, &["-q"]));
    assert!(e.contains("KUBECONFIG") && e.contains("--k8s-pods"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn k8s_and_a_pods_list_exclude_each_other() {
    let out = Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
        .args(["-r", "x.pcap", "--k8s", "--k8s-pods", "pods.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--k8s") && stderr.contains("cannot be used with"),
        "{stderr}"
    );
}
