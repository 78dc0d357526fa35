//! Packet sources: the one file that talks to libpcap (the `pcap` crate).
//!
//! It owns opening a file, stdin (`-`) or a live interface, the capture
//! settings (snaplen, kernel buffer, immediate mode, read timeout, BPF
//! filter), the link-type check, kernel statistics, the interface list, and
//! turning libpcap's error strings into one-line messages that say what to
//! do. It must not decode, buffer or make threads: `Capture::read_next` lends one
//! `Frame` borrowed from libpcap's buffer (or, for a pcap or pcapng file,
//! from the file's mapping: `capture/mapped.rs` and `mapped_ng.rs` walk its records in place
//! once libpcap has opened and checked it, and the filter runs on each
//! record through `pcap_offline_filter`), valid until the next call.
//! Stdin (`-r -`) is read by `capture/stdin.rs` instead, which waits for
//! bytes at most `LIVE_TIMEOUT_MS` (`Read::Quiet`) and hands out a pcapng's
//! secrets (`Read::Secrets`); its filter is compiled for its link type on a
//! dead libpcap handle and runs on each record, as for a mapped file.
//! Invariant: a `Capture` that exists has a link type `decode` supports and
//! its filter (if any) installed.

use std::fmt;
use std::fs::File;
use std::io::Seek;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::capture::decode::{self, DecodeCounters, Frame, LinkType};
use crate::capture::mapped::{Mapped, Mapping};
use crate::capture::mapped_ng::{MappedFile, MappedNg};
use crate::capture::segment::{Segment, Timestamp};
use crate::capture::stdin::{self, Item, StdinReader, wait_readable};

/// How long a live read waits before reporting `Read::Timeout`, so idle
/// flows expire, output flushes and a stop request is seen. Also libpcap's
/// buffer timeout. We poll ourselves because on Linux (TPACKET_V3) libpcap's
/// own timeout never fires while no packet arrives.
pub const LIVE_TIMEOUT_MS: i32 = 250;

/// Settings for opening a source.
#[derive(Debug, Clone)]
pub struct Options {
    /// Live only: bytes kept per packet.
    pub snaplen: u32,
    /// Live only: kernel buffer in bytes; None keeps libpcap's default.
    pub buffer_bytes: Option<u32>,
    /// Live only: deliver each packet as it arrives (interactive use).
    pub immediate: bool,
    /// pcap-filter(7) expression, for files and live alike.
    pub filter: Option<String>,
}

/// Why a source could not be opened or read. `Display` is one line that
/// says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureError {
    NoSuchInterface { name: String },
    Permission { name: String, detail: String },
    OpenInterface { name: String, detail: String },
    OpenFile { path: PathBuf, detail: String },
    NotACapture { path: PathBuf, detail: String },
    Filter { expr: String, detail: String },
    UnsupportedLink { link: LinkType },
    Read { detail: String, live: bool },
    ListInterfaces { detail: String },
}

fn display_path(p: &Path) -> String {
    if p == Path::new("-") {
        "stdin".to_string()
    } else {
        p.display().to_string()
    }
}

/// A link type's name: decode's for the ones it reads, else libpcap's
/// (`pcap_datalink_val_to_name`: `PPP`, `SLIP`, `FRELAY`, ...), else
/// `DLT` and the number when libpcap has no name for it either.
pub fn link_name(link: LinkType) -> String {
    if link.is_supported() {
        return link.name().to_string();
    }
    pcap::Linktype(link.0)
        .get_name()
        .unwrap_or_else(|_| format!("DLT {}", link.0))
}

/// Link types `decode` understands, as `NAME (number)`, for messages.
pub fn supported_links() -> String {
    let names: Vec<String> = (0..=300)
        .map(LinkType)
        .filter(|l| l.is_supported())
        .map(|l| format!("{} ({})", l.name(), l.0))
        .collect();
    if names.is_empty() {
        "none yet".to_string()
    } else {
        names.join(", ")
    }
}

/// Keep libpcap's text to one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::NoSuchInterface { name } => write!(
                f,
                "no interface named {name:?}; list the interfaces with `mtlsniff -D` (or use -i any)"
            ),
            CaptureError::Permission { name, detail } => write!(
                f,
                "no permission to capture on {name} ({}): live capture needs CAP_NET_RAW; run with sudo, \
                 or `setcap cap_net_raw+ep $(which mtlsniff)`, or in Kubernetes `kubectl debug --profile=netadmin`",
                one_line(detail)
            ),
            CaptureError::OpenInterface { name, detail } => {
                write!(f, "cannot capture on {name}: {}", one_line(detail))
            }
            CaptureError::OpenFile { path, detail } => write!(
                f,
                "cannot read {}: {}; check the path given to -r",
                display_path(path),
                one_line(detail)
            ),
            CaptureError::NotACapture { path, detail } => write!(
                f,
                "{} is not a pcap or pcapng capture ({}); give a file written by tcpdump -w or Wireshark",
                display_path(path),
                one_line(detail)
            ),
            CaptureError::Filter { expr, detail } => write!(
                f,
                "bad capture filter {expr:?}: {}; see pcap-filter(7), and quote the expression",
                one_line(detail)
            ),
            CaptureError::UnsupportedLink { link } => write!(
                f,
                "unsupported link type {} ({}); mtlsniff decodes {}",
                link_name(*link),
                link.0,
                supported_links()
            ),
            CaptureError::Read {
                detail,
                live: false,
            } => write!(
                f,
                "error reading packets: {}; the capture is damaged or truncated (what came before was reported)",
                one_line(detail)
            ),
            CaptureError::Read { detail, live: true } => write!(
                f,
                "live capture stopped: {}; check that the interface is still up",
                one_line(detail)
            ),
            CaptureError::ListInterfaces { detail } => {
                write!(f, "cannot list interfaces: {}", one_line(detail))
            }
        }
    }
}

impl std::error::Error for CaptureError {}

fn pcap_text(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    }
}

/// libpcap kernel counters (pcap_stats), live only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// One read from a source.
#[derive(Debug)]
pub enum Read<'a> {
    Frame(Frame<'a>),
    /// Live only: libpcap's buffer is empty; the next call waits up to
    /// `LIVE_TIMEOUT_MS` for packets. Just call again.
    Drained,
    /// Live only: no packet arrived within `LIVE_TIMEOUT_MS` (or a signal
    /// interrupted the wait).
    Timeout,
    /// Stdin only: no whole record within `LIVE_TIMEOUT_MS`; no byte has
    /// arrived for this long.
    Quiet(Duration),
    /// Stdin only: the TLS key log text of a pcapng Decryption Secrets
    /// Block met after the first packet.
    Secrets(&'a [u8]),
    /// End of file.
    End,
}

enum Handle {
    Live(pcap::Capture<pcap::Active>),
    File(pcap::Capture<pcap::Offline>),
    /// A pcap or pcapng file walked in place; the filter, compiled by the
    /// libpcap handle that opened the file, runs on each record.
    Mapped {
        records: MappedFile,
        filter: Option<pcap::BpfProgram>,
    },
    /// Stdin, read as its bytes arrive.
    Stdin {
        reader: Box<StdinReader>,
        filter: Option<pcap::BpfProgram>,
    },
}

/// Where the offset of a progress bar comes from.
#[derive(Debug)]
enum Offset {
    /// A duplicate of libpcap's file descriptor, which shares its file
    /// offset (ahead of the packets by at most libpcap's stdio buffer).
    Shared(File),
    /// The mapped reader's position.
    Mapped(Arc<AtomicU64>),
}

/// How far reading has got into a capture file, for a progress bar.
#[derive(Debug)]
pub struct InputProbe {
    offset: Offset,
    size: u64,
}

impl InputProbe {
    /// Bytes read so far (0 if the kernel cannot say).
    pub fn offset(&self) -> u64 {
        match &self.offset {
            // `Seek for &File`: SEEK_CUR by 0 reads the shared offset, moves nothing.
            Offset::Shared(file) => {
                let mut f: &File = file;
                f.stream_position().unwrap_or(0)
            }
            Offset::Mapped(pos) => pos.load(Ordering::Relaxed),
        }
    }
    /// The file's size when it was opened.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// An open, filtered packet source.
pub struct Capture {
    handle: Handle,
    /// Regular files only: how far reading got.
    probe: Option<InputProbe>,
    link: LinkType,
    /// Live: the last read found libpcap's buffer empty; wait before the next.
    drained: bool,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("live", &self.is_live())
            .field("link", &self.link)
            .finish()
    }
}

impl Capture {
    /// Open `source`, install the filter, check the link type.
    pub fn open(source: &Source, opts: &Options) -> Result<Capture, CaptureError> {
        let (handle, probe) = match source {
            Source::File(path) if path == Path::new("-") => {
                return open_stdin(opts.filter.as_deref());
            }
            Source::File(path) => {
                if let Some(cap) = open_unread(path, opts.filter.as_deref())? {
                    return Ok(cap);
                }
                let (c, probe) = open_file(path)?;
                (Handle::File(c), probe)
            }
            Source::Live(name) => (Handle::Live(open_live(name, opts)?), None),
        };
        let mut cap = Capture {
            handle,
            probe,
            link: LinkType(0),
            drained: false,
        };
        if let Some(expr) = &opts.filter {
            let res = match &mut cap.handle {
                Handle::Live(c) => c.filter(expr, true),
                Handle::File(c) => c.filter(expr, true),
                Handle::Mapped { .. } | Handle::Stdin { .. } => Ok(()),
            };
            res.map_err(|e| CaptureError::Filter {
                expr: expr.clone(),
                detail: pcap_text(&e),
            })?;
        }
        let link = match &cap.handle {
            Handle::Live(c) => c.get_datalink(),
            Handle::File(c) => c.get_datalink(),
            Handle::Mapped { .. } | Handle::Stdin { .. } => pcap::Linktype(0),
        };
        cap.link = LinkType(link.0);
        if !cap.link.is_supported() {
            return Err(CaptureError::UnsupportedLink { link: cap.link });
        }
        if let Source::File(path) = source {
            cap.map_file(path, opts.filter.as_deref())?;
        }
        Ok(cap)
    }

    /// A regular pcap or pcapng file that libpcap opened and checked (link
    /// type, filter): read its records from a mapping instead, with the
    /// filter libpcap compiled for it. Anything the mapped reader declines
    /// stays with libpcap.
    fn map_file(&mut self, path: &Path, filter: Option<&str>) -> Result<(), CaptureError> {
        let Handle::File(c) = &self.handle else {
            return Ok(());
        };
        let Some(size) = self.probe.as_ref().map(|p| p.size) else {
            return Ok(()); // stdin, or not a regular file
        };
        let link = self.link;
        let Some(records) = File::open(path)
            .ok()
            .and_then(|f| MappedFile::open(&f, link))
        else {
            return Ok(());
        };
        let filter = match filter {
            Some(expr) => Some(c.compile(expr, true).map_err(|e| CaptureError::Filter {
                expr: expr.to_string(),
                detail: pcap_text(&e),
            })?),
            None => None,
        };
        self.probe = Some(InputProbe {
            offset: Offset::Mapped(records.progress()),
            size,
        });
        self.handle = Handle::Mapped { records, filter };
        Ok(())
    }

    /// A live capture's socket (libpcap's), for `fanout` to join a group.
    pub fn raw_fd(&self) -> Option<RawFd> {
        match &self.handle {
            Handle::Live(c) => Some(c.as_raw_fd()),
            _ => None,
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self.handle, Handle::Live(_))
    }

    /// A reader of how far this file has been read (another duplicate of
    /// its descriptor); None for stdin, live capture, or when the system
    /// refuses a duplicate.
    pub fn input_probe(&self) -> Option<InputProbe> {
        let p = self.probe.as_ref()?;
        let offset = match &p.offset {
            Offset::Shared(file) => Offset::Shared(file.try_clone().ok()?),
            Offset::Mapped(pos) => Offset::Mapped(Arc::clone(pos)),
        };
        Some(InputProbe {
            offset,
            size: p.size,
        })
    }

    /// A mapped file's bytes, which frames (and their payloads) borrow
    /// from; None when frames come from libpcap's buffer.
    pub fn mapping(&self) -> Option<Mapping> {
        match &self.handle {
            Handle::Mapped { records, .. } => Some(records.mapping()),
            _ => None,
        }
    }

    /// Walk mode (`pipeline/walk.rs`): another walk over a mapped file's
    /// records, from the first, and the link type of its frames. None when
    /// the records do not come from a mapping or a filter is installed
    /// (its compiled program cannot be shared between threads).
    pub fn walk_again(&self) -> Option<(Mapped, LinkType)> {
        match &self.handle {
            Handle::Mapped {
                records: MappedFile::Pcap(records),
                filter: None,
            } => Some((records.restart(), self.link)),
            _ => None,
        }
    }

    /// Walk mode's walker 0: the capture's own walk of a mapped classic
    /// pcap file without a filter (its offset is the one `input_probe`
    /// reads), the capture given up for it; the capture back otherwise.
    pub fn into_walk(self) -> Result<(Mapped, LinkType), Box<Capture>> {
        match self.handle {
            Handle::Mapped {
                records: MappedFile::Pcap(records),
                filter: None,
            } => Ok((records, self.link)),
            handle => Err(Box::new(Capture { handle, ..self })),
        }
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Stdin only: the TLS key log text of the pcapng Decryption Secrets
    /// Blocks before its first packet (read at open, so the run's key log
    /// and memory plan include them), once.
    pub fn take_leading_secrets(&mut self) -> Vec<zeroize::Zeroizing<Vec<u8>>> {
        match &mut self.handle {
            Handle::Stdin { reader, .. } => reader.take_leading_secrets(),
            _ => Vec::new(),
        }
    }

    /// The next frame, a live timeout, or the end of the file. An `Err`
    /// ends the run (a truncated file, an interface that went away).
    pub fn read_next(&mut self) -> Result<Read<'_>, CaptureError> {
        let link = self.link;
        let live = self.is_live();
        let res = match &mut self.handle {
            Handle::Live(c) => {
                if self.drained {
                    if !wait_readable(c.as_raw_fd(), LIVE_TIMEOUT_MS) {
                        return Ok(Read::Timeout);
                    }
                    self.drained = false;
                }
                match c.next_packet() {
                    // Non-blocking: "timeout" means the buffer is empty.
                    Err(pcap::Error::TimeoutExpired) => {
                        self.drained = true;
                        return Ok(Read::Drained);
                    }
                    other => other,
                }
            }
            Handle::File(c) => c.next_packet(),
            Handle::Mapped { records, filter } => {
                return read_mapped(records, filter.as_ref(), link);
            }
            Handle::Stdin { reader, filter } => {
                return read_stdin(reader, filter.as_ref(), link);
            }
        };
        match res {
            Ok(p) => Ok(Read::Frame(Frame {
                ts: Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec),
                link,
                data: p.data,
                orig_len: p.header.len,
            })),
            Err(pcap::Error::TimeoutExpired) => Ok(Read::Timeout),
            Err(pcap::Error::NoMorePackets) => Ok(Read::End),
            Err(e) => Err(CaptureError::Read {
                detail: pcap_text(&e),
                live,
            }),
        }
    }

    /// Kernel counters so far; None for files or when libpcap cannot say.
    pub fn stats(&mut self) -> Option<KernelStats> {
        match &mut self.handle {
            Handle::Live(c) => c.stats().ok().map(|s| KernelStats {
                received: u64::from(s.received),
                dropped: u64::from(s.dropped),
                if_dropped: u64::from(s.if_dropped),
            }),
            Handle::File(_) | Handle::Mapped { .. } | Handle::Stdin { .. } => None,
        }
    }
}

/// Stdin's capture, read by `capture/stdin.rs`; the filter compiled for
/// its link type on a dead libpcap handle.
fn open_stdin(filter: Option<&str>) -> Result<Capture, CaptureError> {
    let path = PathBuf::from("-");
    let reader = StdinReader::open_stdin().map_err(|e| match e {
        stdin::OpenError::NotACapture(detail) => CaptureError::NotACapture {
            path: path.clone(),
            detail,
        },
        stdin::OpenError::Read(detail) => CaptureError::OpenFile {
            path: path.clone(),
            detail,
        },
    })?;
    let link = LinkType(reader.link());
    if !link.is_supported() {
        return Err(CaptureError::UnsupportedLink { link });
    }
    let filter = dead_filter(filter, link)?;
    Ok(Capture {
        handle: Handle::Stdin {
            reader: Box::new(reader),
            filter,
        },
        probe: None,
        link,
        drained: false,
    })
}

/// `filter` compiled for `link` on a dead libpcap handle (no capture to
/// compile it on).
fn dead_filter(
    filter: Option<&str>,
    link: LinkType,
) -> Result<Option<pcap::BpfProgram>, CaptureError> {
    let Some(expr) = filter else {
        return Ok(None);
    };
    let bad = |e: pcap::Error| CaptureError::Filter {
        expr: expr.to_string(),
        detail: pcap_text(&e),
    };
    let dead = pcap::Capture::dead(pcap::Linktype(link.0)).map_err(bad)?;
    Ok(Some(dead.compile(expr, true).map_err(bad)?))
}

/// A regular pcapng file walked in place without libpcap reading it
/// first (`MappedNg::open_unread`: libpcap would hold every block before
/// the first interface whole, a large Decryption Secrets Block too); its
/// filter compiled on a dead handle, as stdin's is. None when the walker
/// declines the file: libpcap opens it (and `map_file` may map it after).
fn open_unread(path: &Path, filter: Option<&str>) -> Result<Option<Capture>, CaptureError> {
    let regular = path != Path::new("-") && std::fs::metadata(path).is_ok_and(|m| m.is_file());
    let Some(file) = File::open(path).ok().filter(|_| regular) else {
        return Ok(None);
    };
    let Some((walk, link)) = MappedNg::open_unread(&file) else {
        return Ok(None);
    };
    let size = file.metadata().map_or(0, |m| m.len());
    Ok(Some(Capture {
        probe: Some(InputProbe {
            offset: Offset::Mapped(walk.progress()),
            size,
        }),
        handle: Handle::Mapped {
            records: MappedFile::Pcapng(walk),
            filter: dead_filter(filter, link)?,
        },
        link,
        drained: false,
    }))
}

/// The next packet from stdin that passes the filter, or what came instead.
fn read_stdin<'a>(
    reader: &'a mut StdinReader,
    filter: Option<&pcap::BpfProgram>,
    link: LinkType,
) -> Result<Read<'a>, CaptureError> {
    let keep = |data: &[u8]| filter.is_none_or(|f| f.filter(data));
    let item = reader
        .next_item(keep)
        .map_err(|detail| CaptureError::Read {
            detail,
            live: false,
        })?;
    Ok(match item {
        Item::Packet(r) => Read::Frame(r.frame(link)),
        Item::Secrets(text) => Read::Secrets(text),
        Item::Quiet(quiet) => Read::Quiet(quiet),
        Item::End => Read::End,
    })
}

/// The next record of a mapped file that passes the filter.
fn read_mapped<'a>(
    records: &'a mut MappedFile,
    filter: Option<&pcap::BpfProgram>,
    link: LinkType,
) -> Result<Read<'a>, CaptureError> {
    // pcap_offline_filter: the crate passes the captured length as the
    // wire length too, which only `len`-based filters (`greater`, `less`)
    // on snaplen-cut records could notice.
    let keep = |data: &[u8]| filter.is_none_or(|f| f.filter(data));
    let record = records
        .next_record(keep)
        .map_err(|detail| CaptureError::Read {
            detail,
            live: false,
        })?;
    Ok(match record {
        Some(r) => Read::Frame(r.frame(link)),
        None => Read::End,
    })
}

/// Open a regular file ourselves so a duplicate descriptor can follow
/// libpcap's offset (`InputProbe`); stdin, and anything that fails here,
/// goes through libpcap's own open, whose errors are the ones users see.
fn open_file(
    path: &Path,
) -> Result<(pcap::Capture<pcap::Offline>, Option<InputProbe>), CaptureError> {
    let regular = path != Path::new("-") && std::fs::metadata(path).is_ok_and(|m| m.is_file());
    if regular
        && let Ok(file) = File::open(path)
        && let Ok(probe) = file.try_clone()
    {
        let size = file.metadata().map_or(0, |m| m.len());
        let fd = file.into_raw_fd();
        // SAFETY: `fd` was opened just above and released by `into_raw_fd`,
        // so libpcap's FILE becomes its sole owner (and closes it); `probe`
        // is a separate descriptor that only shares the file offset.
        if let Ok(c) = unsafe { pcap::Capture::from_raw_fd(fd) } {
            let offset = Offset::Shared(probe);
            return Ok((c, Some(InputProbe { offset, size })));
        }
    }
    open_file_by_path(path).map(|c| (c, None))
}

fn open_file_by_path(path: &Path) -> Result<pcap::Capture<pcap::Offline>, CaptureError> {
    pcap::Capture::from_file(path).map_err(|e| {
        let mut detail = pcap_text(&e);
        // libpcap prefixes the path; the message names it already.
        if let Some(rest) = detail.strip_prefix(&format!("{}: ", path.display())) {
            detail = rest.to_string();
        }
        // libpcap reads the header first: a file it can open but not parse
        // says so ("unknown file format", "truncated dump file", ...).
        let opened = path == Path::new("-") || std::fs::metadata(path).is_ok_and(|m| m.is_file());
        if opened {
            CaptureError::NotACapture {
                path: path.to_path_buf(),
                detail,
            }
        } else {
            CaptureError::OpenFile {
                path: path.to_path_buf(),
                detail,
            }
        }
    })
}

fn open_live(name: &str, opts: &Options) -> Result<pcap::Capture<pcap::Active>, CaptureError> {
    let classify = |e: pcap::Error| {
        let detail = pcap_text(&e);
        let lower = detail.to_ascii_lowercase();
        if lower.contains("permission") || lower.contains("not permitted") {
            CaptureError::Permission {
                name: name.to_string(),
                detail,
            }
        } else if lower.contains("no such device")
            || pcap::Device::list().is_ok_and(|l| !l.iter().any(|d| d.name == name))
        {
            CaptureError::NoSuchInterface {
                name: name.to_string(),
            }
        } else {
            CaptureError::OpenInterface {
                name: name.to_string(),
                detail,
            }
        }
    };
    let snaplen = i32::try_from(opts.snaplen).unwrap_or(i32::MAX);
    let mut inactive = pcap::Capture::from_device(name)
        .map_err(classify)?
        .snaplen(snaplen)
        .promisc(true)
        .immediate_mode(opts.immediate)
        .timeout(LIVE_TIMEOUT_MS);
    if let Some(bytes) = opts.buffer_bytes {
        inactive = inactive.buffer_size(i32::try_from(bytes).unwrap_or(i32::MAX));
    }
    inactive
        .open()
        .map_err(classify)?
        .setnonblock()
        .map_err(|e| CaptureError::OpenInterface {
            name: name.to_string(),
            detail: pcap_text(&e),
        })
}

/// One interface, as `-D` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub description: Option<String>,
    /// e.g. `Up`, `Running`, `Loopback`, `Wireless`.
    pub flags: Vec<&'static str>,
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(d) = &self.description {
            write!(f, " ({})", one_line(d))?;
        }
        if !self.flags.is_empty() {
            write!(f, " [{}]", self.flags.join(", "))?;
        }
        Ok(())
    }
}

/// The interfaces libpcap can capture on (`-D`).
/// Every TCP segment of a capture file, in file order, and the decode
/// counters. Reading stops at the end of the file or at a damaged record, as
/// `-r` does. For tests, benchmarks and fuzz seeds, which drive the engine
/// in-process; the binary streams instead.
pub fn file_segments(path: &Path) -> Result<(Vec<Segment>, DecodeCounters), CaptureError> {
    let source = Source::File(path.to_path_buf());
    let options = Options {
        snaplen: 0,
        buffer_bytes: None,
        immediate: false,
        filter: None,
    };
    let mut capture = Capture::open(&source, &options)?;
    let mut counters = DecodeCounters::default();
    let mut segments = Vec::new();
    loop {
        match capture.read_next() {
            Ok(Read::Frame(frame)) => segments.extend(decode::decode(&frame, &mut counters)),
            Ok(Read::Drained | Read::Timeout | Read::Quiet(_) | Read::Secrets(_)) => {}
            Ok(Read::End) | Err(_) => break,
        }
    }
    Ok((segments, counters))
}

pub fn list_interfaces() -> Result<Vec<Interface>, CaptureError> {
    let devices = pcap::Device::list().map_err(|e| CaptureError::ListInterfaces {
        detail: pcap_text(&e),
    })?;
    Ok(devices
        .into_iter()
        .map(|d| {
            let mut flags = Vec::new();
            if d.flags.is_up() {
                flags.push("Up");
            }
            if d.flags.is_running() {
                flags.push("Running");
            }
            if d.flags.is_loopback() {
                flags.push("Loopback");
            }
            if d.flags.is_wireless() {
                flags.push("Wireless");
            }
            Interface {
                name: d.name,
                description: d.desc,
                flags,
            }
        })
        .collect())
}

/// Where packets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A pcap / pcapng file; the path `-` is stdin (libpcap's convention).
    File(PathBuf),
    /// A live interface by name.
    Live(String),
}

impl Source {
    pub fn is_live(&self) -> bool {
        matches!(self, Source::Live(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            snaplen: 262_144,
            buffer_bytes: None,
            immediate: false,
            filter: None,
        }
    }

    #[test]
    fn missing_file_says_check_the_path() {
        let err = Capture::open(&Source::File("/nonexistent/x.pcap".into()), &opts()).unwrap_err();
        assert!(matches!(err, CaptureError::OpenFile { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/x.pcap") && !msg.contains('\n'),
            "{msg}"
        );
    }

    #[test]
    fn non_pcap_file_is_named() {
        let path =
            std::env::temp_dir().join(format!("mtlsniff-capture-{}.txt", std::process::id()));
        std::fs::write(&path, b"this is not a capture file at all, just text\n").unwrap();
        let err = Capture::open(&Source::File(path.clone()), &opts()).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(matches!(err, CaptureError::NotACapture { .. }), "{err:?}");
        assert!(err.to_string().contains("not a pcap or pcapng"));
    }

    #[test]
    fn messages_are_one_line_and_actionable() {
        let cases = [
            CaptureError::NoSuchInterface {
                name: "eth9".into(),
            },
            CaptureError::Permission {
                name: "eth0".into(),
                detail: "socket: Operation\nnot permitted".into(),
            },
            CaptureError::Filter {
                expr: "port".into(),
                detail: "syntax error".into(),
            },
            CaptureError::UnsupportedLink {
                link: LinkType(147),
            },
        ];
        let needles = ["-D", "CAP_NET_RAW", "syntax error", "(147)"];
        for (e, needle) in cases.iter().zip(needles) {
            let m = e.to_string();
            assert!(!m.contains('\n'), "{m}");
            assert!(m.contains(needle), "{m} lacks {needle}");
        }
    }

    #[test]
    fn unsupported_link_types_are_named_as_libpcap_names_them() {
        for (n, name) in [(9, "PPP"), (8, "SLIP"), (107, "FRELAY"), (50, "PPP_SERIAL")] {
            assert_eq!(link_name(LinkType(n)), name, "DLT {n}");
            let m = CaptureError::UnsupportedLink { link: LinkType(n) }.to_string();
            assert!(
                m.starts_with(&format!("unsupported link type {name} ({n});")),
                "{m}"
            );
            assert!(!m.contains("UNKNOWN"), "{m}");
        }
        assert_eq!(link_name(LinkType::LINUX_SLL2), "LINUX_SLL2");
        assert_eq!(link_name(LinkType(12)), "RAW");
        assert_eq!(link_name(LinkType(65_000)), "DLT 65000");
    }

    #[test]
    fn interface_display() {
        let i = Interface {
            name: "eth0".into(),
            description: None,
            flags: vec!["Up", "Running"],
        };
        assert_eq!(i.to_string(), "eth0 [Up, Running]");
    }
}
