//! The read side of a [`ShardStore`]: pulls, lookups by physical offset and by time.
//!
//! Reads never block appends: recent data is copied from the commit log tail in memory,
//! older data is read with block-aligned direct reads (one 64 KiB read-ahead window per call,
//! so neighbouring messages cost one I/O). A pull is bounded by `max_transfer_count`,
//! `max_transfer_bytes` (at least one message is always returned) and [`MAX_FILTER_SCAN`]
//! inspected entries.

use bytes::{Bytes, BytesMut};
use rmq_core::message::parse_record;

use crate::commit_log::DiskWindow;
use crate::consume_queue::Entry;
use crate::error::StoreError;
use crate::shard_store::{GetMessages, GetStatus, ShardStore};

/// Consume queue entries a single pull may inspect while its filter rejects them.
pub const MAX_FILTER_SCAN: usize = 16_000;

/// Entries fetched from a consume queue per step.
const ENTRY_BATCH: usize = 64;

impl ShardStore {
    /// Reads up to `max_count` records from queue offset `offset` whose tags code passes
    /// `filter`; rejected entries count as consumed (`next_begin_offset` moves past them).
    /// Statuses and `next_begin_offset` follow RocketMQ's `DefaultMessageStore.getMessage`.
    pub async fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        filter: &dyn Fn(i64) -> bool,
    ) -> Result<GetMessages, StoreError> {
        let Some(queue) = self.queue(topic, queue_id) else {
            return Ok(empty(GetStatus::NoMessageInQueue, 0, 0, 0));
        };
        let (min, max) = (queue.min_offset(), queue.max_offset());
        if max == 0 {
            return Ok(empty(GetStatus::NoMessageInQueue, 0, min, max));
        }
        if offset < min {
            return Ok(empty(GetStatus::OffsetTooSmall, min, min, max));
        }
        if offset == max {
            return Ok(empty(GetStatus::OffsetOverflowOne, offset, min, max));
        }
        if offset > max {
            let next = if min == 0 { min } else { max };
            return Ok(empty(GetStatus::OffsetOverflowBadly, next, min, max));
        }
        let max_count = max_count.clamp(1, self.cfg.max_transfer_count);
        let mut pull = Pull {
            body: BytesMut::new(),
            count: 0,
            next: offset,
            found_null: false,
            window: None,
        };
        let mut inspected = 0usize;
        'entries: while pull.next < max && pull.count < max_count && inspected < MAX_FILTER_SCAN {
            let entries = queue.entries(pull.next, ENTRY_BATCH).await?;
            assert!(!entries.is_empty());
            for entry in entries {
                if pull.count >= max_count || inspected >= MAX_FILTER_SCAN {
                    break 'entries;
                }
                inspected += 1;
                if !entry.is_message() || !filter(entry.tags_code) {
                    pull.next += 1;
                    continue;
                }
                if pull.count > 0
                    && pull.body.len() + entry.size as usize > self.cfg.max_transfer_bytes
                {
                    break 'entries;
                }
                self.read_entry(&entry, &mut pull).await?;
                pull.next += 1;
            }
        }
        let status = match (pull.count, pull.found_null) {
            (0, true) => GetStatus::OffsetFoundNull,
            (0, false) => GetStatus::NoMatchedMessage,
            _ => GetStatus::Found,
        };
        Ok(GetMessages {
            status,
            next_begin_offset: pull.next,
            min_offset: min,
            max_offset: max,
            body: pull.body.freeze(),
            count: pull.count,
        })
    }

    async fn read_entry(&self, entry: &Entry, pull: &mut Pull) -> Result<(), StoreError> {
        if !self.entry_readable(entry) {
            tracing::warn!(
                ?entry,
                shard = self.shard,
                "consume queue entry points outside the log"
            );
            pull.found_null = true;
            return Ok(());
        }
        let before = pull.body.len();
        self.log
            .read_into(
                entry.offset,
                entry.size as usize,
                &mut pull.window,
                &mut pull.body,
            )
            .await?;
        let total = i32::from_be_bytes(pull.body[before..before + 4].try_into().expect("4 bytes"));
        if total != entry.size {
            tracing::warn!(
                ?entry,
                total,
                "record size differs from its consume queue entry"
            );
            pull.body.truncate(before);
            pull.found_null = true;
            return Ok(());
        }
        pull.count += 1;
        Ok(())
    }

    fn entry_readable(&self, entry: &Entry) -> bool {
        let first = self
            .log
            .segments
            .borrow()
            .first_key_value()
            .map(|(&s, _)| s);
        entry.size >= 8
            && crate::shard_of_offset(entry.offset) == self.shard
            && first.is_some_and(|first| entry.offset >= first)
            && entry.end() <= self.log.appended()
            && entry.end() <= self.log.segment_start(entry.offset) + self.log.file_size as i64
    }

    /// One record by its commit log offset; `None` when the offset is not the start of a
    /// valid record of this shard.
    pub async fn read_record(&self, physical_offset: i64) -> Result<Option<Bytes>, StoreError> {
        if physical_offset < 0 || crate::shard_of_offset(physical_offset) != self.shard {
            return Ok(None);
        }
        let header = Entry {
            offset: physical_offset,
            size: 8,
            tags_code: 0,
        };
        if !self.entry_readable(&header) {
            return Ok(None);
        }
        let mut window = None;
        let mut bytes = BytesMut::new();
        self.log
            .read_into(physical_offset, 8, &mut window, &mut bytes)
            .await?;
        let size = i32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
        let whole = Entry { size, ..header };
        if size < 8 || !self.entry_readable(&whole) {
            return Ok(None);
        }
        bytes.clear();
        self.log
            .read_into(physical_offset, size as usize, &mut window, &mut bytes)
            .await?;
        match parse_record(&bytes) {
            Ok(record) if record.physical_offset() == physical_offset => Ok(Some(bytes.freeze())),
            _ => Ok(None),
        }
    }

    /// Store timestamp of the record behind a consume queue entry.
    async fn entry_store_timestamp(&self, entry: &Entry) -> Result<Option<i64>, StoreError> {
        if !entry.is_message() || !self.entry_readable(entry) {
            return Ok(None);
        }
        let mut bytes = BytesMut::new();
        self.log
            .read_into(entry.offset, entry.size as usize, &mut None, &mut bytes)
            .await?;
        Ok(parse_record(&bytes).ok().map(|r| r.store_timestamp()))
    }

    /// The first queue offset whose record was stored at or after `timestamp` (binary search
    /// over the consume queue, reading store timestamps from the log); the max offset when
    /// every record is older, the min offset for an empty queue.
    pub async fn search_offset_by_timestamp(
        &self,
        topic: &str,
        queue_id: i32,
        timestamp: i64,
    ) -> Result<i64, StoreError> {
        let Some(queue) = self.queue(topic, queue_id) else {
            return Ok(0);
        };
        let (mut low, mut high) = (queue.min_offset(), queue.max_offset());
        while low < high {
            let middle = low + (high - low) / 2;
            let entry = queue.entry(middle).await?;
            let stored = self
                .entry_store_timestamp(&entry)
                .await?
                .unwrap_or(i64::MIN);
            if stored >= timestamp {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Ok(low)
    }

    /// Store timestamp of the queue's first message, `None` for an empty queue.
    pub async fn earliest_message_time(
        &self,
        topic: &str,
        queue_id: i32,
    ) -> Result<Option<i64>, StoreError> {
        let Some(queue) = self.queue(topic, queue_id) else {
            return Ok(None);
        };
        if queue.min_offset() >= queue.max_offset() {
            return Ok(None);
        }
        let entry = queue.entry(queue.min_offset()).await?;
        self.entry_store_timestamp(&entry).await
    }
}

struct Pull {
    body: BytesMut,
    count: usize,
    next: i64,
    found_null: bool,
    window: Option<DiskWindow>,
}

fn empty(status: GetStatus, next: i64, min: i64, max: i64) -> GetMessages {
    GetMessages {
        status,
        next_begin_offset: next,
        min_offset: min,
        max_offset: max,
        body: Bytes::new(),
        count: 0,
    }
}
