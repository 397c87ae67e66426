//! The controller settings that change election results. They are part of the replicated
//! state (set when the state is created; `enableElectUncleanMaster` also by
//! `Command::SetElectUncleanMaster`, the raft leader's runtime value) so that every replica of
//! the log decides alike.

use serde::{Deserialize, Serialize};

/// Controller settings the state machine needs (RocketMQ 5 `ControllerConfig` keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ElectionConfig {
    /// `enableElectUncleanMaster` (default false): when no live SSS member is left, elect any
    /// live replica. Can lose acknowledged messages; off by default.
    pub enable_elect_unclean_master: bool,
    /// Heartbeat timeout used when a heartbeat does not carry its own
    /// (`controllerHeartBeatTimeoutMills` on the broker side: rmq-fast's default 2 s,
    /// RocketMQ 5's 10 s; every broker sends its own).
    pub heartbeat_timeout_ms: u64,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        Self {
            enable_elect_unclean_master: false,
            heartbeat_timeout_ms: 2_000,
        }
    }
}
