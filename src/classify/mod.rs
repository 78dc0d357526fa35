//! The per-flow classifier: reads the two reassembled byte streams of one
//! TCP connection, in the order their bytes became available, and gathers
//! the evidence for plaintext / tls / mtls / unknown, the outcome, the basis
//! and a reason. `verdict::assemble` turns that evidence into a verdict;
//! nothing here writes one (and nothing here imports `verdict`, the stage
//! above).
//!
//! A small state machine over mode-specific states (`Mode`): `Start` until
//! the first bytes say what the flow is, then `Plain` (clear text, scanned
//! for an in-band upgrade) or `Tls` (records framed by `walker.rs`, judged
//! by `tls12.rs`, `tls13.rs`, `sslv2.rs`). State that belongs to one mode
//! lives in its variant; what every mode shares (bytes and closes per side,
//! notes, the decision and whether it is final) is the `Connection`.
//!
//! Contract with the engine (Suricata's stream-to-parser contract): `feed`
//! gets the contiguous unread bytes of one direction and returns how many it
//! consumed and how many further bytes the stream may skip unread (encrypted
//! record bodies). Bytes not consumed are offered again with more data. The
//! classifier never buffers stream bytes itself, apart from the bounded
//! handshake-message reassembly in `tls`.
//!
//! The rules (wire-facts §2-4): TLS <= 1.2 is decided from handshake messages
//! in clear (observed); TLS 1.3 from the size of the client's first encrypted
//! record after the ServerHello (inferred), never from a port or a mesh
//! fingerprint. Resumption, 0-RTT, gaps and anything ambiguous give unknown
//! with a reason. `Class::Mtls` requires a visible non-empty client
//! Certificate, or a TLS 1.3 first client record too large to be anything but
//! a certificate.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod connection;
mod evidence;
pub mod mesh;
mod plain;
pub mod plaintext;
mod prove;
mod renegotiation;
mod sslv2;
mod ticket;
mod tls;
mod tls12;
mod tls13;
mod walker;

#[cfg(test)]
mod testing;

pub use self::evidence::{
    Basis, Class, ClientCert, Evidence, Handshake, Outcome, Party, SessionKeys, SessionKind,
};
pub use self::prove::Proving;
pub use self::renegotiation::{RENEG_CERT_FLIGHT_MIN, RENEG_NO_CERT_FLIGHT_MAX};
pub use self::ticket::{NO_CERT_TICKET_MAX, STATEFUL_ID_MAX};
pub use self::tls13::{CERTIFICATE_RECORD_MIN, FINISHED_RECORD_MAX};
pub use self::walker::{Feed, MAX_PLAINTEXT_RECORD_LEN};

use self::connection::Connection;
use self::plain::{Plain, PlainStep};
use self::plaintext::Opening;
use self::tls::Tls;
use crate::tls::record::{self, HeaderRead, RecordHeader, content};

/// Records inspected in one direction before the flow must be decided
/// (hostile-inputs M23); `--max-records` changes it.
pub const RECORDS_BEFORE_VERDICT: u32 = 64;
/// Bytes kept unconsumed at the end of a scanned chunk so a ClientHello
/// header split across segments is still found.
const SCAN_OVERLAP: usize = 5;

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    ToClient,
}

impl Direction {
    fn idx(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }

    /// The sender, in a sentence.
    pub fn sender(self) -> &'static str {
        match self {
            Direction::ToServer => "client",
            Direction::ToClient => "server",
        }
    }
}

/// How a side stopped sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    Fin,
    Rst,
}

/// Why the flow is being concluded without a final verdict yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed (or one reset).
    Closed,
    /// No packet for the idle timeout.
    Idle,
    /// End of the capture.
    EndOfInput,
    /// Dropped from a full flow table to make room (an unanswered SYN
    /// shown with `-v`).
    Evicted,
}

/// Hostile-input notes of one flow, summed into the engine counters when
/// the flow is reported (hostile-inputs M13, M19-M23).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notes {
    /// Handshake messages that arrived spread over more than one record
    /// (M22: legal, and a known evasion of per-record parsers).
    pub fragmented_messages: u32,
    /// The TLS stream broke the record or handshake layer (M19-M21, M23).
    pub malformed: bool,
    /// The record limit forced the verdict (M23).
    pub too_many_records: bool,
    /// A ClientHello or ServerHello declared a length over the handshake
    /// buffer (M21).
    pub handshake_too_large: bool,
    /// Overlapping segments with different bytes reached this flow before
    /// its verdict (M13): the verdict was made unknown.
    pub ambiguous_overlap: bool,
}

/// What the flow's first bytes turned out to be, with that mode's state.
// `Tls` is the large variant, on purpose: the engine already boxes the
// whole classifier per flow, and boxing `Tls` again would cost one more
// allocation per TLS flow. The enum is smaller than the flat struct it
// replaced (see `per_flow_state_did_not_grow`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Mode {
    /// Nothing seen yet.
    Start,
    /// Clear text; scanning the client stream for a ClientHello.
    Plain(Plain),
    /// A TLS handshake is being followed.
    Tls(Tls),
}

/// The classifier of one flow.
#[derive(Debug, Clone)]
pub struct Classifier {
    mode: Mode,
    conn: Connection,
    /// The stream start was seen (SYN) in each direction; false = midstream.
    start_seen: [bool; 2],
    /// Bytes of one handshake message kept (TLS <= 1.2 Certificate chains).
    handshake_cap: usize,
    /// Records per direction before the verdict is forced.
    record_limit: u32,
    /// With a key log: protected handshake bytes kept per direction.
    sealed_cap: Option<usize>,
    /// `-A`: clear text kept per direction.
    preview_cap: usize,
}

impl Classifier {
    /// `start_seen[d]`: the SYN (or SYN-ACK) of direction d was seen, so its
    /// stream starts at the first byte of the connection.
    pub fn new(
        start_seen_to_server: bool,
        start_seen_to_client: bool,
        handshake_cap: usize,
    ) -> Self {
        Classifier {
            mode: Mode::Start,
            conn: Connection::new(),
            start_seen: [start_seen_to_server, start_seen_to_client],
            handshake_cap,
            record_limit: RECORDS_BEFORE_VERDICT,
            sealed_cap: None,
            preview_cap: 0,
        }
    }

    /// Keep up to `bytes` of each direction of a plaintext flow (`-A`).
    pub fn keep_preview(&mut self, bytes: usize) {
        self.preview_cap = bytes;
    }

    /// A key log is configured: keep protected handshake records (at most
    /// `handshake_cap` bytes per direction) so `prove` can open them.
    pub fn keep_sealed(&mut self, handshake_cap: usize) {
        self.sealed_cap = Some(handshake_cap);
        if let Mode::Tls(t) = &mut self.mode {
            t.sealed = Some(Box::new(crate::tls::proof::Sealed::new(handshake_cap)));
        }
    }

    /// Records read in one direction before the verdict is forced
    /// (`--max-records`; at least 1).
    pub fn set_record_limit(&mut self, records: u32) {
        self.record_limit = records.max(1);
        if let Mode::Tls(t) = &mut self.mode {
            t.walker.record_limit = self.record_limit;
        }
    }

    /// The flow's hostile-input notes so far.
    pub fn notes(&self) -> Notes {
        self.conn.notes
    }

    /// Heap bytes this classifier holds (handshake reassembly, previews,
    /// certificates kept for identities, hello fields, flight records), for
    /// the engine's memory budget. An estimate from capacities, never below
    /// what is held.
    pub fn heap_bytes(&self) -> usize {
        let mode = match &self.mode {
            Mode::Start => 0,
            Mode::Plain(p) => p.heap_bytes(),
            Mode::Tls(t) => t.heap_bytes(),
        };
        self.conn.heap_bytes() + mode
    }

    /// The engine gives up on the flow (a memory budget, an ambiguous TCP
    /// handshake): whatever was decided so far, the verdict is unknown
    /// with this reason, and final.
    pub fn give_up(&mut self, why: String, outcome: Outcome) {
        self.conn.give_up(why, outcome);
    }

    /// Overlapping segments in direction `dir` carried `bytes` bytes that
    /// differed from the copy already held (the first copy was kept:
    /// hostile-inputs M13). Two senders disagree about the stream, so no
    /// conclusion drawn from it can be trusted: the verdict is unknown,
    /// whatever was decided so far.
    pub fn on_conflict(&mut self, dir: Direction, bytes: usize) {
        if self.is_final() && self.conn.notes.ambiguous_overlap {
            return;
        }
        self.conn.notes.ambiguous_overlap = true;
        let side = dir.sender();
        self.give_up(
            format!(
                "ambiguous: overlapping segments carried {bytes} different byte(s) in the {side}'s stream \
                 before the verdict (the first copy was kept; someone may be injecting data)"
            ),
            Outcome::Unknown,
        );
    }

    /// True once the verdict is final: the engine reports it and stops
    /// buffering.
    pub fn is_final(&self) -> bool {
        self.conn.is_final()
    }

    /// Whether any payload was fed.
    pub fn saw_payload(&self) -> bool {
        self.conn.sides.iter().any(|s| s.bytes > 0)
    }

    /// Whether these first bytes are a TLS ClientHello (TLS or SSL 2.0
    /// format): their sender is the TLS client.
    pub fn starts_tls_client_hello(first_payload: &[u8]) -> bool {
        record::starts_client_hello(first_payload)
            || record::sslv2_client_hello(first_payload).is_some()
    }

    /// Which side a flow without a SYN belongs to, judged from its first
    /// payload: Some(ToServer) if these bytes look like a client's opening
    /// (ClientHello, HTTP request), Some(ToClient) if a server's
    /// (ServerHello, HTTP response, banner), None if they do not say.
    pub fn role_hint(first_payload: &[u8]) -> Option<Direction> {
        if Self::starts_tls_client_hello(first_payload) {
            return Some(Direction::ToServer);
        }
        if record::starts_server_hello(first_payload) {
            return Some(Direction::ToClient);
        }
        match plaintext::recognise(first_payload) {
            Opening::HttpRequest { .. } | Opening::H2Preface | Opening::PostgresSslRequest => {
                Some(Direction::ToServer)
            }
            Opening::HttpResponse { .. } | Opening::Banner { .. } => Some(Direction::ToClient),
            _ => None,
        }
    }

    fn new_tls(&self) -> Tls {
        Tls::new(self.handshake_cap, self.record_limit, self.sealed_cap)
    }

    /// Offer the contiguous unread bytes of direction `dir`.
    pub fn feed(&mut self, dir: Direction, data: &[u8]) -> Feed {
        if data.is_empty() || self.is_final() {
            return Feed::default();
        }
        if matches!(self.mode, Mode::Start)
            && let Some(feed) = self.detect(dir, data)
        {
            return feed;
        }
        let step = match &mut self.mode {
            Mode::Tls(t) => return t.feed(&mut self.conn, dir, data),
            Mode::Plain(p) => p.feed(&mut self.conn, dir, data, self.preview_cap),
            Mode::Start => return Feed::default(),
        };
        match step {
            PlainStep::Fed(feed) => feed,
            PlainStep::Upgrade { at, protocol } => {
                // TLS after an in-band upgrade: the client's bytes from the
                // ClientHello on are TLS (offered again), and the server's
                // answer is found by resync.
                self.conn.starttls = Some(protocol.to_string());
                let mut tls = self.new_tls();
                if let Some(s) = tls.walker.side_mut(Direction::ToClient) {
                    s.resync = true;
                }
                if let Some(s) = self.conn.side_mut(Direction::ToServer) {
                    s.bytes = s.bytes.saturating_sub((data.len() - at) as u64);
                }
                self.mode = Mode::Tls(tls);
                Feed::at(at)
            }
        }
    }

    /// Decide what the first payload is. Returns Some(feed) when it consumed
    /// or must wait; None to go on in the chosen mode.
    fn detect(&mut self, dir: Direction, data: &[u8]) -> Option<Feed> {
        if dir == Direction::ToServer {
            if record::starts_client_hello(data) {
                self.mode = Mode::Tls(self.new_tls());
                return None;
            }
            if let Some(version) = record::sslv2_client_hello(data) {
                let (cap, limit, sealed) = (self.handshake_cap, self.record_limit, self.sealed_cap);
                let tls = move || Tls::new(cap, limit, sealed);
                return Some(
                    match sslv2::client_hello(&mut self.conn, version, data, tls) {
                        Ok((tls, feed)) => {
                            self.mode = Mode::Tls(tls);
                            feed
                        }
                        Err(wait) => wait,
                    },
                );
            }
        }
        if too_short_to_judge(data) {
            return Some(Feed::default());
        }
        let opening = plaintext::recognise(data);
        if plaintext::needs_more(data) && matches!(opening, Opening::Other) {
            return Some(Feed::default());
        }
        if let Opening::Proxy { len, version } = opening {
            // A PROXY header before the application's bytes (ztunnel after
            // HBONE): skip it, keep the identity it names.
            self.conn.proxy_identity =
                plaintext::parse_proxy_v2(data).and_then(|p| p.peer_identity);
            self.conn.starttls = Some(format!("proxy-v{version}"));
            return Some(Feed::at(len));
        }
        if let Some(feed) = self.detect_records(dir, data) {
            return feed;
        }
        // Clear text. Without the stream's start, only a recognisable
        // opening (an HTTP request or response line, a banner) proves it.
        if !self.start_seen(dir) && matches!(opening, Opening::Other | Opening::Proxy { .. }) {
            self.conn.unknown(
                "midstream: the flow began before the capture and shows no handshake or known protocol",
                Outcome::Unknown,
            );
            return Some(Feed::default());
        }
        let upgrade = if dir == Direction::ToServer {
            plaintext::upgrade_command(data)
        } else {
            None
        };
        self.mode = Mode::Plain(Plain::new(opening, upgrade));
        None
    }

    /// TLS records that are not a ClientHello at the start: Some(Some(feed))
    /// when that decides (or waits), Some(None) to follow a ServerHello,
    /// None when the bytes are not TLS.
    fn detect_records(&mut self, dir: Direction, data: &[u8]) -> Option<Option<Feed>> {
        let start_seen = self.start_seen(dir);
        match record::read_header(data) {
            HeaderRead::Record(h) if !start_seen || dir == Direction::ToClient => {
                // TLS records without the flow's start: the handshake is not
                // in the capture (or its first packets were lost).
                if dir == Direction::ToClient && record::starts_server_hello(data) {
                    // ClientHello lost but ServerHello present: follow the
                    // server side; the client's certificate may still be seen.
                    self.mode = Mode::Tls(self.new_tls());
                    return Some(None);
                }
                if !start_seen {
                    return Some(Some(self.midstream_record(dir, &h, data.len())));
                }
                self.conn.unknown(
                    format!(
                        "server sent TLS records (type {}) before any ClientHello",
                        h.content_type
                    ),
                    Outcome::Unknown,
                );
            }
            HeaderRead::Record(h) => self.conn.unknown(
                format!(
                    "TLS record of type {} where a ClientHello was expected",
                    h.content_type
                ),
                Outcome::Unknown,
            ),
            HeaderRead::TooLarge(_) => self.conn.malformed("record length over 2^14+2048"),
            HeaderRead::NeedMore | HeaderRead::NotTls => return None,
        }
        Some(Some(Feed::default()))
    }

    /// A TLS record in a flow that began before the capture: the class
    /// stays unknown (no handshake), but application data both ways shows
    /// the connection was accepted (outcome ok). Each record is passed over
    /// unread, header by header, until both sides have sent application
    /// data or the flow ends.
    fn midstream_record(&mut self, dir: Direction, h: &RecordHeader, available: usize) -> Feed {
        self.conn.decide((
            Class::Unknown,
            Basis::None,
            "midstream: the flow began before the capture; TLS records but no handshake"
                .to_string(),
        ));
        let whole = record::RECORD_HEADER_LEN + usize::from(h.len);
        if h.content_type == content::APPLICATION_DATA {
            self.conn.add_bytes(dir, whole as u64);
        }
        if self.conn.client().bytes > 0 && self.conn.server().bytes > 0 {
            self.conn.finish_outcome(
                Outcome::Ok,
                "application data both ways after the capture started".to_string(),
            );
            return Feed::default();
        }
        let consumed = whole.min(available);
        Feed {
            consumed,
            skip: (whole - consumed) as u64,
            needed: 0,
        }
    }

    fn start_seen(&self, dir: Direction) -> bool {
        self.start_seen.get(dir.idx()).copied().unwrap_or(false)
    }

    /// A side closed (FIN or RST seen, after its stream was drained).
    pub fn on_close(&mut self, dir: Direction, how: Close) {
        if let Some(s) = self.conn.side_mut(dir) {
            s.closed.get_or_insert(how);
        }
        if self.is_final() {
            return;
        }
        if let Mode::Tls(t) = &mut self.mode
            && t.is_tls13()
        {
            t.on_close_tls13(&mut self.conn, dir);
        }
    }

    /// A hole in direction `dir` that will never be filled: the bytes are
    /// gone. A gap inside the handshake makes the verdict uncertain.
    pub fn on_gap(&mut self, dir: Direction, lost: u64) {
        if self.is_final() {
            return;
        }
        let conn = &mut self.conn;
        match self.mode {
            Mode::Plain(_) | Mode::Start if conn.class.is_none() => {
                // Clear text keeps its evidence; only the scan is cut.
                if matches!(self.mode, Mode::Start) {
                    conn.unknown(
                        format!("{lost} bytes missing at the start of the flow"),
                        Outcome::Incomplete,
                    );
                }
            }
            _ => {
                let side = dir.sender();
                if conn.class.is_some() {
                    conn.finish_outcome(
                        Outcome::Incomplete,
                        format!("{lost} bytes missing from the {side}'s stream"),
                    );
                } else {
                    conn.unknown(
                        format!("{lost} bytes missing from the {side}'s handshake"),
                        Outcome::Incomplete,
                    );
                }
            }
        }
    }

    /// Conclude a flow that is ending without a final verdict.
    pub fn conclude(&mut self, end: End) {
        if self.is_final() {
            return;
        }
        let ended = match end {
            End::Closed => "the connection closed",
            End::Idle => "the flow went idle",
            End::EndOfInput => "the capture ended",
            End::Evicted => "the flow was evicted from the full flow table",
        };
        let conn = &mut self.conn;
        match &mut self.mode {
            Mode::Start => conclude_start(conn, ended),
            Mode::Plain(p) => p.conclude(conn, ended),
            Mode::Tls(t) if t.is_tls13() => t.conclude_tls13(conn, ended),
            Mode::Tls(t) => t.conclude_tls12(conn, ended),
        }
        conn.finish();
    }
}

/// The first bytes are too few to say whether they are TLS or text: wait.
fn too_short_to_judge(data: &[u8]) -> bool {
    if data.first() == Some(&content::HANDSHAKE) && data.len() <= record::RECORD_HEADER_LEN {
        // A handshake record header without its first body byte: wait to
        // see whether it is a ClientHello.
        return true;
    }
    // Too short to judge; wait unless it is plainly text. The first bytes
    // of any record header also wait: a midstream flow's record must be
    // framed whole, however the segments split it.
    let record_type = data
        .first()
        .is_some_and(|t| (content::CHANGE_CIPHER_SPEC..=content::APPLICATION_DATA).contains(t));
    matches!(record::read_header(data), HeaderRead::NeedMore)
        && data.len() < 5
        && (plaintext::needs_more(data) || record_type)
}

/// The flow ends with no payload classified.
fn conclude_start(conn: &mut Connection, ended: &str) {
    if conn.class.is_some() {
        // Midstream TLS (`midstream_record`): application data was not
        // seen both ways.
        conn.outcome.get_or_insert((
            Outcome::Unknown,
            format!("{ended} before application data was seen both ways"),
        ));
        return;
    }
    let server = conn.server().closed;
    let closed = server.is_some() || conn.client().closed.is_some();
    let (outcome, why) = if server == Some(Close::Rst) {
        (
            Outcome::Rejected,
            "server reset the connection (port closed or refused)".to_string(),
        )
    } else if closed {
        (Outcome::Unknown, "closed without payload".to_string())
    } else {
        (Outcome::Incomplete, format!("{ended} before any payload"))
    };
    conn.class = Some((
        Class::Unknown,
        Basis::None,
        "no payload: nothing to classify".to_string(),
    ));
    conn.outcome = Some((outcome, why));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::testing::*;
    use super::*;
    use crate::verdict::assemble::tests::verdict;

    /// The engine boxes this state per flow: moving state into the mode
    /// variants must not make it larger than the flat struct it replaced
    /// (1,000 bytes on x86-64).
    #[test]
    fn per_flow_state_did_not_grow() {
        let size = std::mem::size_of::<Classifier>();
        eprintln!("Classifier: {size} bytes");
        assert!(size <= 1000, "{size}");
    }

    /// Issue 14 §2: a midstream flow with application data both ways is
    /// accepted (outcome ok), its class still unknown; one way only, or a
    /// record split across chunks, waits; the end of input says unknown.
    #[test]
    fn midstream_application_data_both_ways_is_ok() {
        let app = encrypted(300);
        let steps = [
            (C, app[..100].to_vec()),
            (C, app[100..].to_vec()),
            (C, encrypted(40)),
            (S, encrypted(500)),
        ];
        let mut c = Classifier::new(false, false, 65536);
        let mut fed = drive_with(&mut c, &steps[..3]);
        assert!(!c.is_final(), "one direction only: not decided");
        fed += drive_with(&mut c, &steps[3..]);
        assert!(c.is_final() && fed > 0);
        let v = verdict(&c);
        assert_eq!(
            (v.class, v.basis, v.outcome),
            (Class::Unknown, Basis::None, Outcome::Ok),
            "{}",
            v.reason
        );

        let mut c = Classifier::new(false, false, 65536);
        drive_with(&mut c, &steps[..3]);
        c.conclude(End::EndOfInput);
        let v = verdict(&c);
        assert_eq!(
            (v.class, v.outcome),
            (Class::Unknown, Outcome::Unknown),
            "{}",
            v.reason
        );
        assert!(v.reason.starts_with("midstream"), "{}", v.reason);
    }

    #[test]
    fn midstream_tls_is_unknown_and_gaps_make_it_incomplete() {
        let mut c = Classifier::new(false, false, 65536);
        c.feed(C, &encrypted(100));
        let v = verdict(&c);
        assert_eq!(v.class, Class::Unknown);
        assert!(v.reason.starts_with("midstream"), "{}", v.reason);

        let c = drive_then(&[(C, client_hello(&[]))], |c| c.on_gap(S, 1000));
        let v = verdict(&c);
        assert_eq!(
            (v.class, v.outcome),
            (Class::Unknown, Outcome::Incomplete),
            "{}",
            v.reason
        );
    }
}
