//! Flow stage: one worker's view of TCP. `engine` owns the bounded flow
//! table, client and server roles, SYN/FIN/RST, and pumps each direction's
//! contiguous bytes into the flow's classifier; `reassembly` owns one
//! direction's byte stream; `redirect` joins the two halves an iptables
//! REDIRECT makes of one connection. Nothing here parses TLS or formats
//! output.

pub mod engine;
pub mod reassembly;
pub mod redirect;
