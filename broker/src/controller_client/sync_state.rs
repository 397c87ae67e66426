//! The master's sync-state-set upkeep: which replicas its acknowledgements count, and what it
//! asks the controller to change (RocketMQ 5's `AutoSwitchHAService` shrink/expand, with the
//! fencing rule of `rmq_election::MasterSyncView`, which the election simulation checks).
//!
//! A master counts (every counted replica must hold a record before a SYNC send is
//! acknowledged, with `allAckInSyncStateSet`):
//! - the **approved** set: the controller's sync-state set as last learned, at its epoch;
//! - the **pending** proposal: one CONTROLLER_ALTER_SYNC_STATE_SET whose outcome is unknown
//!   (no answer, a lost leader, a quorum timeout). The controller may still apply it, so its
//!   members count until a definite answer or a newer epoch resolves it. It is re-sent as is
//!   (same set, same base epoch) until then: the controller orders every copy in its log and
//!   applies at most one (the first moves the epoch the others name), so a definite answer
//!   to a later copy means no earlier copy can still apply;
//! - the **joining** slaves: near the master's end but not yet proposed. Counting them first
//!   makes every later acknowledgement wait for them; once each reported the log end at
//!   which it started being counted on every shard
//!   (`ShardReplica::holds_everything_acknowledged`), it holds everything ever acknowledged
//!   and may be proposed.
//!
//! A member leaves the count only when the controller approved a set without it (a shrink
//! takes effect after approval), or, for a joining slave, when it falls behind before being
//! proposed (the controller never heard of it).

use std::collections::BTreeSet;

use rmq_core::remoting::controller::controller_response_code as code;

/// One CONTROLLER_ALTER_SYNC_STATE_SET: `set`, based on the approved set's epoch `based_on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub set: BTreeSet<i64>,
    pub based_on: i32,
}

/// How the controller answered a proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Applied: the new set at its new epoch.
    Accepted { epoch: i32 },
    /// A refusal the controller decided in its log (the proposal can never apply).
    Refused,
    /// Unknown: no answer, not the leader, a quorum timeout, or the epoch moved (only the
    /// controller's set at the new epoch tells whether this proposal made it move).
    Unknown,
}

impl Answer {
    /// The answer for a failed call with the controller's response code `code` (None: no
    /// answer at all).
    pub fn from_refusal(response_code: Option<i32>) -> Self {
        match response_code {
            Some(
                code::CONTROLLER_INVALID_MASTER
                | code::CONTROLLER_INVALID_REPLICAS
                | code::CONTROLLER_INVALID_REQUEST
                | code::CONTROLLER_BROKER_NOT_ALIVE
                | code::CONTROLLER_BROKER_METADATA_NOT_EXIST
                | code::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
            ) => Answer::Refused,
            _ => Answer::Unknown,
        }
    }
}

/// One mastership's view of its sync-state set (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStateUpkeep {
    me: i64,
    approved: BTreeSet<i64>,
    approved_epoch: i32,
    pending: Option<Proposal>,
    joining: BTreeSet<i64>,
}

impl SyncStateUpkeep {
    /// A new mastership of `me` with the controller's set `approved` at `approved_epoch`.
    pub fn new(me: i64, approved: &[i64], approved_epoch: i32) -> Self {
        let mut approved: BTreeSet<i64> = approved.iter().copied().collect();
        // The controller's set of a master's own epoch holds it; a stale read cannot take it
        // out of the count.
        approved.insert(me);
        Self {
            me,
            approved,
            approved_epoch,
            pending: None,
            joining: BTreeSet::new(),
        }
    }

    pub fn approved(&self) -> (&BTreeSet<i64>, i32) {
        (&self.approved, self.approved_epoch)
    }

    pub fn pending(&self) -> Option<&Proposal> {
        self.pending.as_ref()
    }

    /// Every replica whose holdings limit acknowledgement (this master included).
    pub fn counted(&self) -> BTreeSet<i64> {
        let mut counted = self.approved.clone();
        if let Some(pending) = &self.pending {
            counted.extend(pending.set.iter().copied());
        }
        counted.extend(self.joining.iter().copied());
        counted
    }

    /// The controller's set at `epoch` (an answer, a GET_REPLICA_INFO, a notification of this
    /// mastership). Older news is ignored; a proposal based on an older epoch can never apply
    /// any more and stops counting.
    pub fn learn(&mut self, set: &[i64], epoch: i32) {
        if epoch <= self.approved_epoch {
            return;
        }
        let set: BTreeSet<i64> = set.iter().copied().collect();
        if !set.contains(&self.me) {
            // The controller's set of this mastership always holds its master: a set without
            // it is not news about this mastership.
            tracing::error!(
                ?set,
                epoch,
                me = self.me,
                "ignored a sync-state set without its master"
            );
            return;
        }
        self.approved = set;
        self.approved_epoch = epoch;
        if self.pending.as_ref().is_some_and(|p| p.based_on < epoch) {
            self.pending = None;
        }
        let approved = &self.approved;
        self.joining.retain(|id| !approved.contains(id));
    }

    /// One check: `near` are the slaves caught up with this master lately (on every shard),
    /// `ready` those of them that hold everything ever acknowledged. Returns the proposal to
    /// send now (the pending one again while its outcome is unknown).
    pub fn next(&mut self, near: &BTreeSet<i64>, ready: &BTreeSet<i64>) -> Option<Proposal> {
        self.joining = near
            .iter()
            .copied()
            .filter(|id| *id != self.me && !self.approved.contains(id))
            .collect();
        if let Some(pending) = &self.pending {
            return Some(pending.clone());
        }
        let mut desired: BTreeSet<i64> = self.approved.intersection(near).copied().collect();
        desired.extend(self.joining.intersection(ready).copied());
        desired.insert(self.me);
        if desired == self.approved {
            return None;
        }
        let proposal = Proposal {
            set: desired,
            based_on: self.approved_epoch,
        };
        self.pending = Some(proposal.clone());
        Some(proposal)
    }

    /// The controller's answer to `proposal`.
    pub fn answered(&mut self, proposal: &Proposal, answer: Answer) {
        match answer {
            Answer::Accepted { epoch } => {
                let set: Vec<i64> = proposal.set.iter().copied().collect();
                self.learn(&set, epoch);
            }
            Answer::Refused => {
                if self.pending.as_ref() == Some(proposal) {
                    self.pending = None;
                }
            }
            Answer::Unknown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[i64]) -> BTreeSet<i64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_slave_is_counted_before_it_is_proposed_and_proposed_once_it_holds_everything() {
        let mut upkeep = SyncStateUpkeep::new(1, &[1], 1);
        assert_eq!(upkeep.next(&set(&[2]), &set(&[])), None, "not ready yet");
        assert_eq!(upkeep.counted(), set(&[1, 2]), "counted while joining");
        let proposal = upkeep.next(&set(&[2]), &set(&[2])).unwrap();
        assert_eq!(
            proposal,
            Proposal {
                set: set(&[1, 2]),
                based_on: 1
            }
        );
        upkeep.answered(&proposal, Answer::Accepted { epoch: 2 });
        assert_eq!(upkeep.approved(), (&set(&[1, 2]), 2));
        assert_eq!(upkeep.pending(), None);
        assert_eq!(upkeep.next(&set(&[2]), &set(&[2])), None);
    }

    #[test]
    fn a_joining_slave_that_falls_behind_leaves_the_count_before_any_proposal() {
        let mut upkeep = SyncStateUpkeep::new(1, &[1], 1);
        assert_eq!(upkeep.next(&set(&[2]), &set(&[])), None);
        assert_eq!(upkeep.next(&set(&[]), &set(&[])), None);
        assert_eq!(upkeep.counted(), set(&[1]));
    }

    #[test]
    fn a_shrink_counts_the_member_until_the_controller_approved_it() {
        let mut upkeep = SyncStateUpkeep::new(1, &[1, 2], 3);
        let shrink = upkeep.next(&set(&[]), &set(&[])).unwrap();
        assert_eq!(shrink.set, set(&[1]));
        upkeep.answered(&shrink, Answer::Unknown);
        assert_eq!(upkeep.counted(), set(&[1, 2]), "the answer was lost");
        assert_eq!(
            upkeep.next(&set(&[]), &set(&[])),
            Some(shrink.clone()),
            "re-sent"
        );
        upkeep.answered(&shrink, Answer::Accepted { epoch: 4 });
        assert_eq!(upkeep.counted(), set(&[1]));
    }

    /// The gap this type closes: a lost expansion's member kept counting only until the next
    /// proposal recomputed the set without it, though the controller could still apply the
    /// lost one (and then elect that member, lacking what was acknowledged without it).
    #[test]
    fn a_lost_expansion_counts_until_resolved_even_when_its_member_falls_behind() {
        let mut upkeep = SyncStateUpkeep::new(1, &[1], 1);
        upkeep.next(&set(&[2]), &set(&[]));
        let grow = upkeep.next(&set(&[2]), &set(&[2])).unwrap();
        upkeep.answered(&grow, Answer::Unknown);
        // 2 falls behind: nothing new is proposed, the lost one is re-sent and still counts.
        assert_eq!(upkeep.next(&set(&[]), &set(&[])), Some(grow.clone()));
        assert_eq!(upkeep.counted(), set(&[1, 2]));
        // The controller refuses the copy in its log (2 is not alive): no copy can apply.
        upkeep.answered(&grow, Answer::Refused);
        assert_eq!(upkeep.counted(), set(&[1]));
        assert_eq!(upkeep.next(&set(&[]), &set(&[])), None);
    }

    #[test]
    fn a_moved_epoch_resolves_the_pending_proposal_only_through_the_learnt_set() {
        let mut upkeep = SyncStateUpkeep::new(1, &[1], 1);
        upkeep.next(&set(&[2]), &set(&[]));
        let grow = upkeep.next(&set(&[2]), &set(&[2])).unwrap();
        // A copy was applied, its answer lost; the resend finds the epoch moved.
        upkeep.answered(
            &grow,
            Answer::from_refusal(Some(code::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH)),
        );
        assert_eq!(
            upkeep.counted(),
            set(&[1, 2]),
            "unknown until the set is learnt"
        );
        upkeep.learn(&[1], 1);
        assert_eq!(upkeep.counted(), set(&[1, 2]), "stale news changes nothing");
        upkeep.learn(&[1, 2], 2);
        assert_eq!(upkeep.approved(), (&set(&[1, 2]), 2));
        assert_eq!(upkeep.pending(), None);
    }

    #[test]
    fn only_refusals_decided_in_the_controllers_log_are_definite() {
        for refused in [
            code::CONTROLLER_BROKER_NOT_ALIVE,
            code::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
            code::CONTROLLER_INVALID_REPLICAS,
        ] {
            assert_eq!(Answer::from_refusal(Some(refused)), Answer::Refused);
        }
        for unknown in [
            None,
            Some(code::CONTROLLER_NOT_LEADER),
            Some(code::CONTROLLER_JRAFT_INTERNAL_ERROR),
            Some(code::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH),
            Some(code::CONTROLLER_FENCED_MASTER_EPOCH),
        ] {
            assert_eq!(Answer::from_refusal(unknown), Answer::Unknown);
        }
    }
}
