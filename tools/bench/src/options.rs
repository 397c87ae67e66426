//! Command-line options of `rmq-fast-bench`, shared by the three workloads.
//!
//! The names follow Apache RocketMQ's `benchmark/Producer` and `Consumer` where they
//! overlap (`-n` name server, topic, message size, threads), plus what a latency study
//! needs: an open-loop `--rate`, `--warmup`, bounded `--inflight` and JSON output.
//!
//! Tradeoff: one flat option set for every subcommand (rather than one struct per
//! subcommand) keeps the JSON `params` object identical across reports, so results of
//! produce, consume and e2e runs can be compared with the same tooling. Options that do
//! not apply to a workload are simply ignored by it.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rmq_core::remoting::SerializeType;
use serde::Serialize;

/// Load generator for RocketMQ 4.x compatible brokers.
#[derive(Debug, Parser)]
#[command(name = "rmq-fast-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub workload: Workload,
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Produce,
    Consume,
    E2e,
}

#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Send messages and measure send round trip (RT).
    Produce(Options),
    /// Long-poll pull every queue of the topic and measure store-to-consume latency.
    Consume(Options),
    /// Produce and consume at once: send RT plus end-to-end latency.
    E2e(Options),
    /// Serve as a broker that stores nothing: the request/response ceiling for `produce`.
    NullBroker(crate::null_broker::NullBrokerOptions),
}

impl Workload {
    /// The load workload and its options, or the null broker's options.
    pub fn split(
        self,
    ) -> Result<(WorkloadKind, Options), Box<crate::null_broker::NullBrokerOptions>> {
        match self {
            Self::Produce(options) => Ok((WorkloadKind::Produce, options)),
            Self::Consume(options) => Ok((WorkloadKind::Consume, options)),
            Self::E2e(options) => Ok((WorkloadKind::E2e, options)),
            Self::NullBroker(options) => Err(Box::new(options)),
        }
    }
}

/// How the producer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendMode {
    /// One request at a time per worker (SEND_MESSAGE_V2).
    Sync,
    /// Up to `--inflight` requests outstanding per worker.
    Async,
    /// No response expected; every `--inflight`-th send waits as back-pressure.
    Oneway,
    /// SEND_BATCH_MESSAGE with `--batch-size` messages per request.
    Batch,
}

/// Header encoding of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderEncoding {
    Json,
    Rocketmq,
}

impl HeaderEncoding {
    pub fn wire(self) -> SerializeType {
        match self {
            Self::Json => SerializeType::Json,
            Self::Rocketmq => SerializeType::RocketMq,
        }
    }
}

/// An on/off switch written the way RocketMQ's benchmark scripts spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Self::On
    }
}

/// Options of every workload.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Options {
    /// Name server address(es): `host:port`, or `host:port;host:port` (first reachable).
    #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    #[arg(long, default_value = "BenchmarkTest")]
    pub topic: String,
    /// Connections / worker tasks.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// OS threads (one io_uring runtime each) the producer workers are spread over.
    #[arg(long, default_value_t = 1)]
    pub cores: usize,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    #[arg(long, value_enum, default_value_t = SendMode::Sync)]
    pub mode: SendMode,
    /// Outstanding requests per worker in async mode (oneway: back-pressure period).
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Messages per SEND_BATCH_MESSAGE request in batch mode.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Set a TAGS property on every message.
    #[arg(long, value_enum, default_value_t = Switch::Off)]
    pub tags: Switch,
    /// Set a KEYS property on every message (the broker indexes it).
    #[arg(long, value_enum, default_value_t = Switch::Off)]
    pub keys: Switch,
    /// Target messages/s over all workers, open loop; 0 = closed loop, as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Run time in seconds, warmup included (default 30 unless --count is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many messages (sent, or consumed for `consume`).
    #[arg(long)]
    pub count: Option<u64>,
    /// Seconds at the start excluded from the statistics.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    #[arg(long, value_enum, default_value_t = HeaderEncoding::Rocketmq)]
    pub serialize: HeaderEncoding,
    /// Producer/consumer group (default benchmark_producer / benchmark_consumer).
    #[arg(long)]
    pub group: Option<String>,
    /// Print the final summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Use only the first N queues of the topic.
    #[arg(long)]
    pub queues: Option<usize>,
    /// Consume from the first offset instead of the max offset at start.
    #[arg(long)]
    pub from_start: bool,
    /// Request timeout in milliseconds for sends and admin requests.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// Process id of a broker (repeat for a master and its slave): the report adds its CPU
    /// time per message and memory over the measured interval, read from /proc.
    #[arg(long = "broker-pid")]
    pub broker_pids: Vec<u32>,
}

/// Run time used when neither `--duration` nor `--count` is given.
pub const DURATION_DEFAULT_SECS: f64 = 30.0;

impl Options {
    /// Checks relations the parser cannot express.
    ///
    /// # Errors
    /// A message naming the offending option.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, value: usize| {
            if value == 0 {
                Err(format!("--{name} must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("threads", self.threads)?;
        positive("cores", self.cores)?;
        positive("inflight", self.inflight)?;
        positive("batch-size", self.batch_size)?;
        if self.queues == Some(0) {
            return Err("--queues must be at least 1".into());
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err("--rate must be a non-negative number".into());
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            return Err("--warmup must be a non-negative number".into());
        }
        if let Some(duration) = self.duration
            && !(duration.is_finite() && duration > self.warmup)
        {
            return Err("--duration must be longer than --warmup".into());
        }
        if self.size > 4 * 1024 * 1024 {
            return Err("--size is above the broker's default maxMessageSize (4 MiB)".into());
        }
        Ok(())
    }

    /// The run time limit; `None` = until `--count` is reached or Ctrl-C.
    pub fn run_time(&self) -> Option<Duration> {
        match (self.duration, self.count) {
            (Some(secs), _) => Some(Duration::from_secs_f64(secs)),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs_f64(DURATION_DEFAULT_SECS)),
        }
    }

    pub fn warmup_time(&self) -> Duration {
        Duration::from_secs_f64(self.warmup)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    pub fn producer_group(&self) -> &str {
        self.group.as_deref().unwrap_or("benchmark_producer")
    }

    pub fn consumer_group(&self) -> &str {
        self.group.as_deref().unwrap_or("benchmark_consumer")
    }

    /// Messages each request carries.
    pub fn messages_per_request(&self) -> usize {
        if self.mode == SendMode::Batch {
            self.batch_size
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> (WorkloadKind, Options) {
        let mut argv = vec!["rmq-fast-bench"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .expect("parses")
            .workload
            .split()
            .expect("a load workload")
    }

    #[test]
    fn defaults_match_the_issue() {
        let (kind, options) = parse(&["produce"]);
        assert_eq!(kind, WorkloadKind::Produce);
        assert_eq!(options.namesrv, "127.0.0.1:9876");
        assert_eq!(options.topic, "BenchmarkTest");
        assert_eq!((options.threads, options.size), (4, 128));
        assert_eq!(options.mode, SendMode::Sync);
        assert_eq!((options.inflight, options.batch_size), (256, 16));
        assert_eq!(options.serialize.wire(), SerializeType::RocketMq);
        assert_eq!(options.run_time(), Some(Duration::from_secs(30)));
        assert_eq!(options.messages_per_request(), 1);
        assert!(options.validate().is_ok());
    }

    #[test]
    fn count_without_duration_runs_until_count() {
        let (_, options) = parse(&["e2e", "--count", "1000", "--mode", "batch", "--tags", "on"]);
        assert_eq!(options.run_time(), None);
        assert_eq!(options.messages_per_request(), 16);
        assert!(options.tags.is_on() && !options.keys.is_on());
    }

    #[test]
    fn rejects_inconsistent_values() {
        let (_, options) = parse(&["produce", "--duration", "5", "--warmup", "5"]);
        assert!(options.validate().is_err());
        let (_, options) = parse(&["produce", "--threads", "0"]);
        assert!(options.validate().is_err());
        let (_, options) = parse(&["consume", "--queues", "0"]);
        assert!(options.validate().is_err());
    }
}
