//! Reading a pods list (`--k8s-pods FILE`, `-` for stdin): the output of
//! `kubectl get pods -A -o json`, the API's `PodList` (a `v1/List` of Pods),
//! into a `Directory`.
//!
//! It owns the mapping from a Pod object to its addresses and workload:
//! `status.podIPs` (else `status.podIP`), both families; the controller
//! owner (a ReplicaSet `X-<pod-template-hash>` is Deployment `X`;
//! StatefulSet, DaemonSet, Job as they are; anything else, or none: the pod
//! itself); `spec.hostNetwork` pods answer `node/NODE` (their address is the
//! node's); every pod's `status.hostIP` is its node's address too. Lifetimes
//! come from `metadata.creationTimestamp` and `deletionTimestamp`.
//!
//! Bounded whatever the file: pods are read one at a time from the stream
//! (never the whole list in memory), only the fields above are kept (lists
//! capped, labels reduced to `pod-template-hash`), any JSON string longer
//! than `MAX_STRING` ends the read with an error (a real object is at most
//! 1.5 MiB in etcd), and the `Directory` holds at most its byte budget.
//! Malformed JSON is one line saying where.

use std::fmt;
use std::io::{self, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Directory, Kind, Workload};

/// The longest JSON string accepted (serde_json buffers a whole string).
pub const MAX_STRING: usize = 2 << 20;
/// Addresses read per pod (`podIPs` holds one per family).
const MAX_IPS: usize = 4;
/// Owner references looked at per pod.
const MAX_OWNERS: usize = 8;
/// Container statuses looked at per pod (for a finished pod's end).
const MAX_CONTAINERS: usize = 16;

/// A pods file that cannot be used; the message says what to do.
#[derive(Debug)]
pub struct PodsError(pub String);

impl fmt::Display for PodsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PodsError {}

/// Read `path` (`-`: stdin) into a directory of at most `budget` bytes.
pub fn read_path(path: &Path, budget: usize) -> Result<Directory, PodsError> {
    let name = path.display();
    if path.as_os_str() == "-" {
        return read(io::stdin().lock(), budget)
            .map_err(|e| PodsError(format!("--k8s-pods -: {e}")));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| PodsError(format!("cannot open --k8s-pods {name}: {e}")))?;
    read(file, budget).map_err(|e| PodsError(format!("--k8s-pods {name}: {e}")))
}

/// Read a pods list from `input`.
pub fn read<R: Read>(input: R, budget: usize) -> Result<Directory, String> {
    let guard = StringGuard::new(BufReader::with_capacity(64 * 1024, input));
    let mut de = serde_json::Deserializer::from_reader(guard);
    let mut dir = Directory::new(budget);
    ListSeed(&mut dir)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| format!("not a pods list (kubectl get pods -A -o json): {e}"))?;
    Ok(dir)
}

/// Errors the read when one JSON string runs past `MAX_STRING` bytes, so
/// serde_json's string buffer stays bounded.
struct StringGuard<R> {
    inner: R,
    in_string: bool,
    escaped: bool,
    run: usize,
}

impl<R: Read> StringGuard<R> {
    fn new(inner: R) -> Self {
        StringGuard {
            inner,
            in_string: false,
            escaped: false,
            run: 0,
        }
    }
}

impl<R: Read> Read for StringGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in buf.get(..n).unwrap_or_default() {
            if self.in_string {
                self.run += 1;
                if self.run > MAX_STRING {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a string longer than {MAX_STRING} bytes"),
                    ));
                }
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
            } else if b == b'"' {
                self.in_string = true;
                self.run = 0;
            }
        }
        Ok(n)
    }
}

/// The list object: `items` is read pod by pod into the directory; every
/// other key is skipped.
struct ListSeed<'a>(&'a mut Directory);

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a List of Pods")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut items = false;
        while let Some(key) = map.next_key::<Key>()? {
            if key.0 == "items" {
                map.next_value_seed(ItemsSeed(&mut *self.0))?;
                items = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !items {
            return Err(de::Error::missing_field("items"));
        }
        Ok(())
    }
}

/// An object key, kept only when short (the keys we look for are).
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(Key(if s.len() <= 64 {
                    s.to_string()
                } else {
                    String::new()
                }))
            }
        }
        d.deserialize_str(V)
    }
}

struct ItemsSeed<'a>(&'a mut Directory);

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of Pods")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(pod) = seq.next_element::<Pod>()? {
            add(self.0, &pod, None);
        }
        Ok(())
    }
}

// The Pod schema, only the fields used (the watch reads its Pods into
// this too, so both paths map a pod the same way).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Pod {
    metadata: Meta,
    spec: Spec,
    status: Status,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    creation_timestamp: Option<String>,
    deletion_timestamp: Option<String>,
    #[serde(deserialize_with = "template_hash")]
    labels: Option<String>,
    #[serde(deserialize_with = "first_n::<_, MAX_OWNERS, _>")]
    owner_references: Vec<Owner>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Owner {
    kind: String,
    name: String,
    controller: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Spec {
    service_account_name: Option<String>,
    node_name: Option<String>,
    host_network: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Status {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs", deserialize_with = "first_n::<_, MAX_IPS, _>")]
    pod_ips: Vec<PodIp>,
    #[serde(rename = "hostIP")]
    host_ip: Option<String>,
    #[serde(deserialize_with = "first_n::<_, MAX_CONTAINERS, _>")]
    container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ContainerStatus {
    state: ContainerState,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ContainerState {
    terminated: Option<Terminated>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Terminated {
    finished_at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct PodIp {
    ip: String,
}

/// A list, keeping its first `N` elements and skipping the rest (null is
/// an empty list).
fn first_n<'de, T, const N: usize, D>(d: D) -> Result<Vec<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    struct V<T, const N: usize>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while out.len() < N {
                match seq.next_element()? {
                    Some(x) => out.push(x),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }
    d.deserialize_any(V::<T, N>(std::marker::PhantomData))
}

/// `metadata.labels`, reduced to its `pod-template-hash` value.
fn template_hash<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of labels")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
            let mut hash = None;
            while let Some(k) = map.next_key::<Key>()? {
                if k.0 == "pod-template-hash" {
                    hash = map.next_value::<Option<String>>()?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(hash)
        }
    }
    d.deserialize_any(V)
}

/// RFC 3339 (the API's `Time`) → microseconds since the epoch.
fn micros(t: Option<&str>) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(t?).ok()?;
    let d = at.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_micros()).ok()
}

/// The workload a pod belongs to: its controller owner, with a
/// Deployment's ReplicaSet (`NAME-HASH`, label `pod-template-hash=HASH`)
/// named as the Deployment.
fn owner(meta: &Meta, pod: &str) -> (Kind, String) {
    let controller = meta
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| meta.owner_references.first());
    let Some(o) = controller else {
        return (Kind::Pod, pod.to_string());
    };
    match o.kind.as_str() {
        "ReplicaSet" => match meta
            .labels
            .as_deref()
            .and_then(|h| o.name.strip_suffix(h)?.strip_suffix('-'))
        {
            Some(deployment) if !deployment.is_empty() => {
                (Kind::Deployment, deployment.to_string())
            }
            _ => (Kind::ReplicaSet, o.name.clone()),
        },
        "StatefulSet" => (Kind::StatefulSet, o.name.clone()),
        "DaemonSet" => (Kind::DaemonSet, o.name.clone()),
        "Job" => (Kind::Job, o.name.clone()),
        _ => (Kind::Pod, pod.to_string()),
    }
}

impl Pod {
    /// `NS/NAME`, None for an object without both (not a Pod).
    pub(super) fn key(&self) -> Option<String> {
        let (Some(name), Some(ns)) = (&self.metadata.name, &self.metadata.namespace) else {
            return None;
        };
        Some(format!("{ns}/{name}"))
    }

    /// Ran to completion (`Succeeded`, `Failed`): its address is free.
    pub(super) fn finished(&self) -> bool {
        matches!(self.status.phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

/// One pod's addresses into the directory (nothing for a pod without
/// name or namespace: not a Pod object). `gone_by`: a time by which the
/// pod is known to have let its address go, used when the object itself
/// does not say when (the watch: the time it saw the pod deleted or
/// finished).
pub(super) fn add(dir: &mut Directory, pod: &Pod, gone_by: Option<i64>) {
    let (Some(name), Some(ns)) = (&pod.metadata.name, &pod.metadata.namespace) else {
        return;
    };
    dir.pods += 1;
    let node: Option<Arc<str>> = pod.spec.node_name.as_deref().map(Arc::from);
    let node_entry = node.as_ref().map(|n| {
        Arc::new(Workload {
            namespace: None,
            name: Arc::clone(n),
            kind: Kind::Node,
            pod: None,
            service_account: None,
            node: Some(Arc::clone(n)),
        })
    });
    let mut stored = true;
    // The node's own address: whatever holds it, it is the node's.
    if let (Some(ip), Some(entry)) = (parse_ip(pod.status.host_ip.as_deref()), &node_entry) {
        stored &= dir.insert(ip, None, None, Arc::clone(entry));
    }
    let ips: Vec<IpAddr> = if pod.status.pod_ips.is_empty() {
        parse_ip(pod.status.pod_ip.as_deref()).into_iter().collect()
    } else {
        pod.status
            .pod_ips
            .iter()
            .filter_map(|p| parse_ip(Some(&p.ip)))
            .collect()
    };
    let who = if pod.spec.host_network == Some(true) {
        // hostNetwork: the address is the node's; never name this pod.
        let Some(entry) = node_entry else { return };
        for ip in ips {
            stored &= dir.insert(ip, None, None, Arc::clone(&entry));
        }
        if !stored {
            dir.dropped += 1;
        }
        return;
    } else {
        let (kind, workload) = owner(&pod.metadata, name);
        Arc::new(Workload {
            namespace: Some(Arc::from(ns.as_str())),
            name: Arc::from(workload),
            kind,
            pod: Some(Arc::from(name.as_str())),
            service_account: pod.spec.service_account_name.as_deref().map(Arc::from),
            node,
        })
    };
    let from = micros(pod.metadata.creation_timestamp.as_deref());
    let until = match (until(pod), gone_by) {
        (Some(Some(u)), Some(g)) => Some(u.min(g)),
        (Some(Some(u)), None) => Some(u),
        (_, Some(g)) => Some(g),
        (Some(None), None) => None,
        // Finished at an unknown time: its address may be anyone's.
        (None, None) => return,
    };
    for ip in ips {
        stored &= dir.insert(ip, from, until, Arc::clone(&who));
    }
    if !stored {
        dir.dropped += 1;
    }
}

/// When a pod stopped holding its address: its deletion, or for a pod
/// that ran to completion (`Succeeded`, `Failed`: its IP is free for
/// another pod) its last container's end. `Some(None)`: still holds it;
/// `None`: finished, but when is unknown.
fn until(pod: &Pod) -> Option<Option<i64>> {
    let deleted = micros(pod.metadata.deletion_timestamp.as_deref());
    if !pod.finished() {
        return Some(deleted);
    }
    let finished = pod
        .status
        .container_statuses
        .iter()
        .filter_map(|c| micros(c.state.terminated.as_ref()?.finished_at.as_deref()))
        .max();
    match (deleted, finished) {
        (Some(d), Some(f)) => Some(Some(d.min(f))),
        (d, f) => d.or(f).map(Some),
    }
}

fn parse_ip(s: Option<&str>) -> Option<IpAddr> {
    s?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::Timestamp;

    const LIST: &str = r#"{"apiVersion":"v1","kind":"List","items":[
      {"metadata":{"name":"web-6d4b5c7f8-abcde","namespace":"shop",
        "labels":{"app":"web","pod-template-hash":"6d4b5c7f8"},
        "creationTimestamp":"2026-01-01T00:00:00Z",
        "ownerReferences":[{"kind":"ReplicaSet","name":"web-6d4b5c7f8","controller":true}]},
       "spec":{"serviceAccountName":"web","nodeName":"n1"},
       "status":{"phase":"Running","hostIP":"10.0.0.1","podIP":"10.244.0.5",
         "podIPs":[{"ip":"10.244.0.5"},{"ip":"fd00::5"}]}},
      {"metadata":{"name":"proxy-x","namespace":"kube-system",
        "ownerReferences":[{"kind":"DaemonSet","name":"proxy","controller":true}]},
       "spec":{"hostNetwork":true,"nodeName":"n1"},
       "status":{"hostIP":"10.0.0.1","podIP":"10.0.0.1"}},
      {"metadata":{"name":"rs-pod","namespace":"a","labels":null,
        "ownerReferences":[{"kind":"ReplicaSet","name":"plain-rs","controller":true}]},
       "spec":{},"status":{"podIP":"10.244.0.6"}}
    ]}"#;

    fn at(d: &Directory, ip: &str) -> Option<(String, &'static str)> {
        let w = d.lookup(ip.parse().unwrap(), Timestamp(i64::MAX / 2))?;
        Some((w.label(), w.kind.as_str()))
    }

    #[test]
    fn owners_families_and_host_network_map_as_the_api_means() {
        let d = read(LIST.as_bytes(), 1 << 20).unwrap();
        assert_eq!(d.pods, 3);
        let web = Some(("shop/web".to_string(), "Deployment"));
        assert_eq!(at(&d, "10.244.0.5"), web);
        assert_eq!(at(&d, "fd00::5"), web);
        assert_eq!(at(&d, "10.0.0.1"), Some(("node/n1".to_string(), "Node")));
        assert_eq!(
            at(&d, "10.244.0.6"),
            Some(("a/plain-rs".to_string(), "ReplicaSet")),
            "no pod-template-hash: the ReplicaSet itself"
        );
        assert_eq!(at(&d, "10.9.9.9"), None);
    }

    #[test]
    fn malformed_and_hostile_files_end_with_one_line() {
        for (input, says) in [
            ("{\"items\": [", "EOF"),
            ("[]", "invalid type"),
            ("{\"kind\":\"List\"}", "missing field `items`"),
        ] {
            let e = read(input.as_bytes(), 1 << 20).unwrap_err();
            assert!(e.contains(says) && !e.contains('\n'), "{input}: {e}");
        }
        let huge = format!(
            "{{\"items\":[{{\"metadata\":{{\"name\":\"{}\"}}}}]}}",
            "a".repeat(MAX_STRING + 1)
        );
        let e = read(huge.as_bytes(), 1 << 20).unwrap_err();
        assert!(e.contains("longer than"), "{e}");
    }
}
