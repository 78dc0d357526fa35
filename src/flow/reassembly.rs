//! Reassembly of one direction of a TCP byte stream, seen passively.
//!
//! Owns: the mapping from 32-bit sequence numbers to absolute 64-bit stream
//! offsets (RFC 9293 §3.4, modulo-2^32 comparison by `i32` distance), the
//! bytes held for the reader (the in-order run and out-of-order pieces),
//! overlap accounting (duplicates, first-write-wins conflicts, bytes dropped
//! by `skip`), and the hard limits on what is held. The reader (the engine's
//! TLS parser) follows Suricata's contract: it looks at `contiguous()`,
//! `consume`s what it parsed and `skip`s record bodies it does not need
//! (even before they arrive). Once the verdict is final the engine drops the
//! whole stream (it lives in the flow's pre-verdict part), so a stream never
//! outlives the parse it feeds.
//!
//! Must not: panic on any sequence number or payload (a sniffer sees
//! arbitrary numbers, unlike a TCP endpoint), allocate by a length read from
//! the wire, hold or allocate more than `StreamLimits::max_buffered` bytes of
//! payload, or change any state on a rejected insert. It knows nothing about
//! flags, windows or ACKs (the engine owns the TCP state machine) and nothing
//! about TLS.
//!
//! Invariants (checked by `Stream::check_invariants` in tests):
//! - `head <= buf.len()`; `buf[head..]` is `contiguous()`, the bytes at
//!   offsets `read_off .. contig_end()`.
//! - `ooo` is sorted by offset, its pieces are non-empty and disjoint
//!   (touching pieces are joined up to `COALESCE_MAX` bytes), and every piece
//!   starts strictly after `contig_end()` (a piece that touches the in-order
//!   run is moved into `buf` at once), so `has_hole() == !ooo.is_empty()`.
//! - `ooo_bytes` is the sum of piece lengths; `ooo.len() <= max_segments`;
//!   `buffered() <= max_buffered`; `buf.capacity() + ooo_bytes <=
//!   max_buffered` (pieces are boxed slices of exactly their length; the
//!   per-piece headers, bounded by `max_segments`, are not counted).
//! - Every held byte's offset is below `u64::MAX`, so offset sums cannot
//!   overflow.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::ops::Range;

/// Hard limits for one direction, passed in by the engine (never
/// compile-time constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Payload bytes held: unconsumed in-order bytes plus out-of-order bytes.
    /// Also bounds the bytes allocated for them.
    pub max_buffered: usize,
    /// Out-of-order pieces held (Snort's segment limit, hostile-inputs M14).
    pub max_segments: usize,
}

/// What `Stream::insert` did with one segment's payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// New bytes kept.
    pub stored: usize,
    /// Bytes dropped because they were already held, consumed, skipped over
    /// by `skip_hole`, or lie before the stream start.
    pub duplicate: usize,
    /// Of the duplicate bytes that were still held, how many differed from
    /// the held copy. First write wins: RFC 9293 gives no rule, Suricata and
    /// Zeek flag it (hostile-inputs M13).
    pub conflict: usize,
    /// Bytes that fell inside the most recent `skip` range that ran past the
    /// arrived data, and were discarded.
    pub skipped: usize,
    pub status: InsertStatus,
}

/// Overall result of an insert. Counts in `InsertOutcome` are all zero for
/// `LimitExceeded` and `OverBudget`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InsertStatus {
    /// Accepted (possibly with nothing new in it).
    #[default]
    Ok,
    /// Entirely before the read position: a retransmission of consumed,
    /// skipped or lost bytes.
    Old,
    /// Storing the new bytes would pass `max_buffered` or `max_segments`:
    /// nothing stored, state unchanged.
    LimitExceeded,
    /// Within the stream's own limits, but storing the new bytes would
    /// allocate past the cap given to `insert_within` (the engine's memory
    /// budget): nothing stored, state unchanged.
    OverBudget,
}

impl InsertOutcome {
    fn bare(status: InsertStatus) -> Self {
        InsertOutcome {
            status,
            ..InsertOutcome::default()
        }
    }
}

/// An out-of-order run of bytes at absolute offset `off`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    off: u64,
    /// Exactly sized: no slack beyond what is held.
    data: Box<[u8]>,
}

impl Piece {
    fn end(&self) -> u64 {
        self.off.saturating_add(self.data.len() as u64)
    }
}

/// Overlap survey of one insert against the held bytes (read-only pass, so a
/// rejected insert changes nothing).
#[derive(Default)]
struct Survey {
    duplicate: usize,
    conflict: usize,
    new_bytes: usize,
}

/// Out-of-order pieces are joined when they touch, up to this size, so that
/// small segments do not use up `max_segments`. A tuning constant, not a
/// limit: it bounds the bytes copied per insert (joining a 1-byte segment to
/// a large piece would copy the piece; reverse-order arrivals would then be
/// O(n^2)). Pieces larger than this are never copied again.
const COALESCE_MAX: usize = 4096;

/// One run of the window an insert touches: an old piece (index from the
/// window start) or new bytes from the segment.
struct Run {
    off: u64,
    end: u64,
    old: Option<usize>,
}

/// How the window `ooo[lo..hi]` plus the new runs will be stored: each output
/// piece is a range of `runs`. Computed read-only, so the piece limit is
/// checked exactly before anything changes.
struct Plan {
    lo: usize,
    hi: usize,
    runs: Vec<Run>,
    outs: Vec<Range<usize>>,
}

/// One direction of a TCP byte stream. See the module docs for invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    limits: StreamLimits,
    /// Sequence number of stream offset 0. Offsets map to sequence numbers
    /// modulo 2^32 (RFC 9293 §3.4).
    start_seq: u32,
    /// Absolute offset of the first byte of `contiguous()`: bytes consumed +
    /// skipped + lost so far.
    read_off: u64,
    /// `buf[head..]` is the in-order run; `buf[..head]` is consumed and is
    /// dropped when the buffer must grow (amortised compaction).
    buf: Vec<u8>,
    head: usize,
    /// Out-of-order pieces: sorted, disjoint, the first after a hole.
    ooo: Vec<Piece>,
    ooo_bytes: usize,
    /// The most recent `skip` range that ran past arrived data; later
    /// arrivals inside it are counted as `skipped`, not `duplicate`.
    skip_range: Range<u64>,
    /// Allocation cap of the insert in progress (`insert_within`), else
    /// `usize::MAX`; never below what was allocated when it was set.
    alloc_cap: usize,
}

impl Stream {
    /// `start_seq` is the sequence number of the first stream byte: ISN+1
    /// (the SYN occupies one sequence number, RFC 9293 §3.4), or the first
    /// data seen when the flow is picked up midstream.
    pub fn new(start_seq: u32, limits: StreamLimits) -> Stream {
        Stream {
            limits,
            start_seq,
            read_off: 0,
            buf: Vec::new(),
            head: 0,
            ooo: Vec::new(),
            ooo_bytes: 0,
            skip_range: 0..0,
            alloc_cap: usize::MAX,
        }
    }

    /// `insert`, allocating at most `max_allocated` bytes for this stream
    /// in total (`allocated()` after the insert), so the caller's memory
    /// budget is checked before anything is allocated. When the new bytes
    /// would fit the stream's own limits but not the cap, nothing is stored
    /// and the status is `OverBudget`. A cap below what is already
    /// allocated keeps what is allocated (nothing is freed here).
    pub fn insert_within(&mut self, seq: u32, data: &[u8], max_allocated: usize) -> InsertOutcome {
        self.alloc_cap = max_allocated.max(self.allocated());
        let out = self.insert(seq, data);
        self.alloc_cap = usize::MAX;
        out
    }

    /// Adds one segment's payload starting at sequence number `seq`.
    ///
    /// Bytes before the read position are trimmed (counted duplicate or
    /// skipped), bytes already held are kept as first written (counted
    /// duplicate, and conflict when they differ), and only the new bytes are
    /// stored. All or nothing: if the new bytes would pass a limit, nothing
    /// is stored.
    pub fn insert(&mut self, seq: u32, data: &[u8]) -> InsertOutcome {
        if data.is_empty() {
            return InsertOutcome::bare(InsertStatus::Ok);
        }
        // RFC 9293 §3.4: sequence numbers compare modulo 2^32. Anything up
        // to 2^31 behind the read position is a retransmission; anything
        // else is ahead. Computed in i128 so no sum can overflow.
        let dist = i128::from(seq.wrapping_sub(self.next_seq()) as i32);
        let read = i128::from(self.read_off);
        let start = read + dist;
        let end = start + data.len() as i128;
        if end > i128::from(u64::MAX) {
            // Not representable; only reachable after skipping ~2^64 bytes.
            return InsertOutcome::bare(InsertStatus::LimitExceeded);
        }

        let mut out = InsertOutcome::bare(InsertStatus::Ok);
        if start < read {
            // Already consumed, skipped or lost: like a receiver trimming
            // already-received text (RFC 9293 §3.10.7.4), but never an error.
            let before_end = end.min(read);
            let before = usize::try_from(before_end - start).unwrap_or(data.len());
            let skip_lo = i128::from(self.skip_range.start).max(start);
            let skip_hi = i128::from(self.skip_range.end).min(before_end);
            let skipped = usize::try_from(skip_hi - skip_lo).unwrap_or(0);
            out.skipped = skipped;
            out.duplicate = before.saturating_sub(skipped);
            if end <= read {
                out.status = InsertStatus::Old;
                return out;
            }
        }
        // From here on the segment is [s, e) with s >= read_off.
        let (s, data) = if start < read {
            let trim = usize::try_from(read - start).unwrap_or(data.len());
            (self.read_off, data.get(trim..).unwrap_or(&[]))
        } else {
            (u64::try_from(start).unwrap_or(u64::MAX), data)
        };
        let e = s.saturating_add(data.len() as u64);

        let survey = self.survey(s, data);
        let ce = self.contig_end();
        let extends = s <= ce && e > ce;
        let held_after = self.buffered().saturating_add(survey.new_bytes);
        // A segment that extends the in-order run never adds a piece (every
        // hole it spans is filled), so it is only bound by bytes: filling a
        // hole must stay possible when the piece limit is reached.
        let plan = if extends || survey.new_bytes == 0 {
            None
        } else {
            Some(self.plan(s, e))
        };
        let pieces_after = match &plan {
            None => self.ooo.len(),
            Some(p) => (self.ooo.len().saturating_sub(p.hi - p.lo)).saturating_add(p.outs.len()),
        };
        if held_after > self.limits.max_buffered || pieces_after > self.limits.max_segments {
            return InsertOutcome::bare(InsertStatus::LimitExceeded);
        }
        if held_after > self.alloc_cap {
            return InsertOutcome::bare(InsertStatus::OverBudget);
        }

        out.stored = survey.new_bytes;
        out.duplicate = out.duplicate.saturating_add(survey.duplicate);
        out.conflict = survey.conflict;
        if survey.new_bytes == 0 {
            return out;
        }
        match plan {
            None => self.extend_run(s, data),
            Some(plan) => self.add_pieces(s, data, survey.new_bytes, plan),
        }
        out
    }

    /// In-order bytes available and not yet consumed.
    pub fn contiguous(&self) -> &[u8] {
        self.buf.get(self.head..).unwrap_or(&[])
    }

    /// Drops `n` bytes (clamped to what is available) from the front of
    /// `contiguous()`: the parser consumed them.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.contiguous().len());
        self.head = self.head.saturating_add(n);
        self.read_off = self.read_off.saturating_add(n as u64);
        if self.head >= self.buf.len() {
            // Everything consumed: reuse the allocation from the front.
            self.buf.clear();
            self.head = 0;
        }
    }

    /// Discards the next `n` stream bytes from the read position, whether or
    /// not they have arrived. Bytes not yet arrived are never buffered:
    /// when they come, `insert` counts them as `skipped`.
    pub fn skip(&mut self, n: u64) {
        let live = self.contiguous().len();
        if n <= live as u64 {
            self.consume(n as usize);
            return;
        }
        self.consume(live);
        let from = self.read_off;
        let to = from.saturating_add(n - live as u64);
        if self.skip_range.end == from && !self.skip_range.is_empty() {
            self.skip_range.end = to;
        } else {
            self.skip_range = from..to;
        }
        self.read_off = to;
        self.drop_pieces_before(to);
        self.absorb_ready();
    }

    /// Whether `len` bytes at `seq` would be the next in-order bytes with
    /// nothing held before or after them, and `insert` would take them all
    /// (within `max_buffered`): the reader may then read them in place and
    /// `pass` what it took, instead of having them copied in first.
    pub fn reads_in_place(&self, seq: u32, len: usize) -> bool {
        self.contiguous().is_empty()
            && self.ooo.is_empty()
            && seq == self.next_seq()
            && len <= self.limits.max_buffered
            && self.read_off.checked_add(len as u64).is_some()
    }

    /// The reader took `n` bytes at the read position straight from a
    /// segment (`reads_in_place`): the same state as inserting them and
    /// `consume`-ing them, without holding them. Clamped to nothing when
    /// bytes are held (then the read position is theirs).
    pub fn pass(&mut self, n: usize) {
        if self.contiguous().is_empty() && self.ooo.is_empty() {
            self.read_off = self.read_off.saturating_add(n as u64);
        }
    }

    /// Out-of-order data is held behind missing bytes.
    pub fn has_hole(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// Gives up on the first hole: the read position moves to the first held
    /// out-of-order byte. Returns the size of the hole (bytes never seen), 0
    /// if there is none (then nothing changes). Unconsumed in-order bytes
    /// before the hole are dropped as well, since a parser cannot continue
    /// its framing across a gap; they are not part of the returned count.
    pub fn skip_hole(&mut self) -> u64 {
        let Some(first) = self.ooo.first() else {
            return 0;
        };
        let target = first.off;
        let lost = target.saturating_sub(self.contig_end());
        self.buf.clear();
        self.head = 0;
        self.read_off = target;
        self.absorb_ready();
        lost
    }

    /// Sequence number of the first byte of `contiguous()` (the next byte
    /// the reader expects).
    pub fn next_seq(&self) -> u32 {
        // Truncation is the point: offsets map to sequence numbers mod 2^32.
        self.start_seq.wrapping_add(self.read_off as u32)
    }

    /// Absolute stream offset of the first byte of `contiguous()`: bytes
    /// consumed + skipped + lost so far.
    pub fn offset(&self) -> u64 {
        self.read_off
    }

    /// Payload bytes held in total (in-order unconsumed + out-of-order).
    pub fn buffered(&self) -> usize {
        self.contiguous().len().saturating_add(self.ooo_bytes)
    }

    /// Added: out-of-order pieces held (compare with `max_segments`).
    pub fn segments(&self) -> usize {
        self.ooo.len()
    }

    /// Added: payload bytes currently allocated (buffer capacity plus
    /// pieces); never more than `max_buffered`.
    pub fn allocated(&self) -> usize {
        self.buf.capacity().saturating_add(self.ooo_bytes)
    }

    /// Offset one past the in-order run.
    fn contig_end(&self) -> u64 {
        self.read_off.saturating_add(self.contiguous().len() as u64)
    }

    /// Read-only pass over `[s, s + data.len())`, `s >= read_off`: counts
    /// bytes already held (and how many differ) and the new bytes.
    fn survey(&self, s: u64, data: &[u8]) -> Survey {
        let e = s.saturating_add(data.len() as u64);
        let ce = self.contig_end();
        let mut sv = Survey::default();
        let mut cur = s;
        if s < ce {
            let ov_end = e.min(ce);
            let held = self
                .contiguous()
                .get(idx(s, self.read_off)..idx(ov_end, self.read_off))
                .unwrap_or(&[]);
            let new = data.get(..idx(ov_end, s)).unwrap_or(&[]);
            sv.duplicate += new.len();
            sv.conflict += mismatches(held, new);
            cur = ov_end;
        }
        let lo = self.ooo.partition_point(|p| p.end() <= cur);
        for p in self.ooo.get(lo..).unwrap_or(&[]) {
            if cur >= e || p.off >= e {
                break;
            }
            if p.off > cur {
                sv.new_bytes += idx(p.off, cur);
                cur = p.off;
            }
            let ov_end = p.end().min(e);
            let held = p
                .data
                .get(idx(cur, p.off)..idx(ov_end, p.off))
                .unwrap_or(&[]);
            let new = data.get(idx(cur, s)..idx(ov_end, s)).unwrap_or(&[]);
            sv.duplicate += new.len();
            sv.conflict += mismatches(held, new);
            cur = ov_end;
        }
        if cur < e {
            sv.new_bytes += idx(e, cur);
        }
        sv
    }

    /// Appends `[contig_end, e)` to the in-order run, taking held pieces'
    /// bytes where they exist (first write wins) and the segment's bytes in
    /// the holes, then any pieces that now touch the run. Requires
    /// `s <= contig_end < e` and the limit check done.
    fn extend_run(&mut self, s: u64, data: &[u8]) {
        let e = s.saturating_add(data.len() as u64);
        let ce = self.contig_end();
        // Pieces that end up inside the run: those before e, then any chain
        // of adjacent ones (disjointness makes `off <= reach` mean "touches").
        let mut reach = e;
        let mut absorbed = 0;
        let mut absorbed_bytes = 0usize;
        for p in &self.ooo {
            if p.off > reach {
                break;
            }
            reach = reach.max(p.end());
            absorbed += 1;
            absorbed_bytes += p.data.len();
        }
        let ooo_after = self.ooo_bytes.saturating_sub(absorbed_bytes);
        self.reserve_run(idx(reach, ce), ooo_after);

        let mut cur = ce;
        let mut pieces = self.ooo.get(..absorbed).unwrap_or(&[]).iter().peekable();
        while cur < reach {
            match pieces.peek() {
                Some(p) if p.off <= cur => {
                    let tail = p.data.get(idx(cur, p.off)..).unwrap_or(&[]);
                    self.buf.extend_from_slice(tail);
                    cur = p.end();
                    pieces.next();
                }
                next => {
                    let gap_end = next.map_or(reach, |p| p.off).min(e);
                    if gap_end <= cur {
                        break; // unreachable by the invariants; never loop forever
                    }
                    let new = data.get(idx(cur, s)..idx(gap_end, s)).unwrap_or(&[]);
                    self.buf.extend_from_slice(new);
                    cur = gap_end;
                }
            }
        }
        self.ooo.drain(..absorbed.min(self.ooo.len()));
        self.ooo_bytes = ooo_after;
    }

    /// Plans storing `[s, e)` out of order (`s > contig_end`): the window
    /// is every piece overlapping or touching `[s, e)`; together with the
    /// new runs it covers one range without holes. Runs are joined greedily
    /// while the joined piece stays within `COALESCE_MAX`.
    fn plan(&self, s: u64, e: u64) -> Plan {
        let lo = self.ooo.partition_point(|p| p.end() < s);
        let hi = self.ooo.partition_point(|p| p.off <= e).max(lo);
        let window = self.ooo.get(lo..hi).unwrap_or(&[]);
        let mut runs = Vec::with_capacity(window.len().saturating_mul(2).saturating_add(1));
        let mut cur = s;
        for (i, p) in window.iter().enumerate() {
            if p.off > cur {
                runs.push(Run {
                    off: cur,
                    end: p.off,
                    old: None,
                });
            }
            runs.push(Run {
                off: p.off,
                end: p.end(),
                old: Some(i),
            });
            cur = cur.max(p.end());
        }
        if cur < e {
            runs.push(Run {
                off: cur,
                end: e,
                old: None,
            });
        }
        let mut outs: Vec<Range<usize>> = Vec::with_capacity(runs.len());
        let mut out_off = 0u64;
        for (i, r) in runs.iter().enumerate() {
            if let Some(last) = outs.last_mut()
                && let Some(prev) = runs.get(last.end - 1)
                && prev.end == r.off
                && idx(r.end, out_off) <= COALESCE_MAX
            {
                last.end = i + 1;
            } else {
                outs.push(i..i + 1);
                out_off = r.off;
            }
        }
        Plan { lo, hi, runs, outs }
    }

    /// Carries out `plan` for `[s, s + data.len())`: old pieces keep their
    /// bytes (first write wins), new runs take the segment's. The limit check
    /// is done.
    fn add_pieces(&mut self, s: u64, data: &[u8], new_bytes: usize, plan: Plan) {
        // Keep buf.capacity() + ooo_bytes <= max_buffered: give back slack
        // from the in-order buffer if the new pieces need it.
        let ooo_after = self.ooo_bytes.saturating_add(new_bytes);
        let budget = self.cap().saturating_sub(ooo_after);
        if self.buf.capacity() > budget {
            self.compact();
            self.buf.shrink_to(budget);
        }
        let hi = plan.hi.min(self.ooo.len());
        let lo = plan.lo.min(hi);
        let mut old: Vec<Piece> = self.ooo.drain(lo..hi).collect();
        let mut merged = Vec::with_capacity(plan.outs.len());
        for out in plan.outs {
            let runs = plan.runs.get(out).unwrap_or(&[]);
            let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
                continue;
            };
            if let [Run { old: Some(i), .. }] = runs
                && let Some(p) = old.get_mut(*i)
            {
                // Unchanged piece: move it, no copy.
                merged.push(Piece {
                    off: p.off,
                    data: std::mem::take(&mut p.data),
                });
                continue;
            }
            let mut bytes = Vec::with_capacity(idx(last.end, first.off));
            for r in runs {
                let src = match r.old.and_then(|i| old.get(i)) {
                    Some(p) => &*p.data,
                    None => data.get(idx(r.off, s)..idx(r.end, s)).unwrap_or(&[]),
                };
                bytes.extend_from_slice(src);
            }
            merged.push(Piece {
                off: first.off,
                data: bytes.into_boxed_slice(),
            });
        }
        merged.retain(|p| !p.data.is_empty());
        self.ooo.splice(lo..lo, merged);
        self.ooo_bytes = ooo_after;
    }

    /// Drops held pieces (or their heads) below offset `to`.
    fn drop_pieces_before(&mut self, to: u64) {
        let cut = self.ooo.partition_point(|p| p.end() <= to);
        let dropped: usize = self.ooo.drain(..cut).map(|p| p.data.len()).sum();
        self.ooo_bytes = self.ooo_bytes.saturating_sub(dropped);
        if let Some(first) = self.ooo.first_mut()
            && first.off < to
        {
            let k = idx(to, first.off);
            first.data = Box::from(first.data.get(k..).unwrap_or(&[]));
            first.off = to;
            self.ooo_bytes = self.ooo_bytes.saturating_sub(k);
        }
    }

    /// Moves pieces that touch the in-order run into it.
    fn absorb_ready(&mut self) {
        let mut reach = self.contig_end();
        let mut absorbed = 0;
        let mut absorbed_bytes = 0usize;
        for p in &self.ooo {
            if p.off != reach {
                break;
            }
            reach = p.end();
            absorbed += 1;
            absorbed_bytes += p.data.len();
        }
        if absorbed == 0 {
            return;
        }
        let ooo_after = self.ooo_bytes.saturating_sub(absorbed_bytes);
        self.reserve_run(absorbed_bytes, ooo_after);
        for p in self.ooo.drain(..absorbed) {
            self.buf.extend_from_slice(&p.data);
        }
        self.ooo_bytes = ooo_after;
    }

    /// Makes room for `additional` in-order bytes without letting
    /// `buf.capacity() + ooo_after` pass `max_buffered`. The caller has
    /// checked that the bytes themselves fit.
    fn reserve_run(&mut self, additional: usize, ooo_after: usize) {
        if self.buf.capacity() - self.buf.len() >= additional {
            return;
        }
        // Drop the consumed prefix before growing: each consumed byte is
        // moved over at most once per doubling, so appends stay amortised O(1).
        self.compact();
        let need = self.buf.len().saturating_add(additional);
        if need <= self.buf.capacity() {
            return;
        }
        let budget = self.cap().saturating_sub(ooo_after);
        let target = self.buf.capacity().saturating_mul(2).min(budget).max(need);
        self.buf.reserve_exact(target - self.buf.len());
    }

    /// Bytes this stream may allocate now: its limit, or less while an
    /// `insert_within` is in progress.
    fn cap(&self) -> usize {
        self.limits.max_buffered.min(self.alloc_cap)
    }

    fn compact(&mut self) {
        let head = self.head.min(self.buf.len());
        self.buf.drain(..head);
        self.head = 0;
    }

    /// Test helper: asserts the invariants written in the module docs.
    #[cfg(test)]
    fn check_invariants(&self) {
        assert!(self.head <= self.buf.len());
        let ce = self.contig_end();
        let mut prev_end = ce;
        let mut sum = 0;
        for p in &self.ooo {
            assert!(!p.data.is_empty(), "empty piece");
            assert!(p.off > ce, "piece touching the run was not absorbed");
            assert!(p.off >= prev_end, "overlapping pieces");
            prev_end = p.end();
            sum += p.data.len();
        }
        assert_eq!(sum, self.ooo_bytes);
        assert!(self.ooo.len() <= self.limits.max_segments);
        assert!(self.buffered() <= self.limits.max_buffered);
        assert!(
            self.allocated() <= self.limits.max_buffered,
            "allocated {} > max",
            self.allocated()
        );
    }
}

/// `a - b` as an index; callers guarantee `b <= a` and that the distance is
/// within one segment or one buffer, so it fits in usize.
fn idx(a: u64, b: u64) -> usize {
    usize::try_from(a.saturating_sub(b)).unwrap_or(usize::MAX)
}

fn mismatches(held: &[u8], new: &[u8]) -> usize {
    if held == new {
        0
    } else {
        held.iter().zip(new).filter(|(a, b)| a != b).count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};
    use std::collections::BTreeMap;

    const BIG: StreamLimits = StreamLimits {
        max_buffered: 1 << 20,
        max_segments: 1024,
    };

    fn bytes(range: Range<u8>) -> Vec<u8> {
        range.collect()
    }

    fn ok(stored: usize, duplicate: usize, conflict: usize, skipped: usize) -> InsertOutcome {
        InsertOutcome {
            stored,
            duplicate,
            conflict,
            skipped,
            status: InsertStatus::Ok,
        }
    }

    #[test]
    fn in_order_append_and_consume() {
        let mut s = Stream::new(1000, BIG);
        assert_eq!(s.insert(1000, b"hello "), ok(6, 0, 0, 0));
        assert_eq!(s.insert(1006, b"world"), ok(5, 0, 0, 0));
        assert_eq!(s.contiguous(), b"hello world");
        assert!(!s.has_hole());
        s.consume(6);
        assert_eq!(s.contiguous(), b"world");
        assert_eq!(s.offset(), 6);
        assert_eq!(s.next_seq(), 1006);
        assert_eq!(s.buffered(), 5);
        s.consume(100); // clamped
        assert_eq!(s.contiguous(), b"");
        assert_eq!(s.offset(), 11);
        assert_eq!(s.next_seq(), 1011);
        s.check_invariants();
    }

    /// Reading a segment in place (`reads_in_place`, `pass`, then inserting
    /// what was left unread) ends in the state insert-then-consume does,
    /// and is refused whenever insert would hold or refuse other bytes.
    #[test]
    fn bytes_read_in_place_leave_the_state_insert_then_consume_does() {
        let limits = StreamLimits {
            max_buffered: 64,
            max_segments: 4,
        };
        let data = bytes(0..50);
        let mut copied = Stream::new(1000, limits);
        assert_eq!(copied.insert(1000, &data), ok(50, 0, 0, 0));
        copied.consume(30);
        let mut read = Stream::new(1000, limits);
        assert!(read.reads_in_place(1000, data.len()));
        read.pass(30);
        assert_eq!(read.insert(read.next_seq(), &data[30..]), ok(20, 0, 0, 0));
        assert_eq!(read.contiguous(), copied.contiguous());
        assert_eq!(read.offset(), copied.offset());
        assert_eq!(read.next_seq(), copied.next_seq());
        read.check_invariants();
        // Held bytes, a hole, another sequence number, over the limit: no.
        assert!(!read.reads_in_place(read.next_seq(), 1), "bytes held");
        read.consume(20);
        assert!(read.reads_in_place(1050, 64));
        assert!(!read.reads_in_place(1050, 65), "over max_buffered");
        assert!(!read.reads_in_place(1051, 1), "not the next byte");
        read.insert(1060, b"x");
        assert!(!read.reads_in_place(1050, 1), "a piece after a hole");
        read.pass(5);
        assert_eq!(read.offset(), 50, "pass moves nothing while bytes are held");
    }

    #[test]
    fn reordered_segments_join_when_the_hole_fills() {
        let mut s = Stream::new(0, BIG);
        assert_eq!(s.insert(20, &bytes(20..30)), ok(10, 0, 0, 0));
        assert_eq!(s.insert(10, &bytes(10..15)), ok(5, 0, 0, 0));
        assert!(s.has_hole());
        assert_eq!(s.segments(), 2);
        assert_eq!(s.contiguous(), b"");
        assert_eq!(s.buffered(), 15);
        s.check_invariants();
        // Fills [0,10) and, spanning the hole [15,20), reaches the piece at 20.
        assert_eq!(s.insert(0, &bytes(0..20)), ok(15, 5, 0, 0));
        assert_eq!(s.contiguous(), &bytes(0..30)[..]);
        assert!(!s.has_hole());
        assert_eq!(s.segments(), 0);
        s.check_invariants();
    }

    #[test]
    fn duplicates_of_held_and_consumed_bytes() {
        let mut s = Stream::new(0, BIG);
        s.insert(0, &bytes(0..10));
        assert_eq!(s.insert(0, &bytes(0..10)), ok(0, 10, 0, 0));
        s.insert(20, &bytes(20..25));
        assert_eq!(s.insert(20, &bytes(20..25)), ok(0, 5, 0, 0));
        s.consume(10);
        let old = s.insert(0, &bytes(0..10));
        assert_eq!(old.status, InsertStatus::Old);
        assert_eq!((old.stored, old.duplicate, old.conflict), (0, 10, 0));
        assert_eq!(s.buffered(), 5);
        s.check_invariants();
    }

    #[test]
    fn partial_overlap_keeps_only_the_new_part() {
        let mut s = Stream::new(0, BIG);
        s.insert(0, &bytes(0..10));
        s.consume(4);
        // 0..4 consumed, 4..10 held, 10..15 new.
        assert_eq!(s.insert(0, &bytes(0..15)), ok(5, 10, 0, 0));
        assert_eq!(s.contiguous(), &bytes(4..15)[..]);
        // Out of order: piece [30,40), then [25,35) adds only [25,30).
        s.insert(30, &bytes(30..40));
        assert_eq!(s.insert(25, &bytes(25..35)), ok(5, 5, 0, 0));
        // A segment over two pieces and the hole between them.
        s.insert(50, &bytes(50..55));
        assert_eq!(s.insert(38, &bytes(38..58)), ok(13, 7, 0, 0));
        assert_eq!(s.segments(), 1);
        s.insert(15, &bytes(15..25));
        assert_eq!(s.contiguous(), &bytes(4..58)[..]);
        s.check_invariants();
    }

    #[test]
    fn conflicting_overlap_first_write_wins() {
        let mut s = Stream::new(0, BIG);
        s.insert(0, b"abcdef");
        assert_eq!(s.insert(2, b"XdYf"), ok(0, 4, 2, 0));
        s.insert(10, b"klmn");
        assert_eq!(s.insert(8, b"ijKLmnop"), ok(4, 4, 2, 0));
        s.insert(6, b"gh");
        assert_eq!(s.contiguous(), b"abcdefghijklmnop");
        // Consumed bytes are not held: a different retransmission is only a
        // duplicate.
        s.consume(16);
        let o = s.insert(0, b"ZZZZ");
        assert_eq!(
            (o.status, o.duplicate, o.conflict),
            (InsertStatus::Old, 4, 0)
        );
        s.check_invariants();
    }

    #[test]
    fn skip_before_data_arrives() {
        let mut s = Stream::new(500, BIG);
        s.skip(10);
        assert_eq!(s.offset(), 10);
        assert_eq!(s.next_seq(), 510);
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.insert(500, &bytes(0..20)), ok(10, 0, 0, 10));
        assert_eq!(s.contiguous(), &bytes(10..20)[..]);
        let o = s.insert(502, &bytes(2..6));
        assert_eq!(
            (o.status, o.skipped, o.duplicate),
            (InsertStatus::Old, 4, 0)
        );
        s.check_invariants();
    }

    #[test]
    fn skip_after_data_arrives() {
        let mut s = Stream::new(0, BIG);
        s.insert(0, &bytes(0..20));
        s.skip(5);
        assert_eq!(s.contiguous(), &bytes(5..20)[..]);
        assert_eq!(s.offset(), 5);
        // Those bytes had arrived: a retransmission is a duplicate.
        let o = s.insert(0, &bytes(0..5));
        assert_eq!(
            (o.status, o.duplicate, o.skipped),
            (InsertStatus::Old, 5, 0)
        );
        // Skip past the arrived data: the rest is pending.
        s.skip(25);
        assert_eq!(s.offset(), 30);
        assert_eq!(s.contiguous(), b"");
        assert_eq!(s.insert(20, &bytes(20..40)), ok(10, 0, 0, 10));
        // Consecutive skips past arrived data extend one range.
        s.consume(10);
        s.skip(5);
        s.skip(5);
        assert_eq!(s.insert(40, &bytes(40..50)).skipped, 10);
        s.check_invariants();
    }

    #[test]
    fn skip_over_partly_held_out_of_order_data() {
        let mut s = Stream::new(0, BIG);
        s.insert(0, &bytes(0..10));
        s.insert(15, &bytes(15..25));
        s.insert(30, &bytes(30..40));
        s.skip(20);
        // [15,20) dropped, [20,25) now in order, hole [25,30) remains.
        assert_eq!(s.offset(), 20);
        assert_eq!(s.contiguous(), &bytes(20..25)[..]);
        assert!(s.has_hole());
        assert_eq!(s.buffered(), 15);
        s.check_invariants();
        let o = s.insert(10, &bytes(10..20));
        assert_eq!(
            (o.status, o.skipped, o.duplicate),
            (InsertStatus::Old, 10, 0)
        );
        assert_eq!(s.insert(25, &bytes(25..30)), ok(5, 0, 0, 0));
        assert_eq!(s.contiguous(), &bytes(20..40)[..]);
        // A skip that ends exactly at a piece absorbs it.
        s.insert(50, &bytes(50..60));
        s.skip(30);
        assert_eq!(s.contiguous(), &bytes(50..60)[..]);
        assert!(!s.has_hole());
        s.check_invariants();
    }

    #[test]
    fn skip_hole_moves_to_the_first_held_byte() {
        let mut s = Stream::new(0, BIG);
        assert_eq!(s.skip_hole(), 0);
        s.insert(0, &bytes(0..5));
        assert_eq!(s.skip_hole(), 0);
        assert_eq!(s.contiguous(), &bytes(0..5)[..]);
        s.insert(10, &bytes(10..20));
        s.insert(25, &bytes(25..30));
        assert_eq!(s.skip_hole(), 5);
        assert_eq!(s.offset(), 10);
        assert_eq!(s.contiguous(), &bytes(10..20)[..]);
        assert!(s.has_hole());
        s.consume(3);
        assert_eq!(s.skip_hole(), 5);
        assert_eq!(s.contiguous(), &bytes(25..30)[..]);
        assert!(!s.has_hole());
        assert_eq!(s.skip_hole(), 0);
        // Late arrivals of lost bytes are old duplicates.
        let o = s.insert(5, &bytes(5..10));
        assert_eq!((o.status, o.duplicate), (InsertStatus::Old, 5));
        s.check_invariants();
    }

    #[test]
    fn limit_exceeded_leaves_state_unchanged() {
        let lim = StreamLimits {
            max_buffered: 20,
            max_segments: 2,
        };
        let mut s = Stream::new(7, lim);
        s.insert(7, &bytes(0..10));
        let before = s.clone();
        let o = s.insert(17, &bytes(10..21)); // 21 > 20 bytes
        assert_eq!(o, InsertOutcome::bare(InsertStatus::LimitExceeded));
        assert_eq!(s, before);
        // Piece limit.
        s.insert(7 + 12, &bytes(12..13));
        s.insert(7 + 14, &bytes(14..15));
        let before = s.clone();
        assert_eq!(
            s.insert(7 + 16, &bytes(16..17)).status,
            InsertStatus::LimitExceeded
        );
        assert_eq!(s, before);
        // A segment bridging both holes would add new bytes across two gaps
        // but extends the run, so it is allowed at the piece limit.
        assert_eq!(s.insert(7 + 10, &bytes(10..16)), ok(4, 2, 0, 0));
        assert_eq!(s.contiguous(), &bytes(0..16)[..]);
        // Pure duplicates are never rejected.
        assert_eq!(s.insert(7, &bytes(0..16)), ok(0, 16, 0, 0));
        // Zero limits: everything new is rejected, nothing allocated.
        let mut z = Stream::new(
            0,
            StreamLimits {
                max_buffered: 0,
                max_segments: 0,
            },
        );
        assert_eq!(z.insert(0, b"x").status, InsertStatus::LimitExceeded);
        assert_eq!(z.insert(5, b"x").status, InsertStatus::LimitExceeded);
        assert_eq!(z.allocated(), 0);
        s.check_invariants();
        z.check_invariants();
    }

    #[test]
    fn wraps_past_2_pow_32() {
        let isn: u32 = 0xFFFF_FF00;
        let start = isn.wrapping_add(1);
        let data: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
        let mut s = Stream::new(start, BIG);
        // Out of order across the wrap: [300,600) (seq wrapped), then [0,300).
        assert_eq!(
            s.insert(start.wrapping_add(300), &data[300..]),
            ok(300, 0, 0, 0)
        );
        assert!(s.has_hole());
        assert_eq!(s.insert(start, &data[..300]), ok(300, 0, 0, 0));
        assert_eq!(s.contiguous(), &data[..]);
        s.consume(400);
        assert_eq!(s.next_seq(), isn.wrapping_add(401));
        assert!(s.next_seq() < 0x1000);
        // A retransmission from before the wrap is old.
        assert_eq!(
            s.insert(start.wrapping_add(10), &data[10..100]).status,
            InsertStatus::Old
        );
        // Straddling the read position across the wrap.
        assert_eq!(
            s.insert(start.wrapping_add(390), &data[390..600]),
            ok(0, 210, 0, 0)
        );
        s.check_invariants();
    }

    #[test]
    fn old_data_and_data_before_the_stream_start() {
        let mut s = Stream::new(1_000_000, BIG);
        // Before the first byte (e.g. a midstream pickup, then earlier data).
        let o = s.insert(999_990, &[0; 10]);
        assert_eq!((o.status, o.duplicate), (InsertStatus::Old, 10));
        assert_eq!(s.insert(999_995, &[1; 10]), ok(5, 5, 0, 0));
        // 2^31 away counts as behind (RFC 9293 §3.4 modulo arithmetic).
        let far = s.next_seq().wrapping_add(1 << 31);
        assert_eq!(s.insert(far, &[2; 10]).status, InsertStatus::Old);
        // Just under 2^31 ahead is held out of order.
        let ahead = s.next_seq().wrapping_add((1 << 31) - 11);
        assert_eq!(s.insert(ahead, &[3; 10]), ok(10, 0, 0, 0));
        assert_eq!(s.skip_hole(), (1 << 31) - 16);
        assert_eq!(s.contiguous(), &[3; 10]);
        s.check_invariants();
    }

    #[test]
    fn huge_skip_never_panics() {
        let mut s = Stream::new(0, BIG);
        s.insert(0, b"abc");
        s.skip(u64::MAX);
        assert_eq!(s.offset(), u64::MAX);
        let _ = s.next_seq();
        assert_eq!(
            s.insert(s.next_seq(), b"x").status,
            InsertStatus::LimitExceeded
        );
        assert_eq!(
            s.insert(s.next_seq().wrapping_sub(1), b"x").status,
            InsertStatus::Old
        );
        s.skip(10);
        s.consume(10);
        assert_eq!(s.skip_hole(), 0);
        s.check_invariants();
    }

    #[test]
    fn memory_stays_within_max_buffered() {
        let lim = StreamLimits {
            max_buffered: 4096,
            max_segments: 64,
        };
        let mut s = Stream::new(0, lim);
        let data = vec![9u8; 10_000];
        let mut off = 0u32;
        // In-order appends with partial consumption, plus out-of-order pieces.
        for i in 0..200u32 {
            let len = 100 + (i % 7) * 50;
            let o = s.insert(off, &data[..len as usize]);
            if o.status == InsertStatus::Ok {
                off += len;
            }
            let hole_seq = off + 2000;
            let _ = s.insert(hole_seq, &data[..300]);
            s.consume(s.contiguous().len() / 2 + 1);
            s.check_invariants();
        }
    }

    /// The caller's allocation cap (the engine's memory budget) is checked
    /// before anything is allocated: over it, nothing changes.
    #[test]
    fn insert_within_refuses_past_the_cap_and_changes_nothing() {
        let mut s = Stream::new(0, BIG);
        let data = vec![7u8; 3000];
        // In order, then out of order: both refused past a 1000-byte cap.
        assert_eq!(
            s.insert_within(0, &data, 1000).status,
            InsertStatus::OverBudget
        );
        assert_eq!(
            s.insert_within(5000, &data, 1000).status,
            InsertStatus::OverBudget
        );
        assert_eq!((s.allocated(), s.buffered()), (0, 0));
        let before = s.clone();
        assert_eq!(
            s.insert_within(0, &data[..800], 1000).status,
            InsertStatus::Ok
        );
        assert!(s.allocated() <= 1000, "{}", s.allocated());
        // A cap below what is held keeps what is held but takes nothing new.
        let held = s.clone();
        assert_eq!(
            s.insert_within(800, &data[..300], 10).status,
            InsertStatus::OverBudget
        );
        assert_eq!(s, held);
        assert_ne!(s, before);
        // The stream's own limits still win over a generous cap.
        let mut small = Stream::new(
            0,
            StreamLimits {
                max_buffered: 100,
                max_segments: 1,
            },
        );
        assert_eq!(
            small.insert_within(0, &data[..200], usize::MAX).status,
            InsertStatus::LimitExceeded
        );
        s.check_invariants();
        small.check_invariants();
    }

    // ---- model-based property test against a first-write-wins oracle ----

    #[derive(Clone, Debug)]
    enum Op {
        Consume(usize),
        Skip(u64),
        SkipHole,
        Nothing,
    }

    #[derive(Clone, Debug)]
    struct Script {
        isn: u32,
        stream: Vec<u8>,
        /// (offset, len, corrupt xor), in insertion order.
        segments: Vec<(usize, usize, u8)>,
        ops: Vec<Op>,
        limits: StreamLimits,
    }

    /// The oracle: the first byte stored at each offset, and the read
    /// position. Held bytes are exactly those at or after the read position.
    struct Model {
        /// Indexed by offset (the script's offsets are below the stream length).
        written: Vec<Option<u8>>,
        read_off: u64,
    }

    impl Model {
        fn get(&self, o: u64) -> Option<u8> {
            self.written
                .get(usize::try_from(o).ok()?)
                .copied()
                .flatten()
        }
        fn after(&self, o: u64) -> &[Option<u8>] {
            let o = usize::try_from(o)
                .unwrap_or(usize::MAX)
                .min(self.written.len());
            &self.written[o..]
        }
        fn contig_end(&self) -> u64 {
            self.read_off
                + self
                    .after(self.read_off)
                    .iter()
                    .take_while(|b| b.is_some())
                    .count() as u64
        }
        fn contiguous(&self) -> Vec<u8> {
            self.after(self.read_off).iter().map_while(|b| *b).collect()
        }
        fn buffered(&self) -> usize {
            self.after(self.read_off).iter().flatten().count()
        }
        /// First held byte after the in-order run, if any.
        fn next_held(&self) -> Option<u64> {
            let ce = self.contig_end();
            let k = self.after(ce).iter().position(|b| b.is_some())?;
            Some(ce + k as u64)
        }
        fn has_hole(&self) -> bool {
            self.next_held().is_some()
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..700).prop_map(Op::Consume),
            1 => (0u64..400).prop_map(Op::Skip),
            1 => Just(Op::SkipHole),
            3 => Just(Op::Nothing),
        ]
    }

    /// A random stream cut into tiling segments, plus extra overlapping
    /// copies (some corrupted), in shuffled order.
    fn script(
        with_skips: bool,
        limits: BoxedStrategy<StreamLimits>,
    ) -> impl Strategy<Value = Script> {
        let isn = prop_oneof![Just(0xFFFF_FF00u32), Just(0u32), any::<u32>()];
        // Bytes from a seeded generator: generating 4096 shrinkable u8s is
        // slow and content shrinking is of little use here.
        let stream = (0usize..4096, any::<u64>()).prop_map(|(n, seed)| {
            let mut x = seed | 1;
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 32) as u8
                })
                .collect::<Vec<u8>>()
        });
        (isn, stream, limits).prop_flat_map(move |(isn, stream, limits)| {
            let n = stream.len();
            let cuts = proptest::collection::vec(0..=n, 0..48);
            let extras = proptest::collection::vec(
                (
                    0..=n,
                    1usize..400,
                    prop_oneof![3 => Just(0u8), 1 => 1u8..=255],
                ),
                0..24,
            );
            let ops = proptest::collection::vec(op(), 0..80);
            (Just(isn), Just(stream), cuts, extras, ops, Just(limits))
                .prop_flat_map(|(isn, stream, mut cuts, extras, ops, limits)| {
                    let n = stream.len();
                    cuts.push(0);
                    cuts.push(n);
                    cuts.sort_unstable();
                    cuts.dedup();
                    let mut segs: Vec<(usize, usize, u8)> =
                        cuts.windows(2).map(|w| (w[0], w[1] - w[0], 0u8)).collect();
                    for (off, len, x) in extras {
                        let len = len.min(n - off);
                        if len > 0 {
                            segs.push((off, len, x));
                        }
                    }
                    (
                        Just(isn),
                        Just(stream),
                        Just(segs).prop_shuffle(),
                        Just(ops),
                        Just(limits),
                    )
                })
                .prop_map(move |(isn, stream, segments, mut ops, limits)| {
                    if !with_skips {
                        for o in &mut ops {
                            if matches!(o, Op::Skip(_) | Op::SkipHole) {
                                *o = Op::Nothing;
                            }
                        }
                    }
                    Script {
                        isn,
                        stream,
                        segments,
                        ops,
                        limits,
                    }
                })
        })
    }

    /// Runs the script against the stream and the model, checking every
    /// observable after every step. Returns (everything read, total conflicts).
    fn run(sc: &Script) -> (Vec<u8>, usize) {
        let start = sc.isn.wrapping_add(1);
        let mut s = Stream::new(start, sc.limits);
        let mut m = Model {
            written: vec![None; sc.stream.len()],
            read_off: 0,
        };
        let mut read = Vec::new();
        let mut conflicts = 0;
        let mut skipped_ever = false;
        for (i, &(off, len, xor)) in sc.segments.iter().enumerate() {
            let mut payload = sc.stream[off..off + len].to_vec();
            if xor != 0 {
                for b in &mut payload {
                    *b ^= xor;
                }
            }
            // Model outcome.
            let (mut before, mut dup, mut conf, mut new) = (0, 0, 0, 0);
            for (k, &b) in payload.iter().enumerate() {
                let o = (off + k) as u64;
                if o < m.read_off {
                    before += 1;
                } else if let Some(h) = m.get(o) {
                    dup += 1;
                    conf += usize::from(h != b);
                } else {
                    new += 1;
                }
            }
            let snapshot = s.clone();
            let out = s.insert(start.wrapping_add(off as u32), &payload);
            match out.status {
                InsertStatus::LimitExceeded => {
                    assert_eq!(s, snapshot, "rejected insert changed state");
                    assert!(new > 0, "pure duplicate rejected");
                    // Extending the in-order run is bound by bytes only.
                    let ce = m.contig_end();
                    let extends = off as u64 <= ce && ce < (off + len) as u64;
                    assert!(m.buffered() + new > sc.limits.max_buffered || !extends);
                }
                st => {
                    let expect = if before == len {
                        InsertStatus::Old
                    } else {
                        InsertStatus::Ok
                    };
                    assert_eq!(st, expect);
                    assert_eq!(out.stored, new);
                    assert_eq!(out.duplicate + out.skipped, before + dup);
                    assert_eq!(out.conflict, conf);
                    if !skipped_ever {
                        assert_eq!(out.skipped, 0);
                    }
                    conflicts += out.conflict;
                    for (k, &b) in payload.iter().enumerate() {
                        let o = (off + k) as u64;
                        if o >= m.read_off {
                            m.written[o as usize].get_or_insert(b);
                        }
                    }
                }
            }
            match sc.ops.get(i).cloned().unwrap_or(Op::Nothing) {
                Op::Consume(n) => {
                    let n = n.min(s.contiguous().len());
                    read.extend_from_slice(&s.contiguous()[..n]);
                    s.consume(n);
                    m.read_off += n as u64;
                }
                Op::Skip(n) => {
                    skipped_ever = true;
                    s.skip(n);
                    m.read_off += n;
                }
                Op::SkipHole => {
                    let lost = s.skip_hole();
                    if let Some(next) = m.next_held() {
                        let ce = m.contig_end();
                        assert_eq!(lost, next - ce);
                        m.read_off = next;
                    } else {
                        assert_eq!(lost, 0);
                    }
                }
                Op::Nothing => {}
            }
            s.check_invariants();
            assert_eq!(s.offset(), m.read_off);
            assert_eq!(s.next_seq(), start.wrapping_add(m.read_off as u32));
            assert_eq!(s.contiguous(), &m.contiguous()[..]);
            assert_eq!(s.buffered(), m.buffered());
            assert_eq!(s.has_hole(), m.has_hole());
        }
        // Drain.
        read.extend_from_slice(s.contiguous());
        let n = s.contiguous().len();
        s.consume(n);
        (read, conflicts)
    }

    fn config() -> Config {
        Config {
            cases: 128,
            rng_seed: RngSeed::Fixed(0x6d74_6c73),
            failure_persistence: None,
            ..Config::default()
        }
    }

    fn big() -> BoxedStrategy<StreamLimits> {
        Just(BIG).boxed()
    }

    proptest! {
        #![proptest_config(config())]

        /// Consume only: everything read is the first-write-wins stream, in
        /// order and complete; conflicts only when something was corrupted.
        #[test]
        fn reads_equal_first_write_wins_oracle(sc in script(false, big())) {
            let (read, conflicts) = run(&sc);
            let mut first: BTreeMap<usize, u8> = BTreeMap::new();
            for &(off, len, xor) in &sc.segments {
                for k in 0..len {
                    first.entry(off + k).or_insert(sc.stream[off + k] ^ xor);
                }
            }
            let oracle: Vec<u8> = first.values().copied().collect();
            prop_assert_eq!(read, oracle);
            if sc.segments.iter().all(|&(_, _, x)| x == 0) {
                prop_assert_eq!(conflicts, 0);
            }
        }

        /// With skip() and skip_hole() interleaved: every step matches the model.
        #[test]
        fn matches_model_with_skips(sc in script(true, big())) {
            run(&sc);
        }

        /// Small limits: rejected inserts change nothing; limits always hold.
        #[test]
        fn matches_model_under_small_limits(
            sc in script(true, (0usize..1500, 0usize..6)
                .prop_map(|(b, n)| StreamLimits { max_buffered: b, max_segments: n }).boxed())
        ) {
            run(&sc);
        }
    }
}
