//! Paced write-back of a buffered commit log (ASYNC_FLUSH through the page cache).
//!
//! With page-cache writes, everything written since the last `fdatasync` is dirty in the
//! kernel, and the periodic sync (`flush_interval_commit_log`, 500 ms by default) makes the
//! kernel write all of it back at once: ~10 MB at 20k msg/s of 1 KiB. Submitting that much
//! I/O is milliseconds of CPU in one burst on a thread of the broker (the io-wq worker of the
//! sync), which on a machine the broker shares takes a CPU from the threads serving requests:
//! measured on the 2-core VM at 20k msg/s, send p99 7.1 ms with the store on ext4 against
//! 1.1 ms with it on tmpfs (docs/perf.md, "Paced write-back").
//!
//! So the flusher starts the write-back early, in steps: after each write round, once at
//! least `write_back_bytes` of whole pages are written and not yet handed to the kernel's
//! write-back, it calls `sync_file_range(SYNC_FILE_RANGE_WRITE)` on them. That only *starts*
//! writing them to the device (no wait for the I/O, no device cache flush), so the periodic
//! `fdatasync` finds little left to do.
//!
//! Off the shard's thread: starting write-back submits the I/O, and submission blocks while
//! the device is congested (the block layer's write-back throttling, `wbt_wait`, or a full
//! request queue). Made on the shard's thread, the call held every send of the shard for that
//! long, although an ASYNC_FLUSH ack needs nothing from the device (measured with off-CPU
//! stacks: shard threads asleep in `wbt_wait` under `sync_file_range`, docs/perf.md "ASYNC_FLUSH
//! tail at full load"). So each step runs on a blocking thread ([`WriteBackJob`]), at most one
//! per shard at a time: while one is running, the written range keeps growing and the next
//! step covers all of it (started as soon as this one ends), so a slow device gets fewer,
//! larger steps and never a queue of them.
//!
//! Drop-behind (`page_cache_bytes`, broker key `asyncFlushPageCacheBytes`): with each step,
//! the pages more than that many bytes below the step's start are waited for (written to the
//! device) and dropped from the page cache (`POSIX_FADV_DONTNEED`), in a blocking job of its
//! own (at most one per shard at a time): its wait for old pages never holds the next step back.
//! Their memory goes back to the kernel's free lists and takes the next writes, so the page
//! cache of the log stays bounded and the writes reuse warm memory: on a VM whose free memory
//! is handed back to its host, each new page-cache page otherwise costs a first touch
//! (measured: async 4 KiB sends at 70k msg/s without, 110k with, docs/perf.md "Drop-behind").
//! Dropped bytes stay readable, from the device. Pages below the first step of a broker run
//! (written before it started) are left to the kernel.
//!
//! Contract: write-back is a scheduling hint and changes no durability level. `Flushed` still
//! means an `fdatasync` completed; a failed write-back step is only logged (the next
//! `fdatasync` reports a failed page write-back itself, see `flusher.rs`). Only whole pages
//! below `written` are handed over: the partial last page is still being appended to. The
//! shard's thread never waits for a step.

use std::cell::Cell;
use std::rc::Rc;

use crate::aligned_buffer::{BLOCK_SIZE, align_down};
use crate::commit_log::CommitLog;
use crate::segment::{WriteBackJob, WriteBackKind};
use crate::stats::bump;

/// Where the next write-back step starts (absolute log offset, block-aligned), and whether a
/// step is running.
#[derive(Default)]
pub(crate) struct WriteBack {
    from: Cell<Option<i64>>,
    /// Where the next drop-behind range starts (absolute, block-aligned): pages below it were
    /// dropped, or written before this broker started.
    dropped_to: Cell<Option<i64>>,
    in_flight: Rc<Cell<bool>>,
    /// A drop-behind job is running (apart from the steps: waiting for old pages must never
    /// hold the next step back).
    dropping: Rc<Cell<bool>>,
}

impl WriteBack {
    /// Called by the flusher after a write round moved `written`: starts the write-back of
    /// `[from, written)` (whole pages) on a blocking thread when it reaches the configured
    /// step and no step is running. Never blocks.
    pub fn after_write(&self, log: &Rc<CommitLog>) {
        let step = log.cfg.write_back_bytes;
        if step == 0 || log.cfg.direct_writes() {
            return;
        }
        let written = log.written();
        let end = log.base + align_down((written - log.base) as u64) as i64;
        // First call, or `written` moved back (a truncation or a rewind after a failed
        // sync): start again from the last whole page.
        let from = match self.from.get() {
            Some(from) if from <= end => from,
            _ => {
                self.from.set(Some(end));
                return;
            }
        };
        if ((end - from) as u64) < step || self.in_flight.get() {
            return;
        }
        self.from.set(Some(end));
        if !self.dropping.get() {
            let drops = self.drop_behind(log, from);
            spawn_jobs(log, drops, &self.dropping);
        }
        let starts = jobs(log, from, end, WriteBackKind::Start);
        spawn_jobs(log, starts, &self.in_flight);
    }

    /// The drop-behind jobs once write-back starts at `from`: the pages more than
    /// `page_cache_bytes` below it, not dropped yet.
    fn drop_behind(&self, log: &CommitLog, from: i64) -> Vec<WriteBackJob> {
        let keep = log.cfg.page_cache_bytes;
        if keep == 0 {
            return Vec::new();
        }
        let start = match self.dropped_to.get() {
            Some(start) if start <= from => start,
            // First step, or the log was cut below what was dropped: the pages below `from`
            // stay to the kernel (written before this broker started, or cut).
            _ => {
                self.dropped_to.set(Some(from));
                return Vec::new();
            }
        };
        let to = from - align_down(keep) as i64;
        if to - start < log.cfg.write_back_bytes as i64 {
            return Vec::new();
        }
        // Only pages already handed to write-back are ever dropped, each range once.
        assert!(
            start < to && to <= from,
            "drop-behind {start}..{to} past {from}"
        );
        self.dropped_to.set(Some(to));
        jobs(log, start, to, WriteBackKind::DropBehind)
    }
}

/// Runs `jobs` on a blocking thread with `busy` set meanwhile, counts what they did, and
/// looks for the next step once they are done (what was written while they ran).
fn spawn_jobs(log: &Rc<CommitLog>, jobs: Vec<WriteBackJob>, busy: &Rc<Cell<bool>>) {
    if jobs.is_empty() {
        return;
    }
    busy.set(true);
    let busy = busy.clone();
    let log = Rc::downgrade(log);
    compio::runtime::spawn(async move {
        let done = compio::runtime::spawn_blocking(move || run(&jobs)).await;
        busy.set(false);
        let Some(log) = log.upgrade() else { return };
        match done {
            Ok((started, dropped)) => {
                bump(&log.stats.write_back_bytes, started);
                bump(&log.stats.page_cache_dropped_bytes, dropped);
            }
            Err(_) => tracing::error!(shard = log.shard, "write-back thread panicked"),
        }
        log.write_back.after_write(&log);
    })
    .detach();
}

/// The write-back of `[from, end)`, one job per segment it touches.
fn jobs(log: &CommitLog, from: i64, end: i64, kind: WriteBackKind) -> Vec<WriteBackJob> {
    let mut jobs = Vec::with_capacity(1);
    let mut at = from;
    while at < end {
        let segment_start = log.segment_start(at);
        let piece_end = end.min(segment_start + log.file_size as i64);
        let segment = log.segments.borrow().get(&segment_start).cloned();
        // None: deleted by retention or cut meanwhile, nothing to write back there.
        if let Some(segment) = segment {
            let position = (at - segment_start) as u64;
            debug_assert!(position.is_multiple_of(BLOCK_SIZE as u64));
            match segment.write_back_job(position, (piece_end - at) as u64, kind) {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(%error, shard = log.shard, "preparing write-back failed");
                }
            }
        }
        at = piece_end;
    }
    jobs
}

/// Runs on a blocking thread: runs each job, returns the bytes handed to write-back and the
/// bytes dropped from the page cache.
fn run(jobs: &[WriteBackJob]) -> (u64, u64) {
    let (mut started, mut dropped) = (0, 0);
    for job in jobs {
        match (job.run(), job.kind()) {
            (Ok(()), WriteBackKind::Start) => started += job.bytes(),
            (Ok(()), WriteBackKind::DropBehind) => dropped += job.bytes(),
            (Err(error), kind) => tracing::debug!(%error, ?kind, "write-back job failed"),
        }
    }
    (started, dropped)
}
