//! Issue 14 §1: a connection that an iptables REDIRECT shows as two halves
//! (client to the proxy port, original destination back) is one flow with
//! the right class and outcome, `server` = the original destination and
//! `redirected_to` = the target; the same for any `--threads`; a spoofed
//! SYN-ACK never joins a real flow into a false mtls; the join table is
//! bounded; a join ends with its flow. Fixtures: `fixtures/make-redirect.sh`
//! (netns, iptables with the Istio sidecar, Linkerd and ambient in-pod rules,
//! real servers and clients).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use mtlsniff::capture::segment::{Endpoint, Segment, TcpFlags, Timestamp};
use mtlsniff::flow::engine::Limits;
use mtlsniff::verdict::Class;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn redirect_rows() -> Vec<std::collections::HashMap<String, String>> {
    let rows: Vec<_> = common::tsv(&fixtures().join("fixtures.tsv"))
        .into_iter()
        .filter(|r| r["file"].starts_with("redirect-"))
        .collect();
    assert!(
        rows.len() >= 18,
        "redirect fixtures missing from fixtures.tsv"
    );
    // Every mesh's redirect port is covered: Istio sidecar 15001/15006,
    // Linkerd 4140/4143, ambient 15001/15006 and its HBONE port 15008.
    let shapes = [
        "redirect-out-",
        "redirect-in-",
        "redirect-l5d-out-",
        "redirect-l5d-in-",
        "redirect-ambient-out-",
        "redirect-ambient-in-hbone-15008-",
    ];
    for shape in shapes {
        assert!(rows.iter().any(|r| r["file"].starts_with(shape)), "{shape}");
    }
    rows
}

#[test]
fn each_redirected_connection_is_one_flow_with_its_class_outcome_and_target() {
    for row in redirect_rows() {
        let file = &row["file"];
        let verdicts = common::verdicts(&fixtures().join(file));
        assert_eq!(verdicts.len(), 1, "{file}: {verdicts:#?}");
        let v = &verdicts[0];
        let got = (
            v.client.to_string(),
            v.server.to_string(),
            v.class.as_str(),
            v.outcome.as_str(),
        );
        let want = (
            row["client"].clone(),
            row["server"].clone(),
            row["class"].as_str(),
            row["outcome"].as_str(),
        );
        assert_eq!(got, want, "{file}: {}", v.reason);
        // Captured on lo, the halves are joined and the target named; on the
        // pod's veth an inbound (PREROUTING) redirect is one ordinary flow,
        // and so is ambient's HBONE, which its rules leave on 15008.
        let target = v.redirected_to.map(|e| e.to_string());
        let want_target = [
            ("redirect-out-", "127.0.0.1:15001"),
            ("redirect-in-self-", "127.0.0.1:15006"),
            ("redirect-l5d-out-", "127.0.0.1:4140"),
            ("redirect-ambient-out-", "127.0.0.1:15001"),
        ]
        .iter()
        .find(|(prefix, _)| file.starts_with(prefix))
        .map(|&(_, target)| target);
        assert_eq!(target.as_deref(), want_target, "{file}");
    }
}

#[test]
fn the_same_output_with_one_and_two_threads() {
    for row in redirect_rows() {
        let capture = fixtures().join(&row["file"]);
        let run = |threads: &str| {
            let out = Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
                .arg("-r")
                .arg(&capture)
                .args(["-q", "--json", "--threads", threads])
                .output()
                .expect("run mtlsniff");
            assert!(out.status.success());
            String::from_utf8(out.stdout).expect("utf-8")
        };
        let one = run("1");
        assert_eq!(one, run("2"), "{}", row["file"]);
        assert_eq!(one.lines().count(), 1, "{}: {one}", row["file"]);
    }
}

/// A redirected connection's close line and JSON close name the same
/// server and target as its verdict.
#[test]
fn close_lines_carry_the_redirect_target_too() {
    let capture = fixtures().join("redirect-out-tls13-curl-mtls.pcap");
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
        cmd.arg("-r").arg(&capture).args(["-q", "--close"]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run mtlsniff");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let text = run(false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        assert!(
            line.contains("> 10.96.0.10:8080 via=127.0.0.1:15001:"),
            "{line}"
        );
    }
    for line in run(true).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(v["server"], "10.96.0.10:8080", "{line}");
        assert_eq!(v["redirected_to"], "127.0.0.1:15001", "{line}");
    }
}

fn segment(src: Endpoint, dst: Endpoint, seq: u32, ack: u32, flags: u8) -> Segment {
    Segment {
        ts: Timestamp(0),
        src,
        dst,
        seq,
        ack,
        flags: TcpFlags(flags),
        window: 1000,
        payload: Vec::new(),
        missing: 0,
    }
}

/// A real TLS 1.3 mTLS connection (no redirect) with a SYN-ACK from a third
/// address that acknowledges the client's ISN + 1 inserted at `at`.
fn with_spoofed_synack(at: usize) -> Vec<Segment> {
    let mut segs = common::segments(&fixtures().join("tls13-openssl-noauth.pcap"));
    let syn = segs
        .iter()
        .find(|s| s.flags.syn() && !s.flags.ack())
        .expect("a SYN")
        .clone();
    let third = Endpoint {
        ip: "10.6.6.6".parse().unwrap(),
        port: 443,
    };
    let mut spoof = segment(
        third,
        syn.src,
        0x1234_5678,
        syn.seq.wrapping_add(1),
        TcpFlags::SYN | TcpFlags::ACK,
    );
    spoof.ts = syn.ts;
    segs.insert(at, spoof);
    segs
}

#[test]
fn a_spoofed_synack_from_a_third_address_never_makes_a_false_mtls() {
    let clean = common::verdicts(&fixtures().join("tls13-openssl-noauth.pcap"));
    assert_eq!(clean.len(), 1);
    assert_eq!(clean[0].class, Class::Tls);
    // Before the real SYN-ACK: joined at first, then the real server answers
    // too, and the flow is given up as ambiguous (never mtls).
    let (verdicts, counters) = common::run_engine(&with_spoofed_synack(1), Limits::default());
    assert_eq!(counters.redirect_joined, 1);
    assert_eq!(counters.redirect_conflicts, 1);
    assert!(
        verdicts.iter().all(|v| v.class != Class::Mtls),
        "{verdicts:#?}"
    );
    let real = verdicts
        .iter()
        .find(|v| v.client == clean[0].client)
        .expect("the real flow is reported");
    assert_eq!(real.class, Class::Unknown, "{}", real.reason);
    assert!(
        real.reason.contains("two hosts answered one SYN"),
        "{}",
        real.reason
    );
    // After the real SYN-ACK: the SYN half is answered, nothing is joined and
    // the real flow keeps its verdict.
    let (verdicts, counters) = common::run_engine(&with_spoofed_synack(2), Limits::default());
    assert_eq!(
        (counters.redirect_joined, counters.redirect_conflicts),
        (0, 0)
    );
    let real = verdicts
        .iter()
        .find(|v| v.client == clean[0].client)
        .expect("the real flow is reported");
    assert_eq!(
        (real.class, real.outcome, real.redirected_to),
        (clean[0].class, clean[0].outcome, None)
    );
}

#[test]
fn the_join_table_is_bounded_and_counts_what_it_forgets() {
    let limits = Limits {
        max_flows: 4096,
        ..Limits::default()
    };
    // max_entries(4096) = 64 pending SYNs: a flood of 1,000 unanswered SYNs
    // to the proxy port forgets the oldest 936, counted. The flood's flows
    // expire before the real connection (packet time moves on by years), and
    // the 64 SYNs left go with them: its SYN evicts none.
    let proxy = Endpoint {
        ip: "127.0.0.1".parse().unwrap(),
        port: 15001,
    };
    let mut segs: Vec<Segment> = (0..1000u16)
        .map(|i| {
            let client = Endpoint {
                ip: "10.99.0.2".parse().unwrap(),
                port: 40000 + i,
            };
            segment(client, proxy, 1000, 0, TcpFlags::SYN)
        })
        .collect();
    // A real redirected connection after the flood still joins.
    segs.extend(common::segments(
        &fixtures().join("redirect-out-tls13-curl-mtls.pcap"),
    ));
    let (verdicts, counters) = common::run_engine(&segs, limits);
    assert_eq!(counters.redirect_evicted, 1000 - 64);
    assert_eq!(counters.redirect_joined, 1);
    let joined: Vec<_> = verdicts
        .iter()
        .filter(|v| v.redirected_to.is_some())
        .collect();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].class, Class::Mtls);
    assert_eq!(joined[0].server.to_string(), "10.96.0.10:8080");
}

/// The redirected plain-HTTP connection again, `secs` later, with both
/// directions' sequence numbers moved by `shift`; without its handshake
/// (SYN, SYN-ACK, first ACK) when `midstream`.
fn again(first: &[Segment], secs: i64, shift: u32, midstream: bool) -> Vec<Segment> {
    first
        .iter()
        .skip(if midstream { 3 } else { 0 })
        .map(|s| {
            let mut s = s.clone();
            s.ts = Timestamp(s.ts.0 + secs * 1_000_000);
            s.seq = s.seq.wrapping_add(shift);
            if s.flags.ack() {
                s.ack = s.ack.wrapping_add(shift);
            }
            s
        })
        .collect()
}

/// Issue 14 §1 (joins at expiry): a joined connection's flow expires and its
/// join ends with it (`redirect.ended`), its close line still naming the
/// target; a later connection on the same client port is joined by its own
/// SYN, and one whose handshake was not captured is not joined at all (the
/// old join's ports are no evidence).
#[test]
fn a_join_ends_when_its_flow_expires_and_the_client_port_is_judged_afresh() {
    use mtlsniff::flow::engine::Options;
    use mtlsniff::pipeline::Input;
    use mtlsniff::verdict::{Ending, Event};

    let whole = common::segments(&fixtures().join("redirect-out-plaintext-http.pcap"));
    assert!(whole[0].flags.syn() && !whole[0].flags.ack());
    // Up to the last ACK before the FINs: the flow ends by idle expiry.
    let first: Vec<Segment> = whole
        .iter()
        .take_while(|s| !s.flags.fin())
        .cloned()
        .collect();
    assert!(first.len() >= 8);
    for midstream in [true, false] {
        let mut segs = first.clone();
        segs.extend(again(&whole, 400, 0x1000, midstream));
        let options = Options {
            closes: true,
            ..Options::default()
        };
        let run = common::offline_with(Input::Segments(&segs), Limits::default(), options);
        let counters = run.engine.clone();
        let closes: Vec<_> = run
            .reports
            .iter()
            .filter_map(|r| match &r.event {
                Event::Close(c) => Some(c.clone()),
                Event::Verdict(_) => None,
            })
            .collect();
        let expired = closes
            .iter()
            .find(|c| c.ending == Ending::Idle)
            .expect("the first connection expires");
        assert_eq!(
            (
                expired.server.to_string(),
                expired.redirected_to.map(|e| e.to_string())
            ),
            (
                "127.0.0.1:8080".to_string(),
                Some("127.0.0.1:15001".to_string())
            )
        );
        let verdicts = run.into_verdicts();
        assert_eq!(
            verdicts[0].redirected_to.map(|e| e.to_string()).as_deref(),
            Some("127.0.0.1:15001")
        );
        let later = &verdicts[1..];
        assert!(!later.is_empty());
        if midstream {
            assert!(
                later.iter().all(|v| v.redirected_to.is_none()),
                "{later:#?}"
            );
            assert_eq!((counters.redirect_joined, counters.redirect_ended), (1, 1));
        } else {
            assert_eq!((counters.redirect_joined, counters.redirect_ended), (2, 2));
            assert_eq!(later.len(), 1, "{later:#?}");
            assert_eq!(
                (later[0].server.to_string(), later[0].redirected_to),
                ("127.0.0.1:8080".to_string(), verdicts[0].redirected_to)
            );
        }
    }
}
