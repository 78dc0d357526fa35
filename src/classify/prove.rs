//! Opening a flow's kept protected records with a key log (`--keylog`,
//! pcapng Decryption Secrets Blocks): the TLS 1.3 handshake flights, or a
//! TLS <= 1.2 renegotiation (RFC 5246 §7.4.1.1) up to the client's next
//! ChangeCipherSpec.
//!
//! It owns choosing what to open and with which secrets; `tls::proof` does
//! the opening. It must not write a verdict: the `Facts` go back to the
//! engine, which hands them to `verdict::assemble` with the evidence.
//! Invariant: the kept records are dropped either way, and application
//! data is never opened.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::{Classifier, Direction, Mode};
use crate::tls::keylog::KeyLog;
use crate::tls::proof::{self, Facts, Failure};

/// The result of `Classifier::prove`: what decryption showed, or why
/// nothing was opened (the engine counts each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proving {
    /// Nothing to open: not TLS 1.3 with protected records, no renegotiation.
    NotApplicable,
    /// The TLS 1.3 handshake flights were opened.
    Tls13(Box<Facts>),
    /// A TLS <= 1.2 renegotiation was opened.
    Renegotiation(Box<Facts>),
    Failed(Failure),
}

impl Proving {
    /// What the opened records showed, for `verdict::assemble`.
    pub fn facts(&self) -> Option<&Facts> {
        match self {
            Proving::Tls13(f) | Proving::Renegotiation(f) => Some(f),
            Proving::NotApplicable | Proving::Failed(_) => None,
        }
    }
}

impl Classifier {
    /// Open the kept records with the flow's secrets from `keys` (before
    /// `evidence`): TLS 1.3 handshake flights, or a TLS <= 1.2
    /// renegotiation. The records are dropped either way.
    pub fn prove(&mut self, keys: &KeyLog) -> Proving {
        let Mode::Tls(t) = &mut self.mode else {
            return Proving::NotApplicable;
        };
        let Some(sealed) = t.sealed.take() else {
            return Proving::NotApplicable;
        };
        let (Some(ch), Some(sh)) = (&t.ch, &t.sh) else {
            return Proving::NotApplicable;
        };
        let tls13 = t.is_tls13();
        let renegotiation = !tls13 && t.v12.renegotiation.is_some();
        let records =
            sealed.count(Direction::ToServer.idx()) + sealed.count(Direction::ToClient.idx());
        let decryptable = renegotiation || (tls13 && records > 0);
        if !decryptable {
            return Proving::NotApplicable;
        }
        let Some(secrets) = keys.lookup(&ch.random) else {
            return Proving::Failed(Failure::NoSecrets);
        };
        let cap = t.walker.handshake_cap();
        let result = if tls13 {
            proof::tls13(
                sh.cipher,
                &sealed,
                &secrets,
                (ch.early_data, ch.post_handshake_auth),
                cap,
            )
        } else {
            proof::tls12_renegotiation(sh.cipher, &ch.random, &sh.random, &sealed, &secrets, cap)
        };
        match result {
            Ok(facts) if tls13 => Proving::Tls13(Box::new(facts)),
            Ok(facts) => Proving::Renegotiation(Box::new(facts)),
            Err(e) => Proving::Failed(e),
        }
    }
}
