//! The verdict assembler: the one place a `Verdict`'s conclusions (class,
//! outcome, basis, reason, client certificate, inherited class) are
//! written. Its inputs are what the stages below produce: the classifier's
//! `Evidence`, the `Facts` a key log opened (`tls::proof`), the mesh
//! readings (`classify::mesh`), and, in the output stage, the session a
//! resumption inherits (`report::resumption` keeps the bounded memory and
//! asks `inherit` to apply it).
//!
//! Order, which the reason's wording follows: the classifier's conclusion,
//! then what decryption proved over it (a stronger basis replaces the size
//! rule's class, keeping it in `inferred`), then the mesh annotation (which
//! explains, never changes, a class: wire-facts §5), then inheritance.
//! A new evidence field travels tls -> `classify::Evidence` -> here; a new
//! mesh fingerprint goes in `classify::mesh` and is read in `mesh` below.
//!
//! It must not look at packets or keep state. Invariant (see
//! `verdict`): `Class::Mtls` only with basis observed, inferred or
//! decrypted from the evidence or the facts, or inherited from a session
//! that was itself mtls; a mesh fingerprint never makes a verdict mtls.

use crate::capture::segment::Endpoint;
use crate::classify::{
    Basis, Class, ClientCert, Evidence, Handshake, Outcome, Party, SessionKeys, SessionKind, mesh,
};
use crate::tls::proof::{self, Facts};
use crate::verdict::{CertSeen, Flight, SessionLink, Verdict};

/// Write the flow's conclusions into `v` (which carries the flow's
/// endpoints, times and counts): the classifier's evidence, or none for a
/// flow that never got a classifier; then the decrypted facts, if any;
/// then the mesh annotation. The evidence is taken by value: its sentence
/// becomes the verdict's reason without a copy.
pub fn assemble(v: &mut Verdict, evidence: Option<Evidence<'_>>, proof: Option<&Facts>) {
    let refused_by = evidence.as_ref().and_then(|e| e.rejected_by);
    match evidence {
        Some(mut e) => {
            conclusions(v, &mut e, proof.is_some());
            handshake(v, &e);
            if let Some(facts) = proof {
                if matches!(e.handshake, Handshake::Tls13 { .. }) {
                    tls13_proof(v, &e, facts);
                    offer_tickets(v, facts);
                } else {
                    renegotiation_proof(v, &e, facts);
                }
            }
        }
        None => v.reason = "no payload: nothing to classify".to_string(),
    }
    v.rejected_by = rejected_by(v, refused_by);
    annotate_mesh(v);
}

/// Who refused a rejected flow: the classifier's answer (`refused_by`),
/// unless a decrypted fatal alert names its sender.
fn rejected_by(v: &Verdict, refused_by: Option<Party>) -> Option<Party> {
    if v.outcome != Outcome::Rejected {
        return None;
    }
    match v.alert {
        Some(a) if a.level == 2 && !a.from_server => Some(Party::Client),
        Some(a) if a.level == 2 => Some(Party::Server),
        _ => refused_by.or(Some(Party::Server)),
    }
}

/// The classifier's class, outcome and reason, and the facts it read in
/// clear. The evidence's sentence is moved into the reason (`e.why` is
/// left empty: nothing after this reads it).
fn conclusions(v: &mut Verdict, e: &mut Evidence<'_>, decrypted: bool) {
    v.class = e.class;
    v.basis = e.basis;
    v.outcome = e.outcome;
    let renegotiation_measured = e.renegotiation.is_some()
        && (e.why.starts_with("TLS 1.2 renegotiation")
            || e.why.contains("; TLS 1.2 renegotiation"));
    // Built in place: the sentence's own buffer, grown once for the
    // outcome's (same text as `format!("{why}; {outcome_why}")`).
    v.reason = std::mem::take(&mut e.why).into_owned();
    if !e.outcome_why.is_empty() {
        v.reason.reserve(2 + e.outcome_why.len());
        v.reason.push_str("; ");
        v.reason.push_str(e.outcome_why);
    }
    // Moved when the classifier gave them up (`take_evidence`), else copied.
    let (sni, alpn_offered, alpn_selected) = match e.names.take() {
        Some(n) => (n.sni, n.alpn_offered, n.alpn_selected),
        None => (
            e.client_hello.and_then(|c| c.sni.clone()),
            e.client_hello.map(|c| c.alpn.clone()).unwrap_or_default(),
            e.server_hello.and_then(|h| h.alpn.clone()),
        ),
    };
    if let Some(ch) = e.client_hello {
        v.sni = sni;
        v.alpn_offered = alpn_offered;
        v.tls_offered = Some(ch.offered_version());
    }
    if let Some(sh) = e.server_hello {
        v.tls_version = Some(sh.version);
        v.alpn_selected = alpn_selected;
    }
    v.resumed = e.resumed;
    v.alert = e.alert;
    v.starttls = e.starttls.map(str::to_string);
    v.proxy_identity = e.proxy_identity.map(str::to_string);
    v.session = session_link(v.server, &e.session);
    v.client_certificate = e.client_leaf.map(cert_seen);
    v.server_certificate = e.server_leaf.map(cert_seen);
    if let Some(who) = e.renegotiation {
        v.renegotiated = true;
        let what = if decrypted {
            "decrypted with the key log"
        } else if renegotiation_measured {
            "its client flight measured"
        } else {
            "a client certificate may be sent there, encrypted"
        };
        for part in [
            "; the ",
            who.sender(),
            " started a renegotiation after the handshake: ",
            what,
        ] {
            v.reason.push_str(part);
        }
    }
    if let Some([to_server, to_client]) = e.preview {
        v.preview_to_server = Some(crate::classify::plaintext::printable_text(to_server));
        v.preview_to_client = Some(crate::classify::plaintext::printable_text(to_client));
    }
    v.app_proto = e.app_proto.map(str::to_string);
}

/// What the client's certificate flight showed.
fn handshake(v: &mut Verdict, e: &Evidence<'_>) {
    match e.handshake {
        Handshake::None => {}
        Handshake::Tls12 {
            cert_requested,
            client_cert,
        } => {
            v.cert_requested = cert_requested;
            v.client_cert = client_cert;
        }
        Handshake::Tls13 {
            cert_requested,
            client_cert,
            flight,
            psk: _,
        } => {
            v.cert_requested = cert_requested;
            v.client_cert = client_cert;
            if !flight.is_empty() {
                v.flight = Some(Flight {
                    records: flight.to_vec(),
                    bytes: flight.iter().map(|&l| u32::from(l) + 5).sum(),
                });
            }
        }
    }
}

/// A decrypted TLS 1.3 handshake with a class offers the tickets it
/// issued (read with the key log): a resumption that sends one as its PSK
/// identity inherits this class (`report::resumption`). A resumed or
/// undecided handshake offers none.
fn offer_tickets(v: &mut Verdict, f: &Facts) {
    if v.resumed || v.basis != Basis::Decrypted || !matches!(v.class, Class::Tls | Class::Mtls) {
        return;
    }
    let server = v.server;
    v.session.offers.extend(
        f.tickets
            .iter()
            .map(|t| SessionLink::key(server, SessionKind::Ticket as u8, t)),
    );
}

/// The hashed keys linking a resumption to its full handshake.
fn session_link(server: Endpoint, keys: &SessionKeys<'_>) -> SessionLink {
    let hash = |list: &[Option<(SessionKind, &[u8])>; 2]| {
        list.iter()
            .flatten()
            .map(|&(kind, bytes)| SessionLink::key(server, kind as u8, bytes))
            .collect()
    };
    SessionLink {
        offers: hash(&keys.offers),
        resumes: hash(&keys.resumes),
    }
}

fn cert_seen(der: &[u8]) -> CertSeen {
    match crate::tls::identity::parse(der) {
        Ok(id) => CertSeen::Parsed(id),
        Err(_) => CertSeen::Unparsable,
    }
}

/// What the decrypted TLS 1.3 handshake proves, over the size rule.
fn tls13_proof(v: &mut Verdict, e: &Evidence<'_>, f: &Facts) {
    let inferred = v.class;
    if f.encrypted_extensions {
        v.alpn_selected = f.alpn.clone();
    }
    if f.cert_request || (f.post_cert_request && !psk_of(e)) {
        v.cert_requested = Some(true);
    } else if f.server_finished {
        v.cert_requested = Some(false);
    }
    v.server_certificate = f
        .server_cert
        .as_ref()
        .and_then(|c| c.leaf.as_deref())
        .map(cert_seen);
    let mut outcome_why = e.outcome_why.to_string();
    if let Some(alert) = f.alert.filter(|a| a.description != 0) {
        v.alert = Some(alert);
        if alert.level == 2 {
            v.outcome = Outcome::Rejected;
            let who = if alert.from_server {
                "server"
            } else {
                "client"
            };
            outcome_why = format!("{who} sent fatal alert {} (decrypted)", alert.name());
        }
    }
    let psk = psk_of(e);
    let pha_offered = e.client_hello.is_some_and(|c| c.post_handshake_auth);
    let cert = f.client_cert.as_ref().or(f.post_client_cert.as_ref());
    if let Some(c) = cert.and_then(|c| c.leaf.as_deref()) {
        v.client_certificate = Some(cert_seen(c));
    }
    let post = post_handshake_class(f, psk);
    // The size rule weighs the handshake's flight only: a certificate sent
    // after the handshake is no measure of it (`--calibrate` leaves it out).
    let size_rule_comparable = post.is_none();
    let decided = post.or_else(|| tls13_decrypted_class(f, psk, pha_offered));
    let Some((class, client_cert, why)) = decided else {
        if e.rejected_by == Some(Party::Client) && e.class == Class::Tls {
            // The client refused the server's flight (opened here) before
            // sending any flight of its own: no certificate went out.
            v.basis = Basis::Decrypted;
            v.inferred = Some(inferred);
            v.reason = format!(
                "{}; the key log opened the server's flight, the client sent none",
                v.reason
            );
            return;
        }
        v.reason = format!(
            "{}; the key log opened the server's flight but not the client's certificate \
             flight",
            v.reason
        );
        return;
    };
    v.class = class;
    v.basis = Basis::Decrypted;
    v.client_cert = client_cert;
    v.inferred = size_rule_comparable.then_some(inferred);
    v.reason = decrypted_reason(v, f, inferred, &why, &outcome_why);
}

/// The reason of a decrypted TLS 1.3 verdict: what decryption showed, the
/// 0-RTT records passed over, what the size rule alone said when it
/// differs (for `--calibrate` readers), then the outcome's reason.
fn decrypted_reason(
    v: &Verdict,
    f: &Facts,
    inferred: Class,
    why: &str,
    outcome_why: &str,
) -> String {
    let size = match &v.flight {
        Some(fl) if inferred != v.class => format!(
            "; the size rule alone says {} (flight {} B, first record {} B)",
            inferred.as_str(),
            fl.bytes,
            fl.records.first().copied().unwrap_or(0)
        ),
        _ => String::new(),
    };
    let early = if f.early_records_skipped > 0 {
        format!(
            "; {} 0-RTT record(s) after the ServerHello passed over",
            f.early_records_skipped
        )
    } else {
        String::new()
    };
    if outcome_why.is_empty() {
        format!("{why}{early}{size}")
    } else {
        format!("{why}{early}{size}; {outcome_why}")
    }
}

fn psk_of(e: &Evidence<'_>) -> bool {
    matches!(e.handshake, Handshake::Tls13 { psk: true, .. })
}

/// Post-handshake client authentication read under the application
/// traffic secrets (RFC 8446 §4.6.2): the server asked after the handshake
/// and the client answered. `mtls` needs a non-empty Certificate and its
/// CertificateVerify; an empty Certificate is `tls`; anything less leaves
/// the handshake's class.
fn post_handshake_class(f: &Facts, psk: bool) -> Option<(Class, ClientCert, String)> {
    if psk || !f.post_cert_request {
        return None;
    }
    match &f.post_client_cert {
        Some(c) if c.count > 0 && f.post_client_cert_verify => Some((
            Class::Mtls,
            ClientCert::Sent {
                count: c.count,
                bytes: c.bytes,
            },
            format!(
                "post-handshake authentication: the server sent a CertificateRequest after the \
                 handshake and the client answered with a Certificate of {} certificate(s), {} \
                 bytes and a CertificateVerify (decrypted with the application traffic secrets)",
                c.count, c.bytes
            ),
        )),
        Some(c) if c.count == 0 => Some((
            Class::Tls,
            ClientCert::Empty,
            "post-handshake authentication: the server sent a CertificateRequest after the \
             handshake and the client answered with an empty Certificate (decrypted with the \
             application traffic secrets)"
                .to_string(),
        )),
        _ => None,
    }
}

/// The class the decrypted TLS 1.3 client flight shows (RFC 8446 §4.4.2),
/// or None when the client's flight was not opened. `pha_offered`: the
/// client offered post_handshake_auth, so a server that did not ask in
/// the handshake may still ask later.
fn tls13_decrypted_class(
    f: &Facts,
    psk: bool,
    pha_offered: bool,
) -> Option<(Class, ClientCert, String)> {
    let client_alert = f.alert.filter(|a| !a.from_server && a.level == 2);
    let decided = match (&f.client_cert, client_alert) {
        _ if psk => (
            Class::Unknown,
            ClientCert::Unknown,
            "resumed: TLS 1.3 pre-shared key accepted; the decrypted handshake carries no \
             certificates (authentication, if any, was in the original handshake)"
                .to_string(),
        ),
        (Some(c), _) if c.count > 0 => (
            Class::Mtls,
            ClientCert::Sent {
                count: c.count,
                bytes: c.bytes,
            },
            format!(
                "client sent a Certificate with {} certificate(s), {} bytes{} (decrypted)",
                c.count,
                c.bytes,
                if f.client_cert_verify {
                    " and a CertificateVerify"
                } else {
                    ""
                }
            ),
        ),
        (Some(_), _) => (
            Class::Tls,
            ClientCert::Empty,
            "certificate requested; client sent an empty Certificate (decrypted)".to_string(),
        ),
        (None, Some(a)) => (
            Class::Tls,
            ClientCert::NotSent,
            format!(
                "client answered the server's flight with alert {}, no Certificate (decrypted)",
                a.name()
            ),
        ),
        (None, None) if f.client_flight_done && f.cert_request => (
            Class::Tls,
            ClientCert::NotSent,
            "certificate requested; client Finished without a Certificate (decrypted)".to_string(),
        ),
        (None, None) if f.client_flight_done || (f.server_finished && !f.cert_request) => (
            Class::Tls,
            ClientCert::NotSent,
            if pha_offered {
                format!(
                    "server did not request a client certificate in the handshake (decrypted); \
                     post_handshake_auth offered, and no CertificateRequest in the first {} \
                     records after it (decrypted)",
                    proof::POST_HANDSHAKE_RECORDS_MAX
                )
            } else {
                "server did not request a client certificate (decrypted; RFC 8446 §4.4.2: none \
                 can be sent)"
                    .to_string()
            },
        ),
        (None, None) => return None,
    };
    Some(decided)
}

/// What a decrypted TLS <= 1.2 renegotiation proves: a client certificate
/// sent there makes the flow mtls.
fn renegotiation_proof(v: &mut Verdict, e: &Evidence<'_>, f: &Facts) {
    let outcome_why = e.outcome_why;
    // The renegotiation size rule's class, kept for `--calibrate`; a
    // decrypted flight without a certificate undoes an inferred mtls.
    let inferred = (e.basis == Basis::Inferred).then_some(e.class);
    let undo = |v: &mut Verdict| {
        if inferred.is_some() && v.class != Class::Plaintext {
            v.class = Class::Tls;
        }
    };
    if f.cert_request {
        v.cert_requested = Some(true);
    }
    let why = match &f.client_cert {
        Some(c) if c.count > 0 => {
            v.class = Class::Mtls;
            v.client_cert = ClientCert::Sent {
                count: c.count,
                bytes: c.bytes,
            };
            v.client_certificate = c.leaf.as_deref().map(cert_seen);
            format!(
                "client sent a Certificate message with {} certificate(s), {} bytes, in a \
                 renegotiation after the handshake (decrypted)",
                c.count, c.bytes
            )
        }
        Some(_) => {
            undo(v);
            v.client_cert = ClientCert::Empty;
            "certificate requested in a renegotiation; client sent an empty Certificate \
             (decrypted)"
                .to_string()
        }
        None if f.client_flight_done => {
            undo(v);
            "renegotiation without a client Certificate (decrypted)".to_string()
        }
        None => {
            v.reason
                .push_str("; the renegotiation's client flight is not seen");
            return;
        }
    };
    if v.class == Class::Unknown {
        return;
    }
    v.basis = Basis::Decrypted;
    v.inferred = inferred;
    v.reason = if outcome_why.is_empty() {
        why
    } else {
        format!("{why}; {outcome_why}")
    };
}

/// Mesh fingerprints and identity hints from what the ClientHello showed
/// in clear (wire-facts §5). They explain a verdict; they never change it.
fn annotate_mesh(v: &mut Verdict) {
    if v.class == Class::Plaintext {
        if let Some(id) = &v.proxy_identity {
            v.mesh = Some(mesh::fingerprint_proxy_identity(id));
            v.reason = format!(
                "mesh-internal if ztunnel wrote it: a PROXY v2 header names source {id}, as ztunnel does \
                 when it hands a connection received over HBONE mTLS to the workload (anyone can \
                 write such a header: check that this hop is pod-local); {}",
                v.reason
            );
            return;
        }
        let h2c = v.app_proto.as_deref().is_some_and(|a| a.starts_with("h2c"));
        v.mesh = mesh::fingerprint_plaintext(v.server.port, h2c);
        return;
    }
    if !v.spoke_tls() {
        return;
    }
    v.mesh = mesh::fingerprint_tls(v.sni.as_deref(), &v.alpn_offered, v.server.port);
    if v.server_certificate.is_none() {
        v.identity_hint = mesh::identity_hint(v.sni.as_deref());
    }
}

/// The full handshake a resumed session came from (`report::resumption`
/// remembers them, bounded).
#[derive(Debug, Clone, Copy)]
pub struct Inheritance<'a> {
    pub class: Class,
    pub client_cert: ClientCert,
    /// When the full handshake's verdict was given (RFC 3339).
    pub when: &'a str,
    /// The full handshake's client endpoint.
    pub client: &'a str,
    /// The identity in its client certificate, if one was seen.
    pub client_id: Option<&'a str>,
}

/// A TLS <= 1.2 resumption that carries no certificates inherits the class
/// of the full handshake that created its session (basis `inherited`).
/// Only a resumed flow left unknown is changed.
pub fn inherit(v: &mut Verdict, origin: &Inheritance<'_>) -> bool {
    if !(v.resumed && v.class == Class::Unknown) {
        return false;
    }
    v.class = origin.class;
    v.basis = Basis::Inherited;
    v.client_cert = origin.client_cert;
    let who = origin
        .client_id
        .map(|id| format!(" ({id})"))
        .unwrap_or_default();
    v.reason = format!(
        "resumed the session of the full handshake at {} from {}{who}, which was {}; {}",
        origin.when,
        origin.client,
        origin.class.as_str(),
        v.reason
    );
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::capture::segment::Timestamp;
    use crate::classify::Classifier;
    use crate::tls::record::{ClientHello, ServerHello};

    /// The verdict a classifier's evidence gives without a key log, as the
    /// engine assembles it (the classifier's unit tests use it).
    pub(crate) fn verdict(c: &Classifier) -> Verdict {
        let ep = Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port: 1,
        };
        let mut v = Verdict::new(ep, ep, Timestamp(0), Timestamp(0));
        assemble(&mut v, Some(c.evidence()), None);
        v
    }

    fn blank() -> Verdict {
        let ep = |port| Endpoint {
            ip: "10.0.0.1".parse().unwrap(),
            port,
        };
        Verdict::new(ep(40000), ep(15008), Timestamp(0), Timestamp(0))
    }

    /// wire-facts §5: a mesh fingerprint explains a verdict, never makes it
    /// mtls (here an Istio ALPN on an HBONE port, with TLS 1.3 evidence
    /// too small for a certificate).
    #[test]
    fn a_mesh_fingerprint_never_changes_the_class() {
        let hello = crate::tls::record::ClientHello {
            alpn: vec!["istio".to_string()],
            versions: vec![0x0304],
            ..Default::default()
        };
        let e = Evidence {
            class: Class::Tls,
            basis: Basis::Inferred,
            why: "first record 53 B".into(),
            outcome: Outcome::Ok,
            outcome_why: "",
            rejected_by: None,
            client_hello: Some(&hello),
            server_hello: None,
            names: None,
            resumed: false,
            alert: None,
            starttls: None,
            proxy_identity: None,
            session: SessionKeys::default(),
            client_leaf: None,
            server_leaf: None,
            renegotiation: None,
            preview: None,
            app_proto: None,
            handshake: Handshake::Tls13 {
                cert_requested: None,
                client_cert: ClientCert::NotSent,
                flight: &[53],
                psk: false,
            },
        };
        let mut v = blank();
        assemble(&mut v, Some(e), None);
        assert!(v.mesh.is_some(), "fingerprinted");
        assert_eq!((v.class, v.basis), (Class::Tls, Basis::Inferred));
        assert_eq!(v.reason, "first record 53 B");
        assert_eq!(v.flight.map(|f| f.bytes), Some(58));
    }

    #[test]
    fn only_a_resumed_unknown_verdict_inherits() {
        let origin = Inheritance {
            class: Class::Mtls,
            client_cert: ClientCert::Sent { count: 1, bytes: 9 },
            when: "t",
            client: "c",
            client_id: None,
        };
        let mut full = blank();
        full.class = Class::Tls;
        full.resumed = true;
        assert!(!inherit(&mut full, &origin));
        assert_eq!(full.class, Class::Tls);
        let mut fresh = blank();
        assert!(!inherit(&mut fresh, &origin), "not resumed");
        let mut resumed = blank();
        resumed.resumed = true;
        resumed.reason = "resumed".to_string();
        assert!(inherit(&mut resumed, &origin));
        assert_eq!(
            (resumed.class, resumed.basis),
            (Class::Mtls, Basis::Inherited)
        );
        assert_eq!(
            resumed.reason,
            "resumed the session of the full handshake at t from c, which was mtls; resumed"
        );
    }

    /// Evidence with only these hellos (class unknown, nothing else).
    fn hellos<'a>(ch: Option<&'a ClientHello>, sh: Option<&'a ServerHello>) -> Evidence<'a> {
        Evidence {
            class: Class::Unknown,
            basis: Basis::None,
            why: "hellos only".into(),
            outcome: Outcome::Incomplete,
            outcome_why: "",
            rejected_by: None,
            client_hello: ch,
            server_hello: sh,
            names: None,
            resumed: false,
            alert: None,
            starttls: None,
            proxy_identity: None,
            session: SessionKeys::default(),
            client_leaf: None,
            server_leaf: None,
            renegotiation: None,
            preview: None,
            app_proto: None,
            handshake: Handshake::None,
        }
    }

    /// (tls_version, tls_offered) the assembler writes for these hellos.
    fn versions(ch: Option<&ClientHello>, sh: Option<&ServerHello>) -> (Option<u16>, Option<u16>) {
        let mut v = blank();
        assemble(&mut v, Some(hellos(ch, sh)), None);
        assert_eq!(v.spoke_tls(), ch.is_some() || sh.is_some());
        (v.tls_version, v.tls_offered)
    }

    /// Issue 13 §4: `tls_version` only when negotiated (a ServerHello was
    /// seen), `tls_offered` whenever a ClientHello was.
    #[test]
    fn version_is_negotiated_offer_is_the_clients_highest() {
        let tls13_offer = ClientHello {
            legacy_version: 0x0303,
            versions: vec![0x0304, 0x0303],
            ..ClientHello::default()
        };
        let tls12_offer = ClientHello {
            legacy_version: 0x0303,
            ..ClientHello::default()
        };
        // ClientHello only: nothing negotiated, the offer is the highest.
        assert_eq!(versions(Some(&tls13_offer), None), (None, Some(0x0304)));
        assert_eq!(versions(Some(&tls12_offer), None), (None, Some(0x0303)));
        // GREASE (0x?a?a) in supported_versions is never the offer.
        let greasy = ClientHello {
            versions: vec![0xfafa, 0x0304, 0x0303, 0x1a1a],
            ..tls12_offer.clone()
        };
        assert_eq!(versions(Some(&greasy), None), (None, Some(0x0304)));
        let only_grease = ClientHello {
            versions: vec![0x7a7a],
            ..tls12_offer.clone()
        };
        assert_eq!(versions(Some(&only_grease), None), (None, Some(0x0303)));
        // TLS 1.3: supported_versions' selection, not the legacy 1.2.
        let sh13 = ServerHello {
            legacy_version: 0x0303,
            version: 0x0304,
            ..ServerHello::default()
        };
        assert_eq!(
            versions(Some(&greasy), Some(&sh13)),
            (Some(0x0304), Some(0x0304))
        );
        // TLS 1.2 negotiated although 1.3 was offered.
        let sh12 = ServerHello {
            legacy_version: 0x0303,
            version: 0x0303,
            ..ServerHello::default()
        };
        assert_eq!(
            versions(Some(&tls13_offer), Some(&sh12)),
            (Some(0x0303), Some(0x0304))
        );
        // A ServerHello without its ClientHello (midstream): negotiated, no offer.
        assert_eq!(versions(None, Some(&sh12)), (Some(0x0303), None));
        // SSL 2.0: an SSL 2.0 ServerHello negotiates SSL 2.0 (sslv2.rs).
        let v2_hello = ClientHello {
            legacy_version: 0x0002,
            ..ClientHello::default()
        };
        let v2_server = ServerHello {
            legacy_version: 0x0002,
            version: 0x0002,
            ..ServerHello::default()
        };
        assert_eq!(
            versions(Some(&v2_hello), Some(&v2_server)),
            (Some(0x0002), Some(0x0002))
        );
        assert_eq!(versions(Some(&v2_hello), None), (None, Some(0x0002)));
        assert_eq!(versions(None, None), (None, None));
    }

    /// The mesh fingerprint needs "this flow spoke TLS", not "a version
    /// was negotiated": a ClientHello alone is enough, as before.
    #[test]
    fn a_client_hello_alone_is_fingerprinted() {
        let hello = ClientHello {
            alpn: vec!["istio".to_string()],
            versions: vec![0x0304],
            ..ClientHello::default()
        };
        let mut v = blank();
        assemble(&mut v, Some(hellos(Some(&hello), None)), None);
        assert_eq!(v.tls_version, None);
        assert!(v.mesh.is_some(), "fingerprinted without a ServerHello");
    }

    #[test]
    fn a_flow_without_a_classifier_has_no_payload() {
        let mut v = blank();
        assemble(&mut v, None, None);
        assert_eq!((v.class, v.basis), (Class::Unknown, Basis::None));
        assert_eq!(v.reason, "no payload: nothing to classify");
    }
}
