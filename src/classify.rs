//! placeholder: classify (being written)
