//! Re-putting a stored message under another topic/queue: the common step of delay delivery,
//! timer hops, retry/DLQ send-back and transaction commit.
//!
//! The new record keeps the original's body, flag, born time and born host (so the client-side
//! message id and born time stay as the producer made them), gets this broker as store host and
//! fresh offsets, and is acknowledged by the broker's full acknowledgement policy
//! (`BrokerContext::ack`: flush durability and, under SYNC_MASTER, a slave report), as a
//! producer's send. A copy stored on the master that the slave did not confirm is
//! [`ReputError::NotReplicated`]: the delay/timer scanner keeps waiting for the slave before
//! it moves its offset ([`await_replica`]); send-back answers the failure to the consumer;
//! transaction decisions count it as stored, as RocketMQ's end-transaction does.

use std::rc::Rc;

use bytes::BytesMut;
use rmq_core::message::{
    NewRecord, RecordError, RecordView, hash::tags_code, properties, properties::keys,
};
use rmq_ha::master::SlaveWait;
use rmq_storage::{AppendResult, StoreError};

use crate::context::{BrokerContext, now_ms};
use crate::core_context::{CoreContext, ShardBusy};
use crate::replication::ack_policy::{InSyncReplicasNotEnough, status_name};

/// Where and how the copy is written.
#[derive(Debug, Clone)]
pub struct Target {
    pub topic: String,
    pub queue_id: i32,
    pub properties: String,
    pub sys_flag: i32,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    /// Consume-queue tags code; `None` = hash of the TAGS property.
    pub tags_code: Option<i64>,
}

impl Target {
    /// Same sysflag, reconsume times and prepared offset as `source`.
    pub fn like(source: &RecordView<'_>, topic: &str, queue_id: i32, properties: String) -> Self {
        Self {
            topic: topic.to_string(),
            queue_id,
            properties,
            sys_flag: source.sys_flag(),
            reconsume_times: source.reconsume_times(),
            prepared_transaction_offset: source.prepared_transaction_offset(),
            tags_code: None,
        }
    }
}

/// Why a re-put failed.
#[derive(Debug, thiserror::Error)]
pub enum ReputError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Busy(#[from] ShardBusy),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Refused before it was written (controller mode, `minInSyncReplicas`).
    #[error(transparent)]
    InSyncReplicas(#[from] InSyncReplicasNotEnough),
    /// Stored on the master, not confirmed by the slave (SYNC_MASTER).
    #[error("{}: no slave confirmed the copy ending at {}", status_name(*.replica), .appended.end_offset)]
    NotReplicated {
        appended: AppendResult,
        replica: SlaveWait,
    },
}

impl ReputError {
    /// `NotReplicated` counts as done: the copy is on the master (RocketMQ treats
    /// FLUSH_SLAVE_TIMEOUT and SLAVE_NOT_AVAILABLE as stored where this is used).
    ///
    /// # Errors
    /// Every other error.
    pub fn stored_on_master(
        result: Result<AppendResult, ReputError>,
    ) -> Result<AppendResult, ReputError> {
        match result {
            Err(ReputError::NotReplicated { appended, .. }) => Ok(appended),
            other => other,
        }
    }
}

/// Encodes the copy of `source` described by `target` (offsets and store time still zero).
///
/// # Errors
/// Topic or properties too long for a record.
pub fn rebuild(
    broker: &BrokerContext,
    source: &RecordView<'_>,
    target: &Target,
) -> Result<(BytesMut, i64), RecordError> {
    let record = NewRecord {
        topic: &target.topic,
        queue_id: target.queue_id,
        flag: source.flag(),
        body: source.body(),
        properties: &target.properties,
        sys_flag: target.sys_flag,
        born_timestamp: source.born_timestamp(),
        born_host: source.born_host(),
        store_host: broker.broker_addr,
        reconsume_times: target.reconsume_times,
        prepared_transaction_offset: target.prepared_transaction_offset,
    };
    let mut buf = BytesMut::with_capacity(record.encoded_len());
    record.encode_into(&mut buf)?;
    let tags = target
        .tags_code
        .unwrap_or_else(|| tags_code(properties::get_property(&target.properties, keys::TAGS)));
    Ok((buf, tags))
}

/// Appends an encoded record to `topic`/`queue_id` on its owner shard and waits for the
/// broker's acknowledgement policy.
///
/// # Errors
/// The policy refused the append (`InSyncReplicas`: nothing written), owner busy, store
/// refused the append, the durability wait failed, or (SYNC_MASTER) no slave confirmed the
/// copy (`NotReplicated`).
pub async fn append_on_owner(
    core: &Rc<CoreContext>,
    topic: &str,
    queue_id: i32,
    record: (BytesMut, i64),
) -> Result<AppendResult, ReputError> {
    let broker = &core.broker;
    let shard = broker.shard_of_queue(topic, queue_id);
    let policy = broker.ack();
    policy.admit()?;
    let topic = topic.to_string();
    let (appended, replica) = core
        .on_owned_shard(shard, move |owned| async move {
            let (mut record, tags) = record;
            let store = &owned.store;
            let appended = store.append(&topic, queue_id, &mut record, tags, now_ms())?;
            let acked = policy
                .wait(store, &owned.replica, appended.end_offset)
                .await;
            acked.durable?;
            Ok::<_, StoreError>((appended, acked.replica))
        })
        .await??;
    match replica {
        SlaveWait::Replicated => Ok(appended),
        replica => Err(ReputError::NotReplicated { appended, replica }),
    }
}

/// Waits again (one `slaveTimeout` at most) for a slave report past `end_offset` on the
/// shard owning `topic`/`queue_id`: a copy that was `NotReplicated` may be confirmed later.
///
/// # Errors
/// The owner is busy.
pub async fn await_replica(
    core: &Rc<CoreContext>,
    topic: &str,
    queue_id: i32,
    end_offset: i64,
) -> Result<SlaveWait, ShardBusy> {
    let shard = core.broker.shard_of_queue(topic, queue_id);
    let policy = core.broker.ack();
    core.on_owned_shard(shard, move |owned| async move {
        let acked = policy.wait(&owned.store, &owned.replica, end_offset).await;
        acked.replica
    })
    .await
}

/// `rebuild` + `append_on_owner`.
///
/// # Errors
/// See both.
pub async fn reput(
    core: &Rc<CoreContext>,
    source: &RecordView<'_>,
    target: &Target,
) -> Result<AppendResult, ReputError> {
    let record = rebuild(&core.broker, source, target)?;
    append_on_owner(core, &target.topic, target.queue_id, record).await
}

/// Reads the record at a commit-log offset from its owner shard (`None`: no record there).
///
/// # Errors
/// The owner is busy or the read failed.
pub async fn read_by_offset(
    core: &Rc<CoreContext>,
    physical_offset: i64,
) -> Result<Option<bytes::Bytes>, ReputError> {
    let shard = u32::try_from(physical_offset >> 56).unwrap_or(u32::MAX);
    if physical_offset < 0 || shard >= core.broker.shard_count {
        return Ok(None);
    }
    let read = core
        .on_shard(shard, move |store| async move {
            store.read_record(physical_offset).await
        })
        .await??;
    Ok(read)
}
