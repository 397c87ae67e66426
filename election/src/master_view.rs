//! The master's side of the fencing rule: which offset it may acknowledge.
//!
//! A master counts, for `allAckInSyncStateSet=true`, every replica of the approved SSS
//! *and* every replica named in a proposal it sent that the controller could still apply.
//! The controller applies an `AlterSyncStateSet` only while the SSS epoch it names is
//! current, so a proposal based on an epoch older than the newest one the master has learnt
//! can never be applied and stops counting. Until then it counts, whether its answer was
//! lost, refused or is still on the way: if a master dropped a replica from its count before
//! the controller approved the shrink, the controller could still elect that replica,
//! which lacks what was acknowledged without it (apache/rocketmq #5663); if it counted a
//! replica only once an expansion is approved, an approved expansion whose answer was lost
//! would let it acknowledge without a member of the controller's SSS. A replica is proposed
//! for the SSS only once it holds everything that may have been acknowledged.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::BrokerId;

/// An `AlterSyncStateSet` the master sent: `new_set`, based on SSS epoch `based_on_epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStateProposal {
    pub new_set: BTreeSet<BrokerId>,
    pub based_on_epoch: u32,
}

/// The master's view of its SSS and of what each replica holds, for one master epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterSyncView {
    master_id: BrokerId,
    master_epoch: u32,
    approved: BTreeSet<BrokerId>,
    approved_epoch: u32,
    proposals: Vec<SyncStateProposal>,
    /// The end of what each replica acknowledged holding (the master's own: its log end).
    held: BTreeMap<BrokerId, u64>,
    /// The largest end `acknowledgeable_end` ever returned: sends below it may have been
    /// acknowledged, so a replica joins the count only once it holds this much.
    acknowledged_end: u64,
}

/// At most this many proposals are outstanding (each waits for the SSS epoch to move).
const PROPOSALS_MAX: usize = 8;

impl MasterSyncView {
    /// Starts a mastership: the controller elected `master_id` at `master_epoch` with this
    /// SSS (normally {master}). Its whole log may have been acknowledged by earlier masters,
    /// so a replica joins the count only once it holds all of it (a fresh view that took
    /// nothing as acknowledged let a lagging replica into the SSS, which the simulation
    /// caught).
    pub fn new(
        master_id: BrokerId,
        master_epoch: u32,
        approved: BTreeSet<BrokerId>,
        approved_epoch: u32,
        log_end: u64,
    ) -> Self {
        assert!(
            approved.contains(&master_id),
            "the SSS of a new master contains it"
        );
        let held = BTreeMap::from([(master_id, log_end)]);
        Self {
            master_id,
            master_epoch,
            approved,
            approved_epoch,
            proposals: Vec::new(),
            held,
            acknowledged_end: log_end,
        }
    }

    pub fn master_epoch(&self) -> u32 {
        self.master_epoch
    }

    pub fn approved(&self) -> (&BTreeSet<BrokerId>, u32) {
        (&self.approved, self.approved_epoch)
    }

    /// The proposals that still count (sent, based on the newest approved SSS epoch).
    pub fn proposals(&self) -> &[SyncStateProposal] {
        &self.proposals
    }

    /// The replicas whose holdings limit acknowledgement: approved SSS plus live proposals.
    pub fn counted(&self) -> BTreeSet<BrokerId> {
        let mut counted = self.approved.clone();
        for proposal in &self.proposals {
            counted.extend(proposal.new_set.iter().copied());
        }
        counted
    }

    /// `broker_id` holds the log up to `end` (a replica's ack, or the master's own append).
    /// Holdings only grow within one mastership: a follower truncates only for a newer one.
    pub fn record_held(&mut self, broker_id: BrokerId, end: u64) {
        let held = self.held.entry(broker_id).or_insert(0);
        *held = (*held).max(end);
    }

    /// The master's own log grew to `end`.
    pub fn record_local(&mut self, end: u64) {
        self.record_held(self.master_id, end);
    }

    pub fn held(&self, broker_id: BrokerId) -> u64 {
        self.held.get(&broker_id).copied().unwrap_or(0)
    }

    /// The end offset up to which sends may be acknowledged now; the caller acknowledges
    /// only below it (and the view remembers it for `propose`). `all_ack_in_sync_state_set`:
    /// what every counted replica holds. Otherwise what at least `min_in_sync_replicas`
    /// counted replicas hold (the master included): faster, and can lose acknowledged
    /// messages when the master dies.
    pub fn acknowledgeable_end(
        &mut self,
        all_ack_in_sync_state_set: bool,
        min_in_sync_replicas: usize,
    ) -> u64 {
        let end = self.ack_limit(all_ack_in_sync_state_set, min_in_sync_replicas);
        self.acknowledged_end = self.acknowledged_end.max(end);
        end
    }

    /// The caller acknowledged up to `end` by a rule of its own (a policy this view does not
    /// compute); `propose` must know it like any other acknowledgement.
    pub fn record_acknowledged(&mut self, end: u64) {
        self.acknowledged_end = self.acknowledged_end.max(end);
    }

    /// What `acknowledgeable_end` would return, without recording it.
    pub fn ack_limit(&self, all_ack_in_sync_state_set: bool, min_in_sync_replicas: usize) -> u64 {
        let mut ends: Vec<u64> = self.counted().iter().map(|id| self.held(*id)).collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        assert!(!ends.is_empty(), "the master is always counted");
        if all_ack_in_sync_state_set {
            return *ends.last().expect("not empty");
        }
        let needed = min_in_sync_replicas.clamp(1, ends.len());
        ends[needed - 1]
    }

    /// Records and returns a proposal to send, or None when it would be unsafe or useless:
    /// it drops the master, adds a replica that lacks what may have been acknowledged (below
    /// the largest `acknowledgeable_end` so far), equals the approved set, or too many are
    /// outstanding.
    pub fn propose(&mut self, new_set: BTreeSet<BrokerId>) -> Option<SyncStateProposal> {
        if !new_set.contains(&self.master_id) || new_set == self.approved {
            return None;
        }
        let counted = self.counted();
        if new_set
            .iter()
            .any(|id| !counted.contains(id) && self.held(*id) < self.acknowledged_end)
        {
            return None;
        }
        let proposal = SyncStateProposal {
            new_set,
            based_on_epoch: self.approved_epoch,
        };
        if !self.proposals.contains(&proposal) {
            if self.proposals.len() >= PROPOSALS_MAX {
                return None;
            }
            self.proposals.push(proposal.clone());
        }
        Some(proposal)
    }

    /// The controller's SSS at `epoch` (an `AlterSyncStateSet` answer or a GET_REPLICA_INFO
    /// of this master epoch). Older news is ignored; proposals it outdated stop counting.
    pub fn learn(&mut self, sync_state_set: &BTreeSet<BrokerId>, epoch: u32) {
        if epoch <= self.approved_epoch {
            return;
        }
        assert!(
            sync_state_set.contains(&self.master_id),
            "an SSS of this master epoch contains the master"
        );
        self.approved = sync_state_set.clone();
        self.approved_epoch = epoch;
        self.proposals
            .retain(|proposal| proposal.based_on_epoch >= epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[BrokerId]) -> BTreeSet<BrokerId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn all_ack_waits_for_every_member_and_the_other_policy_does_not() {
        let mut view = MasterSyncView::new(1, 3, set(&[1, 2]), 5, 100);
        view.record_held(2, 60);
        assert_eq!(view.ack_limit(true, 2), 60);
        assert_eq!(view.ack_limit(false, 1), 100);
        assert_eq!(view.ack_limit(false, 2), 60);
    }

    #[test]
    fn a_shrink_counts_the_dropped_member_until_approved() {
        let mut view = MasterSyncView::new(1, 3, set(&[1, 2]), 5, 100);
        view.record_held(2, 40);
        assert!(view.propose(set(&[1])).is_some());
        assert_eq!(view.acknowledgeable_end(true, 0), 40, "not approved yet");
        view.learn(&set(&[1]), 6);
        assert_eq!(view.ack_limit(true, 0), 100);
    }

    #[test]
    fn an_expansion_counts_the_new_member_before_its_answer_arrives() {
        let mut view = MasterSyncView::new(1, 3, set(&[1]), 5, 100);
        view.record_held(2, 100);
        assert!(view.propose(set(&[1, 2])).is_some());
        view.record_local(150);
        assert_eq!(
            view.ack_limit(true, 0),
            100,
            "2 may already be in the controller's SSS"
        );
        // A later shrink based on a newer epoch outdates the proposal.
        view.learn(&set(&[1]), 7);
        assert_eq!(view.ack_limit(true, 0), 150);
    }

    #[test]
    fn a_replica_that_lacks_what_may_have_been_acknowledged_is_not_proposed() {
        let mut view = MasterSyncView::new(1, 3, set(&[1]), 5, 100);
        view.record_held(2, 99);
        assert_eq!(
            view.propose(set(&[1, 2])),
            None,
            "earlier masters may have acknowledged offset 99"
        );
        view.record_held(2, 100);
        assert_eq!(
            view.propose(set(&[1, 2])),
            Some(SyncStateProposal {
                new_set: set(&[1, 2]),
                based_on_epoch: 5
            })
        );

        let mut view = MasterSyncView::new(1, 3, set(&[1]), 5, 100);
        view.record_held(2, 100);
        view.record_local(130);
        assert_eq!(view.acknowledgeable_end(true, 0), 130);
        view.record_local(160);
        assert_eq!(
            view.propose(set(&[1, 2])),
            None,
            "offset 99 may have been acknowledged"
        );
        assert_eq!(view.propose(set(&[2])), None, "never without the master");
        view.record_held(2, 130);
        assert!(
            view.propose(set(&[1, 2])).is_some(),
            "what is not acknowledged yet will wait for 2"
        );
        assert_eq!(view.acknowledgeable_end(true, 0), 130);
    }

    #[test]
    fn stale_news_is_ignored() {
        let mut view = MasterSyncView::new(1, 3, set(&[1, 2]), 5, 100);
        view.learn(&set(&[1]), 4);
        assert_eq!(view.approved(), (&set(&[1, 2]), 5));
    }
}
