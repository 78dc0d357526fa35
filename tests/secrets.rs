//! Issue 13 §1: secrets stay inside `--memory`. A key log of 200,000
//! connections (about 32 MB) and a pcapng with a 13 MB Decryption Secrets
//! Block, each through the binary at `--memory 32`: the child's peak RSS
//! (from `wait4`, as `tests/flood.rs` measures) stays under the budget, the
//! oldest secrets are forgotten (counted), and the capture's own secrets,
//! written last, still decrypt its handshake.
//!
//! Measured (debug build): the key log peaks at about 18 MiB (68.8 MiB
//! before, and only its first 16 MiB were read), the DSB at about 20 MiB
//! (54 MiB, then 32 MiB while libpcap read each block whole into its
//! buffer; now the file is walked from its mapping, `capture/mapped_ng.rs`).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const MEMORY_MIB: i64 = 32;
const CONNECTIONS: u32 = 200_000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mtlsniff-secrets-{}-{name}", std::process::id()))
}

/// Each key log line: label, 64 hex digits, 64 hex digits, newline.
const LINE_LEN: usize = 162;

/// `lines` key log lines of made-up randoms and secrets (xorshift:
/// distinct, not secret), written to `to` as they are made: the test
/// process holds none of it (a child's peak RSS counts its parent's pages
/// from before the exec).
fn write_key_log(to: &mut impl Write, lines: u32) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..lines {
        let w = [
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
            next(),
        ];
        writeln!(
            to,
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {:016x}{:016x}{:016x}{:016x} {:016x}{:016x}{:016x}{:016x}",
            w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
        )
        .expect("write");
    }
}

/// One measured child at a time, and no test holding big buffers meanwhile.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn counter(err: &str, name: &str) -> u64 {
    err.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Run the binary on `capture` (with `--keylog keylog`), measured.
fn run(capture: &Path, keylog: Option<&Path>) -> (i64, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
    cmd.arg("-r").arg(capture).args([
        "--threads",
        "1",
        "--stats",
        "--memory",
        &MEMORY_MIB.to_string(),
    ]);
    if let Some(k) = keylog {
        cmd.arg("--keylog").arg(k);
    }
    let (maxrss_kib, code, out, err) = common::run_measured(cmd);
    eprintln!("peak RSS {maxrss_kib} KiB with --memory {MEMORY_MIB}\n{err}");
    assert_eq!(code, Some(0), "{err}");
    (maxrss_kib, out, err)
}

/// Under the budget, most of the `written` connections forgotten, the
/// capture's own (newest) secrets used.
fn assert_within_budget(maxrss_kib: i64, out: &str, err: &str, written: u64) {
    assert!(
        maxrss_kib < MEMORY_MIB * 1024,
        "peak RSS {maxrss_kib} KiB over the {MEMORY_MIB} MiB budget"
    );
    assert!(
        counter(err, "keylog.clients_dropped") > written / 2,
        "{err}"
    );
    assert!(err.contains("MiB for key log secrets"), "{err}");
    assert!(
        out.contains("basis=decrypted") && out.contains("client_id=client-"),
        "the newest secrets decrypt: {out}"
    );
}

#[test]
fn a_key_log_of_200k_connections_stays_inside_the_memory_budget() {
    let capture = fixtures().join("tls13-curl-mtls-p256.pcap");
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let own = std::fs::read(fixtures().join("tls13-curl-mtls-p256.pcap.keylog")).expect("keylog");
    let path = temp("big.keylog");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    write_key_log(&mut file, CONNECTIONS);
    file.write_all(&own).expect("write");
    drop(file);
    let (maxrss_kib, out, err) = run(&capture, Some(&path));
    let _ = std::fs::remove_file(&path);
    assert!(
        counter(&err, "keylog.lines") > u64::from(CONNECTIONS),
        "{err}"
    );
    assert_within_budget(maxrss_kib, &out, &err, u64::from(CONNECTIONS));
}

#[test]
fn a_13_mb_decryption_secrets_block_stays_inside_the_memory_budget() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The fixture's blocks, with a 13 MB TLS secrets DSB right after its
    // section header: the fixture's own DSB comes later, so it is newest.
    let original = std::fs::read(fixtures().join("tls13-openssl-mtls-dsb.pcapng")).expect("read");
    let shb_len = u32::from_le_bytes(original[4..8].try_into().expect("4 bytes")) as usize;
    assert_eq!(
        &original[8..12],
        &[0x4d, 0x3c, 0x2b, 0x1a],
        "little-endian pcapng"
    );
    let lines = 13_000_000 / LINE_LEN as u32;
    let text_len = lines as usize * LINE_LEN;
    let padding = (4 - text_len % 4) % 4;
    let block_len = (12 + 8 + text_len + padding) as u32;
    let path = temp("big-dsb.pcapng");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    file.write_all(&original[..shb_len]).expect("write");
    for word in [0x0000_000A, block_len, 0x544c_534b, text_len as u32] {
        file.write_all(&u32::to_le_bytes(word)).expect("write");
    }
    write_key_log(&mut file, lines);
    file.write_all(&[0; 3][..padding]).expect("write");
    file.write_all(&block_len.to_le_bytes()).expect("write");
    file.write_all(&original[shb_len..]).expect("write");
    drop(file);
    drop(original);
    let written = u64::from(lines);
    let (maxrss_kib, out, err) = run(&path, None);
    let _ = std::fs::remove_file(&path);
    assert!(counter(&err, "keylog.secrets_from_capture") > 1, "{err}");
    assert_eq!(counter(&err, "keylog.dsb_over_budget"), 1, "{err}");
    assert_within_budget(maxrss_kib, &out, &err, written);
}
