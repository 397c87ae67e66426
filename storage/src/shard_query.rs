//! QUERY_MESSAGE on one shard: records of a topic by key (UNIQ_KEY or one of KEYS) in a
//! store-time window, found through the shard's index.
//!
//! Contract: every returned record was re-read from the commit log and checked: it starts at
//! the offset the index named (PHYSICALOFFSET field), its body CRC matches, its topic is the
//! asked topic, its key set contains the key and its store time lies in the window. Index
//! entries that fail any check (stale after a crash, a hash collision) are skipped, and each
//! offset is returned at most once, so neither garbage nor duplicates reach the client.

use bytes::Bytes;
use rmq_core::message::parse_record;

use crate::error::StoreError;
use crate::index_service::record_keys;
use crate::shard_store::ShardStore;

/// One shard's answer to a key query.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// Whole records, newest first.
    pub records: Vec<Bytes>,
    /// `endTimestamp` of the shard's newest index file.
    pub index_last_update_timestamp: i64,
    /// `endPhyOffset` of the shard's newest index file.
    pub index_last_update_phy_offset: i64,
}

impl ShardStore {
    /// Up to `max` records of `topic` with `key` stored in `[begin_ms, end_ms]`.
    pub async fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<QueryResult, StoreError> {
        let (timestamp, phy_offset) = self.index.last_update();
        let mut result = QueryResult {
            records: Vec::new(),
            index_last_update_timestamp: timestamp,
            index_last_update_phy_offset: phy_offset,
        };
        if max == 0 || key.is_empty() {
            return Ok(result);
        }
        // Ask for more hints than needed: some may be collisions or stale.
        let mut hints =
            self.index
                .lookup(topic, key, max.saturating_mul(4).max(64), begin_ms, end_ms);
        let mut seen = std::collections::HashSet::new();
        hints.retain(|offset| seen.insert(*offset));
        let min_offset = self.min_physical_offset();
        for offset in hints {
            if result.records.len() >= max {
                break;
            }
            if offset < min_offset {
                continue;
            }
            let Some(bytes) = self.read_record(offset).await? else {
                continue;
            };
            if record_matches(&bytes, topic, key, begin_ms, end_ms) {
                result.records.push(bytes);
            }
        }
        Ok(result)
    }
}

fn record_matches(bytes: &[u8], topic: &str, key: &str, begin_ms: i64, end_ms: i64) -> bool {
    let Ok(record) = parse_record(bytes) else {
        return false;
    };
    record.crc_ok()
        && record.topic() == topic
        && (begin_ms..=end_ms).contains(&record.store_timestamp())
        && record_keys(record.properties()).any(|k| k == key)
}

impl ShardStore {
    /// Index files this shard holds (tests, retention reports).
    pub fn index_file_count(&self) -> usize {
        self.index.file_count()
    }
}
