//! Issue 12 §2: the Kubernetes manifests in `deploy/kubernetes/` are what
//! a cluster admin applies, so they are checked like code, offline (no API
//! server runs here):
//!
//! - every Kubernetes object against the Kubernetes OpenAPI schemas with
//!   `kubernetes-validate --strict` (PyPI), and a broken copy must fail it;
//! - the two kustomizations: every file they list exists and parses, the
//!   image rule matches the DaemonSet's image; and, where a `kubectl` with
//!   kustomize is installed, the rendered output is validated too;
//! - the Prometheus operator's PodMonitor and PrometheusRule, for which no
//!   schema is available offline: their fields checked against the CRDs'
//!   documented required fields and the DaemonSet they point at;
//! - the alert rules with `promtool check rules` and `promtool test rules`
//!   (tests/deploy/alerts_test.yaml: each alert fires on its failure and not
//!   on a healthy node);
//! - every metric name in the rules and the Grafana dashboard is one that
//!   `mtlsniff --metrics` really serves (a scrape of fixtures/demo.pcap),
//!   and, with Debian's `prometheus`, a real Prometheus scraping that run
//!   evaluates every rule without error and answers every dashboard query;
//! - the DaemonSet's container args pass the binary's own command line
//!   (`Args::try_parse_from` and `shell::cli::config`), and its memory limit
//!   leaves room above `--memory`;
//! - its security context on this kernel (as root): a child set up the way
//!   a container runtime sets up the pod (bounding set, uid 65534, the
//!   `add` list as permitted set, no_new_privs) executes a copy of the
//!   binary carrying the image's file capability and opens a live capture
//!   on `lo` with the DaemonSet's own args; without the file capability it
//!   fails, and so does no_new_privs with nothing held.
//!
//! A missing tool (python3 with kubernetes-validate, promtool, prometheus)
//! skips its test with a `SKIP:` line, except under `CI=true`, where
//! `.ci/run` installs them and a missing one fails. `kubectl` is the
//! exception: no registry this project uses has a kubectl whose kustomize
//! renders these files, so its half is skipped even under CI (the file
//! checks above run regardless).

use std::collections::BTreeSet;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_yaml_ng::Value;

#[path = "kube_stand_in/mod.rs"]
mod kube_stand_in;
#[path = "support/mod.rs"]
mod support;
use support::processes::{self, Reaped};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every YAML document in a file.
fn documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn one_document(path: &Path) -> Value {
    let mut docs = documents(path);
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    docs.remove(0)
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path}: not a string in {v:?}"))
}

fn seq_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    get(v, path)
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("{path}: not a list"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mtlsniff-deploy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether a test may run: the tool is there, or (outside CI) say why not.
fn have(tool: &str, present: bool, install: &str) -> bool {
    if present {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "{tool} is missing under CI=true: {install} (.ci/run does)"
    );
    eprintln!("SKIP: {tool} is not installed ({install})");
    false
}

fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn have_kubernetes_validate() -> bool {
    have(
        "kubernetes-validate",
        runs("python3", &["-c", "import kubernetes_validate"]),
        "pip install kubernetes-validate",
    )
}

fn have_promtool() -> bool {
    have(
        "promtool",
        runs("promtool", &["--version"]),
        "apt-get install prometheus",
    )
}

/// `kubernetes-validate --strict` on these files: its status and output.
fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    let o = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .args(files)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// The base's plain Kubernetes files (the kustomization's `resources`).
fn base_resources() -> Vec<PathBuf> {
    let k = one_document(&deploy_dir().join("kustomization.yaml"));
    seq_at(&k, "resources")
        .iter()
        .map(|r| deploy_dir().join(r.as_str().expect("a path")))
        .collect()
}

fn daemonset() -> Value {
    one_document(&deploy_dir().join("daemonset.yaml"))
}

fn container(ds: &Value) -> &Value {
    let containers = seq_at(ds, "spec.template.spec.containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

#[test]
fn manifests_pass_the_kubernetes_schemas() {
    if !have_kubernetes_validate() {
        return;
    }
    let files = base_resources();
    let (ok, out) = kubernetes_validate(&files);
    assert!(ok, "kubernetes-validate --strict failed:\n{out}");
    for kind in [
        "namespace/mtlsniff",
        "serviceaccount/mtlsniff",
        "clusterrole/mtlsniff-read-pods",
        "clusterrolebinding/mtlsniff-read-pods",
        "daemonset/mtlsniff",
        "service/mtlsniff",
    ] {
        assert!(
            out.contains(&format!("passed for resource {kind}")),
            "{kind} not validated:\n{out}"
        );
    }
    // The validator is not a rubber stamp: a misspelt field and a wrong
    // type in a copy of the DaemonSet fail it.
    let dir = scratch("broken");
    for (name, from, to) in [
        (
            "misspelt.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFileSystem: true",
        ),
        (
            "wrongtype.yaml",
            "terminationGracePeriodSeconds: 10",
            "terminationGracePeriodSeconds: ten",
        ),
    ] {
        let text = read(&deploy_dir().join("daemonset.yaml"));
        assert!(text.contains(from), "{from}");
        let broken = dir.join(name);
        std::fs::write(&broken, text.replace(from, to)).unwrap();
        let (ok, out) = kubernetes_validate(&[broken]);
        assert!(!ok, "{name} passed:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kustomizations_list_files_that_exist_and_parse() {
    let base = one_document(&deploy_dir().join("kustomization.yaml"));
    assert_eq!(str_at(&base, "namespace"), "mtlsniff");
    for path in base_resources() {
        for doc in documents(&path) {
            for field in ["apiVersion", "kind", "metadata.name"] {
                assert!(
                    get(&doc, field).is_string(),
                    "{}: no {field}",
                    path.display()
                );
            }
        }
    }
    // The image rule names the DaemonSet's image, so `images:` changes it.
    let image = str_at(container(&daemonset()), "image").to_string();
    let rule = &seq_at(&base, "images")[0];
    assert_eq!(
        image.split(':').next(),
        Some(str_at(rule, "name")),
        "{image}"
    );
    assert_eq!(image, "localhost/mtlsniff:dev");
    // The dashboard the ConfigMap generator packs is JSON, labelled for
    // Grafana's sidecar.
    let generator = &seq_at(&base, "configMapGenerator")[0];
    assert_eq!(str_at(generator, "options.labels.grafana_dashboard"), "1");
    for file in seq_at(generator, "files") {
        let path = deploy_dir().join(file.as_str().unwrap());
        let _: serde_json::Value = serde_json::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    }
    let operator = one_document(&deploy_dir().join("prometheus-operator/kustomization.yaml"));
    for r in seq_at(&operator, "resources") {
        let path = deploy_dir()
            .join("prometheus-operator")
            .join(r.as_str().unwrap());
        assert_eq!(documents(&path).len(), 1, "{}", path.display());
    }
    render_with_kubectl();
}

/// `kubectl kustomize` on both directories, when a kubectl is installed;
/// the base's output through kubernetes-validate too.
fn render_with_kubectl() {
    if !runs("kubectl", &["kustomize", "--help"]) {
        eprintln!(
            "SKIP: kubectl (with kustomize) is not installed, so the kustomizations were not rendered; \
             their files were checked above"
        );
        return;
    }
    let dir = scratch("rendered");
    for (sub, out) in [("", "base.yaml"), ("prometheus-operator", "operator.yaml")] {
        let o = Command::new("kubectl")
            .arg("kustomize")
            .arg(deploy_dir().join(sub))
            .output()
            .expect("run kubectl");
        assert!(
            o.status.success(),
            "kubectl kustomize {sub}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::write(dir.join(out), &o.stdout).unwrap();
    }
    let rendered = documents(&dir.join("base.yaml"));
    let kinds: BTreeSet<&str> = rendered.iter().map(|d| str_at(d, "kind")).collect();
    let want = [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Namespace",
        "Service",
        "ServiceAccount",
    ];
    assert_eq!(
        kinds,
        want.into_iter().collect(),
        "the base renders these kinds"
    );
    let ds = rendered
        .iter()
        .find(|d| str_at(d, "kind") == "DaemonSet")
        .unwrap();
    assert_eq!(str_at(container(ds), "image"), "localhost/mtlsniff:dev");
    let cm = rendered
        .iter()
        .find(|d| str_at(d, "kind") == "ConfigMap")
        .unwrap();
    assert_eq!(
        str_at(cm, "metadata.name"),
        "mtlsniff-dashboard",
        "no hash suffix"
    );
    let operator = documents(&dir.join("operator.yaml"));
    assert_eq!(operator.len(), 2);
    for d in &operator {
        assert_eq!(str_at(d, "metadata.namespace"), "mtlsniff");
    }
    if have_kubernetes_validate() {
        let (ok, out) = kubernetes_validate(&[dir.join("base.yaml")]);
        assert!(ok, "the rendered base fails kubernetes-validate:\n{out}");
        assert!(
            out.contains("passed for resource configmap/mtlsniff-dashboard"),
            "{out}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn daemonset_is_least_privilege_and_args_pass_the_cli() {
    let ds = daemonset();
    let pod = get(&ds, "spec.template.spec");
    let c = container(&ds);
    let sc = get(c, "securityContext");
    assert_eq!(get(pod, "hostNetwork").as_bool(), Some(true));
    assert_eq!(seq_at(sc, "capabilities.drop"), [Value::from("ALL")]);
    assert_eq!(seq_at(sc, "capabilities.add"), [Value::from("NET_RAW")]);
    assert_eq!(get(sc, "runAsUser").as_u64(), Some(65534));
    assert_eq!(get(sc, "runAsNonRoot").as_bool(), Some(true));
    assert_eq!(get(sc, "readOnlyRootFilesystem").as_bool(), Some(true));
    assert_eq!(get(sc, "privileged").as_bool(), Some(false));
    // no_new_privs: the file capability still works, because the runtime's
    // `add` is already held (daemonset.yaml says why; the test below
    // checks it on this kernel).
    assert_eq!(get(sc, "allowPrivilegeEscalation").as_bool(), Some(false));
    assert_eq!(
        str_at(pod, "securityContext.seccompProfile.type"),
        "RuntimeDefault"
    );
    assert_eq!(str_at(pod, "tolerations.0.operator"), "Exists");

    let args: Vec<&str> = seq_at(c, "args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    let parsed = mtlsniff::shell::cli::Args::try_parse_from(
        std::iter::once("mtlsniff").chain(args.iter().copied()),
    )
    .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let config =
        mtlsniff::shell::cli::config(parsed, 8).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        matches!(&config.mode, mtlsniff::pipeline::config::Mode::Sniff(mtlsniff::capture::source::Source::Live(i)) if i == "any"),
        "live on any: {:?}",
        config.mode
    );
    assert!(!config.flow_lines, "no line per flow in a DaemonSet's log");
    assert!(config.summary_interval.is_some());
    assert!(
        config.ports.is_some(),
        "--ports: a meshed node's other traffic is not the question"
    );
    let metrics = config.metrics.expect("--metrics");
    let port = get(c, "ports.0.containerPort").as_u64().unwrap();
    assert_eq!(u64::from(metrics.port()), port);
    assert!(
        metrics.ip().is_unspecified(),
        "served on the node's addresses"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(str_at(c, &format!("{probe}.httpGet.path")), "/metrics");
        assert_eq!(str_at(c, &format!("{probe}.httpGet.port")), "metrics");
    }
    let annotations = get(&ds, "spec.template.metadata.annotations");
    assert_eq!(
        annotations["prometheus.io/port"].as_str(),
        Some(port.to_string().as_str())
    );
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));

    // The limit covers --memory, the default 64 MiB kernel buffer (outside
    // the budget) and headroom; requests equal it.
    let mib = |q: &str| {
        q.strip_suffix("Mi")
            .and_then(|n| n.parse::<usize>().ok())
            .expect("a quantity in Mi")
    };
    let limit = mib(str_at(c, "resources.limits.memory"));
    assert_eq!(limit, mib(str_at(c, "resources.requests.memory")));
    let budget = config.bounds.memory / (1 << 20);
    let kernel_buffer = config.buffer_bytes.map_or(64, |b| b as usize / (1 << 20));
    assert!(
        limit >= budget + kernel_buffer + 32,
        "limit {limit} Mi for --memory {budget}"
    );
}

#[test]
fn the_daemonset_watches_pods_with_a_service_account_rbac_lets_read_pods_only() {
    let ds = daemonset();
    let pod = get(&ds, "spec.template.spec");
    let args: Vec<&str> = seq_at(container(&ds), "args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    let parsed = mtlsniff::shell::cli::Args::try_parse_from(
        std::iter::once("mtlsniff").chain(args.iter().copied()),
    )
    .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let config = mtlsniff::shell::cli::config(parsed, 8).unwrap();
    assert!(
        config.k8s && config.k8s_pods.is_none(),
        "--k8s, not a pods file"
    );
    // The watch's token: mounted, of the account the RBAC binds.
    assert_eq!(
        get(pod, "automountServiceAccountToken").as_bool(),
        Some(true)
    );
    let account = str_at(pod, "serviceAccountName");
    let text = std::fs::read_to_string(deploy_dir().join("rbac.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let role = docs
        .iter()
        .find(|d| str_at(d, "kind") == "ClusterRole")
        .unwrap();
    let rules = seq_at(role, "rules");
    assert_eq!(rules.len(), 1, "pods only");
    let verbs: BTreeSet<&str> = seq_at(&rules[0], "verbs")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(verbs, BTreeSet::from(["get", "list", "watch"]));
    assert_eq!(seq_at(&rules[0], "resources"), [Value::from("pods")]);
    let binding = docs
        .iter()
        .find(|d| str_at(d, "kind") == "ClusterRoleBinding")
        .unwrap();
    assert_eq!(
        str_at(binding, "roleRef.name"),
        str_at(role, "metadata.name")
    );
    assert_eq!(str_at(binding, "subjects.0.name"), account);
    assert_eq!(
        str_at(binding, "subjects.0.namespace"),
        str_at(&ds, "metadata.namespace")
    );
}

#[test]
fn operator_resources_have_the_crd_fields() {
    // No schema for monitoring.coreos.com/v1 is available offline: these are
    // the fields the CRDs document as required, and the links between
    // these objects and the DaemonSet.
    let dir = deploy_dir().join("prometheus-operator");
    let ds = daemonset();
    let pod_labels = get(&ds, "spec.template.metadata.labels");
    let pm = one_document(&dir.join("podmonitor.yaml"));
    assert_eq!(str_at(&pm, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(str_at(&pm, "kind"), "PodMonitor");
    let selector = get(&pm, "spec.selector.matchLabels")
        .as_mapping()
        .expect("matchLabels");
    for (k, v) in selector {
        assert_eq!(
            &pod_labels[k.as_str().unwrap()],
            v,
            "selector {k:?} matches the pods"
        );
    }
    let endpoint = &seq_at(&pm, "spec.podMetricsEndpoints")[0];
    assert_eq!(
        str_at(endpoint, "port"),
        str_at(container(&ds), "ports.0.name")
    );
    assert_eq!(str_at(endpoint, "path"), "/metrics");
    // MtlsniffTargetDown uses job="mtlsniff": the pods' label value.
    assert_eq!(
        pod_labels[str_at(&pm, "spec.jobLabel")].as_str(),
        Some("mtlsniff")
    );

    let rule = one_document(&dir.join("prometheusrule.yaml"));
    assert_eq!(str_at(&rule, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(str_at(&rule, "kind"), "PrometheusRule");
    let known = ["alert", "expr", "for", "labels", "annotations"];
    let mut alerts = 0;
    for group in seq_at(&rule, "spec.groups") {
        assert!(!str_at(group, "name").is_empty());
        for r in seq_at(group, "rules") {
            let name = str_at(r, "alert");
            for key in r.as_mapping().unwrap().keys() {
                assert!(
                    known.contains(&key.as_str().unwrap()),
                    "{name}: unknown field {key:?}"
                );
            }
            assert!(!str_at(r, "expr").trim().is_empty(), "{name}: expr");
            assert!(get(r, "for").is_string(), "{name}: for");
            let severity = str_at(r, "labels.severity");
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{name}: {severity}"
            );
            for a in ["summary", "description"] {
                assert!(
                    str_at(r, &format!("annotations.{a}")).len() > 20,
                    "{name}: {a}"
                );
            }
            assert!(
                str_at(r, "annotations.description").contains("What to check"),
                "{name}: a runbook"
            );
            alerts += 1;
        }
    }
    assert_eq!(alerts, 8);
}

/// The PrometheusRule's groups as a Prometheus rules file.
fn write_rules_file(dir: &Path, with_annotations: bool) -> PathBuf {
    let rule = one_document(&deploy_dir().join("prometheus-operator/prometheusrule.yaml"));
    let mut groups = get(&rule, "spec.groups").clone();
    if !with_annotations {
        for g in groups.as_sequence_mut().unwrap() {
            for r in g["rules"].as_sequence_mut().unwrap() {
                r.as_mapping_mut().unwrap().remove("annotations");
            }
        }
    }
    let mut file = serde_yaml_ng::Mapping::new();
    file.insert("groups".into(), groups);
    let path = dir.join("rules.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&file).unwrap()).unwrap();
    path
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    if !have_promtool() {
        return;
    }
    let dir = scratch("promtool");
    let rules = write_rules_file(&dir, true);
    let o = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && out.contains("SUCCESS: 8 rules found"),
        "{out}"
    );
    // promtool test rules compares every annotation exactly; the
    // annotations' templates were checked above, so the unit tests run on
    // the rules without them.
    write_rules_file(&dir, false);
    let test = dir.join("alerts_test.yaml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deploy/alerts_test.yaml"),
        &test,
    )
    .unwrap();
    let o = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&test)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && out.contains("SUCCESS"),
        "promtool test rules:\n{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every PromQL expression shipped: the alert rules and the dashboard's
/// queries (Grafana's variables replaced by what Grafana would send).
fn shipped_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rule = one_document(&deploy_dir().join("prometheus-operator/prometheusrule.yaml"));
    for group in seq_at(&rule, "spec.groups") {
        for r in seq_at(group, "rules") {
            out.push((
                format!("alert {}", str_at(r, "alert")),
                str_at(r, "expr").to_string(),
            ));
        }
    }
    let dash: serde_json::Value =
        serde_json::from_str(&read(&deploy_dir().join("dashboards/mtlsniff.json"))).unwrap();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$__range", "5m")
                .replace("$instance", ".*");
            out.push((format!("panel {}", panel["title"]), expr));
        }
    }
    out
}

/// The `mtlsniff_*` names an expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("mtlsniff_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// GET `path` over loopback (HTTP/1.0: Prometheus answers without
/// chunked encoding); the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    processes::http_get_ok(addr, path)
}

/// mtlsniff reading the demo capture, serving its final metrics for a while.
fn start_demo_with_metrics() -> (Reaped, SocketAddr) {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.pcap");
    let mut mtlsniff = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
    mtlsniff
        .arg("-r")
        .arg(&demo)
        .args(["--metrics-linger", "120s"]);
    processes::start_with_metrics(mtlsniff)
}

/// The metric names a finished scrape holds (histograms by their samples).
fn served_names(addr: SocketAddr) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http_get(addr, "/metrics").unwrap_or_default();
        // (The HELP line also holds "mtlsniff_input_finished 1 once ...".)
        if body.lines().any(|l| l == "mtlsniff_input_finished 1") {
            return body
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split(['{', ' ']).next())
                .map(str::to_string)
                .collect();
        }
        assert!(Instant::now() < deadline, "input never finished:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn shipped_queries_use_only_exported_metrics_and_evaluate_in_prometheus() {
    let (_mtlsniff, target) = start_demo_with_metrics();
    let served = served_names(target);
    let queries = shipped_queries();
    assert!(queries.len() > 20, "{} queries", queries.len());
    for (what, expr) in &queries {
        for name in metric_names(expr) {
            assert!(
                served.contains(&name),
                "{what}: {name} is not exported; mtlsniff serves {served:?}"
            );
        }
    }
    let prometheus = Path::new("/usr/bin/prometheus");
    if !have(
        "prometheus",
        prometheus.is_file(),
        "apt-get install prometheus",
    ) {
        return;
    }
    let dir = scratch("prometheus");
    let rules = write_rules_file(&dir, true);
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: mtlsniff\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let (_prom, web) = processes::start_prometheus(prometheus, &config, &dir);
    let log = dir.join("prometheus.log");
    // Wait until the scrape is in and every rule has been evaluated.
    let deadline = Instant::now() + Duration::from_secs(90);
    let rules_state = loop {
        let series =
            http_get(web, "/api/v1/query?query=mtlsniff_input_finished").unwrap_or_default();
        let state = http_get(web, "/api/v1/rules").unwrap_or_default();
        if series.contains(r#""value":["#) && state.matches(r#""lastEvaluation":"20"#).count() >= 8
        {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never evaluated the rules:\n{}",
            read(&log)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let json: serde_json::Value = serde_json::from_str(&rules_state).unwrap();
    for group in json["data"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            assert_eq!(
                r["health"], "ok",
                "rule {} does not evaluate: {}",
                r["name"], r["lastError"]
            );
        }
    }
    for (what, expr) in &queries {
        let body = http_get(web, &format!("/api/v1/query?query={}", encode(expr)))
            .unwrap_or_else(|| panic!("{what}: Prometheus refused {expr}"));
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["status"], "success", "{what}: {body}");
    }
    // The demo capture accepted clear text: the critical alert's
    // expression sees it (its `for:` keeps it pending, not firing, here).
    let plaintext = &queries
        .iter()
        .find(|(w, _)| w == "alert MtlsniffPlaintextAccepted")
        .unwrap()
        .1;
    let body = http_get(web, &format!("/api/v1/query?query={}", encode(plaintext))).unwrap();
    assert!(body.contains(r#""value":["#), "no clear text seen: {body}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Percent-encoding for a URL query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// --- The DaemonSet's security context, on this kernel ---------------------
//
// What a container runtime (containerd's or CRI-O's spec, runc's init) does
// between the pod spec and the image's ENTRYPOINT, done here in the child
// before exec: bounding set = the `add` list (after `drop: [ALL]`), keep
// capabilities across the switch to `runAsUser`, then permitted and
// effective = the `add` list, no ambient capabilities, no_new_privs when
// `allowPrivilegeEscalation: false`, then execve. Whether the binary can
// open a capture after that is decided by the kernel's execve() rules
// (capabilities(7)), which these tests exercise for real.

const CAP_NET_RAW: u32 = 13;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// How the child is set up before it executes the binary.
#[derive(Clone, Copy, Debug)]
struct RuntimeLike {
    uid: u32,
    /// The runtime's permitted/effective sets hold NET_RAW (the `add`).
    net_raw_before_exec: bool,
    no_new_privs: bool,
}

fn runtime_like(cmd: &mut Command, r: RuntimeLike) {
    use std::os::unix::process::CommandExt;
    let fail = || Err(std::io::Error::last_os_error());
    // SAFETY: between fork and exec only async-signal-safe system calls
    // (prctl, setgroups, setresgid, setresuid, capset) on values copied in.
    unsafe {
        cmd.pre_exec(move || {
            for cap in 0..64 {
                if cap != CAP_NET_RAW {
                    // EINVAL past the kernel's last capability: nothing to drop.
                    libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0);
                }
            }
            if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0
                || libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(r.uid, r.uid, r.uid) != 0
                || libc::setresuid(r.uid, r.uid, r.uid) != 0
                || libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0
            {
                return fail();
            }
            let set = if r.net_raw_before_exec {
                1 << CAP_NET_RAW
            } else {
                0
            };
            let mut header = CapHeader {
                version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
                pid: 0,
            };
            let data = [
                CapData {
                    effective: set,
                    permitted: set,
                    inheritable: 0,
                },
                CapData {
                    effective: 0,
                    permitted: 0,
                    inheritable: 0,
                },
            ];
            if libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) != 0 {
                return fail();
            }
            if r.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return fail();
            }
            Ok(())
        });
    }
}

/// A copy of the binary, with the file capability `cap_net_raw+p` when
/// asked (what the image's `setcap cap_net_raw+p` writes: a revision-2
/// `security.capability` attribute, no effective bit; mtlsniff makes the
/// capability effective itself before it opens a live capture).
fn binary_copy(dir: &Path, name: &str, file_capability: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::copy(env!("CARGO_BIN_EXE_mtlsniff"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    if file_capability {
        let mut value = Vec::new();
        for word in [0x0200_0000u32, 1 << CAP_NET_RAW, 0, 0, 0] {
            value.extend_from_slice(&word.to_le_bytes());
        }
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: valid C strings and a buffer of the length passed.
        let rc = unsafe {
            libc::setxattr(
                c_path.as_ptr(),
                c"security.capability".as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
    }
    path
}

/// Run the DaemonSet's args (on `lo`, metrics on loopback) as the runtime
/// would start them: Ok with the process's status once its capture is open
/// (it then drops every capability), Err with its stderr if it exits.
fn start_like_the_daemonset(binary: &Path, r: RuntimeLike) -> Result<String, String> {
    let ds = daemonset();
    let args: Vec<String> = seq_at(container(&ds), "args")
        .iter()
        .map(|a| match a.as_str().unwrap() {
            "any" => "lo".to_string(),
            ":9909" => "127.0.0.1:0".to_string(),
            other => other.to_string(),
        })
        .collect();
    // --k8s: pods from a stand-in API server (tests/kube_stand_in), through
    // a kubeconfig the pod's user can read, in place of the service
    // account a cluster mounts.
    let api = kube_stand_in::StandIn::start(kube_stand_in::Answer::Pods(Vec::new()));
    let kubeconfig = api.kubeconfig(binary.parent().unwrap());
    let mut cmd = Command::new(binary);
    cmd.args(&args)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    runtime_like(&mut cmd, r);
    let mut child = Reaped(cmd.spawn().expect("start mtlsniff"));
    let pid = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.0.try_wait().unwrap().is_some() {
            let mut err = String::new();
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
            return Err(err);
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        // The capture is open once the process has dropped its capabilities
        // (README: after the capture is open and its filter set).
        let dropped = status.lines().any(|l| l == "CapPrm:\t0000000000000000");
        let listening = status
            .lines()
            .any(|l| l.starts_with("Threads:\t") && l != "Threads:\t1");
        if dropped && listening {
            return Ok(status);
        }
        assert!(
            Instant::now() < deadline,
            "no capture and no exit:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A directory where another user can execute a file we put there, and
/// whose mount honours file capabilities (nosuid mounts ignore them).
fn usable_for_file_capabilities(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let traversable = dir
        .ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    let Ok(c_dir) = std::ffi::CString::new(dir.to_string_lossy().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string and a zeroed struct the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let suid =
        unsafe { libc::statvfs(c_dir.as_ptr(), &mut st) } == 0 && st.f_flag & libc::ST_NOSUID == 0;
    traversable && suid
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn the_daemonsets_security_context_opens_a_capture_on_this_kernel() {
    if !is_root() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(!ci, "this test needs root under CI=true");
        eprintln!("SKIP: needs root (to set a file capability and switch users)");
        return;
    }
    let ds = daemonset();
    let c = container(&ds);
    let sc = get(c, "securityContext");
    let uid = u32::try_from(get(sc, "runAsUser").as_u64().unwrap()).unwrap();
    let add: Vec<&str> = seq_at(sc, "capabilities.add")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let pod_spec = RuntimeLike {
        uid,
        net_raw_before_exec: add == ["NET_RAW"],
        no_new_privs: !get(sc, "allowPrivilegeEscalation").as_bool().unwrap(),
    };
    let Some(base) = [
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
        std::env::temp_dir(),
    ]
    .into_iter()
    .find(|d| usable_for_file_capabilities(d)) else {
        panic!("no directory both reachable by uid {uid} and mounted without nosuid");
    };
    let dir = base.join(format!("mtlsniff-deploy-fcap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let with_cap = binary_copy(&dir, "mtlsniff", true);
    let without_cap = binary_copy(&dir, "mtlsniff-plain", false);

    // As the manifest says: the capture opens, as uid 65534, and then
    // mtlsniff holds no capability at all.
    let status = start_like_the_daemonset(&with_cap, pod_spec)
        .unwrap_or_else(|e| panic!("{pod_spec:?}: {e}"));
    assert!(
        status.contains(&format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}")),
        "{status}"
    );
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(
        status.contains("CapBnd:\t0000000000000000")
            || status.contains("CapBnd:\t0000000000002000"),
        "{status}"
    );

    // A non-root user gets CAP_NET_RAW across execve only from the file:
    // without the image's setcap the same pod fails, saying so.
    let err = start_like_the_daemonset(&without_cap, pod_spec).expect_err("no file capability");
    assert!(err.contains("CAP_NET_RAW"), "{err}");

    // no_new_privs limits what execve grants to what the process already
    // held (security/commoncap.c, cap_bprm_creds_from_file): with NET_RAW
    // held (the runtime's `add`), the file capability still works with or
    // without it; with nothing held, no_new_privs blocks the file
    // capability. That last case is the one allowPrivilegeEscalation: false
    // is feared for; the runtime's `add` is what keeps it from happening.
    for no_new_privs in [false, true] {
        let r = RuntimeLike {
            no_new_privs,
            ..pod_spec
        };
        start_like_the_daemonset(&with_cap, r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
    }
    let r = RuntimeLike {
        net_raw_before_exec: false,
        no_new_privs: false,
        ..pod_spec
    };
    start_like_the_daemonset(&with_cap, r).unwrap_or_else(|e| panic!("{r:?}: {e}"));
    let r = RuntimeLike {
        net_raw_before_exec: false,
        no_new_privs: true,
        ..pod_spec
    };
    let err = start_like_the_daemonset(&with_cap, r).expect_err("no_new_privs with nothing held");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
