//! Seed extractor: turns capture files into starting corpora for the four
//! fuzz targets, in the input formats `mtlsniff_fuzz` defines (so a seed is
//! a valid input that reaches deep code from the first run).
//!
//! `cargo run --example seeds -- OUT_DIR CAPTURE...` writes, per capture:
//! - `OUT_DIR/decode/`: frames with their link type (at most
//!   `FRAMES_PER_CAPTURE`), and once per run a frame built here for every
//!   link type and encapsulation decode.rs reads (captures rarely hold
//!   Geneve, GTP-U, GRE, PPPoE, MPLS or NFLOG);
//! - `OUT_DIR/engine/`: each TCP connection's segments as the engine input
//!   (both directions, flags, sequence offsets, timing), plus one input that
//!   interleaves the capture's first four connections;
//! - `OUT_DIR/tls/`: each connection's two byte streams, reassembled by the
//!   library's own `Stream`, in capture order, with FIN/RST;
//! - `OUT_DIR/identity/`: every DER certificate of a Certificate message
//!   sent in clear.
//!
//! File names are a hash of the contents, so running it again adds nothing
//! twice. Captures the library cannot open are reported and skipped.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use mtlsniff::capture::source::{Capture, Options, Read};
use mtlsniff::classify::{Classifier, Direction};
use mtlsniff::capture::source::Source;
use mtlsniff::capture::decode::{self, DecodeCounters, LinkType};
use mtlsniff::flow::reassembly::{Stream, StreamLimits};
use mtlsniff::capture::segment::{FlowKey, Segment, TcpFlags};
use mtlsniff::tls::record::{self, HandshakeReassembler, HeaderRead, content, handshake};
use mtlsniff_fuzz::{
    ENGINE_FLOWS, EngineInputWriter, EngineProfile, SegmentRecord, TlsEvent, TlsInputWriter,
    TlsProfile, decode_input,
};

/// Frames kept per capture for `decode` (the link layers repeat).
const FRAMES_PER_CAPTURE: usize = 300;
/// Connections kept per capture for `engine` and `tls`.
const FLOWS_PER_CAPTURE: usize = 64;
/// Largest seed written; the scripts run libFuzzer with this `-max_len`.
const MAX_SEED: usize = 32 * 1024;

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some((out, captures)) = args.split_first() else {
        eprintln!("usage: seeds OUT_DIR CAPTURE...");
        std::process::exit(2);
    };
    let mut seeds = Seeds::new(out);
    for (link, frame) in synthetic_frames() {
        if let Some(input) = decode_input(link, &frame, frame.len() as u32) {
            seeds.write("decode", &input);
        }
    }
    for capture in captures {
        if let Err(e) = seeds.capture(capture) {
            eprintln!("seeds: skipping {}: {e}", capture.display());
        }
    }
    for (target, n) in &seeds.written {
        println!("seeds: {target}: {n} new");
    }
}

struct Seeds {
    out: PathBuf,
    written: Vec<(&'static str, usize)>,
}

/// One TCP connection's segments, canonical side 0 = `key.lo`.
struct Connection {
    key: FlowKey,
    segments: Vec<Segment>,
}

impl Connection {
    fn side(&self, s: &Segment) -> usize {
        usize::from(s.src != self.key.lo)
    }

    /// The canonical side of the client: the SYN's sender, else the
    /// SYN-ACK's receiver, else what the first payload says, else the
    /// higher port (as the engine decides).
    fn client_side(&self) -> usize {
        for s in &self.segments {
            if s.flags.syn() {
                let side = self.side(s);
                return if s.flags.ack() { 1 - side } else { side };
            }
        }
        for s in self.segments.iter().filter(|s| !s.payload.is_empty()) {
            match Classifier::role_hint(&s.payload) {
                Some(Direction::ToServer) => return self.side(s),
                Some(Direction::ToClient) => return 1 - self.side(s),
                None => break,
            }
        }
        usize::from(self.key.lo.port <= self.key.hi.port)
    }

    /// First sequence number of each canonical side: its SYN's, else its
    /// first segment's.
    fn isn(&self) -> [Option<(u32, bool)>; 2] {
        let mut isn = [None, None];
        for s in &self.segments {
            let side = self.side(s);
            if s.flags.syn() {
                isn[side] = Some((s.seq, true));
            } else if isn[side].is_none() {
                isn[side] = Some((s.seq, false));
            }
        }
        isn
    }
}

impl Seeds {
    fn new(out: &Path) -> Self {
        Seeds {
            out: out.to_path_buf(),
            written: Vec::new(),
        }
    }

    fn write(&mut self, target: &'static str, bytes: &[u8]) {
        if bytes.is_empty() || bytes.len() > MAX_SEED {
            return;
        }
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let dir = self.out.join(target);
        let path = dir.join(format!("{:016x}", h.finish()));
        if path.exists() {
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, bytes)) {
            eprintln!("seeds: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        match self.written.iter_mut().find(|(t, _)| *t == target) {
            Some((_, n)) => *n += 1,
            None => self.written.push((target, 1)),
        }
    }

    fn capture(&mut self, path: &Path) -> Result<(), String> {
        let options = Options {
            snaplen: 0,
            buffer_bytes: None,
            immediate: false,
            filter: None,
        };
        let mut capture = Capture::open(&Source::File(path.to_path_buf()), &options)
            .map_err(|e| e.to_string())?;
        let mut counters = DecodeCounters::default();
        let mut frames = 0;
        let mut connections: Vec<Connection> = Vec::new();
        let mut by_key: HashMap<FlowKey, usize> = HashMap::new();
        loop {
            let frame = match capture.read_next() {
                Ok(Read::Frame(frame)) => frame,
                Ok(Read::Drained | Read::Timeout) => continue,
                Ok(Read::End) | Err(_) => break,
            };
            if frames < FRAMES_PER_CAPTURE
                && let Some(input) = decode_input(frame.link, frame.data, frame.orig_len)
            {
                frames += 1;
                self.write("decode", &input);
            }
            let Some(seg) = decode::decode(&frame, &mut counters) else {
                continue;
            };
            let key = seg.key();
            let n = connections.len();
            let i = *by_key.entry(key).or_insert(n);
            if i == n {
                if n >= FLOWS_PER_CAPTURE {
                    continue;
                }
                connections.push(Connection {
                    key,
                    segments: Vec::new(),
                });
            }
            if let Some(c) = connections.get_mut(i) {
                c.segments.push(seg);
            }
        }
        for c in &connections {
            let input = engine_input(std::slice::from_ref(c));
            self.write("engine", &input);
            for stream_seed in tls_input(c, self) {
                self.write("tls", &stream_seed);
            }
        }
        let first: Vec<&Connection> = connections.iter().take(ENGINE_FLOWS).collect();
        if first.len() > 1 {
            let owned: Vec<Connection> = first
                .iter()
                .map(|c| Connection {
                    key: c.key,
                    segments: c.segments.clone(),
                })
                .collect();
            self.write("engine", &engine_input(&owned));
        }
        Ok(())
    }
}

/// The engine input for up to four connections, interleaved in capture
/// time. Each connection's sequence numbers are renumbered from the shared
/// ISNs of the input header; its server port is the first connection's.
fn engine_input(connections: &[Connection]) -> Vec<u8> {
    let isn = [0x0100_0000u32, 0x8000_0000u32];
    let Some(first) = connections.first() else {
        return Vec::new();
    };
    let server_port = match first.client_side() {
        0 => first.key.hi.port,
        _ => first.key.lo.port,
    };
    let mut w = EngineInputWriter::new(EngineProfile::default(), server_port, isn);
    let mut events: Vec<(usize, usize, &Segment)> = Vec::new();
    let mut bases = Vec::new();
    for (flow, c) in connections.iter().enumerate().take(ENGINE_FLOWS) {
        let client = c.client_side();
        let real = c.isn();
        // Renumber so that each side's first sequence number is the shared
        // ISN (its SYN's) or just past it (a side first seen mid-stream).
        let base: [u32; 2] = [0, 1].map(|role| {
            let side = if role == 0 { client } else { 1 - client };
            match real[side] {
                Some((seq, true)) => isn[role].wrapping_sub(seq),
                Some((seq, false)) => isn[role].wrapping_add(1).wrapping_sub(seq),
                None => 0,
            }
        });
        bases.push((client, base));
        for s in &c.segments {
            events.push((flow, events.len(), s));
        }
    }
    events.sort_by_key(|&(_, order, s)| (s.ts, order));
    let mut last = events.first().map(|(_, _, s)| s.ts.0).unwrap_or(0);
    for (flow, _, s) in events {
        let Some(c) = connections.get(flow) else {
            continue;
        };
        let Some(&(client, base)) = bases.get(flow) else {
            continue;
        };
        let to_client = c.side(s) != client;
        let role = usize::from(to_client);
        let record = SegmentRecord {
            flow,
            to_client,
            gap_micros: s.ts.0 - last,
            flags: s.flags.0,
            seq: s.seq.wrapping_add(base[role]),
            payload: &s.payload,
            missing: s.missing,
        };
        last = s.ts.0;
        if w.len() + 7 + s.payload.len() > MAX_SEED {
            break;
        }
        w.push(&record);
    }
    if w.is_empty() { Vec::new() } else { w.finish() }
}

/// The `tls` inputs of one connection: its two streams in capture order as
/// the library's reassembler delivers them (a prefix when the whole does
/// not fit the seed size), and every certificate of a clear Certificate
/// message goes to the identity corpus.
fn tls_input(c: &Connection, seeds: &mut Seeds) -> Vec<Vec<u8>> {
    let client = c.client_side();
    let real = c.isn();
    let limits = StreamLimits {
        max_buffered: 1 << 20,
        max_segments: 4096,
    };
    let mut streams: [Option<Stream>; 2] = [None, None];
    let mut walks = [CertWalk::default(), CertWalk::default()];
    let start_seen = [
        real[client].is_some_and(|(_, syn)| syn),
        real[1 - client].is_some_and(|(_, syn)| syn) || real[client].is_some_and(|(_, syn)| syn),
    ];
    let mut w = TlsInputWriter::new(TlsProfile {
        start_seen,
        end: 2,
        small_cap: false,
        preview: false,
    });
    for s in &c.segments {
        let side = c.side(s);
        let dir = if side == client {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let data_seq = s.seq.wrapping_add(u32::from(s.flags.syn()));
        let start = match real[side] {
            Some((seq, true)) => seq.wrapping_add(1),
            Some((seq, false)) => seq,
            None => data_seq,
        };
        let stream = streams[side].get_or_insert_with(|| Stream::new(start, limits));
        if !s.payload.is_empty() {
            stream.insert(data_seq, &s.payload);
            let bytes = stream.contiguous().to_vec();
            stream.consume(bytes.len());
            if !bytes.is_empty() {
                walks[side].push(&bytes, seeds);
                if w.len() + 3 + bytes.len() <= MAX_SEED {
                    w.push(TlsEvent::Data(dir, &bytes));
                }
            }
        }
        if s.flags.0 & TcpFlags::RST != 0 {
            w.push(TlsEvent::Rst(dir));
        } else if s.flags.fin() {
            w.push(TlsEvent::Fin(dir));
        }
    }
    if w.is_empty() {
        Vec::new()
    } else {
        vec![w.finish()]
    }
}

/// Finds Certificate messages in one direction's clear handshake records.
#[derive(Default)]
struct CertWalk {
    buf: Vec<u8>,
    hs: Option<HandshakeReassembler>,
    stopped: bool,
}

impl CertWalk {
    fn push(&mut self, bytes: &[u8], seeds: &mut Seeds) {
        if self.stopped {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let hs = self
            .hs
            .get_or_insert_with(|| HandshakeReassembler::new(1 << 20));
        loop {
            let header = match record::read_header(&self.buf) {
                HeaderRead::NeedMore => return,
                HeaderRead::NotTls | HeaderRead::TooLarge(_) => {
                    self.stopped = true;
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
                    for m in hs.push(body) {
                        if m.msg_type == handshake::CERTIFICATE {
                            for der in certificates(&m.bytes) {
                                seeds.write("identity", der);
                            }
                        }
                    }
                }
                content::CHANGE_CIPHER_SPEC => self.stopped = true,
                _ => {}
            }
            self.buf.drain(..end);
            if self.stopped {
                return;
            }
        }
    }
}

/// The DER entries of a TLS <= 1.2 Certificate message (RFC 5246 §7.4.2):
/// header, 3-byte list length, then 3-byte length + DER each.
fn certificates(msg: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = msg.get(record::HANDSHAKE_HEADER_LEN + 3..).unwrap_or_default();
    while let Some(&[a, b, c]) = rest.get(..3) {
        let len = u32::from_be_bytes([0, a, b, c]) as usize;
        let Some(der) = rest.get(3..3 + len) else {
            break;
        };
        out.push(der);
        rest = rest.get(3 + len..).unwrap_or_default();
    }
    out
}

/// One TCP segment to 443 opening a ClientHello record, inside every link
/// header and encapsulation decode.rs supports. Checksums are zero: decode
/// does not verify them.
fn synthetic_frames() -> Vec<(LinkType, Vec<u8>)> {
    let tcp = {
        let mut t = vec![
            0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff,
        ];
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]);
        t
    };
    let ipv4 = |proto: u8, body: &[u8]| {
        let len = (20 + body.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(body);
        p
    };
    let ipv6 = |next: u8, body: &[u8]| {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(body.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(body);
        p
    };
    let udp = |port: u16, body: &[u8]| {
        let mut u = vec![0x30, 0x39];
        u.extend_from_slice(&port.to_be_bytes());
        u.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(body);
        u
    };
    let eth = |ethertype: u16, body: &[u8]| {
        let mut e = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        e.extend_from_slice(&ethertype.to_be_bytes());
        e.extend_from_slice(body);
        e
    };
    let cat = |parts: &[&[u8]]| parts.concat();
    let ip4 = ipv4(6, &tcp);
    let ip6 = ipv6(6, &tcp);
    // Hop-by-hop options (RFC 8200 §4.3): next header, length 0, PadN.
    let ip6_ext = ipv6(0, &cat(&[&[6, 0, 1, 4, 0, 0, 0, 0], &tcp]));
    let wifi = cat(&[
        &[0x08, 0x02, 0, 0],
        &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 3, 0, 0],
        &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00],
        &ip4,
    ]);
    let nflog = {
        let mut n = vec![2, 0, 0, 0];
        n.extend_from_slice(&((4 + ip4.len()) as u16).to_le_bytes());
        n.extend_from_slice(&9u16.to_le_bytes());
        n.extend_from_slice(&ip4);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    };
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll.extend_from_slice(&[0x08, 0x00]);
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
    sll2.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
    let mpls = cat(&[&[0, 0x01, 0x01, 64], &ip4]); // label 16, bottom of stack
    vec![
        (LinkType::EN10MB, eth(0x0800, &ip4)),
        (LinkType::EN10MB, eth(0x86dd, &ip6)),
        (LinkType::EN10MB, eth(0x86dd, &ip6_ext)),
        (
            LinkType::EN10MB,
            eth(0x8100, &cat(&[&[0, 100, 0x08, 0x00], &ip4])),
        ),
        (
            LinkType::EN10MB,
            eth(
                0x88a8,
                &cat(&[&[0, 10, 0x81, 0x00, 0, 100, 0x08, 0x00], &ip4]),
            ),
        ),
        (LinkType::EN10MB, {
            let mut pppoe = vec![0x11, 0, 0, 1];
            pppoe.extend_from_slice(&((2 + ip4.len()) as u16).to_be_bytes());
            pppoe.extend_from_slice(&[0x00, 0x21]);
            eth(0x8864, &cat(&[&pppoe, &ip4]))
        }),
        (LinkType::EN10MB, eth(0x8847, &mpls)),
        (
            LinkType::EN10MB,
            eth(0x0800, &ipv4(47, &cat(&[&[0, 0, 0x08, 0x00], &ip4]))),
        ),
        (
            LinkType::EN10MB,
            eth(
                0x0800,
                &ipv4(
                    47,
                    &cat(&[&[0x20, 0, 0x65, 0x58, 0, 0, 0, 7], &eth(0x0800, &ip4)]),
                ),
            ),
        ),
        (LinkType::EN10MB, eth(0x0800, &ipv4(4, &ip4))),
        (LinkType::EN10MB, eth(0x0800, &ipv4(41, &ip6))),
        (
            LinkType::EN10MB,
            eth(
                0x0800,
                &ipv4(
                    17,
                    &udp(4789, &cat(&[&[8, 0, 0, 0, 0, 0, 1, 0], &eth(0x0800, &ip4)])),
                ),
            ),
        ),
        (
            LinkType::EN10MB,
            eth(
                0x0800,
                &ipv4(
                    17,
                    &udp(
                        6081,
                        &cat(&[&[0, 0, 0x65, 0x58, 0, 0, 1, 0], &eth(0x0800, &ip4)]),
                    ),
                ),
            ),
        ),
        (LinkType::EN10MB, {
            let mut gtp = vec![0x30, 0xff];
            gtp.extend_from_slice(&(ip4.len() as u16).to_be_bytes());
            gtp.extend_from_slice(&[0, 0, 0, 1]);
            eth(0x0800, &ipv4(17, &udp(2152, &cat(&[&gtp, &ip4]))))
        }),
        (LinkType::NULL, cat(&[&[2, 0, 0, 0], &ip4])),
        (LinkType::NULL, cat(&[&[30, 0, 0, 0], &ip6])),
        (LinkType::LOOP, cat(&[&[0, 0, 0, 2], &ip4])),
        (LinkType::RAW, ip4.clone()),
        (LinkType::RAW_DLT12, ip6.clone()),
        (LinkType::RAW_DLT14, ip4.clone()),
        (LinkType::IPV4, ip4.clone()),
        (LinkType::IPV6, ip6.clone()),
        (LinkType::C_HDLC, cat(&[&[0x0f, 0, 0x08, 0x00], &ip4])),
        (LinkType::IEEE802_11, wifi.clone()),
        (
            LinkType::IEEE802_11_RADIOTAP,
            cat(&[&[0, 0, 8, 0, 0, 0, 0, 0], &wifi]),
        ),
        (LinkType::LINUX_SLL, cat(&[&sll, &ip4])),
        (LinkType::LINUX_SLL2, cat(&[&sll2, &ip4])),
        (LinkType::NFLOG, nflog),
    ]
}
