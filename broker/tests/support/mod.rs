//! Helpers shared by the tests that drive the real `rmq-fast` binary and kill it with
//! SIGKILL (`crash_loop.rs`, `replication_crash_loop.rs`): building and starting the binary,
//! free ports, concurrent SEND_MESSAGE_V2 senders, pulls and the check of acknowledged
//! messages.
//!
//! Each test binary uses its own subset.
#![allow(dead_code)]

pub mod scripted_controller;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_core::message::parse_record;
use rmq_core::message::properties::{encode_properties, keys};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::RemotingClient;

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A controller-mode broker's configuration for these tests: it listens on `port`, registers
/// with `namesrv` as 127.0.0.1, asks `controllers` (`;`-separated), keeps small store files
/// under `root` (1 MiB commit log files, 6,000-byte consume queue files, 64 KiB messages,
/// 2 shards) and creates topics on first send. `keys` come after these, so they add to them
/// or override them (the last duplicate wins, as in a properties file).
pub fn controller_mode_config(
    root: &Path,
    port: u16,
    namesrv: &str,
    controllers: &str,
    keys: &[(&str, &str)],
) -> rmq_core::config::BrokerConfig {
    let store = root.join("store").display().to_string();
    let logs = root.join("logs").display().to_string();
    let port = port.to_string();
    let pairs: Vec<(String, String)> = [
        ("enableControllerMode", "true"),
        ("controllerAddr", controllers),
        ("listenPort", port.as_str()),
        ("namesrvAddr", namesrv),
        ("brokerIP1", "127.0.0.1"),
        ("storePathRootDir", store.as_str()),
        ("logDir", logs.as_str()),
        ("mappedFileSizeCommitLog", "1048576"),
        // A shared host past 85% disk use would otherwise delete acknowledged segments.
        ("cleanFileForciblyEnable", "false"),
        ("maxMessageSize", "65536"),
        ("mappedFileSizeConsumeQueue", "6000"),
        ("shardCount", "2"),
        ("autoCreateTopicEnable", "true"),
    ]
    .iter()
    .chain(keys)
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    rmq_core::config::BrokerConfig::load(None, &pairs)
        .expect("a valid test configuration")
        .0
}

/// (queueId, queueOffset) → body of every acknowledged message.
pub type Acked = BTreeMap<(i32, i64), Bytes>;

/// The topic and queue count the senders and checks work on.
#[derive(Debug, Clone, Copy)]
pub struct Topic {
    pub name: &'static str,
    pub queues: i32,
}

#[allow(unused_imports)]
pub use rmq_test_support::ports::free_port_pair;
#[allow(unused_imports)]
pub use rmq_test_support::rng::xorshift as fastrand_like;

/// The binary, built once per test process (the tests of a file run in parallel).
pub fn broker_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(build_binary).clone()
}

fn build_binary() -> PathBuf {
    if let Ok(path) = std::env::var("RMQ_FAST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-q", "-p", "rmq-fast"]);
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building rmq-fast failed");
    let binary = profile_dir.join("rmq-fast");
    assert!(binary.exists(), "no binary at {binary:?}");
    binary
}

/// A broker process that is killed when dropped, so a failing test leaves no orphan.
pub type Broker = rmq_test_support::process::KillOnDrop;

/// Starts `rmq-fast broker -c config` with stdout and stderr going to `log`.
pub fn start_broker(binary: &Path, config: &Path, log: &Path) -> Broker {
    let log = std::fs::File::create(log).unwrap();
    Command::new(binary)
        .args(["broker", "-c"])
        .arg(config)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .map(rmq_test_support::process::KillOnDrop)
        .expect("start rmq-fast")
}

/// Waits until the broker answers GET_BROKER_RUNTIME_INFO (panics with its log if it exits).
pub async fn wait_until_serving(addr: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(log);
            panic!(
                "broker exited during start-up ({status}): {}",
                log.unwrap_or_default()
            );
        }
        if let Ok(client) = RemotingClient::connect(addr, Duration::from_millis(500)).await {
            let probe = RemotingCommand::new_request(request_code::GET_BROKER_RUNTIME_INFO);
            if client.invoke(probe, TIMEOUT).await.is_ok() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "broker did not start serving");
        rmq_net::rt::sleep(Duration::from_millis(50)).await;
    }
}

/// The `seq`-th message of `sender` in `round`, with its queue and body (the body starts
/// with the message key, unique over the test).
pub fn send_request(
    topic: Topic,
    round: usize,
    sender: usize,
    seq: u64,
) -> (RemotingCommand, i32, Bytes) {
    let queue_id = ((seq as usize + sender) % topic.queues as usize) as i32;
    let key = format!("crash-{round}-{sender}-{seq}");
    let padding = "x".repeat((seq as usize * 37 + sender * 11) % 900);
    let body = Bytes::from(format!("{key}|{padding}"));
    let properties = encode_properties([(keys::KEYS, key.as_str()), (keys::WAIT, "true")]);
    let request = RemotingCommand::new_request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "crash-producer")
        .with_ext("b", topic.name)
        .with_ext("c", "TBW102")
        .with_ext("d", topic.queues)
        .with_ext("e", queue_id)
        .with_ext("f", 0)
        .with_ext("g", 1_700_000_000_000i64)
        .with_ext("h", 0)
        .with_ext("i", properties)
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_ext("m", false)
        .with_body(body.clone());
    (request, queue_id, body)
}

/// Records a SUCCESS send response in `acked` (asserting the queue offset is new).
pub fn record_ack(acked: &mut Acked, response: &RemotingCommand, queue_id: i32, body: &Bytes) {
    let offset: i64 = response.ext("queueOffset").unwrap().parse().unwrap();
    let returned: i32 = response.ext("queueId").unwrap().parse().unwrap();
    assert_eq!(returned, queue_id);
    let earlier = acked.insert((queue_id, offset), body.clone());
    assert!(
        earlier.is_none(),
        "queue offset {queue_id}:{offset} acked for two messages: {earlier:?} and {body:?} msgId {:?} opaque {}",
        response.ext("msgId"),
        response.opaque
    );
}

/// Runs `senders` concurrent senders against `addr` for `load_ms`, then calls `kill` while
/// they are still sending, stops them and returns what was acknowledged (SUCCESS only).
pub async fn load_then_kill(
    addr: &str,
    topic: Topic,
    senders: usize,
    round: usize,
    load_ms: u64,
    kill: impl FnOnce(),
) -> Acked {
    let acked = Rc::new(RefCell::new(Acked::new()));
    let stop = Rc::new(std::cell::Cell::new(false));
    let mut tasks = Vec::new();
    for sender in 0..senders {
        let client = RemotingClient::connect(addr, TIMEOUT)
            .await
            .expect("connect");
        let (acked, stop) = (acked.clone(), stop.clone());
        tasks.push(rmq_net::rt::spawn(async move {
            let mut seq = 0u64;
            while !stop.get() {
                seq += 1;
                let (request, queue_id, body) = send_request(topic, round, sender, seq);
                let Ok(response) = client.invoke(request, TIMEOUT).await else {
                    return;
                };
                if response.code == ResponseCode::Success.code() {
                    record_ack(&mut acked.borrow_mut(), &response, queue_id, &body);
                }
            }
        }));
    }
    rmq_net::rt::sleep(Duration::from_millis(load_ms)).await;
    kill();
    stop.set(true);
    for task in tasks {
        let _ = task.await;
    }
    Rc::try_unwrap(acked).unwrap().into_inner()
}

pub fn pull_request(topic: &str, queue_id: i32, offset: i64) -> RemotingCommand {
    RemotingCommand::new_request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", "crash-verifier")
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", 32)
        .with_ext("sysFlag", 2)
        .with_ext("commitOffset", -1)
        .with_ext("suspendTimeoutMillis", 0)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
        .with_ext("expressionType", "TAG")
}

/// One pulled record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub queue_offset: i64,
    pub physical_offset: i64,
    /// The whole stored record, as pulled.
    pub record: Bytes,
    pub body: Bytes,
}

/// Pulls a queue from offset 0 to its end, checking that every record parses, has a good
/// body CRC, belongs to the queue and that queue offsets are dense. Also returns how the
/// reads ended (code, remark, min and max offsets).
pub async fn read_queue(
    client: &RemotingClient,
    topic: &str,
    queue_id: i32,
    round: usize,
) -> Result<(Vec<Pulled>, String), rmq_net::NetError> {
    let mut records = Vec::new();
    let mut offset = 0i64;
    loop {
        let response = client
            .invoke(pull_request(topic, queue_id, offset), TIMEOUT)
            .await?;
        if response.code != ResponseCode::Success.code() {
            let end = format!(
                "queue {queue_id} ends at {offset}: code {} {:?} min {:?} max {:?}",
                response.code,
                response.remark,
                response.ext("minOffset"),
                response.ext("maxOffset")
            );
            return Ok((records, end));
        }
        let body = response.body.clone();
        let mut rest = &body[..];
        while !rest.is_empty() {
            let record = parse_record(rest).expect("a pulled record parses");
            assert!(
                record.crc_ok(),
                "round {round}: body CRC mismatch at {queue_id}:{offset}"
            );
            assert_eq!(record.queue_id(), queue_id);
            assert_eq!(
                record.queue_offset(),
                offset,
                "round {round}: queue offsets not dense"
            );
            let size = record.total_size();
            records.push(Pulled {
                queue_offset: offset,
                physical_offset: record.physical_offset(),
                record: Bytes::copy_from_slice(&rest[..size]),
                body: Bytes::copy_from_slice(record.body()),
            });
            rest = &rest[size..];
            offset += 1;
        }
    }
}

/// Reads every queue from offset 0 and checks it against the acked set: every acknowledged
/// message at its queue offset with its body intact, no message stored twice.
pub async fn verify(
    addr: &str,
    topic: Topic,
    acked: &Acked,
    round: usize,
) -> Result<(), rmq_net::NetError> {
    let client = RemotingClient::connect(addr, TIMEOUT)
        .await
        .expect("connect");
    let mut stored: HashMap<(i32, i64), Bytes> = HashMap::new();
    let mut ends: Vec<String> = Vec::new();
    for queue_id in 0..topic.queues {
        let (records, end) = read_queue(&client, topic.name, queue_id, round).await?;
        for record in records {
            stored.insert((queue_id, record.queue_offset), record.body);
        }
        ends.push(end);
    }
    let mut bodies = std::collections::HashSet::new();
    for body in stored.values() {
        assert!(
            bodies.insert(body.clone()),
            "round {round}: a message is stored twice"
        );
    }
    for (key, body) in acked {
        let got = stored.get(key);
        assert_eq!(
            got,
            Some(body),
            "round {round}: acknowledged message {key:?} lost or changed; reads: {ends:?}"
        );
    }
    Ok(())
}

/// The last lines a broker printed.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Sends `count` messages of `round` to queue 0 of `topic` at `addr`; returns how many were
/// answered with each code, and records the SUCCESS ones in `acked` (controller-mode tests).
pub async fn send_counting_codes(
    addr: &str,
    topic: Topic,
    round: usize,
    count: u64,
    acked: &mut Acked,
) -> Vec<(i32, usize)> {
    let client = RemotingClient::connect(addr, TIMEOUT).await.unwrap();
    let mut codes: Vec<(i32, usize)> = Vec::new();
    for seq in 0..count {
        let (request, queue_id, body) = send_request(topic, round, 0, seq);
        let response = client.invoke(request, TIMEOUT).await.unwrap();
        if response.code == ResponseCode::Success.code() {
            record_ack(acked, &response, queue_id, &body);
        }
        match codes.iter_mut().find(|(code, _)| *code == response.code) {
            Some((_, n)) => *n += 1,
            None => codes.push((response.code, 1)),
        }
    }
    codes
}

/// Polls `done` every 50 ms until it holds; fails the test naming `what` after `limit`.
pub async fn until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        rmq_net::rt::sleep(Duration::from_millis(50)).await;
    }
}

/// brokerId → address in the name server's route of `topic`, sorted; empty without a route.
pub async fn route_ids(namesrv: &str, topic: &str) -> Vec<(i64, String)> {
    let client = RemotingClient::connect(namesrv, TIMEOUT).await.unwrap();
    let request =
        RemotingCommand::new_request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    let response = client.invoke(request, TIMEOUT).await.unwrap();
    if response.code != ResponseCode::Success.code() {
        return Vec::new();
    }
    let route: rmq_core::body::TopicRouteData =
        rmq_core::body::decode_body(&response.body).unwrap();
    let mut ids: Vec<(i64, String)> = route
        .broker_datas
        .iter()
        .flat_map(|b| b.broker_addrs.iter().map(|(id, a)| (*id, a.clone())))
        .collect();
    ids.sort();
    ids
}
