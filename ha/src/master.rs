//! The master side: per-shard slave state (what SYNC_MASTER sends wait on) and the session
//! that streams one shard's commit log to one slave connection.
//!
//! Threading: a session runs on the core that owns its shard (the broker hands the accepted
//! socket over), so the shard's [`ShardReplica`] is owned by that core (the broker keeps one
//! per shard in its per-core context and passes it to [`serve_slave`] and to the send path)
//! and is reached without locks. The send path does no replication work per message except,
//! for SYNC_MASTER, registering its end offset with the [`AckTracker`]; one slave report
//! releases every send it covers.
//!
//! Streaming: the session ships the bytes the master has **appended** (see rmq-storage
//! `replica`), so the slave's copy travels while the master's own `O_DIRECT` write is in
//! flight and a SYNC_MASTER ack costs about one disk write plus one round trip, not two disk
//! writes in a row. Frames carry up to `chunk_max` bytes, each read straight into the send
//! buffer after its 12-byte header and handed to the kernel with `SEND_ZC` (falling back to
//! plain writes where the kernel refuses it). It sleeps until an append passes its position;
//! whatever is appended while a frame is on its way goes out in the next one.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWriteExt, AsyncWriteZerocopy};
use compio::net::TcpStream;
use futures_channel::oneshot;
use rmq_election::{CatchUp, CountingMarks};
use rmq_storage::ShardStore;

use crate::ack_tracker::AckTracker;
use crate::error::HaError;
use crate::frame::{TRANSFER_HEADER_LEN, take_latest_report};
use crate::handshake::{Hello, Status, answer, encode_epochs, encode_welcome};

/// One shard's slaves as the send path sees them.
///
/// Controller mode: slaves that say their broker id are tracked one by one
/// ([`SlaveProgress`]); with a required set ([`ShardReplica::set_required`], the master's
/// sync-state set without itself) a send is released only once **every** member reported past
/// it, and is refused at once (NotAvailable) while a member is not connected; an empty set
/// releases at once. Without one, any slave's report releases (classic), or, with
/// [`ShardReplica::set_slaves_needed`] n > 1 (controller mode without `allAckInSyncStateSet`:
/// `inSyncReplicas` - 1), reports of n distinct identified slaves (refused at once while
/// fewer are connected).
///
/// Joining: a slave that becomes required at our log end `E` (its *counting mark*) may lack
/// only what was acknowledged below `E` (every later acknowledgement waits for it: the wait
/// is decided here, on the shard's core, after the append), so once it reported `E`
/// ([`ShardReplica::holds_everything_acknowledged`]) it holds everything this shard ever
/// acknowledged and may be proposed for the sync-state set (the marks are
/// `rmq_election::CountingMarks`, the type the election simulation's master keeps too).
#[derive(Default)]
pub struct ShardReplica {
    tracker: RefCell<AckTracker<oneshot::Sender<()>>>,
    slaves: Cell<usize>,
    slave_offset: Cell<i64>,
    by_id: RefCell<BTreeMap<i64, SlaveProgress>>,
    required: RefCell<Option<BTreeSet<i64>>>,
    /// Each required slave's counting mark: our log end when it became required.
    counted_from: RefCell<CountingMarks<i64, i64>>,
    /// Without a required set: distinct slaves that must report (0 or 1: any slave).
    slaves_needed: Cell<usize>,
}

/// One identified slave of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaveProgress {
    /// Everything before it is on that slave.
    pub offset: i64,
    /// When it last caught up with our log (`rmq_election::CatchUp`, the rule the election
    /// simulation's master runs too).
    catch_up: CatchUp<i64, Instant>,
    sessions: usize,
}

impl SlaveProgress {
    /// When it last reported everything our log held at its previous report (RocketMQ's
    /// `lastCatchUpTimeMs` against `lastMasterMaxOffset`: under steady load a slave never
    /// holds the very end, but one that keeps reaching where we were is caught up).
    pub fn caught_up_at(&self) -> Option<Instant> {
        self.catch_up.caught_up_at()
    }

    /// True while it caught up within `limit` (`haMaxTimeSlaveNotCatchup`): it may join the
    /// master's count.
    pub fn is_near(&self, limit: Duration) -> bool {
        self.catch_up.is_near(Instant::now(), limit)
    }
}

/// Outcome of a SYNC_MASTER wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaveWait {
    Replicated,
    /// No slave connected, or the slave is more than `fallbehind_max` bytes behind.
    NotAvailable,
    /// The slave did not confirm within the timeout (or disconnected meanwhile).
    Timeout,
}

impl ShardReplica {
    pub fn slaves(&self) -> usize {
        self.slaves.get()
    }

    /// Offset the slaves last reported (everything before it is on a slave).
    pub fn slave_offset(&self) -> i64 {
        self.slave_offset.get()
    }

    /// Waits until a slave (every required one, see the type docs) confirmed every byte
    /// before `end_offset`.
    pub async fn wait(&self, end_offset: i64, timeout: Duration, fallbehind_max: i64) -> SlaveWait {
        if self
            .required
            .borrow()
            .as_ref()
            .is_some_and(BTreeSet::is_empty)
        {
            // A sync-state set of the master alone: nobody else to wait for.
            return SlaveWait::Replicated;
        }
        if self.slaves.get() == 0 || end_offset - self.slave_offset.get() > fallbehind_max {
            return SlaveWait::NotAvailable;
        }
        if let Some(required) = &*self.required.borrow() {
            let by_id = self.by_id.borrow();
            if required.iter().any(|id| !by_id.contains_key(id)) {
                return SlaveWait::NotAvailable;
            }
        } else if self.by_id.borrow().len() < self.slaves_needed.get() {
            return SlaveWait::NotAvailable;
        }
        let (done_tx, done_rx) = oneshot::channel();
        if self
            .tracker
            .borrow_mut()
            .wait(end_offset, done_tx)
            .is_some()
        {
            return SlaveWait::Replicated;
        }
        match compio::time::timeout(timeout, done_rx).await {
            Ok(Ok(())) => SlaveWait::Replicated,
            _ => SlaveWait::Timeout,
        }
    }

    /// A slave report: releases every covered waiter in one go.
    pub fn on_report(&self, offset: i64) {
        self.on_report_from(None, offset, i64::MAX);
    }

    /// A report of slave `id` (None: a slave that gave no id) while our log ends at
    /// `master_end`.
    pub fn on_report_from(&self, id: Option<i64>, offset: i64, master_end: i64) {
        self.slave_offset.set(offset);
        if let Some(id) = id
            && let Some(progress) = self.by_id.borrow_mut().get_mut(&id)
        {
            progress.offset = progress.offset.max(offset);
            progress.catch_up.report(offset, master_end, Instant::now());
        }
        self.release(offset);
    }

    /// What the slaves hold, as far as the required set says: the smallest offset of its
    /// members with one; without one the latest report, or with `slaves_needed` n > 1 the
    /// offset the n furthest slaves all hold (nothing while fewer are connected).
    fn acknowledged(&self, latest: i64) -> i64 {
        let required = self.required.borrow();
        let by_id = self.by_id.borrow();
        let Some(required) = required.as_ref().filter(|r| !r.is_empty()) else {
            let needed = self.slaves_needed.get();
            if required.is_some() || needed <= 1 {
                return latest;
            }
            let mut held: Vec<i64> = by_id.values().map(|p| p.offset).collect();
            held.sort_unstable_by(|a, b| b.cmp(a));
            return held.get(needed - 1).copied().unwrap_or(i64::MIN);
        };
        required
            .iter()
            .map(|id| by_id.get(id).map_or(i64::MIN, |p| p.offset))
            .min()
            .unwrap_or(latest)
    }

    fn release(&self, latest: i64) {
        let acknowledged = self.acknowledged(latest);
        let released = self.tracker.borrow_mut().ack(acknowledged);
        for waiter in released {
            let _ = waiter.send(());
        }
    }

    /// Controller mode: the slaves that must all hold a record before it is released (the
    /// master's sync-state set without itself); None: any slave.
    ///
    /// `log_end` is our log end now: a slave that was not required before is counted from
    /// it (see the type docs).
    pub fn set_required(&self, required: Option<BTreeSet<i64>>, log_end: i64) {
        {
            let mut marks = self.counted_from.borrow_mut();
            match &required {
                None => marks.forget(),
                Some(ids) => marks.set_counted(ids, log_end),
            }
        }
        let nobody = required.as_ref().is_some_and(BTreeSet::is_empty);
        *self.required.borrow_mut() = required;
        if nobody {
            // Released, not failed; `acked` stays (a later set counts from the real reports).
            let released = self.tracker.borrow_mut().drain();
            for waiter in released {
                let _ = waiter.send(());
            }
        } else {
            self.release(self.slave_offset.get());
        }
    }

    /// Ends every waiting send unconfirmed (`SlaveWait::Timeout`: FLUSH_SLAVE_TIMEOUT, stored
    /// on the master, not acknowledged as replicated), for a master that stopped taking writes
    /// (fenced: it may no longer reach its slaves, and its sends would wait out the whole
    /// timeout while the client's own timeout passes). Returns how many it ended.
    pub fn abandon_waiters(&self) -> usize {
        // Dropping a waiter's sender wakes it with `Canceled`: a timeout, not a release.
        self.tracker.borrow_mut().drain().len()
    }

    /// Controller mode without `allAckInSyncStateSet`: a send waits for reports of `needed`
    /// distinct slaves (`inSyncReplicas` - 1; 0 or 1: any slave), whatever the sync-state
    /// set, as RocketMQ 5.3.3. Ignored while a required set is given.
    pub fn set_slaves_needed(&self, needed: usize) {
        self.slaves_needed.set(needed);
        self.release(self.slave_offset.get());
    }

    /// A new mastership: every required slave is counted from the log end at the next
    /// [`Self::set_required`].
    pub fn forget_counting_marks(&self) {
        self.counted_from.borrow_mut().forget();
    }

    /// True when slave `id` is required and reported its counting mark: it holds everything
    /// this shard ever acknowledged (see the type docs).
    pub fn holds_everything_acknowledged(&self, id: i64) -> bool {
        let held = self.by_id.borrow().get(&id).map(|p| p.offset);
        self.counted_from
            .borrow()
            .holds_everything_acknowledged(id, held)
    }

    /// The identified slaves and their progress.
    pub fn progress(&self) -> Vec<(i64, SlaveProgress)> {
        self.by_id
            .borrow()
            .iter()
            .map(|(id, p)| (*id, *p))
            .collect()
    }

    /// Counts a connected slave that holds everything before `offset`, until the guard
    /// drops (a session does this; tests stand in for a slave with it).
    #[must_use = "the slave counts as connected while the guard lives"]
    pub fn connected(self: &Rc<Self>, offset: i64) -> SlaveGuard {
        self.connected_as(None, offset, i64::MAX)
    }

    /// [`Self::connected`] for slave `id` (None: anonymous) while our log ends at
    /// `master_end`.
    #[must_use = "the slave counts as connected while the guard lives"]
    pub fn connected_as(
        self: &Rc<Self>,
        id: Option<i64>,
        offset: i64,
        master_end: i64,
    ) -> SlaveGuard {
        self.slaves.set(self.slaves.get() + 1);
        if let Some(id) = id {
            let mut by_id = self.by_id.borrow_mut();
            let progress = by_id.entry(id).or_insert(SlaveProgress {
                offset,
                catch_up: CatchUp::default(),
                sessions: 0,
            });
            progress.sessions += 1;
            progress.offset = offset;
        }
        self.on_report_from(id, offset, master_end);
        SlaveGuard {
            replica: self.clone(),
            id,
        }
    }
}

/// Counts a connected slave; the last one leaving fails the waiting sends at once (their
/// senders are dropped), rather than letting each run into its timeout.
pub struct SlaveGuard {
    replica: Rc<ShardReplica>,
    id: Option<i64>,
}

impl Drop for SlaveGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut by_id = self.replica.by_id.borrow_mut();
            if let Some(progress) = by_id.get_mut(&id) {
                progress.sessions -= 1;
                if progress.sessions == 0 {
                    by_id.remove(&id);
                }
            }
        }
        let left = self.replica.slaves.get() - 1;
        self.replica.slaves.set(left);
        if left == 0 {
            drop(self.replica.tracker.borrow_mut().drain());
        }
    }
}

/// Session settings, from the broker configuration.
#[derive(Debug, Clone)]
pub struct MasterSettings {
    /// Largest frame body.
    pub chunk_max: usize,
    /// A heartbeat frame goes out after this much idle time.
    pub heartbeat: Duration,
    /// The slave is dropped when it has not reported for this long.
    pub housekeeping: Duration,
    /// Try `SEND_ZC` first.
    pub zero_copy: bool,
}

/// Answers a slave's hello and, if accepted, streams the shard until the slave leaves,
/// falls silent, or `stopping()` turns true.
///
/// # Errors
/// I/O on the socket, a refused handshake (`Refused`, after the welcome was sent), a store
/// read failure, or a silent slave.
pub async fn serve_slave(
    store: Rc<ShardStore>,
    replica: Rc<ShardReplica>,
    stream: TcpStream,
    hello: Hello,
    settings: MasterSettings,
    stopping: Rc<dyn Fn() -> bool>,
) -> Result<(), HaError> {
    let mut welcome = answer(
        &hello,
        store.shard_count(),
        store.segment_size(),
        store.oldest_offset(),
        store.max_physical_offset(),
    );
    if welcome.status == Status::Ok && !same_tail(&store, &hello).await? {
        welcome.status = Status::Diverged;
        let opened_end = store.opened_end();
        welcome.start = if opened_end < hello.slave_offset {
            opened_end
        } else {
            -1
        };
        tracing::warn!(
            shard = hello.shard,
            slave_offset = hello.slave_offset,
            hint = welcome.start,
            "slave log differs from ours before its end; it must truncate"
        );
    }
    let peer = stream.peer_addr().ok();
    let (reader, mut writer) = stream.into_split();
    let mut greeting = encode_welcome(&welcome);
    if hello.wants_epochs() && store.has_epoch_history() {
        // Controller mode: our epoch history follows the welcome (see `handshake`).
        welcome.epochs_follow = true;
        greeting = encode_welcome(&welcome);
        greeting.extend_from_slice(&encode_epochs(&store.epoch_entries()));
    }
    let BufResult(sent, _) = writer.write_all(greeting).await;
    sent.map_err(HaError::io("welcome"))?;
    if welcome.status == Status::StartAt {
        tracing::info!(
            shard = hello.shard,
            ?peer,
            start = welcome.start,
            oldest = store.oldest_offset(),
            "empty slave below our oldest offset: it starts at our newest segment"
        );
        return Ok(());
    }
    if welcome.status != Status::Ok {
        return Err(HaError::refused(&hello, &welcome));
    }
    tracing::info!(
        shard = hello.shard,
        ?peer,
        from = welcome.start,
        "slave connected"
    );
    let slave_id = hello.slave_id();
    let _guard = replica.connected_as(slave_id, hello.slave_offset, store.max_physical_offset());
    let session = Session {
        closed: Rc::new(Cell::new(false)),
        last_report: Rc::new(Cell::new(Instant::now())),
    };
    let reports = read_reports(
        reader,
        replica.clone(),
        store.clone(),
        slave_id,
        session.clone(),
    );
    compio::runtime::spawn(reports).detach();
    let result = stream_log(
        &store,
        &mut writer,
        welcome.start,
        &settings,
        &session,
        &*stopping,
    )
    .await;
    session.closed.set(true);
    let _ = compio::io::AsyncWrite::shutdown(&mut writer).await;
    tracing::info!(shard = hello.shard, ?peer, ?result, "slave session ended");
    result.map_err(|error| match error {
        HaError::Silent { .. } => HaError::Silent { peer },
        other => other,
    })
}

/// True when the slave's tail (`hello.check_from..slave_offset`) has our bytes (see the
/// handshake module docs). A range we cannot read any more (retention deleted it) passes:
/// nothing is left to compare.
async fn same_tail(store: &ShardStore, hello: &Hello) -> Result<bool, HaError> {
    let (from, to) = (hello.check_from, hello.slave_offset);
    if from == to {
        return Ok(true);
    }
    if from > to || from < store.segment_start_of(to - 1) {
        return Ok(false);
    }
    if from < store.oldest_offset() {
        return Ok(true);
    }
    Ok(store.log_checksum(from, to).await? == hello.check_crc)
}

#[derive(Clone)]
struct Session {
    closed: Rc<Cell<bool>>,
    last_report: Rc<Cell<Instant>>,
}

async fn stream_log(
    store: &ShardStore,
    writer: &mut TcpStream,
    start: i64,
    settings: &MasterSettings,
    session: &Session,
    stopping: &dyn Fn() -> bool,
) -> Result<(), HaError> {
    let mut next = start;
    let mut buffer = BytesMut::with_capacity(settings.chunk_max + TRANSFER_HEADER_LEN);
    let mut zero_copy = settings.zero_copy;
    let mut last_sent = Instant::now();
    while !session.closed.get() && !stopping() {
        if session.last_report.get().elapsed() > settings.housekeeping {
            return Err(HaError::Silent { peer: None });
        }
        let idle = last_sent.elapsed() >= settings.heartbeat;
        if store.max_physical_offset() <= next && !idle {
            store
                .wait_appended_past(next, Duration::from_millis(500))
                .await;
            continue;
        }
        buffer.clear();
        buffer.put_bytes(0, TRANSFER_HEADER_LEN);
        let len = store
            .read_replication_chunk(next, settings.chunk_max, &mut buffer)
            .await?;
        buffer[..8].copy_from_slice(&next.to_be_bytes());
        buffer[8..12].copy_from_slice(&(len as i32).to_be_bytes());
        let (sent, back) = send(writer, buffer, &mut zero_copy).await;
        buffer = back;
        sent.map_err(HaError::io("send"))?;
        next += len as i64;
        last_sent = Instant::now();
    }
    Ok(())
}

/// Writes the whole buffer, with `SEND_ZC` while the kernel accepts it. The buffer comes
/// back once the kernel no longer references it.
async fn send(
    writer: &mut TcpStream,
    buffer: BytesMut,
    zero_copy: &mut bool,
) -> (std::io::Result<()>, BytesMut) {
    if *zero_copy {
        let BufResult(result, ready) = writer.write_zerocopy(buffer).await;
        let buffer = ready.await;
        match result {
            Ok(n) if n == buffer.len() => return (Ok(()), buffer),
            Ok(n) => {
                let BufResult(rest, slice) = writer.write_all(buffer.slice(n..)).await;
                return (rest, slice.into_inner());
            }
            Err(error) if is_unsupported(&error) => {
                tracing::info!(%error, "SEND_ZC refused; replication falls back to plain writes");
                *zero_copy = false;
                let BufResult(result, buffer) = writer.write_all(buffer).await;
                return (result, buffer);
            }
            Err(error) => return (Err(error), buffer),
        }
    }
    let BufResult(result, buffer) = writer.write_all(buffer).await;
    (result, buffer)
}

/// EINVAL (22) or EOPNOTSUPP (95): what io_uring answers for an opcode this kernel lacks.
fn is_unsupported(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(22 | 95))
}

async fn read_reports(
    mut reader: TcpStream,
    replica: Rc<ShardReplica>,
    store: Rc<ShardStore>,
    slave_id: Option<i64>,
    session: Session,
) {
    let mut pending = BytesMut::with_capacity(64);
    let mut chunk = Vec::with_capacity(4096);
    while !session.closed.get() {
        chunk.clear();
        let BufResult(read, back) = reader.read(chunk).await;
        chunk = back;
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
        session.last_report.set(Instant::now());
        if let Some(offset) = take_latest_report(&mut pending) {
            replica.on_report_from(slave_id, offset, store.max_physical_offset());
        }
    }
    session.closed.set(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    #[compio::test]
    async fn with_a_required_set_every_member_must_report() {
        let replica = Rc::new(ShardReplica::default());
        let _two = replica.connected_as(Some(2), 0, 100);
        let _three = replica.connected_as(Some(3), 0, 100);
        replica.set_required(Some(BTreeSet::from([2, 3])), 100);
        let waiting = {
            let replica = replica.clone();
            compio::runtime::spawn(async move { replica.wait(100, LONG, i64::MAX).await })
        };
        compio::time::sleep(Duration::from_millis(20)).await;
        replica.on_report_from(Some(2), 100, 100);
        compio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one member is not enough");
        replica.on_report_from(Some(3), 100, 100);
        assert_eq!(waiting.await.unwrap(), SlaveWait::Replicated);
        let progress = replica.progress();
        assert_eq!(progress.len(), 2);
        assert!(progress.iter().all(|(_, p)| p.caught_up_at().is_some()));

        // A member that is not connected: refused at once, not acknowledged.
        replica.set_required(Some(BTreeSet::from([2, 4])), 100);
        assert_eq!(
            replica.wait(200, LONG, i64::MAX).await,
            SlaveWait::NotAvailable
        );
        // Classic (no set): any slave releases.
        replica.set_required(None, 100);
        let waiting = {
            let replica = replica.clone();
            compio::runtime::spawn(async move { replica.wait(300, LONG, i64::MAX).await })
        };
        compio::time::sleep(Duration::from_millis(20)).await;
        replica.on_report_from(Some(3), 300, 400);
        assert_eq!(waiting.await.unwrap(), SlaveWait::Replicated);
    }

    #[compio::test]
    async fn abandoned_waiters_end_unconfirmed_at_once() {
        let replica = Rc::new(ShardReplica::default());
        let _two = replica.connected_as(Some(2), 0, 100);
        replica.set_required(Some(BTreeSet::from([2])), 100);
        let waiting = {
            let replica = replica.clone();
            compio::runtime::spawn(async move { replica.wait(100, LONG, i64::MAX).await })
        };
        compio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        let asked = Instant::now();
        assert_eq!(replica.abandon_waiters(), 1);
        assert_eq!(waiting.await.unwrap(), SlaveWait::Timeout);
        assert!(asked.elapsed() < LONG / 2, "not at its timeout");
        // A later report releases nothing left over, and new sends wait as before.
        replica.on_report_from(Some(2), 100, 100);
        assert_eq!(replica.abandon_waiters(), 0);
        assert_eq!(
            replica.wait(100, LONG, i64::MAX).await,
            SlaveWait::Replicated
        );
    }

    #[compio::test]
    async fn a_shrink_releases_what_the_remaining_members_hold() {
        let replica = Rc::new(ShardReplica::default());
        let _two = replica.connected_as(Some(2), 0, 100);
        let three = replica.connected_as(Some(3), 0, 100);
        replica.set_required(Some(BTreeSet::from([2, 3])), 100);
        let waiting = {
            let replica = replica.clone();
            compio::runtime::spawn(async move { replica.wait(100, LONG, i64::MAX).await })
        };
        compio::time::sleep(Duration::from_millis(20)).await;
        replica.on_report_from(Some(2), 150, 150);
        drop(three);
        assert!(replica.progress().iter().all(|(id, _)| *id == 2));
        compio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        // The controller accepted the shrink to {2}.
        replica.set_required(Some(BTreeSet::from([2])), 150);
        assert_eq!(waiting.await.unwrap(), SlaveWait::Replicated);
    }
}

#[cfg(test)]
mod catch_up_tests {
    use super::*;

    #[test]
    fn a_slave_that_keeps_reaching_where_the_master_was_is_caught_up() {
        let replica = Rc::new(ShardReplica::default());
        let _slave = replica.connected_as(Some(2), 0, 100);
        assert!(
            replica.progress()[0].1.caught_up_at().is_none(),
            "behind at connect"
        );
        // Steady load: the master is always ahead, the slave reaches its previous end.
        replica.on_report_from(Some(2), 80, 200);
        assert!(replica.progress()[0].1.caught_up_at().is_none(), "80 < 100");
        replica.on_report_from(Some(2), 200, 300);
        assert!(
            replica.progress()[0].1.caught_up_at().is_some(),
            "reached 200"
        );
        let _lagging = replica.connected_as(Some(3), 0, 300);
        replica.on_report_from(Some(3), 100, 400);
        replica.on_report_from(Some(3), 200, 500);
        let three = replica
            .progress()
            .into_iter()
            .find(|(id, _)| *id == 3)
            .unwrap();
        assert!(
            three.1.caught_up_at().is_none(),
            "never reached where we were"
        );
    }
}

#[cfg(test)]
mod joining_tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    #[compio::test]
    async fn a_slave_holds_everything_acknowledged_once_it_reports_its_counting_mark() {
        let replica = Rc::new(ShardReplica::default());
        let _two = replica.connected_as(Some(2), 0, 100);
        // The master alone: acknowledged at once, without the connected slave.
        replica.set_required(Some(BTreeSet::new()), 100);
        assert_eq!(
            replica.wait(180, LONG, i64::MAX).await,
            SlaveWait::Replicated
        );
        assert!(!replica.holds_everything_acknowledged(2), "not counted");
        // Counted from the log end 200: what lies below may have been acknowledged without it.
        replica.set_required(Some(BTreeSet::from([2])), 200);
        replica.on_report_from(Some(2), 199, 250);
        assert!(!replica.holds_everything_acknowledged(2), "199 < 200");
        // Sends after the mark wait for it.
        let waiting = {
            let replica = replica.clone();
            compio::runtime::spawn(async move { replica.wait(250, LONG, i64::MAX).await })
        };
        compio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "waits for the counted slave");
        replica.on_report_from(Some(2), 250, 250);
        assert_eq!(waiting.await.unwrap(), SlaveWait::Replicated);
        assert!(replica.holds_everything_acknowledged(2));
        // Staying required keeps the mark; leaving and coming back counts from the new end.
        replica.set_required(Some(BTreeSet::from([2])), 900);
        assert!(replica.holds_everything_acknowledged(2), "mark kept");
        replica.set_required(Some(BTreeSet::new()), 900);
        replica.set_required(Some(BTreeSet::from([2])), 1_000);
        assert!(!replica.holds_everything_acknowledged(2), "a new mark");
    }

    #[compio::test]
    async fn a_set_of_the_master_alone_releases_every_waiting_send() {
        let replica = Rc::new(ShardReplica::default());
        let _two = replica.connected_as(Some(2), 0, 100);
        replica.set_required(Some(BTreeSet::from([2])), 100);
        let waiting = {
            let replica = replica.clone();
            compio::runtime::spawn(async move { replica.wait(300, LONG, i64::MAX).await })
        };
        compio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        // The controller approved the shrink to the master alone.
        replica.set_required(Some(BTreeSet::new()), 300);
        assert_eq!(waiting.await.unwrap(), SlaveWait::Replicated);
    }

    #[compio::test]
    async fn with_slaves_needed_that_many_distinct_slaves_must_report() {
        let replica = Rc::new(ShardReplica::default());
        let _two = replica.connected_as(Some(2), 0, 100);
        replica.set_slaves_needed(2);
        // One slave connected, two needed: refused at once.
        assert_eq!(
            replica.wait(100, LONG, i64::MAX).await,
            SlaveWait::NotAvailable
        );
        let _three = replica.connected_as(Some(3), 0, 100);
        let waiting = {
            let replica = replica.clone();
            compio::runtime::spawn(async move { replica.wait(100, LONG, i64::MAX).await })
        };
        compio::time::sleep(Duration::from_millis(20)).await;
        replica.on_report_from(Some(2), 100, 100);
        replica.on_report_from(Some(2), 120, 120);
        compio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one slave twice is not two slaves");
        replica.on_report_from(Some(3), 100, 120);
        assert_eq!(waiting.await.unwrap(), SlaveWait::Replicated);
        // One needed: any slave's report.
        replica.set_slaves_needed(1);
        let waiting = {
            let replica = replica.clone();
            compio::runtime::spawn(async move { replica.wait(200, LONG, i64::MAX).await })
        };
        compio::time::sleep(Duration::from_millis(20)).await;
        replica.on_report_from(Some(3), 200, 200);
        assert_eq!(waiting.await.unwrap(), SlaveWait::Replicated);
    }
}
