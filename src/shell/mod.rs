//! The shell: the command line (`cli`: clap arguments to a validated
//! configuration, no I/O between) and least privilege (`privilege`:
//! capabilities, no-new-privileges, `-Z`). `main.rs` wires these to the
//! pipeline.

pub mod cli;
pub mod privilege;
