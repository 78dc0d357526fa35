//! mtlsniff: a passive TLS / mTLS detector for packet captures.
//!
//! The library holds the whole pipeline so that tests, benches and fuzz
//! targets drive it in-process; `main.rs` is a thin shell. The folders are
//! the stages, and dependencies point one way, down this list:
//! `capture` (frames in, segments out) -> `tls` (record layer, key logs,
//! decryption, certificates) -> `classify` (the rules that read a flow's
//! bytes into evidence) -> `verdict` (the model, and the one place that
//! assembles a verdict) -> `flow` (the per-worker engine: flow table,
//! reassembly) -> `workload` (pod addresses to Kubernetes workloads) ->
//! `report` (views and answers over the ordered verdicts) ->
//! `pipeline` (threads, sharding, ordering, the offline entry point) ->
//! `shell` (command line, privileges). Only `pipeline` makes the pipeline's
//! threads; `report::metrics` runs its one HTTP serving thread.

// Functions fit on a screen (clippy.toml sets the threshold to 100 lines).
#![warn(clippy::too_many_lines)]

pub mod capture;
pub mod classify;
pub mod flow;
pub mod pipeline;
pub mod report;
pub mod shell;
pub mod tls;
pub mod verdict;
pub mod workload;
