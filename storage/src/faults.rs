//! The fault-injection seam below the commit log: every segment file operation (create,
//! write, read, fdatasync, write-back) asks [`DiskFaults`] first, so tests can make the disk
//! fail the way real disks do without a special filesystem (or, with an implementation that
//! blocks in [`DiskFaults::on_op`], stall the way a congested one does).
//!
//! Faults a write can suffer (see [`Fault`]):
//! - `Error(errno)`: nothing reaches the file, the operation fails (ENOSPC, EIO).
//! - `Short(n)`: the first `n` bytes reach the file, then the operation fails with EIO
//!   (a short write followed by an error, as a disk filling up mid-write does).
//! - `Torn(n)`: like `Short`, but `n` need not be block-aligned: the block holding byte `n`
//!   ends up half new, half old (a torn sector after power loss). Done with a read-merge-write
//!   of that block, so it also works under `O_DIRECT`.
//!
//! Contract: the seam never changes what a *successful* operation does; with no
//! `DiskFaults` configured (production) the check is one `Option` test per I/O.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Mutex;

/// A segment file operation the seam is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    Create,
    Write,
    Read,
    Sync,
    /// Starting the write-back of written pages (`sync_file_range`, `write_back.rs`): asked on
    /// the thread that makes the call, which is never a shard's.
    WriteBack,
}

/// What happens to one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this `errno` before touching the file.
    Error(i32),
    /// Write the first `n` (block-aligned) bytes, then fail with EIO.
    Short(usize),
    /// Write the first `n` bytes (any `n`), the rest of that block keeps its old bytes, then
    /// fail with EIO.
    Torn(usize),
}

/// Decides the fate of each segment file operation. Required to be `Send + Sync` because a
/// store configuration crosses threads before shards open on their cores.
pub trait DiskFaults: Debug + Send + Sync {
    /// Called before `op` on `path` at `position` (relative to the file) for `len` bytes;
    /// `None` lets the operation run normally.
    fn on_op(&self, op: FileOp, path: &Path, position: u64, len: usize) -> Option<Fault>;
}

/// A scriptable [`DiskFaults`] for tests: a queue of faults consumed by the matching
/// operations, plus an optional "disk full" switch that fails every write and create.
#[derive(Debug, Default)]
pub struct ScriptedFaults {
    state: Mutex<ScriptState>,
}

#[derive(Debug, Default)]
struct ScriptState {
    queued: Vec<(FileOp, Fault)>,
    disk_full: bool,
    injected: u64,
}

impl ScriptedFaults {
    /// The next `op` gets `fault` (faults queue up in order).
    pub fn push(&self, op: FileOp, fault: Fault) {
        self.state
            .lock()
            .expect("faults lock")
            .queued
            .push((op, fault));
    }

    /// While on, every write and create fails with ENOSPC.
    pub fn set_disk_full(&self, full: bool) {
        self.state.lock().expect("faults lock").disk_full = full;
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().expect("faults lock").injected
    }
}

impl DiskFaults for ScriptedFaults {
    fn on_op(&self, op: FileOp, _path: &Path, _position: u64, _len: usize) -> Option<Fault> {
        let mut state = self.state.lock().expect("faults lock");
        if state.disk_full && matches!(op, FileOp::Write | FileOp::Create) {
            state.injected += 1;
            return Some(Fault::Error(nix::libc::ENOSPC));
        }
        let index = state.queued.iter().position(|(queued, _)| *queued == op)?;
        let (_, fault) = state.queued.remove(index);
        state.injected += 1;
        Some(fault)
    }
}

/// The error an injected fault reports.
pub(crate) fn injected_error(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}
