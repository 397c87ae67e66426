//! Store configuration (the subset of RocketMQ's `MessageStoreConfig` the storage engine reads)
//! and the durability vocabulary. `validate` runs in `StoreLayout::open` and `ShardStore::open`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::aligned_buffer::BLOCK_SIZE;
use crate::consume_queue::ENTRY_SIZE;
use crate::error::StoreError;
use crate::faults::DiskFaults;

pub use rmq_core::config::DsyncWrites;

/// RocketMQ `flushDiskType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// SYNC_FLUSH: every write is followed by `fdatasync`; senders wait for `Flushed`.
    Sync,
    /// ASYNC_FLUSH: senders wait for `Written`; `fdatasync` runs on a timer.
    Async,
}

/// How far an appended byte has travelled; see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Appended,
    Written,
    Flushed,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub root_dir: PathBuf,
    pub commit_log_dir: PathBuf,
    pub consume_queue_dir: PathBuf,
    /// Reserved for a RocketMQ-format aggregate checkpoint; shards write
    /// `root_dir/shard-{n}.checkpoint`.
    pub checkpoint_path: PathBuf,
    pub abort_path: PathBuf,
    /// Segment size, a multiple of 4096 (RocketMQ `mappedFileSizeCommitLog`, default 1 GiB).
    pub commit_log_file_size: u64,
    /// Consume queue file size, a multiple of 20 (default 300,000 entries).
    pub consume_queue_file_size: u64,
    pub flush_mode: FlushMode,
    /// Write commit log segments with `O_DIRECT` (true) or through the page cache (false).
    /// `Written` means "in the kernel" either way, so both survive `kill -9`; buffered writes
    /// make an ASYNC_FLUSH ack cost a copy into the page cache (as RocketMQ's mmap does)
    /// instead of a device write. SYNC_FLUSH always writes with `O_DIRECT`
    /// (see [`StoreConfig::direct_writes`]). Default false (broker key `asyncFlushDirectIo`).
    pub direct_io: bool,
    /// SYNC_FLUSH: which writes go through an `O_DIRECT | O_DSYNC` descriptor, durable when
    /// they complete (the kernel flushes the device cache, or writes FUA, before completing
    /// them), so the round costs one trip from the shard to the kernel instead of a write and
    /// then an `fdatasync`. Ignored under ASYNC_FLUSH. Broker key `syncFlushDsyncWrites`:
    /// - `Auto` (default): as `Idle`, and loaded rounds write `O_DSYNC` unless the shard last
    ///   measured the overlap to flush more, by more than 5%, on its own traffic
    ///   (`loaded_writes.rs`): a tie, a load the disk keeps up with either way, goes to the
    ///   cheaper `O_DSYNC` round.
    /// - `Idle`: a round that starts with nothing in flight (everything before it
    ///   flushed, no sync running, the previous round not cut short by new appends), i.e. a
    ///   lone or lightly loaded sender, whose ack then waits for one device operation instead
    ///   of two in a row; under load the rounds write and `fdatasync`, overlapping (measured
    ///   in docs/perf.md: a third more throughput with one sender).
    /// - `Always`: every write. On the development VM's slow-disk days it lost a third of
    ///   the throughput with 64 producers, because a write and the previous round's
    ///   `fdatasync` no longer overlap.
    /// - `Never`: every round writes, then syncs.
    pub sync_flush_dsync_writes: DsyncWrites,
    /// SYNC_FLUSH group commit delay: a round that follows a loaded round (sends arrived
    /// while its write was in flight) waits until this long after that round started, unless
    /// [`StoreConfig::sync_group_no_delay_count`] sends already wait, so one device request
    /// covers more sends (`flusher.rs`, `GroupWait`). A round after an idle spell never
    /// waits. Zero: off. Broker key `syncFlushGroupDelayMicros`; default 500 µs, probed
    /// ([`StoreConfig::sync_group_delay_probe`]).
    pub sync_group_delay: Duration,
    /// Sends waiting for `Flushed` that end a group commit delay early (0: none do). Broker
    /// key `syncFlushGroupNoDelayCount`, default 32.
    pub sync_group_no_delay_count: usize,
    /// Whether the shard uses [`StoreConfig::sync_group_delay`] only while its probe finds
    /// that delayed rounds flush as much as undelayed ones (`group_delay.rs`): true keeps a
    /// few producers that wait for each ack at full speed; false delays every round after a
    /// loaded one. Broker key `syncFlushGroupDelayProbe`.
    pub sync_group_delay_probe: bool,
    pub sync_flush_timeout: Duration,
    pub flush_interval_commit_log: Duration,
    pub flush_commit_log_least_pages: u32,
    pub flush_commit_log_thorough_interval: Duration,
    /// Page-cache writes only: once this many bytes of whole pages are written and not yet
    /// handed to the kernel's write-back, the flusher starts writing them to the device
    /// (`write_back.rs`), so the periodic sync is not one burst of write-back. 0 = off (the
    /// kernel writes back at the sync). Default 512 KiB (broker key `asyncFlushWriteBackBytes`).
    pub write_back_bytes: u64,
    /// Page-cache writes with write-back on only: how much of the commit log, behind the
    /// start of the latest write-back step, stays in the page cache; older pages are dropped
    /// (`write_back.rs`, "Drop-behind"). 0 = off (the kernel's LRU decides). Broker key
    /// `asyncFlushPageCacheBytes`.
    pub page_cache_bytes: u64,
    pub flush_interval_consume_queue: Duration,
    /// With `message_index_safe`, how often the consume queue flusher also `fdatasync`s the
    /// index files; without it the index is synced only when a file fills up and when
    /// stopping, as RocketMQ does. Index pages are written at random through a shared
    /// mapping: every sync cleans them and the next write to each faults (syncing with every
    /// consume queue flush cost ~10% of the broker's CPU at 20k msg/s), and a sync writes
    /// ~20 MB of scattered pages that the commit log's next device flush waits behind
    /// (SYNC_FLUSH send p99 at 13k msg/s: 107 ms with a 10 s sync, 23 ms without). With
    /// `message_index_safe` the checkpoint's `consume_queue_safe` never passes what the
    /// index has synced, so recovery after a power loss re-indexes what the index may lack.
    /// Default 10 s.
    pub index_sync_interval: Duration,
    /// `messageIndexSafe`: the abnormal-recovery point also covers the index (RocketMQ: the
    /// checkpoint's index timestamp bounds recovery). Default false, as in RocketMQ: after a
    /// *power loss* keys indexed since the index file was started may be missing from
    /// QUERY_MESSAGE (after a process crash nothing is: the mapping's pages survive it), and
    /// recovery rescans no more than the consume queues need.
    pub message_index_safe: bool,
    /// Upper bound of one pull's body (256 KiB).
    pub max_transfer_bytes: usize,
    /// Upper bound of one pull's message count (32).
    pub max_transfer_count: usize,
    /// Shard count written into a *new* store; an existing store keeps its count.
    pub requested_shard_count: u32,
    /// Bytes a shard may hold appended but not yet flushed (RocketMQ has no such key: its
    /// page cache is the limit). Past it appends fail with `WriteBacklog`, so a disk that
    /// keeps failing cannot make the broker grow without bound.
    pub max_unwritten_bytes: usize,
    /// Directory of the index files (`storePathIndex`); each shard has its own files in it.
    pub index_dir: PathBuf,
    /// `messageIndexEnable`: index UNIQ_KEY and KEYS for QUERY_MESSAGE.
    pub message_index_enable: bool,
    /// `maxHashSlotNum`: hash slots of one index file.
    pub max_hash_slot_num: u32,
    /// `maxIndexNum`: entries of one index file.
    pub max_index_num: u32,
    /// Controller mode (`storePathEpochFile`): where shard 0's epoch history lives (shard
    /// `n > 0`: the same path with `.shard-{n}` appended; `epoch_history.rs`). `None` (classic
    /// master/slave): no epoch history.
    pub epoch_file: Option<PathBuf>,
    /// SYNC_FLUSH: the sync rounds of all shards of the process run as one cohort
    /// (`sync_cohort.rs`); every shard's config holds the same one. `None`: each shard syncs
    /// on its own.
    pub sync_cohort: Option<Arc<crate::SyncCohort>>,
    /// Fault injection below the commit log (tests only; `None` in production).
    pub faults: Option<Arc<dyn DiskFaults>>,
}

impl StoreConfig {
    /// RocketMQ defaults under `root_dir`.
    pub fn new(root_dir: impl AsRef<Path>) -> StoreConfig {
        let root_dir = root_dir.as_ref().to_path_buf();
        let index_dir = root_dir_index(&root_dir);
        StoreConfig {
            commit_log_dir: root_dir.join("commitlog"),
            consume_queue_dir: root_dir.join("consumequeue"),
            checkpoint_path: root_dir.join("checkpoint"),
            abort_path: root_dir.join("abort"),
            root_dir,
            commit_log_file_size: 1 << 30,
            consume_queue_file_size: 300_000 * ENTRY_SIZE as u64,
            flush_mode: FlushMode::Async,
            direct_io: false,
            sync_flush_dsync_writes: DsyncWrites::Auto,
            sync_group_delay: Duration::from_micros(500),
            sync_group_no_delay_count: 32,
            sync_group_delay_probe: true,
            sync_flush_timeout: Duration::from_secs(5),
            flush_interval_commit_log: Duration::from_millis(500),
            flush_commit_log_least_pages: 4,
            flush_commit_log_thorough_interval: Duration::from_secs(10),
            write_back_bytes: 512 << 10,
            page_cache_bytes: 0,
            flush_interval_consume_queue: Duration::from_secs(1),
            index_sync_interval: Duration::from_secs(10),
            message_index_safe: false,
            max_transfer_bytes: 256 * 1024,
            max_transfer_count: 32,
            requested_shard_count: 1,
            max_unwritten_bytes: 256 << 20,
            index_dir,
            message_index_enable: true,
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            epoch_file: None,
            sync_cohort: None,
            faults: None,
        }
    }

    pub fn validate(&self) -> Result<(), StoreError> {
        let fail = |reason: String| Err(StoreError::Config(reason));
        let size = self.commit_log_file_size;
        if size < 16 * BLOCK_SIZE as u64 || !size.is_multiple_of(BLOCK_SIZE as u64) {
            return fail(format!(
                "commit_log_file_size {size} must be a multiple of {BLOCK_SIZE} and >= 64 KiB"
            ));
        }
        if size >= 1 << crate::SHARD_SHIFT {
            return fail(format!(
                "commit_log_file_size {size} exceeds a shard's offset range"
            ));
        }
        let cq_size = self.consume_queue_file_size;
        if cq_size == 0 || !cq_size.is_multiple_of(ENTRY_SIZE as u64) {
            return fail(format!(
                "consume_queue_file_size {cq_size} must be a positive multiple of 20"
            ));
        }
        let shards = self.requested_shard_count;
        if shards == 0 || shards > crate::MAX_SHARD_COUNT {
            return fail(format!("requested_shard_count {shards} must be in 1..=128"));
        }
        if self.max_hash_slot_num == 0 || self.max_index_num < 2 {
            return fail("max_hash_slot_num must be positive and max_index_num >= 2".into());
        }
        if self.max_unwritten_bytes < 2 * self.max_record_size().min(64 << 20) {
            return fail(format!(
                "max_unwritten_bytes {} must hold two of the largest records",
                self.max_unwritten_bytes
            ));
        }
        if self.max_transfer_count == 0 || self.max_transfer_bytes == 0 {
            return fail("max_transfer_count and max_transfer_bytes must be positive".into());
        }
        Ok(())
    }

    /// Whether segments are written with `O_DIRECT`: always under SYNC_FLUSH (group commit
    /// writes and syncs the same bytes once), else as `direct_io` says.
    pub fn direct_writes(&self) -> bool {
        self.flush_mode == FlushMode::Sync || self.direct_io
    }

    pub(crate) fn segment_io(&self) -> crate::segment::SegmentIo {
        crate::segment::SegmentIo {
            direct: self.direct_writes(),
            dsync: self.flush_mode == FlushMode::Sync
                && self.sync_flush_dsync_writes == DsyncWrites::Always,
            durable_writes: self.flush_mode == FlushMode::Sync
                && matches!(
                    self.sync_flush_dsync_writes,
                    DsyncWrites::Idle | DsyncWrites::Auto
                ),
            faults: self.faults.clone(),
        }
    }

    /// Largest record (or batch) that fits a segment next to its end-of-file filler.
    pub fn max_record_size(&self) -> usize {
        (self.commit_log_file_size - 8) as usize
    }

    /// The index file directory of one shard.
    pub(crate) fn shard_index_dir(&self, shard: u32) -> PathBuf {
        self.index_dir.join(format!("shard-{shard}"))
    }

    pub(crate) fn shard_checkpoint_path(&self, shard: u32) -> PathBuf {
        self.root_dir.join(format!("shard-{shard}.checkpoint"))
    }

    /// The epoch history file of one shard (controller mode).
    pub(crate) fn shard_epoch_path(&self, shard: u32) -> Option<PathBuf> {
        let base = self.epoch_file.as_ref()?;
        if shard == 0 {
            return Some(base.clone());
        }
        let mut name = base.clone().into_os_string();
        name.push(format!(".shard-{shard}"));
        Some(PathBuf::from(name))
    }

    pub(crate) fn shard_count_path(&self) -> PathBuf {
        self.root_dir.join("shards")
    }
}

fn root_dir_index(root_dir: &Path) -> PathBuf {
    root_dir.join("index")
}
