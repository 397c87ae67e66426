//! A [`Scrape`] in the Prometheus text format (version 0.0.4), written by prometheus-client's
//! encoder (names, label escaping, histogram buckets), fed at scrape time through its
//! `Collector` interface: the values come from our per-core counters, not from the crate's
//! atomic metric types.
//!
//! Names and labels follow RocketMQ 5 (BrokerMetricsConstant, RemotingMetricsConstant,
//! DefaultStoreMetricsConstant): every sample has `cluster`, `node_type="broker"` and
//! `node_id` (the broker name). Units are in the HELP text, not in the names, as RocketMQ
//! names them. Our own metrics start with `rmq_`.

use std::borrow::Cow;
use std::fmt::Error;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rmq_core::remoting::{ResponseCode, request_code};

use super::collect::ShardSnapshot;
use super::histogram::{
    GROUP_COMMIT_BYTES_BUCKETS, Histogram, SYNC_ACKS_BUCKETS, SYNC_LATENCY_MS_BUCKETS,
};
use super::scrape::Scrape;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;

/// A metric read from one shard: name, help, reader.
type ShardGauge = (&'static str, &'static str, fn(&ShardSnapshot) -> i64);
type ShardCounter = (
    &'static str,
    &'static str,
    fn(&rmq_storage::ShardStats) -> u64,
);

/// One parsed sample line: name, labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Renders `scrape` as Prometheus text.
pub fn render(scrape: Scrape) -> Result<String, Error> {
    let base = [
        ("cluster", scrape.cluster.clone()),
        ("node_type", "broker".to_string()),
        ("node_id", scrape.node_id.clone()),
    ];
    let extra = scrape
        .extra_labels
        .iter()
        .map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.clone())));
    let mut registry = Registry::with_labels(
        base.into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v)))
            .chain(extra),
    );
    registry.register_collector(Box::new(ScrapeCollector(Arc::new(scrape))));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

#[derive(Debug)]
struct ScrapeCollector(Arc<Scrape>);

impl Collector for ScrapeCollector {
    fn encode(&self, mut out: DescriptorEncoder) -> Result<(), Error> {
        let s = &self.0;
        rocketmq_messages(&mut out, s)?;
        rocketmq_lag(&mut out, s)?;
        rocketmq_broker(&mut out, s)?;
        rmq_shards(&mut out, s)?;
        rmq_latency_and_connections(&mut out, s)?;
        Ok(())
    }
}

fn counter(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), Error> {
    let mut metric = out.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        metric
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

fn gauge(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, i64)>,
) -> Result<(), Error> {
    let mut metric = out.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

fn histogram<'a>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, &'a Histogram)>,
) -> Result<(), Error> {
    let mut metric = out.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum(), h.count(), &h.buckets(), None)?;
    }
    Ok(())
}

/// RocketMQ's `is_system`: a system topic (RMQ_SYS_*, SCHEDULE_TOPIC_XXXX, ...) or group.
fn is_system(topic: &str, group: &str) -> String {
    let topic_sys = topic.starts_with("rmq_sys_")
        || topic.starts_with("RMQ_SYS_")
        || topic == "SCHEDULE_TOPIC_XXXX"
        || topic == "TBW102"
        || topic == "SELF_TEST_TOPIC"
        || topic == "OFFSET_MOVED_EVENT";
    let group_sys = group.to_ascii_lowercase().starts_with("cid_rmq_sys_");
    (topic_sys || group_sys).to_string()
}

fn is_retry(topic: &str) -> String {
    topic.starts_with("%RETRY%").to_string()
}

fn rocketmq_messages(out: &mut DescriptorEncoder, s: &Scrape) -> Result<(), Error> {
    let in_labels = |topic: &str, kind: super::counters::MessageType| -> Labels {
        vec![
            ("topic", topic.to_string()),
            ("message_type", kind.label().to_string()),
            ("is_system", is_system(topic, "")),
        ]
    };
    let ins = || s.messages_in.iter();
    counter(
        out,
        "rocketmq_messages_in",
        "Total number of incoming messages",
        ins().map(|((t, k), v)| (in_labels(t, *k), v.messages)),
    )?;
    counter(
        out,
        "rocketmq_throughput_in",
        "Total traffic of incoming messages, bytes",
        ins().map(|((t, k), v)| (in_labels(t, *k), v.bytes)),
    )?;
    histogram(
        out,
        "rocketmq_message_size",
        "Incoming messages size, bytes",
        ins().map(|((t, k), v)| (in_labels(t, *k), &v.sizes)),
    )?;
    let out_labels = |group: &str, topic: &str| -> Labels {
        vec![
            ("topic", topic.to_string()),
            ("consumer_group", group.to_string()),
            ("is_retry", is_retry(topic)),
            ("is_system", is_system(topic, group)),
        ]
    };
    counter(
        out,
        "rocketmq_messages_out",
        "Total number of outgoing messages",
        s.messages_out
            .iter()
            .map(|((g, t), v)| (out_labels(g, t), v.messages)),
    )?;
    counter(
        out,
        "rocketmq_throughput_out",
        "Total traffic of outgoing messages, bytes",
        s.messages_out
            .iter()
            .map(|((g, t), v)| (out_labels(g, t), v.bytes)),
    )?;
    counter(
        out,
        "rocketmq_send_to_dlq_messages",
        "Consumer send to DLQ messages",
        s.dlq.iter().map(|((g, t), n)| {
            let labels = vec![
                ("consumer_group", g.clone()),
                ("topic", t.clone()),
                ("is_system", is_system(t, g)),
            ];
            (labels, *n)
        }),
    )
}

fn rocketmq_lag(out: &mut DescriptorEncoder, s: &Scrape) -> Result<(), Error> {
    let labels = |group: &str, topic: &str| -> Labels {
        vec![
            ("consumer_group", group.to_string()),
            ("topic", topic.to_string()),
            ("is_retry", is_retry(topic)),
            ("is_system", is_system(topic, group)),
        ]
    };
    let rows = || s.lag.iter();
    gauge(
        out,
        "rocketmq_consumer_lag_messages",
        "Consumer lag messages (stored minus committed)",
        rows().map(|((g, t), l)| (labels(g, t), l.messages)),
    )?;
    gauge(
        out,
        "rocketmq_consumer_lag_latency",
        "Consumer lag time, milliseconds (age of the oldest message not consumed)",
        rows().map(|((g, t), l)| (labels(g, t), l.latency_ms)),
    )?;
    gauge(
        out,
        "rocketmq_consumer_inflight_messages",
        "Consumer inflight messages (pulled but not committed)",
        rows().map(|((g, t), l)| (labels(g, t), l.inflight)),
    )
}

/// RocketMQ's lower-case request and response code names.
fn code_name(code: i32, response: bool) -> String {
    if response {
        if code < 0 {
            return "oneway".to_string();
        }
        return match ResponseCode::from_code(code) {
            Some(variant) => snake_case(&format!("{variant:?}")),
            None => code.to_string(),
        };
    }
    request_code::name(code).map_or_else(|| code.to_string(), str::to_ascii_lowercase)
}

fn snake_case(camel: &str) -> String {
    let mut snake = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    snake
}

fn rocketmq_broker(out: &mut DescriptorEncoder, s: &Scrape) -> Result<(), Error> {
    histogram(
        out,
        "rocketmq_rpc_latency",
        "Rpc latency, milliseconds",
        s.rpc.iter().map(|(&(request, response), h)| {
            let labels = vec![
                ("protocol_type", "remoting".to_string()),
                ("request_code", code_name(request, false)),
                ("response_code", code_name(response, true)),
            ];
            (labels, h)
        }),
    )?;
    let storage = || -> Labels {
        vec![
            ("storage_type", "local".to_string()),
            ("storage_medium", "disk".to_string()),
        ]
    };
    gauge(
        out,
        "rocketmq_storage_size",
        "Broker storage size, bytes used on the store's filesystem",
        s.disk
            .map(|d| (storage(), i64::try_from(d.used_bytes).unwrap_or(i64::MAX))),
    )?;
    gauge(
        out,
        "rocketmq_storage_flush_behind_bytes",
        "Broker flush behind bytes (appended, not yet flushed)",
        [(storage(), s.flush_behind_bytes())],
    )?;
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    gauge(
        out,
        "rocketmq_topic_number",
        "Active topic number",
        [(Vec::new(), count(s.topic_number))],
    )?;
    gauge(
        out,
        "rocketmq_consumer_group_number",
        "Active subscription group number",
        [(Vec::new(), count(s.consumer_group_number))],
    )?;
    gauge(
        out,
        "rocketmq_broker_permission",
        "Broker permission",
        [(Vec::new(), i64::from(s.broker_permission))],
    )
}

fn rmq_shards(out: &mut DescriptorEncoder, s: &Scrape) -> Result<(), Error> {
    let shard = |n: u32| -> Labels { vec![("shard", n.to_string())] };
    let offsets: [ShardGauge; 3] = [
        (
            "rmq_shard_append_offset",
            "Bytes appended to the shard's commit log (visible to consumers)",
            |x| x.appended,
        ),
        (
            "rmq_shard_write_offset",
            "Bytes of the shard's commit log written to the kernel (survive kill -9)",
            |x| x.written,
        ),
        (
            "rmq_shard_flush_offset",
            "Bytes of the shard's commit log flushed by fdatasync (survive power loss)",
            |x| x.flushed,
        ),
    ];
    for (name, help, value) in offsets {
        gauge(
            out,
            name,
            help,
            s.shards.iter().map(|x| (shard(x.shard), value(x))),
        )?;
    }
    gauge(
        out,
        "rmq_shard_flush_lag_bytes",
        "Bytes appended to the shard but not yet flushed",
        s.shards
            .iter()
            .map(|x| (shard(x.shard), (x.appended - x.flushed).max(0))),
    )?;
    gauge(
        out,
        "rmq_shard_replication_offset",
        "Bytes of the shard a slave confirmed (masters with a connected slave)",
        s.shards
            .iter()
            .filter_map(|x| x.replicated.map(|r| (shard(x.shard), r))),
    )?;
    gauge(
        out,
        "rmq_shard_replication_lag_bytes",
        "Bytes appended to the shard that no slave confirmed yet (masters with a slave)",
        s.shards.iter().filter_map(|x| {
            x.replicated
                .map(|r| (shard(x.shard), (x.appended - r).max(0)))
        }),
    )?;
    gauge(
        out,
        "rmq_shard_slaves",
        "Slaves streaming the shard",
        s.shards
            .iter()
            .map(|x| (shard(x.shard), i64::try_from(x.slaves).unwrap_or(0))),
    )?;
    let stats: [ShardCounter; 5] = [
        (
            "rmq_commit_log_writes",
            "Commit log writes (one per group commit)",
            |x| x.commit_log_writes,
        ),
        (
            "rmq_commit_log_write_bytes",
            "Bytes written to the commit log",
            |x| x.commit_log_write_bytes,
        ),
        (
            "rmq_commit_log_appends",
            "Records appended to the commit log",
            |x| x.appends,
        ),
        ("rmq_fdatasyncs", "fdatasync calls on the commit log", |x| {
            x.fdatasyncs
        }),
        (
            "rmq_commit_log_write_errors",
            "Failed commit log writes (retried)",
            |x| x.commit_log_write_errors,
        ),
    ];
    for (name, help, value) in stats {
        counter(
            out,
            name,
            help,
            s.shards.iter().map(|x| (shard(x.shard), value(&x.stats))),
        )?;
    }
    let group_commits: Vec<(Labels, Histogram)> = s
        .shards
        .iter()
        .map(|x| {
            let h = Histogram::from_counts(
                GROUP_COMMIT_BYTES_BUCKETS,
                &x.stats.group_commit_bytes,
                x.stats.group_commit_bytes_sum as f64,
            );
            (shard(x.shard), h)
        })
        .collect();
    histogram(
        out,
        "rmq_group_commit_bytes",
        "Bytes per group commit (one commit-log write of every pending append)",
        group_commits.iter().map(|(l, h)| (l.clone(), h)),
    )?;
    counter(
        out,
        "rmq_commit_log_write_microseconds",
        "Microseconds spent writing group commits to the commit log (I/O included)",
        s.shards
            .iter()
            .map(|x| (shard(x.shard), x.stats.write_micros_sum)),
    )?;
    counter(
        out,
        "rmq_commit_log_write_back_bytes",
        "Bytes of page-cache writes handed to the kernel's write-back ahead of the periodic flush",
        s.shards
            .iter()
            .map(|x| (shard(x.shard), x.stats.write_back_bytes)),
    )?;
    counter(
        out,
        "rmq_commit_log_page_cache_dropped_bytes",
        "Bytes of written commit log dropped from the page cache behind the write-back point (asyncFlushPageCacheBytes)",
        s.shards
            .iter()
            .map(|x| (shard(x.shard), x.stats.page_cache_dropped_bytes)),
    )?;
    let syncs: Vec<(Labels, Histogram, Histogram)> = s
        .shards
        .iter()
        .map(|x| {
            let latency = Histogram::from_counts(
                SYNC_LATENCY_MS_BUCKETS,
                &x.stats.sync_micros,
                x.stats.sync_micros_sum as f64 / 1000.0,
            );
            let acks = Histogram::from_counts(
                SYNC_ACKS_BUCKETS,
                &x.stats.sync_acks,
                x.stats.sync_acks_sum as f64,
            );
            (shard(x.shard), latency, acks)
        })
        .collect();
    histogram(
        out,
        "rmq_commit_log_sync_latency",
        "Commit log sync rounds (fdatasync of every segment written since the last), milliseconds",
        syncs.iter().map(|(l, h, _)| (l.clone(), h)),
    )?;
    histogram(
        out,
        "rmq_commit_log_sync_acks",
        "SYNC_FLUSH appends each successful commit log sync round acknowledged",
        syncs.iter().map(|(l, _, h)| (l.clone(), h)),
    )
}

fn rmq_latency_and_connections(out: &mut DescriptorEncoder, s: &Scrape) -> Result<(), Error> {
    histogram(
        out,
        "rmq_send_latency",
        "Send requests, request decoded to response ready, milliseconds",
        [(Vec::new(), &s.send_latency_ms)],
    )?;
    histogram(
        out,
        "rmq_pull_latency",
        "Pull requests including long-polling waits, milliseconds",
        [(Vec::new(), &s.pull_latency_ms)],
    )?;
    gauge(
        out,
        "rmq_connections",
        "Open remoting connections per core",
        s.connections
            .iter()
            .map(|&(core, n)| (vec![("core", core.to_string())], n)),
    )?;
    let (messages, bytes) = s.forced_cleanup_unconsumed;
    counter(
        out,
        "rmq_forced_cleanup_unconsumed_messages",
        "Messages forced cleanup (disk past diskSpaceCleanForciblyRatio) deleted before the known consumer groups consumed them",
        [(Vec::new(), messages)],
    )?;
    counter(
        out,
        "rmq_forced_cleanup_unconsumed_bytes",
        "Commit log bytes from the oldest unconsumed message forced cleanup deleted to the new first offset (an upper bound of the unconsumed bytes)",
        [(Vec::new(), bytes)],
    )?;
    if let Some(disk) = s.disk {
        gauge(
            out,
            "rmq_disk_total_bytes",
            "Size of the store's filesystem, bytes",
            [(
                Vec::new(),
                i64::try_from(disk.total_bytes).unwrap_or(i64::MAX),
            )],
        )?;
    }
    Ok(())
}

/// Parses one sample line `name{labels} value` of the text format (for tests and tools):
/// `(name, labels, value)`; `None` for comments, blank lines and malformed lines.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head.to_string(), Vec::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name.to_string(), labels, value))
}
