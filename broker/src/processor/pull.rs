//! PULL_MESSAGE (11) with long polling.
//!
//! The read runs on the core owning the queue's shard. When nothing is there and the
//! client allows suspension, the request waits on that shard for the next append to
//! the queue (or `suspendTimeoutMillis`), then reads again: a waiting pull answers as
//! soon as a message arrives.

use std::rc::Rc;
use std::time::Duration;

use rmq_core::body::{PERM_READ, SubscriptionData};
use rmq_core::message::sysflag::pull as pull_flag;
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_storage::{GetMessages, GetStatus, StoreError};

use super::{Processed, busy, header, reply};
use crate::core_context::CoreContext;

/// Longest a pull may be held, whatever the client asks.
const MAX_SUSPEND: Duration = Duration::from_secs(30);

struct PullHeader {
    group: String,
    topic: String,
    queue_id: i32,
    offset: i64,
    max_msgs: i32,
    sys_flag: i32,
    commit_offset: i64,
    suspend: Duration,
    subscription: Option<String>,
    expression_type: String,
}

fn parse_header(req: &RemotingCommand) -> Result<PullHeader, RemotingCommand> {
    let suspend_ms = header(req, req.ext_opt_i64("suspendTimeoutMillis"))?.unwrap_or(0);
    Ok(PullHeader {
        group: header(req, req.ext_str("consumerGroup"))?.to_string(),
        topic: header(req, req.ext_str("topic"))?.to_string(),
        queue_id: header(req, req.ext_i32("queueId"))?,
        offset: header(req, req.ext_i64("queueOffset"))?,
        max_msgs: header(req, req.ext_i32("maxMsgNums"))?,
        sys_flag: header(req, req.ext_i32("sysFlag"))?,
        commit_offset: header(req, req.ext_opt_i64("commitOffset"))?.unwrap_or(-1),
        suspend: Duration::from_millis(suspend_ms.clamp(0, i64::MAX) as u64).min(MAX_SUSPEND),
        subscription: req.ext("subscription").map(str::to_string),
        expression_type: req.ext("expressionType").unwrap_or("TAG").to_string(),
    })
}

/// Handles one pull.
pub async fn process(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    let head = parse_header(req)?;
    let Some(topic) = broker.topics.get(&head.topic) else {
        let remark = format!("topic[{}] not exist, apply first please!", head.topic);
        return Err(reply(req, ResponseCode::TopicNotExist, remark));
    };
    if topic.perm & PERM_READ == 0 {
        let remark = format!("the topic[{}] pulling message is forbidden", head.topic);
        return Err(reply(req, ResponseCode::NoPermission, remark));
    }
    if head.queue_id < 0 || head.queue_id >= topic.read_queue_nums.max(topic.write_queue_nums) {
        let remark = format!(
            "queueId[{}] is illegal, topic:[{}]",
            head.queue_id, head.topic
        );
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    if broker
        .groups
        .get_or_create(&head.group, broker.config.auto_create_subscription_group)
        .is_none()
    {
        let remark = format!("subscription group [{}] does not exist", head.group);
        return Err(reply(req, ResponseCode::SubscriptionGroupNotExist, remark));
    }
    let filter = subscription(core, req, &head)?;
    if head.sys_flag & pull_flag::COMMIT_OFFSET != 0
        && head.commit_offset >= 0
        && !broker.is_slave()
    {
        broker
            .offsets
            .commit(&head.group, &head.topic, head.queue_id, head.commit_offset);
    }
    let long_poll = head.sys_flag & pull_flag::SUSPEND != 0 && broker.config.long_polling_enable;
    let suspend = if long_poll {
        head.suspend
    } else {
        Duration::ZERO
    };
    let max = usize::try_from(head.max_msgs.clamp(1, 1024)).unwrap_or(32);
    let shard = broker.shard_of_queue(&head.topic, head.queue_id);
    let (topic_name, queue_id, offset) = (head.topic.clone(), head.queue_id, head.offset);
    let got = core
        .on_shard(shard, move |store| async move {
            let matches = |tags: i64| {
                filter
                    .as_ref()
                    .is_none_or(|sub| sub.matches_tags_code(tags))
            };
            let first = store
                .get_messages(&topic_name, queue_id, offset, max, &matches)
                .await?;
            if first.status != GetStatus::OffsetOverflowOne || suspend.is_zero() {
                return Ok(first);
            }
            if !store
                .wait_for_message(&topic_name, queue_id, offset, suspend)
                .await
            {
                return Ok(first);
            }
            store
                .get_messages(&topic_name, queue_id, offset, max, &matches)
                .await
        })
        .await
        .map_err(|error| busy(req, &error))?;
    Ok(respond(core, req, &head, got))
}

/// The filter of this pull: from the header when the client sent one, else from the
/// group's heartbeat. None = everything matches.
fn subscription(
    core: &CoreContext,
    req: &RemotingCommand,
    head: &PullHeader,
) -> Result<Option<SubscriptionData>, RemotingCommand> {
    if !head.expression_type.eq_ignore_ascii_case("TAG") {
        let remark = "The broker does not support consumer to filter message by SQL92 (enablePropertyFilter=false)";
        return Err(reply(req, ResponseCode::SystemError, remark.to_string()));
    }
    let sub = match (
        &head.subscription,
        head.sys_flag & pull_flag::SUBSCRIPTION != 0,
    ) {
        (Some(expr), true) => SubscriptionData::from_expression(&head.topic, expr),
        _ => match core.broker.clients.subscription(&head.group, &head.topic) {
            Some(sub) => sub,
            None => return Ok(None),
        },
    };
    let match_all = sub.sub_string.trim().is_empty() || sub.sub_string.trim() == "*";
    Ok(if match_all { None } else { Some(sub) })
}

fn respond(
    core: &CoreContext,
    req: &RemotingCommand,
    head: &PullHeader,
    got: Result<GetMessages, StoreError>,
) -> RemotingCommand {
    let got = match got {
        Ok(got) => got,
        Err(error) => {
            tracing::error!(topic = %head.topic, queue = head.queue_id, "pull failed in the store: {error}");
            return reply(
                req,
                ResponseCode::SystemError,
                format!("store error: {error}"),
            );
        }
    };
    let code = match got.status {
        GetStatus::Found => ResponseCode::Success,
        GetStatus::NoMatchedMessage => ResponseCode::PullRetryImmediately,
        GetStatus::OffsetOverflowOne | GetStatus::OffsetFoundNull => ResponseCode::PullNotFound,
        GetStatus::NoMessageInQueue if head.offset == 0 => ResponseCode::PullNotFound,
        GetStatus::NoMessageInQueue
        | GetStatus::OffsetTooSmall
        | GetStatus::OffsetOverflowBadly => ResponseCode::PullOffsetMoved,
    };
    if got.status == GetStatus::Found {
        core.broker
            .stats
            .messages_got
            .fetch_add(got.count as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let mut response = reply(req, code, None)
        .with_ext("suggestWhichBrokerId", 0)
        .with_ext("nextBeginOffset", got.next_begin_offset)
        .with_ext("minOffset", got.min_offset)
        .with_ext("maxOffset", got.max_offset);
    if code == ResponseCode::Success {
        response = response.with_body(got.body);
    }
    response
}
