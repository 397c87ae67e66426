//! Request-level tests of the admin codes mqadmin sends to the name server.

use std::rc::Rc;

use rmq_core::body::{RegisterBrokerBody, TopicConfig, TopicRouteData, decode_body};
use rmq_core::config::{NamesrvConfig, parse_properties};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use rmq_net::ConnectionInfo;

use super::{NamesrvState, handle};

/// Runs one request through the name server's handler.
fn process(
    state: &Rc<NamesrvState>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> RemotingCommand {
    rmq_net::rt::block_on(handle(state, conn, req)).expect("runtime")
}
use crate::kv_config::KvConfig;

fn state(dir: &std::path::Path) -> Rc<NamesrvState> {
    Rc::new(NamesrvState::new(
        KvConfig::load(dir.join("kv.json")),
        NamesrvConfig::default(),
    ))
}

fn conn() -> ConnectionInfo {
    let addr = "127.0.0.1:1".parse().unwrap();
    ConnectionInfo::in_process(addr, addr, 0).0
}

fn register(state: &Rc<NamesrvState>, conn: &ConnectionInfo) {
    let mut body = RegisterBrokerBody::default();
    let wrapper = &mut body.topic_config_serialize_wrapper;
    wrapper
        .topic_config_table
        .insert("T1".into(), TopicConfig::new("T1"));
    wrapper.data_version.counter = 7;
    let req = RemotingCommand::new_request(rc::REGISTER_BROKER)
        .with_ext("brokerName", "broker-a")
        .with_ext("brokerAddr", "1.1.1.1:10911")
        .with_ext("clusterName", "c1")
        .with_ext("brokerId", 0)
        .with_body(body.encode(false));
    assert_eq!(
        process(state, conn, &req).code,
        ResponseCode::Success.code()
    );
}

fn t1_perm(state: &Rc<NamesrvState>, conn: &ConnectionInfo) -> i32 {
    let req = RemotingCommand::new_request(rc::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", "T1");
    let response = process(state, conn, &req);
    let route: TopicRouteData = decode_body(&response.body).unwrap();
    route.queue_datas[0].perm
}

#[test]
fn wipe_and_add_write_perm_answer_counts_and_change_routes() {
    let dir = tempfile::tempdir().unwrap();
    let (state, conn) = (state(dir.path()), conn());
    register(&state, &conn);
    assert_eq!(t1_perm(&state, &conn), 6);
    let wipe = RemotingCommand::new_request(rc::WIPE_WRITE_PERM_OF_BROKER)
        .with_ext("brokerName", "broker-a");
    let response = process(&state, &conn, &wipe);
    assert_eq!(response.code, ResponseCode::Success.code());
    assert_eq!(response.ext("wipeTopicCount"), Some("1"));
    assert_eq!(t1_perm(&state, &conn), 4);
    register(&state, &conn);
    assert_eq!(
        t1_perm(&state, &conn),
        4,
        "a periodic registration keeps the drain"
    );
    let add = RemotingCommand::new_request(rc::ADD_WRITE_PERM_OF_BROKER)
        .with_ext("brokerName", "broker-a");
    let response = process(&state, &conn, &add);
    assert_eq!(response.ext("addTopicCount"), Some("1"));
    assert_eq!(t1_perm(&state, &conn), 6);
    let no_name = RemotingCommand::new_request(rc::WIPE_WRITE_PERM_OF_BROKER);
    assert_eq!(
        process(&state, &conn, &no_name).code,
        ResponseCode::SystemError.code()
    );
}

fn get_config(state: &Rc<NamesrvState>, conn: &ConnectionInfo) -> rmq_core::config::Properties {
    let response = process(
        state,
        conn,
        &RemotingCommand::new_request(rc::GET_NAMESRV_CONFIG),
    );
    assert_eq!(response.code, ResponseCode::Success.code());
    parse_properties(std::str::from_utf8(&response.body).unwrap())
}

fn update_config(state: &Rc<NamesrvState>, conn: &ConnectionInfo, text: &str) -> RemotingCommand {
    let req =
        RemotingCommand::new_request(rc::UPDATE_NAMESRV_CONFIG).with_body(text.as_bytes().to_vec());
    process(state, conn, &req)
}

/// getNamesrvConfig lists every key of RocketMQ's NamesrvConfig and NettyServerConfig;
/// updateNamesrvConfig changes values, refuses black-listed keys and bad values.
#[test]
fn namesrv_config_get_and_update() {
    let dir = tempfile::tempdir().unwrap();
    let (state, conn) = (state(dir.path()), conn());
    let props = get_config(&state, &conn);
    for key in [
        "kvConfigPath",
        "configStorePath",
        "productEnvName",
        "clusterTest",
        "orderMessageEnable",
        "configBlackList",
        "rocketmqHome",
        "listenPort",
        "serverWorkerThreads",
        "serverCallbackExecutorThreads",
        "serverSelectorThreads",
        "serverOnewaySemaphoreValue",
        "serverAsyncSemaphoreValue",
        "serverChannelMaxIdleTimeSeconds",
        "serverSocketSndBufSize",
        "serverSocketRcvBufSize",
        "writeBufferHighWaterMark",
        "writeBufferLowWaterMark",
        "serverSocketBacklog",
        "serverPooledByteBufAllocatorEnable",
        "useEpollNativeSelector",
    ] {
        assert!(props.get(key).is_some(), "missing {key}");
    }
    assert_eq!(props.get("clusterTest"), Some("false"));

    let response = update_config(&state, &conn, "clusterTest=true\nserverSelectorThreads=5\n");
    assert_eq!(
        response.code,
        ResponseCode::Success.code(),
        "{:?}",
        response.remark
    );
    let props = get_config(&state, &conn);
    assert_eq!(props.get("clusterTest"), Some("true"));
    assert_eq!(props.get("serverSelectorThreads"), Some("5"));

    let response = update_config(&state, &conn, "kvConfigPath=/tmp/elsewhere.json\n");
    assert_eq!(response.code, ResponseCode::NoPermission.code());
    assert_eq!(
        response.remark.as_deref(),
        Some("Can not update config in black list.")
    );
    let response = update_config(&state, &conn, "listenPort=notaport\n");
    assert_eq!(response.code, ResponseCode::SystemError.code());
    assert!(response.remark.unwrap().contains("listenPort"));
    let props = get_config(&state, &conn);
    assert_ne!(props.get("kvConfigPath"), Some("/tmp/elsewhere.json"));
    assert_eq!(props.get("listenPort"), Some("9876"));
}
