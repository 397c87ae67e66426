//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42): the queue locks of orderly consumers.
//!
//! A `MessageListenerOrderly` consumer locks every queue it was assigned before consuming
//! it, renews the locks every 20 s and unlocks them on rebalance or shutdown; the table and
//! its expiry rules live in `rebalance_lock`. LOCK answers `{"lockOKMQSet":[...]}`, the
//! queues the caller holds now; UNLOCK (usually oneway) answers SUCCESS.
//!
//! Memory bound (issue 12): a lock is taken only for a subscription group that exists and a
//! queue of this broker that exists (a real client locks exactly those: it groups its queues by
//! broker name), by a client id of at most `CLIENT_ID_MAX_LENGTH` bytes; anything else is
//! never granted. So the lock table holds at most one entry per (group, queue) of this broker,
//! whatever clients send (it used to keep every made-up queue of every request).

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Instant;

use rmq_core::body::{
    LockBatchRequestBody, LockBatchResponseBody, MessageQueue, UnlockBatchRequestBody, decode_body,
    encode_body,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::{Processed, reply, success};
use crate::clients::CLIENT_ID_MAX_LENGTH;
use crate::core_context::CoreContext;

fn bad_body(req: &RemotingCommand, error: impl std::fmt::Display) -> RemotingCommand {
    reply(
        req,
        ResponseCode::SystemError,
        format!("bad lock request body: {error}"),
    )
}

/// LOCK_BATCH_MQ.
pub fn lock_batch(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let body: LockBatchRequestBody = decode_body(&req.body).map_err(|e| bad_body(req, e))?;
    if body.consumer_group.is_empty() || body.client_id.is_empty() {
        return Err(bad_body(req, "consumerGroup and clientId are required"));
    }
    if body.client_id.len() > CLIENT_ID_MAX_LENGTH {
        return Err(bad_body(
            req,
            format!("clientId longer than {CLIENT_ID_MAX_LENGTH} bytes"),
        ));
    }
    let broker = &core.broker;
    if broker.groups.get(&body.consumer_group).is_none() {
        return Err(reply(
            req,
            ResponseCode::SubscriptionGroupNotExist,
            format!(
                "subscription group [{}] does not exist",
                body.consumer_group.chars().take(64).collect::<String>()
            ),
        ));
    }
    let ours = |queue: &MessageQueue| {
        queue.broker_name == broker.config.broker_name
            && broker.topics.get(&queue.topic).is_some_and(|topic| {
                (0..topic.read_queue_nums.max(topic.write_queue_nums)).contains(&queue.queue_id)
            })
    };
    let lockable: BTreeSet<MessageQueue> =
        body.mq_set.iter().filter(|q| ours(q)).cloned().collect();
    let granted = broker.rebalance_locks.lock_batch(
        &body.consumer_group,
        &body.client_id,
        &lockable,
        Instant::now(),
    );
    if granted.len() < body.mq_set.len() {
        tracing::debug!(group = %body.consumer_group, client = %body.client_id,
            asked = body.mq_set.len(), granted = granted.len(), "some queues are locked by others");
    }
    let response = LockBatchResponseBody {
        lock_ok_mq_set: granted,
    };
    Ok(success(req).with_body(encode_body(&response)))
}

/// UNLOCK_BATCH_MQ.
pub fn unlock_batch(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let body: UnlockBatchRequestBody = decode_body(&req.body).map_err(|e| bad_body(req, e))?;
    core.broker
        .rebalance_locks
        .unlock_batch(&body.consumer_group, &body.client_id, &body.mq_set);
    Ok(success(req))
}
