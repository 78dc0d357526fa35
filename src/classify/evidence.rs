//! What the classifier concluded about one flow, as evidence for the verdict
//! assembler (`verdict::assemble`): the class and outcome words (`Class`,
//! `Outcome`, `Basis`, `ClientCert`, which `verdict` re-exports), the
//! sentences behind them, and the handshake facts a verdict shows.
//!
//! This file owns the types both the classifier and the verdict need; they
//! live here, in the lower stage, so `classify` never imports `verdict`.
//! It must not write a `Verdict` (only the assembler does) and must not
//! allocate: `Evidence` borrows from the classifier (or, from
//! `take_evidence` for a classifier about to be dropped, takes its strings),
//! and is built once, when the flow is reported, never per record.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::borrow::Cow;

use super::{Classifier, Direction, Mode};
use crate::tls::record::{Alert, ClientHello, ServerHello};

/// What the flow is, as far as the wire shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Plaintext,
    /// TLS with no client certificate.
    Tls,
    /// TLS with a client certificate.
    Mtls,
    /// The evidence was not seen; `Verdict::reason` says why.
    Unknown,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Plaintext, Class::Tls, Class::Mtls, Class::Unknown];
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Plaintext => "plaintext",
            Class::Tls => "tls",
            Class::Mtls => "mtls",
            Class::Unknown => "unknown",
        }
    }
}

/// Whether the server went on with the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The handshake finished and/or the server sent application data.
    Ok,
    /// The server refused: a fatal alert, or a close with no data.
    Rejected,
    /// The capture (or the flow) ended before the handshake did.
    Incomplete,
    /// The flow gives no evidence either way (midstream, no payload).
    Unknown,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Rejected,
        Outcome::Incomplete,
        Outcome::Unknown,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Incomplete => "incomplete",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One end of a flow, where a verdict names who did something (who
/// refused the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Party {
    Client,
    Server,
}

impl Party {
    pub fn as_str(self) -> &'static str {
        match self {
            Party::Client => "client",
            Party::Server => "server",
        }
    }
}

/// How the class was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Basis {
    /// Seen in clear: handshake messages (TLS <= 1.2) or plaintext bytes.
    Observed,
    /// Deduced from encrypted record sizes (TLS 1.3 client flight).
    Inferred,
    /// Read from handshake records opened with a key log (TLS 1.3
    /// handshake flights, a TLS <= 1.2 renegotiation).
    Decrypted,
    /// A resumed session takes the verdict of the full handshake that
    /// created it, seen earlier in the same capture.
    Inherited,
    /// No evidence (class unknown).
    None,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Observed => "observed",
            Basis::Inferred => "inferred",
            Basis::Decrypted => "decrypted",
            Basis::Inherited => "inherited",
            Basis::None => "none",
        }
    }
}

/// What the client did about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    /// A Certificate message with this many certificates (> 0), seen in
    /// clear.
    Sent { count: u32, bytes: u32 },
    /// TLS 1.3: an encrypted record too large to be anything but a
    /// Certificate; its contents (and count) are not visible.
    SentEncrypted { record_len: u16 },
    /// A Certificate message with an empty list: the client declined.
    Empty,
    /// No Certificate message.
    NotSent,
    /// Not visible (encrypted, or the flight is missing).
    Unknown,
}

impl ClientCert {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientCert::Sent { .. } | ClientCert::SentEncrypted { .. } => "sent",
            ClientCert::Empty => "empty",
            ClientCert::NotSent => "none",
            ClientCert::Unknown => "unknown",
        }
    }
}

/// Nothing known yet, as in a new verdict.
impl Default for ClientCert {
    fn default() -> Self {
        ClientCert::Unknown
    }
}

/// A class with how it was reached and why (one sentence).
pub(super) type Decision = (Class, Basis, String);

/// Which kind of TLS <= 1.2 session key (RFC 5246 §7.3 session id, RFC 5077
/// ticket); the numbers are part of the hashed key and must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Id = 1,
    Ticket = 2,
}

/// TLS <= 1.2 session keys of one flow, in the order they are linked: the
/// keys of the session a resumption resumes (ticket, then id), or those a
/// full handshake with a verdict offers (id, then ticket).
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionKeys<'a> {
    pub resumes: [Option<(SessionKind, &'a [u8])>; 2],
    pub offers: [Option<(SessionKind, &'a [u8])>; 2],
}

/// What the client's certificate flight showed, by protocol generation.
#[derive(Debug, Clone, Copy)]
pub enum Handshake<'a> {
    /// No hello seen (plaintext, midstream, nothing classified).
    None,
    /// TLS <= 1.2 (or a hello without a TLS 1.3 ServerHello): messages in
    /// clear.
    Tls12 {
        cert_requested: Option<bool>,
        client_cert: ClientCert,
    },
    /// TLS 1.3: what the first client record's size says, and the client's
    /// encrypted handshake flight (record lengths without headers).
    Tls13 {
        cert_requested: Option<bool>,
        client_cert: ClientCert,
        flight: &'a [u16],
        /// A pre-shared key was accepted (RFC 8446 §4.2.11): resumed.
        psk: bool,
    },
}

/// Everything the classifier concluded about one flow, for
/// `verdict::assemble`. Borrowed from the classifier; built once.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    pub class: Class,
    pub basis: Basis,
    /// Why this class (a sentence without the outcome's).
    pub why: Cow<'a, str>,
    pub outcome: Outcome,
    /// Why this outcome; empty when the class's sentence says it all.
    pub outcome_why: &'a str,
    /// Outcome `Rejected`: who refused (a client's fatal alert, or its
    /// close before its TLS 1.3 flight, is the client's refusal).
    pub rejected_by: Option<Party>,
    pub client_hello: Option<&'a ClientHello>,
    pub server_hello: Option<&'a ServerHello>,
    /// The hellos' names, moved out of a classifier about to be dropped
    /// (`take_evidence`): the hellos above no longer hold them. None (as
    /// `evidence` gives): read them from the hellos.
    pub names: Option<HelloNames>,
    /// Session resumption (TLS 1.3 PSK, TLS <= 1.2 abbreviated handshake).
    pub resumed: bool,
    pub alert: Option<Alert>,
    pub starttls: Option<&'a str>,
    pub proxy_identity: Option<&'a str>,
    pub session: SessionKeys<'a>,
    /// The leaf certificates sent in clear (TLS <= 1.2), DER.
    pub client_leaf: Option<&'a [u8]>,
    pub server_leaf: Option<&'a [u8]>,
    /// Who started a TLS <= 1.2 renegotiation after the handshake.
    pub renegotiation: Option<Direction>,
    /// Plaintext flows with `-A`: the first bytes each way (to the server,
    /// to the client).
    pub preview: Option<[&'a [u8]; 2]>,
    /// Plaintext flows: the protocol and what it says.
    pub app_proto: Option<&'a str>,
    pub handshake: Handshake<'a>,
}

/// The strings of the hellos a verdict shows, moved rather than copied.
#[derive(Debug, Clone, Default)]
pub struct HelloNames {
    /// The ClientHello's server_name.
    pub sni: Option<String>,
    /// The ClientHello's ALPN list.
    pub alpn_offered: Vec<String>,
    /// The ServerHello's ALPN.
    pub alpn_selected: Option<String>,
}

impl Classifier {
    /// The conclusion so far, as evidence for `verdict::assemble`. Call
    /// after `is_final()` or `conclude()` (and `prove`, with a key log).
    pub fn evidence(&self) -> Evidence<'_> {
        let (class, basis, why) = match &self.conn.class {
            Some((c, b, w)) => (*c, *b, Cow::Borrowed(w.as_str())),
            None => (Class::Unknown, Basis::None, Cow::Borrowed("no conclusion")),
        };
        self.evidence_with(class, basis, why)
    }

    /// `evidence`, for a classifier about to be dropped (the engine's
    /// report): the class's sentence and the hellos' names are moved into
    /// the evidence instead of borrowed, so the verdict takes them without
    /// a copy. The evidence says the same as `evidence` would; the
    /// classifier keeps its class but not those strings.
    pub fn take_evidence(&mut self) -> Evidence<'_> {
        let (class, basis, why) = match self.conn.class.as_mut() {
            Some((c, b, w)) => (*c, *b, Cow::Owned(std::mem::take(w))),
            None => (Class::Unknown, Basis::None, Cow::Borrowed("no conclusion")),
        };
        let names = match &mut self.mode {
            Mode::Tls(t) => Some(HelloNames {
                sni: t.ch.as_mut().and_then(|c| c.sni.take()),
                alpn_offered: t
                    .ch
                    .as_mut()
                    .map(|c| std::mem::take(&mut c.alpn))
                    .unwrap_or_default(),
                alpn_selected: t.sh.as_mut().and_then(|h| h.alpn.take()),
            }),
            Mode::Plain(_) | Mode::Start => None,
        };
        let mut e = self.evidence_with(class, basis, why);
        e.names = names;
        e
    }

    /// The evidence for this class and sentence (the rest is read from
    /// the classifier; nothing here reads the class's own sentence).
    fn evidence_with<'a>(&'a self, class: Class, basis: Basis, why: Cow<'a, str>) -> Evidence<'a> {
        let (outcome, outcome_why) = match &self.conn.outcome {
            Some((o, w)) => (*o, w.as_str()),
            None => (Outcome::Unknown, ""),
        };
        let mut e = Evidence {
            class,
            basis,
            why,
            outcome,
            outcome_why,
            rejected_by: self.rejected_by(outcome),
            client_hello: None,
            server_hello: None,
            names: None,
            resumed: false,
            alert: self.conn.alert,
            starttls: self.conn.starttls.as_deref(),
            proxy_identity: self.conn.proxy_identity.as_deref(),
            session: SessionKeys::default(),
            client_leaf: None,
            server_leaf: None,
            renegotiation: None,
            preview: None,
            app_proto: None,
            handshake: Handshake::None,
        };
        match &self.mode {
            Mode::Tls(t) => t.evidence(&mut e),
            Mode::Plain(p) if class == Class::Plaintext => {
                e.app_proto = Some(p.app_proto.as_str());
                if self.preview_cap > 0 {
                    e.preview = Some(p.previews());
                }
            }
            Mode::Plain(_) | Mode::Start => {}
        }
        e
    }

    /// Who refused a rejected flow: the client when it sent the fatal
    /// alert or abandoned its handshake, else the server.
    fn rejected_by(&self, outcome: Outcome) -> Option<Party> {
        if outcome != Outcome::Rejected {
            return None;
        }
        let client_alert = self
            .conn
            .alert
            .is_some_and(|a| !a.from_server && a.level == 2);
        Some(if client_alert || self.conn.client_refused {
            Party::Client
        } else {
            Party::Server
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::super::testing::*;
    use crate::capture::segment::{Endpoint, Timestamp};
    use crate::verdict::Verdict;
    use crate::verdict::assemble::assemble;

    fn blank() -> Verdict {
        let ep = |port| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        Verdict::new(ep(40000), ep(443), Timestamp(0), Timestamp(0))
    }

    /// A ClientHello naming `sni` and offering ALPN `h2`.
    fn named_hello(sni: &str) -> Vec<u8> {
        let mut names = vec![0, 0, 0, 0, 0];
        names[1] = (sni.len() + 3) as u8;
        names[4] = sni.len() as u8;
        names.extend_from_slice(sni.as_bytes());
        client_hello(&[ext(0, &names), ext(16, &[0, 3, 2, b'h', b'2'])])
    }

    /// `take_evidence` moves strings out of the classifier instead of
    /// borrowing them: the verdict it gives must be the one `evidence`
    /// gives, whatever the flow.
    #[test]
    fn taken_evidence_gives_the_borrowed_verdict() {
        let with_hello = |steps: Vec<(crate::classify::Direction, Vec<u8>)>| {
            let mut s = steps;
            s[0] = (C, named_hello("api.example"));
            s
        };
        let flows = [
            with_hello(tls13(&[40], Some(30))),
            with_hello(tls13(&[1200, 300, 40], None)),
            with_hello(tls13(&[200], None)),
            tls13(&[40], None),
            vec![(C, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec())],
            vec![(C, named_hello("only.hello"))],
        ];
        for steps in flows {
            let borrowed = drive(&steps);
            let mut taken = drive(&steps);
            let mut want = blank();
            assemble(&mut want, Some(borrowed.evidence()), None);
            let mut got = blank();
            assemble(&mut got, Some(taken.take_evidence()), None);
            assert_eq!(got, want);
            assert!(!got.reason.is_empty());
        }
        let mut c = drive(&with_hello(tls13(&[40], Some(30))));
        let mut v = blank();
        assemble(&mut v, Some(c.take_evidence()), None);
        assert_eq!(v.sni.as_deref(), Some("api.example"));
        assert_eq!(v.alpn_offered, ["h2"]);
    }
}
