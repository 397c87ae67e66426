//! Lists of who uses the broker: QUERY_TOPIC_CONSUME_BY_WHO (300, the groups consuming a
//! topic: online subscribers and groups with committed offsets, as RocketMQ),
//! GET_SYSTEM_TOPIC_LIST_FROM_BROKER (305, RocketMQ's system topic set plus ours) and
//! GET_ALL_PRODUCER_INFO (328, every producer client by group).

use std::rc::Rc;

use rmq_core::body::{
    ConsumerOffsetSerializeWrapper, GroupList, ProducerInfo, ProducerTableInfo, TopicList,
    encode_body,
};
use rmq_core::remoting::{LanguageCode, RemotingCommand};

use super::super::{Processed, header, success};
use crate::core_context::CoreContext;
use crate::topics;

pub fn topic_consumed_by(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let topic = header(req, req.ext_str("topic"))?;
    let broker = &core.broker;
    let mut body = GroupList::default();
    body.group_list
        .extend(broker.clients.groups_of_topic(topic));
    let offsets = broker.offsets.wrapper();
    body.group_list.extend(
        offsets
            .offset_table
            .keys()
            .filter_map(|key| ConsumerOffsetSerializeWrapper::split_key(key))
            .filter(|(owner, _)| *owner == topic)
            .map(|(_, group)| group.to_owned()),
    );
    Ok(success(req).with_body(encode_body(&body)))
}

/// RocketMQ 4.9.8's `TopicValidator.SYSTEM_TOPIC_SET`, plus the topics only we write.
pub fn system_topic_list(req: &RemotingCommand) -> Processed {
    let names = [
        topics::AUTO_CREATE_TOPIC,
        topics::SCHEDULE_TOPIC,
        topics::BENCHMARK_TOPIC,
        topics::TRANS_HALF_TOPIC,
        topics::TRACE_TOPIC,
        crate::transaction::OP_TOPIC,
        topics::TRANS_CHECK_MAX_TIME_TOPIC,
        topics::SELF_TEST_TOPIC,
        topics::OFFSET_MOVED_EVENT,
        crate::schedule::TIMER_TOPIC,
    ];
    let body = TopicList {
        topic_list: names.iter().map(|name| (*name).to_owned()).collect(),
        broker_addr: None,
    };
    Ok(success(req).with_body(encode_body(&body)))
}

pub fn all_producers(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let now = crate::context::now_ms();
    let mut body = ProducerTableInfo::default();
    for (group, channels) in core.broker.clients.all_producers() {
        let infos = channels
            .iter()
            .map(|channel| ProducerInfo {
                client_id: channel.client_id.to_string(),
                remote_ip: channel.addr.clone(),
                language: LanguageCode::from_u8(channel.language)
                    .unwrap_or_default()
                    .name()
                    .to_owned(),
                version: channel.version,
                last_update_timestamp: now
                    - i64::try_from(channel.last_update.elapsed().as_millis()).unwrap_or(0),
            })
            .collect();
        body.data.insert(group, infos);
    }
    Ok(success(req).with_body(encode_body(&body)))
}
