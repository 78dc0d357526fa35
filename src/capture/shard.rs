//! The minimal parse of walk mode (`pipeline/walk.rs`): which shard a
//! frame's flow belongs to, read from the link header, the IPv4 or IPv6
//! addresses and the TCP ports only, so every walker can tell in a few
//! loads whether the frame is its own without decoding it in full.
//!
//! It handles the common shapes only: Ethernet (up to two VLAN tags), raw
//! IP and Linux cooked captures; IPv4 that is not a fragment and IPv6 whose
//! first next header is TCP. Anything else is `Place::Unknown`, and the
//! caller decodes it in full. Invariant (the proptest below checks it
//! against `decode::decode_borrowed`): whenever full decode yields a
//! segment, `place` says either `Unknown` or exactly that segment's
//! `FlowKey::shard`. A frame placed here that full decode then drops is
//! fine: only its owner decodes it, so it is counted once. Never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::capture::decode::Frame;
use crate::capture::segment::{Endpoint, shard_of};

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The shard of its TCP flow, if full decode finds one.
    Shard(usize),
    /// Not read here: decode it in full to find out.
    Unknown,
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;

fn be16(d: &[u8], at: usize) -> Option<u16> {
    d.get(at..)?
        .first_chunk::<2>()
        .map(|b| u16::from_be_bytes(*b))
}

/// The shard among `shards` of the frame's flow, or `Unknown`.
pub fn place(frame: &Frame<'_>, shards: usize) -> Place {
    ends(frame).map_or(Place::Unknown, |(a, b)| {
        Place::Shard(shard_of(a, b, shards))
    })
}

/// The two endpoints of the frame's TCP segment, as full decode would
/// name them, when the frame has one of the shapes read here.
fn ends(frame: &Frame<'_>) -> Option<(Endpoint, Endpoint)> {
    let d = frame.data;
    let (v4, ip) = match frame.link.0 {
        1 => ether(d)?,
        12 | 14 | 101 => (d.first()? >> 4 == 4, d),
        228 => (true, d),
        229 => (false, d),
        // Linux cooked v1 and v2: an ethertype, unless ARPHRD_NETLINK.
        113 if be16(d, 2)? != 824 => ether_type(be16(d, 14)?, d.get(16..)?)?,
        276 if be16(d, 8)? != 824 => ether_type(be16(d, 0)?, d.get(20..)?)?,
        _ => return None,
    };
    if v4 { ipv4(ip) } else { ipv6(ip) }
}

/// Ethernet II with at most two 802.1Q / 802.1ad tags.
fn ether(d: &[u8]) -> Option<(bool, &[u8])> {
    let mut t = be16(d, 12)?;
    let mut at = 14;
    for _ in 0..2 {
        if !matches!(t, 0x8100 | 0x88a8 | 0x9100 | 0x9200) {
            break;
        }
        t = be16(d, at + 2)?;
        at += 4;
    }
    ether_type(t, d.get(at..)?)
}

fn ether_type(t: u16, rest: &[u8]) -> Option<(bool, &[u8])> {
    match t {
        ETH_IPV4 => Some((true, rest)),
        ETH_IPV6 => Some((false, rest)),
        _ => None,
    }
}

fn ipv4(d: &[u8]) -> Option<(Endpoint, Endpoint)> {
    let head: &[u8; 20] = d.first_chunk()?;
    let ihl = usize::from(head[0] & 0x0f) * 4;
    // Fragments (MF set or an offset) and other protocols: full decode.
    let fragment = u16::from_be_bytes([head[6], head[7]]) & 0x3fff != 0;
    if head[0] >> 4 != 4 || ihl < 20 || fragment || head[9] != IPPROTO_TCP {
        return None;
    }
    let src: [u8; 4] = *head[12..].first_chunk()?;
    let dst: [u8; 4] = *head[16..].first_chunk()?;
    let ports: &[u8; 4] = d.get(ihl..)?.first_chunk()?;
    Some(endpoints(
        IpAddr::V4(Ipv4Addr::from(src)),
        IpAddr::V4(Ipv4Addr::from(dst)),
        ports,
    ))
}

fn ipv6(d: &[u8]) -> Option<(Endpoint, Endpoint)> {
    let head: &[u8; 40] = d.first_chunk()?;
    if head[0] >> 4 != 6 || head[6] != IPPROTO_TCP {
        return None;
    }
    let src: [u8; 16] = *head[8..].first_chunk()?;
    let dst: [u8; 16] = *head[24..].first_chunk()?;
    let ports: &[u8; 4] = d.get(40..)?.first_chunk()?;
    Some(endpoints(
        IpAddr::V6(Ipv6Addr::from(src)),
        IpAddr::V6(Ipv6Addr::from(dst)),
        ports,
    ))
}

fn endpoints(src: IpAddr, dst: IpAddr, ports: &[u8; 4]) -> (Endpoint, Endpoint) {
    (
        Endpoint {
            ip: src,
            port: u16::from_be_bytes([ports[0], ports[1]]),
        },
        Endpoint {
            ip: dst,
            port: u16::from_be_bytes([ports[2], ports[3]]),
        },
    )
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::capture::decode::{DecodeCounters, LinkType, decode_borrowed};
    use crate::capture::segment::Timestamp;
    use proptest::prelude::*;

    /// An Ethernet frame with optional VLAN tags, IPv4 or IPv6, and a
    /// TCP header with the ACK flag and `payload`.
    /// IPv4 carries `opts` words of options (NOPs).
    fn frame_bytes(v6: bool, vlans: usize, ports: (u16, u16), addr: u8, opts: u8) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for _ in 0..vlans {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&ports.0.to_be_bytes());
        tcp.extend_from_slice(&ports.1.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(b"hello");
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&u16::try_from(tcp.len()).unwrap().to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&[addr; 16]);
            f.extend_from_slice(&[addr.wrapping_add(1); 16]);
        } else {
            let ihl = 5 + opts;
            f.extend_from_slice(&[0x08, 0x00, 0x40 | ihl, 0]);
            let total = usize::from(ihl) * 4 + tcp.len();
            f.extend_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            f.extend_from_slice(&[10, 0, 0, addr, 10, 0, 1, addr.wrapping_add(1)]);
            f.extend(std::iter::repeat_n(1u8, usize::from(opts) * 4));
        }
        f.extend_from_slice(&tcp);
        f
    }

    fn check(link: i32, data: &[u8], shards: usize) -> Result<(), TestCaseError> {
        let frame = Frame {
            ts: Timestamp(0),
            link: LinkType(link),
            data,
            orig_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
        };
        let placed = place(&frame, shards);
        let mut c = DecodeCounters::default();
        if let Some(seg) = decode_borrowed(&frame, &mut c) {
            let want = seg.key().shard(shards);
            prop_assert!(
                placed == Place::Unknown || placed == Place::Shard(want),
                "placed {placed:?}, full decode's shard {want}"
            );
        }
        Ok(())
    }

    #[test]
    fn places_the_common_shapes_as_full_decode_does() {
        for v6 in [false, true] {
            for vlans in 0..3 {
                let f = frame_bytes(v6, vlans, (443, 50_123), 7, 1);
                let frame = Frame {
                    ts: Timestamp(0),
                    link: LinkType(1),
                    data: &f,
                    orig_len: 0,
                };
                let seg = decode_borrowed(&frame, &mut DecodeCounters::default()).unwrap();
                assert_eq!(place(&frame, 5), Place::Shard(seg.key().shard(5)));
                // Raw IP: the same flow, the same shard.
                let raw = Frame {
                    link: LinkType(101),
                    data: &f[14 + 4 * vlans..],
                    ..frame
                };
                assert_eq!(place(&raw, 5), Place::Shard(seg.key().shard(5)));
            }
        }
        let arp = Frame {
            ts: Timestamp(0),
            link: LinkType(1),
            data: &[0x08, 0x06][..],
            orig_len: 2,
        };
        assert_eq!(place(&arp, 3), Place::Unknown);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Well-formed frames with some bytes overwritten, on the link types
        /// the minimal parse reads and a few it does not.
        #[test]
        fn mutated_frames_never_place_a_segment_elsewhere(
            v6 in any::<bool>(),
            vlans in 0usize..4,
            ports in any::<(u16, u16)>(),
            addr in any::<u8>(),
            opts in 0u8..4,
            edits in prop::collection::vec((0usize..120, any::<u8>()), 0..6),
            cut in 0usize..140,
            link in prop::sample::select(vec![1, 12, 101, 228, 229, 113, 276, 0]),
            shards in 1usize..6,
        ) {
            let mut f = frame_bytes(v6, vlans, ports, addr, opts);
            let skip = 14 + 4 * vlans;
            let mut data = match link {
                1 => f.clone(),
                113 => [&[0u8; 14][..], &f[12 + 4 * vlans..]].concat(),
                276 => {
                    let mut h = [0u8; 20];
                    h[..2].copy_from_slice(&f[12 + 4 * vlans..14 + 4 * vlans]);
                    [&h[..], &f[skip..]].concat()
                }
                _ => f.split_off(skip),
            };
            for (at, b) in edits {
                if let Some(x) = data.get_mut(at) {
                    *x = b;
                }
            }
            data.truncate(cut.max(1));
            check(link, &data, shards)?;
        }

        #[test]
        fn random_frames_never_place_a_segment_elsewhere(
            data in prop::collection::vec(any::<u8>(), 0..100),
            link in prop::sample::select(vec![1, 12, 101, 228, 229, 113, 276]),
        ) {
            check(link, &data, 4)?;
        }
    }
}
