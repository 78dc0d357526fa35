//! What travels between the pipeline's threads: batches of segments (with
//! their payloads in one byte arena, recycled; or, when the input is a
//! mapped file, left where they lie in the mapping: no copy), ticks and the end of input
//! to the workers; reports with a watermark, and final counters, back to
//! the output stage. The sizes here are what `budget` charges per queue.
//! Nothing here makes threads or looks inside payloads.

use crate::capture::mapped::Mapping;
use crate::capture::segment::{Segment, Timestamp};
use crate::flow::engine::EngineCounters;
use crate::report::stats::ProcessingTime;
use crate::verdict::{Report, ReportOrder};

/// Segments per channel message (amortises the channel's cost).
pub const BATCH: usize = 128;
/// Payload bytes per batch before it is sent (a batch of full-size
/// segments stays under ~200 KiB).
pub(super) const BATCH_BYTES: usize = 128 * 1024;
/// Emptied batches waiting to be reused, per worker.
pub const RECYCLED_PER_WORKER: usize = 8;

/// Heap bytes one batch may hold: its byte arena (allocated once at
/// `BATCH_BYTES`; a batch is sent before a segment would overflow it) and
/// its segment list. A single segment larger than the arena (offloaded
/// frames up to the snaplen) grows one arena once; such a batch is not
/// recycled.
pub fn batch_footprint() -> usize {
    BATCH_BYTES + BATCH * std::mem::size_of::<(u64, Segment<(u32, u32)>)>()
}

/// A payload's `len` with this bit set lies in the batch's arena; without
/// it, in the mapping at `base + offset`. A payload is at most the
/// snaplen (262,144 bytes), far below the bit.
const IN_ARENA: u32 = 1 << 31;

/// Segments for one worker with their payloads in one shared byte arena:
/// no allocation per segment. Emptied batches go back to the capture thread
/// (the recycle channel) and are filled again. With a mapped input the
/// payloads stay in the mapping and only their place travels.
pub struct Batch {
    /// (frame index, segment whose payload is `(offset, len)`: in `bytes`
    /// when `len` has `IN_ARENA`, else in the mapping at `base + offset`).
    pub(super) segments: Vec<(u64, Segment<(u32, u32)>)>,
    pub(super) bytes: Vec<u8>,
    /// The mapped input and this batch's base offset in it.
    mapped: Option<(Mapping, usize)>,
    /// Payload bytes this batch stands for, copied or not: `BATCH_BYTES`
    /// bounds them either way (mapped pages in flight are resident too).
    payload_bytes: usize,
}

impl Batch {
    /// A batch copying payloads into its arena, or, given the mapping the
    /// frames come from, pointing into it.
    pub(super) fn new(mapping: Option<Mapping>) -> Self {
        // The arena is allocated once at its full size (no doubling past
        // it: `fits` sends the batch first); a recycled batch keeps it, so
        // steady state allocates nothing. A mapped input needs none.
        let arena = if mapping.is_some() { 0 } else { BATCH_BYTES };
        Batch {
            segments: Vec::with_capacity(BATCH),
            bytes: Vec::with_capacity(arena),
            mapped: mapping.map(|m| (m, 0)),
            payload_bytes: 0,
        }
    }

    /// Whether `len` more payload bytes fit without growing the arena or
    /// passing `BATCH_BYTES` (an empty batch takes any segment).
    pub(super) fn fits(&self, len: usize) -> bool {
        self.segments.is_empty() || self.payload_bytes + len <= BATCH_BYTES
    }

    pub(super) fn clear(&mut self) {
        self.segments.clear();
        self.bytes.clear();
        self.payload_bytes = 0;
    }

    pub(super) fn is_full(&self) -> bool {
        self.segments.len() >= BATCH || self.payload_bytes >= BATCH_BYTES
    }

    pub(super) fn push(&mut self, index: u64, seg: Segment<&[u8]>) {
        let len = seg.payload.len() as u32;
        self.payload_bytes += seg.payload.len();
        let first = self.segments.is_empty();
        let in_map = self.mapped.as_mut().and_then(|(map, base)| {
            let at = map.offset_of(seg.payload)?;
            if first {
                *base = at;
            }
            u32::try_from(at.checked_sub(*base)?).ok()
        });
        let place = match in_map {
            Some(offset) => (offset, len),
            None => {
                let offset = self.bytes.len() as u32;
                self.bytes.extend_from_slice(seg.payload);
                (offset, len | IN_ARENA)
            }
        };
        self.segments.push((index, seg.map_payload(|_| place)));
    }

    /// A segment's payload: where `push` put it.
    pub(super) fn payload(&self, (offset, len): (u32, u32)) -> &[u8] {
        let (o, l) = (offset as usize, (len & !IN_ARENA) as usize);
        let from: &[u8] = match &self.mapped {
            Some((map, base)) if len & IN_ARENA == 0 => {
                return map.bytes().get(base + o..base + o + l).unwrap_or_default();
            }
            _ => &self.bytes,
        };
        from.get(o..o + l).unwrap_or_default()
    }
}

pub(super) enum ToWorker {
    Segments(Batch),
    Tick { index: u64, now: Timestamp },
    Finish { index: u64 },
}

pub(super) enum FromWorker {
    Reports {
        worker: usize,
        reports: Vec<Report>,
        /// The worker will send no report that sorts below this.
        watermark: ReportOrder,
    },
    Done {
        // Boxed: the counters outgrew the report message, and every
        // message on the channel is as large as the largest variant.
        counters: Box<EngineCounters>,
        processing: ProcessingTime,
    },
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::capture::mapped::Mapped;
    use crate::capture::segment::{Endpoint, TcpFlags};

    fn seg(payload: &[u8]) -> Segment<&[u8]> {
        let ep = |port| Endpoint {
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            port,
        };
        Segment {
            ts: Timestamp(0),
            src: ep(1),
            dst: ep(2),
            seq: 0,
            ack: 0,
            flags: TcpFlags(0),
            window: 0,
            payload,
            missing: 0,
        }
    }

    /// A mapped input's payloads are found in the mapping, anything else
    /// (here a payload from elsewhere) in the arena: each reads back as
    /// pushed, in order.
    #[test]
    fn payloads_read_back_from_the_mapping_or_the_arena() {
        let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&65535u32.to_le_bytes());
        file.extend_from_slice(&1u32.to_le_bytes());
        for body in [&b"first payload"[..], b"second"] {
            for w in [0u32, 0, body.len() as u32, body.len() as u32] {
                file.extend_from_slice(&w.to_le_bytes());
            }
            file.extend_from_slice(body);
        }
        let path = std::env::temp_dir().join(format!("mtlsniff-batch-{}.pcap", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&file)
            .unwrap();
        let mut m = Mapped::open(&std::fs::File::open(&path).unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut batch = Batch::new(Some(m.mapping()));
        let mut pushed = Vec::new();
        while let Some(r) = m.next_record(|_| true).unwrap() {
            pushed.push(r.data.to_vec());
            batch.push(pushed.len() as u64, seg(r.data));
        }
        let elsewhere = b"not in the file".to_vec();
        batch.push(9, seg(&elsewhere));
        pushed.push(elsewhere.clone());
        assert_eq!(batch.bytes, elsewhere, "only the outsider is copied");
        let got: Vec<Vec<u8>> = (batch.segments.iter())
            .map(|(_, s)| batch.payload(s.payload).to_vec())
            .collect();
        assert_eq!(got, pushed);
    }
}
