//! SYNC_MASTER sends: [`wait_durable`] waits for the flush level and for a slave report in
//! parallel, on the shard's core; [`with_slave_outcome`] turns a missing or late slave into
//! SLAVE_NOT_AVAILABLE (11) / FLUSH_SLAVE_TIMEOUT (12) with the send header still filled.

use std::time::Duration;

use rmq_core::config::BrokerRole;
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_ha::master::SlaveWait;
use rmq_storage::{Durability, ShardStore, StoreError};

use super::ms;
use crate::context::BrokerContext;

/// What a send waits for from the slaves: SYNC_MASTER and `WAIT` not false.
#[derive(Debug, Clone, Copy)]
pub struct SyncWait {
    timeout: Duration,
    fallbehind_max: i64,
}

/// The slave wait a send needs, if any (decided on the receiving core).
pub fn sync_wait(broker: &BrokerContext, wait_store_msg_ok: bool) -> Option<SyncWait> {
    (wait_store_msg_ok && broker.config.broker_role == BrokerRole::SyncMaster).then(|| SyncWait {
        timeout: ms(broker.config.slave_timeout, 1),
        fallbehind_max: i64::from(broker.config.ha_slave_fallbehind_max.max(0)),
    })
}

/// Waits for `level` and, when asked, for a slave report past `end_offset`, in parallel.
pub async fn wait_durable(
    store: &ShardStore,
    end_offset: i64,
    level: Durability,
    slave: Option<SyncWait>,
) -> (Result<(), StoreError>, SlaveWait) {
    let Some(slave) = slave else {
        return (
            store.wait_durable(end_offset, level).await,
            SlaveWait::Replicated,
        );
    };
    let replica = rmq_ha::master::replica(store.shard());
    futures_util::future::join(
        store.wait_durable(end_offset, level),
        replica.wait(end_offset, slave.timeout, slave.fallbehind_max),
    )
    .await
}

/// Moves the slave outcome out of a send's shard result.
pub fn split<T, E>(outcome: Result<(T, SlaveWait), E>) -> (Result<T, E>, SlaveWait) {
    match outcome {
        Ok((value, slave)) => (Ok(value), slave),
        Err(error) => (Err(error), SlaveWait::Replicated),
    }
}

/// A successful send response becomes SLAVE_NOT_AVAILABLE / FLUSH_SLAVE_TIMEOUT when the
/// slave did not confirm (the header stays: the message is stored on the master).
pub fn with_slave_outcome(mut response: RemotingCommand, slave: SlaveWait) -> RemotingCommand {
    if response.code != ResponseCode::Success.code() {
        return response;
    }
    match slave {
        SlaveWait::Replicated => {}
        SlaveWait::NotAvailable => response.code = ResponseCode::SlaveNotAvailable.code(),
        SlaveWait::Timeout => response.code = ResponseCode::FlushSlaveTimeout.code(),
    }
    response
}
