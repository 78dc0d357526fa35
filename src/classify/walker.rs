//! The TLS record walker: framing of one flow's two byte streams into
//! records (RFC 5246 §6.2.1, RFC 8446 §5.1), and the engine's stream
//! contract (Suricata's): `Feed { consumed, skip, needed }`.
//!
//! It owns, per direction, the handshake-message reassembly, the record
//! counts (and the record limit, hostile-inputs M23), ChangeCipherSpec
//! (after which a TLS <= 1.2 side's records are encrypted) and the resync
//! after a STARTTLS upgrade. It must not decide anything: each framed
//! record goes to the TLS rules (`tls.rs`), which say whether its body is
//! read. Invariants: a body is read only when the rules want it and is then
//! consumed whole or not at all; every other body is skipped by length and
//! never buffered; nothing here allocates per record.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::connection::Connection;
use super::tls::Tls;
use super::{Direction, SCAN_OVERLAP};
use crate::tls::record::{self, HandshakeReassembler, HeaderRead, content};

/// Largest record accepted before ChangeCipherSpec, while records are clear
/// text: RFC 5246 §6.2.1 and RFC 8446 §5.1 allow 2^14 bytes; 256 bytes of
/// slack as for TLS 1.3 ciphertext (hostile-inputs M19).
pub const MAX_PLAINTEXT_RECORD_LEN: u16 = 16384 + 256;

/// What the engine should do with the stream after a `feed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Feed {
    pub consumed: usize,
    /// Further bytes (after `consumed`) to discard unread.
    pub skip: u64,
    /// Bytes still missing (after `consumed`) before the classifier can
    /// take the next step: the rest of a record header or of a body it
    /// reads. 0 when it does not know or does not wait. Advisory: the
    /// stream offers its unconsumed bytes again with more data anyway.
    pub needed: usize,
}

impl Feed {
    /// Consumed `consumed` bytes; waits for more without a known amount.
    pub fn at(consumed: usize) -> Self {
        Feed {
            consumed,
            skip: 0,
            needed: 0,
        }
    }
}

/// One direction's framing state.
#[derive(Debug, Clone)]
pub(super) struct Framing {
    pub hs: HandshakeReassembler,
    /// This side sent ChangeCipherSpec: its later records are encrypted
    /// (TLS <= 1.2; in TLS 1.3 CCS is only middlebox compatibility).
    pub ccs: bool,
    pub records: u32,
    /// Records that count toward the record limit: all but those that
    /// continue a handshake message already begun (those are bounded by
    /// the handshake buffer instead, so a ClientHello in 1-byte records is
    /// still read whole: hostile-inputs M22 vs M23).
    pub counted_records: u32,
    /// Bytes before TLS starts in this direction must be skipped until a
    /// record header that fits (after a STARTTLS upgrade).
    pub resync: bool,
}

/// Both directions' framing, and the order of records across them.
#[derive(Debug, Clone)]
pub(super) struct Walker {
    pub sides: [Framing; 2],
    /// Order of record events across both directions.
    pub clock: u64,
    /// Records per direction before the verdict is forced.
    pub record_limit: u32,
}

impl Walker {
    pub fn new(handshake_cap: usize, record_limit: u32) -> Self {
        let side = || Framing {
            hs: HandshakeReassembler::new(handshake_cap),
            ccs: false,
            records: 0,
            counted_records: 0,
            resync: false,
        };
        Walker {
            sides: [side(), side()],
            clock: 0,
            record_limit,
        }
    }

    pub fn side(&self, dir: Direction) -> Option<&Framing> {
        self.sides.get(dir.idx())
    }

    pub fn side_mut(&mut self, dir: Direction) -> Option<&mut Framing> {
        self.sides.get_mut(dir.idx())
    }

    pub fn ccs(&self, dir: Direction) -> bool {
        self.side(dir).is_some_and(|s| s.ccs)
    }

    pub fn records(&self, dir: Direction) -> u32 {
        self.side(dir).map_or(0, |s| s.records)
    }

    /// The handshake buffer (bytes of one message body kept).
    pub fn handshake_cap(&self) -> usize {
        self.sides.first().map_or(0, |s| s.hs.cap())
    }

    /// Count one record of `dir` (its body read or not) and tick the clock.
    pub fn count(&mut self, dir: Direction, content_type: u8, body_read: bool) {
        self.clock += 1;
        if let Some(s) = self.side_mut(dir) {
            s.records += 1;
            let continues = content_type == content::HANDSHAKE
                && body_read
                && (s.hs.pending() > 0 || s.hs.in_progress().is_some());
            if !continues {
                s.counted_records += 1;
            }
        }
    }

    /// The record limit is passed in `dir` (hostile-inputs M23).
    pub fn over_limit(&self, dir: Direction) -> bool {
        self.side(dir)
            .is_some_and(|s| s.counted_records > self.record_limit)
    }

    /// After a STARTTLS upgrade, find where TLS starts in the server
    /// stream: a ServerHello, or a lone alert refusing the ClientHello.
    fn resync(&mut self, dir: Direction, rest: &[u8]) -> Option<usize> {
        let found = (0..rest.len()).find(|&i| {
            let b = rest.get(i..).unwrap_or_default();
            b.first() == Some(&content::HANDSHAKE) && record::starts_server_hello(b)
                || b.first() == Some(&content::ALERT)
                    && matches!(record::read_header(b), HeaderRead::Record(h) if h.len == 2)
        })?;
        if let Some(s) = self.side_mut(dir) {
            s.resync = false;
        }
        Some(found)
    }
}

/// One step of the walk: bytes taken (go on), or where to stop.
enum Step {
    Took(usize),
    /// Stop; `consumed` counts from the step's start.
    Stop(Feed),
}

impl Tls {
    /// Walk the records of `data` (the contiguous unread bytes of `dir`),
    /// handing each to the TLS rules, until the data runs out, a body is
    /// incomplete, or the verdict is final.
    pub(super) fn feed(&mut self, conn: &mut Connection, dir: Direction, data: &[u8]) -> Feed {
        let mut consumed = 0usize;
        loop {
            if conn.is_final() {
                return Feed::at(consumed);
            }
            let rest = data.get(consumed..).unwrap_or_default();
            match self.step(conn, dir, rest) {
                Step::Took(n) => consumed += n,
                Step::Stop(f) => {
                    return Feed {
                        consumed: consumed + f.consumed,
                        ..f
                    };
                }
            }
        }
    }

    /// Frame the record at the start of `rest` and hand it to the rules.
    fn step(&mut self, conn: &mut Connection, dir: Direction, rest: &[u8]) -> Step {
        if self.walker.side(dir).is_some_and(|s| s.resync) {
            return match self.walker.resync(dir, rest) {
                Some(n) => Step::Took(n),
                // Keep a few bytes: a header may be split here.
                None => Step::Stop(Feed::at(rest.len().saturating_sub(SCAN_OVERLAP))),
            };
        }
        if self.sslv2_server_hello(conn, dir, rest) {
            return Step::Stop(Feed::default());
        }
        let header = match record::read_header(rest) {
            HeaderRead::Record(h) => h,
            HeaderRead::NeedMore => {
                return Step::Stop(Feed {
                    needed: record::RECORD_HEADER_LEN.saturating_sub(rest.len()),
                    ..Feed::default()
                });
            }
            HeaderRead::TooLarge(_) => {
                conn.malformed("record length over 2^14+2048");
                return Step::Stop(Feed::default());
            }
            HeaderRead::NotTls => {
                self.not_tls(conn, dir);
                return Step::Stop(Feed::default());
            }
        };
        let body_len = usize::from(header.len);
        let whole = record::RECORD_HEADER_LEN + body_len;
        if !self.needs_body(dir, &header) {
            // Encrypted or uninteresting body: skip it by length, never
            // buffer it.
            let have = rest
                .len()
                .saturating_sub(record::RECORD_HEADER_LEN)
                .min(body_len);
            self.record(conn, dir, header, None);
            let took = record::RECORD_HEADER_LEN + have;
            if have < body_len {
                return Step::Stop(Feed {
                    skip: (body_len - have) as u64,
                    ..Feed::at(took)
                });
            }
            return Step::Took(took);
        }
        if header.len > MAX_PLAINTEXT_RECORD_LEN && header.content_type == content::HANDSHAKE {
            conn.malformed("handshake record length over 2^14+256 before ChangeCipherSpec");
            return Step::Stop(Feed::default());
        }
        let Some(body) = rest.get(record::RECORD_HEADER_LEN..whole) else {
            return Step::Stop(Feed {
                needed: whole - rest.len(),
                ..Feed::default()
            });
        };
        self.record(conn, dir, header, Some(body));
        Step::Took(whole)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::super::testing::*;
    use super::super::*;

    /// The stream contract: a clear handshake record is consumed whole or
    /// not at all (and says how much is missing); an encrypted body is
    /// skipped by length, never buffered.
    #[test]
    fn records_are_consumed_whole_or_skipped_by_length() {
        let hello = client_hello(&[]);
        let mut c = Classifier::new(true, true, 64 * 1024);
        assert_eq!(
            c.feed(C, &hello[..3]),
            Feed::default(),
            "too short to tell a ClientHello"
        );
        let cut = hello.len() - 10;
        let f = c.feed(C, &hello[..cut]);
        assert_eq!((f.consumed, f.skip, f.needed), (0, 0, 10));
        let f = c.feed(C, &hello);
        // All consumed; the next header is 5 bytes away.
        assert_eq!((f.consumed, f.skip, f.needed), (hello.len(), 0, 5));

        let mut server = [server_hello(0x1301, false, false), encrypted(2000)].concat();
        server.truncate(server.len() - 1500);
        let f = c.feed(S, &server);
        assert_eq!((f.consumed, f.skip), (server.len(), 1500));

        let f = c.feed(C, &encrypted(900)[..3]);
        assert_eq!((f.consumed, f.skip, f.needed), (0, 0, 2), "header cut");
    }
}
