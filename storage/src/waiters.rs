//! Single-threaded wake-up primitives of a shard (no locks, no atomics: a shard and all its
//! tasks live on one runtime thread).
//!
//! - [`Signal`]: a level-triggered flag with one consumer; `raise` before `wait` is not lost.
//!   Used to wake the flusher and background tasks.
//! - [`DurabilityWaiters`]: senders waiting for `Written`/`Flushed` to pass an offset; the
//!   flusher releases every waiter an I/O covers at once (group commit) or fails them. A
//!   waiter may carry a deadline: one sweeper task per list ([`spawn_deadline_sweeper`])
//!   fails overdue waiters with `FlushTimeout`, so a wait costs no timer of its own.
//! - [`QueueWaiters`]: long-polling pulls parked per `(topic, queueId)`, woken by `append`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Instant;

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
        poll_fn(|cx| self.poll_raised(cx)).await
    }

    /// `wait` as a poll, for waiting on this signal and something else at once.
    pub fn poll_raised(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.raised.replace(false) {
            return Poll::Ready(());
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

pub(crate) type DurabilityResult = Result<(), StoreError>;

struct Waiter {
    end_offset: i64,
    /// When the sweeper fails the waiter with `FlushTimeout` (None: never).
    deadline: Option<Instant>,
    sender: oneshot::Sender<DurabilityResult>,
}

/// Waiters of one durability level, released in offset order.
#[derive(Default)]
pub(crate) struct DurabilityWaiters {
    waiters: RefCell<Vec<Waiter>>,
    /// Wakes the deadline sweeper: a deadline earlier than the one it sleeps for, or the
    /// list dropped.
    sweeper: Rc<Signal>,
    /// When the sweeper wakes next on its own (None: parked until raised).
    sweeper_wakes_at: Cell<Option<Instant>>,
}

impl DurabilityWaiters {
    /// A waiter without a deadline (released or failed only by the flusher or a drop).
    pub fn register(&self, end_offset: i64) -> oneshot::Receiver<DurabilityResult> {
        self.push(end_offset, None)
    }

    /// A waiter that the sweeper fails with `FlushTimeout` once `deadline` passed.
    pub fn register_until(
        &self,
        end_offset: i64,
        deadline: Instant,
    ) -> oneshot::Receiver<DurabilityResult> {
        let receiver = self.push(end_offset, Some(deadline));
        if self.sweeper_wakes_at.get().is_none_or(|at| deadline < at) {
            self.sweeper_wakes_at.set(Some(deadline));
            self.sweeper.raise();
        }
        receiver
    }

    fn push(
        &self,
        end_offset: i64,
        deadline: Option<Instant>,
    ) -> oneshot::Receiver<DurabilityResult> {
        let (sender, receiver) = oneshot::channel();
        self.waiters.borrow_mut().push(Waiter {
            end_offset,
            deadline,
            sender,
        });
        receiver
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.borrow().is_empty()
    }

    pub fn len(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Completes every waiter whose end offset is at or below `offset`; returns how many.
    pub fn release(&self, offset: i64) -> usize {
        self.complete(offset, |_| Ok(()))
    }

    /// Fails every waiter whose end offset is at or below `offset`.
    pub fn fail(&self, offset: i64, error: &StoreError) -> usize {
        self.complete(offset, |_| Err(error.duplicate()))
    }

    /// Fails with `FlushTimeout` every waiter whose deadline is at or before `now`; returns
    /// how many, and the earliest deadline left.
    pub fn expire(&self, now: Instant) -> (usize, Option<Instant>) {
        let count = self.take_and_send(
            |w| w.deadline.is_some_and(|d| d <= now),
            |_| Err(StoreError::FlushTimeout),
        );
        let next = self
            .waiters
            .borrow()
            .iter()
            .filter_map(|w| w.deadline)
            .min();
        (count, next)
    }

    fn complete(&self, offset: i64, outcome: impl Fn(&Waiter) -> DurabilityResult) -> usize {
        self.take_and_send(|w| w.end_offset <= offset, outcome)
    }

    fn take_and_send(
        &self,
        done: impl Fn(&Waiter) -> bool,
        outcome: impl Fn(&Waiter) -> DurabilityResult,
    ) -> usize {
        // Taken out before sending: a send wakes a task, never re-enters this list.
        let done: Vec<Waiter> = self
            .waiters
            .borrow_mut()
            .extract_if(.., |w| done(w))
            .collect();
        let count = done.len();
        for waiter in done {
            let result = outcome(&waiter);
            // A dropped receiver means the sender gave up; nothing to do.
            let _ = waiter.sender.send(result);
        }
        count
    }
}

impl Drop for DurabilityWaiters {
    fn drop(&mut self) {
        // Lets a parked sweeper notice that its list is gone and end.
        self.sweeper.raise();
    }
}

/// Starts the task that fails the overdue waiters of the list `pick` selects in `owner`
/// (one timer per sweep, not one per wait). It holds only a `Weak` reference between sweeps
/// and ends when `owner` is dropped.
pub(crate) fn spawn_deadline_sweeper<T: 'static>(
    owner: &Rc<T>,
    pick: fn(&T) -> &DurabilityWaiters,
) {
    let weak: Weak<T> = Rc::downgrade(owner);
    let signal = pick(owner).sweeper.clone();
    compio::runtime::spawn(async move {
        loop {
            let wakes_at = {
                let Some(owner) = weak.upgrade() else { return };
                let waiters = pick(&owner);
                let (_, next) = waiters.expire(Instant::now());
                waiters.sweeper_wakes_at.set(next);
                next
            };
            match wakes_at {
                None => signal.wait().await,
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    let _ = compio::time::timeout(left, signal.wait()).await;
                }
            }
        }
    })
    .detach();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        compio::runtime::Runtime::new()
            .expect("compio runtime")
            .block_on(future)
    }

    /// Awaits a waiter's outcome, at most 5 s (a test that fails must not hang).
    async fn outcome(receiver: oneshot::Receiver<DurabilityResult>) -> String {
        match compio::time::timeout(Duration::from_secs(5), receiver).await {
            Ok(Ok(result)) => format!("{result:?}"),
            Ok(Err(canceled)) => format!("{canceled:?}"),
            Err(_) => "still waiting after 5 s".to_string(),
        }
    }

    #[test]
    fn expire_fails_only_the_overdue_waiters() {
        let waiters = DurabilityWaiters::default();
        let t0 = Instant::now();
        let mut first = waiters.register_until(10, t0 + Duration::from_secs(1));
        let mut second = waiters.register_until(20, t0 + Duration::from_secs(2));
        let mut forever = waiters.register(30);
        assert_eq!(
            waiters.expire(t0 + Duration::from_millis(1500)),
            (1, Some(t0 + Duration::from_secs(2)))
        );
        assert!(matches!(
            first.try_recv(),
            Ok(Some(Err(StoreError::FlushTimeout)))
        ));
        assert!(matches!(second.try_recv(), Ok(None)));
        assert_eq!(waiters.release(25), 1);
        assert!(matches!(second.try_recv(), Ok(Some(Ok(())))));
        assert_eq!(waiters.expire(t0 + Duration::from_secs(3600)), (0, None));
        assert!(matches!(forever.try_recv(), Ok(None)));
    }

    #[test]
    fn the_sweeper_fails_a_wait_at_its_deadline_even_after_a_later_one() {
        block_on(async {
            let waiters = Rc::new(DurabilityWaiters::default());
            spawn_deadline_sweeper(&waiters, |w| w);
            let start = Instant::now();
            let late = waiters.register_until(10, start + Duration::from_secs(30));
            // Let the sweeper go to sleep until the late deadline.
            compio::time::sleep(Duration::from_millis(20)).await;
            let early = waiters.register_until(20, start + Duration::from_millis(100));
            let result = outcome(early).await;
            let elapsed = start.elapsed();
            assert_eq!(result, "Err(FlushTimeout)");
            assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
            assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
            drop(late);
        });
    }

    #[test]
    fn a_shard_fails_a_durability_wait_that_nothing_releases_after_its_timeout() {
        let root = tempfile::tempdir().expect("temp dir");
        let mut cfg = crate::StoreConfig::new(root.path());
        cfg.sync_flush_timeout = Duration::from_millis(100);
        block_on(async {
            let layout = crate::StoreLayout::open(&cfg).expect("layout");
            let store = crate::ShardStore::open(cfg.clone(), 0, layout.previous_shutdown_clean)
                .await
                .expect("open");
            // Nothing is appended up to this offset, so only the deadline can end the waits.
            let never = store.log.appended() + 1;
            let start = Instant::now();
            let deadline = start + cfg.sync_flush_timeout;
            let written = store.log.written_waiters.register_until(never, deadline);
            let flushed = store.log.flushed_waiters.register_until(never, deadline);
            for receiver in [written, flushed] {
                assert_eq!(outcome(receiver).await, "Err(FlushTimeout)");
            }
            assert!(start.elapsed() >= Duration::from_millis(100));
            store.shutdown().await.expect("shutdown");
        });
    }
}
