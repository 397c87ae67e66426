//! Replication glue between the broker and rmq-ha.
//!
//! - [`listener`] (master, any role but SLAVE): core 0 listens on the HA port (`haListenPort`,
//!   default listenPort + 1), reads each slave connection's hello, and hands the socket to the
//!   core owning the requested shard, which streams that shard (`rmq_ha::master::serve_slave`).
//! - [`slave`]: every core of a slave runs one replication client per shard it owns, against
//!   the master HA address (`haMasterAddress`, else the `haServerAddr` the name server returned
//!   at registration), reconnecting every second after a failure.
//! - [`metadata_sync`]: a slave learns topics from the replicated records themselves, and core 0
//!   copies topic configs, consumer offsets, delay offsets and subscription groups from the
//!   master every second (only the tables that moved); the master's side of that copy.
//! - [`ack_policy`]: what every append waits for before it is acknowledged (flush durability
//!   and, under SYNC_MASTER, a slave report).
//!
//! - [`role`]: the role at runtime (controller mode changes it) and each core's duties per
//!   role generation.
//!
//! This module owns [`ReplicationInfo`] (where a slave's master is) and [`start`].

pub mod ack_policy;
mod listener;
pub mod metadata_sync;
pub mod role;
mod slave;

use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use crate::context::{BrokerContext, SharedContext};
use crate::core_context::CoreContext;

pub use ack_policy::{AckPolicy, Acked};

/// Where a slave's master is, as learned from the name servers.
#[derive(Default)]
pub struct ReplicationInfo {
    master_ha_addr: Mutex<Option<String>>,
    master_addr: Mutex<Option<String>>,
}

impl ReplicationInfo {
    /// Records the `haServerAddr` / `masterAddr` of a REGISTER_BROKER response.
    pub fn learn(&self, ha_addr: Option<&str>, master_addr: Option<&str>) {
        let keep = |slot: &Mutex<Option<String>>, value: Option<&str>| {
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                let mut slot = slot.lock().expect("replication info lock");
                if slot.as_deref() != Some(value) {
                    tracing::info!(addr = value, "learned master address");
                    *slot = Some(value.to_string());
                }
            }
        };
        keep(&self.master_ha_addr, ha_addr);
        keep(&self.master_addr, master_addr);
    }

    /// The master's remoting address: the controller's word in controller mode, else what
    /// the name servers said.
    pub fn master_addr(&self, broker: &BrokerContext) -> Option<String> {
        if broker.role.controller_mode() {
            return broker.role.snapshot().master_addr;
        }
        self.master_addr
            .lock()
            .expect("replication info lock")
            .clone()
    }

    /// The controller's word in controller mode; else `haMasterAddress` if configured, else
    /// what the name servers said.
    pub fn master_ha_addr(&self, broker: &BrokerContext) -> Option<String> {
        if broker.role.controller_mode()
            && let Some(addr) = broker.role.snapshot().master_ha_addr
        {
            return Some(addr);
        }
        broker
            .config
            .ha_master_address
            .clone()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| {
                self.master_ha_addr
                    .lock()
                    .expect("replication info lock")
                    .clone()
            })
    }
}

/// Starts this core's replication duties (see the module docs), for every role the broker
/// takes (`role::run_duties`).
pub fn start(core: &Rc<CoreContext>) {
    rmq_net::rt::spawn(role::run_duties(core.clone())).detach();
}

/// Spawns this core's duties of `role` (each ends once its generation is outdated).
pub(crate) fn start_generation(
    core: &Rc<CoreContext>,
    role: &role::Role,
) -> Vec<rmq_net::rt::Task<()>> {
    let broker = &core.broker;
    let generation = role.generation;
    let mut tasks = Vec::new();
    if role.role == rmq_core::config::BrokerRole::Slave {
        for store in core.shards.values() {
            let learner = broker.clone();
            store.observe_new_replica_queues(move |topic, queue_id| {
                metadata_sync::learn_topic(&learner, topic, queue_id);
            });
            let follow = slave::slave_loop(broker.clone(), store.clone(), generation);
            tasks.push(rmq_net::rt::spawn(follow));
        }
        if core.core == 0 {
            let sync = metadata_sync::sync_loop(broker.clone(), generation);
            tasks.push(rmq_net::rt::spawn(sync));
        }
    } else if core.core == 0 {
        tasks.push(rmq_net::rt::spawn(listener::listen(
            core.clone(),
            generation,
        )));
    }
    tasks
}

pub(super) fn ms(millis: i32, floor: u64) -> Duration {
    Duration::from_millis(u64::try_from(millis).unwrap_or(0).max(floor))
}

/// True once the broker stops or its role generation moves past `generation`.
pub(super) fn stopping_of(broker: &SharedContext, generation: u64) -> Rc<dyn Fn() -> bool> {
    let broker = broker.clone();
    Rc::new(move || role::outdated(&broker, generation))
}
