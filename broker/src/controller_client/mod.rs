//! The broker's controller client (controller mode, RocketMQ 5's `ReplicasManager`): core 0
//! finds the controller leader (CONTROLLER_GET_METADATA_INFO), gets and applies for a broker
//! id (CONTROLLER_GET_NEXT_BROKER_ID / CONTROLLER_APPLY_BROKER_ID, kept in `identity`),
//! registers (CONTROLLER_REGISTER_BROKER), heartbeats every controller member every
//! `brokerHeartbeatInterval`, each concurrently (BROKER_HEARTBEAT: epoch, max offset,
//! priority, timeout; followers keep receipt times, the leader records; every
//! [`UNRECORDED_HEARTBEAT_INTERVAL`] while no leader recorded one for an interval), follows
//! role changes (NOTIFY_BROKER_ROLE_CHANGED pushed by the controller, [`notified`], and
//! CONTROLLER_GET_REPLICA_INFO every `syncBrokerMetadataPeriod`), asks for an election when
//! its group has no master (CONTROLLER_ELECT_MASTER), and applies what it learns through
//! `replication::role`.
//!
//! Fencing: a master whose heartbeats have not been answered for
//! `controllerHeartBeatTimeoutMills` minus one `brokerHeartbeatInterval` (counted from the
//! *sending* of the last answered one, so it fences before the controller can have declared
//! it dead; only answers of a member that recorded the heartbeat as raft leader count), or
//! that the controller refuses with CONTROLLER_FENCED_MASTER_EPOCH, or whose
//! CONTROLLER_ALTER_SYNC_STATE_SET the leader refuses with CONTROLLER_INVALID_MASTER, stops
//! accepting writes (`role::fence`) until the controller confirms it as master again (asked
//! at once when a heartbeat is answered again, and at once after such a refusal).
//!
//! Controller answers acted on beyond RocketMQ 5.3.3 (whose `ReplicasManager` logs every
//! failed call and waits for its next period): CONTROLLER_NOT_LEADER drops the leader it was
//! sent to, and when it names the leader (rmq-fast's controllers,
//! `NOT_LEADER_KNOWN_LEADER`) the round is retried there at once, rather than asking the
//! deposed leader until `syncControllerMetadataPeriod` passes. CONTROLLER_INVALID_MASTER to an
//! ALTER_SYNC_STATE_SET of this master's epoch is decided in the controller's log (a write:
//! only the leader answers it, after applying everything before): the group's master is not
//! this broker any more, and the master only changes with a new master epoch, so this
//! mastership is over for good, as with CONTROLLER_FENCED_MASTER_EPOCH. Fencing on it can
//! only cost writes this broker must not take anyway (a RocketMQ controller that answers it
//! from a state that lags the log costs a fence until the replica info, asked at once,
//! confirms the master).
//!
//! Sync-state set (master, every `checkSyncStateSetPeriod`, [`sync_state`]): a slave is near
//! when, on every shard, it lately (`haMaxTimeSlaveNotCatchup`) reported at least the
//! master's end as of its previous report (`ShardReplica::progress`: under steady load a
//! slave never holds the very end). A near slave is first counted for acknowledgements, then
//! proposed with CONTROLLER_ALTER_SYNC_STATE_SET once it holds everything ever acknowledged;
//! a member leaves the count only once the controller approved a set without it; a proposal
//! whose outcome is unknown keeps counting and is re-sent until the controller decides it.
//! Heartbeats and fencing run in their own tasks, so a role change or a hanging call in this
//! loop delays neither; and a role change notification drops the loop's call in flight
//! (`Controllers::interrupted_by`), so a member that cannot answer (the deposed leader, cut
//! off) does not hold a notification back for a call's timeout.

mod addresses;
mod calls;
mod identity;
pub mod sync_state;

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rmq_core::body::controller::SyncStateSet;
use rmq_core::body::decode_body;
use rmq_core::remoting::controller::{
    BrokerHeartbeatRequestHeader, NotifyBrokerRoleChangedRequestHeader,
    RegisterBrokerToControllerRequestHeader, controller_response_code,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

pub use calls::{CallError, ReplicaInfo};

use crate::context::SharedContext;
use crate::core_context::CoreContext;
use crate::replication::role;
use calls::Controllers;
use identity::{Claim, IdentityFiles};
use sync_state::SyncStateUpkeep;

/// Role notifications the controller pushed, waiting for the client loop.
#[derive(Default)]
pub struct Inbox {
    latest: Mutex<Option<ReplicaInfo>>,
}

impl Inbox {
    /// The newest notification not applied yet.
    pub fn take(&self) -> Option<ReplicaInfo> {
        self.latest.lock().expect("inbox lock").take()
    }

    /// A notification waits to be applied.
    pub fn pending(&self) -> bool {
        self.latest.lock().expect("inbox lock").is_some()
    }
}

/// Starts the client on core 0 in controller mode.
pub fn start(core: &Rc<CoreContext>) {
    if core.core == 0 && core.broker.role.controller_mode() {
        rmq_net::rt::spawn(run(core.clone())).detach();
    }
}

/// NOTIFY_BROKER_ROLE_CHANGED (1008): queued for the client loop; answers SUCCESS.
pub fn notified(broker: &SharedContext, req: &RemotingCommand) -> RemotingCommand {
    let reply = |code, remark: Option<String>| RemotingCommand::response_for(req, code, remark);
    if !broker.role.controller_mode() {
        let remark = "this request only for controllerMode ".to_string();
        return reply(ResponseCode::SystemError.code(), Some(remark));
    }
    let head = match NotifyBrokerRoleChangedRequestHeader::read(req) {
        Ok(head) => head,
        Err(error) => return reply(ResponseCode::SystemError.code(), Some(error.to_string())),
    };
    let sss: SyncStateSet = match req.body.is_empty() {
        true => SyncStateSet::default(),
        false => match decode_body(&req.body) {
            Ok(sss) => sss,
            Err(error) => return reply(ResponseCode::SystemError.code(), Some(error.to_string())),
        },
    };
    let info = ReplicaInfo {
        master_id: head.master_broker_id,
        master_addr: head.master_address.filter(|a| !a.is_empty()),
        master_epoch: head.master_epoch.unwrap_or(-1),
        sync_state_set: sss.sync_state_set.into_iter().collect(),
        sync_state_set_epoch: head
            .sync_state_set_epoch
            .unwrap_or(sss.sync_state_set_epoch),
    };
    tracing::info!(?info, "controller notified a role change");
    *broker.controller_inbox.latest.lock().expect("inbox lock") = Some(info);
    reply(ResponseCode::Success.code(), None)
}

struct Client {
    core: Rc<CoreContext>,
    broker: SharedContext,
    controllers: Rc<Controllers>,
    beat: Rc<Beat>,
    /// (leader, id) the heartbeat task reports to.
    target: Target,
    /// The controllers' addresses (`addresses`) and when they were resolved.
    addrs: Vec<String>,
    addrs_at: Option<Instant>,
    leader: Option<String>,
    /// When the leader was last looked up (`syncControllerMetadataPeriod`).
    leader_at: Option<Instant>,
    id: Option<i64>,
    registered: bool,
    /// Newest master epoch applied.
    epoch: i32,
    /// Heartbeat answers, watched by the fencing task.
    live: Rc<Liveness>,
    last_sync: Option<Instant>,
    /// This mastership's sync-state set upkeep (None while not master).
    upkeep: Option<SyncStateUpkeep>,
    last_sss_check: Option<Instant>,
}

async fn run(core: Rc<CoreContext>) {
    let broker = core.broker.clone();
    let live: Rc<Liveness> = Rc::default();
    let beat = Rc::new(Beat {
        core: core.clone(),
        broker: broker.clone(),
        controllers: Rc::new(Controllers::default()),
        live: live.clone(),
    });
    // The loop's own calls give way to a role change notification (applied at the top of
    // the loop); heartbeats, in their own task, never wait for a notification anyway.
    let notified = broker.clone();
    let controllers = Rc::new(Controllers::interrupted_by(move || {
        notified.controller_inbox.pending()
    }));
    let target: Target = Rc::default();
    rmq_net::rt::spawn(heartbeat_loop(beat.clone(), target.clone())).detach();
    let mut client = Client {
        broker: broker.clone(),
        core,
        controllers,
        beat,
        target,
        addrs: Vec::new(),
        addrs_at: None,
        leader: None,
        leader_at: None,
        id: None,
        registered: false,
        epoch: -1,
        live,
        last_sync: None,
        upkeep: None,
        last_sss_check: None,
    };
    rmq_net::rt::spawn(fence_watch(broker.clone(), client.live.clone())).detach();
    let heartbeat_every = ms(broker.config.broker_heartbeat_interval);
    let mut last_beat: Option<Instant> = None;
    let mut retried = false;
    while !broker.stopping.load(Ordering::Acquire) {
        if let Some(info) = broker.controller_inbox.take() {
            client.apply(info).await;
        }
        // A fenced master heard again asks for its role at once, not at the next round.
        let heard = client.live.heard_while_fenced.get();
        if heard || last_beat.is_none_or(|at| at.elapsed() >= heartbeat_every) {
            last_beat = Some(Instant::now());
            if let Err(error) = client.round().await {
                tracing::warn!(%error, "controller round failed");
                // Once in a row: two members naming each other during a leader change do
                // not keep the loop busy.
                if client.after_error(&error) && !retried {
                    last_beat = None;
                    retried = true;
                    continue;
                }
            }
            retried = false;
        }
        rmq_net::rt::sleep(Duration::from_millis(50)).await;
    }
}

/// What the fencing task watches.
#[derive(Default)]
struct Liveness {
    /// When the last answered heartbeat was sent.
    ok_sent: std::cell::Cell<Option<Instant>>,
    /// A role from the controller was applied (before, nothing of ours to fence).
    applied: std::cell::Cell<bool>,
    /// A fenced master was heard again: the client loop asks for the replica info at once.
    heard_while_fenced: std::cell::Cell<bool>,
    /// A member other than the known leader recorded a heartbeat as leader: the client loop
    /// takes it as the leader.
    recorded_by: std::cell::RefCell<Option<String>>,
}

/// Fences a master whose heartbeats went unanswered for `controller_fence_bound_ms`
/// (`controllerHeartBeatTimeoutMills` minus one `brokerHeartbeatInterval`: below the
/// controller's detection bound; see the module docs). Its own task, checking every 50 ms,
/// so a controller call that hangs cannot delay it.
async fn fence_watch(broker: SharedContext, live: Rc<Liveness>) {
    let limit = Duration::from_millis(broker.config.controller_fence_bound_ms());
    while !broker.stopping.load(Ordering::Acquire) {
        rmq_net::rt::sleep(Duration::from_millis(50)).await;
        if !live.applied.get() || broker.is_slave() {
            continue;
        }
        let cut_off = live.ok_sent.get().is_none_or(|at| at.elapsed() > limit);
        let role = broker.role.snapshot();
        if cut_off && role.role.is_master() {
            tracing::error!(
                epoch = role.epoch,
                ?limit,
                "master cannot reach the controller: no more writes until it confirms us"
            );
            role::fence(&broker);
        }
    }
}

/// What a heartbeat needs; heartbeats run in their own task (`heartbeat_loop`), so a role
/// change that takes the client loop a while never delays them.
struct Beat {
    core: Rc<CoreContext>,
    broker: SharedContext,
    controllers: Rc<Controllers>,
    live: Rc<Liveness>,
}

/// Whom the heartbeat task reports to, as the client loop last registered: the leader it
/// believes in, this broker's id and every controller member.
#[derive(Clone, Debug)]
struct BeatTarget {
    leader: String,
    id: i64,
    members: Vec<String>,
}

impl BeatTarget {
    /// The leader first, then every other member once.
    fn addresses(&self) -> Vec<String> {
        let mut all = vec![self.leader.clone()];
        for member in &self.members {
            if !all.contains(member) {
                all.push(member.clone());
            }
        }
        all
    }
}

type Target = Rc<std::cell::RefCell<Option<BeatTarget>>>;

/// How often a broker heartbeats every controller member while none of its heartbeats has
/// been recorded by a raft leader for longer than one `brokerHeartbeatInterval` (a
/// controller leader change, or a partition from the leader). A new raft leader then
/// records one within ~100 ms of its election, instead of up to one interval later, which
/// is what a healthy master's fence during a leader change is made of (the fence bound
/// counts from the sending of the last *recorded* heartbeat, so heartbeating more often
/// changes nothing about the safety argument). 100 ms is the controllers' raft heartbeat
/// period: a leader elected is known to its followers within about that. The cost is ten
/// heartbeats a second per member and broker, only while nothing records them (a follower
/// keeps a receipt time in memory; an unanswered member is skipped while its call is in
/// flight, so calls never pile up).
pub const UNRECORDED_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// Heartbeats every `brokerHeartbeatInterval` to every controller member (RocketMQ 5's
/// `sendHeartbeatToController`), each in its own task: a member that does not answer (cut
/// off, its host gone) delays no other. A member whose previous heartbeat is still waiting
/// for an answer is skipped that round, so unanswered calls never pile up. Followers keep
/// receipt times (a new leader judges silence by them); only an answer that says the raft
/// leader recorded it counts for fencing (`Beat::send`). Once the last recorded heartbeat
/// was sent more than one interval ago, rounds come every [`UNRECORDED_HEARTBEAT_INTERVAL`]
/// until one is recorded again.
async fn heartbeat_loop(beat: Rc<Beat>, target: Target) {
    let every = ms(beat.broker.config.broker_heartbeat_interval);
    let hurried = UNRECORDED_HEARTBEAT_INTERVAL.min(every);
    let waiting: Rc<std::cell::RefCell<BTreeSet<String>>> = Rc::default();
    let mut last_round = Instant::now();
    while !beat.broker.stopping.load(Ordering::Acquire) {
        // The regular round when it is nearer than a hurried one (a zero wait only while no
        // target is known yet: wait a hurried period then).
        let next_regular = every.saturating_sub(last_round.elapsed());
        let wait = match next_regular.is_zero() {
            true => hurried,
            false => hurried.min(next_regular),
        };
        rmq_net::rt::sleep(wait).await;
        let recorded_lately = beat
            .live
            .ok_sent
            .get()
            .is_some_and(|at| at.elapsed() <= every);
        let due = if recorded_lately { every } else { hurried };
        if last_round.elapsed() < due {
            continue;
        }
        let current = target.borrow().clone();
        let Some(current) = current else {
            continue;
        };
        last_round = Instant::now();
        let head = Rc::new(beat.head(current.id).await);
        let leader = Rc::new(current.leader.clone());
        for addr in current.addresses() {
            if !waiting.borrow_mut().insert(addr.clone()) {
                continue;
            }
            let (beat, head, leader, waiting) =
                (beat.clone(), head.clone(), leader.clone(), waiting.clone());
            rmq_net::rt::spawn(async move {
                if let Err(error) = beat.send(&addr, &leader, &head).await {
                    tracing::debug!(%error, "heartbeat failed");
                }
                waiting.borrow_mut().remove(&addr);
            })
            .detach();
        }
    }
}

impl Beat {
    /// One heartbeat to the leader the client loop found (registration).
    async fn heartbeat(&self, leader: &str, id: i64) -> Result<(), CallError> {
        let head = self.head(id).await;
        self.send(leader, leader, &head).await
    }

    async fn head(&self, id: i64) -> BrokerHeartbeatRequestHeader {
        let (epoch, max_offset) = self.progress().await;
        let config = &self.broker.config;
        BrokerHeartbeatRequestHeader {
            cluster_name: config.broker_cluster_name.clone(),
            broker_addr: self.broker.broker_addr.to_string(),
            broker_name: config.broker_name.clone(),
            broker_id: Some(id),
            epoch: Some(epoch),
            max_offset: Some(max_offset),
            confirm_offset: None,
            heartbeat_timeout_mills: Some(config.controller_heart_beat_timeout_mills),
            election_priority: Some(config.broker_election_priority),
        }
    }

    /// Sends `head` to member `addr`. Fencing counts the answer only when the raft leader
    /// recorded it (`calls::heartbeat`): a follower's answer says nothing about what a new
    /// leader knows of this broker.
    async fn send(
        &self,
        addr: &str,
        leader: &str,
        head: &BrokerHeartbeatRequestHeader,
    ) -> Result<(), CallError> {
        let sent = Instant::now();
        match calls::heartbeat(&self.controllers, addr, leader, head).await {
            Ok(recorded) => {
                if !recorded {
                    return Ok(());
                }
                if self.live.ok_sent.get().is_none_or(|at| at < sent) {
                    self.live.ok_sent.set(Some(sent));
                }
                if addr != leader {
                    // The leader changed: the client loop talks to this one from now on.
                    *self.live.recorded_by.borrow_mut() = Some(addr.to_string());
                }
                if self.broker.role.snapshot().role.is_master() && self.broker.is_slave() {
                    // Fenced (e.g. while the controllers changed leader) and heard again.
                    self.live.heard_while_fenced.set(true);
                }
                Ok(())
            }
            Err(error) => {
                if error.code() == Some(controller_response_code::CONTROLLER_FENCED_MASTER_EPOCH) {
                    role::fence(&self.broker);
                }
                Err(error)
            }
        }
    }

    /// This broker's newest epoch and its log size: the bytes of every shard (shards own
    /// separate offset ranges, so the sum is what compares between replicas).
    async fn progress(&self) -> (i32, i64) {
        let mut epoch = -1;
        let mut total = 0i64;
        for shard in 0..self.broker.shard_count {
            let read = self
                .core
                .on_shard(shard, move |store| async move {
                    let base = rmq_storage::shard_base(shard);
                    (store.last_epoch(), store.max_physical_offset() - base)
                })
                .await;
            if let Ok((last, size)) = read {
                epoch = epoch.max(last);
                total += size;
            }
        }
        (epoch, total)
    }
}

impl Client {
    /// The controllers' addresses, resolved again when due (`addresses`).
    async fn addresses(&mut self) -> Vec<String> {
        let dns = self.broker.config.fetch_controller_addr_by_dns_lookup;
        let due = self
            .addrs_at
            .is_none_or(|at| dns && at.elapsed() >= addresses::DNS_REFRESH);
        if due || self.addrs.is_empty() {
            match addresses::resolve(&self.broker.config).await {
                Ok(found) => {
                    if found != self.addrs {
                        tracing::info!(?found, "controller addresses");
                    }
                    self.addrs = found;
                    self.addrs_at = Some(Instant::now());
                }
                // Keep what was found before (RocketMQ does the same).
                Err(error) => tracing::warn!(%error, "controller addresses not resolved"),
            }
        }
        self.addrs.clone()
    }

    /// The controller leader: asked of the controllers when unknown, and again every
    /// `syncControllerMetadataPeriod` (a failed refresh keeps the one known).
    async fn leader(&mut self) -> Result<String, CallError> {
        let period = ms(self.broker.config.sync_controller_metadata_period);
        if let Some(recorded_by) = self.live.recorded_by.take()
            && self.leader.as_ref() != Some(&recorded_by)
        {
            tracing::info!(
                leader = recorded_by,
                "controller leader (it recorded a heartbeat)"
            );
            self.leader = Some(recorded_by);
            self.leader_at = Some(Instant::now());
        }
        if let Some(leader) = &self.leader
            && self.leader_at.is_some_and(|at| at.elapsed() < period)
        {
            return Ok(leader.clone());
        }
        let mut last = None;
        for addr in self.addresses().await {
            match calls::leader(&self.controllers, &addr).await {
                Ok(Some(leader)) => {
                    if self.leader.as_ref() != Some(&leader) {
                        tracing::info!(leader, "controller leader");
                    }
                    self.leader = Some(leader.clone());
                    self.leader_at = Some(Instant::now());
                    return Ok(leader);
                }
                Ok(None) => {}
                Err(error) => last = Some(error),
            }
        }
        if let Some(leader) = &self.leader {
            // Nobody answered now: keep the known leader until a call to it fails.
            self.leader_at = Some(Instant::now());
            return Ok(leader.clone());
        }
        Err(last.unwrap_or_else(|| CallError::BadAnswer {
            addr: self.broker.config.controller_addr.clone(),
            reason: "no controller knows a leader".into(),
        }))
    }

    /// One heartbeat period: leader, id, registration, heartbeat, and (every
    /// `syncBrokerMetadataPeriod`) the replica info.
    async fn round(&mut self) -> Result<(), CallError> {
        let leader = self.leader().await?;
        let id = match self.id {
            Some(id) => id,
            None => self.obtain_id(&leader).await?,
        };
        if !self.registered {
            let head = RegisterBrokerToControllerRequestHeader {
                cluster_name: Some(self.broker.config.broker_cluster_name.clone()),
                broker_name: Some(self.broker.config.broker_name.clone()),
                broker_id: Some(id),
                broker_address: Some(self.broker.broker_addr.to_string()),
                invoke_time: Some(crate::context::now_ms()),
            };
            let info = calls::register(&self.controllers, &leader, &head).await?;
            self.registered = true;
            self.heartbeat(&leader, id).await?;
            self.apply(info).await;
            self.last_sync = Some(Instant::now());
        }
        *self.target.borrow_mut() = Some(BeatTarget {
            leader: leader.clone(),
            id,
            members: self.addrs.clone(),
        });
        if self.live.heard_while_fenced.take() {
            // The replica info confirms this master (unfencing it) or names the new one.
            self.last_sync = None;
        }
        let period = ms(self.broker.config.sync_broker_metadata_period);
        if self.last_sync.is_none_or(|at| at.elapsed() >= period) {
            self.last_sync = Some(Instant::now());
            let name = self.broker.config.broker_name.clone();
            let info = calls::replica_info(&self.controllers, &leader, &name).await?;
            self.apply(info).await;
        }
        let period = ms(self.broker.config.check_sync_state_set_period);
        let master = self.epoch >= 0 && !self.broker.is_slave();
        if master && self.last_sss_check.is_none_or(|at| at.elapsed() >= period) {
            self.last_sss_check = Some(Instant::now());
            self.check_sync_state_set(&leader, id).await?;
        }
        Ok(())
    }

    /// The master's sync-state-set upkeep (see the module docs and `sync_state`).
    async fn check_sync_state_set(&mut self, leader: &str, id: i64) -> Result<(), CallError> {
        let limit = ms(self.broker.config.ha_max_time_slave_not_catchup);
        let all_ack = self.broker.config.all_ack_in_sync_state_set;
        let mut near: Option<BTreeSet<i64>> = None;
        let mut ready: Option<BTreeSet<i64>> = None;
        for shard in 0..self.broker.shard_count {
            let (shard_near, shard_ready) = self
                .core
                .on_owned_shard(shard, move |owned| async move {
                    let near: BTreeSet<i64> = owned
                        .replica
                        .progress()
                        .into_iter()
                        .filter(|(_, p)| p.is_near(limit))
                        .map(|(id, _)| id)
                        .collect();
                    // Without allAckInSyncStateSet nothing waits for every member: no
                    // acknowledgement to hold (and no counting marks), near is enough.
                    let ready = near
                        .iter()
                        .copied()
                        .filter(|&id| !all_ack || owned.replica.holds_everything_acknowledged(id))
                        .collect::<BTreeSet<i64>>();
                    (near, ready)
                })
                .await
                .unwrap_or_default();
            let meet = |so_far: Option<BTreeSet<i64>>, this: BTreeSet<i64>| match so_far {
                None => this,
                Some(so_far) => so_far.intersection(&this).copied().collect(),
            };
            near = Some(meet(near, shard_near));
            ready = Some(meet(ready, shard_ready));
        }
        let (near, ready) = (near.unwrap_or_default(), ready.unwrap_or_default());
        let Some(upkeep) = self.upkeep.as_mut() else {
            return Ok(());
        };
        let proposal = upkeep.next(&near, &ready);
        let counted = upkeep.counted();
        // Counted before it is asked for: a joining slave's marks are taken on each shard
        // when the set reaches it (`ready` waits for them).
        role::apply_sync_state_set(&self.broker, &counted);
        let Some(proposal) = proposal else {
            return Ok(());
        };
        let name = self.broker.config.broker_name.clone();
        let (set, based_on) = sync_state::wire(&proposal);
        let asked = calls::alter_sync_state_set(
            &self.controllers,
            leader,
            &name,
            (id, self.epoch),
            &set,
            based_on,
        )
        .await;
        let answer = sync_state::answer_of(&asked);
        let result = match asked {
            Ok(epoch) => {
                tracing::info!(new = ?set, epoch, "sync-state set changed");
                Ok(())
            }
            Err(error) => {
                // Either says this mastership (the request's epoch, still ours: the loop
                // applies no role while it waits) is over (see the module docs).
                if matches!(
                    error.code(),
                    Some(
                        controller_response_code::CONTROLLER_FENCED_MASTER_EPOCH
                            | controller_response_code::CONTROLLER_INVALID_MASTER
                    )
                ) {
                    tracing::warn!(%error, epoch = self.epoch, "no longer master: fenced");
                    role::fence(&self.broker);
                }
                // Learn the controller's set soon (an unknown outcome is resolved by it).
                self.last_sync = None;
                Err(error)
            }
        };
        if let Some(upkeep) = self.upkeep.as_mut() {
            upkeep.answered(&proposal, answer);
            role::apply_sync_state_set(&self.broker, &upkeep.counted());
        }
        result
    }

    /// What a failed call says about the leader and this broker's role (see the module
    /// docs); true when the round should be retried at once: a new leader is named, or
    /// this mastership is over (the replica info tells the role).
    fn after_error(&mut self, error: &CallError) -> bool {
        if matches!(error, CallError::Interrupted { .. }) {
            // The notification first, then this round again.
            return true;
        }
        if matches!(error, CallError::Net { .. }) {
            self.leader = None;
            return false;
        }
        if let Some(named) = error.not_leader() {
            return match named {
                Some(leader) if self.leader.as_deref() != Some(leader) => {
                    tracing::info!(leader, "controller leader (named by a former one)");
                    self.leader = Some(leader.to_owned());
                    self.leader_at = Some(Instant::now());
                    true
                }
                // Asked again of every member next round.
                _ => {
                    self.leader = None;
                    false
                }
            };
        }
        matches!(
            error.code(),
            Some(
                controller_response_code::CONTROLLER_FENCED_MASTER_EPOCH
                    | controller_response_code::CONTROLLER_INVALID_MASTER
            )
        )
    }

    async fn heartbeat(&mut self, leader: &str, id: i64) -> Result<(), CallError> {
        *self.target.borrow_mut() = Some(BeatTarget {
            leader: leader.to_string(),
            id,
            members: self.addrs.clone(),
        });
        self.beat.heartbeat(leader, id).await
    }

    /// The id from the identity files, or a new one from the controller.
    async fn obtain_id(&mut self, leader: &str) -> Result<i64, CallError> {
        let config = &self.broker.config;
        let files = IdentityFiles::new(std::path::Path::new(&config.store_path_root_dir));
        let local = |reason: String| CallError::BadAnswer {
            addr: "local identity file".into(),
            reason,
        };
        let mine =
            |c: &Claim| c.cluster == config.broker_cluster_name && c.name == config.broker_name;
        if let Some(claim) = files.accepted().map_err(local)? {
            if !mine(&claim) {
                return Err(local(format!(
                    "brokerIdentity names {}/{}, not this broker's cluster/name",
                    claim.cluster, claim.name
                )));
            }
            self.id = Some(claim.id);
            return Ok(claim.id);
        }
        let claim = match files.pending().map_err(local)? {
            Some(claim) if mine(&claim) => claim,
            _ => {
                let cluster = config.broker_cluster_name.clone();
                let name = config.broker_name.clone();
                let id = calls::next_broker_id(&self.controllers, leader, &cluster, &name).await?;
                let claim = Claim {
                    cluster,
                    name,
                    id,
                    check_code: format!("{};{}", self.broker.broker_addr, crate::context::now_ms()),
                };
                files.save_pending(&claim).map_err(local)?;
                claim
            }
        };
        let applied = calls::apply_broker_id(
            &self.controllers,
            leader,
            &claim.cluster,
            &claim.name,
            claim.id,
            &claim.check_code,
        )
        .await;
        if let Err(error) = applied {
            if matches!(error, CallError::Refused { .. }) {
                // Taken by another broker: ask for a new one next round.
                files.drop_pending();
            }
            return Err(error);
        }
        files.accept(&claim).map_err(local)?;
        tracing::info!(id = claim.id, "broker id assigned by the controller");
        self.id = Some(claim.id);
        Ok(claim.id)
    }

    /// Applies where the controller says the master is (RocketMQ's
    /// `schedulingSyncBrokerMetadata` rules).
    async fn apply(&mut self, info: ReplicaInfo) {
        let Some(id) = self.id else {
            return;
        };
        let name = self.broker.config.broker_name.clone();
        let cluster = self.broker.config.broker_cluster_name.clone();
        if info.master_id.is_none() || info.master_addr.is_none() {
            if let Some(leader) = self.leader.clone() {
                tracing::warn!(
                    epoch = info.master_epoch,
                    "no master: asking for an election"
                );
                let elected = calls::elect(&self.controllers, &leader, &cluster, &name, id).await;
                if let Err(error) = elected {
                    tracing::warn!(%error, "election request failed");
                    self.after_error(&error);
                }
                self.last_sync = None;
            }
            return;
        }
        let mine = info.master_id == Some(id);
        if mine
            && info.master_epoch == self.epoch
            && let Some(upkeep) = self.upkeep.as_mut()
        {
            upkeep.learn(&info.sync_state_set, info.sync_state_set_epoch);
        }
        let fenced_master = self.broker.role.snapshot().role.is_master() && self.broker.is_slave();
        if info.master_epoch < self.epoch || (info.master_epoch == self.epoch && !fenced_master) {
            if info.master_epoch == self.epoch
                && mine
                && let Some(upkeep) = &self.upkeep
            {
                role::apply_sync_state_set(&self.broker, &upkeep.counted());
            }
            return;
        }
        let outcome = if mine {
            // A fenced master confirmed in its epoch keeps its upkeep: a proposal of that
            // epoch may still be pending.
            if info.master_epoch != self.epoch || self.upkeep.is_none() {
                self.upkeep = Some(SyncStateUpkeep::new(
                    id,
                    &info.sync_state_set,
                    info.sync_state_set_epoch,
                ));
            }
            let counted = self
                .upkeep
                .as_ref()
                .map(SyncStateUpkeep::counted)
                .unwrap_or_default();
            role::become_master(&self.broker, info.master_epoch, id, &counted).await
        } else {
            self.upkeep = None;
            let master = info.master_addr.as_deref().unwrap_or_default();
            role::become_slave(&self.broker, master, None, info.master_epoch, id).await
        };
        match outcome {
            Ok(()) => {
                self.epoch = info.master_epoch;
                self.live.applied.set(true);
            }
            Err(error) => tracing::error!(%error, ?info, "role change failed"),
        }
    }
}

fn ms(value: i64) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0).max(1))
}
