//! Epoch histories and their truncation point (RocketMQ 5 `EpochFileCache`).
//!
//! A replica's history lists, for each master epoch its log saw, the offset where that epoch
//! began; the last epoch runs to the log's end. Two logs hold the same bytes up to the end
//! of the newest epoch both saw starting at the same offset: that is where a replica that
//! follows a new master truncates to before it appends (`findConsistentPoint`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One epoch of a log: `epoch` started at `start_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEntry {
    pub epoch: u32,
    pub start_offset: u64,
}

/// A validated history: epochs strictly ascending, start offsets non-decreasing and not past
/// `end_offset` (the log's end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochHistory {
    entries: Vec<EpochEntry>,
    end_offset: u64,
}

/// Why a list of entries is not a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochHistoryError {
    EpochNotAscending { index: usize },
    StartOffsetDescending { index: usize },
    StartPastEnd { index: usize, end_offset: u64 },
}

impl fmt::Display for EpochHistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EpochNotAscending { index } => {
                write!(f, "entry {index}: epoch not above the previous one")
            }
            Self::StartOffsetDescending { index } => {
                write!(f, "entry {index}: start offset below the previous one")
            }
            Self::StartPastEnd { index, end_offset } => {
                write!(f, "entry {index}: starts past the log end {end_offset}")
            }
        }
    }
}

impl std::error::Error for EpochHistoryError {}

impl EpochHistory {
    pub fn new(entries: Vec<EpochEntry>, end_offset: u64) -> Result<Self, EpochHistoryError> {
        for (index, pair) in entries.windows(2).enumerate() {
            if pair[1].epoch <= pair[0].epoch {
                return Err(EpochHistoryError::EpochNotAscending { index: index + 1 });
            }
            if pair[1].start_offset < pair[0].start_offset {
                return Err(EpochHistoryError::StartOffsetDescending { index: index + 1 });
            }
        }
        if let Some(index) = entries
            .iter()
            .position(|entry| entry.start_offset > end_offset)
        {
            return Err(EpochHistoryError::StartPastEnd { index, end_offset });
        }
        Ok(Self {
            entries,
            end_offset,
        })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }

    /// Where entry `index` ends: the next entry's start, or the log end for the last one.
    fn entry_end(&self, index: usize) -> u64 {
        self.entries
            .get(index + 1)
            .map_or(self.end_offset, |next| next.start_offset)
    }
}

/// The offset up to which `local` and `remote` hold the same log: the end (the smaller of
/// the two) of the newest epoch that both have with the same start offset.
///
/// Without a shared epoch, 0 when both histories begin at offset 0 and every local epoch is
/// older than the remote's first one: the remote's log holds only newer epochs from its very
/// first byte, so nothing the local log holds is in it. That is how a replica that wrote
/// nothing in an epoch sees it (`begin` on the storage side replaces an epoch entry whose
/// epoch wrote nothing, so a slave promoted with an empty shard records `[(2, 0)]` where its
/// old master kept `[(1, 0)]`). None otherwise (RocketMQ returns -1): an operator decides.
pub fn consistent_point(local: &EpochHistory, remote: &EpochHistory) -> Option<u64> {
    shared_epoch_point(local, remote).or_else(|| newer_from_the_start(local, remote))
}

fn newer_from_the_start(local: &EpochHistory, remote: &EpochHistory) -> Option<u64> {
    let (local_first, local_last) = (local.entries.first()?, local.entries.last()?);
    let remote_first = remote.entries.first()?;
    let both_from_zero = local_first.start_offset == 0 && remote_first.start_offset == 0;
    (both_from_zero && local_last.epoch < remote_first.epoch).then_some(0)
}

fn shared_epoch_point(local: &EpochHistory, remote: &EpochHistory) -> Option<u64> {
    for (index, entry) in local.entries.iter().enumerate().rev() {
        let Ok(remote_index) = remote
            .entries
            .binary_search_by_key(&entry.epoch, |e| e.epoch)
        else {
            continue;
        };
        if remote.entries[remote_index].start_offset != entry.start_offset {
            continue;
        }
        let point = local.entry_end(index).min(remote.entry_end(remote_index));
        assert!(
            point >= entry.start_offset,
            "an epoch ends before it starts"
        );
        return Some(point);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(entries: &[(u32, u64)], end: u64) -> EpochHistory {
        let entries = entries
            .iter()
            .map(|&(epoch, start_offset)| EpochEntry {
                epoch,
                start_offset,
            })
            .collect();
        EpochHistory::new(entries, end).unwrap()
    }

    #[test]
    fn same_history_agrees_up_to_the_shorter_end() {
        let master = history(&[(1, 0), (2, 100)], 300);
        let slave = history(&[(1, 0), (2, 100)], 250);
        assert_eq!(consistent_point(&slave, &master), Some(250));
        assert_eq!(consistent_point(&master, &slave), Some(250));
    }

    #[test]
    fn slave_ahead_in_an_old_epoch_truncates_to_where_the_new_epoch_began() {
        // The old master wrote epoch 2 up to 180; the new master took over at 150 with epoch 3.
        let old_master = history(&[(1, 0), (2, 100)], 180);
        let new_master = history(&[(1, 0), (2, 100), (3, 150)], 400);
        assert_eq!(consistent_point(&old_master, &new_master), Some(150));
    }

    #[test]
    fn same_epoch_with_another_start_is_skipped() {
        let local = history(&[(1, 0), (2, 120)], 200);
        let remote = history(&[(1, 0), (2, 100)], 300);
        assert_eq!(consistent_point(&local, &remote), Some(100));
    }

    #[test]
    fn no_common_epoch_means_drop_everything() {
        let local = history(&[(4, 0)], 50);
        let remote = history(&[(1, 0), (2, 10)], 60);
        assert_eq!(consistent_point(&local, &remote), None);
        assert_eq!(consistent_point(&history(&[], 0), &remote), None);
    }

    #[test]
    fn a_remote_whose_first_epoch_is_newer_from_offset_zero_shares_nothing_but_offset_zero() {
        // The old master kept (1, 0) for a shard it wrote nothing (or only unacknowledged
        // messages) to; its slave, promoted with that shard empty, replaced its copy of (1, 0)
        // by (2, 0). The old master rejoins: it keeps nothing of that shard.
        let old_master = history(&[(1, 0)], 0);
        let new_master = history(&[(2, 0)], 40);
        assert_eq!(consistent_point(&old_master, &new_master), Some(0));
        assert_eq!(
            consistent_point(&history(&[(1, 0)], 25), &new_master),
            Some(0)
        );
        // Not when a local epoch is as new as the remote's first, or a history begins past 0.
        assert_eq!(
            consistent_point(&history(&[(1, 0), (2, 5)], 9), &new_master),
            None
        );
        assert_eq!(
            consistent_point(&history(&[(1, 0)], 9), &history(&[(2, 5)], 9)),
            None
        );
        assert_eq!(consistent_point(&new_master, &old_master), None);
    }

    #[test]
    fn epochs_missing_on_one_side_are_stepped_over() {
        let local = history(&[(1, 0), (3, 40), (5, 90)], 120);
        let remote = history(&[(1, 0), (2, 30), (3, 40), (6, 70)], 200);
        // Epoch 3 started at 40 on both; local's ends at 90, remote's at 70.
        assert_eq!(consistent_point(&local, &remote), Some(70));
    }

    #[test]
    fn malformed_histories_are_rejected() {
        let entry = |epoch, start_offset| EpochEntry {
            epoch,
            start_offset,
        };
        assert_eq!(
            EpochHistory::new(vec![entry(2, 0), entry(2, 5)], 10),
            Err(EpochHistoryError::EpochNotAscending { index: 1 })
        );
        assert_eq!(
            EpochHistory::new(vec![entry(1, 5), entry(2, 4)], 10),
            Err(EpochHistoryError::StartOffsetDescending { index: 1 })
        );
        assert_eq!(
            EpochHistory::new(vec![entry(1, 11)], 10),
            Err(EpochHistoryError::StartPastEnd {
                index: 0,
                end_offset: 10
            })
        );
    }
}
