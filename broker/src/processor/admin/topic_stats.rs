//! GET_TOPIC_STATS_INFO (202): min and max offset and last store time of each queue.

use std::rc::Rc;

use rmq_core::body::{TopicOffset, TopicStatsTable};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::super::{Processed, header, reply, success};
use super::queues::{queue_of, queue_offsets};
use crate::core_context::CoreContext;

pub async fn topic_stats(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
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
