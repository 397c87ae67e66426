//! Client side of the remoting protocol: one TCP connection, requests matched to
//! responses by `opaque`.
//!
//! Used by the broker to talk to name servers and by the bench tool. The client lives on
//! one core (`Rc`); a reader task completes pending requests, a writer task batches
//! outgoing frames. Both end when the client is closed or dropped, even if the server
//! never answers: the writer flushes what was sent and shuts the connection down, the
//! reader stops reading, and the socket closes with the last of them.
//!
//! # Errors
//! `invoke` fails with `Timeout` when no response arrives in time (the late response is
//! then dropped) and with `Closed` when the connection ends first; every pending request
//! fails with `Closed` when the connection breaks.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use rmq_core::remoting::{DEFAULT_MAX_FRAME, RemotingCommand, decode_frame, encode_frame};

use crate::NetError;

type Pending = Rc<RefCell<HashMap<i32, oneshot::Sender<RemotingCommand>>>>;

/// A connection to one remoting server.
pub struct RemotingClient {
    peer: SocketAddr,
    tx: mpsc::UnboundedSender<RemotingCommand>,
    pending: Pending,
    next_opaque: Cell<i32>,
    closed: Rc<Cell<bool>>,
    /// Dropped (by `close` or with the client) to end the reader task.
    stop_reading: RefCell<Option<oneshot::Sender<()>>>,
}

impl RemotingClient {
    /// Connects to `addr` ("host:port").
    ///
    /// # Errors
    /// `Connect` when the address does not resolve or the connection is refused, or
    /// `Timeout` after `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Rc<Self>, NetError> {
        let connect_error = |source| NetError::Connect {
            addr: addr.to_string(),
            source,
        };
        let connecting = compio::time::timeout(timeout, TcpStream::connect(addr.to_string()));
        let stream = match connecting.await {
            Ok(result) => result.map_err(connect_error)?,
            Err(_) => {
                let timed_out =
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                return Err(connect_error(timed_out));
            }
        };
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().map_err(connect_error)?;
        let (tx, rx) = mpsc::unbounded();
        let (stop_reading, reading_stopped) = oneshot::channel::<()>();
        let client = Rc::new(Self {
            peer,
            tx,
            pending: Rc::default(),
            next_opaque: Cell::new(1),
            closed: Rc::new(Cell::new(false)),
            stop_reading: RefCell::new(Some(stop_reading)),
        });
        let (reader, writer) = stream.into_split();
        crate::rt::spawn(write_loop(writer, rx)).detach();
        let pending = client.pending.clone();
        let closed = client.closed.clone();
        crate::rt::spawn(async move {
            let reading = std::pin::pin!(read_loop(reader, &pending));
            // Ends on the first of: the connection broke, the client was closed or dropped.
            let _ = futures_util::future::select(reading, reading_stopped).await;
            closed.set(true);
            pending.borrow_mut().clear();
        })
        .detach();
        Ok(client)
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// True once the connection broke.
    pub fn is_closed(&self) -> bool {
        self.closed.get() || self.tx.is_closed()
    }

    fn next_opaque(&self) -> i32 {
        let opaque = self.next_opaque.get();
        self.next_opaque.set(opaque.wrapping_add(1).max(1));
        opaque
    }

    /// Sends a request and waits for its response.
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, NetError> {
        if self.is_closed() {
            return Err(NetError::Closed { peer: self.peer });
        }
        request.opaque = self.next_opaque();
        let opaque = request.opaque;
        let (done_tx, done_rx) = oneshot::channel();
        self.pending.borrow_mut().insert(opaque, done_tx);
        if self.tx.unbounded_send(request).is_err() {
            self.pending.borrow_mut().remove(&opaque);
            return Err(NetError::Closed { peer: self.peer });
        }
        match compio::time::timeout(timeout, done_rx).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(NetError::Closed { peer: self.peer }),
            Err(_) => {
                self.pending.borrow_mut().remove(&opaque);
                let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                Err(NetError::Timeout {
                    peer: self.peer,
                    millis,
                })
            }
        }
    }

    /// Sends a oneway request (no response expected).
    pub fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<(), NetError> {
        request.opaque = self.next_opaque();
        request.mark_oneway();
        self.tx
            .unbounded_send(request)
            .map_err(|_| NetError::Closed { peer: self.peer })
    }

    /// Closes the connection; pending requests fail with `Closed`.
    pub fn close(&self) {
        self.tx.close_channel();
        self.stop_reading.borrow_mut().take();
    }
}

impl Drop for RemotingClient {
    fn drop(&mut self) {
        self.close();
    }
}

async fn read_loop(mut stream: TcpStream, pending: &Pending) {
    let mut buffered = BytesMut::with_capacity(64 * 1024);
    let mut chunk = Vec::with_capacity(64 * 1024);
    loop {
        chunk.clear();
        let BufResult(read, back) = stream.read(chunk).await;
        chunk = back;
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => buffered.extend_from_slice(&chunk[..n]),
        }
        loop {
            match decode_frame(&mut buffered, DEFAULT_MAX_FRAME) {
                Ok(Some(cmd)) if cmd.is_response() => {
                    if let Some(waiter) = pending.borrow_mut().remove(&cmd.opaque) {
                        let _ = waiter.send(cmd);
                    }
                }
                Ok(Some(cmd)) => {
                    tracing::debug!(code = cmd.code, "ignoring request from server");
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!("bad frame from server: {error}");
                    return;
                }
            }
        }
    }
}

async fn write_loop(mut stream: TcpStream, mut rx: mpsc::UnboundedReceiver<RemotingCommand>) {
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.next().await {
        encode_frame(&first, &mut out);
        while let Ok(cmd) = rx.try_recv() {
            encode_frame(&cmd, &mut out);
        }
        let BufResult(result, back) = stream.write_all(out).await;
        out = back;
        out.clear();
        if result.is_err() {
            return;
        }
    }
    let _ = compio::io::AsyncWrite::shutdown(&mut stream).await;
}
