//! cargo-fuzz target `decode`: the input layout and the invariants checked
//! are documented at `mtlsniff_fuzz::run_decode` (fuzz/src/lib.rs), which
//! `tests/fuzz_regressions.rs` also runs on every committed reproducer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mtlsniff_fuzz::run_decode(data));
