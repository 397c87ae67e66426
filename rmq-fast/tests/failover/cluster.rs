//! The processes of the loopback failover test: a name server and controller-mode brokers of
//! one group as real `rmq-fast` processes (each with its own store on disk), and what the
//! test asks the controller leader about the group.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmq_core::body::controller::{BrokerReplicasInfo, ReplicasInfo};
use rmq_core::body::decode_body;
use rmq_core::remoting::RemotingCommand;
use rmq_core::remoting::controller::controller_request_code as rc;
use rmq_test_support::ports::HeldPorts;
use rmq_test_support::process::KillOnDrop;

use crate::client::{Member, agreed_leader, call};
use crate::support;

pub const CLUSTER: &str = "LoopCluster";
pub const GROUP: &str = "loop-a";
/// How long a controller-mode broker may go without an answered heartbeat: the new raft
/// leader declares a master whose connection it never had dead after this long.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 3_000;

fn spawn(args: [&str; 2], config: &Path, log: &Path) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_rmq-fast"))
        .args(args)
        .arg(config)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .map(KillOnDrop)
        .expect("start rmq-fast")
}

/// Waits until something accepts connections on `addr`.
fn wait_listening(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rmq-fast namesrv` on its own port.
pub struct Namesrv {
    pub addr: String,
    _process: KillOnDrop,
    _port: HeldPorts,
}

impl Namesrv {
    pub fn start(dir: &Path) -> Namesrv {
        let held = HeldPorts::take(1);
        let port = held.port();
        let config = dir.join("namesrv.properties");
        let text = format!(
            "listenPort={port}\nlogDir={}\nkvConfigPath={}\n",
            dir.join("namesrv-logs").display(),
            dir.join("kv.json").display()
        );
        std::fs::write(&config, text).unwrap();
        let process = spawn(["namesrv", "-c"], &config, &dir.join("namesrv.out"));
        let addr = format!("127.0.0.1:{port}");
        wait_listening(&addr, "the name server");
        Namesrv {
            addr,
            _process: process,
            _port: held,
        }
    }
}

/// One `rmq-fast broker` of the group in controller mode, restartable on its store.
pub struct Broker {
    pub name: &'static str,
    pub addr: String,
    root: PathBuf,
    config: PathBuf,
    starts: usize,
    process: Option<KillOnDrop>,
    /// Its listen port and the HA port after it, held while the test runs (also while the
    /// broker is down: no outgoing connection takes one as its local port then).
    _ports: HeldPorts,
}

impl Broker {
    /// Writes the broker's file: controller mode with the three `controllers`, SYNC sends
    /// waiting for the sync-state set as `all_ack` says, ASYNC_FLUSH (kill -9 keeps the page
    /// cache; replication is what this test is about), short periods so a loaded CI box is
    /// still done in seconds.
    pub fn new(
        name: &'static str,
        dir: &Path,
        namesrv: &str,
        controllers: &str,
        all_ack: bool,
    ) -> Broker {
        let root = dir.join(name);
        std::fs::create_dir_all(&root).unwrap();
        let held = HeldPorts::take(2);
        let port = held.port();
        let text = format!(
            "brokerClusterName={CLUSTER}\nbrokerName={GROUP}\nenableControllerMode=true\n\
             controllerAddr={controllers}\nallAckInSyncStateSet={all_ack}\n\
             controllerHeartBeatTimeoutMills={HEARTBEAT_TIMEOUT_MS}\n\
             syncBrokerMetadataPeriod=300\ncheckSyncStateSetPeriod=300\n\
             haMaxTimeSlaveNotCatchup=2000\nhaSendHeartbeatInterval=200\nslaveTimeout=3000\n\
             listenPort={port}\nnamesrvAddr={namesrv}\nbrokerIP1=127.0.0.1\n\
             storePathRootDir={}\nlogDir={}\nflushDiskType=ASYNC_FLUSH\n\
             mappedFileSizeCommitLog=4194304\ncleanFileForciblyEnable=false\nmappedFileSizeConsumeQueue=60000\n\
             maxMessageSize=65536\nshardCount=2\nautoCreateTopicEnable=true\n\
             defaultTopicQueueNums={}\n",
            root.join("store").display(),
            root.join("logs").display(),
            crate::TOPIC.queues,
        );
        let config = root.join("broker.properties");
        std::fs::write(&config, text).unwrap();
        Broker {
            name,
            addr: format!("127.0.0.1:{port}"),
            root,
            config,
            starts: 0,
            process: None,
            _ports: held,
        }
    }

    pub async fn start(&mut self) {
        assert!(self.process.is_none(), "{} runs already", self.name);
        let log = self.log(self.starts);
        self.starts += 1;
        let mut process = spawn(["broker", "-c"], &self.config, &log);
        support::wait_until_serving(&self.addr, &mut process, &log).await;
        self.process = Some(process);
    }

    /// kill -9 (and reap).
    pub fn kill(&mut self) {
        drop(self.process.take().expect("a running broker"));
    }

    /// Sends `signal` (`STOP`, `CONT`) to the running broker.
    pub fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().expect("a running broker").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
        if signal == "STOP" {
            until_stopped(pid);
        }
    }

    fn log(&self, start: usize) -> PathBuf {
        self.root.join(format!("broker-{start}.out"))
    }

    /// The end of what the broker printed since its last start.
    pub fn log_tail(&self) -> String {
        support::log_tail(&self.log(self.starts.saturating_sub(1)))
    }
}

/// Waits until every thread of `pid` is stopped. kill(2) returns before that: one thread
/// must run to begin the group stop, and on a busy box the others went on for milliseconds
/// (a frozen slave replicated and acknowledged a send that left after `kill -STOP`).
/// io_uring's workers (`iou-*`) are kernel threads of the process that do not stop.
fn until_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut running = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads") {
            let stat =
                std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
            // pid (comm) state ...: comm may hold spaces, the state follows its last ')'.
            let Some((comm, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let state = rest.trim_start().chars().next().unwrap_or('?');
            if !matches!(state, 'T' | 't') && !comm.contains("(iou-") {
                running.push(format!("{comm}) {state}"));
            }
        }
        if running.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pid} not stopped: threads {running:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The group as the controller leader sees it (CONTROLLER_GET_SYNC_STATE_DATA); Err names
/// what went wrong when the leader changed under the request.
pub fn replicas(members: &[Member]) -> Result<ReplicasInfo, String> {
    let leader = agreed_leader(members, Duration::from_secs(20));
    let mut request = RemotingCommand::new_request(rc::CONTROLLER_GET_SYNC_STATE_DATA);
    request.body = format!("[\"{GROUP}\"]").into_bytes().into();
    let addr = &members[leader].addr;
    let reply = call(addr, request).ok_or_else(|| format!("leader {addr} did not answer"))?;
    if reply.code != 0 {
        return Err(format!(
            "leader {addr}: code {} {:?}",
            reply.code, reply.remark
        ));
    }
    let mut data: BrokerReplicasInfo = decode_body(&reply.body).unwrap();
    data.replicas_info_table
        .remove(GROUP)
        .ok_or_else(|| format!("the controller does not know {GROUP}"))
}

/// The group's sync-state set as the controller leader answers it, polled every 20 ms on a
/// thread of its own (the test's runtime keeps sending meanwhile).
pub struct SetWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Seen>>,
}

/// One answer: when its request left, and the set's member addresses then.
#[derive(Debug, Clone)]
pub struct Seen {
    pub asked: Instant,
    pub set: BTreeSet<String>,
}

impl SetWatch {
    pub fn start(members: &[Member]) -> SetWatch {
        let addrs: Vec<String> = members.iter().map(|m| m.addr.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                for addr in &addrs {
                    let mut request =
                        RemotingCommand::new_request(rc::CONTROLLER_GET_SYNC_STATE_DATA);
                    request.body = format!("[\"{GROUP}\"]").into_bytes().into();
                    let asked = Instant::now();
                    let Some(reply) = call(addr, request).filter(|r| r.code == 0) else {
                        continue;
                    };
                    let mut data: BrokerReplicasInfo = decode_body(&reply.body).unwrap();
                    if let Some(info) = data.replicas_info_table.remove(GROUP) {
                        let set = in_sync_addrs(&info);
                        seen.push(Seen { asked, set });
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        });
        SetWatch { stop, thread }
    }

    /// Every answer, in the order asked.
    pub fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the set watch")
    }
}

/// Addresses of the sync-state set's members, per the controller leader.
pub fn in_sync_addrs(info: &ReplicasInfo) -> BTreeSet<String> {
    info.in_sync_replicas
        .iter()
        .filter_map(|r| r.broker_address.clone())
        .collect()
}
