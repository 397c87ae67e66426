//! The metrics endpoint over the network against the real binary: a broker started with
//! `metricsExporterType=2` gets sends, pulls and offset commits from a remoting client, then
//! `GET /metrics` is parsed and its counters, lag and in-flight figures are checked against
//! what the client did. `RMQ_FAST_BIN` points at a prebuilt binary (else it is built).

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rmq_broker::metrics::exposition::parse_sample;
use rmq_core::message::parse_record;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::RemotingClient;
use support::{TIMEOUT, Topic, free_port_pair, pull_request, send_request, wait_until_serving};

const TOPIC: Topic = Topic {
    name: "MetricsTopic",
    queues: 4,
};
const GROUP: &str = "crash-verifier";
const SENDS: u64 = 40;

use rmq_test_support::ports::free_port;

fn write_config(root: &Path, port: u16, metrics_port: u16) -> PathBuf {
    write_config_with(root, port, metrics_port, "")
}

/// The test broker's config plus `extra` lines.
fn write_config_with(root: &Path, port: u16, metrics_port: u16, extra: &str) -> PathBuf {
    let mut text = format!(
        "brokerClusterName=MetricsCluster\nbrokerName=metrics-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nmappedFileSizeCommitLog=1048576\ncleanFileForciblyEnable=false\n\
         maxMessageSize=65536\nmappedFileSizeConsumeQueue=6000\nshardCount=2\nautoCreateTopicEnable=true\n\
         defaultTopicQueueNums={}\nmetricsExporterType=2\n\
         metricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort={metrics_port}\n\
         metricsLabel=region:test-1\n",
        root.join("store").display(),
        root.join("logs").display(),
        TOPIC.queues
    );
    text.push_str(extra);
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}

/// `GET path` on the endpoint: (status line, body).
fn http_get(port: u16, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Samples by name, each with its labels.
type Samples = HashMap<String, Vec<(HashMap<String, String>, f64)>>;

fn parse(text: &str) -> Samples {
    let mut samples: Samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, value) =
            parse_sample(line).unwrap_or_else(|| panic!("unparsable sample line {line:?}"));
        samples
            .entry(name)
            .or_default()
            .push((labels.into_iter().collect(), value));
    }
    samples
}

/// The value of the one sample of `name` whose labels include all of `want`.
fn value(samples: &Samples, name: &str, want: &[(&str, &str)]) -> f64 {
    let rows = samples
        .get(name)
        .unwrap_or_else(|| panic!("no metric {name}"));
    let matching: Vec<f64> = rows
        .iter()
        .filter(|(labels, _)| {
            want.iter()
                .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(matching.len(), 1, "{name} {want:?}: {rows:?}");
    matching[0]
}

async fn commit(client: &RemotingClient, queue_id: i32, offset: i64) {
    let request = RemotingCommand::new_request(request_code::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", TOPIC.name)
        .with_ext("queueId", queue_id)
        .with_ext("commitOffset", offset);
    let response = client.invoke(request, TIMEOUT).await.unwrap();
    assert_eq!(response.code, ResponseCode::Success.code());
}

/// Hands the first message of `queue_id` back with delay level -1: straight to the group's DLQ.
/// Returns the size of the record stored there.
async fn send_to_dlq(client: &RemotingClient, queue_id: i32) -> usize {
    let pulled = client
        .invoke(
            // another group reads it, so the checked group's counters stay as they are
            pull_request(TOPIC.name, queue_id, 0).with_ext("consumerGroup", "dlq-reader"),
            TIMEOUT,
        )
        .await
        .unwrap();
    let offset = parse_record(&pulled.body).unwrap().physical_offset();
    let request = RemotingCommand::new_request(request_code::CONSUMER_SEND_MSG_BACK)
        .with_ext("offset", offset)
        .with_ext("group", GROUP)
        .with_ext("delayLevel", -1)
        .with_ext("originTopic", TOPIC.name)
        .with_ext("maxReconsumeTimes", 16);
    let response = client.invoke(request, TIMEOUT).await.unwrap();
    assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
    let dlq = format!("%DLQ%{GROUP}");
    let stored = client
        .invoke(
            pull_request(&dlq, 0, 0).with_ext("consumerGroup", "dlq-reader"),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(stored.code, ResponseCode::Success.code(), "{stored:?}");
    stored.body.len()
}

/// Pulls a whole queue: (messages, bytes of the pulled bodies).
async fn pull_all(client: &RemotingClient, queue_id: i32) -> (i64, usize) {
    let (mut offset, mut bytes) = (0i64, 0usize);
    loop {
        let response = client
            .invoke(pull_request(TOPIC.name, queue_id, offset), TIMEOUT)
            .await
            .unwrap();
        if response.code != ResponseCode::Success.code() {
            return (offset, bytes);
        }
        bytes += response.body.len();
        let mut rest = &response.body[..];
        while !rest.is_empty() {
            let record = parse_record(rest).unwrap();
            rest = &rest[record.total_size()..];
            offset += 1;
        }
    }
}

#[test]
fn scrape_counts_what_was_sent_and_consumed() {
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let metrics_port = free_port();
    let config = write_config(root.path(), port, metrics_port);
    let log = root.path().join("broker.out");
    let mut broker = support::start_broker(&support::broker_binary(), &config, &log);
    let addr = format!("127.0.0.1:{port}");
    let (per_queue, pulled, pulled_bytes, dlq_bytes, (status, text)) =
        rmq_net::rt::block_on(async {
            wait_until_serving(&addr, &mut broker, &log).await;
            let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
            let mut per_queue = [0i64; 4];
            for seq in 0..SENDS {
                let (request, queue_id, _) = send_request(TOPIC, 0, 0, seq);
                let response = client.invoke(request, TIMEOUT).await.unwrap();
                assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
                per_queue[queue_id as usize] += 1;
            }
            // queues 0 and 1 pulled to the end; 0 committed to its end, 1 to 3, 2 to 0
            let (q0, bytes0) = pull_all(&client, 0).await;
            let (q1, bytes1) = pull_all(&client, 1).await;
            assert_eq!((q0, q1), (per_queue[0], per_queue[1]));
            let dlq_bytes = send_to_dlq(&client, 0).await;
            commit(&client, 0, q0).await;
            commit(&client, 1, 3).await;
            commit(&client, 2, 0).await;
            // scraped while the client is connected: its connection is counted
            let scraped = http_get(metrics_port, "/metrics");
            (per_queue, q0 + q1, bytes0 + bytes1, dlq_bytes, scraped)
        })
        .expect("runtime");
    assert!(status.contains("200"), "{status}: {text}");
    let samples = parse(&text);
    let topic = [("topic", TOPIC.name)];
    let group_topic = [("consumer_group", GROUP), ("topic", TOPIC.name)];
    let node = [
        ("cluster", "MetricsCluster"),
        ("node_type", "broker"),
        ("node_id", "metrics-broker"),
        ("region", "test-1"),
        ("topic", TOPIC.name),
        ("message_type", "normal"),
        ("is_system", "false"),
    ];
    assert_eq!(
        value(&samples, "rocketmq_messages_in_total", &node),
        SENDS as f64
    );
    assert_eq!(
        value(&samples, "rocketmq_message_size_count", &topic),
        SENDS as f64
    );
    let stored_bytes = value(&samples, "rocketmq_throughput_in_total", &topic);
    assert_eq!(
        value(&samples, "rocketmq_messages_out_total", &group_topic),
        pulled as f64
    );
    assert_eq!(
        value(&samples, "rocketmq_throughput_out_total", &group_topic),
        pulled_bytes as f64
    );
    assert!(
        stored_bytes > pulled_bytes as f64,
        "{stored_bytes} vs {pulled_bytes}"
    );
    assert_eq!(
        value(
            &samples,
            "rocketmq_send_to_dlq_messages_total",
            &group_topic
        ),
        1.0
    );
    let lag = (per_queue[1] - 3) + per_queue[2];
    assert_eq!(
        value(&samples, "rocketmq_consumer_lag_messages", &group_topic),
        lag as f64
    );
    assert_eq!(
        value(
            &samples,
            "rocketmq_consumer_inflight_messages",
            &group_topic
        ),
        (per_queue[1] - 3) as f64
    );
    let latency = value(&samples, "rocketmq_consumer_lag_latency", &group_topic);
    assert!(
        latency > 0.0 && latency < 120_000.0,
        "lag latency {latency}"
    );
    let sends = [
        ("request_code", "send_message_v2"),
        ("response_code", "success"),
    ];
    assert_eq!(
        value(&samples, "rocketmq_rpc_latency_count", &sends),
        SENDS as f64
    );
    assert_eq!(value(&samples, "rmq_send_latency_count", &[]), SENDS as f64);
    assert!(value(&samples, "rocketmq_topic_number", &[]) >= 1.0);
    assert!(value(&samples, "rocketmq_storage_size", &[]) > 0.0);
    let appended: f64 = ["0", "1"]
        .iter()
        .map(|s| value(&samples, "rmq_shard_append_offset", &[("shard", s)]))
        .sum();
    assert_eq!(
        appended,
        stored_bytes + dlq_bytes as f64,
        "every stored byte is in a shard: the sends and the DLQ copy"
    );
    let commits: f64 = ["0", "1"]
        .iter()
        .map(|s| value(&samples, "rmq_group_commit_bytes_count", &[("shard", s)]))
        .sum();
    // at most one write per append (the sends and the DLQ copy), at least one
    assert!(
        commits >= 1.0 && commits <= SENDS as f64 + 1.0,
        "group commits {commits}"
    );
    // every write timed; sync rounds as histograms per shard (counts follow the flush mode)
    for s in ["0", "1"] {
        assert!(
            value(
                &samples,
                "rmq_commit_log_write_microseconds_total",
                &[("shard", s)]
            ) >= 0.0
        );
        assert!(
            value(
                &samples,
                "rmq_commit_log_sync_latency_count",
                &[("shard", s)]
            ) >= 0.0
        );
        assert!(value(&samples, "rmq_commit_log_sync_acks_count", &[("shard", s)]) >= 0.0);
    }
    let connections: f64 = samples["rmq_connections"].iter().map(|(_, v)| v).sum();
    assert!(
        connections >= 1.0,
        "the test client's connection is counted"
    );
    let (status, _) = http_get(metrics_port, "/other");
    assert!(status.contains("404"), "{status}");
}

#[test]
fn metrics_port_in_use_stops_start_up_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_port = taken.local_addr().unwrap().port();
    let config = write_config(root.path(), free_port_pair(), metrics_port);
    let log = root.path().join("broker.out");
    let mut broker = support::start_broker(&support::broker_binary(), &config, &log);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = broker.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker kept running with its metrics port taken"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{output}");
    assert!(output.contains("metricsPromExporterPort"), "{output}");
    drop(taken);
}

/// Drop-behind over the network (`asyncFlushPageCacheBytes`): with a 1 MiB window and 1 MiB
/// segments, ~8 MB of sends make each shard drop the pages more than 1 MiB behind its
/// write-back point (counted by `rmq_commit_log_page_cache_dropped_bytes_total`), and a
/// consumer still pulls every message, byte for byte, from offset 0.
#[test]
fn dropped_pages_are_counted_and_their_messages_pulled_back() {
    const MESSAGES: u64 = 12_000;
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let metrics_port = free_port();
    let config = write_config_with(
        root.path(),
        port,
        metrics_port,
        "asyncFlushPageCacheBytes=1048576\nasyncFlushWriteBackBytes=262144\n",
    );
    let log = root.path().join("broker.out");
    let mut broker = support::start_broker(&support::broker_binary(), &config, &log);
    let addr = format!("127.0.0.1:{port}");
    rmq_net::rt::block_on(async {
        wait_until_serving(&addr, &mut broker, &log).await;
        let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
        let mut sent: Vec<Vec<bytes::Bytes>> = vec![Vec::new(); TOPIC.queues as usize];
        let mut sent_bytes = 0;
        for seq in 0..MESSAGES {
            let (request, queue_id, body) = send_request(TOPIC, 7, 0, seq);
            let response = client.invoke(request, TIMEOUT).await.unwrap();
            assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
            sent_bytes += body.len();
            sent[queue_id as usize].push(body);
        }
        // The drop jobs run after the write-back steps, off the shards' threads.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let dropped = loop {
            let (_, text) = http_get(metrics_port, "/metrics");
            let samples = parse(&text);
            let total: f64 = samples["rmq_commit_log_page_cache_dropped_bytes_total"]
                .iter()
                .map(|(_, v)| v)
                .sum();
            let per_shard = samples["rmq_commit_log_page_cache_dropped_bytes_total"].len();
            assert_eq!(per_shard, 2, "one sample per shard");
            if total >= 2.0 * 1048576.0 || std::time::Instant::now() > deadline {
                break total;
            }
            rmq_net::rt::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            dropped >= 2.0 * 1048576.0,
            "{dropped} bytes dropped after {sent_bytes} bytes of bodies sent"
        );
        for (queue_id, bodies) in sent.iter().enumerate() {
            let mut offset = 0usize;
            loop {
                let response = client
                    .invoke(
                        pull_request(TOPIC.name, queue_id as i32, offset as i64),
                        TIMEOUT,
                    )
                    .await
                    .unwrap();
                if response.code != ResponseCode::Success.code() {
                    break;
                }
                let mut rest = &response.body[..];
                while !rest.is_empty() {
                    let record = parse_record(rest).unwrap();
                    assert_eq!(
                        record.body(),
                        &bodies[offset][..],
                        "queue {queue_id} offset {offset}"
                    );
                    rest = &rest[record.total_size()..];
                    offset += 1;
                }
            }
            assert_eq!(
                offset,
                bodies.len(),
                "messages pulled from queue {queue_id}"
            );
        }
    })
    .expect("runtime");
}
