//! Whether a loaded SYNC_FLUSH shard holds its next round for the group commit delay
//! (`StoreConfig::sync_group_delay`, `flusher.rs` `GroupWait`), when the delay is probed
//! (`StoreConfig::sync_group_delay_probe`, the default).
//!
//! The delay makes one device request cover more sends. Where sends keep arriving while the
//! round waits (producers that do not wait for each ack, or many of them) that costs no
//! throughput and cuts CPU per message and the tail: fewer device requests, fewer VM exits
//! (docs/perf.md, "SYNC_FLUSH below saturation"). Where a few producers each wait for their
//! ack before sending again, nothing arrives during the wait and it only slows them down
//! (4 sync producers lost half their throughput to a 1.5 ms delay).
//!
//! So the shard measures both on its own traffic (`rmq_core::way_probe`): every `HOLD` a probe of
//! `PROBE_WINDOWS` windows of `WINDOW`, alternating delayed and undelayed rounds, compares the
//! bytes each way flushed per second. The delay is the favoured way: it stays unless rounds
//! without it flushed more by more than `MARGIN`. Windows are long against the delay, because
//! a switch into delayed rounds shifts up to one delay's worth of sends into the next window. Before the first probe, rounds are not delayed. While rounds go undelayed, each
//! probe that keeps them so doubles the time to the next, up to `MAX_HOLD`; with the delay on,
//! probes come every `HOLD`. The probe does not run while the
//! loaded-writes probe does (`loaded_writes.rs`).
//!
//! Contract: like the delay itself, the choice changes when a round starts, never what is
//! acknowledged.

use std::time::{Duration, Instant};

use rmq_core::way_probe::{ProbeFamily, ProbeSettings, WayProbe};

/// One probe window: long against the delay (500 µs by default), so the backlog a switch
/// moves between windows stays a small share of each.
const WINDOW: Duration = Duration::from_millis(100);
/// Windows per probe, alternating the two ways.
const PROBE_WINDOWS: usize = 4;
/// Time between probes.
const HOLD: Duration = Duration::from_secs(3);
/// Longest time between probes while rounds go undelayed: each probe that keeps them so
/// doubles the hold, because its delayed windows slow the closed-loop producers that made
/// the choice (the probe would otherwise put ~5% of their sends at a delay's latency).
const MAX_HOLD: Duration = Duration::from_secs(48);
const _: () = assert!(
    (MAX_HOLD.as_secs() / HOLD.as_secs()).is_power_of_two()
        && MAX_HOLD.as_secs().is_multiple_of(HOLD.as_secs()),
    "a backed-off hold doubles up to MAX_HOLD"
);
/// Time before the first probe (the loaded-writes probe's first is at 2 s).
const FIRST: Duration = Duration::from_secs(1);
/// How much more undelayed rounds must flush to drop the delay (a switch moves one delay's
/// worth of sends between windows: 1% of the two ways' difference at the default 500 µs).
const MARGIN: f64 = 1.05;
/// Fewest flushes a window needs to count.
const MIN_FLUSHES: u32 = 8;

const SETTINGS: ProbeSettings = ProbeSettings {
    family: ProbeFamily::SyncFlush,
    window: WINDOW,
    windows: PROBE_WINDOWS,
    hold: HOLD,
    first: FIRST,
    margin: MARGIN,
    min_events: MIN_FLUSHES,
    start_favoured: false,
    backoff: Some(MAX_HOLD),
    backoff_favoured: false,
    aligned: true,
    unanimous: false,
};

/// The probe of whether loaded rounds wait for the delay: its favoured way
/// ([`WayProbe::favoured`] true) is the delay. Starts undelayed.
pub(crate) fn new(now: Instant) -> WayProbe {
    WayProbe::new(SETTINGS, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_core::way_probe::testing::probe;

    #[test]
    fn the_delay_is_kept_unless_rounds_without_it_flush_clearly_more() {
        let start = Instant::now();
        let mut choice = new(start);
        assert!(!choice.favoured(start, false), "no delay before a probe");
        let every = Duration::from_millis(1);
        // An open-loop load: both ways flush what arrives (the undelayed windows a little
        // ahead from the backlog a switch moves).
        let end = probe(&mut choice, start + FIRST + HOLD, every, |delayed| {
            if delayed { 100 } else { 103 }
        });
        assert!(choice.favoured(end, false), "a tie keeps the delay");
        assert!(
            choice.favoured(end + HOLD / 2, false),
            "held until the next probe"
        );
        // Four closed-loop producers: the delay halves what they send.
        let end = probe(&mut choice, end + HOLD + HOLD, every, |delayed| {
            if delayed { 50 } else { 100 }
        });
        assert!(
            !choice.favoured(end, false),
            "the delay costs throughput: dropped"
        );
        assert_eq!(choice.probes(), 2);
    }
}
