//! Linking TLS <= 1.2 resumptions to the full handshakes that created their
//! sessions (RFC 5246 §7.3 session ids, RFC 5077 tickets).
//!
//! A resumed handshake carries no certificates, but it resumes a session
//! whose client authentication was settled in an earlier full handshake.
//! When that handshake is in the same capture, the resumed flow inherits
//! its class with basis `inherited`; otherwise it stays unknown (resumed).
//! Flows are sharded across workers, so the link is made here, in the output
//! stage, which sees every verdict in deterministic order. This file owns
//! the bounded memory of sessions; it must not look at packets, nor write a
//! verdict's conclusions itself (`verdict::assemble::inherit` does).

use std::collections::{HashMap, VecDeque};

use crate::verdict::assemble::{self, Inheritance};
use crate::verdict::{Class, ClientCert, Verdict};

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

/// The sessions full handshakes created, by key.
#[derive(Debug, Default)]
pub struct SessionMemory {
    by_key: HashMap<u64, Origin>,
    order: VecDeque<u64>,
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
