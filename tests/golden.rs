//! Golden files: `mtlsniff -r F` on every fixture capture must print exactly
//! `fixtures/expected/<F>.txt` (text view) and `<F>.json` (JSON Lines view).
//! Run with `MTLSNIFF_BLESS=1 cargo test --test golden` to rewrite them after
//! an intended output change, then review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_captures(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    v.sort();
    v
}

fn run(capture: &Path, json: bool) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtlsniff"));
    cmd.arg("-r").arg(capture).arg("-q");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run mtlsniff");
    assert!(
        out.status.success(),
        "{}: exit {:?}: {}",
        capture.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn every_fixture_prints_its_golden_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let expected_dir = root.join("expected");
    let bless = std::env::var_os("MTLSNIFF_BLESS").is_some();
    let mut mismatches = Vec::new();
    let captures = fixture_captures(&root);
    assert!(!captures.is_empty(), "no fixture captures found");
    for capture in captures {
        let name = capture
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        for (json, ext) in [(false, "txt"), (true, "json")] {
            let got = run(&capture, json);
            let path = expected_dir.join(format!("{name}.{ext}"));
            if bless {
                std::fs::create_dir_all(&expected_dir).expect("create fixtures/expected");
                std::fs::write(&path, &got).expect("write golden file");
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
                panic!(
                    "missing {}: run MTLSNIFF_BLESS=1 cargo test --test golden",
                    path.display()
                )
            });
            if got != want {
                mismatches.push(format!(
                    "== {}\n-- expected:\n{want}-- got:\n{got}",
                    path.display()
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} golden files differ (MTLSNIFF_BLESS=1 to rewrite):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
