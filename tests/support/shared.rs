//! Where the shared, never-committed test data lives, and what a test does
//! when it is missing. The data is `../shared` beside the repository (the
//! public captures in `pcaps/public/` and their truth; the project must
//! never commit their bytes), or the directory `MTLSNIFF_SHARED` names.
//!
//! Missing data under CI (`CI` set to anything but empty, `0` or `false`,
//! as `.ci/run`'s environment and every CI service set it) fails the test,
//! naming the path: a CI run cannot pass with its weight-carrying tests
//! skipped. Elsewhere the test prints `SKIP: <what> did not run: <path> is
//! absent` and returns. Every test that reads `../shared` asks here, and
//! only here (through `tests/support/mod.rs`, included by `#[path]`).
//! Standard library only; it never writes anywhere.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Names another directory to use instead of `../shared` (a test of the
/// CI rule points it at one that does not exist).
pub const ENV: &str = "MTLSNIFF_SHARED";

/// The shared data directory: `$MTLSNIFF_SHARED`, else `../shared`
/// relative to the repository root.
pub fn root() -> PathBuf {
    root_from(std::env::var_os(ENV).as_deref())
}

/// `root()` for a given value of `MTLSNIFF_SHARED`.
pub fn root_from(value: Option<&OsStr>) -> PathBuf {
    match value {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

/// Whether this run is a CI run, from the value of `CI`.
pub fn is_ci(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// `root()/relative` when it exists. When it does not: under CI a panic
/// naming the path and `what` (the test that needed it); otherwise a SKIP
/// line on stderr and `None`, and the caller returns.
pub fn require(relative: &str, what: &str) -> Option<PathBuf> {
    let path = root().join(relative);
    if path.exists() {
        return Some(path);
    }
    missing(&path, what, is_ci(std::env::var_os("CI").as_deref()))
}

/// The public captures directory (`pcaps/public`, with `truth.tsv`).
pub fn public(what: &str) -> Option<PathBuf> {
    require("pcaps/public/truth.tsv", what).and_then(|truth| truth.parent().map(Path::to_path_buf))
}

/// One public capture, by file name.
pub fn public_capture(name: &str, what: &str) -> Option<PathBuf> {
    require(&format!("pcaps/public/{name}"), what)
}

/// The decision for a missing path, apart from the environment so it can
/// be tested both ways.
pub fn missing(path: &Path, what: &str, ci: bool) -> Option<PathBuf> {
    if ci {
        panic!(
            "{what}: {} is absent, and CI is set: tests that need the shared \
             data must run under CI (put the data at ../shared beside the \
             repository, or name it with {ENV}=DIR)",
            path.display()
        );
    }
    eprintln!("SKIP: {what} did not run: {} is absent", path.display());
    None
}
