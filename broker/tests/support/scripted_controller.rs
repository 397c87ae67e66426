//! A scripted controller speaking RocketMQ 5's protocol for the controller-mode tests
//! (`controller_client.rs`, `in_sync_replicas.rs`): one broker group, leader at once, ids in
//! order, election among the live members of the sync-state set, the set changed when the
//! master asks for it with CONTROLLER_ALTER_SYNC_STATE_SET; enough to drive a broker, not the
//! real quorum. [`start_members`] runs two members sharing the group, with a scripted leader
//! change and a [`Script`] of what the controller does on its own. Also an in-process name
//! server.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmq_core::body::controller::SyncStateSet;
use rmq_core::body::{decode_body, encode_body};
use rmq_core::config::NamesrvConfig;
use rmq_core::remoting::controller::{
    AlterSyncStateSetRequestHeader, AlterSyncStateSetResponseHeader, ApplyBrokerIdRequestHeader,
    BrokerHeartbeatRequestHeader, ElectMasterResponseHeader, GetMetaDataResponseHeader,
    GetNextBrokerIdResponseHeader, GetReplicaInfoResponseHeader, HEARTBEAT_RECORDED_BY_LEADER,
    NOT_LEADER_KNOWN_LEADER, RegisterBrokerToControllerRequestHeader,
    RegisterBrokerToControllerResponseHeader, controller_request_code as code,
    controller_response_code,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_net::{ConnectionInfo, ConnectionLimits, RequestHandler};
use rmq_test_support::ports::free_port;

/// The scripted controller's heartbeat timeout.
pub const DEAD_AFTER: Duration = Duration::from_millis(2000);

#[derive(Default)]
pub struct Group {
    next_id: i64,
    /// id → (address, last heartbeat, reported size).
    brokers: BTreeMap<i64, (String, Instant, i64)>,
    master: Option<i64>,
    epoch: i32,
    sss: BTreeSet<i64>,
    sss_epoch: i32,
    /// Every master the group had, with its epoch.
    history: Vec<(i32, i64)>,
    /// Every sync-state set a master asked for and got.
    sss_changes: Vec<BTreeSet<i64>>,
    /// Registered by the script, not by a broker: alive without heartbeats.
    phantoms: BTreeSet<i64>,
    /// When a CONTROLLER_INVALID_MASTER was answered last.
    invalid_master_at: Option<Instant>,
    /// Heartbeat timeout ([`Script::dead_after`], else [`DEAD_AFTER`]).
    dead_after: Option<Duration>,
    /// (start, end) of every [`Script::recording_gap`].
    recording_gaps: Vec<(Instant, Instant)>,
    /// The last gap waits for a round to end ([`Script::gap_ends_after_a_round`]).
    gap_waits_for_round: bool,
}

impl Group {
    fn alive(&self, id: i64) -> bool {
        self.phantoms.contains(&id)
            || self
                .brokers
                .get(&id)
                .is_some_and(|(_, seen, _)| seen.elapsed() < self.dead_after.unwrap_or(DEAD_AFTER))
    }

    /// Makes `id` master at the next epoch, alone in the set (an election the brokers did
    /// not ask for: an operator's, or one after a heartbeat timeout).
    fn install(&mut self, id: i64) {
        self.master = Some(id);
        self.epoch += 1;
        self.sss = BTreeSet::from([id]);
        self.sss_epoch += 1;
        self.history.push((self.epoch, id));
    }

    fn tick(&mut self) {
        if let Some(master) = self.master
            && !self.alive(master)
        {
            self.master = None;
        }
    }

    fn elect(&mut self) {
        self.tick();
        if self.master.is_some() {
            return;
        }
        let candidates: Vec<i64> = if self.sss.is_empty() {
            self.brokers
                .keys()
                .copied()
                .filter(|id| self.alive(*id))
                .collect()
        } else {
            self.sss
                .iter()
                .copied()
                .filter(|id| self.alive(*id))
                .collect()
        };
        if let Some(&winner) = candidates.first() {
            self.master = Some(winner);
            self.epoch += 1;
            self.sss = BTreeSet::from([winner]);
            self.sss_epoch += 1;
            self.history.push((self.epoch, winner));
        }
    }

    fn master_addr(&self) -> Option<String> {
        self.master.map(|id| self.brokers[&id].0.clone())
    }

    fn sss_body(&self) -> Vec<u8> {
        encode_body(&SyncStateSet {
            sync_state_set: self.sss.clone(),
            sync_state_set_epoch: self.sss_epoch,
        })
    }
}

/// What the scripted controller does beyond answering (all off by default).
#[derive(Clone, Default)]
pub struct Script {
    /// While set, requests get no answer (a controller the broker cannot reach).
    pub silent: Arc<AtomicBool>,
    /// The first CONTROLLER_ALTER_SYNC_STATE_SET deposes the master that sends it: the other
    /// registered broker with the smallest id becomes master at the next epoch (an election
    /// the request crossed), and the request is refused with CONTROLLER_INVALID_MASTER, as
    /// the real controller refuses a broker that is not the group's master.
    pub depose_on_alter: bool,
    /// Two members ([`start_members`]): once set, the leadership moves from the first to the
    /// second, which at once elects a phantom broker (id [`PHANTOM`], address
    /// `127.0.0.1:1`, alive without heartbeats) master at the next epoch.
    pub hand_over: Arc<AtomicBool>,
    /// Two members: CONTROLLER_NOT_LEADER names the leader (rmq-fast's controllers do;
    /// RocketMQ's do not).
    pub name_leader: bool,
    /// The heartbeat timeout, when not [`DEAD_AFTER`].
    pub dead_after: Option<Duration>,
    /// Once set, taken by the next heartbeat recorded: it starts a gap this long in which
    /// heartbeats are answered as not recorded by the leader (`recordedByLeader=false`), as
    /// every member answers while the controllers have no raft leader; receipt times are
    /// kept, as followers keep them.
    pub recording_gap: Arc<std::sync::Mutex<Option<Duration>>>,
    /// A recording gap does not end at its length but 500 ms after the first
    /// CONTROLLER_GET_REPLICA_INFO that comes after it (a broker's round just done).
    pub gap_ends_after_a_round: bool,
}

/// The broker id of the phantom master [`Script::hand_over`] elects.
pub const PHANTOM: i64 = 99;

/// What the members of one scripted controller share.
struct Shared {
    group: RefCell<Group>,
    /// The members' addresses and which one leads.
    members: Vec<String>,
    leader: Cell<usize>,
    script: Script,
    deposed_once: Cell<bool>,
}

pub struct Scripted {
    shared: Rc<Shared>,
    /// This member's index in `Shared::members`.
    me: usize,
}

impl RequestHandler for Scripted {
    fn handle(
        self: Rc<Self>,
        _conn: Rc<ConnectionInfo>,
        req: RemotingCommand,
    ) -> rmq_net::connection::LocalFuture<Option<RemotingCommand>> {
        Box::pin(async move {
            if self.shared.script.silent.load(Ordering::Relaxed) {
                return None;
            }
            Some(self.answer(&req))
        })
    }
}

impl Scripted {
    fn answer(&self, req: &RemotingCommand) -> RemotingCommand {
        let ok = || RemotingCommand::response_for(req, ResponseCode::Success.code(), None);
        let shared = &self.shared;
        let mut group = shared.group.borrow_mut();
        if shared.script.hand_over.load(Ordering::Relaxed) && shared.leader.get() == 0 {
            shared.leader.set(1);
            group.phantoms.insert(PHANTOM);
            group
                .brokers
                .insert(PHANTOM, ("127.0.0.1:1".to_string(), Instant::now(), 0));
            group.install(PHANTOM);
        }
        group.tick();
        let leader = shared.members[shared.leader.get()].clone();
        let any_member = [code::CONTROLLER_GET_METADATA_INFO, code::BROKER_HEARTBEAT];
        if shared.leader.get() != self.me && !any_member.contains(&req.code) {
            let mut refused = RemotingCommand::response_for(
                req,
                controller_response_code::CONTROLLER_NOT_LEADER,
                Some("The controller is not in leader state".into()),
            );
            if shared.script.name_leader {
                refused.set_ext(NOT_LEADER_KNOWN_LEADER, &leader);
            }
            return refused;
        }
        match req.code {
            code::CONTROLLER_GET_METADATA_INFO => {
                let mut response = ok();
                GetMetaDataResponseHeader {
                    controller_leader_address: Some(leader),
                    is_leader: shared.leader.get() == self.me,
                    ..Default::default()
                }
                .write_to(&mut response);
                response
            }
            code::CONTROLLER_GET_NEXT_BROKER_ID => {
                let mut response = ok();
                GetNextBrokerIdResponseHeader {
                    next_broker_id: Some(group.next_id + 1),
                    ..Default::default()
                }
                .write_to(&mut response);
                response
            }
            code::CONTROLLER_APPLY_BROKER_ID => {
                let head = ApplyBrokerIdRequestHeader::read(req).unwrap();
                let id = head.applied_broker_id.unwrap();
                assert_eq!(id, group.next_id + 1, "ids are applied for in order");
                group.next_id = id;
                ok()
            }
            code::CONTROLLER_REGISTER_BROKER => {
                let head = RegisterBrokerToControllerRequestHeader::read(req).unwrap();
                let id = head.broker_id.unwrap();
                let addr = head.broker_address.unwrap();
                group.brokers.insert(id, (addr, Instant::now(), 0));
                let mut response = ok().with_body(group.sss_body());
                RegisterBrokerToControllerResponseHeader {
                    master_broker_id: group.master,
                    master_address: group.master_addr(),
                    master_epoch: Some(group.epoch),
                    sync_state_set_epoch: Some(group.sss_epoch),
                    ..Default::default()
                }
                .write_to(&mut response);
                response
            }
            code::BROKER_HEARTBEAT => {
                let head = BrokerHeartbeatRequestHeader::read(req).unwrap();
                let id = head.broker_id.unwrap();
                let now = Instant::now();
                if let Some(entry) = group.brokers.get_mut(&id) {
                    entry.1 = now;
                    entry.2 = head.max_offset.unwrap_or(0);
                }
                let in_gap = group.gap_waits_for_round
                    || group.recording_gaps.last().is_some_and(|gap| now < gap.1);
                if in_gap {
                    let mut response = ok();
                    response.set_ext(HEARTBEAT_RECORDED_BY_LEADER, "false");
                    return response;
                }
                if let Some(gap) = shared.script.recording_gap.lock().unwrap().take() {
                    group.recording_gaps.push((now, now + gap));
                    group.gap_waits_for_round = shared.script.gap_ends_after_a_round;
                }
                ok()
            }
            code::CONTROLLER_GET_REPLICA_INFO => {
                let now = Instant::now();
                if group.gap_waits_for_round
                    && let Some(gap) = group.recording_gaps.last_mut()
                    && now >= gap.1
                {
                    gap.1 = now + Duration::from_millis(500);
                    group.gap_waits_for_round = false;
                }
                let mut response = ok().with_body(group.sss_body());
                GetReplicaInfoResponseHeader {
                    master_broker_id: group.master,
                    master_address: group.master_addr(),
                    master_epoch: Some(group.epoch),
                }
                .write_to(&mut response);
                response
            }
            code::CONTROLLER_ALTER_SYNC_STATE_SET => {
                let head = AlterSyncStateSetRequestHeader::read(req).unwrap();
                let asked: SyncStateSet = decode_body(&req.body).unwrap();
                let other = group
                    .brokers
                    .keys()
                    .copied()
                    .find(|id| Some(*id) != head.master_broker_id);
                if shared.script.depose_on_alter
                    && !shared.deposed_once.replace(true)
                    && let Some(other) = other
                {
                    group.install(other);
                }
                // The real controller's order: the master first, then its epoch.
                if head.master_broker_id != group.master {
                    group.invalid_master_at = Some(Instant::now());
                    let code = controller_response_code::CONTROLLER_INVALID_MASTER;
                    return RemotingCommand::response_for(req, code, None);
                }
                if head.master_epoch != Some(group.epoch) {
                    let code = controller_response_code::CONTROLLER_FENCED_MASTER_EPOCH;
                    return RemotingCommand::response_for(req, code, None);
                }
                if asked.sync_state_set_epoch != group.sss_epoch {
                    let code = controller_response_code::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH;
                    return RemotingCommand::response_for(req, code, None);
                }
                group.sss = asked.sync_state_set;
                group.sss_epoch += 1;
                let changed = group.sss.clone();
                group.sss_changes.push(changed);
                let mut response = ok();
                AlterSyncStateSetResponseHeader {
                    new_sync_state_set_epoch: group.sss_epoch,
                }
                .write_to(&mut response);
                response
            }
            code::CONTROLLER_ELECT_MASTER => {
                group.elect();
                if group.master.is_none() {
                    let code = controller_response_code::CONTROLLER_MASTER_NOT_AVAILABLE;
                    return RemotingCommand::response_for(req, code, None);
                }
                let mut response = ok();
                ElectMasterResponseHeader {
                    master_broker_id: group.master,
                    master_address: group.master_addr(),
                    master_epoch: Some(group.epoch),
                    sync_state_set_epoch: Some(group.sss_epoch),
                }
                .write_to(&mut response);
                response
            }
            other => RemotingCommand::response_for(
                req,
                ResponseCode::RequestCodeNotSupported.code(),
                Some(format!("{other}")),
            ),
        }
    }
}

/// What the scripted controller decided: (epoch, master id) of every election, and every
/// sync-state set it granted.
#[derive(Default, Clone)]
pub struct Decisions {
    pub masters: Vec<(i32, i64)>,
    pub sync_state_sets: Vec<BTreeSet<i64>>,
    /// When CONTROLLER_INVALID_MASTER was answered last.
    pub invalid_master_at: Option<Instant>,
    /// (start, end) of every [`Script::recording_gap`] begun.
    pub recording_gaps: Vec<(Instant, Instant)>,
}

pub type Masters = Arc<std::sync::Mutex<Decisions>>;

/// Runs the scripted controller on its own thread until `stop`; returns its address and a
/// way to read its state. While `silent` is set it answers nothing.
pub fn start_controller(stop: Arc<AtomicBool>, silent: Arc<AtomicBool>) -> (String, Masters) {
    let script = Script {
        silent,
        ..Script::default()
    };
    let (mut addrs, masters) = start_members(stop, 1, script);
    (addrs.remove(0), masters)
}

/// Runs `count` scripted controller members sharing one group (the first leads until
/// [`Script::hand_over`]) on one thread until `stop`; returns their addresses and a way to
/// read the group's state.
pub fn start_members(
    stop: Arc<AtomicBool>,
    count: usize,
    script: Script,
) -> (Vec<String>, Masters) {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap())
        .collect();
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let masters = Arc::new(std::sync::Mutex::new(Decisions::default()));
    let (members, thread_masters) = (addrs.clone(), masters.clone());
    std::thread::spawn(move || {
        rmq_net::rt::block_on(async move {
            let shared = Rc::new(Shared {
                group: RefCell::new(Group {
                    dead_after: script.dead_after,
                    ..Group::default()
                }),
                members,
                leader: Cell::new(0),
                script,
                deposed_once: Cell::new(false),
            });
            let (watcher, watched) = (stop.clone(), shared.clone());
            rmq_net::rt::spawn(async move {
                while !watcher.load(Ordering::Relaxed) {
                    {
                        let group = watched.group.borrow();
                        *thread_masters.lock().unwrap() = Decisions {
                            masters: group.history.clone(),
                            sync_state_sets: group.sss_changes.clone(),
                            invalid_master_at: group.invalid_master_at,
                            recording_gaps: group.recording_gaps.clone(),
                        };
                    }
                    rmq_net::rt::sleep(Duration::from_millis(20)).await;
                }
            })
            .detach();
            let mut serving = Vec::new();
            for (me, listener) in listeners.into_iter().enumerate() {
                let listener = rmq_net::listener::register(listener).unwrap();
                let handler = Rc::new(Scripted {
                    shared: shared.clone(),
                    me,
                });
                let stop = stop.clone();
                serving.push(rmq_net::rt::spawn(rmq_net::listener::accept_until(
                    listener,
                    move || stop.load(Ordering::Relaxed),
                    move |stream| {
                        let serving = rmq_net::serve_connection(
                            stream,
                            handler.clone(),
                            0,
                            ConnectionLimits::with_max_frame(16 << 20),
                        );
                        rmq_net::rt::spawn(serving).detach();
                    },
                )));
            }
            for member in serving {
                let _ = member.await;
            }
        })
        .unwrap();
    });
    (addrs, masters)
}

pub struct Namesrv {
    stop: Arc<AtomicBool>,
    pub addr: String,
}

impl Namesrv {
    pub fn start() -> Namesrv {
        let port = free_port();
        let overrides = [("listenPort".to_owned(), port.to_string())];
        let (config, _) = NamesrvConfig::load(None, &overrides).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        rmq_namesrv::run_namesrv(config, ip, stop.clone()).unwrap();
        Namesrv {
            stop,
            addr: format!("127.0.0.1:{port}"),
        }
    }
}

impl Drop for Namesrv {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
