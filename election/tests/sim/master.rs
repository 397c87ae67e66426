//! A modelled master: the broker's sync-state-set rule (`rmq_election::SyncStateUpkeep` and
//! `CountingMarks`, the very types the broker runs) over one log, with what the broker's
//! shards keep around it: what each replica reported holding, when it last caught up
//! (`rmq_election::CatchUp`, the broker's rule too: it reported at least our end as of its
//! previous report), and the acknowledgement rule over the counted replicas.

use std::collections::{BTreeMap, BTreeSet};

use rmq_election::{
    BrokerId, CatchUp, CountingMarks, ProposalAnswer, SyncStateProposal, SyncStateUpkeep,
};

/// A replica is near while it caught up within this long (`haMaxTimeSlaveNotCatchup`).
pub const NEAR_MS: u64 = 600;

/// A rule of the upkeep broken on purpose by the caller (the simulation's mutations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// Propose a replica as soon as it is near, without waiting for its counting mark.
    ProposeOnceCaughtUp,
    /// Treat an unknown answer as a refusal: the pending proposal's members stop counting.
    ForgetPendingOnUnknown,
}

#[derive(Clone, Copy, Debug, Default)]
struct Report {
    held: u64,
    catch_up: CatchUp<u64, u64>,
}

#[derive(Clone, Debug)]
pub struct MasterSyncView {
    master_id: BrokerId,
    master_epoch: u32,
    log_end: u64,
    upkeep: SyncStateUpkeep,
    marks: CountingMarks<BrokerId, u64>,
    reports: BTreeMap<BrokerId, Report>,
    /// The proposal sent last, not answered yet (the next check takes it as unknown).
    awaiting: Option<SyncStateProposal>,
}

impl MasterSyncView {
    /// Starts a mastership: the controller elected `master_id` at `master_epoch` with this
    /// SSS (normally {master}); its log ends at `log_end`.
    pub fn new(
        master_id: BrokerId,
        master_epoch: u32,
        approved: &BTreeSet<BrokerId>,
        approved_epoch: u32,
        log_end: u64,
    ) -> Self {
        let mut view = Self {
            master_id,
            master_epoch,
            log_end,
            upkeep: SyncStateUpkeep::new(master_id, approved, approved_epoch),
            marks: CountingMarks::default(),
            reports: BTreeMap::new(),
            awaiting: None,
        };
        view.recount();
        view
    }

    pub fn master_epoch(&self) -> u32 {
        self.master_epoch
    }

    pub fn upkeep(&self) -> &SyncStateUpkeep {
        &self.upkeep
    }

    /// The counting marks follow the counted set before any acknowledgement uses it (the
    /// broker's shards do this when the set reaches them).
    fn recount(&mut self) {
        let others: Vec<BrokerId> = self
            .upkeep
            .counted()
            .into_iter()
            .filter(|id| *id != self.master_id)
            .collect();
        self.marks.set_counted(&others, self.log_end);
    }

    /// The master's own log grew to `end`.
    pub fn record_local(&mut self, end: u64) {
        self.log_end = self.log_end.max(end);
    }

    /// Replica `id` reported holding the log up to `end` at `now_ms`.
    pub fn record_report(&mut self, id: BrokerId, end: u64, now_ms: u64) {
        let log_end = self.log_end;
        let report = self.reports.entry(id).or_default();
        report.held = report.held.max(end);
        report.catch_up.report(end, log_end, now_ms);
    }

    pub fn held(&self, id: BrokerId) -> u64 {
        if id == self.master_id {
            return self.log_end;
        }
        self.reports.get(&id).map_or(0, |r| r.held)
    }

    /// The end up to which sends may be acknowledged, counting `counted`:
    /// `all_ack_in_sync_state_set`, what every one holds; otherwise what at least
    /// `min_in_sync_replicas` of them hold (the master included).
    pub fn ack_limit_of(
        &self,
        counted: &BTreeSet<BrokerId>,
        all_ack_in_sync_state_set: bool,
        min_in_sync_replicas: usize,
    ) -> u64 {
        let mut ends: Vec<u64> = counted.iter().map(|id| self.held(*id)).collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        assert!(!ends.is_empty(), "the master is always counted");
        if all_ack_in_sync_state_set {
            return *ends.last().expect("not empty");
        }
        let needed = min_in_sync_replicas.clamp(1, ends.len());
        ends[needed - 1]
    }

    pub fn ack_limit(&self, all_ack_in_sync_state_set: bool, min_in_sync_replicas: usize) -> u64 {
        let counted = self.upkeep.counted();
        self.ack_limit_of(&counted, all_ack_in_sync_state_set, min_in_sync_replicas)
    }

    /// One `checkSyncStateSetPeriod` at `now_ms`: a proposal sent before and still not
    /// answered is taken as unknown (the call timed out), then the upkeep decides what to
    /// send (the pending proposal again, or a new one).
    pub fn check(&mut self, now_ms: u64, broken: Option<Broken>) -> Option<SyncStateProposal> {
        if let Some(lost) = self.awaiting.take() {
            self.answered(&lost, ProposalAnswer::Unknown, broken);
        }
        let near: BTreeSet<BrokerId> = self
            .reports
            .iter()
            .filter(|(_, r)| r.catch_up.is_near(now_ms, NEAR_MS))
            .map(|(id, _)| *id)
            .collect();
        let ready: BTreeSet<BrokerId> = match broken {
            Some(Broken::ProposeOnceCaughtUp) => near.clone(),
            _ => near
                .iter()
                .copied()
                .filter(|id| {
                    let held = self.reports.get(id).map(|r| r.held);
                    self.marks.holds_everything_acknowledged(*id, held)
                })
                .collect(),
        };
        let proposal = self.upkeep.next(&near, &ready);
        self.recount();
        self.awaiting.clone_from(&proposal);
        proposal
    }

    /// The controller answered (a copy of) `proposal`.
    pub fn answered(
        &mut self,
        proposal: &SyncStateProposal,
        answer: ProposalAnswer,
        broken: Option<Broken>,
    ) {
        if self.awaiting.as_ref() == Some(proposal) {
            self.awaiting = None;
        }
        let answer = match (answer, broken) {
            (ProposalAnswer::Unknown, Some(Broken::ForgetPendingOnUnknown)) => {
                ProposalAnswer::Refused
            }
            (answer, _) => answer,
        };
        self.upkeep.answered(proposal, answer);
        self.recount();
    }

    /// The controller's SSS at `epoch` (a replica-info answer or a notification of this
    /// mastership).
    pub fn learn(&mut self, sync_state_set: &BTreeSet<BrokerId>, epoch: u32) {
        assert!(
            epoch <= self.upkeep.approved().1 || sync_state_set.contains(&self.master_id),
            "a newer SSS of this master epoch contains the master"
        );
        self.upkeep.learn(sync_state_set, epoch);
        self.recount();
    }
}
