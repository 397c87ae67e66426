//! The summed counters over time, sampled on core 0, and what RocketMQ derives from them:
//! - rates over the last 10, 60 and 600 seconds (`putTps`, `getFoundTps`, `getMissTps`,
//!   `getTotalTps`, `getTransferedTps`: per-second samples, as StoreStatsService keeps);
//! - stats items per minute, hour and day (VIEW_BROKER_STATS_DATA: samples every 10 s kept
//!   for a minute, every 10 min kept for an hour, every hour kept for a day, as StatsItem);
//! - day marks: the put and get totals at this morning's and yesterday morning's local
//!   midnight (`msgPutTotalTodayMorning`, ...; since the broker started when it started
//!   today), as BrokerStats records them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::counters::{CoreStats, Item};
use crate::context::{SharedContext, now_ms};

/// Totals behind the rates, sampled every second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub at_ms: i64,
    pub put: u64,
    pub found: u64,
    pub miss: u64,
    pub transferred: u64,
}

impl Totals {
    pub fn of(stats: &CoreStats, at_ms: i64) -> Self {
        Totals {
            at_ms,
            put: stats.put_messages,
            found: stats.get_found,
            miss: stats.get_miss,
            transferred: stats.get_transferred,
        }
    }
}

/// One keyed sample: every stats item's running value at a moment.
#[derive(Debug, Clone, Default)]
struct Keyed {
    at_ms: i64,
    stats: CoreStats,
}

/// A sampled series that keeps its last `keep` samples, one every `every_ms`.
#[derive(Debug)]
struct Series {
    every_ms: i64,
    keep: usize,
    samples: VecDeque<Keyed>,
}

impl Series {
    fn new(every_ms: i64, keep: usize) -> Self {
        Series {
            every_ms,
            keep,
            samples: VecDeque::new(),
        }
    }

    fn offer(&mut self, now: i64, stats: &CoreStats) {
        let due = self
            .samples
            .back()
            .is_none_or(|last| now - last.at_ms >= self.every_ms);
        if due {
            self.samples.push_back(Keyed {
                at_ms: now,
                stats: stats.clone(),
            });
            while self.samples.len() > self.keep {
                self.samples.pop_front();
            }
        }
    }
}

/// A stats item over one period: RocketMQ's `BrokerStatsItem` (sum, tps, avgpt).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    pub sum: u64,
    pub tps: f64,
    /// Average value per event (e.g. messages per send).
    pub avgpt: f64,
}

/// Which stats item VIEW_BROKER_STATS_DATA asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsName {
    TopicPutNums,
    TopicPutSize,
    GroupGetNums,
    GroupGetSize,
    SendBackPutNums,
    BrokerPutNums,
    BrokerGetNums,
}

impl StatsName {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "TOPIC_PUT_NUMS" => StatsName::TopicPutNums,
            "TOPIC_PUT_SIZE" => StatsName::TopicPutSize,
            "GROUP_GET_NUMS" => StatsName::GroupGetNums,
            "GROUP_GET_SIZE" => StatsName::GroupGetSize,
            "SNDBCK_PUT_NUMS" => StatsName::SendBackPutNums,
            "BROKER_PUT_NUMS" => StatsName::BrokerPutNums,
            "BROKER_GET_NUMS" => StatsName::BrokerGetNums,
            _ => return None,
        })
    }
}

/// The item `name`/`key` in `stats`; `None` when nothing was ever counted for it. Keys are
/// RocketMQ's: a topic, `topic@group`, or the cluster name for the broker-wide items.
pub fn item(stats: &CoreStats, name: StatsName, key: &str, cluster: &str) -> Option<Item> {
    let topic_group = || key.split_once('@');
    match name {
        StatsName::TopicPutNums => stats.topics.get(key).map(|t| t.nums),
        StatsName::TopicPutSize => stats.topics.get(key).map(|t| t.size),
        StatsName::GroupGetNums | StatsName::GroupGetSize => {
            let (topic, group) = topic_group()?;
            let get = stats.groups.get(group)?.get(topic)?;
            Some(if name == StatsName::GroupGetNums {
                get.nums
            } else {
                get.size
            })
        }
        StatsName::SendBackPutNums => {
            let (topic, group) = topic_group()?;
            stats.send_backs.get(group)?.get(topic).copied()
        }
        StatsName::BrokerPutNums => (key == cluster).then_some(Item {
            value: stats.put_messages,
            times: stats.put_times,
        }),
        StatsName::BrokerGetNums => (key == cluster).then_some(Item {
            value: stats.get_transferred,
            times: stats.get_found,
        }),
    }
}

/// The day marks of `msgPut/GetTotal{Today,Yesterday}Morning`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayMarks {
    pub put_today_morning: u64,
    pub put_yesterday_morning: u64,
    pub get_today_morning: u64,
    pub get_yesterday_morning: u64,
}

#[derive(Debug)]
struct State {
    seconds: VecDeque<Totals>,
    minute: Series,
    hour: Series,
    day: Series,
    marks: DayMarks,
    /// The local day the marks belong to.
    today: Option<i64>,
}

/// Per-second samples kept: enough for the 600 s rate.
const SECONDS_KEPT: usize = 601;

/// Broker-wide history (behind a lock taken once a second by the sampler and by admin reads).
pub struct StatsHistory {
    state: Mutex<State>,
}

impl Default for StatsHistory {
    fn default() -> Self {
        StatsHistory {
            state: Mutex::new(State {
                seconds: VecDeque::with_capacity(SECONDS_KEPT),
                minute: Series::new(10_000, 7),
                hour: Series::new(600_000, 7),
                day: Series::new(3_600_000, 25),
                marks: DayMarks::default(),
                today: None,
            }),
        }
    }
}

impl StatsHistory {
    /// Records the summed counters `stats` at `now` on local day `day`.
    pub fn record(&self, stats: &CoreStats, now: i64, day: i64) {
        let mut state = self.state.lock().expect("stats history lock");
        state.seconds.push_back(Totals::of(stats, now));
        while state.seconds.len() > SECONDS_KEPT {
            state.seconds.pop_front();
        }
        state.minute.offer(now, stats);
        state.hour.offer(now, stats);
        state.day.offer(now, stats);
        match state.today {
            // First sample: the counters started at zero when the broker started today.
            None => state.today = Some(day),
            Some(known) if known != day => {
                state.today = Some(day);
                let marks = &mut state.marks;
                marks.put_yesterday_morning = marks.put_today_morning;
                marks.get_yesterday_morning = marks.get_today_morning;
                marks.put_today_morning = stats.put_messages;
                marks.get_today_morning = stats.get_transferred;
            }
            Some(_) => {}
        }
    }

    pub fn day_marks(&self) -> DayMarks {
        self.state.lock().expect("stats history lock").marks
    }

    /// Rates over the last `seconds` seconds ending at `now_totals` (the live totals):
    /// put, found, miss and transferred per second. Uses the oldest sample within the
    /// window (all zero before the first sample).
    pub fn rates(&self, now_totals: &Totals, seconds: i64) -> [f64; 4] {
        let state = self.state.lock().expect("stats history lock");
        let since = now_totals.at_ms - seconds * 1000;
        let Some(base) = state
            .seconds
            .iter()
            .find(|s| s.at_ms >= since && s.at_ms < now_totals.at_ms)
        else {
            return [0.0; 4];
        };
        let span = (now_totals.at_ms - base.at_ms) as f64 / 1000.0;
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / span;
        [
            rate(now_totals.put, base.put),
            rate(now_totals.found, base.found),
            rate(now_totals.miss, base.miss),
            rate(now_totals.transferred, base.transferred),
        ]
    }

    /// A stats item over the last minute, hour and day, ending at `live` (taken at `now`).
    pub fn windows(
        &self,
        live: &CoreStats,
        now: i64,
        name: StatsName,
        key: &str,
        cluster: &str,
    ) -> Option<[Window; 3]> {
        let last = item(live, name, key, cluster)?;
        let state = self.state.lock().expect("stats history lock");
        let window = |series: &Series| {
            let first = series
                .samples
                .front()
                .filter(|first| first.at_ms < now)
                .map(|first| (first.at_ms, item(&first.stats, name, key, cluster)));
            let Some((at, first)) = first else {
                return Window::default();
            };
            let first = first.unwrap_or_default();
            let sum = last.value.saturating_sub(first.value);
            let times = last.times.saturating_sub(first.times);
            Window {
                sum,
                tps: sum as f64 * 1000.0 / (now - at) as f64,
                avgpt: if times > 0 {
                    sum as f64 / times as f64
                } else {
                    0.0
                },
            }
        };
        Some([
            window(&state.minute),
            window(&state.hour),
            window(&state.day),
        ])
    }
}

/// The local calendar day of `ms` (days since the epoch in the local time zone).
pub fn local_day(ms: i64) -> i64 {
    let secs = nix::libc::time_t::try_from(ms / 1000).unwrap_or(0);
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are valid; localtime_r only
    // writes into it and reads `secs`.
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { nix::libc::localtime_r(&secs, &mut tm) };
    if converted.is_null() {
        return ms.div_euclid(86_400_000);
    }
    (ms / 1000 + tm.tm_gmtoff).div_euclid(86_400)
}

/// Samples the summed counters every second until the broker stops (core 0).
pub async fn sampler_loop(ctx: SharedContext, core: usize) {
    while !ctx.stopping.load(Ordering::Acquire) {
        let stats = ctx.stats_hub.gather(core).await;
        let now = now_ms();
        ctx.stats_history.record(&stats, now, local_day(now));
        rmq_net::rt::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(put: u64, transferred: u64) -> CoreStats {
        CoreStats {
            put_messages: put,
            put_times: put,
            get_transferred: transferred,
            get_found: transferred,
            ..CoreStats::default()
        }
    }

    #[test]
    fn day_marks_move_at_local_midnight() {
        let history = StatsHistory::default();
        history.record(&stats(5, 1), 1000, 10);
        assert_eq!(history.day_marks(), DayMarks::default());
        history.record(&stats(9, 4), 2000, 11);
        let marks = history.day_marks();
        assert_eq!((marks.put_today_morning, marks.get_today_morning), (9, 4));
        assert_eq!(
            (marks.put_yesterday_morning, marks.get_yesterday_morning),
            (0, 0)
        );
        history.record(&stats(20, 8), 3000, 12);
        let marks = history.day_marks();
        assert_eq!(
            (marks.put_today_morning, marks.put_yesterday_morning),
            (20, 9)
        );
    }

    #[test]
    fn rates_use_the_oldest_sample_in_the_window() {
        let history = StatsHistory::default();
        assert_eq!(history.rates(&Totals::of(&stats(9, 0), 5000), 10), [0.0; 4]);
        for second in 0..=20 {
            history.record(&stats(second * 10, second), second as i64 * 1000, 1);
        }
        let now = Totals::of(&stats(210, 21), 21_000);
        let [put, found, _, transferred] = history.rates(&now, 10);
        assert_eq!((put, found, transferred), (10.0, 1.0, 1.0));
    }

    #[test]
    fn windows_of_a_keyed_item() {
        let history = StatsHistory::default();
        let mut s = CoreStats::default();
        history.record(&s, 0, 1);
        s.topics.entry("T".into()).or_default().nums = Item {
            value: 30,
            times: 10,
        };
        let [minute, hour, day] = history
            .windows(&s, 10_000, StatsName::TopicPutNums, "T", "c")
            .expect("counted");
        assert_eq!(minute.sum, 30);
        assert_eq!(minute.tps, 3.0);
        assert_eq!(minute.avgpt, 3.0);
        assert_eq!((hour.sum, day.sum), (30, 30));
        assert!(
            history
                .windows(&s, 10_000, StatsName::TopicPutNums, "U", "c")
                .is_none()
        );
        s.put_messages = 7;
        s.put_times = 7;
        let [minute, ..] = history
            .windows(&s, 10_000, StatsName::BrokerPutNums, "c", "c")
            .unwrap();
        assert_eq!(minute.sum, 7);
        assert_eq!(
            StatsName::parse("GROUP_GET_NUMS"),
            Some(StatsName::GroupGetNums)
        );
    }
}
