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
//! writing them to the device (no wait, no device cache flush), so each step costs a small,
//! steady amount of CPU on the shard's own thread, and the periodic `fdatasync` finds little
//! left to do.
//!
//! Contract: write-back is a scheduling hint and changes no durability level. `Flushed` still
//! means an `fdatasync` completed; a failed write-back step is only logged (the next
//! `fdatasync` reports a failed page write-back itself, see `flusher.rs`). Only whole pages
//! below `written` are handed over: the partial last page is still being appended to.

use std::cell::Cell;

use crate::aligned_buffer::{BLOCK_SIZE, align_down};
use crate::commit_log::CommitLog;
use crate::stats::bump;

/// Where the next write-back step starts (absolute log offset, block-aligned).
#[derive(Default)]
pub(crate) struct WriteBack {
    from: Cell<Option<i64>>,
}

impl WriteBack {
    /// Called by the flusher after a write round moved `written`: starts the write-back of
    /// `[from, written)` (whole pages) when it reaches the configured step.
    pub fn after_write(&self, log: &CommitLog) {
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
        if ((end - from) as u64) < step {
            return;
        }
        self.from.set(Some(end));
        let mut at = from;
        while at < end {
            let segment_start = log.segment_start(at);
            let piece_end = end.min(segment_start + log.file_size as i64);
            let Some(segment) = log.segments.borrow().get(&segment_start).cloned() else {
                // Deleted by retention or cut meanwhile: nothing to write back there.
                at = piece_end;
                continue;
            };
            let position = (at - segment_start) as u64;
            let len = (piece_end - at) as u64;
            debug_assert!(position.is_multiple_of(BLOCK_SIZE as u64));
            match segment.start_write_back(position, len) {
                Ok(()) => bump(&log.stats.write_back_bytes, len),
                Err(error) => {
                    tracing::debug!(%error, shard = log.shard, "starting write-back failed");
                }
            }
            at = piece_end;
        }
    }
}
