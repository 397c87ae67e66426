//! REGISTER_BROKER of a large body against lookups on the same core.

use std::rc::Rc;
use std::time::{Duration, Instant};

use rmq_core::body::{RegisterBrokerBody, TopicConfig};
use rmq_core::config::NamesrvConfig;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use rmq_net::ConnectionInfo;

use crate::kv_config::KvConfig;
use crate::processor::{NamesrvState, handle};

fn register_request(topics: &[String], counter: i64) -> RemotingCommand {
    let mut body = RegisterBrokerBody::default();
    let wrapper = &mut body.topic_config_serialize_wrapper;
    for name in topics {
        let mut config = TopicConfig::new(name);
        config.write_queue_nums = 4;
        wrapper.topic_config_table.insert(name.clone(), config);
    }
    wrapper.data_version.counter = counter;
    RemotingCommand::new_request(rc::REGISTER_BROKER)
        .with_ext("brokerName", "broker-a")
        .with_ext("brokerAddr", "1.1.1.1:10911")
        .with_ext("clusterName", "c1")
        .with_ext("brokerId", 0)
        .with_ext("compressed", true)
        .with_body(body.encode(true))
}

fn lookup(topic: &str) -> RemotingCommand {
    RemotingCommand::new_request(rc::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic)
}

/// Lookups are answered while 100,000 topics are decoded and applied: before, the name
/// server decoded and applied a registration in one step on its only core, and nothing else
/// was answered until it finished (5 s lookup timeouts at a million topics). The topics of
/// the previous registration that the new one lacks are gone once it is answered.
#[test]
fn route_lookups_are_answered_while_a_large_registration_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let state = Rc::new(NamesrvState::new(
        KvConfig::load(dir.path().join("kv.json")),
        NamesrvConfig::default(),
    ));
    let addr = "127.0.0.1:1".parse().unwrap();
    let conn = Rc::new(ConnectionInfo::in_process(addr, addr, 0).0);
    let topics: Vec<String> = (0..100_000).map(|i| format!("Topic{i:06}")).collect();
    let large = register_request(&topics, 2);
    assert!(
        large.body.len() > super::INLINE_BODY_MAX,
        "decoded off the core"
    );
    rmq_net::rt::block_on(async {
        let first = register_request(&["Topic000000".into(), "Dropped".into()], 1);
        let response = handle(&state, &conn, &first).await;
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        let registering = {
            let (state, conn) = (state.clone(), conn.clone());
            rmq_net::rt::spawn(async move { handle(&state, &conn, &large).await })
        };
        let started = Instant::now();
        let mut last = Instant::now();
        let mut gaps = Vec::new();
        while !registering.is_finished() {
            let response = handle(&state, &conn, &lookup("Topic000000")).await;
            assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
            gaps.push(last.elapsed());
            last = Instant::now();
            rmq_net::rt::sleep(Duration::from_millis(1)).await;
        }
        let took = started.elapsed();
        let response = registering.await.expect("registration task");
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
        let longest = gaps.iter().max().copied().unwrap_or_default();
        eprintln!(
            "100,000 topics registered in {took:?}; {} lookups meanwhile, longest gap {longest:?}",
            gaps.len()
        );
        assert!(
            gaps.len() >= 10,
            "{} lookups answered during a registration of {took:?}",
            gaps.len()
        );
        assert!(
            longest < Duration::from_millis(500),
            "lookups waited {longest:?} (registration took {took:?})"
        );
        for topic in ["Topic000000", "Topic050000", "Topic099999"] {
            let response = handle(&state, &conn, &lookup(topic)).await;
            assert_eq!(response.code, ResponseCode::Success.code(), "{topic}");
        }
        let response = handle(&state, &conn, &lookup("Dropped")).await;
        assert_eq!(response.code, ResponseCode::TopicNotExist.code());
    })
    .expect("runtime");
    assert_eq!(state.routes.borrow().topic_count(), 100_000);
}
