//! One benchmark run: starts the producer and consumer threads, prints the progress line
//! every second, decides when to stop, and builds the summary.
//!
//! Threads: producers run on `--cores` OS threads, consumers on one more, each thread with
//! its own compio (io_uring) runtime; the main thread only reports. They share a
//! [`RunControl`] of atomics. Stopping is cooperative: the main thread sets `stop`, senders
//! finish their in-flight requests (bounded by the request timeout) and the summary is
//! printed without waiting for consumers parked in a 15 s long poll.
//!
//! Stop conditions: `--duration` elapsed; Ctrl-C (SIGINT sets `interrupted`, a second
//! Ctrl-C exits at once); `--count` messages sent (produce, e2e) or consumed (consume).
//! In e2e mode the consumers get up to `DRAIN_IDLE` without progress after the producers
//! finish, to receive what was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::options::{Options, WorkloadKind};
use crate::process_usage::{ProcessSample, UsageError, UsageSummary, sample_all};
use crate::report::{Environment, Progress, SharedStats, SideSummary, Summary, merge_all};
use crate::{consumer, producer};

/// How long e2e waits for consumers to catch up once nothing more arrives.
const DRAIN_IDLE: Duration = Duration::from_secs(5);
/// Period of the progress line.
const REPORT_PERIOD: Duration = Duration::from_secs(1);

/// State shared by every thread of a run.
#[derive(Debug)]
pub struct RunControl {
    pub started: Instant,
    /// Samples intended (sends) or received (consumes) before this are warmup.
    pub measure_from: Instant,
    /// Set by the main thread: issue no new requests.
    pub stop: AtomicBool,
    /// Set by SIGINT.
    pub interrupted: Arc<AtomicBool>,
    count: Option<u64>,
    /// Messages claimed by senders, warmup included (enforces `--count`).
    claimed: AtomicU64,
    /// Messages acknowledged with SUCCESS (or sent oneway), warmup included.
    pub sent_total: AtomicU64,
    /// Messages consumed, warmup included.
    pub consumed_total: AtomicU64,
    /// Producer workers still running.
    pub producers_live: AtomicUsize,
}

impl RunControl {
    pub fn new(options: &Options) -> Self {
        let started = Instant::now();
        Self {
            started,
            measure_from: started + options.warmup_time(),
            stop: AtomicBool::new(false),
            interrupted: Arc::new(AtomicBool::new(false)),
            count: options.count,
            claimed: AtomicU64::new(0),
            sent_total: AtomicU64::new(0),
            consumed_total: AtomicU64::new(0),
            producers_live: AtomicUsize::new(0),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Claims `messages` for one request; false once `--count` is used up or on stop.
    pub fn claim(&self, messages: u64) -> bool {
        if self.stopping() {
            return false;
        }
        let Some(count) = self.count else { return true };
        self.claimed.fetch_add(messages, Ordering::Relaxed) < count
    }

    /// True for samples taken (or intended) after the warmup.
    pub fn measuring(&self, at: Instant) -> bool {
        at >= self.measure_from
    }
}

/// Runs `workload` to the end and returns its summary.
///
/// # Errors
/// Failures before the load starts: name server unreachable, no route, no runtime.
pub fn run(workload: WorkloadKind, options: Options) -> anyhow::Result<Summary> {
    let control = Arc::new(RunControl::new(&options));
    let mut usage = BrokerUsage::start(&options.broker_pids)?;
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        control.interrupted.clone(),
    )?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, control.interrupted.clone())?;
    let consume_stats = match workload {
        WorkloadKind::Consume | WorkloadKind::E2e => {
            Some(consumer::start(&options, workload, control.clone())?)
        }
        WorkloadKind::Produce => None,
    };
    let produce_stats = match workload {
        WorkloadKind::Produce | WorkloadKind::E2e => {
            Some(producer::start(&options, control.clone())?)
        }
        WorkloadKind::Consume => None,
    };
    let sides = Sides {
        produce: produce_stats,
        consume: consume_stats,
    };
    let measure_end = report_until_done(workload, &options, &control, &sides, &mut usage);
    // A broker that died during the run loses its line, not the run's report.
    let usage_end = usage
        .sample()
        .inspect_err(|error| eprintln!("{error}"))
        .ok();
    wait_for_producers(&control, options.timeout() + Duration::from_secs(1));
    let measured = measure_end.saturating_duration_since(control.measure_from);
    let side = |parts: &Option<Vec<SharedStats>>, consume| {
        parts
            .as_ref()
            .map(|parts| SideSummary::of(&merge_all(parts), measured, consume))
    };
    let (produce, consume) = (side(&sides.produce, false), side(&sides.consume, true));
    let messages = produce
        .as_ref()
        .or(consume.as_ref())
        .map_or(0, |side| side.messages);
    Ok(Summary {
        tool: "rmq-fast-bench",
        version: env!("CARGO_PKG_VERSION"),
        workload,
        broker: usage_end.and_then(|end| usage.summary(&end, measured.as_secs_f64(), messages)),
        produce,
        consume,
        params: options,
        environment: Environment::detect(),
        interrupted: control.interrupted.load(Ordering::Relaxed),
        measured_secs: (measured.as_secs_f64() * 1000.0).round() / 1000.0,
    })
}

/// CPU and memory of the `--broker-pid` processes: sampled when the load starts, again
/// when the warmup ends, and at the end of the measured interval.
struct BrokerUsage {
    pids: Vec<u32>,
    start: Vec<ProcessSample>,
    warmup_sampled: bool,
}

impl BrokerUsage {
    fn start(pids: &[u32]) -> Result<Self, UsageError> {
        Ok(Self {
            pids: pids.to_vec(),
            start: sample_all(pids)?,
            warmup_sampled: false,
        })
    }

    /// Restarts the count when the warmup ends (once).
    fn observe(&mut self, measuring: bool) -> Result<(), UsageError> {
        if measuring && !self.warmup_sampled {
            self.warmup_sampled = true;
            self.start = self.sample()?;
        }
        Ok(())
    }

    fn sample(&self) -> Result<Vec<ProcessSample>, UsageError> {
        sample_all(&self.pids)
    }

    fn summary(&self, end: &[ProcessSample], secs: f64, messages: u64) -> Option<UsageSummary> {
        (!self.pids.is_empty())
            .then(|| UsageSummary::between(&self.pids, &self.start, end, secs, messages))
    }
}

struct Sides {
    produce: Option<Vec<SharedStats>>,
    consume: Option<Vec<SharedStats>>,
}

/// Prints progress until a stop condition holds; sets `stop` and returns the end of the
/// measured interval.
fn report_until_done(
    workload: WorkloadKind,
    options: &Options,
    control: &RunControl,
    sides: &Sides,
    usage: &mut BrokerUsage,
) -> Instant {
    let mut progress = Progress::default();
    let mut last_report = control.started;
    let mut drain = Drain::default();
    // Without a warmup the count began before the load started.
    usage.warmup_sampled = options.warmup_time().is_zero();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if let Err(error) = usage.observe(control.measuring(now)) {
            eprintln!("{error}");
        }
        if now.duration_since(last_report) >= REPORT_PERIOD {
            let produce = sides.produce.as_deref().map(merge_all);
            let consume = sides.consume.as_deref().map(merge_all);
            let line = progress.line(
                now - control.started,
                now - last_report,
                [produce.as_ref(), consume.as_ref()],
            );
            eprintln!("{line}");
            last_report = now;
        }
        if let Some(end) = stop_reached(workload, options, control, &mut drain, now) {
            control.stop.store(true, Ordering::Relaxed);
            return end;
        }
    }
}

/// The e2e drain phase: after the producers finish, consumers receive what is left.
#[derive(Debug, Default)]
struct Drain {
    consumed: u64,
    /// When the consumed count last moved (or the drain began).
    progress_at: Option<Instant>,
}

impl Drain {
    fn observe(&mut self, consumed: u64, now: Instant) {
        if consumed != self.consumed || self.progress_at.is_none() {
            self.consumed = consumed;
            self.progress_at = Some(now);
        }
    }

    /// The end of the measured interval once the drain is over: now when everything
    /// sent arrived, else the last progress after `DRAIN_IDLE` without any.
    fn finished(&self, caught_up: bool, now: Instant) -> Option<Instant> {
        let progress_at = self.progress_at.unwrap_or(now);
        if caught_up {
            Some(now)
        } else if now - progress_at >= DRAIN_IDLE {
            Some(progress_at)
        } else {
            None
        }
    }
}

fn stop_reached(
    workload: WorkloadKind,
    options: &Options,
    control: &RunControl,
    drain: &mut Drain,
    now: Instant,
) -> Option<Instant> {
    if control.interrupted.load(Ordering::Relaxed) {
        return Some(now);
    }
    if let Some(run_time) = options.run_time()
        && now >= control.started + run_time
    {
        return Some(now);
    }
    let producers_done = control.producers_live.load(Ordering::Relaxed) == 0;
    let consumed = control.consumed_total.load(Ordering::Relaxed);
    match workload {
        WorkloadKind::Produce if producers_done => Some(now),
        WorkloadKind::Consume => options
            .count
            .filter(|count| consumed >= *count)
            .map(|_| now),
        WorkloadKind::E2e if producers_done => {
            drain.observe(consumed, now);
            drain.finished(consumed >= control.sent_total.load(Ordering::Relaxed), now)
        }
        _ => None,
    }
}

/// Gives in-flight sends up to `limit` to complete so their latency is counted.
fn wait_for_producers(control: &RunControl, limit: Duration) {
    let deadline = Instant::now() + limit;
    while control.producers_live.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::options::Cli;

    fn options(args: &[&str]) -> Options {
        let mut argv = vec!["rmq-fast-bench", "produce"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv)
            .workload
            .split()
            .expect("a load workload")
            .1
    }

    #[test]
    fn claims_stop_at_count() {
        let control = RunControl::new(&options(&["--count", "40", "--warmup", "2"]));
        assert_eq!(
            (0..10).filter(|_| control.claim(16)).count(),
            3,
            "16+16+16 covers 40"
        );
        assert!(!control.measuring(control.started + Duration::from_secs(1)));
        assert!(control.measuring(control.started + Duration::from_secs(2)));
        let unlimited = RunControl::new(&options(&[]));
        assert!((0..1000).all(|_| unlimited.claim(1)));
        unlimited.stop.store(true, Ordering::Relaxed);
        assert!(!unlimited.claim(1));
    }

    #[test]
    fn drain_ends_when_caught_up_or_idle() {
        let start = Instant::now();
        let mut drain = Drain::default();
        drain.observe(10, start);
        assert_eq!(drain.finished(false, start + Duration::from_secs(1)), None);
        drain.observe(20, start + Duration::from_secs(2));
        let late = start + Duration::from_secs(2) + DRAIN_IDLE;
        assert_eq!(
            drain.finished(false, late),
            Some(start + Duration::from_secs(2))
        );
        assert_eq!(
            drain.finished(true, start + Duration::from_secs(3)),
            Some(start + Duration::from_secs(3))
        );
    }
}
