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
//! can write to this connection without touching its socket.
//!
//! # Errors
//! A frame that cannot be decoded closes this connection only (both directions are shut
//! down at once so the peer sees it); nothing else is affected.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use futures_channel::mpsc;
use futures_util::StreamExt;
use rmq_core::remoting::{RemotingCommand, decode_frame, encode_frame};

/// A boxed, single-core future.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// Upper bound of responses coalesced into one write.
const WRITE_BATCH_BYTES: usize = 1024 * 1024;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A handle to write commands to a connection from any core.
#[derive(Clone, Debug)]
pub struct ConnectionSender {
    tx: mpsc::UnboundedSender<RemotingCommand>,
}

impl ConnectionSender {
    /// Queues `cmd` for writing. Returns false when the connection is gone.
    pub fn send(&self, cmd: RemotingCommand) -> bool {
        self.tx.unbounded_send(cmd).is_ok()
    }

    /// True while the connection is open.
    pub fn is_open(&self) -> bool {
        !self.tx.is_closed()
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
            sender: ConnectionSender { tx },
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
    max_frame: usize,
) {
    let _ = stream.set_nodelay(true);
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let (tx, rx) = mpsc::unbounded();
    let info = Rc::new(ConnectionInfo {
        id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
        peer,
        local,
        core,
        sender: ConnectionSender { tx },
    });
    let (reader, writer) = stream.into_split();
    let writer_done = Rc::new(Cell::new(false));
    compio::runtime::spawn(write_loop(writer, rx, writer_done.clone())).detach();
    let result = read_loop(&reader, &handler, &info, max_frame).await;
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
    max_frame: usize,
) -> Result<(), String> {
    let mut reader = stream.clone();
    let mut pending = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = Vec::with_capacity(READ_CHUNK);
    loop {
        chunk.clear();
        let BufResult(read, back) = reader.read(chunk).await;
        chunk = back;
        match read {
            Ok(0) => return Ok(()),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(error) => return Err(format!("read failed: {error}")),
        }
        loop {
            match decode_frame(&mut pending, max_frame) {
                Ok(Some(cmd)) => dispatch(handler, info, cmd),
                Ok(None) => break,
                Err(error) => return Err(format!("bad frame: {error}")),
            }
        }
    }
}

fn dispatch<H: RequestHandler>(handler: &Rc<H>, info: &Rc<ConnectionInfo>, cmd: RemotingCommand) {
    if cmd.is_response() {
        handler.response(info, cmd);
        return;
    }
    let oneway = cmd.is_oneway();
    let future = handler.clone().handle(info.clone(), cmd);
    let sender = info.sender();
    compio::runtime::spawn(async move {
        if let Some(response) = future.await
            && !oneway
        {
            sender.send(response);
        }
    })
    .detach();
}

async fn write_loop(
    mut stream: TcpStream,
    mut rx: mpsc::UnboundedReceiver<RemotingCommand>,
    done: Rc<Cell<bool>>,
) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.next().await {
        encode_frame(&first, &mut out);
        while out.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(cmd) => encode_frame(&cmd, &mut out),
                Err(_) => break,
            }
        }
        let BufResult(result, back) = stream.write_all(out).await;
        out = back;
        out.clear();
        if result.is_err() {
            break;
        }
    }
    done.set(true);
}

fn shutdown_socket(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    // SAFETY: the fd is owned by `stream`, which is alive for this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let _ = nix::sys::socket::shutdown(borrowed.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}
