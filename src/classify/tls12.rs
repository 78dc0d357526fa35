//! The TLS <= 1.2 rule: client authentication is decided from handshake
//! messages sent in clear (RFC 5246 §7.4): the server's CertificateRequest
//! and ServerHelloDone, the client's Certificate (non-empty: mtls; empty:
//! declined) or its ClientKeyExchange without one. Basis `observed`.
//!
//! It owns the ≤ 1.2 evidence (`Tls12`): what each side sent, the
//! abbreviated handshake of a resumed session (RFC 5246 §7.3), settling
//! after the handshake, renegotiation (RFC 5246 §7.4.1.1, followed to the
//! client's next ChangeCipherSpec, whose flight's size `renegotiation.rs`
//! reads), the session keys that link a resumption to its full handshake
//! (RFC 5077 tickets), and the leaf certificates seen in clear. It must not
//! infer anything from record sizes itself. Invariant: `Class::Mtls` only
//! from a Certificate message with at least one certificate, or from the
//! renegotiation size rule; the first certificate sent decides (a later
//! empty one does not unsay it: issue 5).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::connection::Connection;
use super::evidence::{Basis, Class, ClientCert, Decision, SessionKeys, SessionKind};
use super::renegotiation::RenegotiationRun;
use super::ticket;
use super::tls::Tls;
use super::{Direction, Outcome};
use crate::tls::record::{self, HandshakeMessage, RecordHeader, content, handshake};

/// Client application records after a TLS <= 1.2 handshake without a server
/// record, after which the verdict is given without waiting for the server.
const SETTLING_CLIENT_RECORDS: u32 = 4;
/// Records after a TLS <= 1.2 renegotiation started that are followed for
/// its client flight before the verdict is given anyway.
const RENEGOTIATION_RECORDS_MAX: u32 = 32;

/// One side's TLS <= 1.2 progress past its ChangeCipherSpec.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tls12Side {
    /// This side's Finished (its first protected handshake record) has
    /// passed; another protected handshake record is a renegotiation.
    pub finished: bool,
    /// Walker records when this side's ChangeCipherSpec passed, so a later
    /// record's sequence number is `records - ccs_records - 1`.
    pub ccs_records: u32,
    /// This side's second ChangeCipherSpec (a renegotiation's) passed; its
    /// records are under keys the key log's first master secret does not
    /// give.
    pub renegotiation_ccs: bool,
}

/// TLS <= 1.2 handshake evidence.
#[derive(Debug, Clone, Default)]
pub(super) struct Tls12 {
    pub sides: [Tls12Side; 2],
    pub server_done: bool,
    pub cert_request: bool,
    pub client_cert: ClientCert,
    pub client_kex: bool,
    /// The server finished before the client (RFC 5246 §7.3): a resumed
    /// session.
    pub abbreviated: bool,
    /// Accepted: the verdict waits for the first records after the
    /// handshake, to see whether a renegotiation starts.
    pub settling: bool,
    pub client_records_settling: u32,
    /// Who started a renegotiation (RFC 5246 §7.4.1.1).
    pub renegotiation: Option<Direction>,
    pub renegotiation_records: u32,
    /// The client's encrypted handshake records since the server last
    /// spoke, during a renegotiation; taken at its ChangeCipherSpec.
    pub renegotiation_run: RenegotiationRun,
    /// The leaf certificate each side sent in clear, bounded by the
    /// handshake buffer; parsed only when the verdict is assembled.
    pub client_leaf: Option<Vec<u8>>,
    pub server_leaf: Option<Vec<u8>>,
    /// NewSessionTicket sent in clear by the server (RFC 5077 §3.3).
    pub issued_ticket: Option<Vec<u8>>,
}

impl Tls12 {
    pub fn side(&self, dir: Direction) -> Tls12Side {
        self.sides.get(dir.idx()).copied().unwrap_or_default()
    }

    fn side_mut(&mut self, dir: Direction) -> Option<&mut Tls12Side> {
        self.sides.get_mut(dir.idx())
    }

    pub fn heap_bytes(&self) -> usize {
        [&self.client_leaf, &self.server_leaf, &self.issued_ticket]
            .into_iter()
            .flatten()
            .map(Vec::capacity)
            .sum::<usize>()
            + self.renegotiation_run.heap_bytes()
    }

    /// Some(true) a CertificateRequest was seen, Some(false) the server's
    /// flight ended without one, None not visible.
    pub fn cert_requested(&self) -> Option<bool> {
        if self.cert_request {
            Some(true)
        } else if self.server_done {
            Some(false)
        } else {
            None
        }
    }

    /// A handshake message in clear other than the hellos.
    pub fn handshake_message(
        &mut self,
        conn: &mut Connection,
        dir: Direction,
        m: &HandshakeMessage,
    ) {
        match (dir, m.msg_type) {
            (Direction::ToClient, handshake::CERTIFICATE) => {
                self.server_leaf = record::first_certificate(m).map(<[u8]>::to_vec);
            }
            (Direction::ToClient, handshake::CERTIFICATE_REQUEST) => self.cert_request = true,
            (Direction::ToClient, handshake::NEW_SESSION_TICKET) => {
                self.issued_ticket = record::parse_new_session_ticket(m.bytes);
            }
            (Direction::ToClient, handshake::SERVER_HELLO_DONE) => self.server_done = true,
            (Direction::ToServer, handshake::CERTIFICATE) => self.client_certificate(conn, m),
            (Direction::ToServer, handshake::CLIENT_KEY_EXCHANGE) => self.client_kex = true,
            _ => {}
        }
    }

    /// The client's Certificate message (RFC 5246 §7.4.6).
    fn client_certificate(&mut self, conn: &mut Connection, m: &HandshakeMessage) {
        match record::parse_certificate_list(m) {
            Some(list) if list.count > 0 => {
                self.client_leaf = record::first_certificate(m).map(<[u8]>::to_vec);
                self.client_cert = ClientCert::Sent {
                    count: list.count,
                    bytes: list.bytes,
                };
                conn.decide((
                    Class::Mtls,
                    Basis::Observed,
                    format!(
                        "client sent a Certificate message with {} certificate(s), {} bytes",
                        list.count, list.bytes
                    ),
                ));
            }
            // The first certificate sent decides, as `decide` keeps the
            // first class: a later empty Certificate (a second handshake in
            // clear) does not unsay it, or an mtls verdict would show
            // client_cert=empty (fuzz, issue 5).
            Some(_) if !matches!(self.client_cert, ClientCert::Sent { .. }) => {
                self.client_cert = ClientCert::Empty;
            }
            Some(_) => {}
            // A Certificate message that does not parse still means the
            // client answered a request; its contents are unknown, so no
            // mtls claim is made.
            None => conn.malformed("client Certificate message does not parse"),
        }
    }

    /// The client's flight ended (its ChangeCipherSpec, or the server's
    /// answer to it) without a certificate having decided.
    fn decide_from_client_flight(&mut self, conn: &mut Connection) {
        let why = match self.client_cert {
            ClientCert::Sent { .. } => return,
            ClientCert::Empty => {
                "certificate requested; client sent an empty Certificate (declined)"
            }
            _ => {
                self.client_cert = ClientCert::NotSent;
                if self.cert_request {
                    "certificate requested; client sent no Certificate message"
                } else {
                    "no client certificate: server did not request one"
                }
            }
        };
        conn.decide((Class::Tls, Basis::Observed, why.to_string()));
    }

    /// Accepted. The verdict becomes final with the first record after the
    /// handshake: server data (nothing more to see), a renegotiation (a
    /// certificate could be sent there, encrypted), or a few client records
    /// without an answer.
    fn settle(&mut self, conn: &mut Connection, why: &str) {
        if conn.outcome.is_none() {
            conn.outcome = Some((Outcome::Ok, why.to_string()));
        }
        self.settling = true;
    }

    /// A renegotiation is followed up to the client's next ChangeCipherSpec
    /// (its certificate comes before it: the key log reads it, the size
    /// rule weighs it), bounded by RENEGOTIATION_RECORDS_MAX records.
    fn follows_renegotiation(&mut self, conn: &mut Connection) -> bool {
        if self.renegotiation.is_none() || self.side(Direction::ToServer).renegotiation_ccs {
            return false;
        }
        self.renegotiation_records += 1;
        if self.renegotiation_records > RENEGOTIATION_RECORDS_MAX {
            if self.settling {
                conn.finish();
            }
            return false;
        }
        true
    }

    /// A record during a renegotiation, before the client's ChangeCipherSpec:
    /// the client's handshake records since the server last spoke are its
    /// flight.
    fn renegotiation_record(&mut self, dir: Direction, h: &RecordHeader) {
        if self.renegotiation.is_none() || self.side(Direction::ToServer).renegotiation_ccs {
            return;
        }
        match dir {
            Direction::ToClient => self.renegotiation_run.clear(),
            Direction::ToServer if h.content_type == content::HANDSHAKE => {
                self.renegotiation_run.push(h.len)
            }
            Direction::ToServer => {}
        }
    }

    /// The client's renegotiation ChangeCipherSpec: its flight's size
    /// (`renegotiation.rs`) says whether a certificate was sent. A
    /// certificate seen in clear before keeps its class; a resumed
    /// session's unknown class becomes mtls only.
    fn renegotiation_flight(&mut self, conn: &mut Connection) {
        let (class, basis, why) = self.renegotiation_run.decision();
        let Some((before, _, before_why)) = conn.class.as_mut() else {
            conn.class = Some((class, basis, why));
            return;
        };
        match (*before, class) {
            (Class::Mtls, _) | (Class::Plaintext, _) => {}
            (_, Class::Mtls) => conn.class = Some((class, basis, why)),
            (Class::Tls, _) => {
                let joined = format!("{before_why}; {why}");
                conn.class = Some((class, basis, joined));
            }
            (Class::Unknown, _) => {}
        }
    }

    /// Application data after the handshake (no renegotiation followed).
    fn application_data(&mut self, conn: &mut Connection, dir: Direction, client_ccs: bool) {
        match dir {
            Direction::ToClient if self.settling => conn.finish(),
            Direction::ToClient if client_ccs && conn.class.is_some() => {
                // Server data after the handshake, its CCS not captured.
                conn.finish_outcome(Outcome::Ok, "server sent encrypted data".to_string());
            }
            Direction::ToServer if self.settling => {
                self.client_records_settling += 1;
                if self.client_records_settling >= SETTLING_CLIENT_RECORDS {
                    conn.finish();
                }
            }
            _ => {}
        }
    }
}

impl Tls {
    pub(super) fn change_cipher_spec(&mut self, conn: &mut Connection, dir: Direction) {
        if !self.is_tls13() && self.v12.renegotiation.is_some() && self.walker.ccs(dir) {
            // A renegotiation's ChangeCipherSpec (followed only with a key
            // log): the client's ends its flight, the one to read.
            let first_ccs = !self.v12.side(dir).renegotiation_ccs;
            if dir == Direction::ToServer && first_ccs {
                self.v12.renegotiation_flight(conn);
            }
            if let Some(s) = self.v12.side_mut(dir) {
                s.renegotiation_ccs = true;
            }
            if dir == Direction::ToServer && self.v12.settling {
                conn.finish();
            }
            return;
        }
        if self.is_tls13() || self.sh.is_none() {
            // TLS 1.3 middlebox-compatibility CCS (RFC 8446 §D.4), also
            // around a HelloRetryRequest: it carries nothing and encrypts
            // nothing.
            return;
        }
        let records = self.walker.records(dir);
        if let Some(s) = self.walker.side_mut(dir) {
            s.ccs = true;
        }
        if let Some(s) = self.v12.side_mut(dir) {
            s.ccs_records = records;
        }
        let client_ccs = self.walker.ccs(Direction::ToServer);
        // RFC 5077 §3.4: a server resuming from a ticket echoes the
        // client's session id; the ticket is what the client sent.
        let ticket_len = self.ch.as_ref().map(|c| c.ticket.len()).filter(|&n| n > 0);
        let v12 = &mut self.v12;
        match dir {
            Direction::ToClient => {
                if !v12.server_done && !client_ccs {
                    // The server finished first, with no Certificate /
                    // ServerHelloDone: an abbreviated handshake (RFC 5246
                    // §7.3), i.e. a resumed session.
                    v12.abbreviated = true;
                    conn.decide(ticket::resumed(
                        "resumed: abbreviated TLS handshake, no certificates on the wire",
                        ticket_len.map(|n| ("session ticket", n)),
                    ));
                }
                if client_ccs || v12.abbreviated {
                    // The server answered the client's Finished: accepted.
                    if conn.class.is_none() {
                        v12.decide_from_client_flight(conn);
                    }
                    v12.settle(conn, "server finished the handshake");
                }
            }
            Direction::ToServer => {
                if conn.class.is_none() {
                    v12.decide_from_client_flight(conn);
                }
                if v12.abbreviated && self.walker.ccs(Direction::ToClient) {
                    v12.settle(conn, "resumed session accepted");
                }
            }
        }
    }

    /// A record whose body is not read, after ChangeCipherSpec (or early
    /// data before the ServerHello).
    pub(super) fn protected_record_tls12(
        &mut self,
        conn: &mut Connection,
        dir: Direction,
        h: RecordHeader,
    ) {
        if self.sh.is_none()
            && dir == Direction::ToServer
            && h.content_type == content::APPLICATION_DATA
        {
            self.early_records += 1;
            return;
        }
        let ccs = self.walker.ccs(dir);
        let v12 = &mut self.v12;
        if h.content_type == content::HANDSHAKE && ccs {
            if let Some(side) = v12.side_mut(dir)
                && !side.finished
            {
                side.finished = true; // its encrypted Finished
                return;
            }
            // A handshake after Finished: HelloRequest or a new ClientHello,
            // encrypted. A client certificate may be exchanged there.
            v12.renegotiation.get_or_insert(dir);
            v12.renegotiation_record(dir, &h);
            if v12.settling && !v12.follows_renegotiation(conn) {
                conn.finish();
            }
            return;
        }
        v12.renegotiation_record(dir, &h);
        if v12.follows_renegotiation(conn) {
            // Waiting for the renegotiation's client flight (key log):
            // application data in between does not end the wait.
            return;
        }
        if h.content_type != content::APPLICATION_DATA {
            return;
        }
        let client_ccs = self.walker.ccs(Direction::ToServer);
        self.v12.application_data(conn, dir, client_ccs);
    }

    /// The class when the handshake ended early: what the client had shown.
    pub(super) fn class_at_failure(&self) -> Decision {
        if self.is_tls13() {
            return self.tls13_class();
        }
        let (class, basis, why) = match self.v12.client_cert {
            ClientCert::Sent { .. } => (Class::Mtls, Basis::Observed, "client sent a certificate"),
            ClientCert::Empty => (
                Class::Tls,
                Basis::Observed,
                "certificate requested; client sent an empty Certificate (declined)",
            ),
            _ if self.v12.client_kex => (
                Class::Tls,
                Basis::Observed,
                "client sent no Certificate message",
            ),
            _ if self.sh.is_some() && self.v12.server_done && !self.v12.cert_request => (
                Class::Tls,
                Basis::Observed,
                "server did not request a client certificate",
            ),
            _ if self.ch.is_some() && self.sh.is_none() => (
                Class::Tls,
                Basis::Observed,
                "handshake refused before the ServerHello: no client certificate was sent",
            ),
            _ => (
                Class::Unknown,
                Basis::None,
                "handshake ended before the client's certificate flight",
            ),
        };
        (class, basis, why.to_string())
    }

    /// The flow ends before a TLS <= 1.2 verdict: decide from what was seen.
    pub(super) fn conclude_tls12(&mut self, conn: &mut Connection, ended: &str) {
        if conn.class.is_none() {
            let decided = if self.sh.is_none() {
                (
                    Class::Unknown,
                    Basis::None,
                    format!("no ServerHello: {ended} during the handshake"),
                )
            } else if self.v12.client_kex
                || self.walker.ccs(Direction::ToServer)
                || matches!(self.v12.client_cert, ClientCert::Empty)
            {
                self.class_at_failure()
            } else if self.v12.cert_request {
                (
                    Class::Unknown,
                    Basis::None,
                    "server requested a certificate; the client's flight is not seen".to_string(),
                )
            } else if self.v12.server_done {
                self.v12.client_cert = ClientCert::NotSent;
                (
                    Class::Tls,
                    Basis::Observed,
                    "server did not request a client certificate (RFC 5246 §7.4.6: none can be sent)".to_string(),
                )
            } else {
                (
                    Class::Unknown,
                    Basis::None,
                    format!("{ended} during the server's handshake flight"),
                )
            };
            conn.class = Some(decided);
        }
        if conn.outcome.is_none() {
            let server_closed = conn.server().closed.is_some();
            let (o, why) = if server_closed && !self.walker.ccs(Direction::ToClient) {
                (
                    Outcome::Rejected,
                    "server closed the connection during the handshake".to_string(),
                )
            } else {
                (
                    Outcome::Incomplete,
                    format!("{ended} before the handshake finished"),
                )
            };
            conn.outcome = Some((o, why));
        }
    }

    /// The keys under which this session can be resumed (a full handshake
    /// with a verdict), or the keys of the session it resumes.
    pub(super) fn session_keys(&self, class: Class, resumed: bool) -> SessionKeys<'_> {
        let mut keys = SessionKeys::default();
        let (Some(ch), Some(sh)) = (&self.ch, &self.sh) else {
            return keys;
        };
        if self.is_tls13() {
            // The ticket a TLS 1.3 resumption sends as its PSK identity; the
            // tickets a full handshake issued are read only with a key log
            // (`verdict::assemble` offers them).
            if resumed {
                keys.resumes = [
                    self.accepted_psk_identity()
                        .map(|id| (SessionKind::Ticket, id)),
                    None,
                ];
            }
            return keys;
        }
        if resumed {
            let ticket =
                (!ch.ticket.is_empty()).then_some((SessionKind::Ticket, ch.ticket.as_slice()));
            let id = (!ch.session_id.is_empty() && ch.session_id == sh.session_id)
                .then_some((SessionKind::Id, ch.session_id.as_slice()));
            keys.resumes = [ticket, id];
        } else if matches!(class, Class::Tls | Class::Mtls) {
            let id =
                (!sh.session_id.is_empty()).then_some((SessionKind::Id, sh.session_id.as_slice()));
            let ticket = self
                .v12
                .issued_ticket
                .as_deref()
                .map(|t| (SessionKind::Ticket, t));
            keys.offers = [id, ticket];
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::super::testing::*;
    use super::super::*;
    use crate::verdict::assemble::tests::verdict;

    /// Fuzz regression (issue 5, tests/fuzz-regressions/engine/
    /// mtls-then-empty-client-certificate): a client that sends a
    /// Certificate with a certificate, then an empty one, stays mtls and its
    /// verdict keeps showing the certificate it sent.
    #[test]
    fn a_later_empty_client_certificate_does_not_unsay_the_first() {
        let sh12 = {
            let mut body = vec![3, 3];
            body.extend_from_slice(&[9; 32]);
            body.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
            handshake_record(2, &body)
        };
        let ch12 = {
            let mut body = vec![3, 3];
            body.extend_from_slice(&[1; 32]);
            body.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]);
            handshake_record(1, &body)
        };
        let steps = vec![
            (C, ch12),
            (
                S,
                [sh12, handshake_record(13, &[1, 1, 0, 0, 0, 0])].concat(),
            ),
            (
                C,
                [
                    handshake_record(11, &[0, 0, 5, 0, 0, 2, 0x30, 0]),
                    handshake_record(11, &[0, 0, 0]),
                ]
                .concat(),
            ),
        ];
        let v = verdict(&drive_then(&steps, |c| c.conclude(End::EndOfInput)));
        assert_eq!(v.class, Class::Mtls, "{}", v.reason);
        assert_eq!(v.client_cert, ClientCert::Sent { count: 1, bytes: 5 });
    }

    #[test]
    fn tls12_certificate_messages_are_observed() {
        let sh12 = {
            let mut body = vec![3, 3];
            body.extend_from_slice(&[9; 32]);
            body.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
            handshake_record(2, &body)
        };
        let server_flight = [
            sh12,
            handshake_record(11, &[0, 0, 5, 0, 0, 2, 0x30, 0]),
            handshake_record(13, &[1, 1, 0, 0, 0, 0]),
            handshake_record(14, &[]),
        ]
        .concat();
        let ch12 = {
            let mut body = vec![3, 3];
            body.extend_from_slice(&[1; 32]);
            body.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]);
            handshake_record(1, &body)
        };
        for (cert_list, class, cert) in [
            (
                vec![0, 0, 5, 0, 0, 2, 0x30, 0],
                Class::Mtls,
                ClientCert::Sent { count: 1, bytes: 5 },
            ),
            (vec![0, 0, 0], Class::Tls, ClientCert::Empty),
        ] {
            let steps = vec![
                (C, ch12.clone()),
                (S, server_flight.clone()),
                (
                    C,
                    [
                        handshake_record(11, &cert_list),
                        handshake_record(16, &[0, 1, 9]),
                        CCS.to_vec(),
                    ]
                    .concat(),
                ),
                (S, [CCS.to_vec(), encrypted(40)].concat()),
            ];
            let v = verdict(&drive(&steps));
            assert_eq!(
                (v.class, v.outcome, v.basis),
                (class, Outcome::Ok, Basis::Observed),
                "{}",
                v.reason
            );
            assert_eq!(v.client_cert, cert);
            assert_eq!(v.cert_requested, Some(true));
        }
        // A fatal alert from the server after the client's flight.
        let steps = vec![
            (C, ch12),
            (S, server_flight),
            (
                C,
                [
                    handshake_record(11, &[0, 0, 0]),
                    handshake_record(16, &[0, 1, 9]),
                    CCS.to_vec(),
                ]
                .concat(),
            ),
            (S, vec![21, 3, 3, 0, 2, 2, 40]),
        ];
        let v = verdict(&drive(&steps));
        assert_eq!((v.class, v.outcome), (Class::Tls, Outcome::Rejected));
        assert_eq!(
            v.alert.map(|a| a.name()),
            Some("handshake_failure".to_string())
        );
    }

    fn protected_handshake(len: u16) -> Vec<u8> {
        let mut r = encrypted(len);
        r[0] = 22;
        r
    }

    /// TLS 1.2 handshake with no client certificate, up to both Finished.
    fn tls12_accepted() -> Vec<(Direction, Vec<u8>)> {
        let mut ch = vec![3, 3];
        ch.extend_from_slice(&[1; 32]);
        ch.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]);
        let mut sh = vec![3, 3];
        sh.extend_from_slice(&[9; 32]);
        sh.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
        vec![
            (C, handshake_record(1, &ch)),
            (
                S,
                [
                    handshake_record(2, &sh),
                    handshake_record(11, &[0, 0, 0]),
                    handshake_record(14, &[]),
                ]
                .concat(),
            ),
            (
                C,
                [
                    handshake_record(16, &[0, 1, 9]),
                    CCS.to_vec(),
                    protected_handshake(40),
                ]
                .concat(),
            ),
            (S, [CCS.to_vec(), protected_handshake(40)].concat()),
        ]
    }

    #[test]
    fn tls12_renegotiation_after_the_handshake_is_reported() {
        let c = drive(&tls12_accepted());
        assert!(
            !c.is_final(),
            "waits for the first record after the handshake"
        );
        let mut steps = tls12_accepted();
        steps.push((C, encrypted(100)));
        steps.push((S, protected_handshake(60))); // HelloRequest, encrypted
        let v = verdict(&drive(&steps));
        assert_eq!((v.class, v.outcome), (Class::Tls, Outcome::Ok));
        assert!(v.renegotiated, "{}", v.reason);
        assert!(
            v.reason.contains("the server started a renegotiation"),
            "{}",
            v.reason
        );

        let mut steps = tls12_accepted();
        steps.push((S, encrypted(300)));
        let c = drive(&steps);
        assert!(c.is_final());
        assert!(!verdict(&c).renegotiated);
    }

    /// Issue 14 §2: the renegotiation is followed to the client's next
    /// ChangeCipherSpec without a key log; its flight (the client's
    /// handshake records since the server last spoke, not its new
    /// ClientHello) decides by size.
    #[test]
    fn tls12_renegotiation_flight_size_is_inferred() {
        let table: &[(&[u16], Class, Basis)] = &[
            (&[965, 61, 104], Class::Mtls, Basis::Inferred),
            (&[31, 61], Class::Tls, Basis::Inferred),
            (&[700], Class::Unknown, Basis::None),
        ];
        for (flight, class, basis) in table {
            let mut steps = tls12_accepted();
            steps.push((C, encrypted(100)));
            steps.push((S, protected_handshake(28))); // HelloRequest
            steps.push((C, protected_handshake(448))); // ClientHello
            steps.push((S, protected_handshake(1400))); // the server's flight
            steps.extend(flight.iter().map(|&l| (C, protected_handshake(l))));
            let c = drive(&steps);
            assert!(!c.is_final(), "{flight:?}: waits for the client's CCS");
            steps.push((
                C,
                vec![20, 3, 3, 0, 25].into_iter().chain([0; 25]).collect(),
            ));
            let c = drive(&steps);
            assert!(c.is_final(), "{flight:?}");
            let v = verdict(&c);
            assert_eq!(
                (v.class, v.basis),
                (*class, *basis),
                "{flight:?}: {}",
                v.reason
            );
            assert!(v.reason.contains("renegotiation"), "{}", v.reason);
        }
    }
}
