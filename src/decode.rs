//! placeholder: decode (being written)
