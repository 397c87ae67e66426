//! Scanner progress: the next offset of every fixed-delay queue, shared by all cores.
//!
//! `config/delayOffset.json` holds delay level → offset in `SCHEDULE_TOPIC_XXXX` queue level-1
//! (RocketMQ's file, served by GET_ALL_DELAY_OFFSET); `config/timerOffset.json` holds timer
//! bucket → offset in the timer topic, same format. Written every `flushDelayOffsetInterval` and
//! at shutdown; a crash loses at most one interval of progress, whose messages are re-delivered.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rmq_core::body::DelayOffsetSerializeWrapper;

/// Which family of fixed-delay queue an offset belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFamily {
    /// `SCHEDULE_TOPIC_XXXX`, keyed by delay level (queue id + 1).
    Level,
    /// The timer topic, keyed by bucket (queue id).
    Timer,
}

struct Table {
    offsets: Mutex<BTreeMap<i32, i64>>,
    dirty: AtomicBool,
    path: PathBuf,
}

impl Table {
    fn load(path: PathBuf) -> Result<Self, crate::json_file::LoadError> {
        let file: DelayOffsetSerializeWrapper = crate::json_file::load_or_default(&path)?;
        Ok(Self {
            offsets: Mutex::new(file.offset_table),
            dirty: AtomicBool::new(false),
            path,
        })
    }

    fn wrapper(&self) -> DelayOffsetSerializeWrapper {
        DelayOffsetSerializeWrapper {
            offset_table: self.offsets.lock().expect("delay offsets lock").clone(),
        }
    }

    fn persist(&self) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Err(error) = crate::json_file::store(&self.path, &self.wrapper()) {
            self.dirty.store(true, Ordering::Release);
            tracing::error!(path = %self.path.display(), "cannot persist delay offsets: {error}");
        }
    }
}

/// Offsets of every fixed-delay queue plus the parsed delay levels.
pub struct ScheduleProgress {
    levels: Table,
    timers: Table,
    /// Records skipped because they can never be delivered (see `scanner`).
    undeliverable: AtomicU64,
    /// Counts moves of a delay-level offset since start (a slave fetches them only when it
    /// moved).
    level_changes: AtomicU64,
    /// `messageDelayLevel` in ms; level n is entry n-1.
    pub delay_levels_ms: Vec<u64>,
}

impl ScheduleProgress {
    /// # Errors
    /// A progress file exists but neither it nor its backup can be read.
    pub fn load(
        config_dir: &std::path::Path,
        delay_levels_ms: Vec<u64>,
    ) -> Result<Self, crate::json_file::LoadError> {
        Ok(Self {
            levels: Table::load(config_dir.join("delayOffset.json"))?,
            timers: Table::load(config_dir.join("timerOffset.json"))?,
            undeliverable: AtomicU64::new(0),
            level_changes: AtomicU64::new(0),
            delay_levels_ms,
        })
    }

    fn table(&self, family: QueueFamily) -> &Table {
        match family {
            QueueFamily::Level => &self.levels,
            QueueFamily::Timer => &self.timers,
        }
    }

    fn key(family: QueueFamily, queue_id: i32) -> i32 {
        match family {
            QueueFamily::Level => queue_id + 1,
            QueueFamily::Timer => queue_id,
        }
    }

    /// The next offset to deliver from a queue (0 when never scanned).
    pub fn get(&self, family: QueueFamily, queue_id: i32) -> i64 {
        let table = self.table(family);
        let offsets = table.offsets.lock().expect("delay offsets lock");
        offsets
            .get(&Self::key(family, queue_id))
            .copied()
            .unwrap_or(0)
    }

    /// Records that everything before `offset` was delivered. Offsets only move forward.
    pub fn advance(&self, family: QueueFamily, queue_id: i32, offset: i64) {
        let table = self.table(family);
        let mut offsets = table.offsets.lock().expect("delay offsets lock");
        let slot = offsets.entry(Self::key(family, queue_id)).or_insert(0);
        if offset > *slot {
            *slot = offset;
            table.dirty.store(true, Ordering::Release);
            if family == QueueFamily::Level {
                self.level_changes.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// How often a delay-level offset moved since start (GET_ALL_DELAY_OFFSET's version).
    pub fn level_changes(&self) -> u64 {
        self.level_changes.load(Ordering::Acquire)
    }

    /// Counts a delayed or timer record skipped because it can never be delivered.
    pub fn count_undeliverable(&self) {
        self.undeliverable.fetch_add(1, Ordering::Relaxed);
    }

    /// Delayed and timer records skipped since start because they can never be delivered.
    pub fn undeliverable(&self) -> u64 {
        self.undeliverable.load(Ordering::Relaxed)
    }

    /// The GET_ALL_DELAY_OFFSET body (delay levels only, as RocketMQ).
    pub fn delay_wrapper(&self) -> DelayOffsetSerializeWrapper {
        self.levels.wrapper()
    }

    /// Writes both files if they changed.
    pub fn persist(&self) {
        self.levels.persist();
        self.timers.persist();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_reload_and_only_advance() {
        let dir = tempfile::tempdir().unwrap();
        let progress = ScheduleProgress::load(dir.path(), vec![1000]).unwrap();
        progress.advance(QueueFamily::Level, 0, 5);
        progress.advance(QueueFamily::Level, 0, 3);
        progress.advance(QueueFamily::Timer, 4, 9);
        progress.persist();
        let again = ScheduleProgress::load(dir.path(), vec![1000]).unwrap();
        assert_eq!(again.get(QueueFamily::Level, 0), 5);
        assert_eq!(again.get(QueueFamily::Timer, 4), 9);
        assert_eq!(again.get(QueueFamily::Timer, 0), 0);
        assert_eq!(again.delay_wrapper().offset_table.get(&1), Some(&5));
    }
}
