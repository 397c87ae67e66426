//! Crash loop: the real `rmq-fast` binary is killed with SIGKILL at random moments while
//! concurrent senders load it, in ASYNC_FLUSH and SYNC_FLUSH, then restarted on the same
//! store; after every restart a remoting client checks that every acknowledged message is
//! readable exactly once at its queue offset with its body intact, that queue offsets are
//! dense, that no record is garbage (CRC, offsets) and that the index finds acknowledged keys
//! exactly once (QUERY_MESSAGE).
//!
//! The acked set is tracked here, on the load-generator side: a message counts as
//! acknowledged only when its SEND_MESSAGE_V2 got SUCCESS.
//!
//! Modes: CI runs `RMQ_CRASH_LOOPS` (default 20) crashes per flush mode, 40 in all. For a
//! long soak, e.g. `RMQ_CRASH_LOOPS=500 cargo test -p rmq-broker --test crash_loop --release`.
//! `RMQ_FAST_BIN` points at a prebuilt binary; otherwise the test builds `rmq-fast` with the
//! same cargo profile and uses it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Child;

use rmq_core::message::parse_record;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::RemotingClient;
use support::{Acked, Broker, TIMEOUT, Topic, broker_binary, fastrand_like, free_port_pair};

const TOPIC: &str = "CrashLoopTopic";
const QUEUES: i32 = 4;
const SENDERS: usize = 8;
const CRASH_TOPIC: Topic = Topic {
    name: TOPIC,
    queues: QUEUES,
};

#[test]
fn kill_9_loses_no_acknowledged_message_async_flush() {
    crash_loop("ASYNC_FLUSH", 0xA5F1);
}

#[test]
fn kill_9_loses_no_acknowledged_message_sync_flush() {
    crash_loop("SYNC_FLUSH", 0x5F1C);
}

fn crash_loop(flush: &str, seed: u64) {
    let loops: usize = std::env::var("RMQ_CRASH_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let binary = broker_binary();
    let store = tempfile::tempdir().unwrap();
    let mut rng = fastrand_like(seed ^ std::process::id() as u64);
    let port = free_port_pair();
    let config = write_config(store.path(), port, flush);
    let mut acked = Acked::new();
    let runtime = rmq_net::rt::Runtime::new().unwrap();
    for round in 0..loops {
        let mut child = start_broker(&binary, &config, store.path(), round);
        let addr = format!("127.0.0.1:{port}");
        runtime.block_on(wait_until_serving(&addr, &mut child, store.path(), round));
        runtime
            .block_on(verify(&addr, &acked, round))
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", broker_log(store.path(), round)));
        let load_ms = 150 + rng() % 600;
        let new = runtime.block_on(load_then_kill(&addr, round, load_ms, &mut child));
        for (key, body) in new {
            assert!(
                acked.insert(key, body).is_none(),
                "offset {key:?} acked twice"
            );
        }
    }
    let mut child = start_broker(&binary, &config, store.path(), loops);
    let addr = format!("127.0.0.1:{port}");
    runtime.block_on(wait_until_serving(&addr, &mut child, store.path(), loops));
    runtime
        .block_on(verify(&addr, &acked, loops))
        .unwrap_or_else(|e| panic!("final: {e}\n{}", broker_log(store.path(), loops)));
    runtime
        .block_on(verify_index(&addr, &acked))
        .unwrap_or_else(|e| panic!("index: {e}\n{}", broker_log(store.path(), loops)));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        acked.len() > loops * 10,
        "too few messages acknowledged: {}",
        acked.len()
    );
    eprintln!(
        "{flush}: {loops} crashes, {} acknowledged messages verified",
        acked.len()
    );
}

/// `cleanFileForciblyEnable=false`: on a shared host whose disk is past 85% full, forced
/// cleanup would delete the test's segments and the check would read that as a lost message.
fn write_config(root: &Path, port: u16, flush: &str) -> PathBuf {
    let store = root.join("store");
    let shards: u32 = std::env::var("RMQ_CRASH_SHARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let text = format!(
        "brokerClusterName=CrashCluster\nbrokerName=crash-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nflushDiskType={flush}\n\
         mappedFileSizeCommitLog=1048576\nmaxMessageSize=65536\nmappedFileSizeConsumeQueue=6000\n\
         flushIntervalConsumeQueue=100\nflushIntervalCommitLog=50\nshardCount={shards}\n\
         autoCreateTopicEnable=true\ncleanFileForciblyEnable=false\ndefaultTopicQueueNums={QUEUES}\n",
        store.display(),
        root.join("logs").display()
    );
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}

fn log_path(root: &Path, round: usize) -> PathBuf {
    root.join(format!("broker-{round}.out"))
}

fn start_broker(binary: &Path, config: &Path, root: &Path, round: usize) -> Broker {
    support::start_broker(binary, config, &log_path(root, round))
}

async fn wait_until_serving(addr: &str, child: &mut Child, root: &Path, round: usize) {
    support::wait_until_serving(addr, child, &log_path(root, round)).await;
}

/// Runs the senders for `load_ms`, kills the broker with SIGKILL while they are still
/// sending, and returns what was acknowledged.
async fn load_then_kill(addr: &str, round: usize, load_ms: u64, child: &mut Child) -> Acked {
    support::load_then_kill(addr, CRASH_TOPIC, SENDERS, round, load_ms, || {
        child.kill().expect("SIGKILL the broker");
        child.wait().unwrap();
    })
    .await
}

/// Reads every queue from offset 0 and checks it against the acked set.
async fn verify(addr: &str, acked: &Acked, round: usize) -> Result<(), rmq_net::NetError> {
    support::verify(addr, CRASH_TOPIC, acked, round).await
}

/// The last lines the broker of `round` printed.
fn broker_log(root: &Path, round: usize) -> String {
    support::log_tail(&log_path(root, round))
}

/// QUERY_MESSAGE finds acknowledged keys exactly once after all the crashes.
async fn verify_index(addr: &str, acked: &Acked) -> Result<(), rmq_net::NetError> {
    let client = RemotingClient::connect(addr, TIMEOUT)
        .await
        .expect("connect");
    let step = (acked.len() / 40).max(1);
    for body in acked.values().step_by(step) {
        let text = std::str::from_utf8(body).unwrap();
        let key = text.split('|').next().unwrap();
        let request = RemotingCommand::new_request(request_code::QUERY_MESSAGE)
            .with_ext("topic", TOPIC)
            .with_ext("key", key)
            .with_ext("maxNum", 32)
            .with_ext("beginTimestamp", 0)
            .with_ext("endTimestamp", i64::MAX);
        let response = client.invoke(request, TIMEOUT).await?;
        assert_eq!(
            response.code,
            ResponseCode::Success.code(),
            "key {key} not found"
        );
        let records = response.body.clone();
        let record = parse_record(&records).expect("a queried record parses");
        assert_eq!(record.body(), &body[..]);
        assert_eq!(
            record.total_size(),
            records.len(),
            "key {key} found more than once"
        );
    }
    Ok(())
}
