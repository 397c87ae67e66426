//! One commit log segment file: `commit_log_file_size` bytes named by its 20-digit start offset.
//!
//! Contract: a segment is created at full size (fallocate, then optionally zero-filled) so
//! appends never extend the file and never change its size metadata; every write and read is
//! block-aligned and goes through `O_DIRECT` unless the filesystem refuses it (tmpfs), in which
//! case we fall back to buffered I/O and warn once per process. Under SYNC_FLUSH segments are
//! opened `O_DSYNC` too (`SegmentIo::dsync`): a completed write is then durable, no `fdatasync`
//! needed (`Segment::writes_durable`); or they keep a second `O_DIRECT | O_DSYNC` descriptor
//! (`SegmentIo::durable_writes`) for the writes the flusher wants durable at once
//! ([`Segment::write_durably_at`]). Preparation happens under a
//! `.prep` name and is renamed into place, so a crash never leaves a half-prepared file with a
//! segment name.

use std::cell::OnceCell;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use compio::BufResult;
use compio::buf::IoBuf;
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};
use nix::fcntl::{FallocateFlags, OFlag, fallocate};

use crate::aligned_buffer::{AlignedBuffer, BLOCK_SIZE, align_down};
use crate::error::StoreError;
use crate::faults::{DiskFaults, Fault, FileOp, injected_error};

/// The fault seam of a segment (`None` in production).
pub(crate) type Faults = Option<Arc<dyn DiskFaults>>;

/// How a segment's data is written: with `O_DIRECT` or through the page cache
/// ([`StoreConfig::direct_io`](crate::StoreConfig::direct_io)), and the fault seam below it.
#[derive(Clone)]
pub(crate) struct SegmentIo {
    pub direct: bool,
    /// Open `O_DSYNC` (only with `direct`: a buffered `pwrite` runs on the shard's thread and
    /// must not wait for the device).
    pub dsync: bool,
    /// Also open an `O_DIRECT | O_DSYNC` descriptor for [`Segment::write_durably_at`] (only
    /// with `direct` and without `dsync`).
    pub durable_writes: bool,
    pub faults: Faults,
}

static DIRECT_IO_REFUSED: AtomicBool = AtomicBool::new(false);

/// Size of the zero writes that prepare a segment.
const ZERO_FILL_WRITE_SIZE: usize = 1 << 20;

/// The file name of a segment starting at `start` (RocketMQ: 20 digits, zero padded).
pub(crate) fn segment_name(start: i64) -> String {
    assert!(start >= 0);
    format!("{start:020}")
}

/// Parses a segment file name; `None` for anything else (temporary files, strangers).
pub(crate) fn parse_segment_name(name: &str) -> Option<i64> {
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

pub(crate) struct Segment {
    /// Absolute physical offset of the first byte.
    pub start: i64,
    pub size: u64,
    pub path: PathBuf,
    file: File,
    /// Writes go through `O_DIRECT` (else through the page cache, see [`Segment::write_at`]).
    direct: bool,
    /// Opened `O_DSYNC`: a completed write is durable.
    dsync: bool,
    /// Keep a second descriptor, `O_DIRECT | O_DSYNC`, for [`Segment::write_durably_at`].
    durable_writes: bool,
    /// That descriptor, opened at the first durable write (most segments a store opens are
    /// never written again).
    durable_file: OnceCell<File>,
    faults: Faults,
}

impl Segment {
    pub fn end(&self) -> i64 {
        self.start + self.size as i64
    }

    /// Whether a completed [`Segment::write_at`] is already durable (the file is open
    /// `O_DSYNC`), so the bytes need no [`Segment::sync`].
    pub fn writes_durable(&self) -> bool {
        self.dsync
    }

    /// Whether a completed [`Segment::write_durably_at`] is durable.
    pub fn can_write_durably(&self) -> bool {
        self.dsync || self.durable_writes
    }

    /// Opens an existing segment and checks its size.
    pub async fn open(
        dir: &Path,
        start: i64,
        size: u64,
        io: &SegmentIo,
    ) -> Result<Segment, StoreError> {
        io.check();
        let path = dir.join(segment_name(start));
        let file = open_file(&path, false, io.direct, io.dsync).await?;
        let len = file
            .metadata()
            .await
            .map_err(|e| StoreError::io("stat", &path, 0, e))?
            .len();
        if len != size {
            return Err(StoreError::Config(format!(
                "segment {path:?} has {len} bytes, commit_log_file_size is {size}"
            )));
        }
        Ok(Segment {
            start,
            size,
            path,
            file,
            direct: io.direct,
            dsync: io.dsync,
            durable_writes: io.durable_writes,
            durable_file: OnceCell::new(),
            faults: io.faults.clone(),
        })
    }

    /// Creates a full-size segment (replacing a leftover `.prep`); `zero_fill` also writes
    /// zeros over it so later writes hit allocated, written extents (no unwritten extent
    /// conversion, cheaper `fdatasync`). Preparation always writes with `O_DIRECT` (zeros
    /// must not fill the page cache) and without `O_DSYNC` (a device flush per 1 MiB of
    /// zeros would compete with the acks' flushes); a buffered or `O_DSYNC` segment is
    /// reopened so afterwards.
    pub async fn create(
        dir: &Path,
        start: i64,
        size: u64,
        zero_fill: bool,
        io: &SegmentIo,
    ) -> Result<Segment, StoreError> {
        io.check();
        let path = dir.join(segment_name(start));
        let prep_path = dir.join(format!("{}.prep", segment_name(start)));
        refuse_on_fault(
            &io.faults,
            FileOp::Create,
            "create",
            &path,
            0,
            size as usize,
        )?;
        let file = open_file(&prep_path, true, true, false).await?;
        let segment = Segment {
            start,
            size,
            path: prep_path.clone(),
            file,
            direct: true,
            dsync: false,
            durable_writes: io.durable_writes,
            durable_file: OnceCell::new(),
            faults: io.faults.clone(),
        };
        segment.allocate().await?;
        if zero_fill {
            segment.zero_range(0, size).await?;
        }
        segment.sync().await?;
        compio::fs::rename(&prep_path, &path)
            .await
            .map_err(|e| StoreError::io("rename", &path, 0, e))?;
        sync_dir(dir).await?;
        if io.direct && !io.dsync {
            return Ok(Segment { path, ..segment });
        }
        let file = open_file(&path, false, io.direct, io.dsync).await?;
        Ok(Segment {
            path,
            file,
            direct: io.direct,
            dsync: io.dsync,
            ..segment
        })
    }

    async fn allocate(&self) -> Result<(), StoreError> {
        match fallocate(
            self.file.as_fd(),
            FallocateFlags::empty(),
            0,
            self.size as i64,
        ) {
            Ok(()) => Ok(()),
            Err(errno) => {
                tracing::warn!(path = ?self.path, %errno, "fallocate refused, using set_len");
                self.file
                    .set_len(self.size)
                    .await
                    .map_err(|e| StoreError::io("set_len", &self.path, 0, e))
            }
        }
    }

    /// Writes zeros over `[from, to)` (block-aligned).
    pub async fn zero_range(&self, from: u64, to: u64) -> Result<(), StoreError> {
        assert!(from.is_multiple_of(BLOCK_SIZE as u64) && to.is_multiple_of(BLOCK_SIZE as u64));
        assert!(from <= to && to <= self.size);
        let mut zeros = AlignedBuffer::zeroed(ZERO_FILL_WRITE_SIZE);
        let mut position = from;
        while position < to {
            let len = (to - position).min(ZERO_FILL_WRITE_SIZE as u64) as usize;
            zeros.set_len_to(len);
            zeros = self.write_at(zeros, position).await?;
            position += len as u64;
        }
        Ok(())
    }

    /// Writes all of `buffer` at `position` (relative to the segment start), looping on
    /// short writes; returns the buffer for reuse.
    pub async fn write_at<B: IoBuf>(&self, buffer: B, position: u64) -> Result<B, StoreError> {
        self.write_through(&self.file, buffer, position).await
    }

    /// [`Segment::write_at`] through an `O_DSYNC` descriptor, so the bytes are durable when
    /// it completes; also returns whether they are: not when that descriptor cannot be
    /// opened (warned; the write goes through the plain one and needs a sync). Only where
    /// [`Segment::can_write_durably`].
    pub async fn write_durably_at<B: IoBuf>(
        &self,
        buffer: B,
        position: u64,
    ) -> Result<(B, bool), StoreError> {
        assert!(
            self.can_write_durably(),
            "no O_DSYNC descriptor for {:?}",
            self.path
        );
        if self.dsync {
            return Ok((self.write_at(buffer, position).await?, true));
        }
        if self.durable_file.get().is_none() {
            match open_file(&self.path, false, true, true).await {
                Ok(file) => {
                    let _ = self.durable_file.set(file);
                }
                Err(error) => {
                    tracing::warn!(%error, "no O_DSYNC descriptor; writing, then syncing");
                    return Ok((self.write_at(buffer, position).await?, false));
                }
            }
        }
        let file = self.durable_file.get().expect("opened above");
        Ok((self.write_through(file, buffer, position).await?, true))
    }

    async fn write_through<B: IoBuf>(
        &self,
        file: &File,
        buffer: B,
        position: u64,
    ) -> Result<B, StoreError> {
        let len = buffer.buf_len() as u64;
        assert!(
            position.is_multiple_of(BLOCK_SIZE as u64),
            "unaligned write at {position}"
        );
        assert!(
            len.is_multiple_of(BLOCK_SIZE as u64),
            "unaligned write length {len}"
        );
        assert!(
            position + len <= self.size,
            "write past the end of {:?}",
            self.path
        );
        if let Some(fault) = check(
            &self.faults,
            FileOp::Write,
            &self.path,
            position,
            len as usize,
        ) {
            return Err(self.write_faulty(buffer.as_init(), position, fault).await);
        }
        if !self.direct {
            self.write_buffered(buffer.as_init(), position)?;
            return Ok(buffer);
        }
        let mut file = file;
        let BufResult(result, buffer) = file.write_all_at(buffer, position).await;
        result.map_err(|e| StoreError::io("write", &self.path, position, e))?;
        Ok(buffer)
    }

    /// A page-cache write, done with `pwrite` on the shard's thread: it is a copy into the
    /// kernel (microseconds), and ext4 cannot do it without blocking inside io_uring, which
    /// would hand every write to a kernel worker thread and back (measured: a thread wake-up
    /// per write, and the same copy on another core).
    fn write_buffered(&self, mut bytes: &[u8], mut position: u64) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            match nix::sys::uio::pwrite(&self.file, bytes, position as i64) {
                Ok(0) => {
                    let error = std::io::Error::from(std::io::ErrorKind::WriteZero);
                    return Err(StoreError::io("write", &self.path, position, error));
                }
                Ok(n) => {
                    bytes = &bytes[n..];
                    position += n as u64;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => {
                    return Err(StoreError::io("write", &self.path, position, errno.into()));
                }
            }
        }
        Ok(())
    }

    /// Applies an injected write fault: writes the prefix it lets through, then fails.
    async fn write_faulty(&self, bytes: &[u8], position: u64, fault: Fault) -> StoreError {
        let fail = |e| StoreError::io("write", &self.path, position, e);
        let (prefix, torn) = match fault {
            Fault::Error(errno) => return fail(injected_error(errno)),
            Fault::Short(n) => (align_down(n.min(bytes.len()) as u64) as usize, 0),
            Fault::Torn(n) => {
                let n = n.min(bytes.len());
                let whole = align_down(n as u64) as usize;
                (whole, n - whole)
            }
        };
        if prefix > 0 {
            let mut head = AlignedBuffer::zeroed(prefix);
            head.as_full_mut_slice()[..prefix].copy_from_slice(&bytes[..prefix]);
            let mut file = &self.file;
            if let BufResult(Err(e), _) = file.write_all_at(head, position).await {
                return fail(e);
            }
        }
        if torn > 0 {
            let at = position + prefix as u64;
            let mut block = match self.read_unchecked(at, BLOCK_SIZE).await {
                Ok(block) => block,
                Err(error) => return error,
            };
            block.as_full_mut_slice()[..torn].copy_from_slice(&bytes[prefix..prefix + torn]);
            let mut file = &self.file;
            if let BufResult(Err(e), _) = file.write_all_at(block, at).await {
                return fail(e);
            }
        }
        fail(injected_error(nix::libc::EIO))
    }

    /// Reads `len` bytes at `position` (both block-aligned) into a new aligned buffer.
    pub async fn read_at(&self, position: u64, len: usize) -> Result<AlignedBuffer, StoreError> {
        assert!(position.is_multiple_of(BLOCK_SIZE as u64) && len.is_multiple_of(BLOCK_SIZE));
        assert!(
            position + len as u64 <= self.size,
            "read past the end of {:?}",
            self.path
        );
        refuse_on_fault(
            &self.faults,
            FileOp::Read,
            "read",
            &self.path,
            position,
            len,
        )?;
        self.read_unchecked(position, len).await
    }

    async fn read_unchecked(&self, position: u64, len: usize) -> Result<AlignedBuffer, StoreError> {
        let buffer = AlignedBuffer::with_capacity(len);
        let BufResult(result, buffer) = self.file.read_exact_at(buffer, position).await;
        result.map_err(|e| StoreError::io("read", &self.path, position, e))?;
        assert_eq!(buffer.len(), len);
        Ok(buffer)
    }

    /// The write-back of the dirty pages of `[position, position + len)`, to run off the
    /// shard's thread ([`WriteBackJob::run`]); `None` on an `O_DIRECT` segment (no dirty
    /// pages) or for an empty range. The job holds its own descriptor (a `dup`), so it stays
    /// valid when the segment is dropped meanwhile.
    pub fn write_back_job(
        &self,
        position: u64,
        len: u64,
        kind: WriteBackKind,
    ) -> Result<Option<WriteBackJob>, StoreError> {
        assert!(
            position + len <= self.size,
            "write-back past the end of {:?}",
            self.path
        );
        if self.direct || len == 0 {
            return Ok(None);
        }
        let fd = self
            .file
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| StoreError::io("dup", &self.path, position, e))?;
        Ok(Some(WriteBackJob {
            fd,
            path: self.path.clone(),
            position,
            len,
            kind,
            faults: self.faults.clone(),
        }))
    }

    pub async fn sync(&self) -> Result<(), StoreError> {
        refuse_on_fault(&self.faults, FileOp::Sync, "fdatasync", &self.path, 0, 0)?;
        self.file
            .sync_data()
            .await
            .map_err(|e| StoreError::io("fdatasync", &self.path, 0, e))
    }
}

/// Starts writing a range of a segment's dirty pages to the device
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): no wait for the I/O, no device cache flush, so
/// it makes nothing durable (see `write_back.rs`). Submitting the I/O can block for as long as
/// the device is congested (the block layer's write-back throttling, request tags), so it runs
/// on a blocking thread, never on a shard's.
pub(crate) struct WriteBackJob {
    fd: std::os::fd::OwnedFd,
    path: PathBuf,
    position: u64,
    len: u64,
    kind: WriteBackKind,
    faults: Faults,
}

/// What a [`WriteBackJob`] does with its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteBackKind {
    /// Start writing the dirty pages to the device (no wait).
    Start,
    /// Wait until the range is written to the device, then drop its pages from the page
    /// cache (`POSIX_FADV_DONTNEED`): the range's bytes stay readable, from the device.
    DropBehind,
}

impl WriteBackJob {
    /// How many bytes the job covers.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    pub fn kind(&self) -> WriteBackKind {
        self.kind
    }

    /// Blocks until the kernel has queued the range's write-back (`Start`), or until the
    /// range is written and its pages dropped (`DropBehind`).
    pub fn run(&self) -> Result<(), StoreError> {
        let (position, len) = (self.position, self.len);
        refuse_on_fault(
            &self.faults,
            FileOp::WriteBack,
            "sync_file_range",
            &self.path,
            position,
            len as usize,
        )?;
        use std::os::fd::AsRawFd;
        let fd = self.fd.as_raw_fd();
        let flags = match self.kind {
            WriteBackKind::Start => nix::libc::SYNC_FILE_RANGE_WRITE,
            WriteBackKind::DropBehind => {
                nix::libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | nix::libc::SYNC_FILE_RANGE_WRITE
                    | nix::libc::SYNC_FILE_RANGE_WAIT_AFTER
            }
        };
        // SAFETY: the descriptor is owned by `self` and open; the call reads no memory.
        let rc = unsafe { nix::libc::sync_file_range(fd, position as i64, len as i64, flags) };
        nix::errno::Errno::result(rc).map_err(|errno| {
            StoreError::io("sync_file_range", &self.path, position, errno.into())
        })?;
        if self.kind == WriteBackKind::DropBehind {
            // Pages still dirty (rewritten meanwhile) or under write-back are skipped by the
            // kernel, never lost: dropping only ever discards clean copies of device data.
            nix::fcntl::posix_fadvise(
                &self.fd,
                position as i64,
                len as i64,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            )
            .map_err(|errno| StoreError::io("posix_fadvise", &self.path, position, errno.into()))?;
        }
        Ok(())
    }
}

fn check(faults: &Faults, op: FileOp, path: &Path, position: u64, len: usize) -> Option<Fault> {
    faults.as_ref()?.on_op(op, path, position, len)
}

/// For an operation that cannot be partial (create, read, sync, write-back): the injected
/// fault, if any, as the error the operation reports (`name` is the call it stands for).
fn refuse_on_fault(
    faults: &Faults,
    op: FileOp,
    name: &'static str,
    path: &Path,
    position: u64,
    len: usize,
) -> Result<(), StoreError> {
    match check(faults, op, path, position, len) {
        Some(fault) => Err(StoreError::io(name, path, position, fault_error(fault))),
        None => Ok(()),
    }
}

/// The error of a fault on an operation that cannot be partial (create, read, sync).
fn fault_error(fault: Fault) -> std::io::Error {
    match fault {
        Fault::Error(errno) => injected_error(errno),
        Fault::Short(_) | Fault::Torn(_) => injected_error(nix::libc::EIO),
    }
}

impl SegmentIo {
    fn check(&self) {
        assert!(!self.dsync || self.direct, "O_DSYNC only with O_DIRECT");
        assert!(
            !self.durable_writes || (self.direct && !self.dsync),
            "a durable descriptor only beside a plain O_DIRECT one"
        );
    }
}

/// Opens a segment file with `O_DIRECT` when `direct` (falling back to buffered I/O where
/// the filesystem refuses it), else buffered; `O_DSYNC` when `dsync`.
async fn open_file(
    path: &Path,
    create: bool,
    direct: bool,
    dsync: bool,
) -> Result<File, StoreError> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(create)
        .truncate(create);
    if dsync {
        options.custom_flags(OFlag::O_DSYNC.bits());
    }
    if direct && !DIRECT_IO_REFUSED.load(Ordering::Relaxed) {
        let mut direct = options.clone();
        let dsync = if dsync {
            OFlag::O_DSYNC
        } else {
            OFlag::empty()
        };
        direct.custom_flags((OFlag::O_DIRECT | dsync).bits());
        match direct.open(path).await {
            Ok(file) => return Ok(file),
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                if !DIRECT_IO_REFUSED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        ?path,
                        "O_DIRECT refused by the filesystem; using buffered I/O"
                    );
                }
            }
            Err(e) => return Err(StoreError::io("open", path, 0, e)),
        }
    }
    options
        .open(path)
        .await
        .map_err(|e| StoreError::io("open", path, 0, e))
}

/// True once any open fell back to buffered I/O (reported in stats and tests).
pub(crate) fn direct_io_refused() -> bool {
    DIRECT_IO_REFUSED.load(Ordering::Relaxed)
}

/// Makes a rename or create in `dir` durable, through the ring (a directory fsync can take
/// milliseconds; it must not stall the shard's thread).
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let handle = File::open(dir)
        .await
        .map_err(|e| StoreError::io("open_dir", dir, 0, e))?;
    handle
        .sync_all()
        .await
        .map_err(|e| StoreError::io("fsync_dir", dir, 0, e))
}
