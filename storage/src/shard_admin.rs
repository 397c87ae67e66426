//! Store maintenance and inspection asked for by operators (mqadmin): reading raw consume
//! queue entries (QUERY_CONSUME_QUEUE), dropping consume queue entries whose records the
//! commit log no longer holds (CLEAN_EXPIRED_CONSUMEQUEUE) and dropping the consume queues
//! of topics the broker no longer knows (CLEAN_UNUSED_TOPIC).
//!
//! Contract: nothing here touches the commit log; a queue entry is only dropped when the
//! record it points at is gone, and a topic's queues only when the caller says the topic is
//! unused.

use crate::error::StoreError;
use crate::shard_store::ShardStore;

/// One consume queue entry as stored: where the record is, its size and its tags hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEntry {
    pub physical_offset: i64,
    pub size: i32,
    pub tags_code: i64,
}

/// Entries of one queue read from an index, with the queue's bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueEntries {
    pub min_offset: i64,
    pub max_offset: i64,
    /// Empty when `index` is outside `[min_offset, max_offset)`.
    pub entries: Vec<QueueEntry>,
}

impl ShardStore {
    /// Up to `count` entries of `topic`/`queue_id` from queue offset `index`; `None` when
    /// this shard has no such queue.
    pub async fn queue_entries(
        &self,
        topic: &str,
        queue_id: i32,
        index: i64,
        count: usize,
    ) -> Result<Option<QueueEntries>, StoreError> {
        let Some(queue) = self.queue(topic, queue_id) else {
            return Ok(None);
        };
        let (min_offset, max_offset) = (queue.min_offset(), queue.max_offset());
        let mut entries = Vec::new();
        let mut next = index;
        while next >= queue.min_offset() && next < queue.max_offset() && entries.len() < count {
            let read = queue.entries(next, count - entries.len()).await?;
            if read.is_empty() {
                break;
            }
            next += read.len() as i64;
            entries.extend(read.into_iter().map(|entry| QueueEntry {
                physical_offset: entry.offset,
                size: entry.size,
                tags_code: entry.tags_code,
            }));
        }
        Ok(Some(QueueEntries {
            min_offset,
            max_offset,
            entries,
        }))
    }

    /// Moves every consume queue's min offset past the entries whose records are below the
    /// commit log's first byte (and deletes queue files holding only such entries). Returns
    /// the number of entries dropped.
    pub async fn clean_expired_queues(&self) -> Result<i64, StoreError> {
        let log_min = self.min_physical_offset();
        let mut dropped = 0;
        for queue in self.all_queues() {
            dropped += queue.drop_below(log_min).await?;
        }
        Ok(dropped)
    }

    /// Deletes the consume queues of every topic for which `unused` is true (their records
    /// stay in the commit log until retention). Returns the topics deleted, sorted.
    pub fn clean_unused_topics(
        &self,
        unused: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut topics: Vec<String> = self
            .queues()
            .into_iter()
            .map(|(topic, _)| topic)
            .filter(|topic| unused(topic))
            .collect();
        topics.dedup();
        for topic in &topics {
            self.delete_topic(topic)?;
        }
        Ok(topics)
    }
}
