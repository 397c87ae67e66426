//! Picking one of two correct ways of running something by measuring both on live traffic:
//! how a loaded SYNC_FLUSH shard writes and whether it waits for the group commit delay
//! (rmq-storage `loaded_writes.rs`, `group_delay.rs`), and whether the cores poll their rings
//! before sleeping (rmq-net `poll_probe.rs`).
//!
//! Every `hold` the probe runs `windows` windows of `window` each, alternating the two ways,
//! and compares the work each way did per second (bytes flushed, requests served). One way
//! is *favoured*: it is what a tie keeps, because it is the cheaper one when both do all the
//! work there is (a load below the capacity of either). The other way is kept until the next
//! probe only when it did more by more than `margin`. A probe whose windows were not all
//! loaded (too few events, or a window stretched by a pause) keeps the current way. Only the
//! caller's loaded moments ask ([`WayProbe::favoured`]), so an idle process never probes.
//!
//! Two probes that affect each other must not measure at the same time (each would see the
//! other's alternation as noise). Within one owner (a shard's two probes) the owner says so:
//! [`WayProbe::favoured`] takes whether another probe is running and then postpones a probe
//! that is due. Across owners, probes of different [`ProbeFamily`]s exclude each other through
//! a [`ProbeRoom`] (the process-wide one unless a test brings its own): a probe does not start
//! while a probe of another family is measuring.
//!
//! Probes of one family run by several owners can run in step (`ProbeSettings::aligned`): a
//! delay on one shard also slows closed-loop producers' sends to the others, so shards that
//! alternate out of step would see each other's ways in their own measurements. Aligned
//! probes start only on a process-wide grid of `hold`, and a probe backed off to `m` times
//! `hold` only on every `m`-th grid point (`m` a power of two), so whenever a shard probes,
//! every shard probing at all that often probes with it.
//!
//! Contract: a probe only picks between two correct ways; it never affects what is
//! acknowledged, only how fast.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a probe chooses between; probes of different families never measure at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeFamily {
    /// A SYNC_FLUSH shard's ways of writing and grouping (per shard).
    SyncFlush,
    /// Whether the cores poll before sleeping (per process).
    IdlePoll,
}

impl ProbeFamily {
    const COUNT: usize = 2;

    fn index(self) -> usize {
        match self {
            ProbeFamily::SyncFlush => 0,
            ProbeFamily::IdlePoll => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ProbeFamily::SyncFlush => "SYNC_FLUSH",
            ProbeFamily::IdlePoll => "idle poll",
        }
    }
}

/// Which probes are measuring now, per family.
#[derive(Debug, Default)]
pub struct ProbeRoom {
    running: [AtomicUsize; ProbeFamily::COUNT],
}

impl ProbeRoom {
    /// The process's room, shared by every probe made with [`WayProbe::new`].
    pub fn process() -> &'static ProbeRoom {
        static ROOM: OnceLock<ProbeRoom> = OnceLock::new();
        ROOM.get_or_init(ProbeRoom::default)
    }

    /// Whether a probe of a family other than `family` is measuring.
    pub fn others_running(&self, family: ProbeFamily) -> bool {
        self.running
            .iter()
            .enumerate()
            .any(|(index, running)| index != family.index() && running.load(Ordering::Acquire) > 0)
    }

    fn enter(&self, family: ProbeFamily) {
        self.running[family.index()].fetch_add(1, Ordering::AcqRel);
    }

    fn leave(&self, family: ProbeFamily) {
        let before = self.running[family.index()].fetch_sub(1, Ordering::AcqRel);
        assert!(
            before > 0,
            "a probe leaves the room once, after entering it"
        );
    }
}

/// How a probe measures.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSettings {
    /// What the probe chooses between (see [`ProbeRoom`]).
    pub family: ProbeFamily,
    /// One probe window.
    pub window: Duration,
    /// Windows per probe, alternating the two ways (an even number).
    pub windows: usize,
    /// Time between probes.
    pub hold: Duration,
    /// Time before the first probe.
    pub first: Duration,
    /// How much faster the other way must be to be kept.
    pub margin: f64,
    /// Fewest events (flushes, requests) a window needs to count.
    pub min_events: u32,
    /// The way used before the first probe decides.
    pub start_favoured: bool,
    /// While the other way holds, each probe that keeps it doubles the time to the next one,
    /// up to this (`None`: always `hold`). A probe runs the favoured way for half its windows,
    /// which costs where the other way is the right one (the group delay's probe slows a few
    /// closed-loop producers in its delayed windows), so a settled choice of the other way is
    /// probed rarely; the favoured way is probed every `hold` unless `backoff_favoured`.
    pub backoff: Option<Duration>,
    /// Back off (as `backoff`) while the favoured way holds too: for a probe whose other way
    /// is the costly one to try (idle polling costs a moderate open-loop load its tail in
    /// the polling windows).
    pub backoff_favoured: bool,
    /// Start probes only on a process-wide grid of `hold` (see the module doc).
    pub aligned: bool,
    /// Switching from the favoured way to the other takes each of the other way's windows
    /// beating every window of the favoured way by `margin` (not just the sums); staying on
    /// the other way takes the sums. A load that ramps up or down across the probe's windows
    /// then never looks like a win, and one noisy window does not undo a settled one. A probe
    /// whose sums said "win" but not every window did is repeated after `hold`.
    pub unanimous: bool,
}

impl ProbeSettings {
    /// When a probe due at `at` starts, with the hold backed off to `hold` (a power-of-two
    /// multiple of `self.hold`).
    fn start_at(&self, at: Instant, hold: Duration) -> Instant {
        if !self.aligned {
            return at;
        }
        static BASE: OnceLock<Instant> = OnceLock::new();
        let base = *BASE.get_or_init(Instant::now);
        let quantum = self.hold.as_nanos().max(1);
        // A backed-off hold is a power-of-two multiple of `hold` (it doubles); a cap that is
        // not one rounds down to one, so every shard's grid stays a subset of the base grid.
        let ratio = (hold.as_nanos() / quantum).max(1);
        let every = 1u128 << ratio.ilog2();
        let since = at.saturating_duration_since(base).as_nanos();
        let index = since.div_ceil(quantum).next_multiple_of(every);
        let start = base + Duration::from_nanos(u64::try_from(index * quantum).unwrap_or(u64::MAX));
        assert!(start >= at, "a probe never starts before it is due");
        start
    }
}

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

/// One choice between two ways, measured (module doc).
pub struct WayProbe {
    settings: ProbeSettings,
    room: &'static ProbeRoom,
    /// The way used outside probes: the favoured one (true) or the other.
    favoured: bool,
    phase: Phase,
    /// Work done and events in the current probe window.
    work: u64,
    events: u32,
    /// Work per second of each finished window of the probe (`None`: not loaded).
    rates: Vec<Option<f64>>,
    /// Probes finished.
    probes: u64,
    /// The time from this probe's end to the next one's start.
    hold: Duration,
}

impl WayProbe {
    /// A probe in the process's [`ProbeRoom`].
    pub fn new(settings: ProbeSettings, now: Instant) -> WayProbe {
        WayProbe::in_room(settings, now, ProbeRoom::process())
    }

    /// A probe that excludes only the probes of `room`.
    pub fn in_room(settings: ProbeSettings, now: Instant, room: &'static ProbeRoom) -> WayProbe {
        assert!(
            settings.windows.is_multiple_of(2) && settings.windows >= 2,
            "a probe alternates the two ways over an even number of windows"
        );
        assert!(settings.margin >= 1.0 && !settings.window.is_zero());
        WayProbe {
            settings,
            room,
            favoured: settings.start_favoured,
            phase: Phase::Hold {
                until: settings.start_at(now + settings.first, settings.hold),
            },
            work: 0,
            events: 0,
            rates: Vec::with_capacity(settings.windows),
            probes: 0,
            hold: settings.hold,
        }
    }

    /// Probes finished so far.
    pub fn probes(&self) -> u64 {
        self.probes
    }

    /// Whether a probe is measuring now.
    pub fn probing(&self) -> bool {
        matches!(self.phase, Phase::Probe { .. })
    }

    /// The way used between probes (true: the favoured one), as the last probe decided.
    pub fn settled(&self) -> bool {
        self.favoured
    }

    /// Whether work starting at `now` goes the favoured way. A probe that is due starts only
    /// when `other_probing` is false and no probe of another family is measuring.
    pub fn favoured(&mut self, now: Instant, other_probing: bool) -> bool {
        self.advance(now, other_probing);
        match self.phase {
            Phase::Hold { .. } => self.favoured,
            // Even windows go the other way, odd ones the favoured way.
            Phase::Probe { index, .. } => index % 2 == 1,
        }
    }

    /// `work` more was done (bytes flushed, requests served) in `events` events (flushes,
    /// requests).
    pub fn on_work(&mut self, work: u64, events: u32) {
        if let Phase::Probe { .. } = self.phase {
            self.work = self.work.saturating_add(work);
            self.events = self.events.saturating_add(events);
        }
    }

    fn advance(&mut self, now: Instant, other_probing: bool) {
        match self.phase {
            Phase::Hold { until }
                if now >= until
                    && !other_probing
                    && !self.room.others_running(self.settings.family) =>
            {
                self.room.enter(self.settings.family);
                self.start_window(0, now)
            }
            Phase::Hold { .. } => {}
            Phase::Probe { index, started } => {
                let elapsed = now.saturating_duration_since(started);
                if elapsed < self.settings.window {
                    return;
                }
                let loaded =
                    self.events >= self.settings.min_events && elapsed <= 2 * self.settings.window;
                self.rates
                    .push(loaded.then(|| self.work as f64 / elapsed.as_secs_f64()));
                if index + 1 < self.settings.windows {
                    self.start_window(index + 1, now);
                } else {
                    self.decide();
                    self.room.leave(self.settings.family);
                    self.phase = Phase::Hold {
                        until: if self.settings.aligned {
                            self.settings.start_at(now, self.hold)
                        } else {
                            now + self.hold
                        },
                    };
                }
            }
        }
    }

    fn start_window(&mut self, index: usize, now: Instant) {
        if index == 0 {
            self.rates.clear();
        }
        self.work = 0;
        self.events = 0;
        self.phase = Phase::Probe {
            index,
            started: now,
        };
    }

    fn decide(&mut self) {
        assert_eq!(
            self.rates.len(),
            self.settings.windows,
            "a probe decides once"
        );
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
        let (other, favoured) = (sum(0), sum(1));
        let was = self.favoured;
        // The other way only where it is measurably faster: a tie goes to the favoured way.
        let sums_win = other > favoured * self.settings.margin;
        let slowest_other = rates
            .iter()
            .step_by(2)
            .copied()
            .fold(f64::INFINITY, f64::min);
        let fastest_favoured = rates.iter().skip(1).step_by(2).copied().fold(0.0, f64::max);
        let every_window_wins = slowest_other > fastest_favoured * self.settings.margin;
        self.favoured = match (self.settings.unanimous, was) {
            // Switching to the other way takes every window; staying on it, the sums.
            (true, true) => !every_window_wins,
            _ => !sums_win,
        };
        // A unanimous probe whose sums said "win" but not every window did is repeated after
        // `hold`, not backed off.
        let inconclusive = self.settings.unanimous && sums_win && self.favoured;
        let kept = was == self.favoured
            && (!self.favoured || self.settings.backoff_favoured)
            && !inconclusive;
        self.hold = match self.settings.backoff {
            Some(max) if kept => (self.hold * 2).min(max),
            _ => self.settings.hold,
        };
        assert!(self.hold >= self.settings.hold);
        tracing::debug!(
            other_work_per_sec = other as u64,
            favoured_work_per_sec = favoured as u64,
            favoured = self.favoured,
            switched = was != self.favoured,
            "{} way probe",
            self.settings.family.name()
        );
    }

    /// The load changed under the current choice: the next probe is due at `now` (or the
    /// next grid instant) and the hold is back to `hold`. Nothing while a probe is measuring.
    pub fn reprobe(&mut self, now: Instant) {
        if let Phase::Hold { until } = self.phase {
            self.hold = self.settings.hold;
            let due = self.settings.start_at(now, self.hold);
            self.phase = Phase::Hold {
                until: until.min(due),
            };
        }
    }

    /// Whether the probe is between probes (tests).
    pub fn holding(&self) -> bool {
        matches!(self.phase, Phase::Hold { .. })
    }
}

impl Drop for WayProbe {
    fn drop(&mut self) {
        if self.probing() {
            self.room.leave(self.settings.family);
        }
    }
}

#[doc(hidden)]
pub mod testing {
    //! Driving a probe through whole probes (tests of its users).
    use super::*;

    /// Runs one probe from `start` in which each way does `rate(favoured)` work per
    /// millisecond in one event every `every`; returns when the probe has decided.
    pub fn probe(
        choice: &mut WayProbe,
        start: Instant,
        every: Duration,
        rate: impl Fn(bool) -> u64,
    ) -> Instant {
        let mut now = start;
        assert!(choice.holding());
        choice.favoured(now, false);
        assert!(choice.probing(), "a due probe starts");
        while choice.probing() {
            let favoured = choice.favoured(now, false);
            choice.on_work(rate(favoured) * every.as_millis().max(1) as u64, 1);
            now += every;
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::testing::probe;
    use super::*;

    fn settings() -> ProbeSettings {
        ProbeSettings {
            family: ProbeFamily::SyncFlush,
            window: Duration::from_millis(50),
            windows: 4,
            hold: Duration::from_secs(2),
            first: Duration::from_secs(1),
            margin: 1.1,
            min_events: 8,
            start_favoured: false,
            backoff: None,
            backoff_favoured: false,
            aligned: false,
            unanimous: false,
        }
    }

    #[test]
    fn a_tie_goes_to_the_favoured_way_and_a_clear_win_to_the_other() {
        let start = Instant::now();
        let mut choice = WayProbe::new(settings(), start);
        assert!(!choice.favoured(start, false), "starts as configured");
        assert!(choice.holding(), "no probe before `first`");
        let every = Duration::from_millis(1);
        let end = probe(&mut choice, start + settings().first, every, |f| {
            if f { 100 } else { 108 }
        });
        assert!(choice.favoured(end, false), "8% is inside the 10% margin");
        let end = probe(&mut choice, end + settings().hold, every, |f| {
            if f { 100 } else { 112 }
        });
        assert!(!choice.favoured(end, false), "12% is a clear win");
        assert_eq!(choice.probes(), 2);
    }

    #[test]
    fn a_due_probe_waits_while_another_probe_runs() {
        let start = Instant::now();
        let mut choice = WayProbe::new(settings(), start);
        let due = start + settings().first;
        choice.favoured(due, true);
        assert!(choice.holding(), "postponed while the other probe measures");
        choice.favoured(due + Duration::from_millis(300), false);
        assert!(choice.probing(), "starts once the other probe is done");
    }

    #[test]
    fn a_settled_other_way_is_probed_less_and_less_often() {
        let backing_off = ProbeSettings {
            backoff: Some(Duration::from_secs(8)),
            ..settings()
        };
        let start = Instant::now();
        let mut choice = WayProbe::new(backing_off, start);
        let every = Duration::from_millis(1);
        let other_wins = |f: bool| if f { 100 } else { 150 };
        let mut end = probe(&mut choice, start + backing_off.first, every, other_wins);
        // Kept the other way (it started so): 2 s doubles to 4 s, then 8 s at most.
        assert_eq!(choice.hold, Duration::from_secs(4));
        for hold in [8, 8] {
            let next = end + choice.hold;
            end = probe(&mut choice, next, every, other_wins);
            assert_eq!(choice.hold, Duration::from_secs(hold));
            choice.favoured(end + choice.hold / 2 + Duration::from_secs(1), false);
            assert!(
                choice.holding(),
                "no probe before the hold is over (a 4 s hold would have started one)"
            );
        }
        // The favoured way wins: probed every `hold` again.
        let next = end + choice.hold;
        let end = probe(&mut choice, next, every, |_| 100);
        assert!(choice.favoured(end, false));
        assert_eq!(choice.hold, backing_off.hold);
    }

    #[test]
    fn aligned_probes_run_in_step() {
        let aligned = ProbeSettings {
            aligned: true,
            backoff: Some(Duration::from_secs(8)),
            ..settings()
        };
        let hold = aligned.hold;
        let grid = aligned.start_at(Instant::now() + aligned.first, hold);
        assert_eq!(aligned.start_at(grid, hold), grid, "a grid instant stays");
        let next = aligned.start_at(grid + Duration::from_millis(1), hold);
        assert_eq!(next - grid, hold, "else the next grid instant");
        // A probe backed off to 4 holds starts on every fourth grid instant only, which is
        // a grid instant of the others too.
        let far = aligned.start_at(grid, 4 * hold);
        assert!(far >= grid && far - grid < 4 * hold);
        assert_eq!(aligned.start_at(far, hold), far);
        assert_eq!(
            aligned.start_at(far + Duration::from_millis(1), 4 * hold),
            far + 4 * hold
        );
        // A hold that is not a power-of-two multiple (a cap like 3 holds) rounds down to one.
        let odd = aligned.start_at(far + Duration::from_millis(1), 3 * hold);
        assert_eq!(odd - far, 2 * hold);
        // Two shards made 100 ms apart probe from the same instant.
        let made = [200, 100].map(|ms| grid - aligned.first - Duration::from_millis(ms));
        for at in made {
            let mut probe = WayProbe::new(aligned, at);
            probe.favoured(grid - Duration::from_millis(1), false);
            assert!(probe.holding(), "not before the grid instant");
            probe.favoured(grid, false);
            assert!(probe.probing(), "from the grid instant");
        }
    }

    #[test]
    fn a_settled_favoured_way_backs_off_when_asked() {
        let backing_off = ProbeSettings {
            backoff: Some(Duration::from_secs(8)),
            backoff_favoured: true,
            start_favoured: true,
            ..settings()
        };
        let start = Instant::now();
        let mut choice = WayProbe::new(backing_off, start);
        let every = Duration::from_millis(1);
        let tie = |_: bool| 100;
        let mut end = probe(&mut choice, start + backing_off.first, every, tie);
        assert!(choice.favoured(end, false));
        assert_eq!(choice.hold, Duration::from_secs(4), "kept: 2 s doubles");
        let next = end + choice.hold;
        end = probe(&mut choice, next, every, tie);
        assert_eq!(choice.hold, Duration::from_secs(8));
        // A switch to the other way probes again after the base hold.
        let next = end + choice.hold;
        let end = probe(&mut choice, next, every, |f| if f { 100 } else { 200 });
        assert!(!choice.favoured(end, false));
        assert_eq!(choice.hold, backing_off.hold);
        // Without `backoff_favoured` a kept favoured way is probed every hold (above).
        let mut plain = WayProbe::new(
            ProbeSettings {
                backoff_favoured: false,
                ..backing_off
            },
            start,
        );
        probe(&mut plain, start + backing_off.first, every, tie);
        assert_eq!(plain.hold, backing_off.hold);
    }

    #[test]
    fn a_unanimous_probe_ignores_a_ramp() {
        let plain = ProbeSettings {
            start_favoured: true,
            ..settings()
        };
        let unanimous = ProbeSettings {
            unanimous: true,
            backoff: Some(Duration::from_secs(8)),
            backoff_favoured: true,
            ..plain
        };
        let start = Instant::now();
        let every = Duration::from_millis(1);
        // Work that shrinks 13% from window to window (a burst draining; the other way's
        // windows come first): the sums say the other way is 15% faster, but its later
        // window is slower than the favoured way's first.
        let ramp = |probe: &mut WayProbe| {
            let started = start + unanimous.first;
            let mut now = started;
            probe.favoured(now, false);
            while probe.probing() {
                let window = (now - started).as_millis() / 50;
                probe.on_work(
                    1_000 * 87u64.pow(window as u32) / 100u64.pow(window as u32),
                    1,
                );
                probe.favoured(now, false);
                now += every;
            }
        };
        let mut plain = WayProbe::new(plain, start);
        ramp(&mut plain);
        assert!(!plain.settled(), "the sums take the ramp for a win");
        let mut strict = WayProbe::new(unanimous, start);
        ramp(&mut strict);
        assert!(strict.settled(), "a unanimous probe does not");
        assert_eq!(
            strict.hold, unanimous.hold,
            "inconclusive: probed again soon"
        );
        // A real win wins both ways.
        let mut strict = WayProbe::new(unanimous, start);
        let end = probe(&mut strict, start + unanimous.first, every, |f| {
            if f { 100 } else { 150 }
        });
        assert!(!strict.favoured(end, false));
        // Once on the other way, the sums keep it there through one window that is no faster.
        let started = end + strict.hold;
        let mut now = started;
        strict.favoured(now, false);
        while strict.probing() {
            let window = (now - started).as_millis() / 50;
            let favoured = strict.favoured(now, false);
            strict.on_work(if favoured || window == 2 { 100 } else { 200 }, 1);
            now += every;
        }
        assert!(!strict.settled(), "sums 300 against 200 keep the other way");
    }

    #[test]
    fn probes_of_different_families_never_measure_together() {
        let room: &'static ProbeRoom = Box::leak(Box::default());
        let start = Instant::now();
        let flush = settings();
        let poll = ProbeSettings {
            family: ProbeFamily::IdlePoll,
            ..settings()
        };
        let mut a = WayProbe::in_room(flush, start, room);
        let mut b = WayProbe::in_room(poll, start, room);
        let mut c = WayProbe::in_room(flush, start, room);
        let due = start + flush.first;
        a.favoured(due, false);
        assert!(a.probing());
        assert!(room.others_running(ProbeFamily::IdlePoll));
        b.favoured(due, false);
        assert!(b.holding(), "another family is measuring");
        c.favoured(due, false);
        assert!(c.probing(), "the same family measures in step");
        // Both finish; then the other family's due probe starts.
        let mut now = due;
        while a.probing() || c.probing() {
            now += Duration::from_millis(1);
            for p in [&mut a, &mut c] {
                p.on_work(100, 1);
                p.favoured(now, false);
            }
            b.favoured(now, false);
            assert!(
                !(b.probing() && (a.probing() || c.probing())),
                "never together"
            );
        }
        b.favoured(now, false);
        assert!(b.probing(), "starts once the others are done");
        drop(b);
        assert!(
            !room.others_running(ProbeFamily::SyncFlush),
            "a dropped probe leaves the room"
        );
    }
}
