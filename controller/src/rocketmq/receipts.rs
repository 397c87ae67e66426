//! This member's own receipt times of broker heartbeats (in memory, not replicated).
//!
//! Brokers heartbeat every controller member (RocketMQ 5's `sendHeartbeatToController`).
//! The leader replicates liveness through the raft log, but while there is no leader nobody
//! records, and every replica's replicated last heartbeat ages alike. A member that becomes
//! leader therefore judges a master's silence by its own receipts as well
//! (`ElectionState::scan`): a master it heard from within the timeout, as a follower or as
//! leader, is not replaced, whatever the replicated liveness says. A replica it has not heard
//! from since it started counts as heard until one timeout after its start (brokers need
//! that long to reach a member that just came up); this is the only grace left of the
//! former new-leader grace.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rmq_election::BrokerId;

/// When this member last received each replica's heartbeat.
pub(super) struct Receipts {
    started: Instant,
    last: HashMap<(String, BrokerId), Instant>,
}

impl Receipts {
    pub(super) fn new(started: Instant) -> Self {
        Self {
            started,
            last: HashMap::new(),
        }
    }

    pub(super) fn record(&mut self, replica: (String, BrokerId), at: Instant) {
        self.last.insert(replica, at);
    }

    /// Whether this member heard from the replica within `timeout_ms` before `now` (or has
    /// not heard from it since it started, less than `timeout_ms` ago).
    pub(super) fn heard(&self, now: Instant, group: &str, id: BrokerId, timeout_ms: u64) -> bool {
        let timeout = Duration::from_millis(timeout_ms);
        let within = |at: Instant| now.saturating_duration_since(at) <= timeout;
        match self.last.get(&(group.to_owned(), id)) {
            Some(&at) => within(at),
            None => within(self.started),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_heard_for_its_timeout_after_each_receipt() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut receipts = Receipts::new(start);
        receipts.record(("a".into(), 1), at(100));
        assert!(receipts.heard(at(2_100), "a", 1, 2_000));
        assert!(!receipts.heard(at(2_101), "a", 1, 2_000));
        receipts.record(("a".into(), 1), at(2_050));
        assert!(receipts.heard(at(4_000), "a", 1, 2_000));
        assert!(!receipts.heard(at(4_000), "b", 1, 2_000), "another group");
    }

    #[test]
    fn a_replica_never_heard_gets_one_timeout_from_the_start() {
        let start = Instant::now();
        let receipts = Receipts::new(start);
        assert!(receipts.heard(start + Duration::from_millis(2_000), "a", 1, 2_000));
        assert!(!receipts.heard(start + Duration::from_millis(2_001), "a", 1, 2_000));
    }
}
