//! Issue 13 §4, honest version fields, over every committed fixture and
//! (when ../shared is present) every public capture: a flow whose
//! ServerHello is on the wire has a negotiated `tls_version`; a flow with
//! only a ClientHello has `tls_offered` and no `tls_version`; `tls_offered`
//! is there exactly when a ClientHello was. Which hellos are on the wire is
//! read here from the packets, independently of the classifier: a TCP
//! payload that starts with a hello's record header.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod common;
#[path = "support/mod.rs"]
mod support;

use mtlsniff::capture::segment::Endpoint;
use mtlsniff::verdict::Verdict;
use support::shared;

/// ServerHello.random of a HelloRetryRequest (RFC 8446 §4.1.3): not a
/// negotiation, the real ServerHello follows.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Flows whose hellos the packet scan cannot see as the classifier does,
/// with the reason. Keyed by (capture, client).
const EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "ndpi__openvpn_nohmac_tcp.pcapng",
    "10.181.235.122:39772",
    "OpenVPN over TCP: the ClientHello is inside OpenVPN's framing, not at a \
     payload's start; the classifier's scan finds it there",
)];

#[derive(Debug, Default, Clone, Copy)]
struct Hellos {
    client: bool,
    server: bool,
}

/// Which hello a payload starts with: Some(true) ServerHello, Some(false)
/// ClientHello. Strict enough that a binary HTTP body does not match: the
/// TLS record and handshake headers, and the hello's version, must agree;
/// SSL 2.0 hellos by their version fields (RFC 6101 appendix E).
fn hello_at_start(p: &[u8]) -> Option<bool> {
    match p {
        [
            0x16,
            0x03,
            0..=4,
            _,
            _,
            t @ (1 | 2),
            0,
            _,
            _,
            0x03,
            0..=4,
            random @ ..,
        ] => match t {
            1 => Some(false),
            _ => Some(random.get(..32) != Some(&HRR_RANDOM[..])).filter(|real| *real),
        },
        [h, _, 1, 0x00, 0x02, ..] | [h, _, 1, 0x03, 0..=4, ..] if h & 0x80 != 0 => Some(false),
        [h, _, 4, 0 | 1, 1, 0x00, 0x02, ..] if h & 0x80 != 0 => Some(true),
        _ => None,
    }
}

fn pair(a: Endpoint, b: Endpoint) -> (String, String) {
    let (a, b) = (a.to_string(), b.to_string());
    if a <= b { (a, b) } else { (b, a) }
}

/// The hellos each connection (unordered endpoint pair) put on the wire.
fn hellos_on_the_wire(path: &Path) -> HashMap<(String, String), Hellos> {
    let mut seen: HashMap<(String, String), Hellos> = HashMap::new();
    for s in common::segments(path) {
        let Some(server) = hello_at_start(&s.payload) else {
            continue;
        };
        let h = seen.entry(pair(s.src, s.dst)).or_default();
        if server {
            h.server = true;
        } else {
            h.client = true;
        }
    }
    seen
}

/// What is wrong with one verdict's version fields, if anything.
fn check(v: &Verdict, h: Hellos) -> Option<String> {
    let (ver, off) = (v.tls_version, v.tls_offered);
    if h.server && ver.is_none() {
        return Some(format!(
            "ServerHello on the wire, no tls_version (offered {off:?})"
        ));
    }
    if h.client && !h.server && (ver.is_some() || off.is_none()) {
        return Some(format!(
            "only a ClientHello: tls_version {ver:?}, tls_offered {off:?}"
        ));
    }
    if !h.client && off.is_some() {
        return Some(format!("no ClientHello on the wire, tls_offered {off:?}"));
    }
    None
}

/// What `check_captures` saw.
#[derive(Debug, Default)]
struct Tally {
    flows: usize,
    /// Flows whose ServerHello the packet scan found.
    server_hellos: usize,
    /// Verdicts with `tls_offered` and no `tls_version`.
    offered_only: usize,
    failures: Vec<String>,
}

/// Check every flow of these captures.
fn check_captures(captures: &[PathBuf]) -> Tally {
    let mut t = Tally::default();
    for path in captures {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let wire = hellos_on_the_wire(path);
        for v in common::verdicts(path) {
            let hellos = |server| {
                wire.get(&pair(v.client, server))
                    .copied()
                    .unwrap_or_default()
            };
            let mut h = hellos(v.server);
            // An iptables REDIRECT's two halves (issue 14 §1): the client's
            // hello went to the redirect target, the server's came from the
            // original destination.
            if let Some(target) = v.redirected_to {
                h.client |= hellos(target).client;
            }
            t.flows += 1;
            t.server_hellos += usize::from(h.server);
            t.offered_only += usize::from(v.tls_version.is_none() && v.tls_offered.is_some());
            let client = v.client.to_string();
            let excepted = EXCEPTIONS.iter().any(|e| e.0 == name && e.1 == client);
            if let Some(why) = check(&v, h).filter(|_| !excepted) {
                t.failures
                    .push(format!("{name} {} > {}: {why}", v.client, v.server));
            }
        }
    }
    t
}

fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.retain(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".pcap") || n.ends_with(".pcapng")
    });
    out.sort();
    out
}

#[test]
fn fixtures_report_negotiated_and_offered_versions_honestly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let captures = captures_in(&dir);
    assert!(captures.len() > 50, "fixtures missing");
    let t = check_captures(&captures);
    assert!(t.flows > 50 && t.server_hellos > 50, "{t:?}");
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    eprintln!("fixtures: {t:?}");
}

#[test]
fn public_captures_report_negotiated_and_offered_versions_honestly() {
    let Some(dir) = shared::public("tls_version / tls_offered") else {
        return;
    };
    let t = check_captures(&captures_in(&dir));
    assert!(t.flows > 100 && t.server_hellos > 100, "{t:?}");
    // ClientHello-only flows exist there (unidirectional captures, servers
    // that answer in clear): the branch this test is for is exercised.
    assert!(t.offered_only > 0, "no flow with only a ClientHello");
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    eprintln!("public captures: {t:?}");
}
