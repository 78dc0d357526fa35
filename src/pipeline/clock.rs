//! When the capture thread broadcasts a clock tick to every worker, and
//! at which index. Ticks drive idle expiry in the engines; for file-mode
//! output to be identical for any `--threads`, they must come at the same
//! frame indexes with the same packet times whatever the sharding, so the
//! clock is a pure function of frame indexes and packet times (plus wall
//! time when a live capture is idle, and time since the last byte when a
//! pipe is quiet). It must not look at payloads or make threads.
//!
//! A quiet pipe (`-r -`) ticks at its last packet's time plus the wall time
//! it has been quiet, not at wall time itself: `tcpdump -U -w -` stamps
//! packets with the wall clock, so the two agree there, while a pipe fed an
//! old capture (`cat old.pcap |`) that pauses does not expire every flow
//! at once, only those idle longer than the pause.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::capture::segment::Timestamp;

/// A tick at least every this many frames.
pub const TICK_FRAMES: u64 = 4096;
/// A tick whenever packet time advanced this much since the last one.
pub const TICK_PERIOD: Timestamp = Timestamp(1_000_000);

/// Decides when the capture thread broadcasts a tick. Pure: a function of
/// frame indexes and packet times only (plus wall time when idle, live).
#[derive(Debug, Clone, Default)]
pub struct TickClock {
    /// Highest packet time seen: the engines' clock never runs backwards.
    now: Option<Timestamp>,
    last_tick: Option<Timestamp>,
    /// Highest packet time seen (`now` also moves on quiet ticks).
    packets: Option<Timestamp>,
}

impl TickClock {
    /// Frame `index` with time `ts` is about to be dispatched; returns the
    /// tick to broadcast before it, if one is due.
    pub fn on_frame(&mut self, index: u64, ts: Timestamp) -> Option<Timestamp> {
        let now = self.now.map_or(ts, |n| n.max(ts));
        self.now = Some(now);
        self.packets = Some(self.packets.map_or(ts, |p| p.max(ts)));
        let last = *self.last_tick.get_or_insert(now);
        let due = (index > 0 && index.is_multiple_of(TICK_FRAMES))
            || now.0.saturating_sub(last.0) >= TICK_PERIOD.0;
        if due {
            self.last_tick = Some(now);
        }
        due.then_some(now)
    }

    /// Live capture idle: tick at wall time (never before packet time).
    pub fn on_idle(&mut self, wall: Timestamp) -> Timestamp {
        let now = self.now.map_or(wall, |n| n.max(wall));
        self.now = Some(now);
        self.last_tick = Some(now);
        now
    }
}

impl TickClock {
    /// A pipe has been quiet for `quiet`: tick at the latest packet time
    /// plus that (never backwards). Before any packet: no flow exists, so
    /// the time only needs to be the clock's own.
    pub fn on_quiet(&mut self, quiet: Duration) -> Timestamp {
        let micros = i64::try_from(quiet.as_micros()).unwrap_or(i64::MAX);
        let base = self
            .packets
            .map_or(Timestamp(0), |p| Timestamp(p.0.saturating_add(micros)));
        let now = self.now.map_or(base, |n| n.max(base));
        self.now = Some(now);
        self.last_tick = Some(now);
        now
    }
}

/// Wall time as a packet timestamp, for ticks while a live capture is idle.
pub(super) fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_frame_count_and_packet_time_only() {
        let mut c = TickClock::default();
        let sec = TICK_PERIOD.0;
        assert_eq!(c.on_frame(0, Timestamp(10 * sec)), None);
        assert_eq!(c.on_frame(1, Timestamp(10 * sec + 999_999)), None);
        assert_eq!(
            c.on_frame(2, Timestamp(11 * sec)),
            Some(Timestamp(11 * sec))
        );
        // Time going backwards does not move the clock back.
        assert_eq!(c.on_frame(3, Timestamp(5 * sec)), None);
        assert_eq!(
            c.on_frame(TICK_FRAMES, Timestamp(5 * sec)),
            Some(Timestamp(11 * sec))
        );
        assert_eq!(
            c.on_frame(TICK_FRAMES + 1, Timestamp(12 * sec)),
            Some(Timestamp(12 * sec))
        );
        assert_eq!(c.on_idle(Timestamp(3 * sec)), Timestamp(12 * sec));
        assert_eq!(c.on_idle(Timestamp(20 * sec)), Timestamp(20 * sec));
        assert_eq!(c.on_frame(TICK_FRAMES + 2, Timestamp(20 * sec + 10)), None);
    }

    #[test]
    fn a_quiet_pipe_ticks_at_its_last_packet_plus_the_quiet() {
        let mut c = TickClock::default();
        let sec = TICK_PERIOD.0;
        assert_eq!(c.on_frame(0, Timestamp(100 * sec)), None);
        assert_eq!(c.on_frame(1, Timestamp(90 * sec)), None);
        let quiet = |s: u64| Duration::from_secs(s);
        assert_eq!(c.on_quiet(quiet(3)), Timestamp(103 * sec));
        // Measured from the last packet each time, not added up.
        assert_eq!(c.on_quiet(quiet(5)), Timestamp(105 * sec));
        assert_eq!(
            c.on_quiet(quiet(1)),
            Timestamp(105 * sec),
            "never backwards"
        );
        assert_eq!(c.on_frame(2, Timestamp(104 * sec)), None);
        assert_eq!(c.on_quiet(quiet(2)), Timestamp(106 * sec));
    }
}
