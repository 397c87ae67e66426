//! What an idle connection costs the real `rmq-fast` broker (issue 12): each connection sends
//! one request, reads its answer and stays open; the broker's VmRSS growth divided by the
//! number of connections must stay under `BYTES_PER_CONNECTION_BOUND` (it was ~190 KB when
//! every connection kept 64 KB read, pending and write buffers; docs/perf.md).
//!
//! Short mode (CI): 2,000 connections. Long mode: `RMQ_IDLE_CONNECTIONS=10000` (the process
//! needs that many file descriptors; `ulimit -n`). `RMQ_FAST_BIN` points at a prebuilt
//! binary; otherwise the test builds `rmq-fast`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use rmq_core::remoting::{
    DEFAULT_MAX_FRAME, RemotingCommand, ResponseCode, decode_frame, encode_frame, request_code,
};
use support::{broker_binary, free_port_pair, log_tail};

const BYTES_PER_CONNECTION_BOUND: u64 = 32 * 1024;

#[test]
fn idle_connections_are_cheap() {
    let connections: usize = std::env::var("RMQ_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let binary = broker_binary();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port);
    let log = root.path().join("broker.log");
    let mut child = support::start_broker(&binary, &config, &log);
    let addr = format!("127.0.0.1:{port}");
    let runtime = rmq_net::rt::Runtime::new().unwrap();
    runtime.block_on(support::wait_until_serving(&addr, &mut child, &log));
    // warm up: the first connections of each core allocate per-core state once
    let warm: Vec<TcpStream> = (0..64).map(|_| open_and_ask(&addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = rmq_test_support::process::vm_rss_bytes(child.id());
    let open: Vec<TcpStream> = (0..connections).map(|_| open_and_ask(&addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = rmq_test_support::process::vm_rss_bytes(child.id());
    let per_connection = after.saturating_sub(before) / connections as u64;
    eprintln!(
        "{connections} idle connections: broker RSS {} -> {} MiB, {per_connection} bytes each",
        before >> 20,
        after >> 20
    );
    assert!(
        per_connection < BYTES_PER_CONNECTION_BOUND,
        "{per_connection} bytes of RSS per idle connection"
    );
    // still serving
    drop(open_and_ask(&addr));
    drop((warm, open));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the broker exited: {}",
        log_tail(&log)
    );
}

/// Connects, sends GET_BROKER_RUNTIME_INFO and reads the answer; returns the open socket.
fn open_and_ask(addr: &str) -> TcpStream {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = BytesMut::new();
    encode_frame(
        &RemotingCommand::new_request(request_code::GET_BROKER_RUNTIME_INFO),
        &mut out,
    );
    socket.write_all(&out).unwrap();
    let mut pending = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).unwrap();
        assert!(n > 0, "the broker closed the connection");
        pending.extend_from_slice(&chunk[..n]);
        if let Some(response) = decode_frame(&mut pending, DEFAULT_MAX_FRAME).unwrap() {
            assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
            return socket;
        }
    }
}

fn write_config(root: &Path, port: u16) -> PathBuf {
    let text = format!(
        "brokerClusterName=IdleCluster\nbrokerName=idle-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nflushDiskType=ASYNC_FLUSH\n\
         mappedFileSizeCommitLog=4194304\ncleanFileForciblyEnable=false\nmaxMessageSize=1048576\nshardCount=2\n",
        root.join("store").display(),
        root.join("logs").display()
    );
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}
