//! The one set of frame builders of the project's tests, benches and fuzz
//! seeds: a TCP segment in IPv4 or IPv6 (etherparse's `PacketBuilder`, so
//! lengths and checksums are right unless a test bends them afterwards),
//! Ethernet and the other link headers decode.rs reads (NULL/LOOP, Linux
//! SLL and SLL2, NFLOG, Cisco HDLC, 802.11 with LLC/SNAP, radiotap), and
//! the encapsulations it unwraps (802.1Q/QinQ, PPPoE, MPLS, IP-in-IP, GRE,
//! ERSPAN II/III, VXLAN, Geneve, GTP-U). `link_headers` and
//! `encapsulations` list one frame of every kind around a given packet:
//! decode.rs's unit tests assert each decodes to its inner segment, and the
//! fuzz seed extractor writes each as a `decode` seed.
//!
//! Included by `#[path]` (through `tests/support/mod.rs`, or directly), so
//! it depends on std and etherparse only, never on mtlsniff. It builds
//! bytes and decides nothing; header layouts cite their RFC or the
//! registry that defines them. Link type numbers are the tcpdump.org
//! LINKTYPE registry's (`dlt`).

#![allow(dead_code)]

use std::net::IpAddr;

use etherparse::{IpHeaders, IpNumber, Ipv4Header, Ipv6Header, PacketBuilder};

/// TCP flag bits (RFC 9293 §3.1; ECE and CWR: RFC 3168 §6.1).
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// Link type numbers (tcpdump.org LINKTYPE registry).
pub mod dlt {
    pub const NULL: i32 = 0;
    pub const EN10MB: i32 = 1;
    pub const RAW_DLT12: i32 = 12;
    pub const RAW_DLT14: i32 = 14;
    pub const RAW: i32 = 101;
    pub const C_HDLC: i32 = 104;
    pub const IEEE802_11: i32 = 105;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IEEE802_11_RADIOTAP: i32 = 127;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const NFLOG: i32 = 239;
    pub const LINUX_SLL2: i32 = 276;
}

/// EtherType values (IEEE 802 numbers).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
    pub const MPLS: u16 = 0x8847;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const QINQ: u16 = 0x88a8;
    pub const ERSPAN_II: u16 = 0x88be;
    pub const MACSEC: u16 = 0x88e5;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const ERSPAN_III: u16 = 0x22eb;
    pub const TEB: u16 = 0x6558;
    /// Cisco MetaData (TrustSec SGT).
    pub const CISCO_METADATA: u16 = 0x8909;
}

/// The MAC addresses of `ethernet`: destination, then source.
pub const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

// ---------------------------------------------------------------- TCP

/// One TCP segment to build: addresses, numbers, flags (any of the eight
/// bits), raw options and the IPv4 identification.
#[derive(Clone, Debug)]
pub struct Tcp<'a> {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub seq: u32,
    /// Written only with the ACK flag (RFC 9293: zero otherwise).
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Raw option bytes, padded with zeros (end of option list) to a
    /// multiple of four.
    pub options: &'a [u8],
    /// IPv4 identification (IPv6 has none).
    pub ip_id: u16,
}

impl<'a> Tcp<'a> {
    /// A segment from `src:sport` to `dst:dport`: sequence 0, no flags,
    /// window 64,000, no options.
    pub fn new(src: impl Into<IpAddr>, sport: u16, dst: impl Into<IpAddr>, dport: u16) -> Self {
        Tcp {
            src: src.into(),
            sport,
            dst: dst.into(),
            dport,
            seq: 0,
            ack: 0,
            flags: 0,
            window: 64_000,
            options: &[],
            ip_id: 0,
        }
    }

    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }

    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }

    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    pub fn window(mut self, window: u16) -> Self {
        self.window = window;
        self
    }

    pub fn options(mut self, options: &'a [u8]) -> Self {
        self.options = options;
        self
    }

    pub fn ip_id(mut self, id: u16) -> Self {
        self.ip_id = id;
        self
    }

    /// The IP header (TTL/hop limit 64), for `PacketBuilder::ip`.
    fn ip_header(&self) -> IpHeaders {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut h = Ipv4Header::new(0, 64, IpNumber::TCP, s.octets(), d.octets())
                    .expect("an empty IPv4 payload fits");
                h.identification = self.ip_id;
                IpHeaders::Ipv4(h, Default::default())
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => IpHeaders::Ipv6(
                Ipv6Header {
                    hop_limit: 64,
                    source: s.octets(),
                    destination: d.octets(),
                    ..Default::default()
                },
                Default::default(),
            ),
            _ => panic!("a TCP segment between an IPv4 and an IPv6 address"),
        }
    }

    /// IP + TCP + payload.
    pub fn ip(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.finish(PacketBuilder::ip(self.ip_header()), payload, &mut out);
        out
    }

    /// Ethernet (`SRC_MAC` to `DST_MAC`) + IP + TCP + payload.
    pub fn ethernet(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_ethernet(SRC_MAC, DST_MAC, payload, &mut out);
        out
    }

    /// Ethernet + IP + TCP + payload appended to `out` (a buffer reused
    /// across frames, as the benchmark generator writes millions).
    pub fn write_ethernet(&self, src: [u8; 6], dst: [u8; 6], payload: &[u8], out: &mut Vec<u8>) {
        let step = PacketBuilder::ethernet2(src, dst).ip(self.ip_header());
        self.finish(step, payload, out);
    }

    fn finish(
        &self,
        step: etherparse::PacketBuilderStep<IpHeaders>,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        let mut b = step.tcp(self.sport, self.dport, self.seq, self.window);
        for (bit, set) in [
            (FIN, 0),
            (SYN, 1),
            (RST, 2),
            (PSH, 3),
            (URG, 4),
            (ECE, 5),
            (CWR, 6),
        ] {
            if self.flags & bit != 0 {
                b = match set {
                    0 => b.fin(),
                    1 => b.syn(),
                    2 => b.rst(),
                    3 => b.psh(),
                    4 => b.urg(0),
                    5 => b.ece(),
                    _ => b.cwr(),
                };
            }
        }
        if self.flags & ACK != 0 {
            b = b.ack(self.ack);
        }
        if !self.options.is_empty() {
            let mut opts = self.options.to_vec();
            opts.resize(opts.len().next_multiple_of(4), 0);
            b = b
                .options_raw(&opts)
                .expect("at most 40 bytes of TCP options");
        }
        b.write(out, payload).expect("build a TCP segment");
    }
}

// ---------------------------------------------------------------- IP

/// Source and destination of `ipv4` and `ipv6` (documentation prefixes,
/// RFC 5737; link-local, RFC 4291).
pub const V4_SRC: [u8; 4] = [198, 51, 100, 1];
pub const V4_DST: [u8; 4] = [198, 51, 100, 2];
pub const V6_SRC: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const V6_DST: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// A 20-byte IPv4 header with protocol `proto` around `payload`.
pub fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(V4_SRC, V4_DST, 64)
        .write(&mut v, IpNumber(proto), payload)
        .expect("build an IPv4 packet");
    v
}

/// A 40-byte IPv6 header (RFC 8200 §3) with next header `next` around
/// `payload`, which may begin with extension headers the caller wrote
/// (written by hand: etherparse's builder insists on building those).
pub fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[next, 64]);
    v.extend_from_slice(&V6_SRC);
    v.extend_from_slice(&V6_DST);
    v.extend_from_slice(payload);
    v
}

/// An IPv6 packet with an empty hop-by-hop options header (RFC 8200
/// §4.3) inserted after its fixed header.
pub fn with_hop_by_hop(ip6: &[u8]) -> Vec<u8> {
    assert!(ip6.len() >= 40, "an IPv6 packet");
    let (header, rest) = ip6.split_at(40);
    let mut v = header.to_vec();
    let next = std::mem::replace(&mut v[6], 0);
    let len = u16::from_be_bytes([v[4], v[5]]) + 8;
    v[4..6].copy_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&ipv6_ext(next));
    v.extend_from_slice(rest);
    v
}

/// An 8-byte IPv6 extension header (RFC 8200 §4) naming `next`, with no
/// options (a hop-by-hop or destination options header of PadN).
pub fn ipv6_ext(next: u8) -> [u8; 8] {
    [next, 0, 0, 0, 0, 0, 0, 0]
}

/// A UDP header (RFC 768) from port 12345 to `dport`, checksum 0 (none).
pub fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = 12345u16.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// IPv4 + UDP to `dport`: the outer packet of a UDP tunnel.
pub fn ipv4_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    ipv4(17, &udp(dport, payload))
}

// ---------------------------------------------------------------- Ethernet

/// An Ethernet II header (`SRC_MAC` to `DST_MAC`) with `ethertype`, or
/// with an 802.3 length when `ethertype` is at most 1500.
pub fn ethernet(ethertype: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = DST_MAC.to_vec();
    v.extend_from_slice(&SRC_MAC);
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// One 802.1Q tag (VLAN 100): the caller put the tag's TPID as the type
/// before it; `next` is the type after it.
pub fn vlan(next: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x00, 0x64];
    v.extend_from_slice(&next.to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// `tags` stacked VLAN tags ending in `next`, each but the last naming
/// 802.1Q as the next type.
pub fn vlans(tags: usize, next: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vlan(next, inner);
    for _ in 1..tags {
        v = vlan(ethertype::VLAN, &v);
    }
    v
}

/// LLC/SNAP (RFC 1042) carrying `ethertype`: behind 802.3 and 802.11.
pub fn llc_snap(ethertype: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0xaa, 0xaa, 0x03, 0, 0, 0];
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// A PPPoE session header (RFC 2516 §4; session 7) and PPP protocol
/// `ppp` (0x0021 IPv4, 0x0057 IPv6).
pub fn pppoe(ppp: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x11, 0, 0, 7];
    v.extend_from_slice(&((inner.len() + 2) as u16).to_be_bytes());
    v.extend_from_slice(&ppp.to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// A Cisco MetaData header (the bytes after EtherType 0x8909, as Cisco
/// TrustSec tags frames; wire-facts §10): version 1, length 1, the SGT
/// option (type/length 0x0001), the 2-byte `sgt`, then `next`, the inner
/// ethertype.
pub fn cisco_metadata(sgt: u16, next: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![1, 1, 0x00, 0x01];
    v.extend_from_slice(&sgt.to_be_bytes());
    v.extend_from_slice(&next.to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// An Ethernet frame (as `ethernet`) whose type is 0x8909 with a Cisco
/// MetaData header carrying `sgt` in front of `ethertype`: how a TrustSec
/// link tags a frame.
pub fn sgt_tagged(sgt: u16, ethertype: u16, inner: &[u8]) -> Vec<u8> {
    ethernet(
        ethertype::CISCO_METADATA,
        &cisco_metadata(sgt, ethertype, inner),
    )
}

/// An MPLS label stack (RFC 3032 §2.1; TTL 64), bottom of stack on the
/// last label.
pub fn mpls(labels: &[u32], inner: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let bottom = u32::from(i + 1 == labels.len());
        v.extend_from_slice(&((label << 12) | (bottom << 8) | 64).to_be_bytes());
    }
    v.extend_from_slice(inner);
    v
}

// ---------------------------------------------------------------- tunnels

/// A GRE header (RFC 2784, RFC 2890): `flags` is the first byte (C 0x80,
/// K 0x20, S 0x10 add a 4-byte field each), version 0, `proto` the type.
pub fn gre(flags: u8, proto: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, 0];
    v.extend_from_slice(&proto.to_be_bytes());
    for bit in [0x80, 0x20, 0x10] {
        if flags & bit != 0 {
            v.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        }
    }
    v.extend_from_slice(inner);
    v
}

/// ERSPAN type II (GRE type 0x88be, sequenced): the 8-byte header, then
/// the mirrored Ethernet frame.
pub fn erspan_ii(inner_eth: &[u8]) -> Vec<u8> {
    let header = [0x10, 0, 0, 1, 0, 0, 0, 0];
    gre(
        0x10,
        ethertype::ERSPAN_II,
        &[&header[..], inner_eth].concat(),
    )
}

/// ERSPAN type III (GRE type 0x22eb): the 12-byte header whose last 8
/// bytes are `tail` (its O bit adds an 8-byte platform subheader,
/// `platform`; its frame type says Ethernet or bare IP), then `inner`.
pub fn erspan_iii(tail: [u8; 8], platform: Option<[u8; 8]>, inner: &[u8]) -> Vec<u8> {
    let mut body = vec![0x20, 0, 0, 1];
    body.extend_from_slice(&tail);
    if let Some(p) = platform {
        body.extend_from_slice(&p);
    }
    body.extend_from_slice(inner);
    gre(0x10, ethertype::ERSPAN_III, &body)
}

/// A VXLAN header (RFC 7348 §5; I flag, VNI 42).
pub fn vxlan(inner_eth: &[u8]) -> Vec<u8> {
    [&[0x08, 0, 0, 0, 0, 0, 0x2a, 0][..], inner_eth].concat()
}

/// A Geneve header (RFC 8926 §3; version 0, VNI 1, protocol Ethernet)
/// with `options` (a multiple of four bytes).
pub fn geneve(options: &[u8], inner_eth: &[u8]) -> Vec<u8> {
    let mut v = vec![(options.len() / 4) as u8, 0, 0x65, 0x58, 0, 0, 1, 0];
    v.extend_from_slice(options);
    v.extend_from_slice(inner_eth);
    v
}

/// A GTP-U G-PDU (3GPP TS 29.281 §5; TEID 9) with no optional fields.
pub fn gtpu(inner_ip: &[u8]) -> Vec<u8> {
    let mut v = vec![0x30, 0xff];
    v.extend_from_slice(&(inner_ip.len() as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 9]);
    v.extend_from_slice(inner_ip);
    v
}

/// A GTP-U G-PDU with the E and S flags: sequence number, N-PDU number,
/// and one PDU Session Container extension header (type 0x85, TS 38.415).
pub fn gtpu_pdu_session(inner_ip: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, 0, 0x85];
    body.extend_from_slice(&[1, 0x10, 0x01, 0]);
    body.extend_from_slice(inner_ip);
    let mut v = vec![0x36, 0xff];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 9]);
    v.extend_from_slice(&body);
    v
}

// ---------------------------------------------------------------- link headers

/// BSD loopback (LINKTYPE_NULL): the address family in host byte order,
/// little-endian here (2 IPv4; 24, 28, 30 or 10 IPv6).
pub fn null_le(family: u32, ip: &[u8]) -> Vec<u8> {
    [&family.to_le_bytes()[..], ip].concat()
}

/// LINKTYPE_NULL written on a big-endian host, and LINKTYPE_LOOP (always
/// big-endian).
pub fn null_be(family: u32, ip: &[u8]) -> Vec<u8> {
    [&family.to_be_bytes()[..], ip].concat()
}

/// Linux cooked capture v1 (LINKTYPE_LINUX_SLL): 16 bytes, protocol last.
pub fn sll(proto: u16, ip: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0];
    v.extend_from_slice(&proto.to_be_bytes());
    v.extend_from_slice(ip);
    v
}

/// Linux cooked capture v2 (LINKTYPE_LINUX_SLL2): 20 bytes, protocol first.
pub fn sll2(proto: u16, ip: &[u8]) -> Vec<u8> {
    let mut v = proto.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0]);
    v.extend_from_slice(ip);
    v
}

/// NFLOG (LINKTYPE_NFLOG): a 4-byte header with `family`, then TLVs in
/// host byte order (`le`), each padded to 4: a packet header, a 5-byte
/// prefix (so padding matters), and the payload TLV holding `ip`.
pub fn nflog(le: bool, family: u8, ip: &[u8]) -> Vec<u8> {
    let tlv = |ty: u16, val: &[u8]| {
        let len = (4 + val.len()) as u16;
        let mut v = Vec::new();
        if le {
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&ty.to_le_bytes());
        } else {
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&ty.to_be_bytes());
        }
        v.extend_from_slice(val);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    };
    let mut v = vec![family, 0, 0, 1];
    v.extend(tlv(1, &[0x08, 0x00, 3, 0])); // NFULA_PACKET_HDR
    v.extend(tlv(10, b"pfx\0\0")); // NFULA_PREFIX
    v.extend(tlv(9, ip)); // NFULA_PAYLOAD
    v
}

/// Cisco HDLC (LINKTYPE_C_HDLC): address (0x0f unicast, 0x8f
/// multicast), control 0, protocol.
pub fn c_hdlc(address: u8, proto: u16, ip: &[u8]) -> Vec<u8> {
    let mut v = vec![address, 0];
    v.extend_from_slice(&proto.to_be_bytes());
    v.extend_from_slice(ip);
    v
}

/// An 802.11 data frame carrying IPv4 over LLC/SNAP: `ds` is the
/// ToDS (1) / FromDS (2) bits (both: a fourth address), `qos` a QoS data
/// frame with its 2-byte QoS control field.
pub fn ieee80211_data(ds: u8, qos: bool, ip4: &[u8]) -> Vec<u8> {
    let mut v = vec![if qos { 0x88 } else { 0x08 }, ds & 3, 0, 0];
    v.extend_from_slice(&[1; 18]); // three addresses
    v.extend_from_slice(&[0, 0]); // sequence control
    if ds & 3 == 3 {
        v.extend_from_slice(&[1; 6]);
    }
    if qos {
        v.extend_from_slice(&[0, 0]);
    }
    v.extend(llc_snap(ethertype::IPV4, ip4));
    v
}

/// A radiotap header (version 0) with the `present` bitmap and its
/// `fields`, before an 802.11 frame.
pub fn radiotap(present: u32, fields: &[u8], wlan: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0];
    v.extend_from_slice(&((8 + fields.len()) as u16).to_le_bytes());
    v.extend_from_slice(&present.to_le_bytes());
    v.extend_from_slice(fields);
    v.extend_from_slice(wlan);
    v
}

// ---------------------------------------------------------------- catalogues

/// Which IP version a catalogue frame carries innermost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner {
    V4,
    V6,
}

/// One catalogue frame: its name, its link type (`dlt`), its bytes.
#[derive(Clone, Debug)]
pub struct Framed {
    pub name: &'static str,
    pub link: i32,
    pub frame: Vec<u8>,
    pub inner: Inner,
}

fn framed(name: &'static str, link: i32, frame: Vec<u8>, inner: Inner) -> Framed {
    Framed {
        name,
        link,
        frame,
        inner,
    }
}

/// `ip4` and `ip6` (whole IP packets) under every link header decode.rs
/// reads, one frame each.
pub fn link_headers(ip4: &[u8], ip6: &[u8]) -> Vec<Framed> {
    use Inner::{V4, V6};
    use ethertype::{IPV4, IPV6};
    let wlan4 = ieee80211_data(3, false, ip4);
    vec![
        framed("EN10MB v4", dlt::EN10MB, ethernet(IPV4, ip4), V4),
        framed("EN10MB v6", dlt::EN10MB, ethernet(IPV6, ip6), V6),
        framed("NULL le AF 2", dlt::NULL, null_le(2, ip4), V4),
        framed("NULL be AF 2", dlt::NULL, null_be(2, ip4), V4),
        framed("NULL le AF 24", dlt::NULL, null_le(24, ip6), V6),
        framed("NULL le AF 28", dlt::NULL, null_le(28, ip6), V6),
        framed("NULL le AF 30", dlt::NULL, null_le(30, ip6), V6),
        framed("NULL be AF 30", dlt::NULL, null_be(30, ip6), V6),
        framed("NULL le AF 10", dlt::NULL, null_le(10, ip6), V6),
        framed("LOOP be AF 2", dlt::LOOP, null_be(2, ip4), V4),
        framed("LOOP be AF 24", dlt::LOOP, null_be(24, ip6), V6),
        framed("RAW 101 v4", dlt::RAW, ip4.to_vec(), V4),
        framed("RAW 101 v6", dlt::RAW, ip6.to_vec(), V6),
        framed("RAW 12 v4", dlt::RAW_DLT12, ip4.to_vec(), V4),
        framed("RAW 12 v6", dlt::RAW_DLT12, ip6.to_vec(), V6),
        framed("RAW 14 v4", dlt::RAW_DLT14, ip4.to_vec(), V4),
        framed("RAW 14 v6", dlt::RAW_DLT14, ip6.to_vec(), V6),
        framed("IPV4", dlt::IPV4, ip4.to_vec(), V4),
        framed("IPV6", dlt::IPV6, ip6.to_vec(), V6),
        framed("SLL v4", dlt::LINUX_SLL, sll(IPV4, ip4), V4),
        framed("SLL v6", dlt::LINUX_SLL, sll(IPV6, ip6), V6),
        framed("SLL2 v4", dlt::LINUX_SLL2, sll2(IPV4, ip4), V4),
        framed("SLL2 v6", dlt::LINUX_SLL2, sll2(IPV6, ip6), V6),
        framed("NFLOG le", dlt::NFLOG, nflog(true, 2, ip4), V4),
        framed("NFLOG be", dlt::NFLOG, nflog(false, 2, ip4), V4),
        framed("NFLOG v6", dlt::NFLOG, nflog(true, 10, ip6), V6),
        framed("C_HDLC", dlt::C_HDLC, c_hdlc(0x0f, IPV4, ip4), V4),
        framed("C_HDLC v6", dlt::C_HDLC, c_hdlc(0x8f, IPV6, ip6), V6),
        framed(
            "radiotap QoS",
            dlt::IEEE802_11_RADIOTAP,
            // Flags field present (bit 1), padded to 4 bytes.
            radiotap(0x02, &[0x10, 0, 0, 0], &ieee80211_data(2, true, ip4)),
            V4,
        ),
        framed(
            "radiotap bare",
            dlt::IEEE802_11_RADIOTAP,
            radiotap(0, &[], &ieee80211_data(2, false, ip4)),
            V4,
        ),
        framed("802.11 4-addr", dlt::IEEE802_11, wlan4, V4),
        framed(
            "802.11 FromDS",
            dlt::IEEE802_11,
            ieee80211_data(2, false, ip4),
            V4,
        ),
    ]
}

/// `ip4` and `ip6` inside every encapsulation decode.rs unwraps, on
/// Ethernet (or RAW where the outer packet is IP), one frame each.
pub fn encapsulations(ip4: &[u8], ip6: &[u8]) -> Vec<Framed> {
    use Inner::{V4, V6};
    use ethertype::*;
    let en = |name, frame| framed(name, dlt::EN10MB, frame, V4);
    let en6 = |name, frame| framed(name, dlt::EN10MB, frame, V6);
    let inner_eth = ethernet(IPV4, ip4);
    let nested4 = {
        // IP-in-IP inside GRE inside VXLAN inside IP-in-IP: 4 levels.
        let l1 = ipv4(4, ip4);
        let l2 = ipv4(47, &gre(0, IPV4, &l1));
        let l3 = ipv4_udp(4789, &vxlan(&ethernet(IPV4, &l2)));
        ipv4(4, &l3)
    };
    vec![
        en("802.1Q", ethernet(VLAN, &vlan(IPV4, ip4))),
        en("QinQ 88a8", ethernet(QINQ, &vlans(2, IPV4, ip4))),
        en("QinQ 9100", ethernet(QINQ_OLD, &vlans(2, IPV4, ip4))),
        en("3 tags", ethernet(QINQ, &vlans(3, IPV4, ip4))),
        en("PPPoE", ethernet(PPPOE_SESSION, &pppoe(0x0021, ip4))),
        en(
            "PPPoE over QinQ",
            ethernet(QINQ, &vlans(2, PPPOE_SESSION, &pppoe(0x0021, ip4))),
        ),
        en("MPLS 1 label", ethernet(MPLS, &mpls(&[16], ip4))),
        en("MPLS 2 labels", ethernet(MPLS, &mpls(&[16, 32], ip4))),
        en(
            "MPLS PW + Ethernet",
            ethernet(MPLS, &mpls(&[16], &[&[0; 4][..], &inner_eth].concat())),
        ),
        en("VXLAN", ethernet(IPV4, &ipv4_udp(4789, &vxlan(&inner_eth)))),
        en(
            "Geneve",
            ethernet(IPV4, &ipv4_udp(6081, &geneve(&[0, 1, 2, 0], &inner_eth))),
        ),
        en(
            "Geneve no options",
            ethernet(IPV4, &ipv4_udp(6081, &geneve(&[], &inner_eth))),
        ),
        en(
            "GTP-U",
            ethernet(IPV4, &ipv4_udp(2152, &gtpu_pdu_session(ip4))),
        ),
        en("GTP-U plain", ethernet(IPV4, &ipv4_udp(2152, &gtpu(ip4)))),
        en("GRE", ethernet(IPV4, &ipv4(47, &gre(0, IPV4, ip4)))),
        en(
            "GRE csum+key+seq",
            ethernet(IPV4, &ipv4(47, &gre(0xb0, IPV4, ip4))),
        ),
        en(
            "GRE TEB",
            ethernet(IPV4, &ipv4(47, &gre(0x20, TEB, &inner_eth))),
        ),
        en(
            "ERSPAN I",
            ethernet(IPV4, &ipv4(47, &gre(0, ERSPAN_II, &inner_eth))),
        ),
        en(
            "ERSPAN II",
            ethernet(IPV4, &ipv4(47, &erspan_ii(&inner_eth))),
        ),
        en(
            "ERSPAN III",
            ethernet(IPV4, &ipv4(47, &erspan_iii([0; 8], None, &inner_eth))),
        ),
        en(
            "ERSPAN III + platform subheader",
            ethernet(
                IPV4,
                &ipv4(
                    47,
                    &erspan_iii([0, 0, 0, 0, 0, 0, 0, 1], Some([9; 8]), &inner_eth),
                ),
            ),
        ),
        en(
            "ERSPAN III bare IP",
            ethernet(
                IPV4,
                &ipv4(47, &erspan_iii([0, 0, 0, 0, 0, 0, 0x08, 0], None, ip4)),
            ),
        ),
        en("IPIP", ethernet(IPV4, &ipv4(4, ip4))),
        en("4in6", ethernet(IPV6, &ipv6(4, ip4))),
        en(
            "802.3 + SNAP",
            ethernet((ip4.len() + 8) as u16, &llc_snap(IPV4, ip4)),
        ),
        en("4 nested tunnels", ethernet(IPV4, &nested4)),
        en6("MPLS v6", ethernet(MPLS, &mpls(&[2], ip6))),
        en6("Cisco MetaData SGT v6", sgt_tagged(7, IPV6, ip6)),
        en6("6in4", ethernet(IPV4, &ipv4(41, ip6))),
        framed("GRE v6", dlt::RAW, ipv4(47, &gre(0, IPV6, ip6)), V6),
        en6("PPPoE v6", ethernet(PPPOE_SESSION, &pppoe(0x0057, ip6))),
        en6("IPv6 hop-by-hop", ethernet(IPV6, &with_hop_by_hop(ip6))),
    ]
    .into_iter()
    .chain(trustsec_and_mirrors(ip4))
    .collect()
}

/// `ip4` behind a Cisco TrustSec tag, and inside the tunnel nestings of
/// port mirrors (wire-facts §10): a switch mirrors a VXLAN underlay over
/// GRE/ERSPAN, sometimes with a TrustSec tag or one more GRE inside.
fn trustsec_and_mirrors(ip4: &[u8]) -> Vec<Framed> {
    use ethertype::*;
    let en = |name, frame| framed(name, dlt::EN10MB, frame, Inner::V4);
    let inner_eth = ethernet(IPV4, ip4);
    let vxlan_eth = ethernet(IPV4, &ipv4_udp(4789, &vxlan(&inner_eth)));
    let sgt_eth = sgt_tagged(7, IPV4, ip4);
    vec![
        en("Cisco MetaData SGT", sgt_eth.clone()),
        en(
            "802.1Q + Cisco MetaData",
            ethernet(VLAN, &vlan(CISCO_METADATA, &cisco_metadata(9, IPV4, ip4))),
        ),
        en(
            "GRE ERSPAN II VXLAN",
            ethernet(IPV4, &ipv4(47, &erspan_ii(&vxlan_eth))),
        ),
        en(
            "GRE ERSPAN II VXLAN on Linux's port 8472",
            ethernet(
                IPV4,
                &ipv4(
                    47,
                    &erspan_ii(&ethernet(IPV4, &ipv4_udp(8472, &vxlan(&inner_eth)))),
                ),
            ),
        ),
        en(
            "GRE ERSPAN III VXLAN",
            ethernet(IPV4, &ipv4(47, &erspan_iii([0; 8], None, &vxlan_eth))),
        ),
        en(
            "GRE ERSPAN II VXLAN SGT",
            ethernet(
                IPV4,
                &ipv4(
                    47,
                    &erspan_ii(&ethernet(IPV4, &ipv4_udp(4789, &vxlan(&sgt_eth)))),
                ),
            ),
        ),
        en(
            "GRE ERSPAN II VXLAN GRE",
            ethernet(
                IPV4,
                &ipv4(
                    47,
                    &erspan_ii(&ethernet(
                        IPV4,
                        &ipv4_udp(4789, &vxlan(&ethernet(IPV4, &ipv4(47, &gre(0, IPV4, ip4))))),
                    )),
                ),
            ),
        ),
    ]
}
