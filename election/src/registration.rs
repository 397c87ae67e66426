//! Broker ids, registration, heartbeats and cleaning: the commands that manage replicas.

use std::collections::BTreeSet;

use crate::group::{BrokerGroup, Liveness, Replica};
use crate::heartbeat::HeartbeatReport;
use crate::outcome::{MasterInfo, Refusal, RefusalCode};
use crate::{BrokerId, ElectionState, FIRST_BROKER_ID, Outcome};

fn refuse(code: RefusalCode, remark: String) -> Outcome {
    Outcome::Refused(Refusal::new(code, remark))
}

impl ElectionState {
    pub(crate) fn apply_broker_id(
        &mut self,
        cluster: &str,
        broker_name: &str,
        broker_id: BrokerId,
        register_check_code: &str,
    ) -> Outcome {
        if broker_id < FIRST_BROKER_ID || broker_id >= i64::MAX as u64 {
            let remark = format!(
                "broker id {broker_id} is out of range [{FIRST_BROKER_ID}, {})",
                i64::MAX
            );
            return refuse(RefusalCode::BrokerIdInvalid, remark);
        }
        let address = register_check_code
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let Some(group) = self.groups.get_mut(broker_name) else {
            if broker_id != FIRST_BROKER_ID {
                let remark = format!(
                    "broker group {broker_name} is not registered; its first broker id is {FIRST_BROKER_ID}, not {broker_id}"
                );
                return refuse(RefusalCode::BrokerIdInvalid, remark);
            }
            let mut group = BrokerGroup::new(cluster, broker_name);
            add_replica(&mut group, broker_id, address, register_check_code);
            self.groups.insert(broker_name.to_owned(), group);
            return Outcome::BrokerIdApplied { broker_id };
        };
        if group.cluster != cluster {
            let remark = format!(
                "broker group {broker_name} belongs to cluster {}, not {cluster}",
                group.cluster
            );
            return refuse(RefusalCode::InvalidRequest, remark);
        }
        match group.replicas.get(&broker_id) {
            None => add_replica(group, broker_id, address, register_check_code),
            Some(replica) if replica.register_check_code == register_check_code => {}
            Some(_) => {
                let remark =
                    format!("broker id {broker_id} of {broker_name} belongs to another broker");
                return refuse(RefusalCode::BrokerIdInvalid, remark);
            }
        }
        Outcome::BrokerIdApplied { broker_id }
    }

    pub(crate) fn register_broker(
        &mut self,
        now_ms: u64,
        cluster: &str,
        broker_name: &str,
        broker_id: BrokerId,
        address: &str,
    ) -> Outcome {
        let group = match self.registered(cluster, broker_name, broker_id) {
            Ok(group) => group,
            Err(refusal) => return Outcome::Refused(refusal),
        };
        let replica = group
            .replicas
            .get_mut(&broker_id)
            .expect("checked by registered()");
        if replica.address != address {
            replica.address = address.to_owned();
        }
        let master = group
            .master
            .filter(|id| group.is_alive(now_ms, *id))
            .map(|id| MasterInfo {
                broker_id: id,
                address: group.address(id).unwrap_or_default().to_owned(),
                master_epoch: group.master_epoch,
                sync_state_set_epoch: group.sync_state_set_epoch,
            });
        Outcome::Registered {
            master,
            sync_state_set: group.sync_state_set.clone(),
            sync_state_set_epoch: group.sync_state_set_epoch,
        }
    }

    pub(crate) fn heartbeat(&mut self, now_ms: u64, report: &HeartbeatReport) -> Outcome {
        let HeartbeatReport {
            cluster,
            broker_name,
            broker_id,
            address: _, // the address changes through RegisterBroker, as in RocketMQ
            epoch,
            max_offset,
            confirm_offset,
            election_priority,
            timeout_ms,
        } = report;
        let timeout_ms = timeout_ms.unwrap_or(self.config.heartbeat_timeout_ms);
        let group = match self.registered(cluster, broker_name, *broker_id) {
            Ok(group) => group,
            Err(refusal) => return Outcome::Refused(refusal),
        };
        let replica = group
            .replicas
            .get_mut(broker_id)
            .expect("checked by registered()");
        let live = replica.liveness.get_or_insert(Liveness {
            last_heartbeat_ms: now_ms,
            timeout_ms,
            epoch: *epoch,
            max_offset: *max_offset,
            confirm_offset: *confirm_offset,
            election_priority: *election_priority,
        });
        live.last_heartbeat_ms = now_ms;
        live.timeout_ms = timeout_ms;
        live.election_priority = *election_priority;
        // A heartbeat delayed behind a newer one must not make a replica look further
        // behind than it is (RocketMQ keeps the larger (epoch, max offset) the same way).
        if (*epoch, *max_offset) > (live.epoch, live.max_offset) {
            live.epoch = *epoch;
            live.max_offset = *max_offset;
            live.confirm_offset = *confirm_offset;
        }
        Outcome::HeartbeatRecorded
    }

    pub(crate) fn clean_broker_data(
        &mut self,
        now_ms: u64,
        broker_name: &str,
        broker_ids: Option<&BTreeSet<BrokerId>>,
        clean_living: bool,
    ) -> Outcome {
        let Some(group) = self.groups.get_mut(broker_name) else {
            let remark = format!("broker group {broker_name} does not exist, nothing to clean");
            return refuse(RefusalCode::InvalidCleanBrokerMetadata, remark);
        };
        let targets: Vec<BrokerId> = match broker_ids {
            Some(ids) => ids.iter().copied().collect(),
            None => group.replicas.keys().copied().collect(),
        };
        if !clean_living && let Some(id) = targets.iter().find(|id| group.is_alive(now_ms, **id)) {
            let remark = format!("broker {broker_name} id {id} is still alive, clean up refused");
            return refuse(RefusalCode::InvalidCleanBrokerMetadata, remark);
        }
        let had_sync_state_set = !group.sync_state_set.is_empty();
        for id in &targets {
            group.replicas.remove(id);
            group.sync_state_set.remove(id);
            if group.master == Some(*id) {
                // Fence whoever still thinks it is master.
                group.master = None;
                group.master_epoch += 1;
            }
        }
        // Like RocketMQ: a group whose SSS emptied can never elect cleanly again; forget it and
        // let its brokers apply for ids anew.
        if group.replicas.is_empty() || had_sync_state_set && group.sync_state_set.is_empty() {
            self.groups.remove(broker_name);
        }
        Outcome::BrokerDataCleaned
    }

    /// The group, if `broker_id` is a registered replica of it in `cluster`.
    fn registered(
        &mut self,
        cluster: &str,
        broker_name: &str,
        broker_id: BrokerId,
    ) -> Result<&mut BrokerGroup, Refusal> {
        let Some(group) = self.groups.get_mut(broker_name) else {
            let remark =
                format!("broker group {broker_name} has not been registered in the controller");
            return Err(Refusal::new(RefusalCode::BrokerNeedToBeRegistered, remark));
        };
        if group.cluster != cluster {
            let remark = format!(
                "broker group {broker_name} belongs to cluster {}, not {cluster}",
                group.cluster
            );
            return Err(Refusal::new(RefusalCode::InvalidRequest, remark));
        }
        if !group.replicas.contains_key(&broker_id) {
            let remark = format!(
                "broker id {broker_id} has not been registered in broker group {broker_name}"
            );
            return Err(Refusal::new(RefusalCode::BrokerNeedToBeRegistered, remark));
        }
        Ok(group)
    }
}

/// Adds a replica; ids handed out later stay above every id in use (RocketMQ only
/// increments its counter, which can hand out an id another broker applied for directly).
fn add_replica(
    group: &mut BrokerGroup,
    broker_id: BrokerId,
    address: String,
    register_check_code: &str,
) {
    let replica = Replica {
        address,
        register_check_code: register_check_code.to_owned(),
        liveness: None,
    };
    group.replicas.insert(broker_id, replica);
    group.next_broker_id = group.next_broker_id.max(broker_id + 1);
}
