//! Paced write-back of page-cache writes (ASYNC_FLUSH): the flusher hands written pages to the
//! kernel's write-back in steps instead of leaving them all dirty for the periodic sync.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rmq_storage::{Durability, FlushMode, StoreConfig};

const MIB: u64 = 1 << 20;
const STEP: u64 = 256 << 10;
const BODY: usize = 1000;

/// An ASYNC_FLUSH store whose periodic sync never runs during the test.
fn config(root: &Path, write_back_bytes: u64) -> StoreConfig {
    let mut cfg = small_config(root, 1);
    cfg.flush_mode = FlushMode::Async;
    cfg.direct_io = false;
    cfg.commit_log_file_size = 32 * MIB;
    cfg.flush_interval_commit_log = Duration::from_secs(600);
    cfg.flush_commit_log_thorough_interval = Duration::from_secs(600);
    cfg.write_back_bytes = write_back_bytes;
    cfg
}

/// Appends about `bytes` of records one by one, each waited for at `Written` (as ASYNC_FLUSH
/// sends are), so the flusher runs many small write rounds.
async fn fill(store: &rmq_storage::ShardStore, bytes: u64) {
    let body = vec![b'w'; BODY];
    let mut sent = 0;
    let mut i = 0;
    while sent < bytes {
        let mut record = encode("WB", 0, &body, "", 0);
        let result = store.append("WB", 0, &mut record, 0, i).unwrap();
        store
            .wait_durable(result.end_offset, Durability::Written)
            .await
            .unwrap();
        sent += record.len() as u64;
        i += 1;
    }
}

fn first_segment(root: &Path) -> PathBuf {
    root.join("commitlog").join(format!("{:020}", 0))
}

/// Dirty pages of `path` in the page cache, from `cachestat(2)` (Linux 6.5); `None` where the
/// kernel lacks it or the file is on tmpfs (whose pages are always dirty).
fn dirty_pages(path: &Path) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let fs = nix::sys::statfs::fstatfs(&file).unwrap();
    if fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC {
        return None;
    }
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct CacheStat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    const SYS_CACHESTAT: nix::libc::c_long = 451;
    let range = Range { off: 0, len: 0 };
    let mut stat = CacheStat::default();
    // SAFETY: both pointers are valid for the call; the kernel writes only `stat`.
    let rc = unsafe {
        nix::libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut CacheStat,
            0,
        )
    };
    if rc != 0 {
        println!("cachestat unavailable: {}", std::io::Error::last_os_error());
        return None;
    }
    Some(stat.nr_dirty)
}

#[test]
fn written_pages_are_handed_to_write_back_in_steps() {
    let dir = temp_dir();
    let cfg = config(dir.path(), STEP);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        fill(&store, 4 * MIB).await;
        let stats = store.stats();
        let written = store.written_offset() as u64;
        // Everything but the last step (at most) and the partial last page was handed over.
        assert!(
            stats.write_back_bytes + STEP + 4096 >= written,
            "{} of {written} written bytes handed to write-back",
            stats.write_back_bytes
        );
        assert!(stats.write_back_bytes <= written);
        assert_eq!(stats.write_back_bytes % 4096, 0, "whole pages only");
        assert_eq!(store.flushed_offset(), 0, "no sync ran: nothing is flushed");
        if let Some(dirty) = dirty_pages(&first_segment(dir.path())) {
            println!("dirty pages after 4 MiB written: {dirty}");
            assert!(
                dirty * 4096 <= STEP + 2 * 4096,
                "{dirty} pages still dirty: the kernel was not asked to write them back"
            );
        }
    });
}

#[test]
fn write_back_off_leaves_the_pages_to_the_sync() {
    let dir = temp_dir();
    let cfg = config(dir.path(), 0);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        fill(&store, 2 * MIB).await;
        assert_eq!(store.stats().write_back_bytes, 0);
        if let Some(dirty) = dirty_pages(&first_segment(dir.path())) {
            // The kernel's own write-back starts after 30 s (dirty_expire_centisecs), unless
            // the whole machine has more dirty memory than its background threshold.
            println!("dirty pages after 2 MiB written, write-back off: {dirty}");
        }
    });
}

#[test]
fn direct_io_has_no_write_back_step() {
    let dir = temp_dir();
    let mut cfg = config(dir.path(), STEP);
    cfg.direct_io = true;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        fill(&store, MIB).await;
        assert_eq!(store.stats().write_back_bytes, 0);
    });
}
