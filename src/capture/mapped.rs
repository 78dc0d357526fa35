//! Reading a classic pcap file in place: the file is mapped into memory
//! (memmap2) and its records are walked where they lie, so a frame is a
//! slice of the mapping and no byte is copied or read through stdio. The
//! one file that reads classic pcap headers with pcap-parser (the file
//! header; a record header's four words are read in place). Which pages
//! of the file are resident, ahead of and behind the walk, is `window`'s.
//!
//! It must not decide what a file is: `source` opens every file with
//! libpcap first (its header checks, link type and error messages stay the
//! ones users see) and only then asks `Mapped::open` to take over reading
//! the records. `open` declines (None) what it does not walk — pcapng,
//! the "modified" pcap format, a file that cannot be mapped — and libpcap
//! reads those as before. A damaged record ends the walk with libpcap's
//! own words (`sf-pcap.c`): a truncated header or record, or a capture
//! length past libpcap's maximum (262,144 bytes for every link type we
//! decode); a record longer than the file's snaplen is cut to it, the rest
//! skipped, as libpcap does. Invariant: `pos` is always a record boundary
//! inside the mapping, and the progress offset published is `pos`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;
use pcap_parser::pcap::{LegacyPcapBlock, parse_pcap_header};

use crate::capture::decode::{Frame, LinkType};
use crate::capture::segment::Timestamp;
use crate::capture::window::Window;

/// libpcap's `MAXIMUM_SNAPLEN`, and `max_snaplen_for_dlt` for every link
/// type `decode` reads: a record claiming more is damage, not a packet.
pub(super) const MAX_CAPLEN: u32 = 262_144;
/// A classic pcap file header.
const FILE_HEADER: usize = 24;
/// A classic pcap record header.
const RECORD_HEADER: usize = 16;

/// One record, borrowed from the mapping.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub secs: i64,
    pub micros: i64,
    pub data: &'a [u8],
    pub orig_len: u32,
}

impl<'a> Record<'a> {
    /// The record as a frame of link type `link`: what every reader of
    /// records (mapped, stdin, walk mode) hands on.
    pub fn frame(self, link: LinkType) -> Frame<'a> {
        Frame {
            ts: Timestamp::from_secs_micros(self.secs, self.micros),
            link,
            data: self.data,
            orig_len: self.orig_len,
        }
    }
}

/// Where a record's kept bytes lie in the mapping, and its header fields:
/// what each walker's format-specific step finds (`Walk::next_at`).
pub(super) struct At {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) secs: i64,
    pub(super) micros: i64,
    pub(super) orig_len: u32,
}

/// A walk through a mapped file's records, classic pcap or pcapng: the
/// format's step, and the filtered read both walkers share.
pub(super) trait Walk {
    /// The whole mapping.
    fn bytes(&self) -> &[u8];
    /// Step past the next record and say where its kept bytes lie;
    /// Ok(None) at the end, Err with libpcap's words at damage.
    fn next_at(&mut self) -> Result<Option<At>, String>;

    /// The next record whose bytes `keep` accepts; Ok(None) at the end,
    /// Err when a record is damaged (the walk stays there).
    fn next_kept(&mut self, keep: impl Fn(&[u8]) -> bool) -> Result<Option<Record<'_>>, String> {
        let at = loop {
            let Some(at) = self.next_at()? else {
                return Ok(None);
            };
            if keep(self.bytes().get(at.start..at.end).unwrap_or_default()) {
                break at;
            }
        };
        Ok(Some(Record {
            secs: at.secs,
            micros: at.micros,
            data: self.bytes().get(at.start..at.end).unwrap_or_default(),
            orig_len: at.orig_len,
        }))
    }
}

/// The mapped file, shared with the workers, which read payloads from it
/// in place (`pipeline/batch.rs`) instead of from a copy.
#[derive(Clone)]
pub struct Mapping(pub(super) Arc<Mmap>);

impl Mapping {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Where `part` starts in the mapping, if it lies wholly inside it.
    pub fn offset_of(&self, part: &[u8]) -> Option<usize> {
        let start = (part.as_ptr() as usize).checked_sub(self.0.as_ptr() as usize)?;
        (start.checked_add(part.len())? <= self.0.len()).then_some(start)
    }
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.0.len())
            .finish()
    }
}

/// A mapped classic pcap file and the walk through its records.
pub struct Mapped {
    map: Arc<Mmap>,
    pos: usize,
    /// Pages mapped in ahead of the walk, released behind it.
    window: Window,
    big_endian: bool,
    nanos: bool,
    /// libpcap's snapshot length for the file (0 or past the maximum in
    /// the header means the maximum).
    snaplen: u32,
    /// Versions before 2.3 could write caplen and len swapped.
    swapped_lengths: bool,
    /// `pos`, for a progress bar on another thread.
    progress: Arc<AtomicU64>,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapped")
            .field("len", &self.map.len())
            .field("pos", &self.pos)
            .finish()
    }
}

impl Mapped {
    /// Map `file` and read its header; None when it is not a classic pcap
    /// file this walker reads (libpcap reads it instead).
    pub fn open(file: &File) -> Option<Mapped> {
        // SAFETY: the mapping is read-only and private to this reader. If
        // another process truncates the file while we read, the kernel may
        // raise SIGBUS, as it would for any reader of a mapped file; a file
        // that grows is read up to the length it had when mapped.
        let map = unsafe { Mmap::map(file) }.ok()?;
        let (_, header) = parse_pcap_header(&map).ok()?;
        if header.is_modified_format() || header.version_major != 2 {
            return None;
        }
        let snaplen = match header.snaplen {
            0 => MAX_CAPLEN,
            n => n.min(MAX_CAPLEN),
        };
        #[cfg(unix)]
        {
            // Read front to back once: let the kernel read ahead.
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Some(Mapped {
            big_endian: header.is_bigendian(),
            nanos: header.is_nanosecond_precision(),
            snaplen,
            swapped_lengths: header.version_minor < 3,
            map: Arc::new(map),
            pos: FILE_HEADER,
            window: Window::default(),
            progress: Arc::new(AtomicU64::new(FILE_HEADER as u64)),
        })
    }

    /// The mapping, for readers of payloads on other threads.
    pub fn mapping(&self) -> Mapping {
        Mapping(Arc::clone(&self.map))
    }

    /// Another walk over the same mapping, from the first record, with its
    /// own position, releases and progress offset: each walker thread of
    /// walk mode (`pipeline/walk.rs`) walks the whole file itself. A page
    /// one walk released under another is faulted back from the page cache.
    pub fn restart(&self) -> Mapped {
        Mapped {
            map: Arc::clone(&self.map),
            pos: FILE_HEADER,
            window: Window::default(),
            big_endian: self.big_endian,
            nanos: self.nanos,
            snaplen: self.snaplen,
            swapped_lengths: self.swapped_lengths,
            progress: Arc::new(AtomicU64::new(FILE_HEADER as u64)),
        }
    }

    /// The shared progress offset (bytes walked so far).
    pub fn progress(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.progress)
    }

    /// The next record whose bytes `keep` accepts (the capture filter);
    /// Ok(None) at the end of the file; Err with libpcap's words when a
    /// record is damaged (the walk stays there).
    pub fn next_record(
        &mut self,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<Record<'_>>, String> {
        self.next_kept(keep)
    }
}

impl Walk for Mapped {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Step past the next record and say where its kept bytes lie.
    fn next_at(&mut self) -> Result<Option<At>, String> {
        self.window.advance(&self.map, self.pos);
        let rest = self.map.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Ok(None);
        }
        if rest.len() < RECORD_HEADER {
            return Err(format!(
                "truncated dump file; tried to read {RECORD_HEADER} header bytes, only got {}",
                rest.len()
            ));
        }
        let block = self.record_header(rest)?;
        let (caplen, orig_len) = (block.caplen, block.origlen);
        let body = rest.get(RECORD_HEADER..).unwrap_or_default();
        if body.len() < caplen as usize {
            return Err(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {}",
                body.len()
            ));
        }
        let (secs, frac) = (i64::from(block.ts_sec), i64::from(block.ts_usec));
        let micros = if self.nanos { frac / 1000 } else { frac };
        // Past the snaplen: libpcap keeps the snaplen's bytes and skips the rest.
        let start = self.pos + RECORD_HEADER;
        let at = At {
            start,
            end: start + caplen.min(self.snaplen) as usize,
            secs,
            micros,
            orig_len,
        };
        self.pos = start + caplen as usize;
        Window::prefetch_next(&self.map, self.pos);
        self.progress.store(self.pos as u64, Ordering::Relaxed);
        Ok(Some(at))
    }
}

impl Mapped {
    /// The record header at the front of `rest` (at least 16 bytes), its
    /// lengths checked as libpcap checks them.
    fn record_header<'a>(&self, rest: &'a [u8]) -> Result<LegacyPcapBlock<'a>, String> {
        // Four words read in place: pcap-parser's record parser wants the
        // body too and cost a third of the walk; the body is checked by
        // the caller.
        let head = rest.get(..RECORD_HEADER).unwrap_or_default();
        let mut block = header_only(head, self.big_endian);
        if self.swapped_lengths && block.caplen > block.origlen {
            std::mem::swap(&mut block.caplen, &mut block.origlen);
        }
        if block.caplen > MAX_CAPLEN {
            return Err(format!(
                "invalid packet capture length {}, bigger than maximum of {MAX_CAPLEN}",
                block.caplen
            ));
        }
        Ok(block)
    }
}

/// The 32-bit word at `at` in a file's byte order (0 past the end: the
/// callers check lengths first). Shared with the stdin reader.
pub(super) fn le_or_be(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
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

/// A record header's fields, read from its 16 bytes (the caller checks
/// that the body is there).
fn header_only(head: &[u8], big_endian: bool) -> LegacyPcapBlock<'_> {
    let word = |at: usize| le_or_be(head, at, big_endian);
    LegacyPcapBlock {
        ts_sec: word(0),
        ts_usec: word(4),
        caplen: word(8),
        origlen: word(12),
        data: &[],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(magic: u32, minor: u16, snaplen: u32) -> Vec<u8> {
        let mut h = magic.to_le_bytes().to_vec();
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&minor.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h
    }

    fn record(secs: u32, frac: u32, caplen: u32, len: u32, body: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        for w in [secs, frac, caplen, len] {
            r.extend_from_slice(&w.to_le_bytes());
        }
        r.extend_from_slice(body);
        r
    }

    fn mapped(bytes: &[u8]) -> Option<Mapped> {
        let path = std::env::temp_dir().join(format!(
            "mtlsniff-mapped-{}-{}.pcap",
            std::process::id(),
            bytes.len()
        ));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        let m = Mapped::open(&File::open(&path).unwrap());
        let _ = std::fs::remove_file(&path);
        m
    }

    #[test]
    fn walks_records_in_place_and_cuts_to_the_snaplen() {
        let mut f = header(0xa1b2_3c4d, 4, 4);
        f.extend(record(7, 5_000, 3, 60, b"abc"));
        f.extend(record(8, 9_999, 6, 6, b"abcdef"));
        let mut m = mapped(&f).unwrap();
        let r = m.next_record(|_| true).unwrap().unwrap();
        assert_eq!(
            (r.secs, r.micros, r.data, r.orig_len),
            (7, 5, &b"abc"[..], 60)
        );
        let r = m.next_record(|_| true).unwrap().unwrap();
        assert_eq!((r.secs, r.micros, r.data), (8, 9, &b"abcd"[..]));
        assert!(m.next_record(|_| true).unwrap().is_none());
        assert_eq!(m.progress().load(Ordering::Relaxed), f.len() as u64);
        // A restarted walk starts at the first record, with its own offset.
        let mut again = m.restart();
        assert_eq!(again.progress().load(Ordering::Relaxed), 24);
        let r = again.next_record(|_| true).unwrap().unwrap();
        assert_eq!((r.secs, r.data), (7, &b"abc"[..]));
        assert_eq!(m.progress().load(Ordering::Relaxed), f.len() as u64);
    }

    #[test]
    fn damage_is_an_error_in_libpcaps_words() {
        let good = record(1, 0, 2, 2, b"ab");
        let cases: [(Vec<u8>, &str); 3] = [
            (vec![0; 10], "tried to read 16 header bytes, only got 10"),
            (
                record(1, 0, 50, 50, b"short"),
                "tried to read 50 captured bytes, only got 5",
            ),
            (
                record(1, 0, 0x7fff_ffff, 1, b""),
                "bigger than maximum of 262144",
            ),
        ];
        for (tail, words) in cases {
            let mut f = header(0xa1b2_c3d4, 4, 65535);
            f.extend(&good);
            f.extend(tail);
            let mut m = mapped(&f).unwrap();
            assert!(m.next_record(|_| true).unwrap().is_some());
            let e = m.next_record(|_| true).unwrap_err();
            assert!(e.contains(words), "{e}");
        }
    }

    #[test]
    fn declines_what_libpcap_reads() {
        assert!(
            mapped(&header(0xa1b2_cd34, 4, 65535)).is_none(),
            "modified format"
        );
        assert!(
            mapped(b"\x0a\x0d\x0d\x0a0123456789abcdefghijkl").is_none(),
            "pcapng"
        );
        assert!(
            mapped(&header(0xa1b2_c3d4, 4, 65535)[..10]).is_none(),
            "short"
        );
    }
}
