//! The master's sync-state-set (SSS) upkeep, as one pure type: which replicas its
//! acknowledgements must wait for, and what it asks the controller to change (RocketMQ 5's
//! `AutoSwitchHAService` shrink/expand, with the fencing rule that makes
//! `allAckInSyncStateSet=true` safe). The broker (`controller_client`) runs it; the election
//! simulation (`tests/simulation.rs`) drives the same type and checks its invariants.
//!
//! A master counts (every counted replica must hold a record before a send is acknowledged):
//! - the **approved** set: the controller's SSS as last learnt, at its epoch;
//! - the **pending** proposal: one `AlterSyncStateSet` whose outcome is unknown (no answer,
//!   a lost leader, a quorum timeout, a fenced SSS epoch). The controller may still apply
//!   it, so its members count until a definite answer or a newer epoch resolves it. It is
//!   re-sent as is (same set, same base epoch) until then: the controller applies at most one
//!   copy (the first moves the epoch the others name). A definite refusal resolves it only
//!   while no copy's outcome is unknown: a copy whose call timed out may still be on its way
//!   (the broker calls again on a new connection) and reach the controller after a later
//!   copy was refused, when the refusal's reason is gone (the simulation found this: a
//!   member not alive for one copy, alive again for the overtaken one). Such a proposal keeps
//!   counting and is re-sent until the controller applies it or a newer epoch is learnt;
//!   the price is liveness: while a member it adds stays dead, acknowledgements wait;
//! - the **joining** replicas: near the master's end but not yet proposed. Counting them
//!   first makes every later acknowledgement wait for them. A replica's *counting mark* is
//!   the master's log end when it started being counted ([`CountingMarks`]): it may lack
//!   only what was acknowledged below it, so once it holds its mark (on every shard, in the
//!   broker) it holds everything ever acknowledged and may be proposed.
//!
//! A replica is *near* while it caught up with the master lately ([`CatchUp`], RocketMQ's
//! `lastCatchUpTimeMs` rule), within `haMaxTimeSlaveNotCatchup`.
//!
//! A member leaves the count only when the controller approved a set without it (a shrink
//! takes effect after approval), or, for a joining replica, when it falls behind before
//! being proposed (the controller never heard of it). Dropping a member before approval let
//! the controller elect a replica lacking acknowledged messages (apache/rocketmq #5663);
//! counting an expansion only once its answer arrived, or proposing a replica that merely
//! caught up once, did the same (both caught by the simulation's mutations).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Sub;

use serde::{Deserialize, Serialize};

use crate::{BrokerId, RefusalCode};

/// One `AlterSyncStateSet`: `new_set`, based on the approved set's epoch `based_on_epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStateProposal {
    pub new_set: BTreeSet<BrokerId>,
    pub based_on_epoch: u32,
}

/// How the controller answered one copy of a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalAnswer {
    /// Applied: the proposed set is the SSS at `epoch`.
    Accepted { epoch: u32 },
    /// A refusal the controller decided in its log: this copy can never apply.
    Refused,
    /// No answer, not the leader, a quorum timeout, or a moved epoch (only the controller's
    /// set at the new epoch tells whether this proposal moved it).
    Unknown,
}

impl ProposalAnswer {
    /// The answer for a refused call: `code` is the controller's refusal, None when the
    /// call got no answer or one that is no refusal of the proposal itself.
    ///
    /// A refusal because this broker is no longer the master (`InvalidMaster`,
    /// `FencedMasterEpoch`) resolves nothing: the mastership is over, and a deposed master
    /// that stopped counting the pending proposal's members would acknowledge without
    /// replicas the controller may have approved (the simulation found this: an approved
    /// expansion's answer lost, the master deposed, `InvalidMaster` on the re-send, and the
    /// old master acknowledging alone). It keeps counting until it learns the new master.
    pub fn from_refusal(code: Option<RefusalCode>) -> Self {
        match code {
            Some(
                RefusalCode::InvalidReplicas
                | RefusalCode::InvalidRequest
                | RefusalCode::BrokerNotAlive
                | RefusalCode::BrokerMetadataNotExist
                | RefusalCode::AlterSyncStateSetFailed,
            ) => Self::Refused,
            _ => Self::Unknown,
        }
    }
}

/// One mastership's view of its SSS (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStateUpkeep {
    me: BrokerId,
    approved: BTreeSet<BrokerId>,
    approved_epoch: u32,
    pending: Option<SyncStateProposal>,
    /// A copy of the pending proposal had an unknown outcome: it may still reach the
    /// controller, so no refusal of another copy resolves the proposal.
    pending_in_doubt: bool,
    joining: BTreeSet<BrokerId>,
}

impl SyncStateUpkeep {
    /// A new mastership of `me` with the controller's set `approved` at `approved_epoch`.
    /// The controller's set of a master's own epoch holds it; a stale read cannot take it
    /// out of the count.
    pub fn new(me: BrokerId, approved: &BTreeSet<BrokerId>, approved_epoch: u32) -> Self {
        let mut approved = approved.clone();
        approved.insert(me);
        let upkeep = Self {
            me,
            approved,
            approved_epoch,
            pending: None,
            pending_in_doubt: false,
            joining: BTreeSet::new(),
        };
        upkeep.assert_invariants();
        upkeep
    }

    pub fn approved(&self) -> (&BTreeSet<BrokerId>, u32) {
        (&self.approved, self.approved_epoch)
    }

    pub fn pending(&self) -> Option<&SyncStateProposal> {
        self.pending.as_ref()
    }

    /// Every replica whose holdings limit acknowledgement (this master included).
    pub fn counted(&self) -> BTreeSet<BrokerId> {
        let mut counted = self.approved.clone();
        if let Some(pending) = &self.pending {
            counted.extend(pending.new_set.iter().copied());
        }
        counted.extend(self.joining.iter().copied());
        counted
    }

    /// The controller's set at `epoch` (an answer, a replica-info query, a notification of
    /// this mastership). Older news is ignored, and so is a set without this master (never
    /// the controller's set of this mastership); returns whether it was taken. A proposal
    /// based on an older epoch can never apply any more and stops counting.
    pub fn learn(&mut self, set: &BTreeSet<BrokerId>, epoch: u32) -> bool {
        if epoch <= self.approved_epoch || !set.contains(&self.me) {
            return false;
        }
        self.approved = set.clone();
        self.approved_epoch = epoch;
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.based_on_epoch < epoch)
        {
            self.pending = None;
            self.pending_in_doubt = false;
        }
        let approved = &self.approved;
        self.joining.retain(|id| !approved.contains(id));
        self.assert_invariants();
        true
    }

    /// One check: `near` are the replicas caught up with this master lately, `ready` those
    /// of them that hold their counting mark (everything ever acknowledged). Returns the
    /// proposal to send now (the pending one again while its outcome is unknown).
    pub fn next(
        &mut self,
        near: &BTreeSet<BrokerId>,
        ready: &BTreeSet<BrokerId>,
    ) -> Option<SyncStateProposal> {
        self.joining = near
            .iter()
            .copied()
            .filter(|id| *id != self.me && !self.approved.contains(id))
            .collect();
        if let Some(pending) = &self.pending {
            return Some(pending.clone());
        }
        let mut desired: BTreeSet<BrokerId> = self.approved.intersection(near).copied().collect();
        desired.extend(self.joining.intersection(ready).copied());
        desired.insert(self.me);
        if desired == self.approved {
            return None;
        }
        let proposal = SyncStateProposal {
            new_set: desired,
            based_on_epoch: self.approved_epoch,
        };
        self.pending = Some(proposal.clone());
        self.assert_invariants();
        Some(proposal)
    }

    /// The controller's answer to (a copy of) `proposal`.
    pub fn answered(&mut self, proposal: &SyncStateProposal, answer: ProposalAnswer) {
        match answer {
            ProposalAnswer::Accepted { epoch } => {
                self.learn(&proposal.new_set, epoch);
            }
            ProposalAnswer::Refused => {
                if self.pending.as_ref() == Some(proposal) && !self.pending_in_doubt {
                    self.pending = None;
                }
            }
            ProposalAnswer::Unknown => {
                if self.pending.as_ref() == Some(proposal) {
                    self.pending_in_doubt = true;
                }
            }
        }
        self.assert_invariants();
    }

    fn assert_invariants(&self) {
        assert!(self.approved.contains(&self.me), "the master is approved");
        assert!(
            !self.joining.contains(&self.me) && self.joining.is_disjoint(&self.approved),
            "joining replicas are neither the master nor approved"
        );
        assert!(
            self.pending.is_some() || !self.pending_in_doubt,
            "only a pending proposal is in doubt"
        );
        if let Some(pending) = &self.pending {
            assert!(
                pending.new_set.contains(&self.me),
                "a proposal keeps the master"
            );
            assert_eq!(
                pending.based_on_epoch, self.approved_epoch,
                "a pending proposal names the approved epoch"
            );
        }
    }
}

/// Each counted replica's counting mark: the master's log end (of one log, a shard's in the
/// broker) when the replica started being counted. Every acknowledgement at or above the
/// mark waited for the replica, so once it holds its mark it holds everything this log ever
/// acknowledged in this mastership (and the master held everything acknowledged before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountingMarks<Id, Offset> {
    marks: BTreeMap<Id, Offset>,
}

impl<Id, Offset> Default for CountingMarks<Id, Offset> {
    fn default() -> Self {
        Self {
            marks: BTreeMap::new(),
        }
    }
}

impl<Id: Ord + Copy, Offset: Ord + Copy> CountingMarks<Id, Offset> {
    /// The replicas counted from now on are `counted` (the master itself left out) while the
    /// log ends at `log_end`: a replica counted already keeps its mark, a new one is marked
    /// at `log_end`, one no longer counted loses its mark. Call it before any acknowledgement
    /// is decided with the new set.
    pub fn set_counted<'a>(&mut self, counted: impl IntoIterator<Item = &'a Id>, log_end: Offset)
    where
        Id: 'a,
    {
        let counted: BTreeSet<Id> = counted.into_iter().copied().collect();
        self.marks.retain(|id, _| counted.contains(id));
        for id in counted {
            self.marks.entry(id).or_insert(log_end);
        }
    }

    /// A new mastership: marks of an earlier one would let in a replica that lacks what was
    /// acknowledged since.
    pub fn forget(&mut self) {
        self.marks.clear();
    }

    pub fn mark(&self, id: Id) -> Option<Offset> {
        self.marks.get(&id).copied()
    }

    /// True when `id` is counted and holds its mark (`held`: what it reported holding).
    pub fn holds_everything_acknowledged(&self, id: Id, held: Option<Offset>) -> bool {
        self.mark(id)
            .zip(held)
            .is_some_and(|(mark, held)| held >= mark)
    }
}

/// When a replica last caught up with the master (RocketMQ's `lastCatchUpTimeMs` against
/// `lastMasterMaxOffset`), the one rule for "this replica may be proposed for the SSS once it
/// holds its counting mark": a report caught up when it holds at least the master's log end
/// as of the previous report (or, the first report, the log end now). Under steady load a
/// replica never holds the very end, but one that keeps reaching where the master was is
/// caught up; one that falls further behind at every report never is.
///
/// `Offset` and `Time` are the caller's (the broker: byte offsets and `Instant`s; the
/// simulation: its own log ends and milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CatchUp<Offset, Time> {
    caught_up_at: Option<Time>,
    /// The master's log end at the previous report (None: no report yet).
    end_at_last_report: Option<Offset>,
}

impl<Offset, Time> Default for CatchUp<Offset, Time> {
    fn default() -> Self {
        Self {
            caught_up_at: None,
            end_at_last_report: None,
        }
    }
}

impl<Offset: Ord + Copy, Time: Copy> CatchUp<Offset, Time> {
    /// The replica reported holding everything before `held` at `now`, while the master's log
    /// ends at `master_end`. Returns whether this report caught up.
    pub fn report(&mut self, held: Offset, master_end: Offset, now: Time) -> bool {
        let target = self
            .end_at_last_report
            .map_or(master_end, |previous| previous.min(master_end));
        let caught_up = held >= target;
        if caught_up {
            self.caught_up_at = Some(now);
        }
        self.end_at_last_report = Some(master_end);
        caught_up
    }

    /// When the replica last caught up (None: never).
    pub fn caught_up_at(&self) -> Option<Time> {
        self.caught_up_at
    }

    /// True while the replica caught up less than `within` before `now`
    /// (`haMaxTimeSlaveNotCatchup`): it is *near* and may join the count (and, holding its
    /// counting mark, be proposed).
    pub fn is_near<Span: Ord>(&self, now: Time, within: Span) -> bool
    where
        Time: Ord + Sub<Output = Span>,
    {
        self.caught_up_at
            .is_some_and(|at| now <= at || now - at < within)
    }
}

#[cfg(test)]
mod tests;
