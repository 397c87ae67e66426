//! Per-shard counters (the storage "probe"): cheap `Cell` increments on the shard's thread,
//! read as a [`ShardStats`] snapshot by tests, benchmarks and the broker's metrics.

use std::cell::Cell;

/// Upper bounds (bytes, inclusive) of the group-commit size buckets: 4 KiB to 8 MiB by powers
/// of two; [`ShardStats::group_commit_bytes`] has one more slot for larger writes.
pub const GROUP_COMMIT_BOUNDS: [u64; 12] = [
    4 << 10,
    8 << 10,
    16 << 10,
    32 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
    8 << 20,
];

/// Upper bounds (microseconds, inclusive) of the commit log sync latency buckets
/// ([`ShardStats::sync_micros`]); one more slot for longer syncs.
pub const SYNC_MICROS_BOUNDS: [u64; 12] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000,
];

/// Upper bounds (inclusive) of the buckets of `Flushed` waiters one sync releases
/// ([`ShardStats::sync_acks`]); one more slot for larger rounds.
pub const SYNC_ACKS_BOUNDS: [u64; 10] = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256];

/// A snapshot of a shard's I/O counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub appends: u64,
    pub commit_log_writes: u64,
    pub commit_log_write_bytes: u64,
    pub commit_log_write_errors: u64,
    pub fdatasyncs: u64,
    /// SYNC_FLUSH `auto`: probes of both ways to write loaded rounds (`loaded_writes.rs`).
    pub sync_write_probes: u64,
    /// SYNC_FLUSH group commit delay, probed: probes of delayed against undelayed rounds
    /// (`group_delay.rs`).
    pub sync_group_delay_probes: u64,
    pub segments_created: u64,
    pub consume_queue_flushes: u64,
    /// Index syncs that had indexed keys to write (a full file, shutdown, truncation, or
    /// the `message_index_safe` interval).
    pub index_syncs: u64,
    pub disk_reads: u64,
    /// Group commits (one `write_up_to` of every pending append) by size in bytes: counts
    /// per bucket of [`GROUP_COMMIT_BOUNDS`], the last slot for larger ones.
    pub group_commit_bytes: [u64; GROUP_COMMIT_BOUNDS.len() + 1],
    /// Bytes of all group commits.
    pub group_commit_bytes_sum: u64,
    /// Microseconds spent in group commit writes (`write_up_to`, I/O included).
    pub write_micros_sum: u64,
    /// Bytes handed to the kernel's write-back ahead of the periodic sync (`write_back.rs`).
    pub write_back_bytes: u64,
    /// Bytes of written commit log dropped from the page cache behind the write-back point
    /// (`write_back.rs`, drop-behind).
    pub page_cache_dropped_bytes: u64,
    /// Sync rounds (the `fdatasync` of every segment written since the last one, successful
    /// or not) by duration: counts per bucket of [`SYNC_MICROS_BOUNDS`], the last slot for
    /// longer ones.
    pub sync_micros: [u64; SYNC_MICROS_BOUNDS.len() + 1],
    pub sync_micros_sum: u64,
    /// Successful sync rounds by the number of `Flushed` waiters (SYNC_FLUSH sends) each
    /// released: counts per bucket of [`SYNC_ACKS_BOUNDS`], the last slot for larger ones.
    pub sync_acks: [u64; SYNC_ACKS_BOUNDS.len() + 1],
    pub sync_acks_sum: u64,
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
    pub sync_write_probes: Cell<u64>,
    pub sync_group_delay_probes: Cell<u64>,
    pub segments_created: Cell<u64>,
    pub consume_queue_flushes: Cell<u64>,
    pub index_syncs: Cell<u64>,
    pub disk_reads: Cell<u64>,
    pub group_commit_bytes: [Cell<u64>; GROUP_COMMIT_BOUNDS.len() + 1],
    pub group_commit_bytes_sum: Cell<u64>,
    pub write_micros_sum: Cell<u64>,
    pub write_back_bytes: Cell<u64>,
    pub page_cache_dropped_bytes: Cell<u64>,
    pub sync_micros: [Cell<u64>; SYNC_MICROS_BOUNDS.len() + 1],
    pub sync_micros_sum: Cell<u64>,
    pub sync_acks: [Cell<u64>; SYNC_ACKS_BOUNDS.len() + 1],
    pub sync_acks_sum: Cell<u64>,
}

pub(crate) fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get() + by);
}

impl StatsCells {
    /// One group commit of `bytes` bytes.
    pub fn record_group_commit(&self, bytes: u64) {
        let slot = GROUP_COMMIT_BOUNDS.partition_point(|&bound| bound < bytes);
        bump(&self.group_commit_bytes[slot], 1);
        bump(&self.group_commit_bytes_sum, bytes);
    }

    /// One sync round that took `micros`.
    pub fn record_sync(&self, micros: u64) {
        let slot = SYNC_MICROS_BOUNDS.partition_point(|&bound| bound < micros);
        bump(&self.sync_micros[slot], 1);
        bump(&self.sync_micros_sum, micros);
    }

    /// One successful sync round that released `acks` `Flushed` waiters.
    pub fn record_sync_acks(&self, acks: u64) {
        let slot = SYNC_ACKS_BOUNDS.partition_point(|&bound| bound < acks);
        bump(&self.sync_acks[slot], 1);
        bump(&self.sync_acks_sum, acks);
    }

    /// `direct_writes`: the store's configuration asks for `O_DIRECT` segment writes.
    pub fn snapshot(&self, direct_writes: bool) -> ShardStats {
        ShardStats {
            appends: self.appends.get(),
            commit_log_writes: self.commit_log_writes.get(),
            commit_log_write_bytes: self.commit_log_write_bytes.get(),
            commit_log_write_errors: self.commit_log_write_errors.get(),
            fdatasyncs: self.fdatasyncs.get(),
            sync_write_probes: self.sync_write_probes.get(),
            sync_group_delay_probes: self.sync_group_delay_probes.get(),
            segments_created: self.segments_created.get(),
            consume_queue_flushes: self.consume_queue_flushes.get(),
            index_syncs: self.index_syncs.get(),
            disk_reads: self.disk_reads.get(),
            group_commit_bytes: std::array::from_fn(|i| self.group_commit_bytes[i].get()),
            group_commit_bytes_sum: self.group_commit_bytes_sum.get(),
            write_micros_sum: self.write_micros_sum.get(),
            write_back_bytes: self.write_back_bytes.get(),
            page_cache_dropped_bytes: self.page_cache_dropped_bytes.get(),
            sync_micros: std::array::from_fn(|i| self.sync_micros[i].get()),
            sync_micros_sum: self.sync_micros_sum.get(),
            sync_acks: std::array::from_fn(|i| self.sync_acks[i].get()),
            sync_acks_sum: self.sync_acks_sum.get(),
            direct_io: direct_writes && !crate::segment::direct_io_refused(),
        }
    }
}
