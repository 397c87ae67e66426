//! Controller mode without a controller (issue 11, step 2): the broker's role changes at
//! runtime through the internal API (`replication::role`), in process, against an in-process
//! name server. A master of epoch 1 with its slave; the slave loses it (an unacknowledged tail
//! stays on the master); the master stops; the slave becomes master of epoch 2 (registered as
//! brokerId 0 at once, takes writes, serves every acknowledged message); the old master comes
//! back as a slave of epoch 2, cuts its unacknowledged tail at the consistent point of both
//! epoch histories and ends up with exactly the new master's queues, and refuses writes.

mod support;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rmq_broker::context::SharedContext;
use rmq_broker::replication::role::{self, RoleError};
use rmq_broker::server::{BrokerHandle, start_broker};
use rmq_core::config::{BrokerConfig, NamesrvConfig};
use rmq_core::remoting::ResponseCode;
use rmq_net::RemotingClient;
use rmq_test_support::ports::free_port;
use support::{
    Acked, TIMEOUT, Topic, controller_mode_config, free_port_pair, read_queue, route_ids,
    send_counting_codes, until, verify,
};

const TOPIC: Topic = Topic {
    name: "RoleTopic",
    queues: 4,
};

struct Namesrv {
    stop: Arc<AtomicBool>,
    addr: String,
}

impl Namesrv {
    fn start() -> Namesrv {
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

fn config(root: &Path, port: u16, namesrv: &str, extra: &[(&str, String)]) -> BrokerConfig {
    let keys = [
        ("brokerClusterName", "RoleCluster"),
        ("brokerName", "role-broker"),
        // Ignored in controller mode (the controller's to give).
        ("brokerRole", "ASYNC_MASTER"),
        ("haSendHeartbeatInterval", "200"),
        ("slaveTimeout", "2000"),
    ];
    let keys: Vec<(&str, &str)> = keys
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .collect();
    controller_mode_config(root, port, namesrv, "127.0.0.1:1", &keys)
}

struct Node {
    config: BrokerConfig,
    addr: String,
    ha_addr: String,
}

impl Node {
    fn new(root: &Path, namesrv: &str) -> Node {
        Node::with(root, namesrv, &[])
    }

    /// A node with `extra` configuration keys.
    fn with(root: &Path, namesrv: &str, extra: &[(&str, String)]) -> Node {
        let port = free_port_pair();
        Node {
            config: config(root, port, namesrv, extra),
            addr: format!("127.0.0.1:{port}"),
            ha_addr: format!("127.0.0.1:{}", port + 1),
        }
    }

    fn start(&self) -> BrokerHandle {
        start_broker(self.config.clone()).expect("start the broker")
    }
}

async fn queues(addr: &str) -> Vec<Vec<bytes::Bytes>> {
    let client = RemotingClient::connect(addr, TIMEOUT).await.unwrap();
    let mut all = Vec::new();
    for queue in 0..TOPIC.queues {
        let (records, _) = read_queue(&client, TOPIC.name, queue, 0).await.unwrap();
        all.push(records.into_iter().map(|r| r.record).collect());
    }
    all
}

#[test]
fn a_slave_takes_over_and_the_old_master_rejoins_at_the_consistent_point() {
    let namesrv = Namesrv::start();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = Node::new(dirs[0].path(), &namesrv.addr);
    let b = Node::new(dirs[1].path(), &namesrv.addr);
    let a_handle = a.start();
    let b_handle = b.start();
    let (a_ctx, b_ctx) = (a_handle.context().clone(), b_handle.context().clone());
    let mut acked = Acked::new();
    rmq_net::rt::block_on(async {
        // No role yet: writes refused, nothing registered.
        let refused = send_counting_codes(&a.addr, TOPIC, 0, 1, &mut acked).await;
        assert_eq!(refused, [(ResponseCode::ServiceNotAvailable.code(), 1)]);

        role::become_master(&a_ctx, 1, 1, &[1, 2]).await.unwrap();
        role::become_slave(&b_ctx, &a.addr, Some(&a.ha_addr), 1, 2)
            .await
            .unwrap();
        assert_eq!(
            role::become_master(&a_ctx, 0, 1, &[1]).await,
            Err(RoleError::StaleEpoch {
                requested: 0,
                current: 1
            })
        );
        // SYNC: acknowledged once B has it (the first sends may find B not connected yet).
        // Each shard has its own session, so the probe sends one message to every queue:
        // every shard.
        let mut probe = 100;
        until("B replicating", Duration::from_secs(10), async || {
            probe += 1;
            let every_queue = TOPIC.queues as u64;
            let codes = send_counting_codes(&a.addr, TOPIC, probe, every_queue, &mut acked).await;
            codes == [(ResponseCode::Success.code(), every_queue as usize)]
        })
        .await;
        let codes = send_counting_codes(&a.addr, TOPIC, 1, 200, &mut acked).await;
        assert_eq!(codes, [(ResponseCode::Success.code(), 200)]);
        until(
            "A as 0, B as 2 in the route",
            Duration::from_secs(10),
            async || {
                let ids = route_ids(&namesrv.addr, TOPIC.name).await;
                ids.contains(&(0, a.addr.clone())) && ids.contains(&(2, b.addr.clone()))
            },
        )
        .await;

        // B loses A (it follows an address where nobody listens): A's next sends are stored
        // but not acknowledged.
        role::become_slave(&b_ctx, "127.0.0.1:1", Some("127.0.0.1:2"), 1, 2)
            .await
            .unwrap();
        let mut unacked = Acked::new();
        let codes = send_counting_codes(&a.addr, TOPIC, 2, 40, &mut unacked).await;
        assert!(
            unacked.is_empty(),
            "nothing acknowledged without B: {codes:?}"
        );
    })
    .unwrap();
    a_handle.stop().unwrap();

    rmq_net::rt::block_on(async {
        // B is elected with epoch 2, alone in its sync-state set.
        role::become_master(&b_ctx, 2, 2, &[2]).await.unwrap();
        until("B as brokerId 0", Duration::from_secs(5), async || {
            route_ids(&namesrv.addr, TOPIC.name).await == [(0, b.addr.clone())]
        })
        .await;
        let codes = send_counting_codes(&b.addr, TOPIC, 3, 60, &mut acked).await;
        assert_eq!(codes, [(ResponseCode::Success.code(), 60)]);
        verify(&b.addr, TOPIC, &acked, 3).await.unwrap();
    })
    .unwrap();

    // A comes back: a slave of B in epoch 2.
    let a_handle = a.start();
    let a_ctx = a_handle.context().clone();
    rmq_net::rt::block_on(async {
        role::become_slave(&a_ctx, &b.addr, Some(&b.ha_addr), 2, 1)
            .await
            .unwrap();
        // A catches up (cut back to the consistent point first), then the controller would
        // put it back into the sync-state set: SYNC sends wait for it again.
        let b_queues = queues(&b.addr).await;
        until("A holds B's queues", Duration::from_secs(10), async || {
            queues(&a.addr).await == b_queues
        })
        .await;
        role::apply_sync_state_set(&b_ctx, &[1, 2]);
        let codes = send_counting_codes(&b.addr, TOPIC, 4, 20, &mut acked).await;
        assert_eq!(
            codes,
            [(ResponseCode::Success.code(), 20)],
            "SYNC with A back"
        );
        let b_queues = queues(&b.addr).await;
        assert_eq!(queues(&a.addr).await, b_queues, "acknowledged: A has it");
        verify(&a.addr, TOPIC, &acked, 4).await.unwrap();
        let mut none = Acked::new();
        let refused = send_counting_codes(&a.addr, TOPIC, 5, 1, &mut none).await;
        assert_eq!(refused, [(ResponseCode::ServiceNotAvailable.code(), 1)]);
        until("A as 1, B as 0", Duration::from_secs(5), async || {
            let mut ids = route_ids(&namesrv.addr, TOPIC.name).await;
            ids.sort();
            ids == [(0, b.addr.clone()), (1, a.addr.clone())]
        })
        .await;
    })
    .unwrap();
    a_handle.stop().unwrap();
    b_handle.stop().unwrap();
}

/// How long a slave that lost its master pauses between attempts: each shard's session
/// before it reconnects (`replication/slave.rs`), core 0's metadata copy between copies.
const SLAVE_PAUSE: Duration = rmq_broker::replication::metadata_sync::SYNC_INTERVAL;

/// A started broker made a slave (broker id 2, epoch 1) of a master at `master_addr`
/// (`master_ha_addr`: its HA address).
struct Slave {
    node: Node,
    handle: BrokerHandle,
    ctx: SharedContext,
    /// Taken before the broker became a slave: no pause of its slave role began earlier.
    became_slave: Instant,
    _dir: tempfile::TempDir,
}

impl Slave {
    fn start(
        namesrv: &str,
        extra: &[(&str, String)],
        master_addr: &str,
        master_ha_addr: &str,
    ) -> Slave {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::with(dir.path(), namesrv, extra);
        let handle = node.start();
        let ctx = handle.context().clone();
        let became_slave = Instant::now();
        rmq_net::rt::block_on(role::become_slave(
            &ctx,
            master_addr,
            Some(master_ha_addr),
            1,
            2,
        ))
        .unwrap()
        .unwrap();
        Slave {
            node,
            handle,
            ctx,
            became_slave,
            _dir: dir,
        }
    }
}

/// A TCP server that counts the connections it accepted and the bytes it read, and never
/// answers: with `close_at_once`, it closes each connection as soon as it accepted it (a
/// master that went away), otherwise it keeps them open (a name server behind a partition).
struct MuteServer {
    addr: String,
    accepted: Arc<AtomicUsize>,
    read: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MuteServer {
    fn start(close_at_once: bool) -> MuteServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (accepted, read) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, read, stop) = (accepted.clone(), read.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut open = Vec::new();
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((stream, _)) = listener.accept() {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        if !close_at_once {
                            stream.set_nonblocking(true).unwrap();
                            open.push(stream);
                        }
                    }
                    for stream in &mut open {
                        if let Ok(n) = stream.read(&mut buf) {
                            read.fetch_add(n, Ordering::SeqCst);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        MuteServer {
            addr,
            accepted,
            read,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for MuteServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A slave that lost its master pauses between attempts (each shard's session before it
/// reconnects, core 0's metadata copy between copies); elected meanwhile, it takes writes
/// without waiting the pauses out (they were 1 s each, added to every failover).
///
/// The master closes every connection at once; once every shard's session and the metadata
/// copy failed against it, each is in its pause, which ends [`SLAVE_PAUSE`] after it began,
/// so not before the broker became a slave plus [`SLAVE_PAUSE`]. A role change that waited
/// for them would end after that.
#[test]
fn a_slave_elected_while_it_pauses_takes_writes_at_once() {
    let namesrv = Namesrv::start();
    let (master, master_ha) = (MuteServer::start(true), MuteServer::start(true));
    let slave = Slave::start(&namesrv.addr, &[], &master.addr, &master_ha.addr);
    let shards = slave.node.config.shard_count as usize;
    rmq_net::rt::block_on(async {
        until(
            "every session and the metadata copy failed once",
            Duration::from_secs(10),
            async || {
                master_ha.accepted.load(Ordering::SeqCst) >= shards
                    && master.accepted.load(Ordering::SeqCst) >= 1
            },
        )
        .await;
        role::become_master(&slave.ctx, 2, 2, &[2]).await.unwrap();
        let took = slave.became_slave.elapsed();
        assert!(
            took < SLAVE_PAUSE,
            "took writes {took:?} after becoming a slave: a pause was waited out"
        );
        let mut acked = Acked::new();
        let codes = send_counting_codes(&slave.node.addr, TOPIC, 1, 1, &mut acked).await;
        assert_eq!(codes, [(ResponseCode::Success.code(), 1)]);
    })
    .unwrap();
    slave.handle.stop().unwrap();
}

/// A role change's registration goes to each name server at once: a periodic registration
/// still waiting for a name server that never answers (a partition: up to
/// `registerBrokerTimeoutMills`) delays it at no other name server.
///
/// That timeout is [`SILENT_TIMEOUT`] here, and the periodic registration began after the
/// broker started: one waiting behind it would reach the name server only once
/// [`SILENT_TIMEOUT`] passed since then. The role change's must arrive well before: within
/// half of it.
#[test]
fn a_role_change_registers_at_once_while_a_name_server_does_not_answer() {
    const SILENT_TIMEOUT: Duration = Duration::from_secs(20);
    let namesrv = Namesrv::start();
    let silent = MuteServer::start(false);
    let started = Instant::now();
    let timeout = [(
        "registerBrokerTimeoutMills",
        SILENT_TIMEOUT.as_millis().to_string(),
    )];
    let namesrvs = format!("{};{}", namesrv.addr, silent.addr);
    let slave = Slave::start(&namesrvs, &timeout, "127.0.0.1:1", "127.0.0.1:2");
    rmq_net::rt::block_on(async {
        // A registration now waits for the silent name server.
        until(
            "a registration sent to the silent name server",
            Duration::from_secs(10),
            async || silent.read.load(Ordering::SeqCst) > 0,
        )
        .await;
        role::become_master(&slave.ctx, 2, 2, &[2]).await.unwrap();
        let master = [(0, slave.node.addr.clone())];
        while route_ids(&namesrv.addr, "TBW102").await != master {
            assert!(
                started.elapsed() < SILENT_TIMEOUT / 2,
                "not registered as brokerId 0 {:?} after the start",
                started.elapsed()
            );
            rmq_net::rt::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "registered as brokerId 0 {:?} after the start",
            started.elapsed()
        );
    })
    .unwrap();
    // Closed first: the registration waiting for it ends at once, not after the timeout.
    drop(silent);
    slave.handle.stop().unwrap();
}
