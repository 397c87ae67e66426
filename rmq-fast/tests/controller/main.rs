//! `rmq-fast controller`: three real member processes on loopback driven with RocketMQ 5's
//! controller protocol, as a broker in controller mode and mqadmin use it. Brokers are played
//! by this test: they register, heartbeat (one-way, to every member, as RocketMQ 5.3's brokers
//! do), ask for an election and alter the sync-state set; their addresses are listeners of the
//! test, so NOTIFY_BROKER_ROLE_CHANGED is observed too. The raft leader is killed with
//! SIGKILL; the others keep serving and still know the brokers; the killed member restarts
//! from its disk and serves as leader later; the whole quorum killed and restarted keeps the
//! state. Every port is the kernel's choice, held while the test runs
//! (`rmq_test_support::ports::HeldPorts`).

mod client;
mod config_admin;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use client::{Member, agreed_leader, ask, frame, read_frame, three_members};
use rmq_core::body::controller::{BrokerReplicasInfo, ElectMasterResponseBody, SyncStateSet};
use rmq_core::body::decode_body;
use rmq_core::remoting::RemotingCommand;
use rmq_core::remoting::controller::controller_request_code as rc;
use rmq_core::remoting::controller::controller_response_code as code;
use rmq_core::remoting::controller::{
    AlterSyncStateSetRequestHeader, AlterSyncStateSetResponseHeader, ApplyBrokerIdRequestHeader,
    BrokerHeartbeatRequestHeader, ElectMasterRequestHeader, ElectMasterResponseHeader,
    GetNextBrokerIdRequestHeader, GetNextBrokerIdResponseHeader, GetReplicaInfoRequestHeader,
    GetReplicaInfoResponseHeader, NotifyBrokerRoleChangedRequestHeader,
    RegisterBrokerToControllerRequestHeader,
};

const ELECTION: Duration = Duration::from_secs(15);
const CLUSTER: &str = "DefaultCluster";
const GROUP: &str = "broker-a";
/// `controllerHeartBeatTimeoutMills` of the test's brokers (RocketMQ's default).
const HEARTBEAT_TIMEOUT_MS: i64 = 10_000;

fn request(code: i32, write: impl FnOnce(&mut RemotingCommand)) -> RemotingCommand {
    let mut request = RemotingCommand::new_request(code);
    write(&mut request);
    request
}

/// A broker replica of the test: its address is a listener that collects notifications.
struct Replica {
    id: i64,
    listener: TcpListener,
    addr: String,
}

impl Replica {
    fn new(id: i64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        Self { id, listener, addr }
    }

    /// GET_NEXT_BROKER_ID, APPLY_BROKER_ID, REGISTER_BROKER, as a 5.3 broker starts.
    fn register(&self, leader: &str) -> RemotingCommand {
        let next = ask(
            leader,
            request(rc::CONTROLLER_GET_NEXT_BROKER_ID, |r| {
                GetNextBrokerIdRequestHeader {
                    cluster_name: Some(CLUSTER.into()),
                    broker_name: Some(GROUP.into()),
                }
                .write_to(r)
            }),
        );
        assert_eq!(next.code, 0, "{:?}", next.remark);
        let next = GetNextBrokerIdResponseHeader::read(&next).unwrap();
        assert_eq!(next.next_broker_id, Some(self.id));
        let applied = ask(
            leader,
            request(rc::CONTROLLER_APPLY_BROKER_ID, |r| {
                ApplyBrokerIdRequestHeader {
                    cluster_name: Some(CLUSTER.into()),
                    broker_name: Some(GROUP.into()),
                    applied_broker_id: Some(self.id),
                    register_check_code: Some(format!("{};1733400000000", self.addr)),
                }
                .write_to(r)
            }),
        );
        assert_eq!(applied.code, 0, "{:?}", applied.remark);
        ask(
            leader,
            request(rc::CONTROLLER_REGISTER_BROKER, |r| {
                RegisterBrokerToControllerRequestHeader {
                    cluster_name: Some(CLUSTER.into()),
                    broker_name: Some(GROUP.into()),
                    broker_id: Some(self.id),
                    broker_address: Some(self.addr.clone()),
                    invoke_time: None,
                }
                .write_to(r)
            }),
        )
    }

    /// Waits for a NOTIFY_BROKER_ROLE_CHANGED naming `master` in `master_epoch`.
    fn expect_notification(&self, master: i64, master_epoch: i32) -> SyncStateSet {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + ELECTION;
        loop {
            assert!(Instant::now() < deadline, "broker {} not notified", self.id);
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => panic!("accept: {e}"),
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let Some(notice) = read_frame(&mut stream) else {
                continue;
            };
            assert_eq!(notice.code, rc::NOTIFY_BROKER_ROLE_CHANGED);
            assert!(notice.is_oneway());
            let header = NotifyBrokerRoleChangedRequestHeader::read(&notice).unwrap();
            if header.master_epoch == Some(master_epoch) {
                assert_eq!(header.master_broker_id, Some(master));
                return decode_body(&notice.body).unwrap();
            }
        }
    }
}

/// One-way BROKER_HEARTBEATs of one replica to every member every 100 ms, each member over
/// its own long-lived connection; stopping closes them (what a broker's death looks like).
struct Heartbeats {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeats {
    fn start(replica: &Replica, members: &[Member]) -> Self {
        let addrs: Vec<String> = members.iter().map(|m| m.addr.clone()).collect();
        let header = BrokerHeartbeatRequestHeader {
            cluster_name: CLUSTER.into(),
            broker_addr: replica.addr.clone(),
            broker_name: GROUP.into(),
            broker_id: Some(replica.id),
            epoch: Some(0),
            max_offset: Some(0),
            confirm_offset: Some(0),
            heartbeat_timeout_mills: Some(HEARTBEAT_TIMEOUT_MS),
            election_priority: Some(0),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut connections: Vec<Option<TcpStream>> = addrs.iter().map(|_| None).collect();
            while !stopped.load(Ordering::Acquire) {
                for (addr, connection) in addrs.iter().zip(&mut connections) {
                    if connection.is_none() {
                        *connection = TcpStream::connect(addr).ok();
                    }
                    let mut beat = request(rc::BROKER_HEARTBEAT, |r| header.write_to(r));
                    beat.mark_oneway();
                    let sent = connection.as_mut().map(|c| c.write_all(&frame(&beat)));
                    if !matches!(sent, Some(Ok(()))) {
                        *connection = None;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn replica_info(leader: &str) -> (GetReplicaInfoResponseHeader, SyncStateSet) {
    let reply = ask(
        leader,
        request(rc::CONTROLLER_GET_REPLICA_INFO, |r| {
            GetReplicaInfoRequestHeader {
                broker_name: Some(GROUP.into()),
            }
            .write_to(r)
        }),
    );
    assert_eq!(reply.code, 0, "{:?}", reply.remark);
    let header = GetReplicaInfoResponseHeader::read(&reply).unwrap();
    (header, decode_body(&reply.body).unwrap())
}

/// Waits until the group's master (per the leader of `members`) is `master` in `epoch`.
fn wait_master(members: &[Member], master: i64, epoch: i32) -> (usize, SyncStateSet) {
    let deadline = Instant::now() + ELECTION;
    loop {
        let leader = agreed_leader(members, ELECTION);
        let (header, sync_state_set) = replica_info(&members[leader].addr);
        if header.master_broker_id == Some(master) && header.master_epoch == Some(epoch) {
            return (leader, sync_state_set);
        }
        assert!(Instant::now() < deadline, "master still {header:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sync_state_data(leader: &str) -> BrokerReplicasInfo {
    let data = ask(
        leader,
        request(rc::CONTROLLER_GET_SYNC_STATE_DATA, |r| {
            r.body = br#"["broker-a","broker-x"]"#.to_vec().into()
        }),
    );
    assert_eq!(data.code, 0, "{:?}", data.remark);
    decode_body(&data.body).unwrap()
}

/// Waits until the leader counts `replicas` live replicas in the group (heartbeats recorded).
fn wait_alive(leader: &str, replicas: usize) {
    let deadline = Instant::now() + ELECTION;
    loop {
        let data = sync_state_data(leader);
        let group = &data.replicas_info_table[GROUP];
        let all = group
            .in_sync_replicas
            .iter()
            .chain(&group.not_in_sync_replicas);
        if all.filter(|r| r.alive == Some(true)).count() == replicas {
            return;
        }
        assert!(Instant::now() < deadline, "replicas not alive: {group:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ids(set: &SyncStateSet) -> BTreeSet<i64> {
    set.sync_state_set.clone()
}

#[test]
fn three_controllers_elect_replicate_and_survive_sigkill_of_their_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = three_members(dir.path());
    members.iter_mut().for_each(Member::start);
    let leader = agreed_leader(&members, ELECTION);
    let leader_addr = members[leader].addr.clone();
    let follower_addr = members[(leader + 1) % 3].addr.clone();

    // A follower refuses broker state, as RocketMQ 5.3 does.
    let refused = ask(
        &follower_addr,
        request(rc::CONTROLLER_GET_NEXT_BROKER_ID, |r| {
            GetNextBrokerIdRequestHeader {
                cluster_name: Some(CLUSTER.into()),
                broker_name: Some(GROUP.into()),
            }
            .write_to(r)
        }),
    );
    assert_eq!(
        refused.code,
        code::CONTROLLER_NOT_LEADER,
        "{:?}",
        refused.remark
    );
    // rmq-fast's extension: the answer names the leader, so a broker asks it at once.
    assert_eq!(
        refused.ext(rmq_core::remoting::controller::NOT_LEADER_KNOWN_LEADER),
        Some(leader_addr.as_str()),
        "the follower names the leader"
    );

    let (first, second) = (Replica::new(1), Replica::new(2));
    let registered = first.register(&leader_addr);
    assert_eq!(registered.code, 0, "{:?}", registered.remark);
    assert_eq!(second.register(&leader_addr).code, 0);
    let heartbeats_first = Heartbeats::start(&first, &members);
    let _heartbeats_second = Heartbeats::start(&second, &members);
    wait_alive(&leader_addr, 2);

    // The first broker asks to be master (its group has none yet).
    let elected = ask(
        &leader_addr,
        request(rc::CONTROLLER_ELECT_MASTER, |r| {
            ElectMasterRequestHeader {
                cluster_name: CLUSTER.into(),
                broker_name: GROUP.into(),
                broker_id: 1,
                designate_elect: false,
                invoke_time: None,
            }
            .write_to(r)
        }),
    );
    assert_eq!(elected.code, 0, "{:?}", elected.remark);
    let header = ElectMasterResponseHeader::read(&elected).unwrap();
    assert_eq!(header.master_broker_id, Some(1));
    assert_eq!(header.master_address.as_deref(), Some(first.addr.as_str()));
    assert_eq!(header.master_epoch, Some(1));
    let body: ElectMasterResponseBody = decode_body(&elected.body).unwrap();
    let group = body.broker_member_group.expect("member group");
    assert_eq!(group.broker_addrs.len(), 2);
    assert_eq!(body.sync_state_set, BTreeSet::from([1]));
    let told = second.expect_notification(1, 1);
    assert_eq!(ids(&told), BTreeSet::from([1]));

    // The master adds the caught-up slave to its sync-state set.
    let proposal = SyncStateSet {
        sync_state_set: BTreeSet::from([1, 2]),
        sync_state_set_epoch: header.sync_state_set_epoch.unwrap(),
    };
    let altered = ask(
        &leader_addr,
        request(rc::CONTROLLER_ALTER_SYNC_STATE_SET, |r| {
            AlterSyncStateSetRequestHeader {
                broker_name: Some(GROUP.into()),
                master_broker_id: Some(1),
                master_epoch: Some(1),
                invoke_time: 0,
            }
            .write_to(r);
            r.body = serde_json::to_vec(&proposal).unwrap().into();
        }),
    );
    assert_eq!(altered.code, 0, "{:?}", altered.remark);
    let sss_epoch = AlterSyncStateSetResponseHeader::read(&altered)
        .unwrap()
        .new_sync_state_set_epoch;
    assert_eq!(sss_epoch, proposal.sync_state_set_epoch + 1);
    let data = sync_state_data(&leader_addr);
    let group_data = &data.replicas_info_table[GROUP];
    assert_eq!(group_data.in_sync_replicas.len(), 2);
    assert!(
        group_data
            .in_sync_replicas
            .iter()
            .all(|r| r.alive == Some(true))
    );
    assert!(!data.replicas_info_table.contains_key("broker-x"));

    // kill -9 the raft leader: the other two elect one and still know the group.
    members[leader].kill();
    let (second_leader, sync_state_set) = wait_master(&members, 1, 1);
    assert_ne!(second_leader, leader);
    assert_eq!(ids(&sync_state_set), BTreeSet::from([1, 2]));
    assert_eq!(sync_state_set.sync_state_set_epoch, sss_epoch);

    // The master's broker dies (its connections close): the new leader elects the slave.
    let died = Instant::now();
    drop(heartbeats_first);
    let (_, sync_state_set) = wait_master(&members, 2, 2);
    let failover = died.elapsed();
    assert_eq!(ids(&sync_state_set), BTreeSet::from([2]));
    let told = second.expect_notification(2, 2);
    assert_eq!(ids(&told), BTreeSet::from([2]));
    eprintln!("master connection lost -> new master elected in {failover:?}");
    // Elected because the connection closed, not because heartbeats timed out later.
    assert!(
        failover < Duration::from_millis(HEARTBEAT_TIMEOUT_MS as u64 / 2),
        "{failover:?}"
    );

    // The killed member restarts from its disk; with the other old member it forms the
    // quorum once the current leader is killed too, and knows the latest election.
    members[leader].start();
    std::thread::sleep(Duration::from_secs(1));
    members[second_leader].kill();
    let (third_leader, sync_state_set) = wait_master(&members, 2, 2);
    assert_ne!(third_leader, second_leader);
    assert_eq!(ids(&sync_state_set), BTreeSet::from([2]));

    // The whole quorum killed and restarted keeps the state.
    members
        .iter_mut()
        .filter(|m| m.process.is_some())
        .for_each(Member::kill);
    members.iter_mut().for_each(Member::start);
    let (_, sync_state_set) = wait_master(&members, 2, 2);
    assert_eq!(ids(&sync_state_set), BTreeSet::from([2]));
}

/// `enableControllerInNamesrv=true`: the name server's file also configures a controller
/// member, served on its own port (a one-member group here: it leads at once).
#[test]
fn a_name_server_runs_the_controller_its_file_configures() {
    let dir = tempfile::tempdir().unwrap();
    let held = [1, 1].map(rmq_test_support::ports::HeldPorts::take);
    let [namesrv_port, controller_port] = held.each_ref().map(|h| h.port());
    let controller_addr = format!("127.0.0.1:{controller_port}");
    let config = dir.path().join("namesrv.properties");
    let text = format!(
        "listenPort = {namesrv_port}\nenableControllerInNamesrv = true\n\
         controllerDLegerGroup = group1\ncontrollerDLegerPeers = n0-{controller_addr}\n\
         controllerDLegerSelfId = n0\ncontrollerStorePath = {}\nlogDir = {}\n\
         kvConfigPath = {}\nconfigStorePath = {}\n",
        dir.path().join("store").display(),
        dir.path().join("logs").display(),
        dir.path().join("kv.json").display(),
        dir.path().join("controller.properties").display(),
    );
    std::fs::write(&config, text).unwrap();
    let log = std::fs::File::create(dir.path().join("namesrv.out")).unwrap();
    let _namesrv = rmq_test_support::process::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_rmq-fast"))
            .args(["namesrv", "-c"])
            .arg(&config)
            .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + ELECTION;
    let leader = loop {
        let view = client::metadata(&controller_addr);
        if let Some(view) = view.filter(|v| v.is_leader) {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "no embedded controller: {}",
            std::fs::read_to_string(dir.path().join("namesrv.out")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(leader.controller_leader_id.as_deref(), Some("n0"));
    assert_eq!(leader.group.as_deref(), Some("group1"));
    // The name server itself still answers on its port.
    let namesrv_addr = format!("127.0.0.1:{namesrv_port}");
    let kv = ask(
        &namesrv_addr,
        RemotingCommand::new_request(rmq_core::remoting::request_code::GET_KVLIST_BY_NAMESPACE)
            .with_ext("namespace", "ORDER_TOPIC_CONFIG"),
    );
    assert!(kv.is_response());
    // The embedded member serves the controller config commands too.
    let mut update = RemotingCommand::new_request(rc::UPDATE_CONTROLLER_CONFIG);
    update.body = b"enableElectUncleanMaster=true\n".to_vec().into();
    let updated = ask(&controller_addr, update);
    assert_eq!(updated.code, 0, "{:?}", updated.remark);
    let persisted = std::fs::read_to_string(dir.path().join("controller.properties")).unwrap();
    assert!(
        persisted.contains("enableElectUncleanMaster=true\n"),
        "{persisted}"
    );
    let config = ask(
        &controller_addr,
        RemotingCommand::new_request(rc::GET_CONTROLLER_CONFIG),
    );
    let text = String::from_utf8(config.body.to_vec()).unwrap();
    assert!(text.contains("enableElectUncleanMaster=true\n"), "{text}");
    let log = std::fs::read_to_string(dir.path().join("namesrv.out")).unwrap();
    assert!(!log.contains("unknown key"), "{log}");
}

/// A member's port stays held from the moment the test picks it, before the member starts
/// and while it is down, so another process cannot be handed it: two concurrent runs once
/// picked the same three ports (each checked free, then released), one run's members exited
/// with "address in use" and its brokers joined the other run's group.
#[test]
fn member_ports_are_held_for_the_whole_test() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = three_members(dir.path());
    // What another process's check finds: a bind without SO_REUSEADDR fails beside any socket.
    let taken_elsewhere = |addr: &str| {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        let addr: std::net::SocketAddr = ([0, 0, 0, 0], port).into();
        socket.bind(&addr.into()).is_ok()
    };
    for member in &members {
        assert!(!taken_elsewhere(&member.addr), "{} not held", member.addr);
    }
    members.iter_mut().for_each(Member::start);
    let leader = agreed_leader(&members, ELECTION);
    members[leader].kill();
    assert!(
        !taken_elsewhere(&members[leader].addr),
        "{} not held while its member is down",
        members[leader].addr
    );
}
