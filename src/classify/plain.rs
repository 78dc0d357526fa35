//! The plaintext mode: a flow whose first bytes are clear text. It owns the
//! scan of the client's clear text for an in-band TLS upgrade (STARTTLS,
//! SSLRequest, CONNECT ...: a ClientHello anywhere in the first
//! `UPGRADE_SCAN_CLIENT` bytes), the `-A` previews, the HTTP status of the
//! answer, and the plaintext rule: clear text is `plaintext` (observed)
//! once the server answered an opening that cannot upgrade, or the scan
//! budget is spent, or a TLS alert refused it (rustls' decode_error,
//! wire-facts §3).
//!
//! Byte patterns belong to `plaintext.rs`; this file must not parse TLS
//! beyond spotting a ClientHello or an alert record header. Invariants:
//! the preview never exceeds its cap; a ClientHello found hands the flow
//! to the TLS mode at its first byte.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::connection::Connection;
use super::evidence::{Basis, Class};
use super::plaintext::{self, Opening};
use super::walker::Feed;
use super::{Direction, Outcome, SCAN_OVERLAP};
use crate::tls::record::{self, Alert, HeaderRead, content};

/// Clear-text bytes scanned for an in-band TLS upgrade before the flow is
/// called plaintext (hostile-inputs M15 allows up to 256 KiB; an upgrade
/// comes within the first exchanges).
const UPGRADE_SCAN_CLIENT: u64 = 8 * 1024;
const UPGRADE_SCAN_SERVER: u64 = 32 * 1024;

/// Server bytes searched for a "plain HTTP sent to an HTTPS port" answer
/// (`plaintext::tls_port_refusal`) after an HTTP 400; the known pages are
/// under 1 KiB.
const REFUSAL_SCAN: u64 = 2 * 1024;

/// Clear text; scanning the client stream for a ClientHello.
#[derive(Debug, Clone)]
pub(super) struct Plain {
    pub opening: Opening,
    /// Bytes consumed per direction (stream offset of the next `feed`).
    pub scanned: [u64; 2],
    /// A command asking for a TLS upgrade was seen in the client's text.
    pub upgrade: Option<&'static str>,
    /// The protocol and what it says, e.g. `http GET /x host=a`.
    pub app_proto: String,
    /// Clear text kept for `-A` per direction, at most the preview cap.
    pub preview: [Vec<u8>; 2],
    /// An HTTP request's answer while it may be a TLS server's refusal
    /// (`refused_in_reply`): at most `REFUSAL_SCAN` bytes, then dropped.
    pub reply: Vec<u8>,
}

/// What a clear-text `feed` led to.
pub(super) enum PlainStep {
    Fed(Feed),
    /// A ClientHello starts `at` bytes into the client's data: TLS follows,
    /// announced by `protocol`.
    Upgrade {
        at: usize,
        protocol: &'static str,
    },
}

impl Plain {
    pub fn new(opening: Opening, upgrade: Option<&'static str>) -> Self {
        Plain {
            app_proto: opening.describe(),
            opening,
            scanned: [0, 0],
            upgrade,
            preview: [Vec::new(), Vec::new()],
            reply: Vec::new(),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.app_proto.capacity()
            + self.preview.iter().map(Vec::capacity).sum::<usize>()
            + self.reply.capacity()
    }

    pub fn previews(&self) -> [&[u8]; 2] {
        let [to_server, to_client] = &self.preview;
        [to_server, to_client]
    }

    pub fn feed(
        &mut self,
        conn: &mut Connection,
        dir: Direction,
        data: &[u8],
        preview_cap: usize,
    ) -> PlainStep {
        conn.add_bytes(dir, data.len() as u64);
        if dir == Direction::ToServer {
            if let Some(at) = find_client_hello(data) {
                let protocol = plaintext::upgrade_protocol(&self.opening, self.upgrade);
                return PlainStep::Upgrade { at, protocol };
            }
            if self.upgrade.is_none() {
                self.upgrade = plaintext::upgrade_command(data);
            }
        } else {
            self.note_status(data);
        }
        // Keep the last bytes of the client's data: a ClientHello header
        // split across segments is still found.
        let keep = if dir == Direction::ToServer {
            SCAN_OVERLAP.min(data.len())
        } else {
            0
        };
        let consumed = data.len() - keep;
        let d = dir.idx();
        // `data` starts at stream offset `scanned[d]`; the preview holds the
        // stream from its start, so only its not-yet-seen tail is added
        // (bytes kept back for the scan are offered again).
        let start = self.scanned.get(d).copied().unwrap_or(0);
        if let Some(s) = self.scanned.get_mut(d) {
            *s += consumed as u64;
        }
        if let Some(preview) = self.preview.get_mut(d) {
            let seen = (preview.len() as u64).saturating_sub(start) as usize;
            let room = preview_cap.saturating_sub(preview.len());
            let new = data.get(seen.min(data.len())..).unwrap_or_default();
            preview.extend_from_slice(new.get(..room.min(new.len())).unwrap_or_default());
        }
        self.progress(conn, dir, data);
        PlainStep::Fed(Feed::at(consumed))
    }

    /// The status of an HTTP answer, once, at the start of the server's
    /// stream.
    fn note_status(&mut self, data: &[u8]) {
        if self.app_proto.starts_with("http ")
            && !self.app_proto.contains("status=")
            && self.scanned.get(1) == Some(&0)
            && let Opening::HttpResponse { status } = plaintext::recognise(data)
        {
            self.app_proto.push_str(" status=");
            self.app_proto.push_str(&status);
        }
    }

    /// Decide a clear-text flow once the server has answered (for openings
    /// that cannot upgrade) or the upgrade scan budget is spent.
    fn progress(&mut self, conn: &mut Connection, dir: Direction, data: &[u8]) {
        if dir == Direction::ToClient && self.alert_in_reply(conn, data) {
            return;
        }
        if dir == Direction::ToClient && self.refused_in_reply(conn, data) {
            return;
        }
        let [client_scanned, server_scanned] = self.scanned;
        let spoke = conn.server().bytes > 0 && conn.client().bytes > 0;
        // A server answer still read as a possible refusal decides first.
        let refusal_pending = !self.reply.is_empty();
        if !self.opening.may_upgrade() && spoke && !refusal_pending {
            conn.finish_now(
                (
                    Class::Plaintext,
                    Basis::Observed,
                    ["clear text: ", &self.app_proto].concat(),
                ),
                Outcome::Ok,
                "server answered".to_string(),
            );
        } else if client_scanned >= UPGRADE_SCAN_CLIENT || server_scanned >= UPGRADE_SCAN_SERVER {
            conn.finish_now(
                (
                    Class::Plaintext,
                    Basis::Observed,
                    format!(
                        "clear text, no TLS upgrade in the first bytes: {}",
                        self.app_proto
                    ),
                ),
                Outcome::Ok,
                "both sides exchanged data".to_string(),
            );
        }
    }

    /// A TLS alert record answering clear text (rustls sends decode_error,
    /// wire-facts §3): the server refused plaintext.
    fn alert_in_reply(&mut self, conn: &mut Connection, data: &[u8]) -> bool {
        let HeaderRead::Record(h) = record::read_header(data) else {
            return false;
        };
        if h.content_type != content::ALERT || h.len != 2 {
            return false;
        }
        let (Some(&level), Some(&description)) = (data.get(5), data.get(6)) else {
            return false;
        };
        let alert = Alert {
            level,
            description,
            from_server: true,
        };
        conn.alert = Some(alert);
        conn.finish_now(
            (
                Class::Plaintext,
                Basis::Observed,
                format!("clear text sent to a TLS server: {}", self.app_proto),
            ),
            Outcome::Rejected,
            format!("server answered with TLS alert {}", alert.name()),
        );
        true
    }

    /// An HTTP 400 whose text is a TLS server's refusal of clear text
    /// (nginx, Apache mod_ssl, Go net/http): the server refused the
    /// protocol, so the outcome is rejected. Returns true while the flow is
    /// decided or must wait for the rest of a 400 answer (up to
    /// `REFUSAL_SCAN` bytes; a phrase split across segments is missed).
    fn refused_in_reply(&mut self, conn: &mut Connection, data: &[u8]) -> bool {
        // Only an answer kept whole from its first byte (however it is
        // segmented) is read: once dropped, it is not looked at again.
        let whole = (self.reply.len() + data.len()) as u64 == conn.server().bytes;
        // Not tied to the opening being recognised: an HTTP request split
        // into small segments can read as unknown clear text.
        if !whole {
            return false;
        }
        let room = (REFUSAL_SCAN as usize).saturating_sub(self.reply.len());
        self.reply
            .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        let status = plaintext::http_400_prefix(&self.reply);
        // The page is searched only under a 400 status line: most answers
        // are not one, and this runs on every chunk of one kept whole.
        let refusal = status
            .then(|| plaintext::tls_port_refusal(&self.reply))
            .flatten();
        let (true, Some(server)) = (status, refusal) else {
            // Wait while the answer may still be a 400 with its page to come.
            let wait = status
                && self.reply.len() < REFUSAL_SCAN as usize
                && conn.server().closed.is_none();
            if !wait {
                self.reply = Vec::new();
            }
            return wait;
        };
        self.reply = Vec::new();
        conn.finish_now(
            (
                Class::Plaintext,
                Basis::Observed,
                format!("clear text sent to a TLS server: {}", self.app_proto),
            ),
            Outcome::Rejected,
            format!("the server ({server}) refused it: plain HTTP sent to its HTTPS port"),
        );
        true
    }

    /// The flow ends before a plaintext verdict.
    pub fn conclude(&self, conn: &mut Connection, ended: &str) {
        let server_spoke = conn.server().bytes > 0;
        let client_spoke = conn.client().bytes > 0;
        let server_closed = conn.server().closed.is_some();
        let (outcome, why) = if client_spoke && !server_spoke && server_closed {
            (
                Outcome::Rejected,
                "server closed without answering the clear text".to_string(),
            )
        } else if client_spoke && server_spoke {
            (Outcome::Ok, "both sides exchanged data".to_string())
        } else {
            (
                Outcome::Incomplete,
                format!("{ended} before the server answered"),
            )
        };
        conn.class = Some((
            Class::Plaintext,
            Basis::Observed,
            ["clear text: ", &self.app_proto].concat(),
        ));
        conn.outcome = Some((outcome, why));
    }
}

/// Where a ClientHello starts in the client's clear text (an in-band
/// upgrade: STARTTLS, SSLRequest, CONNECT ...).
fn find_client_hello(data: &[u8]) -> Option<usize> {
    (0..data.len()).find(|&i| {
        data.get(i) == Some(&content::HANDSHAKE)
            && record::starts_client_hello(data.get(i..).unwrap_or_default())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::super::testing::*;
    use super::super::*;
    use crate::verdict::assemble::tests::verdict;

    /// Issue 14 §2: clear text to a TLS port, refused in the server's own
    /// words, is `plaintext rejected`, whichever segment carries the words;
    /// a 400 with other words is an ordinary answer.
    #[test]
    fn plain_http_to_a_tls_port_refused_in_words_is_rejected() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        let answers: [(&[u8], &[u8], Outcome); 4] = [
            (
                b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n",
                b"<title>400 The plain HTTP request was sent to HTTPS port</title>",
                Outcome::Rejected,
            ),
            (
                b"HTTP/1.1 400 Bad Request\r\n\r\n<p>Reason: You're ",
                b"speaking plain HTTP to an SSL-enabled server port.<br />",
                Outcome::Rejected,
            ),
            (
                b"HTTP/1.0 400 Bad Request\r\n\r\n",
                b"Client sent an HTTP request to an HTTPS server.\n",
                Outcome::Rejected,
            ),
            (
                b"HTTP/1.1 400 Bad Request\r\n\r\n",
                b"missing Host header",
                Outcome::Ok,
            ),
        ];
        for (head, body, outcome) in answers {
            let answer = [head, body].concat();
            let mut bytes = vec![(C, get.clone())];
            bytes.extend(answer.iter().map(|&b| (S, vec![b])));
            let c = drive_then(&bytes, |c| {
                c.on_close(S, Close::Fin);
                c.conclude(End::Closed);
            });
            let v = verdict(&c);
            assert_eq!(v.outcome, outcome, "1-byte segments: {}", v.reason);
            let split = [(C, get.clone()), (S, head.to_vec()), (S, body.to_vec())];
            let whole = [(C, get.clone()), (S, [head, body].concat())];
            for steps in [&split[..], &whole[..]] {
                let c = drive_then(steps, |c| {
                    c.on_close(S, Close::Fin);
                    c.conclude(End::Closed);
                });
                let v = verdict(&c);
                assert_eq!(
                    (v.class, v.outcome),
                    (Class::Plaintext, outcome),
                    "{}",
                    v.reason
                );
            }
        }
    }

    #[test]
    fn plaintext_and_starttls() {
        let steps = vec![
            (C, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
            (S, b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
        ];
        let v = verdict(&drive(&steps));
        assert_eq!((v.class, v.outcome), (Class::Plaintext, Outcome::Ok));
        assert_eq!(
            v.app_proto.as_deref(),
            Some("http GET /x host=a status=200")
        );

        // Plaintext answered by a TLS alert (rustls' decode_error).
        let steps = vec![
            (C, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            (S, vec![21, 3, 3, 0, 2, 2, 50]),
        ];
        let v = verdict(&drive(&steps));
        assert_eq!((v.class, v.outcome), (Class::Plaintext, Outcome::Rejected));

        // SMTP STARTTLS: the TLS after the upgrade is classified.
        let steps = vec![
            (S, b"220 mx ESMTP\r\n".to_vec()),
            (C, b"EHLO a\r\n".to_vec()),
            (S, b"250 STARTTLS\r\n".to_vec()),
            (C, b"STARTTLS\r\n".to_vec()),
            (S, b"220 go ahead\r\n".to_vec()),
            (C, client_hello(&[])),
            (
                S,
                [server_hello(0x1301, false, false), encrypted(2000)].concat(),
            ),
            (C, encrypted(69)),
            (S, encrypted(200)),
        ];
        let v = verdict(&drive(&steps));
        assert_eq!(
            (v.class, v.basis),
            (Class::Tls, Basis::Inferred),
            "{}",
            v.reason
        );
        assert_eq!(v.starttls.as_deref(), Some("smtp"));
    }

    #[test]
    fn plaintext_preview_keeps_the_first_bytes_each_way() {
        let steps = vec![
            (C, b"GET /secret HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
            (S, b"HTTP/1.1 200 OK\r\n\r\n\x00\x01".to_vec()),
        ];
        let mut c = Classifier::new(true, true, 65536);
        c.keep_preview(20);
        let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        for (dir, bytes) in &steps {
            let d = dir.idx();
            bufs[d].extend_from_slice(bytes);
            let f = c.feed(*dir, &bufs[d]);
            bufs[d].drain(..f.consumed);
        }
        let v = verdict(&c);
        assert_eq!(v.preview_to_server.as_deref(), Some("GET /secret HTTP/1.1"));
        assert_eq!(
            v.preview_to_client.as_deref(),
            Some("HTTP/1.1 200 OK.\n.\n.")
        );
        // Off by default.
        assert_eq!(verdict(&drive(&steps)).preview_to_server, None);
    }
}
