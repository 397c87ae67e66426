//! The per-shard consume queue flusher: every `flush_interval_consume_queue` it writes the
//! new entries of every dirty consume queue (buffered), fsyncs them, syncs the index files
//! when one filled up (and, with `message_index_safe`, every `index_sync_interval`), then
//! writes the shard checkpoint (with `message_index_safe`, its `consume_queue_safe` stays
//! at or below what the index has synced, so it bounds the index too). Holds a `Weak`
//! reference while sleeping, so dropping the store ends it; `shutdown` stops it and runs
//! the final flush itself.

use std::rc::Rc;

use crate::checkpoint::Checkpoint;
use crate::error::StoreError;
use crate::shard_store::ShardStore;
use crate::stats::bump;

pub(crate) fn spawn(store: &Rc<ShardStore>) {
    let weak = Rc::downgrade(store);
    let signal = store.queue_flusher_signal.clone();
    let exited = store.queue_flusher_exited.clone();
    let interval = store.cfg.flush_interval_consume_queue;
    compio::runtime::spawn(async move {
        loop {
            let _ = compio::time::timeout(interval, signal.wait()).await;
            let Some(store) = weak.upgrade() else { break };
            if store.queue_flusher_stopping.get() {
                break;
            }
            if let Err(error) = store.flush_queues_and_checkpoint().await {
                tracing::error!(%error, shard = store.shard, "consume queue flush failed; will retry");
            }
        }
        exited.raise();
    })
    .detach();
}

impl ShardStore {
    /// Flushes every dirty consume queue, then records in the checkpoint how far recovery
    /// can trust the files: all records below the commit log offset sampled *before* the
    /// flush have their entries on disk.
    pub(crate) async fn flush_queues_and_checkpoint(&self) -> Result<(), StoreError> {
        let _gate = self.queue_flush_gate.lock().await;
        self.flush_queues_and_checkpoint_gated(i64::MAX).await
    }

    /// `flush_queues_and_checkpoint` for a caller holding `queue_flush_gate`; neither offset
    /// of the checkpoint exceeds `limit` (a record boundary, when below the log end).
    pub(crate) async fn flush_queues_and_checkpoint_gated(
        &self,
        limit: i64,
    ) -> Result<(), StoreError> {
        let consume_queue_safe = self.log.appended().min(limit);
        let timestamp = self.log.last_store_timestamp.get();
        let mut dirty = self.all_queues();
        dirty.retain(|q| q.is_dirty());
        for queue in &dirty {
            queue.flush().await?;
        }
        // Without `message_index_safe` the index is synced as RocketMQ does it: when a file
        // is full, and when stopping or truncating. Its random slot writes (~20 MB of pages
        // per sync at 13k msg/s) made the commit log's next device flush wait behind them:
        // SYNC_FLUSH send p99 at that rate 107 ms with a 10 s index sync, 23 ms without.
        let periodic_due = self.cfg.message_index_safe
            && self
                .index_synced_at
                .get()
                .is_none_or(|at| at.elapsed() >= self.cfg.index_sync_interval);
        let index_due = limit != i64::MAX
            || self.shutting_down.get()
            || !self.index.is_dirty()
            || self.index.has_full_unsynced()
            || periodic_due;
        if index_due {
            if self.index.is_dirty() {
                bump(&self.log.stats.index_syncs, 1);
            }
            self.index.sync().await?;
            self.index_synced_at.set(Some(std::time::Instant::now()));
            self.index_safe.set(consume_queue_safe);
        }
        let consume_queue_safe = if self.cfg.message_index_safe {
            consume_queue_safe.min(self.index_safe.get())
        } else {
            consume_queue_safe
        };
        bump(&self.log.stats.consume_queue_flushes, 1);
        let commit_log_flushed = self.log.flushed().min(limit);
        let safe = commit_log_flushed.min(consume_queue_safe);
        let checkpoint = Checkpoint {
            revalidate_from: self.revalidation_point(safe),
            shard: self.shard,
            commit_log_flushed,
            consume_queue_safe,
            commit_log_timestamp: timestamp,
            consume_queue_timestamp: timestamp,
        };
        self.checkpoint.store(&checkpoint).await
    }
}

impl ShardStore {
    /// Remembers `safe` (a record boundary) and returns the newest remembered boundary at
    /// least `REVALIDATE_BYTES` below it, else the oldest one: where a crash recovery starts
    /// re-validating. The first remembered boundary is where this run's log started.
    fn revalidation_point(&self, safe: i64) -> i64 {
        let mut points = self.revalidation_points.borrow_mut();
        if points.back() != Some(&safe) {
            points.push_back(safe);
        }
        while points.len() > 64 {
            points.pop_front();
        }
        let limit = safe - crate::checkpoint::REVALIDATE_BYTES;
        let point = points
            .iter()
            .rev()
            .find(|&&p| p <= limit)
            .or(points.front())
            .copied()
            .unwrap_or(safe);
        // Drop what is older than the chosen point: it will never be chosen again.
        while points.front().is_some_and(|&p| p < point) {
            points.pop_front();
        }
        assert!(
            point <= safe,
            "revalidation starts at or below the safe offset"
        );
        point
    }
}
