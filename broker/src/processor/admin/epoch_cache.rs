//! GET_BROKER_EPOCH_CACHE (1007, RocketMQ 5, mqadmin `getBrokerEpoch`): the broker's epoch
//! history in controller mode. Each shard keeps its own history with the same epochs
//! (`storage/src/epoch_history.rs`); the answer is shard 0's, with shard 0's max offset, so a
//! one-shard store (`shardCount=1`) answers exactly as RocketMQ's single commit log would.

use std::rc::Rc;

use rmq_core::body::controller::{EpochEntry, EpochEntryCache};
use rmq_core::body::encode_body;
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use crate::core_context::CoreContext;
use crate::processor::{Processed, reply, success};

pub async fn get_broker_epoch_cache(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    if !broker.role.controller_mode() {
        let remark = "this request only for controllerMode ".to_string();
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    let (entries, max_offset) = core
        .on_shard(0, |store| async move {
            (store.epoch_entries(), store.max_physical_offset())
        })
        .await
        .map_err(|busy| reply(req, ResponseCode::SystemBusy, busy.to_string()))?;
    let epoch_list = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| EpochEntry {
            epoch: entry.epoch,
            start_offset: entry.start_offset,
            end_offset: entries
                .get(i + 1)
                .map_or(max_offset, |next| next.start_offset),
        })
        .collect();
    let cache = EpochEntryCache {
        cluster_name: broker.config.broker_cluster_name.clone(),
        broker_name: broker.config.broker_name.clone(),
        broker_id: broker.role.snapshot().controller_id,
        epoch_list,
        max_offset,
    };
    Ok(success(req).with_body(encode_body(&cache)))
}
