//! What the name server learns from the broker, and when: the real `rmq-fast broker` binary
//! against an in-process name server (`rmq_namesrv::run_namesrv`).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmq_core::body::{TopicRouteData, decode_body};
use rmq_core::config::NamesrvConfig;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use rmq_net::RemotingClient;
use rmq_test_support::ports::free_port;
use serde_json::json;
use support::{TIMEOUT, Topic, free_port_pair, send_request, wait_until_serving};

/// A name server on its own thread, stopped when dropped.
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

fn write_config(root: &Path, port: u16, namesrv: &str) -> PathBuf {
    let text = format!(
        "brokerClusterName=RegCluster\nbrokerName=reg-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr={namesrv}\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nmappedFileSizeCommitLog=1048576\n\
         maxMessageSize=65536\nmappedFileSizeConsumeQueue=6000\nshardCount=1\nautoCreateTopicEnable=true\n",
        root.join("store").display(),
        root.join("logs").display(),
    );
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}

fn heartbeat(group: &str) -> RemotingCommand {
    let body = json!({
        "clientID": "reg-client",
        "producerDataSet": [],
        "consumerDataSet": [{
            "groupName": group,
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet": [{"topic": "T", "subString": "*", "tagsSet": [], "codeSet": []}],
            "unitMode": false
        }]
    });
    RemotingCommand::new_request(rc::HEART_BEAT).with_body(body.to_string().into_bytes())
}

async fn route(namesrv: &RemotingClient, topic: &str) -> Option<TopicRouteData> {
    let request = RemotingCommand::new_request(rc::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    let response = namesrv.invoke(request, TIMEOUT).await.unwrap();
    (response.code == ResponseCode::Success.code()).then(|| decode_body(&response.body).unwrap())
}

/// A consumer's first heartbeat creates its group's %RETRY% topic; RocketMQ registers it
/// with the name servers before answering, so the client's route refresh right after finds
/// it (we answered first: retries waited for the next refresh, 40 s instead of 10 s).
#[test]
fn a_retry_topic_is_routable_when_the_heartbeat_that_created_it_is_answered() {
    let namesrv = Namesrv::start();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port, &namesrv.addr);
    let log = root.path().join("broker.out");
    let mut broker = support::start_broker(&support::broker_binary(), &config, &log);
    let addr = format!("127.0.0.1:{port}");
    rmq_net::rt::block_on(async {
        wait_until_serving(&addr, &mut broker, &log).await;
        let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
        let names = RemotingClient::connect(&namesrv.addr, TIMEOUT)
            .await
            .unwrap();
        for group in ["RegGroupA", "RegGroupB", "RegGroupC"] {
            let response = client.invoke(heartbeat(group), TIMEOUT).await.unwrap();
            assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
            let retry = format!("%RETRY%{group}");
            let route = route(&names, &retry).await;
            let route = route.unwrap_or_else(|| panic!("no route of {retry} after the heartbeat"));
            assert_eq!(route.broker_datas[0].broker_name, "reg-broker");
        }
    })
    .expect("runtime");
}

fn update_config(text: &str) -> RemotingCommand {
    RemotingCommand::new_request(rc::UPDATE_BROKER_CONFIG).with_body(text.as_bytes().to_vec())
}

/// The perms of `topic`'s queue datas once they all equal `want` (polled for 3 s: the broker
/// re-registers at once, within its 100 ms registration tick, not a 30 s period later).
async fn wait_for_perm(names: &RemotingClient, topic: &str, want: i32) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let perms: Vec<i32> = route(names, topic)
            .await
            .map(|r| r.queue_datas.iter().map(|q| q.perm).collect())
            .unwrap_or_default();
        if !perms.is_empty() && perms.iter().all(|p| *p == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: perms {perms:?}, want {want}"
        );
        rmq_net::rt::sleep(Duration::from_millis(20)).await;
    }
}

/// mqadmin updateBrokerConfig brokerPermission=4 drains a broker: the routes carry
/// permission 4 at once (we kept 6: registration ignored brokerPermission) and sends are
/// refused with NO_PERMISSION (we read the start-up value); 6 gives write back.
#[test]
fn broker_permission_updated_at_runtime_reaches_routes_and_sends() {
    const TOPIC: Topic = Topic {
        name: "PermTopic",
        queues: 4,
    };
    let namesrv = Namesrv::start();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port, &namesrv.addr);
    let log = root.path().join("broker.out");
    let mut broker = support::start_broker(&support::broker_binary(), &config, &log);
    let addr = format!("127.0.0.1:{port}");
    rmq_net::rt::block_on(async {
        wait_until_serving(&addr, &mut broker, &log).await;
        let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
        let names = RemotingClient::connect(&namesrv.addr, TIMEOUT)
            .await
            .unwrap();
        let send = |seq| client.invoke(send_request(TOPIC, 0, 0, seq).0, TIMEOUT);
        let response = send(0).await.unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        wait_for_perm(&names, TOPIC.name, 6).await;

        let response = client
            .invoke(update_config("brokerPermission=4"), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        let refused = send(1).await.unwrap();
        assert_eq!(
            refused.code,
            ResponseCode::NoPermission.code(),
            "{refused:?}"
        );
        assert!(
            refused
                .remark
                .as_deref()
                .unwrap_or("")
                .contains("sending message is forbidden")
        );
        wait_for_perm(&names, TOPIC.name, 4).await;

        let response = client
            .invoke(update_config("brokerPermission=6"), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        wait_for_perm(&names, TOPIC.name, 6).await;
        let response = send(2).await.unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
    })
    .expect("runtime");
}

/// The name server lists what Apache's would: RocketMQ's system topics, not our timer topic
/// (only the broker reads and writes it), and the transaction topics only once used.
#[test]
fn the_name_server_lists_rocketmqs_system_topics_not_ours() {
    let namesrv = Namesrv::start();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port, &namesrv.addr);
    let log = root.path().join("broker.out");
    let mut broker = support::start_broker(&support::broker_binary(), &config, &log);
    let addr = format!("127.0.0.1:{port}");
    rmq_net::rt::block_on(async {
        wait_until_serving(&addr, &mut broker, &log).await;
        let names = RemotingClient::connect(&namesrv.addr, TIMEOUT)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let topics = loop {
            let request = RemotingCommand::new_request(rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
            let response = names.invoke(request, TIMEOUT).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            let topics: Vec<String> = body["topicList"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if topics.iter().any(|t| t == "reg-broker") || Instant::now() > deadline {
                break topics;
            }
            rmq_net::rt::sleep(Duration::from_millis(100)).await;
        };
        for shown in [
            "reg-broker",
            "RegCluster",
            "SCHEDULE_TOPIC_XXXX",
            "SELF_TEST_TOPIC",
            "TBW102",
        ] {
            assert!(
                topics.iter().any(|t| t == shown),
                "{shown} missing from {topics:?}"
            );
        }
        for hidden in [
            "rmq_sys_timer_buckets",
            "RMQ_SYS_TRANS_HALF_TOPIC",
            "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        ] {
            assert!(
                !topics.iter().any(|t| t == hidden),
                "{hidden} listed: {topics:?}"
            );
        }
    })
    .expect("runtime");
}
