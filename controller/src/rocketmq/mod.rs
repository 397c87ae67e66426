//! The controller of RocketMQ 5's controller mode: the election state of `rmq-election`
//! replicated by the quorum, served with RocketMQ 5.3's controller protocol.
//!
//! - `requests`: one handler per request code (`ControllerRequestProcessor` of 5.3);
//! - `replies`: outcomes and refusals as RocketMQ's response headers and bodies;
//! - `notify`: NOTIFY_BROKER_ROLE_CHANGED to a group's live brokers after an election;
//! - `config_admin`: GET_CONTROLLER_CONFIG / UPDATE_CONTROLLER_CONFIG, per member;
//! - `heartbeats`: the leader's group commit of heartbeats (several per raft log entry).
//!
//! As in RocketMQ 5.3: writes and reads of broker state are answered by the leader only
//! (CONTROLLER_NOT_LEADER elsewhere; a broker finds the leader with
//! CONTROLLER_GET_METADATA_INFO, which every member answers); a heartbeat is accepted by every
//! member but recorded (replicated) by the leader, and every member keeps its own receipt
//! times (`receipts`); a broker's connection to the leader closing counts as its death (an
//! election at once if it was master); the leader's scan elects for groups whose master
//! stopped heartbeating, by the replicated liveness and by the leader's own receipts.

mod config_admin;
#[cfg(test)]
mod heartbeat_tests;
mod heartbeats;
mod notify;
mod receipts;
mod replies;
mod requests;
#[cfg(test)]
mod tick_tests;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rmq_core::config::ControllerConfig;
use rmq_core::remoting::RemotingCommand;
use rmq_election::{BrokerId, Command, ElectionConfig, ElectionState, Outcome};

use crate::error::ControllerError;
use crate::node::{ControllerNode, NodeConfig, NodeHandle};
use crate::peers::parse_peers;
use crate::replicated::Replicated;
use crate::server::Service;
use heartbeats::HeartbeatWriter;
use receipts::Receipts;

impl Replicated for ElectionState {
    type Cmd = Command;
    type Out = Outcome;

    fn apply(&mut self, now_ms: u64, cmd: &Command) -> Outcome {
        ElectionState::apply(self, now_ms, cmd)
    }

    /// Without receipt times (a service that keeps none): a `Scan` as if this member had
    /// heard from every replica until one timeout after it became leader, and from none
    /// since (brokers need that long to find a new leader before their silence means
    /// anything). `ControllerService` passes its receipts instead (`receipts`).
    fn tick(&self, now_ms: u64, leader_since_ms: u64) -> Option<Command> {
        self.scan(now_ms, |_, _, timeout_ms| {
            now_ms <= leader_since_ms.saturating_add(timeout_ms)
        })
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
    /// When this member last received each replica's heartbeat (`receipts`).
    receipts: Mutex<Receipts>,
    /// The leader's heartbeat group commit.
    heartbeats: Arc<HeartbeatWriter>,
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
            receipts: Mutex::new(Receipts::new(Instant::now())),
            heartbeats: Arc::new(HeartbeatWriter::default()),
        }
    }

    fn receipts(&self) -> std::sync::MutexGuard<'_, Receipts> {
        self.receipts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> std::sync::MutexGuard<'_, ControllerConfig> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that `replica` heartbeats over `peer`, and when this member heard it.
    fn heard_from(&self, peer: SocketAddr, replica: (String, BrokerId)) {
        self.receipts().record(replica.clone(), Instant::now());
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

    /// The leader's scan with this member's receipts: a master is replaced only when the
    /// replicated liveness and this member's own receipts both say it is silent (no grace
    /// after a leader change: this member heard the brokers as a follower too).
    fn periodic(
        &self,
        node: &NodeHandle<ElectionState>,
        now_ms: u64,
        _leader_since_ms: u64,
    ) -> Option<Command> {
        let now = Instant::now();
        let receipts = self.receipts();
        node.local(|state| {
            state.scan(now_ms, |group, id, timeout_ms| {
                receipts.heard(now, group, id, timeout_ms)
            })
        })
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
