//! Replication crash loop: a SYNC_MASTER and its SLAVE, both the real `rmq-fast` binary,
//! each on its own store with small commit log segments. Concurrent senders load the
//! master; at a random moment one of the two is killed with SIGKILL (the master in two
//! rounds of three, else the slave) and restarted on the same store. After every restart,
//! once sends are SUCCESS again (the slave reconnected, after truncating its tail if it held
//! bytes the master lost), the test checks that
//! 1. every acknowledged message is on the master at its (queueId, queueOffset) with its body
//!    intact, offsets dense, no record garbage or stored twice;
//! 2. the slave, once its queues' max offsets equal the master's, returns for every queue
//!    exactly the master's records (same queue offsets, same commit log offsets, same bytes):
//!    no stale record of a truncated tail survives there and no acknowledged message is
//!    missing.
//!
//! After every other master kill the test lets the slave reconnect before anything is sent
//! (its tail may then be past the master's end: `SlaveAhead`); otherwise probes append first,
//! so a slave that kept bytes the master lost finds other bytes below the master's end
//! (`Diverged`). At the end it prints how often the slave logged either truncation and how
//! many cuts its store made; a short run may see none, which is reported, not failed.
//!
//! A SYNC_MASTER send counts as acknowledged only when it got SUCCESS (the master wrote it and
//! the slave reported it); SLAVE_NOT_AVAILABLE (11), FLUSH_SLAVE_TIMEOUT (12) and errors do
//! not.
//!
//! `RMQ_REPL_CRASH_LOOPS` (default 6) sets the number of crashes, e.g.
//! `RMQ_REPL_CRASH_LOOPS=200 cargo test -p rmq-broker --test replication_crash_loop --release`
//! for a soak. `RMQ_FAST_BIN` points at a prebuilt binary, as for `crash_loop`;
//! `RMQ_REPL_KEEP_LOGS=1` keeps the stores and broker logs of a passing run.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::RemotingClient;
use support::{Acked, Broker, TIMEOUT, Topic};

const TOPIC: Topic = Topic {
    name: "ReplCrashLoopTopic",
    queues: 4,
};
const SENDERS: usize = 6;
const MASTER: usize = 0;
const SLAVE: usize = 1;
/// Sender number of the probe sends that wait for replication to work again.
const PROBE_SENDER: usize = SENDERS;
/// What the slave logs when its log is longer than the master's (ha/src/slave.rs).
const AHEAD_LOG: &str = "slave log ahead of the master; truncating its tail";
/// What the slave logs when its tail differs from the master's (ha/src/slave.rs).
const DIVERGED_LOG: &str = "slave log differs from the master's; truncating its tail";
/// What the store logs when it actually cuts bytes (storage/src/replica_truncate.rs).
const CUT_LOG: &str = "truncating the log tail the master does not have";
/// How long a slave takes at most to reconnect to a restarted master (it retries every
/// second).
const RECONNECT: Duration = Duration::from_millis(1500);
/// How long the slave may take to reconnect and catch up after a restart.
const CATCH_UP: Duration = Duration::from_secs(60);

#[test]
fn kill_9_of_master_or_slave_keeps_the_replica_identical() {
    let loops: usize = std::env::var("RMQ_REPL_CRASH_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let binary = support::broker_binary();
    // dropped last: prints the logs (and keeps them) when the test fails
    let mut dir = LogsOnPanic::new(tempfile::tempdir().unwrap());
    let seed = 0x5EA1 ^ u64::from(std::process::id());
    eprintln!("replication crash loop: seed {seed:#x}, {loops} crashes");
    let mut rng = support::fastrand_like(seed);
    let master_port = support::free_port_pair();
    let slave_port = support::free_port_pair();
    let master_role = format!(
        "brokerRole=SYNC_MASTER\nbrokerId=0\nhaListenPort={}\n",
        master_port + 1
    );
    let slave_role = format!(
        "brokerRole=SLAVE\nbrokerId=1\nhaListenPort={}\nhaMasterAddress=127.0.0.1:{}\n",
        slave_port + 1,
        master_port + 1
    );
    let mut nodes = [
        Node::new(&binary, dir.path(), "master", master_port, &master_role),
        Node::new(&binary, dir.path(), "slave", slave_port, &slave_role),
    ];
    let (master_addr, slave_addr) = (nodes[MASTER].addr.clone(), nodes[SLAVE].addr.clone());
    let runtime = rmq_net::rt::Runtime::new().unwrap();
    let mut acked = Acked::new();
    let mut probes = 0u64;
    runtime.block_on(async {
        for node in &mut nodes {
            node.start().await;
        }
        until_replicating(&master_addr, 0, &mut probes, &mut acked).await;
    });
    let mut master_kills = 0;
    for round in 0..loops {
        let load_ms = 150 + rng() % 600;
        let victim = if round % 3 == 2 { SLAVE } else { MASTER };
        master_kills += usize::from(victim == MASTER);
        let node = &mut nodes[victim];
        let new = runtime.block_on(support::load_then_kill(
            &master_addr,
            TOPIC,
            SENDERS,
            round,
            load_ms,
            || node.kill(),
        ));
        for (key, body) in new {
            assert!(
                acked.insert(key, body).is_none(),
                "offset {key:?} acked twice"
            );
        }
        runtime.block_on(async {
            node.start().await;
            if victim == MASTER && master_kills % 2 == 0 {
                // Let the slave reconnect before anything is sent: its tail is then past the
                // master's end (SlaveAhead). Otherwise the probes append first and the slave
                // finds other bytes than its own below the master's end (Diverged).
                rmq_net::rt::sleep(RECONNECT).await;
            }
            until_replicating(&master_addr, round, &mut probes, &mut acked).await;
            check(&master_addr, &slave_addr, &acked, round).await;
        });
    }
    let [ahead, diverged, cuts] =
        [AHEAD_LOG, DIVERGED_LOG, CUT_LOG].map(|text| count_lines(dir.path(), text));
    if std::env::var_os("RMQ_REPL_KEEP_LOGS").is_some() {
        dir.keep = true;
    }
    assert!(
        acked.len() > loops * 10,
        "too few messages acknowledged: {}",
        acked.len()
    );
    eprintln!(
        "{loops} crashes ({master_kills} of the master), {} acknowledged messages verified on \
         master and slave; the slave logged {ahead} \"ahead of the master\", {diverged} \
         \"differs from the master's\" and {cuts} cuts of its log",
        acked.len()
    );
}

/// One broker: its store, config, address and the running process.
struct Node {
    binary: PathBuf,
    root: PathBuf,
    name: &'static str,
    config: PathBuf,
    addr: String,
    starts: usize,
    child: Option<Broker>,
}

impl Node {
    fn new(binary: &Path, dir: &Path, name: &'static str, port: u16, role: &str) -> Node {
        let root = dir.join(name);
        std::fs::create_dir_all(&root).unwrap();
        let text = format!(
            "brokerClusterName=ReplCluster\nbrokerName=repl\n{role}\
             listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
             storePathRootDir={}\nlogDir={}\nflushDiskType=ASYNC_FLUSH\n\
             mappedFileSizeCommitLog=1048576\nmaxMessageSize=65536\n\
             mappedFileSizeConsumeQueue=6000\nflushIntervalConsumeQueue=100\n\
             flushIntervalCommitLog=50\nshardCount=2\nhaSendHeartbeatInterval=1000\n\
             autoCreateTopicEnable=true\ncleanFileForciblyEnable=false\ndefaultTopicQueueNums={}\n",
            root.join("store").display(),
            root.join("logs").display(),
            TOPIC.queues
        );
        let config = root.join("broker.properties");
        std::fs::write(&config, text).unwrap();
        Node {
            binary: binary.to_path_buf(),
            root,
            name,
            config,
            addr: format!("127.0.0.1:{port}"),
            starts: 0,
            child: None,
        }
    }

    /// Starts the broker on its store, waits until it serves and creates the topic (a slave
    /// without name server never copies the master's topic configs, and pulls need them).
    async fn start(&mut self) {
        let log = self.root.join(format!("{}-{}.out", self.name, self.starts));
        self.starts += 1;
        let mut child = support::start_broker(&self.binary, &self.config, &log);
        support::wait_until_serving(&self.addr, &mut child, &log).await;
        self.child = Some(child);
        let client = RemotingClient::connect(&self.addr, TIMEOUT)
            .await
            .expect("connect");
        let request = RemotingCommand::new_request(request_code::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", TOPIC.name)
            .with_ext("readQueueNums", TOPIC.queues)
            .with_ext("writeQueueNums", TOPIC.queues)
            .with_ext("perm", 6);
        let response = client.invoke(request, TIMEOUT).await.expect("create topic");
        assert_eq!(
            response.code,
            ResponseCode::Success.code(),
            "{}: create topic: {:?}",
            self.name,
            response.remark
        );
    }

    /// SIGKILL.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("a running broker");
        child.kill().expect("SIGKILL the broker");
        child.wait().unwrap();
    }
}

/// The test directory (a store and logs per broker). When the test panics it prints the
/// tails of the last two logs of each broker and keeps the directory, as it also does when
/// `keep` is set.
struct LogsOnPanic {
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl LogsOnPanic {
    fn new(dir: tempfile::TempDir) -> LogsOnPanic {
        LogsOnPanic {
            dir: Some(dir),
            keep: false,
        }
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
}

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking {
            for name in ["master", "slave"] {
                let log = |n: usize| self.path().join(name).join(format!("{name}-{n}.out"));
                let starts = (0..).take_while(|&n| log(n).exists()).count();
                for n in starts.saturating_sub(2)..starts {
                    eprintln!(
                        "---- {} ----\n{}",
                        log(n).display(),
                        support::log_tail(&log(n))
                    );
                }
            }
        }
        if panicking || self.keep {
            let kept = self.dir.take().unwrap().keep();
            eprintln!("stores and logs kept in {}", kept.display());
        }
    }
}

/// Sends probes to the master (every queue, so every shard) until each queue got SUCCESS:
/// every shard's slave session is up again. Probes that succeed are acknowledged messages.
async fn until_replicating(master: &str, round: usize, probes: &mut u64, acked: &mut Acked) {
    let client = RemotingClient::connect(master, TIMEOUT)
        .await
        .expect("connect");
    let deadline = Instant::now() + CATCH_UP;
    let mut replicated = vec![false; TOPIC.queues as usize];
    while replicated.contains(&false) {
        *probes += 1;
        let (request, queue_id, body) = support::send_request(TOPIC, round, PROBE_SENDER, *probes);
        let response = client.invoke(request, TIMEOUT).await.expect("probe send");
        if response.code == ResponseCode::Success.code() {
            support::record_ack(acked, &response, queue_id, &body);
            replicated[queue_id as usize] = true;
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: sends not SUCCESS again after {CATCH_UP:?}: code {} {:?}",
            response.code,
            response.remark
        );
        rmq_net::rt::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks 1 (the master holds every acknowledged message) and 2 (the slave holds exactly the
/// master's records once caught up).
async fn check(master: &str, slave: &str, acked: &Acked, round: usize) {
    support::verify(master, TOPIC, acked, round)
        .await
        .unwrap_or_else(|e| panic!("round {round}: master: {e}"));
    let master_client = RemotingClient::connect(master, TIMEOUT)
        .await
        .expect("connect to the master");
    let slave_client = RemotingClient::connect(slave, TIMEOUT)
        .await
        .expect("connect to the slave");
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let on_master = max_offsets(&master_client).await;
        let on_slave = max_offsets(&slave_client).await;
        if on_master == on_slave {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: slave not caught up after {CATCH_UP:?}: max offsets master \
             {on_master:?} slave {on_slave:?}"
        );
        rmq_net::rt::sleep(Duration::from_millis(100)).await;
    }
    for queue_id in 0..TOPIC.queues {
        let read = |client| support::read_queue(client, TOPIC.name, queue_id, round);
        let (on_master, master_end) = read(&master_client)
            .await
            .unwrap_or_else(|e| panic!("round {round}: pull from the master: {e}"));
        let (on_slave, slave_end) = read(&slave_client)
            .await
            .unwrap_or_else(|e| panic!("round {round}: pull from the slave: {e}"));
        for (m, s) in on_master.iter().zip(&on_slave) {
            assert!(
                m == s,
                "round {round}: queue {queue_id} offset {}: master has the record at commit \
                 log offset {} body {:?}, the slave at {} body {:?} (same bytes: {})",
                m.queue_offset,
                m.physical_offset,
                String::from_utf8_lossy(&m.body[..m.body.len().min(40)]),
                s.physical_offset,
                String::from_utf8_lossy(&s.body[..s.body.len().min(40)]),
                m.record == s.record
            );
        }
        assert_eq!(
            on_master.len(),
            on_slave.len(),
            "round {round}: queue {queue_id}: master reads {master_end}, slave reads {slave_end}"
        );
    }
}

/// GET_MAX_OFFSET of every queue.
async fn max_offsets(client: &RemotingClient) -> Vec<i64> {
    let mut offsets = Vec::new();
    for queue_id in 0..TOPIC.queues {
        let request = RemotingCommand::new_request(request_code::GET_MAX_OFFSET)
            .with_ext("topic", TOPIC.name)
            .with_ext("queueId", queue_id);
        let response = client
            .invoke(request, TIMEOUT)
            .await
            .expect("GET_MAX_OFFSET");
        assert_eq!(response.code, ResponseCode::Success.code());
        offsets.push(response.ext("offset").unwrap().parse().unwrap());
    }
    offsets
}

/// Lines of the slave's logs (over the whole run) containing `text`.
fn count_lines(dir: &Path, text: &str) -> usize {
    let logs = std::fs::read_dir(dir.join("slave")).unwrap();
    logs.filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".out"))
        .map(|entry| {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            log.lines().filter(|l| l.contains(text)).count()
        })
        .sum()
}
