//! Link-layer to TCP decode: one captured frame in, at most one owned TCP
//! `Segment` out.
//!
//! This module owns every byte between the pcap record and the TCP payload:
//! the link headers (Ethernet, BSD loopback, raw IP, Linux cooked v1/v2,
//! NFLOG, Cisco HDLC, radiotap + 802.11), VLAN/QinQ, PPPoE, MPLS, the tunnels
//! we look through (VXLAN, Geneve, GTP-U, GRE, ERSPAN I-III, IP-in-IP, at most
//! `MAX_TUNNELS` deep), IPv4/IPv6 with extension headers, and the fixed part
//! of the TCP header. It is the only file that uses `etherparse`; the link
//! headers etherparse lacks (or validates too strictly for a sniffer) are
//! parsed here by hand.
//!
//! It must not keep state between frames, reassemble anything, look at TCP
//! options (they are skipped by data offset, never walked: RFC 9293 §3.1),
//! log above `trace!`, allocate anything per frame except the payload copy,
//! or return an error: every frame that does not yield a segment increments
//! exactly one drop counter in `DecodeCounters` (`decode.frames` counts all
//! frames; `decode.ip_len_from_caplen` and `decode.truncated` are notes on
//! frames that still decode).
//!
//! Invariants: never panics on any input (no unwrap, expect or indexing;
//! every read is a checked `get`); the payload never extends past what the
//! innermost IP length allows (Ethernet minimum-frame padding and trailers
//! are not payload; only an IP length of 0, where the captured length is
//! all we have, leaves the frame end as the bound); `Segment::missing` is the payload the IP header
//! promised but the capture does not hold; the walk is bounded (at most 3
//! VLAN tags per Ethernet header, 8 MPLS labels, `MAX_TUNNELS`
//! decapsulations, `MAX_STEPS` steps).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use etherparse::{
    Ethernet2HeaderSlice, Ipv6ExtensionSlice, LaxIpSlice, SingleVlanHeaderSlice, TcpHeaderSlice,
    UdpHeaderSlice,
};
use tracing::trace;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::capture::counters::counters;
use crate::capture::segment::{Endpoint, Segment, TcpFlags, Timestamp};

/// A libpcap link-layer header type (DLT number, as in the pcap file header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkType(pub i32);

impl LinkType {
    /// BSD loopback, 4-byte address family in the capturing host's order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II.
    pub const EN10MB: LinkType = LinkType(1);
    /// Raw IP as libpcap's `DLT_RAW` numbers it on most platforms; reading a
    /// file with LINKTYPE_RAW (101) reports this value on Linux.
    pub const RAW_DLT12: LinkType = LinkType(12);
    /// Raw IP as OpenBSD numbers `DLT_RAW`.
    pub const RAW_DLT14: LinkType = LinkType(14);
    /// LINKTYPE_RAW: raw IPv4 or IPv6, version from the first nibble.
    pub const RAW: LinkType = LinkType(101);
    /// Cisco HDLC.
    pub const C_HDLC: LinkType = LinkType(104);
    /// IEEE 802.11 without a radio header.
    pub const IEEE802_11: LinkType = LinkType(105);
    /// OpenBSD loopback, address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Radiotap header followed by an 802.11 frame.
    pub const IEEE802_11_RADIOTAP: LinkType = LinkType(127);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux netfilter NFLOG.
    pub const NFLOG: LinkType = LinkType(239);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Whether `decode` understands frames of this link type.
    pub fn is_supported(self) -> bool {
        self.name() != "UNKNOWN"
    }

    /// The libpcap name, e.g. `EN10MB`, `LINUX_SLL2`; `UNKNOWN` otherwise.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "NULL",
            1 => "EN10MB",
            12 | 14 | 101 => "RAW",
            104 => "C_HDLC",
            105 => "IEEE802_11",
            108 => "LOOP",
            113 => "LINUX_SLL",
            127 => "IEEE802_11_RADIOTAP",
            228 => "IPV4",
            229 => "IPV6",
            239 => "NFLOG",
            276 => "LINUX_SLL2",
            _ => "UNKNOWN",
        }
    }
}

/// One captured frame, borrowed from the capture buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
    /// Length of the packet on the wire (>= data.len() when snaplen cut it).
    pub orig_len: u32,
}

counters! {
    /// Why frames were skipped, by reason. Every frame is counted in
    /// `frames`; every frame that yields no segment is counted in exactly
    /// one drop counter.
    pub struct DecodeCounters {
        /// Frames handed to `decode`.
        frames => "decode.frames",
        /// Segments `decode` returned.
        tcp_segments => "decode.tcp_segments",
        /// Frame shorter than its link header (M1).
        link_short => "decode.link_short",
        /// Unknown link type, ethertype, address family or encapsulation, or
        /// more than 3 VLAN tags (M2).
        unsupported_l2 => "decode.unsupported_l2",
        /// IPv4/IPv6 header unusable: IHL < 5, version mismatch, total length
        /// shorter than the header, header cut off (M3).
        ip_invalid => "decode.ip_invalid",
        /// IPv6 extension chain truncated, out of order, repeated, unknown or
        /// longer than 8 headers (M6).
        ipv6_ext_invalid => "decode.ipv6_ext_invalid",
        /// Note, not a drop: IP length 0 (TSO/GRO), length taken from the
        /// captured bytes (M4).
        ip_len_from_caplen => "decode.ip_len_from_caplen",
        /// Note, not a drop: the IP length promised more than was captured; the
        /// segment carries `missing` (M5).
        truncated => "decode.truncated",
        /// Not TCP (UDP that is no tunnel, ICMP, ARP, ...). Normal traffic.
        not_tcp => "decode.not_tcp",
        /// TCP data offset < 5 or beyond the captured bytes (M8).
        tcp_invalid => "decode.tcp_invalid",
        /// A VXLAN/Geneve/GTP-U/GRE header that is cut off or malformed.
        tunnel_invalid => "decode.tunnel_invalid",
        /// More than `MAX_TUNNELS` nested decapsulations.
        tunnel_too_deep => "decode.tunnel_too_deep",
        /// IPv4 or IPv6 fragment (M7); v1 does not reassemble IP.
        frag_seen => "ip.frag_seen",
        /// SYN+FIN, SYN+RST, no flags, or FIN+PSH+URG (M10).
        flags_invalid => "tcp.flags_invalid",
        /// A Cisco MetaData (TrustSec SGT) header that is cut off, of a
        /// version other than 1, or with an option other than the SGT.
        metadata_invalid => "decode.metadata_invalid",
    }
    with {
        /// The unknown ethertypes and link types behind `unsupported_l2`,
        /// and 0x8909 behind `metadata_invalid`, for the summary's warning
        /// (bounded).
        skipped: SkippedTypes,
    }
}

/// A header value `decode` skipped a frame for: an ethertype it does not
/// know, or a link type it does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skipped {
    EtherType(u16),
    Link(LinkType),
}

/// How many frames each unknown ethertype or link type cost, in a fixed
/// table: the first `SkippedTypes::SLOTS` distinct values get a slot each,
/// frames of any later value are counted in `other`. Bounded, no
/// allocation, and deterministic for a given frame order (file mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkippedTypes {
    slots: [Option<(Skipped, u64)>; SkippedTypes::SLOTS],
    /// Frames of values that found no free slot.
    pub other: u64,
}

impl SkippedTypes {
    /// Distinct values remembered.
    pub const SLOTS: usize = 8;

    /// Count `n` frames of `what`.
    pub fn add(&mut self, what: Skipped, n: u64) {
        for slot in &mut self.slots {
            match slot {
                Some((w, count)) if *w == what => {
                    *count = count.saturating_add(n);
                    return;
                }
                Some(_) => {}
                None => {
                    *slot = Some((what, n));
                    return;
                }
            }
        }
        self.other = self.other.saturating_add(n);
    }

    /// Adds `other`'s counts to these (another thread's, another file's).
    pub fn merge(&mut self, other: &SkippedTypes) {
        for (what, n) in other.slots.iter().flatten() {
            self.add(*what, *n);
        }
        self.other = self.other.saturating_add(other.other);
    }

    /// All frames counted.
    pub fn total(&self) -> u64 {
        self.slots
            .iter()
            .flatten()
            .fold(self.other, |t, (_, n)| t.saturating_add(*n))
    }

    /// The remembered values, most frames first (ties by value), so the
    /// order never depends on which thread saw a value first.
    pub fn top(&self) -> Vec<(Skipped, u64)> {
        let mut v: Vec<(Skipped, u64)> = self.slots.iter().flatten().copied().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Nested decapsulations (VXLAN, Geneve, GTP-U, GRE and ERSPAN, IP-in-IP,
/// Ethernet over MPLS) we follow before giving up, counting
/// `tunnel_too_deep`. Port mirrors nest deeply: a cloud mirror (VXLAN or
/// Geneve) of a GRE/ERSPAN session carrying a VXLAN overlay carrying
/// IP-in-IP (Calico) is four, so eight leaves room without letting a frame
/// loop: every level costs at least one header of the frame's bytes.
pub const MAX_TUNNELS: u8 = 8;
/// VLAN tags per Ethernet header (Suricata's "VLAN too many layers" limit).
const MAX_VLANS: u8 = 3;
/// MPLS labels before the bottom of stack.
const MAX_MPLS_LABELS: usize = 8;
/// RFC 8200 §4.1 recommends a small chain; more than this is an evasion.
const MAX_IPV6_EXTS: usize = 8;
/// Hard bound on walk steps; the limits above already bound it (a level is
/// at most Ethernet, 3 VLAN tags, a Cisco MetaData header, PPPoE or MPLS
/// and IP: 8 steps; `MAX_TUNNELS` + 1 levels fit in 72), this is defence in
/// depth against a future change making a cycle. Counted as
/// `tunnel_too_deep`.
const MAX_STEPS: usize = 128;

// Ethertypes (IEEE registry) and friends.
const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_TEB: u16 = 0x6558; // transparent Ethernet bridging (RFC 1701)
/// ERSPAN types I and II (port mirroring over GRE from switches and cloud
/// taps; draft-foschiano-erspan-03 §4.1-4.2).
const ETH_ERSPAN_2: u16 = 0x88be;
/// ERSPAN type III (draft-foschiano-erspan-03 §4.3).
const ETH_ERSPAN_3: u16 = 0x22eb;
const ETH_RARP: u16 = 0x8035; // also Cisco SLARP on C_HDLC
const ETH_VLAN: u16 = 0x8100; // IEEE 802.1Q
const ETH_IPV6: u16 = 0x86dd;
const ETH_SLOW: u16 = 0x8809; // LACP
const ETH_MPLS_UC: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE_DISC: u16 = 0x8863;
const ETH_PPPOE_SESS: u16 = 0x8864;
const ETH_EAPOL: u16 = 0x888e;
const ETH_QINQ: u16 = 0x88a8; // IEEE 802.1ad
const ETH_LLDP: u16 = 0x88cc;
const ETH_PTP: u16 = 0x88f7;
const ETH_LOOPBACK: u16 = 0x9000; // Ethernet configuration test protocol
const ETH_QINQ_9100: u16 = 0x9100; // pre-802.1ad QinQ
const ETH_QINQ_9200: u16 = 0x9200;
const CISCO_CDP: u16 = 0x2000;
/// Cisco MetaData, which carries TrustSec's security group tag (SGT).
const ETH_CISCO_METADATA: u16 = 0x8909;
/// The one Cisco MetaData option we read: the SGT, 2 bytes.
const CISCO_METADATA_SGT: u16 = 0x0001;

// IP protocol numbers (IANA).
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;

// UDP ports of the tunnels we decapsulate.
const PORT_VXLAN: u16 = 4789; // RFC 7348 §5
/// Linux's VXLAN port from before IANA's assignment, still the default of
/// `ip link add type vxlan` without `dstport`, flannel and Cilium: overlays
/// mirrored into a capture arrive on it.
const PORT_VXLAN_LINUX: u16 = 8472;
const PORT_GENEVE: u16 = 6081; // RFC 8926 §3.3
const PORT_GTPU: u16 = 2152; // 3GPP TS 29.281 §4.4.2

/// Which IP version the enclosing header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpHint {
    V4,
    V6,
    /// Raw IP link types, MPLS, GTP-U: trust the version nibble.
    Either,
}

/// Where the walk goes next.
#[derive(Debug)]
enum Step<'a> {
    /// An Ethernet II frame starting at its destination MAC.
    Ether(&'a [u8]),
    /// Bytes following a header that named them with an ethertype.
    EtherType(u16, &'a [u8]),
    /// An IP packet.
    Ip(IpHint, &'a [u8]),
    /// The walk reached TCP; the payload is borrowed from the frame.
    Done(Segment<&'a [u8]>),
}

/// Decode one frame to a TCP segment. Everything that is not a decodable
/// TCP segment is counted in `counters` and yields None. Never panics.
pub fn decode(frame: &Frame<'_>, counters: &mut DecodeCounters) -> Option<Segment> {
    decode_borrowed(frame, counters).map(|s| s.map_payload(<[u8]>::to_vec))
}

/// `decode` without copying the payload: it stays borrowed from the frame,
/// for the capture thread to copy into a batch arena.
///
/// The common frame (Ethernet II, then IPv4 or IPv6 with no extension
/// header, whole and unfragmented, then TCP with sane flags) takes
/// `fast_path`; anything else, or anything the fast path is unsure of,
/// takes the full walk (`decode_walk`), which gives the same answer for
/// the common frame too (the proptest below and the `decode` fuzz target
/// check it).
pub fn decode_borrowed<'f>(
    frame: &'f Frame<'f>,
    counters: &mut DecodeCounters,
) -> Option<Segment<&'f [u8]>> {
    if let Some(seg) = fast_path(frame) {
        counters.frames = counters.frames.saturating_add(1);
        counters.tcp_segments = counters.tcp_segments.saturating_add(1);
        return Some(seg);
    }
    decode_walk(frame, counters)
}

/// The full walk from the link header to TCP, without the fast path: what
/// `decode_borrowed` must always agree with (public for the fuzz target).
pub fn decode_walk<'f>(
    frame: &'f Frame<'f>,
    counters: &mut DecodeCounters,
) -> Option<Segment<&'f [u8]>> {
    counters.frames = counters.frames.saturating_add(1);
    let mut walk = Walk {
        frame,
        c: counters,
        tunnels: 0,
        vlans: 0,
        noted_truncated: false,
        noted_caplen: false,
    };
    let mut step = walk.link()?;
    for _ in 0..MAX_STEPS {
        step = match step {
            Step::Ether(d) => walk.ethernet(d)?,
            Step::EtherType(t, d) => walk.ether_type(t, d)?,
            Step::Ip(hint, d) => walk.ip(hint, d)?,
            Step::Done(_) => break,
        };
    }
    if let Step::Done(seg) = step {
        walk.c.tcp_segments = walk.c.tcp_segments.saturating_add(1);
        return Some(seg);
    }
    drop_frame(&mut walk.c.tunnel_too_deep, "walk step limit")
}

/// The common frame decoded by hand in one pass: Ethernet II with
/// ethertype IPv4 or IPv6; IPv4 whose total length is at least its header
/// and at most the captured bytes, not a fragment, protocol TCP; IPv6 with
/// a non-zero payload length inside the captured bytes and TCP as its next
/// header; a TCP header whose data offset fits and whose flags are not a
/// scan signature. None for anything else (a drop, a note, a tunnel, a
/// VLAN tag, a short or odd header): the full walk then decides, and
/// counts. What it returns is what the walk returns for the frame, with
/// `missing` 0 (the IP length is inside the capture).
#[inline]
fn fast_path<'f>(frame: &'f Frame<'f>) -> Option<Segment<&'f [u8]>> {
    if frame.link != LinkType::EN10MB {
        return None;
    }
    let (eth, ip) = frame.data.split_first_chunk::<14>()?;
    let (src, dst, tcp) = match u16::from_be_bytes([eth[12], eth[13]]) {
        ETH_IPV4 => fast_ipv4(ip)?,
        ETH_IPV6 => fast_ipv6(ip)?,
        _ => return None,
    };
    let h = tcp.first_chunk::<20>()?;
    let data_offset = usize::from(h[12] >> 4) * 4;
    let flags = h[13];
    if data_offset < 20 || bogus_flags(flags) {
        return None;
    }
    let payload = tcp.get(data_offset..)?;
    Some(Segment {
        ts: frame.ts,
        src: Endpoint {
            ip: src,
            port: u16::from_be_bytes([h[0], h[1]]),
        },
        dst: Endpoint {
            ip: dst,
            port: u16::from_be_bytes([h[2], h[3]]),
        },
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: TcpFlags(flags),
        window: u16::from_be_bytes([h[14], h[15]]),
        payload,
        missing: 0,
    })
}

/// `fast_path`'s IPv4 header (RFC 791): addresses and the TCP bytes the
/// total length bounds.
#[inline]
fn fast_ipv4(ip: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    let h = ip.first_chunk::<20>()?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    // More-fragments flag or a fragment offset: a fragment.
    let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
    let plain = h[0] >> 4 == 4 && ihl >= 20 && total >= ihl && !fragment;
    if !plain || h[9] != IPPROTO_TCP {
        return None;
    }
    let tcp = ip.get(ihl..total)?;
    let src = Ipv4Addr::from([h[12], h[13], h[14], h[15]]);
    let dst = Ipv4Addr::from([h[16], h[17], h[18], h[19]]);
    Some((src.into(), dst.into(), tcp))
}

/// `fast_path`'s IPv6 header (RFC 8200) with TCP as its next header.
#[inline]
fn fast_ipv6(ip: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    let (h, rest) = ip.split_first_chunk::<40>()?;
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if h[0] >> 4 != 6 || payload_len == 0 || h[6] != IPPROTO_TCP {
        return None;
    }
    let tcp = rest.get(..payload_len)?;
    let (src, dst) = h.get(8..)?.split_first_chunk::<16>()?;
    let dst = dst.first_chunk::<16>()?;
    Some((
        Ipv6Addr::from(*src).into(),
        Ipv6Addr::from(*dst).into(),
        tcp,
    ))
}

/// Scan signatures no stack sends (Zeek's TCP_christmas and friends): they
/// must not create flow state. "Null" means none of the six RFC 793 flags;
/// ECE/CWR alone do not make a real segment.
fn bogus_flags(flags: u8) -> bool {
    const FIN: u8 = TcpFlags::FIN;
    const SYN: u8 = TcpFlags::SYN;
    const RST: u8 = TcpFlags::RST;
    const PSH: u8 = TcpFlags::PSH;
    const URG: u8 = 0x20;
    flags & (SYN | FIN) == SYN | FIN
        || flags & (SYN | RST) == SYN | RST
        || flags & 0x3f == 0
        || flags & (FIN | PSH | URG) == FIN | PSH | URG
}

/// Count a dropped frame and say why at trace level.
fn drop_frame<T>(counter: &mut u64, why: &'static str) -> Option<T> {
    *counter = counter.saturating_add(1);
    trace!(why, "frame dropped");
    None
}

fn be16(d: &[u8], at: usize) -> Option<u16> {
    d.get(at..)?
        .first_chunk::<2>()
        .map(|b| u16::from_be_bytes(*b))
}

fn le16(d: &[u8], at: usize) -> Option<u16> {
    d.get(at..)?
        .first_chunk::<2>()
        .map(|b| u16::from_le_bytes(*b))
}

/// RFC 1042 / 802.1H SNAP header (AA AA 03, OUI 000000 or 0000F8) in
/// front of an ethertype, as 802.11 data frames and 802.3 LLC frames carry.
fn llc_snap(d: &[u8]) -> Option<(u16, &[u8])> {
    match d.first_chunk::<6>()? {
        [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00 | 0xf8] => Some((be16(d, 6)?, d.get(8..)?)),
        _ => None,
    }
}

/// One frame's walk from the link header to TCP. Lives on the stack.
struct Walk<'f, 'c> {
    frame: &'f Frame<'f>,
    c: &'c mut DecodeCounters,
    tunnels: u8,
    /// VLAN tags seen in the current Ethernet header.
    vlans: u8,
    noted_truncated: bool,
    noted_caplen: bool,
}

impl<'f> Walk<'f, '_> {
    /// Strip the link header named by the pcap link type.
    fn link(&mut self) -> Option<Step<'f>> {
        let d = self.frame.data;
        match self.frame.link.0 {
            0 | 108 => self.bsd_loopback(d),
            1 => Some(Step::Ether(d)),
            12 | 14 | 101 => Some(Step::Ip(IpHint::Either, d)),
            228 => Some(Step::Ip(IpHint::V4, d)),
            229 => Some(Step::Ip(IpHint::V6, d)),
            113 => self.linux_sll(d),
            276 => self.linux_sll2(d),
            239 => self.nflog(d),
            104 => self.c_hdlc(d),
            127 => self.radiotap(d),
            105 => self.ieee80211(d),
            _ => {
                self.c.skipped.add(Skipped::Link(self.frame.link), 1);
                drop_frame(&mut self.c.unsupported_l2, "unknown link type")
            }
        }
    }

    /// libpcap LINKTYPE_NULL / LINKTYPE_LOOP: a 4-byte address family, in
    /// the capturing host's byte order for NULL and network order for LOOP.
    /// We accept either order for both: the values cannot collide (2 read
    /// the wrong way round is 0x02000000). IPv6 is 24 (NetBSD/OpenBSD),
    /// 28 (FreeBSD), 30 (Darwin) or 10 (Linux).
    fn bsd_loopback(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let Some(af) = d.first_chunk::<4>() else {
            return drop_frame(&mut self.c.link_short, "loopback header");
        };
        let rest = d.get(4..).unwrap_or_default();
        let is = |v: u32| u32::from_le_bytes(*af) == v || u32::from_be_bytes(*af) == v;
        if is(2) {
            Some(Step::Ip(IpHint::V4, rest))
        } else if is(10) || is(24) || is(28) || is(30) {
            Some(Step::Ip(IpHint::V6, rest))
        } else {
            drop_frame(&mut self.c.unsupported_l2, "loopback address family")
        }
    }

    /// libpcap LINKTYPE_LINUX_SLL: 16 bytes, protocol (an ethertype for the
    /// link types we care about) at offset 14. Parsed by hand because
    /// etherparse rejects packet types and hardware types it does not know.
    fn linux_sll(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(hatype), Some(proto), Some(rest)) = (be16(d, 2), be16(d, 14), d.get(16..)) else {
            return drop_frame(&mut self.c.link_short, "SLL header");
        };
        self.cooked(hatype, proto, rest)
    }

    /// libpcap LINKTYPE_LINUX_SLL2: 20 bytes, protocol at offset 0, ARPHRD
    /// type at offset 8.
    fn linux_sll2(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(proto), Some(hatype), Some(rest)) = (be16(d, 0), be16(d, 8), d.get(20..)) else {
            return drop_frame(&mut self.c.link_short, "SLL2 header");
        };
        self.cooked(hatype, proto, rest)
    }

    fn cooked(&mut self, hatype: u16, proto: u16, rest: &'f [u8]) -> Option<Step<'f>> {
        // ARPHRD_NETLINK (824): the protocol is a netlink family, not an
        // ethertype. Protocols below 0x0600 are Linux pseudo-ethertypes
        // (ETH_P_802_3, ETH_P_802_2, CAN, ...), none of which carry IP here.
        if hatype == 824 || proto < 0x0600 {
            return drop_frame(&mut self.c.unsupported_l2, "SLL protocol");
        }
        Some(Step::EtherType(proto, rest))
    }

    /// libpcap LINKTYPE_NFLOG: a 4-byte header (family, version, resource
    /// id) then TLVs whose length and type are in the capturing host's byte
    /// order, each padded to 4 bytes. The packet is in NFULA_PAYLOAD (9).
    /// The host order is not recorded, so the walk is tried little-endian
    /// first (nearly every capture host) and then big-endian.
    fn nflog(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let Some(&family) = d.first() else {
            return drop_frame(&mut self.c.link_short, "NFLOG header");
        };
        if d.len() < 4 {
            return drop_frame(&mut self.c.link_short, "NFLOG header");
        }
        let payload = nflog_payload(d, le16).or_else(|| nflog_payload(d, be16));
        let Some(payload) = payload else {
            return drop_frame(&mut self.c.link_short, "NFLOG TLVs without payload");
        };
        let hint = match family {
            2 => IpHint::V4,
            10 => IpHint::V6,
            _ => IpHint::Either,
        };
        Some(Step::Ip(hint, payload))
    }

    /// libpcap LINKTYPE_C_HDLC: address, control, then a 2-byte ethertype.
    fn c_hdlc(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(proto), Some(rest)) = (be16(d, 2), d.get(4..)) else {
            return drop_frame(&mut self.c.link_short, "C_HDLC header");
        };
        Some(Step::EtherType(proto, rest))
    }

    /// Radiotap (radiotap.org): version 0, pad, little-endian total header
    /// length, then an 802.11 frame. A trailing FCS (radiotap flag 0x10) is
    /// not payload because the IP length bounds the payload.
    fn radiotap(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(&version), Some(len)) = (d.first(), le16(d, 2)) else {
            return drop_frame(&mut self.c.link_short, "radiotap header");
        };
        if version != 0 {
            return drop_frame(&mut self.c.unsupported_l2, "radiotap version");
        }
        match d.get(usize::from(len)..) {
            Some(rest) if len >= 8 => self.ieee80211(rest),
            _ => drop_frame(&mut self.c.link_short, "radiotap length"),
        }
    }

    /// IEEE 802.11-2020 §9.2.4.1 / §9.3.2.1: only data frames carry IP. The
    /// MAC header is 24 bytes, +6 for the fourth address (ToDS and FromDS),
    /// +2 for QoS control, +4 for HT control (Order flag on a QoS frame);
    /// then an RFC 1042 LLC/SNAP header with the ethertype.
    fn ieee80211(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(&fc0), Some(&fc1)) = (d.first(), d.get(1)) else {
            return drop_frame(&mut self.c.link_short, "802.11 header");
        };
        if fc0 & 0x03 != 0 {
            return drop_frame(&mut self.c.unsupported_l2, "802.11 protocol version");
        }
        let frame_type = (fc0 >> 2) & 0x03;
        let subtype = fc0 >> 4;
        // Management (0), control (1) and null-data subtypes (bit 2 set)
        // carry no IP.
        if frame_type != 2 || subtype & 0x04 != 0 {
            return drop_frame(&mut self.c.not_tcp, "802.11 frame without data");
        }
        if fc1 & 0x40 != 0 {
            return drop_frame(&mut self.c.unsupported_l2, "802.11 protected frame");
        }
        let qos = subtype & 0x08 != 0;
        let mut hlen = 24;
        if fc1 & 0x03 == 0x03 {
            hlen += 6;
        }
        if qos {
            // A-MSDU present (QoS control bit 7) wraps subframes, not SNAP.
            let qos_ctl = d.get(hlen).copied().unwrap_or(0);
            if qos_ctl & 0x80 != 0 {
                return drop_frame(&mut self.c.unsupported_l2, "802.11 A-MSDU");
            }
            hlen += 2;
            if fc1 & 0x80 != 0 {
                hlen += 4;
            }
        }
        let Some(body) = d.get(hlen..) else {
            return drop_frame(&mut self.c.link_short, "802.11 header");
        };
        match llc_snap(body) {
            Some((t, rest)) => Some(Step::EtherType(t, rest)),
            None => drop_frame(&mut self.c.unsupported_l2, "802.11 without LLC/SNAP"),
        }
    }

    /// Ethernet II (IEEE 802.3 §3.2.6). Starts a fresh VLAN count.
    fn ethernet(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        self.vlans = 0;
        let Ok(eth) = Ethernet2HeaderSlice::from_slice(d) else {
            return drop_frame(&mut self.c.link_short, "Ethernet header");
        };
        let rest = d.get(eth.slice().len()..).unwrap_or_default();
        let t = eth.ether_type().0;
        if t < 0x0600 {
            // IEEE 802.3 length field: LLC follows. Only SNAP can carry IP;
            // plain LLC is STP, CDP, NetBIOS and the like.
            return match llc_snap(rest) {
                Some((t, rest)) => Some(Step::EtherType(t, rest)),
                None => drop_frame(&mut self.c.not_tcp, "802.3 LLC frame"),
            };
        }
        Some(Step::EtherType(t, rest))
    }

    /// Dispatch on an ethertype (from Ethernet, a VLAN tag, SLL, C_HDLC,
    /// SNAP, GRE or Geneve).
    fn ether_type(&mut self, t: u16, d: &'f [u8]) -> Option<Step<'f>> {
        match t {
            ETH_IPV4 => Some(Step::Ip(IpHint::V4, d)),
            ETH_IPV6 => Some(Step::Ip(IpHint::V6, d)),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_9100 | ETH_QINQ_9200 => {
                // IEEE 802.1Q / 802.1ad tag: TCI then the next ethertype.
                self.vlans = self.vlans.saturating_add(1);
                if self.vlans > MAX_VLANS {
                    return drop_frame(&mut self.c.unsupported_l2, "too many VLAN tags");
                }
                let Ok(tag) = SingleVlanHeaderSlice::from_slice(d) else {
                    return drop_frame(&mut self.c.link_short, "VLAN tag");
                };
                let rest = d.get(tag.slice().len()..).unwrap_or_default();
                Some(Step::EtherType(tag.ether_type().0, rest))
            }
            ETH_PPPOE_SESS => self.pppoe(d),
            ETH_MPLS_UC | ETH_MPLS_MC => self.mpls(d),
            ETH_ARP | ETH_RARP | ETH_SLOW | ETH_PPPOE_DISC | ETH_EAPOL | ETH_LLDP | ETH_PTP
            | ETH_LOOPBACK | CISCO_CDP => drop_frame(&mut self.c.not_tcp, "non-IP ethertype"),
            ETH_CISCO_METADATA => self.cisco_metadata(d),
            _ => {
                self.c.skipped.add(Skipped::EtherType(t), 1);
                drop_frame(&mut self.c.unsupported_l2, "unknown ethertype")
            }
        }
    }

    /// Cisco MetaData (EtherType 0x8909, as Cisco TrustSec tags frames
    /// with their security group; Wireshark's `cmd` dissector): version
    /// (1), length (1), option type/length (2, the SGT option is 0x0001),
    /// the SGT (2), then the inner ethertype (2). The SGT is a policy tag,
    /// not an identity we report; the header is stepped over. Anything
    /// else under this ethertype is counted in `metadata_invalid`.
    fn cisco_metadata(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(&version), Some(option), Some(inner), Some(rest)) =
            (d.first(), be16(d, 2), be16(d, 6), d.get(8..))
        else {
            return self.bad_metadata("Cisco MetaData cut off");
        };
        if version != 1 || option != CISCO_METADATA_SGT {
            return self.bad_metadata("Cisco MetaData layout");
        }
        if inner == ETH_CISCO_METADATA {
            // One tag per frame; a second would only make a loop longer.
            return self.bad_metadata("Cisco MetaData twice");
        }
        Some(Step::EtherType(inner, rest))
    }

    /// A Cisco MetaData header we cannot step over: counted, and tallied
    /// under its ethertype for the summary's warning (the frame may hold
    /// a flow).
    fn bad_metadata(&mut self, why: &'static str) -> Option<Step<'f>> {
        self.c
            .skipped
            .add(Skipped::EtherType(ETH_CISCO_METADATA), 1);
        drop_frame(&mut self.c.metadata_invalid, why)
    }

    /// PPPoE session stage (RFC 2516 §4): ver/type 0x11, code, session id,
    /// length, then a 2-byte PPP protocol (RFC 1661; 0x0021 IPv4 per
    /// RFC 1332, 0x0057 IPv6 per RFC 5072).
    fn pppoe(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(&vt), Some(len), Some(proto)) = (d.first(), be16(d, 4), be16(d, 6)) else {
            return drop_frame(&mut self.c.link_short, "PPPoE header");
        };
        if vt != 0x11 {
            return drop_frame(&mut self.c.unsupported_l2, "PPPoE version");
        }
        // The PPPoE length covers the PPP protocol field and payload; it
        // bounds Ethernet padding when the inner IP length is 0.
        let end = 6usize.saturating_add(usize::from(len)).min(d.len());
        let rest = d.get(8..end).unwrap_or_default();
        match proto {
            0x0021 => Some(Step::Ip(IpHint::V4, rest)),
            0x0057 => Some(Step::Ip(IpHint::V6, rest)),
            // Network control (0x8xxx) and link control (0xcxxx) protocols.
            p if p >= 0x8000 => drop_frame(&mut self.c.not_tcp, "PPP control protocol"),
            _ => drop_frame(&mut self.c.unsupported_l2, "PPP protocol"),
        }
    }

    /// MPLS label stack (RFC 3032 §2.1): 4-byte entries until the
    /// bottom-of-stack bit. The payload type is not signalled; guess from the
    /// first nibble as routers do: 4 or 6 is IP, 0 is the RFC 4385
    /// pseudowire control word followed by Ethernet.
    fn mpls(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let mut at = 0usize;
        for _ in 0..MAX_MPLS_LABELS {
            let Some(&entry2) = d.get(at + 2) else {
                return drop_frame(&mut self.c.link_short, "MPLS label");
            };
            at += 4;
            if entry2 & 0x01 != 0 {
                let Some(rest) = d.get(at..) else {
                    return drop_frame(&mut self.c.link_short, "MPLS label");
                };
                return match rest.first().map(|b| b >> 4) {
                    Some(4) => Some(Step::Ip(IpHint::V4, rest)),
                    Some(6) => Some(Step::Ip(IpHint::V6, rest)),
                    Some(0) => {
                        self.enter_tunnel()?;
                        Some(Step::Ether(rest.get(4..).unwrap_or_default()))
                    }
                    _ => drop_frame(&mut self.c.unsupported_l2, "MPLS payload"),
                };
            }
        }
        drop_frame(&mut self.c.unsupported_l2, "MPLS label stack too deep")
    }

    /// Count one decapsulation; None (counted) past `MAX_TUNNELS`.
    fn enter_tunnel(&mut self) -> Option<()> {
        self.tunnels = self.tunnels.saturating_add(1);
        if self.tunnels > MAX_TUNNELS {
            return drop_frame(&mut self.c.tunnel_too_deep, "tunnel nesting");
        }
        Some(())
    }

    /// IPv4 (RFC 791) or IPv6 (RFC 8200) with extension headers, via
    /// etherparse's lax slicer (it tolerates length 0 and snaplen cuts).
    fn ip(&mut self, hint: IpHint, d: &'f [u8]) -> Option<Step<'f>> {
        let Some(&first) = d.first() else {
            return drop_frame(&mut self.c.ip_invalid, "empty IP packet");
        };
        let version = first >> 4;
        let version_ok = matches!(
            (hint, version),
            (IpHint::V4, 4) | (IpHint::V6, 6) | (IpHint::Either, 4 | 6)
        );
        if !version_ok {
            return drop_frame(&mut self.c.ip_invalid, "IP version");
        }
        // Length checks etherparse is lax about: it silently falls back to
        // the captured length when 0 < total length < header length, which
        // we count as invalid (M3); length 0 is TSO/GRO (M4).
        let (promised, len_from_caplen) = if version == 4 {
            let ihl = usize::from(first & 0x0f) * 4;
            let Some(total) = be16(d, 2) else {
                return drop_frame(&mut self.c.ip_invalid, "IPv4 header cut off");
            };
            if ihl < 20 {
                return drop_frame(&mut self.c.ip_invalid, "IPv4 IHL < 5");
            }
            let total = usize::from(total);
            if total != 0 && total < ihl {
                return drop_frame(&mut self.c.ip_invalid, "IPv4 total length < header");
            }
            (total, total == 0)
        } else {
            let Some(plen) = be16(d, 4) else {
                return drop_frame(&mut self.c.ip_invalid, "IPv6 header cut off");
            };
            (40 + usize::from(plen), plen == 0 && d.len() > 40)
        };
        let (ip, ext_err) = match LaxIpSlice::from_slice(d) {
            Ok(v) => v,
            Err(e) => {
                trace!(error = %e, "IP header");
                return drop_frame(&mut self.c.ip_invalid, "IP header");
            }
        };
        if let Some((e, _layer)) = ext_err {
            trace!(error = %e, "IP extension header");
            return match ip {
                LaxIpSlice::Ipv4(_) => drop_frame(&mut self.c.ip_invalid, "IPv4 AH"),
                LaxIpSlice::Ipv6(_) => drop_frame(&mut self.c.ipv6_ext_invalid, "IPv6 ext"),
            };
        }
        if let LaxIpSlice::Ipv6(v6) = &ip
            && !ipv6_ext_chain_ok(v6.extensions())
        {
            return drop_frame(&mut self.c.ipv6_ext_invalid, "IPv6 ext chain");
        }
        let payload = ip.payload();
        if payload.fragmented {
            return drop_frame(&mut self.c.frag_seen, "IP fragment");
        }
        if len_from_caplen && !self.noted_caplen {
            self.noted_caplen = true;
            self.c.ip_len_from_caplen = self.c.ip_len_from_caplen.saturating_add(1);
        }
        match payload.ip_number.0 {
            IPPROTO_TCP => {
                let missing = if payload.incomplete {
                    promised.saturating_sub(d.len())
                } else if len_from_caplen {
                    // No IP length to trust: what snaplen cut from the end
                    // of the frame is what the payload lacks.
                    let cap = self.frame.data.len();
                    usize::try_from(self.frame.orig_len).map_or(0, |o| o.saturating_sub(cap))
                } else {
                    0
                };
                let missing = u32::try_from(missing).unwrap_or(u32::MAX);
                self.tcp(&ip, payload.payload, missing).map(Step::Done)
            }
            IPPROTO_UDP => self.udp(payload.payload),
            IPPROTO_GRE => self.gre(payload.payload),
            IPPROTO_IPIP => {
                self.enter_tunnel()?;
                Some(Step::Ip(IpHint::V4, payload.payload))
            }
            IPPROTO_IPV6 => {
                self.enter_tunnel()?;
                Some(Step::Ip(IpHint::V6, payload.payload))
            }
            // Mobility (135), HIP (139), Shim6 (140) are extension headers
            // etherparse does not walk (RFC 8200 §4, IANA registry); 253
            // and 254 are the experimental values RFC 4727 allows as
            // extension headers: a chain we cannot walk, not "not TCP" (M6).
            135 | 139 | 140 | 253 | 254 if version == 6 => {
                drop_frame(&mut self.c.ipv6_ext_invalid, "IPv6 ext unsupported")
            }
            _ => drop_frame(&mut self.c.not_tcp, "not TCP"),
        }
    }

    /// TCP fixed header (RFC 9293 §3.1). Options are skipped by data offset.
    fn tcp(&mut self, ip: &LaxIpSlice<'_>, d: &'f [u8], missing: u32) -> Option<Segment<&'f [u8]>> {
        let tcp = match TcpHeaderSlice::from_slice(d) {
            Ok(t) => t,
            Err(e) => {
                trace!(error = %e, "TCP header");
                return drop_frame(&mut self.c.tcp_invalid, "TCP header");
            }
        };
        let hdr = tcp.slice();
        let flags = hdr.get(13).copied().unwrap_or(0);
        if bogus_flags(flags) {
            return drop_frame(&mut self.c.flags_invalid, "TCP flags");
        }
        if missing > 0 && !self.noted_truncated {
            self.noted_truncated = true;
            self.c.truncated = self.c.truncated.saturating_add(1);
        }
        let payload = d.get(hdr.len()..).unwrap_or_default();
        Some(Segment {
            ts: self.frame.ts,
            src: Endpoint {
                ip: ip.source_addr(),
                port: tcp.source_port(),
            },
            dst: Endpoint {
                ip: ip.destination_addr(),
                port: tcp.destination_port(),
            },
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags: TcpFlags(flags),
            window: tcp.window_size(),
            payload,
            missing,
        })
    }

    /// UDP (RFC 768): only tunnels, recognised by destination port.
    fn udp(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let Ok(udp) = UdpHeaderSlice::from_slice(d) else {
            return drop_frame(&mut self.c.not_tcp, "UDP header cut off");
        };
        // The UDP length bounds the body when it is sane (it is 0 for
        // jumbograms and may lie).
        let ulen = usize::from(udp.length());
        let end = if (8..=d.len()).contains(&ulen) {
            ulen
        } else {
            d.len()
        };
        let body = d.get(8..end).unwrap_or_default();
        match udp.destination_port() {
            PORT_VXLAN | PORT_VXLAN_LINUX => self.vxlan(body),
            PORT_GENEVE => self.geneve(body),
            PORT_GTPU => self.gtpu(body),
            _ => drop_frame(&mut self.c.not_tcp, "UDP"),
        }
    }

    /// VXLAN (RFC 7348 §5): 8-byte header, I flag (0x08) set for a valid
    /// VNI, then an inner Ethernet frame.
    fn vxlan(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(&flags), Some(inner)) = (d.first(), d.get(8..)) else {
            return drop_frame(&mut self.c.tunnel_invalid, "VXLAN header");
        };
        if flags & 0x08 == 0 {
            return drop_frame(&mut self.c.tunnel_invalid, "VXLAN I flag");
        }
        self.enter_tunnel()?;
        Some(Step::Ether(inner))
    }

    /// Geneve (RFC 8926 §3.4): version 0, options length in 4-byte words,
    /// protocol type an ethertype (0x6558 for Ethernet).
    fn geneve(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(&b0), Some(proto)) = (d.first(), be16(d, 2)) else {
            return drop_frame(&mut self.c.tunnel_invalid, "Geneve header");
        };
        if b0 >> 6 != 0 {
            return drop_frame(&mut self.c.tunnel_invalid, "Geneve version");
        }
        let hlen = 8 + usize::from(b0 & 0x3f) * 4;
        let Some(inner) = d.get(hlen..) else {
            return drop_frame(&mut self.c.tunnel_invalid, "Geneve options");
        };
        self.enter_tunnel()?;
        if proto == ETH_TEB {
            Some(Step::Ether(inner))
        } else {
            Some(Step::EtherType(proto, inner))
        }
    }

    /// GTP-U v1 (3GPP TS 29.281 §5.1-5.2): 8-byte header; if any of E, S,
    /// PN is set, 4 more bytes (sequence, N-PDU, next extension type);
    /// extension headers are length-prefixed in 4-byte units and end with
    /// the next type. Only G-PDU (0xFF) carries user IP packets.
    fn gtpu(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(&b0), Some(&msg), Some(len)) = (d.first(), d.get(1), be16(d, 2)) else {
            return drop_frame(&mut self.c.tunnel_invalid, "GTP-U header");
        };
        if b0 >> 5 != 1 || b0 & 0x10 == 0 {
            // Version 1 with PT=1; PT=0 is GTP' (charging), not user data.
            return drop_frame(&mut self.c.tunnel_invalid, "GTP-U version");
        }
        if msg != 0xff {
            return drop_frame(&mut self.c.not_tcp, "GTP-U signalling");
        }
        let end = 8usize.saturating_add(usize::from(len)).min(d.len());
        let mut at = 8usize;
        if b0 & 0x07 != 0 {
            at = 12;
            let mut next = d.get(11).copied().unwrap_or(0);
            // Each extension is at least 4 bytes, so 16 of them is already
            // beyond any real header; stop there.
            let mut exts = 0;
            while next != 0 {
                exts += 1;
                let units = d.get(at).copied().unwrap_or(0);
                if units == 0 || exts > 16 {
                    return drop_frame(&mut self.c.tunnel_invalid, "GTP-U extension");
                }
                at = at.saturating_add(usize::from(units) * 4);
                let Some(&n) = d.get(at.saturating_sub(1)) else {
                    return drop_frame(&mut self.c.tunnel_invalid, "GTP-U extension");
                };
                next = n;
            }
        }
        let Some(inner) = d.get(at..end.max(at)) else {
            return drop_frame(&mut self.c.tunnel_invalid, "GTP-U header");
        };
        if inner.is_empty() {
            return drop_frame(&mut self.c.not_tcp, "GTP-U empty");
        }
        self.enter_tunnel()?;
        Some(Step::Ip(IpHint::Either, inner))
    }

    /// GRE (RFC 2784 with the RFC 2890 key and sequence fields): flags,
    /// version 0, protocol type (an ethertype); checksum+reserved, key and
    /// sequence are 4 bytes each when their flag is set.
    fn gre(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(&f0), Some(&f1), Some(proto)) = (d.first(), d.get(1), be16(d, 2)) else {
            return drop_frame(&mut self.c.tunnel_invalid, "GRE header");
        };
        match f1 & 0x07 {
            0 => {}
            // Enhanced GRE for PPTP (RFC 2637 §4.1) carries PPP frames.
            1 => return drop_frame(&mut self.c.unsupported_l2, "GRE version 1 (PPTP)"),
            _ => return drop_frame(&mut self.c.tunnel_invalid, "GRE version"),
        }
        if f0 & 0x40 != 0 {
            // RFC 1701 source routing, deprecated by RFC 2784.
            return drop_frame(&mut self.c.tunnel_invalid, "GRE routing");
        }
        let hlen = 4
            + if f0 & 0x80 != 0 { 4 } else { 0 }
            + if f0 & 0x20 != 0 { 4 } else { 0 }
            + if f0 & 0x10 != 0 { 4 } else { 0 };
        let Some(inner) = d.get(hlen..) else {
            return drop_frame(&mut self.c.tunnel_invalid, "GRE header");
        };
        self.enter_tunnel()?;
        match proto {
            ETH_TEB => Some(Step::Ether(inner)),
            // Type I has no sequence number and no ERSPAN header: the
            // mirrored Ethernet frame follows GRE directly.
            ETH_ERSPAN_2 if f0 & 0x10 == 0 => Some(Step::Ether(inner)),
            ETH_ERSPAN_2 => self.erspan2(inner),
            ETH_ERSPAN_3 => self.erspan3(inner),
            _ => Some(Step::EtherType(proto, inner)),
        }
    }

    /// ERSPAN type II: an 8-byte header (version 1) before the mirrored
    /// Ethernet frame.
    fn erspan2(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        match (d.first().map(|b| b >> 4), d.get(8..)) {
            (Some(1), Some(frame)) => Some(Step::Ether(frame)),
            _ => drop_frame(&mut self.c.tunnel_invalid, "ERSPAN II header"),
        }
    }

    /// ERSPAN type III: a 12-byte header (version 2), 8 more bytes when its
    /// O flag announces the platform subheader; the frame type says whether
    /// an Ethernet frame (0) or a bare IP packet (2) follows.
    fn erspan3(&mut self, d: &'f [u8]) -> Option<Step<'f>> {
        let (Some(2), Some(&ft_byte), Some(&o_byte)) =
            (d.first().map(|b| b >> 4), d.get(10), d.get(11))
        else {
            return drop_frame(&mut self.c.tunnel_invalid, "ERSPAN III header");
        };
        let hlen = if o_byte & 0x01 != 0 { 20 } else { 12 };
        let Some(frame) = d.get(hlen..) else {
            return drop_frame(&mut self.c.tunnel_invalid, "ERSPAN III header");
        };
        match (ft_byte >> 2) & 0x1f {
            0 => Some(Step::Ether(frame)),
            2 => Some(Step::Ip(IpHint::Either, frame)),
            _ => drop_frame(&mut self.c.unsupported_l2, "ERSPAN III frame type"),
        }
    }
}

/// Walk NFLOG TLVs (Linux `nfnetlink_log.h`, libpcap `pcap/nflog.h`)
/// reading length and type with `rd`; the NFULA_PAYLOAD value, bounded by
/// the frame, or None when the walk does not reach one.
fn nflog_payload(d: &[u8], rd: fn(&[u8], usize) -> Option<u16>) -> Option<&[u8]> {
    const NFULA_PAYLOAD: u16 = 9;
    let mut at = 4usize;
    // Each TLV advances at least 4 bytes, so the walk ends by itself.
    while at < d.len() {
        let len = usize::from(rd(d, at)?);
        // The top bits of the type are netlink flags (NLA_F_NESTED,
        // NLA_F_NET_BYTEORDER).
        let ty = rd(d, at + 2)? & 0x3fff;
        if len < 4 {
            return None;
        }
        if ty == NFULA_PAYLOAD {
            let end = at.saturating_add(len).min(d.len());
            return d.get(at + 4..end);
        }
        // Values are padded to 4 bytes (NFA_ALIGN).
        at = at.saturating_add(len.saturating_add(3) & !3);
    }
    None
}

/// RFC 8200 §4.1: each extension header at most once, Destination Options
/// at most twice; more than `MAX_IPV6_EXTS` headers is an evasion
/// (suricata-verify ipv6-evasion). etherparse already rejects a Hop-by-Hop
/// header that is not first.
fn ipv6_ext_chain_ok(exts: &etherparse::Ipv6ExtensionsSlice<'_>) -> bool {
    let (mut n, mut routing, mut frag, mut auth, mut dest) = (0usize, 0u8, 0u8, 0u8, 0u8);
    for e in exts.clone() {
        n += 1;
        match e {
            Ipv6ExtensionSlice::HopByHop(_) => {}
            Ipv6ExtensionSlice::Routing(_) => routing += 1,
            Ipv6ExtensionSlice::Fragment(_) => frag += 1,
            Ipv6ExtensionSlice::DestinationOptions(_) => dest += 1,
            Ipv6ExtensionSlice::Authentication(_) => auth += 1,
        }
        if n > MAX_IPV6_EXTS {
            return false;
        }
    }
    routing <= 1 && frag <= 1 && auth <= 1 && dest <= 2
}

/// The test support every crate of the project shares (frame builders,
/// where ../shared is), declared here because a `#[path]` inside the
/// inline `tests` module would resolve under a `decode/` directory.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#[path = "../../tests/support/mod.rs"]
pub(crate) mod support;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::support::frames::{
        self, ethernet, gre, ipv4, ipv4_udp, ipv6, ipv6_ext, nflog, udp, vlan, vlans, vxlan,
    };
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    const PAYLOAD: &[u8] = b"\x16\x03\x01\x00\x05hello";

    // ---- inputs ---------------------------------------------------------
    //
    // Frames come from the project's one set of builders,
    // tests/support/frames.rs (declared above this module as `support`).

    /// IPv4 + TCP 10.0.0.1:40000 -> 10.0.0.2:443, ACK|PSH, seq 1000, ack 2000.
    fn v4_tcp(payload: &[u8]) -> Vec<u8> {
        frames::Tcp::new([10, 0, 0, 1], 40000, [10, 0, 0, 2], 443)
            .seq(1000)
            .ack(2000)
            .window(512)
            .flags(frames::ACK | frames::PSH)
            .ip(payload)
    }

    /// IPv6 + TCP [2001:db8::1]:40000 -> [2001:db8::2]:443, as `v4_tcp`.
    fn v6_tcp(payload: &[u8]) -> Vec<u8> {
        let a: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
        frames::Tcp::new(a, 40000, b, 443)
            .seq(1000)
            .ack(2000)
            .window(512)
            .flags(frames::ACK | frames::PSH)
            .ip(payload)
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn run(link: LinkType, data: &[u8]) -> (Option<Segment>, DecodeCounters) {
        run_orig(link, data, data.len() as u32)
    }

    fn run_orig(link: LinkType, data: &[u8], orig_len: u32) -> (Option<Segment>, DecodeCounters) {
        let mut c = DecodeCounters::default();
        let f = Frame {
            ts: Timestamp(7),
            link,
            data,
            orig_len,
        };
        let s = decode(&f, &mut c);
        (s, c)
    }

    /// Every frame counted once; a drop counts exactly one drop counter.
    fn assert_dropped(case: &str, link: LinkType, data: &[u8], want: &str) {
        let (s, c) = run(link, data);
        assert!(s.is_none(), "{case}: expected drop by {want}, got {s:?}");
        assert_eq!(c.frames, 1, "{case}");
        assert_eq!(c.tcp_segments, 0, "{case}");
        let drops: Vec<_> = c
            .entries()
            .into_iter()
            .filter(|(n, v)| {
                *v > 0
                    && !matches!(
                        *n,
                        "decode.frames" | "decode.ip_len_from_caplen" | "decode.truncated"
                    )
            })
            .collect();
        assert_eq!(drops, vec![(want, 1)], "{case}: counters {c:?}");
    }

    fn assert_v4_seg(case: &str, link: LinkType, data: &[u8]) -> Segment {
        let (s, c) = run(link, data);
        let s = s.unwrap_or_else(|| panic!("{case}: no segment, counters {c:?}"));
        assert_eq!(c.tcp_segments, 1, "{case}");
        assert_eq!(s.src.to_string(), "10.0.0.1:40000", "{case}");
        assert_eq!(s.dst.to_string(), "10.0.0.2:443", "{case}");
        assert_eq!(s.payload, PAYLOAD, "{case}");
        assert_eq!((s.seq, s.ack, s.window), (1000, 2000, 512), "{case}");
        assert_eq!(s.flags.0, TcpFlags::ACK | TcpFlags::PSH, "{case}");
        assert_eq!(s.missing, 0, "{case}");
        assert_eq!(s.ts, Timestamp(7), "{case}");
        s
    }

    fn assert_v6_seg(case: &str, link: LinkType, data: &[u8]) {
        let (s, c) = run(link, data);
        let s = s.unwrap_or_else(|| panic!("{case}: no segment, counters {c:?}"));
        assert_eq!(s.src.to_string(), "[2001:db8::1]:40000", "{case}");
        assert_eq!(s.dst.to_string(), "[2001:db8::2]:443", "{case}");
        assert_eq!(s.payload, PAYLOAD, "{case}");
    }

    // ---- link types -----------------------------------------------------

    /// Every catalogue frame decodes to the inner segment.
    fn assert_catalogue(frames: &[frames::Framed]) {
        for f in frames {
            let link = LinkType(f.link);
            assert!(link.is_supported(), "{}", f.name);
            match f.inner {
                frames::Inner::V4 => {
                    assert_v4_seg(f.name, link, &f.frame);
                }
                frames::Inner::V6 => assert_v6_seg(f.name, link, &f.frame),
            }
        }
    }

    #[test]
    fn link_types_decode_to_the_same_segment() {
        let catalogue = frames::link_headers(&v4_tcp(PAYLOAD), &v6_tcp(PAYLOAD));
        assert_catalogue(&catalogue);
        // A link type decode reads without a frame in the catalogue would
        // go untested here and unseeded in the fuzz corpus.
        for n in 0..1024 {
            if LinkType(n).is_supported() {
                assert!(
                    catalogue.iter().any(|f| f.link == n),
                    "link type {n} ({}) has no frame in tests/support/frames.rs",
                    LinkType(n).name()
                );
            }
        }
    }

    #[test]
    fn link_type_names() {
        assert_eq!(LinkType::LINUX_SLL2.name(), "LINUX_SLL2");
        assert_eq!(LinkType(12).name(), "RAW");
        assert_eq!(LinkType(9999).name(), "UNKNOWN");
        assert!(!LinkType(9999).is_supported());
    }

    // ---- encapsulations ---------------------------------------------------

    #[test]
    fn encapsulations_decode_to_the_inner_segment() {
        let catalogue = frames::encapsulations(&v4_tcp(PAYLOAD), &v6_tcp(PAYLOAD));
        assert!(catalogue.len() >= 30, "{} frames", catalogue.len());
        assert_catalogue(&catalogue);
    }

    // ---- counters -----------------------------------------------------------

    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "one table row per drop reason: the table is the test"
    )]
    fn every_drop_reason_is_counted_once() {
        let ip4 = v4_tcp(PAYLOAD);
        let ip6 = v6_tcp(PAYLOAD);
        let with = |mut p: Vec<u8>, at: usize, val: u8| {
            p[at] = val;
            p
        };
        let flags = |f: u8| with(ip4.clone(), 20 + 13, f);
        let v6_ext = |chain: &[u8], first: u8| {
            let tcp = &ip6[40..];
            ipv6(first, &cat(&[chain, tcp]))
        };
        let frag_v6 = {
            // Fragment header (RFC 8200 §4.5): offset 8 octets, M=0.
            let tcp = &ip6[40..];
            ipv6(44, &cat(&[&[6, 0, 0, 0x08, 0, 0, 0, 1], tcp]))
        };
        let mut too_deep = ip4.clone();
        for _ in 0..=MAX_TUNNELS {
            too_deep = ipv4(4, &too_deep);
        }
        let cases: Vec<(&str, LinkType, Vec<u8>, &str)> = vec![
            // M1
            (
                "Ethernet 13 bytes",
                LinkType::EN10MB,
                vec![0; 13],
                "decode.link_short",
            ),
            (
                "SLL 15 bytes",
                LinkType::LINUX_SLL,
                vec![0; 15],
                "decode.link_short",
            ),
            (
                "SLL2 19 bytes",
                LinkType::LINUX_SLL2,
                vec![0; 19],
                "decode.link_short",
            ),
            (
                "NULL 3 bytes",
                LinkType::NULL,
                vec![2, 0, 0],
                "decode.link_short",
            ),
            (
                "C_HDLC 3 bytes",
                LinkType::C_HDLC,
                vec![0x0f, 0, 8],
                "decode.link_short",
            ),
            (
                "NFLOG 3 bytes",
                LinkType::NFLOG,
                vec![2, 0, 0],
                "decode.link_short",
            ),
            (
                "NFLOG TLV length < 4",
                LinkType::NFLOG,
                vec![2, 0, 0, 1, 2, 0, 9, 0, 0x45],
                "decode.link_short",
            ),
            (
                "radiotap length beyond frame",
                LinkType::IEEE802_11_RADIOTAP,
                vec![0, 0, 0xff, 0, 0, 0, 0, 0],
                "decode.link_short",
            ),
            (
                "802.11 data header cut",
                LinkType::IEEE802_11,
                vec![0x08, 0x01, 0, 0, 1, 1],
                "decode.link_short",
            ),
            (
                "VLAN tag cut",
                LinkType::EN10MB,
                ethernet(0x8100, &[0, 1]),
                "decode.link_short",
            ),
            (
                "PPPoE cut",
                LinkType::EN10MB,
                ethernet(0x8864, &[0x11, 0]),
                "decode.link_short",
            ),
            (
                "MPLS cut",
                LinkType::EN10MB,
                ethernet(0x8847, &[0, 0]),
                "decode.link_short",
            ),
            // M2
            (
                "unknown link",
                LinkType(9999),
                ip4.clone(),
                "decode.unsupported_l2",
            ),
            (
                "unknown ethertype",
                LinkType::EN10MB,
                ethernet(0x88b5, &ip4),
                "decode.unsupported_l2",
            ),
            (
                "MACsec",
                LinkType::EN10MB,
                ethernet(0x88e5, &ip4),
                "decode.unsupported_l2",
            ),
            (
                "NULL AF 7",
                LinkType::NULL,
                cat(&[&[7, 0, 0, 0], &ip4]),
                "decode.unsupported_l2",
            ),
            (
                "4 VLAN tags",
                LinkType::EN10MB,
                ethernet(0x8100, &vlans(4, 0x0800, &ip4)),
                "decode.unsupported_l2",
            ),
            (
                "SLL ETH_P_802_2",
                LinkType::LINUX_SLL,
                cat(&[&[0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0, 4], &ip4]),
                "decode.unsupported_l2",
            ),
            (
                "GRE v1 (PPTP)",
                LinkType::RAW,
                ipv4(47, &[0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 0]),
                "decode.unsupported_l2",
            ),
            (
                "802.11 protected",
                LinkType::IEEE802_11,
                cat(&[&[0x08, 0x41], &[0; 22], &ip4]),
                "decode.unsupported_l2",
            ),
            // M3
            (
                "IHL 4",
                LinkType::RAW,
                with(ip4.clone(), 0, 0x44),
                "decode.ip_invalid",
            ),
            (
                "total length < header",
                LinkType::RAW,
                with(with(ip4.clone(), 2, 0), 3, 10),
                "decode.ip_invalid",
            ),
            (
                "v6 in ethertype v4",
                LinkType::EN10MB,
                ethernet(0x0800, &ip6),
                "decode.ip_invalid",
            ),
            (
                "v4 on IPV6 link",
                LinkType::IPV6,
                ip4.clone(),
                "decode.ip_invalid",
            ),
            (
                "version 5",
                LinkType::RAW,
                with(ip4.clone(), 0, 0x55),
                "decode.ip_invalid",
            ),
            (
                "IPv4 header cut",
                LinkType::RAW,
                ip4[..12].to_vec(),
                "decode.ip_invalid",
            ),
            (
                "IPv4 options cut",
                LinkType::RAW,
                with(ip4[..24].to_vec(), 0, 0x4f),
                "decode.ip_invalid",
            ),
            (
                "IPv6 header cut",
                LinkType::RAW,
                ip6[..30].to_vec(),
                "decode.ip_invalid",
            ),
            ("empty raw", LinkType::RAW, vec![], "decode.ip_invalid"),
            // M6
            (
                "hop-by-hop not first",
                LinkType::RAW,
                v6_ext(&cat(&[&ipv6_ext(0), &ipv6_ext(6)]), 60),
                "decode.ipv6_ext_invalid",
            ),
            (
                "two routing headers",
                LinkType::RAW,
                v6_ext(&cat(&[&ipv6_ext(43), &ipv6_ext(6)]), 43),
                "decode.ipv6_ext_invalid",
            ),
            (
                "three dest options",
                LinkType::RAW,
                v6_ext(&cat(&[&ipv6_ext(60), &ipv6_ext(60), &ipv6_ext(6)]), 60),
                "decode.ipv6_ext_invalid",
            ),
            (
                "ext header cut",
                LinkType::RAW,
                ipv6(60, &[6, 4, 0, 0]),
                "decode.ipv6_ext_invalid",
            ),
            (
                "mobility header",
                LinkType::RAW,
                v6_ext(&ipv6_ext(6), 135),
                "decode.ipv6_ext_invalid",
            ),
            // M7
            (
                "v4 MF",
                LinkType::RAW,
                with(ip4.clone(), 6, 0x20),
                "ip.frag_seen",
            ),
            (
                "v4 offset",
                LinkType::RAW,
                with(ip4.clone(), 7, 0x10),
                "ip.frag_seen",
            ),
            ("v6 fragment header", LinkType::RAW, frag_v6, "ip.frag_seen"),
            // not TCP
            ("UDP", LinkType::RAW, ipv4_udp(53, b"dns"), "decode.not_tcp"),
            (
                "ICMP",
                LinkType::RAW,
                ipv4(1, &[8, 0, 0, 0, 0, 0, 0, 0]),
                "decode.not_tcp",
            ),
            (
                "ARP",
                LinkType::EN10MB,
                ethernet(0x0806, &[0; 28]),
                "decode.not_tcp",
            ),
            ("ESP", LinkType::RAW, ipv6(50, &[0; 16]), "decode.not_tcp"),
            (
                "802.11 beacon",
                LinkType::IEEE802_11,
                vec![0x80, 0, 0, 0],
                "decode.not_tcp",
            ),
            (
                "GTP-U echo",
                LinkType::RAW,
                ipv4(17, &udp(2152, &[0x32, 1, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0])),
                "decode.not_tcp",
            ),
            // M8
            (
                "data offset 4",
                LinkType::RAW,
                with(ip4.clone(), 32, 0x40),
                "decode.tcp_invalid",
            ),
            (
                "data offset beyond packet",
                LinkType::RAW,
                with(v4_tcp(b""), 32, 0xf0),
                "decode.tcp_invalid",
            ),
            (
                "TCP header cut",
                LinkType::RAW,
                ipv4(6, &[0; 10]),
                "decode.tcp_invalid",
            ),
            // M10
            ("SYN+FIN", LinkType::RAW, flags(0x03), "tcp.flags_invalid"),
            ("SYN+RST", LinkType::RAW, flags(0x06), "tcp.flags_invalid"),
            ("null", LinkType::RAW, flags(0x00), "tcp.flags_invalid"),
            ("xmas", LinkType::RAW, flags(0x29), "tcp.flags_invalid"),
            ("xmas all", LinkType::RAW, flags(0xff), "tcp.flags_invalid"),
            // tunnels
            (
                "VXLAN without I flag",
                LinkType::RAW,
                ipv4(17, &udp(4789, &[0; 30])),
                "decode.tunnel_invalid",
            ),
            (
                "VXLAN cut",
                LinkType::RAW,
                ipv4(17, &udp(4789, &[8, 0])),
                "decode.tunnel_invalid",
            ),
            (
                "GRE routing",
                LinkType::RAW,
                ipv4(47, &gre(0x40, 0x0800, &ip4)),
                "decode.tunnel_invalid",
            ),
            (
                "GRE options cut",
                LinkType::RAW,
                ipv4(47, &[0xb0, 0, 8, 0, 0, 0]),
                "decode.tunnel_invalid",
            ),
            (
                "Geneve options beyond packet",
                LinkType::RAW,
                ipv4(17, &udp(6081, &[0x3f, 0, 0x65, 0x58, 0, 0, 0, 0])),
                "decode.tunnel_invalid",
            ),
            (
                "GTP-U extension length 0",
                LinkType::RAW,
                ipv4(
                    17,
                    &udp(
                        2152,
                        &cat(&[
                            &[0x34, 0xff, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0x85, 0, 0, 0, 0],
                            &ip4,
                        ]),
                    ),
                ),
                "decode.tunnel_invalid",
            ),
            (
                "MAX_TUNNELS + 1 nested tunnels",
                LinkType::RAW,
                too_deep,
                "decode.tunnel_too_deep",
            ),
            (
                "Cisco MetaData cut off",
                LinkType::EN10MB,
                ethernet(0x8909, &[1, 1, 0, 1, 0, 7, 8]),
                "decode.metadata_invalid",
            ),
            (
                "Cisco MetaData version 2",
                LinkType::EN10MB,
                ethernet(0x8909, &cat(&[&[2, 1, 0, 1, 0, 7, 8, 0], &ip4])),
                "decode.metadata_invalid",
            ),
            (
                "Cisco MetaData option not the SGT",
                LinkType::EN10MB,
                ethernet(0x8909, &cat(&[&[1, 1, 0, 2, 0, 7, 8, 0], &ip4])),
                "decode.metadata_invalid",
            ),
            (
                "Cisco MetaData twice",
                LinkType::EN10MB,
                ethernet(0x8909, &cat(&[&[1, 1, 0, 1, 0, 7, 0x89, 9], &ip4])),
                "decode.metadata_invalid",
            ),
        ];
        for (name, link, data, want) in cases {
            assert_dropped(name, link, &data, want);
        }
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // A bare ACK is 54 bytes of Ethernet; the NIC pads to 60.
        let mut f = ethernet(0x0800, &v4_tcp(b""));
        f.resize(60, 0xee);
        let (s, c) = run(LinkType::EN10MB, &f);
        let s = s.unwrap();
        assert!(s.payload.is_empty(), "{:?}", s.payload);
        assert_eq!((s.missing, c.truncated), (0, 0));
        // Same inside VLAN, PPPoE-less, and for IPv6.
        let mut f = ethernet(0x8100, &vlan(0x86dd, &v6_tcp(b"x")));
        f.extend_from_slice(&[0xee; 8]);
        assert_eq!(run(LinkType::EN10MB, &f).0.unwrap().payload, b"x");
        // And a trailer after a VXLAN inner frame.
        let inner = cat(&[&ethernet(0x0800, &v4_tcp(b"ab")), &[0xee; 6]]);
        let f = ipv4(17, &udp(4789, &vxlan(&inner)));
        assert_eq!(run(LinkType::RAW, &f).0.unwrap().payload, b"ab");
    }

    #[test]
    fn ip_length_zero_takes_length_from_caplen() {
        let mut p = v4_tcp(PAYLOAD);
        p[2] = 0;
        p[3] = 0;
        let (s, c) = run(LinkType::RAW, &p);
        assert_eq!(s.unwrap().payload, PAYLOAD);
        assert_eq!(
            (c.ip_len_from_caplen, c.tcp_segments, c.truncated),
            (1, 1, 0)
        );

        let mut p = v6_tcp(PAYLOAD);
        p[4] = 0;
        p[5] = 0;
        let (s, c) = run(LinkType::RAW, &p);
        assert_eq!(s.unwrap().payload, PAYLOAD);
        assert_eq!(c.ip_len_from_caplen, 1);

        // Length 0 and snaplen cut: what the wire had beyond caplen is missing.
        let mut p = v4_tcp(PAYLOAD);
        p[2] = 0;
        p[3] = 0;
        let (s, c) = run_orig(LinkType::RAW, &p, p.len() as u32 + 100);
        assert_eq!(s.unwrap().missing, 100);
        assert_eq!(c.truncated, 1);
    }

    #[test]
    fn snaplen_truncation_sets_missing() {
        let big = vec![0x17; 1000];
        for (name, link, full, hdr) in [
            (
                "v4",
                LinkType::EN10MB,
                ethernet(0x0800, &v4_tcp(&big)),
                14 + 40,
            ),
            (
                "v6",
                LinkType::EN10MB,
                ethernet(0x86dd, &v6_tcp(&big)),
                14 + 60,
            ),
            (
                "v4 in VXLAN",
                LinkType::RAW,
                ipv4(17, &udp(4789, &vxlan(&ethernet(0x0800, &v4_tcp(&big))))),
                20 + 8 + 8 + 14 + 40,
            ),
        ] {
            let snap = hdr + 100;
            let (s, c) = run_orig(link, &full[..snap], full.len() as u32);
            let s = s.unwrap_or_else(|| panic!("{name}: {c:?}"));
            assert_eq!(s.payload.len(), 100, "{name}");
            assert_eq!(s.missing, 900, "{name}");
            assert_eq!(c.truncated, 1, "{name}");
        }
        // Cut inside the TCP header: not decodable.
        let full = ethernet(0x0800, &v4_tcp(&big));
        let (s, c) = run_orig(LinkType::EN10MB, &full[..14 + 30], full.len() as u32);
        assert!(s.is_none());
        assert_eq!(c.tcp_invalid, 1);
    }

    #[test]
    fn atomic_ipv6_fragment_is_not_a_fragment() {
        // RFC 8200 §4.5 / RFC 6946: offset 0 and M=0 is a whole packet.
        let ip6 = v6_tcp(PAYLOAD);
        let p = ipv6(44, &cat(&[&[6, 0, 0, 0, 0, 0, 0, 1], &ip6[40..]]));
        assert_eq!(run(LinkType::RAW, &p).0.unwrap().payload, PAYLOAD);
    }

    #[test]
    fn syn_flags_are_kept() {
        // ECE+CWR as in an ECN setup SYN (RFC 3168 §6.1.1).
        let v = frames::Tcp::new([10, 0, 0, 1], 1, [10, 0, 0, 2], 2)
            .seq(0xffff_ff00)
            .window(100)
            .flags(frames::SYN | frames::ECE | frames::CWR)
            .ip(&[]);
        let s = run(LinkType::RAW, &v).0.unwrap();
        assert_eq!(s.flags.0, TcpFlags::SYN | 0xc0);
        assert!(s.flags.syn() && !s.flags.ack());
        assert_eq!(s.seq, 0xffff_ff00);
    }

    #[test]
    fn the_deepest_nesting_with_every_per_level_header_decodes() {
        // Each level: Ethernet, three VLAN tags, a Cisco MetaData header,
        // IPv4, UDP, VXLAN: the most steps a level can take. MAX_TUNNELS
        // of them decode (MAX_STEPS is not the binding limit); one more is
        // counted as too deep.
        let ip4 = v4_tcp(PAYLOAD);
        let level = |ip: &[u8]| {
            let tagged = vlans(3, 0x8909, &frames::cisco_metadata(5, 0x0800, ip));
            ethernet(0x88a8, &tagged)
        };
        let mut eth = level(&ip4);
        for _ in 0..MAX_TUNNELS {
            eth = level(&ipv4_udp(4789, &vxlan(&eth)));
        }
        let (seg, c) = run(LinkType::EN10MB, &eth);
        assert_eq!(seg.expect("deepest nesting").payload, PAYLOAD, "{c:?}");
        let deeper = level(&ipv4_udp(4789, &vxlan(&eth)));
        assert_dropped(
            "one level deeper",
            LinkType::EN10MB,
            &deeper,
            "decode.tunnel_too_deep",
        );
    }

    #[test]
    fn skipped_ethertypes_and_link_types_are_tallied_bounded() {
        let ip4 = v4_tcp(PAYLOAD);
        let mut c = DecodeCounters::default();
        let mut feed = |link: LinkType, data: &[u8], times: usize| {
            for _ in 0..times {
                let f = Frame {
                    ts: Timestamp(0),
                    link,
                    data,
                    orig_len: data.len() as u32,
                };
                assert!(decode(&f, &mut c).is_none());
            }
        };
        // MACsec (0x88e5) 3 times, PPP link type (9) twice, then more
        // distinct ethertypes than the table has slots.
        feed(LinkType::EN10MB, &ethernet(0x88e5, &ip4), 3);
        feed(LinkType(9), &ip4, 2);
        for t in 0..SkippedTypes::SLOTS as u16 {
            feed(LinkType::EN10MB, &ethernet(0x7000 + t, &ip4), 1);
        }
        // Known but not TCP: not a skipped header.
        feed(LinkType::EN10MB, &ethernet(0x0806, &[0; 28]), 4);
        // A Cisco MetaData header of version 2: counted and tallied (it
        // found no slot: the table was full).
        feed(
            LinkType::EN10MB,
            &ethernet(0x8909, &[2, 1, 0, 1, 0, 7, 8, 0]),
            1,
        );
        let s = &c.skipped;
        assert_eq!(c.unsupported_l2, 3 + 2 + SkippedTypes::SLOTS as u64);
        assert_eq!(c.metadata_invalid, 1);
        assert_eq!(s.total(), c.unsupported_l2 + c.metadata_invalid);
        assert_eq!(s.other, 3, "three frames found no slot: {s:?}");
        let top = s.top();
        assert_eq!(top.len(), SkippedTypes::SLOTS);
        assert_eq!(top[0], (Skipped::EtherType(0x88e5), 3));
        assert_eq!(top[1], (Skipped::Link(LinkType(9)), 2));
        assert_eq!(top[2], (Skipped::EtherType(0x7000), 1));
        // Merging two halves in either order gives the same top list.
        let mut a = c.clone();
        a.merge(&DecodeCounters::default());
        assert_eq!(a.skipped, c.skipped);
        let mut x = SkippedTypes::default();
        x.add(Skipped::EtherType(1), 5);
        let mut y = SkippedTypes::default();
        y.add(Skipped::Link(LinkType(9)), 5);
        let (mut xy, mut yx) = (x.clone(), y.clone());
        xy.merge(&y);
        yx.merge(&x);
        assert_eq!(xy.top(), yx.top());
        assert_eq!(xy.total(), 10);
    }

    #[test]
    fn counters_merge_and_list_in_fixed_order() {
        let mut a = DecodeCounters::default();
        let mut b = DecodeCounters::default();
        let ip4 = v4_tcp(PAYLOAD);
        decode(
            &Frame {
                ts: Timestamp(0),
                link: LinkType::RAW,
                data: &ip4,
                orig_len: 0,
            },
            &mut a,
        );
        decode(
            &Frame {
                ts: Timestamp(0),
                link: LinkType::EN10MB,
                data: &[1],
                orig_len: 1,
            },
            &mut b,
        );
        a.merge(&b);
        assert_eq!((a.frames, a.tcp_segments, a.link_short), (2, 1, 1));
        let names: Vec<_> = a.entries().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "decode.frames",
                "decode.tcp_segments",
                "decode.link_short",
                "decode.unsupported_l2",
                "decode.ip_invalid",
                "decode.ipv6_ext_invalid",
                "decode.ip_len_from_caplen",
                "decode.truncated",
                "decode.not_tcp",
                "decode.tcp_invalid",
                "decode.tunnel_invalid",
                "decode.tunnel_too_deep",
                "ip.frag_seen",
                "tcp.flags_invalid",
                "decode.metadata_invalid",
            ]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep; the fuzz target does the real work.
        let seeds: Vec<Vec<u8>> = vec![
            ethernet(0x0800, &v4_tcp(PAYLOAD)),
            ethernet(0x8847, &cat(&[&[0, 0, 0x21, 64], &v6_tcp(PAYLOAD)])),
            ipv4(
                17,
                &udp(
                    2152,
                    &[0x36, 0xff, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x85, 2, 0, 0],
                ),
            ),
            nflog(true, 2, &v4_tcp(PAYLOAD)),
        ];
        let links = [0, 1, 12, 101, 104, 105, 108, 113, 127, 228, 229, 239, 276];
        let mut x: u32 = 0x1234_5678;
        let mut c = DecodeCounters::default();
        for seed in &seeds {
            for &l in &links {
                for cut in 0..=seed.len() {
                    let f = Frame {
                        ts: Timestamp(0),
                        link: LinkType(l),
                        data: &seed[..cut],
                        orig_len: 0,
                    };
                    decode(&f, &mut c);
                }
                for _ in 0..200 {
                    let mut m = seed.clone();
                    for _ in 0..3 {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        let i = x as usize % m.len();
                        m[i] = (x >> 24) as u8;
                    }
                    let f = Frame {
                        ts: Timestamp(0),
                        link: LinkType(l),
                        data: &m,
                        orig_len: 0,
                    };
                    decode(&f, &mut c);
                }
            }
        }
        let drops: u64 = c
            .entries()
            .iter()
            .skip(2)
            .filter(|(n, _)| !n.contains("caplen") && !n.contains("truncated"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(c.frames, c.tcp_segments + drops);
    }

    // ---- public captures ------------------------------------------------------

    /// Truth rows we cannot satisfy, with the reason: (file, client, server, why).
    const EXCEPTIONS: &[(&str, &str, &str, &str)] = &[];

    #[test]
    #[allow(
        clippy::too_many_lines,
        reason = "one pass over every public capture, checked against its truth rows"
    )]
    fn public_pcaps_decode_and_cover_truth() {
        let Some(dir) = support::shared::public("decode over the public captures") else {
            return;
        };
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with(".pcap") || n.ends_with(".pcapng")
            })
            .collect();
        files.sort();
        assert!(!files.is_empty());

        let mut pairs: BTreeMap<String, HashSet<(String, String)>> = BTreeMap::new();
        let mut per_file: BTreeMap<String, DecodeCounters> = BTreeMap::new();
        let mut panicked = Vec::new();
        for path in &files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let result = std::panic::catch_unwind(|| {
                let mut cap = pcap::Capture::from_file(path).unwrap();
                let link = LinkType(cap.get_datalink().0);
                let mut c = DecodeCounters::default();
                let mut seen = HashSet::new();
                loop {
                    let p = match cap.next_packet() {
                        Ok(p) => p,
                        Err(pcap::Error::NoMorePackets) => break,
                        Err(e) => {
                            println!("{name}: stopped reading: {e}");
                            break;
                        }
                    };
                    let f = Frame {
                        ts: Timestamp::from_secs_micros(
                            p.header.ts.tv_sec as i64,
                            p.header.ts.tv_usec as i64,
                        ),
                        link,
                        data: p.data,
                        orig_len: p.header.len,
                    };
                    if let Some(s) = decode(&f, &mut c) {
                        seen.insert((s.src.to_string(), s.dst.to_string()));
                    }
                }
                (link, c, seen)
            });
            match result {
                Ok((link, c, seen)) => {
                    assert!(
                        link.is_supported(),
                        "{name}: link type {} unsupported",
                        link.0
                    );
                    pairs.insert(name.clone(), seen);
                    per_file.insert(name, c);
                }
                Err(_) => panicked.push(name),
            }
        }
        assert!(panicked.is_empty(), "decode panicked on {panicked:?}");

        let truth = std::fs::read_to_string(dir.join("truth.tsv")).unwrap();
        let mut lines = truth.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        let (cf, cc, cs, ck) = (col("file"), col("client"), col("server"), col("class"));
        let mut failures = Vec::new();
        let mut used_exceptions = HashSet::new();
        let mut rows = 0;
        for line in lines.filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            if f[ck] == "none" {
                continue;
            }
            rows += 1;
            let (file, client, server) = (f[cf], f[cc].to_string(), f[cs].to_string());
            let seen = pairs
                .get(file)
                .unwrap_or_else(|| panic!("truth names missing file {file}"));
            let ok = seen.contains(&(client.clone(), server.clone()))
                || seen.contains(&(server.clone(), client.clone()));
            if ok {
                continue;
            }
            if let Some(e) = EXCEPTIONS
                .iter()
                .find(|e| e.0 == file && e.1 == client && e.2 == server)
            {
                used_exceptions.insert(*e);
                continue;
            }
            failures.push(format!(
                "{file}: {client} <-> {server}; counters {:?}",
                per_file[file].entries()
            ));
        }
        println!("{rows} truth rows checked over {} files", files.len());
        for (file, c) in &per_file {
            println!(
                "{file}: {:?}",
                c.entries()
                    .iter()
                    .filter(|(_, v)| *v > 0)
                    .collect::<Vec<_>>()
            );
        }
        assert!(
            failures.is_empty(),
            "unsatisfied truth rows:\n{}",
            failures.join("\n")
        );
        for e in EXCEPTIONS {
            assert!(used_exceptions.contains(e), "stale exception {e:?}");
        }
    }

    // ---- the fast path against the full walk ------------------------------

    /// Frames near the fast path's edges: the common Ethernet IPv4 and IPv6
    /// segments (with TCP options, IP options, padding and extension
    /// headers), and the shapes it must hand to the walk (a VLAN tag,
    /// snaplen cuts, IP length 0, fragments).
    fn fast_path_seeds() -> Vec<Vec<u8>> {
        let opts = frames::Tcp::new([10, 0, 0, 1], 1, [10, 0, 0, 2], 2)
            .options(&[2, 4, 5, 0xb4, 1, 1, 1, 0])
            .flags(frames::SYN)
            .ip(b"");
        let mut v4_options = v4_tcp(PAYLOAD);
        v4_options[0] = 0x46;
        v4_options.splice(20..20, [1, 1, 1, 0]);
        v4_options[3] += 4;
        let mut padded = ethernet(0x0800, &v4_tcp(b""));
        padded.extend_from_slice(&[0; 6]);
        vec![
            ethernet(0x0800, &v4_tcp(PAYLOAD)),
            ethernet(0x86dd, &v6_tcp(PAYLOAD)),
            ethernet(0x0800, &opts),
            ethernet(0x0800, &v4_options),
            padded,
            ethernet(
                0x86dd,
                &ipv6(0, &cat(&[&ipv6_ext(6), &v6_tcp(PAYLOAD)[40..]])),
            ),
            ethernet(0x8100, &vlan(0x0800, &v4_tcp(PAYLOAD))),
            ethernet(
                0x0800,
                &ipv4_udp(4789, &vxlan(&ethernet(0x0800, &v4_tcp(PAYLOAD)))),
            ),
        ]
    }

    /// Both paths on one frame: the same segment and the same counters.
    fn assert_paths_agree(link: LinkType, data: &[u8], orig_len: u32) {
        let f = Frame {
            ts: Timestamp(7),
            link,
            data,
            orig_len,
        };
        let (mut fast, mut walk) = (DecodeCounters::default(), DecodeCounters::default());
        let got = decode_borrowed(&f, &mut fast);
        let want = decode_walk(&f, &mut walk);
        assert_eq!(got, want, "frame {data:02x?}");
        assert_eq!(fast, walk, "frame {data:02x?}");
    }

    #[test]
    fn the_fast_path_takes_the_common_frames() {
        let seeds = fast_path_seeds();
        for seed in &seeds[..5] {
            let f = Frame {
                ts: Timestamp(7),
                link: LinkType::EN10MB,
                data: seed,
                orig_len: seed.len() as u32,
            };
            assert!(fast_path(&f).is_some(), "{seed:02x?}");
            assert_paths_agree(LinkType::EN10MB, seed, seed.len() as u32);
        }
        for seed in &seeds[5..] {
            let f = Frame {
                ts: Timestamp(7),
                link: LinkType::EN10MB,
                data: seed,
                orig_len: seed.len() as u32,
            };
            assert!(fast_path(&f).is_none(), "{seed:02x?}");
        }
    }

    proptest::proptest! {
        // A fixed seed: the same cases on every run, a failure reproducible.
        #![proptest_config(proptest::test_runner::Config {
            cases: 2048,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6661_7374),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Mutated and cut seeds, under the link types that share their
        /// bytes' layout: the fast path never disagrees with the walk.
        #[test]
        fn the_fast_path_agrees_with_the_walk(
            seed in 0usize..8,
            edits in proptest::collection::vec((0usize..120, proptest::prelude::any::<u8>()), 0..5),
            cut in proptest::option::of(0usize..140),
            link in proptest::sample::select(vec![1, 1, 1, 228, 229, 101, 113]),
            extra in 0u32..3000,
        ) {
            let mut data = fast_path_seeds().swap_remove(seed);
            for (at, byte) in edits {
                let at = at % data.len();
                data[at] = byte;
            }
            if let Some(cut) = cut {
                data.truncate(cut);
            }
            let orig = data.len() as u32 + extra;
            assert_paths_agree(LinkType(link), &data, orig);
        }

        /// Random bytes behind an Ethernet header naming IPv4 or IPv6, the
        /// version nibble and the TCP protocol set often enough to reach
        /// the TCP header.
        #[test]
        fn the_fast_path_agrees_on_random_frames(
            v6 in proptest::prelude::any::<bool>(),
            tcp in proptest::prelude::any::<bool>(),
            mut body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        ) {
            if let Some(b) = body.first_mut() {
                *b = if v6 { 0x60 | (*b & 0x0f) } else { 0x40 | (*b & 0x0f) };
            }
            let proto_at = if v6 { 6 } else { 9 };
            if tcp && let Some(p) = body.get_mut(proto_at) {
                *p = 6;
            }
            let data = ethernet(if v6 { 0x86dd } else { 0x0800 }, &body);
            assert_paths_agree(LinkType::EN10MB, &data, data.len() as u32);
        }
    }
}
