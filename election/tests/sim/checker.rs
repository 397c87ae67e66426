//! The safety properties, checked after every step of a schedule.
//!
//! 1. At most one broker acknowledges in any master epoch.
//! 2. (`allAckInSyncStateSet=true`) every acknowledged record is held, at its offset, by
//!    every member of the controller's sync-state set.
//! 3. No acknowledged record is lost: the controller's master, once it has taken over,
//!    holds every acknowledged record at its offset (after every truncation).
//! 4. Epochs only grow: the controller's master and SSS epochs, each broker's learnt epoch,
//!    and the epochs within each broker's history.

use std::collections::BTreeMap;

use rmq_election::{BrokerId, EpochEntry, ReplicaInfo};

use super::network::Record;

/// A send the client got a success for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    pub id: u64,
    pub broker: BrokerId,
    pub epoch: u32,
    pub offset: u64,
}

/// What the checker reads of one broker.
pub struct BrokerSnapshot<'a> {
    pub id: BrokerId,
    pub log: &'a [Record],
    pub history: &'a [EpochEntry],
    pub known_epoch: u32,
    /// The epoch it is master at, if it acts as master.
    pub master_at: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    TwoMastersAcknowledged {
        epoch: u32,
        first: BrokerId,
        second: BrokerId,
    },
    TwoMastersInOneEpoch {
        epoch: u32,
        first: BrokerId,
        second: BrokerId,
    },
    AckedNotOnSyncStateMember {
        id: u64,
        offset: u64,
        member: BrokerId,
    },
    AckedLost {
        id: u64,
        offset: u64,
        master: BrokerId,
    },
    EpochWentBack {
        what: String,
        before: u32,
        after: u32,
    },
    HistoryNotAscending {
        broker: BrokerId,
    },
    Diverged(String),
}

/// What the checker remembers between steps.
#[derive(Default)]
pub struct Checker {
    acknowledger: BTreeMap<u32, BrokerId>,
    epochs: BTreeMap<String, u32>,
    /// Check property 2 (true for `allAckInSyncStateSet=true` only).
    pub sync_state_holdings: bool,
}

fn holds(log: &[Record], acked: &Acked) -> bool {
    log.get(acked.offset as usize)
        .is_some_and(|record| record.id == acked.id)
}

/// No two brokers act as master in the same epoch.
pub fn check_masters(brokers: &[BrokerSnapshot]) -> Result<(), Violation> {
    let mut masters: BTreeMap<u32, BrokerId> = BTreeMap::new();
    for broker in brokers {
        let Some(epoch) = broker.master_at else {
            continue;
        };
        let first = *masters.entry(epoch).or_insert(broker.id);
        if first != broker.id {
            return Err(Violation::TwoMastersInOneEpoch {
                epoch,
                first,
                second: broker.id,
            });
        }
    }
    Ok(())
}

impl Checker {
    pub fn new(sync_state_holdings: bool) -> Self {
        Self {
            sync_state_holdings,
            ..Self::default()
        }
    }

    pub fn check(
        &mut self,
        info: &ReplicaInfo,
        brokers: &[BrokerSnapshot],
        acked: &[Acked],
    ) -> Result<(), Violation> {
        self.check_acknowledgers(acked)?;
        check_masters(brokers)?;
        self.check_epochs(info, brokers)?;
        let broker = |id: BrokerId| brokers.iter().find(|b| b.id == id).expect("known broker");
        if self.sync_state_holdings {
            for member in &info.sync_state_set {
                let log = broker(*member).log;
                if let Some(missing) = acked.iter().find(|a| !holds(log, a)) {
                    return Err(Violation::AckedNotOnSyncStateMember {
                        id: missing.id,
                        offset: missing.offset,
                        member: *member,
                    });
                }
            }
        }
        if let Some(master) = info.master_broker_id
            && broker(master).master_at == Some(info.master_epoch)
            && let Some(missing) = acked.iter().find(|a| !holds(broker(master).log, a))
        {
            return Err(Violation::AckedLost {
                id: missing.id,
                offset: missing.offset,
                master,
            });
        }
        Ok(())
    }

    pub fn check_acknowledgers(&mut self, acked: &[Acked]) -> Result<(), Violation> {
        for ack in acked {
            let first = *self.acknowledger.entry(ack.epoch).or_insert(ack.broker);
            if first != ack.broker {
                return Err(Violation::TwoMastersAcknowledged {
                    epoch: ack.epoch,
                    first,
                    second: ack.broker,
                });
            }
        }
        Ok(())
    }

    fn check_epochs(
        &mut self,
        info: &ReplicaInfo,
        brokers: &[BrokerSnapshot],
    ) -> Result<(), Violation> {
        let mut now = vec![
            ("controller master epoch".to_owned(), info.master_epoch),
            ("controller SSS epoch".to_owned(), info.sync_state_set_epoch),
        ];
        for broker in brokers {
            if broker
                .history
                .windows(2)
                .any(|pair| pair[0].epoch >= pair[1].epoch)
            {
                return Err(Violation::HistoryNotAscending { broker: broker.id });
            }
            now.push((
                format!("broker {} learnt epoch", broker.id),
                broker.known_epoch,
            ));
        }
        for (what, after) in now {
            let before = self.epochs.insert(what.clone(), after).unwrap_or(0);
            if after < before {
                return Err(Violation::EpochWentBack {
                    what,
                    before,
                    after,
                });
            }
        }
        Ok(())
    }
}
