//! The per-shard commit log flusher and its group commit.
//!
//! One task per shard owns all commit log writes. Each round:
//! 1. takes everything appended so far (`target`) and writes `[written, target)` with
//!    block-aligned writes (re-sending the partial first block);
//! 2. on success sets `written = target` and releases every `Written` waiter it covers;
//! 3. if a sync is due and none is in flight, starts one: a separate task `fdatasync`s the
//!    segments written so far, then sets `flushed` to what was written when it started and
//!    releases every `Flushed` waiter it covers.
//!
//! Under SYNC_FLUSH a round may write through `O_DSYNC` descriptors
//! (`StoreConfig::sync_flush_dsync_writes`): then step 2 also sets `flushed = target` and
//! releases the `Flushed` waiters, because the write that completed is durable, so the round
//! is one device round trip and step 3 finds nothing to sync (but the next write waits for
//! this one, where write + `fdatasync` overlaps it with this round's sync). Only when
//! everything up to the write's start was already flushed, no sync is in flight and every
//! piece went through an `O_DSYNC` descriptor; else the bytes wait for a sync as below.
//! `DsyncWrites::Always` writes every round so; `DsyncWrites::Idle` only a
//! round that starts idle: nothing unflushed before it, no sync in flight, and the previous
//! round's write not overtaken by new appends. A lone sender's ack then waits for one device
//! operation, while a loaded shard keeps the overlap. `DsyncWrites::Auto` (the default) is
//! `Idle` plus a choice for loaded rounds that the shard measures on its own traffic
//! (`loaded_writes.rs`).
//!
//! With a group commit delay (`StoreConfig::sync_group_delay`, SYNC_FLUSH) a round that
//! follows a loaded round at once first waits for the delay to pass since that round
//! started, or for enough sends to wait (`GroupWait`), so at a moderate rate one device
//! request covers more sends. With `StoreConfig::sync_group_delay_probe` it waits only while
//! the shard's probe finds that the delay costs no throughput (`group_delay.rs`).
//!
//! With a cohort (`StoreConfig::sync_cohort`, SYNC_FLUSH in the broker) step 3 also waits
//! until the cohort admits the shard: once per epoch (`sync_cohort.rs`).
//!
//! That is a pipelined group commit: a lone send is written at once (no waiting for company),
//! everything appended while a write is in flight forms the next write, and writes go on while
//! a sync is in flight, so the next sync covers all of them. At most one sync runs at a time.
//! A sync is due in SYNC mode whenever something written is not flushed, when someone waits
//! for `Flushed`, when stopping, and in ASYNC mode every `flush_interval_commit_log` if at
//! least `flush_commit_log_least_pages` pages are dirty, at least every
//! `flush_commit_log_thorough_interval`, and whenever `UNFLUSHED_SYNC_BYTES` (16 MiB) are
//! written and not flushed (the tail holds them in memory until then, `tail_memory.rs`).
//! With page-cache writes (ASYNC_FLUSH by default) a sync writes the dirty pages back, which
//! can take long: running it beside the writes keeps it off the acks' path.
//!
//! Errors: a failed write or sync fails the waiters of that round with `StoreError::Io` and
//! retries after [`RETRY_DELAY`]; the bytes stay in memory (the tail keeps everything not
//! flushed). After a failed write `written` stays; after a failed sync `written` moves back to
//! `flushed` and everything since is written again before the next sync, because the kernel
//! may have dropped the dirty pages it failed to write back and reports that only once. The task holds only a `Weak` reference
//! while idle, so dropping the store ends it.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::aligned_buffer::BLOCK_SIZE;
use crate::commit_log::CommitLog;
use crate::config::{DsyncWrites, FlushMode};
use crate::stats::bump;
use crate::tail_memory::UNFLUSHED_SYNC_BYTES;
use crate::waiters::Signal;
use crate::{group_delay, loaded_writes};
use rmq_core::way_probe::WayProbe;

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

/// The sync side of the flusher, shared with the sync task.
struct SyncState {
    in_flight: Cell<bool>,
    /// Set by a sync task that failed; the flusher rewinds `written` to `flushed` (see
    /// `CommitLog::rewind_written_to_flushed`), backs off once and clears it.
    failed: Cell<bool>,
    last_sync: Cell<Instant>,
    /// The cohort epoch of this shard's last sync (`sync_cohort.rs`).
    synced_in: Cell<Option<u64>>,
    /// Set while a due sync waits for the cohort's epoch past this one to end.
    blocked: Cell<Option<u64>>,
    /// More was appended while the last write was in flight: the shard is loaded, so the
    /// next round writes and syncs (`DsyncWrites::Idle`), or as `loaded` says (`Auto`).
    overtaken: Cell<bool>,
    /// How loaded rounds write under `DsyncWrites::Auto`.
    loaded: RefCell<WayProbe>,
    /// Whether loaded rounds wait for the group commit delay, when it is probed.
    delay: RefCell<WayProbe>,
}

impl SyncState {
    /// `bytes` more are flushed: both probes count them.
    fn on_flushed(&self, bytes: u64) {
        self.loaded.borrow_mut().on_work(bytes, 1);
        self.delay.borrow_mut().on_work(bytes, 1);
    }
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
    let state = Rc::new(SyncState {
        in_flight: Cell::new(false),
        failed: Cell::new(false),
        last_sync: Cell::new(Instant::now()),
        synced_in: Cell::new(None),
        blocked: Cell::new(None),
        overtaken: Cell::new(false),
        loaded: RefCell::new(loaded_writes::new(Instant::now())),
        delay: RefCell::new(group_delay::new(Instant::now())),
    });
    loop {
        let (round, idle_wait, cohort, group) = {
            let Some(log) = weak.upgrade() else { return };
            // Read the clock only when a delay is configured (on by default under SYNC_FLUSH).
            let group = (log.cfg.flush_mode == FlushMode::Sync
                && !log.cfg.sync_group_delay.is_zero())
            .then(|| GroupWait {
                until: Instant::now() + log.cfg.sync_group_delay,
                no_delay_count: log.cfg.sync_group_no_delay_count,
            });
            let round = round(&log, &state).await;
            let group = group.filter(|_| matches!(round, Round::Busy) && delays(&log, &state));
            let idle_wait = match log.cfg.flush_mode {
                FlushMode::Async => log.cfg.flush_interval_commit_log,
                FlushMode::Sync => log.cfg.flush_commit_log_thorough_interval,
            };
            (round, idle_wait, log.cfg.sync_cohort.clone(), group)
        };
        match round {
            Round::Busy => {
                if let Some(group) = group {
                    group.wait(&weak, &signal).await;
                }
            }
            Round::Stopped => return,
            Round::Failed => compio::time::sleep(RETRY_DELAY).await,
            Round::Idle => {
                // Also woken when the cohort epoch a due sync waits for ends.
                let blocked = state.blocked.get().zip(cohort);
                let wake = std::future::poll_fn(|cx| {
                    if signal.poll_raised(cx).is_ready() {
                        return std::task::Poll::Ready(());
                    }
                    match &blocked {
                        Some((epoch, cohort)) => cohort.poll_past(*epoch, cx),
                        None => std::task::Poll::Pending,
                    }
                });
                let _ = compio::time::timeout(idle_wait, wake).await;
            }
        }
    }
}

/// Whether the round after a loaded round waits for the configured group commit delay: always,
/// or as the shard's probe decides (`StoreConfig::sync_group_delay_probe`).
fn delays(log: &CommitLog, state: &SyncState) -> bool {
    if !log.cfg.sync_group_delay_probe {
        return true;
    }
    let mut delay = state.delay.borrow_mut();
    let delays = delay.favoured(Instant::now(), state.loaded.borrow().probing());
    log.stats.sync_group_delay_probes.set(delay.probes());
    delays
}

/// SYNC_FLUSH group commit delay (`StoreConfig::sync_group_delay`): the round after a loaded
/// one (sends arrived while its write was in flight) starts once `until` has come (the
/// delay after the loaded round started), or as soon as `no_delay_count` sends wait for
/// `Flushed` (0: no such limit), or when the store stops. It then covers more sends with one
/// device request. A round after an idle spell is never delayed: a lone sender's ack still
/// waits for one device operation only.
struct GroupWait {
    until: Instant,
    no_delay_count: usize,
}

impl GroupWait {
    async fn wait(self, weak: &Weak<CommitLog>, signal: &Signal) {
        loop {
            {
                let Some(log) = weak.upgrade() else { return };
                let enough =
                    self.no_delay_count > 0 && log.flushed_waiters.len() >= self.no_delay_count;
                if enough || log.stopping.get() {
                    return;
                }
            }
            let now = Instant::now();
            if now >= self.until {
                return;
            }
            // Woken by every append and new waiter (to count them) and by a stop.
            let raised = std::future::poll_fn(|cx| signal.poll_raised(cx));
            let _ = compio::time::timeout(self.until - now, raised).await;
        }
    }
}

async fn round(log: &Rc<CommitLog>, state: &Rc<SyncState>) -> Round {
    if state.failed.replace(false) {
        log.rewind_written_to_flushed();
        return Round::Failed;
    }
    let target = log.appended();
    if target > log.written() {
        let from = log.written();
        let started = Instant::now();
        let starts_idle = !state.overtaken.get() && pipeline_idle(log, state, from);
        let mode = log.cfg.sync_flush_dsync_writes;
        let durably = match mode {
            _ if log.cfg.flush_mode != FlushMode::Sync => false,
            DsyncWrites::Never => false,
            DsyncWrites::Always => true,
            DsyncWrites::Idle => starts_idle,
            DsyncWrites::Auto if starts_idle => true,
            DsyncWrites::Auto => {
                let mut loaded = state.loaded.borrow_mut();
                let durable = loaded.favoured(started, state.delay.borrow().probing());
                log.stats.sync_write_probes.set(loaded.probes());
                durable
            }
        };
        let written = log.write_up_to(target, durably).await;
        let micros = micros_since(started);
        bump(&log.stats.write_micros_sum, micros);
        let durable = match written {
            Ok(durable) => durable,
            Err(error) => {
                tracing::error!(%error, shard = log.shard, "commit log write failed; will retry");
                bump(&log.stats.commit_log_write_errors, 1);
                log.written_waiters.fail(target, &error);
                log.flushed_waiters.fail(target, &error);
                return Round::Failed;
            }
        };
        state.overtaken.set(log.appended() > target);
        log.set_written(target);
        log.written_waiters.release(target);
        log.write_back.after_write(log);
        // An `O_DSYNC` write is its own sync: `[from, target)` is durable, and so is
        // everything below `from` when it was flushed before the write started (a sync
        // still in flight or a failed one leaves it to the sync path).
        let idle = pipeline_idle(log, state, from);
        if durably && starts_idle {
            assert!(
                idle,
                "a round that started idle stays so while its write is in flight (no sync starts)"
            );
        }
        if durable && idle {
            state.on_flushed((target - from) as u64);
            log.set_flushed(target);
            let acks = log.release_flushed(target);
            log.stats.record_sync(micros);
            log.stats.record_sync_acks(acks as u64);
            state.last_sync.set(Instant::now());
        }
        log.maybe_prepare_next();
    }
    state.blocked.set(None);
    if log.written() > log.flushed()
        && !state.in_flight.get()
        && sync_due(log, state.last_sync.get())
    {
        match cohort_admits(log, state) {
            Ok(()) => start_sync(log, state),
            Err(epoch) => state.blocked.set(Some(epoch)),
        }
    }
    if log.appended() > log.written() {
        return Round::Busy;
    }
    if log.stopping.get() && !state.in_flight.get() && log.flushed() == log.written() {
        return Round::Stopped;
    }
    // Idle until new data, a new `Flushed` waiter, the sync's completion or stop.
    Round::Idle
}

/// Whether everything before `from` is flushed and no sync is running or failed: a durable
/// write of `[from, target)` then makes everything up to `target` durable.
fn pipeline_idle(log: &CommitLog, state: &SyncState, from: i64) -> bool {
    log.flushed() == from && !state.in_flight.get() && !state.failed.get()
}

/// Whether a due sync may start now: always without a cohort or when stopping (the other
/// shards may be gone), else once per cohort epoch (`sync_cohort.rs`).
fn cohort_admits(log: &CommitLog, state: &SyncState) -> Result<(), u64> {
    match &log.cfg.sync_cohort {
        Some(cohort) if log.cfg.flush_mode == FlushMode::Sync && !log.stopping.get() => {
            cohort.try_start(&state.synced_in)
        }
        _ => {
            state.synced_in.set(None);
            Ok(())
        }
    }
}

/// Starts a sync of everything written so far in its own task.
fn start_sync(log: &Rc<CommitLog>, state: &Rc<SyncState>) {
    let written = log.written();
    assert!(written > log.flushed() && !state.in_flight.get());
    state.in_flight.set(true);
    let segments = std::mem::take(&mut *log.unsynced.borrow_mut());
    let log = log.clone();
    let state = state.clone();
    compio::runtime::spawn(async move {
        let started = Instant::now();
        let mut result = Ok(());
        let mut synced = 0;
        for segment in segments.values() {
            if let Err(error) = segment.sync().await {
                result = Err(error);
                break;
            }
            synced += 1;
        }
        bump(&log.stats.fdatasyncs, synced);
        log.stats.record_sync(micros_since(started));
        match result {
            Ok(()) => {
                state.last_sync.set(Instant::now());
                let bytes = (written - log.flushed()) as u64;
                state.on_flushed(bytes);
                log.set_flushed(written);
                let acks = log.release_flushed(written);
                log.stats.record_sync_acks(acks as u64);
            }
            Err(error) => {
                tracing::error!(%error, shard = log.shard, "commit log fdatasync failed; will retry");
                // Still unsynced: back into the set, merged with what was written since.
                log.unsynced.borrow_mut().extend(segments);
                log.flushed_waiters.fail(written, &error);
                state.failed.set(true);
            }
        }
        state.in_flight.set(false);
        if state.synced_in.get().is_some() {
            log.cfg.sync_cohort.as_ref().expect("a cohort sync").finish();
        }
        log.flusher_signal.raise();
    })
    .detach();
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
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
    let unflushed = (log.written() - log.flushed()) as u64;
    if unflushed >= UNFLUSHED_SYNC_BYTES as u64 {
        return true;
    }
    let dirty_pages = unflushed / BLOCK_SIZE as u64;
    elapsed >= log.cfg.flush_interval_commit_log
        && dirty_pages >= log.cfg.flush_commit_log_least_pages as u64
}
