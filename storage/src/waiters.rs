//! Single-threaded wake-up primitives of a shard (no locks, no atomics: a shard and all its
//! tasks live on one runtime thread).
//!
//! - [`Signal`]: a level-triggered flag with one consumer; `raise` before `wait` is not lost.
//!   Used to wake the flusher and background tasks.
//! - [`DurabilityWaiters`]: senders waiting for `Written`/`Flushed` to pass an offset; the
//!   flusher releases every waiter an I/O covers at once (group commit) or fails them.
//! - [`QueueWaiters`]: long-polling pulls parked per `(topic, queueId)`, woken by `append`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use futures_channel::oneshot;

use crate::error::StoreError;

#[derive(Default)]
pub(crate) struct Signal {
    raised: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Resolves once the signal is raised (possibly before the call), and lowers it.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.raised.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

pub(crate) type DurabilityResult = Result<(), StoreError>;

struct Waiter {
    end_offset: i64,
    sender: oneshot::Sender<DurabilityResult>,
}

/// Waiters of one durability level, released in offset order.
#[derive(Default)]
pub(crate) struct DurabilityWaiters {
    waiters: RefCell<Vec<Waiter>>,
}

impl DurabilityWaiters {
    pub fn register(&self, end_offset: i64) -> oneshot::Receiver<DurabilityResult> {
        let (sender, receiver) = oneshot::channel();
        self.waiters
            .borrow_mut()
            .push(Waiter { end_offset, sender });
        receiver
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.borrow().is_empty()
    }

    /// Completes every waiter whose end offset is at or below `offset`; returns how many.
    pub fn release(&self, offset: i64) -> usize {
        self.complete(offset, |_| Ok(()))
    }

    /// Fails every waiter whose end offset is at or below `offset`.
    pub fn fail(&self, offset: i64, error: &StoreError) -> usize {
        self.complete(offset, |_| Err(error.duplicate()))
    }

    fn complete(&self, offset: i64, outcome: impl Fn(&Waiter) -> DurabilityResult) -> usize {
        let done: Vec<Waiter> = {
            let mut waiters = self.waiters.borrow_mut();
            let (done, pending) = waiters.drain(..).partition(|w| w.end_offset <= offset);
            *waiters = pending;
            done
        };
        let count = done.len();
        for waiter in done {
            let result = outcome(&waiter);
            // A dropped receiver means the sender gave up (timeout); nothing to do.
            let _ = waiter.sender.send(result);
        }
        count
    }
}

/// Parked pulls of one topic, by queue id.
type TopicWaiters = HashMap<i32, Vec<oneshot::Sender<()>>>;

/// Long-polling pulls parked per queue.
#[derive(Default)]
pub(crate) struct QueueWaiters {
    by_topic: RefCell<HashMap<String, TopicWaiters>>,
    count: Cell<usize>,
}

impl QueueWaiters {
    pub fn register(&self, topic: &str, queue_id: i32) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut by_topic = self.by_topic.borrow_mut();
        let queues = match by_topic.get_mut(topic) {
            Some(queues) => queues,
            None => by_topic.entry(topic.to_string()).or_default(),
        };
        queues.entry(queue_id).or_default().push(sender);
        self.count.set(self.count.get() + 1);
        receiver
    }

    /// Wakes every pull parked on the queue. Cheap when nobody waits (the common case).
    pub fn wake(&self, topic: &str, queue_id: i32) {
        if self.count.get() == 0 {
            return;
        }
        let senders = {
            let mut by_topic = self.by_topic.borrow_mut();
            let Some(queues) = by_topic.get_mut(topic) else {
                return;
            };
            let Some(senders) = queues.remove(&queue_id) else {
                return;
            };
            if queues.is_empty() {
                by_topic.remove(topic);
            }
            senders
        };
        self.count.set(self.count.get() - senders.len());
        for sender in senders {
            let _ = sender.send(());
        }
    }

    /// Drops the senders of pulls that timed out on the queue.
    pub fn prune(&self, topic: &str, queue_id: i32) {
        let mut by_topic = self.by_topic.borrow_mut();
        let Some(queues) = by_topic.get_mut(topic) else {
            return;
        };
        if let Some(senders) = queues.get_mut(&queue_id) {
            let before = senders.len();
            senders.retain(|s| !s.is_canceled());
            self.count.set(self.count.get() - (before - senders.len()));
            if senders.is_empty() {
                queues.remove(&queue_id);
            }
        }
        if queues.is_empty() {
            by_topic.remove(topic);
        }
    }
}
