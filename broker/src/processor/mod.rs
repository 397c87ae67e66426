//! Request processing: one module per family of request codes. Every processor turns a
//! request into a response with RocketMQ's response codes and remarks; bad input is a
//! response, never a panic or a dropped connection.

pub mod admin;
pub mod client;
pub mod lock;
pub mod offset;
pub mod pull;
pub mod query;
pub mod reply;
pub mod send;
pub mod send_back;
pub mod transaction;

use std::rc::Rc;

use rmq_core::remoting::{HeaderError, RemotingCommand, ResponseCode, request_code as rc};
use rmq_net::connection::LocalFuture;
use rmq_net::{ConnectionInfo, RequestHandler};

use crate::core_context::{CoreContext, ShardBusy};

/// The broker's handler on one core.
pub struct BrokerHandler {
    pub core: Rc<CoreContext>,
}

pub fn reply(
    req: &RemotingCommand,
    code: ResponseCode,
    remark: impl Into<Option<String>>,
) -> RemotingCommand {
    RemotingCommand::response_for(req, code.code(), remark.into())
}

pub fn success(req: &RemotingCommand) -> RemotingCommand {
    reply(req, ResponseCode::Success, None)
}

/// A header field missing or malformed: SYSTEM_ERROR with the field named.
pub fn bad_header(req: &RemotingCommand, error: &HeaderError) -> RemotingCommand {
    reply(req, ResponseCode::SystemError, Some(error.to_string()))
}

pub fn busy(req: &RemotingCommand, error: &ShardBusy) -> RemotingCommand {
    reply(req, ResponseCode::SystemBusy, Some(error.to_string()))
}

/// Result type of processors: `Err` carries a ready error response.
pub type Processed = Result<RemotingCommand, RemotingCommand>;

pub fn header<T>(
    req: &RemotingCommand,
    value: Result<T, HeaderError>,
) -> Result<T, RemotingCommand> {
    value.map_err(|error| bad_header(req, &error))
}

impl RequestHandler for BrokerHandler {
    fn handle(
        self: Rc<Self>,
        conn: Rc<ConnectionInfo>,
        req: RemotingCommand,
    ) -> LocalFuture<Option<RemotingCommand>> {
        Box::pin(async move {
            let started = crate::metrics::rpc_started();
            let core = &self.core;
            if let Some(acl) = &core.broker.acl
                && let Err(denied) = acl.check(conn.peer.ip(), &req)
            {
                acl.log_refusal(conn.peer, req.code, &denied);
                let response = denied.response(&req);
                crate::metrics::on_rpc(started, req.code, Some(response.code));
                return (!req.is_oneway()).then_some(response);
            }
            let result = match req.code {
                rc::SEND_MESSAGE | rc::SEND_MESSAGE_V2 | rc::SEND_BATCH_MESSAGE => {
                    match send::process_or_hand_off(core, &conn, &req, started).await {
                        Ok(Some(response)) => Ok(response),
                        // Answered by the shard's core (metrics recorded there).
                        Ok(None) => return None,
                        Err(response) => Err(response),
                    }
                }
                rc::SEND_REPLY_MESSAGE | rc::SEND_REPLY_MESSAGE_V2 => {
                    reply::process(core, &conn, &req).await
                }
                rc::PULL_MESSAGE => pull::process(core, &conn, &req).await,
                rc::HEART_BEAT => client::heartbeat(core, &conn, &req).await,
                rc::UNREGISTER_CLIENT => client::unregister(core, &req),
                rc::GET_CONSUMER_LIST_BY_GROUP => client::consumer_list(core, &req),
                rc::CHECK_CLIENT_CONFIG => pull::check_client_config(core, &req),
                rc::LOCK_BATCH_MQ => lock::lock_batch(core, &req),
                rc::UNLOCK_BATCH_MQ => lock::unlock_batch(core, &req),
                rc::QUERY_CONSUMER_OFFSET => offset::query_consumer_offset(core, &req).await,
                rc::UPDATE_CONSUMER_OFFSET => offset::update_consumer_offset(core, &req),
                rc::GET_MAX_OFFSET
                | rc::GET_MIN_OFFSET
                | rc::SEARCH_OFFSET_BY_TIMESTAMP
                | rc::GET_EARLIEST_MSG_STORETIME => offset::queue_offsets(core, &req).await,
                rc::VIEW_MESSAGE_BY_ID => offset::view_message(core, &req).await,
                rc::QUERY_MESSAGE => query::process(core, &req).await,
                rc::CONSUMER_SEND_MSG_BACK => send_back::process(core, &req).await,
                rc::END_TRANSACTION => transaction::end_transaction(core, &req).await,
                rc::GET_ALL_DELAY_OFFSET => {
                    let broker = &core.broker;
                    let table = crate::replication::metadata_sync::Table::DelayOffsets;
                    Ok(crate::replication::metadata_sync::answer(
                        broker,
                        &req,
                        table,
                        || rmq_core::body::encode_body(&broker.schedule.delay_wrapper()),
                    ))
                }
                code @ rc::UPDATE_AND_CREATE_ACL_CONFIG..=rc::GET_BROKER_CLUSTER_ACL_CONFIG => {
                    crate::acl::admin::process(&core.broker, &req)
                        .await
                        .ok_or_else(|| {
                            reply(
                                &req,
                                ResponseCode::RequestCodeNotSupported,
                                format!(" request type {code} not supported"),
                            )
                        })
                }
                code => admin::process(core, code, &req).await,
            };
            let response = result.unwrap_or_else(|error| error);
            crate::metrics::on_rpc(started, req.code, Some(response.code));
            Some(response)
        })
    }

    fn response(&self, conn: &ConnectionInfo, response: RemotingCommand) {
        let opaque = response.opaque;
        if !self.core.broker.client_calls.answered(response) {
            tracing::debug!(peer = %conn.peer, opaque, "response nobody waits for dropped");
        }
    }

    fn closed(&self, conn: &ConnectionInfo) {
        let clients = &self.core.broker.clients;
        for group in clients.connection_closed(conn.id) {
            tracing::info!(group = %group, peer = %conn.peer, "consumer connection closed");
            clients.notify_ids_changed(&group);
        }
    }
}
