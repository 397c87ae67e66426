//! A broker does not start on a port another broker listens on, even when both start at the
//! same instant: the second fails with "address ... already in use" (Apache RocketMQ's
//! "Address already in use") instead of sharing the port's connections with the first.
//! A broker stopped in-process frees the port, and the next start on it serves.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use rmq_broker::server::{BrokerHandle, start_broker};
use rmq_core::config::BrokerConfig;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::RemotingClient;
use rmq_test_support::ports::HeldPorts;

fn config(root: &Path, port: u16) -> BrokerConfig {
    let pairs: Vec<(String, String)> = [
        ("brokerClusterName", "PortCluster"),
        ("brokerName", "port-broker"),
        ("listenPort", &port.to_string()),
        ("namesrvAddr", "127.0.0.1:1"),
        ("brokerIP1", "127.0.0.1"),
        (
            "storePathRootDir",
            &root.join("store").display().to_string(),
        ),
        ("logDir", &root.join("logs").display().to_string()),
        ("mappedFileSizeCommitLog", "1048576"),
        ("cleanFileForciblyEnable", "false"),
        ("maxMessageSize", "65536"),
        ("mappedFileSizeConsumeQueue", "6000"),
        ("shardCount", "2"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    BrokerConfig::load(None, &pairs)
        .expect("a valid test configuration")
        .0
}

/// The broker on `port` creates a topic on each of several connections (all of them are
/// served by it: nothing else listens on the port).
fn serves(port: u16) {
    rmq_net::rt::block_on(async move {
        let addr = format!("127.0.0.1:{port}");
        for connection in 0..4 {
            let client = RemotingClient::connect(&addr, Duration::from_secs(5))
                .await
                .expect("connect");
            let request = RemotingCommand::new_request(request_code::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", format!("PortTopic{connection}"))
                .with_ext("readQueueNums", "2")
                .with_ext("writeQueueNums", "2")
                .with_ext("perm", "6")
                .with_ext("defaultTopic", "TBW102")
                .with_ext("topicFilterType", "SINGLE_TAG");
            let response = client
                .invoke(request, Duration::from_secs(5))
                .await
                .expect("an answer");
            assert_eq!(
                response.code,
                ResponseCode::Success as i32,
                "{:?}",
                response.remark
            );
        }
    })
    .unwrap();
}

#[test]
fn two_brokers_started_at_once_on_one_port_one_serves_then_it_restarts() {
    // listenPort and the HA port after it.
    let held = HeldPorts::take(2);
    let port = held.port();
    let roots = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let barrier = Arc::new(Barrier::new(2));
    let starts: Vec<_> = roots
        .iter()
        .map(|root| {
            let (barrier, config) = (barrier.clone(), config(root.path(), port));
            std::thread::spawn(move || {
                barrier.wait();
                start_broker(config)
            })
        })
        .collect();
    let mut results: Vec<Result<BrokerHandle, _>> =
        starts.into_iter().map(|t| t.join().unwrap()).collect();
    let serving: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
    let outcome: Vec<String> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|_| "started".to_string())
                .unwrap_or_else(|e| e.to_string())
        })
        .collect();
    assert_eq!(serving.len(), 1, "{outcome:?}");
    let winner = serving[0];
    let refusal = &outcome[1 - winner];
    assert!(refusal.contains("already in use"), "{refusal}");
    serves(port);

    let first = results.swap_remove(winner).unwrap();
    first.stop().unwrap();
    // The broker that was refused starts now, in this process, on the freed port.
    let second = start_broker(config(roots[1 - winner].path(), port))
        .expect("the port is free once the first broker stopped");
    serves(port);
    second.stop().unwrap();
}
