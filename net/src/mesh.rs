//! Cross-core message passing: bounded SPSC rings (rtrb) between every ordered pair of
//! cores, and one wake-up per receiving core.
//!
//! A sender pushes into its own ring towards the target and wakes the target's mailbox
//! task; the receiver drains all its inbound rings. A full ring is back-pressure: `send`
//! hands the item back and the caller decides (wait and retry, or answer SYSTEM_BUSY).
//! Rings are per pair, so no ring ever has two producers or two consumers and no lock is
//! taken on either side.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use futures_util::task::AtomicWaker;

/// Capacity of each ring, in items. Items are small (a request and a reply channel).
pub const RING_CAPACITY: usize = 4096;

/// The sending ends of the mesh that belong to one core.
pub struct MeshSender<T> {
    core: usize,
    outbound: Vec<Option<rtrb::Producer<T>>>,
    wakers: Arc<Vec<AtomicWaker>>,
}

/// The receiving ends of the mesh that belong to one core (owned by its mailbox task).
pub struct MeshReceiver<T> {
    core: usize,
    inbound: Vec<Option<rtrb::Consumer<T>>>,
    wakers: Arc<Vec<AtomicWaker>>,
}

/// Builds the full mesh for `count` cores.
pub struct Mesh;

impl Mesh {
    /// Returns one sender/receiver pair per core, index = core number.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T>(count: usize) -> Vec<(MeshSender<T>, MeshReceiver<T>)> {
        assert!(count > 0, "a mesh needs at least one core");
        let wakers: Arc<Vec<AtomicWaker>> =
            Arc::new((0..count).map(|_| AtomicWaker::new()).collect());
        let mut senders: Vec<MeshSender<T>> = (0..count)
            .map(|core| MeshSender {
                core,
                outbound: (0..count).map(|_| None).collect(),
                wakers: wakers.clone(),
            })
            .collect();
        let mut receivers: Vec<MeshReceiver<T>> = (0..count)
            .map(|core| MeshReceiver {
                core,
                inbound: (0..count).map(|_| None).collect(),
                wakers: wakers.clone(),
            })
            .collect();
        for (from, sender) in senders.iter_mut().enumerate() {
            for (to, receiver) in receivers.iter_mut().enumerate() {
                if from != to {
                    let (producer, consumer) = rtrb::RingBuffer::new(RING_CAPACITY);
                    sender.outbound[to] = Some(producer);
                    receiver.inbound[from] = Some(consumer);
                }
            }
        }
        senders.into_iter().zip(receivers).collect()
    }
}

impl<T> MeshSender<T> {
    /// This core's number.
    pub fn core(&self) -> usize {
        self.core
    }

    /// Number of cores in the mesh.
    pub fn core_count(&self) -> usize {
        self.outbound.len()
    }

    /// Pushes `item` to core `to` and wakes it.
    ///
    /// # Errors
    /// Gives the item back when the ring is full (back-pressure).
    pub fn send(&mut self, to: usize, item: T) -> Result<(), T> {
        assert_ne!(
            to, self.core,
            "a core does not send to itself over the mesh"
        );
        let producer = self.outbound[to]
            .as_mut()
            .expect("ring exists for every pair");
        match producer.push(item) {
            Ok(()) => {
                self.wakers[to].wake();
                Ok(())
            }
            Err(rtrb::PushError::Full(item)) => Err(item),
        }
    }
}

impl<T> MeshReceiver<T> {
    /// Waits until at least one item arrived, then moves everything available to `out`.
    pub async fn recv_batch(&mut self, out: &mut Vec<T>) {
        poll_fn(|cx| {
            self.drain(out);
            if !out.is_empty() {
                return Poll::Ready(());
            }
            self.wakers[self.core].register(cx.waker());
            // Re-check after registering: a push between drain and register would
            // otherwise wait for the next one.
            self.drain(out);
            if out.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    fn drain(&mut self, out: &mut Vec<T>) {
        for consumer in self.inbound.iter_mut().flatten() {
            while let Ok(item) = consumer.pop() {
                out.push(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_cross_threads_and_wake_the_receiver() {
        let mut links = Mesh::new::<u64>(2);
        let (_, mut b) = links.pop().unwrap();
        let (mut a, _) = links.pop().unwrap();
        let receiver = std::thread::spawn(move || {
            compio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let mut got = Vec::new();
                    while got.len() < 10_000 {
                        let mut batch = Vec::new();
                        b.recv_batch(&mut batch).await;
                        got.extend(batch);
                    }
                    got
                })
        });
        for i in 0..10_000u64 {
            let mut item = i;
            while let Err(back) = a.send(1, item) {
                item = back;
                std::thread::yield_now();
            }
        }
        let got = receiver.join().unwrap();
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn full_ring_hands_the_item_back() {
        let mut links = Mesh::new::<usize>(2);
        let a = &mut links[0].0;
        for i in 0..RING_CAPACITY {
            assert!(a.send(1, i).is_ok());
        }
        assert_eq!(a.send(1, 7), Err(7));
    }
}
