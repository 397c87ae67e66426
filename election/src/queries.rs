//! Read-only views for the GET_* requests (CONTROLLER_GET_REPLICA_INFO 1004,
//! CONTROLLER_GET_SYNC_STATE_DATA 1006, CONTROLLER_GET_NEXT_BROKER_ID 1012). Reads change nothing and need no log entry; `now_ms` is the
//! reader's clock, used for the alive flags only.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::group::BrokerGroup;
use crate::outcome::{Refusal, RefusalCode};
use crate::{BrokerId, ElectionState, FIRST_BROKER_ID};

/// GET_REPLICA_INFO: master and SSS of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub master_broker_id: Option<BrokerId>,
    pub master_address: Option<String>,
    pub master_epoch: u32,
    pub sync_state_set: BTreeSet<BrokerId>,
    pub sync_state_set_epoch: u32,
}

/// One replica in GET_SYNC_STATE_DATA (`BrokerReplicasInfo.ReplicaIdentity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaIdentity {
    pub broker_name: String,
    pub broker_id: BrokerId,
    pub address: String,
    pub alive: bool,
}

/// GET_SYNC_STATE_DATA for one group (`BrokerReplicasInfo.ReplicasInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStateData {
    pub broker_name: String,
    pub master_broker_id: Option<BrokerId>,
    pub master_address: Option<String>,
    pub master_epoch: u32,
    pub sync_state_set_epoch: u32,
    pub in_sync_replicas: Vec<ReplicaIdentity>,
    pub not_in_sync_replicas: Vec<ReplicaIdentity>,
}

impl ElectionState {
    pub fn group(&self, broker_name: &str) -> Option<&BrokerGroup> {
        self.groups.get(broker_name)
    }

    pub fn groups(&self) -> impl Iterator<Item = &BrokerGroup> {
        self.groups.values()
    }

    /// GET_NEXT_BROKER_ID: the id a new replica of the group should apply for.
    pub fn next_broker_id(&self, broker_name: &str) -> BrokerId {
        self.groups
            .get(broker_name)
            .map_or(FIRST_BROKER_ID, |group| group.next_broker_id)
    }

    pub fn is_alive(&self, now_ms: u64, broker_name: &str, broker_id: BrokerId) -> bool {
        self.groups
            .get(broker_name)
            .is_some_and(|group| group.is_alive(now_ms.max(self.clock_ms), broker_id))
    }

    pub fn replica_info(&self, broker_name: &str) -> Result<ReplicaInfo, Refusal> {
        let Some(group) = self.groups.get(broker_name) else {
            let remark = format!("no metadata for broker group {broker_name}");
            return Err(Refusal::new(RefusalCode::BrokerMetadataNotExist, remark));
        };
        Ok(ReplicaInfo {
            master_broker_id: group.master,
            master_address: group
                .master
                .and_then(|id| group.address(id))
                .map(str::to_owned),
            master_epoch: group.master_epoch,
            sync_state_set: group.sync_state_set.clone(),
            sync_state_set_epoch: group.sync_state_set_epoch,
        })
    }

    /// GET_SYNC_STATE_DATA: groups that do not exist are left out, as in RocketMQ.
    pub fn sync_state_data(&self, now_ms: u64, broker_names: &[&str]) -> Vec<SyncStateData> {
        let now_ms = now_ms.max(self.clock_ms);
        let mut found = Vec::new();
        for name in broker_names {
            let Some(group) = self.groups.get(*name) else {
                continue;
            };
            let (mut in_sync, mut not_in_sync) = (Vec::new(), Vec::new());
            for (id, replica) in &group.replicas {
                let identity = ReplicaIdentity {
                    broker_name: group.broker_name.clone(),
                    broker_id: *id,
                    address: replica.address.clone(),
                    alive: group.is_alive(now_ms, *id),
                };
                if group.sync_state_set.contains(id) {
                    in_sync.push(identity)
                } else {
                    not_in_sync.push(identity)
                }
            }
            found.push(SyncStateData {
                broker_name: group.broker_name.clone(),
                master_broker_id: group.master,
                master_address: group
                    .master
                    .and_then(|id| group.address(id))
                    .map(str::to_owned),
                master_epoch: group.master_epoch,
                sync_state_set_epoch: group.sync_state_set_epoch,
                in_sync_replicas: in_sync,
                not_in_sync_replicas: not_in_sync,
            });
        }
        found
    }
}
