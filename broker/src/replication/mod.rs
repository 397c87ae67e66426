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
//! This module owns [`ReplicationInfo`] (where a slave's master is) and [`start`].

pub mod ack_policy;
mod listener;
pub mod metadata_sync;
mod slave;

use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
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

    pub fn master_addr(&self) -> Option<String> {
        self.master_addr
            .lock()
            .expect("replication info lock")
            .clone()
    }

    /// `haMasterAddress` if configured, else what the name servers said.
    pub fn master_ha_addr(&self, broker: &BrokerContext) -> Option<String> {
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

/// Starts this core's replication duties (see the module docs).
pub fn start(core: &Rc<CoreContext>) {
    let broker = &core.broker;
    if broker.is_slave() {
        for store in core.shards.values() {
            let learner = broker.clone();
            store.observe_new_replica_queues(move |topic, queue_id| {
                metadata_sync::learn_topic(&learner, topic, queue_id);
            });
            rmq_net::rt::spawn(slave::slave_loop(broker.clone(), store.clone())).detach();
        }
        if core.core == 0 {
            rmq_net::rt::spawn(metadata_sync::sync_loop(broker.clone())).detach();
        }
    } else if core.core == 0 {
        rmq_net::rt::spawn(listener::listen(core.clone())).detach();
    }
}

pub(super) fn ms(millis: i32, floor: u64) -> Duration {
    Duration::from_millis(u64::try_from(millis).unwrap_or(0).max(floor))
}

pub(super) fn stopping_of(broker: &SharedContext) -> Rc<dyn Fn() -> bool> {
    let broker = broker.clone();
    Rc::new(move || broker.stopping.load(Ordering::Acquire))
}
