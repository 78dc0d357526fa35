//! Capture stage: where frames come from and what they become. `source`
//! owns libpcap (file, stdin, interface, filter, kernel statistics),
//! `mapped` walks a classic pcap file in place from a memory mapping and
//! `mapped_ng` a pcapng file, `window` keeps either walk's resident
//! pages bounded (released behind the walk), `stdin` reads `-r -` as its bytes arrive (pcap and pcapng), `fanout`
//! joins N live captures in one AF_PACKET fanout group,
//! `decode` turns one frame into an owned `Segment` (link, tunnel, IP and
//! TCP headers), `shard` places a frame's flow from its addresses and
//! ports alone (walk mode's minimal parse), and `segment` holds the types every later stage shares
//! (`Segment`, `FlowKey`, `Endpoint`, `Timestamp`), and `counters` the
//! macro that declares counter structs (decode's here, the engine's in
//! flow). Nothing here keeps state between frames or looks inside TCP
//! payloads.

pub mod counters;
pub mod decode;
pub mod fanout;
pub mod mapped;
pub mod mapped_ng;
#[cfg(test)]
pub(crate) mod pcapng_build;
pub mod segment;
pub mod shard;
pub mod source;
pub mod stdin;
pub mod window;
