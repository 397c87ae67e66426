//! The in-memory tail of a shard's commit log.
//!
//! Appends copy records into 4 MiB block-aligned chunks ([`SharedChunk`]); the flusher lends
//! block ranges of those chunks to `O_DIRECT` writes without copying, and readers serve recent
//! data from here. Chunk `i` holds the shard-relative offsets `[i * CHUNK_SIZE, (i + 1) *
//! CHUNK_SIZE)`, so chunk boundaries are block boundaries.
//!
//! Contract: memory holds exactly `[start, end)`, where `end` is the appended offset and
//! `start` is block-aligned. Chunks are evicted (oldest first) only when the tail exceeds its
//! retention budget *and* the chunk is entirely below the block-aligned offset given to
//! `evict` (the flushed offset), so unflushed bytes (including the partial last block a write
//! re-sends) are never lost.
//! Bytes that were never appended read zero wherever they can be seen: skipped bytes (the
//! rest of a rolled segment) and the rest of the last block, which writes send whole. That
//! is what recovery expects after the end of the log.
//!
//! Evicted chunks that no write holds are kept (up to [`SPARE_CHUNKS_MAX`]) for the next
//! chunk instead of allocating one: a fresh 4 MiB allocation is zeroed by the allocator and
//! first-touch faulted page by page (at async 4 KiB sends under ASYNC_FLUSH, 4% of the
//! broker's CPU in `SharedChunk::new` alone; docs/perf.md "Tail chunks recycled"). A reused
//! chunk still holds old bytes: they are zeroed lazily, only where they could be seen past
//! `end` (`zeroed_to`): a block's rest before a write lends it, a skipped range before the
//! skip. Appends overwrite the rest, so a chunk is not zeroed whole (that memset was ~1% of
//! the broker's CPU at 4 KiB sends).

use std::collections::VecDeque;

use crate::aligned_buffer::{BLOCK_SIZE, ChunkView, SharedChunk, align_down};

/// Size of one tail chunk.
pub(crate) const CHUNK_SIZE: usize = 4 << 20;

/// Written data kept in memory per shard for tail reads when the commit log is written with
/// `O_DIRECT` (reads past it go to the device).
pub(crate) const TAIL_MEMORY_BYTES: usize = 64 << 20;

/// The same when segments are written through the page cache: reads past the tail are page
/// cache hits, so keeping more here would only hold every recent byte twice (measured: 64 MiB
/// per shard was ~100 of the broker's 180 MB anonymous RSS on 2 shards).
pub(crate) const TAIL_MEMORY_BUFFERED_BYTES: usize = 2 * CHUNK_SIZE;

/// A shard syncs once this much is written and not flushed, also under ASYNC_FLUSH before
/// `flushIntervalCommitLog` is up (`flusher.rs`): the tail keeps every unflushed byte (a
/// failed sync rewrites them from here), so at a high write rate the interval alone let it
/// grow to half a second of writes (~170 MB per shard at 340 MB/s), all in fresh chunks
/// freed at the next sync. With page-cache writes, paced write-back (`write_back.rs`) has
/// handed most of these bytes to the device already, so such a sync is short.
pub(crate) const UNFLUSHED_SYNC_BYTES: usize = 4 * CHUNK_SIZE;

/// Evicted chunks kept for reuse: a sync evicts up to [`UNFLUSHED_SYNC_BYTES`] and a little
/// more (what was written while it ran) at once, and the next ones need as many again.
const SPARE_CHUNKS_MAX: usize = UNFLUSHED_SYNC_BYTES / CHUNK_SIZE + 2;

const _: () = assert!(CHUNK_SIZE.is_multiple_of(BLOCK_SIZE));
const _: () = assert!(TAIL_MEMORY_BYTES >= 2 * CHUNK_SIZE);
const _: () = assert!(TAIL_MEMORY_BUFFERED_BYTES >= 2 * CHUNK_SIZE);

pub(crate) struct TailMemory {
    /// Shard base offset; chunk indices are relative to it.
    base: i64,
    chunks: VecDeque<SharedChunk>,
    first_chunk: u64,
    start: i64,
    end: i64,
    spare: Vec<SharedChunk>,
    /// Written bytes kept for readers (at least two chunks).
    retain_bytes: usize,
    /// Chunks allocated (not taken from `spare`) since creation.
    allocated: u64,
    /// Bytes in `[end, zeroed_to)` are zero (at or past `end`, nothing else is promised).
    zeroed_to: i64,
}

impl TailMemory {
    /// An empty tail positioned at `end`; `start` is `end`'s block start and the bytes
    /// `[start, end)` must be supplied with `load`.
    pub fn new(base: i64, end: i64, retain_bytes: usize) -> TailMemory {
        assert!(end >= base);
        assert!(
            retain_bytes >= 2 * CHUNK_SIZE,
            "a tail keeps at least two chunks"
        );
        let start = base + align_down((end - base) as u64) as i64;
        let first_chunk = ((start - base) as u64) / CHUNK_SIZE as u64;
        let mut tail = TailMemory {
            base,
            chunks: VecDeque::new(),
            first_chunk,
            start,
            end: start,
            spare: Vec::new(),
            retain_bytes,
            allocated: 0,
            zeroed_to: start,
        };
        tail.ensure_chunks(start + 1);
        tail
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    pub fn end(&self) -> i64 {
        self.end
    }

    fn chunk_index(&self, offset: i64) -> u64 {
        ((offset - self.base) as u64) / CHUNK_SIZE as u64
    }

    fn chunk_start(&self, index: u64) -> i64 {
        self.base + (index * CHUNK_SIZE as u64) as i64
    }

    /// Makes sure chunks exist for every byte below `limit`.
    fn ensure_chunks(&mut self, limit: i64) {
        if limit <= self.start {
            return;
        }
        let last = self.chunk_index(limit - 1);
        while self.first_chunk + (self.chunks.len() as u64) <= last {
            let chunk = self.spare.pop().unwrap_or_else(|| {
                self.allocated += 1;
                SharedChunk::new(CHUNK_SIZE)
            });
            self.chunks.push_back(chunk);
        }
    }

    /// Zeroes what is not zero yet of `[end, limit)` (chunks must exist up to `limit`).
    fn zero_through(&mut self, limit: i64) {
        let mut at = self.zeroed_to.max(self.end);
        while at < limit {
            let index = self.chunk_index(at);
            let chunk_start = self.chunk_start(index);
            let piece_end = limit.min(chunk_start + CHUNK_SIZE as i64);
            let chunk = &self.chunks[(index - self.first_chunk) as usize];
            chunk.zero_range(
                (at - chunk_start) as usize,
                (piece_end - chunk_start) as usize,
            );
            at = piece_end;
        }
        self.zeroed_to = self.zeroed_to.max(limit);
    }

    /// Appends `bytes` at `position`, which is `end` or (after a segment roll) beyond it;
    /// skipped bytes read zero.
    pub fn append(&mut self, position: i64, bytes: &[u8]) {
        assert!(
            position >= self.end,
            "tail append at {position} below end {}",
            self.end
        );
        let limit = position + bytes.len() as i64;
        self.ensure_chunks(limit.max(position + 1));
        self.zero_through(position);
        let mut done = 0usize;
        while done < bytes.len() {
            let at = position + done as i64;
            let index = self.chunk_index(at);
            let within = (at - self.chunk_start(index)) as usize;
            let len = (CHUNK_SIZE - within).min(bytes.len() - done);
            let chunk = &self.chunks[(index - self.first_chunk) as usize];
            chunk.copy_in(within, &bytes[done..done + len]);
            done += len;
        }
        self.end = limit;
    }

    /// Moves `end` forward over bytes that stay zero (the rest of a rolled segment).
    pub fn skip_to(&mut self, position: i64) {
        assert!(position >= self.end);
        self.ensure_chunks(position + 1);
        self.zero_through(position);
        self.end = position;
    }

    /// Copies `[position, position + target.len())` out; the range must be in memory.
    pub fn copy_out(&self, position: i64, target: &mut [u8]) {
        assert!(position >= self.start && position + target.len() as i64 <= self.end);
        let mut done = 0usize;
        while done < target.len() {
            let at = position + done as i64;
            let index = self.chunk_index(at);
            let within = (at - self.chunk_start(index)) as usize;
            let len = (CHUNK_SIZE - within).min(target.len() - done);
            let chunk = &self.chunks[(index - self.first_chunk) as usize];
            chunk.copy_out(within, &mut target[done..done + len]);
            done += len;
        }
    }

    /// Block-aligned views covering `[from, to)`, split at chunk boundaries, each with its
    /// absolute start offset. `from` and `to` must be block-aligned and `from >= start`.
    pub fn views(&mut self, from: i64, to: i64) -> Vec<(i64, ChunkView)> {
        assert!(from >= self.start && from < to);
        assert!(((from - self.base) as usize).is_multiple_of(BLOCK_SIZE));
        assert!(((to - self.base) as usize).is_multiple_of(BLOCK_SIZE));
        self.ensure_chunks(to);
        // A write sends whole blocks: what it sends past `end` must read zero.
        self.zero_through(to);
        let mut views = Vec::with_capacity(2);
        let mut at = from;
        while at < to {
            let index = self.chunk_index(at);
            let chunk_start = self.chunk_start(index);
            let piece_end = to.min(chunk_start + CHUNK_SIZE as i64);
            let chunk = &self.chunks[(index - self.first_chunk) as usize];
            let view = chunk.view(
                (at - chunk_start) as usize,
                (piece_end - chunk_start) as usize,
            );
            views.push((at, view));
            at = piece_end;
        }
        views
    }

    /// Drops old chunks that lie entirely below `durable` while the tail is above its memory
    /// budget.
    pub fn evict(&mut self, durable: i64) {
        let written_block = self.base + align_down((durable - self.base) as u64) as i64;
        while self.chunks.len() * CHUNK_SIZE > self.retain_bytes {
            let first_end = self.chunk_start(self.first_chunk + 1);
            if first_end > written_block || first_end > self.end {
                break;
            }
            let chunk = self.chunks.pop_front().expect("non-empty");
            self.first_chunk += 1;
            self.start = first_end;
            if chunk.is_unshared() && self.spare.len() < SPARE_CHUNKS_MAX {
                self.spare.push(chunk);
            }
        }
        assert!(self.start <= self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ASYNC_FLUSH at a high rate: each sync flushes a little more than
    /// `UNFLUSHED_SYNC_BYTES` at once. After the first cycles every chunk comes from the
    /// spares, and a reused chunk reads zero where nothing was appended.
    #[test]
    fn chunks_evicted_by_a_sync_are_reused_zeroed() {
        let base = 1i64 << 56;
        let mut tail = TailMemory::new(base, base, TAIL_MEMORY_BUFFERED_BYTES);
        let record = vec![9u8; 100_000];
        let mut position = base;
        let mut allocated = Vec::new();
        for _ in 0..6 {
            let synced = position + (UNFLUSHED_SYNC_BYTES + CHUNK_SIZE / 2) as i64;
            while position < synced {
                tail.append(position, &record);
                position += record.len() as i64;
            }
            tail.evict(position);
            allocated.push(tail.allocated);
        }
        assert!(allocated[1] > 1, "the first cycles allocate: {allocated:?}");
        assert_eq!(
            allocated[5], allocated[1],
            "later cycles reuse evicted chunks: {allocated:?}"
        );
        // The chunk `position` is in was reused: the bytes skipped over read zero.
        let gap = CHUNK_SIZE as i64 / 8;
        tail.skip_to(position + gap);
        let mut out = vec![1u8; gap as usize];
        tail.copy_out(position, &mut out);
        assert!(
            out.iter().all(|&b| b == 0),
            "skipped bytes of a reused chunk"
        );
        let mut before = [0u8; 4];
        tail.copy_out(position - 4, &mut before);
        assert_eq!(before, [9u8; 4]);
    }

    /// A reused chunk is not zeroed whole: the old bytes past `end` are zeroed where a write
    /// can send them (the rest of the last block, lent whole) and where a skip exposes them.
    #[test]
    fn a_reused_chunk_sends_zeros_past_the_end() {
        use compio::buf::IoBuf;
        let base = 0i64;
        let mut tail = TailMemory::new(base, base, TAIL_MEMORY_BUFFERED_BYTES);
        let old = vec![0xEEu8; CHUNK_SIZE];
        let mut position = base;
        // Fill and evict enough chunks that the next ones come from the spares.
        for _ in 0..(TAIL_MEMORY_BUFFERED_BYTES / CHUNK_SIZE + 3) {
            tail.append(position, &old);
            position += CHUNK_SIZE as i64;
            tail.evict(position);
        }
        let allocated = tail.allocated;
        // A record that ends mid-block in a reused chunk.
        tail.append(position, &[7u8; 5000]);
        assert_eq!(tail.allocated, allocated, "the chunk came from the spares");
        let end = position + 5000;
        let block_end = position + 2 * BLOCK_SIZE as i64;
        let views = tail.views(position, block_end);
        let sent: Vec<u8> = views
            .iter()
            .flat_map(|(_, v)| v.as_init().to_vec())
            .collect();
        assert_eq!(sent.len(), 2 * BLOCK_SIZE);
        assert!(sent[..5000].iter().all(|&b| b == 7));
        assert!(
            sent[5000..].iter().all(|&b| b == 0),
            "old bytes past the end were sent"
        );
        drop(views);
        // Appending into the zeroed rest, then skipping well past the block: both read back
        // as appended / zero.
        tail.append(end, &[8u8; 100]);
        tail.skip_to(end + 100 + 3 * BLOCK_SIZE as i64);
        let mut out = vec![1u8; 100 + 3 * BLOCK_SIZE];
        tail.copy_out(end, &mut out);
        assert!(out[..100].iter().all(|&b| b == 8));
        assert!(out[100..].iter().all(|&b| b == 0), "skipped old bytes");
    }

    #[test]
    fn appends_span_chunks_and_evict_only_written_data() {
        for retain in [TAIL_MEMORY_BYTES, TAIL_MEMORY_BUFFERED_BYTES] {
            evicts_down_to(retain);
        }
    }

    fn evicts_down_to(retain: usize) {
        let base = 1i64 << 56;
        let mut tail = TailMemory::new(base, base, retain);
        let record = vec![7u8; 1 << 20];
        let mut position = base;
        for _ in 0..(TAIL_MEMORY_BYTES / record.len() + 10) {
            tail.append(position, &record);
            position += record.len() as i64 + 3;
            tail.skip_to(position);
        }
        assert_eq!(tail.end(), position);
        let mut out = vec![0u8; 10];
        tail.copy_out(base + (1 << 20) - 5, &mut out);
        assert_eq!(&out[..5], &[7u8; 5]);
        assert_eq!(&out[5..8], &[0u8; 3]);
        tail.evict(base + 4096);
        assert_eq!(tail.start(), base, "nothing written, nothing evicted");
        tail.evict(position);
        assert!(tail.start() > base);
        assert!((tail.end() - tail.start()) as usize <= retain + CHUNK_SIZE);
        assert!((tail.end() - tail.start()) as usize > retain - CHUNK_SIZE);
        let views = tail.views(tail.start(), tail.start() + 2 * CHUNK_SIZE as i64);
        assert_eq!(views.len(), 2);
    }
}
