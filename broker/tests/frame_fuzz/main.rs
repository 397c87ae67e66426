//! Seeded frame fuzzer against the real `rmq-fast` broker and name server binaries (issue 12).
//!
//! Generated and mutated RocketMQ frames (`generate.rs`: every request code, JSON and binary
//! headers, awkward extFields and bodies, broken header meta, length prefixes, truncation) are
//! written over TCP, pipelined on a connection while another thread reads whatever comes back;
//! a case that breaks framing ends its connection. After every batch the test checks that the
//! process is alive, that a valid request on a new connection is answered within
//! `PROBE_TIMEOUT` (a hang fails), and that its stdout/stderr log has no panic. Against the
//! broker, every batch also sends `ACKED_PER_BATCH` valid messages to `ACKED_TOPIC`; at the
//! end every acknowledged one must read back byte-identical at its queue offset (fuzzed
//! frames must not corrupt or lose what the broker acknowledged).
//!
//! Short mode (CI): `CI_CASES` cases per process, ~15 s each in a debug build, the two in parallel. Long mode:
//! `RMQ_FRAME_FUZZ_CASES=1000000` (per process; use `--release` and `RMQ_FAST_BIN`);
//! `RMQ_FRAME_FUZZ_SEED` replays another sequence (a failure prints its seed, case index and
//! what the case was). `RMQ_FAST_BIN` points at a prebuilt binary; otherwise the test builds
//! `rmq-fast`.

#[path = "../support/mod.rs"]
mod support;

mod generate;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rmq_core::remoting::{
    DEFAULT_MAX_FRAME, RemotingCommand, ResponseCode, decode_frame, encode_frame, request_code,
};
use rmq_test_support::rng::XorShift;
use support::{Acked, Broker, Topic, broker_binary, free_port_pair, log_tail, record_ack};

const CI_CASES: u64 = 30_000;
const BATCH: u64 = 250;
const DEFAULT_SEED: u64 = 0x5eed_f00d;
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Probe connections per check (more than the broker's cores: 2 shards in these tests).
const PROBES: usize = 4;
/// Where the broker test's valid sends go (no generated case names it).
const ACKED_TOPIC: Topic = Topic {
    name: "FuzzAckedTopic",
    queues: 4,
};
const ACKED_PER_BATCH: u64 = 4;

/// Connections opened and reply bytes received by the fuzzing connections (for the summary).
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
static REPLY_BYTES: AtomicU64 = AtomicU64::new(0);

fn cases() -> u64 {
    env_u64("RMQ_FRAME_FUZZ_CASES").unwrap_or(CI_CASES)
}

fn seed() -> u64 {
    env_u64("RMQ_FRAME_FUZZ_SEED").unwrap_or(DEFAULT_SEED)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_broker_survives_fuzzed_frames() {
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = format!(
        "brokerClusterName=FuzzCluster\nbrokerName=fuzz-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nflushDiskType=ASYNC_FLUSH\n\
         mappedFileSizeCommitLog=67108864\ncleanFileForciblyEnable=false\nshardCount=2\nautoCreateTopicEnable=true\n\
         autoCreateSubscriptionGroup=true\nenablePropertyFilter=true\n",
        root.path().join("store").display(),
        root.path().join("logs").display()
    );
    let probe = RemotingCommand::new_request(request_code::GET_BROKER_RUNTIME_INFO);
    let addr = format!("127.0.0.1:{port}");
    let mut acked = Acked::new();
    let mut seq = 0u64;
    let mut send_valid = |addr: &str| {
        for _ in 0..ACKED_PER_BATCH {
            seq += 1;
            let (request, queue_id, body) = support::send_request(ACKED_TOPIC, 0, 0, seq);
            let response = ask(addr, &request).unwrap_or_else(|e| panic!("a valid send: {e}"));
            // a fuzzed UPDATE_BROKER_CONFIG may have taken the write permission: then
            // nothing is acknowledged, and nothing must be readable either
            if response.code == ResponseCode::Success.code() {
                record_ack(&mut acked, &response, queue_id, &body);
            }
        }
    };
    let mut child = fuzz(
        root.path(),
        "broker",
        &config,
        port,
        &probe,
        seed(),
        &mut send_valid,
    );
    // what fuzzed frames may have switched off: reading back needs the read permission
    let restore = RemotingCommand::new_request(request_code::UPDATE_BROKER_CONFIG)
        .with_body(bytes::Bytes::from_static(b"brokerPermission=6\n"));
    let restored = ask(&addr, &restore).expect("restore the broker permission");
    assert_eq!(restored.code, ResponseCode::Success.code(), "{restored:?}");
    assert!(
        acked.len() as u64 >= cases() / BATCH,
        "only {} valid sends acknowledged",
        acked.len()
    );
    rmq_net::rt::block_on(support::verify(&addr, ACKED_TOPIC, &acked, 0))
        .expect("a runtime")
        .expect("read the acknowledged messages back");
    assert!(child.try_wait().unwrap().is_none(), "the broker exited");
}

#[test]
fn the_name_server_survives_fuzzed_frames() {
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = format!(
        "listenPort={port}\nkvConfigPath={}\nlogDir={}\n",
        root.path().join("kv.json").display(),
        root.path().join("logs").display()
    );
    let probe = RemotingCommand::new_request(request_code::GET_BROKER_CLUSTER_INFO);
    fuzz(
        root.path(),
        "namesrv",
        &config,
        port,
        &probe,
        seed() ^ 1,
        &mut |_| {},
    );
}

/// Fuzzes the `role` process for `cases()` cases, calling `after_batch` with its address
/// after every checked batch; returns the process, still running.
fn fuzz(
    root: &Path,
    role: &str,
    config: &str,
    port: u16,
    probe: &RemotingCommand,
    seed: u64,
    after_batch: &mut dyn FnMut(&str),
) -> Broker {
    let config_path = root.join(format!("{role}.properties"));
    std::fs::write(&config_path, config).unwrap();
    let log = root.join(format!("{role}.log"));
    let mut child = start(role, &config_path, &log);
    let addr = format!("127.0.0.1:{port}");
    wait_for_probe(&addr, probe, &mut child, &log);
    let cases = cases();
    let started = Instant::now();
    let mut rng = XorShift::new(seed);
    let mut index = 0;
    while index < cases {
        let end = (index + BATCH).min(cases);
        let mut last = String::new();
        let mut connection = Connection::open(&addr);
        while index < end {
            let case = generate::case(&mut rng, index);
            last = format!("seed {seed:#x} case {index}: {}", case.what);
            if case.mutated {
                // alone on its connection: it may close it, and nothing else is lost
                let mut alone = Connection::open(&addr);
                alone.write(&case.bytes);
                alone.finish(&last);
            } else {
                if connection.closed() {
                    connection = Connection::open(&addr);
                }
                connection.write(&case.bytes);
            }
            index += 1;
        }
        connection.finish(&last);
        check(role, &addr, probe, &mut child, &log, &last);
        after_batch(&addr);
    }
    eprintln!(
        "{role}: {cases} fuzzed frames (seed {seed:#x}) in {:?}; connections and reply bytes \
         of both tests so far: {}, {}",
        started.elapsed(),
        CONNECTIONS.load(Ordering::Relaxed),
        REPLY_BYTES.load(Ordering::Relaxed)
    );
    child
}

/// The process is alive, answers `probe` on a new connection, and logged no panic.
fn check(
    role: &str,
    addr: &str,
    probe: &RemotingCommand,
    child: &mut Broker,
    log: &Path,
    last: &str,
) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!("the {role} exited ({status}) by {last}: {}", log_tail(log));
    }
    // several connections open at once: the broker serves each on its least loaded core, so
    // every core is asked (a core stuck in one request stalls only its own connections)
    let sockets: Vec<_> = (0..PROBES).map(|_| TcpStream::connect(addr)).collect();
    for socket in sockets {
        let answered = socket
            .map_err(|e| format!("connect: {e}"))
            .and_then(|socket| ask_on(socket, probe));
        if let Err(error) = answered {
            panic!(
                "the {role} did not answer a valid request ({error}) by {last}: {}",
                log_tail(log)
            );
        }
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains("panicked"),
        "the {role} panicked by {last}: {}",
        log_tail(log)
    );
}

/// A fuzzing connection: frames are written from this thread, a reader thread discards
/// whatever the server answers so it never waits on us.
struct Connection {
    socket: TcpStream,
    /// Ends with true when the server closed the connection, false when it went silent.
    reader: Option<std::thread::JoinHandle<bool>>,
    broken: bool,
}

impl Connection {
    fn open(addr: &str) -> Connection {
        let socket = TcpStream::connect(addr).unwrap();
        socket
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut read_side = socket.try_clone().unwrap();
        read_side.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
        let reader = std::thread::spawn(move || {
            let mut sink = vec![0u8; 64 * 1024];
            loop {
                match read_side.read(&mut sink) {
                    Ok(0) => return true,
                    Ok(n) => REPLY_BYTES.fetch_add(n as u64, Ordering::Relaxed),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        return false;
                    }
                    Err(_) => return true,
                };
            }
        });
        CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        Connection {
            socket,
            reader: Some(reader),
            broken: false,
        }
    }

    /// The server closed the connection (a write failed, or the reader saw its end).
    fn closed(&self) -> bool {
        self.broken || self.reader.as_ref().is_none_or(|r| r.is_finished())
    }

    /// Writes one case; a connection the server closed is marked broken (expected after a
    /// malformed frame).
    fn write(&mut self, bytes: &[u8]) {
        if self.socket.write_all(bytes).is_err() {
            self.broken = true;
        }
    }
}

impl Connection {
    /// Ends the connection the way a client does (end of stream), then waits until the
    /// server closed its side: by then it has read every frame written. A server that
    /// neither answers nor closes within `PROBE_TIMEOUT` is stuck: the test fails there.
    fn finish(mut self, last: &str) {
        let _ = self.socket.shutdown(Shutdown::Write);
        if let Some(reader) = self.reader.take() {
            let closed = reader.join().unwrap_or(true);
            assert!(
                closed,
                "the server did not close a connection within {PROBE_TIMEOUT:?} of its end \
                 (a stuck core?) by {last}"
            );
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Sends `probe` on a new connection and waits for its response.
fn ask(addr: &str, probe: &RemotingCommand) -> Result<RemotingCommand, String> {
    let socket = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    ask_on(socket, probe)
}

/// Sends `probe` on `socket` and waits for its response.
fn ask_on(mut socket: TcpStream, probe: &RemotingCommand) -> Result<RemotingCommand, String> {
    socket.set_read_timeout(Some(PROBE_TIMEOUT)).unwrap();
    let mut out = BytesMut::new();
    encode_frame(probe, &mut out);
    socket.write_all(&out).map_err(|e| format!("write: {e}"))?;
    let mut pending = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = socket.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".to_owned());
        }
        pending.extend_from_slice(&chunk[..n]);
        match decode_frame(&mut pending, DEFAULT_MAX_FRAME) {
            Ok(Some(response)) if response.opaque == probe.opaque => return Ok(response),
            Ok(_) => {}
            Err(error) => return Err(format!("bad response frame: {error}")),
        }
    }
}

fn wait_for_probe(addr: &str, probe: &RemotingCommand, child: &mut Broker, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ask(addr, probe).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited during start-up ({status}): {}", log_tail(log));
        }
        assert!(Instant::now() < deadline, "did not start serving");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start(role: &str, config: &Path, log: &Path) -> Broker {
    let binary: PathBuf = broker_binary();
    let file = std::fs::File::create(log).unwrap();
    std::process::Command::new(binary)
        .args([role, "-c"])
        .arg(config)
        .stdout(std::process::Stdio::from(file.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(file))
        .spawn()
        .map(rmq_test_support::process::KillOnDrop)
        .expect("start rmq-fast")
}
