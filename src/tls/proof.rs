//! What a key log proves about one handshake: the protected records the
//! classifier kept (`Sealed`), opened with the flow's secrets, read as
//! handshake messages.
//!
//! TLS 1.3 (RFC 8446 §4.3-4.4): the server's flight (EncryptedExtensions,
//! CertificateRequest, Certificate, CertificateVerify, Finished) under the
//! server handshake traffic secret, the client's (Certificate,
//! CertificateVerify, Finished, or an alert) under the client's, each
//! direction's sequence numbers starting at 0 after the ServerHello. 0-RTT
//! records the client sends after the ServerHello (EndOfEarlyData) are under
//! the early traffic key: they do not open with the handshake key and are
//! passed over, never opened. A lone alert-sized server record after the
//! server's Finished is tried with SERVER_TRAFFIC_SECRET_0 to name the alert
//! (certificate_required); if it is not an alert, its plaintext is dropped
//! unread. TLS 1.2: a renegotiation handshake, encrypted under the first
//! handshake's keys, up to each side's next ChangeCipherSpec.
//!
//! This file owns the walk over sealed records and the facts it finds. It
//! must not open application data (it opens only records that must hold
//! handshake messages or an alert, and stops at each side's Finished), nor
//! write a verdict (`classify` turns the facts into one). Invariants: kept
//! records are bounded by the handshake cap per direction; every failure is
//! a `Failure` value for the caller to count, never a panic.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::tls::decrypt::{self, RecordKey};
use crate::tls::keylog::FlowSecrets;
use crate::tls::record::Alert;
use crate::tls::record::{self, HandshakeMessage, HandshakeReassembler, content, handshake};

/// Protected records kept per direction before the verdict.
const SEALED_RECORDS_MAX: usize = 64;
/// Client records after the ServerHello that may be 0-RTT (EndOfEarlyData,
/// early data captured late) and are passed over.
const EARLY_RECORDS_MAX: u32 = 8;
/// Records after each side's Finished opened to look for post-handshake
/// authentication (the classifier keeps no more).
pub const POST_HANDSHAKE_RECORDS_MAX: u64 = 16;
/// Server records after the client's flight kept for their
/// NewSessionTickets when post-handshake authentication was not offered
/// (OpenSSL sends two tickets, rustls two to four, before any data).
pub const TICKET_RECORDS_MAX: u64 = 4;
/// Tickets remembered from one handshake.
const TICKETS_KEPT: usize = 4;
/// An encrypted 2-byte alert: content type byte and 16-byte tag added.
const ALERT_RECORD_LEN: u16 = 2 + 1 + decrypt::TAG_LEN as u16;

/// One protected record as it crossed the wire.
#[derive(Clone)]
pub struct SealedRecord {
    pub header: [u8; 5],
    /// None: the record was counted (its sequence number matters) but its
    /// body was not kept.
    pub body: Option<Vec<u8>>,
    /// TLS 1.2: the record's sequence number under the side's keys.
    pub seq: u64,
}

impl SealedRecord {
    fn len(&self) -> u16 {
        let [_, _, _, a, b] = self.header;
        u16::from_be_bytes([a, b])
    }
    fn content_type(&self) -> u8 {
        let [t, ..] = self.header;
        t
    }
    fn version(&self) -> u16 {
        let [_, a, b, _, _] = self.header;
        u16::from_be_bytes([a, b])
    }
    fn whole(&self) -> Option<Vec<u8>> {
        let body = self.body.as_ref()?;
        let mut v = Vec::with_capacity(5 + body.len());
        v.extend_from_slice(&self.header);
        v.extend_from_slice(body);
        Some(v)
    }
}

/// Protected records kept for a key log, per direction (0 = to server).
/// Ciphertext only: nothing here is secret without the key log.
#[derive(Clone)]
pub struct Sealed {
    records: [Vec<SealedRecord>; 2],
    bytes: [usize; 2],
    cap: usize,
    /// A record's body was not kept because the cap was reached.
    pub over_cap: bool,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("records", &[self.count(0), self.count(1)])
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Sealed {
    /// Keep at most `cap` bytes of record bodies per direction.
    pub fn new(cap: usize) -> Self {
        Sealed {
            records: [Vec::new(), Vec::new()],
            bytes: [0, 0],
            cap,
            over_cap: false,
        }
    }

    /// Record one protected record of direction `d` (0 = to server).
    /// `body` None (or over the cap) keeps only its header, so later
    /// records keep their sequence numbers.
    pub fn push(&mut self, d: usize, header: [u8; 5], body: Option<&[u8]>, seq: u64) {
        let (Some(records), Some(bytes)) = (self.records.get_mut(d), self.bytes.get_mut(d)) else {
            return;
        };
        if records.len() >= SEALED_RECORDS_MAX {
            self.over_cap = true;
            return;
        }
        let body = body.and_then(|b| {
            if *bytes + b.len() > self.cap {
                self.over_cap = true;
                None
            } else {
                *bytes += b.len();
                Some(b.to_vec())
            }
        });
        records.push(SealedRecord { header, body, seq });
    }

    /// Heap bytes held (record bodies and the record lists), for the
    /// engine's memory budget.
    pub fn heap_bytes(&self) -> usize {
        let lists: usize = self
            .records
            .iter()
            .map(|r| r.capacity() * std::mem::size_of::<SealedRecord>())
            .sum();
        lists + self.bytes.iter().sum::<usize>()
    }

    /// Records kept for direction `d`.
    pub fn count(&self, d: usize) -> usize {
        self.records.get(d).map_or(0, Vec::len)
    }

    fn dir(&self, d: usize) -> &[SealedRecord] {
        self.records.get(d).map_or(&[], Vec::as_slice)
    }
}

/// A Certificate message seen after decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertMessage {
    pub count: u32,
    /// Length of the certificate list.
    pub bytes: u32,
    /// The leaf's DER, when within the handshake cap.
    pub leaf: Option<Vec<u8>>,
}

/// What the decrypted handshake messages show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub encrypted_extensions: bool,
    /// ALPN the server selected (TLS 1.3 EncryptedExtensions).
    pub alpn: Option<String>,
    pub cert_request: bool,
    pub server_cert: Option<CertMessage>,
    pub server_cert_verify: bool,
    pub server_finished: bool,
    pub client_cert: Option<CertMessage>,
    pub client_cert_verify: bool,
    /// TLS 1.3: client Finished. TLS 1.2 renegotiation: ClientKeyExchange
    /// (the client's renegotiation flight is there).
    pub client_flight_done: bool,
    /// Client records decrypted.
    pub client_records: u32,
    /// A fatal alert (or close_notify) read from an encrypted record.
    pub alert: Option<Alert>,
    /// Client records after the ServerHello passed over as 0-RTT.
    pub early_records_skipped: u32,
    /// Post-handshake client authentication (RFC 8446 §4.6.2), read under
    /// the application traffic secrets when the client offered it: the
    /// server's CertificateRequest, the client's Certificate and
    /// CertificateVerify.
    pub post_cert_request: bool,
    pub post_client_cert: Option<CertMessage>,
    pub post_client_cert_verify: bool,
    /// TLS 1.3 NewSessionTicket tickets the server issued after the
    /// handshake (RFC 8446 §4.6.1), at most `TICKETS_KEPT`: a resumption
    /// that sends one as its PSK identity resumes this session.
    pub tickets: Vec<Vec<u8>>,
}

/// Why a flow's records were not (fully) opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The key log has no (usable) secrets for this client random.
    NoSecrets,
    /// A cipher suite this version does not decrypt.
    UnsupportedSuite,
    /// The secrets do not open the records: a wrong or corrupted key log.
    KeyMismatch,
    /// A record needed was not kept (cap) or is not in the capture.
    Incomplete,
}

fn cert_message(m: &HandshakeMessage, tls13: bool) -> Option<CertMessage> {
    if tls13 {
        let (list, leaf) = record::parse_certificate13(m)?;
        Some(CertMessage {
            count: list.count,
            bytes: list.bytes,
            leaf: leaf.map(<[u8]>::to_vec),
        })
    } else {
        let list = record::parse_certificate_list(m)?;
        Some(CertMessage {
            count: list.count,
            bytes: list.bytes,
            leaf: record::first_certificate(m).map(<[u8]>::to_vec),
        })
    }
}

fn alert_of(plaintext: &[u8], from_server: bool) -> Option<Alert> {
    match plaintext {
        &[level, description] => Some(Alert {
            level,
            description,
            from_server,
        }),
        _ => None,
    }
}

/// Server messages, TLS 1.3 and the TLS 1.2 renegotiation alike.
fn server_message(facts: &mut Facts, m: &HandshakeMessage, tls13: bool) {
    match m.msg_type {
        handshake::ENCRYPTED_EXTENSIONS => {
            facts.encrypted_extensions = true;
            facts.alpn = record::parse_encrypted_extensions(m).flatten();
        }
        handshake::CERTIFICATE_REQUEST => facts.cert_request = true,
        handshake::CERTIFICATE => facts.server_cert = cert_message(m, tls13),
        handshake::CERTIFICATE_VERIFY => facts.server_cert_verify = true,
        handshake::FINISHED => facts.server_finished = true,
        _ => {}
    }
}

fn client_message(facts: &mut Facts, m: &HandshakeMessage, tls13: bool) {
    match m.msg_type {
        handshake::CERTIFICATE => facts.client_cert = cert_message(m, tls13),
        handshake::CERTIFICATE_VERIFY => facts.client_cert_verify = true,
        handshake::FINISHED if tls13 => facts.client_flight_done = true,
        handshake::CLIENT_KEY_EXCHANGE if !tls13 => facts.client_flight_done = true,
        _ => {}
    }
}

/// Open a TLS 1.3 handshake: `cipher` from the ServerHello, `sealed` the
/// protected records after it, `early_data` whether the ClientHello offered
/// 0-RTT. A direction whose secret is missing is left unopened (its facts
/// stay empty); no secret at all is `NoSecrets`.
/// `post_handshake`: the client offered post_handshake_auth, so records
/// after each side's Finished are opened with the application traffic
/// secrets (at most `POST_HANDSHAKE_RECORDS_MAX`) for a CertificateRequest
/// and the client's answer; any other content is dropped unread.
pub fn tls13(
    cipher: u16,
    sealed: &Sealed,
    secrets: &FlowSecrets,
    (early_data, post_handshake): (bool, bool),
    handshake_cap: usize,
) -> Result<Facts, Failure> {
    let suite = decrypt::suite13(cipher).ok_or(Failure::UnsupportedSuite)?;
    if secrets.server_handshake.is_none() && secrets.client_handshake.is_none() {
        return Err(Failure::NoSecrets);
    }
    let mut facts = Facts::default();
    if let Some(secret) = &secrets.server_handshake {
        let key = RecordKey::tls13(suite, secret.bytes()).ok_or(Failure::KeyMismatch)?;
        let traffic = secrets
            .server_traffic
            .as_ref()
            .and_then(|s| RecordKey::tls13(suite, s.bytes()));
        server13(
            &mut facts,
            sealed.dir(1),
            (&key, traffic.as_ref()),
            post_handshake,
            handshake_cap,
        )?;
    }
    if let Some(secret) = &secrets.client_handshake {
        let key = RecordKey::tls13(suite, secret.bytes()).ok_or(Failure::KeyMismatch)?;
        let records = client13(&mut facts, sealed.dir(0), &key, early_data, handshake_cap)?;
        let traffic = secrets
            .client_traffic
            .as_ref()
            .and_then(|s| RecordKey::tls13(suite, s.bytes()));
        if let (true, Some(traffic)) = (post_handshake && facts.client_flight_done, traffic) {
            let after = sealed.dir(0).get(records..).unwrap_or_default();
            client_post_handshake(&mut facts, after, &traffic, handshake_cap);
        }
    }
    Ok(facts)
}

fn server13(
    facts: &mut Facts,
    records: &[SealedRecord],
    (key, traffic): (&RecordKey, Option<&RecordKey>),
    post_handshake: bool,
    cap: usize,
) -> Result<(), Failure> {
    let mut hs = HandshakeReassembler::new(cap);
    let mut post = HandshakeReassembler::new(cap);
    let mut seq = 0u64;
    // Records after the server's Finished, under its application key.
    let mut after_finished: Option<u64> = None;
    for rec in records {
        if let Some(k) = after_finished.as_mut() {
            let n = *k;
            *k += 1;
            // A lone alert-sized record can name a rejection; the first
            // records may hold NewSessionTickets and, with
            // post_handshake_auth offered, a CertificateRequest. Anything
            // else stays sealed.
            let alert_sized = rec.len() == ALERT_RECORD_LEN && facts.alert.is_none();
            let limit = if post_handshake {
                POST_HANDSHAKE_RECORDS_MAX
            } else {
                TICKET_RECORDS_MAX
            };
            if !alert_sized && n >= limit {
                continue;
            }
            let (Some(key), Some(whole)) = (traffic, rec.whole()) else {
                continue;
            };
            let Some(o) = key.open13(n, &whole) else {
                continue;
            };
            match o.content_type {
                content::ALERT if alert_sized => facts.alert = alert_of(&o.plaintext, true),
                content::HANDSHAKE => {
                    for m in post.push(&o.plaintext) {
                        match m.msg_type {
                            handshake::CERTIFICATE_REQUEST => facts.post_cert_request = true,
                            handshake::NEW_SESSION_TICKET if facts.tickets.len() < TICKETS_KEPT => {
                                facts
                                    .tickets
                                    .extend(record::parse_new_session_ticket13(m.bytes));
                            }
                            _ => {}
                        }
                    }
                }
                // Application data: its plaintext is dropped unread.
                _ => {}
            }
            continue;
        }
        let whole = rec.whole().ok_or(Failure::Incomplete)?;
        let Some(opened) = key.open13(seq, &whole) else {
            return Err(Failure::KeyMismatch);
        };
        seq += 1;
        match opened.content_type {
            content::HANDSHAKE => {
                for m in hs.push(&opened.plaintext) {
                    server_message(facts, &m, true);
                }
                if facts.server_finished {
                    after_finished = Some(0);
                }
            }
            content::ALERT => facts.alert = alert_of(&opened.plaintext, true),
            _ => {}
        }
    }
    Ok(())
}

/// The client's handshake flight; returns how many of `records` it
/// spans (through its Finished), so what follows can be looked at for
/// post-handshake authentication.
fn client13(
    facts: &mut Facts,
    records: &[SealedRecord],
    key: &RecordKey,
    early_data: bool,
    cap: usize,
) -> Result<usize, Failure> {
    let mut hs = HandshakeReassembler::new(cap);
    let mut seq = 0u64;
    let mut used = 0;
    for rec in records {
        if facts.client_flight_done {
            break; // what follows is application data: never opened here
        }
        used += 1;
        let whole = rec.whole().ok_or(Failure::Incomplete)?;
        let Some(opened) = key.open13(seq, &whole) else {
            // 0-RTT records (EndOfEarlyData, early data the capture shows
            // after the ServerHello) use the early traffic key: pass over.
            if seq == 0 && early_data && facts.early_records_skipped < EARLY_RECORDS_MAX {
                facts.early_records_skipped += 1;
                continue;
            }
            return Err(Failure::KeyMismatch);
        };
        seq += 1;
        facts.client_records += 1;
        match opened.content_type {
            content::HANDSHAKE => {
                for m in hs.push(&opened.plaintext) {
                    client_message(facts, &m, true);
                }
            }
            content::ALERT => {
                facts.alert = alert_of(&opened.plaintext, false);
                break;
            }
            _ => break,
        }
    }
    Ok(used)
}

/// The client's records after its Finished, under CLIENT_TRAFFIC_SECRET_0
/// (RFC 8446 §4.6.2: a post-handshake Certificate, CertificateVerify and
/// Finished travel as handshake content among application data). Only
/// handshake content is read; application data is dropped unread, and a
/// record that does not open ends the walk (a KeyUpdate changes the key).
fn client_post_handshake(facts: &mut Facts, records: &[SealedRecord], key: &RecordKey, cap: usize) {
    let mut hs = HandshakeReassembler::new(cap);
    for (seq, rec) in (0..POST_HANDSHAKE_RECORDS_MAX).zip(records) {
        let Some(whole) = rec.whole() else {
            continue;
        };
        let Some(o) = key.open13(seq, &whole) else {
            return;
        };
        if o.content_type != content::HANDSHAKE {
            continue;
        }
        for m in hs.push(&o.plaintext) {
            match m.msg_type {
                handshake::CERTIFICATE => facts.post_client_cert = cert_message(&m, true),
                handshake::CERTIFICATE_VERIFY => facts.post_client_cert_verify = true,
                handshake::FINISHED => return,
                _ => {}
            }
        }
    }
}

/// Open a TLS <= 1.2 renegotiation: `sealed` holds each side's protected
/// handshake records from its first ChangeCipherSpec (its Finished, then
/// the renegotiation's messages) with their sequence numbers.
pub fn tls12_renegotiation(
    cipher: u16,
    client_random: &[u8],
    server_random: &[u8],
    sealed: &Sealed,
    secrets: &FlowSecrets,
    handshake_cap: usize,
) -> Result<Facts, Failure> {
    let suite = decrypt::suite12(cipher).ok_or(Failure::UnsupportedSuite)?;
    let master = secrets.master.as_ref().ok_or(Failure::NoSecrets)?;
    let keys = decrypt::keys12(suite, master.bytes(), client_random, server_random)
        .ok_or(Failure::KeyMismatch)?;
    let mut facts = Facts::default();
    for (d, key) in [(0usize, &keys.client), (1, &keys.server)] {
        let mut hs = HandshakeReassembler::new(handshake_cap);
        // The first protected handshake message is the side's Finished of
        // the first handshake; the renegotiation follows.
        let mut first = true;
        for rec in sealed.dir(d) {
            let Some(body) = rec.body.as_ref() else {
                return Err(Failure::Incomplete);
            };
            let Some(plain) = key.open12(rec.seq, rec.content_type(), rec.version(), body) else {
                return Err(Failure::KeyMismatch);
            };
            for m in hs.push(&plain) {
                if std::mem::take(&mut first) && m.msg_type == handshake::FINISHED {
                    continue;
                }
                if d == 0 {
                    facts.client_records += 1;
                    client_message(&mut facts, &m, false);
                } else {
                    server_message(&mut facts, &m, false);
                }
            }
        }
    }
    Ok(facts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::tls::decrypt::seal;
    use crate::tls::keylog::{Line, parse_line};

    fn secret(label: &str, byte: u8, len: usize) -> crate::tls::keylog::Secret {
        let line = format!(
            "{label} {} {}",
            "01".repeat(32),
            hex::encode(vec![byte; len])
        );
        match parse_line(line.as_bytes()) {
            Line::Secret { secret, .. } => secret,
            other => panic!("{other:?}"),
        }
    }

    fn hs(t: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len();
        let mut v = vec![t, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        v.extend_from_slice(body);
        v
    }

    fn header(rec: &[u8]) -> [u8; 5] {
        rec[..5].try_into().unwrap()
    }

    /// A TLS 1.3 mTLS handshake sealed like a stack does it, with one early
    /// data record before the client's flight.
    #[test]
    fn tls13_flights_are_read_and_early_records_passed_over() {
        let suite = decrypt::suite13(0x1303).unwrap();
        let (sh, ch, st) = (vec![5u8; 32], vec![6u8; 32], vec![7u8; 32]);
        let cert_list = [&[0, 0, 3, 0x30, 0, 0][..], &[0, 0]].concat();
        let mut cert = vec![0, 0, 0, cert_list.len() as u8];
        cert.extend_from_slice(&cert_list);
        let server_flight = [
            hs(8, &[0, 0]),
            hs(13, &[0, 0, 0]),
            hs(11, &cert),
            hs(15, &[0; 8]),
            hs(20, &[0; 32]),
        ]
        .concat();
        let mut sealed = Sealed::new(65536);
        let r = seal::record13(suite, &sh, 0, 22, &server_flight);
        sealed.push(1, header(&r), Some(&r[5..]), 0);
        let alert = seal::record13(suite, &st, 0, 21, &[2, 116]);
        assert_eq!(alert.len() - 5, usize::from(ALERT_RECORD_LEN));
        sealed.push(1, header(&alert), Some(&alert[5..]), 0);
        let early = seal::record13(suite, &[9u8; 32], 0, 22, &hs(5, &[]));
        sealed.push(0, header(&early), Some(&early[5..]), 0);
        for (seq, m) in [hs(11, &cert), hs(15, &[0; 8]), hs(20, &[0; 32])]
            .iter()
            .enumerate()
        {
            let r = seal::record13(suite, &ch, seq as u64, 22, m);
            sealed.push(0, header(&r), Some(&r[5..]), 0);
        }
        let secrets = FlowSecrets {
            client_handshake: Some(secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 6, 32)),
            server_handshake: Some(secret("SERVER_HANDSHAKE_TRAFFIC_SECRET", 5, 32)),
            server_traffic: Some(secret("SERVER_TRAFFIC_SECRET_0", 7, 32)),
            client_traffic: None,
            master: None,
        };
        let f = tls13(0x1303, &sealed, &secrets, (true, false), 65536).unwrap();
        assert!(f.encrypted_extensions && f.cert_request && f.server_finished);
        assert!(f.client_cert_verify && f.client_flight_done);
        assert_eq!(f.client_cert.as_ref().unwrap().count, 1);
        assert_eq!(f.client_cert.unwrap().leaf, Some(vec![0x30, 0, 0]));
        assert_eq!(f.early_records_skipped, 1);
        assert_eq!(f.alert.unwrap().name(), "certificate_required");
        // Without 0-RTT offered, an unopenable first record is a mismatch.
        assert_eq!(
            tls13(0x1303, &sealed, &secrets, (false, false), 65536),
            Err(Failure::KeyMismatch)
        );
        // The wrong key log.
        let wrong = FlowSecrets {
            server_handshake: Some(secret("SERVER_HANDSHAKE_TRAFFIC_SECRET", 1, 32)),
            ..FlowSecrets::default()
        };
        assert_eq!(
            tls13(0x1303, &sealed, &wrong, (true, false), 65536),
            Err(Failure::KeyMismatch)
        );
        assert_eq!(
            tls13(
                0x1303,
                &sealed,
                &FlowSecrets::default(),
                (true, false),
                65536
            ),
            Err(Failure::NoSecrets)
        );
        assert_eq!(
            tls13(0x1304, &sealed, &secrets, (true, false), 65536),
            Err(Failure::UnsupportedSuite)
        );
        // A body over the cap is not kept: incomplete, not a mismatch.
        let mut small = Sealed::new(10);
        small.push(1, header(&r), Some(&r[5..]), 0);
        assert!(small.over_cap);
        assert_eq!(
            tls13(0x1303, &small, &secrets, (false, false), 65536),
            Err(Failure::Incomplete)
        );
    }

    /// After both Finished messages: the server's NewSessionTicket and a
    /// post-handshake CertificateRequest under SERVER_TRAFFIC_SECRET_0, the
    /// client's application data then Certificate + CertificateVerify +
    /// Finished under CLIENT_TRAFFIC_SECRET_0. Application data is passed
    /// over; without post_handshake_auth only the tickets are read.
    #[test]
    fn tickets_and_post_handshake_authentication_are_read_after_the_handshake() {
        let suite = decrypt::suite13(0x1301).unwrap();
        let (sh, ch, st, ct) = ([5u8; 32], [6u8; 32], [7u8; 32], [8u8; 32]);
        let mut sealed = Sealed::new(65536);
        let mut push = |d: usize, secret: &[u8], seq: u64, t: u8, m: &[u8]| {
            let r = seal::record13(suite, secret, seq, t, m);
            sealed.push(d, header(&r), Some(&r[5..]), 0);
        };
        push(1, &sh, 0, 22, &[hs(8, &[0, 0]), hs(20, &[0; 32])].concat());
        push(0, &ch, 0, 22, &hs(20, &[0; 32]));
        push(0, &ct, 0, 23, b"GET / HTTP/1.1\r\n\r\n");
        // NewSessionTicket: lifetime, age_add, nonce<1>, ticket<2>, no extensions.
        let ticket = [0xa5u8; 40];
        let nst = [
            &[0, 0, 0, 60, 1, 2, 3, 4, 1, 0, 0, 40][..],
            &ticket,
            &[0, 0],
        ]
        .concat();
        push(1, &st, 0, 22, &hs(4, &nst));
        push(1, &st, 1, 23, b"application data, never read");
        push(1, &st, 2, 22, &hs(13, &[1, 9, 0, 0]));
        let cert_list = [&[0, 0, 3, 0x30, 0, 0][..], &[0, 0]].concat();
        // certificate_request_context echoes the request's (1 B: 9).
        let mut cert = vec![1, 9, 0, 0, cert_list.len() as u8];
        cert.extend_from_slice(&cert_list);
        push(
            0,
            &ct,
            1,
            22,
            &[hs(11, &cert), hs(15, &[0; 8]), hs(20, &[0; 32])].concat(),
        );
        let secrets = FlowSecrets {
            client_handshake: Some(secret("CLIENT_HANDSHAKE_TRAFFIC_SECRET", 6, 32)),
            server_handshake: Some(secret("SERVER_HANDSHAKE_TRAFFIC_SECRET", 5, 32)),
            server_traffic: Some(secret("SERVER_TRAFFIC_SECRET_0", 7, 32)),
            client_traffic: Some(secret("CLIENT_TRAFFIC_SECRET_0", 8, 32)),
            master: None,
        };
        let f = tls13(0x1301, &sealed, &secrets, (false, true), 65536).unwrap();
        assert_eq!(f.tickets, vec![ticket.to_vec()]);
        assert!(f.client_flight_done && f.client_cert.is_none());
        assert!(f.post_cert_request && f.post_client_cert_verify, "{f:?}");
        assert_eq!(f.post_client_cert.as_ref().map(|c| c.count), Some(1));
        // Not offered: the server's first records only (its tickets);
        // nothing after the client's Finished is opened.
        let f = tls13(0x1301, &sealed, &secrets, (false, false), 65536).unwrap();
        assert_eq!(f.tickets.len(), 1);
        assert!(f.post_client_cert.is_none() && !f.post_client_cert_verify);
        // Without CLIENT_TRAFFIC_SECRET_0 the request is seen, not the answer.
        let no_client = FlowSecrets {
            client_traffic: None,
            ..secrets
        };
        let f = tls13(0x1301, &sealed, &no_client, (false, true), 65536).unwrap();
        assert!(f.post_cert_request && f.post_client_cert.is_none());
    }

    #[test]
    fn tls12_renegotiation_finds_the_client_certificate() {
        let suite = decrypt::suite12(0xc02c).unwrap();
        let master = secret("CLIENT_RANDOM", 3, 48);
        let (cr, sr) = ([1u8; 32], [2u8; 32]);
        let keys = decrypt::keys12(suite, master.bytes(), &cr, &sr).unwrap();
        let mut sealed = Sealed::new(65536);
        let mut push = |d: usize, k: &RecordKey, seq: u64, msg: &[u8]| {
            let body = seal::fragment12(k, seq, 22, msg);
            let mut h = [22, 3, 3, 0, 0];
            h[3..].copy_from_slice(&(body.len() as u16).to_be_bytes());
            sealed.push(d, h, Some(&body), seq);
        };
        push(0, &keys.client, 0, &hs(20, &[0; 12]));
        push(1, &keys.server, 0, &hs(20, &[0; 12]));
        push(1, &keys.server, 2, &hs(0, &[])); // HelloRequest after one data record
        push(0, &keys.client, 3, &hs(1, &[0; 40]));
        push(
            1,
            &keys.server,
            3,
            &[hs(2, &[0; 40]), hs(13, &[0; 4]), hs(14, &[])].concat(),
        );
        let cert = [&[0, 0, 5, 0, 0, 2][..], &[0x30, 0]].concat();
        push(
            0,
            &keys.client,
            4,
            &[hs(11, &cert), hs(16, &[0; 33])].concat(),
        );
        let secrets = FlowSecrets {
            master: Some(master),
            ..FlowSecrets::default()
        };
        let f = tls12_renegotiation(0xc02c, &cr, &sr, &sealed, &secrets, 65536).unwrap();
        assert!(f.cert_request && f.client_flight_done);
        assert_eq!(f.client_cert.unwrap().count, 1);
        // A suite not decrypted is named as such.
        assert_eq!(
            tls12_renegotiation(0xc013, &cr, &sr, &sealed, &secrets, 65536),
            Err(Failure::UnsupportedSuite)
        );
        // The wrong server random: the key block differs.
        assert_eq!(
            tls12_renegotiation(0xc02c, &cr, &[9; 32], &sealed, &secrets, 65536),
            Err(Failure::KeyMismatch)
        );
    }
}
