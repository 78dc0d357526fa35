//! Recognition of the clear-text protocols that appear where TLS was
//! expected: HTTP/1.x requests and responses, the HTTP/2 prior-knowledge
//! preface, SSH banners, server banners of STARTTLS-capable protocols, the
//! PROXY protocol header (v1 text and v2 binary, haproxy's
//! proxy-protocol.txt), and the commands that announce an in-band TLS
//! upgrade (STARTTLS and its relatives).
//!
//! It owns byte patterns only; it must not decide verdicts. Everything
//! returned for display is printable ASCII and bounded in length, so a
//! hostile peer cannot put control bytes or megabytes into an output line.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

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
                Some(h) => format!("http {method} {target} host={h}"),
                None => format!("http {method} {target}"),
            },
            Opening::HttpResponse { status } => format!("http status={status}"),
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

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Length of a complete PROXY protocol header at the start of `b`, or None.
/// v1: a `PROXY ` line of at most 107 bytes ending in CRLF; v2: the 16-byte
/// fixed part plus its length field.
pub fn proxy_header_len(b: &[u8]) -> Option<usize> {
    if b.starts_with(&PROXY_V2_SIGNATURE) {
        let len = u16::from_be_bytes([*b.get(14)?, *b.get(15)?]);
        let total = 16 + usize::from(len);
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
    if contains_ci(b, b"1.3.6.1.4.1.1466.20037") {
        return Some("ldap"); // LDAP StartTLS extended operation (RFC 4511 §4.14)
    }
    if b.starts_with(&PG_SSL_REQUEST) {
        return Some("postgres");
    }
    b.split(|&c| c == b'\n').find_map(|line| {
        let line = line.trim_ascii();
        // IMAP and XMPP put a tag or markup before the word.
        let upper: Vec<u8> = line.iter().take(64).map(u8::to_ascii_uppercase).collect();
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

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

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
}
