//! Free-space accounting of the store's filesystem and the "disk full" admission state.
//!
//! - [`FreeSpace`] reads how full a filesystem is. [`Statvfs`] is the real one; tests inject
//!   their own to play a disk filling up without filling one.
//! - [`DiskGuard`] turns readings into RocketMQ's behaviour: at or above
//!   [`DISK_WARNING_RATIO`] (90%) sends are refused with a remark saying the disk is full;
//!   they resume once use drops below it again. Reads are never affected.
//! - A process-wide registry maps a store's commit log directory to its guard, so the send
//!   path can ask [`sends_refused`] from any core. Its fast path is one relaxed atomic load
//!   (no store in the process is full); only while some store is full does it take a lock.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub use crate::retention::DISK_WARNING_RATIO;

/// Size and free space of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

impl DiskUsage {
    /// Used fraction of what can be written (`df`'s Use%).
    pub fn used_ratio(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        1.0 - self.available_bytes.min(self.total_bytes) as f64 / self.total_bytes as f64
    }
}

/// Reads the usage of the filesystem holding a path. `Send + Sync` because the broker's
/// retention loop may run on any core.
pub trait FreeSpace: std::fmt::Debug + Send + Sync {
    fn usage(&self, path: &Path) -> std::io::Result<DiskUsage>;
}

/// The real filesystem, through `statvfs(2)` (a few microseconds; no I/O).
#[derive(Debug, Default, Clone, Copy)]
pub struct Statvfs;

impl FreeSpace for Statvfs {
    fn usage(&self, path: &Path) -> std::io::Result<DiskUsage> {
        let stat = nix::sys::statvfs::statvfs(path)?;
        let block = stat.fragment_size() as u64;
        let used = (stat.blocks() as u64).saturating_sub(stat.blocks_free() as u64);
        let available = stat.blocks_available() as u64;
        // The capacity a writer can ever reach is used + available, as `df`'s Use% counts
        // it: space reserved for root, or withheld by a quota or a thin-provisioned volume,
        // is neither ours nor used by us, and counting it as "used" would make a half-empty
        // disk look full (seen on shared VMs where available << total - used).
        Ok(DiskUsage {
            total_bytes: (used + available) * block,
            available_bytes: available * block,
        })
    }
}

/// The disk state of one store.
#[derive(Debug, Default)]
pub struct DiskGuard {
    full: AtomicBool,
    used_permille: AtomicU32,
}

/// Guards currently refusing sends, over all stores of the process.
static REFUSING: AtomicUsize = AtomicUsize::new(0);
static GUARDS: Mutex<Vec<(PathBuf, Arc<DiskGuard>)>> = Mutex::new(Vec::new());

/// The guard of the store whose commit log lives in `commit_log_dir`.
pub fn disk_guard(commit_log_dir: &Path) -> Arc<DiskGuard> {
    let mut guards = GUARDS.lock().expect("disk guards lock");
    if let Some((_, guard)) = guards.iter().find(|(path, _)| path == commit_log_dir) {
        return guard.clone();
    }
    let guard = Arc::new(DiskGuard::default());
    guards.push((commit_log_dir.to_path_buf(), guard.clone()));
    guard
}

/// True while any store of this process refuses sends (one relaxed load: the send path's
/// fast check before it asks [`sends_refused`] for its own store).
pub fn any_store_refusing() -> bool {
    REFUSING.load(Ordering::Relaxed) > 0
}

/// `Some(remark)` while the store of `commit_log_dir` refuses sends because its disk is full.
pub fn sends_refused(commit_log_dir: &Path) -> Option<String> {
    if !any_store_refusing() {
        return None;
    }
    let guard = disk_guard(commit_log_dir);
    guard.refusal()
}

impl DiskGuard {
    /// Records a reading; returns the used ratio.
    pub fn update(&self, usage: DiskUsage) -> f64 {
        let ratio = usage.used_ratio();
        self.used_permille
            .store((ratio * 1000.0) as u32, Ordering::Relaxed);
        let full = ratio >= DISK_WARNING_RATIO;
        let was_full = self.full.swap(full, Ordering::AcqRel);
        match (was_full, full) {
            (false, true) => {
                REFUSING.fetch_add(1, Ordering::AcqRel);
                tracing::error!(
                    used = ratio,
                    "disk nearly full: refusing sends until space is freed"
                );
            }
            (true, false) => {
                REFUSING.fetch_sub(1, Ordering::AcqRel);
                tracing::info!(used = ratio, "disk space freed: accepting sends again");
            }
            _ => {}
        }
        ratio
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }

    /// The remark of a refused send, `None` when sends are accepted.
    pub fn refusal(&self) -> Option<String> {
        self.is_full().then(|| {
            format!(
                "service not available now. It may be caused by one of the following reasons: \
                 the broker's disk is full [{:.1}% used, sends refused at {:.0}%], messages are \
                 put to the slave, message store has been shut down, etc.",
                self.used_permille.load(Ordering::Relaxed) as f64 / 10.0,
                DISK_WARNING_RATIO * 100.0
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_at_ninety_percent_and_recovers() {
        let dir = PathBuf::from("/nonexistent/disk-space-test/commitlog");
        let guard = disk_guard(&dir);
        assert!(Arc::ptr_eq(&guard, &disk_guard(&dir)));
        assert_eq!(sends_refused(&dir), None);
        guard.update(DiskUsage {
            total_bytes: 100,
            available_bytes: 5,
        });
        let remark = sends_refused(&dir).expect("refused at 95%");
        assert!(remark.contains("disk is full"), "{remark}");
        assert_eq!(sends_refused(Path::new("/another/store")), None);
        guard.update(DiskUsage {
            total_bytes: 100,
            available_bytes: 50,
        });
        assert_eq!(sends_refused(&dir), None);
    }

    #[test]
    fn statvfs_reads_a_real_filesystem() {
        let usage = Statvfs.usage(Path::new("/")).unwrap();
        assert!(usage.total_bytes > 0 && usage.available_bytes <= usage.total_bytes);
        assert!((0.0..=1.0).contains(&usage.used_ratio()));
    }
}
