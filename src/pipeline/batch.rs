//! What travels between the pipeline's threads: batches of segments (with
//! their payloads in one byte arena, recycled), ticks and the end of input
//! to the workers; reports with a watermark, and final counters, back to
//! the output stage. The sizes here are what `budget` charges per queue.
//! Nothing here makes threads or looks inside payloads.

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

/// Segments for one worker with their payloads in one shared byte arena:
/// no allocation per segment. Emptied batches go back to the capture thread
/// (the recycle channel) and are filled again.
pub struct Batch {
    /// (frame index, segment whose payload is `(offset, len)` in `bytes`).
    pub(super) segments: Vec<(u64, Segment<(u32, u32)>)>,
    pub(super) bytes: Vec<u8>,
}

impl Batch {
    pub(super) fn new() -> Self {
        // The arena is allocated once at its full size (no doubling past
        // it: `fits` sends the batch first); a recycled batch keeps it, so
        // steady state allocates nothing.
        Batch {
            segments: Vec::with_capacity(BATCH),
            bytes: Vec::with_capacity(BATCH_BYTES),
        }
    }

    /// Whether `len` more payload bytes fit the arena without growing it
    /// (an empty batch takes any segment).
    pub(super) fn fits(&self, len: usize) -> bool {
        self.segments.is_empty() || self.bytes.len() + len <= BATCH_BYTES
    }

    pub(super) fn clear(&mut self) {
        self.segments.clear();
        self.bytes.clear();
    }

    pub(super) fn is_full(&self) -> bool {
        self.segments.len() >= BATCH || self.bytes.len() >= BATCH_BYTES
    }

    pub(super) fn push(&mut self, index: u64, seg: Segment<&[u8]>) {
        let offset = self.bytes.len() as u32;
        self.bytes.extend_from_slice(seg.payload);
        let len = seg.payload.len() as u32;
        self.segments
            .push((index, seg.map_payload(|_| (offset, len))));
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
