//! A SYN flood with real handshakes mixed in, through the binary, under a
//! memory budget: the peak RSS of the child (from `wait4`, the kernel's
//! VmHWM at exit) stays under `--memory`, the table evicts SYN-only flows
//! (counted), and every real handshake gets the verdict it gets alone.
//!
//! 200,000 distinct SYNs (100k per second of packet time, as a flood
//! arrives) against a 64 MiB budget, whose flow table then holds 27,393
//! flows: the flood is seven times the table. Measured: peak RSS about 44
//! MiB (debug build). The 2-million-SYN version with the default budget is
//! in `cargo bench --bench linerate` (too slow for a debug test run).

mod common;
#[path = "hostile/wire.rs"]
mod wire;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use mtlsniff::capture::segment::{Endpoint, Segment};
use wire::{pcap_header, pcap_record, tcp4};

const SYNS: u32 = 200_000;
const REAL_EVERY: u32 = 2_000;
const MEMORY_MIB: i64 = 64;
const FIXTURES: [&str; 5] = [
    "tls12-openssl-mtls-p256.pcap",
    "tls13-openssl-mtls-p256.pcap",
    "tls12-openssl-noauth.pcap",
    "tls13-curl-required-nocert.pcap",
    "plaintext-http-curl.pcap",
];

fn v4(e: &Endpoint) -> Option<[u8; 4]> {
    match e.ip {
        std::net::IpAddr::V4(a) => Some(a.octets()),
        std::net::IpAddr::V6(_) => None,
    }
}

#[test]
fn syn_flood_of_200k_stays_under_the_memory_budget_and_real_handshakes_are_classified() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    // Each real flow: a fixture's one connection, its client moved to a
    // fresh address; what it must get is what it gets alone.
    let flows: Vec<(Vec<Segment>, String, String)> = FIXTURES
        .iter()
        .map(|f| {
            let segs = common::segments(&dir.join(f));
            let v = common::verdicts_of(&segs, mtlsniff::flow::engine::Limits::default());
            assert_eq!(v.len(), 1, "{f}");
            assert!(segs.iter().all(|s| v4(&s.src).is_some()), "{f} is IPv4");
            (
                segs,
                v[0].class.as_str().into(),
                v[0].outcome.as_str().into(),
            )
        })
        .collect();

    // MTLSNIFF_FLOOD_PCAP=FILE keeps the generated capture there, to run
    // mtlsniff on it by hand.
    let keep = std::env::var_os("MTLSNIFF_FLOOD_PCAP").map(std::path::PathBuf::from);
    let path = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mtlsniff-flood-{}.pcap", std::process::id()))
    });
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create pcap"));
    file.write_all(&pcap_header(1, 65535)).expect("write");
    let mut ts: u64 = 1_700_000_000_000_000;
    let mut write = |frame: &[u8], ts: u64| {
        file.write_all(&pcap_record(
            (ts / 1_000_000) as u32,
            (ts % 1_000_000) as u32,
            frame.len() as u32,
            frame.len() as u32,
        ))
        .and_then(|()| file.write_all(frame))
        .expect("write pcap");
    };
    let server = ([10, 255, 0, 1], 443);
    let mut expected: HashMap<String, (String, String)> = HashMap::new();
    for i in 0..SYNS {
        let b = i.to_be_bytes();
        write(
            &tcp4(
                (
                    [172, 16 | (b[1] & 0x0f), b[2], b[3]],
                    1024 + (i % 60000) as u16,
                ),
                server,
                i.wrapping_mul(2_654_435_761),
                0,
                wire::SYN,
                &[],
            ),
            ts,
        );
        ts += 10; // 100,000 SYNs per second
        if i % REAL_EVERY == REAL_EVERY / 2 {
            let n = i / REAL_EVERY;
            let (segs, class, outcome) = &flows[n as usize % flows.len()];
            let client = ([11, 0, (n >> 8) as u8, n as u8], 40000);
            let real_client = segs
                .iter()
                .find(|s| s.flags.syn() && !s.flags.ack())
                .map(|s| s.src);
            let t0 = segs.first().map_or(0, |s| s.ts.0);
            for s in segs {
                let from_client = Some(s.src) == real_client;
                let (src, dst) = if from_client {
                    (client, (v4(&s.dst).unwrap_or_default(), s.dst.port))
                } else {
                    ((v4(&s.src).unwrap_or_default(), s.src.port), client)
                };
                let frame = tcp4(src, dst, s.seq, s.ack, s.flags.0, &s.payload);
                write(&frame, ts + (s.ts.0 - t0) as u64);
            }
            expected.insert(
                format!("11.0.{}.{}:40000", (n >> 8) as u8, n as u8),
                (class.clone(), outcome.clone()),
            );
        }
    }
    file.flush().expect("flush pcap");
    drop(file);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
    cmd.arg("-r").arg(&path).args([
        "--json",
        "--stats",
        "--threads",
        "1",
        "--memory",
        &MEMORY_MIB.to_string(),
    ]);
    let (maxrss_kib, code, out, err) = common::run_measured(cmd);
    if keep.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    eprintln!(
        "SYN flood {SYNS} + {} real: peak RSS {} KiB with --memory {MEMORY_MIB}\n{err}",
        expected.len(),
        maxrss_kib
    );

    assert_eq!(code, Some(0), "{err}");
    assert!(
        maxrss_kib < MEMORY_MIB * 1024,
        "peak RSS {maxrss_kib} KiB over the {MEMORY_MIB} MiB budget"
    );
    let evicted: u64 = err
        .split_whitespace()
        .find_map(|w| w.strip_prefix("flows.evicted_embryonic="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(evicted > u64::from(SYNS) / 2, "evictions: {evicted}\n{err}");
    let mut seen = 0;
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let Some(client) = v["client"].as_str() else {
            continue;
        };
        if let Some((class, outcome)) = expected.get(client) {
            seen += 1;
            assert_eq!(
                (v["class"].as_str(), v["outcome"].as_str()),
                (Some(class.as_str()), Some(outcome.as_str())),
                "{line}"
            );
        }
    }
    assert_eq!(seen, expected.len(), "every real handshake reported once");
}
