//! INVOKE_BROKER_TO_RESET_OFFSET (222): reset a group's offsets to a timestamp.
//!
//! The broker computes each queue's offset (first message stored at or after the timestamp;
//! `-1` = the queue's end), commits it to its own offset table (so a stopped group restarts
//! from there) and sends RESET_CONSUMER_CLIENT_OFFSET to the group's online consumers, which
//! move their in-memory offsets. Apache RocketMQ 4.9.8 answers CONSUMER_NOT_ONLINE for a
//! stopped group and leaves mqadmin to fall back to per-queue offset updates; we answer
//! SUCCESS with the new offsets in both cases.

use std::rc::Rc;

use rmq_core::body::ResetOffsetBody;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use super::super::{Processed, busy, header, reply, success};
use super::queues::queue_of;
use crate::core_context::CoreContext;

pub async fn reset_offset(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    let topic = header(req, req.ext_str("topic"))?.to_owned();
    let group = header(req, req.ext_str("group"))?.to_owned();
    let timestamp = header(req, req.ext_i64("timestamp"))?;
    let force = header(req, req.ext_opt_bool("isForce"))?.unwrap_or(true);
    let Some(config) = broker.topics.get(&topic) else {
        let remark =
            format!("[reset-offset] reset offset failed, no topic in this broker. topic={topic}");
        return Err(reply(req, ResponseCode::SystemError, remark));
    };
    let mut body = ResetOffsetBody::default();
    for queue_id in 0..config.write_queue_nums {
        let Some(current) = broker.offsets.query(&group, &topic, queue_id) else {
            let remark = format!("THe consumer group <{group}> not exist");
            return Err(reply(req, ResponseCode::SystemError, remark));
        };
        let target = offset_for_time(core, req, &topic, queue_id, timestamp).await?;
        let offset = if force || target < current {
            target
        } else {
            current
        };
        body.offset_table
            .insert(queue_of(core, &topic, queue_id), offset);
    }
    for (queue, offset) in &body.offset_table {
        broker
            .offsets
            .commit(&group, &topic, queue.queue_id, *offset);
    }
    let channels = broker.clients.consumer_channels(&group);
    for channel in &channels {
        let mut notify = RemotingCommand::new_request(rc::RESET_CONSUMER_CLIENT_OFFSET)
            .with_ext("topic", topic.as_str())
            .with_ext("group", group.as_str())
            .with_ext("timestamp", timestamp)
            .with_ext("isForce", force)
            .with_body(body.encode());
        notify.mark_oneway();
        channel.sender.send(notify);
    }
    tracing::info!(group = %group, topic = %topic, timestamp, consumers = channels.len(),
        offsets = ?body.offset_table.values().collect::<Vec<_>>(), "consumer offsets reset");
    Ok(success(req).with_body(body.encode()))
}

/// The queue offset of the first message stored at or after `timestamp`; -1 = the end.
async fn offset_for_time(
    core: &Rc<CoreContext>,
    req: &RemotingCommand,
    topic: &str,
    queue_id: i32,
    timestamp: i64,
) -> Result<i64, RemotingCommand> {
    let shard = core.broker.shard_of_queue(topic, queue_id);
    let topic = topic.to_owned();
    let found = core
        .on_shard(shard, move |store| async move {
            if timestamp == -1 {
                return Ok(store.max_queue_offset(&topic, queue_id));
            }
            store
                .search_offset_by_timestamp(&topic, queue_id, timestamp)
                .await
        })
        .await
        .map_err(|error| busy(req, &error))?;
    let offset =
        found.map_err(|e| reply(req, ResponseCode::SystemError, format!("store error: {e}")))?;
    Ok(offset.max(0))
}
