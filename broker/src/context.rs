//! Broker-wide state shared by all cores (`Arc`): configuration, registries, and the
//! signals between cores and the name-server registration task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rmq_core::config::BrokerConfig;

use crate::clients::ClientManager;
use crate::groups::GroupManager;
use crate::offsets::OffsetManager;
use crate::topics::TopicManager;

/// Rare events counted broker-wide (the per-message counters are per core: `stats`).
#[derive(Default)]
pub struct BrokerStats {
    /// Messages forced cleanup deleted before known consumer groups consumed them
    /// (`retention`).
    pub forced_cleanup_unconsumed_messages: AtomicU64,
    /// Commit log bytes of those messages (an upper bound, see `retention`).
    pub forced_cleanup_unconsumed_bytes: AtomicU64,
}

pub struct BrokerContext {
    pub config: BrokerConfig,
    /// brokerIP1:listenPort, also the store host written into records.
    pub broker_addr: SocketAddr,
    /// brokerIP2:haListenPort, published to name servers.
    pub ha_addr: String,
    pub shard_count: u32,
    pub core_count: usize,
    pub topics: TopicManager,
    pub groups: GroupManager,
    pub offsets: OffsetManager,
    pub clients: ClientManager,
    /// Delay-level and timer scanner offsets (`schedule`).
    pub schedule: crate::schedule::ScheduleProgress,
    /// Transaction decisions and check-back progress (`transaction`).
    pub transactions: crate::transaction::TransactionState,
    pub stats: BrokerStats,
    /// Every core's statistics counters (`stats`).
    pub stats_hub: crate::stats::StatsHub,
    /// The summed counters over time (`stats::history`).
    pub stats_history: crate::stats::StatsHistory,
    /// The metrics endpoint's way to every core (`metrics`; empty when it is off).
    pub metrics: crate::metrics::MetricsHub,
    /// Access control (`acl`); None unless aclEnable=true.
    pub acl: Option<Arc<crate::acl::Acl>>,
    /// Requests sent to clients that wait for their answer (`client_calls`).
    pub client_calls: crate::client_calls::ClientCalls,
    /// Queue locks of orderly consumers (`rebalance_lock`).
    pub rebalance_locks: crate::rebalance_lock::RebalanceLocks,
    /// The config as changed at runtime by UPDATE_BROKER_CONFIG (`processor::admin::broker_config`); code
    /// that honours runtime changes reads this instead of `config`.
    pub live_config: arc_swap::ArcSwap<BrokerConfig>,
    /// Where a slave's master is (learned at registration; `replication`).
    pub replication: crate::replication::ReplicationInfo,
    /// What every append waits for before it is acknowledged, as a master that waits for
    /// its slaves (`replication::ack_policy`); [`BrokerContext::ack`] applies the role.
    pub ack_base: crate::replication::AckPolicy,
    /// Master or slave, broker id, epoch; changes at runtime in controller mode
    /// (`replication::role`).
    pub role: crate::replication::role::RoleState,
    /// Role changes the controller pushed (`controller_client`).
    pub controller_inbox: crate::controller_client::Inbox,
    /// Set when topics changed and name servers should hear about it now.
    pub register_now: AtomicBool,
    /// Which registration requests reached the name servers (`registration`).
    pub registration: crate::registration::RegistrationProgress,
    pub stopping: AtomicBool,
    pub started_at_ms: i64,
}

impl BrokerContext {
    /// True while the broker refuses writes: a slave, or (controller mode) a broker whose
    /// new master role is not in force yet.
    pub fn is_slave(&self) -> bool {
        self.role.refuses_writes()
    }

    /// The acknowledgement policy of the current role (`replication::ack_policy`).
    pub fn ack(&self) -> crate::replication::AckPolicy {
        let min = usize::try_from(self.config.min_in_sync_replicas.max(1)).unwrap_or(1);
        self.ack_base
            .with_replica(self.role.waits_for_replica())
            .with_in_sync(self.role.in_sync_replicas().map(|count| (count, min)))
    }

    /// The broker id registered with the name servers (the controller's in controller mode).
    pub fn broker_id(&self) -> i64 {
        self.role.broker_id()
    }

    /// Which core owns shard `shard`.
    pub fn core_of_shard(&self, shard: u32) -> usize {
        shard as usize % self.core_count
    }

    pub fn shard_of_queue(&self, topic: &str, queue_id: i32) -> u32 {
        rmq_storage::shard_for_queue(topic, queue_id, self.shard_count)
    }

    /// Returns the request's generation, for `registration.wait_for`. The registration loop
    /// takes it at its next tick (within 100 ms), not at once: a role change first sends its
    /// own registration (`registration::register_role_change`, over the caller's runtime),
    /// and the loop's must come after it, so that the name server's channel for this broker
    /// (it unregisters a broker whose channel closes) is the loop's long-lived connection.
    pub fn request_registration(&self) -> u64 {
        let generation = self.registration.request();
        self.register_now.store(true, Ordering::Release);
        generation
    }

    /// Like [`Self::request_registration`] for one created or updated topic (already in the
    /// topic table): a broker with many topics registers only the changed ones. The loop is
    /// woken at once: the request that created the topic waits for the registration.
    pub fn request_topic_registration(&self, topic: &str) -> u64 {
        let generation = self.registration.request_topic(topic);
        self.register_now.store(true, Ordering::Release);
        self.registration.wake_loop();
        generation
    }

    /// Waits until the registration of `topic`, created for the request being answered
    /// (generation from [`Self::request_topic_registration`]), reached every name server, at
    /// most [`CREATED_TOPIC_REGISTRATION_WAIT`]. RocketMQ registers a topic it creates for a
    /// send, a send-back or a heartbeat before it answers, so the client's route lookup right
    /// after the answer finds it; past the limit (a name server down) the answer goes anyway.
    pub async fn await_topic_registration(&self, generation: u64, topic: &str) {
        let registered = self
            .registration
            .wait_for(generation, CREATED_TOPIC_REGISTRATION_WAIT)
            .await;
        if !registered {
            tracing::warn!(
                topic,
                "answered before the created topic reached every name server"
            );
        }
    }
}

/// Longest a request that created a topic waits for its registration before it is answered
/// (the Java client's heartbeat times out after 3 s, a send after 3 s by default).
pub const CREATED_TOPIC_REGISTRATION_WAIT: Duration = Duration::from_secs(2);

pub type SharedContext = Arc<BrokerContext>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
