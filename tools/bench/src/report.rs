//! What a run measured: the live statistics workers record into, the once-per-second
//! progress line, and the final summary (text, or one JSON object with `--json`).
//!
//! Units: histograms hold microseconds (hdrhistogram, 3 significant digits, auto-resizing,
//! so no latency is clipped); reports show milliseconds with 3 decimals. MB/s counts
//! message bodies in 10^6 bytes per second. Throughput divides by the measured time,
//! which starts after `--warmup`.
//!
//! Concurrency: each OS thread of the bench records into its own `Arc<Mutex<Stats>>`, so a
//! lock is never contended except for the reporter's once-per-second merge.
//!
//! The JSON shape is stable for scripts (docs/perf.md): `tool`, `version`, `workload`,
//! `params` (every option), `environment` (hostname, cpus, date, git_commit),
//! `interrupted`, `measured_secs`, and `produce` / `consume` sections present only when
//! that side ran. Error maps are keyed by response code (`"14"`) or transport failure
//! (`"timeout"`, `"closed"`, `"connect"`, `"bad_record"`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use rmq_core::remoting::ResponseCode;
use rmq_net::NetError;
use serde::Serialize;

use crate::clock;
use crate::options::{Options, WorkloadKind};
use crate::process_usage::UsageSummary;

/// Counters of one side (produce or consume) recorded by the workers of one thread.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Send round trip (produce) or born-to-consume latency (consume), in µs.
    pub latency_us: Histogram<u64>,
    /// Store-to-consume latency in µs (consume only; millisecond resolution).
    pub store_latency_us: Histogram<u64>,
    pub messages: u64,
    pub requests: u64,
    pub bytes: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        let histogram = || Histogram::new(3).expect("3 significant digits is valid");
        Self {
            latency_us: histogram(),
            store_latency_us: histogram(),
            messages: 0,
            requests: 0,
            bytes: 0,
            errors: BTreeMap::new(),
        }
    }
}

/// Shared handle to one thread's statistics.
pub type SharedStats = Arc<Mutex<Stats>>;

impl Stats {
    pub fn record_latency(&mut self, latency: Duration) {
        record_us(&mut self.latency_us, duration_us(latency));
    }

    pub fn record_store_latency(&mut self, latency: Duration) {
        record_us(&mut self.store_latency_us, duration_us(latency));
    }

    pub fn record_error(&mut self, key: impl Into<String>) {
        *self.errors.entry(key.into()).or_default() += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        self.latency_us
            .add(&other.latency_us)
            .expect("auto-resizing histograms always merge");
        self.store_latency_us
            .add(&other.store_latency_us)
            .expect("auto-resizing histograms always merge");
        self.messages += other.messages;
        self.requests += other.requests;
        self.bytes += other.bytes;
        for (key, count) in &other.errors {
            *self.errors.entry(key.clone()).or_default() += count;
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Merges the statistics of every thread of one side.
pub fn merge_all(parts: &[SharedStats]) -> Stats {
    let mut total = Stats::default();
    for part in parts {
        total.merge(&lock(part));
    }
    total
}

/// Locks one thread's statistics. A poisoned lock means a worker panicked mid-update;
/// the numbers are still the best there are.
pub fn lock(stats: &SharedStats) -> std::sync::MutexGuard<'_, Stats> {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The error-map key of a transport failure.
pub fn failure_key(error: &NetError) -> &'static str {
    match error {
        NetError::Timeout { .. } => "timeout",
        NetError::Connect { .. } => "connect",
        NetError::Closed { .. } | NetError::Io { .. } => "closed",
        NetError::Frame { .. } | NetError::Bind { .. } | NetError::AddrInUse { .. } => "transport",
    }
}

/// The error-map key of a response code.
pub fn code_key(code: i32) -> String {
    code.to_string()
}

/// Records `us`, growing the histogram as needed. (`saturating_record` would clamp to the
/// current size of an auto-resizing histogram instead of growing it.)
fn record_us(histogram: &mut Histogram<u64>, us: u64) {
    if histogram.record(us).is_err() {
        histogram.saturating_record(us);
    }
}

fn duration_us(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn us_to_ms(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self {
                count: 0,
                min_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        let quantile = |q: f64| us_to_ms(histogram.value_at_quantile(q));
        Self {
            count: histogram.len(),
            min_ms: us_to_ms(histogram.min()),
            p50_ms: quantile(0.50),
            p90_ms: quantile(0.90),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            max_ms: us_to_ms(histogram.max()),
            mean_ms: round3(histogram.mean() / 1000.0),
        }
    }
}

/// Throughput and latency of one side over the measured time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SideSummary {
    pub messages: u64,
    pub requests: u64,
    pub bytes: u64,
    pub tps: f64,
    pub mb_per_sec: f64,
    /// Send RT for produce, born-to-consume for consume.
    pub latency_ms: LatencySummary,
    /// Store-to-consume (consume only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_to_consume_ms: Option<LatencySummary>,
    pub errors: BTreeMap<String, u64>,
}

impl SideSummary {
    pub fn of(stats: &Stats, measured: Duration, consume: bool) -> Self {
        let secs = measured.as_secs_f64().max(1e-9);
        Self {
            messages: stats.messages,
            requests: stats.requests,
            bytes: stats.bytes,
            tps: round3(stats.messages as f64 / secs),
            mb_per_sec: round3(stats.bytes as f64 / secs / 1e6),
            latency_ms: LatencySummary::of(&stats.latency_us),
            store_to_consume_ms: consume.then(|| LatencySummary::of(&stats.store_latency_us)),
            errors: stats.errors.clone(),
        }
    }
}

/// Where the run happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    pub hostname: String,
    pub cpus: usize,
    pub date: String,
    pub git_commit: Option<String>,
}

impl Environment {
    pub fn detect() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|name| name.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Self {
            hostname,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            date: clock::iso8601_utc(clock::now_ms()),
            git_commit: std::env::var("GIT_COMMIT")
                .ok()
                .filter(|commit| !commit.is_empty()),
        }
    }
}

/// The final report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tool: &'static str,
    pub version: &'static str,
    pub workload: WorkloadKind,
    pub params: Options,
    pub environment: Environment,
    /// True when Ctrl-C ended the run early.
    pub interrupted: bool,
    pub measured_secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub produce: Option<SideSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consume: Option<SideSummary>,
    /// CPU and memory of `--broker-pid` processes over the measured interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<UsageSummary>,
}

impl Summary {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the summary serializes")
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "---- rmq-fast-bench {:?} summary ({:.3} s measured{}) ----",
            self.workload,
            self.measured_secs,
            if self.interrupted {
                ", interrupted"
            } else {
                ""
            }
        );
        if let Some(produce) = &self.produce {
            write_side(&mut out, "send", "send RT", produce);
        }
        if let Some(consume) = &self.consume {
            write_side(&mut out, "consume", "e2e (born->consume)", consume);
            if let Some(store) = &consume.store_to_consume_ms {
                write_latency(&mut out, "store->consume", store);
            }
        }
        if let Some(broker) = &self.broker {
            let _ = writeln!(out, "{}", broker.to_text());
        }
        out
    }
}

fn write_side(out: &mut String, side: &str, latency_name: &str, summary: &SideSummary) {
    let _ = writeln!(
        out,
        "{side}: {} messages in {} requests, {:.1} msg/s, {:.3} MB/s",
        summary.messages, summary.requests, summary.tps, summary.mb_per_sec
    );
    write_latency(out, latency_name, &summary.latency_ms);
    if summary.errors.is_empty() {
        let _ = writeln!(out, "{side} errors: none");
    }
    for (key, count) in &summary.errors {
        let name = key
            .parse()
            .ok()
            .and_then(ResponseCode::from_code)
            .map(|code| format!(" {code:?}"));
        let _ = writeln!(
            out,
            "{side} errors: {key}{}: {count}",
            name.unwrap_or_default()
        );
    }
}

fn write_latency(out: &mut String, name: &str, latency: &LatencySummary) {
    let _ = writeln!(
        out,
        "{name} ms: min {:.3} p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} \
         (mean {:.3}, n={})",
        latency.min_ms,
        latency.p50_ms,
        latency.p90_ms,
        latency.p99_ms,
        latency.p999_ms,
        latency.max_ms,
        latency.mean_ms,
        latency.count
    );
}

/// Turns cumulative totals into the once-per-second progress line.
#[derive(Debug, Default)]
pub struct Progress {
    last_messages: [u64; 2],
    last_bytes: [u64; 2],
}

impl Progress {
    /// The line for `elapsed`, given the totals of each side that runs and the time since
    /// the previous line.
    pub fn line(
        &mut self,
        elapsed: Duration,
        interval: Duration,
        sides: [Option<&Stats>; 2],
    ) -> String {
        let mut line = format!("[{:>7.1}s]", elapsed.as_secs_f64());
        let names = ["send", "consume"];
        let secs = interval.as_secs_f64().max(1e-9);
        for (side, stats) in sides.iter().enumerate() {
            let Some(stats) = stats else { continue };
            let messages = stats.messages - self.last_messages[side];
            let bytes = stats.bytes - self.last_bytes[side];
            self.last_messages[side] = stats.messages;
            self.last_bytes[side] = stats.bytes;
            let p99 = us_to_ms(stats.latency_us.value_at_quantile(0.99));
            let _ = write!(
                line,
                " {} tps {:.0} MB/s {:.3} p99 {:.3} ms errors {} |",
                names[side],
                messages as f64 / secs,
                bytes as f64 / secs / 1e6,
                p99,
                stats.error_total()
            );
        }
        line.pop();
        line.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::options::Cli;

    fn stats_with(latencies_us: impl IntoIterator<Item = u64>) -> Stats {
        let mut stats = Stats::default();
        for us in latencies_us {
            stats.record_latency(Duration::from_micros(us));
            stats.messages += 1;
            stats.requests += 1;
            stats.bytes += 100;
        }
        stats
    }

    #[test]
    fn latency_summary_math() {
        let summary = LatencySummary::of(&stats_with(1..=10_000).latency_us);
        assert_eq!(summary.count, 10_000);
        assert_eq!(summary.min_ms, 0.001);
        // hdrhistogram reports the top of the value's bucket: 3 significant digits.
        assert!((summary.max_ms - 10.0).abs() <= 0.01, "{summary:?}");
        assert!((summary.p50_ms - 5.0).abs() <= 0.005, "{summary:?}");
        assert!((summary.p90_ms - 9.0).abs() <= 0.01, "{summary:?}");
        assert!((summary.p99_ms - 9.9).abs() <= 0.01, "{summary:?}");
        assert!((summary.p999_ms - 9.99).abs() <= 0.01, "{summary:?}");
        assert!((summary.mean_ms - 5.0).abs() <= 0.005, "{summary:?}");
        assert_eq!(LatencySummary::of(&Stats::default().latency_us).count, 0);
    }

    #[test]
    fn merge_and_throughput() {
        let mut total = stats_with([1_000, 2_000]);
        let mut other = stats_with([3_000]);
        other.record_error(code_key(14));
        other.record_error("timeout");
        total.merge(&other);
        total.record_error("14");
        assert_eq!(
            (total.messages, total.bytes, total.error_total()),
            (3, 300, 3)
        );
        total.bytes = 3_000_000;
        let side = SideSummary::of(&total, Duration::from_millis(1500), false);
        assert_eq!((side.tps, side.mb_per_sec), (2.0, 2.0));
        assert!((side.latency_ms.max_ms - 3.0).abs() <= 0.003, "{side:?}");
        assert_eq!(side.errors["14"], 2);
        assert!(side.store_to_consume_ms.is_none());
    }

    #[test]
    fn json_shape() {
        let (workload, params) = Cli::parse_from(["b", "e2e", "--rate", "100"])
            .workload
            .split()
            .expect("a load workload");
        let stats = stats_with([500, 1500]);
        let summary = Summary {
            tool: "rmq-fast-bench",
            version: "0.1.0",
            workload,
            params,
            environment: Environment::detect(),
            interrupted: false,
            measured_secs: 2.0,
            produce: Some(SideSummary::of(&stats, Duration::from_secs(2), false)),
            consume: Some(SideSummary::of(&stats, Duration::from_secs(2), true)),
            broker: None,
        };
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert_eq!(json["workload"], "e2e");
        assert_eq!(json["params"]["rate"], 100.0);
        assert_eq!(json["params"]["mode"], "sync");
        assert_eq!(json["params"]["serialize"], "rocketmq");
        assert!(json["environment"]["cpus"].as_u64().unwrap() >= 1);
        assert!(json["environment"]["date"].as_str().unwrap().ends_with('Z'));
        assert_eq!(json["produce"]["tps"], 1.0);
        assert!((json["produce"]["latency_ms"]["max_ms"].as_f64().unwrap() - 1.5).abs() <= 0.002);
        assert!(json["produce"].get("store_to_consume_ms").is_none());
        assert_eq!(json["consume"]["store_to_consume_ms"]["count"], 0);
        for key in ["min_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
            assert!(json["produce"]["latency_ms"][key].is_f64(), "{key}");
        }
        assert!(summary.to_text().contains("send RT ms: min 0.500"));
    }

    #[test]
    fn progress_reports_deltas() {
        let mut progress = Progress::default();
        let mut stats = stats_with([1_000; 10]);
        let first = progress.line(
            Duration::from_secs(1),
            Duration::from_secs(1),
            [Some(&stats), None],
        );
        assert!(first.contains("send tps 10 "), "{first}");
        stats.messages += 5;
        let second = progress.line(
            Duration::from_secs(2),
            Duration::from_millis(500),
            [Some(&stats), None],
        );
        assert!(
            second.contains("send tps 10 ") && second.contains("p99 1.000 ms"),
            "{second}"
        );
        assert!(!second.contains("consume"));
    }
}
