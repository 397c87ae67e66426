//! Retention: deleting old commit log segments, and with them the consume queue entries and
//! index files that point into them (RocketMQ's CleanCommitLogService / CleanConsumeQueueService).
//!
//! Policy (decided by [`plan_cleanup`], a pure function the broker calls on a timer):
//! - files older than `fileReservedTime` hours are deleted when the hour of the day is one of
//!   `deleteWhen`'s, or at any hour when disk use passes `diskMaxUsedSpaceRatio`;
//! - past `diskSpaceCleanForciblyRatio` (85%) and with `cleanFileForciblyEnable`, the oldest
//!   files go whatever their age.
//!
//! Contract of [`ShardStore::delete_expired_files`]: segments are deleted oldest first, at
//! most `max_files` per call, never the segment holding the written offset or any later one
//! (the tail, the prepared next segment); it stops at the first segment that is not expired
//! unless forced. Afterwards every consume queue's min offset points at its first entry whose
//! record still exists (pulls below it get OFFSET_TOO_SMALL, i.e. PULL_OFFSET_MOVED), and
//! index files entirely below the new first offset are deleted. A segment's age is the
//! modification time of its file (the last write), as in RocketMQ.
//!
//! Forced deletion does not look at consumers (RocketMQ's trade-off: the disk must not fill
//! up), so it can delete acknowledged messages no consumer has read yet. Before a forced
//! round the broker asks [`ShardStore::unconsumed_loss`] what the round would take that its
//! known consumers have not consumed, and warns and counts it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;
use crate::shard_store::ShardStore;

/// RocketMQ `diskSpaceWarningLevelRatio`: at or above, sends are refused.
pub const DISK_WARNING_RATIO: f64 = 0.90;
/// RocketMQ `diskSpaceCleanForciblyRatio`: at or above, files go whatever their age.
pub const DISK_CLEAN_FORCIBLY_RATIO: f64 = 0.85;
/// RocketMQ `DELETE_FILES_BATCH_MAX`: segments deleted per shard per round.
pub const DELETE_FILES_BATCH_MAX: usize = 10;

/// What one cleanup round may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    pub now_ms: i64,
    /// Age after which a segment is expired (`fileReservedTime` hours).
    pub reserved_ms: i64,
    /// Delete the oldest segments even when not expired (disk nearly full).
    pub force: bool,
    pub max_files: usize,
}

/// Inputs of one cleanup decision.
#[derive(Debug, Clone)]
pub struct CleanupInputs<'a> {
    pub now_ms: i64,
    /// The local hour of the day (0-23).
    pub hour: u8,
    /// `deleteWhen` hours.
    pub delete_hours: &'a [u8],
    /// Used fraction of the commit log's filesystem (0.0..=1.0).
    pub disk_used_ratio: f64,
    /// `diskMaxUsedSpaceRatio` as a fraction.
    pub max_used_ratio: f64,
    pub file_reserved_hours: i64,
    pub clean_forcibly_enable: bool,
}

/// The round to run now, `None` when nothing should be deleted.
pub fn plan_cleanup(inputs: &CleanupInputs<'_>) -> Option<ExpiryPolicy> {
    let time_up = inputs.delete_hours.contains(&inputs.hour);
    let space_full = inputs.disk_used_ratio > inputs.max_used_ratio;
    let force = inputs.clean_forcibly_enable && inputs.disk_used_ratio >= DISK_CLEAN_FORCIBLY_RATIO;
    if !(time_up || space_full || force) {
        return None;
    }
    Some(ExpiryPolicy {
        now_ms: inputs.now_ms,
        reserved_ms: inputs.file_reserved_hours.max(0).saturating_mul(3_600_000),
        force,
        max_files: DELETE_FILES_BATCH_MAX,
    })
}

/// What a cleanup round deleted in one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    pub segments: usize,
    pub queue_entries: i64,
    pub index_files: usize,
}

/// Messages of one queue a forced round deletes although not consumed: queue offsets
/// `from..to` (`to` is the queue's new min offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLoss {
    pub topic: String,
    pub queue_id: i32,
    pub from: i64,
    pub to: i64,
}

/// What a forced round would delete in one shard that consumers have not consumed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnconsumedLoss {
    /// Segments the round deletes.
    pub segments: usize,
    /// Commit log bytes the round deletes.
    pub bytes: i64,
    /// Messages deleted before any known consumer consumed them (sum over `queues`).
    pub messages: i64,
    /// Commit log bytes from the oldest such message to the shard's new first offset: the
    /// unconsumed data going, an upper bound when consumed records of other queues lie in
    /// between (exact sizes would mean reading every entry of up to ten segments).
    pub unconsumed_bytes: i64,
    pub queues: Vec<QueueLoss>,
}

impl ShardStore {
    /// What [`Self::delete_expired_files`] with a forced `policy` deletes that consumers
    /// have not consumed, without deleting anything. `consumed_to(topic, queue_id)` is the
    /// queue offset below which every known consumer has consumed (`None`: the queue is not
    /// watched, e.g. a system topic). Call it on the shard's core just before the round.
    pub async fn unconsumed_loss(
        &self,
        policy: &ExpiryPolicy,
        consumed_to: &dyn Fn(&str, i32) -> Option<i64>,
    ) -> Result<UnconsumedLoss, StoreError> {
        let protected_from = self.log.segment_start(self.log.written());
        let starts: Vec<i64> = self
            .log
            .segments
            .borrow()
            .keys()
            .copied()
            .take(policy.max_files + 1)
            .collect();
        let doomed = starts
            .iter()
            .take(policy.max_files)
            .take_while(|&&start| start < protected_from)
            .count();
        let mut loss = UnconsumedLoss {
            segments: doomed,
            ..UnconsumedLoss::default()
        };
        if doomed == 0 {
            return Ok(loss);
        }
        let new_min = starts.get(doomed).copied().unwrap_or(protected_from);
        loss.bytes = new_min - starts[0];
        let mut oldest_unconsumed = new_min;
        for queue in self.all_queues() {
            let Some(consumed) = consumed_to(&queue.topic, queue.queue_id) else {
                continue;
            };
            let from = consumed.max(queue.min_offset());
            let to = queue.first_kept(new_min).await?;
            if from >= to {
                continue;
            }
            let first = queue.entry(from).await?;
            if first.is_message() {
                oldest_unconsumed = oldest_unconsumed.min(first.offset);
            }
            loss.messages += to - from;
            loss.queues.push(QueueLoss {
                topic: queue.topic.clone(),
                queue_id: queue.queue_id,
                from,
                to,
            });
        }
        loss.unconsumed_bytes = new_min - oldest_unconsumed.max(starts[0]);
        assert!(loss.unconsumed_bytes >= 0 && loss.unconsumed_bytes <= loss.bytes);
        Ok(loss)
    }

    /// The first commit log offset this shard still holds.
    pub fn min_physical_offset(&self) -> i64 {
        let segments = self.log.segments.borrow();
        segments
            .first_key_value()
            .map_or(self.log.appended(), |(&start, _)| start)
    }

    /// Deletes expired segments and what points into them; see the module docs.
    pub async fn delete_expired_files(&self, policy: &ExpiryPolicy) -> Result<Deleted, StoreError> {
        let mut deleted = Deleted::default();
        let protected_from = self.log.segment_start(self.log.written());
        while deleted.segments < policy.max_files {
            let oldest = self
                .log
                .segments
                .borrow()
                .first_key_value()
                .map(|(_, s)| s.clone());
            let Some(segment) = oldest.filter(|s| s.start < protected_from) else {
                break;
            };
            if !policy.force && !expired(&segment.path, policy).await? {
                break;
            }
            self.log.segments.borrow_mut().remove(&segment.start);
            self.log.unsynced.borrow_mut().remove(&segment.start);
            compio::fs::remove_file(&segment.path)
                .await
                .map_err(|e| StoreError::io("remove", &segment.path, 0, e))?;
            tracing::info!(path = ?segment.path, force = policy.force, "deleted commit log segment");
            deleted.segments += 1;
        }
        if deleted.segments == 0 {
            return Ok(deleted);
        }
        let log_min = self.min_physical_offset();
        let queues = self.all_queues();
        for queue in queues {
            deleted.queue_entries += queue.drop_below(log_min).await?;
        }
        deleted.index_files = self.index.delete_below(log_min).await?;
        Ok(deleted)
    }
}

async fn expired(path: &std::path::Path, policy: &ExpiryPolicy) -> Result<bool, StoreError> {
    let metadata = compio::fs::metadata(path)
        .await
        .map_err(|e| StoreError::io("stat", path, 0, e))?;
    let modified = metadata
        .modified()
        .map_err(|e| StoreError::io("stat", path, 0, e))?;
    let modified_ms = modified
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64;
    Ok(policy.now_ms - modified_ms >= policy.reserved_ms)
}

/// Milliseconds since the epoch (for callers building an [`ExpiryPolicy`]).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(hour: u8, ratio: f64) -> CleanupInputs<'static> {
        CleanupInputs {
            now_ms: 1_000,
            hour,
            delete_hours: &[4, 16],
            disk_used_ratio: ratio,
            max_used_ratio: 0.75,
            file_reserved_hours: 72,
            clean_forcibly_enable: true,
        }
    }

    #[test]
    fn deletes_at_the_hour_or_when_space_runs_out() {
        assert_eq!(plan_cleanup(&inputs(3, 0.10)), None);
        let at_four = plan_cleanup(&inputs(4, 0.10)).unwrap();
        assert!(!at_four.force);
        assert_eq!(at_four.reserved_ms, 72 * 3_600_000);
        assert!(plan_cleanup(&inputs(16, 0.10)).is_some());
        let full = plan_cleanup(&inputs(3, 0.80)).unwrap();
        assert!(
            !full.force,
            "above diskMaxUsedSpaceRatio only expired files go"
        );
        assert!(plan_cleanup(&inputs(3, 0.86)).unwrap().force);
        let mut no_force = inputs(3, 0.86);
        no_force.clean_forcibly_enable = false;
        assert!(!plan_cleanup(&no_force).unwrap().force);
    }
}
