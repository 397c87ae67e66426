//! The consume queue of one message queue `(topic, queueId)`: a dense array of 20-byte
//! entries `int64 commitLogOffset | int32 size | int64 tagsCode` (big-endian), entry `i` at
//! byte `i * 20`, stored in `consumequeue/{topic}/{queueId}/{20-digit start byte}` files of
//! `consume_queue_file_size` bytes (RocketMQ's format; files grow as entries are written
//! instead of being preallocated).
//!
//! Contract:
//! - `push` is synchronous: an entry is visible to readers as soon as `append` returns.
//!   Entries are consecutive (asserted) and point at increasing commit log offsets.
//! - Files are written buffered (page cache) by the shard's consume queue flusher and
//!   fsynced with it; entries at or above `durable` exist only in memory. Memory keeps the
//!   unwritten entries plus up to [`TAIL_ENTRIES_MAX`] recent ones; older entries are read
//!   from the files.
//! - A consume queue is derived data: recovery truncates entries pointing past the end of
//!   the commit log and re-creates missing ones from it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};

use crate::error::StoreError;
use crate::segment::{parse_segment_name, segment_name};

pub(crate) const ENTRY_SIZE: usize = 20;

/// Recent entries kept in memory beyond the unwritten ones.
const TAIL_ENTRIES_MAX: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub offset: i64,
    pub size: i32,
    pub tags_code: i64,
}

impl Entry {
    pub fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..12].copy_from_slice(&self.size.to_be_bytes());
        out[12..20].copy_from_slice(&self.tags_code.to_be_bytes());
    }

    pub fn decode(bytes: &[u8]) -> Entry {
        Entry {
            offset: i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            size: i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
            tags_code: i64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes")),
        }
    }

    /// Zero-filled space and RocketMQ's hole filler `(0, i32::MAX, 0)` are not messages.
    pub fn is_message(&self) -> bool {
        self.size > 0 && self.size != i32::MAX && self.offset >= 0
    }

    pub fn end(&self) -> i64 {
        self.offset + self.size as i64
    }
}

pub(crate) struct ConsumeQueue {
    pub topic: String,
    pub queue_id: i32,
    pub dir: PathBuf,
    file_size: u64,
    min: Cell<i64>,
    next: Cell<i64>,
    durable: Cell<i64>,
    tail: RefCell<VecDeque<Entry>>,
    tail_start: Cell<i64>,
    files: RefCell<BTreeMap<u64, Rc<File>>>,
    /// Set by `delete_topic`, so an in-flight flush does not resurrect the files.
    pub deleted: Cell<bool>,
    /// Java hash of `topic#`, the prefix of the index keys of this queue's records
    /// (`index_file::key_prefix_hash`), so the append path hashes only each key.
    pub index_key_prefix: i32,
}

/// The directory of a queue's files.
pub(crate) fn queue_dir(root: &Path, topic: &str, queue_id: i32) -> PathBuf {
    root.join(topic).join(queue_id.to_string())
}

impl ConsumeQueue {
    pub fn new(root: &Path, topic: &str, queue_id: i32, file_size: u64, next: i64) -> Self {
        ConsumeQueue {
            topic: topic.to_string(),
            queue_id,
            dir: queue_dir(root, topic, queue_id),
            file_size,
            min: Cell::new(next),
            next: Cell::new(next),
            durable: Cell::new(next),
            tail: RefCell::new(VecDeque::new()),
            tail_start: Cell::new(next),
            files: RefCell::new(BTreeMap::new()),
            deleted: Cell::new(false),
            index_key_prefix: crate::index_file::key_prefix_hash(topic),
        }
    }

    /// Opens a queue's existing files: `min` from the first file, `next` after the last
    /// message entry of the last file (trailing zeros and torn entries are cut off).
    pub async fn load(
        root: &Path,
        topic: &str,
        queue_id: i32,
        file_size: u64,
    ) -> Result<Self, StoreError> {
        let dir = queue_dir(root, topic, queue_id);
        let mut starts: Vec<u64> = std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io("read_dir", &dir, 0, e))?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| parse_segment_name(entry.file_name().to_str()?))
            .map(|start| start as u64)
            .collect();
        starts.sort_unstable();
        let queue = ConsumeQueue::new(root, topic, queue_id, file_size, 0);
        let Some(&first) = starts.first() else {
            return Ok(queue);
        };
        let last = *starts.last().expect("non-empty");
        let path = dir.join(segment_name(last as i64));
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io("read", &path, 0, e))?;
        let mut count = (bytes.len() / ENTRY_SIZE).min((file_size as usize) / ENTRY_SIZE);
        while count > 0 && !Entry::decode(&bytes[(count - 1) * ENTRY_SIZE..]).is_message() {
            count -= 1;
        }
        let next = (last as usize / ENTRY_SIZE + count) as i64;
        queue.min.set((first as usize / ENTRY_SIZE) as i64);
        queue.set_all_offsets(next);
        if bytes.len() != count * ENTRY_SIZE {
            truncate_file(&path, (count * ENTRY_SIZE) as u64)?;
        }
        Ok(queue)
    }

    fn set_all_offsets(&self, next: i64) {
        self.next.set(next);
        self.durable.set(next);
        self.tail_start.set(next);
        self.tail.borrow_mut().clear();
        if self.min.get() > next {
            self.min.set(next);
        }
    }

    pub fn min_offset(&self) -> i64 {
        self.min.get()
    }

    pub fn max_offset(&self) -> i64 {
        self.next.get()
    }

    pub fn is_dirty(&self) -> bool {
        self.durable.get() < self.next.get()
    }

    pub fn push(&self, entry: Entry) {
        assert!(entry.is_message(), "consume queue entry {entry:?}");
        let mut tail = self.tail.borrow_mut();
        if let Some(last) = tail.back() {
            assert!(
                entry.offset >= last.end(),
                "consume queue offsets must increase"
            );
        }
        tail.push_back(entry);
        self.next.set(self.next.get() + 1);
        assert_eq!(self.tail_start.get() + tail.len() as i64, self.next.get());
        self.trim_tail(&mut tail);
    }

    fn trim_tail(&self, tail: &mut VecDeque<Entry>) {
        while tail.len() > TAIL_ENTRIES_MAX && self.tail_start.get() < self.durable.get() {
            tail.pop_front();
            self.tail_start.set(self.tail_start.get() + 1);
        }
    }

    /// Up to `max` entries from `from` (which must be in `[min, next)`); fewer at a file end.
    pub async fn entries(&self, from: i64, max: usize) -> Result<Vec<Entry>, StoreError> {
        assert!(from >= self.min.get() && from < self.next.get());
        let tail_start = self.tail_start.get();
        if from >= tail_start {
            let tail = self.tail.borrow();
            let skip = (from - tail_start) as usize;
            return Ok(tail.iter().skip(skip).take(max).copied().collect());
        }
        let byte = from as u64 * ENTRY_SIZE as u64;
        let file_start = byte / self.file_size * self.file_size;
        let file_end_index = ((file_start + self.file_size) / ENTRY_SIZE as u64) as i64;
        let count = (max as i64)
            .min(tail_start - from)
            .min(file_end_index - from) as usize;
        let file = self.file(file_start, false).await?;
        let buffer = Vec::with_capacity(count * ENTRY_SIZE).slice(0..count * ENTRY_SIZE);
        let BufResult(result, buffer) = file.read_exact_at(buffer, byte - file_start).await;
        let path = self.dir.join(segment_name(file_start as i64));
        result.map_err(|e| StoreError::io("read", &path, byte - file_start, e))?;
        let buffer = buffer.into_inner();
        Ok(buffer.chunks_exact(ENTRY_SIZE).map(Entry::decode).collect())
    }

    pub async fn entry(&self, index: i64) -> Result<Entry, StoreError> {
        let entries = self.entries(index, 1).await?;
        Ok(entries[0])
    }

    async fn file(&self, start: u64, create: bool) -> Result<Rc<File>, StoreError> {
        if let Some(file) = self.files.borrow().get(&start) {
            return Ok(file.clone());
        }
        let path = self.dir.join(segment_name(start as i64));
        if create {
            compio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| StoreError::io("create_dir", &self.dir, 0, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&path)
            .await
            .map_err(|e| StoreError::io("open", &path, 0, e))?;
        let file = Rc::new(file);
        self.files.borrow_mut().insert(start, file.clone());
        Ok(file)
    }

    /// Writes the entries `[durable, next)` (buffered) and fsyncs the files they touched.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let from = self.durable.get();
        let to = self.next.get();
        if from == to || self.deleted.get() {
            return Ok(());
        }
        let bytes = self.encode_range(from, to);
        let mut index = from;
        while index < to {
            let byte = index as u64 * ENTRY_SIZE as u64;
            let file_start = byte / self.file_size * self.file_size;
            let file_end_index = ((file_start + self.file_size) / ENTRY_SIZE as u64) as i64;
            let piece_end = to.min(file_end_index);
            let begin = ((index - from) as usize) * ENTRY_SIZE;
            let end = ((piece_end - from) as usize) * ENTRY_SIZE;
            let file = self.file(file_start, true).await?;
            let path = self.dir.join(segment_name(file_start as i64));
            let mut writer = &*file;
            let BufResult(result, _) = writer
                .write_all_at(bytes[begin..end].to_vec(), byte - file_start)
                .await;
            result.map_err(|e| StoreError::io("write", &path, byte - file_start, e))?;
            file.sync_data()
                .await
                .map_err(|e| StoreError::io("fdatasync", &path, 0, e))?;
            index = piece_end;
        }
        if self.durable.get() == from && self.next.get() >= to {
            self.durable.set(to);
            self.trim_tail(&mut self.tail.borrow_mut());
        }
        Ok(())
    }

    fn encode_range(&self, from: i64, to: i64) -> Vec<u8> {
        let tail = self.tail.borrow();
        let tail_start = self.tail_start.get();
        assert!(tail_start <= from, "unwritten entries are always in memory");
        let mut bytes = vec![0u8; (to - from) as usize * ENTRY_SIZE];
        for (i, entry) in tail
            .iter()
            .skip((from - tail_start) as usize)
            .take((to - from) as usize)
            .enumerate()
        {
            entry.encode(&mut bytes[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE]);
        }
        bytes
    }

    /// Retention: moves `min` to the first entry pointing at or above `log_min` (the first
    /// byte the commit log still holds) and deletes the files whose entries all lie below it,
    /// except the last file, which fixes `next` on the following open. Returns the number of
    /// entries dropped.
    pub async fn drop_below(&self, log_min: i64) -> Result<i64, StoreError> {
        let old_min = self.min.get();
        let low = self.first_kept(log_min).await?;
        if low == old_min {
            return Ok(0);
        }
        assert!(low > old_min && low <= self.next.get());
        self.min.set(low);
        let entry_bytes = ENTRY_SIZE as u64;
        let last_file = (self.next.get().max(1) as u64 - 1) * entry_bytes / self.file_size;
        let first_file = old_min as u64 * entry_bytes / self.file_size;
        let keep_from = (low as u64 * entry_bytes / self.file_size).min(last_file);
        for file in first_file..keep_from {
            let start = file * self.file_size;
            self.files.borrow_mut().remove(&start);
            let path = self.dir.join(segment_name(start as i64));
            match compio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove", &path, 0, e)),
            }
        }
        Ok(low - old_min)
    }

    /// The first queue offset whose entry points at or above `log_min`: what
    /// [`Self::drop_below`] makes the new min offset (entries are ordered by offset).
    pub async fn first_kept(&self, log_min: i64) -> Result<i64, StoreError> {
        let (mut low, mut high) = (self.min.get(), self.next.get());
        while low < high {
            let middle = low + (high - low) / 2;
            let entry = self.entry(middle).await?;
            if entry.is_message() && entry.offset >= log_min {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Ok(low)
    }

    /// Recovery: drops the entries whose message ends past `log_end` (they point at bytes
    /// that did not survive). Entries are ordered by offset, so they form a suffix.
    pub async fn truncate_beyond(&self, log_end: i64) -> Result<usize, StoreError> {
        let (mut low, mut high) = (self.min.get(), self.next.get());
        while low < high {
            let middle = low + (high - low) / 2;
            if self.entry(middle).await?.end() > log_end {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        let cut = self.next.get() - low;
        if cut > 0 {
            self.truncate_to(low)?;
        }
        Ok(cut as usize)
    }

    fn truncate_to(&self, next: i64) -> Result<(), StoreError> {
        assert!(next >= self.min.get() && next <= self.next.get());
        let byte = next as u64 * ENTRY_SIZE as u64;
        let mut files = self.files.borrow_mut();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let Some(start) = entry.file_name().to_str().and_then(parse_segment_name) else {
                continue;
            };
            let start = start as u64;
            let keep_start = byte / self.file_size * self.file_size;
            if start > keep_start {
                files.remove(&start);
                std::fs::remove_file(entry.path())
                    .map_err(|e| StoreError::io("remove", entry.path(), 0, e))?;
            } else if start == keep_start {
                truncate_file(&entry.path(), byte - start)?;
            }
        }
        let mut tail = self.tail.borrow_mut();
        while self.tail_start.get() + tail.len() as i64 > next {
            if tail.pop_back().is_none() {
                break;
            }
        }
        drop(tail);
        if self.tail_start.get() >= next {
            self.set_all_offsets(next);
        } else {
            self.next.set(next);
            self.durable.set(self.durable.get().min(next));
        }
        Ok(())
    }
}

fn truncate_file(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open", path, 0, e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("truncate", path, len, e))
}
