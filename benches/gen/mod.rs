//! Deterministic generator of large pcaps for the line-rate benchmark.
//!
//! Real handshake bytes come from the fixture captures (`fixtures/*.pcap`,
//! truth in `fixtures/fixtures.tsv`); each generated flow replays one
//! fixture flow with fresh IPv4 addresses and ports (a unique 4-tuple),
//! shifted sequence numbers and timestamps, and bulk data inserted before its
//! first FIN/RST (TLS application_data records for TLS flows, clear bytes for
//! plaintext ones; none for rejected flows). Flows are interleaved by packet
//! time so tens of thousands are open at once. The labels (client, server,
//! class) go to a TSV beside the pcap.
//!
//! Everything is a pure function of the parameters and the fixtures: a fixed
//! seed, no clock, no hash-map iteration order.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use mtlsniff::capture::segment::{Endpoint, Segment, TcpFlags};

/// The project's one set of frame builders.
#[path = "../../tests/support/frames.rs"]
mod frames;

/// Bump when the output of any generator changes: cached files are rebuilt.
pub const GEN_VERSION: u32 = 3;

/// Largest TCP payload per generated bulk segment (Ethernet MTU, with TCP
/// timestamps: 1500 - 20 - 32).
const MSS: usize = 1448;
/// TLS record body of a full application_data record (2^14 plaintext + 17
/// bytes of TLS 1.3 AEAD overhead).
const TLS_RECORD_BODY: u64 = 16_401;
/// Start of the generated capture (2026-01-01T00:00:00Z), in microseconds.
const EPOCH_US: i64 = 1_767_225_600 * 1_000_000;

// ---------------------------------------------------------------- PRNG

/// SplitMix64: tiny, fast, good enough for synthetic traffic, fully seeded.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
    /// Log-normal with the given median, clamped to [lo, hi].
    pub fn lognormal(&mut self, median: f64, sigma: f64, lo: f64, hi: f64) -> u64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (median * (sigma * z).exp()).clamp(lo, hi) as u64
    }
}

// ---------------------------------------------------------------- templates

/// One segment of a fixture flow, relative to the flow's ISNs.
#[derive(Debug, Clone)]
pub struct TSeg {
    pub from_client: bool,
    /// seq minus the sender's ISN.
    pub seq_rel: u32,
    /// ack minus the receiver's ISN (meaningful with the ACK flag).
    pub ack_rel: u32,
    pub flags: u8,
    pub window: u16,
    pub payload: Vec<u8>,
}

/// A fixture flow whose truth is clear, ready to be replayed.
#[derive(Debug, Clone)]
pub struct Template {
    pub file: String,
    pub class: String,
    pub outcome: String,
    pub server_port: u16,
    pub is_tls: bool,
    pub segs: Vec<TSeg>,
    /// Index of the first FIN/RST segment: bulk data goes before it.
    pub close_at: usize,
    /// Next relative sequence number of each side (client, server) at
    /// `close_at`.
    pub next_at_close: [u32; 2],
}

impl Template {
    /// Bulk data only where the server accepted the connection.
    pub fn takes_bulk(&self) -> bool {
        self.outcome == "ok"
    }
}

fn endpoint_str(e: &Endpoint) -> String {
    e.to_string()
}

/// Every TCP segment of a capture, in file order.
pub fn read_segments(path: &Path) -> Vec<Segment> {
    match mtlsniff::capture::source::file_segments(path) {
        Ok((segments, _)) => segments,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    }
}

/// The fixture flows usable as templates: files with exactly one truth row
/// whose class is plaintext/tls/mtls, excluding the midstream, duplicated
/// and SYN-less variants. Sorted by file name (deterministic).
pub fn load_templates(fixtures: &Path) -> Vec<Template> {
    let tsv = fs::read_to_string(fixtures.join("fixtures.tsv")).expect("fixtures.tsv");
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (c_file, c_client, c_server, c_class, c_outcome) = (
        col("file"),
        col("client"),
        col("server"),
        col("class"),
        col("outcome"),
    );
    let mut rows: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<String> = l.split('\t').map(str::to_string).collect();
        rows.entry(f[c_file].clone()).or_default().push(f);
    }
    let mut out = Vec::new();
    for (file, rs) in rows {
        if rs.len() != 1 {
            continue; // resumptions, 0-RTT pairs: their truth spans flows
        }
        let r = &rs[0];
        let class = r[c_class].as_str();
        if !matches!(class, "plaintext" | "tls" | "mtls") {
            continue;
        }
        if ["midstream", "-dup", "nosyn"]
            .iter()
            .any(|s| file.contains(s))
        {
            continue;
        }
        let path = fixtures.join(&file);
        if !path.exists() {
            continue;
        }
        let segs = read_segments(&path);
        let (client, server) = (r[c_client].clone(), r[c_server].clone());
        let flow: Vec<Segment> = segs
            .into_iter()
            .filter(|s| {
                let (a, b) = (endpoint_str(&s.src), endpoint_str(&s.dst));
                (a == client && b == server) || (a == server && b == client)
            })
            .collect();
        let Some(t) = make_template(&file, class, &r[c_outcome], &client, &flow) else {
            continue;
        };
        out.push(t);
    }
    out
}

fn make_template(
    file: &str,
    class: &str,
    outcome: &str,
    client: &str,
    flow: &[Segment],
) -> Option<Template> {
    let first = flow.first()?;
    let is_client = |s: &Segment| endpoint_str(&s.src) == client;
    let server_port = if is_client(first) {
        first.dst.port
    } else {
        first.src.port
    };
    // ISNs: from the SYN and SYN-ACK.
    let isn_c = flow.iter().find(|s| is_client(s) && s.flags.syn())?.seq;
    let isn_s = flow.iter().find(|s| !is_client(s) && s.flags.syn())?.seq;
    let mut segs = Vec::with_capacity(flow.len());
    for s in flow {
        let c = is_client(s);
        let (mine, theirs) = if c { (isn_c, isn_s) } else { (isn_s, isn_c) };
        segs.push(TSeg {
            from_client: c,
            seq_rel: s.seq.wrapping_sub(mine),
            ack_rel: if s.flags.ack() {
                s.ack.wrapping_sub(theirs)
            } else {
                0
            },
            flags: s.flags.0,
            window: s.window,
            payload: s.payload.clone(),
        });
    }
    let close_at = segs
        .iter()
        .position(|s| s.flags & (TcpFlags::FIN | TcpFlags::RST) != 0)
        .unwrap_or(segs.len());
    let mut next = [0u32; 2];
    for s in &segs[..close_at] {
        let side = usize::from(!s.from_client);
        let end = s.seq_rel.wrapping_add(s.payload.len() as u32)
            + u32::from(s.flags & TcpFlags::SYN != 0);
        if end.wrapping_sub(next[side]) as i32 > 0 {
            next[side] = end;
        }
    }
    let is_tls = class != "plaintext" && !file.starts_with("plaintext");
    Some(Template {
        file: file.to_string(),
        class: class.to_string(),
        outcome: outcome.to_string(),
        server_port,
        is_tls,
        segs,
        close_at,
        next_at_close: next,
    })
}

// ---------------------------------------------------------------- packets

/// Where a packet's payload comes from: built when the packet is written,
/// so open flows hold no payload bytes.
#[derive(Debug, Clone, Copy)]
enum Payload {
    None,
    /// Template `t`, segment `i`, bytes `off..off+len`.
    Fixture {
        t: u32,
        i: u32,
        off: u32,
        len: u32,
    },
    /// Bytes `off..off+len` of a generated bulk stream of `total` bytes.
    Bulk {
        tls: bool,
        off: u64,
        len: u32,
        total: u64,
        seed: u32,
    },
}

#[derive(Debug, Clone, Copy)]
struct Pkt {
    ts: i64,
    from_client: bool,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: Payload,
}

/// One generated connection: addresses and its packets in time order.
struct Flow {
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    pkts: Vec<Pkt>,
}

/// Filler bodies: 64 KiB (+ one segment of slack) of pseudo-random bytes
/// for TLS records, and of printable text lines for clear text.
fn patterns() -> &'static [Vec<u8>; 2] {
    static P: std::sync::OnceLock<[Vec<u8>; 2]> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let mut rng = Rng::new(0x626f_6479);
        let n = 65_536 + 2_048;
        let random: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        let text: Vec<u8> = (0..n)
            .map(|i| {
                if i % 64 == 63 {
                    b'\n'
                } else {
                    b'a' + (rng.next_u64() % 26) as u8
                }
            })
            .collect();
        [random, text]
    })
}

/// Bytes `off..off+len` of a bulk stream of `total` bytes. TLS:
/// back-to-back application_data records (type 23, version 0x0303) of
/// `TLS_RECORD_BODY` bytes, the last one shorter, pseudo-random bodies;
/// plaintext: printable text lines.
fn fill_bulk(out: &mut Vec<u8>, tls: bool, off: u64, len: u32, total: u64, seed: u32) {
    out.clear();
    let [random, text] = patterns();
    let end = off + u64::from(len);
    let rec = TLS_RECORD_BODY + 5;
    let mut o = off;
    while o < end {
        let (pat, stop) = if tls {
            let within = o % rec;
            if within < 5 {
                let start = o - within;
                let body = (total - start - 5).min(TLS_RECORD_BODY);
                out.push([23u8, 3, 3, (body >> 8) as u8, body as u8][within as usize]);
                o += 1;
                continue;
            }
            (random, end.min(o - within + rec))
        } else {
            (text, end)
        };
        let n = (stop - o) as usize;
        let at = ((o + u64::from(seed)) % 65_536) as usize;
        out.extend_from_slice(&pat[at..at + n]);
        o = stop;
    }
}

/// Length of a bulk stream carrying `data` bytes of content: for TLS, the
/// record headers are added.
fn bulk_stream_len(tls: bool, data: u64) -> u64 {
    if !tls || data == 0 {
        return data;
    }
    let full = data / TLS_RECORD_BODY;
    let rest = data % TLS_RECORD_BODY;
    // A last record shorter than an AEAD tag plus a byte is padded up.
    let last = if rest == 0 { 0 } else { rest.max(24) + 5 };
    full * (TLS_RECORD_BODY + 5) + last
}

/// Parameters of one replayed flow.
struct FlowSpec<'a> {
    t_idx: u32,
    t: &'a Template,
    client: ([u8; 4], u16),
    server: ([u8; 4], u16),
    start: i64,
    isn: [u32; 2],
    /// Bulk bytes (content) client->server and server->client.
    bulk: [u64; 2],
    /// Half round-trip time, microseconds.
    half_rtt: i64,
    /// Idle time before the close, microseconds.
    idle: i64,
    /// Largest payload per packet (fixture and bulk): MSS, or 10 for the
    /// 64-byte worst case.
    seg_max: usize,
    /// Gap between back-to-back packets of one side, microseconds.
    gap: i64,
    /// Pure ACK every this many bulk segments (0: none).
    ack_every: usize,
}

fn build_flow(sp: &FlowSpec<'_>, seed: u32) -> Flow {
    let t = sp.t;
    let mut pkts = Vec::with_capacity(t.segs.len() + 16);
    let mut ts = sp.start;
    let mut prev_client: Option<bool> = None;
    let stream = [
        bulk_stream_len(t.is_tls, sp.bulk[0]),
        bulk_stream_len(t.is_tls, sp.bulk[1]),
    ];
    let mut step = |ts: &mut i64, from_client: bool| {
        *ts += if prev_client == Some(from_client) {
            sp.gap
        } else if prev_client.is_none() {
            0
        } else {
            sp.half_rtt
        };
        prev_client = Some(from_client);
    };
    let push_fixture = |pkts: &mut Vec<Pkt>,
                        ts: &mut i64,
                        i: usize,
                        shift: [u32; 2],
                        step: &mut dyn FnMut(&mut i64, bool)| {
        let s = &t.segs[i];
        let side = usize::from(!s.from_client);
        let other = 1 - side;
        let seq = sp.isn[side]
            .wrapping_add(s.seq_rel)
            .wrapping_add(shift[side]);
        let ack_shift = if s.ack_rel.wrapping_sub(t.next_at_close[other]) as i32 >= 0 {
            shift[other]
        } else {
            0
        };
        let ack = if s.flags & TcpFlags::ACK != 0 {
            sp.isn[other]
                .wrapping_add(s.ack_rel)
                .wrapping_add(ack_shift)
        } else {
            0
        };
        if s.payload.is_empty() {
            step(ts, s.from_client);
            pkts.push(Pkt {
                ts: *ts,
                from_client: s.from_client,
                seq,
                ack,
                flags: s.flags,
                window: s.window,
                payload: Payload::None,
            });
            return;
        }
        let mut off = 0usize;
        while off < s.payload.len() {
            let len = (s.payload.len() - off).min(sp.seg_max);
            let last = off + len == s.payload.len();
            // SYN/FIN stay on the first/last piece.
            let mut flags = s.flags;
            if off > 0 {
                flags &= !TcpFlags::SYN;
            }
            if !last {
                flags &= !(TcpFlags::FIN | TcpFlags::RST | TcpFlags::PSH);
            }
            step(ts, s.from_client);
            pkts.push(Pkt {
                ts: *ts,
                from_client: s.from_client,
                seq: seq.wrapping_add(off as u32),
                ack,
                flags,
                window: s.window,
                payload: Payload::Fixture {
                    t: sp.t_idx,
                    i: i as u32,
                    off: off as u32,
                    len: len as u32,
                },
            });
            off += len;
        }
    };
    for i in 0..t.close_at {
        push_fixture(&mut pkts, &mut ts, i, [0, 0], &mut step);
    }
    // Bulk: client request first, then the server's answer; the receiver
    // acknowledges every `ack_every` segments.
    let next = [
        sp.isn[0].wrapping_add(t.next_at_close[0]),
        sp.isn[1].wrapping_add(t.next_at_close[1]),
    ];
    let win = t.segs.last().map_or(65_535, |s| s.window.max(512));
    for side in 0..2 {
        let total = stream[side];
        let other = 1 - side;
        let mut off = 0u64;
        let mut n = 0usize;
        while off < total {
            let len = (total - off).min(sp.seg_max as u64) as u32;
            step(&mut ts, side == 0);
            pkts.push(Pkt {
                ts,
                from_client: side == 0,
                seq: next[side].wrapping_add(off as u32),
                ack: next[other],
                flags: TcpFlags::ACK
                    | if off + u64::from(len) == total {
                        TcpFlags::PSH
                    } else {
                        0
                    },
                window: win,
                payload: Payload::Bulk {
                    tls: t.is_tls,
                    off,
                    len,
                    total,
                    seed: seed ^ side as u32,
                },
            });
            off += u64::from(len);
            n += 1;
            if sp.ack_every > 0 && (n.is_multiple_of(sp.ack_every) || off == total) {
                step(&mut ts, side != 0);
                pkts.push(Pkt {
                    ts,
                    from_client: side != 0,
                    seq: next[other],
                    ack: next[side].wrapping_add(off as u32),
                    flags: TcpFlags::ACK,
                    window: win,
                    payload: Payload::None,
                });
            }
        }
    }
    ts += sp.idle;
    let shift = [stream[0] as u32, stream[1] as u32];
    for i in t.close_at..t.segs.len() {
        push_fixture(&mut pkts, &mut ts, i, shift, &mut step);
    }
    Flow {
        client: sp.client,
        server: sp.server,
        pkts,
    }
}

// ---------------------------------------------------------------- writer

/// Frames out, one pcap record each (Ethernet + IPv4 + TCP).
struct Writer {
    save: pcap::Savefile,
    frame: Vec<u8>,
    payload: Vec<u8>,
    packets: u64,
    bytes: u64,
    ip_id: u16,
}

impl Writer {
    fn create(path: &Path) -> Writer {
        let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).expect("pcap dead handle");
        let save = cap.savefile(path).expect("create pcap");
        Writer {
            save,
            frame: Vec::with_capacity(2048),
            payload: Vec::with_capacity(2048),
            packets: 0,
            bytes: 0,
            ip_id: 0,
        }
    }

    fn write(&mut self, templates: &[Template], flow: &Flow, p: &Pkt) {
        let (src, dst) = if p.from_client {
            (flow.client, flow.server)
        } else {
            (flow.server, flow.client)
        };
        match p.payload {
            Payload::None => self.payload.clear(),
            Payload::Fixture { t, i, off, len } => {
                let s = &templates[t as usize].segs[i as usize].payload;
                self.payload.clear();
                self.payload
                    .extend_from_slice(&s[off as usize..(off + len) as usize]);
            }
            Payload::Bulk {
                tls,
                off,
                len,
                total,
                seed,
            } => fill_bulk(&mut self.payload, tls, off, len, total, seed),
        }
        let mac = |ip: [u8; 4]| [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]];
        // IPv4 identification: vary it like a real stack would.
        self.ip_id = self.ip_id.wrapping_add(1);
        self.frame.clear();
        frames::Tcp::new(src.0, src.1, dst.0, dst.1)
            .seq(p.seq)
            .ack(p.ack)
            .flags(p.flags)
            .window(p.window)
            .ip_id(self.ip_id)
            .write_ethernet(mac(src.0), mac(dst.0), &self.payload, &mut self.frame);
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: (p.ts / 1_000_000) as libc::time_t,
                tv_usec: (p.ts % 1_000_000) as libc::suseconds_t,
            },
            caplen: self.frame.len() as u32,
            len: self.frame.len() as u32,
        };
        self.save.write(&pcap::Packet {
            header: &header,
            data: &self.frame,
        });
        self.packets += 1;
        self.bytes += self.frame.len() as u64;
    }
}

// ---------------------------------------------------------------- interleaving

/// What one generated file holds.
#[derive(Debug, Clone, Default)]
pub struct GenStats {
    pub flows: u64,
    pub packets: u64,
    /// Frame bytes (without pcap record headers).
    pub frame_bytes: u64,
    /// Of which TCP payload in bulk segments.
    pub bulk_payload_bytes: u64,
    pub max_open: u64,
    pub duration_s: f64,
    pub file_bytes: u64,
}

/// One label per replayed flow.
struct Label {
    client: String,
    server: String,
    class: String,
    outcome: String,
    file: String,
}

/// Merges flows by packet time. `next_flow(n)` builds flow n (or None when
/// there are no more); flows must come in order of their first packet.
fn interleave(
    path: &Path,
    templates: &[Template],
    mut next_flow: impl FnMut(u64) -> Option<(Flow, Option<Label>)>,
    labels_path: &Path,
) -> GenStats {
    let mut w = Writer::create(path);
    let mut labels = BufWriter::new(fs::File::create(labels_path).expect("labels"));
    writeln!(labels, "client\tserver\tclass\toutcome\ttemplate").unwrap();
    let mut st = GenStats::default();
    // Heap of (next packet time, flow number); flows by slot.
    let mut heap: BinaryHeap<Reverse<(i64, u64, usize)>> = BinaryHeap::new();
    let mut open: BTreeMap<u64, (Flow, usize)> = BTreeMap::new();
    let mut pending: Option<Flow> = None;
    let mut n = 0u64;
    let mut exhausted = false;
    let (mut first_ts, mut last_ts) = (None::<i64>, 0i64);
    loop {
        // Admit every flow that starts before the earliest open packet.
        loop {
            if pending.is_none() && !exhausted {
                match next_flow(n) {
                    Some((f, l)) => {
                        if let Some(l) = l {
                            writeln!(
                                labels,
                                "{}\t{}\t{}\t{}\t{}",
                                l.client, l.server, l.class, l.outcome, l.file
                            )
                            .unwrap();
                        }
                        pending = Some(f);
                    }
                    None => exhausted = true,
                }
            }
            let Some(f) = pending.as_ref() else { break };
            let start = f.pkts.first().map_or(i64::MAX, |p| p.ts);
            if heap.peek().is_some_and(|Reverse((t, _, _))| *t < start) {
                break;
            }
            let f = pending.take().unwrap();
            if !f.pkts.is_empty() {
                heap.push(Reverse((start, n, 0)));
                open.insert(n, (f, 0));
            }
            n += 1;
            st.max_open = st.max_open.max(open.len() as u64);
        }
        let Some(Reverse((ts, id, _))) = heap.pop() else {
            break;
        };
        let (flow, idx) = open.get_mut(&id).unwrap();
        let p = flow.pkts[*idx];
        w.write(templates, flow, &p);
        if let Payload::Bulk { len, .. } = p.payload {
            st.bulk_payload_bytes += u64::from(len);
        }
        first_ts.get_or_insert(ts);
        last_ts = ts;
        *idx += 1;
        if *idx < flow.pkts.len() {
            heap.push(Reverse((flow.pkts[*idx].ts, id, 0)));
        } else {
            open.remove(&id);
        }
    }
    w.save.flush().expect("flush pcap");
    drop(w.save);
    labels.flush().unwrap();
    st.flows = n;
    st.packets = w.packets;
    st.frame_bytes = w.bytes;
    st.duration_s = (last_ts - first_ts.unwrap_or(0)) as f64 / 1e6;
    st.file_bytes = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    st
}

fn client_addr(n: u64) -> ([u8; 4], u16) {
    // 10.0.0.0/8 (skipping .0 and .255 hosts is not needed for a pcap):
    // unique per flow up to 2^24 flows.
    let ip = 0x0A00_0000u32 | (n as u32 & 0x00FF_FFFF);
    (ip.to_be_bytes(), 10_000 + (n % 50_000) as u16)
}

fn server_addr(n: u64, port: u16) -> ([u8; 4], u16) {
    // 172.16.0.0/16: 1,000 servers.
    let s = (n * 7919 % 1000) as u32;
    ((0xAC10_0000u32 | s).to_be_bytes(), port)
}

fn label(f: &Flow, t: &Template) -> Label {
    let e = |a: ([u8; 4], u16)| {
        Endpoint {
            ip: IpAddr::V4(Ipv4Addr::from(a.0)),
            port: a.1,
        }
        .to_string()
    };
    Label {
        client: e(f.client),
        server: e(f.server),
        class: t.class.clone(),
        outcome: t.outcome.clone(),
        file: t.file.clone(),
    }
}

/// Picks a template: 20% plaintext, 40% tls, 40% mtls, uniform within.
fn pick(rng: &mut Rng, by_class: &[Vec<usize>; 3]) -> usize {
    let r = rng.f64();
    let c = if r < 0.2 {
        0
    } else if r < 0.6 {
        1
    } else {
        2
    };
    let v = &by_class[c];
    v[rng.range(0, v.len() as u64) as usize]
}

fn by_class(templates: &[Template]) -> [Vec<usize>; 3] {
    let mut b: [Vec<usize>; 3] = Default::default();
    for (i, t) in templates.iter().enumerate() {
        let c = match t.class.as_str() {
            "plaintext" => 0,
            "tls" => 1,
            _ => 2,
        };
        b[c].push(i);
    }
    b
}

// ---------------------------------------------------------------- the files

/// The mixed file: `flows` connections arriving at a steady rate, each open
/// for a few seconds (handshake, bulk, keep-alive idle, close).
pub fn gen_mixed(path: &Path, labels: &Path, templates: &[Template], flows: u64) -> GenStats {
    let mut rng = Rng::new(0x6d74_6c73_6e69_6666);
    let classes = by_class(templates);
    // ~4,000 new flows per second, ~6 s each: ~24,000 open at once.
    let arrivals_per_s = 4_000.0;
    let mut start = EPOCH_US;
    interleave(
        path,
        templates,
        |n| {
            if n >= flows {
                return None;
            }
            let t_idx = pick(&mut rng, &classes);
            let t = &templates[t_idx];
            // Exponential inter-arrival times.
            start += (-(1.0 - rng.f64()).ln() / arrivals_per_s * 1e6) as i64;
            let bulk = if t.takes_bulk() {
                [
                    rng.lognormal(400.0, 1.0, 0.0, 64.0 * 1024.0),
                    rng.lognormal(4_000.0, 1.4, 0.0, 4.0 * 1024.0 * 1024.0),
                ]
            } else {
                [0, 0]
            };
            let sp = FlowSpec {
                t_idx: t_idx as u32,
                t,
                client: client_addr(n),
                server: server_addr(n, t.server_port),
                start,
                isn: [rng.next_u64() as u32, rng.next_u64() as u32],
                bulk,
                half_rtt: rng.range(100, 20_000) as i64,
                idle: rng.range(0, 12_000_000) as i64,
                seg_max: MSS,
                gap: 12,
                ack_every: 2,
            };
            let f = build_flow(&sp, rng.next_u64() as u32);
            let l = label(&f, t);
            Some((f, Some(l)))
        },
        labels,
    )
}

/// Worst case 1: every payload in 10-byte pieces (64-byte frames), the
/// handshake included, plus 10-byte bulk; no pure ACKs in the bulk.
pub fn gen_tiny(path: &Path, labels: &Path, templates: &[Template], flows: u64) -> GenStats {
    let mut rng = Rng::new(0x7469_6e79_3634);
    let classes = by_class(templates);
    let mut start = EPOCH_US;
    interleave(
        path,
        templates,
        |n| {
            if n >= flows {
                return None;
            }
            let t_idx = pick(&mut rng, &classes);
            let t = &templates[t_idx];
            start += (-(1.0 - rng.f64()).ln() / 1_000.0 * 1e6) as i64;
            let bulk = if t.takes_bulk() {
                [rng.range(500, 1_500), rng.range(2_000, 6_000)]
            } else {
                [0, 0]
            };
            let sp = FlowSpec {
                t_idx: t_idx as u32,
                t,
                client: client_addr(n),
                server: server_addr(n, t.server_port),
                start,
                isn: [rng.next_u64() as u32, rng.next_u64() as u32],
                bulk,
                half_rtt: rng.range(100, 5_000) as i64,
                idle: 0,
                seg_max: 10,
                gap: 1_000,
                ack_every: 0,
            };
            let f = build_flow(&sp, rng.next_u64() as u32);
            let l = label(&f, t);
            Some((f, Some(l)))
        },
        labels,
    )
}

/// Real flow number `n_real` of a flood bench: a template of `classes`'
/// pick, its client in 11.0.0.0/8, starting at `start`.
fn flood_real_flow(
    rng: &mut Rng,
    templates: &[Template],
    classes: &[Vec<usize>; 3],
    n_real: u64,
    start: i64,
) -> (Flow, Option<Label>) {
    let t_idx = pick(rng, classes);
    let t = &templates[t_idx];
    let sp = FlowSpec {
        t_idx: t_idx as u32,
        t,
        // 11.0.0.0/8 for the real clients.
        client: ((0x0B00_0000u32 | n_real as u32).to_be_bytes(), 40_000),
        server: server_addr(n_real, t.server_port),
        start,
        isn: [rng.next_u64() as u32, rng.next_u64() as u32],
        bulk: if t.takes_bulk() {
            [rng.range(100, 2_000), rng.range(1_000, 50_000)]
        } else {
            [0, 0]
        },
        half_rtt: rng.range(100, 2_000) as i64,
        idle: rng.range(0, 2_000_000) as i64,
        seg_max: MSS,
        gap: 12,
        ack_every: 2,
    };
    let f = build_flow(&sp, rng.next_u64() as u32);
    let l = label(&f, t);
    (f, Some(l))
}

/// SYN number `n_syn` of a flood: one SYN from its own spoofed source.
fn flood_syn(rng: &mut Rng, n_syn: u64, target: ([u8; 4], u16), ts: i64) -> (Flow, Option<Label>) {
    let f = Flow {
        client: client_addr(n_syn),
        server: target,
        pkts: vec![Pkt {
            ts,
            from_client: true,
            seq: rng.next_u64() as u32,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 64_240,
            payload: Payload::None,
        }],
    };
    (f, None)
}

/// Worst case 2: `syns` SYNs from distinct spoofed clients to one server
/// (100,000 per second, no answer), with `real` real handshakes mixed in.
/// Only the real flows are labelled.
pub fn gen_synflood(
    path: &Path,
    labels_path: &Path,
    templates: &[Template],
    syns: u64,
    real: u64,
) -> GenStats {
    let mut rng = Rng::new(0x7379_6e66_6c6f_6f64);
    let classes = by_class(templates);
    let every = (syns / real.max(1)).max(1);
    let total = syns + real;
    let mut n_real = 0u64;
    let mut n_syn = 0u64;
    let target = ([10, 255, 0, 1], 443u16);
    let syn_gap = 10i64; // 100k SYN/s
    interleave(
        path,
        templates,
        |n| {
            if n >= total {
                return None;
            }
            let t_now = EPOCH_US + n_syn as i64 * syn_gap;
            if n_real < real && n_syn >= (n_real * every + every / 2) {
                n_real += 1;
                return Some(flood_real_flow(
                    &mut rng, templates, &classes, n_real, t_now,
                ));
            }
            if n_syn >= syns {
                return None;
            }
            n_syn += 1;
            Some(flood_syn(&mut rng, n_syn - 1, target, t_now))
        },
        labels_path,
    )
}

/// The first ClientHello segment among the templates: (template, segment,
/// length). A spoofed SYN+data flow sends half of it, so the record it
/// starts announces more than ever comes and the flow stays pending.
fn partial_hello(templates: &[Template]) -> (u32, u32, u32) {
    templates
        .iter()
        .enumerate()
        .find_map(|(t, tpl)| {
            let i = tpl.segs.iter().position(|s| {
                s.from_client && s.payload.len() >= 64 && s.payload.starts_with(&[0x16, 0x03])
            })?;
            let len = tpl.segs[i].payload.len() as u32;
            Some((t as u32, i as u32, len / 2))
        })
        .expect("a TLS template with a ClientHello")
}

/// One spoofed flow of the SYN+data flood: a SYN, then half a ClientHello
/// 1 us later; never answered, never finished.
fn flood_syn_data(
    rng: &mut Rng,
    n: u64,
    target: ([u8; 4], u16),
    ts: i64,
    (t, i, len): (u32, u32, u32),
) -> (Flow, Option<Label>) {
    let (mut f, label) = flood_syn(rng, n, target, ts);
    let isn = f.pkts[0].seq;
    f.pkts.push(Pkt {
        ts: ts + 1,
        from_client: true,
        seq: isn.wrapping_add(1),
        ack: 1,
        flags: TcpFlags::ACK | TcpFlags::PSH,
        window: 64_240,
        payload: Payload::Fixture { t, i, off: 0, len },
    });
    (f, label)
}

/// Issue 13's flood: `syns` SYN-only frames from distinct spoofed sources
/// at `pps` packets per second, with `real` fixture flows starting at an
/// even pace over the flood and `tail_s` seconds after it. The tail runs
/// past the SYN-only timeout (30 s), so the table, full of the flood's
/// last SYNs, expires them while real flows are still arriving.
pub fn gen_synflood_expiry(
    path: &Path,
    labels_path: &Path,
    templates: &[Template],
    flood: (u64, u64),
    real: u64,
    tail_s: u64,
) -> GenStats {
    gen_flood_expiry(path, labels_path, templates, flood, real, tail_s, false)
}

/// The same with spoofed SYN+data flows (`flood_syn_data`): payload that
/// holds buffers and never finishes, so the buffer budget, not the table,
/// is what the flood fills (issue 13 §1).
pub fn gen_syndata_expiry(
    path: &Path,
    labels_path: &Path,
    templates: &[Template],
    flood: (u64, u64),
    real: u64,
    tail_s: u64,
) -> GenStats {
    gen_flood_expiry(path, labels_path, templates, flood, real, tail_s, true)
}

fn gen_flood_expiry(
    path: &Path,
    labels_path: &Path,
    templates: &[Template],
    (syns, pps): (u64, u64),
    real: u64,
    tail_s: u64,
    data: bool,
) -> GenStats {
    let mut rng = Rng::new(0x6578_7069_7279_2131);
    let classes = by_class(templates);
    let hello = data.then(|| partial_hello(templates));
    let syn_gap = 1_000_000.0 / pps.max(1) as f64;
    let span = syns as f64 * syn_gap + tail_s as f64 * 1e6;
    let real_gap = span / real.max(1) as f64;
    let target = ([10, 255, 0, 1], 443u16);
    let (mut n_real, mut n_syn) = (0u64, 0u64);
    interleave(
        path,
        templates,
        |_| {
            let t_syn = (n_syn < syns).then(|| EPOCH_US + (n_syn as f64 * syn_gap) as i64);
            let t_real = (n_real < real).then(|| EPOCH_US + (n_real as f64 * real_gap) as i64);
            match (t_syn, t_real) {
                (_, Some(t)) if t_syn.is_none_or(|s| t <= s) => {
                    n_real += 1;
                    Some(flood_real_flow(&mut rng, templates, &classes, n_real, t))
                }
                (Some(t), _) => {
                    n_syn += 1;
                    Some(match hello {
                        Some(h) => flood_syn_data(&mut rng, n_syn - 1, target, t, h),
                        None => flood_syn(&mut rng, n_syn - 1, target, t),
                    })
                }
                _ => None,
            }
        },
        labels_path,
    )
}

// ---------------------------------------------------------------- cache

/// A generated pcap and its labels.
#[derive(Debug, Clone)]
pub struct Generated {
    pub pcap: PathBuf,
    pub labels: PathBuf,
    pub stats: GenStats,
    pub cached: bool,
    pub gen_secs: f64,
}

/// Returns the cached file when its stamp matches `key`, else builds it
/// (into temporary names, then renamed).
pub fn cached(
    dir: &Path,
    name: &str,
    key: &str,
    build: impl FnOnce(&Path, &Path) -> GenStats,
) -> Generated {
    fs::create_dir_all(dir).expect("create bench dir");
    let pcap = dir.join(format!("{name}.pcap"));
    let labels = dir.join(format!("{name}.labels.tsv"));
    let stamp = dir.join(format!("{name}.stamp"));
    let want = format!("v{GEN_VERSION} {key}");
    if pcap.exists()
        && labels.exists()
        && let Ok(s) = fs::read_to_string(&stamp)
        && let Some((head, rest)) = s.split_once('\n')
        && head == want
        && let Some(stats) = parse_stats(rest)
    {
        return Generated {
            pcap,
            labels,
            stats,
            cached: true,
            gen_secs: 0.0,
        };
    }
    let _ = fs::remove_file(&stamp);
    let tmp_p = dir.join(format!("{name}.pcap.tmp"));
    let tmp_l = dir.join(format!("{name}.labels.tsv.tmp"));
    let t0 = std::time::Instant::now();
    let mut stats = build(&tmp_p, &tmp_l);
    let gen_secs = t0.elapsed().as_secs_f64();
    fs::rename(&tmp_p, &pcap).expect("rename pcap");
    fs::rename(&tmp_l, &labels).expect("rename labels");
    stats.file_bytes = fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0);
    fs::write(&stamp, format!("{want}\n{}", format_stats(&stats))).expect("stamp");
    Generated {
        pcap,
        labels,
        stats,
        cached: false,
        gen_secs,
    }
}

fn format_stats(s: &GenStats) -> String {
    format!(
        "{} {} {} {} {} {} {}\n",
        s.flows,
        s.packets,
        s.frame_bytes,
        s.bulk_payload_bytes,
        s.max_open,
        s.duration_s,
        s.file_bytes
    )
}

fn parse_stats(s: &str) -> Option<GenStats> {
    let v: Vec<&str> = s.split_whitespace().collect();
    if v.len() != 7 {
        return None;
    }
    Some(GenStats {
        flows: v[0].parse().ok()?,
        packets: v[1].parse().ok()?,
        frame_bytes: v[2].parse().ok()?,
        bulk_payload_bytes: v[3].parse().ok()?,
        max_open: v[4].parse().ok()?,
        duration_s: v[5].parse().ok()?,
        file_bytes: v[6].parse().ok()?,
    })
}

/// Labels of a generated file: (client, server) -> (class, outcome).
pub fn read_labels(path: &Path) -> BTreeMap<(String, String), (String, String)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 4).then(|| {
                (
                    (f[0].to_string(), f[1].to_string()),
                    (f[2].to_string(), f[3].to_string()),
                )
            })
        })
        .collect()
}
