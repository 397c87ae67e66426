//! Server side of one remoting connection.
//!
//! Wire format (docs/protocol.md §1):
//! `[int32 length][int32 serType<<24 | headerLen][header][body]`, decoded by
//! `rmq_core::remoting::decode_frame`.
//!
//! Each connection runs two tasks on the core that accepted it:
//! - the reader decodes frames and spawns one task per request, so requests on one
//!   connection are handled concurrently (Java clients multiplex async sends and 15 s
//!   long-poll pulls over one connection);
//! - the writer drains the connection's outbound queue and writes every response that is
//!   ready in one `write` call.
//!
//! The outbound queue is a `futures` unbounded channel: its sender is `Send`, so another
//! core (a shard that finished a forwarded request, or the broker notifying consumers)
//! can write to this connection without touching its socket. A request answered on another
//! core through a [`Responder`] may instead be written to the socket by that core at once,
//! when the connection has nothing else in flight or queued (`direct_write`): the reply then
//! does not wake the connection's core at all. The channel itself is
//! unbounded, but what reaches it is not: the reader stops reading the socket while the
//! connection is over one of its [`ConnectionLimits`] (requests in flight, parked
//! long-polls, queued reply bytes; see `flow`), so a client that does not read its replies
//! is slowed down by TCP instead of growing the server's memory.
//!
//! Idle connections are cheap: while no partial frame is pending the reader offers the
//! kernel a small buffer (`IDLE_READ`) and grows it only when a read fills it; the pending
//! and outbound buffers are released when empty instead of keeping their peak size.
//!
//! # Errors
//! A frame that cannot be decoded closes this connection only (both directions are shut
//! down at once so the peer sees it); nothing else is affected.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use bytes::BytesMut;
use compio::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use futures_channel::mpsc;
use futures_util::StreamExt;
use rmq_core::remoting::{RemotingCommand, announced_frame_len, decode_frame, encode_frame};

use crate::direct_write::SharedSocket;
use crate::flow::{ConnectionLimits, Flow, reply_cost};

/// A boxed, single-core future.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Bytes offered per `read` call while data is streaming in.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes offered per `read` call while no partial frame is pending (an idle connection
/// holds only this much).
const IDLE_READ: usize = 2 * 1024;
/// An empty outbound buffer larger than this is released instead of kept for the next reply.
const IDLE_WRITE_KEEP: usize = 16 * 1024;
/// Upper bound of responses coalesced into one write.
const WRITE_BATCH_BYTES: usize = 1024 * 1024;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A handle to write commands to a connection from any core.
#[derive(Clone, Debug)]
pub struct ConnectionSender {
    tx: mpsc::UnboundedSender<RemotingCommand>,
    flow: Arc<Flow>,
    /// The socket, for direct writes (None: an in-process connection, or the descriptor
    /// could not be duplicated).
    socket: Option<Arc<SharedSocket>>,
}

impl ConnectionSender {
    /// Queues `cmd` for writing (charged to the connection's queued reply bytes until
    /// written). Returns false when the connection is gone.
    pub fn send(&self, cmd: RemotingCommand) -> bool {
        let cost = reply_cost(&cmd);
        self.flow.queued(cost);
        let sent = self.tx.unbounded_send(cmd).is_ok();
        if !sent {
            self.flow.written(cost);
        }
        sent
    }

    /// True while the connection is open.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Writes `cmd`, the answer of a [`Responder`], to the socket from this core when no
    /// other request of the connection waits for an answer from another core and nothing is
    /// queued (replies that many others will follow are left to the writer, which coalesces
    /// them into one write); queues it otherwise.
    fn reply(&self, cmd: RemotingCommand) -> bool {
        if let Some(socket) = &self.socket
            && self.flow.responders() <= 1
            && self.flow.queued_bytes() == 0
        {
            let written = FRAME.with_borrow_mut(|frame| {
                frame.clear();
                encode_frame(&cmd, frame);
                let written = socket.try_write(frame, &self.flow);
                if frame.capacity() > IDLE_WRITE_KEEP {
                    *frame = BytesMut::new();
                }
                written
            });
            if written {
                return true;
            }
        }
        self.send(cmd)
    }
}

thread_local! {
    /// Encoding buffer of direct writes on this core.
    static FRAME: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Answers one request from any core, later: obtained with [`ConnectionInfo::responder`],
/// it counts as a request in flight on its connection until used or dropped. Dropped
/// unused (its work was dropped: a full ring, a stopping shard), it sends the fallback
/// response given when it was made, so the client never waits for its timeout.
#[derive(Debug)]
#[must_use = "a responder answers its request only when sent or dropped"]
pub struct Responder {
    sender: ConnectionSender,
    oneway: bool,
    /// The fallback response: the request's response with this code and remark.
    fallback: Option<(RemotingCommand, i32, &'static str)>,
    _in_flight: InFlight,
}

impl Responder {
    /// Sends the response (nothing for a oneway request).
    pub fn send(mut self, response: RemotingCommand) {
        self.fallback = None;
        if !self.oneway {
            self.sender.reply(response);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some((mut fallback, code, remark)) = self.fallback.take()
            && !self.oneway
        {
            fallback.code = code;
            fallback.remark = Some(remark.to_owned());
            self.sender.send(fallback);
        }
        self.sender.flow.responder_done();
    }
}

/// What a handler knows about the connection a request came from.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// Process-unique id (also unique across cores).
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Core that owns the socket.
    pub core: usize,
    sender: ConnectionSender,
}

impl ConnectionInfo {
    /// A sender that can outlive this request and cross cores.
    pub fn sender(&self) -> ConnectionSender {
        self.sender.clone()
    }

    /// The connection's flow counters (`Send`): a handler that waits long for an outside
    /// event parks its request with [`Flow::park`] so it does not count as in flight.
    pub fn flow(&self) -> Arc<Flow> {
        self.sender.flow.clone()
    }

    /// A handle that answers `request` from any core (see [`Responder`]); the handler then
    /// returns None, and the transport sends nothing for it. Dropped unused, it answers with
    /// response code `fallback_code` and remark `fallback_remark`.
    pub fn responder(
        &self,
        request: &RemotingCommand,
        fallback_code: i32,
        fallback_remark: &'static str,
    ) -> Responder {
        if let Some(socket) = &self.sender.socket
            && !self.sender.flow.writer_gone()
        {
            // On the connection's core (handlers run there) with its writer alive.
            socket.prepare();
        }
        self.sender.flow.request_started();
        self.sender.flow.responder_made();
        let like = RemotingCommand::response_for(request, fallback_code, None);
        Responder {
            sender: self.sender.clone(),
            oneway: request.is_oneway(),
            fallback: Some((like, fallback_code, fallback_remark)),
            _in_flight: InFlight(self.sender.flow.clone()),
        }
    }

    /// A connection with no socket, for driving a handler in-process in tests: what the
    /// handler sends on it arrives on the returned receiver.
    #[cfg(any(test, feature = "test-support"))]
    pub fn in_process(
        peer: SocketAddr,
        local: SocketAddr,
        core: usize,
    ) -> (ConnectionInfo, mpsc::UnboundedReceiver<RemotingCommand>) {
        let (tx, rx) = mpsc::unbounded();
        let info = ConnectionInfo {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            local,
            core,
            sender: ConnectionSender {
                tx,
                flow: Arc::default(),
                socket: None,
            },
        };
        (info, rx)
    }
}

/// Application logic behind a listener (name server or broker).
pub trait RequestHandler: 'static {
    /// Handles one request. Returns the response, or None when there is nothing to send
    /// (oneway requests' responses are dropped by the transport anyway).
    fn handle(
        self: Rc<Self>,
        conn: Rc<ConnectionInfo>,
        request: RemotingCommand,
    ) -> LocalFuture<Option<RemotingCommand>>;

    /// A response from the peer to a request we sent on this connection (for example a
    /// producer answering CHECK_TRANSACTION_STATE). Default: ignored.
    fn response(&self, _conn: &ConnectionInfo, _response: RemotingCommand) {}

    /// The connection is closed; forget what belongs to it.
    fn closed(&self, _conn: &ConnectionInfo) {}
}

/// Serves one accepted connection until the peer closes it or sends garbage.
pub async fn serve_connection<H: RequestHandler>(
    stream: TcpStream,
    handler: Rc<H>,
    core: usize,
    limits: ConnectionLimits,
) {
    let _ = stream.set_nodelay(true);
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let (tx, rx) = mpsc::unbounded();
    let flow = Arc::new(Flow::default());
    // Duplicated for direct writes only when a request is first handed to another core.
    let socket = Some(Arc::new(SharedSocket::new(stream.as_raw_fd())));
    let info = Rc::new(ConnectionInfo {
        id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
        peer,
        local,
        core,
        sender: ConnectionSender {
            tx,
            flow: flow.clone(),
            socket: socket.clone(),
        },
    });
    let (reader, writer) = stream.into_split();
    crate::rt::spawn(write_loop(writer, rx, flow, socket)).detach();
    let result = read_loop(&reader, &handler, &info, &limits).await;
    if let Err(reason) = result {
        if reason.starts_with("bad frame") {
            tracing::warn!(peer = %peer, "closing connection: {reason}");
        } else {
            tracing::debug!(peer = %peer, "closing connection: {reason}");
        }
        shutdown_socket(&reader);
    }
    handler.closed(&info);
    info.sender.tx.close_channel();
}

async fn read_loop<H: RequestHandler>(
    stream: &TcpStream,
    handler: &Rc<H>,
    info: &Rc<ConnectionInfo>,
    limits: &ConnectionLimits,
) -> Result<(), String> {
    let mut reader = stream.clone();
    let mut pending = BytesMut::new();
    let mut filled = false;
    let flow = &info.sender.flow;
    loop {
        // The kernel writes into the pending buffer's spare room, after the partial frame (if
        // any): frames split off it share its allocation, nothing is copied out of a separate
        // read buffer (that copy was ~1% of the broker's CPU at 4 KiB sends).
        pending.reserve(read_room(&pending, filled));
        let offered = pending.capacity() - pending.len();
        let BufResult(read, back) = reader.append(pending).await;
        pending = back;
        match read {
            Ok(0) => return Ok(()),
            Ok(n) => filled = n == offered,
            Err(error) => return Err(format!("read failed: {error}")),
        }
        loop {
            if !flow.below_limits(limits).await {
                return Err("write failed".to_owned());
            }
            match decode_frame(&mut pending, limits.max_frame) {
                Ok(Some(cmd)) => dispatch(handler, info, cmd),
                Ok(None) => break,
                Err(error) => return Err(format!("bad frame: {error}")),
            }
        }
        if pending.is_empty() && pending.capacity() > IDLE_READ {
            pending = BytesMut::new();
        }
    }
}

/// The spare room to offer the next `read`: `IDLE_READ` while nothing is pending and the last
/// read did not fill its room (an idle connection holds no more); else `READ_CHUNK`, or, for
/// a large frame, its missing rest but never more than what already arrived: the buffer at
/// most doubles per read, so a peer that announces a large frame and sends nothing more
/// holds no more memory than it sent. (The decoder checked the length field against the
/// frame limit before this runs.)
fn read_room(pending: &BytesMut, filled: bool) -> usize {
    if pending.is_empty() && !filled {
        return IDLE_READ;
    }
    let frame_rest =
        announced_frame_len(pending).map_or(0, |total| total.saturating_sub(pending.len()));
    READ_CHUNK.max(frame_rest.min(pending.len()))
}

/// Counts a request in flight until dropped (also when its task is cancelled).
#[derive(Debug)]
struct InFlight(Arc<Flow>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

fn dispatch<H: RequestHandler>(handler: &Rc<H>, info: &Rc<ConnectionInfo>, cmd: RemotingCommand) {
    if cmd.is_response() {
        handler.response(info, cmd);
        return;
    }
    crate::idle_poll::note_request();
    let oneway = cmd.is_oneway();
    let sender = info.sender();
    sender.flow.request_started();
    let in_flight = InFlight(sender.flow.clone());
    let future = handler.clone().handle(info.clone(), cmd);
    crate::rt::spawn(async move {
        let response = future.await;
        if let Some(response) = response
            && !oneway
        {
            sender.send(response);
        }
        drop(in_flight);
    })
    .detach();
}

/// Marks the connection's writer stopped when dropped: no more direct replies (the socket is
/// shut down), and the reader closes the connection.
struct WriterStopped {
    flow: Arc<Flow>,
    socket: Option<Arc<SharedSocket>>,
}

impl Drop for WriterStopped {
    fn drop(&mut self) {
        if let Some(socket) = &self.socket {
            socket.close();
        }
        self.flow.writer_stopped();
    }
}

/// What the writer does next.
enum Next {
    Command(RemotingCommand),
    /// Only the rest of a direct write is waiting.
    Front,
    Closed,
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<RemotingCommand>,
    socket: Option<&SharedSocket>,
) -> Next {
    poll_fn(|cx| match rx.poll_next_unpin(cx) {
        Poll::Ready(Some(cmd)) => Poll::Ready(Next::Command(cmd)),
        Poll::Ready(None) => Poll::Ready(Next::Closed),
        Poll::Pending if socket.is_some_and(|socket| socket.front_pending(cx)) => {
            Poll::Ready(Next::Front)
        }
        Poll::Pending => Poll::Pending,
    })
    .await
}

async fn write_loop(
    mut stream: TcpStream,
    mut rx: mpsc::UnboundedReceiver<RemotingCommand>,
    flow: Arc<Flow>,
    socket: Option<Arc<SharedSocket>>,
) {
    // Also when this task is dropped unfinished (its core stopping).
    let stopped = WriterStopped {
        flow: flow.clone(),
        socket: socket.clone(),
    };
    let mut out = BytesMut::new();
    let mut carried = None;
    'writing: loop {
        let first = match carried.take() {
            Some(cmd) => Next::Command(cmd),
            None => next(&mut rx, socket.as_deref()).await,
        };
        if matches!(first, Next::Closed) {
            break;
        }
        // No direct write from another core while this one is on the socket.
        let busy = match &socket {
            Some(socket) => Some(socket.lock().await),
            None => None,
        };
        // The rest of a direct write goes first: its frame is already half on the wire.
        if let Some(front) = socket.as_deref().and_then(SharedSocket::take_front) {
            let len = front.len();
            let BufResult(result, _) = stream.write_all(front).await;
            flow.written(len);
            if result.is_err() {
                break 'writing;
            }
        }
        let mut cost = 0;
        if let Next::Command(first) = first {
            cost += reply_cost(&first);
            encode_frame(&first, &mut out);
        }
        while out.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(cmd) => {
                    cost += reply_cost(&cmd);
                    encode_frame(&cmd, &mut out);
                }
                Err(_) => break,
            }
        }
        if !out.is_empty() {
            let BufResult(result, back) = stream.write_all(out).await;
            flow.written(cost);
            out = back;
            out.clear();
            if result.is_err() {
                break;
            }
        }
        drop(busy);
        // more to write: keep the buffer; nothing queued: an idle connection keeps little
        match rx.try_recv() {
            Ok(cmd) => carried = Some(cmd),
            Err(_) if out.capacity() > IDLE_WRITE_KEEP => out = BytesMut::new(),
            Err(_) => {}
        }
    }
    drop(stopped);
}

fn shutdown_socket(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    // SAFETY: the fd is owned by `stream`, which is alive for this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = nix::sys::socket::shutdown(borrowed.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_frame(announced: u32, received: usize) -> BytesMut {
        let mut pending = BytesMut::new();
        pending.extend_from_slice(&announced.to_be_bytes());
        pending.resize(received, 0);
        pending
    }

    #[test]
    fn an_idle_connection_offers_the_small_room() {
        assert_eq!(read_room(&BytesMut::new(), false), IDLE_READ);
        assert_eq!(read_room(&BytesMut::new(), true), READ_CHUNK);
    }

    #[test]
    fn a_partial_small_frame_gets_a_read_chunk() {
        assert_eq!(read_room(&pending_frame(4300, IDLE_READ), true), READ_CHUNK);
        assert_eq!(read_room(&BytesMut::from(&[0u8, 0][..]), true), READ_CHUNK);
    }

    #[test]
    fn a_large_frame_grows_the_room_by_at_most_what_arrived() {
        // 1 MiB of a 4 MiB frame arrived: the next read may bring another 1 MiB.
        assert_eq!(read_room(&pending_frame(4 << 20, 1 << 20), true), 1 << 20);
        // Nearly all of it arrived: just the rest (or a read chunk).
        let nearly = (4 << 20) + 4 - 100_000;
        assert_eq!(read_room(&pending_frame(4 << 20, nearly), true), 100_000);
        // A peer that announces 16 MiB and sent 2 KiB is offered a read chunk, not 16 MiB.
        assert_eq!(read_room(&pending_frame(16 << 20, 2048), true), READ_CHUNK);
    }
}
