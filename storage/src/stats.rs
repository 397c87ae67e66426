//! Per-shard counters (the storage "probe"): cheap `Cell` increments on the shard's thread,
//! read as a [`ShardStats`] snapshot by tests, benchmarks and the broker's metrics.

use std::cell::Cell;

/// A snapshot of a shard's I/O counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub appends: u64,
    pub commit_log_writes: u64,
    pub commit_log_write_bytes: u64,
    pub commit_log_write_errors: u64,
    pub fdatasyncs: u64,
    pub segments_created: u64,
    pub consume_queue_flushes: u64,
    /// Index syncs that had indexed keys to write (a full file, shutdown, truncation, or
    /// the `message_index_safe` interval).
    pub index_syncs: u64,
    pub disk_reads: u64,
    /// Commit log segments are written with `O_DIRECT` (false: through the page cache).
    pub direct_io: bool,
}

#[derive(Default)]
pub(crate) struct StatsCells {
    pub appends: Cell<u64>,
    pub commit_log_writes: Cell<u64>,
    pub commit_log_write_bytes: Cell<u64>,
    pub commit_log_write_errors: Cell<u64>,
    pub fdatasyncs: Cell<u64>,
    pub segments_created: Cell<u64>,
    pub consume_queue_flushes: Cell<u64>,
    pub index_syncs: Cell<u64>,
    pub disk_reads: Cell<u64>,
}

pub(crate) fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get() + by);
}

impl StatsCells {
    /// `direct_writes`: the store's configuration asks for `O_DIRECT` segment writes.
    pub fn snapshot(&self, direct_writes: bool) -> ShardStats {
        ShardStats {
            appends: self.appends.get(),
            commit_log_writes: self.commit_log_writes.get(),
            commit_log_write_bytes: self.commit_log_write_bytes.get(),
            commit_log_write_errors: self.commit_log_write_errors.get(),
            fdatasyncs: self.fdatasyncs.get(),
            segments_created: self.segments_created.get(),
            consume_queue_flushes: self.consume_queue_flushes.get(),
            index_syncs: self.index_syncs.get(),
            disk_reads: self.disk_reads.get(),
            direct_io: direct_writes && !crate::segment::direct_io_refused(),
        }
    }
}
