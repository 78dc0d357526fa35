//! The rule for test data in ../shared (tests/support/shared.rs), tested
//! both ways: under CI a missing ../shared fails the test that needs it,
//! naming the path; elsewhere that test prints SKIP and passes. The last
//! test runs this binary's own `probe` (ignored otherwise) in a child with
//! `CI` and `MTLSNIFF_SHARED` set, so the environment is read for real.

#[path = "support/mod.rs"]
mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use support::shared;

#[test]
fn ci_is_any_value_but_empty_zero_or_false() {
    for (value, ci) in [
        (None, false),
        (Some(""), false),
        (Some("0"), false),
        (Some("false"), false),
        (Some("FALSE"), false),
        (Some("true"), true),
        (Some("1"), true),
        (Some("yes"), true),
    ] {
        assert_eq!(shared::is_ci(value.map(OsStr::new)), ci, "CI={value:?}");
    }
}

#[test]
fn the_shared_root_is_beside_the_repository_unless_named() {
    let default = shared::root_from(None);
    assert!(default.ends_with("../shared"), "{}", default.display());
    assert_eq!(
        default.parent(),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").as_path())
    );
    assert_eq!(shared::root_from(Some(OsStr::new(""))), default);
    assert_eq!(
        shared::root_from(Some(OsStr::new("/elsewhere"))),
        Path::new("/elsewhere")
    );
}

#[test]
fn missing_data_skips_locally() {
    assert_eq!(
        shared::missing(Path::new("/no/such/dir"), "a test", false),
        None
    );
}

#[test]
fn missing_data_fails_under_ci_naming_the_path() {
    let err =
        std::panic::catch_unwind(|| shared::missing(Path::new("/no/such/dir"), "a test", true))
            .expect_err("CI must fail, not skip");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("/no/such/dir") && msg.contains("a test"),
        "{msg}"
    );
}

/// Asks for the public captures; run by the test below, in a child.
#[test]
#[ignore = "run in a child by a_ci_run_without_shared_data_fails"]
fn probe() {
    let Some(dir) = shared::public("probe") else {
        return;
    };
    assert!(dir.join("truth.tsv").is_file());
}

fn run_probe(ci: Option<&str>, shared_dir: &Path) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args(["--exact", "probe", "--include-ignored", "--nocapture"])
        .env(shared::ENV, shared_dir)
        .env_remove("CI");
    if let Some(v) = ci {
        cmd.env("CI", v);
    }
    let out = cmd.output().expect("run the probe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_ci_run_without_shared_data_fails() {
    let missing = std::env::temp_dir().join(format!("mtlsniff-no-shared-{}", std::process::id()));
    assert!(!missing.exists());
    let (ok, err) = run_probe(Some("true"), &missing);
    assert!(!ok, "CI=true with no shared data passed:\n{err}");
    assert!(err.contains("is absent, and CI is set"), "{err}");
    let (ok, err) = run_probe(None, &missing);
    assert!(ok, "a local run with no shared data failed:\n{err}");
    assert!(err.contains("SKIP: probe did not run"), "{err}");
    let (ok, err) = run_probe(Some("false"), &missing);
    assert!(ok && err.contains("SKIP:"), "CI=false is not CI:\n{err}");
}
