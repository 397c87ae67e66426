//! Per-connection flow control: how much one connection may have in flight and queued.
//!
//! A client that pipelines requests without reading the replies must not make the server
//! buffer without bound. Each connection counts
//! - requests being handled (dispatched, not yet answered), minus those parked;
//! - parked requests: long-polling pulls waiting for a message (they hold no reply yet, and
//!   a consumer legitimately keeps one per queue in flight for up to the suspend time);
//! - reply bytes queued for its writer (added by whoever sends, on any core; removed by the
//!   writer once written).
//!
//! When any count reaches its limit ([`ConnectionLimits`]) the reader stops reading the
//! socket (TCP back-pressure to the client) and resumes once the writer or a finished
//! request brought it back below. Replies are never dropped: a client that finally reads
//! gets every answer. The memory a connection can hold is therefore bounded by
//! `max_queued_reply_bytes` + (`max_in_flight` + `max_parked`) x the largest reply, plus the
//! frames of one read (docs/architecture.md "Connections").

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use rmq_core::remoting::RemotingCommand;

/// Limits of one connection (config keys `connectionMaxInFlightRequests`,
/// `connectionMaxParkedRequests`, `connectionMaxQueuedReplyBytes`; docs/config.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Largest accepted frame, length field included.
    pub max_frame: usize,
    /// Requests being handled at once (parked ones not counted).
    pub max_in_flight: usize,
    /// Long-polling requests waiting at once.
    pub max_parked: usize,
    /// Reply bytes queued and not yet written.
    pub max_queued_reply_bytes: usize,
}

impl ConnectionLimits {
    /// Default requests in flight per connection.
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
    /// Default parked (long-polling) requests per connection.
    pub const DEFAULT_MAX_PARKED: usize = 16 * 1024;
    /// Default queued reply bytes per connection.
    pub const DEFAULT_MAX_QUEUED_REPLY_BYTES: usize = 16 * 1024 * 1024;

    /// The default limits with `max_frame`.
    pub fn with_max_frame(max_frame: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_frame,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            max_parked: Self::DEFAULT_MAX_PARKED,
            max_queued_reply_bytes: Self::DEFAULT_MAX_QUEUED_REPLY_BYTES,
        }
    }
}

/// Bytes a queued reply is charged: its body and remark plus a fixed header allowance (the
/// encoded header of a reply is a few hundred bytes). The same value is added when the reply
/// is queued and removed when it is written.
pub fn reply_cost(cmd: &RemotingCommand) -> usize {
    256 + cmd.body.len() + cmd.remark.as_ref().map_or(0, String::len)
}

/// The counters of one connection, shared by its reader, writer, request tasks and senders.
#[derive(Debug, Default)]
pub struct Flow {
    in_flight: AtomicUsize,
    parked: AtomicUsize,
    queued_bytes: AtomicUsize,
    /// Requests whose `Responder` is outstanding (answered from another core).
    responders: AtomicUsize,
    /// The writer stopped (the socket failed): nothing queued will drain any more.
    writer_gone: AtomicBool,
    reader: AtomicWaker,
}

impl Flow {
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn request_finished(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a request finished that was never started");
        self.reader.wake();
    }

    pub(crate) fn responder_made(&self) {
        self.responders.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn responder_done(&self) {
        let before = self.responders.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a responder finished that was never made");
    }

    /// Requests answered from another core, not answered yet.
    pub(crate) fn responders(&self) -> usize {
        self.responders.load(Ordering::Acquire)
    }

    pub(crate) fn queued(&self, bytes: usize) {
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    pub(crate) fn written(&self, bytes: usize) {
        let before = self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        assert!(before >= bytes, "more reply bytes written than queued");
        self.reader.wake();
    }

    /// Whether the connection's writer stopped.
    pub(crate) fn writer_gone(&self) -> bool {
        self.writer_gone.load(Ordering::Acquire)
    }

    pub(crate) fn writer_stopped(&self) {
        self.writer_gone.store(true, Ordering::Release);
        self.reader.wake();
    }

    /// Reply bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Requests being handled (parked ones not counted).
    pub fn in_flight(&self) -> usize {
        let started = self.in_flight.load(Ordering::Acquire);
        started.saturating_sub(self.parked.load(Ordering::Acquire))
    }

    /// Marks one request of this connection as parked until the guard is dropped: call it
    /// where a handler waits for an outside event for a long time (a long-polling pull).
    ///
    /// The parked count is kept apart from the started/finished count (in flight =
    /// started - finished - parked, saturating): the guard lives on the core that waits (a
    /// shard's), the request's own count on the connection's, and at shutdown the waiting
    /// future may be dropped after its request already finished. A request driven without
    /// the transport (an in-process test) is parked all the same.
    pub fn park(self: &Arc<Self>) -> Parked {
        self.parked.fetch_add(1, Ordering::AcqRel);
        self.reader.wake();
        Parked { flow: self.clone() }
    }

    fn over(&self, limits: &ConnectionLimits) -> bool {
        self.in_flight() >= limits.max_in_flight
            || self.parked.load(Ordering::Acquire) >= limits.max_parked
            || self.queued_bytes.load(Ordering::Acquire) >= limits.max_queued_reply_bytes
    }

    /// Waits until the connection is below every limit. Returns false if the writer is gone
    /// (the connection should close).
    pub(crate) async fn below_limits(&self, limits: &ConnectionLimits) -> bool {
        poll_fn(|cx| {
            if self.writer_gone.load(Ordering::Acquire) {
                return Poll::Ready(false);
            }
            if !self.over(limits) {
                return Poll::Ready(true);
            }
            self.reader.register(cx.waker());
            // re-check: a wake between the first check and the registration is not lost
            if self.writer_gone.load(Ordering::Acquire) {
                Poll::Ready(false)
            } else if self.over(limits) {
                Poll::Pending
            } else {
                Poll::Ready(true)
            }
        })
        .await
    }
}

/// A parked request (see [`Flow::park`]); it counts as in flight again when dropped.
#[derive(Debug)]
#[must_use = "the request is parked only while the guard lives"]
pub struct Parked {
    flow: Arc<Flow>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        let before = self.flow.parked.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a parked count below zero");
        self.flow.reader.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_frame: 1 << 20,
            max_in_flight: 2,
            max_parked: 1,
            max_queued_reply_bytes: 1000,
        }
    }

    #[test]
    fn each_limit_blocks_and_draining_releases() {
        let flow = Arc::new(Flow::default());
        let limits = limits();
        assert!(!flow.over(&limits));
        flow.request_started();
        flow.request_started();
        assert!(flow.over(&limits), "two in flight reach max_in_flight 2");
        let parked = flow.park();
        assert!(flow.over(&limits), "one parked reaches max_parked 1");
        assert_eq!(flow.in_flight(), 1, "a parked request is not in flight");
        drop(parked);
        assert_eq!(flow.in_flight(), 2, "an unparked request counts again");
        let uncounted = Arc::new(Flow::default()).park();
        drop(uncounted);
        flow.request_finished();
        assert!(!flow.over(&limits));
        flow.queued(1000);
        assert!(flow.over(&limits), "1000 queued bytes reach the byte limit");
        flow.written(1);
        assert!(!flow.over(&limits));
    }

    /// Seen as an abort at broker shutdown (exit 134, offsets not persisted): a long-polling
    /// pull's future, parked on a shard core, was dropped after its request had finished on
    /// the connection's core, and the in-flight count went below zero.
    #[test]
    fn a_parked_guard_may_outlive_its_finished_request() {
        let flow = Arc::new(Flow::default());
        flow.request_started();
        let parked = flow.park();
        assert_eq!(flow.in_flight(), 0);
        flow.request_finished();
        assert_eq!(flow.in_flight(), 0);
        drop(parked);
        assert_eq!(flow.in_flight(), 0);
        assert!(!flow.over(&limits()));
    }

    #[test]
    fn a_blocked_reader_wakes_when_a_reply_is_written_or_the_writer_stops() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let flow = Arc::new(Flow::default());
            let limits = limits();
            flow.queued(5000);
            let waiter = {
                let flow = flow.clone();
                compio::runtime::spawn(async move { flow.below_limits(&limits).await })
            };
            compio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(
                !waiter.is_finished(),
                "over the byte limit the reader waits"
            );
            flow.written(4500);
            assert!(waiter.await.unwrap(), "below the limit again: read on");
            flow.queued(5000);
            let waiter = {
                let flow = flow.clone();
                compio::runtime::spawn(async move { flow.below_limits(&limits).await })
            };
            compio::time::sleep(std::time::Duration::from_millis(20)).await;
            flow.writer_stopped();
            assert!(
                !waiter.await.unwrap(),
                "a dead writer closes the connection"
            );
        });
    }
}
