//! The master's sync-state-set upkeep: `rmq_election::SyncStateUpkeep` (which replicas its
//! acknowledgements count, what it proposes, when a member joins or leaves the count: the
//! rule and its docs live there, and the election simulation drives and checks that very
//! type) in the controller protocol's integer types (broker ids i64, epochs i32).
//!
//! What the broker supplies: `near` (slaves caught up lately on every shard) and `ready`
//! (those that hold their counting mark on every shard, `ShardReplica::
//! holds_everything_acknowledged`, which keeps its marks in `rmq_election::CountingMarks`).

use std::collections::BTreeSet;

use rmq_election::{BrokerId, RefusalCode, SyncStateProposal};

pub use rmq_election::ProposalAnswer as Answer;

use super::calls::CallError;

/// Controller ids start at 1: an id that is no `BrokerId` names no replica.
fn id_of(id: i64) -> Option<BrokerId> {
    BrokerId::try_from(id).ok()
}

fn ids_of<'a>(ids: impl IntoIterator<Item = &'a i64>) -> BTreeSet<BrokerId> {
    ids.into_iter().copied().filter_map(id_of).collect()
}

/// The controller's answer to an ALTER_SYNC_STATE_SET call (`Ok`: the new SSS epoch).
pub fn answer_of(result: &Result<i32, CallError>) -> Answer {
    match result {
        Ok(epoch) => match u32::try_from(*epoch) {
            Ok(epoch) => Answer::Accepted { epoch },
            // Not an epoch the controller hands out: only the learnt set will tell.
            Err(_) => Answer::Unknown,
        },
        Err(error) => Answer::from_refusal(error.code().and_then(RefusalCode::from_response_code)),
    }
}

/// A proposal as the wire carries it: the new set and the SSS epoch it is based on.
pub fn wire(proposal: &SyncStateProposal) -> (BTreeSet<i64>, i32) {
    let set = proposal
        .new_set
        .iter()
        .filter_map(|id| i64::try_from(*id).ok())
        .collect();
    let based_on = i32::try_from(proposal.based_on_epoch).unwrap_or(i32::MAX);
    (set, based_on)
}

/// One mastership's upkeep (see `rmq_election::SyncStateUpkeep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStateUpkeep(rmq_election::SyncStateUpkeep);

impl SyncStateUpkeep {
    /// A new mastership of `me` with the controller's set `approved` at `approved_epoch`.
    pub fn new(me: i64, approved: &[i64], approved_epoch: i32) -> Self {
        let me = id_of(me).unwrap_or_default();
        let epoch = u32::try_from(approved_epoch).unwrap_or(0);
        Self(rmq_election::SyncStateUpkeep::new(
            me,
            &ids_of(approved),
            epoch,
        ))
    }

    /// Every replica whose holdings limit acknowledgement (this master included).
    pub fn counted(&self) -> Vec<i64> {
        self.0
            .counted()
            .into_iter()
            .filter_map(|id| i64::try_from(id).ok())
            .collect()
    }

    /// The controller's set at `epoch` (an answer, a GET_REPLICA_INFO, a notification of this
    /// mastership).
    pub fn learn(&mut self, set: &[i64], epoch: i32) {
        let Ok(epoch) = u32::try_from(epoch) else {
            return;
        };
        let set = ids_of(set);
        if !self.0.learn(&set, epoch) && epoch > self.0.approved().1 {
            // The controller's set of this mastership always holds its master.
            tracing::error!(?set, epoch, "ignored a sync-state set without its master");
        }
    }

    /// One check (see `rmq_election::SyncStateUpkeep::next`).
    pub fn next(
        &mut self,
        near: &BTreeSet<i64>,
        ready: &BTreeSet<i64>,
    ) -> Option<SyncStateProposal> {
        self.0.next(&ids_of(near), &ids_of(ready))
    }

    /// The controller's answer to `proposal`.
    pub fn answered(&mut self, proposal: &SyncStateProposal, answer: Answer) {
        self.0.answered(proposal, answer);
    }
}

#[cfg(test)]
mod tests {
    use rmq_core::remoting::controller::controller_response_code as code;

    use super::*;

    fn refused(response_code: i32) -> Result<i32, CallError> {
        Err(CallError::Refused {
            addr: "controller".into(),
            code: response_code,
            remark: String::new(),
            known_leader: None,
        })
    }

    #[test]
    fn wire_answers_map_onto_the_upkeeps_answers() {
        assert_eq!(answer_of(&Ok(4)), Answer::Accepted { epoch: 4 });
        assert_eq!(answer_of(&Ok(-1)), Answer::Unknown);
        for definite in [
            code::CONTROLLER_BROKER_NOT_ALIVE,
            code::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
            code::CONTROLLER_INVALID_REPLICAS,
        ] {
            assert_eq!(answer_of(&refused(definite)), Answer::Refused);
        }
        for unknown in [
            code::CONTROLLER_NOT_LEADER,
            code::CONTROLLER_JRAFT_INTERNAL_ERROR,
            code::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH,
            code::CONTROLLER_FENCED_MASTER_EPOCH,
            code::CONTROLLER_INVALID_MASTER,
        ] {
            assert_eq!(answer_of(&refused(unknown)), Answer::Unknown);
        }
    }

    #[test]
    fn a_lost_expansion_keeps_counting_in_wire_types() {
        let mut upkeep = SyncStateUpkeep::new(1, &[1], 1);
        let near = BTreeSet::from([2]);
        assert_eq!(upkeep.next(&near, &BTreeSet::new()), None);
        assert_eq!(upkeep.counted(), vec![1, 2], "counted while joining");
        let grow = upkeep.next(&near, &near).expect("ready: proposed");
        assert_eq!(wire(&grow), (BTreeSet::from([1, 2]), 1));
        upkeep.answered(&grow, answer_of(&refused(code::CONTROLLER_NOT_LEADER)));
        assert_eq!(upkeep.next(&BTreeSet::new(), &BTreeSet::new()), Some(grow));
        assert_eq!(upkeep.counted(), vec![1, 2]);
        upkeep.learn(&[1, 2], 2);
        assert_eq!(upkeep.next(&near, &near), None);
    }
}
