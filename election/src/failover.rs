//! Sync-state-set changes and elections: the commands that decide who may acknowledge.

use std::collections::BTreeSet;

use crate::elect::elect;
use crate::group::BrokerGroup;
use crate::outcome::{Election, MasterInfo, Refusal, RefusalCode};
use crate::{BrokerId, Command, ElectionState, Outcome};

fn refuse(code: RefusalCode, remark: String) -> Outcome {
    Outcome::Refused(Refusal::new(code, remark))
}

impl ElectionState {
    /// Fencing: only the current master, naming the current master epoch and SSS epoch, may
    /// change the SSS; the new set keeps the master and holds only live replicas.
    pub(crate) fn alter_sync_state_set(
        &mut self,
        now_ms: u64,
        broker_name: &str,
        master_broker_id: BrokerId,
        master_epoch: u32,
        new_set: &BTreeSet<BrokerId>,
        sync_state_set_epoch: u32,
    ) -> Outcome {
        let Some(group) = self.groups.get_mut(broker_name) else {
            return refuse(
                RefusalCode::AlterSyncStateSetFailed,
                format!("broker group {broker_name} does not exist"),
            );
        };
        if group.master != Some(master_broker_id) {
            let remark = format!(
                "the master of {broker_name} is {:?}, not {master_broker_id}",
                group.master
            );
            return refuse(RefusalCode::InvalidMaster, remark);
        }
        if master_epoch != group.master_epoch {
            let remark = format!(
                "master epoch of {broker_name} is {}, not {master_epoch}",
                group.master_epoch
            );
            return refuse(RefusalCode::FencedMasterEpoch, remark);
        }
        if sync_state_set_epoch != group.sync_state_set_epoch {
            let remark = format!(
                "SSS epoch of {broker_name} is {}, not {sync_state_set_epoch}",
                group.sync_state_set_epoch
            );
            return refuse(RefusalCode::FencedSyncStateSetEpoch, remark);
        }
        if *new_set == group.sync_state_set {
            return refuse(
                RefusalCode::AlterSyncStateSetFailed,
                "the new SSS equals the current one".to_owned(),
            );
        }
        if let Some(id) = new_set.iter().find(|id| !group.replicas.contains_key(id)) {
            return refuse(
                RefusalCode::InvalidReplicas,
                format!("replica {id} of {broker_name} does not exist"),
            );
        }
        if let Some(id) = new_set.iter().find(|id| !group.is_alive(now_ms, **id)) {
            return refuse(
                RefusalCode::BrokerNotAlive,
                format!("replica {id} of {broker_name} is not alive"),
            );
        }
        if !new_set.contains(&master_broker_id) {
            return refuse(
                RefusalCode::AlterSyncStateSetFailed,
                format!("the new SSS lacks the master {master_broker_id}"),
            );
        }
        group.sync_state_set = new_set.clone();
        group.sync_state_set_epoch += 1;
        Outcome::SyncStateSetAltered {
            sync_state_set: group.sync_state_set.clone(),
            sync_state_set_epoch: group.sync_state_set_epoch,
        }
    }

    pub(crate) fn elect_master(
        &mut self,
        now_ms: u64,
        broker_name: &str,
        broker_id: Option<BrokerId>,
        designate: bool,
    ) -> Outcome {
        let unclean = self.config.enable_elect_unclean_master;
        let Some(group) = self.groups.get_mut(broker_name) else {
            return refuse(
                RefusalCode::BrokerNeedToBeRegistered,
                format!("broker group {broker_name} is not registered"),
            );
        };
        if let Some(id) = broker_id
            && !group.replicas.contains_key(&id)
        {
            return refuse(
                RefusalCode::InvalidReplicas,
                format!("replica {id} of {broker_name} does not exist"),
            );
        }
        let chosen = match broker_id {
            // The group's very first election: the broker that asks becomes master
            // (RocketMQ `isFirstTimeForElect`); its SSS is empty until then.
            Some(id) if group.master_epoch == 0 => Some(id),
            _ => elect(group, now_ms, unclean, broker_id.filter(|_| designate)),
        };
        if let (Some(new), Some(old)) = (chosen, group.master)
            && new == old
        {
            let master = master_info(group, old);
            return Outcome::MasterStillExists {
                master,
                sync_state_set: group.sync_state_set.clone(),
            };
        }
        match (chosen, broker_id) {
            (Some(new), _) => Outcome::Elected(vec![install_master(group, Some(new))]),
            // Triggered by the controller: record that the master is gone (fences it).
            (None, None) if group.master.is_some() => {
                Outcome::Elected(vec![install_master(group, None)])
            }
            (None, None) => refuse(
                RefusalCode::MasterNotAvailable,
                format!("no eligible replica in {broker_name}"),
            ),
            (None, Some(_)) => refuse(
                RefusalCode::ElectMasterFailed,
                format!("failed to elect a master for {broker_name}"),
            ),
        }
    }

    /// The connection of a broker closed: it is dead now; if it was master, elect.
    pub(crate) fn broker_lost(
        &mut self,
        now_ms: u64,
        broker_name: &str,
        broker_id: BrokerId,
    ) -> Outcome {
        let unclean = self.config.enable_elect_unclean_master;
        let Some(group) = self.groups.get_mut(broker_name) else {
            return refuse(
                RefusalCode::BrokerMetadataNotExist,
                format!("broker group {broker_name} does not exist"),
            );
        };
        let Some(replica) = group.replicas.get_mut(&broker_id) else {
            return refuse(
                RefusalCode::InvalidReplicas,
                format!("replica {broker_id} of {broker_name} does not exist"),
            );
        };
        replica.liveness = None;
        if group.master != Some(broker_id) {
            return Outcome::Elected(Vec::new());
        }
        let chosen = elect(group, now_ms, unclean, None);
        Outcome::Elected(vec![install_master(group, chosen)])
    }

    /// Elects in every group whose master is dead while another replica lives, and in every
    /// masterless group (after its first election) as soon as an eligible replica lives.
    /// `silent_masters` Some (`Command::Scan`): a master is replaced only when listed there
    /// too (the leader did not hear from it itself).
    pub(crate) fn tick(
        &mut self,
        now_ms: u64,
        silent_masters: Option<&BTreeSet<(String, BrokerId)>>,
    ) -> Outcome {
        let unclean = self.config.enable_elect_unclean_master;
        let mut elections = Vec::new();
        for group in self.groups.values_mut() {
            let silent = |id: BrokerId| {
                silent_masters.is_none_or(|set| set.contains(&(group.broker_name.clone(), id)))
            };
            if let Some(chosen) = tick_decision(group, now_ms, unclean, silent) {
                elections.push(install_master(group, chosen));
            }
        }
        Outcome::Elected(elections)
    }

    /// The raft leader's periodic command (cheap, read-only; the leader's timer asks it
    /// every scan and writes what it answers): `Command::Scan` when a scan at `now_ms` would
    /// change something, None otherwise.
    ///
    /// `heard(group, replica, timeout_ms)`: whether this member itself received a heartbeat
    /// of the replica within `timeout_ms` (its heartbeat timeout) by its own clock. Liveness
    /// in the state is replicated: while there was no raft leader nobody recorded
    /// heartbeats, and every replica's last one aged alike; brokers heartbeat every member,
    /// so a member that just became leader still knows who was talking to it. A master is
    /// replaced only when both say it is silent: the replicated liveness for safety (the
    /// master fenced itself before it lapses, see `BrokerConfig::controller_fence_bound_ms`),
    /// the receipts so that a healthy master is not replaced only because the leader changed.
    /// A member that has not heard from a replica since it started should count it as heard
    /// until one timeout after its start (brokers need that long to reach it).
    pub fn scan(
        &self,
        now_ms: u64,
        heard: impl Fn(&str, BrokerId, u64) -> bool,
    ) -> Option<Command> {
        let now_ms = now_ms.max(self.clock_ms);
        let unclean = self.config.enable_elect_unclean_master;
        let default_timeout = self.config.heartbeat_timeout_ms;
        let mut silent_masters = BTreeSet::new();
        let mut needed = false;
        for group in self.groups.values() {
            let silent = |id: BrokerId| {
                let timeout = group
                    .replicas
                    .get(&id)
                    .and_then(|replica| replica.liveness.as_ref())
                    .map_or(default_timeout, |liveness| liveness.timeout_ms);
                !heard(&group.broker_name, id, timeout)
            };
            if tick_decision(group, now_ms, unclean, silent).is_some() {
                needed = true;
                if let Some(master) = group.master {
                    silent_masters.insert((group.broker_name.clone(), master));
                }
            }
        }
        needed.then_some(Command::Scan { silent_masters })
    }

    /// Whether `Command::Tick` at `now_ms` would change anything (the replicated rule
    /// alone, as before receipt tables; `scan` is what a leader writes now).
    pub fn tick_needed(&self, now_ms: u64) -> bool {
        let now_ms = now_ms.max(self.clock_ms);
        let unclean = self.config.enable_elect_unclean_master;
        self.groups
            .values()
            .any(|group| tick_decision(group, now_ms, unclean, |_| true).is_some())
    }
}

/// What a tick does to `group`: None, nothing; Some(new master or None).
///
/// A dead master is replaced only while some replica of the group lives (RocketMQ
/// `scanNeedReelectBrokerSets`): when every heartbeat lapsed at once (the controller cut
/// off from the brokers) the master stays, rather than a pointless fencing of a master that
/// may be fine. Without an eligible replica the master is dropped (the master epoch grows
/// and fences it). `silent(master)`: the scanning leader's own receipts agree that the
/// master is silent (always true for the replicated-only `Tick`).
fn tick_decision(
    group: &BrokerGroup,
    now_ms: u64,
    unclean: bool,
    silent: impl Fn(BrokerId) -> bool,
) -> Option<Option<BrokerId>> {
    match group.master {
        Some(master) => {
            if group.is_alive(now_ms, master)
                || !group.replicas.keys().any(|id| group.is_alive(now_ms, *id))
                || !silent(master)
            {
                return None;
            }
            Some(elect(group, now_ms, unclean, None))
        }
        None if group.master_epoch > 0 => elect(group, now_ms, unclean, None).map(Some),
        None => None,
    }
}

fn master_info(group: &BrokerGroup, broker_id: BrokerId) -> MasterInfo {
    MasterInfo {
        broker_id,
        address: group.address(broker_id).unwrap_or_default().to_owned(),
        master_epoch: group.master_epoch,
        sync_state_set_epoch: group.sync_state_set_epoch,
    }
}

/// Installs `new` as master with the next epoch, SSS {new} with the next SSS epoch (RocketMQ
/// 5 `handleElectMaster`). None: no master, next master epoch, SSS kept so that a member can
/// still be elected when it comes back.
fn install_master(group: &mut BrokerGroup, new: Option<BrokerId>) -> Election {
    let before = (group.master_epoch, group.sync_state_set_epoch);
    group.master = new;
    group.master_epoch += 1;
    if let Some(id) = new {
        assert!(
            group.replicas.contains_key(&id),
            "elected a broker that is not a replica"
        );
        group.sync_state_set = BTreeSet::from([id]);
        group.sync_state_set_epoch += 1;
    }
    assert!(group.master_epoch > before.0 && group.sync_state_set_epoch >= before.1);
    Election {
        broker_name: group.broker_name.clone(),
        new_master: new,
        master_address: new.and_then(|id| group.address(id)).map(str::to_owned),
        master_epoch: group.master_epoch,
        sync_state_set: group.sync_state_set.clone(),
        sync_state_set_epoch: group.sync_state_set_epoch,
        members: group.members(),
    }
}
