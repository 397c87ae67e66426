//! Dispatch of an appended record: the derived data the append path writes for every record
//! right after copying it into the commit log tail. Shared by `ShardStore::append*` and the
//! benchmark entry point ([`crate::bench_hooks::DispatchTarget`]).
//!
//! Contract: synchronous and in memory (the consume queue entry joins the queue's in-memory
//! tail; the index entry is a few stores into the mmapped index file, which is only created,
//! with blocking calls, when the previous one is full). `record` is patched (queue offset,
//! physical offset, store time) and lies at `position`; positions increase per queue.

use crate::consume_queue::{ConsumeQueue, Entry};
use crate::index_service::IndexService;

/// Indexes the record's keys (when the index is enabled) and, if `dispatched` (not a
/// prepared or rolled-back transaction), pushes its 20-byte consume queue entry.
pub(crate) fn dispatch_appended(
    index: &IndexService,
    queue: &ConsumeQueue,
    record: &[u8],
    position: i64,
    tags_code: i64,
    dispatched: bool,
) {
    index.index_appended(record, position, queue.index_key_prefix);
    if dispatched {
        queue.push(Entry {
            offset: position,
            size: record.len() as i32,
            tags_code,
        });
    }
}
