//! The TLS record and handshake layer, read from reassembled byte streams.
//!
//! This file owns everything that knows TLS byte layouts: record headers
//! (RFC 5246 §6.2, RFC 8446 §5.1), handshake message framing across records
//! (RFC 8446 §5.1: a message may span records, a record may hold several
//! messages), and the few messages the classifier reads in clear: ClientHello,
//! ServerHello (and HelloRetryRequest), the TLS <= 1.2 Certificate. It is the
//! only file that uses tls-parser. It must not decide verdicts: it reports
//! what the bytes say and leaves meaning to `classify`.
//!
//! Invariants: nothing here allocates by a length read from the wire before
//! checking it against a caller-supplied cap; every parser returns `None` on
//! malformed input instead of panicking.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extension,
    parse_tls_extension_unknown, parse_tls_extensions, parse_tls_message_handshake,
    parse_tls_server_hello_extensions,
};

pub const RECORD_HEADER_LEN: usize = 5;
/// Largest legal record body: TLSCiphertext may carry 2^14 + 2048 bytes
/// (RFC 5246 §6.2.3); TLS 1.3 allows less (2^14 + 256), so this covers both.
pub const MAX_RECORD_LEN: usize = 16384 + 2048;
/// Handshake message header: type (1) + length (3), RFC 8446 §4.
pub const HANDSHAKE_HEADER_LEN: usize = 4;

/// Record content types (RFC 8446 §5.1, RFC 6520 for heartbeat).
pub mod content {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod handshake {
    pub const HELLO_REQUEST: u8 = 0;
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const NEW_SESSION_TICKET: u8 = 4;
    pub const END_OF_EARLY_DATA: u8 = 5;
    pub const ENCRYPTED_EXTENSIONS: u8 = 8;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    pub const CERTIFICATE_REQUEST: u8 = 13;
    pub const SERVER_HELLO_DONE: u8 = 14;
    pub const CERTIFICATE_VERIFY: u8 = 15;
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
    pub const FINISHED: u8 = 20;
}

/// The ServerHello.random that marks a HelloRetryRequest (RFC 8446 §4.1.3:
/// SHA-256 of "HelloRetryRequest").
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

pub const VERSION_TLS13: u16 = 0x0304;

/// A TLS record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub content_type: u8,
    pub version: u16,
    pub len: u16,
}

/// What the next bytes of a stream are, read as a record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRead {
    /// Fewer than 5 bytes available.
    NeedMore,
    Record(RecordHeader),
    /// Plausible type and version, but the length is over the legal maximum
    /// (hostile-inputs M19).
    TooLarge(RecordHeader),
    /// Not a TLS record header at all.
    NotTls,
}

/// Read a record header at the start of `b`.
pub fn read_header(b: &[u8]) -> HeaderRead {
    // Five fixed bytes, read in place: tls-parser's header parser cost
    // about 200 instructions a record, a sixteenth of a worker's time
    // (issue 15). A test holds this to tls-parser's reading.
    let Some(&[content_type, v0, v1, l0, l1]) = b.get(..RECORD_HEADER_LEN) else {
        return HeaderRead::NeedMore;
    };
    let header = RecordHeader {
        content_type,
        version: u16::from_be_bytes([v0, v1]),
        len: u16::from_be_bytes([l0, l1]),
    };
    let type_ok = (content::CHANGE_CIPHER_SPEC..=content::HEARTBEAT).contains(&header.content_type);
    // Record versions seen on the wire are 3.0-3.4; TLS 1.3 freezes it at
    // 0x0303 but early drafts and some ClientHellos use 0x0301.
    let version_ok = header.version >> 8 == 3 && (header.version & 0xff) <= 4;
    if !type_ok || !version_ok {
        return HeaderRead::NotTls;
    }
    if usize::from(header.len) > MAX_RECORD_LEN {
        return HeaderRead::TooLarge(header);
    }
    HeaderRead::Record(header)
}

/// True when `b` starts like a TLS handshake record carrying a ClientHello:
/// the test used to find TLS at a flow's start or after a STARTTLS upgrade.
/// Needs 6 bytes; fewer give false.
pub fn starts_client_hello(b: &[u8]) -> bool {
    // Any non-empty record: a ClientHello may come one byte per record
    // (hostile-inputs M22), the message type byte first.
    matches!(read_header(b), HeaderRead::Record(h)
        if h.content_type == content::HANDSHAKE && h.len >= 1)
        && b.get(RECORD_HEADER_LEN) == Some(&handshake::CLIENT_HELLO)
}

/// True when `b` starts like a TLS handshake record carrying a ServerHello.
pub fn starts_server_hello(b: &[u8]) -> bool {
    matches!(read_header(b), HeaderRead::Record(h)
        if h.content_type == content::HANDSHAKE && h.len >= 4)
        && b.get(RECORD_HEADER_LEN) == Some(&handshake::SERVER_HELLO)
}

/// An SSL 2.0-format ClientHello (RFC 6101 appendix E.2, draft-hickman
/// SSL 2.0): 2-byte length with the high bit set, message type 1, then the
/// version the client offers. Returns that version.
pub fn sslv2_client_hello(b: &[u8]) -> Option<u16> {
    let (&h0, &msg, &v0, &v1) = (b.first()?, b.get(2)?, b.get(3)?, b.get(4)?);
    let version = u16::from_be_bytes([v0, v1]);
    let len = (usize::from(h0 & 0x7f) << 8) | usize::from(*b.get(1)?);
    let version_ok = version == 0x0002 || (version >> 8 == 3 && (version & 0xff) <= 3);
    (h0 & 0x80 != 0 && msg == 1 && version_ok && len >= 9).then_some(version)
}

/// An SSL 2.0 ServerHello: 2-byte header with the high bit, type 4.
pub fn sslv2_server_hello(b: &[u8]) -> bool {
    matches!((b.first(), b.get(2)), (Some(h0), Some(4)) if h0 & 0x80 != 0)
}

/// One handshake message, header included, borrowed: from the record body
/// that held it whole (the common case: no copy), or from the
/// reassembler's buffer when it was split across records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeMessage<'a> {
    pub msg_type: u8,
    /// The 4-byte header and the body, or only the first `cap` body bytes
    /// when `truncated`.
    pub bytes: &'a [u8],
    /// Body length declared in the header.
    pub declared: u32,
    /// The body was longer than the cap: only its prefix is in `bytes`, the
    /// rest was passed over unread.
    pub truncated: bool,
    /// The message arrived spread over more than one record.
    pub fragmented: bool,
}

/// Joins plaintext handshake record bodies into whole messages
/// (RFC 8446 §5.1: a message may span records, a record may hold several).
///
/// Only a message split across records is gathered in `buf`; a message
/// that lies whole inside the pushed body is handed out borrowed from it.
/// `buf` keeps its capacity between messages (up to `KEEP_CAPACITY`), so a
/// flow whose messages are often split does not allocate for each one.
///
/// Invariant: `buf` never holds more than `cap + HANDSHAKE_HEADER_LEN`
/// bytes of the message being gathered, whatever length a header declares
/// (hostile-inputs M21): a longer message (a real 300 KiB certificate
/// chain, or a lying 2^24 length) is passed over by counting, and returned
/// with only its prefix. In front of it, `buf` may still hold the split
/// message the previous push completed (`done` bytes, handed out by that
/// push and dropped at the next).
#[derive(Debug, Clone)]
pub struct HandshakeReassembler {
    buf: Vec<u8>,
    cap: usize,
    /// Total length (header included) of the message being assembled, and
    /// how many of its bytes have passed so far.
    current: Option<(usize, usize)>,
    /// Records that contributed to the message being assembled.
    records: u32,
    /// Bytes at the front of `buf` that hold a message the last push
    /// completed (a record may end one split message and begin the next).
    done: usize,
}

/// A gathering buffer up to this size is kept for the flow's next split
/// message; a larger one (a long certificate chain) is given back.
const KEEP_CAPACITY: usize = 4096;

/// The messages one pushed record completed, in order: first the split
/// message it ended (from the reassembler's buffer), then those that lie
/// whole in the record (borrowed from it). Framed once by `push`; this
/// only re-reads the headers it already checked.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    split: Option<HandshakeMessage<'a>>,
    /// Whole messages back to back, the last ending exactly at the end.
    whole: &'a [u8],
    cap: usize,
    count: usize,
    in_progress: Option<(u8, u32)>,
}

impl<'a> Messages<'a> {
    /// How many messages the record completed.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `HandshakeReassembler::in_progress` after this record.
    pub fn in_progress(&self) -> Option<(u8, u32)> {
        self.in_progress
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = HandshakeMessage<'a>;

    fn next(&mut self) -> Option<HandshakeMessage<'a>> {
        if let Some(m) = self.split.take() {
            self.count -= 1;
            return Some(m);
        }
        let declared = declared_len(self.whole)?;
        let total = HANDSHAKE_HEADER_LEN + declared as usize;
        let kept = total.min(self.cap + HANDSHAKE_HEADER_LEN);
        let bytes = self.whole.get(..kept)?;
        self.whole = self.whole.get(total..).unwrap_or_default();
        self.count = self.count.saturating_sub(1);
        Some(HandshakeMessage {
            msg_type: bytes.first().copied().unwrap_or_default(),
            bytes,
            declared,
            truncated: declared as usize > self.cap,
            fragmented: false,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.count, Some(self.count))
    }
}

/// The body length a handshake header at the start of `b` declares.
fn declared_len(b: &[u8]) -> Option<u32> {
    match b.get(..HANDSHAKE_HEADER_LEN)? {
        &[_, x, y, z] => Some(u32::from_be_bytes([0, x, y, z])),
        _ => None,
    }
}

impl HandshakeReassembler {
    pub fn new(cap: usize) -> Self {
        HandshakeReassembler {
            buf: Vec::new(),
            cap,
            current: None,
            records: 0,
            done: 0,
        }
    }

    /// Largest message body kept whole.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Heap bytes allocated for gathering split messages.
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// The message being assembled, once its header is complete: its type
    /// and declared body length. Lets the caller refuse a message by its
    /// header (a 2^24-byte ClientHello) before its bytes arrive.
    pub fn in_progress(&self) -> Option<(u8, u32)> {
        let (total, _) = self.current?;
        let msg_type = self.buf.get(self.done).copied()?;
        Some((msg_type, (total - HANDSHAKE_HEADER_LEN) as u32))
    }

    /// Bytes held that do not yet form a whole message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.done
    }

    /// Add one record body. Returns the messages it completed.
    pub fn push<'a>(&'a mut self, body: &'a [u8]) -> Messages<'a> {
        self.drop_done();
        let mut rest = body;
        let mut split = None;
        if !rest.is_empty() && self.pending() > 0 {
            // This record continues a message an earlier record began.
            self.records = self.records.saturating_add(1);
            if self.gather(&mut rest) {
                split = Some(self.records > 1);
                self.records = 0;
            }
        }
        // The messages that lie whole in what is left: counted here, read
        // in place by `Messages`.
        let start = body.len() - rest.len();
        let mut count = usize::from(split.is_some());
        while let Some(declared) = declared_len(rest) {
            let Some(after) = rest.get(HANDSHAKE_HEADER_LEN + declared as usize..) else {
                break;
            };
            rest = after;
            count += 1;
        }
        let whole = body.get(start..body.len() - rest.len()).unwrap_or_default();
        if !rest.is_empty() {
            // A message this record begins and a later one ends.
            self.records = 1;
            let ended = self.gather(&mut rest);
            debug_assert!(!ended && rest.is_empty());
        }
        let in_progress = self.in_progress();
        let cap = self.cap;
        let done = self.buf.get(..self.done).unwrap_or_default();
        Messages {
            split: split.map(|fragmented| {
                let declared = declared_len(done).unwrap_or_default();
                HandshakeMessage {
                    msg_type: done.first().copied().unwrap_or_default(),
                    bytes: done,
                    declared,
                    truncated: declared as usize > cap,
                    fragmented,
                }
            }),
            whole,
            cap,
            count,
            in_progress,
        }
    }

    /// Forget the message the last push completed from `buf`, keeping the
    /// buffer (unless it grew large) and any message begun after it. The
    /// next push does this anyway; a caller done with a record's messages
    /// calls it so a long message's buffer is not held (and charged to the
    /// flow) until the next handshake record, which may never come.
    pub fn drop_done(&mut self) {
        if self.done == 0 {
            return;
        }
        self.buf.drain(..self.done.min(self.buf.len()));
        self.done = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            if self.buf.is_empty() {
                self.buf = Vec::new();
            } else {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        }
    }

    /// Feed the message being gathered after `done` in `buf` from `rest`,
    /// its header first, keeping at most `cap` body bytes. True when the
    /// message is complete (`done` then covers it); false when `rest` ran
    /// out first.
    fn gather(&mut self, rest: &mut &[u8]) -> bool {
        let (total, seen) = match self.current {
            Some(c) => c,
            None => {
                let need = HANDSHAKE_HEADER_LEN.saturating_sub(self.pending());
                let (head, tail) = rest.split_at(need.min(rest.len()));
                self.buf.extend_from_slice(head);
                *rest = tail;
                let Some(declared) = self.buf.get(self.done..).and_then(declared_len) else {
                    return false;
                };
                (
                    HANDSHAKE_HEADER_LEN + declared as usize,
                    HANDSHAKE_HEADER_LEN,
                )
            }
        };
        let take = (total - seen).min(rest.len());
        let room = (self.cap + HANDSHAKE_HEADER_LEN).saturating_sub(self.pending());
        let (head, tail) = rest.split_at(take);
        self.buf
            .extend_from_slice(head.get(..room.min(take)).unwrap_or_default());
        *rest = tail;
        if seen + take < total {
            self.current = Some((total, seen + take));
            return false;
        }
        self.current = None;
        self.done = self.buf.len();
        true
    }
}

/// Length of a hello's random (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2).
pub const RANDOM_LEN: usize = 32;
/// Longest legacy_session_id (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2).
pub const SESSION_ID_MAX: usize = 32;

/// A hello's legacy_session_id, held inline: a hello is parsed on every
/// flow, and its fixed-size fields should not each cost an allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionId {
    len: u8,
    /// Zero past `len`, so equal ids compare equal as a whole.
    bytes: [u8; SESSION_ID_MAX],
}

impl SessionId {
    /// None when `b` is longer than `SESSION_ID_MAX` (tls-parser refuses
    /// such a hello before this is reached).
    pub fn new(b: &[u8]) -> Option<Self> {
        let mut id = SessionId {
            len: u8::try_from(b.len()).ok()?,
            bytes: [0; SESSION_ID_MAX],
        };
        id.bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(id)
    }

    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What a ClientHello says in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub random: [u8; RANDOM_LEN],
    /// legacy_session_id: a TLS <= 1.2 session the client tries to resume.
    pub session_id: SessionId,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// supported_versions (43), GREASE removed.
    pub versions: Vec<u16>,
    /// early_data (42): the client may send 0-RTT records.
    pub early_data: bool,
    /// pre_shared_key (41): the client offers resumption.
    pub psk: bool,
    /// The offered PSK identities (RFC 8446 §4.2.11: for a resumption, the
    /// server's ticket as it issued it), at most `PSK_IDENTITIES_KEPT`.
    pub psk_identities: Vec<Vec<u8>>,
    /// post_handshake_auth (49): a certificate may be asked for later.
    pub post_handshake_auth: bool,
    /// A non-empty SessionTicket (35): the ticket of a TLS <= 1.2 session
    /// the client tries to resume (RFC 5077).
    pub ticket: Vec<u8>,
    /// client_certificate_type (19) offered: raw public keys possible
    /// (RFC 7250), whose client "certificate" can be as small as a Finished.
    pub client_cert_type: bool,
    /// encrypted_client_hello (0xfe0d): the real hello is hidden.
    pub ech: bool,
}

impl ClientHello {
    /// The client's highest offer: the highest of supported_versions if
    /// present (GREASE 0x?a?a, 0x7f00 and private values above 0x7fff left
    /// out), else the legacy version.
    pub fn offered_version(&self) -> u16 {
        self.versions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v) && *v != 0x7f00 && *v <= 0x7fff)
            .max()
            .unwrap_or(self.legacy_version)
    }
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parse a whole ClientHello message (4-byte header included).
pub fn parse_client_hello(msg: &[u8]) -> Option<ClientHello> {
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) =
        parse_tls_message_handshake(msg)
    else {
        return None;
    };
    let mut out = ClientHello {
        legacy_version: ch.version.0,
        random: ch.random.try_into().ok()?,
        session_id: SessionId::new(ch.session_id.unwrap_or_default())?,
        ..ClientHello::default()
    };
    for ext in client_extensions(ch.ext.unwrap_or_default()) {
        match ext {
            TlsExtension::SNI(names) => {
                if let Some((_, name)) = names.into_iter().find(|(t, _)| t.0 == 0) {
                    out.sni = Some(lossy(name));
                }
            }
            TlsExtension::ALPN(protos) => out.alpn = protos.into_iter().map(lossy).collect(),
            TlsExtension::SupportedVersions(vs) => {
                out.versions = vs
                    .into_iter()
                    .map(|v| v.0)
                    .filter(|v| !is_grease(*v))
                    .collect();
            }
            TlsExtension::EarlyData(_) => out.early_data = true,
            TlsExtension::PreSharedKey(d) => {
                out.psk = true;
                out.psk_identities = psk_identities(d);
            }
            TlsExtension::PostHandshakeAuth => out.post_handshake_auth = true,
            TlsExtension::SessionTicket(t) => out.ticket = t.to_vec(),
            TlsExtension::Unknown(t, _) if t.0 == 19 => out.client_cert_type = true,
            TlsExtension::Unknown(t, _) if t.0 == 0xfe0d => out.ech = true,
            _ => {}
        }
    }
    Some(out)
}

/// The ClientHello extensions `parse_client_hello` reads beyond their
/// type: server_name, ALPN, session_ticket, pre_shared_key, early_data,
/// supported_versions, post_handshake_auth.
fn read_in_full(kind: u16) -> bool {
    matches!(kind, 0 | 16 | 35 | 41 | 42 | 43 | 49)
}

/// The extensions of a ClientHello, each framed by tls-parser and parsed
/// whole only when `read_in_full` wants it (the rest come back as
/// `Unknown` with their type): a modern hello's key shares, groups and
/// signature algorithms, parsed into vectors nobody read, cost a sixth of
/// a worker's time. One malformed extension is passed over, not every one
/// after it; the walk ends where the framing itself breaks.
fn client_extensions(mut exts: &[u8]) -> impl Iterator<Item = TlsExtension<'_>> {
    std::iter::from_fn(move || {
        loop {
            let (rest, framed) = parse_tls_extension_unknown(exts).ok()?;
            let whole = exts.get(..exts.len() - rest.len()).unwrap_or_default();
            exts = rest;
            let TlsExtension::Unknown(kind, _) = framed else {
                return None;
            };
            if !read_in_full(kind.0) {
                return Some(framed);
            }
            if let Ok((_, ext)) = parse_tls_extension(whole) {
                return Some(ext);
            }
        }
    })
}

/// PSK identities kept from one ClientHello (a resumption offers one or
/// two; the rest are counted out, never stored).
pub const PSK_IDENTITIES_KEPT: usize = 4;

/// The identities of an OfferedPsks (RFC 8446 §4.2.11): `PskIdentity
/// identities<7..2^16-1>` (each `opaque identity<1..2^16-1>` then a
/// 4-byte obfuscated_ticket_age), then the binders, which are not read.
/// A list that overruns its bytes ends the walk with what was whole.
fn psk_identities(d: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Some((len, rest)) = d.split_first_chunk::<2>() else {
        return out;
    };
    let mut list = rest
        .get(..usize::from(u16::from_be_bytes(*len)))
        .unwrap_or(rest);
    while out.len() < PSK_IDENTITIES_KEPT {
        let Some((len, rest)) = list.split_first_chunk::<2>() else {
            break;
        };
        let n = usize::from(u16::from_be_bytes(*len));
        let (Some(identity), Some(after)) = (rest.get(..n), rest.get(n + 4..)) else {
            break;
        };
        if identity.is_empty() {
            break;
        }
        out.push(identity.to_vec());
        list = after;
    }
    out
}

/// What a ServerHello (or HelloRetryRequest) says in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    /// The negotiated version: supported_versions (43) if present, else the
    /// legacy field (RFC 8446 §4.2.1).
    pub version: u16,
    /// This is a HelloRetryRequest, not a real ServerHello.
    pub hrr: bool,
    /// ServerHello.random: with the client's, it seeds the TLS <= 1.2 key
    /// expansion (RFC 5246 §6.3).
    pub random: [u8; RANDOM_LEN],
    pub session_id: SessionId,
    pub cipher: u16,
    /// pre_shared_key (41) accepted: a resumed TLS 1.3 session.
    pub psk: bool,
    /// The index of the client's PSK identity the server accepted.
    pub psk_selected: Option<u16>,
    /// ALPN chosen (TLS <= 1.2; TLS 1.3 sends it encrypted).
    pub alpn: Option<String>,
}

/// Parse a whole ServerHello message (4-byte header included).
pub fn parse_server_hello(msg: &[u8]) -> Option<ServerHello> {
    let parsed = parse_tls_message_handshake(msg).ok()?.1;
    let TlsMessage::Handshake(hs) = parsed else {
        return None;
    };
    let (legacy_version, random, session_id, cipher, ext) = match hs {
        TlsMessageHandshake::ServerHello(sh) => (
            sh.version.0,
            sh.random,
            sh.session_id.unwrap_or_default(),
            sh.cipher.0,
            sh.ext,
        ),
        TlsMessageHandshake::ServerHelloV13Draft18(sh) => {
            (sh.version.0, sh.random, &[][..], sh.cipher.0, sh.ext)
        }
        _ => return None,
    };
    let mut out = ServerHello {
        legacy_version,
        version: legacy_version,
        hrr: random == HELLO_RETRY_REQUEST_RANDOM,
        random: random.try_into().ok()?,
        session_id: SessionId::new(session_id)?,
        cipher,
        ..ServerHello::default()
    };
    let exts = ext
        .and_then(|e| parse_tls_server_hello_extensions(e).ok())
        .map(|(_, v)| v)
        .unwrap_or_default();
    for ext in exts {
        match ext {
            TlsExtension::SupportedVersions(vs) => {
                if let Some(v) = vs.first() {
                    out.version = v.0;
                }
            }
            TlsExtension::PreSharedKey(d) => {
                out.psk = true;
                // RFC 8446 §4.2.11: `uint16 selected_identity`.
                out.psk_selected = match d {
                    [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
                    _ => None,
                };
            }
            TlsExtension::ALPN(protos) => out.alpn = protos.first().map(|p| lossy(p)),
            _ => {}
        }
    }
    Some(out)
}

/// The ticket of a TLS 1.3 NewSessionTicket message (RFC 8446 §4.6.1,
/// 4-byte header included): `uint32 ticket_lifetime; uint32
/// ticket_age_add; opaque ticket_nonce<0..255>; opaque
/// ticket<1..2^16-1>; Extension extensions<0..2^16-2>`. The ticket is what
/// a resuming client sends as its PSK identity.
pub fn parse_new_session_ticket13(msg: &[u8]) -> Option<Vec<u8>> {
    let body = msg.get(4..)?;
    let at = 9 + usize::from(*body.get(8)?);
    let len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    let ticket = body.get(at + 2..at + 2 + len)?;
    (!ticket.is_empty()).then(|| ticket.to_vec())
}

/// The ticket of a TLS <= 1.2 NewSessionTicket message (RFC 5077 §3.3),
/// sent in clear before the server's ChangeCipherSpec.
pub fn parse_new_session_ticket(msg: &[u8]) -> Option<Vec<u8>> {
    match parse_tls_message_handshake(msg).ok()?.1 {
        // tls-parser leaves the ticket's 2-byte length prefix (RFC 5077
        // §3.3, `opaque ticket<0..2^16-1>`) in place; the ClientHello's
        // SessionTicket extension carries the bare ticket.
        TlsMessage::Handshake(TlsMessageHandshake::NewSessionTicket(t)) => {
            let (len, ticket) = t.ticket.split_at_checked(2)?;
            let declared = usize::from(u16::from_be_bytes([*len.first()?, *len.get(1)?]));
            (declared == ticket.len() && !ticket.is_empty()).then(|| ticket.to_vec())
        }
        _ => None,
    }
}

/// A TLS <= 1.2 Certificate message's list (RFC 5246 §7.4.2, §7.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateList {
    pub count: u32,
    /// Length of the certificate_list field.
    pub bytes: u32,
}

/// Count the certificates in a TLS <= 1.2 Certificate message. The DER is
/// not parsed: an empty list is "declined", any entry is a certificate
/// (hostile-inputs M25: garbage DER is still a certificate sent). For a
/// message over the handshake cap (`truncated`), entries are counted in the
/// prefix and a non-empty list counts at least one.
pub fn parse_certificate_list(m: &HandshakeMessage) -> Option<CertificateList> {
    let body = m.bytes.get(HANDSHAKE_HEADER_LEN..)?;
    let list_len = match body.get(..3)? {
        &[a, b, c] => u32::from_be_bytes([0, a, b, c]),
        _ => return None,
    };
    if !m.truncated && list_len as usize + 3 != m.declared as usize {
        return None;
    }
    let mut rest = body.get(3..).unwrap_or_default();
    rest = rest
        .get(..(list_len as usize).min(rest.len()))
        .unwrap_or_default();
    let mut count = 0u32;
    while !rest.is_empty() {
        let len = match rest.get(..3) {
            Some(&[a, b, c]) => u32::from_be_bytes([0, a, b, c]) as usize,
            _ if m.truncated => break,
            _ => return None,
        };
        match rest.get(3 + len..) {
            Some(r) => rest = r,
            None if m.truncated => {
                count += 1;
                break;
            }
            None => return None,
        }
        count += 1;
    }
    if m.truncated && list_len > 0 {
        count = count.max(1);
    }
    Some(CertificateList {
        count,
        bytes: list_len,
    })
}

/// The first certificate (the leaf, RFC 5246 §7.4.2) of a TLS <= 1.2
/// Certificate message, when it lies within the bytes held.
pub fn first_certificate<'a>(m: &HandshakeMessage<'a>) -> Option<&'a [u8]> {
    let list = m.bytes.get(HANDSHAKE_HEADER_LEN + 3..)?;
    let len = match list.get(..3)? {
        &[a, b, c] => u32::from_be_bytes([0, a, b, c]) as usize,
        _ => return None,
    };
    list.get(3..3 + len).filter(|der| !der.is_empty())
}

/// The ALPN protocol a TLS 1.3 server selected, from its EncryptedExtensions
/// (RFC 8446 §4.3.1; RFC 7301 §3.1: exactly one name). None when the message
/// does not parse; Some(None) when it parses and carries no ALPN.
pub fn parse_encrypted_extensions(m: &HandshakeMessage) -> Option<Option<String>> {
    let body = m.bytes.get(HANDSHAKE_HEADER_LEN..)?;
    let (len, exts) = body.split_at_checked(2)?;
    let declared = usize::from(u16::from_be_bytes([*len.first()?, *len.get(1)?]));
    let exts = exts.get(..declared)?;
    let (_, parsed) = parse_tls_extensions(exts).ok()?;
    Some(parsed.into_iter().find_map(|e| match e {
        TlsExtension::ALPN(protos) => protos.first().map(|p| lossy(p)),
        _ => None,
    }))
}

/// A TLS 1.3 Certificate message (RFC 8446 §4.4.2): context, then entries
/// of (cert_data, extensions). Returns the list (count, list length) and
/// the first certificate (the leaf) when it lies within the bytes held.
/// A message over the cap counts what its prefix shows, at least one.
pub fn parse_certificate13<'a>(
    m: &HandshakeMessage<'a>,
) -> Option<(CertificateList, Option<&'a [u8]>)> {
    let body = m.bytes.get(HANDSHAKE_HEADER_LEN..)?;
    let context_len = usize::from(*body.first()?);
    let rest = body.get(1 + context_len..)?;
    let list_len = match rest.get(..3)? {
        &[a, b, c] => u32::from_be_bytes([0, a, b, c]),
        _ => return None,
    };
    if !m.truncated && 1 + context_len + 3 + list_len as usize != m.declared as usize {
        return None;
    }
    let mut list = rest.get(3..).unwrap_or_default();
    list = list
        .get(..(list_len as usize).min(list.len()))
        .unwrap_or_default();
    let mut count = 0u32;
    let mut leaf = None;
    while !list.is_empty() {
        let cert_len = match list.get(..3) {
            Some(&[a, b, c]) => u32::from_be_bytes([0, a, b, c]) as usize,
            _ if m.truncated => break,
            _ => return None,
        };
        let Some(cert) = list.get(3..3 + cert_len) else {
            if m.truncated {
                count += 1;
                break;
            }
            return None;
        };
        if count == 0 && !cert.is_empty() {
            leaf = Some(cert);
        }
        let after = list.get(3 + cert_len..).unwrap_or_default();
        let ext_len = match after.get(..2) {
            Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])),
            _ if m.truncated => {
                count += 1;
                break;
            }
            _ => return None,
        };
        count += 1;
        match after.get(2 + ext_len..) {
            Some(r) => list = r,
            None if m.truncated => break,
            None => return None,
        }
    }
    if m.truncated && list_len > 0 {
        count = count.max(1);
    }
    Some((
        CertificateList {
            count,
            bytes: list_len,
        },
        leaf,
    ))
}

/// Hash length of a TLS 1.3 cipher suite (RFC 8446 §B.4), which fixes the
/// size of the Finished message. Unknown suites give None.
pub fn tls13_hash_len(cipher: u16) -> Option<u16> {
    match cipher {
        0x1301 | 0x1303 | 0x1304 | 0x1305 => Some(32),
        0x1302 => Some(48),
        _ => None,
    }
}

/// A TLS alert seen in clear (RFC 8446 §6, RFC 5246 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    pub level: u8,
    pub description: u8,
    /// Which side sent it.
    pub from_server: bool,
}

impl Alert {
    /// The RFC name of the description, e.g. `bad_certificate`.
    pub fn name(&self) -> String {
        let known = match self.description {
            0 => "close_notify",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            21 => "decryption_failed",
            22 => "record_overflow",
            30 => "decompression_failure",
            40 => "handshake_failure",
            41 => "no_certificate",
            42 => "bad_certificate",
            43 => "unsupported_certificate",
            44 => "certificate_revoked",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            47 => "illegal_parameter",
            48 => "unknown_ca",
            49 => "access_denied",
            50 => "decode_error",
            51 => "decrypt_error",
            60 => "export_restriction",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            86 => "inappropriate_fallback",
            90 => "user_canceled",
            100 => "no_renegotiation",
            109 => "missing_extension",
            110 => "unsupported_extension",
            111 => "certificate_unobtainable",
            112 => "unrecognized_name",
            113 => "bad_certificate_status_response",
            114 => "bad_certificate_hash_value",
            115 => "unknown_psk_identity",
            116 => "certificate_required",
            120 => "no_application_protocol",
            121 => "ech_required",
            _ => return format!("alert_{}", self.description),
        };
        known.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// OfferedPsks (RFC 8446 §4.2.11) and NewSessionTicket (§4.6.1):
    /// identities kept in order up to `PSK_IDENTITIES_KEPT`, a list that
    /// overruns its bytes keeps what was whole, a ticket that overruns is
    /// refused.
    #[test]
    fn psk_identities_and_tls13_tickets_are_read_within_their_bytes() {
        let identity = |n: usize, b: u8| {
            let mut v = (n as u16).to_be_bytes().to_vec();
            v.extend(vec![b; n]);
            v.extend_from_slice(&[0, 0, 0, 7]);
            v
        };
        let list: Vec<u8> = (1..=6).flat_map(|i| identity(10 * i, i as u8)).collect();
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend(&list);
        let ids = psk_identities(&d);
        assert_eq!(ids.len(), PSK_IDENTITIES_KEPT);
        assert_eq!((ids[0].len(), ids[3].len(), ids[3][0]), (10, 40, 4));
        let cut = &d[..d.len() - 200];
        assert!(psk_identities(cut).len() < PSK_IDENTITIES_KEPT);
        assert!(psk_identities(&[0]).is_empty() && psk_identities(&[0, 0]).is_empty());

        let nst = |ticket_len: u16, have: usize| {
            let mut b = vec![0, 0, 1, 0, 9, 9, 9, 9, 2, 0xaa, 0xbb];
            b.extend_from_slice(&ticket_len.to_be_bytes());
            b.extend(vec![0x77; have]);
            b.extend_from_slice(&[0, 0]);
            let mut m = vec![4, 0, 0, b.len() as u8];
            m.extend(b);
            m
        };
        assert_eq!(parse_new_session_ticket13(&nst(5, 5)), Some(vec![0x77; 5]));
        assert_eq!(parse_new_session_ticket13(&nst(50, 5)), None);
        assert_eq!(parse_new_session_ticket13(&nst(0, 0)), None);
        assert_eq!(parse_new_session_ticket13(&[4, 0, 0, 1, 0]), None);
    }

    /// Wrap a handshake body into a message with its 4-byte header.
    fn hs(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len() as u32;
        let mut v = vec![msg_type, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        v.extend_from_slice(body);
        v
    }

    fn ext(t: u16, data: &[u8]) -> Vec<u8> {
        let mut v = t.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    pub(crate) fn client_hello(sni: &str, alpn: &[&str], exts_extra: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        let mut exts = Vec::new();
        let mut sni_data = Vec::new();
        let name = sni.as_bytes();
        sni_data.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni_data.push(0);
        sni_data.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni_data.extend_from_slice(name);
        exts.extend(ext(0, &sni_data));
        let mut alpn_list = Vec::new();
        for p in alpn {
            alpn_list.push(p.len() as u8);
            alpn_list.extend_from_slice(p.as_bytes());
        }
        let mut alpn_data = (alpn_list.len() as u16).to_be_bytes().to_vec();
        alpn_data.extend(alpn_list);
        exts.extend(ext(16, &alpn_data));
        exts.extend(ext(43, &[4, 0x03, 0x04, 0x03, 0x03]));
        for e in exts_extra {
            exts.extend_from_slice(e);
        }
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend(exts);
        hs(handshake::CLIENT_HELLO, &body)
    }

    #[test]
    fn record_headers_are_classified() {
        assert_eq!(read_header(&[22, 3, 1]), HeaderRead::NeedMore);
        assert_eq!(
            read_header(&[22, 3, 1, 0, 5]),
            HeaderRead::Record(RecordHeader {
                content_type: 22,
                version: 0x0301,
                len: 5
            })
        );
        assert_eq!(read_header(b"GET / HTTP/1.1"), HeaderRead::NotTls);
        assert_eq!(read_header(&[23, 2, 0, 0, 5]), HeaderRead::NotTls);
        assert!(matches!(
            read_header(&[23, 3, 3, 0xff, 0xff]),
            HeaderRead::TooLarge(_)
        ));
        // 2^14 + 2048 is legal in TLS 1.2 (RFC 5246 §6.2.3).
        assert!(matches!(
            read_header(&[23, 3, 3, 0x48, 0x00]),
            HeaderRead::Record(_)
        ));
    }

    proptest::proptest! {
        /// The header read in place says what tls-parser says.
        #[test]
        fn record_header_reads_as_tls_parser_does(
            head in (18u8..26, 2u8..5, 0u8..6, 0u8..=255, 0u8..=255),
            keep in 0usize..7,
        ) {
            let (t, v0, v1, l0, l1) = head;
            let whole = [t, v0, v1, l0, l1, 0xee];
            let b = &whole[..keep];
            let ours = read_header(b);
            match tls_parser::parse_tls_record_header(b) {
                Ok((_, h)) => {
                    let (RecordHeader { content_type, version, len }, legal) = match ours {
                        HeaderRead::Record(h) => (h, true),
                        HeaderRead::TooLarge(h) => (h, false),
                        HeaderRead::NotTls => return Ok(()),
                        HeaderRead::NeedMore => panic!("{b:?}"),
                    };
                    proptest::prop_assert_eq!(
                        (content_type, version, len),
                        (h.record_type.0, h.version.0, h.len)
                    );
                    proptest::prop_assert_eq!(legal, usize::from(h.len) <= MAX_RECORD_LEN);
                }
                Err(_) => proptest::prop_assert_eq!(ours, HeaderRead::NeedMore),
            }
        }
    }

    #[test]
    fn client_hello_fields_are_read() {
        let pha = ext(49, &[]);
        let msg = client_hello("api.example", &["h2", "http/1.1"], &[pha]);
        let ch = parse_client_hello(&msg).unwrap();
        assert_eq!(ch.sni.as_deref(), Some("api.example"));
        assert_eq!(ch.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(ch.versions, vec![0x0304, 0x0303]);
        assert_eq!(ch.offered_version(), 0x0304);
        assert!(ch.post_handshake_auth);
        assert!(!ch.early_data);
        assert!(parse_client_hello(&msg[..20]).is_none());
    }

    #[test]
    fn a_malformed_extension_hides_none_after_it() {
        // signature_algorithms (13) whose list claims more than it holds,
        // a pre_shared_key (41) too short for its identities, then
        // post_handshake_auth.
        let bad = [ext(13, &[0, 0x10, 4, 3]), ext(41, &[0xff]), ext(49, &[])];
        // Parsed all at once, the list stops at the first bad one.
        let joined = bad.concat();
        let (_, all) = parse_tls_extensions(&joined).unwrap();
        assert!(all.is_empty(), "{all:?}");
        let ch = parse_client_hello(&client_hello("x.example", &["h2"], &bad)).unwrap();
        assert!(ch.post_handshake_auth);
        assert!(ch.psk && ch.psk_identities.is_empty(), "{ch:?}");
        assert_eq!(ch.sni.as_deref(), Some("x.example"));
        // Where the framing breaks (a length past the end), the walk ends:
        // what came before is kept.
        let cut = [ext(49, &[]), vec![0, 42, 0, 9, 1]];
        let ch = parse_client_hello(&client_hello("y.example", &[], &cut)).unwrap();
        assert!(ch.post_handshake_auth && !ch.early_data);
        // Types read only by their number.
        let typed = [ext(19, &[1, 2]), ext(0xfe0d, &[0; 8])];
        let ch = parse_client_hello(&client_hello("z.example", &[], &typed)).unwrap();
        assert!(ch.client_cert_type && ch.ech);
    }

    /// A framed message, owned so a test can gather them across pushes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Owned {
        msg_type: u8,
        bytes: Vec<u8>,
        declared: u32,
        truncated: bool,
        fragmented: bool,
    }

    impl Owned {
        fn of(m: &HandshakeMessage<'_>) -> Self {
            Owned {
                msg_type: m.msg_type,
                bytes: m.bytes.to_vec(),
                declared: m.declared,
                truncated: m.truncated,
                fragmented: m.fragmented,
            }
        }

        fn view(&self) -> HandshakeMessage<'_> {
            HandshakeMessage {
                msg_type: self.msg_type,
                bytes: &self.bytes,
                declared: self.declared,
                truncated: self.truncated,
                fragmented: self.fragmented,
            }
        }
    }

    /// What the reassembler says after one record: the messages it
    /// completed (checked against the count it gave first), then
    /// `pending` and `in_progress`.
    type Step = (Vec<Owned>, usize, Option<(u8, u32)>);

    fn push_one(r: &mut HandshakeReassembler, record: &[u8]) -> Step {
        let messages = r.push(record);
        let (count, in_progress) = (messages.len(), messages.in_progress());
        let got: Vec<Owned> = messages.map(|m| Owned::of(&m)).collect();
        assert_eq!(got.len(), count);
        assert_eq!(r.in_progress(), in_progress);
        (got, r.pending(), in_progress)
    }

    fn push_all(r: &mut HandshakeReassembler, records: &[&[u8]]) -> Vec<Owned> {
        records.iter().flat_map(|b| push_one(r, b).0).collect()
    }

    /// The oracle: frame the records' concatenation message by message,
    /// then say which record ends each one and what is left half-read
    /// after each record. A message is fragmented when its bytes touch
    /// more than one record; truncated past `cap` body bytes.
    fn model(records: &[&[u8]], cap: usize) -> Vec<Step> {
        let stream = records.concat();
        let mut ends = Vec::new(); // end offset of each record
        let mut at = 0;
        for r in records {
            at += r.len();
            ends.push(at);
        }
        let record_of = |offset: usize| ends.iter().position(|&e| offset < e).unwrap();
        let mut steps: Vec<Step> = records.iter().map(|_| (Vec::new(), 0, None)).collect();
        let mut start = 0;
        while start < stream.len() {
            let head = stream.get(start..start + 4);
            let declared = head.map(|h| u32::from_be_bytes([0, h[1], h[2], h[3]]));
            let total = declared.map_or(usize::MAX, |d| 4 + d as usize);
            // Half-read after each record that ends inside it.
            for (i, &e) in ends.iter().enumerate() {
                if e > start && e < start.saturating_add(total) {
                    let seen = e - start;
                    steps[i].1 = seen.min(cap + 4);
                    steps[i].2 = declared.filter(|_| seen >= 4).map(|d| (stream[start], d));
                }
            }
            if start.saturating_add(total) > stream.len() {
                break;
            }
            let last = record_of(start + total - 1);
            steps[last].0.push(Owned {
                msg_type: stream[start],
                bytes: stream[start..start + total.min(cap + 4)].to_vec(),
                declared: declared.unwrap(),
                truncated: total - 4 > cap,
                fragmented: record_of(start) != last,
            });
            start += total;
        }
        steps
    }

    #[test]
    fn reassembler_joins_messages_split_over_one_byte_records() {
        let msg = client_hello("a.b", &[], &[]);
        let mut r = HandshakeReassembler::new(65536);
        let records: Vec<&[u8]> = msg.iter().map(std::slice::from_ref).collect();
        let got = push_all(&mut r, &records);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bytes, msg);
        assert!(got[0].fragmented && !got[0].truncated);
        assert_eq!(r.pending(), 0);
        // A message in one record is lent from it, not copied.
        let kept = r.allocated();
        let m = r.push(&msg).next().unwrap();
        assert_eq!(m.bytes.as_ptr(), msg.as_ptr());
        assert!(!m.fragmented);
        assert_eq!(r.allocated(), kept);
    }

    #[test]
    fn reassembler_splits_coalesced_messages_and_passes_over_long_ones() {
        let a = hs(11, &[0, 0, 0]);
        let b = hs(16, &[1, 2, 3]);
        let mut r = HandshakeReassembler::new(65536);
        let got = push_all(&mut r, &[&[a, b].concat()]);
        assert_eq!(
            got.iter().map(|m| m.msg_type).collect::<Vec<_>>(),
            vec![11, 16]
        );
        // A message over the cap is passed over, keeping only its prefix.
        let mut r = HandshakeReassembler::new(8);
        let mut body = vec![0, 0, 30];
        body.extend_from_slice(&[0xaa; 30]);
        let big = hs(11, &body);
        let got = push_all(&mut r, &big.chunks(7).collect::<Vec<_>>());
        assert_eq!(got.len(), 1);
        assert!(got[0].truncated);
        assert_eq!(got[0].declared, 33);
        assert_eq!(got[0].bytes.len(), 12);
        assert_eq!(r.pending(), 0);
        let m = HandshakeMessage {
            msg_type: 11,
            bytes: &got[0].bytes,
            declared: 33,
            truncated: true,
            fragmented: true,
        };
        assert!(parse_certificate_list(&m).unwrap().count >= 1);
        // The same message whole in one record: the same prefix, lent.
        let whole = push_all(&mut r, &[&big]);
        assert_eq!(
            (whole[0].bytes.clone(), whole[0].truncated),
            (got[0].bytes.clone(), true)
        );
        // A lying 2^24 length holds no more than the cap.
        let mut r = HandshakeReassembler::new(1024);
        assert!(r.push(&[11, 0xff, 0xff, 0xff]).is_empty());
        assert!(r.push(&[0u8; 4000]).is_empty());
        assert!(r.pending() <= 1024 + 4);
    }

    #[test]
    fn reassembler_mixes_split_and_whole_messages_in_a_record() {
        let (a, b, c) = (hs(11, &[9; 10]), hs(14, &[]), hs(16, &[5; 6]));
        let stream = [a.clone(), b.clone(), c.clone()].concat();
        // Record 1 ends inside a; record 2 ends a, holds b whole and begins
        // c; record 3 ends c.
        let records: [&[u8]; 3] = [&stream[..7], &stream[7..20], &stream[20..]];
        let mut r = HandshakeReassembler::new(65536);
        let steps: Vec<Step> = records.iter().map(|b| push_one(&mut r, b)).collect();
        assert_eq!(steps, model(&records, 65536));
        assert_eq!(steps[1].0.len(), 2);
        assert_eq!(
            (steps[1].0[0].bytes.clone(), steps[1].0[0].fragmented),
            (a, true)
        );
        assert_eq!(
            (steps[1].0[1].bytes.clone(), steps[1].0[1].fragmented),
            (b, false)
        );
        assert_eq!((steps[1].1, steps[1].2), (2, None));
        assert_eq!(steps[2].0[0].bytes, c);
        // The buffer is kept for the next split message.
        let kept = r.allocated();
        assert!(kept > 0);
        push_all(&mut r, &[&stream[..7], &stream[7..]]);
        r.drop_done();
        assert_eq!((r.allocated(), r.pending()), (kept, 0));
        // A long one's buffer is given back once its message is read, and
        // a message begun after it is kept.
        let long = hs(11, &vec![3; 3 * KEEP_CAPACITY]);
        let next = [&long[KEEP_CAPACITY..], &c[..2]].concat();
        let got = push_all(&mut r, &[&long[..KEEP_CAPACITY], &next]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bytes, long);
        r.drop_done();
        assert!(r.allocated() <= KEEP_CAPACITY);
        assert_eq!(r.pending(), 2);
        let mut r = HandshakeReassembler::new(65536);
        push_all(&mut r, &[&long[..9], &long[9..]]);
        r.drop_done();
        assert_eq!((r.allocated(), r.pending()), (0, 0));
    }

    proptest::proptest! {
        /// Any split of any run of messages (empty records included, some
        /// messages over the cap, the last maybe unfinished) frames as the
        /// oracle says, record by record.
        #[test]
        fn reassembler_matches_the_oracle_over_random_splits(
            lens in proptest::collection::vec(0usize..90, 0..12),
            cuts in proptest::collection::vec(0usize..400, 0..30),
            cap in 0usize..64,
            tail in 0usize..6,
        ) {
            let mut stream: Vec<u8> = lens
                .iter()
                .enumerate()
                .flat_map(|(i, &n)| hs(i as u8, &vec![i as u8 ^ 0x5a; n]))
                .collect();
            stream.extend(hs(99, &[1; 40]).into_iter().take(tail));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.push(0);
            cuts.push(stream.len());
            cuts.sort_unstable();
            let records: Vec<&[u8]> = cuts.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let mut r = HandshakeReassembler::new(cap);
            let steps: Vec<Step> = records.iter().map(|b| push_one(&mut r, b)).collect();
            proptest::prop_assert_eq!(steps, model(&records, cap));
        }
    }

    /// The first message of `bytes`, pushed as one record, owned.
    fn msg(bytes: Vec<u8>) -> Owned {
        Owned::of(
            &HandshakeReassembler::new(65536)
                .push(&bytes)
                .next()
                .unwrap(),
        )
    }

    #[test]
    fn certificate_lists_are_counted() {
        let empty = msg(hs(11, &[0, 0, 0]));
        assert_eq!(
            parse_certificate_list(&empty.view()),
            Some(CertificateList { count: 0, bytes: 0 })
        );
        let two = msg(hs(
            11,
            &[0, 0, 10, 0, 0, 2, 0x30, 0x00, 0, 0, 2, 0xde, 0xad],
        ));
        assert_eq!(
            parse_certificate_list(&two.view()),
            Some(CertificateList {
                count: 2,
                bytes: 10
            })
        );
        let lying = msg(hs(11, &[0, 0, 4, 0, 0, 9, 0x30]));
        assert_eq!(parse_certificate_list(&lying.view()), None);
    }

    #[test]
    fn hello_retry_request_is_recognised() {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&HELLO_RETRY_REQUEST_RANDOM);
        body.push(0);
        body.extend_from_slice(&[0x13, 0x01, 0]);
        let exts = ext(43, &[0x03, 0x04]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let sh = parse_server_hello(&hs(2, &body)).unwrap();
        assert!(sh.hrr);
        assert_eq!(sh.version, VERSION_TLS13);
        assert_eq!(sh.cipher, 0x1301);
    }

    #[test]
    fn tls13_certificate_and_encrypted_extensions() {
        // context "", two entries: (3-byte cert, no extensions), (2-byte
        // cert, 4 bytes of extensions).
        let list = [
            &[0, 0, 3, 0x30, 1, 2, 0, 0][..],
            &[0, 0, 2, 0xaa, 0xbb, 0, 4, 0, 5, 0, 0][..],
        ]
        .concat();
        let mut body = vec![0, 0, 0, list.len() as u8];
        body.extend_from_slice(&list);
        let m = msg(hs(11, &body));
        let (l, leaf) = parse_certificate13(&m.view()).unwrap();
        assert_eq!((l.count, l.bytes), (2, list.len() as u32));
        assert_eq!(leaf, Some(&[0x30, 1, 2][..]));
        let empty = msg(hs(11, &[0, 0, 0, 0]));
        assert_eq!(parse_certificate13(&empty.view()).unwrap().0.count, 0);
        let lying = msg(hs(11, &[0, 0, 0, 9, 0, 0, 5, 1]));
        assert!(parse_certificate13(&lying.view()).is_none());
        // EncryptedExtensions with ALPN "h2".
        let alpn = ext(16, &[0, 3, 2, b'h', b'2']);
        let mut ee = (alpn.len() as u16).to_be_bytes().to_vec();
        ee.extend(alpn);
        assert_eq!(
            parse_encrypted_extensions(&msg(hs(8, &ee)).view()),
            Some(Some("h2".to_string()))
        );
        assert_eq!(
            parse_encrypted_extensions(&msg(hs(8, &[0, 0])).view()),
            Some(None)
        );
        assert_eq!(
            parse_encrypted_extensions(&msg(hs(8, &[0, 9])).view()),
            None
        );
    }

    #[test]
    fn sslv2_hello_is_recognised() {
        assert_eq!(
            sslv2_client_hello(&[0x80, 0x2e, 0x01, 0x00, 0x02, 0, 0x15]),
            Some(0x0002)
        );
        assert_eq!(sslv2_client_hello(b"GET / HTTP/1.1"), None);
    }
}
