//! The per-shard commit log flusher and its group commit.
//!
//! One task per shard owns all commit log writes. Each round:
//! 1. takes everything appended so far (`target`) and writes `[written, target)` with
//!    block-aligned `O_DIRECT` writes (re-sending the partial first block);
//! 2. on success sets `written = target` and releases every `Written` waiter it covers;
//! 3. if a sync is due, `fdatasync`s the touched segments once, sets `flushed` to what was
//!    written before the sync started and releases every `Flushed` waiter it covers.
//!
//! That is group commit: a lone send is written at once (no waiting for company), and
//! everything appended while a write or sync is in flight forms the next round. A sync is
//! due in SYNC mode after every write, when someone waits for `Flushed`, when stopping, and in
//! ASYNC mode every `flush_interval_commit_log` if at least `flush_commit_log_least_pages`
//! pages are dirty, and at least every `flush_commit_log_thorough_interval`.
//!
//! Errors: a failed write or sync fails the waiters of that round with `StoreError::Io`,
//! leaves `written`/`flushed` where they were (the bytes stay in memory) and retries after
//! [`RETRY_DELAY`]. The task holds only a `Weak` reference while idle, so dropping the store
//! ends it.

use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::aligned_buffer::BLOCK_SIZE;
use crate::commit_log::CommitLog;
use crate::config::FlushMode;
use crate::stats::bump;
use crate::waiters::Signal;

/// Back-off after a failed write or sync.
pub(crate) const RETRY_DELAY: Duration = Duration::from_millis(100);

/// What a round did, deciding how long the task sleeps.
enum Round {
    /// More data is pending (appended during the round): go again at once.
    Busy,
    Idle,
    Failed,
    Stopped,
}

pub(crate) fn spawn(log: &Rc<CommitLog>) -> Rc<Signal> {
    let exited = Rc::new(Signal::default());
    let weak = Rc::downgrade(log);
    let signal = log.flusher_signal.clone();
    let exit = exited.clone();
    compio::runtime::spawn(async move {
        run(weak, signal).await;
        exit.raise();
    })
    .detach();
    exited
}

async fn run(weak: Weak<CommitLog>, signal: Rc<Signal>) {
    let mut last_sync = Instant::now();
    loop {
        let (round, idle_wait) = {
            let Some(log) = weak.upgrade() else { return };
            let round = round(&log, &mut last_sync).await;
            let idle_wait = match log.cfg.flush_mode {
                FlushMode::Async => log.cfg.flush_interval_commit_log,
                FlushMode::Sync => log.cfg.flush_commit_log_thorough_interval,
            };
            (round, idle_wait)
        };
        match round {
            Round::Busy => {}
            Round::Stopped => return,
            Round::Failed => compio::time::sleep(RETRY_DELAY).await,
            Round::Idle => {
                let _ = compio::time::timeout(idle_wait, signal.wait()).await;
            }
        }
    }
}

async fn round(log: &Rc<CommitLog>, last_sync: &mut Instant) -> Round {
    let target = log.appended();
    if target > log.written() {
        if let Err(error) = log.write_up_to(target).await {
            tracing::error!(%error, shard = log.shard, "commit log write failed; will retry");
            bump(&log.stats.commit_log_write_errors, 1);
            log.written_waiters.fail(target, &error);
            log.flushed_waiters.fail(target, &error);
            return Round::Failed;
        }
        log.set_written(target);
        log.written_waiters.release(target);
        log.maybe_prepare_next();
    }
    let written = log.written();
    if written > log.flushed() && sync_due(log, *last_sync) {
        if let Err(error) = log.sync_written().await {
            tracing::error!(%error, shard = log.shard, "commit log fdatasync failed; will retry");
            log.flushed_waiters.fail(written, &error);
            return Round::Failed;
        }
        *last_sync = Instant::now();
        log.set_flushed(written);
        log.flushed_waiters.release(written);
    }
    if log.appended() > log.written() {
        return Round::Busy;
    }
    if log.stopping.get() && log.flushed() == log.written() {
        return Round::Stopped;
    }
    if !log.flushed_waiters.is_empty() && log.flushed() < log.written() {
        return Round::Busy;
    }
    Round::Idle
}

fn sync_due(log: &CommitLog, last_sync: Instant) -> bool {
    if log.cfg.flush_mode == FlushMode::Sync || log.stopping.get() {
        return true;
    }
    if !log.flushed_waiters.is_empty() {
        return true;
    }
    let elapsed = last_sync.elapsed();
    if elapsed >= log.cfg.flush_commit_log_thorough_interval {
        return true;
    }
    let dirty_pages = (log.written() - log.flushed()) as u64 / BLOCK_SIZE as u64;
    elapsed >= log.cfg.flush_interval_commit_log
        && dirty_pages >= log.cfg.flush_commit_log_least_pages as u64
}
