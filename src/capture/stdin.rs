//! Reading a capture from stdin (`-r -`) ourselves, instead of through
//! libpcap, whose read blocks until a whole record has arrived: on a quiet
//! pipe (`tcpdump -U -w - | mtlsniff -r -`) nothing would flush or expire
//! until more packets came. Here a read waits at most `QUIET_MS` for bytes
//! (`poll(2)`) and otherwise says how long the pipe has been quiet
//! (`Item::Quiet`), so the pipeline can tick on the wall clock as live
//! capture does.
//!
//! It owns one growable buffer that it refills from fd 0 and walks both
//! classic pcap (either byte order, µs or ns) and pcapng (sections of
//! either byte order, any number of interfaces of one link type, each with
//! its own time resolution and offset); pcap-parser reads each record and
//! block once it is whole in the buffer. A pcapng's TLS Decryption Secrets
//! Blocks are handed out (`Item::Secrets`) for the key log, as the file
//! path reads them; every other block is skipped by length. The buffer
//! holds one block at a time: it starts at `START_BYTES`, grows to fit a
//! bigger block (at most `MAX_BLOCK`, libpcap's own limit) and shrinks
//! back after it. Damage (a truncated record, a length past the limits, a
//! block that does not parse, a packet for an interface never described)
//! is an `Err` naming the byte offset, which ends the run as a damaged
//! file does. It must not decode packets, filter, or make threads.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use pcap_parser::pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header};
use pcap_parser::pcapng::{
    Block, SecretsType, build_ts_resolution, parse_block_be, parse_block_le,
    parse_sectionheaderblock,
};

use zeroize::Zeroizing;

use crate::capture::mapped::{Record, le_or_be};

/// The longest a read waits for bytes before saying the pipe is quiet:
/// live capture's read timeout, so both tick alike.
pub const QUIET_MS: i32 = 250;
/// The buffer's size when no bigger block needs it.
const START_BYTES: usize = 64 << 10;
/// libpcap's `MAXIMUM_SNAPLEN`: a record claiming more is damage.
const MAX_CAPLEN: u32 = 262_144;
/// libpcap's largest pcapng block (`MAX_BLOCKSIZE_MAX`, 16 MiB).
const MAX_BLOCK: u32 = 16 << 20;
const PCAP_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
const SHB: u32 = 0x0A0D_0D0A;
const EPB: u32 = 0x0000_0006;
const SPB: u32 = 0x0000_0003;
const IDB: u32 = 0x0000_0001;
const DSB: u32 = 0x0000_000A;

/// What the next read found.
#[derive(Debug)]
pub enum Item<'a> {
    Packet(Record<'a>),
    /// The TLS key log text of one Decryption Secrets Block.
    Secrets(&'a [u8]),
    /// No whole record within `QUIET_MS`; no byte has arrived for this long.
    Quiet(Duration),
    End,
}

/// Wait until `fd` is readable or `timeout_ms` passes; false on timeout.
/// An error or a signal (EINTR) counts as readable: the caller reads, finds
/// nothing, and comes back, having checked its stop flag on the way.
pub(crate) fn wait_readable(fd: i32, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, initialised pollfd that outlives the call,
    // and nfds is 1.
    let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    ready != 0
}

/// Whether `fd` has bytes (or its end) within `timeout_ms`. Unlike
/// `wait_readable`, a signal counts as quiet: the read that follows is a
/// blocking one, which must not start on an empty pipe.
fn readable(fd: i32, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, initialised pollfd that outlives the call,
    // and nfds is 1.
    let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    ready > 0 || (ready < 0 && std::io::Error::last_os_error().kind() != io::ErrorKind::Interrupted)
}

/// What the next read found, as places in the buffer (so a caller can
/// step over a filtered-out record and read on before borrowing).
#[derive(Debug, Clone, Copy)]
enum Found {
    Packet {
        start: usize,
        end: usize,
        secs: i64,
        micros: i64,
        orig_len: u32,
    },
    Secrets {
        start: usize,
        end: usize,
    },
    Quiet(Duration),
    End,
}

/// One pcapng interface: its link type and how its timestamps count.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: i32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

#[derive(Debug)]
enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        snaplen: u32,
        swapped_lengths: bool,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// A stream's bytes so far: `buf[start..]` is not yet consumed, and
/// `base` bytes came before `buf[0]` (for offsets in messages).
#[derive(Debug)]
struct Stream<R> {
    input: R,
    /// The descriptor polled before each read; None: never wait (a test's
    /// in-memory input).
    fd: Option<i32>,
    buf: Vec<u8>,
    start: usize,
    base: u64,
    eof: bool,
    last_bytes: Instant,
}

/// How many bytes a wait brought.
enum Fill {
    /// At least what was asked for.
    Ready,
    /// Fewer, and nothing more within the wait.
    Quiet,
    /// Fewer, and the input ended.
    Eof,
}

impl<R: io::Read> Stream<R> {
    fn available(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// The absolute offset of the first unconsumed byte.
    fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
    }

    /// Make `need` bytes available, waiting at most `wait_ms` per read
    /// (-1: as long as it takes).
    fn fill(&mut self, need: usize, wait_ms: i32) -> io::Result<Fill> {
        while self.available().len() < need {
            if self.eof {
                return Ok(Fill::Eof);
            }
            if let Some(fd) = self.fd
                && !readable(fd, wait_ms)
            {
                if wait_ms < 0 {
                    continue; // a signal, while waiting for good
                }
                return Ok(Fill::Quiet);
            }
            self.make_room(need);
            let old = self.buf.len();
            self.buf.resize(self.buf.capacity(), 0);
            let read = self.input.read(self.buf.get_mut(old..).unwrap_or_default());
            self.buf.truncate(old + *read.as_ref().unwrap_or(&0));
            match read {
                // `make_room` left room, so nothing read is the end.
                Ok(0) => self.eof = true,
                Ok(_) => self.last_bytes = Instant::now(),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Fill::Ready)
    }

    /// Move the unconsumed bytes to the front, and size the buffer for
    /// `need` of them plus room to read: back to `START_BYTES` when no
    /// big block needs more.
    fn make_room(&mut self, need: usize) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.start = 0;
        }
        let want = need.max(START_BYTES);
        if self.buf.capacity() < want {
            self.buf.reserve_exact(want - self.buf.len());
        } else if self.buf.capacity() > want.max(self.buf.len()) * 2 {
            self.buf.shrink_to(want.max(self.buf.len()));
        }
    }
}

/// A capture read from a stream (stdin) as its bytes arrive.
#[derive(Debug)]
pub struct StdinReader<R = std::fs::File> {
    stream: Stream<R>,
    format: Format,
    /// The link type of every packet (pcapng: its first interface's).
    link: i32,
    /// Secrets met before the first packet, read by `open`.
    leading: Vec<Zeroizing<Vec<u8>>>,
}

/// Why `open` failed: the stream is not a capture, or reading it failed.
#[derive(Debug)]
pub enum OpenError {
    NotACapture(String),
    Read(String),
}

impl StdinReader<std::fs::File> {
    /// Read stdin's capture header (and a pcapng's blocks before its first
    /// packet, as long as they come without a pause), waiting as long as it
    /// takes for them. Reads a duplicate of fd 0, not `std::io::Stdin`,
    /// whose own buffer would hide bytes from `poll`.
    pub fn open_stdin() -> Result<Self, OpenError> {
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| OpenError::Read(e.to_string()))?;
        let raw = fd.as_raw_fd();
        Self::open(std::fs::File::from(fd), Some(raw))
    }
}

impl<R: io::Read> StdinReader<R> {
    /// `fd`: the descriptor behind `input`, polled before each read.
    pub fn open(input: R, fd: Option<i32>) -> Result<Self, OpenError> {
        let mut stream = Stream {
            input,
            fd,
            buf: Vec::new(),
            start: 0,
            base: 0,
            eof: false,
            last_bytes: Instant::now(),
        };
        let read = |e: io::Error| OpenError::Read(e.to_string());
        let short =
            |what: &str| OpenError::NotACapture(format!("the input ends inside its {what}"));
        if !matches!(stream.fill(4, -1).map_err(read)?, Fill::Ready) {
            return Err(OpenError::NotACapture(if stream.available().is_empty() {
                "the input is empty".to_string()
            } else {
                "unknown file format".to_string()
            }));
        }
        let magic = le_or_be(stream.available(), 0, false);
        // Classic pcap's magics (µs, ns, modified), in either byte order.
        let pcap = [0xa1b2_c3d4_u32, 0xa1b2_3c4d, 0xa1b2_cd34];
        if magic != SHB && !pcap.iter().any(|m| *m == magic || m.swap_bytes() == magic) {
            return Err(OpenError::NotACapture("unknown file format".to_string()));
        }
        if magic == SHB {
            let mut r = StdinReader {
                stream,
                format: Format::Pcapng {
                    big_endian: false,
                    interfaces: Vec::new(),
                },
                link: -1,
                leading: Vec::new(),
            };
            r.read_prefix()?;
            return Ok(r);
        }
        if !matches!(stream.fill(PCAP_HEADER, -1).map_err(read)?, Fill::Ready) {
            return Err(short("file header"));
        }
        let header = parse_pcap_header(stream.available())
            .map(|(_, h)| h)
            .map_err(|_| OpenError::NotACapture("unknown file format".to_string()))?;
        if header.is_modified_format() || header.version_major != 2 {
            return Err(OpenError::NotACapture(format!(
                "pcap version {}.{} is not read from stdin; save it to a file and use -r FILE",
                header.version_major, header.version_minor
            )));
        }
        stream.consume(PCAP_HEADER);
        Ok(StdinReader {
            stream,
            format: Format::Pcap {
                big_endian: header.is_bigendian(),
                nanos: header.is_nanosecond_precision(),
                snaplen: match header.snaplen {
                    0 => MAX_CAPLEN,
                    n => n.min(MAX_CAPLEN),
                },
                swapped_lengths: header.version_minor < 3,
            },
            link: header.network.0,
            leading: Vec::new(),
        })
    }

    /// A pcapng's blocks up to its first packet: the interfaces (at least
    /// one, whatever the wait) and secrets that come first, as
    /// `editcap --inject-secrets` writes them.
    fn read_prefix(&mut self) -> Result<(), OpenError> {
        loop {
            let wait = if self.link < 0 { -1 } else { QUIET_MS };
            if !matches!(
                self.stream
                    .fill(8, wait)
                    .map_err(|e| OpenError::Read(e.to_string()))?,
                Fill::Ready
            ) {
                if self.link < 0 {
                    return Err(OpenError::NotACapture(
                        "the pcapng ends before describing an interface".to_string(),
                    ));
                }
                return Ok(());
            }
            let kind = le_or_be(self.stream.available(), 0, self.big_endian());
            if kind == EPB || kind == SPB {
                if self.link < 0 {
                    return Err(OpenError::NotACapture(
                        "a packet comes before any interface description".to_string(),
                    ));
                }
                return Ok(());
            }
            match self.next_block(wait, true) {
                Ok(Found::Secrets { start, end }) => {
                    let text = self.stream.buf.get(start..end).unwrap_or_default();
                    self.leading.push(Zeroizing::new(text.to_vec()));
                }
                Ok(Found::Quiet(_) | Found::End) if self.link >= 0 => return Ok(()),
                Ok(Found::Quiet(_) | Found::End) => {
                    return Err(OpenError::NotACapture(
                        "the pcapng ends before describing an interface".to_string(),
                    ));
                }
                // Not reached: packets are looked for before the block.
                Ok(Found::Packet { .. }) => return Ok(()),
                Err(e) => return Err(OpenError::NotACapture(e)),
            }
        }
    }

    fn big_endian(&self) -> bool {
        match self.format {
            Format::Pcap { big_endian, .. } | Format::Pcapng { big_endian, .. } => big_endian,
        }
    }

    /// The link type of the capture's packets (DLT number).
    pub fn link(&self) -> i32 {
        self.link
    }

    /// The secrets of the Decryption Secrets Blocks before the first
    /// packet (read by `open`), once.
    pub fn take_leading_secrets(&mut self) -> Vec<Zeroizing<Vec<u8>>> {
        std::mem::take(&mut self.leading)
    }

    /// The next packet whose bytes `keep` accepts (the capture filter),
    /// secrets, a quiet pipe, or the end. An `Err` (one line, naming the
    /// byte offset) means the stream is damaged.
    pub fn next_item(&mut self, keep: impl Fn(&[u8]) -> bool) -> Result<Item<'_>, String> {
        let found = loop {
            let found = match self.format {
                Format::Pcap { .. } => self.next_record()?,
                Format::Pcapng { .. } => self.next_block(QUIET_MS, false)?,
            };
            if let Found::Packet { start, end, .. } = found
                && !keep(self.stream.buf.get(start..end).unwrap_or_default())
            {
                continue;
            }
            break found;
        };
        let slice = |start: usize, end: usize| self.stream.buf.get(start..end).unwrap_or_default();
        Ok(match found {
            Found::Packet {
                start,
                end,
                secs,
                micros,
                orig_len,
            } => Item::Packet(Record {
                secs,
                micros,
                data: slice(start, end),
                orig_len,
            }),
            Found::Secrets { start, end } => Item::Secrets(slice(start, end)),
            Found::Quiet(d) => Item::Quiet(d),
            Found::End => Item::End,
        })
    }

    /// Wait for `need` bytes: Ok(None) when they are there, else what to
    /// say instead (a quiet pipe, the end, or a truncation).
    fn want(&mut self, need: usize, wait_ms: i32, what: &str) -> Result<Option<Found>, String> {
        let at = self.stream.offset();
        match self.stream.fill(need, wait_ms) {
            Ok(Fill::Ready) => Ok(None),
            Ok(Fill::Quiet) => Ok(Some(Found::Quiet(self.stream.last_bytes.elapsed()))),
            Ok(Fill::Eof) if self.stream.available().is_empty() => Ok(Some(Found::End)),
            Ok(Fill::Eof) => Err(format!(
                "truncated {what} at byte {at}: it needs {need} bytes, the input ends after {}",
                self.stream.available().len()
            )),
            Err(e) => Err(format!("cannot read stdin at byte {at}: {e}")),
        }
    }

    fn next_record(&mut self) -> Result<Found, String> {
        let Format::Pcap {
            big_endian,
            nanos,
            snaplen,
            swapped_lengths,
        } = self.format
        else {
            return Ok(Found::End);
        };
        if let Some(item) = self.want(RECORD_HEADER, QUIET_MS, "record header")? {
            return Ok(item);
        }
        let at = self.stream.offset();
        let head = self.stream.available();
        let (mut caplen, mut orig_len) = (
            le_or_be(head, 8, big_endian),
            le_or_be(head, 12, big_endian),
        );
        if swapped_lengths && caplen > orig_len {
            std::mem::swap(&mut caplen, &mut orig_len);
        }
        if caplen > MAX_CAPLEN {
            return Err(format!(
                "invalid packet capture length {caplen} at byte {at}, bigger than maximum of {MAX_CAPLEN}"
            ));
        }
        let whole = RECORD_HEADER + caplen as usize;
        if let Some(item) = self.want(whole, QUIET_MS, "record")? {
            return Ok(item);
        }
        let bytes = self.stream.available().get(..whole).unwrap_or_default();
        let parsed = if big_endian {
            parse_pcap_frame_be(bytes)
        } else {
            parse_pcap_frame(bytes)
        };
        let (secs, frac) = match parsed {
            Ok((_, block)) => (i64::from(block.ts_sec), i64::from(block.ts_usec)),
            Err(_) => return Err(format!("damaged record at byte {at}")),
        };
        let start = self.stream.start + RECORD_HEADER;
        let end = start + caplen.min(snaplen) as usize;
        self.stream.consume(whole);
        Ok(Found::Packet {
            start,
            end,
            secs,
            micros: if nanos { frac / 1000 } else { frac },
            orig_len,
        })
    }

    /// The next pcapng block that is a packet or secrets, skipping others.
    /// `prefix`: stop before a packet block, leaving it unread (End).
    fn next_block(&mut self, wait_ms: i32, prefix: bool) -> Result<Found, String> {
        loop {
            if let Some(item) = self.want(12, wait_ms, "block header")? {
                return Ok(item);
            }
            let at = self.stream.offset();
            let head = self.stream.available();
            let kind = le_or_be(head, 0, false);
            let big_endian = if kind == SHB {
                // The byte-order magic follows the length (pcapng §4.1).
                le_or_be(head, 8, false) != 0x1A2B_3C4D
            } else {
                self.big_endian()
            };
            if prefix && matches!(le_or_be(head, 0, big_endian), EPB | SPB) {
                return Ok(Found::End);
            }
            let len = le_or_be(head, 4, big_endian);
            if len < 12 || !len.is_multiple_of(4) || len > MAX_BLOCK {
                return Err(format!(
                    "invalid pcapng block length {len} at byte {at} (a multiple of 4, 12 to {MAX_BLOCK})"
                ));
            }
            if let Some(item) = self.want(len as usize, wait_ms, "pcapng block")? {
                return Ok(item);
            }
            if let Some(found) = self.block(at, len as usize, big_endian)? {
                let (start, end, packet) = found;
                self.stream.consume(len as usize);
                return Ok(match packet {
                    Some((secs, micros, orig_len)) => Found::Packet {
                        start,
                        end,
                        secs,
                        micros,
                        orig_len,
                    },
                    None => Found::Secrets { start, end },
                });
            }
            self.stream.consume(len as usize);
        }
    }

    /// One whole block at the front of the buffer: a packet's or secrets'
    /// byte range in the buffer (and a packet's time and length), or None
    /// for a block that is only remembered (section, interface) or skipped.
    #[allow(clippy::type_complexity)]
    fn block(
        &mut self,
        at: u64,
        len: usize,
        big_endian: bool,
    ) -> Result<Option<(usize, usize, Option<(i64, i64, u32)>)>, String> {
        let base = self.stream.start;
        let bytes = self.stream.available().get(..len).unwrap_or_default();
        // Only the blocks read here are parsed; the rest (name resolution,
        // statistics, custom, ...) are skipped by length, as libpcap does.
        if !matches!(le_or_be(bytes, 0, big_endian), SHB | IDB | EPB | SPB | DSB) {
            return Ok(None);
        }
        let parsed = if le_or_be(bytes, 0, false) == SHB {
            parse_sectionheaderblock(bytes).map(|(r, b)| (r, Block::SectionHeader(b)))
        } else if big_endian {
            parse_block_be(bytes)
        } else {
            parse_block_le(bytes)
        };
        let block = match parsed {
            Ok((_, b)) => b,
            Err(_) => return Err(format!("damaged pcapng block at byte {at}")),
        };
        let Format::Pcapng {
            big_endian: order,
            interfaces,
        } = &mut self.format
        else {
            return Ok(None);
        };
        match block {
            Block::SectionHeader(shb) => {
                *order = shb.big_endian();
                interfaces.clear();
                Ok(None)
            }
            Block::InterfaceDescription(idb) => {
                let link = idb.linktype.0;
                if self.link >= 0 && link != self.link {
                    return Err(format!(
                        "interface at byte {at} has link type {link}, the first had {}; mtlsniff reads one link type per capture",
                        self.link
                    ));
                }
                self.link = link;
                let units = build_ts_resolution(idb.if_tsresol)
                    .filter(|&u| u > 0)
                    .ok_or_else(|| {
                        format!("invalid time resolution {} at byte {at}", idb.if_tsresol)
                    })?;
                interfaces.push(Interface {
                    link,
                    units,
                    offset: idb.if_tsoffset,
                });
                Ok(None)
            }
            Block::EnhancedPacket(epb) => {
                let Some(iface) = interfaces.get(epb.if_id as usize) else {
                    return Err(format!(
                        "packet at byte {at} names interface {} that was never described",
                        epb.if_id
                    ));
                };
                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let secs = iface
                    .offset
                    .saturating_add(i64::try_from(ts / iface.units).unwrap_or(i64::MAX));
                let micros = u128::from(ts % iface.units) * 1_000_000 / u128::from(iface.units);
                let caplen = (epb.caplen as usize)
                    .min(epb.data.len())
                    .min(MAX_CAPLEN as usize);
                let start = base + 28;
                debug_assert_eq!(iface.link, self.link);
                Ok(Some((
                    start,
                    start + caplen,
                    Some((secs, i64::try_from(micros).unwrap_or(0), epb.origlen)),
                )))
            }
            Block::SimplePacket(spb) => {
                if interfaces.is_empty() {
                    return Err(format!("packet at byte {at} comes before any interface"));
                }
                // No timestamp: libpcap reports 0 too.
                let caplen = (spb.origlen as usize)
                    .min(spb.data.len())
                    .min(MAX_CAPLEN as usize);
                Ok(Some((
                    base + 12,
                    base + 12 + caplen,
                    Some((0, 0, spb.origlen)),
                )))
            }
            Block::DecryptionSecrets(dsb) if dsb.secrets_type == SecretsType::TlsKeyLog => {
                let n = (dsb.secrets_len as usize).min(dsb.data.len());
                // Type, length, secrets type, secrets length: 16 bytes.
                Ok(Some((base + 16, base + 16 + n, None)))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// A u32 in the chosen byte order.
    fn w(v: u32, be: bool) -> [u8; 4] {
        if be { v.to_be_bytes() } else { v.to_le_bytes() }
    }

    fn pcap(be: bool, nanos: bool, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let magic = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut f = w(magic, be).to_vec();
        let (major, minor) = if be {
            (2u16.to_be_bytes(), 4u16.to_be_bytes())
        } else {
            (2u16.to_le_bytes(), 4u16.to_le_bytes())
        };
        f.extend(major);
        f.extend(minor);
        f.extend([0; 8]);
        f.extend(w(65535, be));
        f.extend(w(1, be));
        for (secs, frac, data) in records {
            for v in [*secs, *frac, data.len() as u32, data.len() as u32 + 10] {
                f.extend(w(v, be));
            }
            f.extend(*data);
        }
        f
    }

    use crate::capture::pcapng_build::{block, dsb, opt, shb};

    /// An interface of link type 1, snaplen 0, with an if_tsresol option
    /// when asked.
    fn idb(be: bool, tsresol: Option<u8>) -> Vec<u8> {
        let opts: Vec<Vec<u8>> = tsresol.map(|r| opt(9, &[r], be)).into_iter().collect();
        crate::capture::pcapng_build::idb(be, 1, 0, &opts)
    }

    /// A whole packet (captured = original length).
    fn epb(be: bool, iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        crate::capture::pcapng_build::epb(be, iface, ts, data, data.len() as u32)
    }

    /// Everything the reader hands out, as owned values.
    fn read_all(bytes: Vec<u8>) -> (Vec<String>, Result<(), String>) {
        let mut r = match StdinReader::open(std::io::Cursor::new(bytes), None) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Err(format!("{e:?}"))),
        };
        let mut seen: Vec<String> = r
            .take_leading_secrets()
            .iter()
            .map(|t| format!("leading {}", String::from_utf8_lossy(t)))
            .collect();
        loop {
            match r.next_item(|d| d != b"drop") {
                Ok(Item::Packet(p)) => seen.push(format!(
                    "{}.{:06} {} {}",
                    p.secs,
                    p.micros,
                    String::from_utf8_lossy(p.data),
                    p.orig_len
                )),
                Ok(Item::Secrets(t)) => {
                    seen.push(format!("secrets {}", String::from_utf8_lossy(t)))
                }
                Ok(Item::Quiet(_)) => seen.push("quiet".into()),
                Ok(Item::End) => return (seen, Ok(())),
                Err(e) => return (seen, Err(e)),
            }
        }
    }

    #[test]
    fn classic_pcap_in_both_orders_and_precisions() {
        for be in [false, true] {
            for nanos in [false, true] {
                let frac = if nanos { 5_000_000 } else { 5_000 };
                let f = pcap(
                    be,
                    nanos,
                    &[(7, frac, b"abc"), (8, 0, b"drop"), (9, 0, b"xyz")],
                );
                let (seen, end) = read_all(f);
                assert_eq!(end, Ok(()));
                assert_eq!(
                    seen,
                    ["7.005000 abc 13", "9.000000 xyz 13"],
                    "be={be} nanos={nanos}"
                );
            }
        }
    }

    #[test]
    fn pcapng_in_both_orders_with_secrets_and_time_resolutions() {
        for be in [false, true] {
            let mut f = shb(be);
            f.extend(dsb(be, b"CLIENT_RANDOM a b\n"));
            f.extend(idb(be, None));
            f.extend(idb(be, Some(9)));
            f.extend(epb(be, 0, 3_000_001, b"one"));
            f.extend(dsb(be, b"late"));
            f.extend(block(4, b"name resolution, skipped", be));
            f.extend(epb(be, 1, 4_000_002_000, b"two"));
            let (seen, end) = read_all(f);
            assert_eq!(end, Ok(()));
            assert_eq!(
                seen,
                [
                    "leading CLIENT_RANDOM a b\n",
                    "3.000001 one 3",
                    "secrets late",
                    "4.000002 two 3"
                ],
                "be={be}"
            );
        }
    }

    #[test]
    fn damage_names_the_byte_offset() {
        let whole = pcap(false, false, &[(1, 0, b"abcdef")]);
        let (seen, end) = read_all(whole[..whole.len() - 2].to_vec());
        assert!(seen.is_empty());
        let e = end.unwrap_err();
        assert!(e.contains("truncated record at byte 24"), "{e}");

        let mut f = shb(false);
        f.extend(idb(false, None));
        f.extend(epb(false, 3, 0, b"x"));
        let e = read_all(f).1.unwrap_err();
        assert!(e.contains("interface 3 that was never described"), "{e}");

        let mut f = shb(false);
        f.extend(idb(false, None));
        f.extend(w(6, false));
        f.extend(w(13, false));
        f.extend([0; 8]);
        let e = read_all(f).1.unwrap_err();
        assert!(e.contains("invalid pcapng block length 13 at byte"), "{e}");

        let huge = pcap(false, false, &[]);
        let mut f = huge.clone();
        f.extend([0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        let e = read_all(f).1.unwrap_err();
        assert!(e.contains("bigger than maximum"), "{e}");
    }

    #[test]
    fn garbage_and_empty_input_are_not_captures() {
        for bytes in [&b""[..], b"hello, this is text", b"\xd4\xc3\xb2"] {
            let (_, end) = read_all(bytes.to_vec());
            assert!(end.unwrap_err().starts_with("NotACapture"), "{bytes:?}");
        }
    }

    proptest::proptest! {
        /// Any bytes after a valid header: packets, an error or the end,
        /// never a panic, and the buffer never past the largest block.
        #[test]
        fn hostile_streams_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..600), ng: bool) {
            let mut f = if ng { let mut f = shb(false); f.extend(idb(false, Some(6))); f } else { pcap(false, false, &[]) };
            f.extend(tail);
            let _ = read_all(f);
        }
    }
}
