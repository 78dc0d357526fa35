//! The TLS <= 1.2 renegotiation size rule (issue 14 §2): a client
//! certificate requested in a renegotiation (RFC 5246 §7.4.1.1; Apache and
//! IIS ask for per-path client certificates this way) travels encrypted
//! under the first handshake's keys, but record headers stay in clear. The
//! client's renegotiation flight is the run of encrypted content-type-22
//! records it sends after the server's last record and before its
//! ChangeCipherSpec: ClientKeyExchange alone (not asked), an empty
//! Certificate + ClientKeyExchange (asked, declined), or Certificate +
//! ClientKeyExchange + CertificateVerify (a certificate sent).
//!
//! It owns the run (`RenegotiationRun`, bounded) and the one place both
//! thresholds are compared (`RenegotiationRun::decision`). It must not look
//! inside a record (the bodies are encrypted) nor use ports or
//! fingerprints. Invariant: `Class::Mtls` only from a run of at least
//! three records (a CertificateVerify exists only after a non-empty
//! Certificate, RFC 5246 §7.4.8) totalling at least
//! `RENEG_CERT_FLIGHT_MIN` bytes.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::evidence::{Basis, Class, Decision};

/// Largest renegotiation flight (record lengths + 5-byte headers) that
/// cannot hold a certificate. Measured without a certificate (fixtures,
/// AES-GCM, 24 B of nonce and tag per record): OpenSSL/Python not asked
/// 66 B (ClientKeyExchange X25519, one record of 61), OpenSSL/Python asked
/// and declined 102 B (31 + 61), GnuTLS asked and declined 135 B (31 + 94,
/// P-256 key share). Larger key exchanges stay below it: P-521 ~ 200 B with
/// CBC padding; RSA-2048 or DHE-2048 key transport ~ 290 B. RSA/DHE-4096
/// (~ 550 B) falls between the two thresholds: unknown.
pub const RENEG_NO_CERT_FLIGHT_MAX: u32 = 300;

/// Smallest renegotiation flight taken as carrying a certificate, and only
/// with at least `CERT_FLIGHT_RECORDS` records. Measured with a P-256 leaf:
/// OpenSSL and Python 1,145 B (965 + 61 + 104, OpenSSL also sends the CA),
/// GnuTLS 733 B (521 + 94 + 103). A certificate's DER alone is ~ 350 B or
/// more.
pub const RENEG_CERT_FLIGHT_MIN: u32 = 600;

/// Certificate + ClientKeyExchange + CertificateVerify: a run this long
/// holds a CertificateVerify, which follows only a non-empty Certificate.
/// A stack coalescing the flight into fewer records stays unknown.
const CERT_FLIGHT_RECORDS: usize = 3;

/// Record lengths remembered per run (a certificate chain fragmented into
/// more records only adds to the byte count).
const RUN_RECORDS_MAX: usize = 8;

/// The client's encrypted handshake records since the server last spoke.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RenegotiationRun {
    /// Record lengths (without headers), at most `RUN_RECORDS_MAX`.
    pub records: Vec<u16>,
    /// Records in the run, including those not remembered.
    pub count: usize,
    /// Bytes including 5-byte headers.
    pub bytes: u32,
}

impl RenegotiationRun {
    pub fn push(&mut self, len: u16) {
        if self.records.len() < RUN_RECORDS_MAX {
            self.records.push(len);
        }
        self.count += 1;
        self.bytes = self.bytes.saturating_add(u32::from(len) + 5);
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.count = 0;
        self.bytes = 0;
    }

    pub fn heap_bytes(&self) -> usize {
        self.records.capacity() * 2
    }

    /// The class the run's size gives (basis inferred), or unknown between
    /// the thresholds. The reason prints the sizes and the thresholds.
    pub fn decision(&self) -> Decision {
        let parts: Vec<String> = self.records.iter().map(u16::to_string).collect();
        let sizes = format!(
            "{} B in {} record(s) [{}]",
            self.bytes,
            self.count,
            parts.join(",")
        );
        if self.count >= CERT_FLIGHT_RECORDS && self.bytes >= RENEG_CERT_FLIGHT_MIN {
            (
                Class::Mtls,
                Basis::Inferred,
                format!(
                    "TLS 1.2 renegotiation: the client's encrypted flight {sizes} holds a \
                     certificate (>= {RENEG_CERT_FLIGHT_MIN} B in >= {CERT_FLIGHT_RECORDS} \
                     records; no-certificate flights are 66-135 B)"
                ),
            )
        } else if self.bytes <= RENEG_NO_CERT_FLIGHT_MAX {
            (
                Class::Tls,
                Basis::Inferred,
                format!(
                    "TLS 1.2 renegotiation: the client's encrypted flight {sizes} is too small \
                     for a certificate (<= {RENEG_NO_CERT_FLIGHT_MAX} B)"
                ),
            )
        } else {
            (
                Class::Unknown,
                Basis::None,
                format!(
                    "TLS 1.2 renegotiation: the client's encrypted flight {sizes} is between \
                     {RENEG_NO_CERT_FLIGHT_MAX} B and a certificate flight (>= \
                     {RENEG_CERT_FLIGHT_MIN} B in >= {CERT_FLIGHT_RECORDS} records)"
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(records: &[u16]) -> RenegotiationRun {
        let mut r = RenegotiationRun::default();
        records.iter().for_each(|&l| r.push(l));
        r
    }

    /// The measured flights (fixtures) and the edges of both thresholds:
    /// 300 B is tls, 301 B unknown; 600 B in three records mtls, 599 B or
    /// two records unknown (an RSA-4096 key transport is one large record).
    #[test]
    fn renegotiation_flight_sizes_decide_the_class() {
        let table: &[(&[u16], Class)] = &[
            (&[61], Class::Tls),               // OpenSSL, not asked
            (&[31, 61], Class::Tls),           // OpenSSL/Python, declined
            (&[31, 94], Class::Tls),           // GnuTLS, declined
            (&[965, 61, 104], Class::Mtls),    // OpenSSL/Python, P-256
            (&[521, 94, 103], Class::Mtls),    // GnuTLS, P-256
            (&[295], Class::Tls),              // 300 B
            (&[296], Class::Unknown),          // 301 B
            (&[542], Class::Unknown),          // RSA-4096 key transport
            (&[1100], Class::Unknown),         // one coalesced record
            (&[31, 1100], Class::Unknown),     // two records
            (&[400, 100, 85], Class::Mtls),    // 600 B
            (&[400, 100, 84], Class::Unknown), // 599 B
        ];
        for (records, class) in table {
            let (got, basis, why) = run(records).decision();
            assert_eq!(got, *class, "{records:?}: {why}");
            let want = if *class == Class::Unknown {
                Basis::None
            } else {
                Basis::Inferred
            };
            assert_eq!(basis, want, "{records:?}");
            assert!(why.contains(&run(records).bytes.to_string()), "{why}");
        }
        let mut long = run(&[100; 20]);
        assert_eq!((long.records.len(), long.count, long.bytes), (8, 20, 2100));
        long.clear();
        assert_eq!(long, RenegotiationRun::default());
    }
}
