//! Metadata files (`config/topics.json` and the others) with the real `rmq-fast` binary:
//! - a damaged topics.json whose `.bak` is empty (a crash loop left it so) makes the broker
//!   refuse to start with a message naming the file and the recovery, instead of starting
//!   with only the system topics and later overwriting both files (16-queue topics came back
//!   with 4 queues: acknowledged messages of queues 4-15 unreachable);
//! - SIGKILL while bursts of topics are being created (UPDATE_AND_CREATE_TOPIC and
//!   auto-creating sends, many in flight) never leaves topics.json or its `.bak` unreadable,
//!   and every acknowledged create survives the restart with its queue count (the creates are
//!   in the topic change log, `topics.json.log`, see `broker/src/topic_log.rs`).
//!
//! CI runs `RMQ_META_KILLS` (default 6) kills; more for a soak.
//! `RMQ_FAST_BIN` points at a prebuilt binary (see `support`).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::RemotingClient;
use support::{TIMEOUT, broker_binary, fastrand_like, free_port_pair, start_broker};

fn write_config(root: &Path, port: u16) -> PathBuf {
    let text = format!(
        "brokerClusterName=MetaCluster\nbrokerName=meta-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nmappedFileSizeCommitLog=1048576\ncleanFileForciblyEnable=false\n\
         maxMessageSize=65536\nmappedFileSizeConsumeQueue=6000\nshardCount=1\nautoCreateTopicEnable=true\n",
        root.join("store").display(),
        root.join("logs").display()
    );
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}

fn create_request(topic: &str, queues: i32) -> RemotingCommand {
    RemotingCommand::new_request(request_code::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", queues.to_string())
        .with_ext("writeQueueNums", queues.to_string())
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
}

fn topics_path(root: &Path) -> PathBuf {
    root.join("store").join("config").join("topics.json")
}

/// The topic table of a topics.json-shaped file, or why it cannot be read.
fn read_table(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    value["topicConfigTable"]
        .as_object()
        .cloned()
        .ok_or_else(|| format!("{}: no topicConfigTable", path.display()))
}

#[test]
fn damaged_topics_json_with_empty_bak_refuses_to_start() {
    let binary = broker_binary();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port);
    let addr = format!("127.0.0.1:{port}");
    let runtime = rmq_net::rt::Runtime::new().unwrap();
    let log = root.path().join("first.out");
    let mut broker = start_broker(&binary, &config, &log);
    runtime.block_on(async {
        support::wait_until_serving(&addr, &mut broker, &log).await;
        let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
        let response = client
            .invoke(create_request("SixteenQueues", 16), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(response.code, ResponseCode::Success as i32);
    });
    drop(broker); // SIGKILL
    let topics = topics_path(root.path());
    // The create is in the change log (topics.json is compacted later); topics.json exists
    // from the start.
    assert!(read_table(&topics).is_ok());
    let log = std::fs::read_to_string(topics.with_extension("json.log")).unwrap();
    assert!(log.contains("SixteenQueues"), "{log}");
    // What a crash loop left: a torn topics.json and a 0-byte backup.
    let text = std::fs::read(&topics).unwrap();
    std::fs::write(&topics, &text[..text.len() / 2]).unwrap();
    std::fs::write(topics.with_extension("json.bak"), b"").unwrap();

    let log = root.path().join("second.out");
    let mut broker = start_broker(&binary, &config, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = broker.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the broker started on a damaged topics.json with an empty backup:\n{}",
            support::log_tail(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "exit status {status}: {output}");
    assert!(output.contains("topics.json"), "{output}");
    assert!(output.contains("refusing to start"), "{output}");
    assert!(output.contains("restore"), "{output}");
    // Nothing was overwritten: the operator can still repair the file.
    assert_eq!(std::fs::read(&topics).unwrap(), &text[..text.len() / 2]);
}

/// Creates in flight at once in `kill_9_during_topic_creates_keeps_topics_json_readable`.
const BURST: usize = 32;

/// A SEND_MESSAGE to a topic that does not exist yet: auto-created from TBW102.
fn auto_create_send(topic: &str) -> RemotingCommand {
    RemotingCommand::new_request(request_code::SEND_MESSAGE)
        .with_ext("producerGroup", "MetaProducer")
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("defaultTopicQueueNums", 4)
        .with_ext("queueId", 0)
        .with_ext("sysFlag", 0)
        .with_ext("bornTimestamp", 1)
        .with_ext("flag", 0)
        .with_ext("reconsumeTimes", 0)
        .with_ext("unitMode", false)
        .with_ext("properties", "")
        .with_body(b"auto-created".to_vec())
}

#[test]
fn kill_9_during_topic_creates_keeps_topics_json_readable() {
    let kills: usize = std::env::var("RMQ_META_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let binary = broker_binary();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port);
    let addr = format!("127.0.0.1:{port}");
    let runtime = rmq_net::rt::Runtime::new().unwrap();
    let mut rng = fastrand_like(0x3E7A ^ u64::from(std::process::id()));
    let mut acked: Vec<(String, i32)> = Vec::new();
    for round in 0..=kills {
        let log = root.path().join(format!("round-{round}.out"));
        let mut broker = start_broker(&binary, &config, &log);
        let run_ms = 200 + rng() % 500;
        runtime.block_on(async {
            support::wait_until_serving(&addr, &mut broker, &log).await;
            let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
            // Every acknowledged create is there, with its 16 queues.
            let route = client
                .invoke(
                    RemotingCommand::new_request(request_code::GET_ALL_TOPIC_CONFIG),
                    TIMEOUT,
                )
                .await
                .unwrap();
            let body: serde_json::Value =
                rmq_core::remoting::lenient_json::from_slice_lenient(&route.body).unwrap();
            for (topic, queues) in &acked {
                assert_eq!(
                    body["topicConfigTable"][topic]["writeQueueNums"], *queues,
                    "round {round}: acknowledged topic {topic} lost or changed"
                );
            }
            if round == kills {
                return;
            }
            // Bursts of creates in flight at once (the log batches them into one sync),
            // half by UPDATE_AND_CREATE_TOPIC (16 queues), half auto-created by a send
            // (4 queues, the producer's defaultTopicQueueNums).
            let started = Instant::now();
            let mut seq = 0;
            while started.elapsed() < Duration::from_millis(run_ms) {
                let burst: Vec<(String, i32, RemotingCommand)> = (0..BURST)
                    .map(|i| {
                        let topic = format!("Meta_{round}_{seq}_{i}");
                        match i % 2 {
                            0 => (topic.clone(), 16, create_request(&topic, 16)),
                            _ => (topic.clone(), 4, auto_create_send(&topic)),
                        }
                    })
                    .collect();
                seq += 1;
                let answers = join_all(
                    burst
                        .iter()
                        .map(|(_, _, request)| client.invoke(request.clone(), TIMEOUT)),
                )
                .await;
                for ((topic, queues, _), answer) in burst.into_iter().zip(answers) {
                    if answer.is_ok_and(|r| r.code == ResponseCode::Success as i32) {
                        acked.push((topic, queues));
                    }
                }
            }
        });
        drop(broker); // SIGKILL in the middle of creates
        let topics = topics_path(root.path());
        let main = read_table(&topics);
        let bak = read_table(&topics.with_extension("json.bak"));
        assert!(main.is_ok(), "round {round}: {main:?}");
        if std::fs::metadata(topics.with_extension("json.bak")).is_ok() {
            assert!(bak.is_ok(), "round {round}: backup torn: {bak:?}");
        }
    }
    assert!(acked.len() > 10, "too few creates: {}", acked.len());
}
