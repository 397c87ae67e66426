//! Store maintenance an operator asks for: CLEAN_EXPIRED_CONSUMEQUEUE (306: consume queue
//! entries whose records the commit log no longer holds are dropped), CLEAN_UNUSED_TOPIC
//! (316: the consume queues of topics missing from the topic table are deleted; system
//! topics are kept) and DELETE_EXPIRED_COMMITLOG (329: a retention round now, deleting the
//! segments older than `fileReservedTime` whatever the `deleteWhen` hour, as RocketMQ's
//! `executeDeleteFilesManually`). Each runs on every shard's owner core and answers SUCCESS
//! once done; a shard that fails is logged and answered with SYSTEM_ERROR naming it.

use std::rc::Rc;

use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_storage::retention::{DELETE_FILES_BATCH_MAX, ExpiryPolicy};

use super::super::{Processed, reply, success};
use crate::core_context::CoreContext;
use crate::topics;

pub async fn clean_expired_queues(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    tracing::warn!("cleanExpiredConsumeQueue asked by an admin");
    for shard in 0..core.broker.shard_count {
        let result = core
            .on_shard(
                shard,
                |store| async move { store.clean_expired_queues().await },
            )
            .await;
        match result {
            Ok(Ok(dropped)) => tracing::info!(shard, dropped, "expired consume queue entries"),
            Ok(Err(error)) => return Err(shard_failed(req, shard, &error.to_string())),
            Err(error) => return Err(shard_failed(req, shard, &error.to_string())),
        }
    }
    Ok(success(req))
}

pub async fn clean_unused_topics(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    tracing::warn!("cleanUnusedTopic asked by an admin");
    let known = core.broker.topics.snapshot();
    for shard in 0..core.broker.shard_count {
        let known = known.clone();
        let result = core
            .on_shard(shard, move |store| async move {
                let unused = |topic: &str| {
                    !known.contains_key(topic)
                        && !topics::is_system_topic(topic)
                        && !topics::is_not_allowed_send_topic(topic)
                };
                store.clean_unused_topics(&unused)
            })
            .await;
        match result {
            Ok(Ok(deleted)) => {
                if !deleted.is_empty() {
                    tracing::info!(shard, ?deleted, "consume queues of unused topics deleted");
                }
            }
            Ok(Err(error)) => return Err(shard_failed(req, shard, &error.to_string())),
            Err(error) => return Err(shard_failed(req, shard, &error.to_string())),
        }
    }
    Ok(success(req))
}

pub async fn delete_expired_commit_log(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    tracing::warn!("deleteExpiredCommitLog asked by an admin");
    let config = core.broker.live_config.load();
    let policy = ExpiryPolicy {
        now_ms: rmq_storage::retention::now_ms(),
        reserved_ms: i64::from(config.file_reserved_time.max(0)) * 3_600_000,
        force: false,
        max_files: DELETE_FILES_BATCH_MAX,
    };
    let outcome = crate::retention::clean_all_shards(core, policy, 0.0).await;
    tracing::info!(deleted = ?outcome.deleted, "manual retention round done");
    Ok(success(req))
}

fn shard_failed(req: &RemotingCommand, shard: u32, error: &str) -> RemotingCommand {
    tracing::error!(shard, error, "admin store maintenance failed");
    reply(
        req,
        ResponseCode::SystemError,
        format!("shard {shard}: {error}"),
    )
}
