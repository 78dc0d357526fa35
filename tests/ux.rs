//! Issue 16, "what a user meets": the answers of different views agree
//! with each other. Each close carries its verdict's final class, basis and
//! outcome, on every bundled fixture and every public capture (the public
//! captures fail under CI without ../shared and skip elsewhere,
//! tests/support/shared.rs).

#[path = "common/mod.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;
use support::shared;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mtlsniff::flow::engine::{Limits, Options};
use mtlsniff::pipeline::Input;
use mtlsniff::verdict::Event;

fn captures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    files
}

/// Closes checked against their verdicts in `file`, and how many of those
/// verdicts were inherited from a resumed session.
fn closes_agree(file: &Path) -> (usize, usize) {
    let options = Options {
        closes: true,
        ..Options::default()
    };
    let run = common::offline_with(Input::File(file), Limits::default(), options);
    let mut verdicts = HashMap::new();
    let (mut checked, mut inherited) = (0, 0);
    for r in &run.reports {
        match &r.event {
            Event::Verdict(v) => {
                verdicts.insert((v.client, v.server, v.first_seen), v.clone());
            }
            Event::Close(c) => {
                let v = verdicts
                    .get(&(c.client, c.server, c.first_seen))
                    .unwrap_or_else(|| panic!("{}: close before verdict: {c:?}", file.display()));
                assert_eq!(
                    (c.decided.class, c.decided.outcome, c.decided.basis),
                    (v.class, v.outcome, v.basis),
                    "{}: close {} > {} disagrees with its verdict",
                    file.display(),
                    c.client,
                    c.server
                );
                checked += 1;
                inherited += usize::from(v.basis == mtlsniff::verdict::Basis::Inherited);
            }
        }
    }
    (checked, inherited)
}

#[test]
fn every_close_agrees_with_its_verdict_on_fixtures_and_public_captures() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut dirs = vec![fixtures];
    if let Some(public) = shared::public("closes against verdicts on the public captures") {
        dirs.push(public);
    }
    let (mut checked, mut inherited) = (0, 0);
    for dir in dirs {
        for file in captures(&dir) {
            let (c, i) = closes_agree(&file);
            checked += c;
            inherited += i;
        }
    }
    assert!(checked > 100, "only {checked} closes checked");
    // The resumption fixtures alone hold inherited flows: the check bites.
    assert!(inherited >= 2, "only {inherited} inherited closes");
    eprintln!("{checked} closes agree with their verdicts, {inherited} inherited");
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_mtlsniff"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let o = bin()
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run mtlsniff");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `-c N` with `-r`: N lines, and the summary says where the lines stopped
/// and why its counts go further (issue 16 §1).
#[test]
fn count_stops_the_lines_and_the_summary_says_where() {
    let demo = fixture("demo.pcap");
    let (code, out, err) = run(&["-r", demo.to_str().unwrap(), "-c", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(err.starts_with("mtlsniff: "), "{err}");
    assert!(err.contains(" packets, 2 flows: "), "{err}");
    assert!(err.contains("stopped by -c 2 at packet 26;"), "{err}");
}

/// `demo.pcap` replayed `copies` times, each copy 1000 s after the last
/// (same frames: each connection reuses its ports after the previous
/// one closed), as a classic pcap: a file with many flows.
fn replayed_demo(copies: u32, path: &Path) -> u64 {
    let demo = std::fs::read(fixture("demo.pcap")).unwrap();
    let (head, mut rest) = demo.split_at(24);
    let mut records = Vec::new();
    while rest.len() >= 16 {
        let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().unwrap());
        let (secs, caplen) = (word(0), word(8) as usize);
        records.push((secs, rest[4..16].to_vec(), rest[16..16 + caplen].to_vec()));
        rest = &rest[16 + caplen..];
    }
    let mut out = head.to_vec();
    for copy in 0..copies {
        for (secs, tail, frame) in &records {
            out.extend_from_slice(&(secs + copy * 1000).to_le_bytes());
            out.extend_from_slice(tail);
            out.extend_from_slice(frame);
        }
    }
    std::fs::write(path, out).unwrap();
    records.len() as u64 * u64::from(copies)
}

/// `-c N -r FILE` stops reading the file soon after the N-th verdict, as
/// live mode stops capturing: on a file of 5,400 packets (far less than
/// the queues `--memory` would plan) 2 lines are printed, the same for any
/// `--threads`, and `packets read` stays well below the file's count
/// (issue 16 §1).
#[test]
fn count_stops_reading_the_file() {
    let path = std::env::temp_dir().join(format!("mtlsniff-ux-count-{}.pcap", std::process::id()));
    let total = replayed_demo(40, &path);
    let file = path.to_str().unwrap();
    let mut outs = Vec::new();
    for threads in ["1", "3"] {
        let (code, out, err) = run(&["-r", file, "-c", "2", "--stats", "--threads", threads]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out.lines().count(), 2, "{out}");
        let read: u64 = err
            .strip_prefix("mtlsniff: ")
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packets read: {err}"));
        assert!(read < total / 2, "{read} of {total} packets read: {err}");
        assert!(err.contains("stopped by -c 2 at packet 26;"), "{err}");
        outs.push(out);
    }
    assert_eq!(outs[0], outs[1]);
    let _ = std::fs::remove_file(&path);
}

/// `--graph` fails before anything is read: an extension it would not
/// honour (exit 2, pointing at `dot -Tpng`), a path it cannot write
/// (exit 1), including one only the user before `-Z` could write (issue 16
/// §3).
#[test]
fn graph_paths_fail_before_the_capture_is_read() {
    let demo = fixture("demo.pcap");
    let demo = demo.to_str().unwrap();
    let (code, out, err) = run(&["-r", demo, "--graph", "edges.png"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        out.is_empty() && err.contains("dot -Tpng edges.dot -o edges.png"),
        "{err}"
    );
    let (code, out, err) = run(&["-r", demo, "--graph", "/nonexistent-mtlsniff/e.dot"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty(), "flow lines before the failure: {out}");
    assert!(
        err.contains("--graph /nonexistent-mtlsniff/e.dot: cannot write"),
        "{err}"
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: the -Z half needs root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mtlsniff-ux-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let file = dir.join("e.dot");
    let (code, out, err) = run(&[
        "-r",
        demo,
        "-Z",
        "nobody",
        "--graph",
        file.to_str().unwrap(),
    ]);
    let (root_code, _, root_err) = run(&["-r", demo, "-q", "--graph", file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty() && err.contains("Permission denied"), "{err}");
    assert_eq!(root_code, Some(0), "root may write there: {root_err}");
}

/// `-qq --metrics 127.0.0.1:0` still says which port it bound: nothing
/// else could tell (issue 16 §3).
#[test]
fn quiet_metrics_on_port_0_still_names_the_port() {
    let demo = fixture("demo.pcap");
    let (code, out, err) = run(&[
        "-r",
        demo.to_str().unwrap(),
        "-qq",
        "--metrics",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 9);
    let line: Vec<&str> = err.lines().collect();
    assert_eq!(line.len(), 1, "{err}");
    assert!(
        line[0].starts_with("mtlsniff: metrics on http://127.0.0.1:"),
        "{err}"
    );
    assert!(!line[0].contains("127.0.0.1:0/"), "{err}");
}

/// `--calibrate` on a pcapng that carries its own secrets needs no
/// `--keylog`; without secrets it says what it needs (issue 16 §3).
#[test]
fn calibrate_takes_a_pcapngs_own_secrets() {
    let dsb = fixture("tls13-openssl-mtls-dsb.pcapng");
    let (code, _, err) = run(&["-r", dsb.to_str().unwrap(), "-q", "--calibrate"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.trim().is_empty(), "no calibration on stderr");
    let demo = fixture("demo.pcap");
    let (code, _, err) = run(&["-r", demo.to_str().unwrap(), "--calibrate"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--calibrate needs secrets"), "{err}");
}

/// `--ports 80,` is a list with a trailing comma, not an error; an
/// implied `--summary` from `--summary-format` (issue 16 §3).
#[test]
fn ports_with_a_trailing_comma_and_summary_format_alone() {
    let demo = fixture("demo.pcap");
    let (code, out, err) = run(&[
        "-r",
        demo.to_str().unwrap(),
        "-q",
        "--ports",
        "47211,",
        "--summary-format",
        "tsv",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "one flow, the TSV header and its row: {out}"
    );
    assert!(lines[1].starts_with("SECURED\tCLIENT\tSERVER"), "{out}");
    assert!(
        lines[2].starts_with("all\t127.0.0.1\t127.0.0.1:47211\t"),
        "{out}"
    );
}

/// The edges table and `--expect mtls` judge flows alike: a run fails the
/// check exactly when some edge's SECURED says the server let a flow
/// without a client certificate through (`mixed` or `none`); refused flows
/// and unknown ones pass both (issue 16 §1).
#[test]
fn edges_and_expect_agree_on_every_fixture() {
    let mut failing = 0;
    for file in captures(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")) {
        let (code, out, err) = run(&[
            "-r",
            file.to_str().unwrap(),
            "-q",
            "--summary-only",
            "--summary-format",
            "tsv",
            "--expect",
            "mtls",
        ]);
        let short = out
            .lines()
            .skip(1)
            .any(|row| matches!(row.split('\t').next(), Some("mixed" | "none")));
        assert_eq!(
            code == Some(4),
            short,
            "{}: exit {code:?} but edges say {}:\n{out}{err}",
            file.display(),
            if short { "short" } else { "secured" }
        );
        failing += usize::from(short);
    }
    assert!(
        failing > 5,
        "only {failing} fixtures fall short: the check does not bite"
    );
}

/// Verdict and close events of a flow carry the same Community ID, and
/// flows differ: lines join with each other and with Zeek or Suricata logs
/// of the same traffic (issue 16 §4).
#[test]
fn verdicts_and_closes_share_their_community_id() {
    let demo = fixture("demo.pcap");
    let (code, out, err) = run(&["-r", demo.to_str().unwrap(), "-q", "--json", "--close"]);
    assert_eq!(code, Some(0), "{err}");
    let mut by_flow: HashMap<(String, String), Vec<String>> = HashMap::new();
    for line in out.lines() {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = j["community_id"]
            .as_str()
            .expect("community_id")
            .to_string();
        assert!(id.starts_with("1:") && id.len() == 30, "{id}");
        let key = (j["client"].to_string(), j["server"].to_string());
        by_flow.entry(key).or_default().push(id);
    }
    assert_eq!(by_flow.len(), 9);
    let mut distinct: Vec<&String> = by_flow.values().map(|ids| &ids[0]).collect();
    for ids in by_flow.values() {
        assert_eq!(ids.len(), 2, "a verdict and a close: {ids:?}");
        assert_eq!(ids[0], ids[1]);
    }
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 9);
}

/// `--only` is a display filter: lines, closes, JSON and the edges table
/// show the matching flows; the summary, metrics and `--expect` count every
/// flow (issue 16 §4).
#[test]
fn only_filters_every_view_and_the_summary_counts_all() {
    let demo = fixture("demo.pcap");
    let demo = demo.to_str().unwrap();
    let (code, out, err) = run(&["-r", demo, "--only", "class=tls,plaintext", "--summary"]);
    assert_eq!(code, Some(0), "{err}");
    let (lines, table) = out.split_once("\n\n").expect("lines, then the table");
    assert_eq!(lines.lines().count(), 5, "{out}");
    assert!(
        lines
            .lines()
            .all(|l| l.contains(": tls ") || l.contains(": plaintext ")),
        "{out}"
    );
    assert_eq!(
        table.lines().filter(|l| !l.starts_with("  ")).count(),
        6,
        "{table}"
    );
    assert!(!table.contains("\nall "), "{table}");
    assert!(err.starts_with("mtlsniff: 135 packets, 9 flows: "), "{err}");
    let (_, out, _) = run(&[
        "-r",
        demo,
        "-q",
        "--json",
        "--close",
        "--only",
        "outcome=rejected",
    ]);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 6, "3 verdicts and their closes: {out}");
    assert!(events.iter().all(|e| e["outcome"] == "rejected"), "{out}");
    // --expect still judges every flow: the short tls/ok flow fails it.
    let (code, _, _) = run(&[
        "-r",
        demo,
        "-q",
        "--only",
        "outcome=rejected",
        "--expect",
        "mtls",
    ]);
    assert_eq!(code, Some(4));
    // -c counts the lines shown.
    let (_, out, _) = run(&["-r", demo, "-q", "--only", "class=plaintext", "-c", "1"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(": plaintext ok "), "{out}");
}
