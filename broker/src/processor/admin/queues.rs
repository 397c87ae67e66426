//! Reading a queue's offsets and store times for the admin reads, on the shard's owner core.

use std::rc::Rc;

use rmq_core::body::MessageQueue;
use rmq_core::message::parse_record;
use rmq_core::remoting::RemotingCommand;
use rmq_storage::{GetStatus, ShardStore};

use super::super::busy;
use crate::core_context::CoreContext;

/// Min and max offset of a queue and the store time of the message at `time_at` (if any).
pub async fn queue_offsets(
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
pub async fn store_time_at(store: &ShardStore, topic: &str, queue_id: i32, offset: i64) -> i64 {
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

pub fn queue_of(core: &CoreContext, topic: &str, queue_id: i32) -> MessageQueue {
    MessageQueue {
        topic: topic.to_owned(),
        broker_name: core.broker.config.broker_name.clone(),
        queue_id,
    }
}
