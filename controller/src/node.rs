//! One controller: openraft on its own tokio runtime, the stores, the listener and the
//! leader's scan timer.
//!
//! The runtime is a small multi-threaded tokio runtime (2 workers) private to the node: openraft
//! 0.9 runs on tokio, and the controller handles a few requests per broker every few seconds, so
//! it stays off the brokers' io_uring cores. Two workers keep the listener answering while the
//! other one waits for an fsync of the raft log.
//!
//! Time: the leader reads the wall clock when it proposes a command and stamps it into the
//! entry ([`Stamped`]); followers never read the clock for the state. Applying uses
//! `max(stamp, largest stamp applied so far)`, so the state's time never goes backwards, even
//! across leaders whose clocks disagree.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};

use crate::error::ControllerError;
use crate::log_store::LogStore;
use crate::network::Network;
use crate::peers::Peer;
use crate::replicated::{Replicated, Stamped, TypeConfig};
use crate::server::{self, Service};
use crate::state_machine::StateMachineStore;

/// How long a write or a linearizable read waits for a quorum before it fails (RocketMQ 5's
/// controller gives a request 3 s too, then answers CONTROLLER_NOT_LEADER or a timeout).
pub const QUORUM_WAIT: Duration = Duration::from_secs(3);

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `controllerDLegerGroup`: the raft cluster name (logged; peers of another group are
    /// not told apart on the wire, the peer list is what defines the group).
    pub group: String,
    /// Every member, this one included (`controllerDLegerPeers`).
    pub peers: Vec<Peer>,
    /// This member's name (`controllerDLegerSelfId`).
    pub self_name: String,
    /// Where the raft log, vote and snapshot live (`controllerStorePath`).
    pub store_dir: PathBuf,
    /// Raft heartbeat interval. openraft 0.9 has a follower that knew a leader wait its
    /// leader lease (the election timeout's maximum, `1.5 * election_timeout_ms` here) plus
    /// its election timeout (fixed per start, between `election_timeout_ms` and
    /// `1.5 * election_timeout_ms`) without a heartbeat before it stands for election, and
    /// every member refuses votes during the lease: a leader loss costs 2.5-3 election
    /// timeouts (1.25-1.5 s with the default 500 ms). A member names a leader it has not
    /// heard from for `election_timeout_ms` no more (`NodeHandle::leader`).
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms: u64,
    /// How often the leader asks the state for its periodic command
    /// (`scanNotActiveBrokerInterval`).
    pub scan_interval_ms: u64,
    /// A snapshot is taken after this many entries, and the log before it purged.
    pub snapshot_every_entries: u64,
}

impl NodeConfig {
    /// A config with the defaults of `ControllerConfig`: heartbeat 100 ms, election
    /// timeout 500 ms (an election after 1.25-1.5 s of silence, see `heartbeat_interval_ms`:
    /// a loaded host's fsync or scheduling delay does not depose a healthy leader), a leader
    /// scan every 200 ms, a snapshot every 10,000 entries.
    pub fn new(group: &str, peers: Vec<Peer>, self_name: &str, store_dir: PathBuf) -> Self {
        Self {
            group: group.to_owned(),
            peers,
            self_name: self_name.to_owned(),
            store_dir,
            heartbeat_interval_ms: 100,
            election_timeout_ms: 500,
            scan_interval_ms: 200,
            snapshot_every_entries: 10_000,
        }
    }

    fn me(&self) -> Result<&Peer, ControllerError> {
        self.peers
            .iter()
            .find(|p| p.name == self.self_name)
            .ok_or_else(|| {
                ControllerError::Peers(format!(
                    "self id {:?} is not one of the peers {:?}",
                    self.self_name,
                    self.peers.iter().map(|p| &p.name).collect::<Vec<_>>()
                ))
            })
    }

    fn raft_config(&self) -> Result<Config, ControllerError> {
        let config = Config {
            cluster_name: self.group.clone(),
            heartbeat_interval: self.heartbeat_interval_ms,
            // The maximum is also openraft 0.9's leader lease, added to every election
            // after a leader was known: 1.5x rather than 2x keeps a leader loss at
            // 2.5-3 timeouts instead of 3-4 (one more round when the first candidate's log
            // was shorter costs the other's timeout, not twice the maximum).
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms + self.election_timeout_ms / 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            // Keep some entries behind a snapshot so a briefly lagging follower catches up
            // from the log rather than by a snapshot transfer.
            max_in_snapshot_log_to_keep: self.snapshot_every_entries.min(1_000),
            ..Config::default()
        };
        config
            .validate()
            .map_err(|e| ControllerError::Raft(format!("raft config: {e}")))
    }
}

/// The raft role of a node, as its metrics last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftRole {
    Leader,
    Candidate,
    Follower,
    Learner,
    Shutdown,
}

/// What request handlers and the timer use to reach the replicated state. Cheap to clone.
pub struct NodeHandle<S: Replicated> {
    raft: Raft<TypeConfig<S>>,
    machine: StateMachineStore<S>,
    peers: Arc<Vec<Peer>>,
    me: Peer,
    /// When this member last accepted an append (entries or heartbeat) from a leader.
    leader_contact: Arc<LeaderContact>,
}

/// A follower's last contact with its leader, so that it stops naming a dead one (openraft's
/// metrics keep the old leader until a new vote).
struct LeaderContact {
    since: std::time::Instant,
    /// Milliseconds after `since` of the last accepted append; 0 = never.
    last_ms: std::sync::atomic::AtomicU64,
    /// Silence after which the leader is not named any more (the election timeout).
    forget_after_ms: u64,
}

impl<S: Replicated> Clone for NodeHandle<S> {
    fn clone(&self) -> Self {
        Self {
            raft: self.raft.clone(),
            machine: self.machine.clone(),
            peers: self.peers.clone(),
            me: self.me.clone(),
            leader_contact: self.leader_contact.clone(),
        }
    }
}

/// Milliseconds since the Unix epoch on this host's clock.
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<S: Replicated> NodeHandle<S> {
    /// Replicates `cmd` through raft and returns what applying it answered.
    ///
    /// # Errors
    /// [`ControllerError::NotLeader`] on a follower (with the leader's address when known);
    /// [`ControllerError::Timeout`] without a quorum for [`QUORUM_WAIT`];
    /// [`ControllerError::Raft`] when the node is shutting down or raft failed.
    pub async fn write(&self, cmd: S::Cmd) -> Result<S::Out, ControllerError> {
        let stamped = Stamped::<S> {
            now_ms: wall_clock_ms(),
            cmd,
        };
        let ms = QUORUM_WAIT.as_millis() as u64;
        let written = tokio::time::timeout(QUORUM_WAIT, self.raft.client_write(stamped)).await;
        match written.map_err(|_| ControllerError::Timeout { ms })? {
            Ok(response) => Ok(response
                .data
                .expect("a normal entry's apply returns its outcome")),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ControllerError::NotLeader {
                    leader: f.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(ControllerError::Raft(e.to_string())),
        }
    }

    /// Reads the state on the leader after confirming with a quorum that it still leads and
    /// waiting until it has applied everything committed before the read (a linearizable read:
    /// a deposed leader cannot answer with stale state).
    ///
    /// # Errors
    /// As [`NodeHandle::write`].
    pub async fn read<T>(&self, f: impl FnOnce(&S) -> T) -> Result<T, ControllerError> {
        let ms = QUORUM_WAIT.as_millis() as u64;
        let confirmed = tokio::time::timeout(QUORUM_WAIT, self.raft.ensure_linearizable()).await;
        match confirmed.map_err(|_| ControllerError::Timeout { ms })? {
            Ok(_) => Ok(self.local(f)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(fwd))) => {
                Err(ControllerError::NotLeader {
                    leader: fwd.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(ControllerError::Raft(e.to_string())),
        }
    }

    /// Reads this node's applied state as it is (possibly behind the leader's).
    pub fn local<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&self.machine.applied().state)
    }

    /// The index of the last entry this node applied (None before the first).
    pub fn applied_index(&self) -> Option<u64> {
        self.machine.applied().last_applied.map(|id| id.index)
    }

    /// The role this node's raft last reported.
    pub fn role(&self) -> RaftRole {
        match self.raft.metrics().borrow().state {
            ServerState::Leader => RaftRole::Leader,
            ServerState::Candidate => RaftRole::Candidate,
            ServerState::Follower => RaftRole::Follower,
            ServerState::Learner => RaftRole::Learner,
            ServerState::Shutdown => RaftRole::Shutdown,
        }
    }

    /// The raft term this node is in.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The member this node believes leads, if any: itself while it leads, or the leader
    /// of its term if it accepted an append from it within the election timeout. A dead
    /// leader stays in openraft's metrics until a new one is voted in (1.25-1.5 s); naming it
    /// that long sends brokers and mqadmin to it.
    pub fn leader(&self) -> Option<Peer> {
        let leader = self.raft.metrics().borrow().current_leader?;
        if leader != self.me.id && !self.heard_from_leader() {
            return None;
        }
        self.peers.iter().find(|p| p.id == leader).cloned()
    }

    fn heard_from_leader(&self) -> bool {
        use std::sync::atomic::Ordering;
        let contact = &self.leader_contact;
        let last = contact.last_ms.load(Ordering::Relaxed);
        let now = contact.since.elapsed().as_millis() as u64 + 1;
        last > 0 && now.saturating_sub(last) <= contact.forget_after_ms
    }

    /// A leader's append was accepted (the raft RPC handler calls this).
    pub(crate) fn leader_heard(&self) {
        use std::sync::atomic::Ordering;
        let now = self.leader_contact.since.elapsed().as_millis() as u64 + 1;
        self.leader_contact
            .last_ms
            .fetch_max(now, Ordering::Relaxed);
    }

    /// This node.
    pub fn me(&self) -> &Peer {
        &self.me
    }

    /// Every member of the group, this one included.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    pub(crate) fn raft(&self) -> &Raft<TypeConfig<S>> {
        &self.raft
    }
}

/// A running controller node. Dropping it stops it abruptly (the runtime's tasks are
/// cancelled, nothing more is written: like a crash, which the stores are built for);
/// [`ControllerNode::shutdown`] stops raft first.
pub struct ControllerNode<S: Replicated> {
    handle: NodeHandle<S>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl<S: Replicated> ControllerNode<S> {
    /// Opens the stores, binds the member's port, starts raft and the leader timer.
    /// On a first start (empty store) every member proposes the same initial membership:
    /// openraft accepts that from several members at once, so any two of three can form the
    /// group without a designated bootstrap node.
    ///
    /// Must not be called from inside a tokio runtime (it blocks on its own).
    ///
    /// # Errors
    /// A peer list without this member, a store that cannot be opened, the port taken.
    /// `initial` is the state of a member with an empty store (a snapshot replaces it).
    pub fn start<V: Service<S>>(
        config: NodeConfig,
        initial: S,
        service: V,
    ) -> Result<Self, ControllerError> {
        let me = config.me()?.clone();
        let raft_config = Arc::new(config.raft_config()?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("controller-{}", me.name))
            .enable_all()
            .build()
            .map_err(ControllerError::Runtime)?;
        let log = LogStore::<S>::open(&config.store_dir)?;
        let machine = StateMachineStore::<S>::open(&config.store_dir, initial)?;
        let listen_addr = listen_addr(&me.addr);
        let listener = runtime.block_on(tokio::net::TcpListener::bind(&listen_addr));
        let listener = listener.map_err(|source| ControllerError::Bind {
            addr: listen_addr.clone(),
            source,
        })?;
        let raft = runtime
            .block_on(Raft::new(me.id, raft_config, Network, log, machine.clone()))
            .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let handle = NodeHandle {
            raft,
            machine,
            peers: Arc::new(config.peers.clone()),
            me,
            leader_contact: Arc::new(LeaderContact {
                since: std::time::Instant::now(),
                last_ms: std::sync::atomic::AtomicU64::new(0),
                forget_after_ms: config.election_timeout_ms,
            }),
        };
        let service = Arc::new(service);
        runtime.spawn(server::serve(listener, handle.clone(), service.clone()));
        runtime.spawn(initialize(handle.clone()));
        let scan = Duration::from_millis(config.scan_interval_ms.max(1));
        runtime.spawn(leader_timer(handle.clone(), service, scan));
        tracing::info!(
            group = %config.group, me = %handle.me.name, id = handle.me.id, addr = %listen_addr,
            store = %config.store_dir.display(), "controller started"
        );
        Ok(Self {
            handle,
            runtime: Some(runtime),
        })
    }

    /// What handlers use; also valid after shutdown (every call then fails).
    pub fn handle(&self) -> &NodeHandle<S> {
        &self.handle
    }

    /// Runs `future` on the node's runtime and waits for it (for callers outside it: the
    /// binary, tests).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .block_on(future)
    }

    /// Stops raft cleanly, then the listener and every connection.
    pub fn shutdown(mut self) {
        if let Some(runtime) = self.runtime.take() {
            if let Err(e) = runtime.block_on(self.handle.raft.shutdown()) {
                tracing::warn!(error = %e, "raft did not stop cleanly");
            }
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        tracing::info!(me = %self.handle.me.name, "controller stopped");
    }
}

impl<S: Replicated> Drop for ControllerNode<S> {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The address to bind for a member address: its port on every interface, since the host
/// in the peer list is how the others reach it (possibly through NAT or a name).
fn listen_addr(member_addr: &str) -> String {
    let port = member_addr.rsplit_once(':').map_or("", |(_, port)| port);
    format!("0.0.0.0:{port}")
}

/// Proposes the initial membership when the store is empty.
async fn initialize<S: Replicated>(node: NodeHandle<S>) {
    match node.raft.is_initialized().await {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "raft stopped before initialization");
            return;
        }
    }
    let members: BTreeMap<u64, BasicNode> = node
        .peers
        .iter()
        .map(|p| (p.id, BasicNode::new(&p.addr)))
        .collect();
    match node.raft.initialize(members).await {
        Ok(()) => tracing::info!(me = %node.me.name, "controller group initialized"),
        // Another member's initial membership arrived first: the same one, nothing to do.
        Err(e) => tracing::debug!(error = %e, "controller group already initialized"),
    }
}

/// On the leader, every `scan`: asks the service for its periodic command and replicates it.
async fn leader_timer<S: Replicated, V: Service<S>>(
    node: NodeHandle<S>,
    service: Arc<V>,
    scan: Duration,
) {
    let mut interval = tokio::time::interval(scan);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // (term, when this timer first saw this node lead it): one scan late at most, which
    // only lengthens a new leader's grace.
    let mut led: Option<(u64, u64)> = None;
    loop {
        interval.tick().await;
        if node.role() == RaftRole::Shutdown {
            return;
        }
        if node.role() != RaftRole::Leader {
            led = None;
            continue;
        }
        let term = node.term();
        let since = match led {
            Some((led_term, since)) if led_term == term => since,
            _ => {
                let since = wall_clock_ms();
                led = Some((term, since));
                since
            }
        };
        let Some(cmd) = service.periodic(&node, wall_clock_ms(), since) else {
            continue;
        };
        tracing::debug!(?cmd, "leader timer proposes");
        match node.write(cmd).await {
            Ok(out) => service.after_tick(&node, out).await,
            Err(e) => tracing::warn!(error = %e, "leader timer command not replicated"),
        }
    }
}
