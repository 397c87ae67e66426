//! Consumer offsets: `topic@group` → queue id → next offset to consume, committed by
//! pulls and UPDATE_CONSUMER_OFFSET, persisted to `config/consumerOffset.json` every
//! `flushConsumerOffsetInterval` and at shutdown.
//!
//! Contract: an offset a consumer committed before a clean shutdown is the one it gets
//! back after restart. After a crash, at most the commits of the last interval are lost,
//! so those messages are delivered again (RocketMQ's at-least-once).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rmq_core::body::ConsumerOffsetSerializeWrapper;

/// Separator between topic and group in the table key.
pub const TOPIC_GROUP_SEPARATOR: &str = "@";

pub struct OffsetManager {
    table: Mutex<HashMap<String, BTreeMap<i32, i64>>>,
    dirty: AtomicBool,
    /// Counts changes since start (a slave fetches the table only when it moved).
    changes: AtomicU64,
    path: PathBuf,
}

fn key(topic: &str, group: &str) -> String {
    format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}")
}

impl OffsetManager {
    /// # Errors
    /// The file exists but neither it nor its backup can be read (never starts empty).
    pub fn load(path: PathBuf) -> Result<Self, crate::json_file::LoadError> {
        let file: ConsumerOffsetSerializeWrapper = crate::json_file::load_or_default(&path)?;
        Ok(Self {
            table: Mutex::new(file.offset_table),
            dirty: AtomicBool::new(false),
            changes: AtomicU64::new(0),
            path,
        })
    }

    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let mut table = self.table.lock().expect("offset lock");
        let previous = table
            .entry(key(topic, group))
            .or_default()
            .insert(queue_id, offset);
        if previous != Some(offset) {
            self.changes.fetch_add(1, Ordering::Release);
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// How many commits changed an offset since start (moves with every change).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    pub fn query(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        let table = self.table.lock().expect("offset lock");
        table.get(&key(topic, group))?.get(&queue_id).copied()
    }

    /// Forgets every offset of `topic` (topic deleted).
    pub fn remove_topic(&self, topic: &str) {
        let prefix = format!("{topic}{TOPIC_GROUP_SEPARATOR}");
        let mut table = self.table.lock().expect("offset lock");
        table.retain(|k, _| !k.starts_with(&prefix));
        self.changes.fetch_add(1, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
    }

    /// Groups with a committed offset for `topic`.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let prefix = format!("{topic}{TOPIC_GROUP_SEPARATOR}");
        let table = self.table.lock().expect("offset lock");
        table
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    pub fn wrapper(&self) -> ConsumerOffsetSerializeWrapper {
        ConsumerOffsetSerializeWrapper {
            offset_table: self.table.lock().expect("offset lock").clone(),
        }
    }

    /// Writes the table if anything changed since the last persist.
    pub fn persist(&self) {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let wrapper = self.wrapper();
        if let Err(error) = crate::json_file::store(&self.path, &wrapper) {
            self.dirty.store(true, Ordering::Release);
            tracing::error!(path = %self.path.display(), "cannot persist consumer offsets: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consumerOffset.json");
        let offsets = OffsetManager::load(path.clone()).unwrap();
        offsets.commit("g1", "T1", 0, 42);
        offsets.commit("g1", "T1", 3, 7);
        offsets.commit("g2", "T2", 1, 9);
        offsets.persist();
        let again = OffsetManager::load(path).unwrap();
        assert_eq!(again.query("g1", "T1", 0), Some(42));
        assert_eq!(again.query("g1", "T1", 3), Some(7));
        assert_eq!(again.query("g1", "T1", 1), None);
        again.remove_topic("T1");
        assert_eq!(again.query("g1", "T1", 0), None);
        assert_eq!(again.query("g2", "T2", 1), Some(9));
    }
}
