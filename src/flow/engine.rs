//! The per-worker engine: a bounded flow table, two reassembled streams per
//! flow, and one classifier per flow. It turns segments into reports.
//!
//! It owns TCP connection bookkeeping (who is the client, SYN/FIN/RST, idle
//! expiry by packet time) and the pumping of in-order stream bytes into the
//! classifier (Suricata's contract: the classifier says how many bytes it
//! consumed and how many the stream may skip). It must not parse TLS or
//! format output, and it never makes threads: one engine serves one shard.
//!
//! Invariants: one report per flow at most; a flow whose verdict is out keeps
//! no stream buffers (a small record remains until close or expiry so late
//! packets do not start a bogus midstream flow); every flow or byte dropped
//! because of a limit is counted in `EngineCounters`. Output order is
//! decided only by packet indexes, never by hash-map order, so file-mode
//! output does not depend on the thread count.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::cell::Cell;
use std::ops::{Index, IndexMut};
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::capture::counters::counters;
use crate::capture::segment::{Endpoint, FlowKey, Segment, Timestamp};
use crate::classify::{Classifier, Close, Direction, End, Proving};
use crate::flow::reassembly::{InsertStatus, Stream, StreamLimits};
use crate::flow::redirect::{self, Half, Redirects, Step};
use crate::tls::keylog::KeyLog;
use crate::tls::proof::Failure;
use crate::verdict::Outcome;
use crate::verdict::assemble::assemble;
use crate::verdict::{CertSeen, Decided, Ending, Event, FlowClose, Report, ReportOrder, Verdict};

/// Bounds on one engine (one worker shard): numbers only. The pipeline
/// derives them from the command line's limits and memory budget
/// (`pipeline::budget`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Flows tracked at once by this engine.
    pub max_flows: usize,
    /// Bytes buffered per direction (in-order unconsumed + out-of-order).
    pub stream_buffer: usize,
    /// Out-of-order segments held per direction.
    pub stream_segments: usize,
    /// Largest handshake message reassembled (TLS 1.2 Certificate chains).
    pub handshake_buffer: usize,
    /// Records read per direction before a verdict is forced.
    pub records_before_verdict: u32,
    /// Heap bytes this engine may hold for flows whose verdict is pending:
    /// their per-flow state, stream buffers and handshake buffers. Checked
    /// before every stream allocation; a flow that does not fit is given
    /// up (reported unknown, counted in `mem.flows_given_up`).
    pub buffer_budget: usize,
    /// Idle time after which an established flow is reported and dropped.
    pub idle_timeout: Timestamp,
    /// Idle time for a flow that never carried payload (SYN only).
    pub embryonic_timeout: Timestamp,
    /// How long a flow whose verdict is out, and which has closed, is kept
    /// to absorb retransmissions.
    pub closed_linger: Timestamp,
}

/// What a run asks of every engine besides its bounds: what to keep and
/// what to report. Built once (the pipeline's plan, from the command line
/// and the key log) and given to `Engine::new`; the default keeps and
/// reports nothing extra.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Plaintext bytes kept per direction for `-A`; 0 keeps none.
    pub preview_bytes: usize,
    /// Key log secrets (`--keylog`, pcapng DSBs): flows keep their
    /// protected handshake records and are decrypted at the verdict.
    pub keylog: Option<Arc<KeyLog>>,
    /// Report a `FlowClose` when a flow whose verdict is out ends (`--close`,
    /// metrics). Off: no close events at all.
    pub closes: bool,
    /// Report unanswered SYNs as verdicts (`-v`). Off: they are only
    /// counted (`flows.unanswered`), and no report is built for them.
    pub unanswered: bool,
}

impl Default for Limits {
    /// The limits of the only worker of a run with the default bounds:
    /// `--memory 256` divided by `pipeline::budget::plan` (which lowers the
    /// flow limit from 262,144 to what the table's share holds and leaves
    /// the rest for pending flows), the default per-direction bounds and
    /// timeouts. Plain numbers, since the engine sits below the pipeline; a
    /// test in `budget.rs` keeps them equal to the plan.
    fn default() -> Self {
        const KIB: usize = 1024;
        const SEC: i64 = 1_000_000;
        Limits {
            // 262,144 lowered by sixteenths until two tables' worth fit in
            // the table's share of one worker's 256 MiB.
            max_flows: 216_000,
            stream_buffer: 256 * KIB,
            stream_segments: 256,
            handshake_buffer: 64 * KIB,
            records_before_verdict: crate::classify::RECORDS_BEFORE_VERDICT,
            // The rest of the worker's share: 91.1 MiB (1.4 MiB went to
            // the iptables REDIRECT join tables, `flow::redirect`, 4.1 MiB
            // to a mapped input's window, `capture::window`, and an eighth
            // of the rest to the reports in flight, `pipeline::inflight`).
            buffer_budget: 95_494_316,
            idle_timeout: Timestamp(300 * SEC),
            embryonic_timeout: Timestamp(30 * SEC),
            closed_linger: Timestamp(10 * SEC),
        }
    }
}

counters! {
        /// Counters of one engine; summed across workers for the summary.
        pub struct EngineCounters {
    flows_created => "flows.created",
    flows_reported => "flows.reported",
    flows_expired => "flows.expired",
    /// Segments of flows that could not be created: table full of flows
    /// still waiting for their verdict.
    flows_table_full => "flows.table_full",
    /// Segments with neither SYN nor payload for an unknown flow (late ACKs,
    /// FINs, RSTs): no flow is created for them (M18 storms).
    segments_no_flow => "tcp.segments_without_flow",
    /// A new SYN reused the 4-tuple of a closed flow.
    flows_port_reuse => "flows.port_reuse",
    /// Flows whose client was guessed from port numbers.
    roles_guessed => "flows.client_guessed",
    bytes_duplicate => "stream.bytes_duplicate",
    /// Overlapping bytes that differed from the first copy (first wins, M13).
    bytes_overlap_conflict => "stream.bytes_overlap_conflict",
    /// Flows whose verdict was made unknown by such a conflict (M13).
    flows_ambiguous_overlap => "stream.ambiguous_flows",
    segments_old => "stream.segments_old",
    /// Inserts refused by a per-direction limit (bytes or out-of-order
    /// segments, M14).
    stream_limit_hits => "stream.limit_hits",
    gaps => "stream.gaps",
    gap_bytes => "stream.gap_bytes",
    /// Payload after a RST (M18).
    data_after_close => "tcp.data_after_close",
    /// RST segments that carried payload: the payload is ignored (M18).
    rst_payload => "tcp.rst_payload",
    /// Flows with more SYN or SYN-ACK sequence numbers than are kept as
    /// candidates: reported unknown (M12).
    syn_ambiguous => "tcp.syn_ambiguous",
    /// Certificates seen in clear that did not parse as X.509 (M25).
    cert_parse_errors => "identity.parse_errors",
    /// SYN-only flows dropped to make room in a full table (M11).
    flows_evicted_embryonic => "flows.evicted_embryonic",
    /// Flows whose verdict was out, dropped to make room in a full table.
    flows_evicted_decided => "flows.evicted_decided",
    /// Unanswered SYNs (`Flow::unanswered`): the client's SYN(s) only, no
    /// SYN-ACK, payload, FIN or RST. Not a decided flow: counted, printed
    /// only with `Options::unanswered`, however the flow ended.
    flows_unanswered => "flows.unanswered",
    /// Of which evicted from a full table (M11), expired (SYN-only idle
    /// timeout), or still open at the end of input.
    unanswered_evicted => "flows.unanswered_evicted",
    unanswered_expired => "flows.unanswered_expired",
    unanswered_at_end => "flows.unanswered_at_end",
    /// Flows given up because the worker's buffer budget was full: reported
    /// unknown, buffers freed.
    flows_given_up => "mem.flows_given_up",
    /// Of which the oldest pending flows (by last packet), given up so a
    /// new flow's bytes fit (`Engine::give_up_oldest`).
    given_up_oldest => "mem.oldest_given_up",
    /// Highest buffer-budget use seen, in bytes (summed over workers: an
    /// upper bound of the process's peak).
    buffer_peak => "mem.buffer_peak_bytes",
    /// Handshake messages that spanned several records (M22).
    tls_fragmented => "tls.record_fragmented",
    /// Flows whose TLS broke the record or handshake layer (M19-M21, M23).
    tls_malformed => "tls.malformed",
    /// Flows whose verdict was forced by the record limit (M23).
    tls_too_many_records => "tls.too_many_records",
    /// Flows whose hello declared more than the handshake buffer (M21).
    tls_handshake_too_large => "tls.handshake_too_large",
    /// Reply halves of iptables-REDIRECTed connections joined to their SYN
    /// half (flow/redirect.rs).
    redirect_joined => "redirect.joined",
    /// Joined connections whose redirect target answered the SYN too: given
    /// up as ambiguous.
    redirect_conflicts => "redirect.conflicts",
    /// Reply-half segments whose ACK did not line up with the client's
    /// stream: not joined.
    redirect_unaligned => "redirect.unaligned",
    /// Pending SYNs or joins forgotten because the join table was full.
    redirect_evicted => "redirect.evicted",
    /// Joined connections ended because their flow left the table (expiry,
    /// eviction, port reuse, end of input).
    redirect_ended => "redirect.ended",
    /// TLS 1.3 handshakes opened with a key log.
    decrypted_tls13 => "decrypt.tls13_handshakes",
    /// TLS <= 1.2 renegotiations opened with a key log.
    decrypted_renegotiations => "decrypt.tls12_renegotiations",
    /// Flows to decrypt whose client random is not in the key log.
    decrypt_no_secrets => "decrypt.no_secrets",
    /// Flows whose secrets did not open their records (wrong key log).
    decrypt_key_mismatch => "decrypt.key_mismatch",
    /// Flows in a cipher suite that is not decrypted (CBC, CCM).
    decrypt_unsupported_suite => "decrypt.unsupported_suite",
    /// Flows whose records were not all kept (cap) or captured.
    decrypt_incomplete => "decrypt.incomplete",
    }
}

/// Canonical side of a flow: the endpoint that sent a segment, `Lo` for
/// `key.lo` and `Hi` for `key.hi` (client and server are decided later, and
/// may change once: see `Flow::client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Lo,
    Hi,
}

impl Side {
    const BOTH: [Side; 2] = [Side::Lo, Side::Hi];

    fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }
}

/// One value per side of a flow, indexed by `Side`: the index cannot be
/// out of range, so per-side state needs no fallible `get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sides<T>([T; 2]);

impl<T> Sides<T> {
    fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl<T> Index<Side> for Sides<T> {
    type Output = T;
    fn index(&self, side: Side) -> &T {
        let [lo, hi] = &self.0;
        match side {
            Side::Lo => lo,
            Side::Hi => hi,
        }
    }
}

impl<T> IndexMut<Side> for Sides<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        let [lo, hi] = &mut self.0;
        match side {
            Side::Lo => lo,
            Side::Hi => hi,
        }
    }
}

struct Flow {
    key: FlowKey,
    first_index: u64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// Which canonical side is the client, once known.
    client: Option<Side>,
    /// ISN of the SYN each side sent.
    isn: Sides<Option<u32>>,
    /// How each side closed.
    closed: Sides<Option<Close>>,
    /// Everything needed only until the verdict: boxed, created at the first
    /// payload or FIN and freed with the verdict, so a SYN-only flow or a
    /// decided one stays small (issue 4: bytes per tracked flow).
    active: Option<Box<Active>>,
    reported: bool,
    /// A close event went out (`Options::closes`): at most one per flow.
    close_sent: bool,
    /// The verdict's class, outcome, basis and mesh, kept for the close
    /// line; None until a verdict was actually emitted.
    decided: Option<Decided>,
    payload_bytes: Sides<u64>,
    packets: u64,
    /// The classifier's heap bytes as `recharge` last summed them; None
    /// once anything may have changed the classifier since (every mutable
    /// path to it clears this: `classifier_mut`, `pump`, `read_in_place`,
    /// the assignments), so a segment that did not touch it is charged
    /// without re-summing its strings. It lives in what was spare room:
    /// the record stays 136 bytes. `client` was an `Option<usize>` (16
    /// bytes) until `Side` became an enum (1 byte); the record's size sets
    /// the flow table's cost (`table_bytes`), hence `budget::plan`'s flows
    /// per worker and buffer budgets, which must not change here.
    classifier_heap: Option<u32>,
}

/// The part of a flow that lives only until its verdict is out.
#[derive(Default)]
struct Active {
    /// Data sent by each side.
    streams: Sides<Option<Stream>>,
    /// Sequence number just past each side's FIN.
    fin_seq: Sides<Option<u32>>,
    /// Bytes the capture promised but did not hold (snaplen).
    missing: Sides<u64>,
    classifier: Option<Classifier>,
    /// Each side's SYN sequence numbers when it sent SYNs with different
    /// ones (hostile-inputs M12, CVE-2025-59147): the other side's ACK
    /// picks the real one. Empty in every normal connection.
    isn_candidates: Sides<Vec<u32>>,
    /// What this part holds, charged to the engine's buffer budget.
    charge: Charge,
}

/// Bytes a flow's pre-verdict part holds, charged to its engine's budget
/// meter and given back when the part is dropped, whatever drops it
/// (verdict, eviction, expiry, end of input, port reuse).
#[derive(Default)]
struct Charge {
    bytes: usize,
    meter: Option<Rc<Cell<usize>>>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(m) = &self.meter {
            m.set(m.get().saturating_sub(self.bytes));
        }
    }
}

/// SYN candidates kept per side (hostile-inputs M12): a client may retry
/// with a new ISN a few times; more than this on one 4-tuple before the
/// verdict is an attack on the stream's start.
const SYN_CANDIDATES: usize = 10;
/// SYN-ACK candidates kept (M12).
const SYN_ACK_CANDIDATES: usize = 5;

/// Heap bytes one slot of the flow table costs.
fn flow_slot_bytes() -> usize {
    // hashbrown: the (key, value) pair plus one control byte per bucket.
    std::mem::size_of::<(FlowKey, Flow)>() + 1
}

/// Worst-case bytes of a flow table limited to `max_flows` flows: its
/// buckets (a power of two, at most 7/8 full, as hashbrown allocates them)
/// twice, for the moment a full table is rebuilt (`make_room`) or grows, plus
/// the per-flow scratch of an eviction scan or the end-of-input list. The
/// table grows by doubling from empty, so a few flows occupy few pages.
pub fn table_bytes(max_flows: usize) -> usize {
    let buckets = (max_flows.saturating_mul(8) / 7 + 1).next_power_of_two();
    let scratch = max_flows.saturating_mul(std::mem::size_of::<(u8, Timestamp, FlowKey)>());
    buckets
        .saturating_mul(2)
        .saturating_mul(flow_slot_bytes())
        .saturating_add(scratch)
        .saturating_add(redirect::table_bytes(redirect::max_entries(max_flows)))
}

/// Fixed bytes of a flow's pre-verdict part, before any buffer.
pub fn active_bytes() -> usize {
    std::mem::size_of::<Active>()
}

impl Flow {
    fn active(&mut self) -> &mut Active {
        self.active.get_or_insert_with(Box::default)
    }

    fn classifier(&self) -> Option<&Classifier> {
        self.active.as_ref()?.classifier.as_ref()
    }

    /// The classifier, to change: its charged size is summed again.
    fn classifier_mut(&mut self) -> Option<&mut Classifier> {
        self.classifier_heap = None;
        self.active.as_mut()?.classifier.as_mut()
    }

    fn stream(&self, side: Side) -> Option<&Stream> {
        self.active.as_ref()?.streams[side].as_ref()
    }

    fn stream_mut(&mut self, side: Side) -> Option<&mut Stream> {
        self.active.as_mut()?.streams[side].as_mut()
    }

    fn missing(&self, side: Side) -> u64 {
        self.active.as_ref().map_or(0, |a| a.missing[side])
    }

    fn fin_seq(&self, side: Side) -> Option<u32> {
        self.active.as_ref()?.fin_seq[side]
    }

    fn new(key: FlowKey, index: u64, ts: Timestamp) -> Self {
        Flow {
            key,
            first_index: index,
            first_seen: ts,
            last_seen: ts,
            client: None,
            isn: Sides::default(),
            closed: Sides::default(),
            active: None,
            reported: false,
            close_sent: false,
            decided: None,
            payload_bytes: Sides::default(),
            packets: 0,
            classifier_heap: None,
        }
    }

    fn endpoint(&self, side: Side) -> Endpoint {
        match side {
            Side::Lo => self.key.lo,
            Side::Hi => self.key.hi,
        }
    }

    fn direction(&self, side: Side) -> Direction {
        if self.client == Some(side) {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }

    fn both_closed(&self) -> bool {
        self.closed.iter().any(|c| *c == Some(Close::Rst))
            || self.closed.iter().all(Option::is_some)
    }

    /// The client's SYN(s) and nothing else: no SYN-ACK, no payload, no
    /// FIN or RST (any of which makes the pre-verdict part), no verdict.
    /// An unanswered SYN is not a decided flow: `Tracker::ended_unanswered`.
    fn unanswered(&self) -> bool {
        let client = self.client.unwrap_or(Side::Lo);
        !self.reported
            && self.active.is_none()
            && self.isn[client].is_some()
            && self.isn[client.other()].is_none()
            && self.closed.iter().all(Option::is_none)
            && !self.has_payload()
    }

    /// Both ends were seen: each sent a SYN or payload.
    fn two_sided(&self) -> bool {
        Side::BOTH
            .iter()
            .all(|&s| self.isn[s].is_some() || self.payload_bytes[s] > 0)
    }

    fn has_payload(&self) -> bool {
        self.payload_bytes.iter().any(|&b| b > 0) || Side::BOTH.iter().any(|&s| self.missing(s) > 0)
    }

    /// What `flow/redirect.rs` needs to know of this flow as one half.
    fn half(&self, client: Endpoint) -> Half {
        let side = if self.key.lo == client {
            Side::Lo
        } else {
            Side::Hi
        };
        Half {
            client_isn: self.isn[side],
            answered: self.isn[side.other()].is_some(),
            reported: self.reported,
        }
    }

    /// The ISNs of the SYNs sent from `key.lo` and `key.hi`, for
    /// `Redirects::flow_left`.
    fn syn_isns(&self) -> [Option<u32>; 2] {
        [self.isn[Side::Lo], self.isn[Side::Hi]]
    }
}

/// Packet time between two expiry scans of the flow table.
const EXPIRY_SCAN_INTERVAL: Timestamp = Timestamp(1_000_000);

pub struct Engine {
    /// Everything the per-flow work needs besides the flow itself, apart
    /// from the table so a flow borrowed from it can be worked on.
    tracker: Tracker,
    /// Packet time of the last expiry scan.
    last_scan: Option<Timestamp>,
    /// End of input: open flows still to report, next one last.
    finishing: Option<Vec<(u64, FlowKey)>>,
    /// A tick's idle flows still to expire (`on_tick_some`), next one last.
    expiring: Option<Vec<(u64, FlowKey)>>,
    /// FxHash: fast, and its iteration order is never used for output
    /// (reports are ordered by packet index).
    flows: FxHashMap<FlowKey, Flow>,
    /// iptables REDIRECT halves waiting to be joined, and the joins.
    redirects: Redirects,
}

/// The engine without its flow table: bounds, options, counters and the
/// buffer meter that every flow's segment work reads or updates. Its
/// methods are the steps of that work on one `&mut Flow`.
struct Tracker {
    limits: Limits,
    options: Options,
    /// Bytes held by the pre-verdict parts of this engine's flows (see
    /// `Limits::buffer_budget`); each part's `Charge` keeps it exact.
    meter: Rc<Cell<usize>>,
    counters: EngineCounters,
}

impl Engine {
    pub fn new(limits: Limits, options: Options) -> Self {
        let redirects = Redirects::new(redirect::max_entries(limits.max_flows));
        Engine {
            tracker: Tracker {
                limits,
                options,
                meter: Rc::new(Cell::new(0)),
                counters: EngineCounters::default(),
            },
            last_scan: None,
            finishing: None,
            expiring: None,
            flows: FxHashMap::default(),
            redirects,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.tracker.limits
    }

    pub fn counters(&self) -> &EngineCounters {
        &self.tracker.counters
    }

    /// Flows currently tracked.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Bytes charged to the buffer budget now.
    pub fn buffered_bytes(&self) -> usize {
        self.tracker.meter.get()
    }

    /// Feed one segment. `index` is the packet's position in the input
    /// (0-based, counted by the capture thread over all packets); verdicts
    /// made final by this segment are appended to `out`.
    pub fn on_segment<P: AsRef<[u8]>>(
        &mut self,
        seg: Segment<P>,
        index: u64,
        out: &mut Vec<Report>,
    ) {
        let start = out.len();
        self.on_view(seg.as_view(), index, out);
        self.annotate(out.get_mut(start..).unwrap_or_default());
    }

    /// Name the original destination and redirect target in this call's
    /// reports, then end the joins of flows that left (flow/redirect.rs).
    fn annotate(&mut self, reports: &mut [Report]) {
        self.redirects.annotate(reports);
        self.redirects.settle();
        self.tracker.counters.redirect_ended = self.redirects.ended;
    }

    /// `on_segment` on a payload borrowed from wherever it lives (a batch
    /// arena in the pipeline).
    fn on_view(&mut self, mut seg: Segment<&[u8]>, index: u64, out: &mut Vec<Report>) {
        self.join_redirect(&mut seg);
        let key = seg.key();
        let side = if seg.src == key.lo {
            Side::Lo
        } else {
            Side::Hi
        };
        let pure_syn = seg.flags.syn() && !seg.flags.ack();
        if pure_syn {
            self.replace_if_reused(&key, side, seg.seq, index, out);
        }
        if self.budget_full(&key, &seg) {
            self.give_up_oldest(&key, index, out);
        }
        // One table lookup for a known flow: the common case, every packet.
        if let Some(flow) = self.flows.get_mut(&key) {
            self.tracker.segment(flow, side, &seg, index, out);
            return;
        }
        if !seg.flags.syn() && seg.payload.is_empty() && seg.missing == 0 {
            self.tracker.counters.segments_no_flow += 1;
            return;
        }
        let max_flows = self.tracker.limits.max_flows;
        if self.flows.len() >= max_flows {
            self.make_room(index, out);
            if self.flows.len() >= max_flows {
                self.tracker.counters.flows_table_full += 1;
                return;
            }
        }
        self.tracker.counters.flows_created += 1;
        let flow = self
            .flows
            .entry(key)
            .or_insert_with(|| Flow::new(key, index, seg.ts));
        self.tracker.segment(flow, side, &seg, index, out);
    }

    /// Whether this segment's bytes would not fit in the buffer budget, for
    /// a flow still waiting for its verdict (a new one or a pending one).
    fn budget_full(&self, key: &FlowKey, seg: &Segment<&[u8]>) -> bool {
        if seg.payload.is_empty() {
            return false;
        }
        let need = active_bytes().saturating_add(seg.payload.len());
        self.tracker.meter.get().saturating_add(need) > self.tracker.limits.buffer_budget
            && !self.flows.get(key).is_some_and(|f| f.reported)
    }

    /// The buffer budget is full: give up the oldest pending flows (by last
    /// packet, then first-seen index), a sixteenth of them, so the newest
    /// flows get their verdicts. One-sided flows go before flows both ends
    /// spoke in: a spoofed source never hears back, a real connection does,
    /// so a flood of spoofed flows gives up its own first. Without this a
    /// flood of spoofed flows with payload, which never finish, would hold
    /// the budget for the idle timeout (300 s) and every real flow after it
    /// would be given up.
    /// Each is reported unknown (`mem.flows_given_up`, of which
    /// `mem.oldest_given_up`), which frees its buffers; `keep` is the flow
    /// the segment is for. A sixteenth per scan keeps a flood at one scan
    /// per pending/16 new flows.
    fn give_up_oldest(&mut self, keep: &FlowKey, index: u64, out: &mut Vec<Report>) {
        let mut oldest: Vec<(bool, Timestamp, u64, FlowKey)> = self
            .flows
            .values()
            .filter(|f| !f.reported && f.active.is_some() && f.key != *keep)
            .map(|f| (f.two_sided(), f.last_seen, f.first_index, f.key))
            .collect();
        let n = (oldest.len() / 16).max(1).min(oldest.len());
        if n < oldest.len() {
            oldest.select_nth_unstable(n);
            oldest.truncate(n);
        }
        // Reports in first-seen order, whatever the selection's order.
        oldest.sort_unstable_by_key(|&(_, _, first, _)| first);
        let keylog = self.tracker.options.keylog.clone();
        for (_, ts, _, key) in oldest {
            let Some(flow) = self.flows.get_mut(&key) else {
                continue;
            };
            let before = self.tracker.counters.flows_given_up;
            self.tracker.give_up_budget(flow);
            let counters = &mut self.tracker.counters;
            counters.given_up_oldest += counters.flows_given_up - before;
            report(flow, ts, index, keylog.as_deref(), counters, out);
        }
    }

    /// iptables REDIRECT (flow/redirect.rs): a reply half joined to its SYN
    /// half is readdressed onto it; the target answering a joined SYN itself
    /// makes that flow ambiguous.
    fn join_redirect(&mut self, seg: &mut Segment<&[u8]>) {
        let flows = &self.flows;
        let step = self
            .redirects
            .on_segment(seg, |key, client| flows.get(key).map(|f| f.half(client)));
        let counters = &mut self.tracker.counters;
        counters.redirect_evicted = self.redirects.evicted;
        match step {
            Step::Joined => counters.redirect_joined += 1,
            Step::Unaligned => counters.redirect_unaligned += 1,
            Step::Conflict(key) => {
                counters.redirect_conflicts += 1;
                if let Some(flow) = self.flows.get_mut(&key).filter(|f| !f.reported) {
                    self.tracker.ensure_classifier(flow, None);
                    if let Some(c) = flow.classifier_mut() {
                        c.give_up(
                            "ambiguous: two hosts answered one SYN (an iptables REDIRECT reply \
                             and the target itself; one may be spoofed)"
                                .to_string(),
                            Outcome::Unknown,
                        );
                    }
                }
            }
            Step::Pass | Step::Rewritten => {}
        }
    }

    /// A new SYN on the 4-tuple of a closed or reported flow starts a new
    /// connection (port reuse); a retransmitted SYN does not.
    fn replace_if_reused(
        &mut self,
        key: &FlowKey,
        side: Side,
        seq: u32,
        index: u64,
        out: &mut Vec<Report>,
    ) {
        let reuse = self.flows.get(key).is_some_and(|f| {
            let same_isn = f.isn[side] == Some(seq);
            let ended = f.both_closed() || f.reported;
            // A retried SYN after a reset with no payload is a new attempt
            // even with the same ISN; otherwise only a new ISN is.
            ended && (!same_isn || !f.has_payload())
        });
        if reuse {
            // Its verdict is out, or it carried nothing: replace it quietly.
            if let Some(mut old) = self.flows.remove(key) {
                self.redirects.flow_left(key, old.syn_isns());
                let ts = old.last_seen;
                self.tracker
                    .close_report(&mut old, Some(Ending::Reused), ts, index, out);
            }
            self.tracker.counters.flows_port_reuse += 1;
        }
    }

    /// Table full: evict what costs nothing to forget, oldest first, in
    /// this order: flows that never carried payload (SYN only, counted in
    /// `flows.evicted_embryonic`; hostile-inputs M11), then flows whose
    /// verdict is out and which have closed, then flows whose verdict is out.
    /// A flow still waiting for its verdict is never evicted: new flows are
    /// refused instead (`flows.table_full`). Evicting an open reported flow
    /// lets its later packets start a midstream flow, hence the order.
    fn make_room(&mut self, index: u64, out: &mut Vec<Report>) {
        let mut victims: Vec<(u8, Timestamp, FlowKey)> = self
            .flows
            .values()
            .filter_map(|f| {
                let rank = match (f.reported, f.has_payload(), f.both_closed()) {
                    (false, false, _) => 0,
                    (true, _, true) => 1,
                    (true, _, false) => 2,
                    (false, true, _) => return None,
                };
                Some((rank, f.last_seen, f.key))
            })
            .collect();
        let max_flows = self.tracker.limits.max_flows;
        // Evict a sixteenth of the table per scan, so a flood pays for one
        // linear scan per max_flows/16 new flows; pick the victims in
        // linear time (select, not sort).
        let excess = (self.flows.len() + 1)
            .saturating_sub(max_flows)
            .max(max_flows / 16)
            .min(victims.len());
        if excess < victims.len() {
            victims.select_nth_unstable(excess);
            victims.truncate(excess);
        }
        // Closes of evicted flows go out in first-seen order (victims are
        // in selection order, which depends on the table's history).
        let mut evicted = Vec::new();
        for (rank, _, key) in victims {
            if let Some(flow) = self.flows.remove(&key) {
                self.redirects.flow_left(&key, flow.syn_isns());
                let counters = &mut self.tracker.counters;
                if rank == 0 {
                    counters.flows_evicted_embryonic += 1;
                } else {
                    counters.flows_evicted_decided += 1;
                }
                let shown = self.tracker.ended_unanswered(&flow, Ending::Evicted);
                let closes = self.tracker.options.closes;
                if shown || (closes && flow.decided.is_some() && !flow.close_sent) {
                    evicted.push(flow);
                }
            }
        }
        if self.flows.capacity() < max_flows {
            // Removal leaves tombstones, and hashbrown clears them by
            // doubling a table that is over half full: evict-and-insert
            // cycles would grow it to twice the limit. Rebuilding it once
            // the tombstones eat into the limit keeps it one table for
            // `max_flows` (two for this moment).
            let old = std::mem::take(&mut self.flows);
            self.flows = FxHashMap::with_capacity_and_hasher(max_flows, Default::default());
            self.flows.extend(old);
        }
        evicted.sort_by_key(|f| f.first_index);
        for mut flow in evicted {
            let ts = flow.last_seen;
            if !flow.reported {
                // An unanswered SYN shown with `-v`: the rule is the same
                // however it ends.
                self.tracker
                    .conclude(&mut flow, End::Evicted, ts, index, out);
            }
            self.tracker
                .close_report(&mut flow, Some(Ending::Evicted), ts, index, out);
        }
    }

    /// Packet-time clock tick, sent to every worker at the same packet
    /// positions whatever the thread count: expire idle flows.
    pub fn on_tick(&mut self, now: Timestamp, index: u64, out: &mut Vec<Report>) {
        while self.on_tick_some(now, index, usize::MAX, out).is_some() {}
    }

    /// `on_tick` a chunk at a time, so a flood's expiry (100k+ flows at
    /// one tick, each a report with `-v`) is never all in memory as
    /// reports at once: stops once `max` reports were added. Returns the
    /// first-seen index of the next flow still to expire at this tick (no
    /// report of this tick sorts below it), or None when the tick is done.
    /// Until then, call it again with the same `now` and `index` before
    /// anything else.
    pub fn on_tick_some(
        &mut self,
        now: Timestamp,
        index: u64,
        max: usize,
        out: &mut Vec<Report>,
    ) -> Option<u64> {
        let start = out.len();
        let next = self.expire(now, index, max, out);
        self.annotate(out.get_mut(start..).unwrap_or_default());
        next
    }

    /// `on_tick_some` before the redirect annotation.
    fn expire(
        &mut self,
        now: Timestamp,
        index: u64,
        max: usize,
        out: &mut Vec<Report>,
    ) -> Option<u64> {
        if self.expiring.is_none() {
            // Walking the table costs milliseconds with 100k+ flows: scan
            // at most once per second of packet time (deterministic: ticks
            // come at input-defined positions with input-defined times).
            if self
                .last_scan
                .is_some_and(|t| now.0.saturating_sub(t.0) < EXPIRY_SCAN_INTERVAL.0)
            {
                return None;
            }
            self.last_scan = Some(now);
            let mut expired = self.idle_flows(now);
            // Reverse order: the next flow is popped from the end.
            expired.sort_unstable_by(|a, b| b.cmp(a));
            self.expiring = Some(expired);
        }
        let start = out.len();
        while out.len().saturating_sub(start) < max {
            let Some((_, key)) = self.expiring.as_mut().and_then(Vec::pop) else {
                break;
            };
            let Some(mut flow) = self.flows.remove(&key) else {
                continue;
            };
            self.redirects.flow_left(&key, flow.syn_isns());
            if !flow.reported {
                self.tracker.counters.flows_expired += 1;
                if self.tracker.ended_unanswered(&flow, Ending::Idle) {
                    self.tracker.conclude(&mut flow, End::Idle, now, index, out);
                }
            }
            let ts = flow.last_seen;
            self.tracker
                .close_report(&mut flow, Some(Ending::Idle), ts, index, out);
        }
        match self.expiring.as_ref().and_then(|e| e.last()) {
            Some(&(next, _)) => Some(next),
            None => {
                self.expiring = None;
                None
            }
        }
    }

    /// The flows idle past their timeout at `now`, by first-seen index.
    fn idle_flows(&self, now: Timestamp) -> Vec<(u64, FlowKey)> {
        let limits = &self.tracker.limits;
        self.flows
            .values()
            .filter(|f| {
                let idle = now.0.saturating_sub(f.last_seen.0);
                let timeout = if f.reported && f.both_closed() {
                    limits.closed_linger
                } else if f.has_payload() {
                    limits.idle_timeout
                } else {
                    limits.embryonic_timeout
                };
                idle > timeout.0
            })
            .map(|f| (f.first_index, f.key))
            .collect()
    }

    /// End of input: report every flow still open, in first-seen order.
    pub fn finish(&mut self, index: u64, out: &mut Vec<Report>) {
        while self.finish_some(index, usize::MAX, out).is_some() {}
    }

    /// End of input, a chunk at a time: report up to `max` of the open
    /// flows, lowest first-seen index first. Returns the first-seen index
    /// of the next flow still to report, or None when all are done (the
    /// flow table is then empty).
    pub fn finish_some(&mut self, index: u64, max: usize, out: &mut Vec<Report>) -> Option<u64> {
        let start = out.len();
        let next = self.finish_chunk(index, max, out);
        self.annotate(out.get_mut(start..).unwrap_or_default());
        next
    }

    /// `finish_some` before the redirect annotation.
    fn finish_chunk(&mut self, index: u64, max: usize, out: &mut Vec<Report>) -> Option<u64> {
        let closes = self.tracker.options.closes;
        let pending = self.finishing.get_or_insert_with(|| {
            let mut open: Vec<(u64, FlowKey)> = self
                .flows
                .values()
                .filter(|f| !f.reported || (closes && f.decided.is_some() && !f.close_sent))
                .map(|f| (f.first_index, f.key))
                .collect();
            // Reverse order: the next flow is popped from the end.
            open.sort_unstable_by(|a, b| b.cmp(a));
            open
        });
        let mut done = 0;
        while done < max {
            let Some((_, key)) = pending.pop() else { break };
            let Some(mut flow) = self.flows.remove(&key) else {
                continue;
            };
            self.redirects.flow_left(&key, flow.syn_isns());
            let ts = flow.last_seen;
            if !flow.reported && self.tracker.ended_unanswered(&flow, Ending::EndOfInput) {
                self.tracker
                    .conclude(&mut flow, End::EndOfInput, ts, index, out);
            }
            self.tracker
                .close_report(&mut flow, Some(Ending::EndOfInput), ts, index, out);
            done += 1;
        }
        match self.finishing.as_ref().and_then(|p| p.last()) {
            Some(&(next, _)) => Some(next),
            None => {
                self.flows = FxHashMap::default();
                self.redirects.all_left();
                self.finishing = None;
                None
            }
        }
    }
}

impl Tracker {
    /// A flow without a verdict ends (`ending`: evicted, idle, end of
    /// input). An unanswered SYN is counted, with how it ended; returns
    /// whether the flow is to be reported: always, unless it is an
    /// unanswered SYN and `Options::unanswered` is off (then no report is
    /// built at all, which is what keeps a SYN flood's expiry cheap).
    fn ended_unanswered(&mut self, flow: &Flow, ending: Ending) -> bool {
        if !flow.unanswered() {
            // Evicted flows without a verdict that are not unanswered
            // SYNs (a SYN and its SYN-ACK, nothing else) stay unreported,
            // as before: an eviction writes no verdict.
            return ending != Ending::Evicted;
        }
        let c = &mut self.counters;
        c.flows_unanswered += 1;
        match ending {
            Ending::Evicted => c.unanswered_evicted += 1,
            Ending::EndOfInput => c.unanswered_at_end += 1,
            _ => c.unanswered_expired += 1,
        }
        self.options.unanswered
    }

    /// One segment of a flow already in the table (or just made for it):
    /// counts, closes after the verdict, tracking and classifying before it,
    /// and the reports that follow.
    fn segment(
        &mut self,
        flow: &mut Flow,
        side: Side,
        seg: &Segment<&[u8]>,
        index: u64,
        out: &mut Vec<Report>,
    ) {
        flow.last_seen = flow.last_seen.max(seg.ts);
        flow.packets += 1;
        flow.payload_bytes[side] += seg.payload.len() as u64;
        if flow.reported {
            // Only the close matters now: it lets the record go after the
            // short linger instead of the idle timeout.
            let closed = &mut flow.closed[side];
            if seg.flags.rst() {
                *closed = Some(Close::Rst);
            } else if seg.flags.fin() {
                closed.get_or_insert(Close::Fin);
            }
            if flow.both_closed() {
                self.close_report(flow, None, seg.ts, index, out);
            }
            return;
        }
        self.track_within_budget(flow, side, seg);
        self.report_if_due(flow, seg.ts, index, out);
    }

    /// Track a segment of a flow whose verdict is pending, within the
    /// engine's buffer budget: a flow that does not fit is given up.
    fn track_within_budget(&mut self, flow: &mut Flow, side: Side, seg: &Segment<&[u8]>) {
        let budget = self.limits.buffer_budget;
        let carries =
            !seg.payload.is_empty() || seg.missing > 0 || seg.flags.fin() || seg.flags.rst();
        if flow.active.is_none()
            && carries
            && self.meter.get().saturating_add(active_bytes()) > budget
        {
            // No room for this flow's pre-verdict state: give it up now,
            // before its buffers exist (the part made here to write the
            // verdict is freed by the report).
            self.give_up_budget(flow);
            return;
        }
        self.track(flow, side, seg);
        let used = recharge(flow, &self.meter);
        // The peak is taken before a give-up frees anything: it shows
        // the budget's overshoot, if any, honestly.
        self.counters.buffer_peak = self.counters.buffer_peak.max(used as u64);
        if used > budget && flow.classifier().is_some_and(|c| !c.is_final()) {
            // The classifier grew past the budget while reading what
            // the stream held (at most one handshake message): give
            // this flow up, which frees it.
            self.give_up_budget(flow);
        }
    }

    /// Report the flow if its verdict is final or its connection closed,
    /// then its close once both sides closed.
    fn report_if_due(&mut self, flow: &mut Flow, ts: Timestamp, index: u64, out: &mut Vec<Report>) {
        let keylog = self.options.keylog.as_deref();
        let counters = &mut self.counters;
        if flow.classifier().is_some_and(|c| c.is_final()) {
            report(flow, ts, index, keylog, counters, out);
        } else if flow.both_closed() && flow.classifier().is_some() && flow.has_payload() {
            // A connection closed without payload (refused, or a SYN then a
            // reset) is reported at expiry or end of input instead: a retried
            // SYN on the same 4-tuple replaces it first.
            close_out(flow, counters);
            if let Some(c) = flow.classifier_mut() {
                c.conclude(End::Closed);
            }
            report(flow, ts, index, keylog, counters, out);
        }
        if flow.reported && flow.both_closed() {
            self.close_report(flow, None, ts, index, out);
        }
    }

    /// Segment bookkeeping for a flow whose verdict is not out yet.
    fn track(&mut self, flow: &mut Flow, side: Side, seg: &Segment<&[u8]>) {
        if flow.closed.iter().any(|c| *c == Some(Close::Rst)) {
            if !seg.payload.is_empty() {
                self.counters.data_after_close += 1;
            }
            return;
        }
        // A reset carries no stream data (RFC 9293 §3.5.3 allows diagnostic
        // text; no TLS or HTTP stack sends any): bytes on a RST are ignored, so
        // an injected RST cannot write into the handshake as it ends it (M18).
        let mut seg = seg.clone();
        if seg.flags.rst() && (!seg.payload.is_empty() || seg.missing > 0) {
            self.counters.rst_payload += 1;
            seg.payload = &[];
            seg.missing = 0;
        }
        let seg = &seg;
        if seg.flags.syn() && !self.on_syn(flow, side, seg) {
            return;
        }
        if seg.flags.ack() {
            pick_isn_by_ack(flow, side.other(), seg.ack);
        }
        let data_seq = if seg.flags.syn() {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if !seg.payload.is_empty() || seg.missing > 0 {
            self.on_payload(flow, side, seg, data_seq);
        }
        if seg.flags.fin() {
            let fin = data_seq.wrapping_add(seg.payload.len() as u32);
            flow.active().fin_seq[side].get_or_insert(fin);
        }
        if seg.flags.rst() {
            self.on_rst(flow, side);
        } else {
            self.close_if_fin_reached(flow, side);
        }
    }

    /// A SYN or SYN-ACK: its ISN starts the side's stream, and the first one
    /// names the client. A SYN with another ISN is a candidate the other
    /// side's ACK settles (M12); more than a few give the flow up. Returns
    /// false when it was given up.
    fn on_syn(&mut self, flow: &mut Flow, side: Side, seg: &Segment<&[u8]>) -> bool {
        match flow.isn[side] {
            None => flow.isn[side] = Some(seg.seq),
            Some(first) if first != seg.seq && !flow.reported => {
                let max = if seg.flags.ack() {
                    SYN_ACK_CANDIDATES
                } else {
                    SYN_CANDIDATES
                };
                if !add_isn_candidate(flow, side, first, seg.seq, max) {
                    self.counters.syn_ambiguous += 1;
                    self.ensure_classifier(flow, None);
                    if let Some(c) = flow.classifier_mut() {
                        c.give_up(
                            format!(
                                "ambiguous: more than {max} SYN{} with different sequence numbers \
                                 on one connection (someone may be desynchronising the stream)",
                                if max == SYN_CANDIDATES { "s" } else { "-ACKs" }
                            ),
                            Outcome::Unknown,
                        );
                    }
                    return false;
                }
            }
            Some(_) => {}
        }
        if flow.client.is_none() {
            flow.client = Some(if seg.flags.ack() { side.other() } else { side });
        }
        true
    }

    /// Payload, or bytes the capture promised but cut (snaplen): settle the
    /// roles, hold the bytes in the side's stream, and offer both
    /// directions' in-order bytes to the classifier.
    fn on_payload(&mut self, flow: &mut Flow, side: Side, seg: &Segment<&[u8]>, data_seq: u32) {
        // The TLS client is the side that sends the ClientHello (a TCP
        // server can be the TLS client: FTP active data, reverse tunnels).
        // Before any byte was classified, follow the ClientHello.
        if flow.direction(side) == Direction::ToClient
            && flow.classifier().is_none_or(|c| !c.saw_payload())
            && flow.payload_bytes[side.other()] == 0
            && Classifier::starts_tls_client_hello(seg.payload)
        {
            flow.client = Some(side);
            flow.active().classifier = None;
            flow.classifier_heap = None;
        }
        self.ensure_classifier(flow, Some((side, seg.payload)));
        flow.active().missing[side] += u64::from(seg.missing);
        let start = flow.isn[side].map_or(data_seq, |isn| isn.wrapping_add(1));
        let stream_limits = StreamLimits {
            max_buffered: self.limits.stream_buffer,
            max_segments: self.limits.stream_segments,
        };
        flow.active().streams[side].get_or_insert_with(|| Stream::new(start, stream_limits));
        if !self.read_in_place(flow, side, data_seq, seg.payload) {
            self.insert(flow, side, data_seq, seg.payload);
            pump(flow, side);
        }
        pump(flow, side.other());
    }

    /// `insert` then `pump` of side `side`, for the common segment that
    /// continues its stream with nothing held: the classifier reads the
    /// payload where it lies, and only the bytes it leaves unread are
    /// copied into the stream. The classifier sees the same calls with the
    /// same bytes, and the stream ends in the same state, as `insert` then
    /// `pump`; what differs is the copy (and the buffer it would have
    /// grown). Returns false, having changed nothing, for any other segment
    /// or when `insert` would refuse it (a limit, the budget): the caller
    /// then inserts and pumps.
    fn read_in_place(&mut self, flow: &mut Flow, side: Side, seq: u32, data: &[u8]) -> bool {
        // The cheap tests first: a segment that takes the old path must not
        // pay for a recharge here as well as in `insert`.
        let in_place = !data.is_empty()
            && flow.classifier().is_some_and(|c| !c.is_final())
            && flow
                .stream(side)
                .is_some_and(|s| s.reads_in_place(seq, data.len()));
        if !in_place {
            return false;
        }
        let room = self
            .limits
            .buffer_budget
            .saturating_sub(recharge(flow, &self.meter));
        let dir = flow.direction(side);
        let Some(active) = flow.active.as_mut() else {
            return false;
        };
        let (Some(stream), Some(classifier)) =
            (active.streams[side].as_mut(), active.classifier.as_mut())
        else {
            return false;
        };
        // `insert_within`'s cap: the bytes it would hold must fit in it.
        let cap = stream.allocated().saturating_add(room);
        if data.len() > cap {
            return false;
        }
        // `pump`'s loop, on the segment's bytes instead of the stream's.
        let mut rest = data;
        for _ in 0..4096 {
            if classifier.is_final() || rest.is_empty() {
                break;
            }
            flow.classifier_heap = None;
            let feed = classifier.feed(dir, rest);
            let took = feed.consumed.min(rest.len());
            stream.pass(took);
            rest = rest.get(took..).unwrap_or_default();
            if feed.skip > 0 {
                match usize::try_from(feed.skip) {
                    Ok(n) if n <= rest.len() => {
                        stream.pass(n);
                        rest = rest.get(n..).unwrap_or_default();
                    }
                    _ => {
                        stream.pass(rest.len());
                        stream.skip(feed.skip - rest.len() as u64);
                        rest = &[];
                    }
                }
            }
            if feed.consumed == 0 && feed.skip == 0 {
                break;
            }
        }
        if !rest.is_empty() {
            // What `insert` would have left held: at most `data.len()`
            // bytes, within the cap checked above, so it is taken whole.
            let next = stream.next_seq();
            stream.insert_within(next, rest, cap);
        }
        true
    }

    /// A reset ends the connection at once: what is in order is delivered,
    /// then the classifier hears of the reset.
    fn on_rst(&mut self, flow: &mut Flow, side: Side) {
        flow.closed[side] = Some(Close::Rst);
        self.ensure_classifier(flow, None);
        pump(flow, side);
        let dir = flow.direction(side);
        if let Some(c) = flow.classifier_mut() {
            c.on_close(dir, Close::Rst);
        }
    }

    /// A FIN takes effect once everything before it has been delivered.
    fn close_if_fin_reached(&mut self, flow: &mut Flow, side: Side) {
        let fin_reached = flow.fin_seq(side).is_some_and(|fin| {
            flow.stream(side).is_none_or(|s| {
                let pending =
                    fin.wrapping_sub(s.next_seq().wrapping_add(s.contiguous().len() as u32));
                pending == 0 || pending > u32::MAX / 2
            })
        });
        if fin_reached && flow.closed[side].is_none() {
            flow.closed[side] = Some(Close::Fin);
            self.ensure_classifier(flow, None);
            let dir = flow.direction(side);
            if let Some(c) = flow.classifier_mut() {
                c.on_close(dir, Close::Fin);
            }
        }
    }

    /// Conclude a flow that ends without a final verdict and report it, unless
    /// it never carried payload nor a SYN (nothing to say).
    fn conclude(
        &mut self,
        flow: &mut Flow,
        end: End,
        ts: Timestamp,
        index: u64,
        out: &mut Vec<Report>,
    ) {
        // Before the classifier is made, which would hide it.
        let unanswered = flow.unanswered();
        self.ensure_classifier(flow, None);
        close_out(flow, &mut self.counters);
        if let Some(c) = flow.classifier_mut() {
            c.conclude(end);
        }
        let before = out.len();
        report(
            flow,
            ts,
            index,
            self.options.keylog.as_deref(),
            &mut self.counters,
            out,
        );
        for r in out.iter_mut().skip(before) {
            if let Event::Verdict(v) = &mut r.event {
                v.unanswered = unanswered;
            }
        }
    }

    /// Insert into side `side`'s stream, within the engine's buffer budget.
    /// When the stream is full because of a hole, the hole is given up (a
    /// counted gap the classifier is told about) rather than the newest data.
    /// Bytes that differ from the copy already held make the verdict unknown
    /// (M13); bytes over the budget give the flow up.
    fn insert(&mut self, flow: &mut Flow, side: Side, seq: u32, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // Charge the flow's state as it is now (it may have just been made),
        // so the room left is exact.
        let room = self
            .limits
            .buffer_budget
            .saturating_sub(recharge(flow, &self.meter));
        let Some(stream) = flow.stream_mut(side) else {
            return;
        };
        let cap = stream.allocated().saturating_add(room);
        let mut result = stream.insert_within(seq, data, cap);
        let counters = &mut self.counters;
        if result.status == InsertStatus::LimitExceeded && stream.has_hole() {
            counters.stream_limit_hits += 1;
            skip_hole(flow, side, counters);
            pump(flow, side);
            let Some(stream) = flow.stream_mut(side) else {
                return;
            };
            result = stream.insert_within(seq, data, cap);
        }
        counters.bytes_duplicate += result.duplicate as u64;
        counters.bytes_overlap_conflict += result.conflict as u64;
        if result.conflict > 0 {
            let dir = flow.direction(side);
            if let Some(c) = flow.classifier_mut() {
                c.on_conflict(dir, result.conflict);
            }
        }
        match result.status {
            InsertStatus::Old => counters.segments_old += 1,
            InsertStatus::LimitExceeded => counters.stream_limit_hits += 1,
            InsertStatus::OverBudget => self.give_up_budget(flow),
            InsertStatus::Ok => {}
        }
    }

    /// The worker's buffer budget cannot hold this flow: its verdict is
    /// unknown, and reporting it frees what it holds.
    fn give_up_budget(&mut self, flow: &mut Flow) {
        self.ensure_classifier(flow, None);
        let limits = &self.limits;
        if let Some(c) = flow.classifier_mut() {
            if c.is_final() {
                return;
            }
            c.give_up(
                format!(
                    "memory budget: this worker's {} KiB for pending flows is full, so this flow's bytes \
                     were not kept (raise --memory, or see mem.flows_given_up)",
                    limits.buffer_budget / 1024
                ),
                Outcome::Incomplete,
            );
            self.counters.flows_given_up += 1;
        }
    }

    /// Create the classifier once the client is known. Without a SYN the first
    /// payload decides (a ClientHello or request is the client's), else the
    /// higher port is taken as the client's ephemeral port (counted).
    fn ensure_classifier(&mut self, flow: &mut Flow, first_payload: Option<(Side, &[u8])>) {
        if flow.classifier().is_some() {
            return;
        }
        if flow.client.is_none() {
            let hinted = first_payload.and_then(|(side, bytes)| {
                Classifier::role_hint(bytes).map(|d| {
                    if d == Direction::ToServer {
                        side
                    } else {
                        side.other()
                    }
                })
            });
            flow.client = Some(hinted.unwrap_or_else(|| {
                self.counters.roles_guessed += 1;
                if flow.key.lo.port > flow.key.hi.port {
                    Side::Lo
                } else {
                    Side::Hi
                }
            }));
        }
        let client = flow.client.unwrap_or(Side::Lo);
        let client_start = flow.isn[client].is_some();
        let server_start = flow.isn[client.other()].is_some();
        let (limits, options) = (&self.limits, &self.options);
        // Without the server's SYN-ACK its stream still starts at its first
        // byte if the client's SYN was seen: the server cannot have spoken
        // before the handshake.
        let mut classifier = Classifier::new(
            client_start,
            server_start || client_start,
            limits.handshake_buffer,
        );
        classifier.keep_preview(options.preview_bytes);
        if options.keylog.is_some() {
            classifier.keep_sealed(limits.handshake_buffer);
        }
        classifier.set_record_limit(limits.records_before_verdict);
        flow.active().classifier = Some(classifier);
        flow.classifier_heap = None;
    }

    /// Emit the flow's close (once, only for a flow whose verdict went out, and
    /// only when `Options::closes`). A flow that both sides closed says how
    /// (`fin`/`rst`) whatever removes it later; otherwise `ending`, or nothing
    /// when `ending` is None (the flow is still open). Costs no memory: the
    /// counts are the flow record's own.
    fn close_report(
        &self,
        flow: &mut Flow,
        ending: Option<Ending>,
        ts: Timestamp,
        index: u64,
        out: &mut Vec<Report>,
    ) {
        if !self.options.closes || flow.close_sent {
            return;
        }
        let Some(decided) = flow.decided else {
            return;
        };
        let ending = if flow.closed.iter().any(|c| *c == Some(Close::Rst)) {
            Ending::Rst
        } else if flow.both_closed() {
            Ending::Fin
        } else {
            match ending {
                Some(e) => e,
                None => return,
            }
        };
        flow.close_sent = true;
        let client = flow.client.unwrap_or(Side::Lo);
        out.push(Report {
            order: ReportOrder {
                trigger: index,
                flow: flow.first_index,
            },
            event: Event::Close(FlowClose {
                ts,
                first_seen: flow.first_seen,
                client: flow.endpoint(client),
                server: flow.endpoint(client.other()),
                redirected_to: None,
                ending,
                decided,
                bytes_to_server: flow.payload_bytes[client],
                bytes_to_client: flow.payload_bytes[client.other()],
                packets: flow.packets,
            }),
        });
    }
}

/// Settle what is left in the streams before a conclusion: deliver data
/// behind holes (counting the gaps), and report missing (snaplen) bytes.
fn close_out(flow: &mut Flow, counters: &mut EngineCounters) {
    for side in Side::BOTH {
        let mut guard = 0;
        while flow.stream(side).is_some_and(|s| s.has_hole()) && guard < 64 {
            guard += 1;
            skip_hole(flow, side, counters);
            pump(flow, side);
        }
        let missing = flow.missing(side);
        if missing > 0 {
            let dir = flow.direction(side);
            if let Some(c) = flow.classifier_mut() {
                c.on_gap(dir, missing);
            }
        }
    }
}

fn skip_hole(flow: &mut Flow, side: Side, counters: &mut EngineCounters) {
    let dir = flow.direction(side);
    let Some(stream) = flow.stream_mut(side) else {
        return;
    };
    let lost = stream.skip_hole();
    if lost > 0 {
        counters.gaps += 1;
        counters.gap_bytes += lost;
        if let Some(c) = flow.classifier_mut() {
            c.on_gap(dir, lost);
        }
    }
}

/// Record a different SYN sequence number of side `side` (M12). Returns
/// false when there are more than `max` candidates.
fn add_isn_candidate(flow: &mut Flow, side: Side, first: u32, seq: u32, max: usize) -> bool {
    let c = &mut flow.active().isn_candidates[side];
    if c.is_empty() {
        c.push(first);
    }
    if !c.contains(&seq) {
        c.push(seq);
    }
    c.len() <= max
}

/// An ACK from the other side names which of side `side`'s SYNs was
/// answered: its sequence number + 1 (RFC 9293 §3.4). Settles the stream
/// start, if no byte of that side was buffered yet.
fn pick_isn_by_ack(flow: &mut Flow, side: Side, ack: u32) {
    let Some(active) = flow.active.as_mut() else {
        return;
    };
    let c = &mut active.isn_candidates[side];
    let isn = ack.wrapping_sub(1);
    if c.is_empty() || !c.contains(&isn) {
        return;
    }
    c.clear();
    if active.streams[side].is_none() {
        flow.isn[side] = Some(isn);
    }
}

/// Charge the flow's pre-verdict part at its current size; returns the
/// engine's total afterwards.
fn recharge(flow: &mut Flow, meter: &Rc<Cell<usize>>) -> usize {
    let Some(active) = flow.active.as_mut() else {
        return meter.get();
    };
    let streams: usize = active.streams.iter().flatten().map(Stream::allocated).sum();
    let candidates: usize = active.isn_candidates.iter().map(|c| c.capacity() * 4).sum();
    let summed = || active.classifier.as_ref().map_or(0, Classifier::heap_bytes);
    let classifier = match flow.classifier_heap {
        Some(bytes) => {
            // A stale cache would make the budget inexact: every test
            // run (debug) checks it against a fresh sum.
            debug_assert_eq!(bytes as usize, summed(), "classifier_heap is stale");
            bytes as usize
        }
        None => {
            let bytes = summed();
            // Not cached past u32 (always summed then): never truncated.
            flow.classifier_heap = u32::try_from(bytes).ok();
            bytes
        }
    };
    let bytes = active_bytes() + streams + candidates + classifier;
    let charge = &mut active.charge;
    if charge.meter.is_none() {
        charge.meter = Some(Rc::clone(meter));
    }
    let total = meter
        .get()
        .saturating_sub(charge.bytes)
        .saturating_add(bytes);
    meter.set(total);
    charge.bytes = bytes;
    total
}

/// Offer side `side`'s in-order bytes to the classifier until it stops
/// taking them.
fn pump(flow: &mut Flow, side: Side) {
    let dir = flow.direction(side);
    let Some(active) = flow.active.as_mut() else {
        return;
    };
    let (Some(stream), Some(classifier)) =
        (active.streams[side].as_mut(), active.classifier.as_mut())
    else {
        return;
    };
    for _ in 0..4096 {
        if classifier.is_final() {
            return;
        }
        let data = stream.contiguous();
        if data.is_empty() {
            return;
        }
        flow.classifier_heap = None;
        let feed = classifier.feed(dir, data);
        stream.consume(feed.consumed);
        if feed.skip > 0 {
            stream.skip(feed.skip);
        }
        if feed.consumed == 0 && feed.skip == 0 {
            return;
        }
    }
}

/// Emit the flow's verdict (once) and free its buffers.
fn report(
    flow: &mut Flow,
    ts: Timestamp,
    index: u64,
    keylog: Option<&KeyLog>,
    counters: &mut EngineCounters,
    out: &mut Vec<Report>,
) {
    if flow.reported {
        return;
    }
    flow.reported = true;
    // The verdict is out: free the stream buffers now, the classifier once
    // it has written the verdict. What stays is the small flow record that
    // absorbs late packets until close or expiry.
    let had_payload = flow.has_payload();
    let mut classifier = flow.active.take().and_then(|mut a| a.classifier.take());
    flow.classifier_heap = None;
    if let Some(n) = classifier.as_ref().map(Classifier::notes) {
        counters.tls_fragmented += u64::from(n.fragmented_messages);
        counters.tls_malformed += u64::from(n.malformed);
        counters.tls_too_many_records += u64::from(n.too_many_records);
        counters.tls_handshake_too_large += u64::from(n.handshake_too_large);
        counters.flows_ambiguous_overlap += u64::from(n.ambiguous_overlap);
    }
    let mut proving = Proving::NotApplicable;
    if let (Some(c), Some(keys)) = (classifier.as_mut(), keylog) {
        proving = c.prove(keys);
        match &proving {
            Proving::NotApplicable => {}
            Proving::Tls13(_) => counters.decrypted_tls13 += 1,
            Proving::Renegotiation(_) => counters.decrypted_renegotiations += 1,
            Proving::Failed(Failure::NoSecrets) => counters.decrypt_no_secrets += 1,
            Proving::Failed(Failure::KeyMismatch) => counters.decrypt_key_mismatch += 1,
            Proving::Failed(Failure::UnsupportedSuite) => counters.decrypt_unsupported_suite += 1,
            Proving::Failed(Failure::Incomplete) => counters.decrypt_incomplete += 1,
        }
    }
    let saw_syn = flow.isn.iter().any(Option::is_some);
    if !saw_syn && !had_payload {
        return;
    }
    counters.flows_reported += 1;
    let client = flow.client.unwrap_or(Side::Lo);
    let mut v = Verdict::new(
        flow.endpoint(client),
        flow.endpoint(client.other()),
        flow.first_seen,
        ts,
    );
    v.bytes_to_server = flow.payload_bytes[client];
    v.bytes_to_client = flow.payload_bytes[client.other()];
    v.packets = flow.packets;
    // The classifier is dropped below: its sentences move into the verdict.
    let evidence = classifier.as_mut().map(Classifier::take_evidence);
    assemble(&mut v, evidence, proving.facts());
    flow.decided = Some(Decided {
        class: v.class,
        outcome: v.outcome,
        basis: v.basis,
        mesh: v.mesh.as_ref().map(|m| m.mesh),
    });
    for cert in [&v.client_certificate, &v.server_certificate]
        .into_iter()
        .flatten()
    {
        if *cert == CertSeen::Unparsable {
            counters.cert_parse_errors += 1;
        }
    }
    out.push(Report {
        order: ReportOrder {
            trigger: index,
            flow: flow.first_index,
        },
        event: Event::Verdict(Box::new(v)),
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::capture::segment::TcpFlags;
    use crate::verdict::Class;

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port,
        }
    }

    fn seg(src: Endpoint, dst: Endpoint, seq: u32, flags: u8, payload: &[u8]) -> Segment {
        Segment {
            ts: Timestamp(1_000_000),
            src,
            dst,
            seq,
            ack: 0,
            flags: TcpFlags(flags),
            window: 0,
            payload: payload.to_vec(),
            missing: 0,
        }
    }

    /// A TLS 1.2 record holding one handshake message.
    fn record(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let mut hs = vec![msg_type, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(body);
        let mut r = vec![22, 3, 3, (hs.len() >> 8) as u8, hs.len() as u8];
        r.extend(hs);
        r
    }

    fn client_hello() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[1; 32]);
        body.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]);
        record(1, &body)
    }

    fn server_hello() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[2; 32]);
        body.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
        record(2, &body)
    }

    /// An HTTP exchange: SYN, SYN-ACK, request, response (the verdict),
    /// then `extra` more response bytes. Indexes 0..5.
    fn http_flow(engine: &mut Engine, client: Endpoint, extra: usize, out: &mut Vec<Report>) {
        let server = ep("10.0.0.2", 80);
        let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let steps = [
            seg(client, server, 100, syn, &[]),
            seg(server, client, 500, syn | ack, &[]),
            seg(client, server, 101, ack, req),
            seg(server, client, 501, ack, resp),
            seg(
                server,
                client,
                501 + resp.len() as u32,
                ack,
                &vec![b'x'; extra],
            ),
        ];
        for (i, s) in steps.into_iter().enumerate() {
            engine.on_segment(s, i as u64, out);
        }
    }

    fn closes(out: &[Report]) -> Vec<(Ending, u64, u64, u64, ReportOrder)> {
        out.iter()
            .filter_map(|r| match &r.event {
                Event::Close(c) => Some((
                    c.ending,
                    c.bytes_to_server,
                    c.bytes_to_client,
                    c.packets,
                    r.order,
                )),
                Event::Verdict(_) => None,
            })
            .collect()
    }

    fn with_closes() -> Options {
        Options {
            closes: true,
            ..Options::default()
        }
    }

    /// Issue 7: a close follows the verdict at the second FIN, with the
    /// whole flow's bytes and packets, ordered after the verdict.
    #[test]
    fn a_close_counts_the_whole_flow_and_follows_its_verdict() {
        let client = ep("10.0.0.1", 40000);
        let server = ep("10.0.0.2", 80);
        let mut engine = Engine::new(Limits::default(), with_closes());
        let mut out = Vec::new();
        http_flow(&mut engine, client, 1000, &mut out);
        assert!(matches!(out[0].event, Event::Verdict(_)));
        assert_eq!(out.len(), 1, "no close before the FINs");
        let fin = TcpFlags::FIN | TcpFlags::ACK;
        engine.on_segment(seg(client, server, 128, fin, &[]), 5, &mut out);
        assert_eq!(out.len(), 1, "one FIN is not a close");
        engine.on_segment(seg(server, client, 1539, fin, &[]), 6, &mut out);
        let got = closes(&out);
        assert_eq!(got.len(), 1);
        let (ending, to_server, to_client, packets, order) = got[0];
        assert_eq!(ending, Ending::Fin);
        assert_eq!((to_server, to_client, packets), (27, 1038, 7));
        assert!(order > out[0].order && order.flow == out[0].order.flow);
        // Late packets and the expiry of the lingering record add nothing.
        engine.on_segment(seg(client, server, 129, TcpFlags::ACK, &[]), 7, &mut out);
        engine.on_tick(Timestamp(100_000_000), 8, &mut out);
        engine.finish(9, &mut out);
        assert_eq!(closes(&out).len(), 1);
        assert_eq!(engine.flow_count(), 0);
    }

    #[test]
    fn no_close_unless_asked() {
        let mut engine = Engine::new(Limits::default(), Options::default());
        let mut out = Vec::new();
        http_flow(&mut engine, ep("10.0.0.1", 40000), 10, &mut out);
        engine.on_segment(
            seg(
                ep("10.0.0.1", 40000),
                ep("10.0.0.2", 80),
                128,
                TcpFlags::RST,
                &[],
            ),
            5,
            &mut out,
        );
        engine.finish(6, &mut out);
        assert_eq!(out.len(), 1);
        assert!(closes(&out).is_empty());
    }

    /// Every way a decided flow can end says so on its close.
    #[test]
    fn closes_say_how_the_flow_ended() {
        let server = ep("10.0.0.2", 80);
        // RST.
        let mut engine = Engine::new(Limits::default(), with_closes());
        let mut out = Vec::new();
        let client = ep("10.0.0.1", 40000);
        http_flow(&mut engine, client, 0, &mut out);
        engine.on_segment(seg(server, client, 538, TcpFlags::RST, &[]), 5, &mut out);
        assert_eq!(closes(&out)[0].0, Ending::Rst);
        // Idle: the tick is past the idle timeout of packet time.
        let mut out = Vec::new();
        http_flow(&mut engine, ep("10.0.0.3", 40000), 0, &mut out);
        engine.on_tick(Timestamp(1_000_000 + 301_000_000), 6, &mut out);
        assert_eq!(
            closes(&out).iter().map(|c| c.0).collect::<Vec<_>>(),
            vec![Ending::Idle]
        );
        // End of input.
        let mut out = Vec::new();
        http_flow(&mut engine, ep("10.0.0.4", 40000), 0, &mut out);
        engine.finish(7, &mut out);
        assert_eq!(closes(&out)[0].0, Ending::EndOfInput);
        // A new SYN (new ISN) on the 4-tuple of an open decided flow.
        let mut engine = Engine::new(Limits::default(), with_closes());
        let mut out = Vec::new();
        http_flow(&mut engine, client, 0, &mut out);
        engine.on_segment(seg(client, server, 9000, TcpFlags::SYN, &[]), 5, &mut out);
        assert_eq!(closes(&out)[0].0, Ending::Reused);
        // Evicted: decided open flows make room for a SYN flood.
        let limits = Limits {
            max_flows: 16,
            ..Limits::default()
        };
        let mut engine = Engine::new(limits, with_closes());
        let mut out = Vec::new();
        for i in 0..16u8 {
            http_flow(&mut engine, ep(&format!("10.1.0.{i}"), 40000), 0, &mut out);
        }
        for i in 0..64u8 {
            engine.on_segment(
                seg(
                    ep(&format!("10.2.0.{i}"), 40000),
                    server,
                    1,
                    TcpFlags::SYN,
                    &[],
                ),
                100,
                &mut out,
            );
        }
        let evicted = closes(&out);
        assert!(!evicted.is_empty());
        assert!(evicted.iter().all(|c| c.0 == Ending::Evicted));
    }

    /// Issue 4's budget: a decided flow keeps only this record (the bench
    /// measures < 256 B per flow with the table's overhead); issue 7's
    /// close bookkeeping had to fit in its padding.
    #[test]
    fn a_flow_record_stays_136_bytes() {
        assert_eq!(std::mem::size_of::<Flow>(), 136);
    }

    /// A full table evicts SYN-only flows first and never a flow that is
    /// still waiting for its verdict (hostile-inputs M11).
    #[test]
    fn a_full_table_evicts_embryonic_flows_and_keeps_undecided_ones() {
        let limits = Limits {
            max_flows: 64,
            ..Limits::default()
        };
        let mut engine = Engine::new(limits, Options::default());
        let mut out = Vec::new();
        let server = ep("10.0.0.2", 443);
        // One flow mid-handshake (ClientHello sent, no answer yet).
        let client = ep("10.0.0.1", 40000);
        engine.on_segment(seg(client, server, 1, TcpFlags::SYN, &[]), 0, &mut out);
        engine.on_segment(
            seg(client, server, 2, TcpFlags::ACK, &client_hello()),
            1,
            &mut out,
        );
        // Then a SYN flood, far more than the table holds.
        for i in 0..1000u32 {
            let c = Endpoint {
                ip: std::net::IpAddr::from([10, 1, (i >> 8) as u8, i as u8]),
                port: 50000,
            };
            engine.on_segment(
                seg(c, server, i, TcpFlags::SYN, &[]),
                2 + u64::from(i),
                &mut out,
            );
        }
        assert!(engine.flow_count() <= 64);
        assert!(engine.counters().flows_evicted_embryonic > 900);
        assert_eq!(engine.counters().flows_table_full, 0);
        assert!(
            engine.flows.contains_key(&FlowKey::new(client, server)),
            "undecided flow kept"
        );
    }

    /// Issue 13 §1: one rule for unanswered SYNs (a client SYN, nothing
    /// back), however the flow ends: evicted, expired, or open at the end
    /// of input, each is counted by its ending and reported only with
    /// `Options::unanswered` (`-v`). A SYN answered by a SYN-ACK is not one.
    #[test]
    fn unanswered_syns_are_counted_by_ending_and_reported_only_when_asked() {
        for shown in [false, true] {
            let limits = Limits {
                max_flows: 32,
                ..Limits::default()
            };
            let options = Options {
                unanswered: shown,
                ..Options::default()
            };
            let mut engine = Engine::new(limits, options);
            let mut out = Vec::new();
            let server = ep("10.0.0.2", 443);
            let at = |i: u32, t: i64| {
                let mut s = seg(
                    ep(&format!("10.1.0.{i}"), 50000),
                    server,
                    i,
                    TcpFlags::SYN,
                    &[],
                );
                s.ts = Timestamp(t);
                s
            };
            // 40 SYNs in a table of 32: the oldest are evicted to make room.
            for i in 0..40 {
                engine.on_segment(at(i, 1_000_000), u64::from(i), &mut out);
            }
            // A SYN answered by a SYN-ACK: not unanswered.
            let answered = ep("10.2.0.1", 40000);
            engine.on_segment(seg(answered, server, 7, TcpFlags::SYN, &[]), 40, &mut out);
            let mut synack = seg(server, answered, 9, TcpFlags::SYN | TcpFlags::ACK, &[]);
            synack.ack = 8;
            engine.on_segment(synack, 41, &mut out);
            let evicted = engine.counters().unanswered_evicted;
            assert!(evicted > 0);
            // 31 s later: the SYN-only flows expire; one more SYN stays open.
            engine.on_tick(Timestamp(32_000_000), 42, &mut out);
            engine.on_segment(at(200, 32_000_000), 42, &mut out);
            let expired = engine.counters().unanswered_expired;
            engine.finish(43, &mut out);
            let c = engine.counters();
            assert_eq!(c.unanswered_at_end, 1);
            assert_eq!(evicted + expired, 40, "{c:?}");
            assert_eq!(c.flows_unanswered, 41);
            let verdicts = out
                .iter()
                .filter(|r| matches!(r.event, Event::Verdict(_)))
                .count();
            // Shown: every unanswered SYN, then the answered one (at
            // expiry); otherwise only the answered one.
            assert_eq!(verdicts, if shown { 42 } else { 1 }, "shown: {shown}");
            let marked = out
                .iter()
                .filter(|r| matches!(&r.event, Event::Verdict(v) if v.unanswered))
                .count();
            assert_eq!(marked, if shown { 41 } else { 0 });
            // Each says how it ended: evicted ones never read as idle.
            let said = |what: &str| {
                out.iter()
                    .filter(|r| matches!(&r.event, Event::Verdict(v) if v.reason.contains(what)))
                    .count() as u64
            };
            if shown {
                assert_eq!(said("evicted from the full flow table"), evicted);
            }
        }
    }

    /// The buffer budget is checked before anything is buffered: flows
    /// that do not fit are reported unknown and counted, what they held is
    /// given back, and the meter never passes the budget.
    #[test]
    fn the_buffer_budget_gives_flows_up_instead_of_growing() {
        let limits = Limits {
            buffer_budget: 64 * 1024,
            ..Limits::default()
        };
        let budget = limits.buffer_budget;
        let mut engine = Engine::new(limits, Options::default());
        let mut out = Vec::new();
        let server = ep("10.0.0.2", 443);
        // Each flow: a SYN, then 8 KiB behind a 1-byte hole (held, never read).
        for i in 0..64u32 {
            let c = Endpoint {
                ip: std::net::IpAddr::from([10, 9, 0, i as u8]),
                port: 40000,
            };
            engine.on_segment(
                seg(c, server, 100, TcpFlags::SYN, &[]),
                u64::from(i) * 2,
                &mut out,
            );
            engine.on_segment(
                seg(c, server, 102, TcpFlags::ACK, &[0x16; 8192]),
                u64::from(i) * 2 + 1,
                &mut out,
            );
            assert!(
                engine.buffered_bytes() <= budget,
                "{}",
                engine.buffered_bytes()
            );
        }
        let given_up = engine.counters().flows_given_up;
        assert!(given_up > 40, "{given_up}");
        assert_eq!(out.len() as u64, given_up);
        assert!(
            out.iter().all(|r| r.verdict().is_some_and(
                |v| v.class == Class::Unknown && v.reason.starts_with("memory budget")
            ))
        );
        assert!(engine.counters().buffer_peak <= budget as u64);
        engine.finish(1000, &mut out);
        assert_eq!(engine.buffered_bytes(), 0, "every charge given back");
    }

    /// Issue 13 §1: spoofed flows with payload that never finish fill the
    /// buffer budget; a real flow after them still gets its verdict,
    /// because the oldest pending flows are given up first (counted), and
    /// the newest stale flows are the ones still held.
    #[test]
    fn a_full_buffer_budget_gives_up_the_oldest_pending_flows_first() {
        let limits = Limits {
            buffer_budget: 64 * 1024,
            ..Limits::default()
        };
        let budget = limits.buffer_budget;
        let mut engine = Engine::new(limits, Options::default());
        let mut out = Vec::new();
        let server = ep("10.0.0.2", 443);
        let stale = |i: u32| Endpoint {
            ip: std::net::IpAddr::from([172, 16, 0, i as u8]),
            port: 40000,
        };
        // A real handshake in progress, older than every stale flow but
        // answered by its server: one-sided flows go first.
        let slow = ep("11.0.0.2", 40000);
        let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
        let hello_start = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
        for (i, s) in [
            seg(slow, server, 100, syn, &[]),
            seg(server, slow, 500, syn | ack, &[]),
            seg(slow, server, 101, ack, &hello_start),
        ]
        .into_iter()
        .enumerate()
        {
            engine.on_segment(s, i as u64, &mut out);
        }
        for i in 0..64u32 {
            let c = stale(i);
            let index = 100 + u64::from(i) * 2;
            engine.on_segment(seg(c, server, 100, TcpFlags::SYN, &[]), index, &mut out);
            // 8 KiB behind a 1-byte hole: held, never read.
            let data = seg(c, server, 102, TcpFlags::ACK, &[0x16; 8192]);
            engine.on_segment(data, index + 1, &mut out);
            assert!(engine.buffered_bytes() <= budget);
        }
        let oldest = engine.counters().given_up_oldest;
        assert!(oldest > 40, "{oldest}");
        let given_up: Vec<String> = out
            .iter()
            .filter_map(Report::verdict)
            .map(|v| v.client.to_string())
            .collect();
        assert!(
            given_up.contains(&stale(0).to_string()),
            "the oldest went first"
        );
        assert!(
            !given_up.contains(&stale(63).to_string()),
            "the newest is kept"
        );
        assert!(
            !given_up.contains(&slow.to_string()),
            "the answered flow is kept"
        );
        out.clear();
        let real = ep("11.0.0.1", 40000);
        http_flow(&mut engine, real, 0, &mut out);
        let v: Vec<_> = out.iter().filter_map(Report::verdict).collect();
        let mine = v.iter().find(|v| v.client == real).unwrap();
        assert_eq!(mine.class, Class::Plaintext, "{}", mine.reason);
        assert_eq!(
            engine.counters().flows_given_up,
            engine.counters().given_up_oldest,
            "only stale flows were given up"
        );
    }

    /// The TCP server sends the ClientHello (FTP active data, reverse
    /// tunnels): the TLS roles follow the ClientHello, and the client's
    /// certificate is still seen as the client's.
    #[test]
    fn tls_client_is_the_clienthello_sender_even_when_it_accepted_the_tcp_connection() {
        let tcp_client = ep("10.0.0.1", 20);
        let tcp_server = ep("10.0.0.2", 50000);
        let (syn, ack) = (TcpFlags::SYN, TcpFlags::ACK);
        let mut flight = server_hello();
        flight.extend(record(11, &[0, 0, 3, 0, 0, 0])); // server Certificate (empty list: enough here)
        flight.extend(record(13, &[1, 1, 0, 0, 0, 0]));
        flight.extend(record(14, &[]));
        let mut client_flight = record(11, &[0, 0, 8, 0, 0, 5, 0x30, 3, 1, 2, 3]);
        client_flight.extend(record(16, &[0, 1, 9]));
        client_flight.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
        let mut engine = Engine::new(Limits::default(), Options::default());
        let mut out = Vec::new();
        let ch = client_hello();
        let steps = [
            seg(tcp_client, tcp_server, 100, syn, &[]),
            seg(tcp_server, tcp_client, 500, syn | ack, &[]),
            seg(tcp_server, tcp_client, 501, ack, &ch),
            seg(tcp_client, tcp_server, 101, ack, &flight),
            seg(
                tcp_server,
                tcp_client,
                501 + ch.len() as u32,
                ack,
                &client_flight,
            ),
        ];
        for (i, s) in steps.into_iter().enumerate() {
            engine.on_segment(s, i as u64, &mut out);
        }
        engine.finish(9, &mut out);
        assert_eq!(out.len(), 1);
        let v = out[0].verdict().unwrap();
        assert_eq!(v.client, tcp_server, "{v:?}");
        assert_eq!(v.class, Class::Mtls, "{}", v.reason);
    }
}
