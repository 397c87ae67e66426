//! PULL_MESSAGE (11) with long polling.
//!
//! The read runs on the core owning the queue's shard. When nothing is there and the
//! client allows suspension, the request waits on that shard for the next append to
//! the queue (or `suspendTimeoutMillis`), then reads again: a waiting pull answers as
//! soon as a message arrives.
//!
//! Filtering: tag subscriptions are checked on the consume queue's tag codes (hash
//! collisions are left to the client, as in RocketMQ); SQL92 subscriptions
//! (`enablePropertyFilter=true`) are checked on each record's properties after the read,
//! on the shard's core. Records a filter rejects count as consumed: `nextBeginOffset`
//! moves past them, and a pull whose records were all rejected answers
//! PULL_RETRY_IMMEDIATELY with the new offset.

use std::rc::Rc;
use std::time::Duration;

use std::sync::Arc;

use rmq_core::body::heartbeat::{EXPRESSION_TYPE_SQL92, EXPRESSION_TYPE_TAG};
use rmq_core::body::{CheckClientRequestBody, PERM_READ, SubscriptionData, decode_body};
use rmq_core::filter::Expression;
use rmq_core::message::sysflag::pull as pull_flag;
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_net::ConnectionInfo;
use rmq_storage::{GetMessages, GetStatus, ShardStore, StoreError};

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

/// Handles one pull. A long-polling pull parks itself on `conn` while it waits for a
/// message, so waiting pulls do not count against the connection's in-flight limit.
pub async fn process(
    core: &Rc<CoreContext>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> Processed {
    let broker = &core.broker;
    let head = parse_header(req)?;
    if let Err(remark) = crate::topics::validate_group_name(&head.group) {
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
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
    let long_poll =
        head.sys_flag & pull_flag::SUSPEND != 0 && broker.live_config.load().long_polling_enable;
    let suspend = if long_poll {
        head.suspend
    } else {
        Duration::ZERO
    };
    let max = max_messages(&head);
    let shard = broker.shard_of_queue(&head.topic, head.queue_id);
    let (topic_name, queue_id, offset) = (head.topic.clone(), head.queue_id, head.offset);
    let flow = conn.flow();
    let got = core
        .on_shard(shard, move |store| async move {
            let first = read_filtered(&store, &topic_name, queue_id, offset, max, &filter).await?;
            // PULL_NOT_FOUND cases are held (RocketMQ suspends them too): the next message
            // of the queue, or of an empty queue read from 0, answers the pull at once.
            let not_found = first.status == GetStatus::OffsetOverflowOne
                || (first.status == GetStatus::NoMessageInQueue && offset == 0);
            if !not_found || suspend.is_zero() {
                return Ok(first);
            }
            // a SQL92 pull may have moved past rejected records: wait where it stopped
            let at = first.next_begin_offset;
            let parked = flow.park();
            let arrived = store
                .wait_for_message(&topic_name, queue_id, at, suspend)
                .await;
            drop(parked);
            if !arrived {
                return Ok(first);
            }
            read_filtered(&store, &topic_name, queue_id, at, max, &filter).await
        })
        .await
        .map_err(|error| busy(req, &error))?;
    Ok(respond(req, &head, got))
}

/// The number of messages a pull asks for, bounded.
fn max_messages(head: &PullHeader) -> usize {
    usize::try_from(head.max_msgs.clamp(1, 1024)).unwrap_or(32)
}

/// What a pull selects.
enum PullFilter {
    All,
    /// Tag codes, checked on the consume queue entries.
    Tags(SubscriptionData),
    /// A SQL92 selector, checked on each record's properties.
    Sql(Arc<Expression>),
}

/// Rounds of reading a SQL92 pull makes while every record read is filtered out, before
/// answering PULL_RETRY_IMMEDIATELY with the advanced offset.
const SQL_READ_ROUNDS: usize = 4;

/// Reads up to `max` messages passing `filter` from `offset`.
async fn read_filtered(
    store: &ShardStore,
    topic: &str,
    queue_id: i32,
    offset: i64,
    max: usize,
    filter: &PullFilter,
) -> Result<GetMessages, StoreError> {
    let tags = |code: i64| match filter {
        PullFilter::Tags(sub) => sub.matches_tags_code(code),
        PullFilter::All | PullFilter::Sql(_) => true,
    };
    let PullFilter::Sql(selector) = filter else {
        return store
            .get_messages(topic, queue_id, offset, max, &tags)
            .await;
    };
    let mut from = offset;
    let mut round = 1;
    loop {
        let mut got = store
            .get_messages(topic, queue_id, from, max, &tags)
            .await?;
        if got.status != GetStatus::Found {
            // e.g. OffsetOverflowOne at the offset past the rejected records: long-poll there
            return Ok(got);
        }
        let (body, count) = crate::filter::retain_matching(&got.body, selector);
        (got.body, got.count) = (body, count);
        if count > 0 {
            return Ok(got);
        }
        got.status = GetStatus::NoMatchedMessage;
        if round == SQL_READ_ROUNDS {
            return Ok(got);
        }
        assert!(
            got.next_begin_offset > from,
            "a pull that read records moves forward"
        );
        from = got.next_begin_offset;
        round += 1;
    }
}

/// The filter of this pull: from the header when the client sent one, else from the
/// group's heartbeat. Tag expressions filter on the consume queue; SQL92 needs
/// `enablePropertyFilter=true` (read from the live config) and a valid expression.
fn subscription(
    core: &CoreContext,
    req: &RemotingCommand,
    head: &PullHeader,
) -> Result<PullFilter, RemotingCommand> {
    let from_header = head.sys_flag & pull_flag::SUBSCRIPTION != 0;
    let sub = match (&head.subscription, from_header) {
        (Some(expr), true) => {
            let mut sub = SubscriptionData::from_expression(&head.topic, expr);
            sub.expression_type = head.expression_type.clone();
            sub
        }
        _ => match core.broker.clients.subscription(&head.group, &head.topic) {
            Some(sub) => sub,
            None if is_tag_type(&head.expression_type) => return Ok(PullFilter::All),
            None => {
                let remark = format!(
                    "The broker's subscription is not exist, group: {} topic: {}",
                    head.group, head.topic
                );
                return Err(reply(req, ResponseCode::FilterDataNotExist, remark));
            }
        },
    };
    if is_tag_type(&sub.expression_type) || sub.class_filter_mode {
        return Ok(tag_filter(sub));
    }
    sql_filter(core, req, &sub).map(PullFilter::Sql)
}

/// The filter of a tag subscription: none for `*` (or empty), else its tag codes.
fn tag_filter(sub: SubscriptionData) -> PullFilter {
    let match_all = sub.sub_string.trim().is_empty() || sub.sub_string.trim() == "*";
    if match_all {
        PullFilter::All
    } else {
        PullFilter::Tags(sub)
    }
}

fn is_tag_type(expression_type: &str) -> bool {
    expression_type.is_empty() || expression_type.eq_ignore_ascii_case(EXPRESSION_TYPE_TAG)
}

/// Compiles a non-tag subscription, with the answers RocketMQ gives when it cannot.
pub(crate) fn sql_filter(
    core: &CoreContext,
    req: &RemotingCommand,
    sub: &SubscriptionData,
) -> Result<Arc<Expression>, RemotingCommand> {
    if !core.broker.live_config.load().enable_property_filter {
        let remark = format!(
            "The broker does not support consumer to filter message by {}",
            sub.expression_type
        );
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    if !sub
        .expression_type
        .eq_ignore_ascii_case(EXPRESSION_TYPE_SQL92)
    {
        let remark = format!("unknown expression type {}", sub.expression_type);
        return Err(reply(req, ResponseCode::SubscriptionParseFailed, remark));
    }
    crate::filter::compile_cached(&sub.sub_string).map_err(|error| {
        // A selector may be up to 64 KiB: echo only its start.
        let shown: String = sub.sub_string.chars().take(200).collect();
        let remark = format!("parse the consumer's subscription[{shown}] failed: {error}");
        reply(req, ResponseCode::SubscriptionParseFailed, remark)
    })
}

/// CHECK_CLIENT_CONFIG (46): a consumer starting with a SQL92 subscription asks whether
/// this broker accepts it; a refusal makes `consumer.start()` fail with the remark.
pub fn check_client_config(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    if req.body.is_empty() {
        return Ok(super::success(req));
    }
    let body: CheckClientRequestBody = decode_body(&req.body).map_err(|e| {
        let remark = format!("bad check client body: {e}");
        reply(req, ResponseCode::SystemError, remark)
    })?;
    let Some(sub) = body.subscription_data else {
        return Ok(super::success(req));
    };
    if !is_tag_type(&sub.expression_type) && !sub.class_filter_mode {
        sql_filter(core, req, &sub)?;
    }
    Ok(super::success(req))
}

fn respond(
    req: &RemotingCommand,
    head: &PullHeader,
    got: Result<GetMessages, StoreError>,
) -> RemotingCommand {
    if let Ok(got) = &got {
        let found = got.status == GetStatus::Found;
        let (count, bytes) = if found {
            (got.count, got.body.len())
        } else {
            (0, 0)
        };
        crate::stats::on_get(&head.group, &head.topic, count, bytes);
    }
    crate::metrics::on_pull(&head.group, &head.topic, head.queue_id, got.as_ref().ok());
    pull_response(req, head, got)
}

/// The PULL_MESSAGE response for what the store returned: the code RocketMQ gives each
/// status, the offsets header and, on success, the records as the body.
fn pull_response(
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

/// The pull path without the broker around it, for the benchmarks of rmq-benches (hidden,
/// not an API): parses the PULL_MESSAGE header, builds the tag filter from the header's
/// subscription (`*` when absent), reads from `store` and builds the response exactly as
/// [`process`] does. Left out: topic, permission and group checks, the offset commit, long
/// polling, SQL92 filters, the hop to the shard's core and the stats counter.
#[doc(hidden)]
pub async fn pull_from_store(store: &ShardStore, req: &RemotingCommand) -> RemotingCommand {
    let head = match parse_header(req) {
        Ok(head) => head,
        Err(response) => return response,
    };
    let expression = head.subscription.as_deref().unwrap_or("*");
    let filter = tag_filter(SubscriptionData::from_expression(&head.topic, expression));
    let max = max_messages(&head);
    let got = read_filtered(store, &head.topic, head.queue_id, head.offset, max, &filter).await;
    pull_response(req, &head, got)
}
