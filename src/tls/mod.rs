//! TLS stage: everything that understands TLS bytes without deciding
//! anything. `record` (tls-parser: record headers, handshake messages),
//! `identity` (x509-parser: who a certificate names), `keylog` (secrets by
//! client random), `decrypt` (RustCrypto: key schedules, AEAD) and `proof`
//! (opening a flow's kept handshake records into facts).

pub mod decrypt;
pub mod identity;
pub mod keylog;
pub mod proof;
pub mod record;
