//! Every change to the election state, as the raft layer writes it into its log.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::BrokerId;
use crate::heartbeat::HeartbeatReport;

/// A change request. Each variant maps to one RocketMQ 5 request (or to a controller-internal
/// event); the answer is the [`crate::Outcome`] of [`crate::ElectionState::apply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// CONTROLLER_APPLY_BROKER_ID (1013): claim `broker_id` (normally the one GET_NEXT_BROKER_ID
    /// returned). `register_check_code` is `"address;timestamp"`: the same broker may claim
    /// its id again, another broker may not.
    ApplyBrokerId {
        cluster: String,
        broker_name: String,
        broker_id: BrokerId,
        register_check_code: String,
    },
    /// CONTROLLER_REGISTER_BROKER (1003): a broker with an applied id comes up at
    /// `address` (the address is updated when it changed).
    RegisterBroker {
        cluster: String,
        broker_name: String,
        broker_id: BrokerId,
        address: String,
    },
    /// BROKER_HEARTBEAT (904): liveness plus what the election compares. `epoch`,
    /// `max_offset` and `confirm_offset` are -1 when unknown, `election_priority` is
    /// `i32::MAX` when unset (smaller value = preferred). `timeout_ms` None: the config's.
    /// The controller now writes heartbeats as [`Command::Heartbeats`]; this one is still
    /// applied when a log written before the group commit is replayed.
    Heartbeat {
        cluster: String,
        broker_name: String,
        broker_id: BrokerId,
        address: String,
        epoch: i32,
        max_offset: i64,
        confirm_offset: i64,
        election_priority: i32,
        timeout_ms: Option<u64>,
    },
    /// Several BROKER_HEARTBEATs written as one log entry by the raft leader (group commit,
    /// see [`crate::HeartbeatBatch`]): applied in order, each exactly as a
    /// [`Command::Heartbeat`] at the entry's time; answered by
    /// [`crate::Outcome::HeartbeatsRecorded`], one outcome per report.
    Heartbeats(Vec<HeartbeatReport>),
    /// CONTROLLER_ALTER_SYNC_STATE_SET (1001): the master asks to replace the SSS. It names
    /// itself, its master epoch and the SSS epoch it based the change on; anything stale is
    /// refused.
    AlterSyncStateSet {
        broker_name: String,
        master_broker_id: BrokerId,
        master_epoch: u32,
        new_sync_state_set: BTreeSet<BrokerId>,
        sync_state_set_epoch: u32,
    },
    /// CONTROLLER_ELECT_MASTER (1002). From a broker (`broker_id` Some, `designate` false):
    /// the first election of a group picks it, later ones run the policy. From the admin
    /// tool (`designate` true): elect exactly `broker_id` if it is eligible. From the
    /// controller itself (`broker_id` None): same as an automatic election.
    ElectMaster {
        broker_name: String,
        broker_id: Option<BrokerId>,
        designate: bool,
    },
    /// The broker's connection to the controller closed (RocketMQ `onBrokerChannelClose`):
    /// it is dead from now on until its next heartbeat; if it was master, elect at once.
    BrokerLost {
        broker_name: String,
        broker_id: BrokerId,
    },
    /// Periodic scan (RocketMQ `scanNotActiveBroker` + `scanNeedReelectBrokerSets`): every
    /// group whose master missed heartbeats for its timeout at `now_ms` gets an election;
    /// a masterless group (after its first election) gets one as soon as a candidate lives.
    Tick,
    /// The raft leader's periodic scan with its own receipts of heartbeats (what its timer
    /// writes since issue 11's receipt tables; `Tick` stays for logs written before): as
    /// `Tick`, but a master is replaced only when it is also in `silent_masters`, the
    /// masters the leader itself has not received a heartbeat from for their timeout (every
    /// member keeps its own receipt times, in memory; brokers heartbeat every member). The
    /// replicated liveness must say dead too: that is what the master's fencing bound is
    /// counted against.
    Scan {
        silent_masters: BTreeSet<(String, BrokerId)>,
    },
    /// CLEAN_BROKER_DATA (1011): forget the group (`broker_ids` None) or some replicas.
    /// Refused for live brokers unless `clean_living`.
    CleanBrokerData {
        broker_name: String,
        broker_ids: Option<BTreeSet<BrokerId>>,
        clean_living: bool,
    },
    /// The raft leader's `enableElectUncleanMaster` (UPDATE_CONTROLLER_CONFIG changes it per
    /// member, as RocketMQ 5.3.3; the leader writes its value into the log so that every
    /// replica of the state elects alike).
    SetElectUncleanMaster { enable: bool },
}
