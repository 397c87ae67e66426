//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42): the queue locks of orderly consumers.
//!
//! A `MessageListenerOrderly` consumer locks every queue it was assigned before consuming
//! it, renews the locks every 20 s and unlocks them on rebalance or shutdown; the table and
//! its expiry rules live in `rebalance_lock`. LOCK answers `{"lockOKMQSet":[...]}`, the
//! queues the caller holds now; UNLOCK (usually oneway) answers SUCCESS.

use std::rc::Rc;
use std::time::Instant;

use rmq_core::body::{
    LockBatchRequestBody, LockBatchResponseBody, UnlockBatchRequestBody, decode_body, encode_body,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::{Processed, reply, success};
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
    let granted = core.broker.rebalance_locks.lock_batch(
        &body.consumer_group,
        &body.client_id,
        &body.mq_set,
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
