//! One RocketMQ IndexFile (docs/protocol.md §4.2): a hash index from `topic#key` to commit log
//! offsets, memory-mapped like RocketMQ's.
//!
//! Layout (big-endian): a 40-byte header `beginTimestamp i64 | endTimestamp i64 |
//! beginPhyOffset i64 | endPhyOffset i64 | hashSlotCount i32 | indexCount i32`, then
//! `slots × i32` (the newest entry number of each hash bucket, 0 = empty), then
//! `entries × 20 B` `keyHash i32 | phyOffset i64 | timeDiffSeconds i32 | prevIndex i32`.
//! Entry numbers start at 1 (entry 0 is never used), as in RocketMQ.
//!
//! Tradeoffs: the file is sparse (created with `set_len`), mapped shared and written through
//! the mapping, so an insert costs a few memory stores and never a syscall; opening uses
//! blocking `std::fs` calls (once per `max_index_num` keys, on a sparse file: cheap), and
//! `sync` runs `fdatasync` on a blocking thread so the shard's ring never stalls; durability comes
//! from the shard's consume queue flusher, which `fdatasync`s the file (that also writes
//! pages dirtied through the mapping) before it advances the checkpoint. The index is derived
//! data: after a crash, entries may be missing (re-built from the log) or stale (pointing at
//! bytes a truncated tail lost); lookups therefore treat every entry as a hint and the caller
//! checks the record it points at. A lookup never trusts the file: entry numbers, chains and
//! offsets are bounds-checked, and a chain only walks to strictly older entries, so garbage
//! cannot loop or read out of bounds.

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use std::fs::{File, OpenOptions};

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use crate::error::StoreError;

pub(crate) const HEADER_SIZE: usize = 40;
const SLOT_SIZE: usize = 4;
const ENTRY_SIZE: usize = 20;

/// Tolerance of the time checks on index entries (second resolution, records stored out of
/// order); exact filtering happens on the records themselves.
pub(crate) const TIME_SLACK_MS: i64 = 60_000;

/// The hash of an index key: `abs(String.hashCode(topic + "#" + key))`, 0 for `MIN_VALUE`.
pub(crate) fn key_hash(topic: &str, key: &str) -> i32 {
    key_hash_after(key_prefix_hash(topic), key)
}

/// `String.hashCode(topic + "#")`: what [`key_hash_after`] continues from.
pub(crate) fn key_prefix_hash(topic: &str) -> i32 {
    rmq_core::message::hash::java_string_hash_concat(&[topic, "#"])
}

/// [`key_hash`] of `key` from the topic's [`key_prefix_hash`].
pub(crate) fn key_hash_after(prefix: i32, key: &str) -> i32 {
    let hash = rmq_core::message::hash::java_string_hash_continue(prefix, key);
    hash.checked_abs().unwrap_or(0)
}

/// The header fields kept in memory (the mapping holds the same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub begin_timestamp: i64,
    pub end_timestamp: i64,
    pub begin_phy_offset: i64,
    pub end_phy_offset: i64,
    pub count: u32,
}

pub(crate) struct IndexFile {
    pub path: PathBuf,
    slots: u32,
    capacity: u32,
    map: NonNull<u8>,
    len: usize,
    header: Cell<IndexHeader>,
    file: File,
}

impl IndexFile {
    pub fn file_len(slots: u32, capacity: u32) -> usize {
        HEADER_SIZE + slots as usize * SLOT_SIZE + capacity as usize * ENTRY_SIZE
    }

    /// Opens (or creates, sparse) the file and maps it. An existing file whose size or
    /// header does not match `slots`/`capacity` is refused with `Corrupt`.
    pub fn open(path: &Path, slots: u32, capacity: u32) -> Result<IndexFile, StoreError> {
        assert!(slots > 0 && capacity >= 2);
        let len = Self::file_len(slots, capacity);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::io("open", path, 0, e))?;
        let size = file
            .metadata()
            .map_err(|e| StoreError::io("stat", path, 0, e))?
            .len();
        let fresh = size == 0;
        if fresh {
            file.set_len(len as u64)
                .map_err(|e| StoreError::io("set_len", path, 0, e))?;
        } else if size != len as u64 {
            return Err(corrupt(path, 0, format!("size {size}, expected {len}")));
        }
        let map = map_file(&file, len, path)?;
        let index = IndexFile {
            path: path.to_path_buf(),
            slots,
            capacity,
            map,
            len,
            header: Cell::new(IndexHeader {
                begin_timestamp: 0,
                end_timestamp: 0,
                begin_phy_offset: 0,
                end_phy_offset: 0,
                count: 1,
            }),
            file,
        };
        if fresh {
            index.write_header();
        } else {
            index.load_header()?;
        }
        Ok(index)
    }

    fn load_header(&self) -> Result<(), StoreError> {
        let slots = self.read_i32(32);
        let count = self.read_i32(36);
        if slots != self.slots as i32 || count < 1 || count as u32 > self.capacity {
            return Err(corrupt(
                &self.path,
                32,
                format!("header slots {slots} count {count}"),
            ));
        }
        self.header.set(IndexHeader {
            begin_timestamp: self.read_i64(0),
            end_timestamp: self.read_i64(8),
            begin_phy_offset: self.read_i64(16),
            end_phy_offset: self.read_i64(24),
            count: count as u32,
        });
        Ok(())
    }

    fn write_header(&self) {
        let header = self.header.get();
        self.write_i64(0, header.begin_timestamp);
        self.write_i64(8, header.end_timestamp);
        self.write_i64(16, header.begin_phy_offset);
        self.write_i64(24, header.end_phy_offset);
        self.write_i32(32, self.slots as i32);
        self.write_i32(36, header.count as i32);
    }

    pub fn header(&self) -> IndexHeader {
        self.header.get()
    }

    /// Lowers `endPhyOffset` to at most `max` (a slave truncated its log): recovery re-indexes
    /// records above it.
    pub fn cap_end_phy_offset(&self, max: i64) {
        let mut header = self.header.get();
        if header.end_phy_offset > max {
            header.end_phy_offset = max;
            self.header.set(header);
            self.write_header();
        }
    }

    pub fn is_full(&self) -> bool {
        self.header.get().count >= self.capacity
    }

    /// Adds `hash → phy_offset` stored at `store_timestamp`; false when the file is full.
    pub fn put(&self, hash: i32, phy_offset: i64, store_timestamp: i64) -> bool {
        assert!(hash >= 0 && phy_offset >= 0);
        let mut header = self.header.get();
        if header.count >= self.capacity {
            return false;
        }
        let first = header.count == 1;
        if first {
            header.begin_timestamp = store_timestamp;
            header.begin_phy_offset = phy_offset;
        }
        let slot_at = self.slot_at(hash);
        let previous = self.read_i32(slot_at);
        let previous = if previous > 0 && (previous as u32) < header.count {
            previous
        } else {
            0
        };
        let diff_seconds =
            ((store_timestamp - header.begin_timestamp) / 1000).clamp(0, i32::MAX as i64);
        let entry_at = self.entry_at(header.count);
        self.write_i32(entry_at, hash);
        self.write_i64(entry_at + 4, phy_offset);
        self.write_i32(entry_at + 12, diff_seconds as i32);
        self.write_i32(entry_at + 16, previous);
        self.write_i32(slot_at, header.count as i32);
        header.count += 1;
        // Store times of one shard are not strictly ordered (sends race to the shard): the end
        // only grows; `begin` stays (entries are relative to it, older ones clamp to 0).
        header.end_timestamp = header.end_timestamp.max(store_timestamp);
        header.end_phy_offset = phy_offset;
        self.header.set(header);
        // The header fields a put changes (`write_header` writes the same bytes, all six).
        if first {
            self.write_i64(0, header.begin_timestamp);
            self.write_i64(16, header.begin_phy_offset);
        }
        self.write_i64(8, header.end_timestamp);
        self.write_i64(24, header.end_phy_offset);
        self.write_i32(36, header.count as i32);
        true
    }

    /// Commit log offsets of entries with `hash` stored in `[begin_ms, end_ms]` (give or take
    /// [`TIME_SLACK_MS`]), newest first, at most `max`: hints, the caller checks each record's
    /// exact store time.
    pub fn lookup(&self, hash: i32, begin_ms: i64, end_ms: i64, max: usize, out: &mut Vec<i64>) {
        let header = self.header.get();
        if header.count <= 1
            || header.end_timestamp.saturating_add(TIME_SLACK_MS) < begin_ms
            || header.begin_timestamp.saturating_sub(TIME_SLACK_MS) > end_ms
        {
            return;
        }
        let mut index = self.read_i32(self.slot_at(hash));
        let mut found = 0usize;
        while index > 0 && (index as u32) < header.count && found < max {
            let entry_at = self.entry_at(index as u32);
            let stored_ms = header.begin_timestamp + self.read_i32(entry_at + 12) as i64 * 1000;
            let phy_offset = self.read_i64(entry_at + 4);
            // Whole seconds, and older records clamp to `begin`: compare with slack.
            if self.read_i32(entry_at) == hash
                && phy_offset >= 0
                && stored_ms.saturating_add(TIME_SLACK_MS) >= begin_ms
                && stored_ms.saturating_sub(TIME_SLACK_MS) <= end_ms
            {
                out.push(phy_offset);
                found += 1;
            }
            let previous = self.read_i32(entry_at + 16);
            if previous >= index {
                break;
            }
            index = previous;
        }
    }

    /// Writes the file's dirty pages (mapping included) to the device.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let fail = |e| StoreError::io("fdatasync", &self.path, 0, e);
        let file = self.file.try_clone().map_err(fail)?;
        match compio::runtime::spawn_blocking(move || file.sync_data()).await {
            Ok(result) => result.map_err(fail),
            Err(_) => Err(fail(std::io::Error::other("fdatasync thread panicked"))),
        }
    }

    fn slot_at(&self, hash: i32) -> usize {
        HEADER_SIZE + (hash as u32 % self.slots) as usize * SLOT_SIZE
    }

    fn entry_at(&self, index: u32) -> usize {
        assert!(index < self.capacity);
        HEADER_SIZE + self.slots as usize * SLOT_SIZE + index as usize * ENTRY_SIZE
    }

    fn read_i32(&self, at: usize) -> i32 {
        let mut bytes = [0u8; 4];
        self.copy_out(at, &mut bytes);
        i32::from_be_bytes(bytes)
    }

    fn read_i64(&self, at: usize) -> i64 {
        let mut bytes = [0u8; 8];
        self.copy_out(at, &mut bytes);
        i64::from_be_bytes(bytes)
    }

    fn write_i32(&self, at: usize, value: i32) {
        self.copy_in(at, &value.to_be_bytes());
    }

    fn write_i64(&self, at: usize, value: i64) {
        self.copy_in(at, &value.to_be_bytes());
    }

    fn copy_out(&self, at: usize, target: &mut [u8]) {
        assert!(at + target.len() <= self.len, "index read out of bounds");
        // SAFETY: the mapping is `len` bytes, alive while `self` is, and bounds were checked.
        // Only this shard's thread touches it and no reference into it outlives this call.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(at),
                target.as_mut_ptr(),
                target.len(),
            );
        }
    }

    fn copy_in(&self, at: usize, source: &[u8]) {
        assert!(at + source.len() <= self.len, "index write out of bounds");
        // SAFETY: as in `copy_out`; the mapping is writable and shared with the file.
        unsafe {
            std::ptr::copy_nonoverlapping(source.as_ptr(), self.map.as_ptr().add(at), source.len());
        }
    }
}

impl Drop for IndexFile {
    fn drop(&mut self) {
        // SAFETY: `map`/`len` come from the successful `mmap` in `open`; nothing uses the
        // mapping after drop.
        if let Err(errno) = unsafe { munmap(self.map.cast(), self.len) } {
            tracing::warn!(path = ?self.path, %errno, "munmap of an index file failed");
        }
    }
}

fn map_file(file: &File, len: usize, path: &Path) -> Result<NonNull<u8>, StoreError> {
    let length = NonZeroUsize::new(len).expect("index files are never empty");
    // SAFETY: a fresh shared mapping of a file this process holds open and owns (the store
    // lock keeps other processes out); the file is never truncated while mapped.
    let map = unsafe {
        mmap(
            None,
            length,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            file.as_fd(),
            0,
        )
    }
    .map_err(|errno| StoreError::io("mmap", path, 0, errno.into()))?;
    Ok(map.cast())
}

fn corrupt(path: &Path, offset: u64, reason: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(future: F) -> F::Output {
        compio::runtime::Runtime::new().unwrap().block_on(future)
    }

    #[test]
    fn put_lookup_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        run(async {
            let index = IndexFile::open(&path, 7, 100).unwrap();
            let a = key_hash("T", "a");
            let b = key_hash("T", "b");
            for i in 0..20i64 {
                let hash = if i % 2 == 0 { a } else { b };
                assert!(index.put(hash, i * 100, 1_000_000 + i * 1000));
            }
            let mut out = Vec::new();
            index.lookup(a, 0, i64::MAX, 100, &mut out);
            assert_eq!(
                out,
                (0..20)
                    .rev()
                    .filter(|i| i % 2 == 0)
                    .map(|i| i * 100)
                    .collect::<Vec<_>>()
            );
            out.clear();
            index.lookup(
                a,
                1_004_000 + TIME_SLACK_MS,
                1_008_000 + TIME_SLACK_MS,
                100,
                &mut out,
            );
            assert_eq!(out, vec![1800, 1600, 1400, 1200, 1000, 800, 600, 400]);
            index.sync().await.unwrap();
            drop(index);
            let index = IndexFile::open(&path, 7, 100).unwrap();
            assert_eq!(index.header().count, 21);
            assert_eq!(index.header().end_phy_offset, 1900);
            out.clear();
            index.lookup(b, 0, i64::MAX, 3, &mut out);
            assert_eq!(out, vec![1900, 1700, 1500]);
        });
    }

    #[test]
    fn fills_up_and_survives_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        run(async {
            let index = IndexFile::open(&path, 3, 4).unwrap();
            assert!(index.put(1, 0, 1000) && index.put(1, 10, 1000) && index.put(1, 20, 1000));
            assert!(index.is_full() && !index.put(1, 30, 1000));
            // A chain pointing forward (garbage) stops instead of looping.
            let entry_at = index.entry_at(1);
            index.write_i32(entry_at + 16, 3);
            let mut out = Vec::new();
            index.lookup(1, 0, i64::MAX, 100, &mut out);
            assert_eq!(out, vec![20, 10, 0]);
            drop(index);
            std::fs::write(&path, b"short").unwrap();
            assert!(IndexFile::open(&path, 3, 4).is_err());
        });
    }
}
