//! The SSL 2.0 rule: an SSL 2.0 ClientHello (or a "v2-compatible" hello
//! offering SSL 3.0 / TLS) is consumed whole; an SSL 2.0 ServerHello ends
//! the flow as unknown, since SSL 2.0 authenticates the client after
//! encryption starts (nothing about it is visible).
//!
//! It owns the SSL 2.0 record framing of those two messages only (a 2-byte
//! header, high bit set, body length in the low 15 bits) and must not
//! follow an SSL 2.0 session further. Invariant: never a tls or mtls class.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::connection::Connection;
use super::evidence::{Basis, Class};
use super::tls::{HelloFormat, Tls};
use super::walker::Feed;
use super::{Direction, Outcome};
use crate::tls::record::{self, ClientHello, ServerHello};

/// An SSL 2.0 ClientHello at the start of the client's stream: the flow is
/// followed as TLS (records may follow when SSL 3.0 or TLS was offered).
/// `Err(feed)` (nothing consumed) while the record is incomplete.
pub(super) fn client_hello(
    conn: &mut Connection,
    version: u16,
    data: &[u8],
    new_tls: impl FnOnce() -> Tls,
) -> Result<(Tls, Feed), Feed> {
    let len = match (data.first(), data.get(1)) {
        (Some(&a), Some(&b)) => (usize::from(a & 0x7f) << 8) | usize::from(b),
        _ => return Err(Feed::default()),
    };
    if data.len() < 2 + len {
        return Err(Feed {
            needed: 2 + len - data.len(),
            ..Feed::default()
        });
    }
    let mut tls = new_tls();
    tls.format = HelloFormat::Sslv2;
    tls.ch = Some(ClientHello {
        legacy_version: version,
        ..ClientHello::default()
    });
    if let Some(s) = tls.walker.side_mut(Direction::ToServer) {
        s.records += 1;
    }
    conn.add_bytes(Direction::ToServer, (2 + len) as u64);
    Ok((tls, Feed::at(2 + len)))
}

impl Tls {
    /// The server's answer to an SSL 2.0 hello, when it is an SSL 2.0
    /// ServerHello: the verdict is final. Returns whether it was.
    pub(super) fn sslv2_server_hello(
        &mut self,
        conn: &mut Connection,
        dir: Direction,
        rest: &[u8],
    ) -> bool {
        if dir != Direction::ToClient
            || self.format != HelloFormat::Sslv2
            || self.sh.is_some()
            || !record::sslv2_server_hello(rest)
        {
            return false;
        }
        self.sh = Some(ServerHello {
            version: 0x0002,
            legacy_version: 0x0002,
            ..ServerHello::default()
        });
        conn.finish_now(
            (
                Class::Unknown,
                Basis::None,
                "SSL 2.0: client authentication happens after encryption, not visible".to_string(),
            ),
            Outcome::Ok,
            "server answered with an SSL 2.0 ServerHello".to_string(),
        );
        true
    }
}
