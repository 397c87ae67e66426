//! Request dispatch of the name server: one function per request code, each turning a
//! request into a response with RocketMQ's codes and remarks.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Instant;

use rmq_core::body::{KVTable, decode_body, encode_body};
use rmq_core::config::NamesrvConfig;
use rmq_core::remoting::{HeaderError, RemotingCommand, ResponseCode, request_code as rc};
use rmq_net::ConnectionInfo;

use crate::kv_config::KvConfig;
use crate::route_table::RouteTable;

/// Namespace of order-topic settings in the KV config.
pub const ORDER_TOPIC_NAMESPACE: &str = "ORDER_TOPIC_CONFIG";

/// Name server state shared by its connections (single core).
pub struct NamesrvState {
    pub routes: RefCell<RouteTable>,
    pub kv: RefCell<KvConfig>,
    /// The config as changed at runtime by UPDATE_NAMESRV_CONFIG (`config_admin`).
    pub config: RefCell<NamesrvConfig>,
    /// Broker addresses whose registration is being applied (`crate::register`).
    pub applying: RefCell<HashSet<String>>,
}

impl NamesrvState {
    pub fn new(kv: KvConfig, config: NamesrvConfig) -> NamesrvState {
        NamesrvState {
            routes: RefCell::new(RouteTable::default()),
            kv: RefCell::new(kv),
            config: RefCell::new(config),
            applying: RefCell::default(),
        }
    }
}

pub(crate) fn reply(
    req: &RemotingCommand,
    code: ResponseCode,
    remark: Option<String>,
) -> RemotingCommand {
    RemotingCommand::response_for(req, code.code(), remark)
}

fn header_error(req: &RemotingCommand, error: HeaderError) -> RemotingCommand {
    reply(req, ResponseCode::SystemError, Some(error.to_string()))
}

/// Handles one request.
pub async fn handle(
    state: &Rc<NamesrvState>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> RemotingCommand {
    if req.code == rc::REGISTER_BROKER {
        return crate::register::register_broker(state, conn, req).await;
    }
    process(state, conn, req)
}

/// Handles one request other than REGISTER_BROKER (`crate::register`).
fn process(
    state: &Rc<NamesrvState>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> RemotingCommand {
    let result = match req.code {
        rc::UNREGISTER_BROKER => unregister_broker(state, req),
        rc::GET_ROUTEINFO_BY_TOPIC => route_by_topic(state, req),
        rc::GET_BROKER_CLUSTER_INFO => {
            let info = state.routes.borrow().cluster_info();
            Ok(reply(req, ResponseCode::Success, None).with_body(encode_body(&info)))
        }
        rc::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
            let topics = state.routes.borrow().all_topics();
            Ok(reply(req, ResponseCode::Success, None).with_body(encode_body(&topics)))
        }
        rc::GET_TOPICS_BY_CLUSTER => req.ext_str("cluster").map(|cluster| {
            let topics = state.routes.borrow().topics_of_cluster(cluster);
            reply(req, ResponseCode::Success, None).with_body(encode_body(&topics))
        }),
        rc::DELETE_TOPIC_IN_NAMESRV => req.ext_str("topic").map(|topic| {
            state.routes.borrow_mut().delete_topic(topic);
            reply(req, ResponseCode::Success, None)
        }),
        rc::QUERY_DATA_VERSION => query_data_version(state, req),
        rc::WIPE_WRITE_PERM_OF_BROKER | rc::ADD_WRITE_PERM_OF_BROKER => {
            write_perm(state, conn, req)
        }
        rc::UPDATE_NAMESRV_CONFIG => Ok(crate::config_admin::update(state, conn, req)),
        rc::GET_NAMESRV_CONFIG => Ok(crate::config_admin::get(state, req)),
        rc::PUT_KV_CONFIG
        | rc::GET_KV_CONFIG
        | rc::DELETE_KV_CONFIG
        | rc::GET_KVLIST_BY_NAMESPACE => kv_request(state, req),
        code => Ok(reply(
            req,
            ResponseCode::RequestCodeNotSupported,
            Some(format!(" request type {code} not supported")),
        )),
    };
    result.unwrap_or_else(|error| header_error(req, error))
}

fn unregister_broker(
    state: &Rc<NamesrvState>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, HeaderError> {
    let broker_addr = req.ext_str("brokerAddr")?;
    state.routes.borrow_mut().unregister(broker_addr);
    Ok(reply(req, ResponseCode::Success, None))
}

fn route_by_topic(
    state: &Rc<NamesrvState>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, HeaderError> {
    let topic = req.ext_str("topic")?;
    let order_conf = state
        .kv
        .borrow()
        .get(ORDER_TOPIC_NAMESPACE, topic)
        .map(str::to_string);
    match state.routes.borrow().route(topic, order_conf) {
        Some(route) => Ok(reply(req, ResponseCode::Success, None).with_body(encode_body(&route))),
        None => Ok(reply(
            req,
            ResponseCode::TopicNotExist,
            Some(format!(
                "No topic route info in name server for the topic: {topic}"
            )),
        )),
    }
}

fn query_data_version(
    state: &Rc<NamesrvState>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, HeaderError> {
    let broker_addr = req.ext_str("brokerAddr")?;
    let theirs: rmq_core::body::DataVersion = decode_body(&req.body).unwrap_or_default();
    let mut routes = state.routes.borrow_mut();
    let ours = routes.data_version(broker_addr).cloned();
    let changed = ours.as_ref() != Some(&theirs);
    routes.touch(broker_addr, Instant::now());
    let mut response = reply(req, ResponseCode::Success, None).with_ext("changed", changed);
    if let Some(ours) = ours {
        response = response.with_body(encode_body(&ours));
    }
    Ok(response)
}

fn kv_request(
    state: &Rc<NamesrvState>,
    req: &RemotingCommand,
) -> Result<RemotingCommand, HeaderError> {
    let namespace = req.ext_str("namespace")?;
    match req.code {
        rc::PUT_KV_CONFIG => {
            state
                .kv
                .borrow_mut()
                .put(namespace, req.ext_str("key")?, req.ext_str("value")?);
            Ok(reply(req, ResponseCode::Success, None))
        }
        rc::DELETE_KV_CONFIG => {
            state.kv.borrow_mut().delete(namespace, req.ext_str("key")?);
            Ok(reply(req, ResponseCode::Success, None))
        }
        rc::GET_KVLIST_BY_NAMESPACE => {
            let table = KVTable {
                table: state.kv.borrow().namespace(namespace),
            };
            if table.table.is_empty() {
                let remark = format!("No config item, Namespace: {namespace}");
                return Ok(reply(req, ResponseCode::QueryNotFound, Some(remark)));
            }
            Ok(reply(req, ResponseCode::Success, None).with_body(encode_body(&table)))
        }
        _ => {
            let key = req.ext_str("key")?;
            match state.kv.borrow().get(namespace, key) {
                Some(value) => Ok(reply(req, ResponseCode::Success, None).with_ext("value", value)),
                None => Ok(reply(
                    req,
                    ResponseCode::QueryNotFound,
                    Some(format!("No config item, Namespace: {namespace} Key: {key}")),
                )),
            }
        }
    }
}

/// WIPE_WRITE_PERM_OF_BROKER / ADD_WRITE_PERM_OF_BROKER: drains a broker before maintenance
/// (routes lose PERM_WRITE until the broker's next topic change) or gives write back.
fn write_perm(
    state: &Rc<NamesrvState>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> Result<RemotingCommand, HeaderError> {
    let broker_name = req.ext_str("brokerName")?;
    let wipe = req.code == rc::WIPE_WRITE_PERM_OF_BROKER;
    let count = state.routes.borrow_mut().set_write_perm(broker_name, wipe);
    tracing::info!(broker = broker_name, wipe, topics = count, peer = %conn.peer, "write permission of broker changed");
    let key = if wipe {
        "wipeTopicCount"
    } else {
        "addTopicCount"
    };
    Ok(reply(req, ResponseCode::Success, None).with_ext(key, count))
}

#[cfg(test)]
mod tests;
