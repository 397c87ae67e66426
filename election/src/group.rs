//! One broker group's replicated record: replicas, liveness, master, sync-state set.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{BrokerId, FIRST_BROKER_ID};

/// What the last heartbeat of a replica said, and when (controller clock, from `now_ms`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    pub last_heartbeat_ms: u64,
    pub timeout_ms: u64,
    pub epoch: i32,
    pub max_offset: i64,
    pub confirm_offset: i64,
    pub election_priority: i32,
}

impl Liveness {
    /// Alive while `now_ms <= last + timeout` (RocketMQ `isBrokerActive`). A clock that
    /// went backwards (new raft leader with a slower clock) keeps a broker alive.
    pub fn is_alive(&self, now_ms: u64) -> bool {
        now_ms <= self.last_heartbeat_ms.saturating_add(self.timeout_ms)
    }
}

/// A registered replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub address: String,
    pub register_check_code: String,
    /// None: no heartbeat yet, or its connection was lost.
    pub liveness: Option<Liveness>,
}

/// A broker group (one `brokerName`): RocketMQ's `BrokerReplicaInfo` + `SyncStateInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerGroup {
    pub cluster: String,
    pub broker_name: String,
    pub replicas: BTreeMap<BrokerId, Replica>,
    pub next_broker_id: BrokerId,
    pub master: Option<BrokerId>,
    /// 0 until the first election; every election (also one that finds no master) adds 1.
    pub master_epoch: u32,
    pub sync_state_set: BTreeSet<BrokerId>,
    pub sync_state_set_epoch: u32,
}

impl BrokerGroup {
    pub(crate) fn new(cluster: &str, broker_name: &str) -> Self {
        Self {
            cluster: cluster.to_owned(),
            broker_name: broker_name.to_owned(),
            replicas: BTreeMap::new(),
            next_broker_id: FIRST_BROKER_ID,
            master: None,
            master_epoch: 0,
            sync_state_set: BTreeSet::new(),
            sync_state_set_epoch: 0,
        }
    }

    pub fn is_alive(&self, now_ms: u64, broker_id: BrokerId) -> bool {
        self.replicas
            .get(&broker_id)
            .and_then(|replica| replica.liveness.as_ref())
            .is_some_and(|liveness| liveness.is_alive(now_ms))
    }

    pub fn address(&self, broker_id: BrokerId) -> Option<&str> {
        self.replicas
            .get(&broker_id)
            .map(|replica| replica.address.as_str())
    }

    pub fn members(&self) -> BTreeMap<BrokerId, String> {
        self.replicas
            .iter()
            .map(|(id, replica)| (*id, replica.address.clone()))
            .collect()
    }

    /// Panics when the group breaks an invariant: that is a bug in this crate, never input.
    pub(crate) fn assert_invariants(&self) {
        assert!(self.next_broker_id >= FIRST_BROKER_ID);
        for id in &self.sync_state_set {
            assert!(
                self.replicas.contains_key(id),
                "SSS member {id} is not a replica"
            );
        }
        for id in self.replicas.keys() {
            assert!(*id < self.next_broker_id, "replica {id} not below next id");
        }
        if let Some(master) = self.master {
            assert!(
                self.replicas.contains_key(&master),
                "master {master} is not a replica"
            );
            assert!(
                self.sync_state_set.contains(&master),
                "master {master} not in the SSS"
            );
            assert!(
                self.master_epoch > 0,
                "a master exists only after an election"
            );
        }
    }
}
