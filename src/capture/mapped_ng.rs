//! Reading a pcapng file in place, as `mapped` reads a classic pcap file:
//! the file is mapped into memory (memmap2) and its blocks are walked
//! where they lie, so a packet is a slice of the mapping and no byte is
//! copied; pcap-parser reads the interface options. Also `MappedFile`,
//! the one type `source` holds for either format.
//!
//! It must not decide what a file is: `source` opens every file with
//! libpcap first, and only a file libpcap opened as pcapng (its first
//! Section Header Block and first Interface Description Block checked,
//! the capture's link type set) is walked here. The walk is libpcap's
//! (`sf-pcapng.c`, `pcap_ng_next_packet`), rule for rule, so a file gives
//! the same packets, times and errors by either reader: blocks framed and
//! checked as `read_block` does (length, multiple of 4, 16 MiB at most,
//! trailer), Enhanced, Simple and obsolete Packet Blocks read; every
//! further Interface Description Block must have the first one's link
//! type and snapshot length (libpcap stops there: no packet of another
//! link type is ever read), and brings its own time resolution
//! (`if_tsresol`) and offset (`if_tsoffset`), applied as libpcap applies
//! them; a new section (same byte order only) forgets the interfaces;
//! every other block (name resolution, statistics, Decryption Secrets,
//! custom, unknown) is skipped by its length without being read. A
//! Decryption Secrets Block's text is read once, before the run, by the
//! key log (`tls::keylog`, in chunks); the walk never touches its pages.
//! Damage ends the walk with libpcap's own words and the block's byte
//! offset. Two departures, both declines or limits: a big-endian file of
//! NFLOG frames stays with libpcap (it rewrites their TLV headers to host
//! order in its buffer, which a read-only mapping cannot), and at most
//! `MAX_INTERFACES` interfaces are remembered per section (libpcap has no
//! limit; past it the walk ends, said). Invariant: `pos` is always a block
//! boundary inside the mapping, and the progress offset published is
//! `pos`. Which pages of the file are resident is `window`'s, as for `mapped`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;
use pcap_parser::PcapError;
use pcap_parser::pcapng::{parse_option_be, parse_option_le};

use crate::capture::decode::LinkType;
use crate::capture::mapped::{At, MAX_CAPLEN, Mapped, Mapping, Record, Walk};
use crate::capture::window::Window;

/// pcapng block types (pcapng §4): the Section Header Block's reads the
/// same in both byte orders.
const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
/// The obsolete Packet Block, which libpcap still reads.
const PB: u32 = 0x0000_0002;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// libpcap's largest block (`INITIAL_MAX_BLOCKSIZE`; the per-link-type
/// maximum is smaller for every link type `decode` reads).
const MAX_BLOCK: u32 = 16 << 20;
/// Interfaces remembered per section: each costs 24 bytes, so a file of
/// nothing but Interface Description Blocks cannot grow memory unbounded.
pub const MAX_INTERFACES: usize = 65_536;
/// Times come out in microseconds (libpcap's `user_tsresol` for a file
/// opened at microsecond precision, as the pcap crate opens it).
const USER_TSRESOL: u64 = 1_000_000;
/// The IDB options libpcap reads (pcapng §4.2).
const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// How an interface's fractions of a second become microseconds
/// (libpcap's `scale_type`).
#[derive(Debug, Clone, Copy)]
enum Scale {
    Same,
    /// Decimal, coarser than microseconds: multiply.
    UpDec(u64),
    /// Decimal, finer: divide.
    DownDec(u64),
    /// Binary: times a million, over the resolution (wrapping, as libpcap's
    /// 64-bit arithmetic does).
    Bin,
}

/// One interface of the current section.
#[derive(Debug, Clone, Copy)]
struct Interface {
    /// Timestamp units per second (`if_tsresol`).
    tsresol: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    tsoffset: i64,
    scale: Scale,
}

/// A packet block's fixed fields, in the block's order.
struct Packet {
    iface: u32,
    ts: u64,
    caplen: u32,
    len: u32,
    /// Where its data starts in the block body.
    data_at: usize,
}

/// A mapped pcapng file and the walk through its blocks.
pub struct MappedNg {
    map: Arc<Mmap>,
    pos: usize,
    /// Pages mapped in ahead of the walk, released behind it.
    window: Window,
    big_endian: bool,
    /// The capture's link type as libpcap reports it (`pcap_datalink`).
    link: i32,
    /// The first interface's snapshot length, adjusted as libpcap adjusts
    /// it; None before the first Interface Description Block.
    snapshot: Option<u32>,
    interfaces: Vec<Interface>,
    /// `pos`, for a progress bar on another thread.
    progress: Arc<AtomicU64>,
}

impl std::fmt::Debug for MappedNg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedNg")
            .field("len", &self.map.len())
            .field("pos", &self.pos)
            .finish()
    }
}

/// libpcap's `pcap_adjust_snapshot` for the link types `decode` reads: 0
/// or past `INT_MAX` means their maximum; anything else stays (libpcap
/// does not clamp a large snapshot length here, unlike in classic pcap).
fn adjust_snapshot(snaplen: u32) -> u32 {
    if snaplen == 0 || snaplen > i32::MAX as u32 {
        MAX_CAPLEN
    } else {
        snaplen
    }
}

/// The 32-bit word at `at` in a file's byte order (0 past the end: the
/// callers check lengths first). `mapped::le_or_be`, inlined here: every
/// block reads three or more, and a call each costs the walk ~20%.
#[inline(always)]
fn word(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
    let b: [u8; 4] = bytes
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .unwrap_or_default();
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// libpcap's words for a block shorter than its fixed part.
fn too_short(kind: u32) -> String {
    format!("block of type {kind} in pcapng dump file is too short")
}

impl MappedNg {
    /// Map `file`, a pcapng file libpcap opened with link type `link`;
    /// None when it is not one this walker reads (libpcap reads it instead).
    pub fn open(file: &File, link: LinkType) -> Option<MappedNg> {
        // SAFETY: as in `Mapped::open`: read-only, private to this reader;
        // a file truncated under us may raise SIGBUS as for any mapping.
        let map = unsafe { Mmap::map(file) }.ok()?;
        if word(&map, 0, false) != SHB {
            return None;
        }
        let big_endian = match word(&map, 8, false) {
            BYTE_ORDER_MAGIC => false,
            m if m.swap_bytes() == BYTE_ORDER_MAGIC => true,
            _ => return None,
        };
        if big_endian && link == LinkType::NFLOG {
            return None;
        }
        // libpcap read the first section header whole at open, checking
        // only its length's range: the walk starts after it.
        let first = word(&map, 4, big_endian) as usize;
        if first < 12 || first > map.len() {
            return None;
        }
        #[cfg(unix)]
        {
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Some(MappedNg {
            map: Arc::new(map),
            pos: first,
            window: Window::default(),
            big_endian,
            link: link.0,
            snapshot: None,
            interfaces: Vec::new(),
            progress: Arc::new(AtomicU64::new(first as u64)),
        })
    }

    /// Map `file` and check what libpcap checks when it opens a pcapng
    /// file (`pcap_ng_check_header`: the first section header, then every
    /// block up to the first interface), without libpcap reading it: it
    /// would read each of those blocks whole into its buffer, a Decryption
    /// Secrets Block of many megabytes too, and keep that buffer. Some
    /// (with the link type libpcap would report) only for a file libpcap
    /// opens and this walker reads, of a link type `decode` reads; None
    /// for anything else, which libpcap then opens and judges as before.
    pub fn open_unread(file: &File) -> Option<(MappedNg, LinkType)> {
        let mut walk = MappedNg::open(file, LinkType(-1))?;
        let first = walk.pos;
        // libpcap's bounds for the first section header (28 bytes up to
        // `BT_SHB_INSANE_MAX`, 1 MiB) and its versions, 1.0 and 1.2.
        let version = (walk.half(&walk.map, 12), walk.half(&walk.map, 14));
        if !(28..=1 << 20).contains(&first) || !matches!(version, (1, 0 | 2)) {
            return None;
        }
        let body = loop {
            match walk.frame() {
                Ok(Some((IDB, body))) => break body,
                Ok(Some((EPB | SPB | PB, _))) | Ok(None) | Err(_) => return None,
                Ok(Some(_)) => {}
            }
        };
        let map = Arc::clone(&walk.map);
        let idb = map.get(body).unwrap_or_default();
        // libpcap's `linktype_to_dlt` for the link types `decode` reads:
        // LINKTYPE_RAW is DLT_RAW (12 on Linux), the rest are their DLTs.
        let link = match walk.half(idb, 0) {
            101 => LinkType::RAW_DLT12,
            n => LinkType(i32::from(n)),
        };
        if !link.is_supported() || (walk.big_endian && link == LinkType::NFLOG) {
            return None;
        }
        walk.link = link.0;
        walk.interface(idb).ok()?;
        // Walk again from after the section header, as `open` does.
        walk.pos = first;
        walk.snapshot = None;
        walk.interfaces.clear();
        walk.progress.store(first as u64, Ordering::Relaxed);
        Some((walk, link))
    }

    /// The mapping, for readers of payloads on other threads.
    pub fn mapping(&self) -> Mapping {
        Mapping(Arc::clone(&self.map))
    }

    /// The shared progress offset (bytes walked so far).
    pub fn progress(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.progress)
    }

    /// The next packet whose bytes `keep` accepts (the capture filter);
    /// Ok(None) at the end of the file; Err with libpcap's words and the
    /// block's offset when the file is damaged.
    pub fn next_record(
        &mut self,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<Record<'_>>, String> {
        self.next_kept(keep)
    }
}

impl Walk for MappedNg {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Walk blocks up to the next packet and say where its bytes lie.
    fn next_at(&mut self) -> Result<Option<At>, String> {
        loop {
            self.window.advance(&self.map, self.pos);
            let at = self.pos;
            let Some((kind, body)) = self
                .frame()
                .map_err(|e| format!("{e} (block at byte {at})"))?
            else {
                return Ok(None);
            };
            let found = match kind {
                EPB | SPB | PB => self.packet(kind, body.clone()).map(Some),
                _ => self.remember(kind, body.clone()).map(|()| None),
            }
            .map_err(|e| format!("{e} (block at byte {at})"))?;
            if let Some(mut packet) = found {
                packet.start += body.start;
                packet.end += body.start;
                return Ok(Some(packet));
            }
        }
    }
}

impl MappedNg {
    /// The block at `pos`, framed and checked as libpcap's `read_block`
    /// does: its type and the range of its body (between the length and
    /// the trailer). `pos` steps past it.
    fn frame(&mut self) -> Result<Option<(u32, std::ops::Range<usize>)>, String> {
        let rest = self.map.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.len() < 8 {
            return Err(format!(
                "truncated pcapng dump file; tried to read 8 bytes, only got {}",
                rest.len()
            ));
        }
        let kind = word(rest, 0, self.big_endian);
        let total = word(rest, 4, self.big_endian);
        if total < 12 {
            return Err(format!(
                "block in pcapng dump file has a length of {total} < 12"
            ));
        }
        if !total.is_multiple_of(4) {
            return Err(format!(
                "block in pcapng dump file has a length of {total} that is not a multiple of 4"
            ));
        }
        if total > MAX_BLOCK {
            return Err(format!("pcapng block size {total} > maximum {MAX_BLOCK}"));
        }
        let total = total as usize;
        if rest.len() < total {
            return Err(format!(
                "truncated pcapng dump file; tried to read {} bytes, only got {}",
                total - 8,
                rest.len() - 8
            ));
        }
        let trailer = word(rest, total - 4, self.big_endian);
        if trailer as usize != total {
            return Err("block total length in header and trailer don't match".to_string());
        }
        let body = self.pos + 8..self.pos + total - 4;
        self.pos += total;
        Window::prefetch_next(&self.map, self.pos);
        self.progress.store(self.pos as u64, Ordering::Relaxed);
        Ok(Some((kind, body)))
    }

    /// A block that is not a packet: an interface or section header is
    /// remembered, anything else skipped unread.
    fn remember(&mut self, kind: u32, body: std::ops::Range<usize>) -> Result<(), String> {
        let map = Arc::clone(&self.map);
        let bytes = map.get(body).unwrap_or_default();
        match kind {
            IDB => self.interface(bytes),
            SHB if self.snapshot.is_some() => self.section(bytes),
            // Before the first interface libpcap (at open) skipped every
            // other block, a second section header too.
            _ => Ok(()),
        }
    }

    /// A packet block's fixed fields, in the file's order.
    fn fields(&self, kind: u32, body: &[u8]) -> Result<Packet, String> {
        let at = |n: usize| word(body, n, self.big_endian);
        Ok(match kind {
            EPB | PB if body.len() < 20 => return Err(too_short(kind)),
            SPB if body.len() < 4 => return Err(too_short(kind)),
            SPB => {
                let len = at(0);
                Packet {
                    iface: 0,
                    ts: 0, // no time stamp: libpcap reports 0
                    caplen: len.min(self.snapshot.unwrap_or(MAX_CAPLEN)),
                    len,
                    data_at: 4,
                }
            }
            _ => Packet {
                iface: if kind == EPB {
                    at(0)
                } else {
                    u32::from(self.half(body, 0))
                },
                ts: (u64::from(at(4)) << 32) | u64::from(at(8)),
                caplen: at(12),
                len: at(16),
                data_at: 20,
            },
        })
    }

    /// A packet block (EPB, SPB or PB): libpcap's checks (`found:`), its
    /// time, and its bytes' range in `body`.
    fn packet(&self, kind: u32, body: std::ops::Range<usize>) -> Result<At, String> {
        let body = self.map.get(body).unwrap_or_default();
        let p = &self.fields(kind, body)?;
        let Some(snapshot) = self.snapshot else {
            return Err(
                "the capture file has a packet block before any Interface Description Blocks"
                    .to_string(),
            );
        };
        let Some(iface) = self.interfaces.get(p.iface as usize) else {
            return Err(format!(
                "a packet arrived on interface {}, but there's no Interface Description Block for that interface",
                p.iface
            ));
        };
        if p.caplen > snapshot {
            return Err(format!(
                "invalid packet capture length {}, bigger than snaplen of {snapshot}",
                p.caplen
            ));
        }
        if body.len() - p.data_at < p.caplen as usize {
            return Err(too_short(kind));
        }
        let (secs, micros) = iface.time(p.ts);
        Ok(At {
            start: p.data_at,
            end: p.data_at + p.caplen as usize,
            secs,
            micros,
            orig_len: p.len,
        })
    }

    /// A further section header: same byte order, version 1; its
    /// interfaces are its own.
    fn section(&mut self, body: &[u8]) -> Result<(), String> {
        if body.len() < 16 {
            return Err(too_short(SHB));
        }
        let magic = word(body, 0, self.big_endian);
        if magic != BYTE_ORDER_MAGIC {
            return Err(if magic.swap_bytes() == BYTE_ORDER_MAGIC {
                "the file has sections with different byte orders".to_string()
            } else {
                "the file has a section with a bad byte order magic field".to_string()
            });
        }
        let major = self.half(body, 4);
        if major != 1 {
            return Err(format!(
                "unknown pcapng savefile major version number {major}"
            ));
        }
        self.interfaces.clear();
        Ok(())
    }

    /// An Interface Description Block: the first one of the file is the
    /// one libpcap read at open (it set the link type and snapshot
    /// length); every later one must agree with it.
    fn interface(&mut self, body: &[u8]) -> Result<(), String> {
        if body.len() < 8 {
            return Err(too_short(IDB));
        }
        let linktype = self.half(body, 0);
        let snaplen = word(body, 4, self.big_endian);
        match self.snapshot {
            None => self.snapshot = Some(adjust_snapshot(snaplen)),
            Some(snapshot) => {
                if i32::from(linktype) != self.link {
                    return Err(format!(
                        "an interface has a type {linktype} different from the type of the first interface"
                    ));
                }
                if adjust_snapshot(snaplen) != snapshot {
                    return Err(format!(
                        "an interface has a snapshot length {snaplen} different from the snapshot length of the first interface"
                    ));
                }
            }
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(format!(
                "more than {MAX_INTERFACES} interfaces in one section, mtlsniff's limit"
            ));
        }
        let iface = self.options(body.get(8..).unwrap_or_default())?;
        self.interfaces.push(iface);
        Ok(())
    }

    /// The time options of an interface, read and checked as libpcap's
    /// `process_idb_options` does (pcap-parser reads each option).
    fn options(&self, mut rest: &[u8]) -> Result<Interface, String> {
        let (mut tsresol, mut tsoffset, mut binary) = (USER_TSRESOL, 0i64, false);
        let (mut saw_tsresol, mut saw_tsoffset) = (false, false);
        while !rest.is_empty() {
            let parsed = if self.big_endian {
                parse_option_be::<PcapError<&[u8]>>(rest)
            } else {
                parse_option_le::<PcapError<&[u8]>>(rest)
            };
            let Ok((tail, option)) = parsed else {
                return Err(too_short(IDB));
            };
            rest = tail;
            let len = option.len;
            let what = "Interface Description Block has";
            match option.code.0 {
                OPT_ENDOFOPT if len != 0 => {
                    return Err(format!("{what} opt_endofopt option with length {len} != 0"));
                }
                OPT_ENDOFOPT => break,
                IF_TSRESOL if len != 1 => {
                    return Err(format!("{what} if_tsresol option with length {len} != 1"));
                }
                IF_TSRESOL if saw_tsresol => {
                    return Err(format!("{what} more than one if_tsresol option"));
                }
                IF_TSRESOL => {
                    saw_tsresol = true;
                    let v = option.value().first().copied().unwrap_or_default();
                    (tsresol, binary) = resolution(v)?;
                }
                IF_TSOFFSET if len != 8 => {
                    return Err(format!("{what} if_tsoffset option with length {len} != 8"));
                }
                IF_TSOFFSET if saw_tsoffset => {
                    return Err(format!("{what} more than one if_tsoffset option"));
                }
                IF_TSOFFSET => {
                    saw_tsoffset = true;
                    let b: [u8; 8] = option
                        .value()
                        .get(..8)
                        .and_then(|s| s.try_into().ok())
                        .unwrap_or_default();
                    tsoffset = if self.big_endian {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    };
                }
                _ => {}
            }
        }
        let scale = match (tsresol, binary) {
            (USER_TSRESOL, _) => Scale::Same,
            (_, true) => Scale::Bin,
            (r, false) if r > USER_TSRESOL => Scale::DownDec(r / USER_TSRESOL),
            (r, false) => Scale::UpDec(USER_TSRESOL / r),
        };
        Ok(Interface {
            tsresol,
            tsoffset,
            scale,
        })
    }

    /// The 16-bit word at `at` in the file's byte order.
    fn half(&self, bytes: &[u8], at: usize) -> u16 {
        let b: [u8; 2] = bytes
            .get(at..at + 2)
            .and_then(|s| s.try_into().ok())
            .unwrap_or_default();
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }
}

/// An `if_tsresol` value: units per second and whether it is a power of
/// two; libpcap's words when it does not fit in 64 bits.
fn resolution(v: u8) -> Result<(u64, bool), String> {
    let what = "Interface Description Block if_tsresol option resolution";
    if v & 0x80 != 0 {
        let shift = v & 0x7f;
        if shift > 63 {
            return Err(format!("{what} 2^-{shift} is too high"));
        }
        Ok((1u64 << shift, true))
    } else {
        if v > 19 {
            return Err(format!("{what} 10^-{v} is too high"));
        }
        Ok((10u64.pow(u32::from(v)), false))
    }
}

impl Interface {
    /// A timestamp in this interface's units as libpcap returns it:
    /// seconds (offset added, wrapping as its unsigned arithmetic does)
    /// and microseconds (`(int)` of the scaled fraction).
    fn time(&self, ts: u64) -> (i64, i64) {
        let secs = (ts / self.tsresol).wrapping_add(self.tsoffset as u64);
        let frac = ts % self.tsresol;
        let frac = match self.scale {
            Scale::Same => frac,
            Scale::UpDec(f) => frac.wrapping_mul(f),
            Scale::DownDec(f) => frac / f,
            Scale::Bin => frac.wrapping_mul(USER_TSRESOL) / self.tsresol,
        };
        (secs as i64, i64::from(frac as u32 as i32))
    }
}

/// A capture file walked in place: classic pcap (`mapped`) or pcapng.
#[derive(Debug)]
pub enum MappedFile {
    Pcap(Mapped),
    Pcapng(MappedNg),
}

impl MappedFile {
    /// Map `file`, which libpcap opened with link type `link`, as classic
    /// pcap or else as pcapng; None when neither walker reads it.
    pub fn open(file: &File, link: LinkType) -> Option<MappedFile> {
        Mapped::open(file)
            .map(MappedFile::Pcap)
            .or_else(|| MappedNg::open(file, link).map(MappedFile::Pcapng))
    }

    pub fn mapping(&self) -> Mapping {
        match self {
            MappedFile::Pcap(m) => m.mapping(),
            MappedFile::Pcapng(m) => m.mapping(),
        }
    }

    pub fn progress(&self) -> Arc<AtomicU64> {
        match self {
            MappedFile::Pcap(m) => m.progress(),
            MappedFile::Pcapng(m) => m.progress(),
        }
    }

    /// The next record `keep` accepts (see the walkers' `next_record`).
    pub fn next_record(
        &mut self,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<Record<'_>>, String> {
        match self {
            MappedFile::Pcap(m) => m.next_record(keep),
            MappedFile::Pcapng(m) => m.next_record(keep),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    //! Every test reads the same bytes through libpcap too (the pcap
    //! crate, as `source` opens files) and asserts the walk gives the same
    //! packets, times and error, then what the walk itself must show.
    use super::*;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use crate::capture::decode::support::shared;
    use crate::capture::pcapng_build::{
        block, dsb, epb, idb, opt, pb, shb, shb_sized, skipped, spb,
    };

    fn temp(bytes: &[u8]) -> PathBuf {
        use std::sync::atomic::AtomicUsize;
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mtlsniff-mapped-ng-{}-{}.pcapng",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        path
    }

    type Packets = Vec<(i64, i64, Vec<u8>, u32)>;

    /// What libpcap reads from `path`: None when it does not open it.
    fn by_libpcap(path: &Path) -> Option<(i32, Packets, Option<String>)> {
        let mut c = pcap::Capture::from_file(path).ok()?;
        let link = c.get_datalink().0;
        let mut packets = Vec::new();
        let end = loop {
            match c.next_packet() {
                Ok(p) => packets.push((
                    p.header.ts.tv_sec,
                    p.header.ts.tv_usec,
                    p.data.to_vec(),
                    p.header.len,
                )),
                Err(pcap::Error::NoMorePackets) => break None,
                Err(pcap::Error::PcapError(e)) => break Some(e),
                Err(e) => break Some(e.to_string()),
            }
        };
        Some((link, packets, end))
    }

    /// What `m` reads.
    fn by_walk(mut m: MappedNg) -> (Packets, Option<String>) {
        let mut packets = Vec::new();
        let end = loop {
            match m.next_record(|_| true) {
                Ok(Some(r)) => packets.push((r.secs, r.micros, r.data.to_vec(), r.orig_len)),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        assert_eq!(m.progress().load(Ordering::Relaxed), m.pos as u64);
        (packets, end)
    }

    /// The walk of `path` after asserting it reads what libpcap reads
    /// (its error in libpcap's words, then the block's offset), opened
    /// after libpcap (`open`) and, when it takes the file, without
    /// (`open_unread`, which must take only what libpcap opens, with
    /// libpcap's link type); None when libpcap does not open the file.
    fn same_as_libpcap(path: &Path) -> Option<(Packets, Option<String>)> {
        let unread = MappedNg::open_unread(&File::open(path).unwrap());
        let Some((link, want, want_end)) = by_libpcap(path) else {
            assert!(
                unread.is_none(),
                "{}: libpcap does not open it",
                path.display()
            );
            return None;
        };
        let after = MappedNg::open(&File::open(path).unwrap(), LinkType(link)).expect("mapped");
        let mut walks = vec![by_walk(after)];
        if let Some((walk, unread_link)) = unread {
            assert_eq!(unread_link.0, link, "{}", path.display());
            walks.push(by_walk(walk));
        }
        for (got, got_end) in &walks {
            assert_eq!(got.len(), want.len(), "{}: packet count", path.display());
            assert!(*got == want, "{}: packets differ", path.display());
            let words = got_end
                .as_deref()
                .map(|e| e.rsplit_once(" (block at byte ").map_or(e, |(w, _)| w));
            assert_eq!(words, want_end.as_deref(), "{}", path.display());
        }
        walks.pop()
    }

    fn walk_bytes(bytes: &[u8]) -> Option<(Packets, Option<String>)> {
        let path = temp(bytes);
        let out = same_as_libpcap(&path);
        let _ = std::fs::remove_file(&path);
        out
    }

    const FRAME: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

    #[test]
    fn every_block_type_in_both_byte_orders_and_several_sections() {
        for be in [false, true] {
            let mut f = shb(be);
            f.extend(skipped(be));
            f.extend(dsb(be, b"CLIENT_RANDOM 00 11\n"));
            f.extend(idb(be, 1, 0, &[opt(IF_TSRESOL, &[9], be), opt(0, &[], be)]));
            // Interface 1: 2^-20 s units, 100 s offset.
            let offset = if be {
                100i64.to_be_bytes()
            } else {
                100i64.to_le_bytes()
            };
            let tsresol = [0x80 | 20];
            f.extend(idb(
                be,
                1,
                0,
                &[opt(IF_TSRESOL, &tsresol, be), opt(IF_TSOFFSET, &offset, be)],
            ));
            f.extend(epb(be, 0, 1_700_000_000_123_456_789, FRAME, 60));
            f.extend(skipped(be));
            f.extend(epb(be, 1, (5 << 20) | (1 << 19), &FRAME[..7], 7));
            f.extend(spb(be, 36, FRAME));
            f.extend(pb(be, 0, 42_000_001_999, &FRAME[..3]));
            // A second section: its own interface, microseconds.
            f.extend(shb(be));
            f.extend(idb(be, 1, 0, &[]));
            f.extend(epb(be, 0, 1_000_000_000_000_007, &FRAME[..4], 4));
            let (got, end) = walk_bytes(&f).expect("libpcap opens it");
            assert_eq!(end, None);
            let times: Vec<(i64, i64)> = got.iter().map(|p| (p.0, p.1)).collect();
            assert_eq!(
                times,
                [
                    (1_700_000_000, 123_456),
                    (105, 500_000),
                    (0, 0),
                    (42, 1),
                    (1_000_000_000, 7)
                ],
                "order {be}"
            );
            let lens: Vec<(usize, u32)> = got.iter().map(|p| (p.2.len(), p.3)).collect();
            assert_eq!(lens, [(36, 60), (7, 7), (36, 36), (3, 3), (4, 4)]);
        }
    }

    #[test]
    fn packets_are_slices_of_the_mapping_and_the_filter_sees_each() {
        let mut f = shb(false);
        f.extend(idb(false, 1, 0, &[]));
        f.extend(epb(false, 0, 1, b"drop", 4));
        f.extend(epb(false, 0, 2, b"keep", 4));
        let path = temp(&f);
        let mut m = MappedNg::open(&File::open(&path).unwrap(), LinkType::EN10MB).unwrap();
        let _ = std::fs::remove_file(&path);
        let mapping = m.mapping();
        let r = m.next_record(|d| d == b"keep").unwrap().unwrap();
        assert_eq!((r.data, r.micros), (&b"keep"[..], 2));
        assert!(mapping.offset_of(r.data).is_some());
        assert!(m.next_record(|_| true).unwrap().is_none());
        assert_eq!(m.progress().load(Ordering::Relaxed), f.len() as u64);
    }

    #[test]
    fn declines_what_it_does_not_walk() {
        let path = temp(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        assert!(MappedNg::open(&File::open(&path).unwrap(), LinkType::EN10MB).is_none());
        let mut f = shb(true);
        f.extend(idb(true, 239, 0, &[]));
        std::fs::write(&path, &f).unwrap();
        let file = File::open(&path).unwrap();
        assert!(
            MappedNg::open(&file, LinkType::NFLOG).is_none(),
            "big-endian NFLOG"
        );
        assert!(MappedNg::open(&file, LinkType::EN10MB).is_some());
        let _ = std::fs::remove_file(&path);
    }

    /// One damaged block after a good packet, in each byte order: the
    /// walk stops where libpcap stops, in its words, naming the offset.
    #[test]
    fn damage_is_an_error_in_libpcaps_words_with_the_offset() {
        for be in [false, true] {
            let mut good = shb(be);
            good.extend(idb(be, 1, 1000, &[]));
            good.extend(epb(be, 0, 1, FRAME, 36));
            let at = good.len();
            let mut bad_trailer = epb(be, 0, 2, FRAME, 36);
            let n = bad_trailer.len();
            bad_trailer[n - 1] ^= 0x40;
            bad_trailer[n - 4] ^= 0x40;
            let mut odd = epb(be, 0, 2, FRAME, 36);
            odd[if be { 7 } else { 4 }] += 2;
            let cases: Vec<(Vec<u8>, &str)> = vec![
                (vec![1, 2, 3], "tried to read 8 bytes, only got 3"),
                (epb(be, 0, 2, FRAME, 36)[..40].to_vec(), "tried to read"),
                (
                    block(EPB, &[0; 8], be),
                    "block of type 6 in pcapng dump file is too short",
                ),
                (
                    block(SPB, &[], be),
                    "block of type 3 in pcapng dump file is too short",
                ),
                (bad_trailer, "block total length in header"),
                (odd, "not a multiple of 4"),
                (epb(be, 3, 2, FRAME, 36), "a packet arrived on interface 3"),
                (
                    epb(be, 0, 2, &[7; 1004], 1004),
                    "invalid packet capture length 1004, bigger than snaplen of 1000",
                ),
                (
                    idb(be, 101, 1000, &[]),
                    "an interface has a type 101 different",
                ),
                (
                    idb(be, 1, 0, &[]),
                    "an interface has a snapshot length 0 different",
                ),
                (
                    idb(be, 1, 1000, &[opt(IF_TSRESOL, &[20], be)]),
                    "resolution 10^-20 is too high",
                ),
                (
                    idb(be, 1, 1000, &[opt(IF_TSRESOL, &[6, 6], be)]),
                    "if_tsresol option with length 2 != 1",
                ),
                (
                    idb(be, 1, 1000, &[opt(IF_TSOFFSET, &[0; 4], be)]),
                    "if_tsoffset option with length 4 != 8",
                ),
                (
                    idb(be, 1, 1000, &[opt(0, &[0; 4], be)]),
                    "opt_endofopt option with length 4 != 0",
                ),
                (shb(!be), "pcapng block size 469762048 > maximum 16777216"),
                // A length that reads the same in both orders.
                (
                    shb_sized(!be, 0x0001_0100),
                    "the file has sections with different byte orders",
                ),
            ];
            for (tail, words) in cases {
                let mut f = good.clone();
                f.extend(&tail);
                let (got, end) = walk_bytes(&f).expect("libpcap opens it");
                assert_eq!(got.len(), 1, "{words}");
                let end = end.unwrap_or_default();
                assert!(end.contains(words), "{end} lacks {words}");
                assert!(end.ends_with(&format!("(block at byte {at})")), "{end}");
            }
        }
    }

    /// Random damage to a good file (xorshift, fixed seed): the walk reads
    /// what libpcap reads, whatever the bytes.
    #[test]
    fn mangled_files_read_as_libpcap_reads_them() {
        let mut f = shb(false);
        f.extend(idb(false, 1, 0, &[opt(IF_TSRESOL, &[9], false)]));
        f.extend(dsb(false, b"x"));
        for i in 0..4 {
            f.extend(epb(false, 0, 1 << (40 + i), &FRAME[..20 + i as usize], 64));
        }
        f.extend(spb(false, 12, &FRAME[..12]));
        f.extend(idb(false, 1, 0, &[]));
        f.extend(epb(false, 1, 99, FRAME, 36));
        // Extreme resolutions and offsets: libpcap's wrapping arithmetic.
        let minus5 = (-5i64).to_le_bytes();
        f.extend(idb(
            false,
            1,
            0,
            &[
                opt(IF_TSRESOL, &[0x80 | 63], false),
                opt(IF_TSOFFSET, &minus5, false),
            ],
        ));
        f.extend(idb(false, 1, 0, &[opt(IF_TSRESOL, &[19], false)]));
        f.extend(idb(false, 1, 0, &[opt(IF_TSRESOL, &[2], false)]));
        for iface in 2..5 {
            f.extend(epb(false, iface, u64::MAX - 3, FRAME, 36));
            f.extend(epb(false, iface, 3, FRAME, 36));
        }
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut opened, mut damaged, mut unread) = (0, 0, 0);
        for _ in 0..1000 {
            let mut m = f.clone();
            for _ in 0..1 + next() % 3 {
                let i = 4 + (next() as usize) % (m.len() - 4);
                m[i] = next() as u8;
            }
            if next() % 4 == 0 {
                m.truncate(28 + (next() as usize) % (m.len() - 28));
            }
            let path = temp(&m);
            unread += usize::from(MappedNg::open_unread(&File::open(&path).unwrap()).is_some());
            if let Some((_, end)) = same_as_libpcap(&path) {
                opened += 1;
                damaged += usize::from(end.is_some());
            }
            let _ = std::fs::remove_file(&path);
        }
        eprintln!("{opened} mangled files opened ({unread} without libpcap), {damaged} damaged");
        assert!(
            opened > 500 && damaged > 100 && unread > 400,
            "{opened} opened, {damaged} damaged, {unread} without libpcap"
        );
    }

    /// Our pcapng fixtures and the public ones in ../shared.
    #[test]
    fn every_pcapng_capture_reads_as_libpcap_reads_it() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut dirs = vec![fixtures];
        dirs.extend(shared::public("mapped pcapng against libpcap"));
        let mut read = 0;
        for dir in dirs {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    std::fs::read(p).is_ok_and(|b| b.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]))
                })
                .collect();
            paths.sort();
            for path in paths {
                let (packets, end) = same_as_libpcap(&path).expect("libpcap opens it");
                assert!(!packets.is_empty() && end.is_none(), "{}", path.display());
                read += 1;
            }
        }
        eprintln!("{read} pcapng captures read alike");
        assert!(read >= 1);
    }
}
