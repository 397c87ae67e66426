//! GET_CONSUME_STATS (208): a group's committed offset against each queue's max offset.

use std::rc::Rc;

use rmq_core::body::{ConsumeStats, ConsumerOffsetSerializeWrapper, OffsetWrapper};
use rmq_core::remoting::RemotingCommand;

use super::super::{Processed, header, success};
use super::queues::{queue_of, queue_offsets};
use crate::core_context::CoreContext;

pub async fn consume_stats(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
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
pub fn topics_of_group(offsets: &ConsumerOffsetSerializeWrapper, group: &str) -> Vec<String> {
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
