//! Report stage: everything after a verdict, in the output thread, in
//! deterministic order. Views (`output`: text and JSON lines; `stats`: the
//! summary), answers derived from the ordered reports (`answers`, `edges`,
//! `expect`, `metrics`, `graph`, `progress`, `calibration`), the `--only`
//! display filter (`only`), the link of
//! resumed sessions (`resumption`) and the atomics other threads publish to
//! (`gauges`). Nothing here looks at packets.

pub mod answers;
pub mod calibration;
pub mod edges;
pub mod escape;
pub mod expect;
pub mod gauges;
pub mod graph;
pub mod metrics;
pub mod only;
pub mod output;
pub mod progress;
pub mod resumption;
pub mod stats;
pub mod workloads;
