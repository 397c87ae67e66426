//! The election policy (RocketMQ 5 `DefaultElectPolicy` with `BrokerValidPredicate` = alive).
//!
//! Candidates are the live members of the SSS; only if none lives and
//! `enableElectUncleanMaster` is set, the live replicas outside it. Among candidates:
//! the old master if it is still eligible and nobody was designated; a designated broker if
//! it is a candidate (else nobody); otherwise the best by heartbeat: higher epoch first, then
//! larger max offset, then higher priority, which in RocketMQ is the *smaller*
//! `brokerElectionPriority` value (its comparator sorts priority ascending), then the smaller
//! broker id so the choice is deterministic (RocketMQ's set order is arbitrary there).

use std::cmp::Reverse;
use std::collections::BTreeSet;

use crate::BrokerId;
use crate::group::BrokerGroup;

pub(crate) fn elect(
    group: &BrokerGroup,
    now_ms: u64,
    unclean: bool,
    designated: Option<BrokerId>,
) -> Option<BrokerId> {
    if let Some(found) = elect_among(group, now_ms, &group.sync_state_set, designated) {
        return Some(found);
    }
    if !unclean {
        return None;
    }
    let all: BTreeSet<BrokerId> = group.replicas.keys().copied().collect();
    elect_among(group, now_ms, &all, designated)
}

fn elect_among(
    group: &BrokerGroup,
    now_ms: u64,
    pool: &BTreeSet<BrokerId>,
    designated: Option<BrokerId>,
) -> Option<BrokerId> {
    let candidates: Vec<BrokerId> = pool
        .iter()
        .copied()
        .filter(|id| group.is_alive(now_ms, *id))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    if let Some(old) = group.master
        && candidates.contains(&old)
        && designated.is_none_or(|id| id == old)
    {
        return Some(old);
    }
    if let Some(id) = designated {
        return candidates.contains(&id).then_some(id);
    }
    candidates.into_iter().min_by_key(|id| {
        let live = group.replicas[id]
            .liveness
            .as_ref()
            .expect("candidates are alive");
        (
            Reverse(live.epoch),
            Reverse(live.max_offset),
            live.election_priority,
            *id,
        )
    })
}
