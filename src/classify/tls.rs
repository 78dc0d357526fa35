//! The TLS mode: the state of a flow whose bytes are TLS records, and the
//! rules shared by every TLS version: hellos, alerts, ChangeCipherSpec
//! dispatch, which record bodies are read, and the protected records kept
//! for a key log.
//!
//! Version-specific evidence lives in its own state and rules: `tls12.rs`
//! (handshake messages in clear, RFC 5246 §7.4) and `tls13.rs` (the size
//! of the first encrypted client record, RFC 8446 §4.4). Framing is the
//! walker's (`walker.rs`). This file must not use ports or fingerprints to
//! decide a class, and reads no body the walker did not frame. Invariant:
//! `Class::Mtls` is decided only by `tls12` (a visible non-empty client
//! Certificate, or a renegotiation flight `renegotiation.rs` sizes as a
//! certificate's) or `tls13` (a first client record too large to be
//! anything else).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::connection::{Connection, Phase};
use super::evidence::{Basis, Class, ClientCert, Evidence, Handshake};
use super::tls12::Tls12;
use super::tls13::{FlightState, TLS13_ALERT_RECORD_LEN, Tls13};
use super::walker::Walker;
use super::{Direction, Outcome};
use crate::tls::proof::{POST_HANDSHAKE_RECORDS_MAX, Sealed, TICKET_RECORDS_MAX};
use crate::tls::record::{
    self, Alert, ClientHello, HandshakeMessage, HandshakeReassembler, Messages, RecordHeader,
    ServerHello, content, handshake,
};

/// Handshake messages read from one record before the record is called
/// malformed (hostile-inputs M23: a real flight has at most a handful per
/// record; thousands of 4-byte messages in one record are an amplification).
const MESSAGES_PER_RECORD: usize = 32;

/// How the client said hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HelloFormat {
    /// A TLS record (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2).
    Tls,
    /// An SSL 2.0 record (`sslv2.rs`).
    Sslv2,
}

/// A flow being followed as TLS.
#[derive(Debug, Clone)]
pub(super) struct Tls {
    pub walker: Walker,
    pub ch: Option<ClientHello>,
    /// The real ServerHello (a HelloRetryRequest is not kept).
    pub sh: Option<ServerHello>,
    pub format: HelloFormat,
    /// Walker clock of the real ServerHello.
    pub sh_clock: Option<u64>,
    /// Client records before the ServerHello (0-RTT early data).
    pub early_records: u32,
    pub v12: Tls12,
    pub v13: Tls13,
    /// With a key log: the protected handshake records, kept until they
    /// are opened (`prove`) or the flow is reported.
    pub sealed: Option<Box<Sealed>>,
    /// Records each way after the client's flight while a post-handshake
    /// certificate is watched for (`watches_post_handshake`).
    pub post_records: [u64; 2],
}

impl Tls {
    /// `sealed_cap`: with a key log, the protected bytes kept per direction.
    pub fn new(handshake_cap: usize, record_limit: u32, sealed_cap: Option<usize>) -> Self {
        Tls {
            walker: Walker::new(handshake_cap, record_limit),
            ch: None,
            sh: None,
            format: HelloFormat::Tls,
            sh_clock: None,
            early_records: 0,
            v12: Tls12::default(),
            v13: Tls13::default(),
            sealed: sealed_cap.map(|cap| Box::new(Sealed::new(cap))),
            post_records: [0, 0],
        }
    }

    pub fn is_tls13(&self) -> bool {
        self.sh
            .as_ref()
            .is_some_and(|sh| !sh.hrr && is_tls13_version(sh.version))
    }

    /// The client's PSK identity the server accepted (RFC 8446 §4.2.11
    /// `selected_identity`), if it was kept.
    pub(super) fn accepted_psk_identity(&self) -> Option<&[u8]> {
        let selected = self.sh.as_ref()?.psk_selected?;
        let ch = self.ch.as_ref()?;
        ch.psk_identities
            .get(usize::from(selected))
            .map(Vec::as_slice)
    }

    /// With a key log, what follows a TLS 1.3 client's flight can still
    /// matter: the server's NewSessionTickets (RFC 8446 §4.6.1), which link
    /// a later resumption to this handshake, and, when the client offered
    /// post_handshake_auth, a certificate asked for after the handshake
    /// (§4.6.2). Both travel in records of application-data type that only
    /// the key log opens, so those records are kept sealed for `prove` and
    /// the verdict waits for them (`hold_for_post_handshake`). Without a
    /// key log nothing changes: the records cannot be read.
    fn follows_after_flight(&self) -> bool {
        self.sealed.is_some()
            && self.is_tls13()
            && !self.sh.as_ref().is_some_and(|s| s.psk)
            && !self.v13.client_flight.is_empty()
    }

    /// A record of `dir` comes after the client's flight: the server's
    /// first record after it ends the flight; the client's come after that.
    fn after_flight(&self, dir: Direction) -> bool {
        self.follows_after_flight()
            && (dir == Direction::ToClient || self.v13.flight == FlightState::Answered)
    }

    /// Records of `dir` after the flight that are kept and waited for:
    /// 16 each way for a post_handshake_auth client, else the server's
    /// first 4 (its tickets) until the client speaks again.
    fn after_flight_limit(&self, dir: Direction) -> u64 {
        let pha = self.ch.as_ref().is_some_and(|c| c.post_handshake_auth);
        match (pha, dir) {
            (true, _) => POST_HANDSHAKE_RECORDS_MAX,
            (false, Direction::ToClient) => TICKET_RECORDS_MAX,
            (false, Direction::ToServer) => 0,
        }
    }

    fn after_flight_room(&self, dir: Direction) -> bool {
        self.post_records
            .get(dir.idx())
            .is_some_and(|&n| n <= self.after_flight_limit(dir))
    }

    /// A verdict that would be final waits while tickets or post-handshake
    /// authentication may still come: the flow went on (outcome ok) and
    /// neither side has used up its records.
    fn hold_for_post_handshake(&self, conn: &mut Connection) {
        let [to_server, to_client] = self.post_records;
        let held = conn.is_final()
            && self.follows_after_flight()
            && self.v13.flight == FlightState::Answered
            && matches!(conn.outcome, Some((Outcome::Ok, _)))
            && to_client < self.after_flight_limit(Direction::ToClient)
            && to_server < self.after_flight_limit(Direction::ToServer).max(1);
        if held {
            conn.phase = Phase::Reading;
        }
    }

    /// Early data was offered or sent (RFC 8446 §4.2.10).
    pub fn early_data(&self) -> bool {
        self.ch.as_ref().is_some_and(|c| c.early_data) || self.early_records > 0
    }

    /// Heap bytes held: handshake reassembly, hello fields, kept
    /// certificates and flights, sealed records.
    pub fn heap_bytes(&self) -> usize {
        let framing: usize = self.walker.sides.iter().map(|s| s.hs.allocated()).sum();
        let ch = self.ch.as_ref().map_or(0, |c| {
            c.ticket.capacity()
                + c.psk_identities
                    .iter()
                    .map(|i| i.capacity() + 24)
                    .sum::<usize>()
                + c.sni.as_ref().map_or(0, String::capacity)
                + c.alpn.iter().map(|a| a.capacity() + 24).sum::<usize>()
                + c.versions.capacity() * 2
        });
        let sh = self
            .sh
            .as_ref()
            .map_or(0, |h| h.alpn.as_ref().map_or(0, String::capacity));
        let sealed = self.sealed.as_ref().map_or(0, |s| s.heap_bytes());
        framing + ch + sh + self.v12.heap_bytes() + self.v13.heap_bytes() + sealed
    }

    pub(super) fn needs_body(&self, dir: Direction, h: &RecordHeader) -> bool {
        if self.sealed_body_wanted(dir, h) {
            return true;
        }
        match h.content_type {
            content::HANDSHAKE => self.clear_handshake(dir),
            content::ALERT => h.len == 2,
            _ => false,
        }
    }

    /// Handshake records from `dir` are in clear: before its
    /// ChangeCipherSpec (TLS <= 1.2), before the ServerHello (TLS 1.3).
    fn clear_handshake(&self, dir: Direction) -> bool {
        let side_encrypted = self.walker.ccs(dir) && !self.is_tls13();
        let server_encrypted_13 = dir == Direction::ToClient && self.is_tls13();
        !side_encrypted && !server_encrypted_13
    }

    /// With a key log, whether this protected record is kept with its body:
    /// TLS 1.3, after the ServerHello, the server's flight and alert-sized
    /// records after it, the client's records until the server answers its
    /// flight; TLS <= 1.2, handshake records after a side's
    /// ChangeCipherSpec (its Finished, then a renegotiation) until its next
    /// one. Application data is kept only as ciphertext and never opened.
    fn sealed_body_wanted(&self, dir: Direction, h: &RecordHeader) -> bool {
        if self.sealed.is_none() {
            return false;
        }
        if self.is_tls13() {
            if h.content_type != content::APPLICATION_DATA || self.sh_clock.is_none() {
                return false;
            }
            if self.after_flight(dir) && self.after_flight_room(dir) {
                return true;
            }
            return match dir {
                Direction::ToServer => self.v13.flight == FlightState::Open,
                Direction::ToClient => {
                    self.v13.client_flight.is_empty() || h.len == TLS13_ALERT_RECORD_LEN
                }
            };
        }
        h.content_type == content::HANDSHAKE
            && self.walker.ccs(dir)
            && !self.v12.side(dir).renegotiation_ccs
    }

    /// Keep a protected record for `prove` (see `sealed_body_wanted`).
    fn seal(&mut self, dir: Direction, h: &RecordHeader, body: Option<&[u8]>) {
        let wanted = self.sealed_body_wanted(dir, h);
        let records = self.walker.records(dir);
        let seq = u64::from(
            records
                .saturating_sub(self.v12.side(dir).ccs_records)
                .saturating_sub(1),
        );
        // TLS 1.3 server records after the flight keep their place (their
        // sequence numbers) even when their bodies are not kept.
        let keep_header = self.is_tls13()
            && h.content_type == content::APPLICATION_DATA
            && self.sh_clock.is_some()
            && (dir == Direction::ToClient || self.after_flight(dir));
        if !wanted && !keep_header {
            return;
        }
        let [v0, v1] = h.version.to_be_bytes();
        let [l0, l1] = h.len.to_be_bytes();
        let header = [h.content_type, v0, v1, l0, l1];
        if let Some(sealed) = self.sealed.as_mut() {
            sealed.push(dir.idx(), header, body.filter(|_| wanted), seq);
        }
    }

    /// One framed record: count it, keep it for a key log, and hand it to
    /// the rule its content type calls for.
    pub(super) fn record(
        &mut self,
        conn: &mut Connection,
        dir: Direction,
        h: RecordHeader,
        body: Option<&[u8]>,
    ) {
        self.walker.count(dir, h.content_type, body.is_some());
        conn.add_bytes(dir, (record::RECORD_HEADER_LEN + usize::from(h.len)) as u64);
        if h.content_type == content::APPLICATION_DATA
            && self.after_flight(dir)
            && let Some(n) = self.post_records.get_mut(dir.idx())
        {
            *n = n.saturating_add(1);
        }
        if self.sealed.is_some() {
            self.seal(dir, &h, body);
        }
        match (h.content_type, body) {
            (content::HANDSHAKE, Some(body)) if self.clear_handshake(dir) => {
                self.handshake_record(conn, dir, body)
            }
            (content::ALERT, Some(&[level, description])) => {
                self.alert_record(conn, dir, level, description)
            }
            (content::CHANGE_CIPHER_SPEC, _) => self.change_cipher_spec(conn, dir),
            (content::APPLICATION_DATA, _) | (content::ALERT, None) | (content::HANDSHAKE, _) => {
                if self.is_tls13() {
                    self.protected_record_tls13(conn, dir, h);
                } else {
                    self.protected_record_tls12(conn, dir, h);
                }
            }
            _ => {}
        }
        self.hold_for_post_handshake(conn);
        if !conn.is_final() && conn.class.is_none() && self.walker.over_limit(dir) {
            conn.notes.too_many_records = true;
            conn.unknown(
                format!("no verdict after {} records", self.walker.record_limit),
                Outcome::Unknown,
            );
        }
    }

    fn handshake_record(&mut self, conn: &mut Connection, dir: Direction, body: &[u8]) {
        if body.is_empty() {
            // RFC 5246 §6.2.1 / RFC 8446 §5.1: zero-length handshake
            // fragments are forbidden (hostile-inputs M20).
            conn.malformed("zero-length handshake record");
            return;
        }
        let cap = self.walker.handshake_cap();
        let Some(side) = self.walker.side_mut(dir) else {
            return;
        };
        // The messages borrow the reassembler (a split message is read from
        // its buffer) while the rules below need `&mut self`: it is lent
        // out for the record and put back. Nothing below reads it.
        let mut hs = std::mem::replace(&mut side.hs, HandshakeReassembler::new(cap));
        self.handshake_messages(conn, dir, hs.push(body), cap);
        hs.drop_done();
        if let Some(side) = self.walker.side_mut(dir) {
            side.hs = hs;
        }
    }

    /// The messages one handshake record completed.
    fn handshake_messages(
        &mut self,
        conn: &mut Connection,
        dir: Direction,
        messages: Messages<'_>,
        cap: usize,
    ) {
        // A ClientHello or ServerHello cannot be longer than the handshake
        // buffer in practice; a header declaring more (up to 2^24-1) is
        // refused at once instead of waiting for megabytes (M21).
        let over = messages.in_progress().filter(|&(t, declared)| {
            matches!(t, handshake::CLIENT_HELLO | handshake::SERVER_HELLO)
                && declared as usize > cap
        });
        if messages.len() > MESSAGES_PER_RECORD {
            conn.malformed(&format!(
                "more than {MESSAGES_PER_RECORD} handshake messages in one record"
            ));
            return;
        }
        for m in messages {
            if m.fragmented {
                conn.notes.fragmented_messages = conn.notes.fragmented_messages.saturating_add(1);
            }
            if m.truncated
                && matches!(
                    m.msg_type,
                    handshake::CLIENT_HELLO | handshake::SERVER_HELLO
                )
            {
                conn.notes.handshake_too_large = true;
                conn.unknown(
                    format!(
                        "hello message of {} bytes is over the handshake buffer",
                        m.declared
                    ),
                    Outcome::Incomplete,
                );
            }
            if conn.is_final() {
                return;
            }
            self.handshake_message(conn, dir, &m);
            if conn.is_final() {
                return;
            }
        }
        if let Some((_, declared)) = over {
            conn.notes.handshake_too_large = true;
            conn.unknown(
                format!("hello message of {declared} bytes is over the handshake buffer"),
                Outcome::Incomplete,
            );
        }
    }

    fn handshake_message(&mut self, conn: &mut Connection, dir: Direction, m: &HandshakeMessage) {
        match (dir, m.msg_type) {
            (Direction::ToServer, handshake::CLIENT_HELLO) => {
                match record::parse_client_hello(m.bytes) {
                    Some(ch) => self.ch = Some(ch),
                    None => conn.malformed("ClientHello does not parse"),
                }
            }
            (Direction::ToClient, handshake::SERVER_HELLO) => {
                match record::parse_server_hello(m.bytes) {
                    // HelloRetryRequest (RFC 8446 §4.1.4): a second
                    // ClientHello follows; the real ServerHello comes later.
                    Some(sh) if sh.hrr => {}
                    Some(sh) => {
                        self.sh_clock = Some(self.walker.clock);
                        self.sh = Some(sh);
                    }
                    None => conn.malformed("ServerHello does not parse"),
                }
            }
            _ => self.v12.handshake_message(conn, dir, m),
        }
    }

    fn alert_record(&mut self, conn: &mut Connection, dir: Direction, level: u8, description: u8) {
        let alert = Alert {
            level,
            description,
            from_server: dir == Direction::ToClient,
        };
        // close_notify and warnings do not end a handshake.
        if level != 2 && description == 0 {
            return;
        }
        conn.alert = Some(alert);
        let who = if alert.from_server {
            "server"
        } else {
            "client"
        };
        let handshake_done = self.walker.sides.iter().all(|s| s.ccs);
        if level == 2 && !handshake_done {
            if conn.class.is_none() && !alert.from_server {
                conn.class = self.tls13_client_refusal(&alert.name());
            }
            if conn.class.is_none() {
                conn.class = Some(self.class_at_failure());
            }
            // Joined, not format!ed: one of these ends every refused handshake.
            let why = [
                who,
                " sent fatal alert ",
                &alert.name(),
                " during the handshake",
            ]
            .concat();
            conn.outcome = Some((Outcome::Rejected, why));
            conn.finish();
        }
    }

    /// The client opened TLS and the other side answered in something else.
    pub(super) fn not_tls(&mut self, conn: &mut Connection, dir: Direction) {
        if dir == Direction::ToClient
            && self.sh.is_none()
            && self.walker.records(Direction::ToClient) == 0
        {
            // HTTP on an HTTPS port: TLS attempted, refused.
            conn.finish_now(
                (
                    super::Class::Tls,
                    super::Basis::Observed,
                    "client sent a ClientHello without a certificate; server did not speak TLS"
                        .to_string(),
                ),
                Outcome::Rejected,
                "server answered the ClientHello with non-TLS data".to_string(),
            );
            return;
        }
        conn.malformed("bytes that are not a TLS record inside a TLS stream");
    }

    /// The version-specific facts of the evidence.
    pub(super) fn evidence<'a>(&'a self, e: &mut Evidence<'a>) {
        e.client_hello = self.ch.as_ref();
        e.server_hello = self.sh.as_ref();
        let psk = self.sh.as_ref().is_some_and(|s| s.psk);
        e.resumed = psk || self.v12.abbreviated;
        e.session = self.session_keys(e.class, e.resumed);
        e.client_leaf = self.v12.client_leaf.as_deref();
        e.server_leaf = self.v12.server_leaf.as_deref();
        e.renegotiation = self.v12.renegotiation;
        if self.is_tls13() {
            self.tls13_evidence(e, psk);
        } else if self.sh.is_some() || self.ch.is_some() {
            let first = self.v12.renegotiation_run.records.first().copied();
            e.handshake = match first {
                // The renegotiation size rule said mtls: a certificate was
                // requested and sent there, encrypted.
                Some(record_len) if e.class == Class::Mtls && e.basis == Basis::Inferred => {
                    Handshake::Tls12 {
                        cert_requested: Some(true),
                        client_cert: ClientCert::SentEncrypted { record_len },
                    }
                }
                _ => Handshake::Tls12 {
                    cert_requested: self.v12.cert_requested(),
                    client_cert: self.v12.client_cert,
                },
            };
        }
    }
}

/// TLS 1.3 or one of its drafts (0x7fxx IETF, 0xfbxx Facebook).
fn is_tls13_version(v: u16) -> bool {
    v == record::VERSION_TLS13 || v >> 8 == 0x7f || v >> 8 == 0xfb
}
