//! rmq-storage: the RocketMQ-compatible message store of rmq-fast, one shard per core.
//!
//! A *shard* owns a slice of the message queues `(topic, queueId)` (see [`shard_for_queue`]),
//! its own commit log and the consume queues of its queues. It lives on exactly one
//! compio runtime thread, so the hot path uses `Rc`/`RefCell`/`Cell` and never locks. Physical
//! (commit log) offsets are globally unique: shard `s` owns the offsets starting at
//! `s << SHARD_SHIFT`, and its segment files live in the one shared commit log directory, named
//! by their 20-digit start offset exactly like RocketMQ's (shard 0 is byte-compatible).
//!
//! # Durability contract
//!
//! Every commit log byte passes three levels, each with its own monotonic offset
//! (all bytes *before* the offset have reached the level):
//!
//! | level | offset | meaning | survives |
//! |---|---|---|---|
//! | [`Durability::Appended`] | [`ShardStore::max_physical_offset`] | copied into the shard's in-memory tail; readable by consumers at once | nothing |
//! | [`Durability::Written`] | [`ShardStore::written_offset`] | the write completed: the bytes are in the kernel (page cache) or, with `O_DIRECT`, on the device | `kill -9` of the process |
//! | [`Durability::Flushed`] | [`ShardStore::flushed_offset`] | `fdatasync` completed, or an `O_DIRECT \| O_DSYNC` write of everything since the last flush | power loss |
//!
//! Invariant (asserted): `flushed <= written <= appended`.
//!
//! Acknowledgement rules for the broker:
//! - `SYNC_FLUSH` acks a send when its end offset is **flushed** (group commit: one write plus
//!   one `fdatasync` releases every waiter it covers; a round that starts idle is one
//!   `O_DSYNC` write instead, `StoreConfig::sync_flush_dsync_writes`).
//! - `ASYNC_FLUSH` acks at **written**. Data that is only appended lives in our heap; acking
//!   there would lose acknowledged messages on `kill -9`. By default ASYNC_FLUSH writes go
//!   through the page cache (`pwrite`, a copy into the kernel, like RocketMQ's mmap), so the ack
//!   costs no device write; `StoreConfig::direct_io` (broker key `asyncFlushDirectIo`) writes
//!   with `O_DIRECT` instead. SYNC_FLUSH always writes with `O_DIRECT`. `fdatasync` then runs
//!   every `flush_interval_commit_log` (if at least `flush_commit_log_least_pages` dirty pages)
//!   and at least every `flush_commit_log_thorough_interval`, beside the writes (never
//!   delaying an ack at written). Page-cache pages more than `StoreConfig::page_cache_bytes`
//!   behind the write-back point are dropped once on the device (`write_back.rs`): dropping
//!   changes no durability level, and dropped bytes read back from the device.
//! - `WAIT=false` sends ack at **appended**.
//!
//! Consume queues and the index are derived data: they are written through the page cache
//! and fsynced every `flush_interval_consume_queue` before the checkpoint moves; recovery
//! rebuilds any suffix that was lost from the commit log, skipping what is already there (no
//! duplicate entries), and cuts entries pointing past the recovered end.
//!
//! A failed write or sync (ENOSPC, EIO, short write) fails the sends it covers with
//! `StoreError::Io`; the bytes stay in memory and are retried, so the files never hold
//! anything but a prefix of valid records plus, after a crash, a torn tail that recovery cuts.
//! A failed `fdatasync` makes the flusher write everything since the last good flush again
//! (the kernel may have dropped the pages it failed to write back), so memory keeps every
//! unflushed byte; at most `max_unwritten_bytes` may wait to be flushed, past that appends fail
//! with `WriteBacklog` (a dead disk cannot make the broker grow without bound).
//!
//! # Recovery
//! After a crash (`abort` marker present) recovery rescans from the start of the segment
//! holding the checkpoint, validating every record (length, magic, body CRC, PHYSICALOFFSET),
//! truncates at the first invalid one, zeroes the stale bytes after it and re-dispatches
//! consume queue entries and index keys from the scan start (see `recovery.rs`).
//!
//! # Retention and disk space
//! [`retention`] deletes expired segments (oldest first, never the tail), then moves consume
//! queue min offsets and deletes index files that only point below the new first offset.
//! [`disk_space`] holds the free-space reader ([`disk_space::FreeSpace`], injectable) and the
//! per-store "disk full" state the broker's send path consults.
//!
//! # Testing seams
//! [`faults::DiskFaults`] sits under every segment file operation (short writes, ENOSPC, EIO,
//! torn blocks); `recovery_fuzz` is the harness of the recovery fuzz target.
//!
//! # Layout
//! `commitlog/{20-digit start offset}`, `consumequeue/{topic}/{queueId}/{20-digit start byte}`,
//! `index/shard-{n}/{20-digit creation ms}` (RocketMQ IndexFile format, one set per shard),
//! `shard-{n}.checkpoint`, `shards`, `lock`, `abort` under the store root (paths configurable);
//! in controller mode `epochFileCheckpoint` (shard 0) and `epochFileCheckpoint.shard-{n}`, the
//! epoch histories (`epoch_history.rs`, `replica_epochs.rs`).

mod aligned_buffer;
#[doc(hidden)]
pub mod bench_hooks;
mod checkpoint;
mod commit_log;
mod config;
mod consume_queue;
pub mod disk_space;
mod dispatch;
mod epoch_history;
mod error;
pub mod faults;
mod flusher;
mod group_delay;
mod index_file;
mod index_service;
mod layout;
mod loaded_writes;
mod queue_flusher;
mod recovery;
#[doc(hidden)]
pub mod recovery_fuzz;
mod replica;
mod replica_epochs;
mod replica_truncate;
pub mod retention;
mod segment;
mod shard_admin;
mod shard_query;
mod shard_reads;
mod shard_store;
mod stats;
mod sync_cohort;
mod tail_memory;
mod waiters;
mod write_back;

pub use aligned_buffer::{AlignedBuffer, BLOCK_SIZE};
pub use config::{DsyncWrites, Durability, FlushMode, StoreConfig};
pub use epoch_history::{EpochEntry, EpochHistory, find_consistent_point};
pub use error::StoreError;
pub use layout::StoreLayout;
pub use replica_epochs::ConsistentPoint;
pub use shard_admin::{QueueEntries, QueueEntry};
pub use shard_query::QueryResult;
pub use shard_reads::MAX_FILTER_SCAN;
pub use shard_store::{AppendResult, GetMessages, GetStatus, ShardStore};
pub use stats::{GROUP_COMMIT_BOUNDS, SYNC_ACKS_BOUNDS, SYNC_MICROS_BOUNDS, ShardStats};
pub use sync_cohort::SyncCohort;

/// Bits of a physical offset below the shard number: shard `s` owns `[s << 56, (s + 1) << 56)`.
pub const SHARD_SHIFT: u32 = 56;

/// Largest shard count: shard numbers must keep physical offsets positive `i64`s.
pub const MAX_SHARD_COUNT: u32 = 128;

const _: () = assert!((MAX_SHARD_COUNT - 1) as i64 <= i64::MAX >> SHARD_SHIFT);

/// First physical offset owned by `shard`.
pub fn shard_base(shard: u32) -> i64 {
    assert!(shard < MAX_SHARD_COUNT, "shard {shard} out of range");
    (shard as i64) << SHARD_SHIFT
}

/// The shard that owns a physical offset.
pub fn shard_of_offset(physical_offset: i64) -> u32 {
    assert!(
        physical_offset >= 0,
        "negative physical offset {physical_offset}"
    );
    (physical_offset >> SHARD_SHIFT) as u32
}

/// The shard that owns `(topic, queue_id)`. Stable across restarts and processes (it only
/// depends on the bytes of the topic), and spreads a topic's queues round-robin over the
/// shards: `(crc32(topic) + queue_id) % shard_count`.
pub fn shard_for_queue(topic: &str, queue_id: i32, shard_count: u32) -> u32 {
    assert!(shard_count > 0, "shard_count must be positive");
    let hash = crc32fast::hash(topic.as_bytes()) as u64;
    (hash.wrapping_add(queue_id as u32 as u64) % shard_count as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_offsets_round_trip() {
        assert_eq!(shard_base(0), 0);
        assert_eq!(shard_base(1), 72_057_594_037_927_936);
        for shard in [0, 1, 5, MAX_SHARD_COUNT - 1] {
            assert_eq!(shard_of_offset(shard_base(shard)), shard);
            assert_eq!(shard_of_offset(shard_base(shard) + 123_456), shard);
        }
    }

    #[test]
    fn queues_spread_round_robin() {
        let first = shard_for_queue("TopicTest", 0, 4);
        for queue_id in 0..8 {
            assert_eq!(
                shard_for_queue("TopicTest", queue_id, 4),
                (first + queue_id as u32) % 4
            );
        }
        assert_eq!(shard_for_queue("TopicTest", 3, 1), 0);
    }
}
