//! One schedule: the controller's state machine, N modelled brokers, a faulty network and
//! clients, driven step by step by a seeded generator; the checker runs after every step.

use std::collections::VecDeque;

use rmq_election::{
    BrokerId, Command, ElectionConfig, ElectionState, HeartbeatBatch, Outcome, ReplicaInfo,
};

use super::broker::{Broker, Role};
use super::checker::{Acked, BrokerSnapshot, Checker, Violation};
use super::master::Broken;
use super::network::{Message, Network, Node};
use super::rng::Rng;

mod step;

pub const GROUP: &str = "broker-a";
const CLUSTER: &str = "sim";
const HEARTBEAT_TIMEOUT_MS: u64 = 1_000;
/// Controller members: each keeps its own receipt times of heartbeats; one leads.
const MEMBERS: usize = 3;

/// One controller member's receipt table (in memory, lost when it restarts).
#[derive(Clone, Debug, Default)]
pub struct Member {
    /// When this member last received each broker's heartbeat (simulated time).
    heard: std::collections::BTreeMap<BrokerId, u64>,
    started_ms: u64,
}

impl Member {
    /// The controller's rule (`controller/src/rocketmq/receipts.rs`): heard within the
    /// timeout, or never heard since a start less than a timeout ago.
    fn heard(&self, now_ms: u64, id: BrokerId, timeout_ms: u64) -> bool {
        let since = self.heard.get(&id).copied().unwrap_or(self.started_ms);
        now_ms <= since.saturating_add(timeout_ms)
    }

    fn restart(&mut self, now_ms: u64) {
        self.heard.clear();
        self.started_ms = now_ms;
    }
}

/// A rule broken on purpose, to prove the checker notices (see the checker's tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// The master stops counting a replica as soon as it asks to drop it (RocketMQ #5663).
    ShrinkBeforeApproval,
    /// The master counts a replica only once it learnt that its expansion was approved.
    CountApprovedOnly,
    /// A slave takes the stream of any broker that acts as master, whatever its epoch.
    SlaveFollowsAnyMaster,
    /// The master proposes a replica that caught up once, without its counting mark (the
    /// broker's rule before commit 87c5b1c).
    ProposeOnceCaughtUp,
    /// The master drops a pending proposal's members from the count on an unknown answer
    /// (the broker's rule before commit 87c5b1c).
    ForgetPendingOnUnknown,
}

impl Mutation {
    /// The upkeep rule the mutation breaks, if it is one.
    pub fn broken(self) -> Option<Broken> {
        match self {
            Self::ProposeOnceCaughtUp => Some(Broken::ProposeOnceCaughtUp),
            Self::ForgetPendingOnUnknown => Some(Broken::ForgetPendingOnUnknown),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub brokers: u64,
    pub steps: usize,
    pub all_ack_in_sync_state_set: bool,
    pub min_in_sync_replicas: usize,
    pub enable_elect_unclean_master: bool,
    pub mutation: Option<Mutation>,
}

impl SimConfig {
    pub fn safe(steps: usize) -> Self {
        Self {
            brokers: 3,
            steps,
            all_ack_in_sync_state_set: true,
            min_in_sync_replicas: 1,
            enable_elect_unclean_master: false,
            mutation: None,
        }
    }
}

/// What a schedule did, summed over schedules to show the faults really happened.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub acked: u64,
    pub elections: u64,
    pub masterless: u64,
    pub sync_state_changes: u64,
    pub refusals: u64,
    pub crashes: u64,
    pub truncated_records: u64,
    /// Heartbeats written in batches of more than one (group commit), and duplicates of a
    /// replica merged into a batch.
    pub batched_heartbeats: u64,
    pub merged_heartbeats: u64,
    /// Proposals sent again while their outcome was unknown.
    pub resent: u64,
    /// Proposals the controller refused in its log (the pending one is resolved).
    pub definite_refusals: u64,
    /// Expansions approved (a joining replica got into the set).
    pub joined: u64,
    /// Slaves stopped (SIGSTOP) right after catching up.
    pub freezes: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.acked += other.acked;
        self.elections += other.elections;
        self.masterless += other.masterless;
        self.sync_state_changes += other.sync_state_changes;
        self.refusals += other.refusals;
        self.crashes += other.crashes;
        self.truncated_records += other.truncated_records;
        self.batched_heartbeats += other.batched_heartbeats;
        self.merged_heartbeats += other.merged_heartbeats;
        self.resent += other.resent;
        self.definite_refusals += other.definite_refusals;
        self.joined += other.joined;
        self.freezes += other.freezes;
    }
}

#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub step: usize,
    pub violation: Violation,
    pub trace: Vec<String>,
}

struct Pending {
    id: u64,
    broker: BrokerId,
    epoch: u32,
    offset: u64,
}

pub struct World {
    config: SimConfig,
    rng: Rng,
    now_ms: u64,
    /// The controller leader's clock is `now_ms + skew` (clock jumps, leader changes).
    controller_skew_ms: i64,
    /// The controller quorum answers nothing before this time (no quorum, or a leader lost
    /// and not yet replaced).
    controller_down_until_ms: u64,
    controller: ElectionState,
    /// Every member's receipts, and which member leads (its receipts decide its scans).
    members: Vec<Member>,
    leader: usize,
    network: Network,
    brokers: Vec<Broker>,
    next_heartbeat_ms: Vec<u64>,
    next_tick_ms: u64,
    /// Heartbeats the controller received while its previous heartbeat write was in flight:
    /// written together as one `Command::Heartbeats` (the leader's group commit).
    heartbeats: HeartbeatBatch,
    pending: Vec<Pending>,
    acked: Vec<Acked>,
    next_send_id: u64,
    checker: Checker,
    stats: Stats,
    trace: Option<VecDeque<String>>,
    /// A broker found its log differing below the consistent point.
    divergence: Option<Violation>,
}

impl World {
    pub fn new(seed: u64, config: SimConfig, traced: bool) -> Self {
        let election = ElectionConfig {
            enable_elect_unclean_master: config.enable_elect_unclean_master,
            heartbeat_timeout_ms: HEARTBEAT_TIMEOUT_MS,
        };
        let mut rng = Rng::new(seed);
        let brokers: Vec<Broker> = (1..=config.brokers)
            .map(|id| {
                Broker::new(
                    id,
                    rng.range(0, 3) as i32,
                    config.mutation == Some(Mutation::SlaveFollowsAnyMaster),
                )
            })
            .collect();
        let mut world = Self {
            checker: Checker::new(
                // The two acknowledgement mutations are expected to lose data outright; the
                // holdings check would flag them earlier, before the loss shows.
                config.all_ack_in_sync_state_set
                    && !matches!(
                        config.mutation,
                        Some(Mutation::CountApprovedOnly | Mutation::ShrinkBeforeApproval)
                    ),
            ),
            next_heartbeat_ms: vec![0; brokers.len()],
            config,
            rng,
            now_ms: 0,
            controller_skew_ms: 0,
            controller_down_until_ms: 0,
            controller: ElectionState::new(election),
            members: vec![Member::default(); MEMBERS],
            leader: 0,
            network: Network::new(60, 20, 10),
            brokers,
            next_tick_ms: 100,
            heartbeats: HeartbeatBatch::new(),
            pending: Vec::new(),
            acked: Vec::new(),
            next_send_id: 1,
            stats: Stats::default(),
            trace: traced.then(VecDeque::new),
            divergence: None,
        };
        world.bootstrap();
        world
    }

    fn note(&mut self, event: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            if trace.len() == 60 {
                trace.pop_front();
            }
            trace.push_back(format!("t={} {}", self.now_ms, event()));
        }
    }

    fn controller_now(&self) -> u64 {
        (self.now_ms as i64 + self.controller_skew_ms).max(0) as u64
    }

    fn info(&self) -> ReplicaInfo {
        self.controller
            .replica_info(GROUP)
            .expect("the group is never cleaned in the simulation")
    }

    /// Registers every broker; broker 1 wins the first election.
    fn bootstrap(&mut self) {
        for id in 1..=self.config.brokers {
            let code = format!("10.0.0.{id}:10911;0");
            let apply = Command::ApplyBrokerId {
                cluster: CLUSTER.into(),
                broker_name: GROUP.into(),
                broker_id: id,
                register_check_code: code,
            };
            assert_eq!(
                self.controller.apply(0, &apply),
                Outcome::BrokerIdApplied { broker_id: id }
            );
            self.controller.apply(0, &self.heartbeat(id));
        }
        let elect = Command::ElectMaster {
            broker_name: GROUP.into(),
            broker_id: Some(1),
            designate: false,
        };
        let outcome = self.controller.apply(0, &elect);
        assert!(matches!(outcome, Outcome::Elected(_)), "{outcome:?}");
        self.broadcast_info();
    }

    fn heartbeat(&self, id: BrokerId) -> Command {
        let broker = &self.brokers[id as usize - 1];
        Command::Heartbeat {
            cluster: CLUSTER.into(),
            broker_name: GROUP.into(),
            broker_id: id,
            address: format!("10.0.0.{id}:10911"),
            epoch: broker.last_epoch(),
            max_offset: broker.log.len() as i64,
            confirm_offset: broker.log.len() as i64,
            election_priority: broker.priority,
            timeout_ms: None,
        }
    }

    fn broadcast_info(&mut self) {
        let info = self.info();
        for id in 1..=self.config.brokers {
            self.network.send(
                &mut self.rng,
                self.now_ms,
                Message::Info {
                    to: id,
                    info: info.clone(),
                },
            );
        }
    }

    pub fn run(mut self, seed: u64) -> Result<Stats, Failure> {
        for step in 0..self.config.steps {
            self.step();
            if let Err(violation) = self.check() {
                let trace = self.trace.take().map(Vec::from).unwrap_or_default();
                return Err(Failure {
                    seed,
                    step,
                    violation,
                    trace,
                });
            }
        }
        self.stats.truncated_records = self.brokers.iter().map(|b| b.truncated_records).sum();
        Ok(self.stats)
    }

    fn check(&mut self) -> Result<(), Violation> {
        if let Some(violation) = self.divergence.take() {
            return Err(violation);
        }
        let info = self.info();
        let snapshots: Vec<BrokerSnapshot> = self
            .brokers
            .iter()
            .map(|b| BrokerSnapshot {
                id: b.id,
                log: &b.log,
                history: &b.history,
                known_epoch: b.known_epoch,
                master_at: b.master_view().map(|view| view.master_epoch()),
            })
            .collect();
        self.checker.check(&info, &snapshots, &self.acked)
    }
}
