//! Workloads (`--k8s-pods`, issue 12 §3) on the Kubernetes fixture:
//! `fixtures/k8s/cluster.pcap`, captured by `fixtures/make-k8s.sh` from our
//! own pod-like addresses, and `fixtures/k8s/pods.json`, the pods list of
//! those addresses in the API's PodList schema (Deployment pods through
//! their ReplicaSets, a StatefulSet, a DaemonSet, a CronJob's Job, a bare
//! pod, a hostNetwork pod, a Pending pod, a Succeeded Job pod whose IP a
//! newer pod took, IPv4 and IPv6 podIPs).
//!
//! Goldens under `fixtures/k8s/expected/` (text, JSON, edges table and
//! JSON, DOT graph, the metrics' workload series); `MTLSNIFF_BLESS=1`
//! rewrites them. Beside them: the identity mismatch, `--expect mtls
//! --namespace`, the list on stdin, and hostile pods files (bounded, one
//! line of error). Everything here reads the real file format; nothing is
//! a stand-in.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::processes;

fn k8s() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/k8s")
}

fn mtlsniff(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
    cmd.arg("-r")
        .arg(k8s().join("cluster.pcap"))
        .arg("--k8s-pods")
        .arg(k8s().join("pods.json"))
        .args(args);
    cmd
}

fn run(args: &[&str]) -> Output {
    mtlsniff(args).output().expect("run mtlsniff")
}

fn stdout(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Compare with (or, with `MTLSNIFF_BLESS`, write) `expected/NAME`.
fn golden(name: &str, got: &str) {
    let path = k8s().join("expected").join(name);
    if std::env::var_os("MTLSNIFF_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}: MTLSNIFF_BLESS=1", path.display()));
    assert!(
        want == got,
        "{name} differs\n--- expected\n{want}\n--- got\n{got}"
    );
}

/// Every pod with an address names its workload: the five kinds, the node,
/// both sides of a recycled IP by time, and the unknown address as `?`.
const NAMED: [&str; 10] = [
    "client_wl=shop/frontend server_wl=shop/cart",
    "client_wl=shop/frontend server_wl=shop/catalog",
    "client_wl=default/debug server_wl=shop/cart",
    "client_wl=batch/report-29412345 server_wl=monitoring/log-agent",
    "client_wl=node/node-a server_wl=shop/catalog",
    "client_wl=? server_wl=shop/catalog",
    "client_wl=batch/migrate-v2 server_wl=shop/catalog",
    "client_wl=shop/worker server_wl=shop/catalog",
    "IP6 [fd00:10:244:1::a]",
    "identity_mismatch=client:default/default",
];

#[test]
fn text_names_every_pods_workload() {
    let text = stdout(&["-q"]);
    for want in NAMED {
        assert!(text.contains(want), "{want} not in\n{text}");
    }
    assert_eq!(text.lines().count(), 9);
    // The recycled IP: the Job's pod before the worker pod was created,
    // the worker after; never the other way round.
    let recycled: Vec<&str> = text.lines().filter(|l| l.contains("10.244.3.40")).collect();
    assert!(recycled[0].contains("batch/migrate-v2") && recycled[1].contains("shop/worker"));
    golden("cluster.txt", &text);
}

#[test]
fn json_carries_both_workload_objects_and_the_mismatch() {
    let json = stdout(&["-q", "--json"]);
    let flows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for f in &flows {
        for key in ["client_workload", "server_workload"] {
            let w = f[key].as_object().expect("an object");
            let mut fields: Vec<&str> = w.keys().map(String::as_str).collect();
            fields.sort_unstable();
            assert_eq!(
                fields,
                [
                    "kind",
                    "name",
                    "namespace",
                    "node",
                    "pod",
                    "service_account"
                ]
            );
        }
    }
    let hostnet = &flows[5]["client_workload"];
    assert_eq!(hostnet["kind"], "Node");
    assert_eq!(hostnet["pod"], serde_json::Value::Null, "never a pod");
    assert_eq!(flows[6]["client_workload"]["name"], serde_json::Value::Null);
    let deployment = &flows[0]["client_workload"];
    assert_eq!(
        (
            &deployment["kind"],
            &deployment["pod"],
            &deployment["service_account"]
        ),
        (
            &"Deployment".into(),
            &"frontend-7d9f8b6c5d-x2x7q".into(),
            &"frontend".into()
        )
    );
    let mismatched: Vec<&serde_json::Value> = flows
        .iter()
        .filter(|f| !f["identity_mismatch"].is_null())
        .collect();
    assert_eq!(
        mismatched.len(),
        1,
        "only the debug pod presents another's id"
    );
    let m = &mismatched[0]["identity_mismatch"][0];
    assert_eq!(m["side"], "client");
    assert_eq!(m["spiffe_id"], "spiffe://cluster.local/ns/shop/sa/frontend");
    assert_eq!(
        (&m["pod_namespace"], &m["pod_service_account"]),
        (&"default".into(), &"default".into())
    );
    golden("cluster.json", &json);
}

#[test]
fn close_lines_carry_the_workloads_of_their_verdicts() {
    // Each close names the same two workloads as its flow's verdict: both
    // are placed at the flow's first packet (the recycled IP too).
    let text = stdout(&["-q", "--close"]);
    let (closes, verdicts): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.contains(": close "));
    assert_eq!(closes.len(), verdicts.len(), "{text}");
    let pair = |l: &str| {
        let client = l
            .split(" client_wl=")
            .nth(1)?
            .split(' ')
            .next()?
            .to_string();
        let server = l
            .split(" server_wl=")
            .nth(1)?
            .split(' ')
            .next()?
            .to_string();
        let flow = l.split(": ").next()?.split_once(" IP")?.1.to_string();
        Some((flow, client, server))
    };
    let mut want: Vec<_> = verdicts.iter().map(|l| pair(l).expect(l)).collect();
    let mut got: Vec<_> = closes.iter().map(|l| pair(l).expect(l)).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    golden("cluster.close.txt", &text);
    let json = stdout(&["-q", "--close", "--json"]);
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let closes: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "close").collect();
    assert_eq!(closes.len(), 9, "{json}");
    for c in &closes {
        assert!(
            c["client_workload"].is_object() && c["server_workload"].is_object(),
            "{c}"
        );
    }
    assert!(
        closes.iter().any(|c| c["server_workload"]["name"] == "cart"
            && c["server_workload"]["kind"] == "StatefulSet")
    );
    golden("cluster.close.json", &json);
}

#[test]
fn without_a_pods_list_json_has_no_workload_keys() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
    let out = cmd
        .arg("-r")
        .arg(k8s().join("cluster.pcap"))
        .args(["-q", "--json", "--close"])
        .output()
        .unwrap();
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(json.contains("\"event\":\"close\""), "{json}");
    assert!(!json.contains("workload") && !json.contains("identity_mismatch"));
}

#[test]
fn edges_and_graph_are_between_workloads() {
    let table = stdout(&["-q", "--summary-only", "--summary"]);
    let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        &head[..6],
        ["SECURED", "SRC", "DST", "SRC_NS", "DST_NS", "FLOWS"]
    );
    assert!(table.lines().any(|l| {
        let cells: Vec<&str> = l.split_whitespace().collect();
        cells.get(1..6) == Some(&["frontend", "cart", "shop", "shop", "2"][..])
    }));
    golden("cluster.edges.txt", &table);
    let json = stdout(&["-q", "--summary-only", "--summary-format", "json"]);
    golden("cluster.edges.json", &json);
    let dir = std::env::temp_dir().join(format!("mtlsniff-wl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dot = dir.join("edges.dot");
    let _ = stdout(&["-q", "--summary-only", "--graph", dot.to_str().unwrap()]);
    let graph = std::fs::read_to_string(&dot).unwrap();
    assert!(graph.contains("\"shop/frontend\"") && graph.contains("\"node/node-a\""));
    golden("cluster.dot", &graph);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_carry_istios_workload_labels() {
    let (_child, addr) = processes::start_with_metrics({
        let mut c = mtlsniff(&["-q", "--metrics-linger", "30s"]);
        c.stdout(Stdio::null());
        c
    });
    // Done reading when every flow's close is counted and two scrapes
    // 300 ms apart agree (bytes are counted right after the close).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    let body = loop {
        let body = processes::http_get_ok(addr, "/metrics").unwrap_or_default();
        let closed = body
            .matches("mtlsniff_tcp_connections_closed_total{")
            .count();
        if (closed >= 8 && body == last) || Instant::now() > deadline {
            break body;
        }
        last = body;
        std::thread::sleep(Duration::from_millis(300));
    };
    let mut series: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("source_workload=") || l.starts_with("mtlsniff_identity_mismatches"))
        .filter(|l| !l.starts_with('#'))
        .collect();
    series.sort_unstable();
    let got = series.join("\n") + "\n";
    assert!(got.contains(
        "source_workload=\"frontend\",source_workload_namespace=\"shop\",destination_workload=\"cart\",destination_workload_namespace=\"shop\""
    ), "{got}");
    assert!(
        got.contains("mtlsniff_identity_mismatches_total 1"),
        "{got}"
    );
    golden("cluster.metrics.txt", &got);
}

#[test]
fn expect_by_namespace_checks_only_that_namespaces_flows() {
    // A flow counts for a namespace when its client or its server pod is
    // in it. monitoring: report -> log-agent, TLS without a client
    // certificate. default: debug -> cart, mtls. shop: every flow to cart
    // and catalog (five plaintext ones).
    let out = run(&["-q", "--expect", "mtls", "--namespace", "monitoring"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "report -> log-agent is tls only"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("expect mtls: short").count(), 1, "{stderr}");
    let out = run(&["-q", "--expect", "mtls", "--namespace", "default"]);
    assert_eq!(out.status.code(), Some(0), "debug -> cart is mtls");
    let out = run(&["-q", "--expect", "mtls", "--namespace", "shop,default"]);
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("expect mtls: short").count(), 5, "{stderr}");
    let nothing = run(&[
        "-q",
        "--expect",
        "mtls",
        "--namespace",
        "nosuch",
        "--strict",
    ]);
    assert_eq!(
        nothing.status.code(),
        Some(4),
        "strict: nothing was verified"
    );
}

#[test]
fn namespace_needs_expect_and_a_pods_list() {
    let out = Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
        .args(["-r", "x.pcap", "--expect", "mtls", "--namespace", "shop"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_pods_list_reads_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
        .arg("-r")
        .arg(k8s().join("cluster.pcap"))
        .args(["--k8s-pods", "-", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pods = std::fs::read(k8s().join("pods.json")).unwrap();
    child.stdin.take().unwrap().write_all(&pods).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), stdout(&["-q"]));
}

fn with_pods(pods: &[u8], extra: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("mtlsniff-pods-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("pods-{}.json", pods.len()));
    std::fs::write(&file, pods).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
        .arg("-r")
        .arg(k8s().join("cluster.pcap"))
        .arg("--k8s-pods")
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    out
}

#[test]
fn a_malformed_pods_file_is_one_line_and_exit_2() {
    for bad in [
        &b"{\"items\": [ {\"metadata\": "[..],
        b"not json",
        b"{\"items\": 3}",
    ] {
        let out = with_pods(bad, &["-q"]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("mtlsniff: error: --k8s-pods "),
            "{stderr}"
        );
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
        .args(["-r", "x.pcap", "--k8s-pods", "/nonexistent/pods.json"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn a_huge_pods_list_is_held_to_its_share_of_memory() {
    // 20,000 pods with long names (some 12 MB of addresses' entries) at
    // --memory 64: the directory keeps its sixteenth (4 MiB) and counts
    // the rest as dropped.
    let mut pods = String::from("{\"kind\":\"List\",\"items\":[");
    let long = "x".repeat(200);
    for i in 0..20_000u32 {
        if i > 0 {
            pods.push(',');
        }
        pods.push_str(&format!(
            "{{\"metadata\":{{\"name\":\"p{i}-{long}\",\"namespace\":\"ns{long}\"}},\"spec\":{{\"serviceAccountName\":\"sa\"}},\"status\":{{\"podIP\":\"10.{}.{}.{}\"}}}}",
            i >> 16, (i >> 8) & 255, i & 255
        ));
    }
    pods.push_str("]}");
    let out = with_pods(pods.as_bytes(), &["--summary-only", "--memory", "64"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("workloads:"))
        .expect(&stderr);
    let kib: usize = line
        .split(" addresses (")
        .nth(1)
        .and_then(|r| r.split(" KiB").next())
        .and_then(|n| n.parse().ok())
        .expect(line);
    assert!(kib <= 4 * 1024, "{line}");
    assert!(!line.contains(" 0 pods dropped"), "{line}");
}
