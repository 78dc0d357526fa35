//! mtlsniff: a passive TLS / mTLS detector for packet captures.
//!
//! The library holds the whole pipeline so that tests, benches and fuzz
//! targets drive it in-process; `main.rs` is a thin shell. Data flows
//! capture -> decode -> (shard) -> engine (reassembly + classify) -> output
//! (printer, and `answers`: edges, verify mode, metrics, progress). Only
//! `pipeline` makes the pipeline's threads; `metrics` runs its one HTTP
//! serving thread.

pub mod answers;
pub mod budget;
pub mod calibration;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod decode;
pub mod decrypt;
pub mod edges;
pub mod engine;
pub mod expect;
pub mod gauges;
pub mod graph;
pub mod identity;
pub mod keylog;
pub mod mesh;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod plaintext;
pub mod privilege;
pub mod progress;
pub mod proof;
pub mod reassembly;
pub mod resumption;
pub mod segment;
pub mod stats;
pub mod tls;
pub mod verdict;
