//! Test support that every crate testing mtlsniff shares: the one set of
//! frame builders (`frames`), the rule for data in ../shared (`shared`),
//! and the processes tests start and query over loopback (`processes`).
//! Nothing here decides what a test expects: it builds input and finds
//! data.
//!
//! Why files included by `#[path]` and not a crate: the library's unit
//! tests (decode.rs) need the builders too, and a dev-dependency crate
//! that depends on nothing of mtlsniff is exactly what a `#[path]` include
//! is, without a workspace member, a Cargo.toml entry per consumer, or a
//! second copy of etherparse's version. The price is the rule that keeps
//! it includable from inside and outside the library: std and etherparse
//! only, never `mtlsniff` or `crate` (inside the library the crate is
//! `crate`, outside it `mtlsniff`). Consumers: decode.rs's `support`
//! module, tests/*.rs (`#[path = "support/mod.rs"] mod support;`),
//! tests/hostile/wire.rs, benches/gen/mod.rs and fuzz/examples/seeds.rs
//! (`frames.rs` alone).

#![allow(dead_code)]

pub mod frames;
pub mod processes;
pub mod shared;
