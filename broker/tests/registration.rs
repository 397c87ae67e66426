//! What the name server learns from the broker, and when: the real `rmq-fast broker` binary
//! against an in-process name server (`rmq_namesrv::run_namesrv`).
//!
//! `registration_larger_than_a_frame_is_split_and_every_topic_is_routable` creates
//! 3,000 topics with 120-character random names against a 128 KiB frame limit on both sides
//! (the registration is ~250 KB compressed, so it must be split);
//! `many_topics_are_created_registered_and_routable` creates 50,000 with the default 16 MiB
//! frames, and `RMQ_REGISTER_TOPICS=1000000` runs it at scale (passed on 2026-12-05 with
//! the release binary, `RMQ_FAST_BIN=target/release/rmq-fast`: 1M topics created over the
//! network in 66 s, all routable 20 s later). Both check every topic's route (10,000 spread
//! over them above that), print the lookup latency, and send to the topic created last and
//! read it back.

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
        Namesrv::start_with(&[])
    }

    /// A name server with config `overrides` (RocketMQ key spellings).
    fn start_with(overrides: &[(&str, &str)]) -> Namesrv {
        let port = free_port();
        let mut overrides: Vec<(String, String)> = overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        overrides.push(("listenPort".to_owned(), port.to_string()));
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
         storePathRootDir={}\nlogDir={}\nmappedFileSizeCommitLog=1048576\ncleanFileForciblyEnable=false\n\
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

/// Starts a name server and the broker binary registered with it, waits until the broker
/// serves, and runs `test` with a client of the broker and one of the name server.
fn with_broker(test: impl AsyncFnOnce(&RemotingClient, &RemotingClient)) {
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
        test(&client, &names).await;
    })
    .expect("runtime");
}

/// A consumer's first heartbeat creates its group's %RETRY% topic; RocketMQ registers it
/// with the name servers before answering, so the client's route refresh right after finds
/// it (we answered first: retries waited for the next refresh, 40 s instead of 10 s).
#[test]
fn a_retry_topic_is_routable_when_the_heartbeat_that_created_it_is_answered() {
    with_broker(async |client, names| {
        for group in ["RegGroupA", "RegGroupB", "RegGroupC"] {
            let response = client.invoke(heartbeat(group), TIMEOUT).await.unwrap();
            assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
            let retry = format!("%RETRY%{group}");
            let route = route(names, &retry).await;
            let route = route.unwrap_or_else(|| panic!("no route of {retry} after the heartbeat"));
            assert_eq!(route.broker_datas[0].broker_name, "reg-broker");
        }
    });
}

/// The send that auto-creates a topic is answered after the topic reached every name server,
/// as RocketMQ's `createTopicInSendMessageMethod` registers before it returns: a consumer
/// started right after the producer's first sends finds the route (we answered first, and a
/// consumer that looked in between had no route until its refresh 30 s later).
#[test]
fn an_auto_created_topic_is_routable_when_the_send_that_created_it_is_answered() {
    with_broker(async |client, names| {
        for name in ["AutoTopicA", "AutoTopicB", "AutoTopicC"] {
            let topic = Topic { name, queues: 4 };
            let (request, _, _) = send_request(topic, 0, 0, 0);
            let response = client.invoke(request, TIMEOUT).await.unwrap();
            assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
            let route = route(names, name).await;
            let route = route.unwrap_or_else(|| panic!("no route of {name} after its first send"));
            assert_eq!(route.broker_datas[0].broker_name, "reg-broker");
            assert_eq!(route.queue_datas[0].write_queue_nums, 4, "{route:?}");
        }
    });
}

fn update_config(text: &str) -> RemotingCommand {
    RemotingCommand::new_request(rc::UPDATE_BROKER_CONFIG).with_body(text.as_bytes().to_vec())
}

/// The perms of `topic`'s queue datas once they all equal `want` (polled for 3 s: the broker
/// re-registers at once, within its 100 ms registration tick, not a 30 s period later).
/// Waits up to 10 s (the periodic registration comes every 30 s, so a route that changes
/// within this came from the registration the change made; 3 s failed on a loaded machine).
async fn wait_for_perm(names: &RemotingClient, topic: &str, want: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
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
    with_broker(async |client, names| {
        let send = |seq| client.invoke(send_request(TOPIC, 0, 0, seq).0, TIMEOUT);
        let response = send(0).await.unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        wait_for_perm(names, TOPIC.name, 6).await;

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
        wait_for_perm(names, TOPIC.name, 4).await;

        let response = client
            .invoke(update_config("brokerPermission=6"), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        wait_for_perm(names, TOPIC.name, 6).await;
        let response = send(2).await.unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
    });
}

/// The name server lists what Apache's would: RocketMQ's system topics, not our timer topic
/// (only the broker reads and writes it), and the transaction topics only once used.
#[test]
fn the_name_server_lists_rocketmqs_system_topics_not_ours() {
    with_broker(async |_, names| {
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
    });
}

/// Topics created by `many_topics_are_created_registered_and_routable` (`RMQ_REGISTER_TOPICS`,
/// default 50,000; 1000000 for the long mode).
fn register_topic_count() -> usize {
    std::env::var("RMQ_REGISTER_TOPICS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

/// 3,000 topics with names zlib cannot shrink much against a 128 KiB frame on both sides.
#[test]
fn registration_larger_than_a_frame_is_split_and_every_topic_is_routable() {
    registration_at_scale(3_000, 131_072, 120);
}

/// Past 10,000 topics a master registers created topics incrementally and skips unchanged
/// periodic registrations; default frames.
#[test]
fn many_topics_are_created_registered_and_routable() {
    registration_at_scale(register_topic_count(), 16 << 20, 24);
}

/// Creates `count` topics of `name_len`-byte names over the network (`frame`: both sides'
/// maxFrameLength), waits until the last is routable, sends to it and reads it back, and
/// looks up every topic (10,000 spread over them above that).
fn registration_at_scale(count: usize, frame: usize, name_len: usize) {
    let frame = frame.to_string();
    let frame = frame.as_str();
    let namesrv = Namesrv::start_with(&[("maxFrameLength", frame)]);
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port, &namesrv.addr);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("maxFrameLength={frame}\n"));
    std::fs::write(&config, text).unwrap();
    let log = root.path().join("broker.out");
    let mut broker = support::start_broker(&support::broker_binary(), &config, &log);
    let addr = format!("127.0.0.1:{port}");
    let mut next = support::fastrand_like(0x5EED ^ count as u64);
    let names: Vec<String> = (0..count)
        .map(|i| {
            let mut name = format!("Reg{i}_");
            while name.len() < name_len {
                name.push(char::from(b'a' + (next() % 26) as u8));
            }
            name
        })
        .collect();
    rmq_net::rt::block_on(async {
        wait_until_serving(&addr, &mut broker, &log).await;
        let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
        let started = Instant::now();
        for batch in names.chunks(64) {
            let answers = futures_util::future::join_all(batch.iter().map(|name| {
                let request = RemotingCommand::new_request(rc::UPDATE_AND_CREATE_TOPIC)
                    .with_ext("topic", name)
                    .with_ext("readQueueNums", 4)
                    .with_ext("writeQueueNums", 4)
                    .with_ext("perm", 6);
                client.invoke(request, TIMEOUT)
            }))
            .await;
            for (name, answer) in batch.iter().zip(answers) {
                let code = answer.as_ref().map(|r| r.code);
                assert!(
                    code.as_ref()
                        .is_ok_and(|c| *c == ResponseCode::Success.code()),
                    "create {name} after {:?}: {code:?}\n{}",
                    started.elapsed(),
                    support::log_tail(&log)
                );
            }
        }
        let created = started.elapsed();
        let names_client = RemotingClient::connect(&namesrv.addr, TIMEOUT)
            .await
            .unwrap();
        // Every topic becomes routable (the last created one last).
        let deadline = Instant::now() + Duration::from_secs(30 + (count / 2_000) as u64);
        while route(&names_client, names.last().unwrap()).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "{count} topics never became routable:\n{}",
                support::log_tail(&log)
            );
            rmq_net::rt::sleep(Duration::from_millis(100)).await;
        }
        let routable = started.elapsed();
        // The topic created last takes a message and serves it back.
        let last: &'static str = Box::leak(names.last().unwrap().clone().into_boxed_str());
        let topic = Topic {
            name: last,
            queues: 4,
        };
        let (request, queue_id, body) = send_request(topic, 0, 0, 0);
        let response = client.invoke(request, TIMEOUT).await.unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        let (pulled, end) = support::read_queue(&client, last, queue_id, 0)
            .await
            .unwrap();
        assert_eq!(pulled.len(), 1, "{last}: {end}");
        assert_eq!(pulled[0].body, body, "{last}");
        // Every topic in CI; 10,000 spread over them at scale (a lookup each).
        let step = (names.len() / 10_000).max(1);
        let mut latencies = Vec::with_capacity(names.len());
        for name in names.iter().step_by(step) {
            let asked = Instant::now();
            let route = route(&names_client, name).await;
            latencies.push(asked.elapsed());
            let route = route.unwrap_or_else(|| panic!("no route of {name}"));
            assert_eq!(route.queue_datas[0].write_queue_nums, 4, "{name}");
        }
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        eprintln!(
            "{count} topics: created in {created:?}, all routable after {routable:?}; \
             GET_ROUTEINFO_BY_TOPIC p50 {:?} p99 {:?} max {:?}",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    })
    .expect("runtime");
}
