//! Walk mode (`pipeline/walk.rs`) against the pipeline: the binary's
//! output for `--threads 1` (capture thread and one worker) must be the
//! output of `--threads 2, 3, 4` (walkers on a mapped classic pcap) byte
//! for byte, in text and in `--json -v --close`, and the counters `--stats`
//! prints must add up to the same figures, on every fixture and on small
//! files made by the line-rate benchmark's generator (mixed and tiny
//! frames, our own templates). Peaks (buffer, reports) depend on how the
//! flows are split and are left out.

// `gen` is a reserved keyword in edition 2024: the module keeps its path.
#[path = "../benches/gen/mod.rs"]
mod synth;

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mtlsniff");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// What one run printed: exit code, stdout, and the `--stats` lines that
/// do not depend on timing or on how flows are split among threads.
fn run(file: &Path, threads: usize, extra: &[&str]) -> (Option<i32>, Vec<u8>, Vec<String>) {
    let mut cmd = Command::new(BIN);
    cmd.arg("-r")
        .arg(file)
        .args(["--stats", "--threads", &threads.to_string()])
        .args(extra);
    let keylog = file.with_extension("pcap.keylog");
    if keylog.exists() {
        cmd.arg("--keylog").arg(&keylog);
    }
    let o = cmd.output().expect("run mtlsniff");
    let stats = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.contains(" time ") && !l.contains("limits:"))
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.contains("peak"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (o.status.code(), o.stdout, stats)
}

fn same_for_any_threads(file: &Path) {
    for extra in [&[][..], &["--json", "-v", "--close"][..]] {
        let want = run(file, 1, extra);
        assert!(
            want.2.iter().any(|l| l.contains("decode.frames=")),
            "{}: no counters in {:?}",
            file.display(),
            want.2
        );
        for threads in 2..=4 {
            let got = run(file, threads, extra);
            assert!(
                got.0 == want.0 && got.1 == want.1,
                "{} {extra:?}: --threads {threads} prints otherwise than --threads 1\n\
                 --- 1 (exit {:?}):\n{}\n--- {threads} (exit {:?}):\n{}",
                file.display(),
                want.0,
                String::from_utf8_lossy(&want.1),
                got.0,
                String::from_utf8_lossy(&got.1),
            );
            assert_eq!(
                got.2,
                want.2,
                "{} {extra:?}: --stats, --threads {threads}",
                file.display()
            );
        }
    }
}

#[test]
fn fixtures_print_the_same_for_any_thread_count() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    assert!(files.len() > 10, "fixtures missing");
    for f in &files {
        same_for_any_threads(f);
    }
}

#[test]
fn generated_bench_files_print_the_same_for_any_thread_count() {
    let dir = std::env::temp_dir().join(format!("mtlsniff-walk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let templates = synth::load_templates(&fixtures());
    let mixed = dir.join("mixed.pcap");
    let tiny = dir.join("tiny.pcap");
    let labels = dir.join("labels.tsv");
    let stats = synth::gen_mixed(&mixed, &labels, &templates, 600);
    assert!(stats.packets > 10_000, "{stats:?}");
    synth::gen_tiny(&tiny, &labels, &templates, 60);
    same_for_any_threads(&mixed);
    same_for_any_threads(&tiny);
    let _ = std::fs::remove_dir_all(&dir);
}
