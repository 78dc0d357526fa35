//! Linking resumptions to the full handshakes that created their sessions
//! (RFC 5246 §7.3 session ids, RFC 5077 tickets; TLS 1.3 tickets, RFC 8446
//! §4.6.1, when a key log read the issuing handshake's NewSessionTicket and
//! the resumption sends it as its PSK identity).
//!
//! A resumed handshake carries no certificates, but it resumes a session
//! whose client authentication was settled in an earlier full handshake.
//! When that handshake is in the same capture, the resumed flow inherits
//! its class with basis `inherited`; otherwise it stays unknown (resumed).
//! Flows are sharded across workers, so the link is made here, in the output
//! stage, which sees every verdict in deterministic order. This file owns
//! the bounded memory of sessions; it must not look at packets, nor write a
//! verdict's conclusions itself (`verdict::assemble::inherit` does).
//! The engine wrote its `Decided` before the link, so a linked flow is
//! remembered here (bounded, like the sessions) until its close, which
//! then carries the verdict's final class and basis (`link_close`).

use std::collections::{HashMap, VecDeque};

use crate::capture::segment::{Endpoint, Timestamp};
use crate::verdict::assemble::{self, Inheritance};
use crate::verdict::{Basis, Class, ClientCert, FlowClose, Verdict};

/// Sessions remembered at once; the oldest is forgotten first (counted).
pub const MAX_SESSIONS: usize = 65_536;

#[derive(Debug, Clone)]
struct Origin {
    class: Class,
    client_cert: ClientCert,
    when: String,
    client: String,
    client_id: Option<String>,
}

/// A flow by what its verdict and its close both carry.
type FlowId = (Endpoint, Endpoint, Timestamp);

/// The sessions full handshakes created, by key.
#[derive(Debug, Default)]
pub struct SessionMemory {
    by_key: HashMap<u64, Origin>,
    order: VecDeque<u64>,
    /// Flows that inherited a class, waiting for their close.
    linked: HashMap<FlowId, (Class, Basis)>,
    linked_order: VecDeque<FlowId>,
    /// Keys forgotten because the memory was full.
    pub forgotten: u64,
    /// Resumed flows that inherited a verdict.
    pub inherited: u64,
}

impl SessionMemory {
    /// Remember what `v` offers and, if `v` is a resumption of a remembered
    /// session, have the verdict assembler give it that session's class.
    pub fn link(&mut self, v: &mut Verdict) {
        let origin = (v.resumed && v.class == Class::Unknown)
            .then(|| v.session.resumes.iter().find_map(|k| self.by_key.get(k)))
            .flatten()
            .cloned();
        if let Some(o) = origin {
            let inheritance = Inheritance {
                class: o.class,
                client_cert: o.client_cert,
                when: &o.when,
                client: &o.client,
                client_id: o.client_id.as_deref(),
            };
            if assemble::inherit(v, &inheritance) {
                self.inherited += 1;
                self.remember_linked(v);
            }
        }
        if v.session.offers.is_empty() || !matches!(v.class, Class::Tls | Class::Mtls) {
            return;
        }
        let origin = Origin {
            class: v.class,
            client_cert: v.client_cert,
            when: v.ts.rfc3339(),
            client: v.client.to_string(),
            client_id: v.client_certificate.as_ref().map(|c| c.id()),
        };
        for &key in &v.session.offers {
            if self.by_key.insert(key, origin.clone()).is_none() {
                self.order.push_back(key);
            }
        }
        while self.order.len() > MAX_SESSIONS {
            if let Some(old) = self.order.pop_front() {
                self.by_key.remove(&old);
                self.forgotten += 1;
            }
        }
    }

    fn remember_linked(&mut self, v: &Verdict) {
        let id = (v.client, v.server, v.first_seen);
        if self.linked.insert(id, (v.class, v.basis)).is_none() {
            self.linked_order.push_back(id);
        }
        while self.linked_order.len() > MAX_SESSIONS {
            if let Some(old) = self.linked_order.pop_front() {
                self.linked.remove(&old);
            }
        }
    }

    /// A close of a flow whose verdict was linked carries the linked class
    /// and basis, as its verdict line did (issue 16 §1).
    pub fn link_close(&mut self, c: &mut FlowClose) {
        let id = (c.client, c.server, c.first_seen);
        if let Some((class, basis)) = self.linked.remove(&id) {
            c.decided.class = class;
            c.decided.basis = basis;
            // The order queue keeps the id until it is popped; the
            // removal above already bounds the map.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::verdict::{Basis, SessionLink};

    fn verdict(class: Class, resumed: bool, offers: Vec<u64>, resumes: Vec<u64>) -> Verdict {
        let ep = |p| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: p,
        };
        Verdict {
            class,
            resumed,
            session: SessionLink { offers, resumes },
            ..Verdict::new(ep(40000), ep(443), Timestamp(0), Timestamp(0))
        }
    }

    #[test]
    fn a_resumption_inherits_the_class_of_its_full_handshake() {
        let mut m = SessionMemory::default();
        let mut full = verdict(Class::Mtls, false, vec![7, 8], vec![]);
        full.client_cert = ClientCert::Sent {
            count: 1,
            bytes: 500,
        };
        m.link(&mut full);
        let mut resumed = verdict(Class::Unknown, true, vec![], vec![8]);
        m.link(&mut resumed);
        assert_eq!(
            (resumed.class, resumed.basis),
            (Class::Mtls, Basis::Inherited)
        );
        assert!(
            resumed
                .reason
                .starts_with("resumed the session of the full handshake")
        );
        let mut close = FlowClose {
            ts: Timestamp(9),
            first_seen: resumed.first_seen,
            client: resumed.client,
            server: resumed.server,
            redirected_to: None,
            ending: crate::verdict::Ending::Fin,
            decided: crate::verdict::Decided {
                class: Class::Unknown,
                outcome: resumed.outcome,
                basis: Basis::None,
                mesh: None,
            },
            bytes_to_server: 0,
            bytes_to_client: 0,
            packets: 0,
        };
        m.link_close(&mut close);
        assert_eq!(
            (close.decided.class, close.decided.basis),
            (Class::Mtls, Basis::Inherited)
        );
        // Unknown sessions stay unknown.
        let mut other = verdict(Class::Unknown, true, vec![], vec![9]);
        m.link(&mut other);
        assert_eq!(other.class, Class::Unknown);
        assert_eq!(m.inherited, 1);
    }

    #[test]
    fn memory_is_bounded() {
        let mut m = SessionMemory::default();
        for k in 0..(MAX_SESSIONS as u64 + 10) {
            m.link(&mut verdict(Class::Tls, false, vec![k], vec![]));
        }
        assert_eq!(m.by_key.len(), MAX_SESSIONS);
        assert_eq!(m.forgotten, 10);
        let mut first = verdict(Class::Unknown, true, vec![], vec![0]);
        m.link(&mut first);
        assert_eq!(
            first.class,
            Class::Unknown,
            "the oldest session was forgotten"
        );
    }
}
