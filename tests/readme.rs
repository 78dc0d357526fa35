//! README examples are tests (issue 16 §5): every ```console block in
//! README.md is run against the bundled fixtures by trycmd, from the
//! repository root, and its output (stdout, then stderr) and exit status
//! are checked. Examples that need a live interface, a cluster or a file
//! the reader supplies are ```sh blocks and are not run.
//!
//! `TRYCMD=overwrite cargo test --test readme` rewrites the blocks after
//! an intended output change; review the diff.

#[test]
fn readme_console_examples_run_as_written() {
    trycmd::TestCases::new()
        .register_bin("mtlsniff", trycmd::cargo::cargo_bin!("mtlsniff"))
        .case("README.md");
}
