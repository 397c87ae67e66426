//! GET_CONSUMER_RUNNING_INFO (307) and CONSUME_MESSAGE_DIRECTLY (309): relayed to the
//! consumer over its own connection, and the consumer's answer relayed back (RocketMQ's
//! `callConsumer`): the admin's header and body go to the client unchanged, except that 309
//! carries the stored message (found by its offset msgId) as body and the broker's name. A client not online in the group, or older than
//! V3_1_8_SNAPSHOT, is SYSTEM_ERROR; no answer within 10 s is CONSUME_MSG_TIMEOUT.

use std::rc::Rc;

use rmq_core::message::msg_id::decode_offset_msg_id;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use rmq_storage::shard_of_offset;

use super::super::{Processed, busy, header, reply};
use crate::client_calls::{CALL_TIMEOUT, CallError};
use crate::core_context::CoreContext;

/// `MQVersion.Version.V3_1_8_SNAPSHOT.ordinal()`: older clients cannot answer.
const V3_1_8_SNAPSHOT: i32 = 77;

pub async fn consumer_running_info(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    call_consumer(core, rc::GET_CONSUMER_RUNNING_INFO, req).await
}

pub async fn consume_message_directly(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let msg_id = header(req, req.ext_str("msgId"))?;
    let not_found = |detail: String| {
        let remark = format!("can not find message by the msgId {msg_id}: {detail}");
        reply(req, ResponseCode::SystemError, remark)
    };
    let offset = decode_offset_msg_id(msg_id)
        .map(|(_, offset)| offset)
        .map_err(|error| not_found(error.to_string()))?;
    // `shard_of_offset` asserts a non-negative offset: check the sign first.
    if offset < 0 || shard_of_offset(offset) >= core.broker.shard_count {
        return Err(not_found(format!("offset {offset} out of range")));
    }
    let record = core
        .on_shard(shard_of_offset(offset), move |store| async move {
            store.read_record(offset).await
        })
        .await
        .map_err(|error| busy(req, &error))?
        .map_err(|error| not_found(error.to_string()))?
        .ok_or_else(|| not_found(format!("nothing stored at {offset}")))?;
    let mut relayed = req.clone();
    relayed.set_ext("brokerName", core.broker.config.broker_name.as_str());
    relayed.body = record;
    call_consumer(core, rc::CONSUME_MESSAGE_DIRECTLY, &relayed).await
}

/// Sends `code` with `req`'s fields and body to the consumer the header names and answers
/// with the consumer's response.
pub async fn call_consumer(core: &Rc<CoreContext>, code: i32, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("consumerGroup"))?;
    let client_id = header(req, req.ext_str("clientId"))?;
    let channel = core
        .broker
        .clients
        .consumer_channels(group)
        .into_iter()
        .find(|channel| &*channel.client_id == client_id && channel.sender.is_open());
    let Some(channel) = channel else {
        let remark = format!("The Consumer <{group}> <{client_id}> not online");
        return Err(reply(req, ResponseCode::SystemError, remark));
    };
    if channel.version < V3_1_8_SNAPSHOT {
        let remark = format!(
            "The Consumer <{client_id}> Version <{}> too low to finish, please upgrade it to V3_1_8_SNAPSHOT",
            channel.version
        );
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    let mut request = RemotingCommand::new_request(code);
    request.ext_fields = req.ext_fields.clone();
    request.body = req.body.clone();
    match core
        .broker
        .client_calls
        .call(&channel.sender, request, CALL_TIMEOUT)
        .await
    {
        Ok(mut answer) => {
            answer.opaque = req.opaque;
            answer.serialize_type = req.serialize_type;
            Ok(answer)
        }
        Err(error @ CallError::Timeout(_)) => Err(reply(
            req,
            ResponseCode::ConsumeMsgTimeout,
            format!("consumer <{group}> <{client_id}> Timeout: {error}"),
        )),
        Err(error) => Err(reply(
            req,
            ResponseCode::SystemError,
            format!("invoke consumer <{group}> <{client_id}> Exception: {error}"),
        )),
    }
}
