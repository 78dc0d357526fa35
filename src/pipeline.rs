//! placeholder: pipeline (being written)
