//! A slave's replication clients: one per shard, reconnecting after any failure.

use std::rc::Rc;
use std::time::Duration;

use rmq_ha::slave::SlaveSettings;
use rmq_storage::ShardStore;

use super::{ms, stopping_of};
use crate::context::{BrokerContext, SharedContext};

/// Pause before a slave reconnects after a failed session.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

fn slave_settings(broker: &BrokerContext, min_master_epoch: i32) -> SlaveSettings {
    let config = &broker.config;
    SlaveSettings {
        connect_timeout: Duration::from_secs(3),
        heartbeat: ms(config.ha_send_heartbeat_interval, 100),
        housekeeping: ms(config.ha_housekeeping_interval, 1000),
        max_body: 64 << 20,
        read_buffer: 1 << 20,
        min_master_epoch,
        slave_id: match broker.role.controller_mode() {
            true => broker.role.snapshot().controller_id,
            false => 0,
        },
    }
}

/// One shard of a slave: replicate, and reconnect after any failure, until role
/// `generation` is outdated.
pub(super) async fn slave_loop(broker: SharedContext, store: Rc<ShardStore>, generation: u64) {
    // Controller mode: only a master at the controller's epoch (or newer) is followed.
    let epoch = broker.role.snapshot().epoch;
    let settings = slave_settings(&broker, epoch);
    let mut last_error = String::new();
    while !super::role::outdated(&broker, generation) {
        let Some(addr) = broker.replication.master_ha_addr(&broker) else {
            let pause = Duration::from_millis(200);
            super::role::sleep_unless_outdated(&broker, generation, pause).await;
            continue;
        };
        let outcome = rmq_ha::slave::replicate_shard(
            &store,
            &addr,
            &settings,
            stopping_of(&broker, generation),
        )
        .await;
        if let Err(error) = outcome {
            if broker.role.controller_mode() {
                // The HA address may be the old master's: ask the name servers again.
                broker.request_registration();
            }
            let text = error.to_string();
            // A refused handshake or a dead master repeats every second: log changes only.
            if text != last_error {
                if matches!(error, rmq_ha::HaError::TooFarBehind { .. }) {
                    // Retrying cannot help: the operator must wipe this slave's store.
                    tracing::error!(shard = store.shard(), addr, %error, "slave cannot resync");
                } else {
                    tracing::warn!(shard = store.shard(), addr, %error, "replication session ended");
                }
                last_error = text;
            }
        }
        // Elected while it waits, the broker takes writes only once this loop ended.
        super::role::sleep_unless_outdated(&broker, generation, RECONNECT_DELAY).await;
    }
}
