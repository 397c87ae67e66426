//! JSON bodies of RocketMQ 5's controller protocol (headers and codes: `remoting::controller`).
//!
//! - [`SyncStateSet`]: body of `CONTROLLER_ALTER_SYNC_STATE_SET`, of the replies to
//!   `CONTROLLER_GET_REPLICA_INFO` and `CONTROLLER_REGISTER_BROKER`, and of
//!   `NOTIFY_BROKER_ROLE_CHANGED`.
//! - [`ElectMasterResponseBody`]: reply to `CONTROLLER_ELECT_MASTER`.
//! - [`BrokerReplicasInfo`]: reply to `CONTROLLER_GET_SYNC_STATE_DATA`, whose request body is a
//!   JSON array of broker names.
//! - [`EpochEntryCache`]: reply of a broker to `GET_BROKER_EPOCH_CACHE`.
//!
//! Java `Set<Long>` is a JSON array; `Map<Long, String>` has integer keys (fastjson writes them
//! unquoted; the lenient decoder accepts both). Field names follow the Java getters.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The replicas a master may count for acknowledgements, and the epoch of that set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SyncStateSet {
    pub sync_state_set: BTreeSet<i64>,
    pub sync_state_set_epoch: i32,
}

/// The members of one broker group (Java `BrokerMemberGroup`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerMemberGroup {
    pub cluster: String,
    pub broker_name: String,
    /// brokerId → address.
    pub broker_addrs: BTreeMap<i64, String>,
}

/// Reply body of `CONTROLLER_ELECT_MASTER`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ElectMasterResponseBody {
    pub broker_member_group: Option<BrokerMemberGroup>,
    pub sync_state_set: BTreeSet<i64>,
}

/// One replica as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicaIdentity {
    pub broker_name: String,
    pub broker_id: Option<i64>,
    pub broker_address: Option<String>,
    pub alive: Option<bool>,
}

/// One broker group's replication state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicasInfo {
    pub master_broker_id: Option<i64>,
    pub master_address: Option<String>,
    pub master_epoch: Option<i32>,
    pub sync_state_set_epoch: Option<i32>,
    pub in_sync_replicas: Vec<ReplicaIdentity>,
    pub not_in_sync_replicas: Vec<ReplicaIdentity>,
}

/// Reply body of `CONTROLLER_GET_SYNC_STATE_DATA`: brokerName → its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerReplicasInfo {
    pub replicas_info_table: BTreeMap<String, ReplicasInfo>,
}

/// One epoch of a broker's log: records from `start_offset` (inclusive) to `end_offset`
/// (exclusive; `i64::MAX` for the current epoch) were written by the master of `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
    pub end_offset: i64,
}

impl Default for EpochEntry {
    fn default() -> Self {
        Self {
            epoch: 0,
            start_offset: 0,
            end_offset: i64::MAX,
        }
    }
}

/// Reply body of `GET_BROKER_EPOCH_CACHE` (served by a broker).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EpochEntryCache {
    pub cluster_name: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub epoch_list: Vec<EpochEntry>,
    pub max_offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode_body, encode_body};

    #[test]
    fn bodies_decode_what_fastjson_writes() {
        let sss: SyncStateSet =
            decode_body(br#"{"syncStateSet":[1,2],"syncStateSetEpoch":3}"#).unwrap();
        assert_eq!(sss.sync_state_set, BTreeSet::from([1, 2]));
        assert_eq!(sss.sync_state_set_epoch, 3);

        let body: ElectMasterResponseBody = decode_body(
            br#"{"brokerMemberGroup":{"brokerAddrs":{1:"127.0.0.1:30911",2:"127.0.0.1:30912"},"brokerName":"broker-a","cluster":"DefaultCluster"},"syncStateSet":[1]}"#,
        )
        .unwrap();
        let group = body.broker_member_group.unwrap();
        assert_eq!(group.broker_addrs[&2], "127.0.0.1:30912");
        assert_eq!(body.sync_state_set, BTreeSet::from([1]));

        let epochs: EpochEntryCache = decode_body(
            br#"{"brokerId":1,"brokerName":"broker-a","clusterName":"c","epochList":[{"endOffset":9223372036854775807,"epoch":1,"startOffset":0}],"maxOffset":100}"#,
        )
        .unwrap();
        assert_eq!(epochs.epoch_list[0].end_offset, i64::MAX);
    }

    #[test]
    fn bodies_round_trip() {
        let info = BrokerReplicasInfo {
            replicas_info_table: BTreeMap::from([(
                "broker-a".to_string(),
                ReplicasInfo {
                    master_broker_id: Some(1),
                    master_address: Some("127.0.0.1:30911".into()),
                    master_epoch: Some(2),
                    sync_state_set_epoch: Some(4),
                    in_sync_replicas: vec![ReplicaIdentity {
                        broker_name: "broker-a".into(),
                        broker_id: Some(1),
                        broker_address: Some("127.0.0.1:30911".into()),
                        alive: Some(true),
                    }],
                    not_in_sync_replicas: vec![],
                },
            )]),
        };
        let bytes = encode_body(&info);
        assert_eq!(decode_body::<BrokerReplicasInfo>(&bytes).unwrap(), info);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"replicasInfoTable\"") && text.contains("\"inSyncReplicas\""));
    }
}
