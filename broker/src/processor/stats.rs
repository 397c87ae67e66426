//! Admin reads used by mqadmin and dashboards, broker config at runtime, and offset resets:
//! GET_TOPIC_STATS_INFO (202), GET_CONSUME_STATS (208), GET_CONSUMER_CONNECTION_LIST (203),
//! GET_PRODUCER_CONNECTION_LIST (204), GET_BROKER_CONFIG (26), UPDATE_BROKER_CONFIG (25),
//! INVOKE_BROKER_TO_RESET_OFFSET (222).
//!
//! UPDATE_BROKER_CONFIG applies the properties text to `BrokerContext::live_config` (bad
//! values are refused with SYSTEM_ERROR naming the key) and GET_BROKER_CONFIG shows the
//! live values. Nothing is written back to the properties file: a restart returns to the
//! file's values. Keys read per request take effect at once (`enablePropertyFilter`,
//! `longPollingEnable`); the rest are recorded but need a restart.
//!
//! Reset by timestamp: the broker computes each queue's offset (first message stored at or
//! after the timestamp; `-1` = the queue's end), commits it to its own offset table (so a
//! stopped group restarts from there) and sends RESET_CONSUMER_CLIENT_OFFSET to the group's
//! online consumers, which move their in-memory offsets. Apache RocketMQ 4.9.8 answers
//! CONSUMER_NOT_ONLINE for a stopped group and leaves mqadmin to fall back to per-queue
//! offset updates; we answer SUCCESS with the new offsets in both cases.

use std::rc::Rc;

use rmq_core::body::{
    Connection, ConsumeStats, ConsumerConnection, ConsumerOffsetSerializeWrapper, MessageQueue,
    OffsetWrapper, ProducerConnection, ResetOffsetBody, TopicOffset, TopicStatsTable, encode_body,
};
use rmq_core::config::parse_properties;
use rmq_core::message::parse_record;
use rmq_core::remoting::{LanguageCode, RemotingCommand, ResponseCode, request_code as rc};
use rmq_storage::{GetStatus, ShardStore};

use super::{Processed, busy, header, reply, success};
use crate::clients::ClientChannel;
use crate::core_context::CoreContext;

/// Handles the codes of this module; `None` for any other code.
pub async fn process(
    core: &Rc<CoreContext>,
    code: i32,
    req: &RemotingCommand,
) -> Option<Processed> {
    Some(match code {
        rc::GET_TOPIC_STATS_INFO => topic_stats(core, req).await,
        rc::GET_CONSUME_STATS => consume_stats(core, req).await,
        rc::GET_CONSUMER_CONNECTION_LIST => consumer_connections(core, req),
        rc::GET_PRODUCER_CONNECTION_LIST => producer_connections(core, req),
        rc::GET_BROKER_CONFIG => {
            let text = core.broker.live_config.load().to_properties_text();
            Ok(success(req).with_body(text.into_bytes()))
        }
        rc::UPDATE_BROKER_CONFIG => update_config(core, req),
        rc::INVOKE_BROKER_TO_RESET_OFFSET => reset_offset(core, req).await,
        _ => return None,
    })
}

/// Min and max offset of a queue and the store time of the message at `time_at` (if any).
async fn queue_offsets(
    core: &Rc<CoreContext>,
    req: &RemotingCommand,
    topic: &str,
    queue_id: i32,
    time_at: impl FnOnce(i64, i64) -> Option<i64> + Send + 'static,
) -> Result<(i64, i64, i64), RemotingCommand> {
    let shard = core.broker.shard_of_queue(topic, queue_id);
    let topic = topic.to_owned();
    core.on_shard(shard, move |store| async move {
        let min = store.min_queue_offset(&topic, queue_id).max(0);
        let max = store.max_queue_offset(&topic, queue_id).max(0);
        let timestamp = match time_at(min, max) {
            Some(offset) => store_time_at(&store, &topic, queue_id, offset).await,
            None => 0,
        };
        (min, max, timestamp)
    })
    .await
    .map_err(|error| busy(req, &error))
}

/// Store time of the message at a queue offset, 0 when there is none.
async fn store_time_at(store: &ShardStore, topic: &str, queue_id: i32, offset: i64) -> i64 {
    match store
        .get_messages(topic, queue_id, offset, 1, &|_| true)
        .await
    {
        Ok(got) if got.status == GetStatus::Found => parse_record(&got.body)
            .map(|record| record.store_timestamp())
            .unwrap_or(0),
        _ => 0,
    }
}

fn queue_of(core: &CoreContext, topic: &str, queue_id: i32) -> MessageQueue {
    MessageQueue {
        topic: topic.to_owned(),
        broker_name: core.broker.config.broker_name.clone(),
        queue_id,
    }
}

async fn topic_stats(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let topic = header(req, req.ext_str("topic"))?.to_owned();
    let Some(config) = core.broker.topics.get(&topic) else {
        let remark = format!("topic[{topic}] not exist");
        return Err(reply(req, ResponseCode::TopicNotExist, remark));
    };
    let mut table = TopicStatsTable::default();
    for queue_id in 0..config.write_queue_nums {
        let last = |_min: i64, max: i64| (max > 0).then(|| max - 1);
        let (min_offset, max_offset, last_update_timestamp) =
            queue_offsets(core, req, &topic, queue_id, last).await?;
        table.offset_table.insert(
            queue_of(core, &topic, queue_id),
            TopicOffset {
                min_offset,
                max_offset,
                last_update_timestamp,
            },
        );
    }
    Ok(success(req).with_body(table.encode()))
}

async fn consume_stats(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    let group = header(req, req.ext_str("consumerGroup"))?.to_owned();
    let topics: Vec<String> = match req.ext("topic").filter(|t| !t.trim().is_empty()) {
        Some(topic) => vec![topic.to_owned()],
        None => topics_of_group(&broker.offsets.wrapper(), &group),
    };
    let mut stats = ConsumeStats::default();
    for topic in topics {
        let Some(config) = broker.topics.get(&topic) else {
            continue;
        };
        for queue_id in 0..config.read_queue_nums {
            let consumer_offset = broker.offsets.query(&group, &topic, queue_id).unwrap_or(0);
            let last =
                move |_min: i64, _max: i64| (consumer_offset > 0).then(|| consumer_offset - 1);
            let (_, broker_offset, last_timestamp) =
                queue_offsets(core, req, &topic, queue_id, last).await?;
            stats.offset_table.insert(
                queue_of(core, &topic, queue_id),
                OffsetWrapper {
                    broker_offset,
                    consumer_offset,
                    last_timestamp,
                },
            );
        }
    }
    Ok(success(req).with_body(stats.encode()))
}

/// Topics the group has committed offsets for.
fn topics_of_group(offsets: &ConsumerOffsetSerializeWrapper, group: &str) -> Vec<String> {
    let mut topics: Vec<String> = offsets
        .offset_table
        .keys()
        .filter_map(|key| ConsumerOffsetSerializeWrapper::split_key(key))
        .filter(|(_, owner)| *owner == group)
        .map(|(topic, _)| topic.to_owned())
        .collect();
    topics.sort();
    topics
}

fn connection(channel: &ClientChannel) -> Connection {
    Connection {
        client_id: channel.client_id.clone(),
        client_addr: channel.addr.clone(),
        language: LanguageCode::from_u8(channel.language)
            .unwrap_or_default()
            .name()
            .to_owned(),
        version: channel.version,
    }
}

fn consumer_connections(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("consumerGroup"))?;
    let clients = &core.broker.clients;
    let channels = clients.consumer_channels(group);
    let Some(data) = clients
        .consumer_data(group)
        .filter(|_| !channels.is_empty())
    else {
        let remark = format!("the consumer group[{group}] not online");
        return Err(reply(req, ResponseCode::ConsumerNotOnline, remark));
    };
    let body = ConsumerConnection {
        connection_set: channels.iter().map(connection).collect(),
        subscription_table: data
            .subscription_data_set
            .iter()
            .map(|sub| (sub.topic.clone(), sub.clone()))
            .collect(),
        consume_type: data.consume_type,
        message_model: data.message_model,
        consume_from_where: data.consume_from_where,
    };
    Ok(success(req).with_body(encode_body(&body)))
}

fn producer_connections(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("producerGroup"))?;
    let channels = core.broker.clients.producer_channels(group);
    if channels.is_empty() {
        let remark = format!("the producer group[{group}] not exist");
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    let body = ProducerConnection {
        connection_set: channels.iter().map(connection).collect(),
    };
    Ok(success(req).with_body(encode_body(&body)))
}

fn update_config(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let text = String::from_utf8_lossy(&req.body);
    let props = parse_properties(&text);
    if props.entries.is_empty() {
        return Err(reply(
            req,
            ResponseCode::SystemError,
            "string2Properties error".to_string(),
        ));
    }
    let source = "UPDATE_BROKER_CONFIG";
    let mut updated = (**core.broker.live_config.load()).clone();
    let mut warnings = Vec::new();
    updated
        .apply_properties(&props, source, &mut warnings)
        .and_then(|()| updated.validate(source))
        .map_err(|error| reply(req, ResponseCode::SystemError, error.to_string()))?;
    for warning in &warnings {
        tracing::warn!(key = %warning.key, "{}", warning.message);
    }
    let keys: Vec<&str> = props.entries.iter().map(|e| e.key.as_str()).collect();
    tracing::info!(?keys, "broker config updated at runtime (not persisted)");
    core.broker.live_config.store(std::sync::Arc::new(updated));
    Ok(success(req))
}

async fn reset_offset(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
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
