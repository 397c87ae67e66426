//! rmq-election: the controller's election and sync-state-set logic as a pure, deterministic
//! state machine (RocketMQ 5 "controller mode", issue 11).
//!
//! Owns, per broker group (`brokerName`, within its cluster): the registered replicas
//! (broker id, address, register check code), their liveness as reported by heartbeats,
//! the master broker id and master epoch, and the sync-state set (SSS) with its epoch.
//! [`ElectionState::apply`] is the only way to change it; the caller (the raft layer in
//! `controller/`) stamps every [`Command`] with the leader's clock `now_ms` in the log entry,
//! so replaying the log on any node reproduces the same state and the same [`Outcome`]s.
//! No runtime, no I/O, no clock reads here.
//!
//! Invariants (asserted after every command, see `ElectionState::assert_invariants`):
//! - master epoch and SSS epoch of a group only grow;
//! - the SSS is a subset of the registered replicas; a master is a registered replica and a
//!   member of the SSS;
//! - a new master comes from the SSS (unless `enableElectUncleanMaster`), starts epoch + 1 and
//!   the SSS becomes {new master} with SSS epoch + 1 (as RocketMQ 5 does);
//! - the SSS changes only by an election or an `AlterSyncStateSet` from the current master that
//!   names the current master epoch and SSS epoch: a stale master is refused every change.
//!
//! The broker-side half of the fencing rule (which replicas a master's acknowledgements
//! wait for with `allAckInSyncStateSet=true`, what it proposes, and when a member joins or
//! leaves that count) is [`SyncStateUpkeep`] with [`CountingMarks`] and [`CatchUp`] (when a
//! replica caught up): the broker runs them and the simulation drives the same types.
//! [`consistent_point`] is the truncation point of two epoch histories.
//!
//! The seeded simulation in `tests/simulation.rs` drives this state machine together with a
//! model of brokers, logs and a faulty network, and checks the safety properties at every step.
#![forbid(unsafe_code)]

mod command;
mod config;
mod elect;
mod epoch_history;
mod failover;
mod group;
mod heartbeat;
mod outcome;
mod queries;
mod registration;
mod state;
mod sync_state;

pub use command::Command;
pub use config::ElectionConfig;
pub use epoch_history::{EpochEntry, EpochHistory, EpochHistoryError, consistent_point};
pub use group::{BrokerGroup, Liveness, Replica};
pub use heartbeat::{HeartbeatBatch, HeartbeatReport, MAX_HEARTBEATS_PER_ENTRY};
pub use outcome::{Election, MasterInfo, Outcome, Refusal, RefusalCode};
pub use queries::{ReplicaIdentity, ReplicaInfo, SyncStateData};
pub use state::ElectionState;
pub use sync_state::{CatchUp, CountingMarks, ProposalAnswer, SyncStateProposal, SyncStateUpkeep};

/// A broker's id inside its group, assigned by the controller (RocketMQ 5.1+: the first is 1).
pub type BrokerId = u64;

/// The first broker id the controller hands out (`MixAll.FIRST_BROKER_CONTROLLER_ID`).
pub const FIRST_BROKER_ID: BrokerId = 1;
