//! Group commit of heartbeats on the raft leader: the heartbeats that arrive while a
//! heartbeat write is in flight are written together as one log entry
//! ([`Command::Heartbeats`]), and each is answered once that entry is committed and applied.
//!
//! Why: openraft 0.9 turns every client write into its own log entry and the leader fsyncs
//! entries one after the other, so one write per heartbeat capped a quorum at the disk's
//! fsync rate (~260-300 heartbeats/s measured, i.e. ~100-150 brokers at a 500 ms interval).
//! Liveness stays replicated: a heartbeat is answered only after its time is committed, which
//! the broker's fencing bound relies on (docs/perf.md, "Safety of the shorter bounds").
//!
//! No timer: a heartbeat that finds no write in flight is written at once, alone. Batches are
//! bounded ([`rmq_election::MAX_HEARTBEATS_PER_ENTRY`] reports, one per replica); heartbeats
//! beyond that wait for the next entry. One writer task runs while anything is queued and
//! writes the batches in arrival order, one entry at a time; it ends when the queue is empty.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rmq_core::remoting::ResponseCode;
use rmq_election::{Command, HeartbeatBatch, HeartbeatReport, Outcome};
use tokio::sync::oneshot;

use super::replies::Failure;

/// What a heartbeat's sender gets: its own outcome from the batch, or the write's failure.
type Answer = Result<Outcome, Failure>;

/// A batch waiting to be written, with whom to answer: (slot of the report, sender).
struct Pending {
    batch: HeartbeatBatch,
    waiters: Vec<(usize, oneshot::Sender<Answer>)>,
}

#[derive(Default)]
struct Queue {
    /// A writer task is running (it owns the batch it writes; `batches` are the next ones).
    writing: bool,
    batches: VecDeque<Pending>,
}

/// The leader's heartbeat group commit; one per controller member.
#[derive(Default)]
pub(super) struct HeartbeatWriter {
    queue: Mutex<Queue>,
}

impl HeartbeatWriter {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sizes of the batches waiting behind the write in flight.
    #[cfg(test)]
    pub(super) fn queued(&self) -> Vec<usize> {
        let queue = self.queue();
        queue.batches.iter().map(|p| p.batch.len()).collect()
    }

    /// Queues `report` and waits for the answer of the entry it is written in. `write`
    /// replicates one command (the node's raft write); it is used by the writer task this
    /// call starts when none runs.
    pub(super) async fn record<W, F>(self: &Arc<Self>, report: HeartbeatReport, write: W) -> Answer
    where
        W: Fn(Command) -> F + Send + Sync + 'static,
        F: Future<Output = Answer> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.queue();
            queue.enqueue(report, tx);
            !std::mem::replace(&mut queue.writing, true)
        };
        if start {
            tokio::spawn(self.clone().write_queued(write));
        }
        rx.await.unwrap_or_else(|_| {
            Err(Failure::new(
                ResponseCode::SystemError as i32,
                "the controller stopped before the heartbeat was written",
            ))
        })
    }

    /// Writes queued batches one entry at a time until none is left.
    async fn write_queued<W, F>(self: Arc<Self>, write: W)
    where
        W: Fn(Command) -> F,
        F: Future<Output = Answer>,
    {
        loop {
            let pending = {
                let mut queue = self.queue();
                match queue.batches.pop_front() {
                    Some(pending) => pending,
                    None => {
                        queue.writing = false;
                        return;
                    }
                }
            };
            let reports = pending.batch.len();
            let cmd = pending
                .batch
                .into_command()
                .expect("a queued batch holds at least the report that queued it");
            tracing::trace!(reports, "writing heartbeats");
            let answer = write(cmd).await;
            answer_all(reports, answer, pending.waiters);
        }
    }
}

impl Queue {
    /// Puts `report` into the last queued batch, or a new one when that is full (or none).
    fn enqueue(&mut self, report: HeartbeatReport, tx: oneshot::Sender<Answer>) {
        let report = match self.batches.back_mut() {
            Some(last) => match last.batch.push(report) {
                Ok(slot) => {
                    last.waiters.push((slot, tx));
                    return;
                }
                Err(report) => report,
            },
            None => report,
        };
        let mut batch = HeartbeatBatch::new();
        let slot = batch.push(report).expect("an empty batch takes a report");
        self.batches.push_back(Pending {
            batch,
            waiters: vec![(slot, tx)],
        });
    }
}

/// Answers every waiter of a batch of `reports` reports: its own outcome, or the failure of
/// the write (every heartbeat of a batch that was not written fails).
fn answer_all(reports: usize, answer: Answer, waiters: Vec<(usize, oneshot::Sender<Answer>)>) {
    let outcomes = match answer {
        Ok(Outcome::HeartbeatsRecorded(outcomes)) => {
            assert_eq!(outcomes.len(), reports, "one outcome per written report");
            Ok(outcomes)
        }
        Ok(other) => Err(Failure::new(
            ResponseCode::SystemError as i32,
            format!("unexpected controller outcome {other:?}"),
        )),
        Err(failure) => Err(failure),
    };
    for (slot, tx) in waiters {
        let answer = match &outcomes {
            Ok(outcomes) => Ok(outcomes[slot].clone()),
            Err(failure) => Err(failure.clone()),
        };
        // The sender may have gone (its connection closed): nothing to answer then.
        let _ = tx.send(answer);
    }
}
