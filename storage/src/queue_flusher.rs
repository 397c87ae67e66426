//! The per-shard consume queue flusher: every `flush_interval_consume_queue` it writes the
//! new entries of every dirty consume queue (buffered), fsyncs them, then writes the shard
//! checkpoint. Holds a `Weak` reference while sleeping, so dropping the store ends it;
//! `shutdown` stops it and runs the final flush itself.

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
        let consume_queue_safe = self.log.appended();
        let timestamp = self.log.last_store_timestamp.get();
        let dirty: Vec<_> = self
            .queues
            .borrow()
            .values()
            .flat_map(|q| q.values())
            .filter(|q| q.is_dirty())
            .cloned()
            .collect();
        for queue in &dirty {
            queue.flush().await?;
        }
        bump(&self.log.stats.consume_queue_flushes, 1);
        let checkpoint = Checkpoint {
            shard: self.shard,
            commit_log_flushed: self.log.flushed(),
            consume_queue_safe,
            commit_log_timestamp: timestamp,
            consume_queue_timestamp: timestamp,
        };
        self.checkpoint.store(&checkpoint).await
    }
}
