//! The processes of the loopback failover test: a name server and controller-mode brokers of
//! one group as real `rmq-fast` processes (each with its own store on disk), and what the
//! test asks the controller leader about the group.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use rmq_core::body::controller::{BrokerReplicasInfo, ReplicasInfo};
use rmq_core::body::decode_body;
use rmq_core::remoting::RemotingCommand;
use rmq_core::remoting::controller::controller_request_code as rc;
use rmq_test_support::process::KillOnDrop;

use crate::client::{Member, agreed_leader, call};
use crate::support;

pub const CLUSTER: &str = "LoopCluster";
pub const GROUP: &str = "loop-a";
/// How long a controller-mode broker may go without an answered heartbeat: the new raft
/// leader declares a master whose connection it never had dead after this long.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 3_000;

/// A listen port and the HA port after it, both free, from 31000-31499 (the name server and
/// controllers take theirs from `client::port`, 31800-31999).
pub fn port_pair() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        let port = 31_000 + NEXT.fetch_add(2, Ordering::Relaxed);
        assert!(port < 31_500, "failover test ports used up");
        let free = |p: u16| TcpListener::bind(("0.0.0.0", p)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
}

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
}

impl Namesrv {
    pub fn start(dir: &Path) -> Namesrv {
        let port = crate::client::port();
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
        let port = port_pair();
        let text = format!(
            "brokerClusterName={CLUSTER}\nbrokerName={GROUP}\nenableControllerMode=true\n\
             controllerAddr={controllers}\nallAckInSyncStateSet={all_ack}\n\
             controllerHeartBeatTimeoutMills={HEARTBEAT_TIMEOUT_MS}\n\
             syncBrokerMetadataPeriod=300\ncheckSyncStateSetPeriod=300\n\
             haMaxTimeSlaveNotCatchup=2000\nhaSendHeartbeatInterval=200\nslaveTimeout=3000\n\
             listenPort={port}\nnamesrvAddr={namesrv}\nbrokerIP1=127.0.0.1\n\
             storePathRootDir={}\nlogDir={}\nflushDiskType=ASYNC_FLUSH\n\
             mappedFileSizeCommitLog=4194304\nmappedFileSizeConsumeQueue=60000\n\
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
    }

    fn log(&self, start: usize) -> PathBuf {
        self.root.join(format!("broker-{start}.out"))
    }

    /// The end of what the broker printed since its last start.
    pub fn log_tail(&self) -> String {
        support::log_tail(&self.log(self.starts.saturating_sub(1)))
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

/// Addresses of the sync-state set's members, per the controller leader.
pub fn in_sync_addrs(info: &ReplicasInfo) -> BTreeSet<String> {
    info.in_sync_replicas
        .iter()
        .filter_map(|r| r.broker_address.clone())
        .collect()
}
