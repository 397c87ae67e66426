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
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWriteExt, AsyncWriteZerocopy};
use compio::net::TcpStream;
use futures_channel::oneshot;
use rmq_storage::ShardStore;

use crate::ack_tracker::AckTracker;
use crate::error::HaError;
use crate::frame::{TRANSFER_HEADER_LEN, take_latest_report};
use crate::handshake::{Hello, Status, answer, encode_epochs, encode_welcome};

/// One shard's slaves as the send path sees them.
#[derive(Default)]
pub struct ShardReplica {
    tracker: RefCell<AckTracker<oneshot::Sender<()>>>,
    slaves: Cell<usize>,
    slave_offset: Cell<i64>,
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

    /// Waits until a slave confirmed every byte before `end_offset`.
    pub async fn wait(&self, end_offset: i64, timeout: Duration, fallbehind_max: i64) -> SlaveWait {
        if self.slaves.get() == 0 || end_offset - self.slave_offset.get() > fallbehind_max {
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
        self.slave_offset.set(offset);
        let released = self.tracker.borrow_mut().ack(offset);
        for waiter in released {
            let _ = waiter.send(());
        }
    }

    /// Counts a connected slave that holds everything before `offset`, until the guard
    /// drops (a session does this; tests stand in for a slave with it).
    #[must_use = "the slave counts as connected while the guard lives"]
    pub fn connected(self: &Rc<Self>, offset: i64) -> SlaveGuard {
        self.slaves.set(self.slaves.get() + 1);
        self.on_report(offset);
        SlaveGuard {
            replica: self.clone(),
        }
    }
}

/// Counts a connected slave; the last one leaving fails the waiting sends at once (their
/// senders are dropped), rather than letting each run into its timeout.
pub struct SlaveGuard {
    replica: Rc<ShardReplica>,
}

impl Drop for SlaveGuard {
    fn drop(&mut self) {
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
    let _guard = replica.connected(hello.slave_offset);
    let session = Session {
        closed: Rc::new(Cell::new(false)),
        last_report: Rc::new(Cell::new(Instant::now())),
    };
    compio::runtime::spawn(read_reports(reader, replica.clone(), session.clone())).detach();
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

async fn read_reports(mut reader: TcpStream, replica: Rc<ShardReplica>, session: Session) {
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
            replica.on_report(offset);
        }
    }
    session.closed.set(true);
}
