//! RocketMQ 5's `minInSyncReplicas` and `inSyncReplicas` in controller mode (issue 11), over
//! the network: two in-process brokers driven by the scripted controller
//! (`support::scripted_controller`), SEND_MESSAGE_V2 from a plain remoting client.
//! - `minInSyncReplicas=2`: the master refuses sends (SYSTEM_ERROR "in-sync replicas not
//!   enough", nothing stored) while it is alone in its sync-state set, takes them once the
//!   slave joined, and refuses again once the slave stopped and the set shrank.
//! - `inSyncReplicas=2`, `allAckInSyncStateSet=false`: a SYNC send waits for one slave
//!   whatever the set says (alone: SLAVE_NOT_AVAILABLE at once, even after the controller
//!   shrank the set).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rmq_broker::server::{BrokerHandle, start_broker};
use rmq_core::config::BrokerConfig;
use rmq_core::remoting::ResponseCode;
use rmq_net::RemotingClient;
use support::scripted_controller::{Masters, Namesrv, start_controller};
use support::{
    Acked, TIMEOUT, Topic, controller_mode_config, free_port_pair, send_counting_codes, until,
    verify,
};

const TOPIC: Topic = Topic {
    name: "IsrTopic",
    queues: 4,
};

struct Node {
    config: BrokerConfig,
    addr: String,
}

impl Node {
    fn new(root: &Path, namesrv: &str, controller: &str, keys: &[(&str, &str)]) -> Node {
        let port = free_port_pair();
        let defaults = [
            ("brokerClusterName", "IsrCluster"),
            ("brokerName", "isr-broker"),
            ("controllerHeartBeatTimeoutMills", "3000"),
            ("syncBrokerMetadataPeriod", "300"),
            ("checkSyncStateSetPeriod", "300"),
            ("haMaxTimeSlaveNotCatchup", "1500"),
            ("haSendHeartbeatInterval", "200"),
            ("slaveTimeout", "2000"),
        ];
        let keys: Vec<(&str, &str)> = defaults.iter().chain(keys).copied().collect();
        Node {
            config: controller_mode_config(root, port, namesrv, controller, &keys),
            addr: format!("127.0.0.1:{port}"),
        }
    }

    fn start(&self) -> BrokerHandle {
        start_broker(self.config.clone()).expect("start the broker")
    }
}

/// Master A (id 1) and slave B (id 2) of one group, with the name server and the scripted
/// controller; B is started by the test.
struct Cluster {
    stop_controller: Arc<AtomicBool>,
    decisions: Masters,
    _namesrv: Namesrv,
    _dirs: [tempfile::TempDir; 2],
    a: Node,
    b: Node,
}

impl Cluster {
    fn new(keys: &[(&str, &str)]) -> Cluster {
        let stop_controller = Arc::new(AtomicBool::new(false));
        let (controller, decisions) = start_controller(stop_controller.clone(), Arc::default());
        let namesrv = Namesrv::start();
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let a = Node::new(dirs[0].path(), &namesrv.addr, &controller, keys);
        let b = Node::new(dirs[1].path(), &namesrv.addr, &controller, keys);
        Cluster {
            stop_controller,
            decisions,
            _namesrv: namesrv,
            _dirs: dirs,
            a,
            b,
        }
    }

    /// The last sync-state set the controller granted.
    fn granted(&self) -> Option<Vec<i64>> {
        let decisions = self.decisions.lock().unwrap();
        let last = decisions.sync_state_sets.last()?;
        Some(last.iter().copied().collect())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_controller.store(true, Ordering::Relaxed);
    }
}

/// One send's code and remark.
async fn send_one(addr: &str, round: usize) -> (i32, String) {
    let client = RemotingClient::connect(addr, TIMEOUT).await.unwrap();
    let (request, _, _) = support::send_request(TOPIC, round, 0, 0);
    let response = client.invoke(request, TIMEOUT).await.unwrap();
    (response.code, response.remark.unwrap_or_default())
}

/// Messages stored in every queue of the topic at `addr`.
async fn stored(addr: &str) -> usize {
    let client = RemotingClient::connect(addr, TIMEOUT).await.unwrap();
    let mut count = 0;
    for queue in 0..TOPIC.queues {
        let (records, _) = support::read_queue(&client, TOPIC.name, queue, 0)
            .await
            .unwrap();
        count += records.len();
    }
    count
}

const OK: i32 = ResponseCode::Success.code();
const SYSTEM_ERROR: i32 = ResponseCode::SystemError.code();
const SLAVE_NOT_AVAILABLE: i32 = ResponseCode::SlaveNotAvailable.code();
const FLUSH_SLAVE_TIMEOUT: i32 = ResponseCode::FlushSlaveTimeout.code();

#[test]
fn min_in_sync_replicas_refuses_sends_while_the_sync_state_set_is_too_small() {
    let cluster = Cluster::new(&[("allAckInSyncStateSet", "true"), ("minInSyncReplicas", "2")]);
    let a_handle = cluster.a.start();
    let a_ctx = a_handle.context().clone();
    let a = cluster.a.addr.clone();
    let mut acked = Acked::new();
    let b_handle = rmq_net::rt::block_on(async {
        until("A elected", Duration::from_secs(10), async || {
            !a_ctx.is_slave()
        })
        .await;
        // Alone in its set: refused before anything is written.
        let (code, remark) = send_one(&a, 1).await;
        assert_eq!(
            (code, remark.as_str()),
            (SYSTEM_ERROR, "in-sync replicas not enough")
        );
        let codes = send_counting_codes(&a, TOPIC, 2, 10, &mut acked).await;
        assert_eq!(codes, [(SYSTEM_ERROR, 10)]);
        assert_eq!(stored(&a).await, 0, "a refused send is not stored");

        let b_handle = cluster.b.start();
        let mut round = 10;
        until(
            "B in A's set, sends taken",
            Duration::from_secs(20),
            async || {
                round += 1;
                cluster.granted() == Some(vec![1, 2])
                    && send_counting_codes(&a, TOPIC, round, 4, &mut acked).await == [(OK, 4)]
            },
        )
        .await;
        let codes = send_counting_codes(&a, TOPIC, 100, 20, &mut acked).await;
        assert_eq!(codes, [(OK, 20)]);
        b_handle
    })
    .unwrap();
    b_handle.stop().unwrap();
    rmq_net::rt::block_on(async {
        // B is gone: A asks the controller to shrink its set to {A}, then refuses again.
        let mut round = 200;
        until(
            "refused once B left the set",
            Duration::from_secs(20),
            async || {
                round += 1;
                send_one(&a, round).await.0 == SYSTEM_ERROR
            },
        )
        .await;
        // The shrink was the controller's (its decisions are copied out every 20 ms).
        until(
            "the controller granted {A}",
            Duration::from_secs(5),
            async || cluster.granted() == Some(vec![1]),
        )
        .await;
        assert_eq!(a_ctx.role.in_sync_replicas(), Some(1));
        let before = stored(&a).await;
        let codes = send_counting_codes(&a, TOPIC, 300, 10, &mut acked).await;
        assert_eq!(codes, [(SYSTEM_ERROR, 10)]);
        assert_eq!(stored(&a).await, before, "refused sends are not stored");
        verify(&a, TOPIC, &acked, 1).await.unwrap();
    })
    .unwrap();
    a_handle.stop().unwrap();
}

#[test]
fn in_sync_replicas_without_all_ack_sets_how_many_replicas_a_send_waits_for() {
    let cluster = Cluster::new(&[("allAckInSyncStateSet", "false"), ("inSyncReplicas", "2")]);
    let a_handle = cluster.a.start();
    let a_ctx = a_handle.context().clone();
    let a = cluster.a.addr.clone();
    let mut acked = Acked::new();
    let b_handle = rmq_net::rt::block_on(async {
        until("A elected", Duration::from_secs(10), async || {
            !a_ctx.is_slave()
        })
        .await;
        // inSyncReplicas=2 needs one slave even while the set is {A}.
        assert_eq!(a_ctx.role.in_sync_replicas(), Some(1));
        let codes = send_counting_codes(&a, TOPIC, 1, 5, &mut acked).await;
        assert_eq!(codes, [(SLAVE_NOT_AVAILABLE, 5)]);

        let b_handle = cluster.b.start();
        let mut round = 10;
        until(
            "sends acknowledged with B",
            Duration::from_secs(20),
            async || {
                round += 1;
                send_counting_codes(&a, TOPIC, round, 4, &mut acked).await == [(OK, 4)]
            },
        )
        .await;
        let codes = send_counting_codes(&a, TOPIC, 100, 20, &mut acked).await;
        assert_eq!(codes, [(OK, 20)]);
        until("B in A's set", Duration::from_secs(20), async || {
            cluster.granted() == Some(vec![1, 2]) && a_ctx.role.in_sync_replicas() == Some(2)
        })
        .await;
        b_handle
    })
    .unwrap();
    b_handle.stop().unwrap();
    rmq_net::rt::block_on(async {
        until("B out of A's set", Duration::from_secs(20), async || {
            cluster.granted() == Some(vec![1]) && a_ctx.role.in_sync_replicas() == Some(1)
        })
        .await;
        // The set shrank to {A}; inSyncReplicas still asks for one slave, so nothing is
        // acknowledged. A's set drops B once one shard lost B, but each shard ends B's HA
        // session on its own when it reads B's close: until then a send to that shard waits
        // for B and times out (FLUSH_SLAVE_TIMEOUT). So: one send to every queue (every
        // shard) until all are refused at once, none ever acknowledged.
        let mut round = 200;
        until(
            "every shard refusing at once",
            Duration::from_secs(30),
            async || {
                round += 1;
                let every_queue = TOPIC.queues as u64;
                let codes = send_counting_codes(&a, TOPIC, round, every_queue, &mut acked).await;
                assert!(
                    codes.iter().all(
                        |&(code, _)| code == SLAVE_NOT_AVAILABLE || code == FLUSH_SLAVE_TIMEOUT
                    ),
                    "a send without a slave answered {codes:?}"
                );
                codes == [(SLAVE_NOT_AVAILABLE, TOPIC.queues as usize)]
            },
        )
        .await;
        let codes = send_counting_codes(&a, TOPIC, 300, 5, &mut acked).await;
        assert_eq!(codes, [(SLAVE_NOT_AVAILABLE, 5)]);
        verify(&a, TOPIC, &acked, 1).await.unwrap();
    })
    .unwrap();
    a_handle.stop().unwrap();
}
