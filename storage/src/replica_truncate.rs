//! [`ShardStore::truncate_replica`]: a slave whose log is ahead of its master's written offset
//! (the master lost an unwritten tail in a crash, or the stores diverged) cuts its log back to
//! that offset before it replicates again. [`ShardStore::reset_empty_replica`]: an empty
//! slave's log begins at a later segment start (its master's retention deleted the offsets
//! before; see that method for its crash-safe order).
//!
//! Contract: only for a slave's shard, while nothing appends to it (no ordinary appends, the
//! shard's replication stream stopped). `to` must be a record boundary of this log, or lie in
//! the zero fill after a segment's BLANK filler (then the log is cut at the next segment's
//! start, keeping the filler). Order of the steps, so a crash at any point leaves a store that
//! recovery opens consistently (either the old log or a prefix of it down to `to`; the next
//! handshake truncates again):
//! 1. the appended bytes and the consume queues are flushed, and a checkpoint whose offsets
//!    do not exceed `to` is written, so recovery never starts its scan past `to`;
//! 2. in memory the log ends at `to` (offsets, tail memory, segment map); from here until
//!    step 5 is done, `append_replicated` fails with `TruncationPending` and the next
//!    `truncate_replica` call first finishes steps 3 to 5;
//! 3. on disk the stale bytes of `to`'s segment are zeroed from their end backwards (a crash
//!    leaves old records followed by zeros, never zeros followed by old records, which a later
//!    append could make recovery accept again), then the later segment files are deleted;
//! 4. consume queue entries pointing at or past `to` are dropped in memory and on disk (a
//!    queue left empty is removed: the master's records re-create it at its own offsets);
//! 5. the index keeps its stale entries (lookups re-read and verify every record), but its
//!    newest file stops claiming to cover offsets from `to` on, so recovery re-indexes them;
//! 6. in controller mode the epoch history drops the entries starting at or past `to`
//!    (`replica_epochs.rs`; a crash before that leaves entries past the end of the log, which
//!    loading the history drops).

use std::rc::Rc;

use bytes::BytesMut;
use rmq_core::message::{RecordError, parse_record};

use crate::aligned_buffer::{AlignedBuffer, BLOCK_SIZE, align_down, align_up};
use crate::config::Durability;
use crate::consume_queue::ConsumeQueue;
use crate::error::StoreError;
use crate::segment::{Segment, sync_dir};
use crate::shard_store::ShardStore;

/// Size of one zeroing write.
const ZERO_WINDOW_BYTES: u64 = 4 << 20;

/// A truncation done in memory whose files are not all rewritten yet.
#[derive(Clone)]
pub(crate) struct PendingCut {
    to: i64,
    /// End of the stale bytes in `to`'s segment.
    stale_end: i64,
    /// The bytes `[align_down(to), to)`.
    tail_block: Vec<u8>,
    /// Segment files after `to`'s, to delete.
    beyond: Vec<Rc<Segment>>,
}

impl ShardStore {
    /// Cuts this slave's log back to `to` (see the module docs).
    ///
    /// # Errors
    /// `TruncateOutOfRange` when `to` is outside `[oldest_offset, max_physical_offset]`;
    /// `NotRecordBoundary` when no record starts at `to`; `ShuttingDown`; `Io` and
    /// `FlushTimeout` from flushing or rewriting the files: repeat the call (a cut already
    /// made in memory is finished first; recovery after a crash is consistent either way).
    pub async fn truncate_replica(&self, to: i64) -> Result<(), StoreError> {
        if self.shutting_down.get() {
            return Err(StoreError::ShuttingDown);
        }
        let _gate = self.queue_flush_gate.lock().await;
        self.finish_cut().await?;
        let (oldest, end) = (self.oldest_offset(), self.log.appended());
        if to < oldest || to > end {
            return Err(StoreError::TruncateOutOfRange {
                shard: self.shard,
                to,
                oldest,
                end,
            });
        }
        self.wait_durable(end, Durability::Flushed).await?;
        let to = self.cut_point(to, end).await?;
        if to == end {
            return Ok(());
        }
        let block_start = self.log.base + align_down((to - self.log.base) as u64) as i64;
        let mut tail_block = BytesMut::new();
        self.log
            .read_into(
                block_start,
                (to - block_start) as usize,
                &mut None,
                &mut tail_block,
            )
            .await?;
        // Step 1: recovery never starts past `to` from now on.
        self.revalidation_points.borrow_mut().retain(|&p| p <= to);
        self.flush_queues_and_checkpoint_gated(to).await?;
        while self.log.preparing.get().is_some() {
            self.log.prepared.wait().await;
        }
        // No await from here to the cut.
        self.assert_untouched(end);
        let segment_start = self.log.segment_start(to);
        let Some(segment) = self.log.segments.borrow().get(&segment_start).cloned() else {
            // Retention deleted it meanwhile.
            return Err(StoreError::TruncateOutOfRange {
                shard: self.shard,
                to,
                oldest: self.oldest_offset(),
                end,
            });
        };
        tracing::warn!(
            shard = self.shard,
            from = end,
            to,
            dropped = end - to,
            "truncating the log tail the master does not have"
        );
        // Step 2, then the rest (repeated by the next call if it fails).
        let beyond = self.log.cut_to(to, &tail_block);
        *self.pending_cut.borrow_mut() = Some(PendingCut {
            to,
            stale_end: end.min(segment.end()),
            tail_block: tail_block.to_vec(),
            beyond,
        });
        self.finish_cut().await?;
        assert_eq!(
            self.log.appended(),
            to,
            "nothing appended during the truncation"
        );
        Ok(())
    }

    /// Makes this slave's EMPTY log begin at `start`, a segment boundary above the shard
    /// base: the master no longer holds the start of the shard (retention deleted it), so an
    /// empty slave starts where the master's newest segment starts (RocketMQ's slave with
    /// offset 0 starts at the master's last file). Afterwards the log is empty and ends at
    /// `start`; the master's records from there are appended with `append_replicated` and
    /// create the consume queues at the master's queue offsets.
    ///
    /// Preconditions (asserted): nothing was ever appended (`max_physical_offset` is the shard
    /// base), no truncation pending, no consume queue holds an entry; nothing appends
    /// meanwhile. Order, so a crash at any point recovers either the empty log at the base or
    /// the empty log at `start`: the segment at `start` is created (and its directory synced),
    /// the segments below are deleted, then the log restarts at `start` in memory and a
    /// checkpoint at `start` is written (recovery scans from the first segment anyway when
    /// the checkpoint points below it).
    ///
    /// # Errors
    /// `ShuttingDown`; `Io` from creating or deleting segment files or writing the
    /// checkpoint: the log is still empty (at the base or at `start`), repeat the call.
    pub async fn reset_empty_replica(&self, start: i64) -> Result<(), StoreError> {
        if self.shutting_down.get() {
            return Err(StoreError::ShuttingDown);
        }
        let base = self.log.base;
        let file_size = self.log.file_size as i64;
        assert!(
            start >= base && (start - base) % file_size == 0,
            "reset_empty_replica({start}): not a segment boundary of shard {}",
            self.shard
        );
        let _gate = self.queue_flush_gate.lock().await;
        if self.log.appended() == start && self.oldest_offset() == start {
            return Ok(());
        }
        assert_eq!(
            self.log.appended(),
            base,
            "reset_empty_replica needs an empty log"
        );
        assert!(self.pending_cut.borrow().is_none(), "no truncation pending");
        let queues = self.all_queues();
        for queue in &queues {
            assert_eq!(
                queue.min_offset(),
                queue.max_offset(),
                "an empty log has empty consume queues"
            );
        }
        if start == base {
            return Ok(());
        }
        while self.log.preparing.get().is_some() {
            self.log.prepared.wait().await;
        }
        let segment = Segment::create(
            &self.cfg.commit_log_dir,
            start,
            self.log.file_size,
            false,
            &self.cfg.segment_io(),
        )
        .await?;
        let below: Vec<Rc<Segment>> = self
            .log
            .segments
            .borrow()
            .values()
            .filter(|s| s.start != start)
            .cloned()
            .collect();
        for stale in &below {
            match std::fs::remove_file(&stale.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove", &stale.path, 0, e)),
            }
        }
        sync_dir(&self.cfg.commit_log_dir).await?;
        assert_eq!(
            self.log.appended(),
            base,
            "nothing appended during the reset"
        );
        let forgotten = self.log.restart_at(start, Rc::new(segment));
        assert_eq!(
            forgotten.len(),
            below.len(),
            "the deleted segments are forgotten"
        );
        // Empty queues left from an earlier run are dropped: the master's records re-create
        // them at its queue offsets.
        for queue in queues {
            self.remove_queue(&queue)?;
        }
        self.queues
            .borrow_mut()
            .retain(|_, by_id| !by_id.is_empty());
        {
            let mut points = self.revalidation_points.borrow_mut();
            points.clear();
            points.push_back(start);
        }
        tracing::warn!(
            shard = self.shard,
            start,
            "empty slave log restarts at the master's newest segment"
        );
        self.flush_queues_and_checkpoint_gated(start).await
    }

    /// Steps 3 to 5 of a cut made in memory, if one is pending.
    async fn finish_cut(&self) -> Result<(), StoreError> {
        let Some(cut) = self.pending_cut.borrow().clone() else {
            return Ok(());
        };
        assert_eq!(
            self.log.appended(),
            cut.to,
            "nothing appends during a pending cut"
        );
        let segment_start = self.log.segment_start(cut.to);
        let segment = self.log.segments.borrow()[&segment_start].clone();
        zero_stale(&segment, cut.to, cut.stale_end, &cut.tail_block).await?;
        for stale in cut.beyond.iter().rev() {
            match std::fs::remove_file(&stale.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove", &stale.path, 0, e)),
            }
        }
        if !cut.beyond.is_empty() {
            sync_dir(&self.cfg.commit_log_dir).await?;
        }
        self.truncate_queues(cut.to).await?;
        self.index.forget_from(cut.to);
        self.index.sync().await?;
        // After the log: a crash before this leaves entries past the end, dropped at open.
        self.truncate_epochs_from(cut.to)?;
        *self.pending_cut.borrow_mut() = None;
        Ok(())
    }

    /// True after a `truncate_replica` that failed after cutting the log in memory: call it
    /// again (with `max_physical_offset`) before replicating.
    pub fn truncation_pending(&self) -> bool {
        self.pending_cut.borrow().is_some()
    }

    fn assert_untouched(&self, end: i64) {
        assert_eq!(
            self.log.appended(),
            end,
            "truncate_replica runs while nothing appends"
        );
        assert_eq!(self.log.flushed(), end, "everything appended was flushed");
    }

    /// Where the log is cut for a requested `to` (`to` itself, or the next segment's start
    /// when `to` lies in the zero fill or inside the filler closing its segment); checks
    /// that a record, a filler or the end of the log is there.
    async fn cut_point(&self, to: i64, end: i64) -> Result<i64, StoreError> {
        let segment_start = self.log.segment_start(to);
        let segment_end = segment_start + self.log.file_size as i64;
        if to == end || to == segment_start {
            return Ok(to);
        }
        let from = (to - 7).max(segment_start);
        let upto = (to + 8).min(segment_end).min(end);
        let mut bytes = BytesMut::new();
        self.log
            .read_into(from, (upto - from) as usize, &mut None, &mut bytes)
            .await?;
        let closes_segment = |at: i64| match parse_record(&bytes[(at - from) as usize..]) {
            Err(RecordError::Blank { size }) => at + size as i64 == segment_end,
            _ => false,
        };
        if closes_segment(to) {
            return Ok(to);
        }
        let here = &bytes[(to - from) as usize..];
        if (from..to).any(closes_segment) || here.iter().all(|&b| b == 0) {
            // Zeros inside the log only follow a filler; the log goes on in the next segment.
            if end < segment_end {
                return Err(self.not_boundary(to, "zeros before the end of the log"));
            }
            return Ok(segment_end);
        }
        if here.len() < 8 {
            return Err(self.not_boundary(to, "too close to the segment end"));
        }
        let size = i32::from_be_bytes(here[..4].try_into().expect("4 bytes"));
        if size < 8 || to + size as i64 > end {
            return Err(self.not_boundary(to, "no record size there"));
        }
        bytes.clear();
        self.log
            .read_into(to, size as usize, &mut None, &mut bytes)
            .await?;
        match parse_record(&bytes) {
            Ok(record) if record.physical_offset() == to && record.crc_ok() => Ok(to),
            Ok(_) => Err(self.not_boundary(to, "PHYSICALOFFSET or CRC mismatch")),
            Err(error) => Err(self.not_boundary(to, &format!("{error}"))),
        }
    }

    fn not_boundary(&self, to: i64, reason: &str) -> StoreError {
        StoreError::NotRecordBoundary {
            shard: self.shard,
            to,
            reason: reason.to_string(),
        }
    }

    /// Drops the consume queue entries pointing at or past `to` (a record boundary, so the
    /// entries below it end at or before it) and removes queues left empty.
    async fn truncate_queues(&self, to: i64) -> Result<(), StoreError> {
        let queues = self.all_queues();
        for queue in queues {
            let cut = queue.truncate_beyond(to).await?;
            if cut == 0 {
                continue;
            }
            tracing::info!(
                shard = self.shard,
                topic = queue.topic,
                queue_id = queue.queue_id,
                cut,
                next = queue.max_offset(),
                "dropped consume queue entries of the truncated tail"
            );
            if queue.max_offset() == queue.min_offset() {
                self.remove_queue(&queue)?;
            }
        }
        Ok(())
    }

    /// Forgets an empty consume queue and deletes its directory (the master's records
    /// re-create it at the master's queue offsets).
    fn remove_queue(&self, queue: &ConsumeQueue) -> Result<(), StoreError> {
        queue.deleted.set(true);
        if let Some(by_id) = self.queues.borrow_mut().get_mut(&queue.topic) {
            by_id.remove(&queue.queue_id);
        }
        match std::fs::remove_dir_all(&queue.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove_dir", &queue.dir, 0, e)),
        }
    }
}

/// Zeroes the segment's bytes `[to, stale_end)`, last window first and each one synced,
/// keeping `tail_block` (the bytes `[align_down(to), to)`) in the first block. Whenever it
/// stops (error, crash), the segment holds the log, then possibly old records, then zeros:
/// recovery ends the log at the first invalid record and zeroes the rest of that window.
async fn zero_stale(
    segment: &Segment,
    to: i64,
    stale_end: i64,
    tail_block: &[u8],
) -> Result<(), StoreError> {
    let relative = (to - segment.start) as u64;
    let first = align_down(relative);
    assert_eq!(
        (relative - first) as usize,
        tail_block.len(),
        "the tail block is the start of `to`'s block"
    );
    let last = align_up((stale_end - segment.start) as u64).min(segment.size);
    let mut window_end = last;
    while window_end > first {
        let window_start = first.max(align_down(window_end.saturating_sub(ZERO_WINDOW_BYTES)));
        let len = (window_end - window_start) as usize;
        let mut zeros = AlignedBuffer::zeroed(len);
        if window_start == first {
            zeros.as_full_mut_slice()[..tail_block.len()].copy_from_slice(tail_block);
        }
        assert!(len.is_multiple_of(BLOCK_SIZE));
        segment.write_at(zeros, window_start).await?;
        // In order on disk too: stale bytes never survive behind zeros.
        segment.sync().await?;
        window_end = window_start;
    }
    Ok(())
}
