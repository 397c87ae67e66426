//! The controller of RocketMQ 5's controller mode: the election state of `rmq-election`
//! replicated by the quorum, served with RocketMQ 5.3's controller protocol.
//!
//! - `requests`: one handler per request code (`ControllerRequestProcessor` of 5.3);
//! - `replies`: outcomes and refusals as RocketMQ's response headers and bodies;
//! - `notify`: NOTIFY_BROKER_ROLE_CHANGED to a group's live brokers after an election;
//! - `config_admin`: GET_CONTROLLER_CONFIG / UPDATE_CONTROLLER_CONFIG, per member.
//!
//! As in RocketMQ 5.3: writes and reads of broker state are answered by the leader only
//! (CONTROLLER_NOT_LEADER elsewhere; a broker finds the leader with
//! CONTROLLER_GET_METADATA_INFO, which every member answers); a heartbeat is accepted by every
//! member but recorded (replicated) by the leader; a broker's connection to the leader closing
//! counts as its death (an election at once if it was master); the leader's scan elects for
//! groups whose master stopped heartbeating.

mod config_admin;
mod notify;
mod replies;
mod requests;
#[cfg(test)]
mod tick_tests;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rmq_core::config::ControllerConfig;
use rmq_core::remoting::RemotingCommand;
use rmq_election::{BrokerId, Command, ElectionConfig, ElectionState, Outcome};

use crate::error::ControllerError;
use crate::node::{ControllerNode, NodeConfig, NodeHandle};
use crate::peers::parse_peers;
use crate::replicated::Replicated;
use crate::server::Service;

impl Replicated for ElectionState {
    type Cmd = Command;
    type Out = Outcome;

    fn apply(&mut self, now_ms: u64, cmd: &Command) -> Outcome {
        ElectionState::apply(self, now_ms, cmd)
    }

    /// A `Tick` only when it would elect (`tick_needed`), and not during a new leader's
    /// grace (`new_leader_grace_ends_ms`: brokers need time to find a new leader before
    /// their silence means anything). The state's own `Tick` decides again on the
    /// replicated time; this only avoids a log entry every scan when nothing is wrong.
    fn tick(&self, now_ms: u64, leader_since_ms: u64) -> Option<Command> {
        if now_ms < self.new_leader_grace_ends_ms(leader_since_ms) {
            return None;
        }
        self.tick_needed(now_ms).then_some(Command::Tick)
    }
}

/// Milliseconds since the Unix epoch (for the alive flags of reads).
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Serves RocketMQ 5's controller requests on one member.
pub struct ControllerService {
    /// This member's configuration, as UPDATE_CONTROLLER_CONFIG changed it (`config_admin`).
    live: Mutex<ControllerConfig>,
    /// Which broker replicas heartbeat over which connection, and the latest connection of
    /// each replica (only the close of that one means the broker is gone).
    connections: Mutex<Connections>,
}

#[derive(Default)]
struct Connections {
    by_peer: HashMap<SocketAddr, BTreeSet<(String, BrokerId)>>,
    latest: HashMap<(String, BrokerId), SocketAddr>,
}

impl ControllerService {
    fn new(config: &ControllerConfig) -> Self {
        Self {
            live: Mutex::new(config.clone()),
            connections: Mutex::new(Connections::default()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, ControllerConfig> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that `replica` heartbeats over `peer`.
    fn heard_from(&self, peer: SocketAddr, replica: (String, BrokerId)) {
        let mut connections = self.connections();
        connections
            .by_peer
            .entry(peer)
            .or_default()
            .insert(replica.clone());
        connections.latest.insert(replica, peer);
    }

    /// Elections in `outcome` are told to their groups' brokers (when configured to).
    async fn announce(&self, node: &NodeHandle<ElectionState>, outcome: &Outcome) {
        let Outcome::Elected(elections) = outcome else {
            return;
        };
        for election in elections {
            tracing::info!(
                group = %election.broker_name, master = ?election.new_master,
                epoch = election.master_epoch, sync_state_set = ?election.sync_state_set,
                "controller elected"
            );
            let notify = self.live().notify_broker_role_changed;
            if notify {
                notify::broker_role_changed(node, election);
            }
        }
    }
}

impl Service<ElectionState> for ControllerService {
    async fn handle(
        &self,
        node: &NodeHandle<ElectionState>,
        peer: SocketAddr,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        Some(requests::handle(self, node, peer, &request).await)
    }

    async fn after_tick(&self, node: &NodeHandle<ElectionState>, out: Outcome) {
        self.announce(node, &out).await;
    }

    async fn closed(&self, node: &NodeHandle<ElectionState>, peer: SocketAddr) {
        let lost: Vec<(String, BrokerId)> = {
            let mut connections = self.connections();
            let replicas = connections.by_peer.remove(&peer).unwrap_or_default();
            let lost: Vec<_> = replicas
                .into_iter()
                .filter(|replica| connections.latest.get(replica) == Some(&peer))
                .collect();
            for replica in &lost {
                connections.latest.remove(replica);
            }
            lost
        };
        if lost.is_empty() || node.role() != crate::RaftRole::Leader {
            return;
        }
        for (broker_name, broker_id) in lost {
            tracing::info!(%peer, group = %broker_name, broker_id, "broker connection closed");
            let cmd = Command::BrokerLost {
                broker_name,
                broker_id,
            };
            match node.write(cmd).await {
                Ok(outcome) => self.announce(node, &outcome).await,
                Err(e) => tracing::warn!(error = %e, "broker loss not replicated"),
            }
        }
    }
}

/// A member of the controller quorum of RocketMQ 5's controller mode.
pub type ElectionController = ControllerNode<ElectionState>;

/// Starts this member of the controller quorum as `config` describes it.
///
/// # Errors
/// An invalid peer list (or self id not in it), the store or the port unusable.
pub fn start_controller(config: &ControllerConfig) -> Result<ElectionController, ControllerError> {
    let peers = parse_peers(&config.controller_dleger_peers)?;
    let mut node = NodeConfig::new(
        &config.controller_dleger_group,
        peers,
        &config.controller_dleger_self_id,
        // One directory per member, so members of one host may share controllerStorePath
        // (RocketMQ's DLedger does the same with `dledger-<selfId>`).
        PathBuf::from(&config.controller_store_path)
            .join(format!("raft-{}", config.controller_dleger_self_id)),
    );
    node.heartbeat_interval_ms = config.raft_heartbeat_interval_ms;
    node.election_timeout_ms = config.raft_election_timeout_ms;
    node.scan_interval_ms = config.scan_not_active_broker_interval_ms;
    let initial = ElectionState::new(ElectionConfig {
        enable_elect_unclean_master: config.enable_elect_unclean_master,
        ..ElectionConfig::default()
    });
    ControllerNode::start(node, initial, ControllerService::new(config))
}
