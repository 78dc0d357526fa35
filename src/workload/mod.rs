//! The workload stage: who a flow's addresses are in Kubernetes terms
//! (namespace, pod, service account, node, owning workload), from a pods
//! list (`--k8s-pods`, `pods.rs`), and the identity cross-check (a SPIFFE
//! id seen on the wire against the pod at that address).
//!
//! It sits between `flow` and `report`: the report stage asks it, on the
//! output thread, for the `Placement` of each verdict, so the workers are
//! untouched. It must not look at packets nor format anything. The
//! `Directory` is bounded by the byte budget it is built with (pods past it
//! are counted in `dropped`, never stored), and a lookup never answers a
//! wrong pod: a hostNetwork pod's address is its node's (`node/NAME`), and
//! an address several pods held over time answers the one whose lifetime
//! holds the flow's first packet, else nothing.
//!
//! With `--k8s` the directory is fed by the pods watch (`watch.rs`, the
//! only file that knows kube) while the output stage reads it: it is
//! shared as `Shared`, a read-write lock held only for one insert or one
//! lookup at a time.

pub mod pods;
pub mod watch;

use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustc_hash::FxHashMap;

use crate::capture::segment::{Endpoint, Timestamp};
use crate::verdict::{CertSeen, Verdict};

/// What owns a pod, as shown: the workload kind Istio and Linkerd name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    /// A pod with no controller we name: the pod is its own workload.
    Pod,
    /// A hostNetwork address: the node, never one of its pods.
    Node,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
            Kind::Pod => "Pod",
            Kind::Node => "Node",
        }
    }
}

/// One address's owner: a pod and its workload, or a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    /// None for a node.
    pub namespace: Option<Arc<str>>,
    /// The workload's name (the Deployment's, the pod's own, the node's).
    pub name: Arc<str>,
    pub kind: Kind,
    /// None for a node (a hostNetwork address is never one pod's).
    pub pod: Option<Arc<str>>,
    pub service_account: Option<Arc<str>>,
    pub node: Option<Arc<str>>,
}

impl Workload {
    /// `NS/NAME`, or `node/NAME` for a node: the compact form the text
    /// line and the edges use.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => format!("node/{}", self.name),
        }
    }

    /// Rough heap bytes of one entry (strings are shared between a pod's
    /// addresses, so this is an upper bound per address).
    fn cost(&self) -> usize {
        let s = |o: &Option<Arc<str>>| o.as_ref().map_or(0, |a| a.len() + 16);
        ENTRY_OVERHEAD
            + self.name.len()
            + s(&self.namespace)
            + s(&self.pod)
            + s(&self.service_account)
            + s(&self.node)
    }
}

/// Fixed bytes per stored address: the map slot, the interval, the
/// `Workload` and its `Arc` headers.
const ENTRY_OVERHEAD: usize = 192;

/// One holder of an address over a span of time (microseconds since the
/// epoch; None = unbounded on that side).
#[derive(Debug, Clone)]
struct Tenure {
    from: Option<i64>,
    until: Option<i64>,
    who: Arc<Workload>,
}

/// Holders remembered per address (a recycled IP has a few; a list with
/// thousands of pods on one address is hostile): past it the oldest is
/// dropped and counted.
pub const MAX_TENURES_PER_IP: usize = 256;

/// Addresses to workloads, bounded by a byte budget.
#[derive(Debug, Default)]
pub struct Directory {
    by_ip: FxHashMap<IpAddr, Vec<Tenure>>,
    bytes: usize,
    budget: usize,
    /// Pods read.
    pub pods: u64,
    /// Pods with an address not stored because the budget was reached,
    /// or dropped as the oldest of `MAX_TENURES_PER_IP` on one address.
    pub dropped: u64,
    /// `--k8s`: how the pods watch has fared (None for a pods list).
    pub watch: Option<WatchCounts>,
}

/// The pods watch's own counts (`--k8s`), shown in the workloads summary
/// line and as `mtlsniff_k8s_*` metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchCounts {
    /// Errors the watch met after its first list (each is retried with
    /// backoff).
    pub errors: u64,
    /// Times the pods were listed again after the first list (a watch
    /// that could not resume).
    pub relists: u64,
}

/// The directory shared between the pods watch (the one writer) and the
/// output stage (readers). A panic while it was held leaves the data as
/// it was (every insert keeps it consistent), so a poisoned lock is read
/// through rather than spreading the panic.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<RwLock<Directory>>);

impl Shared {
    pub fn new(dir: Directory) -> Self {
        Shared(Arc::new(RwLock::new(dir)))
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Directory> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Directory> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Directory {
    pub fn new(budget: usize) -> Self {
        Directory {
            budget,
            ..Directory::default()
        }
    }

    /// Bytes it may hold.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes held (counted against `--memory`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Addresses known.
    pub fn addresses(&self) -> usize {
        self.by_ip.len()
    }

    /// Remember that `who` held `ip` from `from` until `until`; false when
    /// the budget is reached (the caller counts the pod as dropped).
    pub fn insert(
        &mut self,
        ip: IpAddr,
        from: Option<i64>,
        until: Option<i64>,
        who: Arc<Workload>,
    ) -> bool {
        let cost = who.cost();
        if let Some(list) = self.by_ip.get_mut(&ip) {
            if list
                .iter()
                .any(|t| t.from == from && t.until == until && t.who == who)
            {
                // A node's address, once per hostNetwork pod: kept once.
                return true;
            }
            if let Some(t) = list
                .iter_mut()
                .find(|t| t.from == from && same_pod(&t.who, &who))
            {
                // The same pod seen again (the watch's updates): its end
                // becomes known, or an earlier one is learnt (a finished
                // pod's containers' end after the time it was seen gone).
                t.until = match (t.until, until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.bytes = self.bytes.saturating_sub(t.who.cost()) + cost;
                t.who = who;
                return true;
            }
        }
        if self.bytes + cost > self.budget {
            return false;
        }
        self.bytes += cost;
        let list = self.by_ip.entry(ip).or_default();
        // Creation order; a tenure ends where the next one on its address
        // begins (a recycled IP: the older pod had ended). Placed, not
        // sorted: a hostile list with every pod on one address stays
        // linear per pod.
        let key = |t: &Tenure| t.from.unwrap_or(i64::MIN);
        let at = list.partition_point(|t| key(t) <= from.unwrap_or(i64::MIN));
        list.insert(at, Tenure { from, until, who });
        if list.len() > MAX_TENURES_PER_IP {
            // The oldest holder goes: flows are placed at recent times.
            let gone = list.remove(0);
            self.bytes = self.bytes.saturating_sub(gone.who.cost());
            self.dropped += 1;
        }
        true
    }

    /// Who held `ip` at `at`. Several holders: the one whose tenure holds
    /// `at`; none does: unknown (never a guess).
    pub fn lookup(&self, ip: IpAddr, at: Timestamp) -> Option<&Arc<Workload>> {
        let list = self.by_ip.get(&ip)?;
        for (i, t) in list.iter().enumerate() {
            let next = list.get(i + 1).and_then(|n| n.from);
            let until = match (t.until, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let after_start = t.from.is_none_or(|f| at.0 >= f);
            let before_end = until.is_none_or(|u| at.0 < u);
            if after_start && before_end {
                return Some(&t.who);
            }
        }
        None
    }
}

/// One pod's tenures (a node's entry is no pod's: never the same).
fn same_pod(a: &Workload, b: &Workload) -> bool {
    a.pod.is_some() && a.pod == b.pod && a.namespace == b.namespace
}

/// Which end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// A SPIFFE identity seen on the wire that the pod at that address does
/// not run under: a peer presenting someone else's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub side: Side,
    pub spiffe_id: String,
    pub pod: Arc<Workload>,
}

/// A flow's two ends in workload terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub client: Option<Arc<Workload>>,
    pub server: Option<Arc<Workload>>,
    pub mismatches: Vec<Mismatch>,
}

impl Placement {
    /// Both ends of a verdict, at the flow's first packet, and the identity
    /// cross-check.
    pub fn of(dir: &Directory, v: &Verdict) -> Placement {
        Placement::at(dir, v.client, v.server, v.first_seen)
            .checked(&v.client_certificate, &v.server_certificate)
    }

    /// Both ends only (close lines and metrics of a close).
    pub fn at(dir: &Directory, client: Endpoint, server: Endpoint, at: Timestamp) -> Placement {
        Placement {
            client: dir.lookup(client.ip, at).cloned(),
            server: dir.lookup(server.ip, at).cloned(),
            mismatches: Vec::new(),
        }
    }

    fn checked(mut self, client: &Option<CertSeen>, server: &Option<CertSeen>) -> Placement {
        for (side, cert, who) in [
            (Side::Client, client, &self.client),
            (Side::Server, server, &self.server),
        ] {
            let Some(CertSeen::Parsed(c)) = cert else {
                continue;
            };
            let (Some(id), Some(who)) = (&c.spiffe, who) else {
                continue;
            };
            if let Some(m) = mismatch(side, id, who) {
                self.mismatches.push(m);
            }
        }
        self
    }

    /// Either end's namespace is in `namespaces`.
    pub fn in_namespaces(&self, namespaces: &[String]) -> bool {
        [&self.client, &self.server].into_iter().flatten().any(|w| {
            w.namespace
                .as_deref()
                .is_some_and(|ns| namespaces.iter().any(|n| n == ns))
        })
    }
}

/// `spiffe://TRUST_DOMAIN/ns/NS/sa/SA` → (NS, SA); other paths are not
/// Kubernetes identities and are not checked.
pub fn spiffe_ns_sa(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("spiffe://")?;
    let (_, path) = rest.split_once('/')?;
    let mut parts = path.split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("ns"), Some(ns), Some("sa"), Some(sa), None) if !ns.is_empty() && !sa.is_empty() => {
            Some((ns, sa))
        }
        _ => None,
    }
}

fn mismatch(side: Side, id: &str, who: &Arc<Workload>) -> Option<Mismatch> {
    // A node's address is shared by its hostNetwork pods: no one identity
    // belongs there, so nothing to check against.
    if who.kind == Kind::Node {
        return None;
    }
    let (ns, sa) = spiffe_ns_sa(id)?;
    let same = who.namespace.as_deref() == Some(ns) && who.service_account.as_deref() == Some(sa);
    (!same).then(|| Mismatch {
        side,
        spiffe_id: id.to_string(),
        pod: Arc::clone(who),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(ns: &str, name: &str, sa: &str) -> Arc<Workload> {
        Arc::new(Workload {
            namespace: Some(ns.into()),
            name: name.into(),
            kind: Kind::Deployment,
            pod: Some(format!("{name}-abc").into()),
            service_account: Some(sa.into()),
            node: Some("n1".into()),
        })
    }

    #[test]
    fn a_recycled_address_answers_by_time_and_never_outside_a_tenure() {
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        let mut d = Directory::new(1 << 20);
        assert!(d.insert(ip, Some(100), None, w("a", "old", "x")));
        assert!(d.insert(ip, Some(200), Some(300), w("a", "new", "x")));
        let at = |t| d.lookup(ip, Timestamp(t)).map(|w| w.name.to_string());
        assert_eq!(at(99), None, "before the first pod existed");
        assert_eq!(at(150).as_deref(), Some("old"));
        assert_eq!(at(200).as_deref(), Some("new"));
        assert_eq!(at(300), None, "after the newer pod was deleted");
    }

    #[test]
    fn one_address_keeps_its_newest_holders_only() {
        let ip: IpAddr = "10.1.1.2".parse().unwrap();
        let mut d = Directory::new(1 << 24);
        let n = MAX_TENURES_PER_IP as i64 + 744;
        // Out of time order, as a pods list is sorted by name.
        for i in (0..n).rev() {
            let until = Some(i * 10 + 10);
            assert!(d.insert(ip, Some(i * 10), until, w("a", &format!("p{i}"), "x")));
        }
        assert_eq!(d.by_ip[&ip].len(), MAX_TENURES_PER_IP);
        assert_eq!(d.dropped, 744);
        let at = |t| d.lookup(ip, Timestamp(t)).map(|w| w.name.to_string());
        assert_eq!(
            at((n - 1) * 10 + 5).as_deref(),
            Some(format!("p{}", n - 1).as_str())
        );
        assert_eq!(at(5), None, "the oldest holder was dropped, not guessed");
        let kept: usize = d.by_ip[&ip].iter().map(|t| t.who.cost()).sum();
        assert_eq!(d.bytes(), kept, "dropped holders give their bytes back");
    }

    #[test]
    fn the_budget_bounds_the_directory() {
        let mut d = Directory::new(1000);
        let mut stored = 0;
        for i in 0..100u8 {
            if d.insert(
                IpAddr::from([10, 0, 0, i]),
                None,
                None,
                w("ns", "name", "sa"),
            ) {
                stored += 1;
            }
        }
        assert!(stored > 0 && stored < 100, "{stored}");
        assert!(d.bytes() <= 1000);
    }

    #[test]
    fn spiffe_ids_are_read_strictly() {
        assert_eq!(
            spiffe_ns_sa("spiffe://cluster.local/ns/shop/sa/cart"),
            Some(("shop", "cart"))
        );
        for bad in [
            "spiffe://td/ns/shop/sa/",
            "spiffe://td/ns/shop/sa/cart/extra",
            "spiffe://td/ns/shop",
            "https://td/ns/a/sa/b",
        ] {
            assert_eq!(spiffe_ns_sa(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_mismatch_names_both_sides_and_a_node_is_never_checked() {
        let who = w("default", "debug", "default");
        let m = mismatch(Side::Client, "spiffe://td/ns/shop/sa/frontend", &who).unwrap();
        assert_eq!((m.side, m.pod.name.as_ref()), (Side::Client, "debug"));
        assert!(mismatch(Side::Client, "spiffe://td/ns/default/sa/default", &who).is_none());
        let node = Arc::new(Workload {
            namespace: None,
            name: "n1".into(),
            kind: Kind::Node,
            pod: None,
            service_account: None,
            node: Some("n1".into()),
        });
        assert!(mismatch(Side::Server, "spiffe://td/ns/shop/sa/x", &node).is_none());
    }
}
