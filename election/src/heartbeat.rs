//! Heartbeats as the state records them, and the group commit of heartbeats: a batch of
//! reports that the raft leader writes as one log entry ([`Command::Heartbeats`]).
//!
//! Why batches: every raft write costs the leader one fsync, done one after the other
//! (openraft 0.9 appends each client write as its own entry and waits for its flush), so one
//! write per heartbeat capped a quorum at a few hundred heartbeats per second. The leader
//! instead collects the heartbeats that arrive while a heartbeat write is in flight into a
//! [`HeartbeatBatch`] and writes them together; applying the batch is, report by report,
//! what applying the single heartbeats in arrival order would have done.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{BrokerId, Command};

/// At most this many reports go into one log entry (one report is ~250 bytes of JSON, so an
/// entry stays well under 64 KiB, the size the raft log and its RPCs are built for). More
/// pending heartbeats wait for the next entry.
pub const MAX_HEARTBEATS_PER_ENTRY: usize = 200;

/// One BROKER_HEARTBEAT (904): liveness plus what the election compares. `epoch`,
/// `max_offset` and `confirm_offset` are -1 when unknown, `election_priority` is `i32::MAX`
/// when unset (smaller value = preferred). `timeout_ms` None: the config's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReport {
    pub cluster: String,
    pub broker_name: String,
    pub broker_id: BrokerId,
    pub address: String,
    pub epoch: i32,
    pub max_offset: i64,
    pub confirm_offset: i64,
    pub election_priority: i32,
    pub timeout_ms: Option<u64>,
}

impl HeartbeatReport {
    /// The replica it speaks for; two reports with the same key update the same record.
    fn key(&self) -> (&str, &str, BrokerId) {
        (&self.cluster, &self.broker_name, self.broker_id)
    }

    /// Folds `newer` (a later report of the same replica) into `self` so that applying the
    /// result equals applying `self` then `newer`: the newer report's time-out, priority and
    /// address win, and the progress (epoch, max offset with its confirm offset) is the
    /// larger of the two, the earlier one on a tie, as [`crate::ElectionState`] keeps it.
    fn absorb(&mut self, newer: HeartbeatReport) {
        assert_eq!(self.key(), newer.key(), "only reports of one replica merge");
        let progress = if (newer.epoch, newer.max_offset) > (self.epoch, self.max_offset) {
            (newer.epoch, newer.max_offset, newer.confirm_offset)
        } else {
            (self.epoch, self.max_offset, self.confirm_offset)
        };
        *self = HeartbeatReport {
            epoch: progress.0,
            max_offset: progress.1,
            confirm_offset: progress.2,
            ..newer
        };
    }
}

impl Command {
    /// The report of a single [`Command::Heartbeat`], None for every other command.
    pub fn heartbeat_report(&self) -> Option<HeartbeatReport> {
        let Command::Heartbeat {
            cluster,
            broker_name,
            broker_id,
            address,
            epoch,
            max_offset,
            confirm_offset,
            election_priority,
            timeout_ms,
        } = self
        else {
            return None;
        };
        Some(HeartbeatReport {
            cluster: cluster.clone(),
            broker_name: broker_name.clone(),
            broker_id: *broker_id,
            address: address.clone(),
            epoch: *epoch,
            max_offset: *max_offset,
            confirm_offset: *confirm_offset,
            election_priority: *election_priority,
            timeout_ms: *timeout_ms,
        })
    }
}

/// Heartbeats collected for one log entry, in arrival order, one report per replica: a
/// replica heard again before the entry is written has its report merged (the newest wins,
/// see `HeartbeatReport::absorb`), so a batch never holds more than one report per replica
/// and never more than [`MAX_HEARTBEATS_PER_ENTRY`] reports.
#[derive(Debug, Default)]
pub struct HeartbeatBatch {
    reports: Vec<HeartbeatReport>,
    /// (cluster, broker name, broker id) -> position in `reports`.
    slots: HashMap<(String, String, BrokerId), usize>,
}

impl HeartbeatBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `report` and returns its slot: the position of the answer for it in the
    /// [`crate::Outcome::HeartbeatsRecorded`] of the batch's entry. Gives `report` back when
    /// the batch is full and holds no report of its replica (it goes into the next batch).
    pub fn push(&mut self, report: HeartbeatReport) -> Result<usize, HeartbeatReport> {
        let key = (
            report.cluster.clone(),
            report.broker_name.clone(),
            report.broker_id,
        );
        if let Some(&slot) = self.slots.get(&key) {
            self.reports[slot].absorb(report);
            return Ok(slot);
        }
        if self.is_full() {
            return Err(report);
        }
        self.reports.push(report);
        self.slots.insert(key, self.reports.len() - 1);
        assert_eq!(
            self.slots.len(),
            self.reports.len(),
            "one report per replica"
        );
        Ok(self.reports.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.reports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.reports.len() >= MAX_HEARTBEATS_PER_ENTRY
    }

    /// The command that writes the batch (None when it is empty).
    pub fn into_command(self) -> Option<Command> {
        assert!(self.reports.len() <= MAX_HEARTBEATS_PER_ENTRY);
        (!self.reports.is_empty()).then_some(Command::Heartbeats(self.reports))
    }
}
