//! A toy replicated state machine, its remoting service, a blocking remoting client and an
//! in-process 3-member group: what the quorum tests drive the raft layer with, before (and
//! apart from) the election state.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rmq_controller::{
    ControllerError, ControllerNode, NodeConfig, NodeHandle, Peer, RaftRole, Replicated, Service,
    parse_peers,
};
use rmq_core::remoting::{DEFAULT_MAX_FRAME, RemotingCommand, decode_frame, encode_frame};
use serde::{Deserialize, Serialize};

/// A key not touched for this long is expired by the leader's timer.
pub const TTL_MS: u64 = 300;

/// Counters by key, plus when each "live" key was last touched.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toy {
    pub values: BTreeMap<String, i64>,
    pub touched_ms: BTreeMap<String, u64>,
    pub expired: Vec<String>,
    /// The largest time applied so far: the state checks that time never goes backwards.
    pub now_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToyCmd {
    Add {
        key: String,
        delta: i64,
    },
    Touch {
        key: String,
    },
    /// Drops the live keys last touched before `before_ms`.
    Expire {
        before_ms: u64,
    },
}

impl Replicated for Toy {
    type Cmd = ToyCmd;
    type Out = i64;

    fn apply(&mut self, now_ms: u64, cmd: &ToyCmd) -> i64 {
        assert!(
            now_ms >= self.now_ms,
            "time went back: {now_ms} < {}",
            self.now_ms
        );
        self.now_ms = now_ms;
        match cmd {
            ToyCmd::Add { key, delta } => {
                let value = self.values.entry(key.clone()).or_default();
                *value += delta;
                *value
            }
            ToyCmd::Touch { key } => {
                self.touched_ms.insert(key.clone(), now_ms);
                self.touched_ms.len() as i64
            }
            ToyCmd::Expire { before_ms } => {
                let gone: Vec<String> = self
                    .touched_ms
                    .iter()
                    .filter(|&(_, &at)| at < *before_ms)
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in &gone {
                    self.touched_ms.remove(key);
                }
                self.expired.extend(gone.iter().cloned());
                gone.len() as i64
            }
        }
    }

    fn tick(&self, now_ms: u64, _leader_since_ms: u64) -> Option<ToyCmd> {
        let before_ms = now_ms.saturating_sub(TTL_MS);
        self.touched_ms
            .values()
            .any(|&at| at < before_ms)
            .then_some(ToyCmd::Expire { before_ms })
    }
}

/// Request codes of the toy protocol.
pub const ADD: i32 = 1;
pub const GET: i32 = 2;
pub const TOUCH: i32 = 3;
/// Answer code for "not the leader"; the remark is the leader's address.
pub const NOT_LEADER: i32 = 2002;
pub const FAILED: i32 = 1;

/// Serves the toy protocol; records what the leader timer's commands answered.
#[derive(Clone, Default)]
pub struct ToyService {
    pub ticks: Arc<Mutex<Vec<i64>>>,
}

fn answer(request: &RemotingCommand, result: Result<i64, ControllerError>) -> RemotingCommand {
    match result {
        Ok(value) => RemotingCommand::response_for(request, 0, None).with_body(value.to_string()),
        Err(ControllerError::NotLeader { leader }) => {
            RemotingCommand::response_for(request, NOT_LEADER, leader)
        }
        Err(e) => RemotingCommand::response_for(request, FAILED, Some(e.to_string())),
    }
}

impl Service<Toy> for ToyService {
    async fn handle(
        &self,
        node: &NodeHandle<Toy>,
        _peer: SocketAddr,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        let key = request.ext("key").unwrap_or_default().to_owned();
        let result = match request.code {
            ADD => {
                let delta = request.ext_i64("delta").unwrap_or(1);
                node.write(ToyCmd::Add { key, delta }).await
            }
            TOUCH => node.write(ToyCmd::Touch { key }).await,
            GET => {
                node.read(|toy| toy.values.get(&key).copied().unwrap_or(0))
                    .await
            }
            _ => Err(ControllerError::Raft("unknown toy code".into())),
        };
        Some(answer(&request, result))
    }

    async fn after_tick(&self, _node: &NodeHandle<Toy>, out: i64) {
        self.ticks.lock().unwrap().push(out);
    }

    async fn closed(&self, _node: &NodeHandle<Toy>, _peer: SocketAddr) {}
}

/// Ports of this crate's tests: 31500-31999 (a per-process stride so parallel test binaries
/// rarely collide; each port is checked free before use).
pub fn port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 31_500 + (std::process::id() % 20) as u16 * 25;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 500;
        assert!(port < 32_000, "controller test ports used up");
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// One request over a fresh connection, answered within 10 s.
pub fn call(addr: &str, mut request: RemotingCommand) -> std::io::Result<RemotingCommand> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    request.opaque = 7;
    let mut frame = BytesMut::new();
    encode_frame(&request, &mut frame);
    stream.write_all(&frame)?;
    let mut buffer = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        let decoded =
            decode_frame(&mut buffer, DEFAULT_MAX_FRAME).map_err(std::io::Error::other)?;
        if let Some(reply) = decoded {
            assert_eq!(reply.opaque, 7, "reply to another request");
            return Ok(reply);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

pub fn add(addr: &str, key: &str, delta: i64) -> RemotingCommand {
    let request = RemotingCommand::new_request(ADD)
        .with_ext("key", key)
        .with_ext("delta", delta);
    call(addr, request).expect("add answered")
}

pub fn value_of(reply: &RemotingCommand) -> i64 {
    assert_eq!(reply.code, 0, "failed: {:?}", reply.remark);
    std::str::from_utf8(&reply.body).unwrap().parse().unwrap()
}

/// Three members on loopback, each with its own store directory, started and stopped at will.
pub struct Group {
    pub dir: tempfile::TempDir,
    pub peers: Vec<Peer>,
    pub nodes: Vec<Option<ControllerNode<Toy>>>,
    pub service: ToyService,
    pub scan_interval_ms: u64,
    pub snapshot_every_entries: u64,
}

impl Group {
    pub fn new(scan_interval_ms: u64, snapshot_every_entries: u64) -> Self {
        let list = (0..3)
            .map(|i| format!("n{i}-127.0.0.1:{}", port()))
            .collect::<Vec<_>>()
            .join(";");
        Self {
            dir: tempfile::tempdir().unwrap(),
            peers: parse_peers(&list).unwrap(),
            nodes: vec![None, None, None],
            service: ToyService::default(),
            scan_interval_ms,
            snapshot_every_entries,
        }
    }

    pub fn store(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}"))
    }

    pub fn start(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "n{i} already runs");
        let mut config =
            NodeConfig::new("toy", self.peers.clone(), &format!("n{i}"), self.store(i));
        config.scan_interval_ms = self.scan_interval_ms;
        config.snapshot_every_entries = self.snapshot_every_entries;
        self.nodes[i] =
            Some(ControllerNode::start(config, Toy::default(), self.service.clone()).unwrap());
    }

    pub fn start_all(&mut self) {
        (0..3).for_each(|i| self.start(i));
    }

    /// Stops member `i` as a crash would: its tasks are dropped mid-flight.
    pub fn crash(&mut self, i: usize) {
        drop(self.nodes[i].take().expect("running"));
    }

    pub fn handle(&self, i: usize) -> &NodeHandle<Toy> {
        self.nodes[i].as_ref().expect("running").handle()
    }

    pub fn addr(&self, i: usize) -> &str {
        &self.peers[i].addr
    }

    /// The running member every running member agrees leads, within `timeout`.
    pub fn leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let running: Vec<usize> = (0..3).filter(|&i| self.nodes[i].is_some()).collect();
            let leaders: Vec<usize> = running
                .iter()
                .copied()
                .filter(|&i| self.handle(i).role() == RaftRole::Leader)
                .collect();
            if let [leader] = leaders[..] {
                let agreed = running.iter().all(|&i| {
                    self.handle(i).leader().map(|p| p.addr) == Some(self.addr(leader).to_owned())
                });
                if agreed {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {running:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until member `i` applied a state for which `check` holds.
    pub fn wait_state(&self, i: usize, timeout: Duration, check: impl Fn(&Toy) -> bool) {
        let deadline = Instant::now() + timeout;
        while !self.handle(i).local(&check) {
            assert!(
                Instant::now() < deadline,
                "n{i} did not reach the state; it has {:?}",
                self.handle(i).local(Toy::clone)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
