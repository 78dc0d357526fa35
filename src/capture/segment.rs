//! The owned, decoded TCP segment that crosses from the capture thread to a
//! worker, and the flow identity it belongs to.
//!
//! This file owns the vocabulary shared by decode and the engine: `Timestamp`,
//! `Endpoint`, `FlowKey` (canonical, direction-free), `TcpFlags` and
//! `Segment`. It must not parse anything: decode builds segments, the engine
//! consumes them. Invariant: a `FlowKey` built from either direction of a
//! connection is the same value, so `FlowKey::shard` sends both directions of
//! a flow to the same worker.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Packet time in microseconds since the Unix epoch (pcap's clock, not ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_secs_micros(secs: i64, micros: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
    }
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    pub fn subsec_micros(self) -> u32 {
        // rem_euclid of a positive modulus is in 0..1_000_000, so it fits.
        self.0.rem_euclid(1_000_000) as u32
    }
    /// Latest time humantime formats: 9999-12-31T23:59:59.999999Z.
    const MAX_FORMATTED: i64 = 253_402_300_799_999_999;

    /// RFC 3339 UTC with microseconds, e.g. `2026-11-22T19:27:20.123456Z`.
    /// Total: times before 1970 or after 9999 (a corrupt pcap can hold any
    /// value) are clamped to that range instead of failing.
    pub fn rfc3339(self) -> String {
        let micros = self.0.clamp(0, Self::MAX_FORMATTED) as u64;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
        humantime::format_rfc3339_micros(t).to_string()
    }

    /// The text line's `2026-11-22 19:27:20.123456` (UTC), tcpdump -tttt
    /// style, from the same formatter.
    pub fn date_time(self) -> String {
        let mut s = self.rfc3339();
        s.pop(); // 'Z'
        s.replace('T', " ")
    }
}

/// One side of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    /// `ip:port`, IPv6 as `[addr]:port` (the form tshark and curl print).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(a) => write!(f, "{}:{}", a, self.port),
            IpAddr::V6(a) => write!(f, "[{}]:{}", a, self.port),
        }
    }
}

/// Direction-free identity of a TCP connection: the two endpoints in sorted
/// order. `lo < hi` always holds, except for the degenerate self-connection
/// where they are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    pub fn new(a: Endpoint, b: Endpoint) -> Self {
        if a <= b {
            FlowKey { lo: a, hi: b }
        } else {
            FlowKey { lo: b, hi: a }
        }
    }

    /// Worker index for this flow. Deterministic across runs and machines
    /// (FxHash has no random seed), identical for both directions because
    /// the key is canonical. It hashes the endpoint with the higher port,
    /// which is the client's ephemeral one in nearly every connection: the
    /// two halves an iptables REDIRECT makes of one connection (client to
    /// the proxy port, original destination back to the client) share only
    /// that endpoint, and `flow::redirect` must see both on one worker.
    /// Equal ports hash the whole key.
    pub fn shard(&self, shards: usize) -> usize {
        shard_of(self.lo, self.hi, shards)
    }
}

/// `FlowKey::new(a, b).shard(shards)`, without sorting the endpoints
/// unless their ports are equal: walk mode places every frame of a file
/// in every walker (`capture::shard`), so the sort was paid per frame.
pub fn shard_of(a: Endpoint, b: Endpoint, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let mut h = rustc_hash::FxHasher::default();
    match a.port.cmp(&b.port) {
        std::cmp::Ordering::Greater => a.hash(&mut h),
        std::cmp::Ordering::Less => b.hash(&mut h),
        std::cmp::Ordering::Equal => FlowKey::new(a, b).hash(&mut h),
    }
    (h.finish() % shards as u64) as usize
}

/// The TCP flag bits mtlsniff acts on (RFC 9293 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// One decoded TCP segment. `P` holds the payload: an owned `Vec<u8>` by
/// default; the pipeline uses a range into a batch's shared byte arena and
/// hands the engine a borrowed slice, so no segment allocates on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<P = Vec<u8>> {
    pub ts: Timestamp,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// The captured TCP payload bytes (or where to find them).
    pub payload: P,
    /// Payload bytes the IP header promised but the capture did not hold
    /// (snaplen truncation). The reassembler records them as a gap.
    pub missing: u32,
}

impl<P> Segment<P> {
    pub fn key(&self) -> FlowKey {
        FlowKey::new(self.src, self.dst)
    }

    /// The same segment, its payload borrowed as bytes.
    pub fn as_view(&self) -> Segment<&[u8]>
    where
        P: AsRef<[u8]>,
    {
        self.with_payload(self.payload.as_ref())
    }

    /// The same segment with its payload replaced.
    pub fn map_payload<Q>(self, f: impl FnOnce(P) -> Q) -> Segment<Q> {
        let head = self.with_payload(());
        head.with_payload(f(self.payload))
    }

    /// This segment's header fields around another payload.
    fn with_payload<Q>(&self, payload: Q) -> Segment<Q> {
        Segment {
            ts: self.ts,
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            payload,
            missing: self.missing,
        }
    }
}

/// The TCP ports `--ports` keeps, as a bitset (a lookup per segment).
#[derive(Clone, PartialEq, Eq)]
pub struct PortSet {
    bits: Box<[u64; 1024]>,
}

impl PortSet {
    pub fn new(ports: impl IntoIterator<Item = u16>) -> Self {
        let mut bits = Box::new([0u64; 1024]);
        for p in ports {
            if let Some(word) = bits.get_mut(usize::from(p >> 6)) {
                *word |= 1u64 << (p & 63);
            }
        }
        PortSet { bits }
    }
    pub fn contains(&self, port: u16) -> bool {
        self.bits
            .get(usize::from(port >> 6))
            .is_some_and(|w| w & (1u64 << (port & 63)) != 0)
    }
    /// The ports, ascending.
    pub fn ports(&self) -> Vec<u16> {
        (0..=u16::MAX).filter(|&p| self.contains(p)).collect()
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.ports()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: s.parse().unwrap(),
            port,
        }
    }

    /// The rule as `FlowKey::shard` first wrote it, on the sorted key.
    fn shard_model(k: &FlowKey, shards: usize) -> usize {
        if shards <= 1 {
            return 0;
        }
        let mut h = rustc_hash::FxHasher::default();
        match k.lo.port.cmp(&k.hi.port) {
            std::cmp::Ordering::Greater => k.lo.hash(&mut h),
            std::cmp::Ordering::Less => k.hi.hash(&mut h),
            std::cmp::Ordering::Equal => k.hash(&mut h),
        }
        (h.finish() % shards as u64) as usize
    }

    proptest::proptest! {
        #[test]
        fn shard_of_unsorted_ends_is_the_keys_shard(
            a in proptest::array::uniform16(0u8..4),
            b in proptest::array::uniform16(0u8..4),
            v4 in proptest::bool::ANY,
            pa in 0u16..4,
            pb in 0u16..4,
            shards in 1usize..9,
        ) {
            let ip = |o: [u8; 16]| -> IpAddr {
                if v4 {
                    IpAddr::from([o[0], o[1], o[2], o[3]])
                } else {
                    IpAddr::from(o)
                }
            };
            let (x, y) = (Endpoint { ip: ip(a), port: pa }, Endpoint { ip: ip(b), port: pb });
            let key = FlowKey::new(x, y);
            proptest::prop_assert_eq!(shard_of(x, y, shards), shard_model(&key, shards));
            proptest::prop_assert_eq!(shard_of(y, x, shards), shard_model(&key, shards));
            proptest::prop_assert_eq!(key.shard(shards), shard_model(&key, shards));
        }
    }

    #[test]
    fn flow_key_is_symmetric_and_shards_both_directions_together() {
        let a = ep("10.0.0.1", 40000);
        let b = ep("10.0.0.2", 443);
        assert_eq!(FlowKey::new(a, b), FlowKey::new(b, a));
        for n in 1..8 {
            assert_eq!(FlowKey::new(a, b).shard(n), FlowKey::new(b, a).shard(n));
        }
    }

    #[test]
    fn both_halves_of_a_redirected_connection_share_a_shard() {
        // Client to the proxy port, and the original destination back.
        let c = ep("10.99.0.2", 48420);
        let (a, b) = (ep("127.0.0.1", 15001), ep("10.96.0.10", 8080));
        let spread: std::collections::BTreeSet<usize> = (40000..40064)
            .map(|p| FlowKey::new(ep("10.99.0.2", p), a).shard(4))
            .collect();
        assert!(spread.len() > 1, "clients spread over workers: {spread:?}");
        for n in 1..8 {
            assert_eq!(FlowKey::new(c, a).shard(n), FlowKey::new(b, c).shard(n));
        }
    }

    #[test]
    fn endpoint_display_brackets_ipv6() {
        assert_eq!(ep("::1", 443).to_string(), "[::1]:443");
        assert_eq!(ep("127.0.0.1", 80).to_string(), "127.0.0.1:80");
    }

    #[test]
    fn timestamp_formats_rfc3339_micros() {
        let t = Timestamp::from_secs_micros(1_700_000_000, 42);
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20.000042Z");
        assert_eq!(t.date_time(), "2023-11-14 22:13:20.000042");
        // Corrupt capture times never fail to format.
        assert_eq!(Timestamp(-1).rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp(i64::MAX).rfc3339(), "9999-12-31T23:59:59.999999Z");
        assert!(Timestamp(i64::MIN).date_time().starts_with("1970"));
    }
}
