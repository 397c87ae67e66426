//! A scripted controller speaking RocketMQ 5's protocol for the controller-mode tests
//! (`controller_client.rs`, `in_sync_replicas.rs`): one broker group, leader at once, ids in
//! order, election among the live members of the sync-state set, the set changed when the
//! master asks for it with CONTROLLER_ALTER_SYNC_STATE_SET; enough to drive a broker, not the
//! real quorum. Also an in-process name server.

use std::cell::RefCell;
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
    GetNextBrokerIdResponseHeader, GetReplicaInfoResponseHeader,
    RegisterBrokerToControllerRequestHeader, RegisterBrokerToControllerResponseHeader,
    controller_request_code as code, controller_response_code,
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
}

impl Group {
    fn alive(&self, id: i64) -> bool {
        self.brokers
            .get(&id)
            .is_some_and(|(_, seen, _)| seen.elapsed() < DEAD_AFTER)
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

pub struct Scripted {
    group: Rc<RefCell<Group>>,
    addr: String,
    /// While set, requests get no answer (a controller the broker cannot reach).
    silent: Arc<AtomicBool>,
}

impl RequestHandler for Scripted {
    fn handle(
        self: Rc<Self>,
        _conn: Rc<ConnectionInfo>,
        req: RemotingCommand,
    ) -> rmq_net::connection::LocalFuture<Option<RemotingCommand>> {
        Box::pin(async move {
            if self.silent.load(Ordering::Relaxed) {
                return None;
            }
            Some(self.answer(&req))
        })
    }
}

impl Scripted {
    fn answer(&self, req: &RemotingCommand) -> RemotingCommand {
        let ok = || RemotingCommand::response_for(req, ResponseCode::Success.code(), None);
        let mut group = self.group.borrow_mut();
        group.tick();
        match req.code {
            code::CONTROLLER_GET_METADATA_INFO => {
                let mut response = ok();
                GetMetaDataResponseHeader {
                    controller_leader_address: Some(self.addr.clone()),
                    is_leader: true,
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
                if let Some(entry) = group.brokers.get_mut(&id) {
                    entry.1 = Instant::now();
                    entry.2 = head.max_offset.unwrap_or(0);
                }
                ok()
            }
            code::CONTROLLER_GET_REPLICA_INFO => {
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
                if head.master_broker_id != group.master || head.master_epoch != Some(group.epoch) {
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
}

pub type Masters = Arc<std::sync::Mutex<Decisions>>;

/// Runs the scripted controller on its own thread until `stop`; returns its address and a
/// way to read its state. While `silent` is set it answers nothing.
pub fn start_controller(stop: Arc<AtomicBool>, silent: Arc<AtomicBool>) -> (String, Masters) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let masters = Arc::new(std::sync::Mutex::new(Decisions::default()));
    let (thread_addr, thread_masters) = (addr.clone(), masters.clone());
    std::thread::spawn(move || {
        rmq_net::rt::block_on(async move {
            let listener = std::net::TcpListener::bind(&thread_addr).unwrap();
            let listener = rmq_net::listener::register(listener).unwrap();
            let group = Rc::new(RefCell::new(Group::default()));
            let handler = Rc::new(Scripted {
                group: group.clone(),
                addr: thread_addr,
                silent,
            });
            let watcher = stop.clone();
            rmq_net::rt::spawn(async move {
                while !watcher.load(Ordering::Relaxed) {
                    {
                        let group = group.borrow();
                        *thread_masters.lock().unwrap() = Decisions {
                            masters: group.history.clone(),
                            sync_state_sets: group.sss_changes.clone(),
                        };
                    }
                    rmq_net::rt::sleep(Duration::from_millis(20)).await;
                }
            })
            .detach();
            rmq_net::listener::accept_until(
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
            )
            .await;
        })
        .unwrap();
    });
    (addr, masters)
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
