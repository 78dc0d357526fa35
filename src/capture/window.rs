//! The resident window of a walk through a mapped capture file, shared by
//! the classic pcap walker (`mapped`) and the pcapng walker (`mapped_ng`):
//! pages behind the walk are handed back to the kernel a step at a time,
//! and the next record's first cache lines prefetched. It owns only that
//! bookkeeping; the walkers own the mapping, the position and the record
//! format, call `Window::advance` with their position before reading each
//! record or block, and `prefetch_next` as soon as they know where the
//! next one starts.
//!
//! Why: a mapping's touched pages are resident and count in the process's
//! RSS, which `--memory` promises to bound (`tests/flood.rs` measures the
//! peak). The window keeps at most `RESIDENT_MAX` bytes of the file mapped
//! in by the walk itself, whatever the file's size; the memory plan sets
//! that much aside (`pipeline::budget::PROCESS_RESERVE`). Pages a worker
//! maps back in to read a queued payload belong to its queue's budget
//! (`pipeline::batch_footprint`) and are released again by the next step
//! while the worker trails by less than `RELEASE_WINDOW`.
//!
//! Pages ahead of the walk are left to the kernel's fault-around, which
//! maps a page's aligned neighbours (64 KiB by default) with each fault.
//! Mapping them ahead with `MADV_POPULATE_READ` instead cost more: it
//! takes and drops a reference on every page, and on the benchmark's mixed
//! file it doubled the walk's system time (0.5 s against 0.9 s a run).

use memmap2::Mmap;

/// The walk keeps this many bytes behind it mapped in: workers read
/// payloads just behind the walk (a page released under them is read
/// again, correctly, from the page cache).
const TRAIL: usize = 1 << 20;
/// Bytes walked between two releases of the pages behind the trail.
const RELEASE_STEP: usize = 1 << 20;
/// Each release covers this much behind the trail again: pages a worker
/// mapped back in are handed back while it trails by less than this.
const RELEASE_WINDOW: usize = 64 << 20;
/// Release boundaries are aligned to this (a multiple of any page size).
const ALIGN: usize = 64 << 10;
/// The most a page fault maps around its page: fault-around never crosses
/// a page table, which spans 2 MiB on x86_64 with 4 KiB pages (the
/// kernel's own limit on `fault_around_bytes`; 64 KiB by default).
const FAULT_AROUND_MAX: usize = 2 << 20;
/// A cache line.
const LINE: usize = 64;

/// The most file bytes a walk keeps mapped in: the trail, a step not yet
/// released, what the latest fault mapped around the walk and an
/// alignment's rounding at each end.
pub const RESIDENT_MAX: usize = TRAIL + RELEASE_STEP + FAULT_AROUND_MAX + 2 * ALIGN;

/// Where a walk's releases stand.
#[derive(Debug, Clone, Default)]
pub(super) struct Window {
    /// Where the last release ended.
    released: usize,
    /// The first position at which a release is due again: a walk calls
    /// `advance` per record, and most records need nothing.
    due: usize,
}

impl Window {
    /// Release behind a walk now at `pos`.
    #[inline]
    pub(super) fn advance(&mut self, map: &Mmap, pos: usize) {
        if pos >= self.due {
            self.catch_up(map, pos);
        }
    }

    fn catch_up(&mut self, map: &Mmap, pos: usize) {
        self.release_behind(map, pos);
        // The release's own test, solved for the position (`released` and
        // `RELEASE_STEP` are multiples of `ALIGN`, so the rounding in
        // `release_behind` does not move its threshold).
        self.due = (self.released + RELEASE_STEP + TRAIL).max(pos + 1);
    }

    /// Hand the pages more than `TRAIL` behind the walk back to the kernel
    /// (they stay in the page cache), once `RELEASE_STEP` bytes have
    /// gathered: the last `RELEASE_WINDOW` bytes before that point, again.
    fn release_behind(&mut self, map: &Mmap, pos: usize) {
        let end = pos.saturating_sub(TRAIL) / ALIGN * ALIGN;
        if end.saturating_sub(self.released) < RELEASE_STEP {
            return;
        }
        let start = end.saturating_sub(RELEASE_WINDOW);
        #[cfg(unix)]
        {
            // SAFETY: MADV_DONTNEED on a read-only private file mapping only
            // drops page-table entries: a later access reads the file again,
            // never zeroes, so a payload a worker still reads there (a
            // `Mapping`) reads the same bytes; `start..end` is inside the
            // mapping (`end` <= `pos` <= its length) and aligned (`start`
            // is `end` less a multiple of the alignment, or 0).
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
        #[cfg(not(unix))]
        let _ = (map, start);
        self.released = end;
    }

    /// Prefetch the first two cache lines of the record or block that
    /// starts at `next` (its header and, for a packet, the link, IP and TCP
    /// headers every walker reads), while the walk still works on the one
    /// before it: the walk's stride is a record, which the hardware
    /// prefetcher does not follow well, and a walker that skips a frame
    /// (walk mode) reads only those lines of it. Prefetching every line
    /// ahead instead cost 45 instructions a frame and filled the cache
    /// with payloads a walker that skips the frame never reads. On x86_64;
    /// a hint, so elsewhere nothing.
    #[inline]
    pub(super) fn prefetch_next(map: &Mmap, next: usize) {
        #[cfg(target_arch = "x86_64")]
        for at in [next, next.saturating_add(LINE)] {
            if at >= map.len() {
                break;
            }
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let line = map.as_ptr().wrapping_add(at).cast::<i8>();
            // SAFETY: SSE is part of every x86_64 target, and a prefetch
            // never faults nor reads into the program: any address is
            // allowed; this one is inside the mapping (`at` < its length).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (map, next, LINE);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn mapped(len: usize, tag: &str) -> Mmap {
        let path =
            std::env::temp_dir().join(format!("mtlsniff-window-{tag}-{}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&vec![7u8; len])
            .unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        // SAFETY: a private read-only mapping of a file only this test has.
        unsafe { Mmap::map(&file) }.unwrap()
    }

    #[test]
    fn releases_trail_the_walk() {
        let map = mapped(8 << 20, "trail");
        let mut w = Window::default();
        let mut pos = 0;
        while pos < map.len() {
            w.advance(&map, pos);
            // Never released ahead of the trail, never more than a step
            // (and an alignment) of unreleased pages behind it.
            assert!(w.released + TRAIL <= pos.max(TRAIL));
            assert!(pos.saturating_sub(TRAIL) < w.released + RELEASE_STEP + ALIGN);
            pos += 1500;
        }
        assert_eq!(
            map.iter().map(|&b| usize::from(b)).sum::<usize>(),
            7 * map.len()
        );
    }

    /// The mapping's resident bytes, from the kernel's own account of it.
    #[cfg(target_os = "linux")]
    fn resident(map: &Mmap) -> usize {
        let start = format!("{:x}-", map.as_ptr() as usize);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // The first Rss line after the mapping's header is its own.
        let rss = (smaps.lines())
            .skip_while(|l| !l.starts_with(&start))
            .find_map(|l| l.strip_prefix("Rss:"))
            .unwrap();
        rss.trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<usize>()
            .unwrap()
            << 10
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_walk_keeps_at_most_resident_max_of_the_file_mapped_in() {
        let map = mapped(32 << 20, "resident");
        let mut w = Window::default();
        let (mut pos, mut peak, mut sum) = (0, 0, 0usize);
        while pos < map.len() {
            w.advance(&map, pos);
            // Read the record as a walk would: its pages fault in.
            sum += map[pos..(pos + 1514).min(map.len())]
                .iter()
                .map(|&b| usize::from(b))
                .sum::<usize>();
            if pos % (256 << 10) < 1514 {
                peak = peak.max(resident(&map));
            }
            pos += 1514;
        }
        assert_eq!(sum, 7 * map.len());
        assert!(peak > TRAIL, "the walk mapped pages in: {peak}");
        assert!(peak <= RESIDENT_MAX, "{peak} > {RESIDENT_MAX}");
    }

    #[test]
    fn skipping_records_between_dues_releases_as_every_record_would() {
        let map = mapped(8 << 20, "dues");
        let (mut fast, mut every) = (Window::default(), Window::default());
        let mut pos = 0;
        for stride in [60usize, 1500, 9000, 70_000, 1514, 300_000].iter().cycle() {
            if pos >= map.len() {
                break;
            }
            fast.advance(&map, pos);
            // The release's own test, at every record.
            every.catch_up(&map, pos);
            assert_eq!(fast.released, every.released, "at {pos}");
            pos += stride;
        }
    }
}
