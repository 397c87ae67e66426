//! The send schedule: open loop at a fixed rate, or closed loop as fast as possible.
//!
//! Open loop (`--rate R`): request `i` of worker `w` (of `W`) is *intended* at
//! `start + w/R + i*W/R`, so the workers interleave into one evenly spaced stream of `R`
//! requests per second. Latency is measured from the intended time, not from when the
//! request actually left: when the broker stalls, the requests that should have gone out
//! meanwhile are charged for the wait. Measuring from the actual send would hide that
//! ("coordinated omission", Gil Tene): a stalled closed-loop client simply stops asking.
//!
//! Closed loop (`--rate 0`): a request is intended the moment its lane is free, so latency
//! is the plain round trip.
//!
//! Lanes of one worker (the `--inflight` window of async mode) share one schedule: each
//! lane claims the next slot, waits for its intended time, sends and waits for the answer.
//! A full window therefore delays the next slot, and the delay shows up in its latency.

use std::time::{Duration, Instant};

/// One claimed send slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub index: u64,
    /// When the request should be sent; latency is measured from here.
    pub intended: Instant,
}

/// The schedule of one worker.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    /// Zero = closed loop.
    interval: Duration,
    next_index: u64,
}

impl Schedule {
    /// Worker `worker` of `workers` sharing `requests_per_sec` (0 = closed loop) from `start`.
    pub fn new(start: Instant, requests_per_sec: f64, workers: usize, worker: usize) -> Self {
        assert!(
            workers > 0 && worker < workers,
            "worker {worker} of {workers}"
        );
        assert!(requests_per_sec.is_finite() && requests_per_sec >= 0.0);
        if requests_per_sec == 0.0 {
            return Self {
                start,
                interval: Duration::ZERO,
                next_index: 0,
            };
        }
        let global_interval = Duration::from_secs_f64(1.0 / requests_per_sec);
        let interval = global_interval * workers as u32;
        // A sub-nanosecond interval would round to zero and silently mean "closed loop".
        let interval = interval.max(Duration::from_nanos(1));
        let phase = global_interval * worker as u32;
        Self {
            start: start + phase,
            interval,
            next_index: 0,
        }
    }

    pub fn is_open_loop(&self) -> bool {
        !self.interval.is_zero()
    }

    /// The intended time of slot `index` (open loop only).
    pub fn intended(&self, index: u64) -> Instant {
        assert!(self.is_open_loop(), "closed-loop slots have no fixed time");
        let nanos = self.interval.as_nanos().saturating_mul(u128::from(index));
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Claims the next slot; in closed loop it is intended `now`.
    pub fn next_slot(&mut self, now: Instant) -> Slot {
        let index = self.next_index;
        self.next_index += 1;
        let intended = if self.is_open_loop() {
            self.intended(index)
        } else {
            now
        };
        Slot { index, intended }
    }
}

/// Latency of a request intended at `intended` and answered at `completed`.
pub fn latency_since(intended: Instant, completed: Instant) -> Duration {
    completed.saturating_duration_since(intended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_interleave_into_one_even_stream() {
        let start = Instant::now();
        // 1000 req/s over 4 workers: each worker every 4 ms, offset by 1 ms.
        let mut all: Vec<Duration> = Vec::new();
        for worker in 0..4 {
            let mut schedule = Schedule::new(start, 1000.0, 4, worker);
            assert!(schedule.is_open_loop());
            for _ in 0..5 {
                all.push(schedule.next_slot(start).intended - start);
            }
        }
        all.sort();
        let expected: Vec<Duration> = (0..20).map(Duration::from_millis).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn slot_times_do_not_depend_on_when_they_are_claimed() {
        let start = Instant::now();
        let mut schedule = Schedule::new(start, 100.0, 1, 0);
        let late = start + Duration::from_secs(5);
        let slot = schedule.next_slot(late);
        assert_eq!((slot.index, slot.intended), (0, start));
        let slot = schedule.next_slot(late);
        assert_eq!(slot.intended, start + Duration::from_millis(10));
        // Answered at `late`: charged the full 5 s backlog, not the round trip.
        assert_eq!(
            latency_since(slot.intended, late),
            Duration::from_millis(4990)
        );
        assert_eq!(schedule.intended(1000), start + Duration::from_secs(10));
    }

    #[test]
    fn closed_loop_is_intended_now() {
        let start = Instant::now();
        let mut schedule = Schedule::new(start, 0.0, 2, 1);
        assert!(!schedule.is_open_loop());
        let now = start + Duration::from_millis(3);
        assert_eq!(
            schedule.next_slot(now),
            Slot {
                index: 0,
                intended: now
            }
        );
        assert_eq!(schedule.next_slot(now).index, 1);
        assert_eq!(
            latency_since(now, start),
            Duration::ZERO,
            "clock order never underflows"
        );
    }
}
