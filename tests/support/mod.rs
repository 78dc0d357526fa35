//! Test support that every crate testing mtlsniff shares: the one set of
//! frame builders (`frames`) and the rule for data in ../shared (`shared`).
//! Included by `#[path]` from the integration tests, the benches, the fuzz
//! crate and the library's unit tests, so it depends on nothing but std
//! and etherparse, never on mtlsniff itself (inside the library that crate
//! is `crate`, outside it `mtlsniff`). Nothing here decides what a test
//! expects: it builds input and finds data.

#![allow(dead_code)]

pub mod frames;
pub mod shared;
