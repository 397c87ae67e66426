//! One scrape's view of the broker: the cores' snapshots summed, consumer lag computed from
//! committed offsets and queue ends, and the broker-wide figures (topics, groups, disk).

use std::collections::BTreeMap;

use super::collect::{CoreSnapshot, ShardSnapshot};
use super::counters::{InStats, MessageType, OutStats};
use super::histogram::{Histogram, LATENCY_MS_BUCKETS};
use crate::context::{BrokerContext, now_ms};

/// Lag of one consumer group on one topic (summed over its queues).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lag {
    /// Messages stored but not consumed (max offset − committed offset).
    pub messages: i64,
    /// Age of the oldest message not consumed, milliseconds (0 when caught up).
    pub latency_ms: i64,
    /// Messages pulled but not committed.
    pub inflight: i64,
}

/// Filesystem of the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk {
    pub total_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug)]
pub struct Scrape {
    pub cluster: String,
    pub node_id: String,
    /// `metricsLabel`: more labels on every sample.
    pub extra_labels: Vec<(String, String)>,
    pub messages_in: BTreeMap<(String, MessageType), InStats>,
    pub messages_out: BTreeMap<(String, String), OutStats>,
    /// (group, original topic) → messages sent to the dead-letter queue.
    pub dlq: BTreeMap<(String, String), u64>,
    pub rpc: BTreeMap<(i32, i32), Histogram>,
    pub send_latency_ms: Histogram,
    pub pull_latency_ms: Histogram,
    /// (core, open remoting connections).
    pub connections: Vec<(usize, i64)>,
    pub lag: BTreeMap<(String, String), Lag>,
    pub shards: Vec<ShardSnapshot>,
    pub topic_number: usize,
    pub consumer_group_number: usize,
    pub broker_permission: i32,
    pub disk: Option<Disk>,
    /// Forced cleanup deleted these before consumers read them: (messages, bytes).
    pub forced_cleanup_unconsumed: (u64, u64),
}

impl Scrape {
    pub fn build(broker: &BrokerContext, cores: Vec<CoreSnapshot>) -> Self {
        let mut scrape = Scrape {
            cluster: broker.config.broker_cluster_name.clone(),
            node_id: broker.config.broker_name.clone(),
            extra_labels: broker.config.metrics_label.0.clone(),
            messages_in: BTreeMap::new(),
            messages_out: BTreeMap::new(),
            dlq: BTreeMap::new(),
            rpc: BTreeMap::new(),
            send_latency_ms: Histogram::new(LATENCY_MS_BUCKETS),
            pull_latency_ms: Histogram::new(LATENCY_MS_BUCKETS),
            connections: Vec::new(),
            lag: BTreeMap::new(),
            shards: Vec::new(),
            topic_number: broker.topics.snapshot().len(),
            consumer_group_number: broker.groups.all().subscription_group_table.len(),
            broker_permission: broker.live_config.load().broker_permission,
            disk: disk_use(broker),
            forced_cleanup_unconsumed: (
                broker
                    .stats
                    .forced_cleanup_unconsumed_messages
                    .load(std::sync::atomic::Ordering::Relaxed),
                broker
                    .stats
                    .forced_cleanup_unconsumed_bytes
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        };
        let mut queue_lags = Vec::new();
        for core in cores {
            scrape.add_counters(core.core, core.counters);
            scrape.shards.extend(core.shards);
            queue_lags.extend(core.lags);
        }
        scrape.shards.sort_by_key(|s| s.shard);
        let now = now_ms();
        for queue in queue_lags {
            let consumed = queue.committed.max(queue.min_offset);
            let lag = scrape
                .lag
                .entry((queue.group.clone(), queue.topic.clone()))
                .or_default();
            lag.messages += (queue.max_offset - consumed).max(0);
            if let Some(stored) = queue.next_store_ms {
                lag.latency_ms = lag.latency_ms.max((now - stored).max(0));
            }
            let pulled = scrape
                .messages_out
                .get(&(queue.group.clone(), queue.topic.clone()))
                .and_then(|out| out.pulled_to.get(&queue.queue_id).copied());
            if let Some(pulled) = pulled {
                lag.inflight += (pulled.min(queue.max_offset) - consumed).max(0);
            }
        }
        scrape
    }

    fn add_counters(&mut self, core: usize, counters: super::counters::CoreCounters) {
        for (topic, by_type) in counters.messages_in {
            for (kind, stats) in by_type {
                let mine = self.messages_in.entry((topic.clone(), kind)).or_default();
                mine.messages += stats.messages;
                mine.bytes += stats.bytes;
                mine.sizes.merge(&stats.sizes);
            }
        }
        for (group, by_topic) in counters.messages_out {
            for (topic, stats) in by_topic {
                let mine = self.messages_out.entry((group.clone(), topic)).or_default();
                mine.messages += stats.messages;
                mine.bytes += stats.bytes;
                for (queue, pulled) in stats.pulled_to {
                    let slot = mine.pulled_to.entry(queue).or_insert(pulled);
                    *slot = (*slot).max(pulled);
                }
            }
        }
        for (group, by_topic) in counters.dlq {
            for (topic, count) in by_topic {
                *self.dlq.entry((group.clone(), topic)).or_default() += count;
            }
        }
        for (key, stats) in counters.rpc {
            match self.rpc.get_mut(&key) {
                Some(mine) => mine.merge(&stats.latency_ms),
                None => {
                    self.rpc.insert(key, stats.latency_ms);
                }
            }
        }
        self.send_latency_ms.merge(&counters.send_latency_ms);
        self.pull_latency_ms.merge(&counters.pull_latency_ms);
        self.connections.push((core, counters.connections));
    }

    /// Bytes appended but not yet flushed, over every shard.
    pub fn flush_behind_bytes(&self) -> i64 {
        self.shards
            .iter()
            .map(|s| (s.appended - s.flushed).max(0))
            .sum()
    }
}

fn disk_use(broker: &BrokerContext) -> Option<Disk> {
    use rmq_storage::disk_space::{FreeSpace, Statvfs};
    let usage = Statvfs
        .usage(std::path::Path::new(&broker.config.store_path_root_dir))
        .ok()?;
    Some(Disk {
        total_bytes: usage.total_bytes,
        used_bytes: usage.total_bytes.saturating_sub(usage.available_bytes),
    })
}
