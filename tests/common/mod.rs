//! Shared by the integration tests: run a capture through decode and one
//! engine in-process, the same path the binary's workers take.

#![allow(dead_code)]

use std::path::Path;

use mtlsniff::decode::{self, DecodeCounters, Frame, LinkType};
use mtlsniff::engine::{Engine, Limits};
use mtlsniff::resumption::SessionMemory;
use mtlsniff::segment::{Segment, Timestamp};
use mtlsniff::verdict::Verdict;

/// Every TCP segment of a capture, in file order. Reading stops at the end
/// of the file or at a damaged record.
pub fn segments(path: &Path) -> Vec<Segment> {
    let mut cap = match pcap::Capture::from_file(path) {
        Ok(c) => c,
        Err(e) => panic!("cannot open {}: {e}", path.display()),
    };
    let link = LinkType(cap.get_datalink().0);
    let mut counters = DecodeCounters::default();
    let mut out = Vec::new();
    while let Ok(p) = cap.next_packet() {
        let ts = Timestamp::from_secs_micros(p.header.ts.tv_sec, p.header.ts.tv_usec);
        let frame = Frame {
            ts,
            link,
            data: p.data,
            orig_len: p.header.len,
        };
        out.extend(decode::decode(&frame, &mut counters));
    }
    out
}

/// Verdicts for a list of segments, in report order.
pub fn verdicts_of(segs: &[Segment], limits: Limits) -> Vec<Verdict> {
    let mut engine = Engine::new(limits);
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        engine.on_segment(s.clone(), i as u64, &mut out);
    }
    engine.finish(segs.len() as u64, &mut out);
    out.sort_by_key(|r| r.order);
    // As the binary's output stage does: resumptions inherit the verdict of
    // the full handshake that created their session.
    let mut sessions = SessionMemory::default();
    out.into_iter()
        .map(|r| {
            let mut v = r.verdict;
            sessions.link(&mut v);
            v
        })
        .collect()
}

/// Verdicts for a capture with default limits.
pub fn verdicts(path: &Path) -> Vec<Verdict> {
    verdicts_of(&segments(path), Limits::default())
}

/// Rows of a tab-separated file with a header, as column-name maps.
pub fn tsv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}
