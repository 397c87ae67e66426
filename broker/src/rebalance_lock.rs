//! Queue locks of orderly consumers (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ), RocketMQ's
//! `RebalanceLockManager`.
//!
//! Contract: per (consumer group, message queue) at most one client id holds the lock at a
//! time. A lock lives [`LOCK_MAX_LIVE`] after its last renewal (clients renew every 20 s);
//! an expired lock may be taken by any client of the group, so a crashed consumer's queues
//! move to another consumer within a minute even without an unlock. A client that closes
//! cleanly unlocks its queues at once. Only the holder can unlock.
//!
//! One `Mutex` for the broker: taken per lock/unlock request (every 20 s per client), never
//! per message.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmq_core::body::MessageQueue;

/// RocketMQ's `rebalanceLockMaxLiveTime` (system property
/// `rocketmq.broker.rebalance.lockMaxLiveTime`, default 60 s).
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(60);

struct Holder {
    /// Shared by every queue the client holds in one request's batch.
    client_id: Arc<str>,
    renewed: Instant,
}

impl Holder {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.renewed) > LOCK_MAX_LIVE
    }
}

/// All queue locks of this broker: group → queue → holder.
#[derive(Default)]
pub struct RebalanceLocks {
    table: Mutex<HashMap<String, HashMap<MessageQueue, Holder>>>,
}

impl RebalanceLocks {
    /// Locks (or renews) every queue of `queues` that is free, expired or already held by
    /// `client_id`; returns the queues `client_id` holds afterwards.
    pub fn lock_batch(
        &self,
        group: &str,
        client_id: &str,
        queues: &BTreeSet<MessageQueue>,
        now: Instant,
    ) -> BTreeSet<MessageQueue> {
        let mut table = self.table.lock().expect("rebalance lock table");
        let locks = table.entry(group.to_owned()).or_default();
        let shared_id: Arc<str> = client_id.into();
        let mut granted = BTreeSet::new();
        for queue in queues {
            let free = match locks.get(queue) {
                None => true,
                Some(holder) => &*holder.client_id == client_id || holder.expired(now),
            };
            if !free {
                continue;
            }
            if let Some(previous) = locks.get(queue)
                && &*previous.client_id != client_id
            {
                tracing::warn!(group, ?queue, old = %previous.client_id, new = client_id,
                    "queue lock expired, taken over");
            }
            locks.insert(
                queue.clone(),
                Holder {
                    client_id: shared_id.clone(),
                    renewed: now,
                },
            );
            granted.insert(queue.clone());
        }
        assert!(granted.len() <= queues.len());
        granted
    }

    /// Releases the queues of `queues` that `client_id` holds; others' locks stay.
    pub fn unlock_batch(&self, group: &str, client_id: &str, queues: &BTreeSet<MessageQueue>) {
        let mut table = self.table.lock().expect("rebalance lock table");
        let Some(locks) = table.get_mut(group) else {
            return;
        };
        for queue in queues {
            if locks
                .get(queue)
                .is_some_and(|holder| &*holder.client_id == client_id)
            {
                locks.remove(queue);
            }
        }
        if locks.is_empty() {
            table.remove(group);
        }
    }

    /// The client holding `queue` for `group` now, if any (admin and tests).
    pub fn holder(&self, group: &str, queue: &MessageQueue, now: Instant) -> Option<String> {
        let table = self.table.lock().expect("rebalance lock table");
        let holder = table.get(group)?.get(queue)?;
        (!holder.expired(now)).then(|| holder.client_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(ids: &[i32]) -> BTreeSet<MessageQueue> {
        ids.iter()
            .map(|&queue_id| MessageQueue {
                topic: "T".into(),
                broker_name: "b".into(),
                queue_id,
            })
            .collect()
    }

    #[test]
    fn one_holder_per_queue() {
        let locks = RebalanceLocks::default();
        let t0 = Instant::now();
        assert_eq!(
            locks.lock_batch("g", "c1", &queues(&[0, 1]), t0),
            queues(&[0, 1])
        );
        assert_eq!(
            locks.lock_batch("g", "c2", &queues(&[1, 2]), t0),
            queues(&[2])
        );
        // renewal by the holder succeeds; another group is independent
        assert_eq!(
            locks.lock_batch("g", "c1", &queues(&[0, 1, 2]), t0),
            queues(&[0, 1])
        );
        assert_eq!(
            locks.lock_batch("other", "c2", &queues(&[0]), t0),
            queues(&[0])
        );
        let q1 = queues(&[1]).pop_first().unwrap();
        assert_eq!(locks.holder("g", &q1, t0).as_deref(), Some("c1"));
    }

    #[test]
    fn unlock_only_by_holder() {
        let locks = RebalanceLocks::default();
        let t0 = Instant::now();
        locks.lock_batch("g", "c1", &queues(&[0]), t0);
        locks.unlock_batch("g", "c2", &queues(&[0]));
        assert!(locks.lock_batch("g", "c2", &queues(&[0]), t0).is_empty());
        locks.unlock_batch("g", "c1", &queues(&[0]));
        assert_eq!(locks.lock_batch("g", "c2", &queues(&[0]), t0), queues(&[0]));
    }

    #[test]
    fn expired_locks_move() {
        let locks = RebalanceLocks::default();
        let t0 = Instant::now();
        locks.lock_batch("g", "c1", &queues(&[0]), t0);
        let almost = t0 + LOCK_MAX_LIVE;
        assert!(
            locks
                .lock_batch("g", "c2", &queues(&[0]), almost)
                .is_empty()
        );
        let later = t0 + LOCK_MAX_LIVE + Duration::from_millis(1);
        let q0 = queues(&[0]).pop_first().unwrap();
        assert_eq!(locks.holder("g", &q0, later), None);
        assert_eq!(
            locks.lock_batch("g", "c2", &queues(&[0]), later),
            queues(&[0])
        );
        assert!(locks.lock_batch("g", "c1", &queues(&[0]), later).is_empty());
    }
}
