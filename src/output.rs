//! placeholder: output (being written)
