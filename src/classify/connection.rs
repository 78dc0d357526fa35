//! What one flow has shown whatever its mode: the bytes and closes of each
//! side, the hostile-input notes, the alert, the STARTTLS or PROXY prelude,
//! and the decision so far (class, then outcome) with the phase that says
//! whether it is final.
//!
//! Every mode (start, plaintext, TLS) writes its decision here through the
//! helpers below, so the rules about a decision live in one place: the
//! first class decided stays (a later message cannot unsay an mtls
//! verdict, issue 5), the first outcome stays, and a final flow reads no
//! more bytes. This file must not look at packet bytes.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::evidence::{Basis, Class, Decision, Outcome};
use super::{Close, Direction, Notes};
use crate::tls::record::Alert;

/// Whether the verdict is final (the engine reports it and stops
/// buffering) or bytes are still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Reading,
    Final,
}

/// One direction's totals, whatever the mode.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Side {
    /// Payload bytes read (TLS: whole records, headers included).
    pub bytes: u64,
    pub closed: Option<Close>,
}

#[derive(Debug, Clone)]
pub(super) struct Connection {
    pub sides: [Side; 2],
    pub phase: Phase,
    pub notes: Notes,
    pub alert: Option<Alert>,
    /// Plaintext protocol that preceded TLS, or the PROXY header version.
    pub starttls: Option<String>,
    /// The source identity in a PROXY v2 header (TLV 0xD0, ztunnel).
    pub proxy_identity: Option<String>,
    /// Class decided (possibly before the outcome is known).
    pub class: Option<Decision>,
    pub outcome: Option<(Outcome, String)>,
    /// The client abandoned the handshake (TLS 1.3: closed after one
    /// encrypted alert-sized record, before its flight): a rejection that
    /// is the client's even without a readable alert.
    pub client_refused: bool,
}

impl Connection {
    pub fn new() -> Self {
        Connection {
            sides: [Side::default(); 2],
            phase: Phase::Reading,
            notes: Notes::default(),
            alert: None,
            starttls: None,
            proxy_identity: None,
            class: None,
            outcome: None,
            client_refused: false,
        }
    }

    pub fn is_final(&self) -> bool {
        self.phase == Phase::Final
    }

    /// Nothing more is read: the verdict is final.
    pub fn finish(&mut self) {
        self.phase = Phase::Final;
    }

    pub fn side(&self, dir: Direction) -> Side {
        self.sides.get(dir.idx()).copied().unwrap_or_default()
    }

    pub fn side_mut(&mut self, dir: Direction) -> Option<&mut Side> {
        self.sides.get_mut(dir.idx())
    }

    pub fn client(&self) -> Side {
        self.side(Direction::ToServer)
    }

    pub fn server(&self) -> Side {
        self.side(Direction::ToClient)
    }

    /// Count `n` bytes read from `dir`.
    pub fn add_bytes(&mut self, dir: Direction, n: u64) {
        if let Some(s) = self.side_mut(dir) {
            s.bytes += n;
        }
    }

    /// Keep the first class decided (a later, weaker message must not
    /// unsay it).
    pub fn decide(&mut self, (class, basis, why): Decision) {
        if self.class.is_none() {
            self.class = Some((class, basis, why));
        }
    }

    /// The outcome is known: final once the class is too.
    pub fn finish_outcome(&mut self, outcome: Outcome, why: String) {
        if self.outcome.is_none() {
            self.outcome = Some((outcome, why));
        }
        if self.class.is_some() {
            self.finish();
        }
    }

    /// The evidence is not there: class unknown, with the reason.
    pub fn unknown(&mut self, why: impl Into<String>, outcome: Outcome) {
        self.finish_now(
            (Class::Unknown, Basis::None, why.into()),
            outcome,
            String::new(),
        );
    }

    /// Class and outcome at once; final.
    pub fn finish_now(&mut self, decision: Decision, outcome: Outcome, outcome_why: String) {
        self.decide(decision);
        if self.outcome.is_none() {
            self.outcome = Some((outcome, outcome_why));
        }
        self.finish();
    }

    /// Whatever was decided so far, the verdict is unknown with this reason,
    /// and final.
    pub fn give_up(&mut self, why: String, outcome: Outcome) {
        self.class = Some((Class::Unknown, Basis::None, why));
        self.outcome = Some((outcome, String::new()));
        self.finish();
    }

    /// The TLS stream broke the record or handshake layer (hostile-inputs
    /// M19-M21, M23). A class already decided from what came before stays.
    pub fn malformed(&mut self, what: &str) {
        self.notes.malformed = true;
        if self.class.is_some() {
            self.finish();
            if self.outcome.is_none() {
                self.outcome = Some((
                    Outcome::Incomplete,
                    format!("malformed TLS after the verdict: {what}"),
                ));
            }
            return;
        }
        self.unknown(format!("malformed TLS: {what}"), Outcome::Unknown);
    }

    /// Heap bytes of the prelude strings.
    pub fn heap_bytes(&self) -> usize {
        [&self.starttls, &self.proxy_identity]
            .into_iter()
            .flatten()
            .map(String::capacity)
            .sum()
    }
}
