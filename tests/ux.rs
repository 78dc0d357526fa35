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
