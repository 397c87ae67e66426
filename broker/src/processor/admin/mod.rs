//! Admin requests used by mqadmin, the dashboard, the exporter and slaves: topic and
//! subscription-group management, config dumps, runtime info and statistics, offset
//! resets, calls relayed to consumers and store maintenance. One file per family; unknown
//! codes get REQUEST_CODE_NOT_SUPPORTED.

pub mod broker_config;
pub mod broker_consume_stats;
pub mod connections;
pub mod consume_queue;
pub mod consume_stats;
pub mod epoch_cache;
pub mod lists;
pub mod maintenance;
pub mod queues;
pub mod reset_offset;
pub mod rocketmq_keys;
pub mod running_info;
pub mod runtime_info;
pub mod stats_data;
pub mod topic_stats;
pub mod topics;

use std::rc::Rc;

use rmq_core::body::encode_body;
use rmq_core::remoting::controller::controller_request_code;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use super::{Processed, reply};
use crate::core_context::CoreContext;
use crate::replication::metadata_sync::{self as sync, Table};

pub async fn process(core: &Rc<CoreContext>, code: i32, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    match code {
        rc::UPDATE_AND_CREATE_TOPIC => topics::create_topic(core, req).await,
        rc::DELETE_TOPIC_IN_BROKER => topics::delete_topic(core, req).await,
        rc::GET_ALL_TOPIC_CONFIG => Ok(sync::answer(broker, req, Table::Topics, || {
            encode_body(&broker.topics.wrapper())
        })),
        rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => topics::update_group(core, req),
        rc::DELETE_SUBSCRIPTIONGROUP => topics::delete_group(core, req),
        rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
            Ok(sync::answer(broker, req, Table::Groups, || {
                encode_body(&*broker.groups.all())
            }))
        }
        rc::GET_ALL_CONSUMER_OFFSET => {
            Ok(sync::answer(broker, req, Table::ConsumerOffsets, || {
                encode_body(&broker.offsets.wrapper())
            }))
        }
        rc::GET_BROKER_RUNTIME_INFO => runtime_info::process(core, req).await,
        rc::GET_TOPIC_STATS_INFO => topic_stats::topic_stats(core, req).await,
        rc::GET_CONSUME_STATS => consume_stats::consume_stats(core, req).await,
        rc::GET_CONSUMER_CONNECTION_LIST => connections::consumer_connections(core, req),
        rc::GET_PRODUCER_CONNECTION_LIST => connections::producer_connections(core, req),
        rc::GET_BROKER_CONFIG => broker_config::get_config(core, req),
        rc::UPDATE_BROKER_CONFIG => broker_config::update_config(core, req),
        rc::INVOKE_BROKER_TO_RESET_OFFSET => reset_offset::reset_offset(core, req).await,
        rc::QUERY_TOPIC_CONSUME_BY_WHO => lists::topic_consumed_by(core, req),
        rc::GET_SYSTEM_TOPIC_LIST_FROM_BROKER => lists::system_topic_list(req),
        rc::GET_ALL_PRODUCER_INFO => lists::all_producers(core, req),
        rc::CLEAN_EXPIRED_CONSUMEQUEUE => maintenance::clean_expired_queues(core, req).await,
        rc::CLEAN_UNUSED_TOPIC => maintenance::clean_unused_topics(core, req).await,
        rc::DELETE_EXPIRED_COMMITLOG => maintenance::delete_expired_commit_log(core, req).await,
        rc::VIEW_BROKER_STATS_DATA => stats_data::view_stats(core, req).await,
        rc::GET_BROKER_CONSUME_STATS => broker_consume_stats::broker_consume_stats(core, req).await,
        rc::GET_CONSUMER_RUNNING_INFO => running_info::consumer_running_info(core, req).await,
        rc::CONSUME_MESSAGE_DIRECTLY => running_info::consume_message_directly(core, req).await,
        rc::QUERY_CONSUME_QUEUE => consume_queue::query_consume_queue(core, req).await,
        controller_request_code::NOTIFY_BROKER_ROLE_CHANGED => {
            Ok(crate::controller_client::notified(broker, req))
        }
        controller_request_code::GET_BROKER_EPOCH_CACHE => {
            epoch_cache::get_broker_epoch_cache(core, req).await
        }
        code => Err(reply(
            req,
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {code} not supported"),
        )),
    }
}
