//! `ElectionState`: all broker groups plus the config, and `apply`, the one entry point that
//! changes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ElectionConfig;
use crate::group::BrokerGroup;
use crate::{Command, Outcome};

/// The controller's replicated state machine. Deterministic: the same commands with the same
/// `now_ms` stamps give the same state and outcomes on every replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionState {
    pub(crate) config: ElectionConfig,
    /// Keyed by `brokerName` (RocketMQ's controller tables are too).
    pub(crate) groups: BTreeMap<String, BrokerGroup>,
    /// The largest `now_ms` applied so far; a smaller stamp (raft leader with a slower clock)
    /// is raised to it, so liveness never jumps back to a time before the last decision.
    pub(crate) clock_ms: u64,
}

impl ElectionState {
    pub fn new(config: ElectionConfig) -> Self {
        Self {
            config,
            groups: BTreeMap::new(),
            clock_ms: 0,
        }
    }

    pub fn config(&self) -> &ElectionConfig {
        &self.config
    }

    /// Applies one command stamped with the raft leader's clock `now_ms`.
    pub fn apply(&mut self, now_ms: u64, cmd: &Command) -> Outcome {
        let epochs_before = self.epochs();
        self.clock_ms = self.clock_ms.max(now_ms);
        let now_ms = self.clock_ms;
        let outcome = match cmd {
            Command::ApplyBrokerId {
                cluster,
                broker_name,
                broker_id,
                register_check_code,
            } => self.apply_broker_id(cluster, broker_name, *broker_id, register_check_code),
            Command::RegisterBroker {
                cluster,
                broker_name,
                broker_id,
                address,
            } => self.register_broker(now_ms, cluster, broker_name, *broker_id, address),
            Command::Heartbeat { .. } => {
                let report = cmd.heartbeat_report().expect("a heartbeat command");
                self.heartbeat(now_ms, &report)
            }
            Command::Heartbeats(reports) => {
                let outcomes: Vec<Outcome> = reports
                    .iter()
                    .map(|report| self.heartbeat(now_ms, report))
                    .collect();
                assert_eq!(outcomes.len(), reports.len(), "one outcome per report");
                Outcome::HeartbeatsRecorded(outcomes)
            }
            Command::AlterSyncStateSet {
                broker_name,
                master_broker_id,
                master_epoch,
                new_sync_state_set,
                sync_state_set_epoch,
            } => self.alter_sync_state_set(
                now_ms,
                broker_name,
                *master_broker_id,
                *master_epoch,
                new_sync_state_set,
                *sync_state_set_epoch,
            ),
            Command::ElectMaster {
                broker_name,
                broker_id,
                designate,
            } => self.elect_master(now_ms, broker_name, *broker_id, *designate),
            Command::BrokerLost {
                broker_name,
                broker_id,
            } => self.broker_lost(now_ms, broker_name, *broker_id),
            Command::Tick => self.tick(now_ms, None),
            Command::Scan { silent_masters } => self.tick(now_ms, Some(silent_masters)),
            Command::CleanBrokerData {
                broker_name,
                broker_ids,
                clean_living,
            } => self.clean_broker_data(now_ms, broker_name, broker_ids.as_ref(), *clean_living),
            Command::SetElectUncleanMaster { enable } => {
                self.config.enable_elect_unclean_master = *enable;
                Outcome::ConfigChanged
            }
        };
        self.assert_invariants(&epochs_before);
        outcome
    }

    fn epochs(&self) -> BTreeMap<String, (u32, u32)> {
        self.groups
            .iter()
            .map(|(name, group)| {
                (
                    name.clone(),
                    (group.master_epoch, group.sync_state_set_epoch),
                )
            })
            .collect()
    }

    /// Every group's own invariants, and epochs of surviving groups never went back.
    fn assert_invariants(&self, epochs_before: &BTreeMap<String, (u32, u32)>) {
        for (name, group) in &self.groups {
            assert_eq!(name, &group.broker_name);
            group.assert_invariants();
            if let Some(&(master_epoch, sync_state_set_epoch)) = epochs_before.get(name) {
                assert!(
                    group.master_epoch >= master_epoch,
                    "{name}: master epoch went back"
                );
                assert!(
                    group.sync_state_set_epoch >= sync_state_set_epoch,
                    "{name}: SSS epoch went back"
                );
            }
        }
    }
}
