//! The fuzz harness of mtlsniff: how a fuzz input becomes calls into the
//! library, and the invariants checked after each call.
//!
//! One file serves three users, so the input formats cannot drift apart:
//! the cargo-fuzz targets in `fuzz_targets/` call the `run_*` functions; the
//! seed extractor (`examples/seeds.rs`) uses the encoders to turn captures
//! into inputs of the same formats; and the main crate's
//! `tests/fuzz_regressions.rs` includes this file by path, so plain
//! `cargo test` replays every committed reproducer through exactly the
//! target's code path. It therefore depends on nothing but `mtlsniff` and
//! std, keeps no state between inputs, and panics only where an invariant
//! the library promises is broken (a panic is the fuzzer's crash signal).
//!
//! The formats are compact hand-rolled byte layouts, not `arbitrary`: a seed
//! written from a real capture is then a valid input whose bytes map one to
//! one onto wire bytes, and libFuzzer's mutations (bit flips, splices,
//! length changes) stay meaningful. Every layout is documented at its
//! `run_*` function; any byte string is a valid input.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mtlsniff::capture::decode::{self, DecodeCounters, Frame, LinkType};
use mtlsniff::capture::segment::{Endpoint, FlowKey, Segment, TcpFlags, Timestamp};
use mtlsniff::classify::{CERTIFICATE_RECORD_MIN, Classifier, Close, Direction, End};
use mtlsniff::flow::engine::{Engine, Limits, Options};
use mtlsniff::pipeline::{Input, Plan, run_offline};
use mtlsniff::report::output::Format;
use mtlsniff::report::output::{Printer, text_line};
use mtlsniff::tls::identity::{self, MAX_SANS, MAX_STRING_CHARS};
use mtlsniff::tls::record::{self, HandshakeReassembler, HeaderRead, content, handshake};
use mtlsniff::verdict::{Basis, Class, ClientCert, Report, Verdict};

/// The fuzz targets, by name (the names of `fuzz_targets/*.rs`, of the
/// corpus directories and of `tests/fuzz-regressions/<target>/`).
pub const TARGETS: [&str; 4] = ["decode", "engine", "tls", "identity"];

/// Run the named target's code path on one input; false for an unknown name.
pub fn run_target(target: &str, data: &[u8]) -> bool {
    match target {
        "decode" => run_decode(data),
        "engine" => run_engine(data),
        "tls" => run_tls(data),
        "identity" => run_identity(data),
        _ => return false,
    }
    true
}

// ------------------------------------------------------------------ decode

/// Every link type `decode` supports, in the order of the selector byte.
pub const LINK_TYPES: [LinkType; 14] = [
    LinkType::NULL,
    LinkType::EN10MB,
    LinkType::RAW_DLT12,
    LinkType::RAW_DLT14,
    LinkType::RAW,
    LinkType::C_HDLC,
    LinkType::IEEE802_11,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::IEEE802_11_RADIOTAP,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::NFLOG,
    LinkType::LINUX_SLL2,
];

/// Bytes before the frame in a `decode` input.
pub const DECODE_HEADER_LEN: usize = 3;
/// The `orig_len` field value meaning "0 on the wire" (a corrupt record).
const ORIG_LEN_ZERO: u16 = u16::MAX;

/// A `decode` input for a frame of `link` captured whole (orig_len = caplen).
/// None for a link type `decode` does not support.
pub fn decode_input(link: LinkType, frame: &[u8], orig_len: u32) -> Option<Vec<u8>> {
    let selector = LINK_TYPES.iter().position(|&l| l == link)?;
    let extra = u16::try_from(orig_len.saturating_sub(frame.len() as u32))
        .unwrap_or(ORIG_LEN_ZERO - 1)
        .min(ORIG_LEN_ZERO - 1);
    let mut out = vec![selector as u8];
    out.extend_from_slice(&extra.to_be_bytes());
    out.extend_from_slice(frame);
    Some(out)
}

/// Target `decode`. Layout: `[selector][orig_len extra: u16 BE][frame...]`.
/// The selector picks `LINK_TYPES[selector % 14]`, except that selectors
/// from 0xF0 name an unsupported link type (its number is the selector);
/// the frame's wire length is its captured length plus `extra` (0xFFFF: a
/// wire length of 0, as a corrupt pcap record says).
///
/// Checks: `decode` and `decode_borrowed` agree, and agree with the full
/// walk without the fast path (`decode_walk`), segment and counters; `frames` counts the frame;
/// a frame that yields no segment increments exactly one drop counter and
/// one that yields a segment none (decode.rs's counter contract); a
/// borrowed payload lies inside the frame.
pub fn run_decode(data: &[u8]) {
    let Some((&[selector, e0, e1], frame)) = data.split_first_chunk::<DECODE_HEADER_LEN>() else {
        return;
    };
    let link = if selector >= 0xf0 {
        LinkType(i32::from(selector))
    } else {
        LINK_TYPES[usize::from(selector) % LINK_TYPES.len()]
    };
    let extra = u16::from_be_bytes([e0, e1]);
    let orig_len = if extra == ORIG_LEN_ZERO {
        0
    } else {
        (frame.len() as u32).saturating_add(u32::from(extra))
    };
    let f = Frame {
        ts: Timestamp(1_700_000_000_000_000),
        link,
        data: frame,
        orig_len,
    };
    let mut owned_counters = DecodeCounters::default();
    let owned = decode::decode(&f, &mut owned_counters);
    let mut counters = DecodeCounters::default();
    let borrowed = decode::decode_borrowed(&f, &mut counters);
    assert_eq!(
        owned_counters, counters,
        "decode and decode_borrowed count alike"
    );
    assert_eq!(
        owned.as_ref().map(Segment::as_view),
        borrowed,
        "decode and decode_borrowed agree"
    );
    let mut walk_counters = DecodeCounters::default();
    let walked = decode::decode_walk(&f, &mut walk_counters);
    assert_eq!(borrowed, walked, "the fast path agrees with the full walk");
    assert_eq!(counters, walk_counters, "the fast path counts as the walk");
    assert_eq!(counters.frames, 1);
    // Notes are not drops: they mark frames that still decode.
    let notes = [
        "decode.frames",
        "decode.tcp_segments",
        "decode.ip_len_from_caplen",
        "decode.truncated",
    ];
    let drops: u64 = counters
        .entries()
        .into_iter()
        .filter(|(name, _)| !notes.contains(name))
        .map(|(_, n)| n)
        .sum();
    match borrowed {
        Some(seg) => {
            assert_eq!(counters.tcp_segments, 1);
            assert_eq!(drops, 0, "a decoded frame counts no drop: {counters:?}");
            let inside = frame.as_ptr_range();
            let payload = seg.payload.as_ptr_range();
            assert!(
                seg.payload.is_empty()
                    || (inside.start <= payload.start && payload.end <= inside.end),
                "the payload is borrowed from the frame"
            );
        }
        None => {
            assert_eq!(counters.tcp_segments, 0);
            assert_eq!(
                drops, 1,
                "a dropped frame counts exactly one reason: {counters:?}"
            );
        }
    }
}

// ------------------------------------------------------------------ engine

/// Bytes before the first segment record in an `engine` input.
pub const ENGINE_HEADER_LEN: usize = 11;
/// Bytes of one segment record before its payload.
pub const SEGMENT_HEADER_LEN: usize = 7;
/// Connections an `engine` input can hold (client ports 40000..40004).
pub const ENGINE_FLOWS: usize = 4;
/// Client port of flow 0.
const CLIENT_PORT_BASE: u16 = 40000;
/// Packet time of the first segment.
const BASE_TIME: i64 = 1_700_000_000_000_000;

/// The `engine` input's header byte 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineProfile {
    /// Small limits (2 flows, 4 KiB per direction, 4 out-of-order segments,
    /// 1 KiB handshake messages) so the limit paths run.
    pub tight: bool,
    /// IPv6 endpoints instead of IPv4.
    pub ipv6: bool,
    /// End of input reports this many flows per `finish_some` call (0: all).
    pub finish_chunk: u8,
}

impl EngineProfile {
    fn byte(self) -> u8 {
        u8::from(self.tight) | u8::from(self.ipv6) << 1 | (self.finish_chunk & 7) << 2
    }

    fn from_byte(b: u8) -> Self {
        EngineProfile {
            tight: b & 1 != 0,
            ipv6: b & 2 != 0,
            finish_chunk: (b >> 2) & 7,
        }
    }
}

/// The next sequence number the harness expects of each (flow, direction):
/// segment records give their sequence number as an offset from it, so an
/// in-order stream is offset 0 and retransmissions, overlaps and holes are
/// small offsets a mutation reaches.
#[derive(Debug, Clone)]
pub struct SeqTrack {
    next: [[u32; 2]; ENGINE_FLOWS],
}

impl SeqTrack {
    pub fn new(isn: [u32; 2]) -> Self {
        SeqTrack {
            next: [isn; ENGINE_FLOWS],
        }
    }

    /// The sequence number `offset` away from the expected one.
    pub fn seq(&self, flow: usize, dir: usize, offset: i16) -> u32 {
        self.next[flow % ENGINE_FLOWS][dir & 1].wrapping_add(i32::from(offset) as u32)
    }

    /// The offset of `seq` from the expected one, if it fits.
    pub fn offset(&self, flow: usize, dir: usize, seq: u32) -> Option<i16> {
        let d = seq.wrapping_sub(self.next[flow % ENGINE_FLOWS][dir & 1]) as i32;
        i16::try_from(d).ok()
    }

    /// Move past a segment that ends after the expected sequence number
    /// (SYN and FIN take one sequence number each, RFC 9293 §3.4).
    pub fn advance(&mut self, flow: usize, dir: usize, seq: u32, len: usize, flags: u8) {
        let flags = TcpFlags(flags);
        let end = seq
            .wrapping_add(len as u32)
            .wrapping_add(u32::from(flags.syn()))
            .wrapping_add(u32::from(flags.fin()));
        let next = &mut self.next[flow % ENGINE_FLOWS][dir & 1];
        if (end.wrapping_sub(*next) as i32) > 0 {
            *next = end;
        }
    }
}

/// The time step (in milliseconds, step^4) that covers `gap_micros`.
pub fn time_step(gap_micros: i64) -> u8 {
    let ms = gap_micros.max(0) / 1000;
    (0u8..32).find(|&s| i64::from(s).pow(4) >= ms).unwrap_or(31)
}

/// Writes `engine` inputs.
#[derive(Debug, Clone)]
pub struct EngineInputWriter {
    bytes: Vec<u8>,
    track: SeqTrack,
}

/// One segment for `EngineInputWriter::push`.
#[derive(Debug, Clone, Copy)]
pub struct SegmentRecord<'a> {
    /// 0..4.
    pub flow: usize,
    pub to_client: bool,
    /// Time since the previous segment, in microseconds.
    pub gap_micros: i64,
    pub flags: u8,
    pub seq: u32,
    pub payload: &'a [u8],
    pub missing: u32,
}

impl EngineInputWriter {
    pub fn new(profile: EngineProfile, server_port: u16, isn: [u32; 2]) -> Self {
        let mut bytes = vec![profile.byte()];
        bytes.extend_from_slice(&server_port.to_be_bytes());
        bytes.extend_from_slice(&isn[0].to_be_bytes());
        bytes.extend_from_slice(&isn[1].to_be_bytes());
        EngineInputWriter {
            bytes,
            track: SeqTrack::new(isn),
        }
    }

    /// Append one segment (payloads over 64 KiB are cut); the sequence
    /// number is clamped to the nearest one an offset can say.
    pub fn push(&mut self, r: &SegmentRecord<'_>) {
        let dir = usize::from(r.to_client);
        let offset = self.track.offset(r.flow, dir, r.seq).unwrap_or_else(|| {
            let d = r.seq.wrapping_sub(self.track.seq(r.flow, dir, 0)) as i32;
            if d < 0 { i16::MIN } else { i16::MAX }
        });
        let payload = r.payload.get(..usize::from(u16::MAX)).unwrap_or(r.payload);
        let ctl = u8::from(r.to_client)
            | ((r.flow % ENGINE_FLOWS) as u8) << 1
            | time_step(r.gap_micros) << 3;
        self.bytes.push(ctl);
        self.bytes.push(r.flags);
        self.bytes.extend_from_slice(&offset.to_be_bytes());
        self.bytes
            .extend_from_slice(&(payload.len() as u16).to_be_bytes());
        self.bytes.push(u8::try_from(r.missing).unwrap_or(u8::MAX));
        self.bytes.extend_from_slice(payload);
        let seq = self.track.seq(r.flow, dir, offset);
        self.track.advance(r.flow, dir, seq, payload.len(), r.flags);
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() <= ENGINE_HEADER_LEN
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Target `engine`. Layout: an 11-byte header `[profile][server port: u16
/// BE][client ISN: u32 BE][server ISN: u32 BE]`, then segment records
/// `[ctl][tcp flags][seq offset: i16 BE][payload length: u16 BE][missing]
/// [payload...]`. `ctl` bit 0 is the direction (1: server to client), bits
/// 1-2 the connection (client port 40000 + n, all to one server), bits 3-7
/// a time step of step^4 ms before the segment (up to 15 minutes, so idle
/// expiry runs). The sequence number is the offset from the next one
/// expected in that direction (`SeqTrack`); `missing` is payload the capture
/// did not hold (snaplen). The engine gets a clock tick after every segment
/// that moved time, then the end of input, reported `finish_chunk` flows at
/// a time.
///
/// Checks, all promised by engine.rs: no flow is reported twice (same
/// 4-tuple and first packet); `flows.reported` equals the reports made and
/// `flows.created`/`flows.expired` bound it; the table is empty after the
/// end of input, which reports in first-seen order between its watermarks;
/// packets and bytes in the verdicts add up to at most what was fed; and
/// every verdict passes `check_verdict` and prints as one escaped line.
/// Then the same segments go through `run_offline` (`check_offline`).
pub fn run_engine(data: &[u8]) {
    engine_reports(data);
}

/// The engine limits of a profile: tight ones make every limit bite.
fn limits_for(profile: EngineProfile) -> Limits {
    if profile.tight {
        Limits {
            max_flows: 2,
            stream_buffer: 4096,
            stream_segments: 4,
            handshake_buffer: 1024,
            ..Limits::default()
        }
    } else {
        Limits::default()
    }
}

/// The run options of an engine profile: `-A` previews, smaller when tight.
fn options_for(profile: EngineProfile) -> Options {
    Options {
        preview_bytes: if profile.tight { 64 } else { 256 },
        ..Options::default()
    }
}

/// `run_engine`, returning the reports (for tests of the seed format).
pub fn engine_reports(data: &[u8]) -> Vec<Report> {
    let Some((head, mut rest)) = data.split_first_chunk::<ENGINE_HEADER_LEN>() else {
        return Vec::new();
    };
    let [p, port0, port1, c0, c1, c2, c3, s0, s1, s2, s3] = *head;
    let profile = EngineProfile::from_byte(p);
    let server_port = u16::from_be_bytes([port0, port1]);
    let isn = [
        u32::from_be_bytes([c0, c1, c2, c3]),
        u32::from_be_bytes([s0, s1, s2, s3]),
    ];
    let limits = limits_for(profile);
    let (client_ip, server_ip) = if profile.ipv6 {
        (
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        )
    };
    let server = Endpoint {
        ip: server_ip,
        port: server_port,
    };
    let mut engine = Engine::new(limits, options_for(profile));
    let mut track = SeqTrack::new(isn);
    let mut out: Vec<Report> = Vec::new();
    let mut now = BASE_TIME;
    let mut index: u64 = 0;
    let mut fed_packets: u64 = 0;
    let mut fed_bytes: u64 = 0;
    let mut fed: Vec<Segment> = Vec::new();
    while let Some((h, tail)) = rest.split_first_chunk::<SEGMENT_HEADER_LEN>() {
        let [ctl, flags, o0, o1, l0, l1, missing] = *h;
        let len = usize::from(u16::from_be_bytes([l0, l1])).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let dir = usize::from(ctl & 1);
        let flow = usize::from((ctl >> 1) & 3);
        let step = i64::from(ctl >> 3);
        now += step.pow(4) * 1000;
        let seq = track.seq(flow, dir, i16::from_be_bytes([o0, o1]));
        track.advance(flow, dir, seq, payload.len(), flags);
        let client = Endpoint {
            ip: client_ip,
            port: CLIENT_PORT_BASE + flow as u16,
        };
        let (src, dst) = if dir == 0 {
            (client, server)
        } else {
            (server, client)
        };
        let seg = Segment {
            ts: Timestamp(now),
            src,
            dst,
            seq,
            ack: track.seq(flow, 1 - dir, 0),
            flags: TcpFlags(flags),
            window: 65535,
            payload,
            missing: u32::from(missing),
        };
        fed.push(seg.clone().map_payload(<[u8]>::to_vec));
        engine.on_segment(seg, index, &mut out);
        fed_packets += 1;
        fed_bytes += payload.len() as u64;
        index += 1;
        if step > 0 {
            engine.on_tick(Timestamp(now), index, &mut out);
        }
    }
    let chunk = match profile.finish_chunk {
        0 => usize::MAX,
        n => usize::from(n),
    };
    let mut watermark: Option<u64> = None;
    loop {
        let before = out.len();
        let next = engine.finish_some(index, chunk, &mut out);
        for r in out.get(before..).unwrap_or_default() {
            assert!(
                watermark.is_none_or(|w| r.order.flow >= w),
                "a report of end of input precedes its watermark"
            );
            assert!(
                next.is_none_or(|n| r.order.flow < n),
                "a report of end of input is past the next watermark"
            );
        }
        match next {
            Some(n) => {
                assert!(watermark.is_none_or(|w| n > w), "watermarks increase");
                watermark = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(
        engine.flow_count(),
        0,
        "the end of input empties the flow table"
    );

    let c = engine.counters();
    assert_eq!(
        c.flows_reported,
        out.len() as u64,
        "flows.reported counts the reports"
    );
    assert!(c.flows_reported <= c.flows_created);
    assert!(c.flows_expired <= c.flows_created);
    let mut seen = HashSet::new();
    let (mut packets, mut bytes) = (0u64, 0u64);
    for r in &out {
        // Close events are off in the options used here: every report is a
        // verdict.
        let v = r.verdict().expect("closes are not asked for");
        assert!(
            seen.insert((FlowKey::new(v.client, v.server), r.order.flow)),
            "flow reported twice: {} > {} first packet {}",
            v.client,
            v.server,
            r.order.flow
        );
        assert!(
            r.order.flow <= r.order.trigger,
            "a flow is decided after it starts"
        );
        assert!(r.order.trigger <= index);
        assert!(v.ts >= v.first_seen);
        assert!(v.packets >= 1);
        if v.class == Class::Mtls {
            assert!(v.bytes_to_server > 0, "mtls with no byte from the client");
        }
        packets += v.packets;
        bytes += v.bytes_to_server + v.bytes_to_client;
        check_verdict(v);
    }
    assert!(
        packets <= fed_packets,
        "verdicts count more packets than were fed"
    );
    assert!(
        bytes <= fed_bytes,
        "verdicts count more bytes than were fed"
    );
    check_offline(
        &fed,
        limits_for(profile),
        options_for(profile),
        profile.tight,
    );
    out
}

/// The same segments through `pipeline::run_offline`, the binary's file
/// mode in-process: no report arrives below its worker's watermark (the
/// engines' contract the output order rests on), reports leave in
/// `ReportOrder`, and, while no limit bites (not the tight profile),
/// two workers print exactly what one prints.
fn check_offline(segments: &[Segment], limits: Limits, options: Options, tight: bool) {
    let run = |workers: usize| {
        let plan = Plan {
            workers,
            ..Plan::with_limits(limits.clone(), options.clone())
        };
        run_offline(Input::Segments(segments), &plan).expect("segments in memory")
    };
    let one = run(1);
    let late = one
        .summary
        .counters
        .iter()
        .find(|(n, _)| *n == "output.late_reports");
    assert_eq!(
        late.map_or(0, |(_, v)| *v),
        0,
        "a report below its watermark"
    );
    assert!(
        one.reports.windows(2).all(|w| w[0].order <= w[1].order),
        "offline reports out of order"
    );
    if !tight {
        assert_eq!(
            run(2).reports,
            one.reports,
            "output depends on the worker count"
        );
    }
}

/// What every verdict must satisfy, however it was reached (README, the
/// classes table; classify.rs's header): `mtls` only with a visible client
/// certificate (a non-empty Certificate message in clear, or a TLS 1.3
/// record too large to be anything else) and an observed or inferred basis;
/// the text line is one line of printable ASCII (wire bytes are escaped);
/// the JSON view is one line without control bytes.
pub fn check_verdict(v: &Verdict) {
    if v.class == Class::Mtls {
        match v.client_cert {
            ClientCert::Sent { count, .. } => {
                assert!(count > 0, "mtls with an empty certificate list")
            }
            ClientCert::SentEncrypted { record_len } => assert!(
                record_len >= CERTIFICATE_RECORD_MIN,
                "mtls from a {record_len} B record"
            ),
            other => panic!("mtls without a client certificate: {other:?}; {}", v.reason),
        }
        assert!(
            matches!(v.basis, Basis::Observed | Basis::Inferred),
            "mtls with basis {:?}",
            v.basis
        );
    }
    let line = text_line(v);
    assert!(
        line.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "text line holds an unescaped byte: {line:?}"
    );
    let mut printer = Printer::new(Vec::new(), Format::Json, false);
    printer.print(v).expect("printing to memory");
    let json = printer.into_inner().expect("flushing to memory");
    assert_eq!(json.last(), Some(&b'\n'));
    assert!(
        json.iter().rev().skip(1).all(|&b| b >= 0x20),
        "JSON line holds a control byte"
    );
}

// --------------------------------------------------------------------- tls

/// Handshake messages over this size are cut by the side walker below.
const WALKER_HANDSHAKE_CAP: usize = 256;

/// The `tls` input's header byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsProfile {
    /// Each direction's stream starts at the connection's first byte.
    pub start_seen: [bool; 2],
    /// 0: closed, 1: idle, 2 and 3: end of input.
    pub end: u8,
    /// A 512-byte handshake cap instead of 64 KiB.
    pub small_cap: bool,
    /// Keep a plaintext preview (`-A`).
    pub preview: bool,
}

impl TlsProfile {
    pub fn byte(self) -> u8 {
        u8::from(self.start_seen[0])
            | u8::from(self.start_seen[1]) << 1
            | (self.end & 3) << 2
            | u8::from(self.small_cap) << 4
            | u8::from(self.preview) << 5
    }

    fn from_byte(b: u8) -> Self {
        TlsProfile {
            start_seen: [b & 1 != 0, b & 2 != 0],
            end: (b >> 2) & 3,
            small_cap: b & 0x10 != 0,
            preview: b & 0x20 != 0,
        }
    }
}

/// One step of a `tls` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsEvent<'a> {
    Data(Direction, &'a [u8]),
    Fin(Direction),
    Rst(Direction),
    Gap(Direction, u16),
}

/// Writes `tls` inputs.
#[derive(Debug, Clone)]
pub struct TlsInputWriter {
    bytes: Vec<u8>,
}

impl TlsInputWriter {
    pub fn new(profile: TlsProfile) -> Self {
        TlsInputWriter {
            bytes: vec![profile.byte()],
        }
    }

    /// Append an event (data over 64 KiB is split).
    pub fn push(&mut self, event: TlsEvent<'_>) {
        let d = |dir: Direction| u8::from(dir == Direction::ToClient);
        match event {
            TlsEvent::Data(dir, mut bytes) => {
                while !bytes.is_empty() {
                    let (now, later) = bytes.split_at(bytes.len().min(usize::from(u16::MAX)));
                    self.bytes.push(d(dir));
                    self.bytes
                        .extend_from_slice(&(now.len() as u16).to_be_bytes());
                    self.bytes.extend_from_slice(now);
                    bytes = later;
                }
            }
            TlsEvent::Fin(dir) => self.bytes.extend_from_slice(&[2 | d(dir), 0, 0]),
            TlsEvent::Rst(dir) => self.bytes.extend_from_slice(&[4 | d(dir), 0, 0]),
            TlsEvent::Gap(dir, lost) => {
                self.bytes.push(6 | d(dir));
                self.bytes.extend_from_slice(&lost.to_be_bytes());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() <= 1
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// One direction as the engine's stream holds it for the classifier: the
/// unconsumed bytes, and how many bytes still to discard unread.
#[derive(Debug, Default)]
struct PendingStream {
    buf: Vec<u8>,
    skip: u64,
}

impl PendingStream {
    fn append(&mut self, bytes: &[u8]) {
        let dropped = usize::try_from(self.skip)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        self.skip -= dropped as u64;
        self.buf
            .extend_from_slice(bytes.get(dropped..).unwrap_or_default());
    }

    /// Offer the bytes as engine.rs's `pump` does.
    fn pump(&mut self, classifier: &mut Classifier, dir: Direction) {
        for _ in 0..4096 {
            if classifier.is_final() || self.buf.is_empty() {
                return;
            }
            let feed = classifier.feed(dir, &self.buf);
            assert!(
                feed.consumed <= self.buf.len(),
                "the classifier consumed {} of {} bytes",
                feed.consumed,
                self.buf.len()
            );
            self.buf.drain(..feed.consumed);
            let now = usize::try_from(feed.skip)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            self.buf.drain(..now);
            self.skip += feed.skip - now as u64;
            if feed.consumed == 0 && feed.skip == 0 {
                return;
            }
        }
    }
}

/// The record and handshake walk of one direction, straight over tls.rs
/// (without the classifier's rules), with a small handshake cap so long
/// messages take the truncating path.
#[derive(Debug)]
struct RecordWalk {
    buf: Vec<u8>,
    hs: HandshakeReassembler,
    /// Not TLS, or past ChangeCipherSpec: nothing more in clear.
    stopped: bool,
}

impl RecordWalk {
    fn new() -> Self {
        RecordWalk {
            buf: Vec::new(),
            hs: HandshakeReassembler::new(WALKER_HANDSHAKE_CAP),
            stopped: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.stopped {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            let header = match record::read_header(&self.buf) {
                HeaderRead::NeedMore => return,
                HeaderRead::NotTls | HeaderRead::TooLarge(_) => {
                    self.stopped = true;
                    self.buf = Vec::new();
                    return;
                }
                HeaderRead::Record(h) => h,
            };
            let end = record::RECORD_HEADER_LEN + usize::from(header.len);
            let Some(body) = self.buf.get(record::RECORD_HEADER_LEN..end) else {
                return;
            };
            match header.content_type {
                content::HANDSHAKE => {
                    for m in self.hs.push(body) {
                        check_handshake_message(&m);
                    }
                    assert!(
                        self.hs.pending() <= WALKER_HANDSHAKE_CAP + record::HANDSHAKE_HEADER_LEN,
                        "the handshake reassembler holds more than its cap"
                    );
                }
                content::CHANGE_CIPHER_SPEC => self.stopped = true,
                _ => {}
            }
            self.buf.drain(..end);
            if self.stopped {
                self.buf = Vec::new();
                return;
            }
        }
    }
}

/// A reassembled handshake message keeps its cap (tls.rs, hostile-inputs
/// M21), and each parser tls.rs offers returns instead of panicking.
fn check_handshake_message(m: &record::HandshakeMessage) {
    assert!(m.bytes.len() <= WALKER_HANDSHAKE_CAP + record::HANDSHAKE_HEADER_LEN);
    assert_eq!(m.bytes.first(), Some(&m.msg_type));
    if m.truncated {
        assert!(m.declared as usize > WALKER_HANDSHAKE_CAP);
    } else {
        assert_eq!(
            m.bytes.len(),
            m.declared as usize + record::HANDSHAKE_HEADER_LEN
        );
    }
    match m.msg_type {
        handshake::CLIENT_HELLO => {
            if let Some(ch) = record::parse_client_hello(m.bytes) {
                // The offer is never a GREASE value from supported_versions.
                let offer = ch.offered_version();
                let grease = offer & 0x0f0f == 0x0a0a && offer >> 8 == offer & 0xff;
                assert!(
                    !grease || offer == ch.legacy_version,
                    "GREASE offer {offer:#06x}"
                );
            }
        }
        handshake::SERVER_HELLO => {
            let _ = record::parse_server_hello(m.bytes);
        }
        handshake::NEW_SESSION_TICKET => {
            let _ = record::parse_new_session_ticket(m.bytes);
        }
        handshake::CERTIFICATE => {
            let _ = record::parse_certificate_list(m);
            if let Some(der) = record::first_certificate(m) {
                assert!(der.len() <= m.bytes.len());
            }
        }
        _ => {}
    }
}

/// Target `tls`. Layout: a profile byte (`TlsProfile`), then events
/// `[tag][arg: u16 BE]`: tag % 8 is 0/1 data to the server/client (`arg`
/// bytes follow), 2/3 FIN, 4/5 RST, 6/7 a gap of `arg` bytes. Data goes to
/// a `Classifier` the way the engine pumps a stream (unconsumed bytes are
/// offered again, skips discard bytes unread) and, separately, through the
/// record walker and handshake reassembler of tls.rs; then the flow is
/// concluded and a verdict filled.
///
/// Checks: `feed` never consumes more than it was offered; after
/// `conclude` the classifier is final; the reassembler keeps its cap and
/// frames messages as declared; the verdict passes `check_verdict`.
pub fn run_tls(data: &[u8]) {
    let Some((&profile, mut rest)) = data.split_first() else {
        return;
    };
    let profile = TlsProfile::from_byte(profile);
    let cap = if profile.small_cap { 512 } else { 64 * 1024 };
    let mut classifier = Classifier::new(profile.start_seen[0], profile.start_seen[1], cap);
    if profile.preview {
        classifier.keep_preview(64);
    }
    let mut streams = [PendingStream::default(), PendingStream::default()];
    let mut walks = [RecordWalk::new(), RecordWalk::new()];
    while let Some((&[tag, a0, a1], tail)) = rest.split_first_chunk::<3>() {
        let arg = u16::from_be_bytes([a0, a1]);
        let (dir, d) = if tag & 1 == 0 {
            (Direction::ToServer, 0)
        } else {
            (Direction::ToClient, 1)
        };
        rest = tail;
        match (tag >> 1) & 3 {
            0 => {
                let (bytes, tail) = rest.split_at(usize::from(arg).min(rest.len()));
                rest = tail;
                walks[d].push(bytes);
                streams[d].append(bytes);
                streams[d].pump(&mut classifier, dir);
            }
            1 => classifier.on_close(dir, Close::Fin),
            2 => classifier.on_close(dir, Close::Rst),
            _ => {
                // The bytes held behind the hole are delivered after it, as
                // the engine's skip_hole + pump does.
                classifier.on_gap(dir, u64::from(arg));
                streams[d].skip = 0;
                streams[d].pump(&mut classifier, dir);
            }
        }
    }
    let end = match profile.end {
        0 => End::Closed,
        1 => End::Idle,
        _ => End::EndOfInput,
    };
    classifier.conclude(end);
    assert!(
        classifier.is_final(),
        "conclude leaves the classifier final"
    );
    let client = Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        port: 40000,
    };
    let server = Endpoint {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        port: 443,
    };
    let mut v = Verdict::new(client, server, Timestamp(BASE_TIME), Timestamp(BASE_TIME));
    mtlsniff::verdict::assemble::assemble(&mut v, Some(classifier.evidence()), None);
    check_verdict(&v);
}

// ---------------------------------------------------------------- identity

/// Target `identity`. Layout: the DER bytes. Checks identity.rs's promises
/// for a certificate that parses: every string at most `MAX_STRING_CHARS`
/// chars, at most `MAX_SANS` SANs, a 64-digit lowercase SHA-256, and an
/// identity and a validity at any instant without a panic.
pub fn run_identity(data: &[u8]) {
    let Ok(id) = identity::parse(data) else {
        return;
    };
    let strings = [
        Some(&id.subject),
        id.common_name.as_ref(),
        Some(&id.issuer),
        id.spiffe.as_ref(),
    ];
    for s in strings.into_iter().flatten().chain(id.sans.iter()) {
        assert!(
            s.chars().count() <= MAX_STRING_CHARS,
            "string over the cap: {s:?}"
        );
    }
    assert!(id.sans.len() <= MAX_SANS);
    assert_eq!(id.sha256.len(), 64);
    assert!(
        id.sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
    let _ = id.id();
    for t in [i64::MIN, -1, 0, id.not_before, id.not_after, i64::MAX] {
        let _ = id.validity_at(t);
    }
}
