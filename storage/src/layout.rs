//! The process-wide part of a store: directories, the single-process lock, the shard count and
//! the dirty-shutdown marker. Opened once, before any shard, with blocking `std::fs` calls.
//!
//! Contract: while a `StoreLayout` is alive this process holds an exclusive `flock` on
//! `root/lock`; a second open (from any process, or this one) fails with `StoreError::Locked`.
//! The shard count of an existing store never changes, because queue-to-shard placement and
//! physical offsets depend on it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::config::StoreConfig;
use crate::error::StoreError;

pub struct StoreLayout {
    pub shard_count: u32,
    /// False when the abort marker of the previous run was still present (kill -9, crash).
    pub previous_shutdown_clean: bool,
    abort_path: std::path::PathBuf,
    _lock: Flock<File>,
}

impl std::fmt::Debug for StoreLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLayout")
            .field("shard_count", &self.shard_count)
            .field("previous_shutdown_clean", &self.previous_shutdown_clean)
            .finish()
    }
}

impl StoreLayout {
    pub fn open(cfg: &StoreConfig) -> Result<StoreLayout, StoreError> {
        cfg.validate()?;
        for dir in [&cfg.root_dir, &cfg.commit_log_dir, &cfg.consume_queue_dir] {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create_dir", dir, 0, e))?;
        }
        let lock_path = cfg.root_dir.join("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io("open", &lock_path, 0, e))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| StoreError::Locked(lock_path.clone()))?;
        let shard_count = read_or_create_shard_count(cfg)?;
        let previous_shutdown_clean = !cfg.abort_path.exists();
        let abort = File::create(&cfg.abort_path)
            .map_err(|e| StoreError::io("create", &cfg.abort_path, 0, e))?;
        abort
            .sync_all()
            .map_err(|e| StoreError::io("fsync", &cfg.abort_path, 0, e))?;
        sync_dir(&cfg.root_dir)?;
        Ok(StoreLayout {
            shard_count,
            previous_shutdown_clean,
            abort_path: cfg.abort_path.clone(),
            _lock: lock,
        })
    }

    /// Removes the abort marker. Call after every shard's `shutdown` completed.
    pub fn mark_clean_shutdown(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(&self.abort_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove", &self.abort_path, 0, e)),
        }
        if let Some(dir) = self.abort_path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

fn read_or_create_shard_count(cfg: &StoreConfig) -> Result<u32, StoreError> {
    if let Some(count) = read_shard_count(cfg)? {
        return Ok(count);
    }
    let path = cfg.shard_count_path();
    let temp_path = path.with_extension("tmp");
    let mut file =
        File::create(&temp_path).map_err(|e| StoreError::io("create", &temp_path, 0, e))?;
    file.write_all(format!("{}\n", cfg.requested_shard_count).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("write", &temp_path, 0, e))?;
    std::fs::rename(&temp_path, &path).map_err(|e| StoreError::io("rename", &path, 0, e))?;
    sync_dir(&cfg.root_dir)?;
    Ok(cfg.requested_shard_count)
}

/// The shard count of an existing store, `None` for a new one.
pub(crate) fn read_shard_count(cfg: &StoreConfig) -> Result<Option<u32>, StoreError> {
    let path = cfg.shard_count_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", &path, 0, e)),
    };
    let count: u32 = text.trim().parse().map_err(|_| StoreError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: format!("shard count {:?} is not a number", text.trim()),
    })?;
    if count == 0 || count > crate::MAX_SHARD_COUNT {
        return Err(StoreError::Corrupt {
            path,
            offset: 0,
            reason: format!("shard count {count} out of range"),
        });
    }
    Ok(Some(count))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync_dir", dir, 0, e))
}
