//! The slave side of one shard's stream: connect, handshake, apply frames to the store,
//! report progress.
//!
//! Acknowledgements: the slave reports an offset only once its own store has **written** it
//! (survives a `kill -9` of the slave), and a reporter task coalesces: whatever arrived while
//! the previous write was in flight is confirmed by the next single 8-byte report. A report
//! also goes out every `heartbeat` when idle, so the master can tell a quiet slave from a dead
//! one.
//!
//! A slave ahead of its master (the welcome says `SlaveAhead`: its log holds bytes past the
//! master's end offset) truncates its log to that offset with
//! `ShardStore::truncate_replica` and handshakes again at once. So does a slave whose tail
//! differs from the master's bytes at the same offsets (`Diverged`, see `handshake`): it cuts
//! to the master's hint or to the start of its last segment. No other status truncates.
//!
//! An EMPTY slave (its end is the shard base) whose master no longer has the start of the
//! shard (`StartAt`) makes its log begin at the start of the master's newest segment
//! (`ShardStore::reset_empty_replica`, RocketMQ's behaviour for a slave at offset 0) and
//! handshakes again at once; older messages are not replicated. A slave that is not empty
//! and needs bytes the master deleted (`OffsetUnavailable`) ends with `TooFarBehind`, whose
//! message tells the operator to wipe its store.
//!
//! Controller mode (the store keeps an epoch history): the hello asks for the master's
//! history; a master without one, or older than `SlaveSettings::min_master_epoch`, is refused
//! (`NoMasterEpochs`, `StaleMaster`); before acting on the welcome's status the slave cuts its
//! log back to the consistent point of both histories and handshakes again; while streaming
//! it mirrors each master entry its log reaches.
//!
//! Stopping: `stopping()` is looked at every [`STOP_POLL`] in every phase, the handshake's
//! connect and reads included (a master cut off by a partition answers nothing until the
//! 3 s connect timeout, and a role change waits for the session to end). A streaming session
//! is ended by shutting its socket down; a handshake step is dropped (its socket with it).
//! Store work (truncations, epoch cuts) is never interrupted.
//!
//! Copies: frame bodies are applied straight from the read buffer; only a record split
//! across reads is assembled in `pending` first.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use futures_channel::mpsc;
use futures_util::StreamExt;
use rmq_storage::{ConsistentPoint, Durability, EpochEntry, ShardStore, StoreError};

use crate::error::HaError;
use crate::frame::{TransferHeader, decode_transfer_header};
use crate::handshake::{
    Hello, Status, WELCOME_LEN, Welcome, check_from, decode_epochs, decode_welcome, encode_hello,
    epochs_len,
};

/// How often a session looks at `stopping()` (and its watchdog at the master's silence).
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// Session settings, from the broker configuration.
#[derive(Debug, Clone)]
pub struct SlaveSettings {
    pub connect_timeout: Duration,
    /// Idle report interval (`haSendHeartbeatInterval`).
    pub heartbeat: Duration,
    /// The master is given up when nothing arrived for this long (`haHousekeepingInterval`).
    pub housekeeping: Duration,
    /// Largest frame body accepted.
    pub max_body: usize,
    /// Read buffer size.
    pub read_buffer: usize,
    /// Controller mode: the master epoch the controller named; a master whose newest epoch is
    /// older is not followed (-1: no check).
    pub min_master_epoch: i32,
    /// Controller mode: this slave's broker id, told to the master (0: none).
    pub slave_id: i64,
}

/// Replicates one shard from `addr` until the session fails or `stopping()` turns true
/// (then it ends with `Stopped` during the handshake, `Closed` once streaming), within
/// [`STOP_POLL`] of it.
///
/// # Errors
/// Connection failures, a refused handshake (`Refused` says why, e.g. different shard
/// counts; `TooFarBehind` when the master deleted bytes this non-empty slave still needs), a
/// failed truncation of a slave ahead of its master (`Truncate`, `StillAhead`),
/// frames that do not continue the log, a silent master.
pub async fn replicate_shard(
    store: &Rc<ShardStore>,
    addr: &str,
    settings: &SlaveSettings,
    stopping: Rc<dyn Fn() -> bool>,
) -> Result<(), HaError> {
    let (stream, welcome, leftover, master_epochs) =
        connect(store, addr, settings, &*stopping).await?;
    tracing::info!(
        shard = store.shard(),
        addr,
        start = welcome.start,
        master_end = welcome.master_end,
        "replicating from master"
    );
    let (mut reader, writer) = stream.into_split();
    let (notify, notified) = mpsc::channel::<()>(1);
    let alive = Rc::new(Cell::new(true));
    let last_read = Rc::new(Cell::new(Instant::now()));
    let reporter = compio::runtime::spawn(report_loop(
        store.clone(),
        writer.clone(),
        notified,
        settings.heartbeat,
        alive.clone(),
    ));
    let watchdog = Watchdog {
        socket: writer,
        last_read: last_read.clone(),
        housekeeping: settings.housekeeping,
        stopping,
        alive: alive.clone(),
    };
    compio::runtime::spawn(watchdog.run()).detach();
    let mut apply = Apply {
        store: store.clone(),
        inbox: leftover,
        header: None,
        body_left: 0,
        pending: BytesMut::new(),
        pending_start: welcome.start,
        notify,
        max_body: settings.max_body,
        last_read,
        master_epochs,
        adopted: 0,
    };
    let result = apply.run(&mut reader, settings).await;
    alive.set(false);
    drop(apply);
    let _ = reporter.await;
    result
}

/// Unblocks the session's read when the broker stops or the master falls silent, by
/// shutting the socket down.
struct Watchdog {
    socket: TcpStream,
    last_read: Rc<Cell<Instant>>,
    housekeeping: Duration,
    stopping: Rc<dyn Fn() -> bool>,
    alive: Rc<Cell<bool>>,
}

impl Watchdog {
    async fn run(self) {
        while self.alive.get() {
            compio::time::sleep(STOP_POLL).await;
            if (self.stopping)() {
                break;
            }
            if self.last_read.get().elapsed() > self.housekeeping {
                tracing::warn!(peer = ?self.socket.peer_addr().ok(), "master silent; reconnecting");
                break;
            }
        }
        self.alive.set(false);
        let _ = socket2::SockRef::from(&self.socket).shutdown(std::net::Shutdown::Both);
    }
}

/// What a handshake led to.
enum Handshake {
    /// The master streams from our end: the socket, the welcome, bytes read past it, the
    /// master's epoch history (controller mode; else empty).
    Accepted(TcpStream, Welcome, BytesMut, Vec<EpochEntry>),
    /// Controller mode: our log was cut back to the consistent point with the master's
    /// epoch history (the connection is closed).
    EpochCut,
    /// Our log holds bytes past the master's end offset (the connection is closed).
    Ahead(Hello, Welcome),
    /// Our tail differs from the master's bytes at the same offsets (the connection is
    /// closed).
    Diverged(Hello, Welcome),
    /// Our log is empty and the master no longer has the start of the shard: it begins at
    /// the welcome's `start` (the connection is closed).
    StartAt(Hello, Welcome),
}

/// Handshakes until the master accepts, truncating the log whenever it says we are ahead.
/// Each truncation moves our end strictly below the offset of the previous hello, so this
/// ends.
async fn connect(
    store: &ShardStore,
    addr: &str,
    settings: &SlaveSettings,
    stopping: &dyn Fn() -> bool,
) -> Result<(TcpStream, Welcome, BytesMut, Vec<EpochEntry>), HaError> {
    loop {
        if store.truncation_pending() {
            // A truncation failed half-way (disk error): finish it before streaming.
            store.truncate_replica(store.max_physical_offset()).await?;
        }
        match handshake(store, addr, settings, stopping).await? {
            Handshake::Accepted(stream, welcome, inbox, epochs) => {
                return Ok((stream, welcome, inbox, epochs));
            }
            Handshake::EpochCut => {}
            Handshake::Ahead(hello, welcome) => truncate_to_master(store, &hello, &welcome).await?,
            Handshake::Diverged(hello, welcome) => cut_diverged(store, &hello, &welcome).await?,
            Handshake::StartAt(hello, welcome) => {
                tracing::warn!(
                    shard = hello.shard,
                    start = welcome.start,
                    master_end = welcome.master_end,
                    "empty slave: the master no longer has the start of the shard; starting at \
                     its newest segment (older messages are not replicated)"
                );
                store.reset_empty_replica(welcome.start).await?;
            }
        }
    }
}

/// Cuts the tail the master does not have (see the module docs).
async fn truncate_to_master(
    store: &ShardStore,
    hello: &Hello,
    welcome: &Welcome,
) -> Result<(), HaError> {
    let master_end = welcome.master_end;
    tracing::warn!(
        shard = hello.shard,
        slave_offset = hello.slave_offset,
        master_end,
        dropped = hello.slave_offset - master_end,
        "slave log ahead of the master; truncating its tail"
    );
    let truncate_error = |source| HaError::Truncate {
        shard: hello.shard,
        slave_offset: hello.slave_offset,
        master_end,
        source,
    };
    match store.truncate_replica(master_end).await {
        Ok(()) | Err(StoreError::NotRecordBoundary { .. }) => {}
        Err(source) => return Err(truncate_error(source)),
    }
    if store.max_physical_offset() > master_end {
        // No record starts at the master's end here, or it lies in a zero fill: the logs
        // differ before it (the master lost our tail, then wrote and lost other records
        // there). The start of its segment is always a record boundary; the next hello's
        // tail check finds out whether the log below it is the master's.
        let fallback = store.segment_start_of(master_end);
        tracing::warn!(
            shard = hello.shard,
            master_end,
            fallback,
            "the master's end is not a record boundary here; cutting to its segment start"
        );
        store
            .truncate_replica(fallback)
            .await
            .map_err(truncate_error)?;
    }
    let end = store.max_physical_offset();
    if end > master_end {
        return Err(HaError::StillAhead {
            shard: hello.shard,
            end,
            master_end,
        });
    }
    Ok(())
}

/// Cuts a tail that differs from the master's: to the master's hint (its end when it
/// started) when that is a record boundary here, else to the start of the segment holding the
/// tail (always one). Either way the log ends strictly below the previous hello's offset,
/// so [`connect`] ends; the next hello checks the new tail.
async fn cut_diverged(store: &ShardStore, hello: &Hello, welcome: &Welcome) -> Result<(), HaError> {
    let end = hello.slave_offset;
    let fallback = store.segment_start_of(end - 1);
    let hint = welcome.start;
    tracing::warn!(
        shard = hello.shard,
        slave_offset = end,
        hint,
        fallback,
        "slave log differs from the master's; truncating its tail"
    );
    let truncate_error = |source| HaError::Truncate {
        shard: hello.shard,
        slave_offset: end,
        master_end: welcome.master_end,
        source,
    };
    if hint >= store.oldest_offset() && hint < end {
        match store.truncate_replica(hint).await {
            Ok(()) if store.max_physical_offset() < end => return Ok(()),
            Ok(()) | Err(StoreError::NotRecordBoundary { .. }) => {}
            Err(source) => return Err(truncate_error(source)),
        }
    }
    if store.max_physical_offset() > fallback {
        store
            .truncate_replica(fallback)
            .await
            .map_err(truncate_error)?;
    }
    Ok(())
}

/// Runs one network step of a handshake unless `stopping()` turns true first (`Stopped`;
/// the step is dropped, and the caller drops its socket).
async fn unless_stopping<T>(
    stopping: &dyn Fn() -> bool,
    step: impl Future<Output = Result<T, HaError>>,
) -> Result<T, HaError> {
    rmq_net::rt::unless_stopped(stopping, STOP_POLL, step)
        .await
        .unwrap_or(Err(HaError::Stopped))
}

async fn handshake(
    store: &ShardStore,
    addr: &str,
    settings: &SlaveSettings,
    stopping: &dyn Fn() -> bool,
) -> Result<Handshake, HaError> {
    let connect_error = |source| HaError::Connect {
        addr: addr.to_string(),
        source,
    };
    let connecting = async {
        match compio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
            Ok(result) => result.map_err(connect_error),
            Err(_) => Err(connect_error(std::io::ErrorKind::TimedOut.into())),
        }
    };
    let mut stream = unless_stopping(stopping, connecting).await?;
    let _ = stream.set_nodelay(true);
    let slave_offset = store.max_physical_offset();
    let check_from = if slave_offset > store.oldest_offset() {
        check_from(
            slave_offset,
            store.segment_start_of(slave_offset - 1),
            store.oldest_offset(),
        )
    } else {
        slave_offset
    };
    let hello = Hello {
        shard: store.shard(),
        shard_count: store.shard_count(),
        segment_size: store.segment_size(),
        slave_offset,
        check_from,
        check_crc: store.log_checksum(check_from, slave_offset).await?,
        flags: if store.has_epoch_history() {
            Hello::controller_flags(settings.slave_id)
        } else {
            0
        },
    };
    let mut inbox = BytesMut::new();
    let peer = stream.peer_addr().ok();
    let greeting = async {
        let BufResult(sent, _) = stream.write_all(encode_hello(&hello)).await;
        sent.map_err(HaError::io("hello"))?;
        let reading = read_at_least(&mut stream, &mut inbox, WELCOME_LEN);
        compio::time::timeout(settings.connect_timeout, reading)
            .await
            .map_err(|_| HaError::Silent { peer })?
    };
    unless_stopping(stopping, greeting).await?;
    let welcome = decode_welcome(&inbox)?;
    inbox.advance(WELCOME_LEN);
    let mut master_epochs = Vec::new();
    if hello.wants_epochs() {
        if !welcome.epochs_follow {
            return Err(HaError::NoMasterEpochs {
                shard: hello.shard,
                addr: addr.to_string(),
            });
        }
        let reading = read_epochs(&mut stream, &mut inbox, settings);
        master_epochs = unless_stopping(stopping, reading).await?;
        if check_epochs(store, addr, settings, &hello, &welcome, &master_epochs).await? {
            drop(stream);
            return Ok(Handshake::EpochCut);
        }
    }
    let same_geometry =
        welcome.shard_count == hello.shard_count && welcome.segment_size == hello.segment_size;
    if welcome.status == Status::SlaveAhead
        && same_geometry
        && welcome.master_end < hello.slave_offset
    {
        drop(stream);
        return Ok(Handshake::Ahead(hello, welcome));
    }
    if welcome.status == Status::Diverged && same_geometry {
        drop(stream);
        return Ok(Handshake::Diverged(hello, welcome));
    }
    if welcome.status == Status::StartAt && same_geometry {
        drop(stream);
        let base = rmq_storage::shard_base(hello.shard);
        let segment = hello.segment_size as i64;
        let empty = hello.slave_offset == base && store.max_physical_offset() == base;
        let boundary = welcome.start > base && (welcome.start - base) % segment == 0;
        if !empty || !boundary || welcome.start > welcome.master_end {
            return Err(HaError::BadStart {
                shard: hello.shard,
                start: welcome.start,
                end: store.max_physical_offset(),
            });
        }
        return Ok(Handshake::StartAt(hello, welcome));
    }
    if welcome.status == Status::OffsetUnavailable && same_geometry {
        return Err(HaError::TooFarBehind {
            shard: hello.shard,
            slave_offset: hello.slave_offset,
            oldest: welcome.start,
        });
    }
    if welcome.status != Status::Ok {
        return Err(HaError::refused(&hello, &welcome));
    }
    assert_eq!(
        welcome.start, hello.slave_offset,
        "the master streams from our end"
    );
    if !master_epochs.is_empty() {
        store.adopt_epochs(&master_epochs)?;
    }
    Ok(Handshake::Accepted(stream, welcome, inbox, master_epochs))
}

/// Reads the master's epoch history that follows its welcome.
async fn read_epochs(
    stream: &mut TcpStream,
    inbox: &mut BytesMut,
    settings: &SlaveSettings,
) -> Result<Vec<EpochEntry>, HaError> {
    let reading = async {
        read_at_least(stream, inbox, 4).await?;
        let len = epochs_len(inbox)?.expect("the count is there");
        read_at_least(stream, inbox, len).await?;
        let entries = decode_epochs(&inbox[..len])?;
        inbox.advance(len);
        Ok::<_, HaError>(entries)
    };
    compio::time::timeout(settings.connect_timeout, reading)
        .await
        .map_err(|_| HaError::Silent { peer: None })?
}

/// Controller mode, before acting on the welcome's status: refuses a master older than the
/// epoch the controller named and cuts our log back to the consistent point of both epoch
/// histories (true: cut, handshake again).
async fn check_epochs(
    store: &ShardStore,
    addr: &str,
    settings: &SlaveSettings,
    hello: &Hello,
    welcome: &Welcome,
    master_epochs: &[EpochEntry],
) -> Result<bool, HaError> {
    let master_epoch = master_epochs.last().map_or(-1, |e| e.epoch);
    if master_epoch < settings.min_master_epoch {
        return Err(HaError::StaleMaster {
            shard: hello.shard,
            addr: addr.to_string(),
            master_epoch,
            expected: settings.min_master_epoch,
        });
    }
    if welcome.shard_count != hello.shard_count || welcome.segment_size != hello.segment_size {
        return Ok(false);
    }
    let point = store
        .truncate_to_consistent_point(master_epochs, welcome.master_end)
        .await?;
    if let ConsistentPoint::Truncated(to) = point {
        tracing::warn!(
            shard = hello.shard,
            slave_offset = hello.slave_offset,
            to,
            master_epoch,
            "cut back to the consistent point with the master's epoch history"
        );
        return Ok(true);
    }
    Ok(false)
}

/// Reads until `inbox` holds at least `len` bytes (keeping anything beyond).
pub async fn read_at_least(
    stream: &mut TcpStream,
    inbox: &mut BytesMut,
    len: usize,
) -> Result<(), HaError> {
    let mut chunk = Vec::with_capacity(4096);
    while inbox.len() < len {
        chunk.clear();
        let BufResult(read, back) = stream.read(chunk).await;
        chunk = back;
        match read.map_err(HaError::io("read"))? {
            0 => return Err(HaError::Closed),
            n => inbox.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(())
}

struct Apply {
    store: Rc<ShardStore>,
    /// Socket bytes not yet parsed (a partial frame header).
    inbox: BytesMut,
    header: Option<TransferHeader>,
    body_left: usize,
    /// Body bytes of an incomplete record, starting at `pending_start`.
    pending: BytesMut,
    pending_start: i64,
    notify: mpsc::Sender<()>,
    max_body: usize,
    last_read: Rc<Cell<Instant>>,
    /// The master's epoch history (controller mode; else empty) and how many of its entries
    /// our log has reached (mirrored into our history as the log grows).
    master_epochs: Vec<EpochEntry>,
    adopted: usize,
}

impl Apply {
    /// Reads and applies until the session ends. Reads are never cancelled (a cancelled
    /// io_uring read may still consume bytes); `watchdog` unblocks them by shutting the
    /// socket down instead.
    async fn run(
        &mut self,
        reader: &mut TcpStream,
        settings: &SlaveSettings,
    ) -> Result<(), HaError> {
        let mut buffer = Vec::with_capacity(settings.read_buffer);
        self.consume_inbox().await?;
        loop {
            buffer.clear();
            let BufResult(read, back) = reader.read(buffer).await;
            buffer = back;
            let n = read.map_err(HaError::io("read"))?;
            if n == 0 {
                return Err(HaError::Closed);
            }
            self.last_read.set(Instant::now());
            self.inbox.extend_from_slice(&buffer[..n]);
            self.consume_inbox().await?;
            let _ = self.notify.try_send(());
        }
    }

    /// Parses frame headers and applies bodies from `inbox`.
    async fn consume_inbox(&mut self) -> Result<(), HaError> {
        loop {
            if self.header.is_none() {
                let Some(header) = decode_transfer_header(&mut self.inbox, self.max_body)? else {
                    return Ok(());
                };
                let expected = self.pending_start + self.pending.len() as i64;
                if header.master_offset != expected {
                    return Err(HaError::OutOfOrder {
                        got: header.master_offset,
                        expected,
                    });
                }
                self.body_left = header.body_size;
                self.header = Some(header);
            }
            let take = self.body_left.min(self.inbox.len());
            if take == 0 && self.body_left > 0 {
                return Ok(());
            }
            let body = self.inbox.split_to(take);
            self.apply(&body).await?;
            self.body_left -= take;
            if self.body_left == 0 {
                self.header = None;
            }
        }
    }

    /// Applies body bytes: directly when nothing is pending, else after the pending part.
    async fn apply(&mut self, body: &[u8]) -> Result<(), HaError> {
        if self.pending.is_empty() {
            let consumed = self.append(body).await?;
            self.pending.extend_from_slice(&body[consumed..]);
            return Ok(());
        }
        self.pending.extend_from_slice(body);
        let pending = std::mem::take(&mut self.pending);
        let consumed = self.append(&pending).await?;
        self.pending = pending;
        self.pending.advance(consumed);
        Ok(())
    }

    /// `append_replicated` at `pending_start`, waiting for the disk when the store's write
    /// backlog is full.
    async fn append(&mut self, bytes: &[u8]) -> Result<usize, HaError> {
        loop {
            match self.store.append_replicated(self.pending_start, bytes) {
                Ok(consumed) => {
                    self.pending_start += consumed as i64;
                    self.adopt_reached_epochs()?;
                    return Ok(consumed);
                }
                Err(StoreError::WriteBacklog { .. }) => {
                    let end = self.store.max_physical_offset();
                    let _ = self.store.wait_durable(end, Durability::Written).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

impl Apply {
    /// Mirrors the master's epoch entries our log has reached since the last call.
    fn adopt_reached_epochs(&mut self) -> Result<(), HaError> {
        let end = self.store.max_physical_offset();
        let reached = self
            .master_epochs
            .iter()
            .take_while(|e| e.start_offset <= end)
            .count();
        if reached > self.adopted {
            self.store.adopt_epochs(&self.master_epochs)?;
            self.adopted = reached;
        }
        Ok(())
    }
}

/// Sends the slave's written offset after every batch of applied bytes (once written) and
/// at least every `heartbeat`.
async fn report_loop(
    store: Rc<ShardStore>,
    mut writer: TcpStream,
    mut notified: mpsc::Receiver<()>,
    heartbeat: Duration,
    alive: Rc<Cell<bool>>,
) {
    let mut reported = i64::MIN;
    let mut last_sent = Instant::now();
    while alive.get() {
        let target = store.max_physical_offset();
        if target > reported {
            if store
                .wait_durable(target, Durability::Written)
                .await
                .is_err()
            {
                continue;
            }
        } else if last_sent.elapsed() < heartbeat {
            match compio::time::timeout(heartbeat, notified.next()).await {
                Ok(None) => break,
                _ => continue,
            }
        }
        let BufResult(sent, _) = writer.write_all(target.to_be_bytes().to_vec()).await;
        if sent.is_err() {
            break;
        }
        reported = target;
        last_sent = Instant::now();
    }
    alive.set(false);
    let _ = compio::io::AsyncWrite::shutdown(&mut writer).await;
}
