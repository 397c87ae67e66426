//! How a loaded SYNC_FLUSH shard writes (`DsyncWrites::Auto`): write and then `fdatasync`
//! (the next round's write overlapping this round's sync), or every round one `O_DSYNC`
//! write. Which is faster depends on the disk: where the device serves one request at a time
//! (this project's development VM) the overlap buys nothing and the `O_DSYNC` round saves a
//! trip back to the shard and a request; where writes run beside a flush, the overlap wins
//! (docs/perf.md, "Durable writes for idle rounds").
//!
//! So the shard measures both, on its own traffic: every `HOLD` it runs a probe of
//! `PROBE_WINDOWS` windows of `WINDOW` each, alternating the two ways, and compares the bytes
//! each way flushed per second. The overlap is kept until the next probe only when it flushed
//! more by more than `MARGIN`; otherwise loaded rounds write `O_DSYNC`. A tie means the shard
//! flushes what it is sent either way (a load below the disk's), and then the `O_DSYNC` round
//! is the cheaper way: one submission and one completion per round instead of a write, an
//! `fdatasync` handed to an io_uring worker thread and the writes made while it runs, each a
//! device request (docs/perf.md, "SYNC_FLUSH below saturation"). A probe whose windows were
//! not all loaded (too few flushes, or a window stretched by a pause) keeps the current way.
//! Only loaded rounds ask ([`LoadedWrites::durable`]); a round that starts idle is always one
//! `O_DSYNC` write, and before the first probe loaded rounds are too.
//!
//! Contract: the choice only picks between two correct ways to reach `Flushed`; it never
//! affects what is acknowledged, only how fast.

use std::time::{Duration, Instant};

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

const _: () = assert!(PROBE_WINDOWS.is_multiple_of(2) && PROBE_WINDOWS >= 2);

enum Phase {
    Hold {
        until: Instant,
    },
    /// Window `index` of the probe, started at `started`.
    Probe {
        index: usize,
        started: Instant,
    },
}

pub(crate) struct LoadedWrites {
    /// The way loaded rounds write outside probes: `O_DSYNC` (true) or write + `fdatasync`.
    durable: bool,
    phase: Phase,
    /// Bytes flushed and flushes in the current probe window.
    bytes: u64,
    flushes: u32,
    /// Flushed bytes per second of each finished window of the probe (`None`: not loaded).
    rates: Vec<Option<f64>>,
    /// Probes finished.
    probes: u64,
}

impl LoadedWrites {
    /// Starts with `O_DSYNC` rounds (the way a tie keeps), probing after the first `HOLD`.
    pub fn new(now: Instant) -> LoadedWrites {
        LoadedWrites {
            durable: true,
            phase: Phase::Hold { until: now + HOLD },
            bytes: 0,
            flushes: 0,
            rates: Vec::with_capacity(PROBE_WINDOWS),
            probes: 0,
        }
    }

    /// Probes finished so far.
    pub fn probes(&self) -> u64 {
        self.probes
    }

    /// Whether a loaded round starting at `now` writes through the `O_DSYNC` descriptor.
    pub fn durable(&mut self, now: Instant) -> bool {
        self.advance(now);
        match self.phase {
            Phase::Hold { .. } => self.durable,
            // Even windows write + sync, odd ones `O_DSYNC`.
            Phase::Probe { index, .. } => index % 2 == 1,
        }
    }

    /// `bytes` more are flushed (by a sync or a durable write).
    pub fn on_flushed(&mut self, bytes: u64) {
        if let Phase::Probe { .. } = self.phase {
            self.bytes += bytes;
            self.flushes += 1;
        }
    }

    fn advance(&mut self, now: Instant) {
        match self.phase {
            Phase::Hold { until } if now >= until => self.start_window(0, now),
            Phase::Hold { .. } => {}
            Phase::Probe { index, started } => {
                let elapsed = now.saturating_duration_since(started);
                if elapsed < WINDOW {
                    return;
                }
                let loaded = self.flushes >= MIN_FLUSHES && elapsed <= 2 * WINDOW;
                self.rates
                    .push(loaded.then(|| self.bytes as f64 / elapsed.as_secs_f64()));
                if index + 1 < PROBE_WINDOWS {
                    self.start_window(index + 1, now);
                } else {
                    self.decide();
                    self.phase = Phase::Hold { until: now + HOLD };
                }
            }
        }
    }

    fn start_window(&mut self, index: usize, now: Instant) {
        if index == 0 {
            self.rates.clear();
        }
        self.bytes = 0;
        self.flushes = 0;
        self.phase = Phase::Probe {
            index,
            started: now,
        };
    }

    fn decide(&mut self) {
        assert_eq!(self.rates.len(), PROBE_WINDOWS, "a probe decides once");
        self.probes += 1;
        let Some(rates) = self.rates.iter().copied().collect::<Option<Vec<f64>>>() else {
            return;
        };
        let sum = |parity: usize| -> f64 {
            rates
                .iter()
                .enumerate()
                .filter(|(index, _)| index % 2 == parity)
                .map(|(_, rate)| rate)
                .sum()
        };
        let (overlapped, durable) = (sum(0), sum(1));
        let was = self.durable;
        // Overlap only where it is measurably faster: a tie goes to the cheaper way.
        self.durable = overlapped <= durable * MARGIN;
        tracing::debug!(
            overlapped_bytes_per_sec = overlapped as u64,
            durable_bytes_per_sec = durable as u64,
            durable = self.durable,
            switched = was != self.durable,
            "SYNC_FLUSH loaded-round probe"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one probe from `start` in which each way flushes `rate(durable)` bytes per
    /// millisecond with a flush every `every`; returns when the probe has decided.
    fn probe(
        choice: &mut LoadedWrites,
        start: Instant,
        every: Duration,
        rate: impl Fn(bool) -> u64,
    ) -> Instant {
        let mut now = start;
        assert!(matches!(choice.phase, Phase::Hold { .. }));
        choice.durable(now);
        assert!(matches!(choice.phase, Phase::Probe { index: 0, .. }));
        while matches!(choice.phase, Phase::Probe { .. }) {
            let durable = choice.durable(now);
            choice.on_flushed(rate(durable) * every.as_millis().max(1) as u64);
            now += every;
        }
        now
    }

    /// A fresh choice that has just measured the overlap 30% faster, so it overlaps.
    fn overlapping() -> (LoadedWrites, Instant) {
        let start = Instant::now();
        let mut choice = LoadedWrites::new(start);
        let end = probe(&mut choice, start + HOLD, Duration::from_millis(1), |d| {
            if d { 100 } else { 130 }
        });
        assert!(!choice.durable(end), "the overlap, after a probe it won");
        (choice, end)
    }

    #[test]
    fn keeps_the_overlap_only_while_it_is_faster() {
        let start = Instant::now();
        let mut fresh = LoadedWrites::new(start);
        assert!(fresh.durable(start), "starts with O_DSYNC rounds");
        assert!(fresh.durable(start + HOLD / 2), "no probe before HOLD");
        let (mut choice, end) = overlapping();
        assert!(!choice.durable(end + HOLD / 2), "held until the next probe");
        // The disk changes: O_DSYNC rounds are faster now, and the next probe switches.
        let every = Duration::from_millis(1);
        let end = probe(
            &mut choice,
            end + HOLD,
            every,
            |d| if d { 130 } else { 100 },
        );
        assert!(choice.durable(end));
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
            |d| if d { 100 } else { 103 },
        );
        assert!(choice.durable(end), "a tie: the cheaper way");
        // Ahead by more than MARGIN: the overlap again.
        let end = probe(
            &mut choice,
            end + HOLD,
            every,
            |d| if d { 100 } else { 106 },
        );
        assert!(!choice.durable(end));
    }

    #[test]
    fn an_unloaded_or_stretched_probe_keeps_the_current_way() {
        let (mut choice, end) = overlapping();
        // O_DSYNC far faster, but with flushes too rare to count: no switch.
        let end = probe(&mut choice, end + HOLD, Duration::from_millis(10), |d| {
            if d { 200 } else { 100 }
        });
        assert!(
            !choice.durable(end),
            "windows with too few flushes decide nothing"
        );
        // A window stretched by a pause (the load stopped mid-probe) decides nothing either.
        let mut now = end + HOLD;
        choice.durable(now);
        for _ in 0..PROBE_WINDOWS {
            for _ in 0..MIN_FLUSHES {
                let durable = choice.durable(now);
                choice.on_flushed(if durable { 200_000 } else { 100 });
                now += Duration::from_millis(1);
            }
            now += 3 * WINDOW;
            choice.durable(now);
        }
        assert!(
            matches!(choice.phase, Phase::Hold { .. }),
            "the probe ended"
        );
        assert!(!choice.durable(now), "stretched windows decide nothing");
    }
}
