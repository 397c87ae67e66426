//! A connection's socket shared with the other cores, so that the core that finished a
//! request (a shard's) can write its reply itself instead of waking the connection's core.
//!
//! Why: a send whose queue belongs to another core's shard crosses cores twice, and at one
//! request in flight each crossing is a sleep and a wake-up of a halted vCPU (docs/perf.md,
//! "The cross-core hop"). Written by the shard's core, the reply skips the second one.
//!
//! Contract:
//! - One writer at a time: `busy` is held by whoever writes to the socket, the connection's
//!   writer task (for its whole, possibly long, asynchronous write) or a direct writer (for
//!   one non-blocking `send`). Frames therefore never interleave; replies on a remoting
//!   connection carry their request's `opaque`, so their order does not matter.
//! - A direct write never blocks and never waits: if the socket is busy, something is left
//!   over, or the kernel takes nothing, the caller queues the reply as before.
//! - A direct write the kernel took only part of leaves the rest in `front`, which the
//!   writer writes before anything else (it is woken for it), so the frame stays whole.
//! - Direct writes use a duplicate of the descriptor, owned here, so a writer on another core
//!   never writes to a number the connection closed and the process reused. It is made on
//!   the connection's core by [`SharedSocket::prepare`] when the first request is handed to
//!   another core (while the connection's writer, which owns the socket, is alive): idle and
//!   consumer connections keep one descriptor. When the connection ends,
//!   [`SharedSocket::close`] refuses further direct writes and shuts the socket down, so the
//!   peer sees the close even while a reply handle still holds the duplicate.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Context;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, Shutdown, send, shutdown};

use crate::flow::Flow;

/// Direct writes made, process-wide (for tests and the metrics of a benchmark run).
static DIRECT_WRITES: AtomicU64 = AtomicU64::new(0);

/// Replies written to their socket by the core that finished them, since start.
pub fn direct_writes() -> u64 {
    DIRECT_WRITES.load(Ordering::Relaxed)
}

#[derive(Debug)]
pub(crate) struct SharedSocket {
    /// The connection's own descriptor: used only on its core, while its writer is alive.
    raw: RawFd,
    /// The duplicate direct writes use.
    fd: OnceLock<OwnedFd>,
    busy: AtomicBool,
    /// The unwritten end of a direct write; the writer writes it first.
    front: Mutex<Option<Bytes>>,
    /// The connection's writer, woken when `front` is filled.
    writer: AtomicWaker,
    closed: AtomicBool,
}

/// Holds the socket's write side; released when dropped.
pub(crate) struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl SharedSocket {
    /// Shares the socket `raw` (not duplicated until [`SharedSocket::prepare`]).
    pub(crate) fn new(raw: RawFd) -> SharedSocket {
        SharedSocket {
            raw,
            fd: OnceLock::new(),
            busy: AtomicBool::new(false),
            front: Mutex::new(None),
            writer: AtomicWaker::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn try_busy(&self) -> Option<Busy<'_>> {
        (!self.busy.swap(true, Ordering::Acquire)).then_some(Busy(&self.busy))
    }

    /// Takes the write side for the connection's writer, yielding to the runtime while a
    /// direct writer holds it (for one non-blocking `send`).
    pub(crate) async fn lock(&self) -> Busy<'_> {
        loop {
            if let Some(busy) = self.try_busy() {
                return busy;
            }
            crate::rt::yield_now().await;
        }
    }

    /// The rest of a direct write cut short, to be written before anything else (its bytes
    /// were charged to `flow` as queued).
    pub(crate) fn take_front(&self) -> Option<Bytes> {
        self.front.lock().expect("front").take()
    }

    /// Registers the writer's waker for a `front` filled later; true if one is there now.
    pub(crate) fn front_pending(&self, cx: &Context<'_>) -> bool {
        self.writer.register(cx.waker());
        self.front.lock().expect("front").is_some()
    }

    /// Makes the descriptor direct writes use, once. Call it on the connection's core while
    /// the connection's writer is alive (it owns the socket, so `raw` is open). False when
    /// it could not be made (too many open files): replies are then queued.
    pub(crate) fn prepare(&self) -> bool {
        if self.fd.get().is_some() {
            return true;
        }
        // SAFETY: per this function's contract, `raw` is an open descriptor for this call.
        let raw = unsafe { BorrowedFd::borrow_raw(self.raw) };
        match raw.try_clone_to_owned() {
            Ok(fd) => {
                let _ = self.fd.set(fd);
                true
            }
            Err(error) => {
                tracing::debug!(%error, "no direct replies on this connection");
                false
            }
        }
    }

    /// Writes `frame` now if nobody else is writing and nothing is left over from an earlier
    /// direct write. True when the frame is on its way (whole, or its rest in `front` for the
    /// writer); false when nothing was written and the caller must queue it.
    pub(crate) fn try_write(&self, frame: &[u8], flow: &Flow) -> bool {
        let Some(fd) = self.fd.get() else {
            return false;
        };
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let Some(busy) = self.try_busy() else {
            return false;
        };
        let mut front = self.front.lock().expect("front");
        if front.is_some() || self.closed.load(Ordering::Acquire) {
            return false;
        }
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        let sent = loop {
            match send(fd.as_raw_fd(), frame, flags) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        };
        match sent {
            Ok(n) if n == frame.len() => {
                DIRECT_WRITES.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(n) if n > 0 => {
                let rest = Bytes::copy_from_slice(&frame[n..]);
                flow.queued(rest.len());
                *front = Some(rest);
                drop(front);
                drop(busy);
                self.writer.wake();
                DIRECT_WRITES.fetch_add(1, Ordering::Relaxed);
                true
            }
            // Nothing taken (full socket buffer, or a broken connection the writer will
            // find): queue it.
            _ => false,
        }
    }

    /// Refuses direct writes from now on and shuts the socket down both ways.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(fd) = self.fd.get() {
            let _ = shutdown(fd.as_raw_fd(), Shutdown::Both);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    #[test]
    fn a_direct_write_reaches_the_peer_whole() {
        let (server, mut client) = pair();
        let shared = SharedSocket::new(server.as_raw_fd());
        assert!(shared.prepare());
        let flow = Flow::default();
        assert!(shared.try_write(b"hello", &flow));
        let mut got = [0u8; 5];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(flow.queued_bytes(), 0);
    }

    #[test]
    fn a_busy_or_closed_socket_refuses_and_writes_nothing() {
        let (server, mut client) = pair();
        let shared = SharedSocket::new(server.as_raw_fd());
        assert!(shared.prepare());
        let flow = Flow::default();
        let held = shared.try_busy().expect("free");
        assert!(!shared.try_write(b"no", &flow), "the writer holds it");
        drop(held);
        shared.close();
        assert!(!shared.try_write(b"no", &flow), "closed");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "nothing was written: {rest:?}");
    }

    #[test]
    fn the_rest_of_a_cut_write_waits_in_front_and_blocks_later_direct_writes() {
        let (server, mut client) = pair();
        // A small send buffer, and a peer that does not read: the kernel takes part.
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        let shared = SharedSocket::new(server.as_raw_fd());
        assert!(shared.prepare());
        let flow = Flow::default();
        let frame = vec![7u8; 8 << 20];
        assert!(shared.try_write(&frame, &flow));
        let rest = shared.take_front().expect("the kernel took only part");
        assert!(!rest.is_empty() && rest.len() < frame.len());
        assert_eq!(flow.queued_bytes(), rest.len(), "the rest counts as queued");
        // Put it back: a direct write must not jump ahead of it.
        *shared.front.lock().unwrap() = Some(rest.clone());
        assert!(!shared.try_write(b"later", &flow));
        // What the kernel took is the frame's head, intact.
        let taken = frame.len() - rest.len();
        let mut head = vec![0u8; taken];
        client.read_exact(&mut head).unwrap();
        assert!(head.iter().all(|&b| b == 7));
    }
}
