//! The acknowledgement policy: what every append waits for before it counts as done.
//!
//! One [`AckPolicy`] is built from the broker config at start-up (`BrokerContext::ack`) and
//! every append path waits through [`AckPolicy::wait`]: producer sends and batches (and
//! replies, which are sends), consumer send-backs, delay and timer re-puts, transaction
//! commits and their op records. The policy is
//! - flush durability: SYNC_FLUSH waits for the flush (fdatasync), ASYNC_FLUSH for the write
//!   to the kernel (survives kill -9);
//! - replica wait (SYNC_MASTER only): a slave report past the record's end, within
//!   `slaveTimeout`, and only while the slave is at most
//!   `haSlaveFallbehindMax` bytes behind. Both waits run in parallel on the shard's core.
//!   Whose reports count is the shard's `ShardReplica` (`replication::role` sets it): any slave
//!   (classic), every sync-state-set member (controller mode, `allAckInSyncStateSet`), or
//!   `inSyncReplicas` - 1 distinct slaves (controller mode otherwise, at least one while the
//!   sync-state set has other members);
//! - admission (controller mode, RocketMQ 5's `minInSyncReplicas`): a master whose
//!   sync-state set (itself included) has fewer members refuses the append before it is
//!   written ([`AckPolicy::admit`]; a send answers SYSTEM_ERROR "in-sync replicas not
//!   enough", as RocketMQ 5's IN_SYNC_REPLICAS_NOT_ENOUGH).
//!
//! A producer's `WAIT=false` send relaxes the policy to "appended" ([`AckPolicy::for_send`]:
//! no replica wait and no admission check, as RocketMQ's `needHandleHA`); the broker's own
//! re-puts always use the full policy. A missing or late slave is an
//! [`Acked::replica`] of NotAvailable / Timeout: a send answers SLAVE_NOT_AVAILABLE (11) /
//! FLUSH_SLAVE_TIMEOUT (12) with the send header still filled ([`Acked::respond`]); what a
//! re-put does with it is up to its caller (`schedule::reput`).

use std::time::Duration;

use rmq_core::config::{BrokerConfig, BrokerRole, FlushDiskType};
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_ha::master::{ShardReplica, SlaveWait};
use rmq_storage::{Durability, ShardStore, StoreError};

use super::ms;

/// What an append waits for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckPolicy {
    level: Durability,
    replica: Option<ReplicaWait>,
    in_sync: Option<InSync>,
}

/// Controller mode: the master's in-sync replica count (its sync-state set, itself included)
/// and `minInSyncReplicas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InSync {
    replicas: usize,
    min: usize,
}

/// Why [`AckPolicy::admit`] refused an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("in-sync replicas not enough")]
pub struct InSyncReplicasNotEnough {
    /// Members of the sync-state set, the master included.
    pub replicas: usize,
    /// `minInSyncReplicas`.
    pub min: usize,
}

/// The SYNC_MASTER part of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplicaWait {
    timeout: Duration,
    fallbehind_max: i64,
}

/// The outcome of [`AckPolicy::wait`].
#[derive(Debug)]
pub struct Acked {
    /// The flush-durability wait.
    pub durable: Result<(), StoreError>,
    /// The replica wait (`Replicated` when the policy has none).
    pub replica: SlaveWait,
}

impl AckPolicy {
    /// The broker's policy, from `flushDiskType`, `brokerRole`, `slaveTimeout` and
    /// `haSlaveFallbehindMax`.
    pub fn from_config(config: &BrokerConfig) -> Self {
        let level = match config.flush_disk_type {
            FlushDiskType::SyncFlush => Durability::Flushed,
            FlushDiskType::AsyncFlush => Durability::Written,
        };
        let replica = (config.broker_role == BrokerRole::SyncMaster).then(|| ReplicaWait {
            timeout: ms(config.slave_timeout, 1),
            fallbehind_max: i64::from(config.ha_slave_fallbehind_max.max(0)),
        });
        Self {
            level,
            replica,
            in_sync: None,
        }
    }

    /// The policy of a master that waits for its slaves (`slaveTimeout`,
    /// `haSlaveFallbehindMax`), whatever `brokerRole` says; [`Self::with_replica`] applies
    /// the current role (`BrokerContext::ack`).
    pub fn for_master(config: &BrokerConfig) -> Self {
        let mut policy = Self::from_config(config);
        policy.replica = Some(ReplicaWait {
            timeout: ms(config.slave_timeout, 1),
            fallbehind_max: i64::from(config.ha_slave_fallbehind_max.max(0)),
        });
        policy
    }

    /// This policy with the replica wait on (a SYNC master, `for_master`'s settings) or off.
    pub fn with_replica(self, waits: bool) -> Self {
        if waits {
            self
        } else {
            Self {
                replica: None,
                ..self
            }
        }
    }

    /// This policy with the admission check of a controller-mode master whose sync-state set
    /// has `replicas` members (itself included) against `minInSyncReplicas` = `min`; None:
    /// no check (classic modes, a slave).
    pub fn with_in_sync(self, in_sync: Option<(usize, usize)>) -> Self {
        Self {
            in_sync: in_sync.map(|(replicas, min)| InSync { replicas, min }),
            ..self
        }
    }

    /// Whether an append may be written at all: a controller-mode master refuses while its
    /// sync-state set has fewer than `minInSyncReplicas` members (see the module docs).
    ///
    /// # Errors
    /// The count and the minimum, for the response's remark and the log.
    pub fn admit(self) -> Result<(), InSyncReplicasNotEnough> {
        match self.in_sync {
            Some(InSync { replicas, min }) if replicas < min => {
                Err(InSyncReplicasNotEnough { replicas, min })
            }
            _ => Ok(()),
        }
    }

    /// The policy of a producer's send: `WAIT=false` acknowledges once appended (readable),
    /// with no flush and no slave wait, as RocketMQ.
    pub fn for_send(self, wait_store_msg_ok: bool) -> Self {
        if wait_store_msg_ok {
            self
        } else {
            Self {
                level: Durability::Appended,
                replica: None,
                in_sync: None,
            }
        }
    }

    /// The flush durability waited for.
    pub fn level(self) -> Durability {
        self.level
    }

    /// True when acknowledgements wait for a slave (SYNC_MASTER).
    pub fn waits_for_replica(self) -> bool {
        self.replica.is_some()
    }

    /// Waits, on the shard's core, until the append ending at `end_offset` satisfies the
    /// policy: flush durability and (SYNC_MASTER) a slave report past it, in parallel.
    /// `replica` is the shard's slave state, owned by the core (`CoreContext::replicas`).
    pub async fn wait(self, store: &ShardStore, replica: &ShardReplica, end_offset: i64) -> Acked {
        let Some(slave) = self.replica else {
            return Acked {
                durable: store.wait_durable(end_offset, self.level).await,
                replica: SlaveWait::Replicated,
            };
        };
        let (durable, replica) = futures_util::future::join(
            store.wait_durable(end_offset, self.level),
            replica.wait(end_offset, slave.timeout, slave.fallbehind_max),
        )
        .await;
        Acked { durable, replica }
    }
}

impl Acked {
    /// A successful send response becomes SLAVE_NOT_AVAILABLE / FLUSH_SLAVE_TIMEOUT when the
    /// slave did not confirm (the header stays: the message is stored on the master).
    pub fn respond(replica: SlaveWait, mut response: RemotingCommand) -> RemotingCommand {
        if response.code != ResponseCode::Success.code() {
            return response;
        }
        match replica {
            SlaveWait::Replicated => {}
            SlaveWait::NotAvailable => response.code = ResponseCode::SlaveNotAvailable.code(),
            SlaveWait::Timeout => response.code = ResponseCode::FlushSlaveTimeout.code(),
        }
        response
    }
}

/// RocketMQ's PutMessageStatus name of a replica outcome that is not `Replicated`.
pub fn status_name(replica: SlaveWait) -> &'static str {
    match replica {
        SlaveWait::Replicated => "PUT_OK",
        SlaveWait::NotAvailable => "SLAVE_NOT_AVAILABLE",
        SlaveWait::Timeout => "FLUSH_SLAVE_TIMEOUT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(pairs: &[(&str, &str)]) -> AckPolicy {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let (config, _) = BrokerConfig::load(None, &pairs).expect("config");
        AckPolicy::from_config(&config)
    }

    #[test]
    fn the_policy_follows_flush_type_and_role_and_wait_false_only_appends() {
        let async_master = policy(&[]);
        assert_eq!(async_master.level(), Durability::Written);
        assert!(!async_master.waits_for_replica());
        let sync = policy(&[
            ("flushDiskType", "SYNC_FLUSH"),
            ("brokerRole", "SYNC_MASTER"),
        ]);
        assert_eq!(sync.level(), Durability::Flushed);
        assert!(sync.waits_for_replica());
        assert_eq!(sync.for_send(true), sync);
        let relaxed = sync.for_send(false);
        assert_eq!(relaxed.level(), Durability::Appended);
        assert!(!relaxed.waits_for_replica());
    }

    #[test]
    fn a_master_below_min_in_sync_replicas_refuses_and_wait_false_is_not_checked() {
        let master = policy(&[("brokerRole", "SYNC_MASTER")]);
        assert_eq!(master.admit(), Ok(()), "classic: no check");
        let alone = master.with_in_sync(Some((1, 2)));
        assert_eq!(
            alone.admit(),
            Err(InSyncReplicasNotEnough {
                replicas: 1,
                min: 2
            })
        );
        assert_eq!(
            alone.admit().unwrap_err().to_string(),
            "in-sync replicas not enough"
        );
        assert_eq!(master.with_in_sync(Some((2, 2))).admit(), Ok(()));
        assert_eq!(
            alone.for_send(false).admit(),
            Ok(()),
            "WAIT=false: not checked"
        );
        assert_eq!(alone.with_replica(false).admit(), alone.admit());
    }
}
