//! A modelled broker: a durable log of (epoch, id) records, its epoch history, the highest
//! master epoch it has learnt, and its role. Masters acknowledge and keep their sync-state
//! set per `MasterSyncView` (the broker's own `SyncStateUpkeep`); slaves follow only the
//! master the controller named, truncate to the consistent point with it, and refuse
//! streams of an older epoch.

use rmq_election::{BrokerId, EpochEntry, EpochHistory, ReplicaInfo, consistent_point};

use super::master::MasterSyncView;
use super::network::Record;

#[derive(Clone, Debug)]
pub enum Role {
    /// Just started, or the controller knows no master.
    Unknown,
    Master(Box<MasterSyncView>),
    Slave {
        master: BrokerId,
        epoch: u32,
    },
}

#[derive(Debug)]
pub struct Broker {
    pub id: BrokerId,
    pub up: bool,
    pub log: Vec<Record>,
    pub history: Vec<EpochEntry>,
    /// Persisted with the log (RocketMQ's epoch file): the highest master epoch learnt.
    pub known_epoch: u32,
    pub role: Role,
    pub priority: i32,
    /// The mastership this slave has synced with since it started: later streams of the same
    /// mastership that are shorter than the log are old, overtaken messages.
    synced_with: Option<(BrokerId, u32)>,
    /// Records dropped by truncation so far (to show schedules exercise it).
    pub truncated_records: u64,
    /// A rule broken on purpose: take any master's stream, ignoring epochs.
    follows_any_master: bool,
    /// Stopped (SIGSTOP) until then: it neither runs nor reads, its connections stay up.
    pub frozen_until_ms: u64,
}

/// What went wrong inside a broker that the checker reports.
#[derive(Debug)]
pub struct Divergence(pub String);

impl Broker {
    pub fn new(id: BrokerId, priority: i32, follows_any_master: bool) -> Self {
        Self {
            id,
            up: true,
            log: Vec::new(),
            history: Vec::new(),
            known_epoch: 0,
            role: Role::Unknown,
            priority,
            synced_with: None,
            truncated_records: 0,
            follows_any_master,
            frozen_until_ms: 0,
        }
    }

    /// Up and not stopped at `now_ms`.
    pub fn runs(&self, now_ms: u64) -> bool {
        self.up && now_ms >= self.frozen_until_ms
    }

    pub fn crash(&mut self) {
        self.up = false;
        self.frozen_until_ms = 0;
        self.role = Role::Unknown;
        self.synced_with = None;
    }

    pub fn restart(&mut self) {
        self.up = true;
    }

    pub fn master_view(&self) -> Option<&MasterSyncView> {
        match &self.role {
            Role::Master(view) if self.up => Some(view),
            _ => None,
        }
    }

    pub fn last_epoch(&self) -> i32 {
        self.history.last().map_or(-1, |entry| entry.epoch as i32)
    }

    /// The controller's view arrived (an answer or a role-change notification).
    pub fn learn(&mut self, info: &ReplicaInfo) {
        if !self.up || info.master_epoch < self.known_epoch {
            return;
        }
        if info.master_epoch == self.known_epoch
            && let Role::Master(view) = &mut self.role
        {
            assert_eq!(info.master_broker_id, Some(self.id), "one master per epoch");
            view.learn(&info.sync_state_set, info.sync_state_set_epoch);
            return;
        }
        self.known_epoch = info.master_epoch;
        self.role = match info.master_broker_id {
            Some(id) if id == self.id => self.become_master(info),
            Some(master) => Role::Slave {
                master,
                epoch: info.master_epoch,
            },
            None => Role::Unknown,
        };
    }

    fn become_master(&mut self, info: &ReplicaInfo) -> Role {
        let end = self.log.len() as u64;
        if self
            .history
            .last()
            .is_none_or(|entry| entry.epoch < info.master_epoch)
        {
            self.history.push(EpochEntry {
                epoch: info.master_epoch,
                start_offset: end,
            });
        }
        assert_eq!(
            self.history.last().map(|e| e.epoch),
            Some(info.master_epoch)
        );
        Role::Master(Box::new(MasterSyncView::new(
            self.id,
            info.master_epoch,
            &info.sync_state_set,
            info.sync_state_set_epoch,
            end,
        )))
    }

    /// A client send: appended when this broker is master. Returns the record's offset.
    pub fn append(&mut self, id: u64) -> Option<(u32, u64)> {
        let Role::Master(view) = &mut self.role else {
            return None;
        };
        let epoch = view.master_epoch();
        let offset = self.log.len() as u64;
        self.log.push(Record { epoch, id });
        view.record_local(offset + 1);
        Some((epoch, offset))
    }

    /// A master's stream arrived. Returns the end to acknowledge, if it was accepted.
    pub fn replicate(
        &mut self,
        from: BrokerId,
        epoch: u32,
        log: &[Record],
        history: &[EpochEntry],
    ) -> Result<Option<u64>, Divergence> {
        let following = match self.role {
            Role::Slave {
                master,
                epoch: followed,
            } => (master == from && followed == epoch) || self.follows_any_master,
            _ => false,
        };
        if !self.up || !following || (epoch < self.known_epoch && !self.follows_any_master) {
            return Ok(None);
        }
        if self.synced_with == Some((from, epoch)) && log.len() < self.log.len() {
            return Ok(None);
        }
        let local = EpochHistory::new(self.history.clone(), self.log.len() as u64)
            .expect("own history is valid");
        let remote =
            EpochHistory::new(history.to_vec(), log.len() as u64).expect("master history is valid");
        let point = consistent_point(&local, &remote).unwrap_or(0) as usize;
        if let Some(offset) = (0..point).find(|&offset| self.log[offset].id != log[offset].id) {
            return Err(Divergence(format!(
                "broker {}: consistent point {point} with master {from} but offset {offset} differs",
                self.id
            )));
        }
        self.truncated_records += (self.log.len() - point) as u64;
        self.log.truncate(point);
        self.log.extend_from_slice(&log[point..]);
        self.history = history.to_vec();
        self.synced_with = Some((from, epoch));
        Ok(Some(self.log.len() as u64))
    }
}
