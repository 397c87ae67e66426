//! Offsets: consumer offsets (QUERY/UPDATE_CONSUMER_OFFSET), queue offsets
//! (GET_MAX_OFFSET, GET_MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP,
//! GET_EARLIEST_MSG_STORETIME) and VIEW_MESSAGE_BY_ID.

use std::rc::Rc;

use rmq_core::message::msg_id::decode_offset_msg_id;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use rmq_storage::shard_of_offset;

use super::{Processed, busy, header, reply, success};
use crate::core_context::CoreContext;

/// QUERY_CONSUMER_OFFSET: the committed offset; for a group that never committed on a
/// queue whose first message is still stored and "in memory", 0 (so a new group starts from
/// the first message whatever its consumeFromWhere, as RocketMQ does), else QUERY_NOT_FOUND
/// (the client then applies consumeFromWhere: last offset, first offset or timestamp).
/// "In memory" is RocketMQ's `checkInDiskByConsumeOffset`: the shard's commit log grew by
/// at most `accessMessageInMemoryMaxRatio`% of physical RAM since that first message.
pub async fn query_consumer_offset(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("consumerGroup"))?.to_string();
    let topic = header(req, req.ext_str("topic"))?.to_string();
    let queue_id = header(req, req.ext_i32("queueId"))?;
    refuse_negative_queue(req, queue_id)?;
    if let Some(offset) = core.broker.offsets.query(&group, &topic, queue_id) {
        return Ok(success(req).with_ext("offset", offset));
    }
    let shard = core.broker.shard_of_queue(&topic, queue_id);
    let ratio = core
        .broker
        .live_config
        .load()
        .access_message_in_memory_max_ratio;
    let in_memory_bytes =
        i64::try_from(crate::host_memory::in_memory_span(ratio)).unwrap_or(i64::MAX);
    let (min, first_in_memory) = core
        .on_shard(shard, move |store| async move {
            let min = store.min_queue_offset(&topic, queue_id);
            let first = store.get_messages(&topic, queue_id, 0, 1, &|_| true).await;
            let first_in_memory = match first {
                Ok(got) if got.status == rmq_storage::GetStatus::Found => {
                    rmq_core::message::parse_record(&got.body).is_ok_and(|record| {
                        store.max_physical_offset() - record.physical_offset() <= in_memory_bytes
                    })
                }
                // an empty or missing queue: nothing is on disk
                _ => true,
            };
            (min, first_in_memory)
        })
        .await
        .map_err(|error| busy(req, &error))?;
    if min <= 0 && first_in_memory {
        return Ok(success(req).with_ext("offset", 0));
    }
    let remark = "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first".to_string();
    Ok(reply(req, ResponseCode::QueryNotFound, remark))
}

/// A consumer offset belongs to a queue: a negative queue id names none, and committing
/// it would persist a bogus entry in consumerOffset.json.
fn refuse_negative_queue(req: &RemotingCommand, queue_id: i32) -> Result<(), RemotingCommand> {
    if queue_id < 0 {
        let remark = format!("queueId[{queue_id}] is illegal, it must not be negative");
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    Ok(())
}

/// UPDATE_CONSUMER_OFFSET (usually oneway).
pub fn update_consumer_offset(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("consumerGroup"))?;
    let topic = header(req, req.ext_str("topic"))?;
    let queue_id = header(req, req.ext_i32("queueId"))?;
    let offset = header(req, req.ext_i64("commitOffset"))?;
    refuse_negative_queue(req, queue_id)?;
    crate::topics::validate_group_name(group)
        .and_then(|()| crate::topics::validate_topic_name(topic))
        .map_err(|remark| reply(req, ResponseCode::SystemError, remark))?;
    if offset >= 0 {
        core.broker.offsets.commit(group, topic, queue_id, offset);
    }
    Ok(success(req))
}

/// The four per-queue offset/time queries, answered by the queue's shard.
pub async fn queue_offsets(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let topic = header(req, req.ext_str("topic"))?.to_string();
    let queue_id = header(req, req.ext_i32("queueId"))?;
    let timestamp = if req.code == rc::SEARCH_OFFSET_BY_TIMESTAMP {
        header(req, req.ext_i64("timestamp"))?
    } else {
        0
    };
    let code = req.code;
    let shard = core.broker.shard_of_queue(&topic, queue_id);
    let answer = core
        .on_shard(shard, move |store| async move {
            match code {
                rc::GET_MAX_OFFSET => Ok(Some(store.max_queue_offset(&topic, queue_id))),
                rc::GET_MIN_OFFSET => Ok(Some(store.min_queue_offset(&topic, queue_id))),
                rc::SEARCH_OFFSET_BY_TIMESTAMP => store
                    .search_offset_by_timestamp(&topic, queue_id, timestamp)
                    .await
                    .map(Some),
                _ => store.earliest_message_time(&topic, queue_id).await,
            }
        })
        .await
        .map_err(|error| busy(req, &error))?;
    let value =
        answer.map_err(|e| reply(req, ResponseCode::SystemError, format!("store error: {e}")))?;
    let field = if code == rc::GET_EARLIEST_MSG_STORETIME {
        "timestamp"
    } else {
        "offset"
    };
    Ok(success(req).with_ext(field, value.unwrap_or(-1)))
}

/// VIEW_MESSAGE_BY_ID: the record at a commit log offset (decoded from offsetMsgId).
pub async fn view_message(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let offset = match req.ext("offset") {
        Some(text) => match text.trim().parse::<i64>() {
            Ok(offset) => offset,
            Err(_) => header(
                req,
                decode_offset_msg_id(text)
                    .map(|(_, offset)| offset)
                    .map_err(|e| rmq_core::remoting::HeaderError {
                        field: "offset".into(),
                        reason: e.to_string(),
                    }),
            )?,
        },
        None => header(req, req.ext_i64("offset"))?,
    };
    // `shard_of_offset` asserts a non-negative offset: check the sign first.
    if offset < 0 || shard_of_offset(offset) >= core.broker.shard_count {
        let remark = format!("can not find message by the offset, {offset}");
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    let record = core
        .on_shard(shard_of_offset(offset), move |store| async move {
            store.read_record(offset).await
        })
        .await
        .map_err(|error| busy(req, &error))?;
    match record {
        Ok(Some(bytes)) => Ok(success(req).with_body(bytes)),
        Ok(None) => Err(reply(
            req,
            ResponseCode::SystemError,
            format!("can not find message by the offset, {offset}"),
        )),
        Err(error) => Err(reply(
            req,
            ResponseCode::SystemError,
            format!("store error: {error}"),
        )),
    }
}
