//! A name server does not start on a port another one listens on, even when both start at
//! the same instant (`AddrInUse`, as Apache RocketMQ's "Address already in use"), and a
//! name server stopped in-process frees its port for the next one.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use rmq_core::config::NamesrvConfig;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::{NetError, RemotingClient};
use rmq_test_support::ports::HeldPorts;

fn config(port: u16, dir: &std::path::Path) -> NamesrvConfig {
    let pairs = [
        ("listenPort".to_string(), port.to_string()),
        (
            "kvConfigPath".to_string(),
            dir.join("kvConfig.json").display().to_string(),
        ),
    ];
    NamesrvConfig::load(None, &pairs)
        .expect("a valid configuration")
        .0
}

/// The name server on `port` answers a request.
fn answers(port: u16) {
    rmq_net::rt::block_on(async move {
        let addr = format!("127.0.0.1:{port}");
        let client = RemotingClient::connect(&addr, Duration::from_secs(5))
            .await
            .expect("connect");
        let request =
            RemotingCommand::new_request(request_code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
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
    })
    .unwrap();
}

#[test]
fn two_name_servers_started_at_once_on_one_port_one_serves_then_it_restarts() {
    let held = HeldPorts::take(1);
    let port = held.port();
    let dir = tempfile::tempdir().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let stops: Vec<Arc<AtomicBool>> = (0..2).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let starts: Vec<_> = stops
        .iter()
        .map(|stop| {
            let (barrier, stop, config) = (barrier.clone(), stop.clone(), config(port, dir.path()));
            std::thread::spawn(move || {
                barrier.wait();
                rmq_namesrv::run_namesrv(config, IpAddr::V4(Ipv4Addr::UNSPECIFIED), stop)
            })
        })
        .collect();
    let results: Vec<_> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    let serving: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(serving.len(), 1, "{results:?}");
    let loser = 1 - serving[0];
    match &results[loser] {
        Err(error @ NetError::AddrInUse { .. }) => {
            assert!(error.to_string().contains("already in use"), "{error}");
        }
        other => panic!("the second name server: {other:?}"),
    }
    answers(port);

    let mut results = results;
    let winner = results.swap_remove(serving[0]).unwrap();
    stops[serving[0]].store(true, Ordering::Relaxed);
    winner.join().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let restarted = rmq_namesrv::run_namesrv(
        config(port, dir.path()),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        stop.clone(),
    )
    .expect("the port is free once the first name server stopped");
    answers(port);
    stop.store(true, Ordering::Relaxed);
    restarted.join().unwrap();
}
