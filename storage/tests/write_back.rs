//! Paced write-back of page-cache writes (ASYNC_FLUSH): the flusher hands written pages to the
//! kernel's write-back in steps instead of leaving them all dirty for the periodic sync.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rmq_storage::faults::{DiskFaults, Fault, FileOp};
use rmq_storage::{Durability, FlushMode, ShardStore, StoreConfig};

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
/// sends are), so the flusher runs many small write rounds. Returns how many.
async fn fill(store: &ShardStore, bytes: u64) -> u64 {
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
    i as u64
}

/// Waits (up to 10 s) until everything written but the last step (at most) and the partial
/// last page was handed to write-back: the steps run off the shard's thread, so their count
/// trails the writes a little.
async fn until_handed_over(store: &ShardStore) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let handed = store.stats().write_back_bytes;
        if handed + STEP + 4096 >= store.written_offset() as u64 || Instant::now() > deadline {
            return handed;
        }
        compio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn first_segment(root: &Path) -> PathBuf {
    root.join("commitlog").join(format!("{:020}", 0))
}

/// Dirty pages of `path` in the page cache; `None` where `cachestat(2)` is missing or the file
/// is on tmpfs (whose pages are always dirty).
fn dirty_pages(path: &Path) -> Option<u64> {
    cache_stat(path, 0, 0).map(|stat| stat.nr_dirty)
}

#[repr(C)]
#[derive(Default, Debug)]
struct CacheStat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Page-cache state of `[off, off + len)` of `path` (`len` 0: to the end), from `cachestat(2)`
/// (Linux 6.5); `None` where the kernel lacks it or the file is on tmpfs.
fn cache_stat(path: &Path, off: u64, len: u64) -> Option<CacheStat> {
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
    const SYS_CACHESTAT: nix::libc::c_long = 451;
    let range = Range { off, len };
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
    Some(stat)
}

#[test]
fn written_pages_are_handed_to_write_back_in_steps() {
    let dir = temp_dir();
    let cfg = config(dir.path(), STEP);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        fill(&store, 4 * MIB).await;
        let handed = until_handed_over(&store).await;
        let written = store.written_offset() as u64;
        // Everything but the last step (at most) and the partial last page was handed over.
        assert!(
            handed + STEP + 4096 >= written,
            "{handed} of {written} written bytes handed to write-back"
        );
        assert!(handed <= written);
        assert_eq!(handed % 4096, 0, "whole pages only");
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

/// The tail keeps every unflushed byte in memory, so a shard syncs once 16 MiB
/// (`UNFLUSHED_SYNC_BYTES`) are written and not flushed, long before the interval is up.
#[test]
fn sixteen_mib_unflushed_start_a_sync_before_the_interval() {
    let dir = temp_dir();
    let cfg = config(dir.path(), STEP);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        fill(&store, 12 * MIB).await;
        assert_eq!(store.stats().fdatasyncs, 0, "12 MiB unflushed: no sync yet");
        fill(&store, 6 * MIB).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.flushed_offset() < (16 * MIB) as i64 && Instant::now() < deadline {
            compio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            store.flushed_offset() >= (16 * MIB) as i64,
            "flushed {} of {} written",
            store.flushed_offset(),
            store.written_offset()
        );
        assert!(store.stats().fdatasyncs >= 1);
    });
}

/// Drop-behind (`page_cache_bytes`): pages more than the window below the write-back point
/// leave the page cache once written to the device, the recent ones stay, and every record
/// still reads back (from the device) after a reopen.
#[test]
fn pages_behind_the_window_are_dropped_from_the_page_cache() {
    let dir = temp_dir();
    let mut cfg = config(dir.path(), STEP);
    cfg.page_cache_bytes = MIB;
    let segment = first_segment(dir.path());
    let records = run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let records = fill(&store, 6 * MIB).await;
        until_handed_over(&store).await;
        let written = store.written_offset() as u64;
        // The drop trails the write-back by the window, a step and the partial last page.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut dropped = store.stats().page_cache_dropped_bytes;
        while dropped + MIB + 2 * STEP + 4096 < written && Instant::now() < deadline {
            compio::time::sleep(Duration::from_millis(5)).await;
            dropped = store.stats().page_cache_dropped_bytes;
        }
        assert!(
            dropped + MIB + 2 * STEP + 4096 >= written,
            "{dropped} of {written} written bytes dropped with a 1 MiB window"
        );
        assert!(dropped + MIB <= written, "the window itself stays cached");
        if let Some(old) = cache_stat(&segment, 0, dropped) {
            println!("dropped range: {old:?}");
            assert_eq!(
                old.nr_cache, 0,
                "pages below the window still cached: {old:?}"
            );
        }
        if let Some(recent) = cache_stat(&segment, written - MIB / 2, MIB / 2) {
            assert!(
                recent.nr_cache > 0,
                "the window was dropped too: {recent:?}"
            );
        }
        records
    });
    let cfg = config(dir.path(), STEP);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let read = read_queue(&store, "WB", 0).await;
        assert_eq!(
            read.len() as u64,
            records,
            "records read back after the reopen"
        );
        for (offset, record) in read {
            let view = rmq_core::message::parse_record(&record).unwrap();
            assert_eq!(view.body(), &[b'w'; BODY][..], "record {offset}");
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

/// A device that holds every write-back call until the test lets it go (a congested queue:
/// the block layer's write-back throttling sleeps in `sync_file_range`), or for 5 s.
#[derive(Debug, Default)]
struct StalledWriteBack {
    state: Mutex<Stall>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Stall {
    entered: bool,
    released: bool,
    timed_out: bool,
}

impl StalledWriteBack {
    fn entered(&self) -> bool {
        self.state.lock().unwrap().entered
    }

    fn release(&self) {
        self.state.lock().unwrap().released = true;
        self.changed.notify_all();
    }

    fn timed_out(&self) -> bool {
        self.state.lock().unwrap().timed_out
    }
}

impl DiskFaults for StalledWriteBack {
    fn on_op(&self, op: FileOp, _: &Path, _: u64, _: usize) -> Option<Fault> {
        if op != FileOp::WriteBack {
            return None;
        }
        let mut state = self.state.lock().unwrap();
        state.entered = true;
        let (mut state, wait) = self
            .changed
            .wait_timeout_while(state, Duration::from_secs(5), |s| !s.released)
            .unwrap();
        state.timed_out |= wait.timed_out();
        None
    }
}

/// An ASYNC_FLUSH ack needs nothing from the device: while the device holds a write-back
/// step, appends are still written and acknowledged (`Written`). With the step on the shard's
/// thread, the shard slept with it and every append waited (until the stall's 5 s timeout).
#[test]
fn a_stalled_write_back_does_not_hold_appends() {
    let dir = temp_dir();
    let mut cfg = config(dir.path(), STEP);
    let device = Arc::new(StalledWriteBack::default());
    cfg.faults = Some(device.clone());
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        fill(&store, 2 * STEP).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !device.entered() && Instant::now() < deadline {
            compio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(device.entered(), "no write-back step started");
        // The step is held: these appends must still be written.
        let before = store.written_offset();
        fill(&store, 4 * STEP).await;
        assert!(store.written_offset() >= before + 4 * STEP as i64);
        device.release();
        assert!(
            !device.timed_out(),
            "appends waited for the stalled write-back step"
        );
        // The range written meanwhile goes to write-back once the step ends.
        let handed = until_handed_over(&store).await;
        assert!(
            handed + STEP + 4096 >= store.written_offset() as u64,
            "{handed} bytes handed to write-back after the stall"
        );
    });
    assert!(!device.timed_out());
}
