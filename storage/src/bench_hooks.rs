//! Entry points for the benchmarks of rmq-benches (criterion and the instruction-count gate):
//! hidden from the docs, not part of the store's API. They run the store's own code on a
//! fixture that needs no commit log.

use crate::config::StoreConfig;
use crate::consume_queue::ConsumeQueue;
use crate::dispatch::dispatch_appended;
use crate::error::StoreError;
use crate::index_service::IndexService;
use crate::shard_store::{is_dispatched, sys_flag};

/// One empty consume queue and the index of shard 0, as the append path dispatches into them.
pub struct DispatchTarget {
    queue: ConsumeQueue,
    index: IndexService,
}

impl DispatchTarget {
    /// Creates the queue `(topic, queue_id)` (in memory: nothing is flushed) and opens the
    /// index of shard 0 under `cfg.index_dir`. Performs no asynchronous I/O (index files are
    /// created with blocking calls), so the future is ready at its first poll, with or
    /// without a compio runtime.
    pub async fn open(cfg: &StoreConfig, topic: &str, queue_id: i32) -> Result<Self, StoreError> {
        let index = IndexService::open(cfg, 0).await?;
        let queue = ConsumeQueue::new(
            &cfg.consume_queue_dir,
            topic,
            queue_id,
            cfg.consume_queue_file_size,
            0,
        );
        Ok(DispatchTarget { queue, index })
    }

    /// What `ShardStore::append` does for one record after copying it into the log: index
    /// its keys and push its consume queue entry. `record` must be a valid encoded record;
    /// `position` must grow by at least the previous record's length per call.
    pub fn dispatch(&self, record: &[u8], position: i64, tags_code: i64) {
        let dispatched = is_dispatched(sys_flag(record));
        dispatch_appended(
            &self.index,
            &self.queue,
            record,
            position,
            tags_code,
            dispatched,
        );
    }

    /// Entries pushed so far.
    pub fn max_queue_offset(&self) -> i64 {
        self.queue.max_offset()
    }
}
