//! Builders for the classifier's unit tests: hand-made TLS records and
//! hellos, and `drive`, which feeds chunks the way the engine's streams do
//! (unconsumed bytes stay, skips apply). Test-only; it must not be used by
//! production code and holds no verdict logic.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::{Classifier, Direction};
use crate::tls::record;

pub const C: Direction = Direction::ToServer;
pub const S: Direction = Direction::ToClient;

pub fn ext(t: u16, data: &[u8]) -> Vec<u8> {
    let mut v = t.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

pub fn handshake_record(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len();
    let mut hs = vec![msg_type, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    hs.extend_from_slice(body);
    let mut r = vec![22, 3, 3, (hs.len() >> 8) as u8, hs.len() as u8];
    r.extend(hs);
    r
}

/// A TLS 1.3 ClientHello record with the given extra extensions.
pub fn client_hello(extra: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    let mut exts = ext(43, &[2, 3, 4]);
    for e in extra {
        exts.extend_from_slice(e);
    }
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    handshake_record(1, &body)
}

/// A TLS 1.3 ServerHello (or HelloRetryRequest) record.
pub fn server_hello(cipher: u16, psk: bool, hrr: bool) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(if hrr {
        &record::HELLO_RETRY_REQUEST_RANDOM
    } else {
        &[9; 32]
    });
    body.push(0);
    body.extend_from_slice(&cipher.to_be_bytes());
    body.push(0);
    let mut exts = ext(43, &[3, 4]);
    if psk {
        exts.extend(ext(41, &[0, 0]));
    }
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend(exts);
    handshake_record(2, &body)
}

pub fn encrypted(len: u16) -> Vec<u8> {
    let mut r = vec![23, 3, 3, (len >> 8) as u8, len as u8];
    r.extend(std::iter::repeat_n(0xab, usize::from(len)));
    r
}

pub const CCS: [u8; 6] = [20, 3, 3, 0, 1, 1];

/// Feeds chunks as a stream would: unconsumed bytes stay, skips apply.
pub fn drive(steps: &[(Direction, Vec<u8>)]) -> Classifier {
    drive_then(steps, |_| {})
}

pub fn drive_then(steps: &[(Direction, Vec<u8>)], end: impl FnOnce(&mut Classifier)) -> Classifier {
    let mut c = Classifier::new(true, true, 64 * 1024);
    drive_with(&mut c, steps);
    end(&mut c);
    c
}

/// Feeds `steps` to `c` (see `drive`); returns the bytes consumed or
/// skipped.
pub fn drive_with(c: &mut Classifier, steps: &[(Direction, Vec<u8>)]) -> usize {
    let mut taken = 0;
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut skips = [0u64; 2];
    for (dir, bytes) in steps {
        let d = dir.idx();
        let mut chunk = bytes.as_slice();
        let drop = (skips[d] as usize).min(chunk.len());
        chunk = &chunk[drop..];
        skips[d] -= drop as u64;
        bufs[d].extend_from_slice(chunk);
        loop {
            let f = c.feed(*dir, &bufs[d]);
            taken += f.consumed + f.skip as usize;
            bufs[d].drain(..f.consumed);
            let now = (f.skip as usize).min(bufs[d].len());
            bufs[d].drain(..now);
            skips[d] += f.skip - now as u64;
            if f.consumed == 0 && f.skip == 0 || bufs[d].is_empty() {
                break;
            }
        }
    }
    taken
}

/// TLS 1.3 handshake up to the client flight, then the given client
/// records and one server record after them.
pub fn tls13(client_records: &[u16], server_after: Option<u16>) -> Vec<(Direction, Vec<u8>)> {
    let mut steps = vec![
        (C, client_hello(&[])),
        (
            S,
            [
                server_hello(0x1301, false, false),
                CCS.to_vec(),
                encrypted(2500),
            ]
            .concat(),
        ),
        (C, CCS.to_vec()),
    ];
    steps.extend(client_records.iter().map(|&l| (C, encrypted(l))));
    steps.extend(server_after.map(|l| (S, encrypted(l))));
    steps
}

/// Property tests in classify run from a fixed seed (no unseeded random
/// tests) and leave no regression files behind.
pub fn deterministic() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d65_7368),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
