//! The shell: the command line (`cli`: clap arguments to a validated
//! configuration, no I/O between), what that configuration asks of a run
//! (`wiring`), the end of a run and its exit status (`ending`), and least
//! privilege (`privilege`: capabilities, no-new-privileges, `-Z`).
//! `main.rs` wires these to the process (terminals, signals, sockets) and
//! to the pipeline. Nothing below the shell depends on it.

pub mod cli;
pub mod ending;
pub mod privilege;
pub mod wiring;
