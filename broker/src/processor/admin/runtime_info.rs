//! GET_BROKER_RUNTIME_INFO (28): the keys of RocketMQ 4.9.8's `prepareRuntimeInfo` (the
//! store's `getRuntimeInfo` and StoreStatsService's, then the broker's), with our numbers.
//!
//! Where our design differs the value says what is true of rmq-fast:
//! - the commit log is split into shards; `commitLogMaxOffset`/`MinOffset` are the bytes
//!   written to / first still held by all shards together (with one shard exactly
//!   RocketMQ's offsets, since shard 0 starts at 0), so master minus slave is the
//!   replication lag in bytes. `commitLogMaxOffsetShards` lists each shard's own offset.
//! - there are no thread-pool queues (a request runs on the core that read it as soon as
//!   it is decoded): the queue sizes and head wait times are 0, the capacities are the
//!   configured ones.
//! - no page-cache lock and no dispatch thread: `pageCacheLockTimeMills`,
//!   `dispatchBehindBytes` and `dispatchMaxBuffer` are 0 (consume queues are written in
//!   the append itself).

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use rmq_core::body::{KVTable, encode_body};
use rmq_core::message::parse_record;
use rmq_core::remoting::RemotingCommand;
use rmq_storage::disk_space::{FreeSpace, Statvfs};

use super::super::{Processed, busy, success};
use crate::context::now_ms;
use crate::core_context::CoreContext;
use crate::stats::counters::{CoreStats, PUT_TIME_BOUNDS_MS, PUT_TIME_BUCKET_NAMES};
use crate::stats::history::Totals;
use crate::topics::SCHEDULE_TOPIC;

/// What one shard reports.
#[derive(Debug, Clone, Copy, Default)]
struct ShardOffsets {
    /// Offsets relative to the shard's base (bytes of this shard).
    min: i64,
    max: i64,
    flushed: i64,
    absolute_max: i64,
    /// Store time of the shard's first record (0: none).
    earliest_ms: i64,
}

async fn shard_offsets(core: &Rc<CoreContext>, shard: u32) -> Result<ShardOffsets, ()> {
    core.on_shard(shard, move |store| async move {
        let base = rmq_storage::shard_base(shard);
        let min = store.min_physical_offset();
        let max = store.max_physical_offset();
        let earliest_ms = match store.read_record(min).await {
            Ok(Some(bytes)) => parse_record(&bytes)
                .map(|r| r.store_timestamp())
                .unwrap_or(0),
            _ => 0,
        };
        ShardOffsets {
            min: min - base,
            max: max - base,
            flushed: store.flushed_offset() - base,
            absolute_max: max,
            earliest_ms,
        }
    })
    .await
    .map_err(|_| ())
}

pub async fn process(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    let mut shards = Vec::with_capacity(broker.shard_count as usize);
    for shard in 0..broker.shard_count {
        let offsets = shard_offsets(core, shard)
            .await
            .map_err(|()| busy(req, &crate::core_context::ShardBusy { shard }))?;
        shards.push(offsets);
    }
    let mut schedule = Vec::new();
    for (level, delivered) in broker.schedule.delay_wrapper().offset_table {
        let queue_id = level - 1;
        let shard = broker.shard_of_queue(SCHEDULE_TOPIC, queue_id);
        let max = core
            .on_shard(shard, move |store| async move {
                store.max_queue_offset(SCHEDULE_TOPIC, queue_id)
            })
            .await
            .map_err(|error| busy(req, &error))?;
        schedule.push((level, delivered, max));
    }
    let stats = broker.stats_hub.gather(core.core).await;
    let table = build(core, &stats, &shards, &schedule);
    Ok(success(req).with_body(encode_body(&KVTable { table })))
}

fn build(
    core: &CoreContext,
    stats: &CoreStats,
    shards: &[ShardOffsets],
    schedule: &[(i32, i64, i64)],
) -> HashMap<String, String> {
    let broker = &core.broker;
    let config = broker.live_config.load();
    let now = now_ms();
    let mut table = HashMap::new();
    let mut put = |key: &str, value: String| {
        table.insert(key.to_string(), value);
    };
    // StoreStatsService
    put("bootTimestamp", broker.started_at_ms.to_string());
    put("runtime", format_runtime(now - broker.started_at_ms));
    put("putMessageEntireTimeMax", stats.put_time_max_ms.to_string());
    let put_times = stats.put_times.max(1);
    put("putMessageTimesTotal", put_times.to_string());
    put("putMessageFailedTimes", stats.put_failures.to_string());
    put("putMessageSizeTotal", stats.put_bytes.to_string());
    put(
        "putMessageDistributeTime",
        distribute_time(&stats.put_time_buckets),
    );
    put(
        "putMessageAverageSize",
        java_double(stats.put_bytes as f64 / put_times as f64),
    );
    put("dispatchMaxBuffer", "0".to_string());
    put("getMessageEntireTimeMax", "0".to_string());
    let live = Totals::of(stats, now);
    let rates: Vec<[f64; 4]> = [10, 60, 600]
        .iter()
        .map(|&seconds| broker.stats_history.rates(&live, seconds))
        .collect();
    let rate_text = |pick: &dyn Fn(&[f64; 4]) -> f64| {
        rates
            .iter()
            .map(|r| java_double(pick(r)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    put("putTps", rate_text(&|r| r[0]));
    put("getFoundTps", rate_text(&|r| r[1]));
    put("getMissTps", rate_text(&|r| r[2]));
    put("getTotalTps", rate_text(&|r| r[1] + r[2]));
    put("getTransferedTps", rate_text(&|r| r[3]));
    put(
        "putLatency99",
        format!("{:.2}", latency_quantile(&stats.put_time_buckets, 0.99)),
    );
    put(
        "putLatency999",
        format!("{:.2}", latency_quantile(&stats.put_time_buckets, 0.999)),
    );
    // DefaultMessageStore
    let commit_log_dir = config.store_path_commit_log();
    let log_ratio = used_ratio(&commit_log_dir);
    put(
        &format!("commitLogDiskRatio_{}", commit_log_dir.display()),
        java_double(log_ratio),
    );
    put("commitLogDiskRatio", java_double(log_ratio));
    put(
        "consumeQueueDiskRatio",
        java_double(used_ratio(&config.store_path_consume_queue())),
    );
    for (level, delivered, max) in schedule {
        put(
            &format!("scheduleMessageOffset_{level}"),
            format!("{delivered},{max}"),
        );
    }
    let min: i64 = shards.iter().map(|s| s.min).sum();
    let max: i64 = shards.iter().map(|s| s.max).sum();
    put("commitLogMinOffset", min.to_string());
    put("commitLogMaxOffset", max.to_string());
    let per_shard: Vec<String> = shards.iter().map(|s| s.absolute_max.to_string()).collect();
    put("commitLogMaxOffsetShards", per_shard.join(","));
    // AdminBrokerProcessor
    put("brokerVersionDesc", "V4_9_8".to_string());
    put(
        "brokerVersion",
        rmq_core::remoting::command::VERSION_V4_9_8.to_string(),
    );
    let marks = broker.stats_history.day_marks();
    put(
        "msgPutTotalYesterdayMorning",
        marks.put_yesterday_morning.to_string(),
    );
    put(
        "msgPutTotalTodayMorning",
        marks.put_today_morning.to_string(),
    );
    put("msgPutTotalTodayNow", stats.put_messages.to_string());
    put(
        "msgGetTotalYesterdayMorning",
        marks.get_yesterday_morning.to_string(),
    );
    put(
        "msgGetTotalTodayMorning",
        marks.get_today_morning.to_string(),
    );
    put("msgGetTotalTodayNow", stats.get_transferred.to_string());
    for (size_key, capacity_key, capacity) in [
        (
            "sendThreadPoolQueueSize",
            "sendThreadPoolQueueCapacity",
            10_000,
        ),
        (
            "pullThreadPoolQueueSize",
            "pullThreadPoolQueueCapacity",
            100_000,
        ),
        (
            "queryThreadPoolQueueSize",
            "queryThreadPoolQueueCapacity",
            20_000,
        ),
        (
            "EndTransactionQueueSize",
            "EndTransactionThreadPoolQueueCapacity",
            100_000,
        ),
    ] {
        put(size_key, "0".to_string());
        put(capacity_key, capacity.to_string());
    }
    put("dispatchBehindBytes", "0".to_string());
    put("pageCacheLockTimeMills", "0".to_string());
    put("sendThreadPoolQueueHeadWaitTimeMills", "0".to_string());
    put("pullThreadPoolQueueHeadWaitTimeMills", "0".to_string());
    put("queryThreadPoolQueueHeadWaitTimeMills", "0".to_string());
    let earliest = shards
        .iter()
        .map(|s| s.earliest_ms)
        .filter(|&ms| ms > 0)
        .min()
        .unwrap_or(-1);
    put("earliestMessageTimeStamp", earliest.to_string());
    put("startAcceptSendRequestTimeStamp", "0".to_string());
    put("remainTransientStoreBufferNumbs", i32::MAX.to_string());
    let unflushed: i64 = shards.iter().map(|s| (s.max - s.flushed).max(0)).sum();
    put(
        "remainHowManyDataToFlush",
        human_readable_bytes(unflushed as u64),
    );
    if let Ok(usage) = Statvfs.usage(Path::new(&config.store_path_root_dir)) {
        put(
            "commitLogDirCapacity",
            format!(
                "Total : {}, Free : {}.",
                human_readable_bytes(usage.total_bytes),
                human_readable_bytes(usage.available_bytes)
            ),
        );
    }
    // rmq-fast's own
    put("brokerRole", broker.role.snapshot().role.to_string());
    put("shardCount", broker.shard_count.to_string());
    put(
        "scheduleUndeliverable",
        broker.schedule.undeliverable().to_string(),
    );
    // Forced cleanup (disk past 85%) deleted these before consumers read them (retention).
    let forced = &broker.stats;
    put(
        "forcedCleanupUnconsumedMessages",
        forced
            .forced_cleanup_unconsumed_messages
            .load(Ordering::Relaxed)
            .to_string(),
    );
    put(
        "forcedCleanupUnconsumedBytes",
        forced
            .forced_cleanup_unconsumed_bytes
            .load(Ordering::Relaxed)
            .to_string(),
    );
    table
}

/// Used fraction of the filesystem holding `path` (-1 when it cannot be read, as RocketMQ).
fn used_ratio(path: &Path) -> f64 {
    Statvfs.usage(path).map_or(-1.0, |usage| usage.used_ratio())
}

/// StoreStatsService's `getFormatRuntime`.
fn format_runtime(millis: i64) -> String {
    let seconds = millis.max(0) / 1000;
    format!(
        "[ {} days, {} hours, {} minutes, {} seconds ]",
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// `[<=0ms]:5 [0~10ms]:2 ... ` as StoreStatsService prints it (trailing space included).
fn distribute_time(buckets: &[u64; 13]) -> String {
    PUT_TIME_BUCKET_NAMES
        .iter()
        .zip(buckets)
        .map(|(name, count)| format!("{name}:{count} "))
        .collect()
}

/// The upper bound (ms) of the bucket holding the `quantile` of sends (0 when none).
fn latency_quantile(buckets: &[u64; 13], quantile: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = (total as f64 * quantile).ceil() as u64;
    let mut passed = 0;
    for (index, count) in buckets.iter().enumerate() {
        passed += count;
        if passed >= rank {
            return PUT_TIME_BOUNDS_MS
                .get(index)
                .map_or(PUT_TIME_BOUNDS_MS[11] as f64, |&b| b as f64);
        }
    }
    PUT_TIME_BOUNDS_MS[11] as f64
}

/// A double as Java's `String.valueOf(double)` prints ordinary values (`12.0`, `0.5`).
fn java_double(value: f64) -> String {
    if !value.is_finite() {
        return "0.0".to_string();
    }
    format!("{value:?}")
}

/// MixAll.humanReadableByteCount(bytes, false): `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn human_readable_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1024f64.ln()).floor() as i32;
    let exp = exp.clamp(1, 6);
    let unit = "KMGTPE".as_bytes()[(exp - 1) as usize] as char;
    format!("{:.1} {unit}iB", bytes as f64 / 1024f64.powi(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_rocketmq() {
        assert_eq!(human_readable_bytes(512), "512 B");
        assert_eq!(human_readable_bytes(1536), "1.5 KiB");
        assert_eq!(human_readable_bytes(2 << 30), "2.0 GiB");
        assert_eq!(
            format_runtime(90_061_000),
            "[ 1 days, 1 hours, 1 minutes, 1 seconds ]"
        );
        assert_eq!(java_double(12.0), "12.0");
        assert_eq!(java_double(f64::NAN), "0.0");
        let mut buckets = [0u64; 13];
        buckets[0] = 98;
        buckets[2] = 2;
        assert!(distribute_time(&buckets).starts_with("[<=0ms]:98 [0~10ms]:0 [10~50ms]:2 "));
        assert_eq!(latency_quantile(&buckets, 0.99), 50.0);
        assert_eq!(latency_quantile(&[0; 13], 0.99), 0.0);
    }
}
