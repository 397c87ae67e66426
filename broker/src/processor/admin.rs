//! Admin requests used by mqadmin, dashboards and slaves: topic and subscription group
//! management, config dumps, runtime info. Unknown codes get REQUEST_CODE_NOT_SUPPORTED.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use rmq_core::body::{KVTable, SubscriptionGroupConfig, TopicConfig, decode_body, encode_body};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use super::{Processed, header, reply, success};
use crate::context::now_ms;
use crate::core_context::CoreContext;
use crate::topics::{AUTO_CREATE_TOPIC, validate_topic_name};

pub async fn process(core: &Rc<CoreContext>, code: i32, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    match code {
        rc::UPDATE_AND_CREATE_TOPIC => create_topic(core, req),
        rc::DELETE_TOPIC_IN_BROKER => delete_topic(core, req).await,
        rc::GET_ALL_TOPIC_CONFIG => {
            Ok(success(req).with_body(encode_body(&broker.topics.wrapper())))
        }
        rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => {
            let config: SubscriptionGroupConfig = decode_body(&req.body).map_err(|e| {
                reply(
                    req,
                    ResponseCode::SystemError,
                    format!("bad subscription group body: {e}"),
                )
            })?;
            if config.group_name.trim().is_empty() {
                return Err(reply(
                    req,
                    ResponseCode::SystemError,
                    "groupName is blank".to_string(),
                ));
            }
            broker
                .groups
                .put(config)
                .map_err(|remark| reply(req, ResponseCode::SystemError, remark))?;
            Ok(success(req))
        }
        rc::DELETE_SUBSCRIPTIONGROUP => {
            let group = header(req, req.ext_str("groupName"))?;
            broker.groups.remove(group);
            Ok(success(req))
        }
        rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
            Ok(success(req).with_body(encode_body(&*broker.groups.all())))
        }
        rc::GET_ALL_CONSUMER_OFFSET => {
            Ok(success(req).with_body(encode_body(&broker.offsets.wrapper())))
        }
        rc::GET_ALL_DELAY_OFFSET => Ok(success(req).with_body(b"{}".to_vec())),
        rc::GET_BROKER_RUNTIME_INFO => Ok(success(req).with_body(encode_body(&runtime_info(core)))),
        code => Err(reply(
            req,
            ResponseCode::RequestCodeNotSupported,
            format!(" request type {code} not supported"),
        )),
    }
}

fn create_topic(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let topic = header(req, req.ext_str("topic"))?;
    if let Err(remark) = validate_topic_name(topic) {
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    if topic == AUTO_CREATE_TOPIC {
        let remark = format!("The topic[{topic}] is conflict with AUTO_CREATE_TOPIC_KEY_TOPIC.");
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    refuse_system_topic(req, topic)?;
    let mut config = TopicConfig::new(topic);
    config.read_queue_nums = header(req, req.ext_i32("readQueueNums"))?;
    config.write_queue_nums = header(req, req.ext_i32("writeQueueNums"))?;
    config.perm = header(req, req.ext_i32("perm"))?;
    config.topic_filter_type = req
        .ext("topicFilterType")
        .unwrap_or("SINGLE_TAG")
        .to_string();
    config.topic_sys_flag = header(req, req.ext_opt_i32("topicSysFlag"))?.unwrap_or(0);
    config.order = header(req, req.ext_opt_bool("order"))?.unwrap_or(false);
    let queues_ok = (1..=1024).contains(&config.read_queue_nums)
        && (1..=1024).contains(&config.write_queue_nums);
    if !queues_ok {
        let remark = "readQueueNums and writeQueueNums must be within 1..=1024".to_string();
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    core.broker.topics.put(config);
    core.broker.request_registration();
    Ok(success(req))
}

/// RocketMQ's `validateTopic` + `isSystemTopic` checks of UPDATE_AND_CREATE_TOPIC and
/// DELETE_TOPIC: a client may neither create nor delete the broker's own topics.
fn refuse_system_topic(req: &RemotingCommand, topic: &str) -> Result<(), RemotingCommand> {
    if let Err(remark) = validate_topic_name(topic) {
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    if crate::topics::is_system_topic(topic) {
        let remark = crate::topics::system_topic_conflict_remark(topic);
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    Ok(())
}

async fn delete_topic(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let topic = header(req, req.ext_str("topic"))?.to_string();
    refuse_system_topic(req, &topic)?;
    let broker = &core.broker;
    broker.topics.remove(&topic);
    broker.offsets.remove_topic(&topic);
    for shard in 0..broker.shard_count {
        let name = topic.clone();
        let deleted = core
            .on_shard(shard, move |store| async move { store.delete_topic(&name) })
            .await;
        match deleted {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(topic = %topic, shard, "cannot delete consume queues: {error}")
            }
            Err(error) => tracing::error!(topic = %topic, shard, "cannot reach shard: {error}"),
        }
    }
    broker.request_registration();
    Ok(success(req))
}

fn runtime_info(core: &Rc<CoreContext>) -> KVTable {
    let broker = &core.broker;
    let mut table = HashMap::new();
    let mut put = |k: &str, v: String| {
        table.insert(k.to_string(), v);
    };
    put("brokerVersionDesc", "V4_9_8 (rmq-fast)".to_string());
    put("brokerVersion", "409".to_string());
    put(
        "msgPutTotalTodayNow",
        broker
            .stats
            .messages_put
            .load(Ordering::Relaxed)
            .to_string(),
    );
    put(
        "msgGetTotalTodayNow",
        broker
            .stats
            .messages_got
            .load(Ordering::Relaxed)
            .to_string(),
    );
    put("bootTimestamp", broker.started_at_ms.to_string());
    put("runtime", format!("{} ms", now_ms() - broker.started_at_ms));
    put("brokerRole", format!("{:?}", broker.config.broker_role));
    put("shardCount", broker.shard_count.to_string());
    // Delayed/timer records skipped because they can never be delivered (schedule::scanner).
    put(
        "scheduleUndeliverable",
        broker.schedule.undeliverable().to_string(),
    );
    // Forced cleanup (disk past 85%) deleted these before consumers read them (retention).
    put(
        "forcedCleanupUnconsumedMessages",
        broker
            .stats
            .forced_cleanup_unconsumed_messages
            .load(Ordering::Relaxed)
            .to_string(),
    );
    put(
        "forcedCleanupUnconsumedBytes",
        broker
            .stats
            .forced_cleanup_unconsumed_bytes
            .load(Ordering::Relaxed)
            .to_string(),
    );
    let max_offsets: Vec<String> = core
        .shards
        .values()
        .map(|s| s.max_physical_offset().to_string())
        .collect();
    put("commitLogMaxOffsetLocalShards", max_offsets.join(","));
    KVTable { table }
}
