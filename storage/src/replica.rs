//! Replication support of a [`ShardStore`] (RocketMQ's HA, see rmq-ha): the master reads raw
//! commit log bytes for its slaves; a slave appends them at the same physical offsets and derives
//! its consume queues and index from them, the way recovery re-dispatches records.
//!
//! Contract:
//! - The master ships **appended** bytes ([`ShardStore::read_replication_chunk`] stops at
//!   `max_physical_offset`), so replication runs in parallel with the master's own disk write
//!   instead of after it. A `kill -9` of the master can therefore lose bytes a slave already
//!   holds; none of them was acknowledged (every ack needs the master's `Written` level), and
//!   the slave drops them when it reconnects (it is then *ahead* of the master).
//! - A chunk never spans a segment end. Bytes after a BLANK filler up to the segment end are
//!   zeros; the master ships them as they are and the slave skips them.
//! - [`ShardStore::append_replicated`] takes bytes starting at the slave's
//!   `max_physical_offset` (or inside the zero fill after a filler it already applied),
//!   applies every complete record and filler, and returns how many input bytes it consumed;
//!   an incomplete trailing record is left to the caller, who retries with more bytes.
//! - A slave takes no ordinary appends (the broker refuses sends on slaves), otherwise its
//!   offsets would diverge from the master's; the offset checks below catch that.
//! - A slave ahead of its master (its log holds bytes past the master's written offset, e.g.
//!   after the master lost an unwritten tail) cuts its log back to that offset with
//!   [`ShardStore::truncate_replica`] (`replica_truncate.rs`: log, consume queues, checkpoint,
//!   index; crash-safe) while its stream is stopped, then resumes from there.
//! - An EMPTY slave whose master no longer holds the start of the shard (retention) makes its
//!   log begin at the start of the master's newest segment with
//!   [`ShardStore::reset_empty_replica`] (`replica_truncate.rs`); the consume queues then start
//!   at the queue offsets of the first replicated records (`new_replica_queue`).
//! - The first replicated record of a queue the slave does not have yet calls the observer set
//!   with [`ShardStore::observe_new_replica_queues`], synchronously inside
//!   `append_replicated`, so before the slave writes (and reports) the record: the broker
//!   creates the topic config there, and a topic is readable on the slave as soon as any of
//!   its records is acknowledged.

use std::time::Duration;

use bytes::BytesMut;
use rmq_core::message::{RecordError, RecordView, parse_record};

use crate::consume_queue::{ConsumeQueue, Entry};
use crate::error::StoreError;
use crate::shard_store::{ShardStore, is_dispatched};

/// See [`ShardStore::observe_new_replica_queues`].
pub type NewQueueObserver = std::rc::Rc<dyn Fn(&str, i32)>;

impl ShardStore {
    /// Calls `observer(topic, queue_id)` for every queue a replicated record creates on this
    /// store (not for queues recovered from disk), before `append_replicated` returns.
    pub fn observe_new_replica_queues(&self, observer: impl Fn(&str, i32) + 'static) {
        *self.new_queue_observer.borrow_mut() = Some(std::rc::Rc::new(observer));
    }

    /// First offset the log still holds (start of its oldest segment).
    pub fn oldest_offset(&self) -> i64 {
        let segments = self.log.segments.borrow();
        segments
            .first_key_value()
            .map_or(self.log.appended(), |(&start, _)| start)
    }

    /// Commit log segment size (the master and its slaves must agree on it).
    pub fn segment_size(&self) -> u64 {
        self.log.file_size
    }

    /// Start of the segment holding `offset`.
    pub fn segment_start_of(&self, offset: i64) -> i64 {
        self.log.segment_start(offset)
    }

    /// End of the log when this store was opened (after recovery): a master that crashed
    /// may have written other bytes than before from there on.
    pub fn opened_end(&self) -> i64 {
        self.opened_end
    }

    /// CRC32 of the log bytes `[from, to)` (appended bytes, read from memory or disk; both ends
    /// in one segment). The replication handshake compares a slave's tail with its master's.
    ///
    /// # Errors
    /// `Config` when the range is not inside `[oldest_offset, max_physical_offset]` and one
    /// segment; `Io` when the disk read fails.
    pub async fn log_checksum(&self, from: i64, to: i64) -> Result<u32, StoreError> {
        if from == to {
            return Ok(crc32fast::hash(&[]));
        }
        let appended = self.log.appended();
        let in_one_segment = self.log.segment_start(from) == self.log.segment_start(to - 1);
        if from < self.oldest_offset() || from > to || to > appended || !in_one_segment {
            return Err(StoreError::Config(format!(
                "checksum range [{from}, {to}) outside [{}, {appended}] or one segment of \
                 shard {}",
                self.oldest_offset(),
                self.shard
            )));
        }
        let mut bytes = BytesMut::with_capacity((to - from) as usize);
        self.log
            .read_into(from, (to - from) as usize, &mut None, &mut bytes)
            .await?;
        Ok(crc32fast::hash(&bytes))
    }

    /// Resolves true once `max_physical_offset() > offset`, false after `timeout`. Appends
    /// release such waiters; the send path pays one emptiness check when nobody waits.
    pub async fn wait_appended_past(&self, offset: i64, timeout: Duration) -> bool {
        if self.log.appended() > offset {
            return true;
        }
        let receiver = self.log.appended_waiters.register(offset + 1);
        let _ = compio::time::timeout(timeout, receiver).await;
        self.log.appended() > offset
    }

    /// Appends the bytes `[from, ..)` to `out`: at most `max` bytes, never past the appended
    /// offset nor the end of `from`'s segment. Returns how many bytes it appended.
    ///
    /// # Errors
    /// `Config` when `from` is outside `[oldest_offset, max_physical_offset]` (the slave asks for
    /// data this master deleted or never had); `Io` when the disk read fails.
    pub async fn read_replication_chunk(
        &self,
        from: i64,
        max: usize,
        out: &mut BytesMut,
    ) -> Result<usize, StoreError> {
        let appended = self.log.appended();
        if from < self.oldest_offset() || from > appended {
            return Err(StoreError::Config(format!(
                "replication offset {from} outside [{}, {appended}] of shard {}",
                self.oldest_offset(),
                self.shard
            )));
        }
        let segment_end = self.log.segment_start(from) + self.log.file_size as i64;
        let end = appended.min(segment_end).min(from + max as i64);
        let len = (end - from) as usize;
        if len == 0 {
            return Ok(0);
        }
        self.log.read_into(from, len, &mut None, out).await?;
        Ok(len)
    }

    /// Applies replicated bytes that start at `offset` (see the module contract); returns the
    /// number of input bytes consumed.
    ///
    /// # Errors
    /// `Corrupt` when the bytes do not continue this log (gap, wrong PHYSICALOFFSET, bad CRC,
    /// a filler or record not fitting its segment): the caller must drop the connection.
    /// `WriteBacklog` when too many appended bytes wait for the disk: wait for `Written`
    /// and retry. `TruncationPending` after a `truncate_replica` that failed half-way: call it
    /// again first.
    pub fn append_replicated(&self, offset: i64, bytes: &[u8]) -> Result<usize, StoreError> {
        if self.pending_cut.borrow().is_some() {
            return Err(StoreError::TruncationPending { shard: self.shard });
        }
        let mut position = self.log.appended();
        let mut consumed = self.skip_filled(offset, position, bytes.len())?;
        // Unflushed, not only unwritten: the tail keeps those bytes until they are flushed.
        let unwritten = (position - self.log.flushed()) as usize;
        if unwritten + bytes.len() > self.cfg.max_unwritten_bytes {
            return Err(StoreError::WriteBacklog {
                unwritten,
                limit: self.cfg.max_unwritten_bytes,
            });
        }
        while consumed < bytes.len() {
            let rest = &bytes[consumed..];
            let segment_end = self.log.segment_start(position) + self.log.file_size as i64;
            let remaining = (segment_end - position) as usize;
            match parse_record(rest) {
                Ok(record) => {
                    let len = self.check_replicated(&record, position, remaining)?;
                    let at = self.log.reserve(len)?;
                    assert_eq!(at, position, "a fitting record does not roll the segment");
                    self.log.push(position, &rest[..len]);
                    self.dispatch_replicated(&record, position);
                    self.log.last_store_timestamp.set(record.store_timestamp());
                    position += len as i64;
                    consumed += len;
                }
                Err(RecordError::Blank { size }) if size == remaining => {
                    // A length that cannot fit with its filler: `reserve` closes the segment
                    // with exactly the filler the master wrote.
                    let at = self.log.reserve(remaining - 7)?;
                    assert_eq!(at, segment_end, "the filler closes the segment");
                    consumed += remaining.min(rest.len());
                    position = segment_end;
                }
                Err(RecordError::Truncated { need, .. }) if need + 8 <= remaining => break,
                Err(error) => return Err(self.corrupt(position, format!("{error}"))),
            }
        }
        assert_eq!(
            position,
            self.log.appended(),
            "replicated bytes are contiguous"
        );
        Ok(consumed)
    }

    /// Bytes of the input that fall into the zero fill of a segment this slave already
    /// closed (`offset < appended`, both in the segment before `appended`).
    fn skip_filled(&self, offset: i64, appended: i64, len: usize) -> Result<usize, StoreError> {
        if offset == appended {
            return Ok(0);
        }
        let in_fill = offset < appended
            && appended == self.log.segment_start(appended)
            && offset > appended - self.log.file_size as i64;
        if !in_fill {
            return Err(self.corrupt(
                offset,
                format!("replicated bytes start at {offset}, the log ends at {appended}"),
            ));
        }
        Ok(((appended - offset) as usize).min(len))
    }

    fn check_replicated(
        &self,
        record: &RecordView<'_>,
        position: i64,
        remaining: usize,
    ) -> Result<usize, StoreError> {
        let len = record.total_size();
        if record.physical_offset() != position {
            let reason = format!("PHYSICALOFFSET {} != position", record.physical_offset());
            return Err(self.corrupt(position, reason));
        }
        if len + 8 > remaining {
            return Err(self.corrupt(position, "record leaves no room for the filler".into()));
        }
        if !record.crc_ok() {
            return Err(self.corrupt(position, "body CRC mismatch".into()));
        }
        Ok(len)
    }

    fn corrupt(&self, offset: i64, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.cfg.commit_log_dir.clone(),
            offset: offset as u64,
            reason: format!("replication: {reason}"),
        }
    }

    /// Indexes a replicated record and pushes its consume queue entry, like `append` does on
    /// the master (same queue offsets, because the master assigned them in this order).
    fn dispatch_replicated(&self, record: &RecordView<'_>, position: i64) {
        if self.cfg.message_index_enable
            && let Err(error) = self.index.index_record(record, position)
        {
            tracing::warn!(%error, shard = self.shard, position, "indexing a replicated record failed");
        }
        if !is_dispatched(record.sys_flag()) {
            return;
        }
        let (topic, queue_id) = (record.topic(), record.queue_id());
        let queue = match self.queue(topic, queue_id) {
            Some(queue) => queue,
            None => self.new_replica_queue(topic, queue_id, record.queue_offset()),
        };
        if record.queue_offset() != queue.max_offset() {
            tracing::error!(
                topic,
                queue_id,
                queue_offset = record.queue_offset(),
                next = queue.max_offset(),
                position,
                "replicated record skips queue offsets; not dispatched"
            );
            return;
        }
        queue.push(Entry {
            offset: position,
            size: record.total_size() as i32,
            tags_code: record.tags_code(),
        });
        self.queue_waiters.wake(topic, queue_id);
    }

    fn new_replica_queue(
        &self,
        topic: &str,
        queue_id: i32,
        first: i64,
    ) -> std::rc::Rc<ConsumeQueue> {
        let queue = std::rc::Rc::new(ConsumeQueue::new(
            &self.cfg.consume_queue_dir,
            topic,
            queue_id,
            self.cfg.consume_queue_file_size,
            first,
        ));
        self.queues
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(queue_id, queue.clone());
        let observer = self.new_queue_observer.borrow().clone();
        if let Some(observer) = observer {
            observer(topic, queue_id);
        }
        queue
    }
}
