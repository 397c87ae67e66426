//! [`ShardStore`]: one shard's commit log plus the consume queues of its queues, on one core.
//!
//! Contract:
//! - `append`/`append_batch` never await: they assign queue and physical offsets, patch the
//!   records, copy them into the commit log tail, push the consume queue entries (visible to
//!   `get_messages` at once) and wake the queue's long-polling pulls. Durability is awaited
//!   separately with `wait_durable` (see the crate docs for the levels).
//! - Every `(topic, queueId)` appended here must belong to this shard
//!   (`shard_for_queue(topic, queueId, shard_count) == shard`), otherwise recovery would put
//!   its consume queue in another shard; appends of foreign queues fail with `Config`.
//! - Background tasks (commit log flusher, consume queue flusher) hold `Weak` references:
//!   dropping the last `Rc<ShardStore>` without `shutdown` behaves like a crash of the shard
//!   (whatever was written stays, the rest is recovered from the log on the next open).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use rmq_core::remoting::field_hash::FieldHasherBuilder;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use rmq_core::message::sysflag::{
    TRANSACTION_PREPARED_TYPE, TRANSACTION_ROLLBACK_TYPE, transaction_value,
};
use rmq_core::message::{RecordView, patch_record};

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::commit_log::CommitLog;
use crate::config::{Durability, StoreConfig};
use crate::consume_queue::{ConsumeQueue, Entry};
use crate::dispatch::dispatch_appended;
use crate::error::StoreError;
use crate::index_service::IndexService;
use crate::layout::read_shard_count;
use crate::recovery::{ScanStart, recover_commit_log};
use crate::stats::{ShardStats, bump};
use crate::waiters::{QueueWaiters, Signal};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Commit log offset of the first record.
    pub physical_offset: i64,
    /// Queue offset of the first record (0 for prepared/rollback transaction records).
    pub queue_offset: i64,
    pub wrote_bytes: usize,
    /// Offset after the last record: pass it to `wait_durable`.
    pub end_offset: i64,
    pub count: usize,
}

/// RocketMQ `GetMessageStatus` (the subset a single store can produce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    NoMessageInQueue,
    OffsetOverflowOne,
    OffsetOverflowBadly,
    OffsetTooSmall,
    OffsetFoundNull,
}

#[derive(Debug, Clone)]
pub struct GetMessages {
    pub status: GetStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    /// The records exactly as stored, concatenated.
    pub body: bytes::Bytes,
    pub count: usize,
}

/// Topic → queue id → consume queue, read on every append and pull. Topic names come from
/// the network: the seeded word-at-a-time hasher (`field_hash`) instead of SipHash, which
/// was ~4% of a send's instructions over this map and the broker's other per-send lookups.
pub(crate) type QueueMap =
    HashMap<String, HashMap<i32, Rc<ConsumeQueue>, FieldHasherBuilder>, FieldHasherBuilder>;

pub struct ShardStore {
    pub(crate) cfg: StoreConfig,
    pub(crate) shard: u32,
    pub(crate) shard_count: u32,
    pub(crate) log: Rc<CommitLog>,
    pub(crate) queues: RefCell<QueueMap>,
    pub(crate) queue_waiters: QueueWaiters,
    pub(crate) index: IndexService,
    pub(crate) checkpoint: CheckpointFile,
    pub(crate) shutting_down: Cell<bool>,
    shut_down: Cell<bool>,
    flusher_exited: Rc<Signal>,
    pub(crate) queue_flusher_signal: Rc<Signal>,
    pub(crate) queue_flusher_stopping: Cell<bool>,
    pub(crate) queue_flusher_exited: Rc<Signal>,
    /// Held by a consume queue flush (with its checkpoint) and by `truncate_replica`, so a
    /// flush never writes entries or a checkpoint from before a truncation after it.
    pub(crate) queue_flush_gate: futures_util::lock::Mutex<()>,
    /// A truncation cut the log in memory but not yet all of its files
    /// (`replica_truncate.rs`); replicated appends wait for it.
    pub(crate) pending_cut: RefCell<Option<crate::replica_truncate::PendingCut>>,
    /// Record boundaries of recent checkpoints (`queue_flusher::revalidation_point`).
    pub(crate) revalidation_points: RefCell<std::collections::VecDeque<i64>>,
    /// When the queue flusher last synced the index (None: not since open).
    pub(crate) index_synced_at: Cell<Option<std::time::Instant>>,
    /// Log offset sampled before the last index sync: every record below it has its keys
    /// on disk (bounds the checkpoint's `consume_queue_safe`).
    pub(crate) index_safe: Cell<i64>,
    /// End of the log when the store was opened (after recovery).
    pub(crate) opened_end: i64,
    /// Told of every queue a replicated record creates (`observe_new_replica_queues`).
    pub(crate) new_queue_observer: RefCell<Option<crate::replica::NewQueueObserver>>,
    /// Controller mode: which master epoch wrote which part of the log (`replica_epochs.rs`).
    pub(crate) epochs: RefCell<Option<crate::epoch_history::EpochHistory>>,
}

impl ShardStore {
    /// Recovers the shard (see `recovery.rs`) and starts its background tasks on the current
    /// compio runtime. `StoreLayout::open` must have run (it fixes the shard count).
    pub async fn open(
        cfg: StoreConfig,
        shard: u32,
        layout_clean: bool,
    ) -> Result<Rc<ShardStore>, StoreError> {
        cfg.validate()?;
        let shard_count = read_shard_count(&cfg)?.ok_or_else(|| {
            StoreError::Config("no shard count: StoreLayout::open must run first".into())
        })?;
        if shard >= shard_count {
            return Err(StoreError::Config(format!(
                "shard {shard} >= shard count {shard_count}"
            )));
        }
        let checkpoint = Checkpoint::load(&cfg.shard_checkpoint_path(shard), shard);
        let scan_from = checkpoint.map(|c| ScanStart {
            safe: c.commit_log_flushed.min(c.consume_queue_safe),
            revalidate_from: c.revalidate_from,
        });
        tracing::info!(shard, layout_clean, ?checkpoint, "opening shard");
        let mut queues = load_queues(&cfg, shard, shard_count).await?;
        let index = IndexService::open(&cfg, shard).await?;
        let recovered = {
            let mut dispatch = |record: &RecordView<'_>, position: i64| {
                redispatch(&cfg, (shard, shard_count), &mut queues, record, position);
                index.reindex_record(record, position);
            };
            recover_commit_log(&cfg, shard, scan_from, layout_clean, &mut dispatch).await?
        };
        let log_min = recovered
            .segments
            .first_key_value()
            .map_or(recovered.end, |(&s, _)| s);
        for queue in queues.values().flat_map(|q| q.values()) {
            queue.drop_below(log_min).await?;
            let cut = queue.truncate_beyond(recovered.end).await?;
            if cut > 0 {
                tracing::warn!(
                    topic = queue.topic,
                    queue_id = queue.queue_id,
                    cut,
                    "dropped consume queue entries past the end of the log"
                );
            }
        }
        let log = CommitLog::new(
            cfg.clone(),
            shard,
            recovered.segments,
            recovered.end,
            &recovered.tail_block,
        );
        log.last_store_timestamp.set(recovered.last_store_timestamp);
        let recovered_end = recovered.end;
        let epochs = match cfg.shard_epoch_path(shard) {
            Some(path) => Some(crate::epoch_history::EpochHistory::load(
                path,
                recovered_end,
            )?),
            None => None,
        };
        let log = Rc::new(log);
        let flusher_exited = crate::flusher::spawn(&log);
        crate::waiters::spawn_deadline_sweeper(&log, |log| &log.written_waiters);
        crate::waiters::spawn_deadline_sweeper(&log, |log| &log.flushed_waiters);
        let checkpoint_file = CheckpointFile::open(cfg.shard_checkpoint_path(shard)).await?;
        let store = Rc::new(ShardStore {
            cfg,
            shard,
            shard_count,
            log,
            queues: RefCell::new(queues),
            queue_waiters: QueueWaiters::default(),
            index,
            checkpoint: checkpoint_file,
            shutting_down: Cell::new(false),
            shut_down: Cell::new(false),
            flusher_exited,
            queue_flusher_signal: Rc::new(Signal::default()),
            queue_flusher_stopping: Cell::new(false),
            queue_flusher_exited: Rc::new(Signal::default()),
            queue_flush_gate: futures_util::lock::Mutex::new(()),
            pending_cut: RefCell::new(None),
            revalidation_points: RefCell::new([recovered_end].into_iter().collect()),
            index_synced_at: Cell::new(None),
            index_safe: Cell::new(0),
            opened_end: recovered_end,
            new_queue_observer: RefCell::new(None),
            epochs: RefCell::new(epochs),
        });
        crate::queue_flusher::spawn(&store);
        Ok(store)
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    pub fn stats(&self) -> ShardStats {
        self.log.stats.snapshot(self.cfg.direct_writes())
    }

    /// A snapshot of every consume queue of the shard (safe to hold across awaits).
    pub(crate) fn all_queues(&self) -> Vec<Rc<ConsumeQueue>> {
        self.queues
            .borrow()
            .values()
            .flat_map(|q| q.values())
            .cloned()
            .collect()
    }

    pub(crate) fn queue(&self, topic: &str, queue_id: i32) -> Option<Rc<ConsumeQueue>> {
        self.queues.borrow().get(topic)?.get(&queue_id).cloned()
    }

    fn queue_for_append(&self, topic: &str, queue_id: i32) -> Result<Rc<ConsumeQueue>, StoreError> {
        if let Some(queue) = self.queue(topic, queue_id) {
            return Ok(queue);
        }
        let owner = crate::shard_for_queue(topic, queue_id, self.shard_count);
        if owner != self.shard {
            return Err(StoreError::Config(format!(
                "queue {topic}:{queue_id} belongs to shard {owner}, not {}",
                self.shard
            )));
        }
        let queue = Rc::new(ConsumeQueue::new(
            &self.cfg.consume_queue_dir,
            topic,
            queue_id,
            self.cfg.consume_queue_file_size,
            0,
        ));
        self.queues
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(queue_id, queue.clone());
        Ok(queue)
    }

    /// Appends one encoded record (docs/protocol.md §3.1 layout, offsets and store time zero).
    pub fn append(
        &self,
        topic: &str,
        queue_id: i32,
        record: &mut [u8],
        tags_code: i64,
        store_timestamp: i64,
    ) -> Result<AppendResult, StoreError> {
        let mut records = [(record, tags_code)];
        self.append_records(topic, queue_id, &mut records, store_timestamp)
    }

    /// Appends records of ONE queue contiguously, with consecutive queue offsets.
    pub fn append_batch(
        &self,
        topic: &str,
        queue_id: i32,
        records: &mut [(bytes::BytesMut, i64)],
        store_timestamp: i64,
    ) -> Result<AppendResult, StoreError> {
        let mut borrowed: Vec<(&mut [u8], i64)> = records
            .iter_mut()
            .map(|(r, tags)| (&mut r[..], *tags))
            .collect();
        self.append_records(topic, queue_id, &mut borrowed, store_timestamp)
    }

    fn append_records(
        &self,
        topic: &str,
        queue_id: i32,
        records: &mut [(&mut [u8], i64)],
        store_timestamp: i64,
    ) -> Result<AppendResult, StoreError> {
        if self.shutting_down.get() {
            return Err(StoreError::ShuttingDown);
        }
        assert!(!records.is_empty(), "append of zero records");
        let total: usize = records.iter().map(|(r, _)| r.len()).sum();
        for (record, _) in records.iter() {
            check_encoded(record);
        }
        // Unflushed, not only unwritten: the tail keeps those bytes until they are flushed.
        let unwritten = (self.log.appended() - self.log.flushed()) as usize;
        if unwritten + total > self.cfg.max_unwritten_bytes {
            return Err(StoreError::WriteBacklog {
                unwritten,
                limit: self.cfg.max_unwritten_bytes,
            });
        }
        let queue = self.queue_for_append(topic, queue_id)?;
        let first_position = self.log.reserve(total)?;
        let mut position = first_position;
        let mut first_queue_offset = None;
        for (record, tags_code) in records.iter_mut() {
            let dispatched = is_dispatched(sys_flag(record));
            let queue_offset = if dispatched { queue.max_offset() } else { 0 };
            first_queue_offset.get_or_insert(queue_offset);
            patch_record(record, queue_offset, position, store_timestamp);
            self.log.push(position, record);
            dispatch_appended(
                &self.index,
                &queue,
                record,
                position,
                *tags_code,
                dispatched,
            );
            position += record.len() as i64;
        }
        self.log.last_store_timestamp.set(store_timestamp);
        bump(&self.log.stats.appends, records.len() as u64);
        self.queue_waiters.wake(topic, queue_id);
        Ok(AppendResult {
            physical_offset: first_position,
            queue_offset: first_queue_offset.unwrap_or(0),
            wrote_bytes: total,
            end_offset: position,
            count: records.len(),
        })
    }

    /// Resolves when every byte before `end_offset` reached `level`.
    ///
    /// # Errors
    /// `FlushTimeout` after `sync_flush_timeout`; `Io` when the write or sync covering the
    /// offset failed (the flusher retries; a later wait may succeed); `ShuttingDown` when the
    /// flusher stopped.
    pub async fn wait_durable(&self, end_offset: i64, level: Durability) -> Result<(), StoreError> {
        let log = &self.log;
        assert!(
            end_offset <= log.appended(),
            "waiting for bytes never appended"
        );
        let (current, waiters) = match level {
            Durability::Appended => return Ok(()),
            Durability::Written => (log.written(), &log.written_waiters),
            Durability::Flushed => (log.flushed(), &log.flushed_waiters),
        };
        if current >= end_offset {
            return Ok(());
        }
        // The deadline is enforced by the list's sweeper (`spawn_deadline_sweeper`), not by
        // a timer per wait.
        let deadline = std::time::Instant::now() + self.cfg.sync_flush_timeout;
        let receiver = waiters.register_until(end_offset, deadline);
        log.flusher_signal.raise();
        match receiver.await {
            Err(_canceled) => Err(StoreError::ShuttingDown),
            Ok(result) => result,
        }
    }

    pub fn max_queue_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queue(topic, queue_id).map_or(0, |q| q.max_offset())
    }

    pub fn min_queue_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.queue(topic, queue_id).map_or(0, |q| q.min_offset())
    }

    /// Resolves true as soon as the queue holds an entry at `offset`, false after `timeout`.
    pub async fn wait_for_message(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        timeout: Duration,
    ) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.max_queue_offset(topic, queue_id) > offset {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.shutting_down.get() {
                return false;
            }
            let receiver = self.queue_waiters.register(topic, queue_id);
            if compio::time::timeout(left, receiver).await.is_err() {
                self.queue_waiters.prune(topic, queue_id);
                return self.max_queue_offset(topic, queue_id) > offset;
            }
        }
    }

    /// All `(topic, queueId)` with a consume queue in this shard.
    pub fn queues(&self) -> Vec<(String, i32)> {
        let queues = self.queues.borrow();
        let mut all: Vec<(String, i32)> = queues
            .iter()
            .flat_map(|(topic, by_id)| by_id.keys().map(move |&id| (topic.clone(), id)))
            .collect();
        all.sort();
        all
    }

    /// Drops the topic's consume queues and their files (its records stay in the log).
    pub fn delete_topic(&self, topic: &str) -> Result<(), StoreError> {
        let removed = self.queues.borrow_mut().remove(topic);
        for queue in removed.iter().flat_map(|q| q.values()) {
            queue.deleted.set(true);
        }
        let dir = self.cfg.consume_queue_dir.join(topic);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove_dir", dir, 0, e)),
        }
    }

    pub fn max_physical_offset(&self) -> i64 {
        self.log.appended()
    }

    pub fn written_offset(&self) -> i64 {
        self.log.written()
    }

    pub fn flushed_offset(&self) -> i64 {
        self.log.flushed()
    }

    /// Writes and fsyncs everything, stops the background tasks and writes the checkpoint.
    /// Afterwards appends fail with `ShuttingDown`. Idempotent.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        if self.shut_down.get() {
            return Ok(());
        }
        self.shutting_down.set(true);
        self.wait_durable(self.log.appended(), Durability::Flushed)
            .await?;
        self.log.stopping.set(true);
        self.log.flusher_signal.raise();
        self.flusher_exited.wait().await;
        self.queue_flusher_stopping.set(true);
        self.queue_flusher_signal.raise();
        self.queue_flusher_exited.wait().await;
        self.flush_queues_and_checkpoint().await?;
        self.shut_down.set(true);
        tracing::info!(
            shard = self.shard,
            end = self.log.appended(),
            "shard shut down"
        );
        Ok(())
    }
}

/// The record's SYSFLAG field (offset 36 in every docs/protocol.md §3.1 record).
pub(crate) fn sys_flag(record: &[u8]) -> i32 {
    i32::from_be_bytes(record[36..40].try_into().expect("4 bytes"))
}

/// Prepared and rolled-back transaction records get no consume queue entry.
pub(crate) fn is_dispatched(sys_flag: i32) -> bool {
    let kind = transaction_value(sys_flag);
    kind != TRANSACTION_PREPARED_TYPE && kind != TRANSACTION_ROLLBACK_TYPE
}

/// The broker hands us complete encoded records; anything else is a programming error.
fn check_encoded(record: &[u8]) {
    assert!(
        record.len() >= 64,
        "encoded record of {} bytes",
        record.len()
    );
    let total = i32::from_be_bytes(record[..4].try_into().expect("4 bytes"));
    assert_eq!(
        total as usize,
        record.len(),
        "TOTALSIZE field != record length"
    );
}

/// Loads the consume queues of this shard's queues.
async fn load_queues(
    cfg: &StoreConfig,
    shard: u32,
    shard_count: u32,
) -> Result<QueueMap, StoreError> {
    let mut queues = QueueMap::default();
    for (topic, queue_id) in list_queue_dirs(&cfg.consume_queue_dir)? {
        if crate::shard_for_queue(&topic, queue_id, shard_count) != shard {
            continue;
        }
        let queue = ConsumeQueue::load(
            &cfg.consume_queue_dir,
            &topic,
            queue_id,
            cfg.consume_queue_file_size,
        )
        .await?;
        queues
            .entry(topic)
            .or_default()
            .insert(queue_id, Rc::new(queue));
    }
    Ok(queues)
}

fn list_queue_dirs(root: &Path) -> Result<Vec<(String, i32)>, StoreError> {
    let mut found = Vec::new();
    let topics = match std::fs::read_dir(root) {
        Ok(topics) => topics,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(StoreError::io("read_dir", root, 0, e)),
    };
    for topic in topics.flatten() {
        let Ok(name) = topic.file_name().into_string() else {
            continue;
        };
        let Ok(ids) = std::fs::read_dir(topic.path()) else {
            continue;
        };
        for id in ids.flatten() {
            if let Some(queue_id) = id.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                found.push((name.clone(), queue_id));
            }
        }
    }
    Ok(found)
}

/// Recovery: adds the consume queue entry of a valid record unless the queue has it.
/// A record naming a queue of another shard (a damaged header that still passed the checks)
/// is not dispatched: its consume queue would live in the wrong shard.
fn redispatch(
    cfg: &StoreConfig,
    (shard, shard_count): (u32, u32),
    queues: &mut QueueMap,
    record: &RecordView<'_>,
    position: i64,
) {
    if !is_dispatched(record.sys_flag()) {
        return;
    }
    let topic = record.topic();
    let queue_id = record.queue_id();
    if crate::shard_for_queue(topic, queue_id, shard_count) != shard {
        tracing::error!(
            topic,
            queue_id,
            position,
            shard,
            "record of a foreign queue; not dispatched"
        );
        return;
    }
    let queue_offset = record.queue_offset();
    // A queue without files starts at its first record's offset (its older records are gone:
    // retention, or a slave whose log starts at its master's newest segment).
    let next = queues
        .get(topic)
        .and_then(|q| q.get(&queue_id))
        .map_or(queue_offset, |q| q.max_offset());
    if queue_offset < next {
        return;
    }
    if queue_offset > next {
        tracing::error!(
            topic,
            queue_id,
            queue_offset,
            next,
            position,
            "record skips queue offsets; not dispatched"
        );
        return;
    }
    let queue = queues
        .entry(topic.to_string())
        .or_default()
        .entry(queue_id)
        .or_insert_with(|| {
            Rc::new(ConsumeQueue::new(
                &cfg.consume_queue_dir,
                topic,
                queue_id,
                cfg.consume_queue_file_size,
                queue_offset,
            ))
        });
    queue.push(Entry {
        offset: position,
        size: record.total_size() as i32,
        tags_code: record.tags_code(),
    });
}
