//! Topic and subscription-group administration: UPDATE_AND_CREATE_TOPIC (17),
//! DELETE_TOPIC_IN_BROKER (215), UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200),
//! DELETE_SUBSCRIPTIONGROUP (207).

use std::rc::Rc;

use rmq_core::body::{SubscriptionGroupConfig, TopicConfig, decode_body};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::super::{Processed, header, reply, success};
use crate::core_context::CoreContext;
use crate::topics::{AUTO_CREATE_TOPIC, validate_topic_name};

pub fn update_group(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
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
    core.broker
        .groups
        .put(config)
        .map_err(|remark| reply(req, ResponseCode::SystemError, remark))?;
    Ok(success(req))
}

pub fn delete_group(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("groupName"))?;
    core.broker.groups.remove(group);
    Ok(success(req))
}

pub async fn create_topic(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
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
    let name = config.topic_name.clone();
    core.broker.topics.put(config);
    core.broker.request_topic_registration(&name);
    // Acknowledged once topics.json holds it (the writer thread batches concurrent creates).
    if let Err(remark) = core.broker.topics.persisted().await {
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
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

pub async fn delete_topic(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let topic = header(req, req.ext_str("topic"))?.to_string();
    refuse_system_topic(req, &topic)?;
    let broker = &core.broker;
    broker.topics.remove(&topic);
    if let Err(remark) = broker.topics.persisted().await {
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
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
