//! How a loaded SYNC_FLUSH shard writes (`DsyncWrites::Auto`): write and then `fdatasync`
//! (the next round's write overlapping this round's sync), or every round one `O_DSYNC`
//! write. Which is faster depends on the disk: where the device serves one request at a time
//! (this project's development VM) the overlap buys nothing and the `O_DSYNC` round saves a
//! trip back to the shard and a request; where writes run beside a flush, the overlap wins
//! (docs/perf.md, "Durable writes for idle rounds").
//!
//! So the shard measures both, on its own traffic (`rmq_core::way_probe`): every `HOLD` it runs a
//! probe of `PROBE_WINDOWS` windows of `WINDOW` each, alternating the two ways, and compares
//! the bytes each way flushed per second. The overlap is kept until the next probe only when
//! it flushed more by more than `MARGIN`; otherwise loaded rounds write `O_DSYNC`. A tie means the shard
//! flushes what it is sent either way (a load below the disk's), and then the `O_DSYNC` round
//! is the cheaper way: one submission and one completion per round instead of a write, an
//! `fdatasync` handed to an io_uring worker thread and the writes made while it runs, each a
//! device request (docs/perf.md, "SYNC_FLUSH below saturation"). A probe whose windows were
//! not all loaded (too few flushes, or a window stretched by a pause) keeps the current way.
//! Only loaded rounds ask ([`WayProbe::favoured`]); a round that starts idle is always one
//! `O_DSYNC` write, and before the first probe loaded rounds are too. The probe does not run
//! while the group commit delay's probe does (`group_delay.rs`).
//!
//! Contract: the choice only picks between two correct ways to reach `Flushed`; it never
//! affects what is acknowledged, only how fast.

use std::time::{Duration, Instant};

use rmq_core::way_probe::{ProbeFamily, ProbeSettings, WayProbe};

/// One probe window.
const WINDOW: Duration = Duration::from_millis(50);
/// Windows per probe, alternating the two ways (an even number).
const PROBE_WINDOWS: usize = 6;
/// Time between probes.
const HOLD: Duration = Duration::from_secs(2);
/// How much faster the other way must be to switch.
const MARGIN: f64 = 1.05;
/// Fewest flushes a window needs to count (a loaded shard does hundreds per window).
const MIN_FLUSHES: u32 = 8;

const SETTINGS: ProbeSettings = ProbeSettings {
    family: ProbeFamily::SyncFlush,
    window: WINDOW,
    windows: PROBE_WINDOWS,
    hold: HOLD,
    first: HOLD,
    margin: MARGIN,
    min_events: MIN_FLUSHES,
    start_favoured: true,
    backoff: None,
    backoff_favoured: false,
    aligned: false,
    unanimous: false,
};

/// The probe of how loaded rounds write: its favoured way ([`WayProbe::favoured`] true) is
/// `O_DSYNC`, the other write + `fdatasync`. Starts with `O_DSYNC` rounds (the way a tie
/// keeps), probing after the first `HOLD`.
pub(crate) fn new(now: Instant) -> WayProbe {
    WayProbe::new(SETTINGS, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_core::way_probe::WayProbe;
    use rmq_core::way_probe::testing::probe;

    /// A fresh choice that has just measured the overlap 30% faster, so it overlaps.
    fn overlapping() -> (WayProbe, Instant) {
        let start = Instant::now();
        let mut choice = new(start);
        let end = probe(&mut choice, start + HOLD, Duration::from_millis(1), |d| {
            if d { 100 } else { 130 }
        });
        assert!(
            !choice.favoured(end, false),
            "the overlap, after a probe it won"
        );
        (choice, end)
    }

    #[test]
    fn keeps_the_overlap_only_while_it_is_faster() {
        let start = Instant::now();
        let mut fresh = new(start);
        assert!(fresh.favoured(start, false), "starts with O_DSYNC rounds");
        assert!(
            fresh.favoured(start + HOLD / 2, false),
            "no probe before HOLD"
        );
        let (mut choice, end) = overlapping();
        assert!(
            !choice.favoured(end + HOLD / 2, false),
            "held until the next probe"
        );
        // The disk changes: O_DSYNC rounds are faster now, and the next probe switches.
        let every = Duration::from_millis(1);
        let end = probe(
            &mut choice,
            end + HOLD,
            every,
            |d| {
                if d { 130 } else { 100 }
            },
        );
        assert!(choice.favoured(end, false));
    }

    #[test]
    fn a_tie_goes_to_o_dsync_rounds() {
        let (mut choice, end) = overlapping();
        let every = Duration::from_millis(1);
        // Both ways flush what the shard is sent (the overlap 3% ahead, inside MARGIN).
        let end = probe(
            &mut choice,
            end + HOLD,
            every,
            |d| {
                if d { 100 } else { 103 }
            },
        );
        assert!(choice.favoured(end, false), "a tie: the cheaper way");
        // Ahead by more than MARGIN: the overlap again.
        let end = probe(
            &mut choice,
            end + HOLD,
            every,
            |d| {
                if d { 100 } else { 106 }
            },
        );
        assert!(!choice.favoured(end, false));
    }

    #[test]
    fn an_unloaded_or_stretched_probe_keeps_the_current_way() {
        let (mut choice, end) = overlapping();
        // O_DSYNC far faster, but with flushes too rare to count: no switch.
        let end = probe(&mut choice, end + HOLD, Duration::from_millis(10), |d| {
            if d { 200 } else { 100 }
        });
        assert!(
            !choice.favoured(end, false),
            "windows with too few flushes decide nothing"
        );
        // A window stretched by a pause (the load stopped mid-probe) decides nothing either.
        let mut now = end + HOLD;
        choice.favoured(now, false);
        for _ in 0..PROBE_WINDOWS {
            for _ in 0..MIN_FLUSHES {
                let durable = choice.favoured(now, false);
                choice.on_work(if durable { 200_000 } else { 100 }, 1);
                now += Duration::from_millis(1);
            }
            now += 3 * WINDOW;
            choice.favoured(now, false);
        }
        assert!(!choice.probing(), "the probe ended");
        assert!(
            !choice.favoured(now, false),
            "stretched windows decide nothing"
        );
    }
}
