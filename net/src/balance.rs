//! Spreading accepted connections evenly over the cores.
//!
//! Every core accepts on the server's one listening socket (see `listener`) and the kernel
//! hands each connection to whichever accept it wakes, so a handful of clients can all
//! land on one core: two connections of a load generator, or the few client instances of
//! an application (a Java `MQClientInstance` keeps one connection per broker for all its
//! producers and consumers). That core then decodes, answers and writes for all of them
//! while the others idle. So the core that accepts a connection hands it to the core with
//! the fewest open connections (itself on a tie), as Seastar's `connection_distribution`
//! does. A hand-off costs one `dup` and one channel message per connection, never
//! anything per request.
//!
//! Contracts: every accepted connection is served exactly once, by one core; a
//! connection handed to a core that is shutting down is closed. The counts are a
//! placement hint, not a limit: they are read without a lock, so two simultaneous
//! accepts may pick the same core.

use std::net::TcpStream as StdTcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_channel::mpsc;
use futures_util::StreamExt;

/// Open connections of every core, shared by all of them.
#[derive(Debug)]
struct Counts(Vec<AtomicUsize>);

/// One core's part of the balancer: its inbox of handed-off connections and the senders
/// to every other core's inbox.
#[derive(Debug)]
pub struct BalancerCore {
    core: usize,
    counts: Arc<Counts>,
    inboxes: Vec<mpsc::UnboundedSender<(StdTcpStream, ConnectionSlot)>>,
    inbox: Option<mpsc::UnboundedReceiver<(StdTcpStream, ConnectionSlot)>>,
}

/// Keeps its core's connection count up while the connection it belongs to is served.
#[derive(Debug)]
pub struct ConnectionSlot {
    core: usize,
    counts: Arc<Counts>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let before = self.counts.0[self.core].fetch_sub(1, Ordering::Relaxed);
        assert!(
            before > 0,
            "connection count of core {} underflow",
            self.core
        );
    }
}

/// Builds the balancer parts of `cores` cores, index = core number.
pub fn balancer(cores: usize) -> Vec<BalancerCore> {
    assert!(cores > 0, "a balancer needs at least one core");
    let counts = Arc::new(Counts((0..cores).map(|_| AtomicUsize::new(0)).collect()));
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..cores).map(|_| mpsc::unbounded()).unzip();
    receivers
        .into_iter()
        .enumerate()
        .map(|(core, inbox)| BalancerCore {
            core,
            counts: counts.clone(),
            inboxes: senders.clone(),
            inbox: Some(inbox),
        })
        .collect()
}

impl BalancerCore {
    /// The core that should serve the next connection: the fewest open connections,
    /// this core on a tie.
    pub fn place(&self) -> usize {
        let load = |core: usize| self.counts.0[core].load(Ordering::Relaxed);
        let mut best = self.core;
        for core in 0..self.counts.0.len() {
            if load(core) < load(best) {
                best = core;
            }
        }
        best
    }

    /// Counts a connection this core is about to serve.
    pub fn slot(&self) -> ConnectionSlot {
        self.slot_of(self.core)
    }

    /// Counts a connection for `core` now, so the next placement already sees it even
    /// before that core picks the connection up.
    fn slot_of(&self, core: usize) -> ConnectionSlot {
        self.counts.0[core].fetch_add(1, Ordering::Relaxed);
        ConnectionSlot {
            core,
            counts: self.counts.clone(),
        }
    }

    /// Hands `stream` to core `target`, counted there from now on.
    ///
    /// # Errors
    /// The `dup` failed (out of descriptors): the stream is given back to be served here.
    pub fn hand_off(
        &self,
        target: usize,
        stream: compio::net::TcpStream,
    ) -> Result<(), compio::net::TcpStream> {
        assert_ne!(target, self.core, "a core does not hand off to itself");
        // compio's stream cannot leave its thread; a duplicate descriptor can. Dropping
        // the original after the dup closes only that descriptor, not the socket.
        let fd = match nix::unistd::dup(&stream) {
            Ok(fd) => fd,
            Err(error) => {
                tracing::warn!("cannot hand a connection to core {target}: dup failed: {error}");
                return Err(stream);
            }
        };
        debug_assert_ne!(fd.as_raw_fd(), stream.as_raw_fd());
        drop(stream);
        // SAFETY: `fd` is a fresh descriptor we own, of a connected TCP socket.
        let std_stream =
            unsafe { StdTcpStream::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
        // A closed inbox means the target is shutting down: the stream drops (closes)
        // and so does its slot.
        let _ = self.inboxes[target].unbounded_send((std_stream, self.slot_of(target)));
        Ok(())
    }

    /// Takes this core's inbox (once), for [`accept_balanced`].
    fn take_inbox(&mut self) -> mpsc::UnboundedReceiver<(StdTcpStream, ConnectionSlot)> {
        self.inbox.take().expect("the inbox is taken once")
    }
}

/// Accepts on `listener` until `stopping()`, serving each connection on the core with
/// the fewest connections: the future `serve(stream)` runs as its own task on this core for
/// connections it keeps and for connections other cores hand to it, and the connection
/// counts for this core until that future ends.
pub async fn accept_balanced<F, Fut>(
    listener: compio::net::TcpListener,
    stopping: impl Fn() -> bool,
    mut balancer: BalancerCore,
    serve: F,
) where
    F: Fn(compio::net::TcpStream) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let spawn_served = move |stream, slot: ConnectionSlot| {
        let served = serve(stream);
        crate::rt::spawn(async move {
            served.await;
            drop(slot);
        })
        .detach();
    };
    let mut inbox = balancer.take_inbox();
    let balancer = std::rc::Rc::new(balancer);
    let handed_off = {
        let balancer = balancer.clone();
        let spawn_served = spawn_served.clone();
        crate::rt::spawn(async move {
            while let Some((std_stream, slot)) = inbox.next().await {
                debug_assert_eq!(slot.core, balancer.core, "slot counted for this core");
                match compio::net::TcpStream::from_std(std_stream) {
                    Ok(stream) => spawn_served(stream, slot),
                    Err(error) => tracing::warn!("handed-off connection dropped: {error}"),
                }
            }
        })
    };
    crate::listener::accept_until(listener, stopping, move |stream| {
        let target = balancer.place();
        tracing::debug!(
            core = balancer.core,
            target,
            peer = ?stream.peer_addr().ok(),
            "connection accepted"
        );
        if target == balancer.core {
            return spawn_served(stream, balancer.slot());
        }
        if let Err(stream) = balancer.hand_off(target, stream) {
            spawn_served(stream, balancer.slot());
        }
    })
    .await;
    drop(handed_off);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_prefers_the_least_loaded_core_and_itself_on_a_tie() {
        let parts = balancer(3);
        assert_eq!(parts[1].place(), 1, "all empty: keep it");
        let a = parts[1].slot();
        assert_eq!(
            parts[1].place(),
            0,
            "core 1 has one, 0 and 2 none: lowest index"
        );
        assert_eq!(parts[2].place(), 2, "core 2 is among the least loaded");
        let b = parts[0].slot();
        let c = parts[2].slot();
        assert_eq!(parts[1].place(), 1, "all at one again");
        drop(a);
        assert_eq!(parts[0].place(), 1);
        drop((b, c));
        assert_eq!(parts[2].place(), 2);
    }

    #[test]
    fn handed_off_connections_are_served_by_the_target_core() {
        let parts = balancer(2);
        let mut iter = parts.into_iter();
        let (core0, mut core1) = (iter.next().unwrap(), iter.next().unwrap());
        let mut inbox1 = core1.take_inbox();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        compio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let client = std::thread::spawn(move || {
                    use std::io::{Read, Write};
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    s.write_all(b"ping").unwrap();
                    let mut back = [0u8; 4];
                    s.read_exact(&mut back).unwrap();
                    back
                });
                let (accepted, _) = listener.accept().unwrap();
                let stream = compio::net::TcpStream::from_std(accepted).unwrap();
                core0.hand_off(1, stream).expect("dup works");
                assert_eq!(core0.place(), 0, "core 1 counts the connection at once");
                // The original descriptor is closed; the duplicate still reaches the peer.
                let (mut moved, slot) = inbox1.next().await.expect("handed off");
                assert_eq!(slot.core, 1);
                use std::io::{Read, Write};
                let mut got = [0u8; 4];
                moved.read_exact(&mut got).unwrap();
                moved.write_all(b"pong").unwrap();
                assert_eq!(&got, b"ping");
                assert_eq!(&client.join().unwrap(), b"pong");
                drop(slot);
                assert_eq!(core0.place(), 0);
            });
    }
}
