//! Hand-made wire bytes for the hostile-input tests: Ethernet/IPv4/TCP
//! frames (from tests/support/frames.rs, the project's one set of frame
//! builders; bent afterwards where a test needs a lie), a
//! connection that keeps its own sequence numbers, TLS records and
//! handshake messages, a TLS 1.2 handshake with or without a client
//! certificate, a minimal pcap writer, and the in-process run of frames
//! or segments through `pipeline::run_offline` (the binary's file mode).
//!
//! Nothing here decides what a test expects: it only builds input.

#![allow(dead_code)]

/// The project's one set of frame builders.
#[path = "../support/frames.rs"]
mod frames;

use mtlsniff::capture::decode::{self, DecodeCounters, Frame, LinkType};
use mtlsniff::capture::segment::{Segment, TcpFlags, Timestamp};
use mtlsniff::flow::engine::{EngineCounters, Limits, Options};
use mtlsniff::pipeline::{Input, Plan, run_offline};
use mtlsniff::verdict::Verdict;

pub const SYN: u8 = TcpFlags::SYN;
pub const ACK: u8 = TcpFlags::ACK;
pub const FIN: u8 = TcpFlags::FIN;
pub const RST: u8 = TcpFlags::RST;
pub const PSH: u8 = TcpFlags::PSH;

pub type Addr = ([u8; 4], u16);

/// An Ethernet II header (the MACs `tcp4` uses) with `ethertype` before
/// `rest`.
pub fn eth(ethertype: u16, rest: &[u8]) -> Vec<u8> {
    frames::ethernet(ethertype, rest)
}

/// An Ethernet + IPv4 + TCP frame.
pub fn tcp4(src: Addr, dst: Addr, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    tcp4_with_options(src, dst, seq, ack, flags, &[], payload)
}

/// `tcp4` with raw TCP option bytes (padded to 4 with zeros: end of list).
pub fn tcp4_with_options(
    src: Addr,
    dst: Addr,
    seq: u32,
    ack: u32,
    flags: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    frames::Tcp::new(src.0, src.1, dst.0, dst.1)
        .seq(seq)
        .ack(ack)
        .flags(flags)
        .options(options)
        .ethernet(payload)
}

/// One TCP connection between `client` and `server` that tracks each
/// side's next sequence number, so tests write what is sent, not numbers.
#[derive(Clone)]
pub struct Conn {
    pub client: Addr,
    pub server: Addr,
    pub cseq: u32,
    pub sseq: u32,
    pub frames: Vec<Vec<u8>>,
}

impl Conn {
    pub fn new(client: Addr, server: Addr) -> Conn {
        Conn::with_isns(client, server, 1000, 5000)
    }

    pub fn with_isns(client: Addr, server: Addr, cisn: u32, sisn: u32) -> Conn {
        Conn {
            client,
            server,
            cseq: cisn,
            sseq: sisn,
            frames: Vec::new(),
        }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn open(&mut self) -> &mut Self {
        self.frames
            .push(tcp4(self.client, self.server, self.cseq, 0, SYN, &[]));
        self.cseq = self.cseq.wrapping_add(1);
        self.frames.push(tcp4(
            self.server,
            self.client,
            self.sseq,
            self.cseq,
            SYN | ACK,
            &[],
        ));
        self.sseq = self.sseq.wrapping_add(1);
        self.frames.push(tcp4(
            self.client,
            self.server,
            self.cseq,
            self.sseq,
            ACK,
            &[],
        ));
        self
    }

    /// Client data in one segment.
    pub fn client(&mut self, data: &[u8]) -> &mut Self {
        let f = self.client_frame(data);
        self.frames.push(f);
        self
    }

    /// Server data in one segment.
    pub fn server(&mut self, data: &[u8]) -> &mut Self {
        let f = self.server_frame(data);
        self.frames.push(f);
        self
    }

    /// The client's next segment, without adding it.
    pub fn client_frame(&mut self, data: &[u8]) -> Vec<u8> {
        let f = tcp4(
            self.client,
            self.server,
            self.cseq,
            self.sseq,
            ACK | PSH,
            data,
        );
        self.cseq = self.cseq.wrapping_add(data.len() as u32);
        f
    }

    pub fn server_frame(&mut self, data: &[u8]) -> Vec<u8> {
        let f = tcp4(
            self.server,
            self.client,
            self.sseq,
            self.cseq,
            ACK | PSH,
            data,
        );
        self.sseq = self.sseq.wrapping_add(data.len() as u32);
        f
    }

    /// FIN from both sides.
    pub fn close(&mut self) -> &mut Self {
        self.frames.push(tcp4(
            self.client,
            self.server,
            self.cseq,
            self.sseq,
            FIN | ACK,
            &[],
        ));
        self.cseq = self.cseq.wrapping_add(1);
        self.frames.push(tcp4(
            self.server,
            self.client,
            self.sseq,
            self.cseq,
            FIN | ACK,
            &[],
        ));
        self.sseq = self.sseq.wrapping_add(1);
        self
    }
}

// ------------------------------------------------------------------ TLS

/// A TLS record.
pub fn record(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut r = vec![content_type];
    r.extend_from_slice(&version.to_be_bytes());
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A handshake message (type, 3-byte length, body).
pub fn hs(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let n = body.len() as u32;
    let mut m = vec![msg_type, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    m.extend_from_slice(body);
    m
}

/// A handshake record holding one message.
pub fn hs_record(version: u16, msg_type: u8, body: &[u8]) -> Vec<u8> {
    record(22, version, &hs(msg_type, body))
}

/// ClientHello body: `version`, a random, no session id, one cipher
/// suite, no compression, an SNI extension.
pub fn client_hello_body(version: u16) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x11; 32]);
    b.push(0); // session id
    b.extend_from_slice(&[0, 2, 0xc0, 0x2f]); // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    b.extend_from_slice(&[1, 0]); // null compression
    let name = b"hostile.example";
    let mut sni = vec![0, 0]; // server_name extension
    let list_len = name.len() + 3;
    sni.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    sni.extend_from_slice(&(list_len as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    b.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    b.extend_from_slice(&sni);
    b
}

pub fn server_hello_body(version: u16) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x22; 32]);
    b.push(0);
    b.extend_from_slice(&[0xc0, 0x2f, 0]);
    b
}

/// A Certificate message body with these DER blobs.
pub fn certificate_body(ders: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for d in ders {
        let n = d.len() as u32;
        list.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
        list.extend_from_slice(d);
    }
    let n = list.len() as u32;
    let mut b = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8];
    b.extend(list);
    b
}

/// A not-X.509 "certificate" (hostile-inputs M25).
pub const GARBAGE_DER: &[u8] = &[0x30, 0x82, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef, 0x00];

/// The four flights of a TLS <= 1.2 handshake at `version`, each as the
/// bytes one side sends: the ClientHello; the server's flight (with a
/// CertificateRequest); the client's flight (with `client_cert`, or an
/// empty Certificate when None) ending in ChangeCipherSpec and an
/// encrypted Finished; the server's ChangeCipherSpec and Finished.
pub struct Tls12 {
    pub client_hello: Vec<u8>,
    pub server_flight: Vec<u8>,
    pub client_flight: Vec<u8>,
    pub server_finish: Vec<u8>,
}

pub fn tls12(version: u16, client_cert: Option<&[u8]>) -> Tls12 {
    let server_cert: &[u8] = &[0x30, 0x03, 0x02, 0x01, 0x01];
    let mut server_flight = hs_record(version, 2, &server_hello_body(version));
    server_flight.extend(hs_record(version, 11, &certificate_body(&[server_cert])));
    server_flight.extend(hs_record(version, 13, &[1, 1, 0, 0, 0, 0]));
    server_flight.extend(hs_record(version, 14, &[]));
    let ders: Vec<&[u8]> = client_cert.into_iter().collect();
    let mut client_flight = hs_record(version, 11, &certificate_body(&ders));
    client_flight.extend(hs_record(version, 16, &[0, 1, 9]));
    client_flight.extend(record(20, version, &[1]));
    client_flight.extend(record(22, version, &[0x5a; 40]));
    let mut server_finish = record(20, version, &[1]);
    server_finish.extend(record(22, version, &[0x5b; 40]));
    server_finish.extend(record(23, version, &[0x5c; 64]));
    Tls12 {
        client_hello: hs_record(version, 1, &client_hello_body(version)),
        server_flight,
        client_flight,
        server_finish,
    }
}

/// A whole TLS 1.2 connection on `conn`: open, four flights, close.
pub fn tls12_conn(conn: &mut Conn, client_cert: Option<&[u8]>) {
    let t = tls12(0x0303, client_cert);
    conn.open()
        .client(&t.client_hello)
        .server(&t.server_flight)
        .client(&t.client_flight)
        .server(&t.server_finish)
        .close();
}

// ------------------------------------------------------------------ runs

/// What one in-process run saw.
pub struct Run {
    pub verdicts: Vec<Verdict>,
    pub decode: DecodeCounters,
    pub engine: EngineCounters,
    /// Engine buffer use after every frame, at most.
    pub peak_buffered: usize,
    pub segments: Vec<Segment>,
}

impl Run {
    /// A summary counter by its summary name (decode and engine).
    pub fn counter(&self, name: &str) -> u64 {
        self.decode
            .entries()
            .into_iter()
            .chain(self.engine.entries())
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no counter named {name}"))
    }

    pub fn only(&self) -> &Verdict {
        assert_eq!(
            self.verdicts.len(),
            1,
            "expected one verdict, got {:#?}",
            self.verdicts
        );
        &self.verdicts[0]
    }
}

/// Decode Ethernet frames (packet times 1 ms apart) and feed one engine.
pub fn run_frames(frames: &[Vec<u8>], limits: Limits) -> Run {
    run_link(LinkType::EN10MB, frames, limits)
}

/// Frames of `link` (packet times 1 ms apart, as `pcap` writes them)
/// through `run_offline`, as `mtlsniff -r` would read them from a file.
pub fn run_link(link: LinkType, frames: &[Vec<u8>], limits: Limits) -> Run {
    let frames: Vec<Frame<'_>> = frames
        .iter()
        .enumerate()
        .map(|(i, data)| Frame {
            ts: Timestamp(1_700_000_000_000_000 + i as i64 * 1000),
            link,
            data,
            orig_len: data.len() as u32,
        })
        .collect();
    // The decoded segments too, for tests that look at them.
    let mut scratch = DecodeCounters::default();
    let segments = frames
        .iter()
        .filter_map(|f| decode::decode(f, &mut scratch))
        .collect();
    let mut run = run_input(Input::Frames(&frames), limits);
    run.segments = segments;
    run
}

/// Feed segments to one engine, then end the input; verdicts in print
/// order, resumptions linked as the output stage links them.
pub fn run_segments(segments: &[Segment], limits: Limits) -> Run {
    let mut run = run_input(Input::Segments(segments), limits);
    run.segments = segments.to_vec();
    run
}

fn run_input(input: Input<'_>, limits: Limits) -> Run {
    let run = run_offline(input, &Plan::with_limits(limits, Options::default()))
        .expect("in-memory input");
    Run {
        decode: run.decode.clone(),
        engine: run.engine.clone(),
        peak_buffered: run.peak_buffered,
        verdicts: run.into_verdicts(),
        segments: Vec::new(),
    }
}

// ------------------------------------------------------------------ pcap

/// A classic pcap file (microsecond timestamps) of `frames` with `link`.
pub fn pcap(link: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut f = pcap_header(link, 262_144);
    for (i, frame) in frames.iter().enumerate() {
        f.extend(pcap_record(
            1_700_000_000 + i as u32 / 1000,
            (i as u32 % 1000) * 1000,
            frame.len() as u32,
            frame.len() as u32,
        ));
        f.extend_from_slice(frame);
    }
    f
}

pub fn pcap_header(link: u32, snaplen: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&link.to_le_bytes());
    h
}

pub fn pcap_record(secs: u32, micros: u32, caplen: u32, len: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(16);
    for v in [secs, micros, caplen, len] {
        r.extend_from_slice(&v.to_le_bytes());
    }
    r
}
