//! `pipeline::run_offline` is the binary's file mode in-process: on every
//! fixture, its reports printed by the binary's `Printer` must be the
//! golden output of `mtlsniff -r F -q` byte for byte (text and JSON), for
//! one worker and for several. Tests, fuzz targets and benchmarks rely on
//! this when they use it instead of the binary.

use std::path::{Path, PathBuf};

use clap::Parser;
use mtlsniff::pipeline::{Input, Plan, run_offline};
use mtlsniff::report::output::Printer;
use mtlsniff::shell::cli::{self, Args};
use mtlsniff::tls::keylog;
use mtlsniff::verdict::Event;

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

/// What `mtlsniff -r capture -q [--json] --threads N` prints, made in-process.
fn offline_output(capture: &Path, json: bool, threads: &str) -> String {
    let path = capture.to_str().expect("utf-8 path");
    let mut argv = vec!["mtlsniff", "-r", path, "-q", "--threads", threads];
    if json {
        argv.push("--json");
    }
    let config = cli::config(Args::try_parse_from(argv).expect("parses"), 4).expect("valid");
    // As `main` does: a pcapng input's Decryption Secrets Blocks.
    let keys =
        keylog::for_run(None, Some(capture), false, keylog::DEFAULT_BUDGET).expect("key log");
    let plan = Plan::from_config(&config, keys);
    let run = run_offline(Input::File(capture), &plan).expect("opens");
    let mut out = Vec::new();
    let mut printer = Printer::new(&mut out, config.format, false);
    for r in &run.reports {
        if let Event::Verdict(v) = &r.event {
            printer.print(v).expect("print to memory");
        }
    }
    printer.flush().expect("flush to memory");
    drop(printer);
    String::from_utf8(out).expect("utf-8 output")
}

#[test]
fn run_offline_prints_the_golden_output_for_any_worker_count() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let captures = fixture_captures(&root);
    assert!(!captures.is_empty(), "no fixture captures found");
    let mut mismatches = Vec::new();
    for capture in captures {
        let name = capture
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        for (json, ext) in [(false, "txt"), (true, "json")] {
            let path = root.join("expected").join(format!("{name}.{ext}"));
            let want = std::fs::read_to_string(&path).expect("golden file");
            for threads in ["1", "3"] {
                let got = offline_output(&capture, json, threads);
                if got != want {
                    mismatches.push(format!(
                        "== {} (--threads {threads})\n-- expected:\n{want}-- got:\n{got}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} outputs differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
