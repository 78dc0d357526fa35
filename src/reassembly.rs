//! placeholder: reassembly (being written)
