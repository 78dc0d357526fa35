//! The resumption ticket size rule (issue 14 §2): a stateless session
//! ticket is the server's encrypted copy of the session, and most server
//! stacks put the client's certificate in it when there was one. A resumed
//! ClientHello sends it in clear: the TLS 1.3 PSK identity (RFC 8446
//! §4.2.11) or the TLS 1.2 SessionTicket extension (RFC 5077 §3.2). Its
//! length then says whether the session was mutually authenticated, when
//! the full handshake that issued it is not in the capture.
//!
//! What each server stack stores (sources read for this rule):
//! - OpenSSL (and Python, curl, nginx): `i2d_SSL_SESSION`: secrets, cipher,
//!   times, SNI host name, selected ALPN, the peer's (client's) leaf; not
//!   the server's own certificate. Measured 208 B without a client
//!   certificate, 704-736 B (P-256) and 1,120 B (RSA-2048) with one.
//! - BoringSSL (Envoy, Istio): `SSL_SESSION_to_bytes`: the peer's chain; no
//!   server chain on the server side. 944 B with a P-256 client chain.
//! - Go crypto/tls (1.21+ `SessionState`): the peer certificates and their
//!   verified chains (with the CA); nothing of the server's own.
//! - rustls `ServerSessionValue`: the client chain if any, SNI, ALPN,
//!   application data; rustls servers issue 32 B stateful ids by default.
//! - NSS, mbedTLS, GnuTLS: the peer's certificate (mbedTLS without
//!   `MBEDTLS_SSL_KEEP_PEER_CERTIFICATE` keeps only its 32 B digest).
//! - wolfSSL: a fixed-size internal ticket with no certificate at all.
//! - The JDK (`SSLSessionImpl.write`, `SessionTicketExtension`): also the
//!   server's OWN certificate chain (`localCerts`) and OCSP responses, so a
//!   no-certificate ticket is as large as the server's chain. JDK tickets
//!   start with a 4-byte key number (`00 00 00 0n`), which a 16-byte random
//!   key name or IV (all other stacks) matches once in 2^24: such an
//!   identity stays unknown whatever its size.
//!
//! So: at most `TICKET_STATEFUL_MAX` bytes is a stateful id (no evidence);
//! up to `TICKET_NO_CERT_MAX` holds no certificate (tls, except on wolfSSL
//! or digest-only mbedTLS servers, which the reason says); from
//! `TICKET_CERT_MIN` only a certificate explains the size (mtls); between,
//! unknown. The SNI host name (stored by OpenSSL, BoringSSL, rustls, JDK)
//! is subtracted first: it is in clear, and only a client-chosen 255-byte
//! name could otherwise push a no-certificate ticket up. This file must not
//! look at anything but the identity's length, head and the SNI.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::evidence::{Basis, Class, Decision};

/// Identities this short are a stateful server's session id (rustls and
/// JDK stateful caches, nginx without tickets: 32 B): no evidence.
pub const TICKET_STATEFUL_MAX: u16 = 64;

/// Largest ticket (after the SNI is subtracted) taken as holding no
/// certificate. No-certificate tickets measured: OpenSSL/Python 208 B
/// (TLS 1.3) and 250 B (TLS 1.2); a selected ALPN adds at most its length.
/// The smallest certificate alone is ~ 350 B of DER.
pub const TICKET_NO_CERT_MAX: u16 = 400;

/// Smallest ticket (after the SNI is subtracted) that only a client
/// certificate explains. With a certificate: OpenSSL/Python 736 B (P-256)
/// and 1,120 B (RSA-2048), BoringSSL 944 B; our fixtures' small P-256 leaf
/// gives 704 B (TLS 1.3 identity) and 656 B (TLS 1.2 ticket). A
/// no-certificate ticket of the stacks above reaches at most ~ 250 + 255
/// (a selected ALPN of the maximum length) = 505 B.
pub const TICKET_CERT_MIN: u16 = 600;

/// A resumption ticket as the ClientHello shows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket<'a> {
    /// "TLS 1.3 PSK identity" or "TLS 1.2 session ticket".
    pub what: &'a str,
    pub len: u16,
    pub head: [u8; 4],
    pub sni_len: u16,
}

impl Ticket<'_> {
    /// The class the ticket's length gives. The reason prints the length
    /// and the thresholds.
    pub fn decision(&self) -> Decision {
        let Ticket { what, len, .. } = *self;
        let net = len.saturating_sub(self.sni_len);
        let size = if self.sni_len > 0 {
            format!(
                "{what} {len} B ({net} B without the {} B SNI)",
                self.sni_len
            )
        } else {
            format!("{what} {len} B")
        };
        if len <= TICKET_STATEFUL_MAX {
            return unknown(format!(
                "resumed: {size} is a stateful session id (<= {TICKET_STATEFUL_MAX} B): no evidence"
            ));
        }
        if matches!(self.head, [0, 0, 0, _]) {
            return unknown(format!(
                "resumed: {size} starts like a JDK ticket (key number 00 00 00 ..), which holds \
                 the server's own chain: no evidence"
            ));
        }
        if net >= TICKET_CERT_MIN {
            (
                Class::Mtls,
                Basis::Inferred,
                format!(
                    "resumed: {size} holds a client certificate (>= {TICKET_CERT_MIN} B; \
                     no-certificate tickets are 208-505 B)"
                ),
            )
        } else if net <= TICKET_NO_CERT_MAX {
            (
                Class::Tls,
                Basis::Inferred,
                format!(
                    "resumed: {size} is too small for a client certificate (<= \
                     {TICKET_NO_CERT_MAX} B; wolfSSL and digest-only mbedTLS servers keep no \
                     certificate in tickets)"
                ),
            )
        } else {
            unknown(format!(
                "resumed: {size} is between {TICKET_NO_CERT_MAX} B and {TICKET_CERT_MIN} B"
            ))
        }
    }
}

fn unknown(why: String) -> Decision {
    (Class::Unknown, Basis::None, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(len: u16, head: [u8; 4], sni_len: u16) -> (Class, Basis) {
        let t = Ticket {
            what: "TLS 1.3 PSK identity",
            len,
            head,
            sni_len,
        };
        let (c, b, why) = t.decision();
        assert!(why.contains(&format!("{len} B")), "{why}");
        (c, b)
    }

    /// Measured lengths and the edges of every threshold, the SNI taken
    /// off, and the JDK's shape never mtls.
    #[test]
    fn ticket_length_decides_the_class() {
        let r = [0x9c, 0x41, 0x07, 0xee];
        let table = [
            (32, r, 0, Class::Unknown), // stateful id
            (64, r, 0, Class::Unknown), // TICKET_STATEFUL_MAX
            (65, r, 0, Class::Tls),
            (208, r, 9, Class::Tls), // OpenSSL, no certificate
            (400, r, 0, Class::Tls), // TICKET_NO_CERT_MAX
            (401, r, 0, Class::Unknown),
            (599, r, 0, Class::Unknown),
            (600, r, 0, Class::Mtls),                // TICKET_CERT_MIN
            (656, r, 9, Class::Mtls),                // OpenSSL TLS 1.2, small P-256 leaf
            (704, r, 9, Class::Mtls),                // OpenSSL TLS 1.3, small P-256 leaf
            (736, r, 9, Class::Mtls),                // OpenSSL, P-256 client
            (944, r, 9, Class::Mtls),                // BoringSSL
            (1120, r, 9, Class::Mtls),               // OpenSSL, RSA-2048 client
            (660, r, 255, Class::Unknown),           // a 255 B SNI is not a certificate
            (2400, [0, 0, 0, 1], 9, Class::Unknown), // JDK: the server's chain
            (300, [0, 0, 0, 1], 9, Class::Unknown),
        ];
        for (len, head, sni, want) in table {
            let (got, basis) = class(len, head, sni);
            assert_eq!(got, want, "{len} B, head {head:?}, SNI {sni} B");
            let b = if want == Class::Unknown {
                Basis::None
            } else {
                Basis::Inferred
            };
            assert_eq!(basis, b, "{len} B");
        }
    }
}
