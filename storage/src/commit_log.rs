//! One shard's commit log: segment files, the in-memory tail and the three durability offsets.
//!
//! Contract (see the crate docs for the levels):
//! - `reserve` + `push` run synchronously inside `append`: they never await and never fail
//!   for I/O reasons; the bytes are readable at once.
//! - `appended >= written >= flushed`, all monotonic (asserted on every update) except for
//!   `cut_to`, a slave's truncation (`replica_truncate.rs`), which moves all three back at
//!   once while the flusher is idle, and `rewind_written_to_flushed` after a failed sync
//!   (`written` back to `flushed`, to write those bytes again). Only the flusher
//!   (`flusher.rs`) advances `written` and `flushed`, and only after the I/O completed.
//! - The tail keeps every byte at or after the block holding `flushed` (asserted by the
//!   rewind), so the bytes of a failed sync can always be written again.
//! - A record never spans segments: when `record + 8 > remaining`, an 8-byte BLANK filler
//!   `[remaining][BLANK_MAGIC_CODE]` closes the segment and the record starts the next one.
//! - Segment files are created by the flusher or, ahead of time, by a background preparation
//!   task once the current segment is half full; never both for the same segment.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::BytesMut;
use rmq_core::message::BLANK_MAGIC_CODE;

use crate::aligned_buffer::{AlignedBuffer, BLOCK_SIZE, align_down, align_up};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::segment::Segment;
use crate::stats::{StatsCells, bump};
use crate::tail_memory::TailMemory;
use crate::waiters::{DurabilityWaiters, Signal};
use crate::write_back::WriteBack;

/// Read-ahead of a disk read that serves old messages, so a pull of neighbouring messages
/// costs one I/O.
const READ_AHEAD_BYTES: usize = 64 << 10;

pub(crate) struct CommitLog {
    pub cfg: StoreConfig,
    pub shard: u32,
    pub base: i64,
    pub dir: PathBuf,
    pub file_size: u64,
    pub tail: RefCell<TailMemory>,
    pub segments: RefCell<BTreeMap<i64, Rc<Segment>>>,
    appended: Cell<i64>,
    written: Cell<i64>,
    flushed: Cell<i64>,
    /// Store timestamp of the last appended record (checkpoint information).
    pub last_store_timestamp: Cell<i64>,
    /// Segments written since the last `fdatasync`.
    pub unsynced: RefCell<BTreeMap<i64, Rc<Segment>>>,
    /// Start of the segment the background task is preparing.
    pub preparing: Cell<Option<i64>>,
    /// The background preparation task: dropped with the log, which cancels it, so a log
    /// dropped without a shutdown (a simulated crash, a reopened store) leaves no task that
    /// goes on creating and renaming a file in the directory the next instance owns.
    preparation: RefCell<Option<compio::runtime::JoinHandle<()>>>,
    pub prepared: Rc<Signal>,
    /// Replication streams waiting for `appended` to pass an offset (released by `push`).
    pub appended_waiters: DurabilityWaiters,
    pub written_waiters: DurabilityWaiters,
    pub flushed_waiters: DurabilityWaiters,
    /// Wakes the flusher: new data, a new `Flushed` waiter, or shutdown.
    pub flusher_signal: Rc<Signal>,
    pub stopping: Cell<bool>,
    pub stats: StatsCells,
    /// Number of `cut_to` calls: a disk window read before a cut is not reused after it.
    cuts: Cell<u64>,
    /// Paced write-back of page-cache writes (driven by the flusher).
    pub write_back: WriteBack,
}

/// A cached disk window for consecutive reads of old data.
pub(crate) struct DiskWindow {
    start: i64,
    /// Bytes below this offset were written before the window was read.
    valid_end: i64,
    /// `CommitLog::cuts` when the window was read.
    cuts: u64,
    buffer: AlignedBuffer,
}

impl CommitLog {
    pub fn new(
        cfg: StoreConfig,
        shard: u32,
        segments: BTreeMap<i64, Rc<Segment>>,
        end: i64,
        tail_block: &[u8],
    ) -> CommitLog {
        let base = crate::shard_base(shard);
        let mut tail = TailMemory::new(base, end, tail_retain_bytes(&cfg));
        assert_eq!(
            tail.start() + tail_block.len() as i64,
            end,
            "tail block must reach end"
        );
        tail.append(tail.start(), tail_block);
        CommitLog {
            dir: cfg.commit_log_dir.clone(),
            file_size: cfg.commit_log_file_size,
            cfg,
            shard,
            base,
            tail: RefCell::new(tail),
            segments: RefCell::new(segments),
            appended: Cell::new(end),
            written: Cell::new(end),
            flushed: Cell::new(end),
            last_store_timestamp: Cell::new(0),
            unsynced: RefCell::new(BTreeMap::new()),
            preparing: Cell::new(None),
            preparation: RefCell::new(None),
            prepared: Rc::new(Signal::default()),
            appended_waiters: DurabilityWaiters::default(),
            written_waiters: DurabilityWaiters::default(),
            flushed_waiters: DurabilityWaiters::default(),
            flusher_signal: Rc::new(Signal::default()),
            stopping: Cell::new(false),
            stats: StatsCells::default(),
            cuts: Cell::new(0),
            write_back: WriteBack::default(),
        }
    }

    pub fn appended(&self) -> i64 {
        self.appended.get()
    }

    pub fn written(&self) -> i64 {
        self.written.get()
    }

    pub fn flushed(&self) -> i64 {
        self.flushed.get()
    }

    pub fn segment_start(&self, offset: i64) -> i64 {
        assert!(offset >= self.base);
        self.base + ((offset - self.base) as u64 / self.file_size * self.file_size) as i64
    }

    /// Picks the position of a `len`-byte append, closing the current segment with a BLANK
    /// filler when the bytes plus a future filler do not fit. Never awaits.
    pub fn reserve(&self, len: usize) -> Result<i64, StoreError> {
        let max = self.cfg.max_record_size();
        if len > max {
            return Err(StoreError::MessageTooLarge { size: len, max });
        }
        let position = self.appended.get();
        let segment_end = self.segment_start(position) + self.file_size as i64;
        let remaining = (segment_end - position) as usize;
        assert!(remaining >= 8, "a segment always keeps room for its filler");
        if len + 8 <= remaining {
            return Ok(position);
        }
        let mut filler = [0u8; 8];
        filler[..4].copy_from_slice(&(remaining as i32).to_be_bytes());
        filler[4..].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
        let mut tail = self.tail.borrow_mut();
        tail.append(position, &filler);
        tail.skip_to(segment_end);
        self.set_appended(segment_end);
        Ok(segment_end)
    }

    /// A slave's truncation (see `replica_truncate.rs`): the log now ends at `to`, a record
    /// boundary. Everything appended must be flushed (the flusher is idle) and `tail_block`
    /// must hold the bytes `[align_down(to), to)`. Forgets the segments after `to`'s and
    /// returns them, for the caller to delete. Never awaits.
    pub fn cut_to(&self, to: i64, tail_block: &[u8]) -> Vec<Rc<Segment>> {
        let appended = self.appended.get();
        assert!(to >= self.base && to <= appended, "cut inside the log");
        assert!(
            self.written.get() == appended && self.flushed.get() == appended,
            "a cut needs everything appended flushed"
        );
        assert!(self.preparing.get().is_none(), "no segment being prepared");
        let mut tail = TailMemory::new(self.base, to, tail_retain_bytes(&self.cfg));
        assert_eq!(
            tail.start() + tail_block.len() as i64,
            to,
            "tail block reaches to"
        );
        tail.append(tail.start(), tail_block);
        *self.tail.borrow_mut() = tail;
        self.appended.set(to);
        self.written.set(to);
        self.flushed.set(to);
        self.cuts.set(self.cuts.get() + 1);
        let keep_through = self.segment_start(to);
        let mut segments = self.segments.borrow_mut();
        let beyond: Vec<i64> = segments
            .range(keep_through + 1..)
            .map(|(&s, _)| s)
            .collect();
        let mut unsynced = self.unsynced.borrow_mut();
        beyond
            .into_iter()
            .map(|start| {
                unsynced.remove(&start);
                segments.remove(&start).expect("listed")
            })
            .collect()
    }

    /// An empty slave log restarts at `start`, a later segment boundary
    /// (`ShardStore::reset_empty_replica`): the log holds nothing, `segment` (the empty file
    /// at `start`) becomes its only segment and all three offsets move to `start`. Returns the
    /// segments it forgets (all below `start`, all empty), for the caller to delete. Never
    /// awaits.
    pub fn restart_at(&self, start: i64, segment: Rc<Segment>) -> Vec<Rc<Segment>> {
        let appended = self.appended.get();
        assert_eq!(appended, self.base, "only an empty log restarts");
        assert!(
            self.written.get() == appended && self.flushed.get() == appended,
            "an empty log has nothing to write"
        );
        assert!(self.preparing.get().is_none(), "no segment being prepared");
        assert!(start > self.base && self.segment_start(start) == start);
        assert_eq!(segment.start, start);
        *self.tail.borrow_mut() = TailMemory::new(self.base, start, tail_retain_bytes(&self.cfg));
        self.appended.set(start);
        self.written.set(start);
        self.flushed.set(start);
        self.cuts.set(self.cuts.get() + 1);
        self.unsynced.borrow_mut().clear();
        let mut segments = self.segments.borrow_mut();
        let dropped = std::mem::take(&mut *segments);
        segments.insert(start, segment);
        dropped.into_values().filter(|s| s.start != start).collect()
    }

    /// Copies bytes reserved at `position` into the tail.
    pub fn push(&self, position: i64, bytes: &[u8]) {
        assert_eq!(position, self.appended.get(), "appends are contiguous");
        let mut tail = self.tail.borrow_mut();
        tail.append(position, bytes);
        self.set_appended(position + bytes.len() as i64);
        assert_eq!(
            tail.end(),
            self.appended.get(),
            "tail memory ends at appended"
        );
        drop(tail);
        self.flusher_signal.raise();
        if !self.appended_waiters.is_empty() {
            self.appended_waiters.release(self.appended.get());
        }
    }

    fn set_appended(&self, offset: i64) {
        assert!(
            offset >= self.appended.get(),
            "appended offset went backwards"
        );
        self.appended.set(offset);
    }

    pub fn set_written(&self, offset: i64) {
        assert!(
            offset >= self.written.get(),
            "written offset went backwards"
        );
        assert!(offset <= self.appended.get(), "written beyond appended");
        self.written.set(offset);
    }

    pub fn set_flushed(&self, offset: i64) {
        assert!(
            offset >= self.flushed.get(),
            "flushed offset went backwards"
        );
        assert!(offset <= self.written.get(), "flushed beyond written");
        self.flushed.set(offset);
        // Only flushed bytes leave memory: a failed sync rewrites `[flushed, written)` from it.
        self.tail.borrow_mut().evict(offset);
    }

    /// Completes the `Flushed` waiters up to `offset`, which must be flushed; returns how
    /// many.
    pub fn release_flushed(&self, offset: i64) -> usize {
        assert!(
            offset <= self.flushed.get(),
            "Flushed waiters released beyond flushed"
        );
        self.flushed_waiters.release(offset)
    }

    /// After a failed `fdatasync`: the kernel may have dropped the dirty pages it could not
    /// write back (and reports that error once), so nothing past `flushed` is trusted to be in
    /// the file. `written` moves back to `flushed` and the flusher writes those bytes again
    /// from memory (the tail keeps everything not flushed) before the next sync. Acks already
    /// given stay valid: the same bytes are written again. Called by the flusher between
    /// rounds, never while a write is in flight.
    pub fn rewind_written_to_flushed(&self) {
        let flushed = self.flushed.get();
        assert!(flushed <= self.written.get());
        assert!(
            self.tail.borrow().start()
                <= self.base + align_down((flushed - self.base) as u64) as i64,
            "the tail holds every unflushed byte"
        );
        self.written.set(flushed);
    }

    /// Appends the `len` bytes at `position` (one record) to `out`: from memory when the
    /// tail holds them, else from disk through `window`.
    pub async fn read_into(
        &self,
        position: i64,
        len: usize,
        window: &mut Option<DiskWindow>,
        out: &mut BytesMut,
    ) -> Result<(), StoreError> {
        let end = position + len as i64;
        assert!(position >= self.base && end <= self.appended.get());
        let out_start = out.len();
        out.resize(out_start + len, 0);
        let mut at = position;
        while at < end {
            let memory_start = self.tail.borrow().start();
            let done = out_start + (at - position) as usize;
            if at >= memory_start {
                self.tail.borrow().copy_out(at, &mut out[done..]);
                break;
            }
            let piece_end = end.min(memory_start);
            self.read_disk(at, piece_end, window).await?;
            if end > self.appended.get() {
                // A slave's truncation cut the log while the disk read was in flight.
                return Err(StoreError::TruncatedDuringRead {
                    offset: position,
                    end: self.appended.get(),
                });
            }
            let cached = window.as_ref().expect("window filled by read_disk");
            let from = (at - cached.start) as usize;
            let piece = (piece_end - at) as usize;
            out[done..done + piece].copy_from_slice(&cached.buffer.as_slice()[from..from + piece]);
            at = piece_end;
        }
        Ok(())
    }

    /// Ensures `window` covers `[from, to)` with bytes that were written when read.
    async fn read_disk(
        &self,
        from: i64,
        to: i64,
        window: &mut Option<DiskWindow>,
    ) -> Result<(), StoreError> {
        if let Some(cached) = window {
            let cached_end = cached.start + cached.buffer.len() as i64;
            if cached.cuts == self.cuts.get()
                && cached.start <= from
                && to <= cached_end.min(cached.valid_end)
            {
                return Ok(());
            }
        }
        let segment_start = self.segment_start(from);
        let segment = self.segments.borrow().get(&segment_start).cloned();
        let Some(segment) = segment else {
            return Err(StoreError::Corrupt {
                path: self.dir.clone(),
                offset: from as u64,
                reason: "no segment holds this offset".into(),
            });
        };
        assert!(to <= segment.end(), "a read never spans segments");
        let read_start = segment_start + align_down((from - segment_start) as u64) as i64;
        let wanted = ((to - read_start) as usize).max(READ_AHEAD_BYTES) as u64;
        let read_end = (read_start as u64 + align_up(wanted)).min(segment.end() as u64) as i64;
        let valid_end = self.written.get();
        let buffer = segment
            .read_at(
                (read_start - segment_start) as u64,
                (read_end - read_start) as usize,
            )
            .await?;
        bump(&self.stats.disk_reads, 1);
        *window = Some(DiskWindow {
            start: read_start,
            valid_end,
            cuts: self.cuts.get(),
            buffer,
        });
        Ok(())
    }

    /// The segment starting at `start`, created now if the background preparation has not
    /// produced it (waiting for a preparation that is under way).
    pub async fn segment_for_write(&self, start: i64) -> Result<Rc<Segment>, StoreError> {
        loop {
            if let Some(segment) = self.segments.borrow().get(&start) {
                return Ok(segment.clone());
            }
            if self.preparing.get() == Some(start) {
                self.prepared.wait().await;
                continue;
            }
            let segment = Segment::create(
                &self.dir,
                start,
                self.file_size,
                false,
                &self.cfg.segment_io(),
            )
            .await?;
            bump(&self.stats.segments_created, 1);
            let segment = Rc::new(segment);
            self.segments.borrow_mut().insert(start, segment.clone());
            return Ok(segment);
        }
    }

    /// Starts preparing the segment after the current one when the current one is half full.
    pub fn maybe_prepare_next(self: &Rc<Self>) {
        let appended = self.appended.get();
        let current = self.segment_start(appended);
        let next = current + self.file_size as i64;
        if ((appended - current) as u64) < self.file_size / 2
            || self.preparing.get().is_some()
            || self.segments.borrow().contains_key(&next)
            || self.stopping.get()
        {
            return;
        }
        self.preparing.set(Some(next));
        let log = Rc::downgrade(self);
        let dir = self.dir.clone();
        let size = self.file_size;
        let io = self.cfg.segment_io();
        let task = compio::runtime::spawn(async move {
            let result = Segment::create(&dir, next, size, true, &io).await;
            let Some(log) = log.upgrade() else { return };
            match result {
                Ok(segment) => {
                    bump(&log.stats.segments_created, 1);
                    log.segments.borrow_mut().insert(next, Rc::new(segment));
                }
                Err(error) => tracing::warn!(%error, "preparing the next segment failed"),
            }
            log.preparing.set(None);
            log.prepared.raise();
        });
        // The previous preparation has finished (`preparing` was `None`): replacing its
        // handle cancels nothing.
        self.preparation.replace(Some(task));
    }

    /// Writes `[written, target)` to the segments: block-aligned, re-sending the partial
    /// first block, split at segment and chunk boundaries; `durably` through the segments'
    /// `O_DSYNC` descriptors where they have one ([`Segment::write_durably_at`]). Returns
    /// whether the bytes are already durable (every piece went through an `O_DSYNC`
    /// descriptor); segments whose writes are not join `unsynced`, for the next sync.
    pub async fn write_up_to(&self, target: i64, durably: bool) -> Result<bool, StoreError> {
        let from = self.written.get();
        assert!(from < target && target <= self.appended.get());
        self.stats.record_group_commit((target - from) as u64);
        let mut at = self.base + align_down((from - self.base) as u64) as i64;
        let mut durable = true;
        while at < target {
            let segment_start = self.segment_start(at);
            let segment_end = segment_start + self.file_size as i64;
            let piece_end =
                segment_end.min(self.base + align_up((target - self.base) as u64) as i64);
            let segment = self.segment_for_write(segment_start).await?;
            let views = self.tail.borrow_mut().views(at, piece_end);
            let through_dsync = durably && segment.can_write_durably();
            let mut segment_durable = segment.writes_durable() || through_dsync;
            for (view_start, view) in views {
                let len = view_len(&view);
                let position = (view_start - segment_start) as u64;
                if through_dsync {
                    let (_, was_durable) = segment.write_durably_at(view, position).await?;
                    segment_durable &= was_durable;
                } else {
                    segment.write_at(view, position).await?;
                }
                bump(&self.stats.commit_log_writes, 1);
                bump(&self.stats.commit_log_write_bytes, len as u64);
            }
            if !segment_durable {
                durable = false;
                self.unsynced.borrow_mut().insert(segment_start, segment);
            }
            at = piece_end;
        }
        Ok(durable)
    }
}

/// How much written data the in-memory tail keeps for readers (see `tail_memory.rs`).
fn tail_retain_bytes(cfg: &StoreConfig) -> usize {
    if cfg.direct_writes() {
        crate::tail_memory::TAIL_MEMORY_BYTES
    } else {
        crate::tail_memory::TAIL_MEMORY_BUFFERED_BYTES
    }
}

fn view_len(view: &crate::aligned_buffer::ChunkView) -> usize {
    use compio::buf::IoBuf;
    let len = view.buf_len();
    assert!(len.is_multiple_of(BLOCK_SIZE));
    len
}
