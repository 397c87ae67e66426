//! QUERY_CONSUME_QUEUE (321): raw consume queue entries of one queue from an index (mqadmin
//! `queryCq`), with the queue's bounds and, when a group is named, its subscription (or
//! "<group>@<topic> is not online!"). Our queues have no extension units, so `eval`,
//! `bitMap` and `extendDataJson` stay unset, as RocketMQ leaves them for plain tag codes.

use std::rc::Rc;

use rmq_core::body::{ConsumeQueueData, QueryConsumeQueueResponseBody, encode_body};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::super::{Processed, busy, header, reply, success};
use crate::core_context::CoreContext;

/// Most entries one request may read (RocketMQ reads at most one mapped buffer).
const MAX_COUNT: i32 = 10_000;

pub async fn query_consume_queue(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let topic = header(req, req.ext_str("topic"))?.to_owned();
    let queue_id = header(req, req.ext_i32("queueId"))?;
    let index = header(req, req.ext_i64("index"))?;
    let count = header(req, req.ext_i32("count"))?.clamp(0, MAX_COUNT) as usize;
    let group = req.ext("consumerGroup").map(str::to_owned);
    let not_exist = || {
        let remark = format!("{queue_id}@{topic} is not exist!");
        reply(req, ResponseCode::SystemError, remark)
    };
    if queue_id < 0 {
        return Err(not_exist());
    }
    let shard = core.broker.shard_of_queue(&topic, queue_id);
    let read_topic = topic.clone();
    let read = core
        .on_shard(shard, move |store| async move {
            store
                .queue_entries(&read_topic, queue_id, index, count)
                .await
        })
        .await
        .map_err(|error| busy(req, &error))?
        .map_err(|error| reply(req, ResponseCode::SystemError, error.to_string()))?;
    let Some(read) = read else {
        return Err(not_exist());
    };
    let mut body = QueryConsumeQueueResponseBody {
        max_queue_index: read.max_offset,
        min_queue_index: read.min_offset,
        ..QueryConsumeQueueResponseBody::default()
    };
    if let Some(group) = group {
        body.subscription_data = core.broker.clients.subscription(&group, &topic);
        body.filter_data = Some(match &body.subscription_data {
            None => format!("{group}@{topic} is not online!"),
            Some(_) => "null".to_owned(),
        });
    }
    let mut response = success(req);
    if read.entries.is_empty() {
        response.remark = Some(format!("Index {index} of {queue_id}@{topic} is not exist!"));
        return Ok(response);
    }
    body.queue_data = read
        .entries
        .iter()
        .map(|entry| ConsumeQueueData {
            physic_offset: entry.physical_offset,
            physic_size: entry.size,
            tags_code: entry.tags_code,
            ..ConsumeQueueData::default()
        })
        .collect();
    Ok(response.with_body(encode_body(&body)))
}
