//! Gathering a scrape: every core answers with a copy of its counters and the state of
//! the shards it owns; the scraper merges them with the broker-wide registries.
//!
//! The scraper (the HTTP thread, `http`) sends a [`SnapshotRequest`] to each core over an
//! unbounded channel; a small task on each core (`serve_snapshots`) answers on a std
//! channel. Reading a shard's offsets and the store time of a consumer's next message
//! happens on the shard's own core, as every other shard access does.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::StreamExt;
use rmq_storage::{GetStatus, ShardStats, ShardStore};

use super::counters::{self, CoreCounters};
use crate::context::BrokerContext;
use crate::core_context::CoreContext;

/// A committed consumer offset, as the scrape asks about it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub offset: i64,
}

/// One shard, offsets relative to its base (bytes since the shard's first byte).
#[derive(Debug, Clone)]
pub struct ShardSnapshot {
    pub shard: u32,
    pub appended: i64,
    pub written: i64,
    pub flushed: i64,
    pub stats: ShardStats,
    /// Slaves streaming this shard (masters only).
    pub slaves: usize,
    /// What the slaves confirmed (masters with a slave only).
    pub replicated: Option<i64>,
}

/// A committed offset with its queue's state.
#[derive(Debug, Clone)]
pub struct QueueLag {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub committed: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    /// Store time of the first message not yet consumed (None when caught up).
    pub next_store_ms: Option<i64>,
}

/// What one core reports.
#[derive(Debug, Clone)]
pub struct CoreSnapshot {
    pub core: usize,
    pub counters: CoreCounters,
    pub shards: Vec<ShardSnapshot>,
    pub lags: Vec<QueueLag>,
}

pub struct SnapshotRequest {
    committed: Arc<Vec<Committed>>,
    reply: std::sync::mpsc::Sender<CoreSnapshot>,
}

/// The scrape's ends of every core's snapshot channel (broker-wide).
#[derive(Default)]
pub struct MetricsHub {
    cores: Mutex<HashMap<usize, mpsc::UnboundedSender<SnapshotRequest>>>,
}

/// A core did not answer in time, or has stopped.
#[derive(Debug, thiserror::Error)]
#[error("core {0} did not report its metrics")]
pub struct CoreSilent(pub usize);

/// How long a scrape waits for the cores.
const CORE_PATIENCE: Duration = Duration::from_secs(3);

impl MetricsHub {
    /// Asks every core for its snapshot and waits for all of them (blocking: call it from
    /// the HTTP thread, never from a core).
    pub fn gather(&self, broker: &BrokerContext) -> Result<Vec<CoreSnapshot>, CoreSilent> {
        let committed = Arc::new(committed_offsets(broker));
        let (reply, answers) = std::sync::mpsc::channel();
        let cores: Vec<usize> = {
            let senders = self.cores.lock().expect("metrics hub lock");
            let mut asked = Vec::new();
            for (&core, sender) in senders.iter() {
                let request = SnapshotRequest {
                    committed: committed.clone(),
                    reply: reply.clone(),
                };
                if sender.unbounded_send(request).is_err() {
                    return Err(CoreSilent(core));
                }
                asked.push(core);
            }
            asked
        };
        drop(reply);
        let deadline = std::time::Instant::now() + CORE_PATIENCE;
        let mut snapshots = Vec::with_capacity(cores.len());
        while snapshots.len() < cores.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match answers.recv_timeout(left) {
                Ok(snapshot) => snapshots.push(snapshot),
                Err(_) => {
                    let missing = cores
                        .iter()
                        .find(|c| !snapshots.iter().any(|s: &CoreSnapshot| s.core == **c));
                    return Err(CoreSilent(missing.copied().unwrap_or(0)));
                }
            }
        }
        snapshots.sort_by_key(|s| s.core);
        Ok(snapshots)
    }
}

/// Every committed consumer offset of the broker.
fn committed_offsets(broker: &BrokerContext) -> Vec<Committed> {
    let table = broker.offsets.wrapper().offset_table;
    let mut all = Vec::new();
    for (key, queues) in table {
        let Some((topic, group)) = key.split_once(crate::offsets::TOPIC_GROUP_SEPARATOR) else {
            continue;
        };
        for (queue_id, offset) in queues {
            all.push(Committed {
                group: group.to_string(),
                topic: topic.to_string(),
                queue_id,
                offset,
            });
        }
    }
    all
}

/// Starts counting on this core and answering scrapes (only with the endpoint on).
pub fn start_core(core: &Rc<CoreContext>) {
    if !super::exporter_on(&core.broker.config) {
        return;
    }
    counters::install();
    let (sender, receiver) = mpsc::unbounded();
    core.broker
        .metrics
        .cores
        .lock()
        .expect("metrics hub lock")
        .insert(core.core, sender);
    rmq_net::rt::spawn(serve_snapshots(core.clone(), receiver)).detach();
}

async fn serve_snapshots(
    core: Rc<CoreContext>,
    mut requests: mpsc::UnboundedReceiver<SnapshotRequest>,
) {
    while let Some(request) = requests.next().await {
        let snapshot = snapshot(&core, &request.committed).await;
        let _ = request.reply.send(snapshot);
    }
}

async fn snapshot(core: &CoreContext, committed: &[Committed]) -> CoreSnapshot {
    let mut shards: Vec<ShardSnapshot> = core
        .shards
        .values()
        .map(|s| shard_snapshot(core, s))
        .collect();
    shards.sort_by_key(|s| s.shard);
    let mut lags = Vec::new();
    for entry in committed {
        let shard = core.broker.shard_of_queue(&entry.topic, entry.queue_id);
        if let Some(store) = core.shards.get(&shard) {
            lags.push(queue_lag(store, entry).await);
        }
    }
    CoreSnapshot {
        core: core.core,
        counters: counters::snapshot().unwrap_or_default(),
        shards,
        lags,
    }
}

fn shard_snapshot(core: &CoreContext, store: &ShardStore) -> ShardSnapshot {
    let base = rmq_storage::shard_base(store.shard());
    let replica = &core.owned(store.shard()).replica;
    let slaves = replica.slaves();
    ShardSnapshot {
        shard: store.shard(),
        appended: store.max_physical_offset() - base,
        written: store.written_offset() - base,
        flushed: store.flushed_offset() - base,
        stats: store.stats(),
        slaves,
        replicated: (slaves > 0).then(|| (replica.slave_offset() - base).max(0)),
    }
}

async fn queue_lag(store: &ShardStore, entry: &Committed) -> QueueLag {
    let min_offset = store.min_queue_offset(&entry.topic, entry.queue_id);
    let max_offset = store.max_queue_offset(&entry.topic, entry.queue_id);
    let next = entry.offset.max(min_offset);
    let next_store_ms = if next < max_offset {
        next_store_time(store, &entry.topic, entry.queue_id, next).await
    } else {
        None
    };
    QueueLag {
        group: entry.group.clone(),
        topic: entry.topic.clone(),
        queue_id: entry.queue_id,
        committed: entry.offset,
        min_offset,
        max_offset,
        next_store_ms,
    }
}

/// Store time of the message at `offset` of a queue.
async fn next_store_time(
    store: &ShardStore,
    topic: &str,
    queue_id: i32,
    offset: i64,
) -> Option<i64> {
    let got = store
        .get_messages(topic, queue_id, offset, 1, &|_| true)
        .await
        .ok()?;
    if got.status != GetStatus::Found {
        return None;
    }
    rmq_core::message::parse_record(&got.body)
        .ok()
        .map(|record| record.store_timestamp())
}
