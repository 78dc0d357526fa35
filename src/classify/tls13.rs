//! The TLS 1.3 rule: client authentication is inferred from the size of
//! the client's first encrypted record after the ServerHello (wire-facts
//! §2; ARCHITECTURE.md, "Why the TLS 1.3 rule looks at the first record").
//! RFC 8446 §4.4 puts Certificate first in the client's flight and forbids
//! application data before Finished, so that record is the Certificate (or
//! a coalesced Certificate + CertificateVerify + Finished), or the
//! Finished / empty Certificate when no certificate was sent.
//!
//! It owns the TLS 1.3 evidence (`Tls13`: the client's flight, whether the
//! server answered it, what came after) and the outcome read from the
//! server's records and closes. It must not look inside a record (only
//! lengths: the bodies are encrypted) nor use ports or fingerprints.
//! Invariant: `Class::Mtls` only from a first record of at least
//! `CERTIFICATE_RECORD_MIN` bytes, never with a PSK (resumed) or early data
//! that hides where the flight starts.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::connection::Connection;
use super::evidence::{Basis, Class, ClientCert, Decision, Evidence, Handshake};
use super::ticket;
use super::tls::Tls;
use super::{Direction, Outcome};
use crate::tls::record::{self, ClientHello, RecordHeader};

/// Largest first encrypted client record (length field, without the 5-byte
/// header) that cannot hold a certificate. Measured no-certificate first
/// records (wire-facts §2): Finished alone 53 (SHA-256 suites) or 69
/// (SHA-384); an empty Certificate alone 25; rustls' coalesced empty
/// Certificate + Finished 61/77; Java pads each record by 16, giving 41 and
/// 85. The smallest real certificate record measured is several hundred bytes.
pub const FINISHED_RECORD_MAX: u16 = 100;

/// Smallest first encrypted client record taken as carrying a certificate.
/// Measured certificate flights (wire-facts §2): rustls P-256 leaf ~680 in
/// one record, Go P-256 ~713 total (first record ~550), OpenSSL ~1,188,
/// RSA-2048 leaves 1,100-1,577. A record this large right after the
/// ServerHello can only be a Certificate (or a coalesced Certificate +
/// CertificateVerify + Finished). Between the two constants the size alone
/// does not decide, and the verdict is unknown.
pub const CERTIFICATE_RECORD_MIN: u16 = 300;

/// Client records after the ServerHello remembered as "the flight".
const FLIGHT_RECORDS_MAX: usize = 16;

/// A TLS 1.3 record's overhead on the handshake bytes inside: one content
/// type byte and a 16-byte AEAD tag (RFC 8446 §5.2).
const TLS13_RECORD_OVERHEAD: u16 = 17;
/// An encrypted alert: 2 bytes of alert + the overhead.
pub(super) const TLS13_ALERT_RECORD_LEN: u16 = 2 + TLS13_RECORD_OVERHEAD;

/// What the first client record's size alone says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FirstRecord {
    /// `<= FINISHED_RECORD_MAX`: a Finished or an empty Certificate.
    FinishedSized,
    /// Between the two constants: the size does not decide.
    Ambiguous,
    /// `>= CERTIFICATE_RECORD_MIN`: only a Certificate fits.
    CertificateSized,
}

impl FirstRecord {
    pub fn of(len: u16) -> Self {
        if len >= CERTIFICATE_RECORD_MIN {
            FirstRecord::CertificateSized
        } else if len > FINISHED_RECORD_MAX {
            FirstRecord::Ambiguous
        } else {
            FirstRecord::FinishedSized
        }
    }
}

/// Whether the server spoke after the client's flight began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum FlightState {
    /// Client records after the ServerHello are still the flight.
    #[default]
    Open,
    /// The server answered (or the flow ended): the flight is complete.
    Answered,
}

/// TLS 1.3 evidence.
#[derive(Debug, Clone, Default)]
pub(super) struct Tls13 {
    /// Client record lengths after the ServerHello, at most
    /// FLIGHT_RECORDS_MAX.
    pub client_flight: Vec<u16>,
    pub flight: FlightState,
    /// The client closed before the server answered its flight.
    pub client_closed_first: bool,
    /// Server record lengths after the client's flight.
    pub after_flight: Vec<u16>,
    /// The engine decided the class with the flight this long and left
    /// its sentence to the evidence (`Tls::decide_tls13`).
    pub decided_at: Option<u8>,
}

/// Which sentence a TLS 1.3 decision carries (`Tls::tls13_reason` writes
/// it), so a decision costs no formatting until a view needs its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why13 {
    Resumed,
    EarlyData,
    NotSeen,
    CertificateSized(u16),
    Ambiguous(u16),
    EqualSmall,
    RawKeys,
    TooSmall { first: u16, pha: bool },
}

/// The end of a flight sentence (`tls13_reason`), after the summary and,
/// where there is one, the first record's size.
#[derive(Clone, Copy)]
enum Tail {
    HoldsCertificate,
    Between,
    EqualSmall,
    RawKeys,
    TooSmall { pha: bool },
}

impl Tls13 {
    pub fn heap_bytes(&self) -> usize {
        (self.client_flight.capacity() + self.after_flight.capacity()) * 2
    }

    /// The first client record after the ServerHello, if seen.
    fn first(&self) -> Option<u16> {
        self.client_flight.first().copied()
    }
}

impl Tls {
    /// A TLS 1.3 record whose body is not read (encrypted).
    pub(super) fn protected_record_tls13(
        &mut self,
        conn: &mut Connection,
        dir: Direction,
        h: RecordHeader,
    ) {
        let after_sh = self.sh_clock.is_some_and(|c| self.walker.clock > c);
        match dir {
            Direction::ToServer if !after_sh => self.early_records += 1,
            Direction::ToServer => {
                let v13 = &mut self.v13;
                if v13.flight == FlightState::Open && v13.client_flight.len() < FLIGHT_RECORDS_MAX {
                    v13.client_flight.push(h.len);
                }
                // The class rests on the first record (and, for small ones,
                // the next two): decide it now, so a client that streams
                // data before the server speaks again still gets a verdict.
                let small = v13
                    .first()
                    .is_some_and(|f| FirstRecord::of(f) == FirstRecord::FinishedSized);
                // With early data in play the Finished record must be seen
                // first (see tls13_class).
                let wait = (small || self.early_data()) && self.v13.client_flight.len() < 3;
                if !wait {
                    self.decide_tls13(conn);
                }
            }
            Direction::ToClient => {
                if self.v13.client_flight.is_empty() {
                    return;
                }
                self.close_flight(conn);
                self.v13.after_flight.push(h.len);
                self.tls13_outcome_on_server_record(conn);
            }
        }
    }

    /// The server spoke (or the flow ends): the client's flight is complete
    /// and the class is decided from it.
    fn close_flight(&mut self, conn: &mut Connection) {
        if self.v13.flight == FlightState::Open {
            self.v13.flight = FlightState::Answered;
            self.decide_tls13(conn);
        }
    }

    /// The outcome once the server speaks after the client's flight: a
    /// record that is not alert-sized means the server went on (session
    /// tickets or data). A lone 19-byte record (an encrypted 2-byte alert:
    /// 2 + 1 content type + 16 tag) decides only with the close that follows.
    fn tls13_outcome_on_server_record(&mut self, conn: &mut Connection) {
        let after = &self.v13.after_flight;
        if after.iter().any(|&l| l != TLS13_ALERT_RECORD_LEN) || after.len() > 1 {
            conn.finish_outcome(
                Outcome::Ok,
                "server sent encrypted data after the client's flight".into(),
            );
        }
    }

    /// The client refused the server's handshake (RFC 8446 §6.2: a fatal
    /// alert, `what`) after the ServerHello and before sending any flight
    /// record: no Certificate can have gone out, so the flow is `tls`.
    /// Not with a PSK or early data, where records before the flight are
    /// not the flight's.
    pub(super) fn tls13_client_refusal(&self, what: &str) -> Option<Decision> {
        let refused_before_flight = self.is_tls13()
            && self.v13.client_flight.is_empty()
            && !self.early_data()
            && !self.sh.as_ref().is_some_and(|s| s.psk);
        refused_before_flight.then(|| {
            (
                Class::Tls,
                Basis::Observed,
                format!(
                    "TLS 1.3: the client refused the server's handshake ({what}) before sending \
                     its flight: no client certificate was sent"
                ),
            )
        })
    }

    /// The size rule (wire-facts §2), after the cases where the flight is
    /// not where the rule looks: a resumption, early data. The sentence is
    /// formatted here; the engine's own decisions wait for the evidence
    /// (`decide_tls13`).
    pub(super) fn tls13_class(&self) -> Decision {
        let flight = &self.v13.client_flight;
        let (class, basis, why) = self.tls13_decision(flight);
        (class, basis, self.tls13_reason(flight, why))
    }

    /// Decide the class from the flight so far, its sentence left to the
    /// evidence: the flight seen at the end usually replaces it, so
    /// formatting it here would be work thrown away on every flow. The
    /// flight only grows, so its length now is enough to write the
    /// sentence of this moment later (`tls13_evidence`).
    fn decide_tls13(&mut self, conn: &mut Connection) {
        if conn.class.is_some() {
            return;
        }
        let flight = &self.v13.client_flight;
        let (class, basis, _) = self.tls13_decision(flight);
        conn.class = Some((class, basis, String::new()));
        self.v13.decided_at = u8::try_from(flight.len()).ok();
    }

    /// The class over `flight` (a prefix of the client's flight) and which
    /// sentence says why, without formatting it.
    fn tls13_decision(&self, flight: &[u16]) -> (Class, Basis, Why13) {
        if self.sh.as_ref().is_some_and(|s| s.psk) {
            return (Class::Unknown, Basis::None, Why13::Resumed);
        }
        if self.early_data() && self.finished_index(flight).is_none_or(|i| i > 2) {
            // Early data was offered and the server did not resume: client
            // records sent before the ServerHello reached the client may be
            // captured after it. Only a flight that ends in a Finished-sized
            // record within its first three records ([Finished], [empty
            // Certificate, Finished], [Certificate, CertificateVerify,
            // Finished]) is known to start where the size rule looks.
            return (Class::Unknown, Basis::None, Why13::EarlyData);
        }
        let Some(&first) = flight.first() else {
            return (Class::Unknown, Basis::None, Why13::NotSeen);
        };
        Self::size_rule(self.ch.as_ref(), flight, first)
    }

    /// The class from the first client record's size.
    fn size_rule(ch: Option<&ClientHello>, flight: &[u16], first: u16) -> (Class, Basis, Why13) {
        match FirstRecord::of(first) {
            FirstRecord::CertificateSized => {
                return (Class::Mtls, Basis::Inferred, Why13::CertificateSized(first));
            }
            FirstRecord::Ambiguous => {
                return (Class::Unknown, Basis::None, Why13::Ambiguous(first));
            }
            FirstRecord::FinishedSized => {}
        }
        if flight.iter().take_while(|&&l| l == first).count() >= 3 {
            return (Class::Unknown, Basis::None, Why13::EqualSmall);
        }
        if ch.is_some_and(|c| c.client_cert_type) {
            return (Class::Unknown, Basis::None, Why13::RawKeys);
        }
        let pha = ch.is_some_and(|c| c.post_handshake_auth);
        (Class::Tls, Basis::Inferred, Why13::TooSmall { first, pha })
    }

    /// The sentence of a decision over `flight`. The flight sentences are
    /// written into one reserved String, piece by piece with numbers by
    /// itoa (not `format!` or `write!`, whose machinery cost about 1,500
    /// instructions a flow): one is made for nearly every TLS 1.3 flow.
    fn tls13_reason(&self, flight: &[u16], why: Why13) -> String {
        let (first, tail) = match why {
            Why13::Resumed => {
                return ticket::resumed(
                    "resumed: TLS 1.3 pre-shared key accepted, no certificates on the wire",
                    self.accepted_psk_identity()
                        .map(|id| ("PSK identity", id.len())),
                )
                .2;
            }
            Why13::EarlyData => {
                return "0-RTT early data offered: the client's flight is not recognisable"
                    .to_string();
            }
            Why13::NotSeen => {
                return "TLS 1.3: the client's encrypted flight is not seen".to_string();
            }
            Why13::CertificateSized(first) => (Some(first), Tail::HoldsCertificate),
            Why13::Ambiguous(first) => (Some(first), Tail::Between),
            Why13::EqualSmall => (None, Tail::EqualSmall),
            Why13::RawKeys => (None, Tail::RawKeys),
            Why13::TooSmall { first, pha } => (Some(first), Tail::TooSmall { pha }),
        };
        let mut s = String::with_capacity(200);
        let mut n = itoa::Buffer::new();
        s.push_str("TLS 1.3 client flight ");
        self.write_flight_summary(&mut s, flight);
        if let Some(first) = first {
            s.push_str(": first record ");
            s.push_str(n.format(first));
            s.push_str(" B ");
        }
        let (mut a, mut b) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (cert_min, fin_max) = (
            a.format(CERTIFICATE_RECORD_MIN),
            b.format(FINISHED_RECORD_MAX),
        );
        let pha = "; post_handshake_auth offered: a certificate could still follow, encrypted";
        let parts: &[&str] = match tail {
            Tail::HoldsCertificate => &[
                "holds a certificate (first record >= ",
                cert_min,
                " B; without one it is <= ",
                fin_max,
                " B)",
            ],
            Tail::Between => &[
                "is between Finished size (<= ",
                fin_max,
                " B) and certificate size (>= ",
                cert_min,
                " B)",
            ],
            Tail::EqualSmall => &[": equal small records, possibly a fragmented certificate"],
            Tail::RawKeys => &[": raw public keys offered, a key fits in a small record"],
            Tail::TooSmall { pha: offered } => &[
                "is too small for a certificate (first record <= ",
                fin_max,
                " B)",
                if offered { pha } else { "" },
            ],
        };
        parts.iter().for_each(|p| s.push_str(p));
        s
    }

    /// What the first client record's exact size says about the request
    /// (RFC 8446 §4.4: an empty Certificate is 8 bytes of handshake; a
    /// record adds a content-type byte and a 16-byte tag).
    fn tls13_cert_detail(&self) -> (Option<bool>, ClientCert) {
        let Some(first) = self.v13.first() else {
            return (None, ClientCert::Unknown);
        };
        match FirstRecord::of(first) {
            FirstRecord::CertificateSized => {
                return (Some(true), ClientCert::SentEncrypted { record_len: first });
            }
            FirstRecord::Ambiguous => return (None, ClientCert::Unknown),
            FirstRecord::FinishedSized => {}
        }
        let empty_alone = 8 + TLS13_RECORD_OVERHEAD;
        let finished = self.finished_record_len();
        if first == empty_alone || finished.is_some_and(|f| first == f + 8) {
            return (Some(true), ClientCert::Empty);
        }
        (None, ClientCert::NotSent)
    }

    /// An unpadded Finished record's length: the cipher suite's hash (RFC
    /// 8446 §4.4.4), a 4-byte handshake header and the record overhead.
    fn finished_record_len(&self) -> Option<u16> {
        self.sh
            .as_ref()
            .and_then(|sh| record::tls13_hash_len(sh.cipher))
            .map(|h| h + 4 + TLS13_RECORD_OVERHEAD)
    }

    /// The client's encrypted handshake records: from the first record
    /// after the ServerHello up to the one the size of a Finished message,
    /// searched in the first four records. Without such a record (rustls
    /// coalesces the whole flight into one record; Java pads) the flight is
    /// the first record. Application data sent right after Finished is not
    /// part of it.
    fn handshake_flight<'a>(&self, flight: &'a [u16]) -> &'a [u16] {
        let end = self.finished_index(flight).map_or(1, |i| i + 1);
        flight.get(..end.min(flight.len())).unwrap_or_default()
    }

    /// Index, among the first four client records after the ServerHello,
    /// of the first one exactly the size of an unpadded Finished record.
    fn finished_index(&self, flight: &[u16]) -> Option<usize> {
        let finished = self.finished_record_len()?;
        flight.iter().take(4).position(|&l| l == finished)
    }

    /// "N B in K record(s) [a,b,c]", written at the end of `s`.
    fn write_flight_summary(&self, s: &mut String, flight: &[u16]) {
        let mut n = itoa::Buffer::new();
        let hs = self.handshake_flight(flight);
        let total: u32 = hs.iter().map(|&l| u32::from(l) + 5).sum();
        s.push_str(n.format(total));
        s.push_str(" B in ");
        s.push_str(n.format(hs.len()));
        s.push_str(" record(s) [");
        for (i, l) in hs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(n.format(*l));
        }
        s.push(']');
    }

    /// A side closed: the TLS 1.3 outcome a close decides.
    pub(super) fn on_close_tls13(&mut self, conn: &mut Connection, dir: Direction) {
        let v13 = &self.v13;
        let flight_seen = !v13.client_flight.is_empty();
        if dir == Direction::ToServer {
            // The client closing before the server answered its flight
            // means a later silent server close is not a refusal.
            if flight_seen && v13.flight == FlightState::Open {
                self.v13.client_closed_first = true;
            }
            if self.client_abandoned() && conn.class.is_none() {
                // One encrypted alert-sized record and the client's close,
                // before its flight: the client refused the server.
                conn.decide((
                    Class::Tls,
                    Basis::Inferred,
                    "TLS 1.3: the client's only record after the ServerHello is alert-sized \
                     (19 B, smaller than any Finished or Certificate) and it closed: no client \
                     certificate was sent"
                        .to_string(),
                ));
                conn.client_refused = true;
                conn.finish_outcome(
                    Outcome::Rejected,
                    "client sent an encrypted alert-sized record and closed before its flight"
                        .into(),
                );
            }
            return;
        }
        if v13.client_closed_first && conn.outcome.is_none() {
            self.close_flight(conn);
            conn.finish_outcome(
                Outcome::Unknown,
                "client closed before the server answered its flight".into(),
            );
            return;
        }
        if v13.flight == FlightState::Answered
            && v13
                .after_flight
                .iter()
                .all(|&l| l == TLS13_ALERT_RECORD_LEN)
        {
            let why = if v13.after_flight.is_empty() {
                "server closed after the client's flight without sending data"
            } else {
                "server sent one encrypted alert-sized record (19 B) and closed without data"
            };
            conn.finish_outcome(Outcome::Rejected, why.to_string());
        } else if flight_seen && v13.flight == FlightState::Open {
            self.close_flight(conn);
            conn.finish_outcome(
                Outcome::Rejected,
                "server closed after the client's flight without sending data".into(),
            );
        }
    }

    /// The client's records after the ServerHello are one encrypted
    /// alert-sized record (RFC 8446 §5.2: 2 + 17 B; a Finished is at least
    /// 53 B and an empty Certificate 25 B), the server has not answered,
    /// and nothing (PSK, early data) moves the flight elsewhere.
    fn client_abandoned(&self) -> bool {
        self.v13.client_flight == [TLS13_ALERT_RECORD_LEN]
            && self.v13.flight == FlightState::Open
            && !self.early_data()
            && !self.sh.as_ref().is_some_and(|s| s.psk)
    }

    /// The flow ends before a TLS 1.3 verdict.
    pub(super) fn conclude_tls13(&mut self, conn: &mut Connection, ended: &str) {
        if conn.class.is_none() {
            self.v13.flight = FlightState::Answered;
            self.decide_tls13(conn);
        }
        if conn.outcome.is_none() {
            let why = if self.v13.client_flight.is_empty() {
                format!("{ended} before the client's encrypted flight")
            } else {
                format!("{ended} before the server answered the client's flight")
            };
            conn.outcome = Some((Outcome::Incomplete, why));
        }
    }

    /// TLS 1.3 facts of the evidence: the class's sentence over the whole
    /// flight as finally seen, the certificate detail, the flight.
    pub(super) fn tls13_evidence<'a>(&'a self, e: &mut Evidence<'a>, psk: bool) {
        let flight = &self.v13.client_flight;
        // The class may have been decided from the first record; the
        // reason describes the whole flight as finally seen.
        let now = (!flight.is_empty())
            .then(|| self.tls13_decision(flight))
            .filter(|&(again, _, _)| again == e.class);
        if let Some((_, _, why)) = now {
            e.why = self.tls13_reason(flight, why).into();
        } else if let Some(n) = self.v13.decided_at.filter(|_| e.why.is_empty()) {
            // The class changed since: the sentence of the decision, over
            // the flight as it was then.
            let then = flight.get(..usize::from(n)).unwrap_or(flight);
            let (_, _, why) = self.tls13_decision(then);
            e.why = self.tls13_reason(then, why).into();
        }
        let (cert_requested, cert) = self.tls13_cert_detail();
        e.handshake = Handshake::Tls13 {
            cert_requested,
            client_cert: if e.class == Class::Unknown {
                ClientCert::Unknown
            } else {
                cert
            },
            flight: self.handshake_flight(&self.v13.client_flight),
            psk,
        };
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::super::testing::*;
    use super::super::*;
    use super::FirstRecord;
    use crate::verdict::assemble::tests::verdict;

    #[test]
    fn tls13_first_client_record_decides_the_class() {
        // (client records, class, client_cert, flight bytes) — sizes from
        // wire-facts §2 and the fixtures.
        let table: &[(&[u16], Class, ClientCert, u32)] = &[
            (&[53], Class::Tls, ClientCert::NotSent, 58), // Go, not requested
            (&[69], Class::Tls, ClientCert::NotSent, 74), // OpenSSL, SHA-384 suites
            (&[25, 53], Class::Tls, ClientCert::Empty, 88), // requested, none sent
            (&[61], Class::Tls, ClientCert::Empty, 66),   // rustls coalesced
            (&[53, 180, 400], Class::Tls, ClientCert::NotSent, 58), // app data after Finished
            (
                &[963, 96, 53],
                Class::Mtls,
                ClientCert::SentEncrypted { record_len: 963 },
                1127,
            ),
            (
                &[680],
                Class::Mtls,
                ClientCert::SentEncrypted { record_len: 680 },
                685,
            ), // rustls one record
            (&[150, 53], Class::Unknown, ClientCert::Unknown, 0), // ambiguous size
            (&[40, 40, 40, 53], Class::Unknown, ClientCert::Unknown, 0), // fragmented?
        ];
        for (records, class, cert, bytes) in table {
            let v = verdict(&drive(&tls13(records, Some(250))));
            assert_eq!(v.class, *class, "{records:?}: {}", v.reason);
            assert_eq!(v.client_cert, *cert, "{records:?}");
            if *class != Class::Unknown {
                assert_eq!(v.basis, Basis::Inferred);
                assert_eq!(v.outcome, Outcome::Ok, "{records:?}: {}", v.reason);
                assert_eq!(
                    v.flight.as_ref().map(|f| f.bytes),
                    Some(*bytes),
                    "{records:?}"
                );
            }
        }
    }

    /// The size rule at its edges (ARCHITECTURE.md, "Why the TLS 1.3 rule
    /// looks at the first record"): 100 B cannot hold a certificate, 101 B
    /// is undecided, 299 B still undecided, 300 B only fits a certificate.
    /// Flipping either comparison (`>` / `>=`) fails here.
    #[test]
    fn tls13_size_rule_edges() {
        assert_eq!((FINISHED_RECORD_MAX, CERTIFICATE_RECORD_MIN), (100, 300));
        let table = [
            (
                100,
                FirstRecord::FinishedSized,
                Class::Tls,
                ClientCert::NotSent,
            ),
            (
                101,
                FirstRecord::Ambiguous,
                Class::Unknown,
                ClientCert::Unknown,
            ),
            (
                299,
                FirstRecord::Ambiguous,
                Class::Unknown,
                ClientCert::Unknown,
            ),
            (
                300,
                FirstRecord::CertificateSized,
                Class::Mtls,
                ClientCert::SentEncrypted { record_len: 300 },
            ),
        ];
        for (first, size, class, cert) in table {
            assert_eq!(FirstRecord::of(first), size, "{first}");
            // Decided when the server answers, and (for sizes that do not
            // wait for more records) while the client keeps streaming.
            for server_after in [Some(250), None] {
                let c = drive_then(&tls13(&[first], server_after), |c| {
                    c.conclude(End::EndOfInput)
                });
                let v = verdict(&c);
                assert_eq!(
                    (v.class, v.client_cert),
                    (class, cert),
                    "{first} B, server {server_after:?}: {}",
                    v.reason
                );
                let basis = if class == Class::Unknown {
                    Basis::None
                } else {
                    Basis::Inferred
                };
                assert_eq!(v.basis, basis, "{first} B: {}", v.reason);
            }
        }
    }

    #[test]
    fn tls13_lone_alert_then_close_is_rejected_but_client_close_first_is_not() {
        let mut c = drive(&tls13(&[25, 53], Some(19)));
        assert!(!c.is_final(), "a 19-byte record alone does not decide");
        c.on_close(S, Close::Fin);
        let v = verdict(&c);
        assert_eq!(
            (v.class, v.outcome),
            (Class::Tls, Outcome::Rejected),
            "{}",
            v.reason
        );

        let mut c = drive(&tls13(&[53], None));
        c.on_close(C, Close::Fin);
        c.on_close(S, Close::Fin);
        let v = verdict(&c);
        assert_eq!(
            (v.class, v.outcome),
            (Class::Tls, Outcome::Unknown),
            "{}",
            v.reason
        );
    }

    /// Issue 14 §2: the client refuses the server's certificate after the
    /// ServerHello and closes without a flight. In clear (OpenSSL) or as
    /// one encrypted 19-byte record (GnuTLS): `tls`, rejected by the client.
    /// A 19-byte record followed by more records, or a PSK, is not that.
    #[test]
    fn tls13_client_abort_before_its_flight_is_tls_rejected_by_the_client() {
        // OpenSSL's client sends its alert in clear, before any CCS.
        let mut steps = tls13(&[], None);
        steps.retain(|(_, bytes)| bytes.as_slice() != CCS.as_slice());
        steps.push((C, vec![21, 3, 3, 0, 2, 2, 48]));
        let v = verdict(&drive(&steps));
        assert_eq!(
            (v.class, v.basis, v.outcome, v.rejected_by),
            (
                Class::Tls,
                Basis::Observed,
                Outcome::Rejected,
                Some(Party::Client)
            ),
            "{}",
            v.reason
        );

        let mut c = drive(&tls13(&[19], None));
        c.on_close(C, Close::Fin);
        assert!(c.is_final(), "the client's close decides");
        let v = verdict(&c);
        assert_eq!(
            (v.class, v.basis, v.outcome, v.rejected_by),
            (
                Class::Tls,
                Basis::Inferred,
                Outcome::Rejected,
                Some(Party::Client)
            ),
            "{}",
            v.reason
        );

        // Finished then close_notify: an ordinary client close.
        let mut c = drive(&tls13(&[53, 19], None));
        c.on_close(C, Close::Fin);
        c.on_close(S, Close::Fin);
        let v = verdict(&c);
        assert_eq!(
            (v.outcome, v.rejected_by),
            (Outcome::Unknown, None),
            "{}",
            v.reason
        );

        // Resumed: no flight is expected, nothing is inferred.
        let steps = vec![
            (C, client_hello(&[])),
            (S, server_hello(0x1301, true, false)),
            (C, encrypted(19)),
        ];
        let mut c = drive(&steps);
        c.on_close(C, Close::Fin);
        c.on_close(S, Close::Fin);
        assert_eq!(verdict(&c).class, Class::Unknown);
    }

    #[test]
    fn tls13_resumption_and_early_data_are_unknown() {
        let steps = vec![
            (C, client_hello(&[])),
            (S, server_hello(0x1301, true, false)),
            (C, encrypted(53)),
            (S, encrypted(200)),
        ];
        let v = verdict(&drive(&steps));
        assert_eq!(v.class, Class::Unknown);
        assert!(v.resumed && v.reason.starts_with("resumed"), "{}", v.reason);

        let steps = vec![
            (C, [client_hello(&[ext(42, &[])]), encrypted(900)].concat()),
            (
                S,
                [server_hello(0x1301, false, false), encrypted(2000)].concat(),
            ),
            (C, encrypted(900)),
            (S, encrypted(200)),
        ];
        let v = verdict(&drive(&steps));
        assert_eq!(v.class, Class::Unknown, "{}", v.reason);
        assert!(v.reason.contains("0-RTT"), "{}", v.reason);

        // Early data offered, not resumed, and the flight is recognisable by
        // its Finished record (53 B with TLS_AES_128_GCM_SHA256): sized as usual.
        let steps = vec![
            (C, [client_hello(&[ext(42, &[])]), encrypted(900)].concat()),
            (
                S,
                [server_hello(0x1301, false, false), encrypted(2000)].concat(),
            ),
            (C, [encrypted(900), encrypted(96), encrypted(53)].concat()),
            (S, encrypted(200)),
        ];
        let v = verdict(&drive(&steps));
        assert_eq!(v.class, Class::Mtls, "{}", v.reason);
    }

    #[test]
    fn tls13_after_hello_retry_request_uses_the_real_server_hello() {
        let steps = vec![
            (C, client_hello(&[])),
            (
                S,
                [server_hello(0x1302, false, true), CCS.to_vec()].concat(),
            ),
            (C, [CCS.to_vec(), client_hello(&[])].concat()),
            (
                S,
                [server_hello(0x1302, false, false), encrypted(3000)].concat(),
            ),
            (C, [encrypted(1100), encrypted(96), encrypted(69)].concat()),
            (S, encrypted(250)),
        ];
        let v = verdict(&drive(&steps));
        assert_eq!(
            (v.class, v.outcome),
            (Class::Mtls, Outcome::Ok),
            "{}",
            v.reason
        );
        assert_eq!(v.flight.unwrap().records, vec![1100, 96, 69]);
    }

    #[test]
    fn tls13_class_is_decided_while_the_client_keeps_streaming() {
        let records: Vec<u16> = std::iter::once(900)
            .chain(std::iter::repeat_n(1400, 100))
            .collect();
        let c = drive(&tls13(&records, None));
        let v = verdict(&c);
        assert_eq!(v.class, Class::Mtls, "{}", v.reason);
    }
}
