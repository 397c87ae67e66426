//! What `apply` answers: the data for the RocketMQ response, or a refusal with its code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::BrokerId;

/// The master of a group as the controller knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterInfo {
    pub broker_id: BrokerId,
    pub address: String,
    pub master_epoch: u32,
    pub sync_state_set_epoch: u32,
}

/// One election that happened (or was attempted and left the group without master).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Election {
    pub broker_name: String,
    /// None: the old master is gone and no replica was eligible; the master epoch still
    /// grew, which fences the old master.
    pub new_master: Option<BrokerId>,
    pub master_address: Option<String>,
    pub master_epoch: u32,
    pub sync_state_set: BTreeSet<BrokerId>,
    pub sync_state_set_epoch: u32,
    /// Every replica of the group (id -> address), for the role-change notifications.
    pub members: BTreeMap<BrokerId, String>,
}

/// The result of one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    BrokerIdApplied {
        broker_id: BrokerId,
    },
    /// The master is reported only while it is alive (RocketMQ does the same).
    Registered {
        master: Option<MasterInfo>,
        sync_state_set: BTreeSet<BrokerId>,
        sync_state_set_epoch: u32,
    },
    HeartbeatRecorded,
    /// The answer to [`crate::Command::Heartbeats`]: the outcome of each report, in order
    /// (`HeartbeatRecorded` or a refusal).
    HeartbeatsRecorded(Vec<Outcome>),
    SyncStateSetAltered {
        sync_state_set: BTreeSet<BrokerId>,
        sync_state_set_epoch: u32,
    },
    /// ElectMaster elected (or Tick/BrokerLost ran) these elections; may be empty for Tick.
    Elected(Vec<Election>),
    /// ElectMaster found the current master still eligible: nothing changed
    /// (RocketMQ answers CONTROLLER_MASTER_STILL_EXIST, 2011, with the master's data).
    MasterStillExists {
        master: MasterInfo,
        sync_state_set: BTreeSet<BrokerId>,
    },
    BrokerDataCleaned,
    /// `SetElectUncleanMaster` took effect.
    ConfigChanged,
    /// Nothing changed; the caller answers `refusal.code.response_code()` with the remark.
    Refused(Refusal),
}

/// Why a command changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: RefusalCode,
    pub remark: String,
}

impl Refusal {
    pub(crate) fn new(code: RefusalCode, remark: impl Into<String>) -> Self {
        Self {
            code,
            remark: remark.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} ({}): {}",
            self.code,
            self.code.response_code(),
            self.remark
        )
    }
}

const ALL: [RefusalCode; 13] = [
    RefusalCode::FencedMasterEpoch,
    RefusalCode::FencedSyncStateSetEpoch,
    RefusalCode::InvalidMaster,
    RefusalCode::InvalidReplicas,
    RefusalCode::MasterNotAvailable,
    RefusalCode::InvalidRequest,
    RefusalCode::BrokerNotAlive,
    RefusalCode::BrokerMetadataNotExist,
    RefusalCode::InvalidCleanBrokerMetadata,
    RefusalCode::BrokerNeedToBeRegistered,
    RefusalCode::ElectMasterFailed,
    RefusalCode::AlterSyncStateSetFailed,
    RefusalCode::BrokerIdInvalid,
];

/// RocketMQ 5 controller response codes (`ResponseCode.CONTROLLER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalCode {
    FencedMasterEpoch,
    FencedSyncStateSetEpoch,
    InvalidMaster,
    InvalidReplicas,
    MasterNotAvailable,
    InvalidRequest,
    BrokerNotAlive,
    BrokerMetadataNotExist,
    InvalidCleanBrokerMetadata,
    BrokerNeedToBeRegistered,
    ElectMasterFailed,
    AlterSyncStateSetFailed,
    BrokerIdInvalid,
}

impl RefusalCode {
    /// The wire code (`ResponseCode.java` of RocketMQ 5.3).
    pub fn response_code(self) -> i32 {
        match self {
            Self::FencedMasterEpoch => 2000,
            Self::FencedSyncStateSetEpoch => 2001,
            Self::InvalidMaster => 2002,
            Self::InvalidReplicas => 2003,
            Self::MasterNotAvailable => 2004,
            Self::InvalidRequest => 2005,
            Self::BrokerNotAlive => 2006,
            Self::BrokerMetadataNotExist => 2008,
            Self::InvalidCleanBrokerMetadata => 2009,
            Self::BrokerNeedToBeRegistered => 2010,
            Self::ElectMasterFailed => 2012,
            Self::AlterSyncStateSetFailed => 2013,
            Self::BrokerIdInvalid => 2014,
        }
    }

    /// The refusal a wire code names (None: a code that is no controller refusal).
    pub fn from_response_code(code: i32) -> Option<Self> {
        ALL.into_iter()
            .find(|refusal| refusal.response_code() == code)
    }
}
