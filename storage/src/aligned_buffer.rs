//! Block-aligned memory for `O_DIRECT` I/O.
//!
//! `O_DIRECT` requires the buffer address, the file offset and the length to be multiples of
//! the logical block size; we use 4096 everywhere (the common page and sector size).
//!
//! - [`AlignedBuffer`]: an owned, zero-initialised, 4096-aligned buffer with a length, usable
//!   as a compio read target (`IoBufMut`) or write source (`IoBuf`).
//! - [`SharedChunk`]: a fixed-size aligned allocation shared (`Rc`) between the in-memory
//!   commit log tail and in-flight writes. Appends copy bytes *in* through `copy_in`, readers
//!   copy bytes *out*; a [`ChunkView`] lends a block range to one compio write without copying.
//!   No Rust reference into the memory outlives a method call, so appends that land in the
//!   same 4 KiB block as an in-flight write are not aliasing violations: the kernel may write
//!   either the old or the new bytes past the write's logical end, and those bytes are
//!   rewritten by the next write anyway.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::rc::Rc;

use compio::buf::{IoBuf, IoBufMut, SetLen};

/// Alignment and granularity of direct I/O.
pub const BLOCK_SIZE: usize = 4096;

/// Rounds `value` down to a multiple of [`BLOCK_SIZE`].
pub(crate) fn align_down(value: u64) -> u64 {
    value & !(BLOCK_SIZE as u64 - 1)
}

/// Rounds `value` up to a multiple of [`BLOCK_SIZE`].
pub(crate) fn align_up(value: u64) -> u64 {
    align_down(value + BLOCK_SIZE as u64 - 1)
}

struct RawAligned {
    ptr: NonNull<u8>,
    capacity: usize,
}

impl RawAligned {
    fn new(capacity: usize) -> RawAligned {
        assert!(
            capacity > 0 && capacity.is_multiple_of(BLOCK_SIZE),
            "capacity {capacity}"
        );
        let layout = Layout::from_size_align(capacity, BLOCK_SIZE).expect("aligned layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        RawAligned { ptr, capacity }
    }
}

impl Drop for RawAligned {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.capacity, BLOCK_SIZE).expect("aligned layout");
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

/// An owned, 4096-aligned, zero-initialised buffer. All `capacity` bytes are initialised;
/// `len` is how many of them are meaningful (compio advances it after reads).
pub struct AlignedBuffer {
    raw: RawAligned,
    len: usize,
}

impl AlignedBuffer {
    /// A zeroed buffer of `capacity` bytes (rounded up to a block) and length 0.
    pub fn with_capacity(capacity: usize) -> AlignedBuffer {
        let capacity = align_up(capacity.max(1) as u64) as usize;
        AlignedBuffer {
            raw: RawAligned::new(capacity),
            len: 0,
        }
    }

    /// A zeroed buffer whose length equals its (block-rounded) capacity, e.g. a write source.
    pub fn zeroed(len: usize) -> AlignedBuffer {
        let mut buffer = AlignedBuffer::with_capacity(len);
        buffer.len = buffer.raw.capacity;
        buffer
    }

    pub fn capacity(&self) -> usize {
        self.raw.capacity
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: all capacity bytes are initialised (zeroed at allocation), len <= capacity.
        unsafe { std::slice::from_raw_parts(self.raw.ptr.as_ptr(), self.len) }
    }

    /// The whole capacity, for filling before a write.
    pub fn as_full_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.raw.ptr.as_ptr(), self.raw.capacity) }
    }

    pub fn set_len_to(&mut self, len: usize) {
        assert!(len <= self.raw.capacity);
        self.len = len;
    }
}

impl IoBuf for AlignedBuffer {
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

impl SetLen for AlignedBuffer {
    unsafe fn set_len(&mut self, len: usize) {
        self.set_len_to(len);
    }
}

impl IoBufMut for AlignedBuffer {
    fn as_uninit(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: same allocation, exclusive borrow; u8 and MaybeUninit<u8> share layout.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.raw.ptr.as_ptr().cast::<MaybeUninit<u8>>(),
                self.raw.capacity,
            )
        }
    }
}

/// A fixed-size aligned allocation shared by the commit log tail and in-flight writes.
#[derive(Clone)]
pub(crate) struct SharedChunk {
    raw: Rc<RawAligned>,
}

impl SharedChunk {
    pub(crate) fn new(capacity: usize) -> SharedChunk {
        SharedChunk {
            raw: Rc::new(RawAligned::new(capacity)),
        }
    }

    /// True when no write holds a view, so the chunk may be recycled.
    pub(crate) fn is_unshared(&self) -> bool {
        Rc::strong_count(&self.raw) == 1
    }

    pub(crate) fn copy_in(&self, offset: usize, source: &[u8]) {
        assert!(
            offset + source.len() <= self.raw.capacity,
            "copy_in out of bounds"
        );
        // SAFETY: in bounds; no reference into the chunk outlives a call (see module docs).
        unsafe {
            std::ptr::copy_nonoverlapping(
                source.as_ptr(),
                self.raw.ptr.as_ptr().add(offset),
                source.len(),
            )
        };
    }

    pub(crate) fn copy_out(&self, offset: usize, target: &mut [u8]) {
        assert!(
            offset + target.len() <= self.raw.capacity,
            "copy_out out of bounds"
        );
        // SAFETY: in bounds, initialised (zeroed at allocation).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.raw.ptr.as_ptr().add(offset),
                target.as_mut_ptr(),
                target.len(),
            )
        };
    }

    /// Zeroes `[start, end)`: bytes past the tail's end that a write or a reader may see.
    pub(crate) fn zero_range(&self, start: usize, end: usize) {
        assert!(
            start <= end && end <= self.raw.capacity,
            "zero_range out of bounds"
        );
        // SAFETY: in bounds; no reference into the chunk outlives a call (see module docs).
        unsafe { std::ptr::write_bytes(self.raw.ptr.as_ptr().add(start), 0, end - start) };
    }

    /// Lends `[start, end)` (block-aligned) to one write.
    pub(crate) fn view(&self, start: usize, end: usize) -> ChunkView {
        assert!(start.is_multiple_of(BLOCK_SIZE) && end.is_multiple_of(BLOCK_SIZE));
        assert!(start < end && end <= self.raw.capacity);
        ChunkView {
            chunk: self.raw.clone(),
            start,
            end,
        }
    }
}

/// A block-aligned window of a [`SharedChunk`], the source of one `O_DIRECT` write.
pub(crate) struct ChunkView {
    chunk: Rc<RawAligned>,
    start: usize,
    end: usize,
}

impl IoBuf for ChunkView {
    fn as_init(&self) -> &[u8] {
        // SAFETY: in bounds and initialised; the chunk outlives the view through the Rc.
        unsafe {
            std::slice::from_raw_parts(
                self.chunk.ptr.as_ptr().add(self.start),
                self.end - self.start,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_zeroed() {
        let buffer = AlignedBuffer::zeroed(5000);
        assert_eq!(buffer.len(), 8192);
        assert_eq!(buffer.as_slice().as_ptr() as usize % BLOCK_SIZE, 0);
        assert!(buffer.as_slice().iter().all(|&b| b == 0));
        let chunk = SharedChunk::new(BLOCK_SIZE * 2);
        chunk.copy_in(4090, b"0123456789");
        let mut out = [0u8; 10];
        chunk.copy_out(4090, &mut out);
        assert_eq!(&out, b"0123456789");
        let view = chunk.view(4096, 8192);
        assert!(!chunk.is_unshared());
        assert_eq!(&view.as_init()[..4], b"6789");
        drop(view);
        assert!(chunk.is_unshared());
        assert_eq!(
            (align_down(4097), align_up(4097), align_up(4096)),
            (4096, 8192, 4096)
        );
    }
}
