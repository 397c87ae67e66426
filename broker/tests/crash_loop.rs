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
//! Modes: CI runs `RMQ_CRASH_LOOPS` (default 10) crashes per flush mode, 20 in all. For a
//! long soak, e.g. `RMQ_CRASH_LOOPS=500 cargo test -p rmq-broker --test crash_loop --release`.
//! `RMQ_FAST_BIN` points at a prebuilt binary; otherwise the test builds `rmq-fast` with the
//! same cargo profile and uses it.

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

const TOPIC: &str = "CrashLoopTopic";
const QUEUES: i32 = 4;
const SENDERS: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(5);

/// (queueId, queueOffset) → body of every acknowledged message.
type Acked = BTreeMap<(i32, i64), Bytes>;

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
        .unwrap_or(10);
    let binary = broker_binary();
    let store = tempfile::tempdir().unwrap();
    let mut rng = fastrand_like(seed ^ std::process::id() as u64);
    let port = free_port_pair();
    let config = write_config(store.path(), port, flush);
    let mut acked = Acked::new();
    let runtime = compio::runtime::Runtime::new().unwrap();
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

/// A tiny deterministic xorshift generator (the seed is printed on failure by the caller).
fn fastrand_like(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// The binary, built once per test process (both tests run in parallel).
fn broker_binary() -> PathBuf {
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

/// Two free ports below the ephemeral range (listenPort and the HA port after it), distinct
/// for each test of this process: brokers bind with SO_REUSEPORT, so two brokers on one port
/// would both start and share the connections.
fn free_port_pair() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 2_000) as u16 * 4;
    loop {
        let port = base + NEXT.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
        assert!(port < 32_000, "no free port pair");
        let free = |p: u16| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
}

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
         autoCreateTopicEnable=true\ndefaultTopicQueueNums={QUEUES}\n",
        store.display(),
        root.join("logs").display()
    );
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}

/// A broker process that is killed when dropped, so a failing test leaves no orphan.
struct Broker(Child);

impl std::ops::Deref for Broker {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Broker {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(binary: &Path, config: &Path, root: &Path, round: usize) -> Broker {
    let log = std::fs::File::create(root.join(format!("broker-{round}.out"))).unwrap();
    Command::new(binary)
        .args(["broker", "-c"])
        .arg(config)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .map(Broker)
        .expect("start rmq-fast")
}

async fn wait_until_serving(addr: &str, child: &mut Child, root: &Path, round: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(root.join(format!("broker-{round}.out")));
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
        compio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn send_request(round: usize, sender: usize, seq: u64) -> (RemotingCommand, i32, Bytes) {
    let queue_id = ((seq as usize + sender) % QUEUES as usize) as i32;
    let key = format!("crash-{round}-{sender}-{seq}");
    let padding = "x".repeat((seq as usize * 37 + sender * 11) % 900);
    let body = Bytes::from(format!("{key}|{padding}"));
    let properties = encode_properties([(keys::KEYS, key.as_str()), (keys::WAIT, "true")]);
    let request = RemotingCommand::new_request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "crash-producer")
        .with_ext("b", TOPIC)
        .with_ext("c", "TBW102")
        .with_ext("d", QUEUES)
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

/// Runs the senders for `load_ms`, kills the broker with SIGKILL while they are still
/// sending, and returns what was acknowledged.
async fn load_then_kill(addr: &str, round: usize, load_ms: u64, child: &mut Child) -> Acked {
    let acked = Rc::new(RefCell::new(Acked::new()));
    let stop = Rc::new(std::cell::Cell::new(false));
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let client = RemotingClient::connect(addr, TIMEOUT)
            .await
            .expect("connect");
        let (acked, stop) = (acked.clone(), stop.clone());
        tasks.push(compio::runtime::spawn(async move {
            let mut seq = 0u64;
            while !stop.get() {
                seq += 1;
                let (request, queue_id, body) = send_request(round, sender, seq);
                let Ok(response) = client.invoke(request, TIMEOUT).await else {
                    return;
                };
                if response.code == ResponseCode::Success.code() {
                    let offset: i64 = response.ext("queueOffset").unwrap().parse().unwrap();
                    let returned: i32 = response.ext("queueId").unwrap().parse().unwrap();
                    assert_eq!(returned, queue_id);
                    let earlier = acked.borrow_mut().insert((queue_id, offset), body.clone());
                    assert!(
                        earlier.is_none(),
                        "queue offset {queue_id}:{offset} acked for two messages: {earlier:?} and {body:?} msgId {:?} opaque {}",
                        response.ext("msgId"), response.opaque
                    );
                }
            }
        }));
    }
    compio::time::sleep(Duration::from_millis(load_ms)).await;
    child.kill().expect("SIGKILL the broker");
    child.wait().unwrap();
    stop.set(true);
    for task in tasks {
        let _ = task.await;
    }
    Rc::try_unwrap(acked).unwrap().into_inner()
}

fn pull_request(queue_id: i32, offset: i64) -> RemotingCommand {
    RemotingCommand::new_request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", "crash-verifier")
        .with_ext("topic", TOPIC)
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

/// Reads every queue from offset 0 and checks it against the acked set.
async fn verify(addr: &str, acked: &Acked, round: usize) -> Result<(), rmq_net::NetError> {
    let client = RemotingClient::connect(addr, TIMEOUT)
        .await
        .expect("connect");
    let mut stored: HashMap<(i32, i64), Bytes> = HashMap::new();
    let mut ends: Vec<String> = Vec::new();
    for queue_id in 0..QUEUES {
        let mut offset = 0i64;
        loop {
            let response = client
                .invoke(pull_request(queue_id, offset), TIMEOUT)
                .await?;
            if response.code != ResponseCode::Success.code() {
                ends.push(format!(
                    "queue {queue_id} ends at {offset}: code {} {:?} min {:?} max {:?}",
                    response.code,
                    response.remark,
                    response.ext("minOffset"),
                    response.ext("maxOffset")
                ));
                break;
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
                stored.insert((queue_id, offset), Bytes::copy_from_slice(record.body()));
                rest = &rest[size..];
                offset += 1;
            }
        }
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

/// The last lines the broker of `round` printed.
fn broker_log(root: &Path, round: usize) -> String {
    let text =
        std::fs::read_to_string(root.join(format!("broker-{round}.out"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
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
