//! Durable small-file writes shared by the log store and the state machine.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::ControllerError;

pub(crate) fn store_error(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> ControllerError {
    let path = path.to_path_buf();
    move |source| ControllerError::Store { op, path, source }
}

/// Runs blocking file work (writes and fsyncs) so that it does not stall the other tasks of
/// the node's runtime: on its multi-threaded runtime the worker hands its other tasks to
/// another thread meanwhile (a slow fsync must not delay raft heartbeats or client answers);
/// elsewhere (unit tests on a current-thread runtime) it just runs.
pub(crate) fn blocking<R>(work: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content:
/// write a temporary file, fsync it, rename it over `path`, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ControllerError> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&tmp)
        .map_err(store_error("create", &tmp))?;
    file.write_all(bytes).map_err(store_error("write", &tmp))?;
    file.sync_all().map_err(store_error("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(store_error("rename", path))?;
    sync_dir(path)
}

/// fsyncs the directory holding `path`, making a create or rename in it durable.
pub(crate) fn sync_dir(path: &Path) -> Result<(), ControllerError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(store_error("fsync dir", dir))
}

/// Reads `path`, or None when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, ControllerError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(store_error("read", path)(e)),
    }
}
