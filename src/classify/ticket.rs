//! What a resumption's ticket size says (issue 14 §2): a stateless session
//! ticket is the server's encrypted copy of the session, sent back in clear
//! by the resuming client (TLS 1.3 PSK identity, RFC 8446 §4.2.11; TLS 1.2
//! SessionTicket extension, RFC 5077 §3.2). Some stacks put the client's
//! certificate in it, so its length looks like evidence; measured with
//! `fixtures/tools/measure-tickets.sh`, it is not:
//!
//! | server stack | TLS | no client cert | P-256 client cert | RSA-2048 client cert |
//! |---|---|---|---|---|
//! | OpenSSL 3.0 s_server | 1.3 / 1.2 | 208 / 176 B | 704 / 656 B | 896 / 864 B |
//! | Python ssl (OpenSSL) | 1.3 / 1.2 | 208 / 176 B | 704 / 672 B | 912 / 864 B |
//! | GnuTLS 3.7 | 1.3 / 1.2 | 230 / 406 B | 1,190 / 1,334 B | 1,398 / 1,542 B |
//! | JDK 17 (JSSE) | 1.3 / 1.2 | 787 / 805 B | 1,723 / 1,741 B | 1,928 / 1,946 B |
//!
//! - A large ticket never proves `mtls`: the JDK's carries the server's own
//!   chain, so a JDK session without a client certificate (787 B) has a
//!   bigger ticket than an OpenSSL one with it (704 B).
//! - A small ticket never proves `tls`: wolfSSL's ticket (`InternalTicket`:
//!   version, suite, master secret, timestamp; 256 B at most) and mbedTLS's
//!   without `MBEDTLS_SSL_KEEP_PEER_CERTIFICATE` hold no certificate at all,
//!   so their mutually authenticated sessions resume with tickets the size
//!   of OpenSSL's unauthenticated ones.
//!
//! So this file only names the size band in the reason (the verdict stays
//! `unknown`, basis none), and `TicketSize::of` is the one place the two
//! thresholds are compared. The class of a resumption comes from its
//! issuing handshake instead: seen in the capture (`report/resumption.rs`,
//! basis inherited) or opened with a key log. It must not decide a class.

use super::evidence::{Basis, Class, Decision};

/// Largest identity taken for a stateful session id or cache key (rustls'
/// and Go's stateful ids are 32 B; OpenSSL's session ids at most 32 B): it
/// indexes the server's cache and holds nothing.
pub const STATEFUL_ID_MAX: usize = 64;

/// Largest ticket of the size measured for sessions without a client
/// certificate (OpenSSL, Python, GnuTLS TLS 1.3: 176-230 B); the smallest
/// measured with a client certificate is 656 B (OpenSSL TLS 1.2, P-256).
pub const NO_CERT_TICKET_MAX: usize = 300;

/// The band a ticket's length falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketSize {
    /// `<= STATEFUL_ID_MAX`: a reference to server state.
    StatefulId,
    /// `<= NO_CERT_TICKET_MAX`: the size of tickets without a certificate.
    NoCertSized,
    /// Larger: may hold a client certificate or the server's own chain.
    Large,
}

impl TicketSize {
    pub fn of(len: usize) -> Self {
        if len <= STATEFUL_ID_MAX {
            TicketSize::StatefulId
        } else if len <= NO_CERT_TICKET_MAX {
            TicketSize::NoCertSized
        } else {
            TicketSize::Large
        }
    }

    /// The clause a resumption's reason ends with: what was measured, and
    /// why it is not proof.
    pub fn clause(what: &str, len: usize) -> String {
        match TicketSize::of(len) {
            TicketSize::StatefulId => format!(
                "{what} {len} B (<= {STATEFUL_ID_MAX} B): a stateful session id, it carries \
                 no evidence"
            ),
            TicketSize::NoCertSized => format!(
                "{what} {len} B (<= {NO_CERT_TICKET_MAX} B): the size of OpenSSL and GnuTLS \
                 tickets without a client certificate, but wolfSSL and mbedTLS tickets never \
                 hold the certificate: no proof"
            ),
            TicketSize::Large => format!(
                "{what} {len} B (> {NO_CERT_TICKET_MAX} B): may hold a client certificate or \
                 only the server's own chain (JDK tickets: 787 B without one): no proof"
            ),
        }
    }
}

/// A resumed handshake (no certificates on the wire) with the size of the
/// ticket it resumed from, if the client sent one: always unknown.
pub(super) fn resumed(head: &str, ticket: Option<(&str, usize)>) -> Decision {
    let why = match ticket {
        Some((what, len)) => format!("{head}; {}", TicketSize::clause(what, len)),
        None => head.to_string(),
    };
    (Class::Unknown, Basis::None, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every measured ticket (module table) and both edges: no length gives
    /// a class, and every reason prints the length.
    #[test]
    fn ticket_sizes_name_a_band_and_never_a_class() {
        let table = [
            (0, TicketSize::StatefulId),
            (32, TicketSize::StatefulId),
            (64, TicketSize::StatefulId),
            (65, TicketSize::NoCertSized),
            (176, TicketSize::NoCertSized),
            (208, TicketSize::NoCertSized),
            (230, TicketSize::NoCertSized),
            (300, TicketSize::NoCertSized),
            (301, TicketSize::Large),
            (406, TicketSize::Large),
            (656, TicketSize::Large),
            (704, TicketSize::Large),
            (787, TicketSize::Large),
            (1946, TicketSize::Large),
        ];
        for (len, band) in table {
            assert_eq!(TicketSize::of(len), band, "{len}");
            let (class, basis, why) = resumed("resumed", Some(("PSK identity", len)));
            assert_eq!((class, basis), (Class::Unknown, Basis::None), "{why}");
            assert!(why.contains(&format!("PSK identity {len} B")), "{why}");
        }
        assert_eq!(resumed("resumed", None).2, "resumed");
    }

    /// OfferedPsks with two identities; the server accepts the second.
    fn offered_psks(identities: &[usize]) -> Vec<u8> {
        let mut list = Vec::new();
        for &n in identities {
            list.extend_from_slice(&u16::try_from(n).unwrap_or(0).to_be_bytes());
            list.extend(std::iter::repeat_n(0x5a, n));
            list.extend_from_slice(&[0, 0, 0, 1]); // obfuscated_ticket_age
        }
        let mut d = u16::try_from(list.len())
            .unwrap_or(0)
            .to_be_bytes()
            .to_vec();
        d.extend(list);
        d.extend_from_slice(&[0, 33, 32]); // binders (not read)
        d.extend([0; 32]);
        d
    }

    /// A TLS 1.3 ServerHello accepting the PSK identity at `selected`.
    fn server_hello_psk(selected: u8) -> Vec<u8> {
        use super::super::testing::{ext, handshake_record};
        let mut body = vec![3, 3];
        body.extend_from_slice(&[9; 32]);
        body.extend_from_slice(&[0, 0x13, 0x01, 0]);
        let exts = [ext(43, &[3, 4]), ext(41, &[0, selected])].concat();
        body.extend_from_slice(&u16::try_from(exts.len()).unwrap_or(0).to_be_bytes());
        body.extend(exts);
        handshake_record(2, &body)
    }

    #[test]
    fn a_resumed_tls13_flow_prints_the_accepted_psk_identity_and_stays_unknown() {
        use super::super::testing::{C, S, client_hello, drive, encrypted, ext};
        use crate::verdict::assemble::tests::verdict;
        for (selected, want) in [(0u8, "PSK identity 208 B"), (1, "PSK identity 704 B")] {
            let steps = vec![
                (C, client_hello(&[ext(41, &offered_psks(&[208, 704]))])),
                (S, server_hello_psk(selected)),
                (C, encrypted(53)),
                (S, encrypted(200)),
            ];
            let v = verdict(&drive(&steps));
            assert_eq!(v.class, Class::Unknown, "{}", v.reason);
            assert!(v.resumed && v.reason.contains(want), "{}", v.reason);
        }
        // An index past the identities kept: no size is claimed.
        let steps = vec![
            (C, client_hello(&[ext(41, &offered_psks(&[208]))])),
            (S, server_hello_psk(3)),
            (C, encrypted(53)),
        ];
        let v = verdict(&drive(&steps));
        assert!(
            v.resumed && !v.reason.contains("PSK identity"),
            "{}",
            v.reason
        );
    }
}
