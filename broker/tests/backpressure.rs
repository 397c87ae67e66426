//! A client that pipelines requests and never reads the replies, against the real `rmq-fast`
//! binary (issue 12): the broker stops reading that connection once its per-connection limits
//! are reached (`connectionMaxInFlightRequests`, `connectionMaxQueuedReplyBytes`), so its RSS
//! stays bounded, other clients are answered promptly meanwhile, and when the client finally
//! reads it gets every reply. Before the limits, 100k pipelined pulls grew the broker by GBs.
//!
//! `RMQ_BACKPRESSURE_REQUESTS` changes the number of pipelined requests per kind (default
//! 100,000). `RMQ_FAST_BIN` points at a prebuilt binary; otherwise the test builds `rmq-fast`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rmq_core::message::properties::{encode_properties, keys};
use rmq_core::remoting::{
    DEFAULT_MAX_FRAME, RemotingCommand, ResponseCode, decode_frame, encode_frame, request_code,
};
use rmq_net::RemotingClient;
use support::{TIMEOUT, broker_binary, free_port_pair, log_tail, pull_request};

const TOPIC: &str = "PressureTopic";
/// Messages stored before the flood: every pipelined pull answers 32 of them (~17 KB).
const SEEDED: usize = 64;
const BODY: usize = 512;
/// How much the broker's RSS may grow while one client floods it (the limits allow 16 MiB
/// of queued replies plus 1,024 requests in flight; the rest is allocator slack).
const RSS_GROWTH_BOUND: u64 = 200 * 1024 * 1024;
/// A request of another client must be answered within this while the flood is held back.
const PROMPT: Duration = Duration::from_secs(2);

#[test]
fn a_client_that_never_reads_is_held_back_and_others_are_still_served() {
    let requests: usize = std::env::var("RMQ_BACKPRESSURE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let binary = broker_binary();
    let root = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let config = write_config(root.path(), port);
    let log = root.path().join("broker.log");
    let mut child = support::start_broker(&binary, &config, &log);
    let pid = child.id();
    let addr = format!("127.0.0.1:{port}");
    let runtime = rmq_net::rt::Runtime::new().unwrap();
    let client = runtime.block_on(async {
        support::wait_until_serving(&addr, &mut child, &log).await;
        let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
        for seq in 0..SEEDED {
            let response = client.invoke(send(seq), TIMEOUT).await.unwrap();
            assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        }
        client
    });
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(
                    rmq_test_support::process::vm_rss_bytes(pid),
                    Ordering::Relaxed,
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let before = rmq_test_support::process::vm_rss_bytes(pid);
    for kind in [Kind::Pull, Kind::Send] {
        let phase = Instant::now();
        let hostile = TcpStream::connect(&addr).unwrap();
        let writer = {
            let mut socket = hostile.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut out = BytesMut::new();
                for seq in 0..requests {
                    let mut request = kind.request(seq);
                    request.opaque = i32::try_from(seq).unwrap();
                    encode_frame(&request, &mut out);
                    if out.len() > 256 * 1024 || seq + 1 == requests {
                        socket.write_all(&out).unwrap();
                        out.clear();
                    }
                }
            })
        };
        // while the flood is held back, another client is served promptly
        runtime.block_on(async {
            let until = Instant::now() + Duration::from_secs(3);
            let mut seq = SEEDED;
            while Instant::now() < until {
                for request in [send(seq), pull_request(TOPIC, 0, 0)] {
                    let started = Instant::now();
                    let response = client.invoke(request, TIMEOUT).await.unwrap();
                    assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
                    let took = started.elapsed();
                    assert!(took < PROMPT, "{kind:?} flood: a request took {took:?}");
                }
                seq += 1;
                rmq_net::rt::sleep(Duration::from_millis(100)).await;
            }
        });
        if kind == Kind::Pull {
            assert!(
                !writer.is_finished(),
                "the broker read all {requests} pulls of a client that reads nothing"
            );
        }
        let grown = peak.load(Ordering::Relaxed).saturating_sub(before);
        eprintln!("{kind:?} flood: broker RSS grew by {} MiB", grown >> 20);
        assert!(
            grown < RSS_GROWTH_BOUND,
            "{kind:?} flood grew the broker by {} MiB",
            grown >> 20
        );
        // the client reads at last: every request is answered
        let answered = read_replies(hostile, requests);
        writer.join().unwrap();
        assert_eq!(answered, requests, "{kind:?}: replies received");
        eprintln!("{kind:?} flood of {requests}: {:?}", phase.elapsed());
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let grown = peak.load(Ordering::Relaxed).saturating_sub(before);
    assert!(grown < RSS_GROWTH_BOUND, "peak growth {} MiB", grown >> 20);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the broker exited: {}",
        log_tail(&log)
    );
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Pull,
    Send,
}

impl Kind {
    fn request(self, seq: usize) -> RemotingCommand {
        match self {
            Kind::Pull => pull_request(TOPIC, 0, 0),
            Kind::Send => send(seq),
        }
    }
}

fn send(seq: usize) -> RemotingCommand {
    let properties = encode_properties([(keys::WAIT, "false")]);
    RemotingCommand::new_request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "pressure-producer")
        .with_ext("b", TOPIC)
        .with_ext("c", "TBW102")
        .with_ext("d", 1)
        .with_ext("e", 0)
        .with_ext("f", 0)
        .with_ext("g", 1_700_000_000_000i64)
        .with_ext("h", 0)
        .with_ext("i", properties)
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_ext("m", false)
        .with_body(format!("{seq:0>BODY$}"))
}

/// Reads responses until `expected` arrived (each must be SUCCESS); returns how many did.
fn read_replies(mut socket: TcpStream, expected: usize) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut pending = BytesMut::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut answered = 0;
    while answered < expected {
        let n = match socket.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(response) = decode_frame(&mut pending, DEFAULT_MAX_FRAME).unwrap() {
            assert!(response.is_response());
            assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
            answered += 1;
        }
    }
    answered
}

fn write_config(root: &Path, port: u16) -> PathBuf {
    let text = format!(
        "brokerClusterName=PressureCluster\nbrokerName=pressure-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:1\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nflushDiskType=ASYNC_FLUSH\n\
         mappedFileSizeCommitLog=67108864\ncleanFileForciblyEnable=false\nshardCount=2\nautoCreateTopicEnable=true\n",
        root.join("store").display(),
        root.join("logs").display()
    );
    let path = root.join("broker.properties");
    std::fs::write(&path, text).unwrap();
    path
}
