//! Request/reply (RocketMQ 4.7+ RPC API): SEND_REPLY_MESSAGE (324, long header keys) and
//! SEND_REPLY_MESSAGE_V2 (325, one-letter keys).
//!
//! A requester (`DefaultMQProducer.request`) sends an ordinary message carrying
//! `CORRELATION_ID`, `REPLY_TO_CLIENT` (its client id) and `TTL`; that send is a plain
//! SEND_MESSAGE(_V2) handled by `send`. The responder builds the reply with
//! `MessageUtil.createReplyMessage` (topic `{cluster}_REPLY_TOPIC`, created at start-up by
//! `topics`) and sends it with the codes above, whose headers are the send headers.
//!
//! Contract of this processor:
//! - the reply is stored in the reply topic through the normal send path (RocketMQ's
//!   `storeReplyMessageEnable`, default true, is what rmq-fast always does); a send that the
//!   send path refuses (unknown topic, no permission, slave, full disk) is answered with
//!   that refusal and is not pushed;
//! - the reply is then pushed, oneway, as PUSH_REPLY_MESSAGE_TO_CLIENT (326) on the
//!   connection of the client named by `REPLY_TO_CLIENT` (found among the heartbeating
//!   producers, then consumers), with a `ReplyMessageRequestHeader` and the reply body as
//!   sent (still compressed when `sysFlag` says so; the client inflates it);
//! - the response code is the push outcome, as in RocketMQ: SYSTEM_ERROR with a remark when
//!   `REPLY_TO_CLIENT` is missing or its connection is unknown, otherwise the store's
//!   response (msgId, queueId, queueOffset of the stored reply).
//!
//! The push is oneway rather than awaited: the broker has no pending-request table for
//! commands it sends to clients, and a client that received the frame has nothing useful
//! to say back (it drops replies whose correlation id it no longer waits for).

use std::rc::Rc;

use rmq_core::message::properties::{self, keys};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use rmq_net::ConnectionInfo;

use super::send::{self, SendHeader};
use super::{Processed, reply};
use crate::context::{BrokerContext, now_ms};
use crate::core_context::CoreContext;

/// Handles one SEND_REPLY_MESSAGE(_V2).
pub async fn process(
    core: &Rc<CoreContext>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> Processed {
    assert!(matches!(
        req.code,
        rc::SEND_REPLY_MESSAGE | rc::SEND_REPLY_MESSAGE_V2
    ));
    let head = send::parse_header(req)?;
    // A reply that names no requester can never be delivered: refuse it before storing.
    if properties::get_property(head.properties, keys::REPLY_TO_CLIENT).is_none() {
        return Err(reply(req, ResponseCode::SystemError, no_requester_remark()));
    }
    let stored = send::process(core, conn, req).await?;
    if !store_accepted(stored.code) {
        return Ok(stored);
    }
    match push_to_requester(&core.broker, conn, req, &head) {
        Ok(()) => Ok(stored),
        Err(remark) => {
            tracing::warn!(topic = %head.topic, "{remark}");
            Err(reply(req, ResponseCode::SystemError, remark))
        }
    }
}

/// Store outcomes after which RocketMQ still answers with the push result.
fn no_requester_remark() -> String {
    format!(
        "reply message properties[{}] is null",
        keys::REPLY_TO_CLIENT
    )
}

fn store_accepted(code: i32) -> bool {
    [
        ResponseCode::Success,
        ResponseCode::FlushDiskTimeout,
        ResponseCode::FlushSlaveTimeout,
        ResponseCode::SlaveNotAvailable,
    ]
    .iter()
    .any(|accepted| accepted.code() == code)
}

/// Queues PUSH_REPLY_MESSAGE_TO_CLIENT on the requester's connection; `Err` is the remark.
fn push_to_requester(
    broker: &BrokerContext,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
    head: &SendHeader,
) -> Result<(), String> {
    let Some(requester) = properties::get_property(head.properties, keys::REPLY_TO_CLIENT) else {
        return Err(no_requester_remark());
    };
    let Some(channel) = broker.clients.find_channel(requester) else {
        return Err(format!(
            "push reply message fail, channel of <{requester}> not found."
        ));
    };
    let push = push_command(broker, conn, req, head);
    if channel.sender.send(push) {
        Ok(())
    } else {
        Err(format!("push reply message to {requester} fail."))
    }
}

/// The oneway PUSH_REPLY_MESSAGE_TO_CLIENT with the fields `ReplyMessageRequestHeader`
/// declares (its non-null ones always set).
fn push_command(
    broker: &BrokerContext,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
    head: &SendHeader,
) -> RemotingCommand {
    let now = now_ms();
    let props = properties::set_property(head.properties, keys::PUSH_REPLY_TIME, &now.to_string());
    let v2 = req.code == rc::SEND_REPLY_MESSAGE_V2;
    let unit_mode = req
        .ext(if v2 { "k" } else { "unitMode" })
        .unwrap_or("false");
    let mut push = RemotingCommand::new_request(rc::PUSH_REPLY_MESSAGE_TO_CLIENT)
        .with_ext("producerGroup", head.producer_group)
        .with_ext("topic", head.topic)
        .with_ext("defaultTopic", head.default_topic)
        .with_ext("defaultTopicQueueNums", head.default_topic_queue_nums)
        .with_ext("queueId", head.queue_id)
        .with_ext("sysFlag", head.sys_flag)
        .with_ext("bornTimestamp", head.born_timestamp)
        .with_ext("flag", head.flag)
        .with_ext("properties", props)
        .with_ext("reconsumeTimes", head.reconsume_times)
        .with_ext("unitMode", unit_mode)
        .with_ext("bornHost", conn.peer)
        .with_ext("storeHost", broker.broker_addr)
        .with_ext("storeTimestamp", now)
        .with_body(req.body.clone());
    push.mark_oneway();
    push
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_put_successes_are_pushed() {
        assert!(store_accepted(ResponseCode::Success.code()));
        assert!(store_accepted(ResponseCode::FlushDiskTimeout.code()));
        assert!(!store_accepted(ResponseCode::TopicNotExist.code()));
        assert!(!store_accepted(ResponseCode::SystemError.code()));
    }

    #[test]
    fn reply_headers_parse_in_both_spellings() {
        let long = RemotingCommand::new_request(rc::SEND_REPLY_MESSAGE)
            .with_ext("producerGroup", "g")
            .with_ext("topic", "C_REPLY_TOPIC")
            .with_ext("queueId", 0)
            .with_ext("properties", "REPLY_TO_CLIENT\u{1}id\u{2}");
        let short = RemotingCommand::new_request(rc::SEND_REPLY_MESSAGE_V2)
            .with_ext("a", "g")
            .with_ext("b", "C_REPLY_TOPIC")
            .with_ext("e", 0)
            .with_ext("i", "REPLY_TO_CLIENT\u{1}id\u{2}");
        for req in [long, short] {
            let head = send::parse_header(&req).unwrap_or_else(|_| panic!("code {}", req.code));
            assert_eq!(head.topic, "C_REPLY_TOPIC");
            assert_eq!(head.producer_group, "g");
            assert!(!head.batch);
            let to = properties::get_property(head.properties, keys::REPLY_TO_CLIENT);
            assert_eq!(to, Some("id"));
        }
    }
}
