//! placeholder: tls (being written)
