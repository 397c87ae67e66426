//! CONSUMER_SEND_MSG_BACK (36): a consumer failed a message (RECONSUME_LATER) and hands it
//! back for retry, or for the dead-letter queue.
//!
//! Contract (RocketMQ 4.9.8 `SendMessageProcessor.asyncConsumerSendMsgBack`): the original is
//! read by its commit-log offset. When its reconsume times reached the limit (header
//! `maxReconsumeTimes`, else the group's `retryMaxTimes`) or `delayLevel < 0`, a copy goes to
//! `%DLQ%{group}` (1 queue, READ|WRITE, created on demand); otherwise to `%RETRY%{group}` through
//! the delay level `delayLevel` (0 means 3 + reconsume times). Either copy has reconsume times
//! + 1, `RETRY_TOPIC` = the first topic it was sent to, and `ORIGIN_MESSAGE_ID`.

use std::rc::Rc;

use rmq_core::body::{PERM_READ, PERM_WRITE};
use rmq_core::message::msg_id::offset_msg_id;
use rmq_core::message::parse_record;
use rmq_core::message::properties::{self, keys};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::{Processed, header, reply, success};
use crate::context::{BrokerContext, now_ms};
use crate::core_context::CoreContext;
use crate::schedule::reput::{Target, read_by_offset, reput};
use crate::schedule::{self, Delay};
use crate::topics::{DLQ_GROUP_TOPIC_PREFIX, RETRY_GROUP_TOPIC_PREFIX, TopicLookup};

struct BackHeader {
    offset: i64,
    group: String,
    delay_level: i32,
    max_reconsume_times: Option<i32>,
}

fn parse(req: &RemotingCommand) -> Result<BackHeader, RemotingCommand> {
    Ok(BackHeader {
        offset: header(req, req.ext_i64("offset"))?,
        group: header(req, req.ext_str("group"))?.to_string(),
        delay_level: header(req, req.ext_opt_i32("delayLevel"))?.unwrap_or(0),
        max_reconsume_times: header(req, req.ext_opt_i32("maxReconsumeTimes"))?,
    })
}

pub async fn process(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    let head = parse(req)?;
    if broker.live_config.load().broker_permission & PERM_WRITE == 0 {
        let remark = format!(
            "the broker[{}] sending message is forbidden",
            broker.broker_addr.ip()
        );
        return Err(reply(req, ResponseCode::NoPermission, remark));
    }
    let auto_create = broker.config.auto_create_subscription_group;
    let Some(group) = broker.groups.get_or_create(&head.group, auto_create) else {
        let remark = format!("subscription group not exist, {}", head.group);
        return Err(reply(req, ResponseCode::SubscriptionGroupNotExist, remark));
    };
    if group.retry_queue_nums <= 0 {
        return Ok(success(req));
    }
    let failed = |remark: String| reply(req, ResponseCode::SystemError, remark);
    let raw = read_by_offset(core, head.offset)
        .await
        .map_err(|e| {
            failed(format!(
                "look message by offset failed, {}: {e}",
                head.offset
            ))
        })?
        .ok_or_else(|| failed(format!("look message by offset failed, {}", head.offset)))?;
    let view = parse_record(&raw).map_err(|e| failed(format!("bad stored message: {e}")))?;
    let max_times = head.max_reconsume_times.unwrap_or(group.retry_max_times);
    let to_dlq = view.reconsume_times() >= max_times || head.delay_level < 0;
    let props = back_properties(broker, view.properties(), view.topic(), head.offset);
    let (topic, queues) = if to_dlq {
        (format!("{DLQ_GROUP_TOPIC_PREFIX}{}", head.group), 1)
    } else {
        let queues = group.retry_queue_nums.max(1);
        (format!("{RETRY_GROUP_TOPIC_PREFIX}{}", head.group), queues)
    };
    if let Some(registration) = ensure_topic(broker, &topic, queues) {
        broker.await_topic_registration(registration, &topic).await;
    }
    let queue_id = (now_ms().unsigned_abs() % queues as u64) as i32;
    // A client chooses the stored reconsumeTimes (and maxReconsumeTimes): saturate, never
    // overflow.
    let reconsume_times = view.reconsume_times().saturating_add(1);
    let mut target = Target::like(&view, &topic, queue_id, props);
    target.reconsume_times = reconsume_times;
    if !to_dlq {
        let level = if head.delay_level == 0 {
            view.reconsume_times().saturating_add(3)
        } else {
            head.delay_level
        };
        target = delayed(broker, target, level);
    }
    reput(core, &view, &target)
        .await
        .map_err(|e| failed(format!("send back failed: {e}")))?;
    let origin_topic = req.ext("originTopic").unwrap_or(view.topic());
    crate::stats::on_send_back(&head.group, origin_topic);
    if to_dlq {
        crate::metrics::on_dlq(&head.group, origin_topic);
    }
    tracing::debug!(group = %head.group, topic = %topic, reconsume_times, "message sent back");
    Ok(success(req))
}

/// RETRY_TOPIC (first topic only) and ORIGIN_MESSAGE_ID (first id only) set.
fn back_properties(broker: &BrokerContext, props: &str, topic: &str, offset: i64) -> String {
    let mut props = props.to_string();
    if properties::get_property(&props, keys::RETRY_TOPIC).is_none() {
        props = properties::set_property(&props, keys::RETRY_TOPIC, topic);
    }
    let has_origin = properties::get_property(&props, keys::ORIGIN_MESSAGE_ID)
        .is_some_and(|id| !id.trim().is_empty());
    if !has_origin {
        let id = offset_msg_id(broker.broker_addr, offset);
        props = properties::set_property(&props, keys::ORIGIN_MESSAGE_ID, &id);
    }
    properties::remove_property(&props, keys::DELAY)
}

/// Creates the %RETRY% or %DLQ% topic if absent; when it did, the generation of its
/// registration with the name servers.
fn ensure_topic(broker: &BrokerContext, topic: &str, queues: i32) -> Option<u64> {
    match broker
        .topics
        .create_if_absent(topic, queues, PERM_READ | PERM_WRITE)
    {
        TopicLookup::Created(_) => Some(broker.request_topic_registration(topic)),
        _ => None,
    }
}

/// The retry copy routed through delay level `level` (clamped like a producer's DELAY).
fn delayed(broker: &BrokerContext, target: Target, level: i32) -> Target {
    let levels = &broker.schedule.delay_levels_ms;
    let delay = if level <= 0 || levels.is_empty() {
        Delay::None
    } else {
        Delay::Level(level.min(i32::try_from(levels.len()).unwrap_or(i32::MAX)))
    };
    let now = now_ms();
    match schedule::place(
        &target.topic,
        target.queue_id,
        &target.properties,
        delay,
        levels,
        now,
    ) {
        Some(placed) => Target {
            topic: placed.topic,
            queue_id: placed.queue_id,
            properties: placed.properties,
            tags_code: Some(placed.tags_code),
            ..target
        },
        None => target,
    }
}
