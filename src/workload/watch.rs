//! The pods watch (`--k8s`): the only file that knows kube. It lists and
//! watches Pods in all namespaces through the Kubernetes API and feeds the
//! shared `Directory`, converting each Pod with `pods.rs` (one mapping of
//! a pod to its workload for both paths).
//!
//! It runs on the thread `pipeline::run::start_watch` makes, on a
//! current-thread tokio runtime built here, so a run without `--k8s`
//! starts neither. The config is kube's `Config::infer`: KUBECONFIG or
//! `~/.kube/config`, else the pod's service account. Until the first list
//! is complete every error ends the run (one line saying what to do, sent
//! back through `ready`); after it, a broken watch is retried by kube's
//! backoff, counted in `WatchCounts` and logged, never silent.
//!
//! The watch reads Pods as `WatchedPod`: the object's metadata for kube
//! (resource versions) and `pods.rs`'s own few fields, nothing else. Not
//! k8s-openapi's full `Pod`: its (de)serialisers for every field of the
//! schema would be linked into the binary, and every run, `--k8s` or not,
//! would carry their resident code pages (measured: the debug binary's
//! text 7 MB -> 24 MB, peak RSS +13 MiB on a small file, which broke
//! `--memory 32` in tests/secrets.rs).
//!
//! Lifetimes: a deleted pod, or one seen finished without an end time, is
//! ended at the time the watch saw it so (`gone_by`), so an address a new
//! pod takes later still maps by time. A re-list (the watch could not
//! resume) ends the pods it no longer lists. Bounded: the directory holds
//! its byte budget; the pods remembered for re-lists are capped at one per
//! `KNOWN_COST` bytes of that budget (past it a pod is not remembered and
//! is counted dropped; its delete still ends it, the event carries it).

use std::borrow::Cow;
use std::pin::pin;
use std::sync::mpsc::SyncSender;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Config, Resource};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Deserializer};

use super::pods::{self, Pod};
use super::{Directory, Shared, WatchCounts};

/// Bytes of the directory's budget per pod remembered for re-lists (a
/// pod's kept fields: names, times, addresses, owners; about 500 bytes):
/// at the default 256 MiB, some 32,000 pods.
pub const KNOWN_COST: usize = 512;
/// Pods per page of a list: kube holds one page of full Pod objects at a
/// time, so a small page keeps its memory small.
const PAGE: u32 = 100;

/// A Pod as the watch reads it: its metadata (kube needs the resource
/// version) and the fields `pods.rs` maps, read from the same object.
#[derive(Debug, Clone)]
pub(crate) struct WatchedPod {
    meta: ObjectMeta,
    pod: Pod,
}

impl<'de> Deserialize<'de> for WatchedPod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // One object, read twice from its parsed form; kube has already
        // parsed the event's JSON (bounded by its line length limit).
        let value = serde_json::Value::deserialize(d)?;
        let meta = match value.get("metadata") {
            Some(m) => ObjectMeta::deserialize(m).map_err(serde::de::Error::custom)?,
            None => ObjectMeta::default(),
        };
        let pod = Pod::deserialize(&value).map_err(serde::de::Error::custom)?;
        Ok(WatchedPod { meta, pod })
    }
}

impl Resource for WatchedPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// Why the watch could not start; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchError(pub String);

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WatchError {}

/// Watch pods into `dir` until the process ends. `ready` gets `Ok` once
/// the first list is in the directory, or the error that ended the watch
/// before that. Blocks: run it on its own thread.
pub fn serve(dir: Shared, ready: SyncSender<Result<(), WatchError>>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(watch(dir, ready)),
        Err(e) => {
            let msg = format!("--k8s: cannot start the Kubernetes client: {e}");
            let _ = ready.send(Err(WatchError(msg)));
        }
    }
}

async fn watch(dir: Shared, ready: SyncSender<Result<(), WatchError>>) {
    let config = match Config::infer().await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(no_config(&e)));
            return;
        }
    };
    let url = config.cluster_url.to_string();
    let client = match Client::try_from(config) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(start_error(&url, &e)));
            return;
        }
    };
    let api: Api<WatchedPod> = Api::all(client);
    let config = watcher::Config::default().page_size(PAGE);
    let mut events = pin!(watcher::watcher(api, config).default_backoff());
    let mut ready = Some(ready);
    let mut tracker = Tracker::new(dir.read().budget() / KNOWN_COST);
    while let Some(item) = events.next().await {
        match item {
            Ok(event) => {
                let listed = matches!(event, Event::InitDone);
                tracker.apply(&mut dir.write(), event, now_micros());
                if listed && let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
            }
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(watch_error(&url, &e)));
                    return;
                }
                counts(&mut dir.write()).errors += 1;
                tracing::warn!("the pods watch broke, retrying: {}", one_line(&e));
            }
        }
    }
}

fn counts(dir: &mut Directory) -> &mut WatchCounts {
    dir.watch.get_or_insert_with(WatchCounts::default)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok())
        .unwrap_or(i64::MAX)
}

/// The watch's events applied to the directory: which pods are known (for
/// re-lists) and when each let its address go.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    known: FxHashMap<String, Pod>,
    /// Pods remembered at most.
    limit: usize,
    /// During a (re-)list: the pods it has named so far.
    listing: Option<FxHashSet<String>>,
    /// Lists completed.
    lists: u64,
}

impl Tracker {
    pub(crate) fn new(limit: usize) -> Self {
        Tracker {
            limit,
            ..Tracker::default()
        }
    }

    /// One event at wall-clock `now` (microseconds since the epoch).
    pub(crate) fn apply(&mut self, dir: &mut Directory, event: Event<WatchedPod>, now: i64) {
        counts(dir);
        match event {
            Event::Init => self.listing = Some(FxHashSet::default()),
            Event::InitApply(p) => {
                if let Some(key) = self.seen(dir, &p, now)
                    && let Some(listing) = &mut self.listing
                {
                    listing.insert(key);
                }
            }
            Event::Apply(p) => {
                self.seen(dir, &p, now);
            }
            Event::Delete(p) => {
                if let Some(key) = p.pod.key() {
                    pods::add(dir, &p.pod, Some(now));
                    self.known.remove(&key);
                }
            }
            Event::InitDone => {
                if let Some(listed) = self.listing.take() {
                    self.end_unlisted(dir, &listed, now);
                }
                if self.lists > 0 {
                    counts(dir).relists += 1;
                }
                self.lists += 1;
            }
        }
        dir.pods = self.known.len() as u64;
    }

    /// An added or changed pod; its key when it is a pod.
    fn seen(&mut self, dir: &mut Directory, p: &WatchedPod, now: i64) -> Option<String> {
        let pod = &p.pod;
        let key = pod.key()?;
        // A finished pod that does not say when: gone by now.
        pods::add(dir, pod, pod.finished().then_some(now));
        if self.known.len() < self.limit || self.known.contains_key(&key) {
            self.known.insert(key.clone(), pod.clone());
        } else {
            dir.dropped += 1;
        }
        Some(key)
    }

    /// After a re-list: the pods it did not name were deleted while the
    /// watch was down.
    fn end_unlisted(&mut self, dir: &mut Directory, listed: &FxHashSet<String>, now: i64) {
        self.known.retain(|key, pod| {
            let keep = listed.contains(key);
            if !keep {
                pods::add(dir, pod, Some(now));
            }
            keep
        });
    }
}

/// A message on one line (kube's errors may quote a response body).
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn no_config(e: &dyn std::fmt::Display) -> WatchError {
    WatchError(format!(
        "--k8s: no Kubernetes config: not in a cluster (no service account token) and no kubeconfig \
         (set KUBECONFIG or write ~/.kube/config), or give a pods list with --k8s-pods FILE ({})",
        one_line(e)
    ))
}

fn start_error(url: &str, e: &kube::Error) -> WatchError {
    match e {
        kube::Error::Api(s) if s.code == 401 => WatchError(format!(
            "--k8s: the Kubernetes API at {url} refused the credentials (401 Unauthorized): \
             check the kubeconfig's user, or the pod's service account token"
        )),
        kube::Error::Api(s) if s.code == 403 => WatchError(format!(
            "--k8s: not allowed to list and watch pods at {url} (403 Forbidden): apply \
             deploy/kubernetes/rbac.yaml (ClusterRole mtlsniff-read-pods: get, list, watch pods) and run \
             as its service account ({})",
            one_line(&s.message)
        )),
        kube::Error::Api(s) => WatchError(format!(
            "--k8s: the Kubernetes API at {url} answered {} to the pods list: {}",
            s.code,
            one_line(&s.message)
        )),
        other => WatchError(format!(
            "--k8s: cannot reach the Kubernetes API at {url}: {} (check the cluster address and \
             that this host can reach it)",
            one_line(other)
        )),
    }
}

fn watch_error(url: &str, e: &watcher::Error) -> WatchError {
    match e {
        watcher::Error::InitialListFailed(k)
        | watcher::Error::WatchStartFailed(k)
        | watcher::Error::WatchFailed(k) => start_error(url, k),
        other => WatchError(format!(
            "--k8s: the pods list at {url} failed: {}",
            one_line(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::Timestamp;

    const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

    /// A running pod with nothing but its name and address.
    fn bare(name: &str, ip: &str) -> WatchedPod {
        pod(name, ip, "2026-01-01T00:00:00Z", serde_json::json!({}))
    }

    fn pod(name: &str, ip: &str, created: &str, extra: serde_json::Value) -> WatchedPod {
        let mut v = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
            "spec": {"serviceAccountName": "sa", "nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
        });
        if let (Some(base), Some(add)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in add {
                if let (Some(b), Some(x)) = (
                    base.get_mut(k).and_then(|b| b.as_object_mut()),
                    x.as_object(),
                ) {
                    b.extend(x.clone());
                }
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn who(d: &Directory, ip: &str, at: i64) -> Option<String> {
        let w = d.lookup(ip.parse().unwrap(), Timestamp(at))?;
        w.pod.as_deref().map(str::to_string)
    }

    #[test]
    fn a_deleted_pod_ends_when_seen_deleted_and_its_address_maps_by_time() {
        let mut d = Directory::new(1 << 20);
        let mut t = Tracker::new(1000);
        let old = bare("old", "10.1.0.9");
        for e in [Event::Init, Event::InitApply(old.clone()), Event::InitDone] {
            t.apply(&mut d, e, T0 + 10);
        }
        assert_eq!((d.pods, d.watch), (1, Some(WatchCounts::default())));
        // Updates of a known pod change nothing.
        t.apply(&mut d, Event::Apply(old.clone()), T0 + 15);
        assert_eq!(who(&d, "10.1.0.9", T0 + 19).as_deref(), Some("old"));
        t.apply(&mut d, Event::Delete(old), T0 + 20);
        assert_eq!(d.pods, 0);
        assert_eq!(who(&d, "10.1.0.9", T0 + 19).as_deref(), Some("old"));
        assert_eq!(who(&d, "10.1.0.9", T0 + 25), None, "deleted: nobody's");
        let new = pod(
            "new",
            "10.1.0.9",
            "2026-01-01T00:00:01Z",
            serde_json::json!({}),
        );
        t.apply(&mut d, Event::Apply(new), T0 + 1_000_010);
        assert_eq!(who(&d, "10.1.0.9", T0 + 1_000_000).as_deref(), Some("new"));
        assert_eq!(who(&d, "10.1.0.9", T0 + 5).as_deref(), Some("old"));
        assert_eq!(d.pods, 1);
    }

    #[test]
    fn a_finished_pod_without_an_end_time_ends_when_seen_finished() {
        let mut d = Directory::new(1 << 20);
        let mut t = Tracker::new(1000);
        let running = bare("job-x", "10.1.0.7");
        t.apply(&mut d, Event::Apply(running), T0 + 10);
        let done = serde_json::json!({"status": {"phase": "Succeeded"}});
        let finished = pod("job-x", "10.1.0.7", "2026-01-01T00:00:00Z", done);
        t.apply(&mut d, Event::Apply(finished.clone()), T0 + 50);
        assert_eq!(who(&d, "10.1.0.7", T0 + 49).as_deref(), Some("job-x"));
        assert_eq!(who(&d, "10.1.0.7", T0 + 50), None);
        // Seen finished again later: the first time it was seen so stands.
        t.apply(&mut d, Event::Apply(finished), T0 + 90);
        assert_eq!(who(&d, "10.1.0.7", T0 + 60), None);
        // Its containers' end, once known, is earlier still.
        let ended = serde_json::json!({"status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"finishedAt": "2026-01-01T00:00:00Z", "exitCode": 0}}}
        ]}});
        let ended = pod("job-x", "10.1.0.7", "2026-01-01T00:00:00Z", ended);
        t.apply(&mut d, Event::Apply(ended), T0 + 95);
        assert_eq!(who(&d, "10.1.0.7", T0 + 5), None);
    }

    #[test]
    fn a_relist_ends_the_pods_it_no_longer_names_and_is_counted() {
        let mut d = Directory::new(1 << 20);
        let mut t = Tracker::new(1000);
        let a = bare("a", "10.1.0.1");
        let b = bare("b", "10.1.0.2");
        for e in [
            Event::Init,
            Event::InitApply(a.clone()),
            Event::InitApply(b),
            Event::InitDone,
        ] {
            t.apply(&mut d, e, T0 + 10);
        }
        for e in [Event::Init, Event::InitApply(a), Event::InitDone] {
            t.apply(&mut d, e, T0 + 100);
        }
        assert_eq!(d.pods, 1);
        assert_eq!(d.watch.map(|w| w.relists), Some(1));
        assert_eq!(who(&d, "10.1.0.2", T0 + 99).as_deref(), Some("b"));
        assert_eq!(who(&d, "10.1.0.2", T0 + 100), None);
        assert_eq!(who(&d, "10.1.0.1", T0 + 100).as_deref(), Some("a"));
    }

    #[test]
    fn pods_past_the_remembered_limit_are_counted_and_still_end_on_delete() {
        let mut d = Directory::new(1 << 20);
        let mut t = Tracker::new(1);
        let a = bare("a", "10.1.0.1");
        let b = bare("b", "10.1.0.2");
        t.apply(&mut d, Event::Apply(a), T0 + 10);
        t.apply(&mut d, Event::Apply(b.clone()), T0 + 10);
        assert_eq!((d.pods, d.dropped), (1, 1));
        assert_eq!(
            who(&d, "10.1.0.2", T0 + 10).as_deref(),
            Some("b"),
            "mapped all the same"
        );
        t.apply(&mut d, Event::Delete(b), T0 + 20);
        assert_eq!(who(&d, "10.1.0.2", T0 + 20), None);
    }

    #[test]
    fn start_errors_are_one_line_and_say_what_to_do() {
        let status = |code: u16| {
            let mut s = kube::core::Status::failure("line one\nline two", "Forbidden");
            s.code = code;
            kube::Error::Api(Box::new(s))
        };
        let url = "http://127.0.0.1:1/";
        let e403 = start_error(url, &status(403)).0;
        assert!(
            e403.contains("deploy/kubernetes/rbac.yaml") && !e403.contains('\n'),
            "{e403}"
        );
        let e401 = start_error(url, &status(401)).0;
        assert!(
            e401.contains("401") && e401.contains("credentials"),
            "{e401}"
        );
    }
}
