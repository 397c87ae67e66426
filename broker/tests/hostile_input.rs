//! Hostile and careless requests against the real `rmq-fast` binary over the network: each
//! must get a RocketMQ response code with a remark, and the broker must stay up and keep
//! serving everyone else (issue 12). One broker serves every case in turn (CI time ~5 s).
//!
//! Covered: an empty batch body (used to abort the process on a store assertion), a SQL92
//! subscription made of a long `AND` chain (overflowed a core's stack), sends to the system
//! topics the broker re-puts from (a timer-bucket record pointing back at its own queue
//! re-put itself forever), creating system topics, over-long group names (made the group
//! file grow without bound), and a poisoned delay level (a delayed record whose real topic
//! can never be written blocked every later message of its level), heartbeats whose client
//! id or group count would pin unbounded memory (one 2 MB heartbeat naming 1,000 producer
//! groups took the broker to 4 GB RSS), and queue locks of made-up queues (kept forever).
//!
//! `RMQ_FAST_BIN` points at a prebuilt binary; otherwise the test builds `rmq-fast`.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_core::body::{
    HeartbeatData, LockBatchRequestBody, LockBatchResponseBody, MessageQueue, ProducerData,
    decode_body, encode_body,
};
use rmq_core::message::msg_id::decode_offset_msg_id;
use rmq_core::message::parse_record;
use rmq_core::message::properties::{encode_properties, get_property};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::RemotingClient;
use support::{TIMEOUT, broker_binary, free_port_pair, log_tail, pull_request};

const TOPIC: &str = "HostileTopic";

#[test]
fn hostile_requests_get_answers_and_the_broker_stays_up() {
    let binary = broker_binary();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port);
    let log = root.path().join("broker.log");
    let mut child = support::start_broker(&binary, &config, &log);
    let addr = format!("127.0.0.1:{port}");
    rmq_net::rt::block_on(async {
        support::wait_until_serving(&addr, &mut child, &log).await;
        let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
        let checks = Checks {
            client: &client,
            log: &log,
        };
        let first = checks.send(TOPIC, &[], b"first").await;
        assert_eq!(first.code, ResponseCode::Success.code(), "{first:?}");
        checks.empty_batches_are_refused().await;
        checks.long_sql_chains_are_answered().await;
        checks.system_topics_are_refused().await;
        checks.group_names_are_bounded().await;
        checks.heartbeats_are_bounded(&addr).await;
        checks.locks_are_granted_only_for_real_queues().await;
        checks.poisoned_delay_level_does_not_block(&first).await;
    })
    .expect("runtime");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the broker exited: {}",
        log_tail(&log)
    );
}

fn write_config(root: &Path, port: u16) -> PathBuf {
    let text = format!(
        "brokerClusterName=HostileCluster\nbrokerName=hostile-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nflushDiskType=ASYNC_FLUSH\n\
         mappedFileSizeCommitLog=4194304\ncleanFileForciblyEnable=false\nmaxMessageSize=1048576\nmappedFileSizeConsumeQueue=6000\nshardCount=2\n\
         autoCreateTopicEnable=true\nenablePropertyFilter=true\n",
        root.join("store").display(),
        root.join("logs").display()
    );
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}

struct Checks<'a> {
    client: &'a RemotingClient,
    log: &'a Path,
}

impl Checks<'_> {
    async fn invoke(&self, request: RemotingCommand) -> RemotingCommand {
        self.client
            .invoke(request, TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("no answer ({e}); broker log:\n{}", log_tail(self.log)))
    }

    /// Fails with the broker's log when it stopped answering.
    async fn assert_alive(&self) {
        let probe = RemotingCommand::new_request(request_code::GET_BROKER_RUNTIME_INFO);
        let answer = self.invoke(probe).await;
        assert_eq!(answer.code, ResponseCode::Success.code());
    }

    fn send_request(&self, topic: &str, props: &[(&str, &str)], body: &[u8]) -> RemotingCommand {
        RemotingCommand::new_request(request_code::SEND_MESSAGE_V2)
            .with_ext("a", "hostile-producer")
            .with_ext("b", topic)
            .with_ext("c", "TBW102")
            .with_ext("d", 4)
            .with_ext("e", 0)
            .with_ext("f", 0)
            .with_ext("g", 1_700_000_000_000i64)
            .with_ext("h", 0)
            .with_ext("i", encode_properties(props.iter().copied()))
            .with_ext("j", 0)
            .with_ext("k", false)
            .with_body(Bytes::copy_from_slice(body))
    }

    async fn send(&self, topic: &str, props: &[(&str, &str)], body: &[u8]) -> RemotingCommand {
        self.invoke(self.send_request(topic, props, body)).await
    }

    async fn empty_batches_are_refused(&self) {
        let batch = self.send_request(TOPIC, &[], b"").with_ext("m", true);
        let mut batch_code = batch.clone();
        batch_code.code = request_code::SEND_BATCH_MESSAGE;
        for request in [batch, batch_code] {
            let answer = self.invoke(request).await;
            assert_eq!(
                answer.code,
                ResponseCode::MessageIllegal.code(),
                "{answer:?}"
            );
            assert!(answer.remark.is_some());
            self.assert_alive().await;
        }
    }

    async fn sql_pull(&self, expression: &str) -> RemotingCommand {
        let mut pull = pull_request(TOPIC, 0, 0)
            .with_ext("consumerGroup", "hostile-sql")
            .with_ext("sysFlag", 4)
            .with_ext("subscription", expression)
            .with_ext("expressionType", "SQL92");
        pull.opaque = 0;
        self.invoke(pull).await
    }

    async fn long_sql_chains_are_answered(&self) {
        // 10,000 terms (100 KB): refused by length, with a remark.
        let chain = vec!["a = 1"; 10_000].join(" AND ");
        let answer = self.sql_pull(&chain).await;
        assert_eq!(answer.code, ResponseCode::SubscriptionParseFailed.code());
        assert!(
            answer.remark.unwrap().len() < 1_000,
            "the remark echoes a bounded prefix"
        );
        self.assert_alive().await;
        // 6,000 terms fit the length limit: compiled into one n-ary AND and evaluated.
        let chain = vec!["a = 1"; 6_000].join(" AND ");
        let answer = self.sql_pull(&chain).await;
        let served = [ResponseCode::Success, ResponseCode::PullNotFound];
        assert!(
            served.iter().any(|code| code.code() == answer.code),
            "{answer:?}"
        );
        self.assert_alive().await;
        // A chain that cannot be flattened is refused by height.
        let tall = format!("a{}", " = a".repeat(3_000));
        let answer = self.sql_pull(&tall).await;
        assert_eq!(answer.code, ResponseCode::SubscriptionParseFailed.code());
        self.assert_alive().await;
    }

    async fn system_topics_are_refused(&self) {
        // A timer-bucket record whose real queue is that very bucket used to re-put itself
        // forever (260k records/s); a schedule record with DELAY once a second forever.
        let loops: [(&str, &[(&str, &str)]); 4] = [
            (
                "rmq_sys_timer_buckets",
                &[("REAL_TOPIC", "rmq_sys_timer_buckets"), ("REAL_QID", "0")],
            ),
            ("SCHEDULE_TOPIC_XXXX", &[("DELAY", "1")]),
            ("RMQ_SYS_TRANS_HALF_TOPIC", &[]),
            ("RMQ_SYS_TRANS_OP_HALF_TOPIC", &[]),
        ];
        for (topic, props) in loops {
            let answer = self.send(topic, props, b"loop").await;
            assert_eq!(answer.code, ResponseCode::NoPermission.code(), "{topic}");
            assert_eq!(
                answer.remark.as_deref(),
                Some(format!("Sending message to topic[{topic}] is forbidden.").as_str())
            );
        }
        for topic in [
            "SCHEDULE_TOPIC_XXXX",
            "rmq_sys_timer_buckets",
            "RMQ_SYS_TRACE_TOPIC",
        ] {
            let create = RemotingCommand::new_request(request_code::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", topic)
                .with_ext("readQueueNums", 4)
                .with_ext("writeQueueNums", 4)
                .with_ext("perm", 6);
            let answer = self.invoke(create).await;
            assert_eq!(answer.code, ResponseCode::SystemError.code(), "{topic}");
            assert!(
                answer
                    .remark
                    .unwrap()
                    .contains("conflict with system topic"),
                "{topic}"
            );
        }
        let too_long = self.send(&"t".repeat(128), &[], b"x").await;
        assert_eq!(too_long.code, ResponseCode::SystemError.code());
    }

    async fn group_names_are_bounded(&self) {
        let long = "g".repeat(100_000);
        let body = format!(r#"{{"groupName":"{long}","consumeEnable":true}}"#);
        let create =
            RemotingCommand::new_request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(Bytes::from(body));
        let answer = self.invoke(create).await;
        assert_eq!(answer.code, ResponseCode::SystemError.code(), "{answer:?}");
        let pull = pull_request(TOPIC, 0, 0).with_ext("consumerGroup", long.as_str());
        let answer = self.invoke(pull).await;
        assert_eq!(answer.code, ResponseCode::SystemError.code());
        let commit = RemotingCommand::new_request(request_code::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", long.as_str())
            .with_ext("topic", TOPIC)
            .with_ext("queueId", 0)
            .with_ext("commitOffset", 1);
        let answer = self.invoke(commit).await;
        assert_eq!(answer.code, ResponseCode::SystemError.code());
        let offsets = RemotingCommand::new_request(request_code::GET_ALL_CONSUMER_OFFSET);
        let offsets = self.invoke(offsets).await;
        assert!(
            offsets.body.len() < 10_000,
            "an over-long group's offset was stored"
        );
        let all = RemotingCommand::new_request(request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG);
        let groups = self.invoke(all).await;
        assert!(
            groups.body.len() < 10_000,
            "an over-long group was stored ({} bytes)",
            groups.body.len()
        );
    }

    /// A heartbeat may not make the broker keep more than a bounded amount per connection: an
    /// over-long client id or group name is refused before anything is registered, and one
    /// connection holds at most 4,096 registrations (renewing them stays possible).
    async fn heartbeats_are_bounded(&self, addr: &str) {
        let heartbeat = |client_id: &str, groups: &mut dyn Iterator<Item = String>| {
            let data = HeartbeatData {
                client_id: client_id.to_string(),
                producer_data_set: groups
                    .map(|group_name| ProducerData { group_name })
                    .collect(),
                consumer_data_set: vec![],
            };
            RemotingCommand::new_request(request_code::HEART_BEAT)
                .with_body(Bytes::from(encode_body(&data)))
        };
        let long_id = "c".repeat(2_000_000);
        let answer = self
            .invoke(heartbeat(&long_id, &mut (0..8).map(|i| format!("g{i}"))))
            .await;
        assert_eq!(answer.code, ResponseCode::SystemError.code(), "{answer:?}");
        assert!(
            answer
                .remark
                .as_deref()
                .unwrap_or_default()
                .contains("clientID")
        );
        let long_group = "p".repeat(256);
        let answer = self
            .invoke(heartbeat(
                "127.0.0.1@hostile",
                &mut std::iter::once(long_group),
            ))
            .await;
        assert_eq!(answer.code, ResponseCode::SystemError.code(), "{answer:?}");

        // A connection of its own, so the budget is not shared with the other checks.
        let own = RemotingClient::connect(addr, TIMEOUT).await.unwrap();
        let invoke = |request| async { own.invoke(request, TIMEOUT).await.unwrap() };
        let id = "127.0.0.1@budget";
        let answer = invoke(heartbeat(id, &mut (0..4096).map(|i| format!("G{i}")))).await;
        assert_eq!(answer.code, ResponseCode::Success.code(), "{answer:?}");
        let answer = invoke(heartbeat(id, &mut std::iter::once("G4096".to_string()))).await;
        assert_eq!(answer.code, ResponseCode::SystemError.code(), "{answer:?}");
        assert!(
            answer
                .remark
                .as_deref()
                .unwrap_or_default()
                .contains("limit")
        );
        let answer = invoke(heartbeat(id, &mut (0..4096).map(|i| format!("G{i}")))).await;
        assert_eq!(
            answer.code,
            ResponseCode::Success.code(),
            "renewal: {answer:?}"
        );
        let unregister = RemotingCommand::new_request(request_code::UNREGISTER_CLIENT)
            .with_ext("clientID", id)
            .with_ext("producerGroup", "G0");
        assert_eq!(invoke(unregister).await.code, ResponseCode::Success.code());
        let answer = invoke(heartbeat(id, &mut std::iter::once("G4096".to_string()))).await;
        assert_eq!(
            answer.code,
            ResponseCode::Success.code(),
            "after unregister: {answer:?}"
        );
        self.assert_alive().await;
    }

    /// LOCK_BATCH_MQ grants only queues of this broker that exist, for a group that exists.
    async fn locks_are_granted_only_for_real_queues(&self) {
        let queue = |topic: &str, broker_name: &str, queue_id: i32| MessageQueue {
            topic: topic.to_string(),
            broker_name: broker_name.to_string(),
            queue_id,
        };
        let lock = |group: &str, queues: Vec<MessageQueue>| {
            let body = LockBatchRequestBody {
                consumer_group: group.to_string(),
                client_id: "127.0.0.1@locker".to_string(),
                mq_set: queues.into_iter().collect(),
            };
            RemotingCommand::new_request(request_code::LOCK_BATCH_MQ)
                .with_body(Bytes::from(encode_body(&body)))
        };
        let create =
            RemotingCommand::new_request(request_code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(Bytes::from_static(
                    br#"{"groupName":"LockGroup","consumeEnable":true}"#,
                ));
        assert_eq!(self.invoke(create).await.code, ResponseCode::Success.code());
        let real = queue(TOPIC, "hostile-broker", 0);
        let asked = vec![
            real.clone(),
            queue(TOPIC, "another-broker", 0),
            queue("NoSuchTopicHere", "hostile-broker", 0),
            queue(TOPIC, "hostile-broker", 999),
        ];
        let answer = self.invoke(lock("LockGroup", asked)).await;
        assert_eq!(answer.code, ResponseCode::Success.code(), "{answer:?}");
        let granted: LockBatchResponseBody = decode_body(&answer.body).unwrap();
        assert_eq!(
            granted.lock_ok_mq_set.into_iter().collect::<Vec<_>>(),
            vec![real.clone()]
        );
        let answer = self.invoke(lock("NoSuchGroupHere", vec![real])).await;
        assert_eq!(
            answer.code,
            ResponseCode::SubscriptionGroupNotExist.code(),
            "{answer:?}"
        );
    }

    /// A 200-character group is valid, but its retry topic `%RETRY%` + 200 characters can
    /// never be written: sending a message back through delay level 1 parks a record in
    /// SCHEDULE_TOPIC_XXXX that can never be delivered. It must be skipped, and a DELAY=1
    /// message sent after it must still arrive.
    async fn poisoned_delay_level_does_not_block(&self, first: &RemotingCommand) {
        let (_, offset) = decode_offset_msg_id(first.ext("msgId").unwrap()).unwrap();
        let back = RemotingCommand::new_request(request_code::CONSUMER_SEND_MSG_BACK)
            .with_ext("offset", offset)
            .with_ext("group", "p".repeat(200))
            .with_ext("delayLevel", 1)
            .with_ext("originMsgId", first.ext("msgId").unwrap())
            .with_ext("originTopic", TOPIC)
            .with_ext("unitMode", false)
            .with_ext("maxReconsumeTimes", 16);
        let answer = self.invoke(back).await;
        let parked = answer.code == ResponseCode::Success.code();
        let delayed = self
            .send(TOPIC, &[("DELAY", "1")], b"after the poison")
            .await;
        assert_eq!(delayed.code, ResponseCode::Success.code(), "{delayed:?}");
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            if self.queue_holds(b"after the poison").await {
                if parked {
                    assert!(
                        self.undeliverable().await >= 1,
                        "the poisoned record was counted"
                    );
                }
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the DELAY=1 message sent after the poisoned record never arrived: {}",
                log_tail(self.log)
            );
            rmq_net::rt::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The broker's count of skipped undeliverable delayed records (runtime info).
    async fn undeliverable(&self) -> u64 {
        let probe = RemotingCommand::new_request(request_code::GET_BROKER_RUNTIME_INFO);
        let answer = self.invoke(probe).await;
        let table: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        table["table"]["scheduleUndeliverable"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .expect("scheduleUndeliverable in the runtime info")
    }

    /// Whether queue 0 of the test topic holds a record with this body.
    async fn queue_holds(&self, body: &[u8]) -> bool {
        let mut offset = 0;
        loop {
            let answer = self.invoke(pull_request(TOPIC, 0, offset)).await;
            if answer.code != ResponseCode::Success.code() {
                return false;
            }
            let mut rest = &answer.body[..];
            while !rest.is_empty() {
                let record = parse_record(rest).unwrap();
                if record.body() == body {
                    assert_eq!(get_property(record.properties(), "DELAY"), None);
                    return true;
                }
                rest = &rest[record.total_size()..];
                offset += 1;
            }
        }
    }
}
