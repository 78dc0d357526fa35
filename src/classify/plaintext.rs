//! Recognition of the clear-text protocols that appear where TLS was
//! expected: HTTP/1.x requests and responses, the HTTP/2 prior-knowledge
//! preface, SSH banners, server banners of STARTTLS-capable protocols, the
//! PROXY protocol header (v1 text and v2 binary, haproxy's
//! proxy-protocol.txt), and the commands that announce an in-band TLS
//! upgrade (STARTTLS and its relatives). It holds the one PROXY v2
//! parser (`parse_proxy_v2`: addresses and TLVs, among them the source
//! identity ztunnel writes in TLV 0xD0), which both the opening check and
//! the mesh reading use.
//!
//! It owns byte patterns only; it must not decide verdicts. Everything
//! returned for display is printable ASCII and bounded in length, so a
//! hostile peer cannot put control bytes or megabytes into an output line.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::mesh::printable as printable_identity;

/// Longest text taken from the wire into an output field.
const MAX_FIELD: usize = 96;

const HTTP_METHODS: [&str; 9] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// PROXY protocol v2 signature (also what ztunnel writes, wire-facts §5).
pub const PROXY_V2_SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];

/// PostgreSQL SSLRequest and GSSENCRequest (protocol codes 80877103/4).
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const PG_GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];

/// Keep only printable ASCII, bounded: safe to print anywhere.
pub fn printable(b: &[u8]) -> String {
    b.iter()
        .take(MAX_FIELD)
        .map(|&c| {
            if (0x21..0x7f).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

/// tcpdump -A style: printable ASCII kept, line feeds kept, every other
/// byte (CR, tabs, controls, non-ASCII) shown as `.`. Bounded by the input,
/// which the caller caps.
pub fn printable_text(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c == b'\n' || (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

fn first_line(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .unwrap_or(b.len());
    b.get(..end).unwrap_or(b)
}

/// A recognised clear-text opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// An HTTP/1.x request line: method, target, and the Host header if in
    /// the same bytes.
    HttpRequest {
        method: String,
        target: String,
        host: Option<String>,
    },
    /// An HTTP/1.x status line.
    HttpResponse { status: String },
    /// The HTTP/2 prior-knowledge preface (h2c).
    H2Preface,
    /// `SSH-2.0-...` from either side.
    Ssh { banner: String },
    /// A PROXY protocol header of this many bytes; what follows it is the
    /// real stream.
    Proxy { version: u8, len: usize },
    /// PostgreSQL SSLRequest / GSSENCRequest: TLS may follow.
    PostgresSslRequest,
    /// A line-based server greeting (SMTP/FTP `220`, POP3 `+OK`, IMAP `* OK`).
    Banner { proto: &'static str, text: String },
    /// Not recognised.
    Other,
}

impl Opening {
    /// Short protocol name for output and for the STARTTLS field.
    pub fn proto(&self) -> &'static str {
        match self {
            Opening::HttpRequest { method, .. } if method == "CONNECT" => "http-connect",
            Opening::HttpRequest { .. } | Opening::HttpResponse { .. } => "http",
            Opening::H2Preface => "h2c",
            Opening::Ssh { .. } => "ssh",
            Opening::Proxy { .. } => "proxy",
            Opening::PostgresSslRequest => "postgres",
            Opening::Banner { proto, .. } => proto,
            Opening::Other => "unknown",
        }
    }

    /// Whether a TLS handshake may legitimately follow in the same stream
    /// (HTTP CONNECT tunnels, STARTTLS-style upgrades, unrecognised
    /// protocols). Plain HTTP requests, h2c and SSH do not upgrade in band.
    pub fn may_upgrade(&self) -> bool {
        match self {
            Opening::HttpRequest { method, .. } => method == "CONNECT",
            Opening::HttpResponse { .. } | Opening::H2Preface | Opening::Ssh { .. } => false,
            _ => true,
        }
    }

    /// A description for the `app` field, e.g. `http GET /x host=a`.
    pub fn describe(&self) -> String {
        match self {
            Opening::HttpRequest {
                method,
                target,
                host,
            } => match host {
                // Joined, not format!ed: every clear-text HTTP flow's.
                Some(h) => ["http ", method, " ", target, " host=", h].concat(),
                None => ["http ", method, " ", target].concat(),
            },
            Opening::HttpResponse { status } => ["http status=", status].concat(),
            Opening::H2Preface => "h2c (HTTP/2 prior knowledge)".to_string(),
            Opening::Ssh { banner } => format!("ssh {banner}"),
            Opening::Proxy { version, .. } => format!("proxy-protocol v{version}"),
            Opening::PostgresSslRequest => "postgres SSLRequest".to_string(),
            Opening::Banner { proto, text } => format!("{proto} {text}"),
            Opening::Other => "unknown".to_string(),
        }
    }
}

/// Whether more bytes could change what `recognise` says about `b`.
pub fn needs_more(b: &[u8]) -> bool {
    b.len() < 24
        && (H2_PREFACE.starts_with(b)
            || PROXY_V2_SIGNATURE.starts_with(b)
            || b"PROXY ".starts_with(b)
            || b"SSH-".starts_with(b)
            || b"HTTP/".starts_with(b)
            || HTTP_METHODS.iter().any(|m| m.as_bytes().starts_with(b)))
}

/// Recognise the opening bytes of a stream, from either side.
pub fn recognise(b: &[u8]) -> Opening {
    if b.starts_with(H2_PREFACE) {
        return Opening::H2Preface;
    }
    if let Some(len) = proxy_header_len(b) {
        let version = if b.starts_with(&PROXY_V2_SIGNATURE) {
            2
        } else {
            1
        };
        return Opening::Proxy { version, len };
    }
    if b.starts_with(&PG_SSL_REQUEST) || b.starts_with(&PG_GSSENC_REQUEST) {
        return Opening::PostgresSslRequest;
    }
    let line = first_line(b);
    if line.starts_with(b"SSH-") {
        return Opening::Ssh {
            banner: printable(line),
        };
    }
    if line.starts_with(b"HTTP/1.") {
        let status = line
            .split(|&c| c == b' ')
            .nth(1)
            .map(printable)
            .unwrap_or_default();
        return Opening::HttpResponse { status };
    }
    for m in HTTP_METHODS {
        if line.starts_with(m.as_bytes()) && line.get(m.len()) == Some(&b' ') {
            let mut parts = line.split(|&c| c == b' ');
            let target = parts.nth(1).map(printable).unwrap_or_default();
            let version_ok = parts.next().is_some_and(|v| v.starts_with(b"HTTP/"));
            if version_ok {
                return Opening::HttpRequest {
                    method: m.to_string(),
                    target,
                    host: http_host(b),
                };
            }
        }
    }
    if let Some(m) = mysql_greeting(b) {
        return m;
    }
    banner(line).unwrap_or(Opening::Other)
}

/// MySQL's server greeting (protocol 10): a 3-byte length, sequence 0,
/// 0x0a, then a NUL-terminated version string.
fn mysql_greeting(b: &[u8]) -> Option<Opening> {
    let (&seq, &proto) = (b.get(3)?, b.get(4)?);
    let version = b.get(5..)?.split(|&c| c == 0).next()?;
    let plausible = seq == 0
        && proto == 0x0a
        && !version.is_empty()
        && version.len() < 64
        && version.first().is_some_and(u8::is_ascii_digit);
    plausible.then(|| Opening::Banner {
        proto: "mysql",
        text: printable(version),
    })
}

fn http_host(b: &[u8]) -> Option<String> {
    b.split(|&c| c == b'\n').skip(1).find_map(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let (name, value) = l.split_at(l.iter().position(|&c| c == b':')?);
        name.eq_ignore_ascii_case(b"host")
            .then(|| printable(value.get(1..).unwrap_or_default().trim_ascii()))
    })
}

fn banner(line: &[u8]) -> Option<Opening> {
    let text = printable(line);
    let proto = if line.starts_with(b"220") && contains_ci(line, b"smtp") {
        "smtp"
    } else if line.starts_with(b"220") && contains_ci(line, b"ftp") {
        "ftp"
    } else if line.starts_with(b"220 ") || line.starts_with(b"220-") {
        "smtp-or-ftp"
    } else if line.starts_with(b"+OK") {
        "pop3"
    } else if line.starts_with(b"* OK") || line.starts_with(b"* PREAUTH") {
        "imap"
    } else if line.starts_with(b"<?xml") || line.starts_with(b"<stream:stream") {
        "xmpp"
    } else {
        return None;
    };
    Some(Opening::Banner { proto, text })
}

/// What common TLS servers answer when clear text reaches a TLS port, and
/// who says it. Envoy (BoringSSL) says nothing: it closes the connection
/// (envoyproxy/envoy#41622), which the plaintext rule already calls a
/// refusal ("server closed without answering").
const TLS_PORT_REFUSALS: [(&str, &[u8]); 3] = [
    // ngx_http_request.c: 497 turned into "400 The plain HTTP request was
    // sent to HTTPS port" (title and body).
    ("nginx", b"The plain HTTP request was sent to HTTPS port"),
    // mod_ssl ssl_engine_io.c: "Reason: You're speaking plain HTTP to an
    // SSL-enabled server port."
    (
        "apache",
        b"speaking plain HTTP to an SSL-enabled server port",
    ),
    // Go net/http server.go: "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an
    // HTTP request to an HTTPS server.\n"
    ("go", b"Client sent an HTTP request to an HTTPS server"),
];

/// `b` is an HTTP/1.x 400 status line or could still become one (a prefix
/// of `HTTP/1.1 400`).
pub fn http_400_prefix(b: &[u8]) -> bool {
    [b"HTTP/1.1 400 ", b"HTTP/1.0 400 "].iter().any(|line| {
        let n = b.len().min(line.len());
        b.get(..n) == line.get(..n)
    })
}

/// The server whose wording for "clear text sent to a TLS port" appears in
/// `data` (a server's answer), if any.
pub fn tls_port_refusal(data: &[u8]) -> Option<&'static str> {
    TLS_PORT_REFUSALS
        .iter()
        .find(|(_, text)| contains_ci(data, text))
        .map(|(server, _)| *server)
}

/// The LDAP StartTLS extended operation's OID (RFC 4511 §4.14).
const LDAP_STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// Whether `b` may hold anything `upgrade_command` looks for past the
/// PostgreSQL request: "TLS" or "SSL" in any case, which every upgrade
/// word holds (STLS, AUTH TLS, AUTH SSL, STARTTLS), or the "1.3" the LDAP
/// OID starts with. It runs on every chunk of a clear-text client's stream
/// until an upgrade is found, so one branch-light pass (each byte's case
/// bit set, which lowercases letters and leaves digits and dots; a false
/// positive only costs the full scan) rules most chunks out before the
/// line-by-line scan. Measured on the benchmark's mixed file, a
/// multi-pattern searcher was slower here: its prefilter's rare bytes
/// (t, s, l) are common in clear text.
fn may_ask_upgrade(b: &[u8]) -> bool {
    b.windows(3).any(|w| match *w {
        [a, b, c] => matches!(
            (a | 0x20, b | 0x20, c | 0x20),
            (b't', b'l', b's') | (b's', b's', b'l') | (b'1', b'.', b'3')
        ),
        _ => false,
    })
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    // The first byte is compared alone before the whole window: this runs
    // over every clear-text chunk of a flow, and most windows fail there.
    let Some(first) = needle.first() else {
        return true;
    };
    hay.windows(needle.len()).any(|w| {
        w.first().is_some_and(|b| b.eq_ignore_ascii_case(first)) && w.eq_ignore_ascii_case(needle)
    })
}

/// Length of a complete PROXY protocol header at the start of `b`, or None.
/// v1: a `PROXY ` line of at most 107 bytes ending in CRLF; v2: the 16-byte
/// fixed part plus its length field.
pub fn proxy_header_len(b: &[u8]) -> Option<usize> {
    if b.starts_with(&PROXY_V2_SIGNATURE) {
        let total = proxy_v2_len(b)?;
        return (b.len() >= total).then_some(total);
    }
    if b.starts_with(b"PROXY ") {
        let end = b.iter().take(107).position(|&c| c == b'\n')?;
        return Some(end + 1);
    }
    None
}

/// A command in the client's stream that asks for an in-band TLS upgrade,
/// on any line of `b`: returns the protocol it belongs to.
pub fn upgrade_command(b: &[u8]) -> Option<&'static str> {
    if !may_ask_upgrade(b) {
        return b.starts_with(&PG_SSL_REQUEST).then_some("postgres");
    }
    scan_upgrade(b)
}

/// `upgrade_command` without the prefilter: the scan itself.
fn scan_upgrade(b: &[u8]) -> Option<&'static str> {
    if contains_ci(b, LDAP_STARTTLS_OID) {
        return Some("ldap"); // LDAP StartTLS extended operation (RFC 4511 §4.14)
    }
    if b.starts_with(&PG_SSL_REQUEST) {
        return Some("postgres");
    }
    b.split(|&c| c == b'\n').find_map(|line| {
        let line = line.trim_ascii();
        // IMAP and XMPP put a tag or markup before the word.
        // On the stack: this runs on every line of the client's first bytes.
        let mut buf = [0u8; 64];
        let n = line.len().min(buf.len());
        for (u, c) in buf.iter_mut().zip(line) {
            *u = c.to_ascii_uppercase();
        }
        let upper = buf.get(..n).unwrap_or_default();
        let has = |w: &[u8]| upper.windows(w.len()).any(|x| x == w);
        if upper.starts_with(b"STLS") {
            Some("pop3")
        } else if upper.starts_with(b"AUTH TLS") || upper.starts_with(b"AUTH SSL") {
            Some("ftp")
        } else if has(b"STARTTLS") {
            Some("starttls")
        } else {
            None
        }
    })
}

/// The name of the protocol that upgraded to TLS: the opening's, when it
/// named one, else the upgrade command's (`STARTTLS` after an ambiguous
/// `220` banner is SMTP).
pub fn upgrade_protocol(opening: &Opening, command: Option<&'static str>) -> &'static str {
    match (opening.proto(), command) {
        ("smtp-or-ftp", Some("starttls")) => "smtp",
        ("smtp-or-ftp", Some("ftp")) => "ftp",
        ("unknown" | "smtp-or-ftp", Some(c)) => c,
        (p, _) => p,
    }
}

/// A PROXY protocol v2 header, as ztunnel writes it after an HBONE tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyV2 {
    /// Bytes the header occupies (16 + its length field): the application
    /// stream starts after them.
    pub header_len: usize,
    /// TCP source and destination, for the PROXY command over TCP/IPv4 or
    /// TCP/IPv6 only (LOCAL, UDP, UNIX and UNSPEC leave them out).
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
    /// TLV 0xD0: ztunnel's source SPIFFE identity, printable and bounded.
    pub peer_identity: Option<String>,
}

/// Signature, version/command, family, 2-byte length.
const PROXY_V2_FIXED: usize = 16;
/// The TLV ztunnel uses for the source workload's SPIFFE identity.
const TLV_PEER_IDENTITY: u8 = 0xD0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyCommand {
    Local,
    Proxy,
}

/// Parse a PROXY protocol v2 header at the start of `b`. `None` when it is
/// not one, is truncated, or its length cannot hold the addresses its family
/// declares. TLVs that overrun the header make the identity untrusted (None)
/// while the header itself, whose length is known, still parses.
pub fn parse_proxy_v2(b: &[u8]) -> Option<ProxyV2> {
    let header_len = proxy_v2_len(b)?;
    let ver_cmd = *b.get(12)?;
    let family = *b.get(13)?;

    // High nibble: version, must be 2. Low nibble: 0 LOCAL, 1 PROXY.
    if ver_cmd >> 4 != 2 {
        return None;
    }
    let command = match ver_cmd & 0x0F {
        0 => ProxyCommand::Local,
        1 => ProxyCommand::Proxy,
        _ => return None,
    };
    // High nibble: address family (UNSPEC, INET, INET6, UNIX) fixes the
    // address block size; low nibble: UNSPEC, STREAM, DGRAM.
    let addr_len = match family >> 4 {
        0x0 => 0,
        0x1 => 12,
        0x2 => 36,
        0x3 => 216,
        _ => return None,
    };
    if family & 0x0F > 2 {
        return None;
    }

    // Borrow only what the buffer holds: a lying length fails here.
    let block = b.get(PROXY_V2_FIXED..header_len)?;
    let mut out = ProxyV2 {
        header_len,
        source: None,
        destination: None,
        peer_identity: None,
    };

    let Some((addrs, tlvs)) = block.split_at_checked(addr_len) else {
        // LOCAL must be accepted whatever its address block (§2.2: the
        // receiver discards it); PROXY without room for its addresses lies.
        return match command {
            ProxyCommand::Local => Some(out),
            ProxyCommand::Proxy => None,
        };
    };
    if command == ProxyCommand::Proxy {
        let (src, dst) = match family {
            0x11 => inet4(addrs)?,
            0x21 => inet6(addrs)?,
            _ => (None, None),
        };
        out.source = src;
        out.destination = dst;
    }
    out.peer_identity = tlv_value(tlvs, TLV_PEER_IDENTITY).map(printable_identity);
    Some(out)
}

type AddrPair = (Option<SocketAddr>, Option<SocketAddr>);

/// TCP/IPv4: src addr (4), dst addr (4), src port (2), dst port (2).
fn inet4(a: &[u8]) -> Option<AddrPair> {
    let src: [u8; 4] = a.get(0..4)?.try_into().ok()?;
    let dst: [u8; 4] = a.get(4..8)?.try_into().ok()?;
    let sport = u16::from_be_bytes(a.get(8..10)?.try_into().ok()?);
    let dport = u16::from_be_bytes(a.get(10..12)?.try_into().ok()?);
    Some((
        Some(SocketAddr::from((Ipv4Addr::from(src), sport))),
        Some(SocketAddr::from((Ipv4Addr::from(dst), dport))),
    ))
}

/// TCP/IPv6: src addr (16), dst addr (16), src port (2), dst port (2).
fn inet6(a: &[u8]) -> Option<AddrPair> {
    let src: [u8; 16] = a.get(0..16)?.try_into().ok()?;
    let dst: [u8; 16] = a.get(16..32)?.try_into().ok()?;
    let sport = u16::from_be_bytes(a.get(32..34)?.try_into().ok()?);
    let dport = u16::from_be_bytes(a.get(34..36)?.try_into().ok()?);
    Some((
        Some(SocketAddr::from((Ipv6Addr::from(src), sport))),
        Some(SocketAddr::from((Ipv6Addr::from(dst), dport))),
    ))
}

/// The first TLV of type `wanted` in `tlvs` (type 1 byte, length 2 bytes
/// big-endian, value). `None` if absent or if any TLV is malformed (a header
/// cut short or a value overrunning the block): a corrupt TLV area is not
/// trusted for any value in it.
fn tlv_value(mut tlvs: &[u8], wanted: u8) -> Option<&[u8]> {
    let mut found = None;
    while !tlvs.is_empty() {
        let (&kind, rest) = tlvs.split_first()?;
        let (len, rest) = rest.split_at_checked(2)?;
        let len = usize::from(u16::from_be_bytes(len.try_into().ok()?));
        let (value, rest) = rest.split_at_checked(len)?;
        if kind == wanted && found.is_none() {
            found = Some(value);
        }
        tlvs = rest;
    }
    found
}

/// proxy-protocol.txt §2.2: the length of a v2 header (16 fixed bytes plus
/// its length field) at the start of `b`, when it has the signature. The
/// header's bytes need not all be there yet.
fn proxy_v2_len(b: &[u8]) -> Option<usize> {
    if !b.starts_with(&PROXY_V2_SIGNATURE) {
        return None;
    }
    let len = u16::from_be_bytes([*b.get(14)?, *b.get(15)?]);
    Some(PROXY_V2_FIXED + usize::from(len))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::classify::mesh::MAX_TEXT;

    #[test]
    fn openings_are_recognised() {
        let req = recognise(b"GET /productpage HTTP/1.1\r\nHost: bookinfo\r\n\r\n");
        assert_eq!(req.describe(), "http GET /productpage host=bookinfo");
        assert!(!req.may_upgrade());
        let connect = recognise(b"CONNECT a:443 HTTP/1.1\r\n\r\n");
        assert_eq!(connect.proto(), "http-connect");
        assert!(connect.may_upgrade());
        assert_eq!(
            recognise(b"HTTP/1.1 200 OK\r\n"),
            Opening::HttpResponse {
                status: "200".into()
            }
        );
        assert_eq!(recognise(H2_PREFACE), Opening::H2Preface);
        assert_eq!(recognise(b"SSH-2.0-OpenSSH_9.6\r\n").proto(), "ssh");
        assert_eq!(
            recognise(b"220 mail.example ESMTP Postfix\r\n").proto(),
            "smtp"
        );
        assert_eq!(recognise(b"* OK IMAP4rev1 ready\r\n").proto(), "imap");
        assert_eq!(recognise(&PG_SSL_REQUEST).proto(), "postgres");
        assert_eq!(recognise(b"\x00\x01binary").proto(), "unknown");
    }

    #[test]
    fn proxy_headers_are_measured() {
        let v1 = b"PROXY TCP4 10.0.0.1 10.0.0.2 1234 443\r\n\x16\x03\x01";
        assert_eq!(proxy_header_len(v1), Some(39));
        let mut v2 = PROXY_V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
        v2.extend_from_slice(&[0; 12]);
        assert_eq!(proxy_header_len(&v2), Some(28));
        assert_eq!(proxy_header_len(&v2[..20]), None);
    }

    #[test]
    fn hostile_bytes_are_made_printable_and_bounded() {
        let evil = [b"GET /\x1b[31m".as_slice(), &[b'A'; 500], b" HTTP/1.1\r\n"].concat();
        let d = recognise(&evil).describe();
        assert!(d.bytes().all(|c| (0x20..0x7f).contains(&c)));
        assert!(d.len() < 200);
    }

    #[test]
    fn upgrade_commands_are_found() {
        assert_eq!(upgrade_command(b"a001 STARTTLS\r\n"), Some("starttls"));
        assert_eq!(upgrade_command(b"STLS\r\n"), Some("pop3"));
        assert_eq!(upgrade_command(b"AUTH TLS\r\n"), Some("ftp"));
        assert_eq!(upgrade_command(b"EHLO x\r\n"), None);
        // On a later line, as when a chunk starts with leftover bytes.
        assert_eq!(upgrade_command(b"O a\r\nSTARTTLS\r\n"), Some("starttls"));
        let banner = recognise(b"220 host ready\r\n");
        assert_eq!(upgrade_protocol(&banner, Some("starttls")), "smtp");
        assert_eq!(
            upgrade_protocol(&recognise(b"* OK ready\r\n"), Some("starttls")),
            "imap"
        );
        assert_eq!(upgrade_protocol(&Opening::Other, Some("ldap")), "ldap");
        let greeting = [&[0x4a, 0, 0, 0, 0x0a][..], b"8.0.36\0rest"].concat();
        assert_eq!(recognise(&greeting).proto(), "mysql");
    }

    const SIG: [u8; 12] = PROXY_V2_SIGNATURE;
    const SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/sleep";

    /// A v2 header: version/command, family, address block, TLVs.
    fn header(ver_cmd: u8, family: u8, addrs: &[u8], tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut body = addrs.to_vec();
        for (kind, value) in tlvs {
            body.push(*kind);
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
        }
        let mut b = SIG.to_vec();
        b.push(ver_cmd);
        b.push(family);
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(&body);
        b
    }

    fn v4_addrs() -> Vec<u8> {
        let mut a = vec![10, 244, 0, 5, 10, 244, 1, 7];
        a.extend_from_slice(&40000u16.to_be_bytes());
        a.extend_from_slice(&9080u16.to_be_bytes());
        a
    }

    #[test]
    fn proxy_v2_ipv4_with_identity() {
        let mut b = header(
            0x21,
            0x11,
            &v4_addrs(),
            &[(0x04, b"\0\0\0\0"), (0xD0, SPIFFE.as_bytes())],
        );
        let header_len = b.len();
        b.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let p = parse_proxy_v2(&b).unwrap();
        assert_eq!(p.header_len, header_len);
        assert_eq!(p.source, Some("10.244.0.5:40000".parse().unwrap()));
        assert_eq!(p.destination, Some("10.244.1.7:9080".parse().unwrap()));
        assert_eq!(p.peer_identity.as_deref(), Some(SPIFFE));
    }

    #[test]
    fn proxy_v2_ipv6_with_identity() {
        let src: std::net::Ipv6Addr = "fd00::5".parse().unwrap();
        let dst: std::net::Ipv6Addr = "fd00:1::7".parse().unwrap();
        let mut a = src.octets().to_vec();
        a.extend_from_slice(&dst.octets());
        a.extend_from_slice(&15008u16.to_be_bytes());
        a.extend_from_slice(&8080u16.to_be_bytes());
        let b = header(0x21, 0x21, &a, &[(0xD0, SPIFFE.as_bytes())]);
        let p = parse_proxy_v2(&b).unwrap();
        assert_eq!(p.header_len, 16 + 36 + 3 + SPIFFE.len());
        assert_eq!(p.source, Some("[fd00::5]:15008".parse().unwrap()));
        assert_eq!(p.destination, Some("[fd00:1::7]:8080".parse().unwrap()));
        assert_eq!(p.peer_identity.as_deref(), Some(SPIFFE));
    }

    #[test]
    fn proxy_v2_without_identity_and_local() {
        let p = parse_proxy_v2(&header(0x21, 0x11, &v4_addrs(), &[])).unwrap();
        assert_eq!(p.header_len, 28);
        assert_eq!(p.peer_identity, None);

        // LOCAL: addresses ignored, even with an INET family; TLVs still read.
        let p = parse_proxy_v2(&header(0x20, 0x11, &v4_addrs(), &[(0xD0, b"x")])).unwrap();
        assert_eq!((p.source, p.destination), (None, None));
        assert_eq!(p.peer_identity.as_deref(), Some("x"));
        let p = parse_proxy_v2(&header(0x20, 0x00, &[], &[])).unwrap();
        assert_eq!(p.header_len, 16);
        // LOCAL with a family whose addresses do not fit: accepted, nothing read.
        let p = parse_proxy_v2(&header(0x20, 0x21, &[0; 4], &[])).unwrap();
        assert_eq!(p.header_len, 20);
    }

    #[test]
    fn proxy_v2_identity_is_sanitised_and_bounded() {
        let mut value = b"spiffe://td/ns/a\0\xff\n".to_vec();
        value.extend(std::iter::repeat_n(b'z', 1000));
        let b = header(0x21, 0x11, &v4_addrs(), &[(0xD0, &value)]);
        let id = parse_proxy_v2(&b).unwrap().peer_identity.unwrap();
        assert_eq!(id.len(), MAX_TEXT);
        assert!(id.starts_with("spiffe://td/ns/a...zz"));
    }

    #[test]
    fn proxy_v2_rejects() {
        let good = header(0x21, 0x11, &v4_addrs(), &[(0xD0, SPIFFE.as_bytes())]);
        // Truncated at every length short of the whole header.
        for n in 0..good.len() {
            assert_eq!(parse_proxy_v2(&good[..n]), None, "cut at {n}");
        }
        let mut bad_sig = good.clone();
        bad_sig[11] = 0x0B;
        let mut v1 = good.clone();
        v1[12] = 0x11;
        let mut bad_cmd = good.clone();
        bad_cmd[12] = 0x22;
        let mut bad_family = good.clone();
        bad_family[13] = 0x41;
        let mut bad_proto = good.clone();
        bad_proto[13] = 0x13;
        // Lying length: claims 64 KiB, buffer holds far less.
        let mut lying = good.clone();
        lying[14] = 0xFF;
        lying[15] = 0xFF;
        // PROXY over IPv6 whose block cannot hold 36 address bytes.
        let short_v6 = header(0x21, 0x21, &[0; 12], &[]);
        for (name, b) in [
            ("signature", bad_sig),
            ("version", v1),
            ("command", bad_cmd),
            ("family", bad_family),
            ("protocol", bad_proto),
            ("lying length", lying),
            ("short v6", short_v6),
            ("v1 text", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec()),
        ] {
            assert_eq!(parse_proxy_v2(&b), None, "{name}");
        }
    }

    #[test]
    fn proxy_v2_lying_tlv_length() {
        // A TLV claiming more bytes than the header holds: the header still
        // parses (its length is sound) but no identity is trusted from it.
        let mut b = header(0x21, 0x11, &v4_addrs(), &[(0xD0, SPIFFE.as_bytes())]);
        b[16 + 12 + 1] = 0xFF;
        b.extend_from_slice(&[b'A'; 300]); // bytes after the header: app data
        let p = parse_proxy_v2(&b).unwrap();
        assert_eq!(p.header_len, 16 + 12 + 3 + SPIFFE.len());
        assert_eq!(p.peer_identity, None);
        assert!(p.source.is_some());

        // A TLV header cut short (one stray byte after a good TLV).
        let mut b = header(0x21, 0x11, &v4_addrs(), &[(0xD0, b"id"), (0x01, b"")]);
        b.truncate(b.len() - 2);
        b[15] -= 2;
        let p = parse_proxy_v2(&b).unwrap();
        assert_eq!(p.peer_identity, None);
    }

    proptest::proptest! {
        #![proptest_config(crate::classify::testing::deterministic())]

        /// The prefilter never hides an upgrade the scan finds: chunks
        /// built of the words it looks for, their parts, other case,
        /// line breaks and noise.
        #[test]
        fn the_prefilter_agrees_with_the_scan(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"STARTTLS"[..], b"starttls", b"StartTls", b"STLS", b"stls", b"AUTH TLS",
                    b"auth ssl", b"AUTH SSL", b"a1 ", b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
                    b"1.3.6.1.4.1.1466.20037", b"1.3.6.1", b"\r\n", b"\n", b" ", b"TL", b"S", b"SS",
                    b"EHLO x", b"GET / HTTP/1.1", &PG_SSL_REQUEST, b"\x00\x01",
                ]),
                0..12,
            ),
        ) {
            let chunk = parts.concat();
            proptest::prop_assert_eq!(upgrade_command(&chunk), scan_upgrade(&chunk));
        }

        #[test]
        fn proxy_v2_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Some(p) = parse_proxy_v2(&bytes) {
                proptest::prop_assert!(p.header_len <= bytes.len());
                proptest::prop_assert!(p.peer_identity.is_none_or(|s| s.len() <= MAX_TEXT));
            }
        }

        #[test]
        fn proxy_v2_with_signature_never_panics(
            head in proptest::collection::vec(proptest::prelude::any::<u8>(), 4),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            // Arbitrary bytes rarely start with the signature; force it so the
            // parser past the signature is exercised too.
            let mut b = SIG.to_vec();
            b.extend_from_slice(&head);
            b.extend_from_slice(&tail);
            if let Some(p) = parse_proxy_v2(&b) {
                proptest::prop_assert!(p.header_len <= b.len());
                proptest::prop_assert!(p.header_len >= 16);
            }
        }
    }
}
