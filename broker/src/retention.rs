//! The broker's store housekeeping loop (runs on core 0): watches the disk holding the
//! commit log and deletes expired files on every shard.
//!
//! - Every `min(cleanResourceInterval, 1 s)` it reads the filesystem's usage and updates the
//!   store's [`DiskGuard`]: at or above 90% sends are refused (SERVICE_NOT_AVAILABLE, "disk
//!   is full", checked in `send::check_broker_accepts_sends`) until use drops again; reads
//!   are never refused.
//! - Every `cleanResourceInterval` (and at once when the disk is nearly full) it asks
//!   [`plan_cleanup`] whether to delete (the `deleteWhen` hour, `diskMaxUsedSpaceRatio`,
//!   `cleanFileForciblyEnable` at 85%) and runs the round on each shard's owner core.
//! - A forced round (85%, `cleanFileForciblyEnable`) deletes the oldest segments whatever
//!   their age, as RocketMQ does, even when they hold messages consumers have not read yet.
//!   Before it deletes, each shard measures what it would take that the known consumer
//!   groups have not consumed ([`ConsumedOffsets`]); when that is not nothing the round logs
//!   a warn naming the messages and bytes and the broker counts them
//!   (`rmq_forced_cleanup_unconsumed_{messages,bytes}_total`, runtime info
//!   `forcedCleanupUnconsumedMessages` / `forcedCleanupUnconsumedBytes`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rmq_storage::disk_space::{DiskGuard, FreeSpace, disk_guard};
use rmq_storage::retention::{
    CleanupInputs, DISK_CLEAN_FORCIBLY_RATIO, Deleted, ExpiryPolicy, UnconsumedLoss, plan_cleanup,
};

use crate::context::now_ms;
use crate::core_context::CoreContext;

/// Runs until the broker stops.
pub async fn retention_loop(core: Rc<CoreContext>, reader: Arc<dyn FreeSpace>) {
    let config = &core.broker.config;
    let dir: PathBuf = config.store_path_commit_log();
    let guard = disk_guard(&dir);
    let clean_every =
        Duration::from_millis(config.clean_resource_interval.clamp(100, 60_000) as u64);
    let check_every = clean_every.min(Duration::from_secs(1));
    let delete_hours = config.delete_when_hours().unwrap_or_else(|_| vec![4]);
    let mut last_clean = Instant::now();
    while !core.broker.stopping.load(Ordering::Acquire) {
        rmq_net::rt::sleep(check_every).await;
        let ratio = match read_usage(&*reader, &dir, &guard) {
            Some(ratio) => ratio,
            None => continue,
        };
        if last_clean.elapsed() < clean_every && ratio < DISK_CLEAN_FORCIBLY_RATIO {
            continue;
        }
        last_clean = Instant::now();
        if let Some(policy) = plan_for(config, ratio, local_hour(), &delete_hours) {
            clean_all_shards(&core, policy, ratio).await;
        }
    }
}

/// The round [`plan_cleanup`] asks for at disk use `ratio` under the broker's config.
fn plan_for(
    config: &rmq_core::config::BrokerConfig,
    ratio: f64,
    hour: u8,
    delete_hours: &[u8],
) -> Option<ExpiryPolicy> {
    plan_cleanup(&CleanupInputs {
        now_ms: now_ms(),
        hour,
        delete_hours,
        disk_used_ratio: ratio,
        max_used_ratio: f64::from(config.disk_max_used_space_ratio) / 100.0,
        file_reserved_hours: i64::from(config.file_reserved_time),
        clean_forcibly_enable: config.clean_file_forcibly_enable,
    })
}

fn read_usage(reader: &dyn FreeSpace, dir: &std::path::Path, guard: &DiskGuard) -> Option<f64> {
    match reader.usage(dir) {
        Ok(usage) => Some(guard.update(usage)),
        Err(error) => {
            tracing::warn!(?dir, %error, "cannot read disk usage");
            None
        }
    }
}

/// Queue offsets below which every known consumer group has consumed, from the committed
/// offsets. A group is known on a topic when it committed an offset on any of its queues;
/// on a queue where one of them has no offset, nothing counts as consumed, and so for a
/// topic no group consumes. System topics (schedule, transaction, timer, ...) are the
/// broker's own bookkeeping and are not watched.
#[derive(Debug, Default)]
pub struct ConsumedOffsets {
    /// topic → groups with a committed offset on it.
    groups: HashMap<String, usize>,
    /// (topic, queue id) → (groups with an offset on the queue, their smallest offset).
    queues: HashMap<(String, i32), (usize, i64)>,
}

impl ConsumedOffsets {
    /// From the offset table (`topic@group` → queue id → next offset to consume).
    pub fn from_table(table: &HashMap<String, BTreeMap<i32, i64>>) -> Self {
        let mut consumed = ConsumedOffsets::default();
        for (key, queues) in table {
            let Some((topic, _group)) = key.split_once(crate::offsets::TOPIC_GROUP_SEPARATOR)
            else {
                continue;
            };
            *consumed.groups.entry(topic.to_string()).or_default() += 1;
            for (&queue_id, &offset) in queues {
                let slot = consumed
                    .queues
                    .entry((topic.to_string(), queue_id))
                    .or_insert((0, offset));
                slot.0 += 1;
                slot.1 = slot.1.min(offset);
            }
        }
        consumed
    }

    /// The queue offset below which all known groups consumed; `None` when not watched.
    pub fn consumed_to(&self, topic: &str, queue_id: i32) -> Option<i64> {
        if crate::topics::is_system_topic(topic) {
            return None;
        }
        let groups = self.groups.get(topic).copied().unwrap_or(0);
        match self.queues.get(&(topic.to_string(), queue_id)) {
            Some(&(with_offset, min)) if with_offset == groups => Some(min.max(0)),
            _ => Some(0),
        }
    }
}

/// What one cleanup round did on every shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundOutcome {
    pub deleted: Deleted,
    /// Unconsumed messages and bytes a forced round deleted (zero when not forced).
    pub unconsumed_messages: i64,
    pub unconsumed_bytes: i64,
}

/// Runs one round on every shard (`ratio`: the disk use that triggered it, for the log).
pub async fn clean_all_shards(
    core: &CoreContext,
    policy: ExpiryPolicy,
    ratio: f64,
) -> RoundOutcome {
    let consumed = policy.force.then(|| {
        let table = core.broker.offsets.wrapper().offset_table;
        Arc::new(ConsumedOffsets::from_table(&table))
    });
    let mut outcome = RoundOutcome::default();
    for shard in 0..core.broker.shard_count {
        let consumed = consumed.clone();
        let result = core
            .on_shard(shard, move |store| async move {
                let loss = match &consumed {
                    Some(consumed) => {
                        let consumed_to =
                            |topic: &str, queue: i32| consumed.consumed_to(topic, queue);
                        let loss = store.unconsumed_loss(&policy, &consumed_to).await?;
                        warn_unconsumed(shard, ratio, &loss);
                        loss
                    }
                    None => UnconsumedLoss::default(),
                };
                let deleted = store.delete_expired_files(&policy).await?;
                Ok::<_, rmq_storage::StoreError>((loss, deleted))
            })
            .await;
        match result {
            Ok(Ok((loss, deleted))) => {
                if deleted.segments > 0 {
                    tracing::info!(shard, ?deleted, "expired store files deleted");
                }
                // The preview covers the segments the round was allowed to take; count it
                // only for a round that took them all.
                if deleted.segments >= loss.segments && loss.messages > 0 {
                    count_unconsumed(core, &loss);
                    outcome.unconsumed_messages += loss.messages;
                    outcome.unconsumed_bytes += loss.unconsumed_bytes;
                }
                outcome.deleted.segments += deleted.segments;
                outcome.deleted.queue_entries += deleted.queue_entries;
                outcome.deleted.index_files += deleted.index_files;
            }
            Ok(Err(error)) => tracing::error!(shard, %error, "deleting expired files failed"),
            Err(error) => tracing::warn!(shard, %error, "retention round skipped"),
        }
    }
    outcome
}

/// The operator's warning before a forced round deletes unconsumed messages.
fn warn_unconsumed(shard: u32, ratio: f64, loss: &UnconsumedLoss) {
    if loss.messages == 0 {
        return;
    }
    let mut queues: Vec<_> = loss.queues.iter().collect();
    queues.sort_by_key(|q| std::cmp::Reverse(q.to - q.from));
    let worst: Vec<String> = queues
        .iter()
        .take(5)
        .map(|q| format!("{}:{} offsets {}..{}", q.topic, q.queue_id, q.from, q.to))
        .collect();
    tracing::warn!(
        shard,
        disk_used_percent = format!("{:.1}", ratio * 100.0),
        messages = loss.messages,
        bytes = loss.unconsumed_bytes,
        queues = loss.queues.len(),
        "disk past diskSpaceCleanForciblyRatio: forced cleanup deletes {} messages ({} bytes of \
         commit log) that known consumer groups have not consumed yet; largest: {}",
        loss.messages,
        loss.unconsumed_bytes,
        worst.join(", ")
    );
}

fn count_unconsumed(core: &CoreContext, loss: &UnconsumedLoss) {
    let stats = &core.broker.stats;
    let messages = u64::try_from(loss.messages).unwrap_or(0);
    let bytes = u64::try_from(loss.unconsumed_bytes).unwrap_or(0);
    stats
        .forced_cleanup_unconsumed_messages
        .fetch_add(messages, Ordering::Relaxed);
    stats
        .forced_cleanup_unconsumed_bytes
        .fetch_add(bytes, Ordering::Relaxed);
}

/// The local hour of the day (deleteWhen is local time, as in RocketMQ).
fn local_hour() -> u8 {
    let now = nix::libc::time_t::try_from(now_ms() / 1000).unwrap_or(0);
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are valid; localtime_r only
    // writes into it and reads `now`.
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { nix::libc::localtime_r(&now, &mut tm) };
    if converted.is_null() {
        return 0;
    }
    u8::try_from(tm.tm_hour.clamp(0, 23)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, run};
    use rmq_core::remoting::{RemotingCommand, request_code};
    use rmq_storage::Durability;
    use rmq_storage::disk_space::DiskUsage;
    use std::sync::Mutex;

    /// A disk whose fullness the test sets (the FreeSpace seam).
    #[derive(Debug)]
    struct FakeDisk(Mutex<f64>);

    impl FreeSpace for FakeDisk {
        fn usage(&self, _path: &std::path::Path) -> std::io::Result<DiskUsage> {
            let used = *self.0.lock().unwrap();
            Ok(DiskUsage {
                total_bytes: 1_000_000,
                available_bytes: ((1.0 - used) * 1_000_000.0) as u64,
            })
        }
    }

    async fn fill(h: &Harness, topic: &str, count: usize) {
        let mut end = 0;
        for _ in 0..count {
            let mut record = rmq_test_support::record::encode(topic, 0, &[b'x'; 2000], "", 0);
            end = h
                .store()
                .append(topic, 0, &mut record, 0, now_ms())
                .unwrap()
                .end_offset;
        }
        h.store()
            .wait_durable(end, Durability::Written)
            .await
            .unwrap();
    }

    async fn runtime_info(h: &Harness, key: &str) -> i64 {
        let response = h
            .call(RemotingCommand::new_request(
                request_code::GET_BROKER_RUNTIME_INFO,
            ))
            .await;
        let body: serde_json::Value =
            rmq_core::remoting::lenient_json::from_slice_lenient(&response.body).unwrap();
        body["table"][key].as_str().unwrap().parse().unwrap()
    }

    /// A sample of the metrics endpoint's text.
    fn metric(h: &Harness, name: &str) -> f64 {
        let scrape = crate::metrics::scrape::Scrape::build(h.ctx(), Vec::new());
        let text = crate::metrics::exposition::render(scrape).unwrap();
        text.lines()
            .filter_map(crate::metrics::exposition::parse_sample)
            .find(|(sample, _, _)| sample == name)
            .map(|(_, _, value)| value)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    #[test]
    fn forced_cleanup_warns_and_counts_unconsumed_messages() {
        run(async {
            let h = Harness::with_config(&[
                ("mapedFileSizeCommitLog", "65536"),
                ("maxMessageSize", "8192"),
            ])
            .await;
            fill(&h, "Orders", 200).await; // ~400 KiB: 7 segments of 64 KiB
            // A group consumed the first 5 messages; another group has no offset here.
            h.ctx().offsets.commit("reader", "Orders", 0, 5);
            let disk = FakeDisk(Mutex::new(0.80));
            let dir = h.ctx().config.store_path_commit_log();
            let guard = disk_guard(&dir);
            let config = &h.ctx().config;
            let ratio = read_usage(&disk, &dir, &guard).unwrap();
            let expired_only = plan_for(config, ratio, 12, &[4]).unwrap();
            assert!(!expired_only.force);
            let outcome = clean_all_shards(h.core(), expired_only, ratio).await;
            assert_eq!(outcome, RoundOutcome::default(), "nothing is 72 h old");

            *disk.0.lock().unwrap() = 0.86;
            let ratio = read_usage(&disk, &dir, &guard).unwrap();
            let forced = plan_for(config, ratio, 12, &[4]).unwrap();
            assert!(forced.force, "RocketMQ's default: forced at 85%");
            let outcome = clean_all_shards(h.core(), forced, ratio).await;
            let new_min = h.store().min_queue_offset("Orders", 0);
            assert!(outcome.deleted.segments > 0 && new_min > 5, "{outcome:?}");
            assert_eq!(outcome.unconsumed_messages, new_min - 5);
            assert!(
                outcome.unconsumed_bytes >= (new_min - 5) * 2000,
                "{outcome:?}"
            );
            assert_eq!(
                runtime_info(&h, "forcedCleanupUnconsumedMessages").await,
                new_min - 5
            );
            assert_eq!(
                runtime_info(&h, "forcedCleanupUnconsumedBytes").await,
                outcome.unconsumed_bytes
            );
            assert_eq!(
                metric(&h, "rmq_forced_cleanup_unconsumed_messages_total"),
                (new_min - 5) as f64
            );
            assert_eq!(
                metric(&h, "rmq_forced_cleanup_unconsumed_bytes_total"),
                outcome.unconsumed_bytes as f64
            );

            // Consumed past what the next round deletes: nothing more is counted.
            fill(&h, "Orders", 200).await;
            h.ctx().offsets.commit("reader", "Orders", 0, 400);
            let outcome = clean_all_shards(h.core(), forced, ratio).await;
            assert!(outcome.deleted.segments > 0, "{outcome:?}");
            assert_eq!(
                (outcome.unconsumed_messages, outcome.unconsumed_bytes),
                (0, 0)
            );
            assert_eq!(
                runtime_info(&h, "forcedCleanupUnconsumedMessages").await,
                new_min - 5
            );
        });
    }

    #[test]
    fn consumed_offsets_take_the_slowest_known_group() {
        let table = HashMap::from([
            ("T@a".to_string(), BTreeMap::from([(0, 10), (1, 4)])),
            ("T@b".to_string(), BTreeMap::from([(0, 7)])),
            (
                "SCHEDULE_TOPIC_XXXX@c".to_string(),
                BTreeMap::from([(0, 1)]),
            ),
        ]);
        let consumed = ConsumedOffsets::from_table(&table);
        assert_eq!(consumed.consumed_to("T", 0), Some(7));
        assert_eq!(
            consumed.consumed_to("T", 1),
            Some(0),
            "b has not consumed queue 1"
        );
        assert_eq!(
            consumed.consumed_to("Unread", 0),
            Some(0),
            "no group: unconsumed"
        );
        assert_eq!(consumed.consumed_to("SCHEDULE_TOPIC_XXXX", 0), None);
    }
}
