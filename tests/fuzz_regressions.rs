//! Fuzz regressions under plain `cargo test`: every file in
//! `tests/fuzz-regressions/<target>/` (a minimized input that once crashed
//! a fuzz target) and in the committed seed set `fuzz/seeds/<target>/` is
//! run through the same function the cargo-fuzz target calls. The harness
//! (`fuzz/src/lib.rs`) is included by path, so there is one copy of the
//! input formats and invariants, and the main build never depends on the
//! fuzz crate or a nightly flag. Set `MTLSNIFF_FUZZ_CORPUS=fuzz/corpus` to
//! replay a whole generated corpus the same way.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

/// Every file directly under `dir/<target>/`, sorted; none when absent.
fn inputs(dir: &Path, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

/// Run every input of `target` found under `dir`; a panic names the file.
fn replay(dir: &Path, target: &str) -> usize {
    let files = inputs(dir, target);
    for path in &files {
        let data = std::fs::read(path).unwrap();
        let ran = std::panic::catch_unwind(|| harness::run_target(target, &data));
        match ran {
            Ok(true) => {}
            Ok(false) => panic!("unknown fuzz target {target}"),
            Err(e) => std::panic::resume_unwind(Box::new(format!(
                "{} ({target}) panicked: {}",
                path.display(),
                e.downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("?")
            ))),
        }
    }
    files.len()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_fuzz_reproducers_do_not_panic() {
    for target in harness::TARGETS {
        let n = replay(&root().join("tests/fuzz-regressions"), target);
        eprintln!("fuzz regressions: {target}: {n} input(s)");
    }
}

#[test]
fn committed_fuzz_seeds_pass_the_target_invariants() {
    // fuzz/seeds/README.md: written by `seeds --committed`, from fixtures/
    // and built frames only; every target has its own seeds.
    for target in harness::TARGETS {
        let n = replay(&root().join("fuzz/seeds"), target);
        assert!(
            n > 0,
            "fuzz/seeds/{target}/ is empty: regenerate with `(cd fuzz && cargo run --example seeds -- --committed)`"
        );
    }
}

#[test]
fn a_generated_corpus_replays_when_asked() {
    let Some(dir) = std::env::var_os("MTLSNIFF_FUZZ_CORPUS") else {
        eprintln!("MTLSNIFF_FUZZ_CORPUS not set: no generated corpus replayed");
        return;
    };
    let dir = root().join(dir);
    for target in harness::TARGETS {
        let n = replay(&dir, target);
        eprintln!("{}: {target}: {n} input(s)", dir.display());
    }
}
