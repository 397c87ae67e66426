//! Answers in RocketMQ 5.3's shapes: a failed request becomes a response code with a remark;
//! the election state's views become the Java headers and bodies.

use rmq_core::body::controller::{ReplicaIdentity, ReplicasInfo, SyncStateSet};
use rmq_core::remoting::controller::{NOT_LEADER_KNOWN_LEADER, controller_response_code as code};
use rmq_core::remoting::{HeaderError, RemotingCommand, ResponseCode};
use rmq_election::{BrokerId, Refusal, SyncStateData};

use crate::error::ControllerError;

/// Why a request got no successful answer: the response code and its remark.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) remark: String,
    /// CONTROLLER_NOT_LEADER: the leader as this member knows it
    /// ([`NOT_LEADER_KNOWN_LEADER`]).
    pub(crate) known_leader: Option<String>,
}

impl Failure {
    pub(crate) fn new(code: i32, remark: impl Into<String>) -> Self {
        Self {
            code,
            remark: remark.into(),
            known_leader: None,
        }
    }

    /// A request the controller cannot make sense of (CONTROLLER_INVALID_REQUEST).
    pub(crate) fn invalid(remark: impl Into<String>) -> Self {
        Self::new(code::CONTROLLER_INVALID_REQUEST, remark)
    }

    pub(crate) fn reply_to(self, request: &RemotingCommand) -> RemotingCommand {
        let mut reply = RemotingCommand::response_for(request, self.code, Some(self.remark));
        if let Some(leader) = self.known_leader {
            reply.set_ext(NOT_LEADER_KNOWN_LEADER, leader);
        }
        reply
    }
}

impl From<HeaderError> for Failure {
    /// Java's header decoding throws and the request fails with SYSTEM_ERROR naming the field.
    fn from(e: HeaderError) -> Self {
        Self::new(ResponseCode::SystemError as i32, e.to_string())
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Self::new(refusal.code.response_code(), refusal.remark)
    }
}

impl From<ControllerError> for Failure {
    fn from(e: ControllerError) -> Self {
        match e {
            // RocketMQ 5.3's text (DLedgerController.EventScheduler).
            ControllerError::NotLeader { leader } => Self {
                known_leader: leader.filter(|l| !l.is_empty()),
                ..Self::new(
                    code::CONTROLLER_NOT_LEADER,
                    "The controller is not in leader state",
                )
            },
            other => Self::new(ResponseCode::SystemError as i32, other.to_string()),
        }
    }
}

/// A broker id from the wire; negative ids are not broker ids.
pub(crate) fn broker_id(field: &str, id: i64) -> Result<BrokerId, Failure> {
    BrokerId::try_from(id).map_err(|_| Failure::invalid(format!("{field} {id} is not a broker id")))
}

/// An epoch from the wire; negative epochs never existed.
pub(crate) fn epoch(field: &str, epoch: i32) -> Result<u32, Failure> {
    u32::try_from(epoch).map_err(|_| Failure::invalid(format!("{field} {epoch} is negative")))
}

/// An epoch of the state for the wire (epochs stay far below 2^31: one per election).
pub(crate) fn wire_epoch(epoch: u32) -> i32 {
    i32::try_from(epoch).unwrap_or(i32::MAX)
}

pub(crate) fn wire_id(id: BrokerId) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

pub(crate) fn sync_state_set(
    members: &std::collections::BTreeSet<BrokerId>,
    epoch: u32,
) -> SyncStateSet {
    SyncStateSet {
        sync_state_set: members.iter().map(|&id| wire_id(id)).collect(),
        sync_state_set_epoch: wire_epoch(epoch),
    }
}

/// One group of GET_SYNC_STATE_DATA (`BrokerReplicasInfo.ReplicasInfo`).
pub(crate) fn replicas_info(data: &SyncStateData) -> ReplicasInfo {
    let identity = |replica: &rmq_election::ReplicaIdentity| ReplicaIdentity {
        broker_name: replica.broker_name.clone(),
        broker_id: Some(wire_id(replica.broker_id)),
        broker_address: Some(replica.address.clone()),
        alive: Some(replica.alive),
    };
    ReplicasInfo {
        master_broker_id: data.master_broker_id.map(wire_id),
        master_address: data.master_address.clone(),
        master_epoch: Some(wire_epoch(data.master_epoch)),
        sync_state_set_epoch: Some(wire_epoch(data.sync_state_set_epoch)),
        in_sync_replicas: data.in_sync_replicas.iter().map(identity).collect(),
        not_in_sync_replicas: data.not_in_sync_replicas.iter().map(identity).collect(),
    }
}
