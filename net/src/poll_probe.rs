//! Whether the cores poll their rings before sleeping, measured on the process's own traffic.
//!
//! Idle polling (`idle_poll`) pays where a request's wait for a sleeping core is most of its
//! round trip and nothing else wants the CPU: one closed-loop producer got 2.4x the messages
//! per second with it. It costs where the load is open (requests come at their own pace) on
//! CPUs shared with other work: at 20k msg/s on this project's 2-vCPU VM the polling cores
//! took the CPU from the load generator and the kernel, and send p99 went from 0.71 to 1.74
//! ms (docs/perf.md, "Idle polling on a quiet host"). What separates the two is whether
//! polling raises the rate at which requests arrive: it does only where requests wait for
//! their predecessors' replies.
//!
//! So a [`PollProbe`] measures it (`rmq_core::way_probe`): the favoured way is not to poll;
//! every `HOLD` (backed off to `MAX_HOLD` while the choice stays) it runs `PROBE_WINDOWS`
//! windows of `WINDOW`, polling in every other one. Polling starts only when each window
//! that polled served more requests per second than each that did not by more than `MARGIN`
//! (a load ramping up as a client starts must not look like a win), and stays while the
//! polling windows together serve more by `MARGIN`. A load that arrives at its own rate serves the same either way (a tie: no
//! polling); an idle process never probes. Requests are counted per core (each core's loop
//! publishes its count into its own slot, [`PollProbe::tick`]); whichever core's loop finds
//! the probe due advances it, every `TICK` at most, and the choice is one flag every core
//! reads before it polls. A choice holds for the load it was made on: when the request rate
//! over a `RATE_SPAN` differs from the rate after the last probe by more than `LOAD_CHANGE`
//! times, the next probe is due at once.
//!
//! Contract: the probe only decides whether a core polls before it sleeps; it never affects
//! what a request does or is answered.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmq_core::way_probe::{ProbeFamily, ProbeRoom, ProbeSettings, WayProbe};

/// One probe window: at a closed-loop producer's 10k requests a second, 250 requests.
const WINDOW: Duration = Duration::from_millis(25);
/// Windows per probe, alternating polling and not.
const PROBE_WINDOWS: usize = 4;
/// Time between probes while the choice changes.
const HOLD: Duration = Duration::from_secs(3);
/// Longest time between probes while the choice stays: a probe's polling windows cost an
/// open load its tail for their 100 ms (its non-polling ones cost a closed loop its rate).
const MAX_HOLD: Duration = Duration::from_secs(24);
/// Time before the first probe.
const FIRST: Duration = Duration::from_secs(1);
/// How many more requests per second the polling windows must serve: polling costs CPU, so
/// only a clear win keeps it (where it pays, it roughly doubles the rate).
const MARGIN: f64 = 1.10;
/// Fewest requests a window needs to count (1,000 a second).
const MIN_REQUESTS: u32 = 50;
/// How often a core's loop looks whether the probe is due.
const TICK: Duration = Duration::from_millis(2);
/// The request rate is taken over spans this long: the first full span after a probe is the
/// rate its choice was made for.
const RATE_SPAN: Duration = Duration::from_millis(500);
/// A span whose rate differs from that by more than this factor is another load: the probe
/// is due at once (its hold may have backed off to `MAX_HOLD` on the old load).
const LOAD_CHANGE: f64 = 1.5;

/// The broker's probe settings.
pub const SETTINGS: ProbeSettings = ProbeSettings {
    family: ProbeFamily::IdlePoll,
    window: WINDOW,
    windows: PROBE_WINDOWS,
    hold: HOLD,
    first: FIRST,
    margin: MARGIN,
    min_events: MIN_REQUESTS,
    start_favoured: true,
    backoff: Some(MAX_HOLD),
    backoff_favoured: true,
    aligned: false,
    // A load ramping up (a client starting) must not look like polling's win.
    unanimous: true,
};

/// A core's published request count, on its own cache line.
#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicU64);

struct State {
    /// Favoured way: not polling. Made at the first request, so the first probe comes `FIRST`
    /// into the first load, not into the process's life.
    probe: Option<WayProbe>,
    settings: ProbeSettings,
    room: &'static ProbeRoom,
    /// Requests counted so far (the sum of the slots at the last tick).
    counted: u64,
    /// The current rate span: its start and the requests in it.
    span: Option<(Instant, u64)>,
    /// The request rate the last probe's choice was made for (`None`: not measured yet).
    chosen_for: Option<f64>,
    /// Probes finished when `chosen_for` was taken.
    probes_seen: u64,
}

/// The process's choice of whether its cores poll before sleeping (module doc).
pub struct PollProbe {
    served: Box<[Slot]>,
    polling: AtomicBool,
    /// When the probe may next be advanced, in ns since `base`.
    next_tick: AtomicU64,
    base: Instant,
    state: Mutex<State>,
}

impl PollProbe {
    /// The probe for `cores` cores, in the process's probe room.
    pub fn new(cores: usize) -> PollProbe {
        PollProbe::with(cores, SETTINGS, ProbeRoom::process(), Instant::now())
    }

    /// A probe with other settings and room (tests).
    #[doc(hidden)]
    pub fn with(
        cores: usize,
        settings: ProbeSettings,
        room: &'static ProbeRoom,
        now: Instant,
    ) -> PollProbe {
        assert!(cores > 0, "at least one core");
        PollProbe {
            served: (0..cores).map(|_| Slot::default()).collect(),
            polling: AtomicBool::new(!settings.start_favoured),
            next_tick: AtomicU64::new(0),
            base: now,
            state: Mutex::new(State {
                probe: None,
                settings,
                room,
                counted: 0,
                span: None,
                chosen_for: None,
                probes_seen: 0,
            }),
        }
    }

    /// Whether the cores poll before sleeping now.
    #[inline]
    pub fn polling(&self) -> bool {
        self.polling.load(Ordering::Relaxed)
    }

    /// Core `core` has served `served` requests in all (its own count, only growing); at most
    /// every `TICK` this also advances the probe with the requests all cores served since.
    #[inline]
    pub fn tick(&self, core: usize, served: u64, now: Instant) {
        self.served[core].0.store(served, Ordering::Relaxed);
        let at =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        if at < self.next_tick.load(Ordering::Relaxed) {
            return;
        }
        self.advance(at, now);
    }

    #[cold]
    fn advance(&self, at: u64, now: Instant) {
        // Another core is advancing it: that core counts these requests too.
        let Ok(mut state) = self.state.try_lock() else {
            return;
        };
        let tick = u64::try_from(TICK.as_nanos()).unwrap_or(u64::MAX);
        self.next_tick
            .store(at.saturating_add(tick), Ordering::Relaxed);
        let total: u64 = self
            .served
            .iter()
            .map(|slot| slot.0.load(Ordering::Relaxed))
            .sum();
        let new = total.saturating_sub(state.counted);
        state.counted = state.counted.max(total);
        if new == 0 {
            // Idle: nothing to measure, and an idle process never starts a probe.
            return;
        }
        let State {
            probe,
            settings,
            room,
            span,
            chosen_for,
            probes_seen,
            ..
        } = &mut *state;
        let probe = probe.get_or_insert_with(|| WayProbe::in_room(*settings, now, room));
        // The requests since the last tick belong to the window running until now.
        probe.on_work(new, u32::try_from(new).unwrap_or(u32::MAX));
        let (started, in_span) = span.get_or_insert((now, 0));
        *in_span += new;
        let spanned = now.saturating_duration_since(*started);
        if spanned >= RATE_SPAN {
            let rate = *in_span as f64 / spanned.as_secs_f64();
            *span = Some((now, 0));
            if probe.probes() != *probes_seen || probe.probing() {
                // A probe decided (or is measuring): the next quiet span is its load.
                *probes_seen = probe.probes();
                *chosen_for = None;
            } else if let Some(chosen) = *chosen_for {
                if rate > chosen * LOAD_CHANGE || rate * LOAD_CHANGE < chosen {
                    tracing::debug!(rate, chosen, "idle poll probe: the load changed");
                    probe.reprobe(now);
                    *chosen_for = None;
                }
            } else {
                *chosen_for = Some(rate);
            }
        }
        let polling = !probe.favoured(now, false);
        if polling != self.polling() {
            tracing::trace!(polling, "idle poll way");
        }
        self.polling.store(polling, Ordering::Relaxed);
    }

    /// Probes finished so far.
    pub fn probes(&self) -> u64 {
        self.state
            .lock()
            .ok()
            .and_then(|state| state.probe.as_ref().map(WayProbe::probes))
            .unwrap_or(0)
    }

    /// The way between probes, as the last probe decided (true: polling).
    pub fn settled_polling(&self) -> bool {
        self.state
            .lock()
            .ok()
            .and_then(|state| state.probe.as_ref().map(|probe| !probe.settled()))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProbeSettings {
        SETTINGS
    }

    /// Drives `probe` from `start` for `for_` with one request every `every` while not
    /// polling and `speedup` times as many while polling, spread over two cores; returns the
    /// time reached.
    fn serve(
        probe: &PollProbe,
        served: &mut [u64; 2],
        start: Instant,
        for_: Duration,
        speedup: u64,
    ) -> Instant {
        let mut now = start;
        let step = Duration::from_micros(500);
        while now < start + for_ {
            let core = usize::from(served[0] > served[1]);
            served[core] += if probe.polling() { speedup } else { 1 };
            probe.tick(core, served[core], now);
            now += step;
        }
        now
    }

    fn room() -> &'static ProbeRoom {
        Box::leak(Box::default())
    }

    #[test]
    fn a_load_that_polling_speeds_up_gets_polling_and_an_open_load_does_not() {
        let start = Instant::now();
        // Closed loop: polling doubles the rate; chosen by the first probe.
        let closed = PollProbe::with(2, settings(), room(), start);
        assert!(!closed.polling(), "starts without polling");
        let mut served = [0; 2];
        let end = serve(
            &closed,
            &mut served,
            start,
            FIRST + Duration::from_millis(400),
            2,
        );
        assert_eq!(closed.probes(), 1);
        assert!(
            closed.settled_polling() && closed.polling(),
            "a clear win polls"
        );
        // The load becomes open (the same rate either way): the next probe stops polling.
        serve(
            &closed,
            &mut served,
            end,
            HOLD + Duration::from_millis(400),
            1,
        );
        assert_eq!(closed.probes(), 2);
        assert!(!closed.polling(), "a tie does not poll");

        let open = PollProbe::with(2, settings(), room(), start);
        let mut served = [0; 2];
        serve(
            &open,
            &mut served,
            start,
            FIRST + Duration::from_millis(400),
            1,
        );
        assert_eq!(open.probes(), 1);
        assert!(!open.settled_polling() && !open.polling());
        // 5% faster with polling is inside the margin: about one request in 20 more.
        let slight = PollProbe::with(2, settings(), room(), start);
        let mut served = [0; 2];
        let mut now = start;
        let mut n = 0u64;
        while now < start + FIRST + Duration::from_millis(400) {
            n += 1;
            let extra = u64::from(slight.polling() && n.is_multiple_of(20));
            served[0] += 1 + extra;
            slight.tick(0, served[0], now);
            now += Duration::from_micros(500);
        }
        assert_eq!(slight.probes(), 1);
        assert!(!slight.polling(), "5% is not a clear win");
    }

    #[test]
    fn an_idle_process_never_probes_and_the_first_probe_waits_for_load() {
        let start = Instant::now();
        let probe = PollProbe::with(2, settings(), room(), start);
        for ms in 0..10_000 {
            probe.tick(ms % 2, 0, start + Duration::from_millis(ms as u64));
        }
        assert_eq!(probe.probes(), 0);
        assert!(!probe.polling());
        // Load from 10 s on: no probe before 11 s.
        let mut served = [0; 2];
        let at = start + Duration::from_secs(10);
        let now = serve(
            &probe,
            &mut served,
            at,
            FIRST - Duration::from_millis(10),
            2,
        );
        assert!(
            !probe.polling(),
            "no probe within FIRST of the first request"
        );
        serve(&probe, &mut served, now, Duration::from_millis(400), 2);
        assert_eq!(probe.probes(), 1);
        assert!(probe.polling());
    }

    #[test]
    fn a_probe_waits_while_a_sync_flush_probe_measures() {
        let start = Instant::now();
        let room = room();
        let flush = WayProbe::in_room(
            ProbeSettings {
                family: ProbeFamily::SyncFlush,
                first: Duration::ZERO,
                ..settings()
            },
            start,
            room,
        );
        let mut flush = flush;
        flush.favoured(start, false);
        assert!(flush.probing());
        let probe = PollProbe::with(2, settings(), room, start);
        let mut served = [0; 2];
        serve(
            &probe,
            &mut served,
            start,
            FIRST + Duration::from_millis(400),
            2,
        );
        assert_eq!(
            probe.probes(),
            0,
            "postponed while the other family measures"
        );
        assert!(!probe.polling(), "and never polled for it");
        drop(flush);
        let now = start + FIRST + Duration::from_millis(400);
        serve(&probe, &mut served, now, Duration::from_millis(400), 2);
        assert_eq!(probe.probes(), 1);
        assert!(probe.polling());
    }

    #[test]
    fn a_changed_load_is_probed_at_once_after_a_long_hold() {
        let start = Instant::now();
        let probe = PollProbe::with(2, settings(), room(), start);
        let mut served = [0; 2];
        // An open load: every probe ties, and the hold backs off (3, 6, 12, 24 s).
        let mut now = serve(&probe, &mut served, start, Duration::from_secs(60), 1);
        let probes = probe.probes();
        assert!(probes >= 4, "{probes} probes in 60 s");
        assert!(!probe.polling());
        // A steady load is not probed again for a while.
        now = serve(&probe, &mut served, now, Duration::from_secs(5), 1);
        assert_eq!(probe.probes(), probes, "backed off");
        // A third of the rate, which polling doubles: probed within a span or two.
        let slow_start = now;
        let step = Duration::from_micros(1500);
        while probe.probes() == probes && now < slow_start + Duration::from_secs(5) {
            let core = usize::from(served[0] > served[1]);
            served[core] += if probe.polling() { 2 } else { 1 };
            probe.tick(core, served[core], now);
            now += step;
        }
        assert!(
            now - slow_start < Duration::from_millis(1_500),
            "probed {:?} after the load changed",
            now - slow_start
        );
    }
}
