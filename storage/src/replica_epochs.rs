//! A shard's epoch history at work (controller mode; `epoch_history.rs` holds the history and
//! its file): a master starts an epoch at its log end before it accepts writes, a slave mirrors
//! its master's history as its log reaches each entry, and a slave that follows a new master
//! cuts its log back to the consistent point of both histories.
//!
//! Contract: like `truncate_replica`, [`ShardStore::truncate_to_consistent_point`] and
//! [`ShardStore::adopt_epochs`] run on a slave's shard while its replication stream is stopped
//! or between two applied chunks; [`ShardStore::begin_epoch`] runs before the shard accepts
//! the new master's first write (nothing appends between reading the end and writing the file:
//! it does not await). Without an epoch file (classic master/slave) each of them fails with
//! `NoEpochHistory`.

use crate::epoch_history::{EpochEntry, EpochHistory, find_consistent_point};
use crate::error::StoreError;
use crate::shard_store::ShardStore;

/// What [`ShardStore::truncate_to_consistent_point`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsistentPoint {
    /// This history is empty (a replica that was never in controller mode): nothing to
    /// compare; the byte checks of the handshake decide.
    Unknown,
    /// The log agrees with the master's up to its end: nothing cut.
    Agrees,
    /// The log was cut back to this offset.
    Truncated(i64),
}

impl ShardStore {
    fn with_epochs<T>(
        &self,
        f: impl FnOnce(&mut EpochHistory) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut epochs = self.epochs.borrow_mut();
        let history = epochs
            .as_mut()
            .ok_or(StoreError::NoEpochHistory { shard: self.shard })?;
        f(history)
    }

    /// Whether this store keeps an epoch history (controller mode).
    pub fn has_epoch_history(&self) -> bool {
        self.epochs.borrow().is_some()
    }

    /// The epoch history (empty without one).
    pub fn epoch_entries(&self) -> Vec<EpochEntry> {
        self.epochs
            .borrow()
            .as_ref()
            .map_or_else(Vec::new, |h| h.entries().to_vec())
    }

    /// The newest epoch of the history, -1 when empty or without one.
    pub fn last_epoch(&self) -> i32 {
        self.epochs.borrow().as_ref().map_or(-1, |h| h.last_epoch())
    }

    /// This shard's log from its end on is written by the master of `epoch` (this broker):
    /// appends `(epoch, max_physical_offset)` to the history (a no-op for the newest epoch).
    ///
    /// # Errors
    /// `EpochRegression` for an epoch older than the newest one; `TruncationPending`; `Io`;
    /// `NoEpochHistory`.
    pub fn begin_epoch(&self, epoch: i32) -> Result<bool, StoreError> {
        if self.pending_cut.borrow().is_some() {
            return Err(StoreError::TruncationPending { shard: self.shard });
        }
        let end = self.log.appended();
        let began = self.with_epochs(|h| h.begin(epoch, end))?;
        if began {
            tracing::info!(shard = self.shard, epoch, start = end, "epoch begins");
        }
        Ok(began)
    }

    /// A slave's history becomes its master's entries up to its own log end (see
    /// [`EpochHistory::adopt`]); call it after the handshake agreed and as the log grows.
    ///
    /// # Errors
    /// `Corrupt` for a master history out of order; `Io`; `NoEpochHistory`.
    pub fn adopt_epochs(&self, master: &[EpochEntry]) -> Result<bool, StoreError> {
        let end = self.log.appended();
        self.with_epochs(|h| h.adopt(master, end))
    }

    /// Cuts this slave's log back to where it stops agreeing with a master whose history is
    /// `master` and whose log ends at `master_end` (see `find_consistent_point`), dropping the
    /// consume queue entries, index coverage and epoch entries past it (`truncate_replica`).
    ///
    /// # Errors
    /// `NoConsistentPoint` when `find_consistent_point` finds no point (an operator must decide
    /// which copy to keep); the errors of `truncate_replica`; `NoEpochHistory`.
    pub async fn truncate_to_consistent_point(
        &self,
        master: &[EpochEntry],
        master_end: i64,
    ) -> Result<ConsistentPoint, StoreError> {
        if self.pending_cut.borrow().is_some() {
            self.truncate_replica(self.log.appended()).await?;
        }
        let local = self.with_epochs(|h| Ok(h.entries().to_vec()))?;
        if local.is_empty() {
            return Ok(ConsistentPoint::Unknown);
        }
        let end = self.log.appended();
        let Some(point) = find_consistent_point(&local, end, master, master_end) else {
            return Err(StoreError::NoConsistentPoint {
                shard: self.shard,
                reason: format!("local {local:?}, master {master:?}"),
            });
        };
        assert!(point <= end, "a consistent point never passes the log end");
        if point == end {
            return Ok(ConsistentPoint::Agrees);
        }
        tracing::warn!(
            shard = self.shard,
            end,
            point,
            ?local,
            ?master,
            "log differs from the new master's past the consistent point"
        );
        self.truncate_replica(point).await?;
        Ok(ConsistentPoint::Truncated(self.log.appended()))
    }

    /// Step 6 of a truncation (`replica_truncate.rs`).
    pub(crate) fn truncate_epochs_from(&self, to: i64) -> Result<(), StoreError> {
        if let Some(history) = self.epochs.borrow_mut().as_mut() {
            history.truncate_from(to)?;
        }
        Ok(())
    }
}
