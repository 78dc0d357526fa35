//! The verdict model: what mtlsniff concluded about one TCP flow, separate
//! from how it is shown. Text lines, JSON Lines and the summary are views of
//! a `Report`; nothing here formats for a terminal. One place decides what a
//! verdict says: `assemble` (from the classifier's evidence, decrypted
//! facts, mesh readings and inherited sessions); everything else here is
//! the model.
//!
//! Invariant: `Class::Mtls` is only ever paired with `Basis::Observed` (a
//! client Certificate message with a non-empty list was seen in clear),
//! `Basis::Decrypted` (the same message read from records opened with a key
//! log) or `Basis::Inferred` (TLS 1.3 encrypted client flight large enough
//! to hold a certificate, wire-facts §2). Every `Class::Unknown` carries a
//! reason.

pub mod assemble;

use crate::capture::segment::{Endpoint, Timestamp};
use crate::classify::mesh::{Fingerprint, Hint, Mesh};
/// The class and outcome words are the classifier's evidence types (they
/// live in the lower stage so `classify` never imports `verdict`).
pub use crate::classify::{Basis, Class, ClientCert, Outcome, Party};
use crate::tls::identity::{CertIdentity, Validity};
pub use crate::tls::record::Alert;

/// How a TLS <= 1.2 session is found again across flows (RFC 5246 §7.3,
/// RFC 5077): hashed (server endpoint, session id or ticket) keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionLink {
    /// Keys under which this full handshake's session can be resumed.
    pub offers: Vec<u64>,
    /// A resumed handshake: the keys of the session it resumes.
    pub resumes: Vec<u64>,
}

impl SessionLink {
    /// The key of a session id or ticket at one server. Deterministic (fixed
    /// SipHash keys), so output does not depend on the run.
    pub fn key(server: Endpoint, kind: u8, bytes: &[u8]) -> u64 {
        use std::hash::{Hash, Hasher};
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        (server, kind, bytes).hash(&mut h);
        h.finish()
    }
}

/// A certificate seen in clear (TLS <= 1.2), as far as it parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSeen {
    Parsed(CertIdentity),
    /// Present on the wire but not a parsable X.509 certificate; its
    /// identity shows as "?" and it is counted (`identity.parse_errors`).
    Unparsable,
}

impl CertSeen {
    /// The identity to show: SPIFFE URI, DNS name, CN... or "?".
    pub fn id(&self) -> String {
        match self {
            CertSeen::Parsed(c) => c.id(),
            CertSeen::Unparsable => "?".to_string(),
        }
    }

    /// Validity at the verdict's packet time; None when unparsable.
    pub fn validity_at(&self, ts: Timestamp) -> Option<Validity> {
        match self {
            CertSeen::Parsed(c) => Some(c.validity_at(ts.secs())),
            CertSeen::Unparsable => None,
        }
    }
}

/// The sizes of the client's encrypted TLS 1.3 handshake flight
/// (wire-facts §2), recorded in every TLS 1.3 verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flight {
    /// Record lengths (without the 5-byte header), in order, capped.
    pub records: Vec<u16>,
    /// Total bytes including 5-byte headers.
    pub bytes: u32,
}

/// The conclusion about one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Time of the packet that made the verdict final (or of the last
    /// packet, for verdicts given at close, expiry or end of input).
    pub ts: Timestamp,
    /// Time of the flow's first packet.
    pub first_seen: Timestamp,
    /// The side that sent the SYN (else the ClientHello, else a guess that
    /// `reason` admits).
    pub client: Endpoint,
    /// The original destination (what the client connected to).
    pub server: Endpoint,
    /// The iptables REDIRECT target the connection was sent to, when the
    /// capture showed it as two halves (flow/redirect.rs); None otherwise.
    pub redirected_to: Option<Endpoint>,
    pub class: Class,
    pub outcome: Outcome,
    pub basis: Basis,
    /// Basis `decrypted` on TLS 1.3: the class the size rule alone gives
    /// (kept for `--calibrate`).
    pub inferred: Option<Class>,
    /// Negotiated version as on the wire (0x0303 = TLS 1.2, 0x0304 = TLS
    /// 1.3, 0x0300 = SSL 3.0, 0x0002 = SSL 2.0), from the ServerHello
    /// (supported_versions for TLS 1.3, else its legacy version); None when
    /// no ServerHello was seen: nothing was negotiated.
    pub tls_version: Option<u16>,
    /// The client's highest offer, from the ClientHello (supported_versions
    /// without GREASE if present, else its legacy version); None when no
    /// ClientHello was seen.
    pub tls_offered: Option<u16>,
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    /// ALPN chosen by the server (visible in TLS <= 1.2 only).
    pub alpn_selected: Option<String>,
    /// The server sent a CertificateRequest: Some(true) seen, Some(false)
    /// seen not to, None not visible.
    pub cert_requested: Option<bool>,
    pub client_cert: ClientCert,
    /// TLS 1.3 only: the client's encrypted flight.
    pub flight: Option<Flight>,
    pub alert: Option<Alert>,
    /// Outcome `Rejected`: who refused the connection.
    pub rejected_by: Option<Party>,
    /// Session resumption detected (no certificates on the wire).
    pub resumed: bool,
    /// TLS <= 1.2: a renegotiation started after the handshake; a client
    /// certificate may have been sent in it, encrypted.
    pub renegotiated: bool,
    /// The first certificate of each side's chain, when sent in clear.
    pub client_certificate: Option<CertSeen>,
    pub server_certificate: Option<CertSeen>,
    /// A service-mesh fingerprint: who the client probably is. It never
    /// makes a verdict mtls by itself (wire-facts §5).
    pub mesh: Option<Fingerprint>,
    /// What the ClientHello says about identities when certificates are
    /// encrypted (Linkerd SNI, Istio outbound_ SNI): a hint, not an identity.
    pub identity_hint: Option<Hint>,
    /// The source identity in a PROXY v2 header (TLV 0xD0, ztunnel).
    pub proxy_identity: Option<String>,
    /// TLS <= 1.2 session keys, to link a resumption to its full handshake.
    pub session: SessionLink,
    /// Plaintext protocol that preceded TLS (`smtp`, `postgres`, `http-connect`...).
    pub starttls: Option<String>,
    /// For plaintext: the protocol and what it says, e.g. `http GET /x host=a`.
    pub app_proto: Option<String>,
    /// One sentence a person can read: why this class and outcome.
    pub reason: String,
    /// `-A`: the first bytes each way of a plaintext flow, printable ASCII
    /// with `.` for other bytes and line breaks kept.
    pub preview_to_server: Option<String>,
    pub preview_to_client: Option<String>,
    /// Bytes and packets seen each way so far.
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub packets: u64,
    /// An unanswered SYN (`-v` only; otherwise none is reported): not a
    /// decided flow, so `--expect` does not count it.
    pub unanswered: bool,
}

impl Verdict {
    /// A verdict with no conclusion yet: class unknown, no evidence.
    pub fn new(client: Endpoint, server: Endpoint, first_seen: Timestamp, ts: Timestamp) -> Self {
        Verdict {
            ts,
            first_seen,
            client,
            server,
            redirected_to: None,
            class: Class::Unknown,
            outcome: Outcome::Unknown,
            basis: Basis::None,
            inferred: None,
            tls_version: None,
            tls_offered: None,
            sni: None,
            alpn_offered: Vec::new(),
            alpn_selected: None,
            cert_requested: None,
            client_cert: ClientCert::Unknown,
            flight: None,
            alert: None,
            rejected_by: None,
            resumed: false,
            renegotiated: false,
            client_certificate: None,
            server_certificate: None,
            mesh: None,
            identity_hint: None,
            proxy_identity: None,
            session: SessionLink::default(),
            starttls: None,
            app_proto: None,
            reason: String::new(),
            preview_to_server: None,
            preview_to_client: None,
            bytes_to_server: 0,
            bytes_to_client: 0,
            packets: 0,
            unanswered: false,
        }
    }

    /// `"1.2"`-style negotiated version string, or None.
    pub fn tls_version_str(&self) -> Option<&'static str> {
        self.tls_version.map(version_name)
    }
    /// This flow spoke TLS (or SSL): a ClientHello or a ServerHello was
    /// seen. Not "a version was negotiated" (`tls_version`).
    pub fn spoke_tls(&self) -> bool {
        self.tls_version.is_some() || self.tls_offered.is_some()
    }
    pub fn is_ipv6(&self) -> bool {
        self.client.ip.is_ipv6()
    }
}

/// Human name of a wire version number.
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0002 => "ssl2",
        0x0300 => "ssl3",
        0x0301 => "1.0",
        0x0302 => "1.1",
        0x0303 => "1.2",
        0x0304 => "1.3",
        v if v >> 8 == 0x7f => "1.3-draft",
        v if v >> 8 == 0xfb => "1.3-draft",
        _ => "?",
    }
}

/// Where a report falls in deterministic output order: the index of the
/// packet (or tick) that produced it, then the index of the flow's first
/// packet. File-mode output is sorted by this, whatever the thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReportOrder {
    pub trigger: u64,
    pub flow: u64,
}

/// How a flow whose verdict is out came to an end (`--close`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ending {
    /// Both sides sent a FIN.
    Fin,
    /// Either side sent a RST.
    Rst,
    /// No packet for the idle timeout (one side may have sent a FIN).
    Idle,
    /// The capture ended (file done, or live capture stopped) with the flow open.
    EndOfInput,
    /// A full flow table forgot it to make room (`flows.evicted_*`).
    Evicted,
    /// A new SYN reused its 4-tuple before it closed.
    Reused,
}

impl Ending {
    pub const ALL: [Ending; 6] = [
        Ending::Fin,
        Ending::Rst,
        Ending::Idle,
        Ending::EndOfInput,
        Ending::Evicted,
        Ending::Reused,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Fin => "fin",
            Ending::Rst => "rst",
            Ending::Idle => "idle",
            Ending::EndOfInput => "end-of-input",
            Ending::Evicted => "evicted",
            Ending::Reused => "reused",
        }
    }
}

/// The few facts of a verdict a flow record keeps until its close, so a
/// close line needs no copy of the verdict (4 bytes in the flow record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decided {
    pub class: Class,
    pub outcome: Outcome,
    pub basis: Basis,
    pub mesh: Option<Mesh>,
}

/// The end of a flow whose verdict is out: what a ztunnel access log says
/// about a connection (bytes each way, packets, duration, how it ended),
/// with the verdict's class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowClose {
    /// Time of the packet that closed the flow, else of its last packet.
    pub ts: Timestamp,
    pub first_seen: Timestamp,
    pub client: Endpoint,
    pub server: Endpoint,
    /// The iptables REDIRECT target when the connection was redirected
    /// (`server` is then the original destination), as on its verdict.
    pub redirected_to: Option<Endpoint>,
    pub ending: Ending,
    pub decided: Decided,
    /// TCP payload bytes each way over the whole flow (retransmitted and
    /// duplicated copies included, as in the verdict's counts).
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub packets: u64,
}

impl FlowClose {
    /// Packet time from the first packet to the close, in microseconds.
    pub fn duration_micros(&self) -> u64 {
        u64::try_from(self.ts.0.saturating_sub(self.first_seen.0)).unwrap_or(0)
    }
    pub fn is_ipv6(&self) -> bool {
        self.client.ip.is_ipv6()
    }
}

/// What the engine tells the output stage about a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The flow's verdict: exactly one per reported flow. Boxed: a verdict
    /// is 816 bytes and a report moves several times between the engine
    /// and the printer (vectors, channel, reorder queues), which copied
    /// all of it each time: 10 copies, about 970 instructions a report in
    /// the output stage alone.
    Verdict(Box<Verdict>),
    /// The flow ended after its verdict (only when the engine is asked for
    /// closes, `Limits::closes`); at most one per flow, after its verdict.
    Close(FlowClose),
}

/// A verdict or a close on its way to the output stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub order: ReportOrder,
    pub event: Event,
}

impl Report {
    /// The verdict, when this report carries one.
    pub fn verdict(&self) -> Option<&Verdict> {
        match &self.event {
            Event::Verdict(v) => Some(v),
            Event::Close(_) => None,
        }
    }

    /// The verdict, when this report carries one (tests, in-process users).
    pub fn into_verdict(self) -> Option<Verdict> {
        match self.event {
            Event::Verdict(v) => Some(*v),
            Event::Close(_) => None,
        }
    }
}
