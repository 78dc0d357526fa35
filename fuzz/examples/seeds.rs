//! Seed extractor: turns capture files into starting corpora for the four
//! fuzz targets, in the input formats `mtlsniff_fuzz` defines (so a seed is
//! a valid input that reaches deep code from the first run).
//!
//! Two modes:
//! - `cargo run --example seeds -- --committed` rewrites the committed seed
//!   set, `fuzz/seeds/<target>/`, from this repository's own bytes only:
//!   `fixtures/*.pcap` and `*.pcapng`, and the frames `synthetic_frames`
//!   builds. It takes no capture argument, clears the old seeds first, and
//!   keeps the set small (`Budget::COMMITTED`). The public captures in
//!   `../shared` must never be committed, whole or cut into seeds.
//! - `cargo run --example seeds -- OUT_DIR CAPTURE...` writes a local
//!   corpus (scripts/fuzz.sh: `fuzz/corpus/`, not committed) from any
//!   captures, `../shared/pcaps/public` included. It refuses to write into
//!   `fuzz/seeds`, so public bytes cannot reach the committed set this way.
//!
//! Per capture it writes:
//! - `decode/`: frames with their link type (at most `frames_per_capture`),
//!   and once per run a frame for every link type and encapsulation
//!   decode.rs reads (tests/support/frames.rs's catalogues; captures rarely
//!   hold Geneve, GTP-U, GRE, PPPoE, MPLS or NFLOG);
//! - `engine/`: each TCP connection's segments as the engine input
//!   (both directions, flags, sequence offsets, timing), plus one input that
//!   interleaves the capture's first four connections;
//! - `tls/`: each connection's two byte streams, reassembled by the
//!   library's own `Stream`, in capture order, with FIN/RST;
//! - `identity/`: every DER certificate of a Certificate message sent in
//!   clear.
//!
//! File names are a hash of the contents, so running it again adds nothing
//! twice. Captures the library cannot open are reported and skipped.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use mtlsniff::capture::decode::{self, DecodeCounters, LinkType};
use mtlsniff::capture::segment::{FlowKey, Segment, TcpFlags};
use mtlsniff::capture::source::Source;
use mtlsniff::capture::source::{Capture, Options, Read};
use mtlsniff::classify::{Classifier, Direction};
use mtlsniff::flow::reassembly::{Stream, StreamLimits};
use mtlsniff::tls::record::{self, HandshakeReassembler, HeaderRead, content, handshake};
use mtlsniff_fuzz::{
    ENGINE_FLOWS, EngineInputWriter, EngineProfile, SegmentRecord, TlsEvent, TlsInputWriter,
    TlsProfile, decode_input,
};

/// The project's one set of frame builders.
#[path = "../../tests/support/frames.rs"]
mod frames;

/// The fuzz targets, each a directory of seeds.
const TARGETS: [&str; 4] = ["decode", "engine", "tls", "identity"];

/// How much one capture may add.
#[derive(Clone, Copy)]
struct Budget {
    /// Frames kept per capture for `decode` (the link layers repeat).
    frames_per_capture: usize,
    /// Connections kept per capture for `engine` and `tls`.
    flows_per_capture: usize,
    /// Largest seed written.
    max_seed: usize,
}

impl Budget {
    /// A local corpus: the scripts run libFuzzer with `-max_len` 32 KiB.
    const CORPUS: Budget = Budget {
        frames_per_capture: 300,
        flows_per_capture: 64,
        max_seed: 32 * 1024,
    };
    /// The committed set: a few frames per fixture (they are all Ethernet;
    /// the catalogue covers the other link types), each connection's first
    /// 6 KiB (the handshake, client certificate included), a few hundred
    /// KB in all.
    const COMMITTED: Budget = Budget {
        frames_per_capture: 3,
        flows_per_capture: 4,
        max_seed: 6 * 1024,
    };
}

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let result = match args.split_first() {
        Some((flag, rest)) if flag.as_os_str() == "--committed" && rest.is_empty() => committed(),
        Some((out, captures)) if out.as_os_str() != "--committed" => corpus(out, captures),
        _ => Err("usage: seeds --committed | seeds OUT_DIR CAPTURE...".to_string()),
    };
    if let Err(e) = result {
        eprintln!("seeds: {e}");
        std::process::exit(2);
    }
}

/// The repository root (the fuzz crate's parent).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn canonical(path: &Path) -> Result<PathBuf, String> {
    path.canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The committed seed directory, `fuzz/seeds`.
fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

/// A local corpus from any captures, never into `fuzz/seeds`.
fn corpus(out: &Path, captures: &[PathBuf]) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    if canonical(out)? == canonical(&committed_dir())? {
        return Err(format!(
            "{} is the committed seed set: write it with `seeds --committed` (fixtures only), \
             never from other captures",
            out.display()
        ));
    }
    let mut seeds = Seeds::new(out, Budget::CORPUS);
    seeds.synthetic();
    for capture in captures {
        if let Err(e) = seeds.capture(capture) {
            eprintln!("seeds: skipping {}: {e}", capture.display());
        }
    }
    seeds.report();
    Ok(())
}

/// `fuzz/seeds/` from the fixtures and the built frames only.
fn committed() -> Result<(), String> {
    let fixtures = canonical(&repo_root().join("fixtures"))?;
    let shared = repo_root().join("../shared").canonicalize().ok();
    let mut captures: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .map_err(|e| format!("{}: {e}", fixtures.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    captures.sort();
    for c in &captures {
        // A symlink out of fixtures/ (into ../shared, say) is refused too.
        let real = canonical(c)?;
        if !real.starts_with(&fixtures) || shared.as_ref().is_some_and(|s| real.starts_with(s)) {
            return Err(format!(
                "{} is not this repository's own capture ({}): committed seeds come from fixtures/ only",
                c.display(),
                real.display()
            ));
        }
    }
    let out = committed_dir();
    for target in TARGETS {
        let dir = out.join(target);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.path().is_file() && e.file_name() != "README.md" {
                    std::fs::remove_file(e.path())
                        .map_err(|err| format!("{}: {err}", e.path().display()))?;
                }
            }
        }
    }
    let mut seeds = Seeds::new(&out, Budget::COMMITTED);
    seeds.synthetic();
    for capture in &captures {
        seeds.capture(capture)?;
    }
    // TLS 1.3 sends certificates encrypted: the fixtures' own PKI (the
    // certificates the fixture handshakes used) seeds `identity` too.
    seeds.pem_certificates(&repo_root().join("fixtures/pki"))?;
    seeds.report();
    Ok(())
}

struct Seeds {
    out: PathBuf,
    budget: Budget,
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
        if let Some(s) = self.segments.iter().find(|s| !s.payload.is_empty()) {
            match Classifier::role_hint(&s.payload) {
                Some(Direction::ToServer) => return self.side(s),
                Some(Direction::ToClient) => return 1 - self.side(s),
                None => {}
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
    fn new(out: &Path, budget: Budget) -> Self {
        Seeds {
            out: out.to_path_buf(),
            budget,
            written: Vec::new(),
        }
    }

    /// One `decode` seed per catalogue frame.
    fn synthetic(&mut self) {
        for (link, frame) in synthetic_frames() {
            if let Some(input) = decode_input(link, &frame, frame.len() as u32) {
                self.write("decode", &input);
            }
        }
    }

    /// Every `CERTIFICATE` block of the `*.pem` files in `dir` (never a
    /// key), as DER, to `identity`.
    fn pem_certificates(&mut self, dir: &Path) -> Result<(), String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pem"))
            .collect();
        files.sort();
        for file in files {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut block: Option<String> = None;
            for line in text.lines() {
                match (line.trim(), block.as_mut()) {
                    ("-----BEGIN CERTIFICATE-----", _) => block = Some(String::new()),
                    ("-----END CERTIFICATE-----", Some(b64)) => {
                        if let Some(der) = base64(b64) {
                            self.write("identity", &der);
                        }
                        block = None;
                    }
                    (l, Some(b64)) => b64.push_str(l),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn report(&self) {
        for (target, n) in &self.written {
            println!("seeds: {target}: {n} new");
        }
    }

    fn write(&mut self, target: &'static str, bytes: &[u8]) {
        if bytes.is_empty() || bytes.len() > self.budget.max_seed {
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
            if frames < self.budget.frames_per_capture
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
                if n >= self.budget.flows_per_capture {
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
            let input = engine_input(std::slice::from_ref(c), self.budget.max_seed);
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
            self.write("engine", &engine_input(&owned, self.budget.max_seed));
        }
        Ok(())
    }
}

/// The engine input for up to four connections, interleaved in capture
/// time. Each connection's sequence numbers are renumbered from the shared
/// ISNs of the input header; its server port is the first connection's.
fn engine_input(connections: &[Connection], max_seed: usize) -> Vec<u8> {
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
        if w.len() + 7 + s.payload.len() > max_seed {
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
                if w.len() + 3 + bytes.len() <= seeds.budget.max_seed {
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
                            for der in certificates(m.bytes) {
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
    let mut rest = msg
        .get(record::HANDSHAKE_HEADER_LEN + 3..)
        .unwrap_or_default();
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

/// One TCP segment to 443 opening a ClientHello record, in IPv4 and in
/// IPv6, inside every link header and encapsulation decode.rs supports
/// (tests/support/frames.rs's catalogues, which decode.rs's unit tests
/// prove decode).
fn synthetic_frames() -> Vec<(LinkType, Vec<u8>)> {
    let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00];
    let tcp = |src: std::net::IpAddr, dst: std::net::IpAddr| {
        frames::Tcp::new(src, 40000, dst, 443)
            .seq(1)
            .ack(1)
            .flags(frames::ACK | frames::PSH)
            .window(0xffff)
            .ip(&hello)
    };
    let ip4 = tcp([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
    let v6 = |last: u8| {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = last;
        std::net::IpAddr::from(a)
    };
    let ip6 = tcp(v6(1), v6(2));
    frames::link_headers(&ip4, &ip6)
        .into_iter()
        .chain(frames::encapsulations(&ip4, &ip6))
        .map(|f| (LinkType(f.link), f.frame))
        .collect()
}

/// Standard base64 (RFC 4648 §4) without line breaks; None on a bad byte.
fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
