//! The workload parts of the views (`--k8s-pods`): the text line's
//! `client_wl=NS/NAME server_wl=NS/NAME` and `identity_mismatch=` tokens,
//! the JSON `client_workload` / `server_workload` / `identity_mismatch`
//! objects, Istio's four workload labels for metrics (capped, `other`
//! past the cap) and the run's workload counts for the summary.
//!
//! It only shows a `workload::Placement`; it must not look anything up
//! itself. Names come from a file, not the wire, but are escaped like wire
//! strings all the same (a pods file may be hostile too). Without a pods
//! list nothing here runs, so every view is byte-identical to one without.

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::workload::{Directory, Placement, Workload};

/// The text tokens, with their leading space: `client_wl=` and
/// `server_wl=` (`?` when the address is no pod's or node's), then
/// `identity_mismatch=SIDE:NS/SA,...` naming what the pod runs as.
pub fn text_tokens(p: &Placement, value: impl Fn(&str) -> String) -> String {
    let label = |w: &Option<Arc<Workload>>| w.as_ref().map_or("?".to_string(), |w| w.label());
    let mut s = format!(
        " client_wl={} server_wl={}",
        value(&label(&p.client)),
        value(&label(&p.server))
    );
    if !p.mismatches.is_empty() {
        let sides: Vec<String> = p
            .mismatches
            .iter()
            .map(|m| {
                let o = |a: &Option<Arc<str>>| a.as_deref().unwrap_or("?").to_string();
                format!(
                    "{}:{}/{}",
                    m.side.as_str(),
                    o(&m.pod.namespace),
                    o(&m.pod.service_account)
                )
            })
            .collect();
        s.push_str(" identity_mismatch=");
        s.push_str(&value(&sides.join(",")));
    }
    s
}

/// One end in the JSON view; every field null when the address is
/// unknown.
#[derive(Debug, Serialize, Default)]
pub struct JsonWorkload<'a> {
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub kind: Option<&'static str>,
    pub pod: Option<&'a str>,
    pub service_account: Option<&'a str>,
    pub node: Option<&'a str>,
}

impl<'a> JsonWorkload<'a> {
    pub fn of(w: Option<&'a Arc<Workload>>) -> Self {
        let Some(w) = w else {
            return JsonWorkload::default();
        };
        JsonWorkload {
            namespace: w.namespace.as_deref(),
            name: Some(&w.name),
            kind: Some(w.kind.as_str()),
            pod: w.pod.as_deref(),
            service_account: w.service_account.as_deref(),
            node: w.node.as_deref(),
        }
    }
}

/// A SPIFFE id that is not the pod's, in the JSON view.
#[derive(Debug, Serialize)]
pub struct JsonMismatch<'a> {
    pub side: &'static str,
    pub spiffe_id: &'a str,
    pub pod_namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub pod_service_account: Option<&'a str>,
}

/// `identity_mismatch`: null, or the sides that present someone else's
/// identity.
pub fn json_mismatches(p: &Placement) -> Option<Vec<JsonMismatch<'_>>> {
    (!p.mismatches.is_empty()).then(|| {
        p.mismatches
            .iter()
            .map(|m| JsonMismatch {
                side: m.side.as_str(),
                spiffe_id: &m.spiffe_id,
                pod_namespace: m.pod.namespace.as_deref(),
                pod: m.pod.pod.as_deref(),
                pod_service_account: m.pod.service_account.as_deref(),
            })
            .collect()
    })
}

/// Distinct (source, destination) workload label sets before new ones are
/// counted under `other`.
pub const MAX_WORKLOAD_SERIES: usize = 1_000;

/// Istio's workload labels, as (name, value) pairs appended to a series.
pub type WorkloadLabels = Vec<(&'static str, String)>;

/// Istio's four workload labels with a cap on distinct sets; shared by the
/// metrics' families (cloned with them).
#[derive(Debug, Clone, Default)]
pub struct LabelCap {
    seen: Arc<Mutex<FxHashSet<[String; 4]>>>,
}

impl LabelCap {
    /// The labels of one flow; `other` for all four once the cap is
    /// reached by other sets (the bool says so, for its counter).
    pub fn labels(&self, p: &Placement) -> (WorkloadLabels, bool) {
        let (sw, sns) = istio(p.client.as_ref());
        let (dw, dns) = istio(p.server.as_ref());
        let set = [sw, sns, dw, dns];
        // Only the output thread counts; a poisoned lock cannot happen
        // short of a panic there, and then `other` is the safe answer.
        let capped = match self.seen.lock() {
            Ok(mut seen) => {
                let fits = seen.contains(&set) || seen.len() < MAX_WORKLOAD_SERIES;
                if fits {
                    seen.insert(set.clone());
                }
                !fits
            }
            Err(_) => true,
        };
        let [sw, sns, dw, dns] = if capped {
            ["other", "other", "other", "other"].map(String::from)
        } else {
            set
        };
        let labels = vec![
            ("source_workload", sw),
            ("source_workload_namespace", sns),
            ("destination_workload", dw),
            ("destination_workload_namespace", dns),
        ];
        (labels, capped)
    }
}

/// (workload, namespace) label values as Istio writes them: `unknown`
/// when not known; a node is `node/NAME` in no namespace. Values keep
/// only the characters Kubernetes names use.
fn istio(w: Option<&Arc<Workload>>) -> (String, String) {
    let clean = |s: &str| -> String {
        s.chars()
            .take(253)
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' | '/' => c,
                _ => '_',
            })
            .collect()
    };
    match w {
        Some(w) => match &w.namespace {
            Some(ns) => (clean(&w.name), clean(ns)),
            None => (clean(&w.label()), "unknown".to_string()),
        },
        None => ("unknown".to_string(), "unknown".to_string()),
    }
}

/// What the run's workload mapping did, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadCounts {
    /// Flow ends (client and server) named / not named.
    pub named: u64,
    pub unnamed: u64,
    /// Flows with an identity mismatch.
    pub identity_mismatches: u64,
}

impl WorkloadCounts {
    pub fn record(&mut self, p: &Placement) {
        for end in [&p.client, &p.server] {
            if end.is_some() {
                self.named += 1;
            } else {
                self.unnamed += 1;
            }
        }
        if !p.mismatches.is_empty() {
            self.identity_mismatches += 1;
        }
    }

    /// The summary line (without the `mtlsniff: ` prefix); with the pods
    /// watch (`--k8s`), how it fared.
    pub fn line(&self, dir: &Directory) -> String {
        let watch = dir.watch.map_or(String::new(), |w| {
            format!(
                "; k8s watch: {} errors (retried), {} relists",
                w.errors, w.relists
            )
        });
        format!(
            "workloads: {} pods, {} addresses ({} KiB), {} pods dropped (budget); flow ends named {}, unknown {}; identity_mismatch {}{watch}",
            dir.pods,
            dir.addresses(),
            dir.bytes().div_ceil(1024),
            dir.dropped,
            self.named,
            self.unnamed,
            self.identity_mismatches
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Kind;

    fn w(ns: Option<&str>, name: &str) -> Arc<Workload> {
        Arc::new(Workload {
            namespace: ns.map(Arc::from),
            name: name.into(),
            kind: if ns.is_some() {
                Kind::Deployment
            } else {
                Kind::Node
            },
            pod: None,
            service_account: None,
            node: None,
        })
    }

    #[test]
    fn text_names_both_ends_and_unknown_is_a_question_mark() {
        let p = Placement {
            client: Some(w(Some("shop"), "web")),
            server: Some(w(None, "n1")),
            mismatches: vec![],
        };
        assert_eq!(
            text_tokens(&p, str::to_string),
            " client_wl=shop/web server_wl=node/n1"
        );
        let none = Placement::default();
        assert_eq!(
            text_tokens(&none, str::to_string),
            " client_wl=? server_wl=?"
        );
    }

    #[test]
    fn metric_labels_are_capped_with_other_and_cleaned() {
        let cap = LabelCap::default();
        let mut capped = 0;
        for i in 0..MAX_WORKLOAD_SERIES + 5 {
            let p = Placement {
                client: Some(w(Some("ns"), &format!("w{i}\"}}"))),
                server: None,
                mismatches: vec![],
            };
            let (labels, c) = cap.labels(&p);
            capped += u64::from(c);
            if c {
                assert!(labels.iter().all(|(_, v)| v == "other"));
            } else {
                assert!(labels[0].1.ends_with("__"), "{labels:?}");
            }
        }
        assert_eq!(capped, 5);
    }
}
