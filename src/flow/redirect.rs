//! Joining the two halves an iptables REDIRECT makes of one connection.
//!
//! Inside a pod, `iptables -t nat -A OUTPUT -p tcp --dport 8080 -j REDIRECT
//! --to-ports 15001` (Istio 15001/15006, ambient in-pod 15001/15006/15008,
//! Linkerd 4140/4143) sends the client's packets to the proxy port, while
//! conntrack restores the original destination on the replies before the
//! capture point (wire-facts §7): on `lo` one connection shows as a SYN
//! half `C > A` (A = the redirect target) and a reply half `B > C` (B = the
//! original destination). This file decides when the two are one
//! connection and rewrites the reply half onto the SYN half, so the engine
//! tracks one flow; the reports then name `server = B` and
//! `redirected_to = A`.
//!
//! The rule (never ports alone): a SYN-ACK from B to C whose ack is the ISN +
//! 1 of a SYN C sent to A, when no SYN from C to B exists and the SYN half
//! has no SYN-ACK of its own and no verdict. Afterwards the reply half's
//! acknowledgements must line up with the client's stream (at or after
//! ISN + 1), or its segments are not rewritten. A SYN-ACK from A itself on a
//! joined connection means two hosts answered one SYN: `Step::Conflict`,
//! and the engine gives the flow up (a spoofed SYN-ACK must never turn a
//! real flow into a false mtls).
//!
//! Both halves must reach the same worker: `FlowKey::shard` hashes the
//! endpoint with the higher port, and a join is made only when the client's
//! port is above both server ports (ephemeral ports are), so every
//! `--threads` makes the same joins. Bounded: pending SYNs and joins are
//! each held to `max` entries, oldest dropped first (counted). It must not
//! look at payloads nor keep anything per packet.
//!
//! A join lives as long as its flow: when the engine removes the SYN-half
//! flow from its table (expiry, eviction, port reuse, end of input) it calls
//! `flow_left`, and the join ends (`ended`) once the reports of that engine
//! call are annotated (`settle`), so the flow's last close line still names
//! its target. A later connection on the same client port is then judged
//! afresh, by its own SYN, never by the old join's ports.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::capture::segment::{Endpoint, FlowKey, Segment};
use crate::verdict::{Event, Report};

/// What the flow table knows of one half, as the engine answers
/// `Redirects::on_segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Half {
    /// ISN of the SYN the client sent on this 4-tuple.
    pub client_isn: Option<u32>,
    /// The other side sent a SYN-ACK.
    pub answered: bool,
    /// The flow's verdict is out.
    pub reported: bool,
}

/// What `Redirects::on_segment` did with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Not part of a joined connection: unchanged.
    Pass,
    /// A segment of a joined reply half, now addressed as its SYN half.
    Rewritten,
    /// This SYN-ACK joined the halves (and was rewritten).
    Joined,
    /// A reply-half segment whose ACK does not line up with the client's
    /// stream: left alone.
    Unaligned,
    /// The redirect target answered a SYN already answered from elsewhere:
    /// the flow with this key (the SYN half) cannot be trusted.
    Conflict(FlowKey),
}

/// One joined connection, stored under its reply half's key.
#[derive(Debug, Clone, Copy)]
struct Join {
    target: Endpoint,
    original: Endpoint,
    /// The client's ISN + 1: what the reply half acknowledges first.
    next: u32,
    serial: u64,
}

/// The pending SYNs and the joins of one engine.
#[derive(Debug, Default)]
pub struct Redirects {
    /// SYNs not answered yet: (client, ISN + 1) → (destination, serial).
    pending: FxHashMap<(Endpoint, u32), (Endpoint, u64)>,
    pending_order: VecDeque<((Endpoint, u32), u64)>,
    /// Joins by reply-half key (client, original destination).
    joins: FxHashMap<FlowKey, Join>,
    /// SYN-half key (client, target) → reply-half key.
    targets: FxHashMap<FlowKey, FlowKey>,
    join_order: VecDeque<(FlowKey, u64)>,
    /// Joins whose flow left during the current engine call, by reply-half
    /// key and serial: ended by `settle`, after `annotate` (at most `max` +
    /// 1: see `table_bytes`).
    left: Vec<(FlowKey, u64)>,
    serial: u64,
    max: usize,
    /// Pending SYNs or joins forgotten because their table was full.
    pub evicted: u64,
    /// Joins ended because their flow left the engine's table or a new
    /// connection took its 4-tuple.
    pub ended: u64,
}

/// Worst-case heap bytes of one engine's tables when each holds `max`
/// entries: hashbrown's buckets (at most 7/8 full, a power of two, one
/// control byte each) plus the order queues, which are compacted at twice
/// `max`.
pub fn table_bytes(max: usize) -> usize {
    use std::mem::size_of;
    let buckets = (max.saturating_mul(8) / 7 + 1).next_power_of_two();
    let slots = size_of::<((Endpoint, u32), (Endpoint, u64))>()
        + size_of::<(FlowKey, Join)>()
        + size_of::<(FlowKey, FlowKey)>()
        + 3;
    let queues = size_of::<((Endpoint, u32), u64)>() + size_of::<(FlowKey, u64)>();
    // Within one engine call each join's flow leaves at most once, and one
    // SYN may end one more join (`on_syn`).
    let left = max
        .saturating_add(1)
        .saturating_mul(size_of::<(FlowKey, u64)>());
    buckets
        .saturating_mul(slots)
        .saturating_add(max.saturating_mul(2).saturating_mul(queues))
        .saturating_add(left)
}

/// Entries each table may hold for an engine of `max_flows` flows: a
/// sixty-fourth (3,375 with the default limits), so both tables fit in the
/// slack of the flow table's share without lowering the flow limit. An
/// answered SYN leaves the pending table at once, and a full join table
/// drops joins whose flow is gone first.
pub fn max_entries(max_flows: usize) -> usize {
    (max_flows / 64).max(16)
}

impl Redirects {
    pub fn new(max: usize) -> Self {
        Redirects {
            max,
            ..Redirects::default()
        }
    }

    /// Look at one segment before the flow table does; `half` answers what
    /// the table holds for a key and a client endpoint.
    pub fn on_segment(
        &mut self,
        seg: &mut Segment<&[u8]>,
        half: impl Fn(&FlowKey, Endpoint) -> Option<Half>,
    ) -> Step {
        match (seg.flags.syn(), seg.flags.ack()) {
            (true, false) => {
                self.on_syn(seg);
                Step::Pass
            }
            (true, true) => self.on_syn_ack(seg, half),
            _ => self.rewrite(seg),
        }
    }

    /// The server endpoint and redirect target of reports of joined flows.
    pub fn annotate(&self, reports: &mut [Report]) {
        if self.targets.is_empty() {
            return;
        }
        for r in reports {
            let (client, server) = match &r.event {
                Event::Verdict(v) => (v.client, v.server),
                Event::Close(c) => (c.client, c.server),
            };
            let Some(join) = self
                .targets
                .get(&FlowKey::new(client, server))
                .and_then(|k| self.joins.get(k))
            else {
                continue;
            };
            if join.target != server {
                continue;
            }
            match &mut r.event {
                Event::Verdict(v) => {
                    v.server = join.original;
                    v.redirected_to = Some(join.target);
                }
                Event::Close(c) => {
                    c.server = join.original;
                    c.redirected_to = Some(join.target);
                }
            }
        }
    }

    /// A SYN: remember it until it is answered; a new connection on a
    /// joined 4-tuple ends that join (after this call's reports, which may
    /// close the old flow), a retransmitted SYN does not.
    fn on_syn(&mut self, seg: &Segment<&[u8]>) {
        let key = seg.key();
        let next = seg.seq.wrapping_add(1);
        match self.reply_key(&key) {
            Some((reply, j)) if j.next != next => self.left.push((reply, j.serial)),
            _ => {}
        }
        if self.max == 0 {
            return;
        }
        let key = (seg.src, seg.seq.wrapping_add(1));
        self.serial += 1;
        let serial = self.serial;
        if self.pending.insert(key, (seg.dst, serial)).is_none() {
            self.pending_order.push_back((key, serial));
        }
        while self.pending.len() > self.max {
            let Some((old, s)) = self.pending_order.pop_front() else {
                break;
            };
            if self.pending.get(&old).is_some_and(|&(_, os)| os == s) {
                self.pending.remove(&old);
                self.evicted += 1;
            }
        }
        if self.pending_order.len() > self.max.saturating_mul(2) {
            let pending = &self.pending;
            self.pending_order
                .retain(|(k, s)| pending.get(k).is_some_and(|&(_, os)| os == *s));
        }
    }

    /// A SYN-ACK: a normal answer, a retransmission on a join, a new join,
    /// or the target answering a joined SYN itself.
    fn on_syn_ack(
        &mut self,
        seg: &mut Segment<&[u8]>,
        half: impl Fn(&FlowKey, Endpoint) -> Option<Half>,
    ) -> Step {
        let (client, server) = (seg.dst, seg.src);
        let reply_key = seg.key();
        if self.targets.contains_key(&reply_key) {
            self.forget(&reply_key);
            return Step::Conflict(reply_key);
        }
        if let Some(join) = self.joins.get(&reply_key) {
            if seg.ack == join.next {
                seg.src = join.target;
                return Step::Rewritten;
            }
            self.forget(&reply_key);
        }
        let Some(&(target, _)) = self.pending.get(&(client, seg.ack)) else {
            return Step::Pass;
        };
        if target == server {
            self.pending.remove(&(client, seg.ack));
            return Step::Pass;
        }
        // Both halves reach this worker only when the client's port is the
        // higher one of each half (`FlowKey::shard`): joining otherwise
        // would depend on --threads.
        if client.port <= target.port || client.port <= server.port {
            return Step::Pass;
        }
        // A SYN from the client on this 4-tuple: this answers it, or not.
        if half(&reply_key, client).is_some_and(|h| h.client_isn.is_some()) {
            return Step::Pass;
        }
        let syn_key = FlowKey::new(client, target);
        let waiting = half(&syn_key, client).is_some_and(|h| {
            h.client_isn == Some(seg.ack.wrapping_sub(1)) && !h.answered && !h.reported
        });
        if !waiting {
            return Step::Pass;
        }
        self.pending.remove(&(client, seg.ack));
        self.join(reply_key, syn_key, target, server, seg.ack);
        self.trim_joins(|k, c| half(k, c).is_some());
        seg.src = target;
        Step::Joined
    }

    fn join(
        &mut self,
        reply: FlowKey,
        syn: FlowKey,
        target: Endpoint,
        original: Endpoint,
        next: u32,
    ) {
        self.serial += 1;
        let serial = self.serial;
        self.joins.insert(
            reply,
            Join {
                target,
                original,
                next,
                serial,
            },
        );
        self.targets.insert(syn, reply);
        self.join_order.push_back((reply, serial));
    }

    /// Over `max` joins: drop the oldest whose SYN-half flow has left the
    /// table (`alive` says whether it is there), looking at a few of the
    /// oldest; when they all live, the oldest goes (counted: a long-lived
    /// connection's later reply segments are then a flow of their own).
    fn trim_joins(&mut self, alive: impl Fn(&FlowKey, Endpoint) -> bool) {
        while self.joins.len() > self.max {
            let mut victim = None;
            for &(key, s) in self.join_order.iter().take(8) {
                let Some(j) = self.joins.get(&key).filter(|j| j.serial == s) else {
                    continue;
                };
                let client = if key.lo == j.original { key.hi } else { key.lo };
                if !alive(&FlowKey::new(client, j.target), client) {
                    victim = Some(key);
                    break;
                }
                victim.get_or_insert(key);
            }
            let Some(key) = victim else {
                // Only stale queue entries at the front: drop them.
                self.join_order.pop_front();
                continue;
            };
            let was_live = self.joins.get(&key).is_some_and(|j| {
                let client = if key.lo == j.original { key.hi } else { key.lo };
                alive(&FlowKey::new(client, j.target), client)
            });
            self.forget(&key);
            if was_live {
                self.evicted += 1;
            }
        }
        if self.join_order.len() > self.max.saturating_mul(2) {
            let joins = &self.joins;
            self.join_order
                .retain(|(k, s)| joins.get(k).is_some_and(|j| j.serial == *s));
        }
    }

    /// A reply-half segment of a joined connection, readdressed from or to
    /// the target; its ACK must acknowledge the client's stream from ISN + 1.
    fn rewrite(&self, seg: &mut Segment<&[u8]>) -> Step {
        if self.joins.is_empty() {
            return Step::Pass;
        }
        let Some(join) = self.joins.get(&seg.key()) else {
            return Step::Pass;
        };
        if seg.src == join.original {
            if seg.flags.ack() && seg.ack.wrapping_sub(join.next) > u32::MAX / 2 {
                return Step::Unaligned;
            }
            seg.src = join.target;
        } else {
            seg.dst = join.target;
        }
        Step::Rewritten
    }

    /// The flow with key `key` left the engine's table; `client_isns` are
    /// the ISNs of the SYNs sent from `key.lo` and from `key.hi`. Its
    /// pending SYN goes now; its join, if it is a join's SYN half, goes at
    /// `settle`. A reply-half flow of its own (unaligned segments) leaving
    /// does not end the join.
    pub fn flow_left(&mut self, key: &FlowKey, client_isns: [Option<u32>; 2]) {
        for (client, isn) in [(key.lo, client_isns[0]), (key.hi, client_isns[1])] {
            let Some(isn) = isn else { continue };
            let server = if client == key.lo { key.hi } else { key.lo };
            let pending = (client, isn.wrapping_add(1));
            if self
                .pending
                .get(&pending)
                .is_some_and(|&(d, _)| d == server)
            {
                self.pending.remove(&pending);
            }
        }
        if let Some(&reply) = self.targets.get(key)
            && let Some(j) = self.joins.get(&reply)
        {
            self.left.push((reply, j.serial));
        }
    }

    /// Every flow left (end of input): every join ends at `settle`, every
    /// pending SYN now.
    pub fn all_left(&mut self) {
        self.pending.clear();
        self.pending_order.clear();
        self.left.clear();
        self.left
            .extend(self.joins.iter().map(|(k, j)| (*k, j.serial)));
    }

    /// End the joins whose flow left during this engine call; call it after
    /// `annotate`. A join made since (same key, new serial) stays.
    #[inline]
    pub fn settle(&mut self) {
        // Called after every segment: nothing to do in the common case,
        // decided here without a call.
        if self.left.is_empty() && self.join_order.is_empty() {
            return;
        }
        self.settle_some();
    }

    /// `settle` when a join may have ended or the join order is kept.
    fn settle_some(&mut self) {
        if !self.left.is_empty() {
            for (reply, serial) in std::mem::take(&mut self.left) {
                if self.joins.get(&reply).is_some_and(|j| j.serial == serial) {
                    self.forget(&reply);
                    self.ended += 1;
                }
            }
        }
        if self.joins.is_empty() {
            self.join_order.clear();
        }
    }

    /// The join `key` belongs to, by either half's key: its reply-half key
    /// and the join.
    fn reply_key(&self, key: &FlowKey) -> Option<(FlowKey, Join)> {
        let reply = self.targets.get(key).copied().unwrap_or(*key);
        self.joins.get(&reply).map(|j| (reply, *j))
    }

    /// Drop the join a key belongs to, by either half's key.
    fn forget(&mut self, key: &FlowKey) {
        if let Some(j) = self.joins.remove(key) {
            let client = if key.lo == j.original { key.hi } else { key.lo };
            self.targets.remove(&FlowKey::new(client, j.target));
        } else if let Some(reply) = self.targets.remove(key) {
            self.joins.remove(&reply);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::capture::segment::{TcpFlags, Timestamp};

    fn ep(s: &str, port: u16) -> Endpoint {
        Endpoint {
            ip: s.parse().unwrap(),
            port,
        }
    }

    fn seg(src: Endpoint, dst: Endpoint, seq: u32, ack: u32, flags: u8) -> Segment<&'static [u8]> {
        Segment {
            ts: Timestamp(0),
            src,
            dst,
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 0,
            payload: &[],
            missing: 0,
        }
    }

    const SYN: u8 = TcpFlags::SYN;
    const SYN_ACK: u8 = TcpFlags::SYN | TcpFlags::ACK;
    const ACK: u8 = TcpFlags::ACK;

    /// A table where only the SYN half (client → target) holds a SYN with
    /// `isn`, unanswered.
    fn table(
        client: Endpoint,
        target: Endpoint,
        isn: u32,
    ) -> impl Fn(&FlowKey, Endpoint) -> Option<Half> {
        move |k: &FlowKey, _| {
            (*k == FlowKey::new(client, target)).then_some(Half {
                client_isn: Some(isn),
                ..Half::default()
            })
        }
    }

    #[test]
    fn a_synack_from_the_original_destination_joins_and_later_segments_follow() {
        let (c, a, b) = (
            ep("10.0.0.5", 40000),
            ep("127.0.0.1", 15001),
            ep("10.96.0.1", 8080),
        );
        let mut r = Redirects::new(16);
        let t = table(c, a, 1000);
        assert_eq!(r.on_segment(&mut seg(c, a, 1000, 0, SYN), &t), Step::Pass);
        let mut sa = seg(b, c, 7000, 1001, SYN_ACK);
        assert_eq!(r.on_segment(&mut sa, &t), Step::Joined);
        assert_eq!((sa.src, sa.dst), (a, c));
        let mut data = seg(b, c, 7001, 1051, ACK);
        assert_eq!(r.on_segment(&mut data, &t), Step::Rewritten);
        assert_eq!(data.src, a);
        // An ACK behind the client's ISN does not line up.
        let mut odd = seg(b, c, 7001, 500, ACK);
        assert_eq!(r.on_segment(&mut odd, &t), Step::Unaligned);
        assert_eq!(odd.src, b);
        // The client's own segments to the target are untouched.
        let mut own = seg(c, a, 1001, 7001, ACK);
        assert_eq!(r.on_segment(&mut own, &t), Step::Pass);
    }

    #[test]
    fn no_join_by_ports_alone_nor_when_the_syn_half_was_answered() {
        let (c, a, b) = (
            ep("10.0.0.5", 40000),
            ep("127.0.0.1", 15001),
            ep("10.96.0.1", 8080),
        );
        // Wrong ack: the SYN-ACK does not answer that SYN.
        let mut r = Redirects::new(16);
        let t = table(c, a, 1000);
        r.on_segment(&mut seg(c, a, 1000, 0, SYN), &t);
        assert_eq!(
            r.on_segment(&mut seg(b, c, 7000, 1002, SYN_ACK), &t),
            Step::Pass
        );
        // The SYN half has its own SYN-ACK: a third address's is not joined.
        let answered = move |k: &FlowKey, _| {
            (*k == FlowKey::new(c, a)).then_some(Half {
                client_isn: Some(1000),
                answered: true,
                reported: false,
            })
        };
        assert_eq!(
            r.on_segment(&mut seg(b, c, 7000, 1001, SYN_ACK), answered),
            Step::Pass
        );
        // The client also sent a SYN to B itself: that is a flow of its own.
        let both = move |k: &FlowKey, _| {
            Some(Half {
                client_isn: Some(if *k == FlowKey::new(c, b) { 5 } else { 1000 }),
                ..Half::default()
            })
        };
        assert_eq!(
            r.on_segment(&mut seg(b, c, 7000, 1001, SYN_ACK), both),
            Step::Pass
        );
        // A client port below a server port: the halves may be on two workers.
        let low = ep("10.0.0.5", 9000);
        let mut r = Redirects::new(16);
        let t = table(low, a, 1000);
        r.on_segment(&mut seg(low, a, 1000, 0, SYN), &t);
        assert_eq!(
            r.on_segment(&mut seg(b, low, 7000, 1001, SYN_ACK), &t),
            Step::Pass
        );
    }

    #[test]
    fn the_target_answering_a_joined_syn_is_a_conflict() {
        let (c, a, m) = (
            ep("10.0.0.5", 40000),
            ep("10.0.0.9", 443),
            ep("10.6.6.6", 8443),
        );
        let mut r = Redirects::new(16);
        let t = table(c, a, 1000);
        r.on_segment(&mut seg(c, a, 1000, 0, SYN), &t);
        // A third address answers first (spoofed): joined for now...
        assert_eq!(
            r.on_segment(&mut seg(m, c, 66, 1001, SYN_ACK), &t),
            Step::Joined
        );
        // ...until the real server answers too: the flow is given up.
        assert_eq!(
            r.on_segment(&mut seg(a, c, 9000, 1001, SYN_ACK), &t),
            Step::Conflict(FlowKey::new(c, a))
        );
        let mut late = seg(m, c, 67, 1001, ACK);
        assert_eq!(r.on_segment(&mut late, &t), Step::Pass);
    }

    #[test]
    fn a_join_ends_after_its_flow_leaves_and_not_before() {
        let (c, a, b) = (
            ep("10.0.0.5", 40000),
            ep("127.0.0.1", 15001),
            ep("10.96.0.1", 8080),
        );
        let t = table(c, a, 1000);
        let joined = || {
            let mut r = Redirects::new(16);
            r.on_segment(&mut seg(c, a, 1000, 0, SYN), &t);
            assert_eq!(
                r.on_segment(&mut seg(b, c, 7000, 1001, SYN_ACK), &t),
                Step::Joined
            );
            r
        };
        // The reply half's own flow (unaligned segments) leaving ends nothing.
        let mut r = joined();
        r.flow_left(&FlowKey::new(c, b), [None, None]);
        r.settle();
        assert_eq!((r.joins.len(), r.ended), (1, 0));
        // The SYN half leaving: the join holds until `settle` (the flow's
        // last reports are annotated in between), then ends, counted.
        r.flow_left(&FlowKey::new(c, a), [None, Some(1000)]);
        assert_eq!(r.joins.len(), 1);
        r.settle();
        assert_eq!((r.joins.len(), r.targets.len(), r.ended), (0, 0, 1));
        let mut late = seg(b, c, 7001, 1051, ACK);
        assert_eq!(r.on_segment(&mut late, &t), Step::Pass);
        assert_eq!(late.src, b);
        // A retransmitted SYN keeps the join; a new ISN on its 4-tuple ends
        // it at `settle`.
        let mut r = joined();
        r.on_segment(&mut seg(c, a, 1000, 0, SYN), &t);
        r.settle();
        assert_eq!((r.joins.len(), r.ended), (1, 0));
        r.on_segment(&mut seg(c, a, 5000, 0, SYN), &t);
        assert_eq!(r.joins.len(), 1);
        r.settle();
        assert_eq!((r.joins.len(), r.ended), (0, 1));
        // End of input ends every join.
        let mut r = joined();
        r.all_left();
        r.settle();
        assert_eq!((r.joins.len(), r.ended), (0, 1));
    }

    #[test]
    fn a_pending_syn_goes_with_its_flow() {
        let (c, a) = (ep("10.0.0.5", 40000), ep("127.0.0.1", 15001));
        let none = |_: &FlowKey, _| None;
        let mut r = Redirects::new(16);
        r.on_segment(&mut seg(c, a, 1000, 0, SYN), none);
        // The client's SYN with ISN 1000 on the flow `key`.
        let isns = |key: FlowKey| {
            if key.lo == c {
                [Some(1000), None]
            } else {
                [None, Some(1000)]
            }
        };
        // Another flow of the client's, with the same ISN, leaving does not
        // take it.
        let other = FlowKey::new(c, ep("127.0.0.1", 15006));
        r.flow_left(&other, isns(other));
        assert_eq!(r.pending.len(), 1);
        let key = FlowKey::new(c, a);
        r.flow_left(&key, isns(key));
        assert!(r.pending.is_empty());
        assert_eq!(r.ended, 0);
    }

    #[test]
    fn tables_stay_within_max_and_count_what_they_forget() {
        let a = ep("127.0.0.1", 15001);
        let mut r = Redirects::new(16);
        let none = |_: &FlowKey, _| None;
        for port in 40000..40100 {
            r.on_segment(&mut seg(ep("10.0.0.5", port), a, 7, 0, SYN), none);
            assert!(r.pending.len() <= 16);
            assert!(r.pending_order.len() <= 33);
        }
        assert_eq!(r.evicted, 100 - 16);
        assert!(table_bytes(16) > 0 && table_bytes(0) < table_bytes(1024));
        // Answered SYNs leave the table; their queue entries are compacted.
        let mut r = Redirects::new(16);
        for port in 40000..40100 {
            let c = ep("10.0.0.5", port);
            r.on_segment(&mut seg(c, a, 7, 0, SYN), none);
            r.on_segment(&mut seg(a, c, 9, 8, SYN_ACK), none);
        }
        assert_eq!((r.pending.len(), r.evicted), (0, 0));
        assert!(r.pending_order.len() <= 33);
    }
}
