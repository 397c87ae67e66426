//! The raft log, vote and committed log id on disk.
//!
//! Files in the store directory:
//! - `raft-log`: append-only records `u32 length LE | u32 crc32 LE | JSON record`, a record
//!   being an appended entry, a truncation (conflicting suffix dropped) or a purge (prefix
//!   covered by a snapshot). Replaying the records rebuilds the in-memory log. A last record
//!   that is cut short or fails its CRC is cut off: it can only be an append whose fsync never
//!   returned, so openraft never counted it. A bad record with records after it is damage to
//!   entries raft already counted: the store refuses to open ([`ControllerError::Corrupt`])
//!   rather than forget them.
//! - `vote.json`: the vote, replaced atomically (fsynced) before `save_vote` returns.
//! - `committed.json`: the last committed log id, a restart hint only (openraft tolerates a
//!   stale one), so it is renamed into place without fsync.
//!
//! Every append, truncation and purge is fsynced (fdatasync) before it is reported done.
//! The whole log is also kept in memory: the controller's log is small (entries are a few
//! hundred bytes and a snapshot purges them every few thousand).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use crate::files::{blocking, read_optional, store_error, sync_dir, write_atomic};
use crate::replicated::{Replicated, TypeConfig};

const LOG_FILE: &str = "raft-log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
/// Record header: length and CRC32 of the JSON that follows.
const RECORD_HEADER: usize = 8;
/// A record longer than this is corruption, not an entry (entries are < 64 KiB).
const RECORD_MAX: usize = 16 << 20;
/// After a purge, the file is rewritten without the purged entries once it exceeds this.
const COMPACT_BYTES: u64 = 4 << 20;

type C<S> = TypeConfig<S>;

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
enum Record<S: Replicated> {
    Append(Entry<C<S>>),
    TruncateFrom(u64),
    PurgeTo(LogId<u64>),
}

struct LogInner<S: Replicated> {
    dir: PathBuf,
    file: File,
    file_len: u64,
    entries: BTreeMap<u64, Entry<C<S>>>,
    last_purged: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
}

/// The durable raft log of one controller; clones share it (openraft reads through a clone
/// while the raft core appends).
pub(crate) struct LogStore<S: Replicated> {
    inner: Arc<Mutex<LogInner<S>>>,
}

impl<S: Replicated> Clone for LogStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

fn io_err(e: &ControllerError) -> AnyError {
    AnyError::new(e)
}

impl<S: Replicated> LogStore<S> {
    /// Opens (or creates) the log in `dir`, replaying `raft-log` and cutting a torn tail.
    pub(crate) fn open(dir: &Path) -> Result<Self, ControllerError> {
        std::fs::create_dir_all(dir).map_err(store_error("create dir", dir))?;
        let path = dir.join(LOG_FILE);
        let bytes = read_optional(&path)?.unwrap_or_default();
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let good = replay::<S>(&bytes, &mut entries, &mut last_purged);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(store_error("open", &path))?;
        if good < bytes.len() && !reaches_end(&bytes, good) {
            return Err(ControllerError::Corrupt {
                path,
                reason: format!(
                    "bad record at byte {good} of {} with records after it; restore the \
                     directory from another controller or delete it to rejoin empty",
                    bytes.len()
                ),
            });
        }
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(), kept = good, dropped = bytes.len() - good,
                "raft log ends with a torn or corrupt record; cutting it off"
            );
            file.set_len(good as u64)
                .map_err(store_error("truncate", &path))?;
            file.sync_all().map_err(store_error("fsync", &path))?;
        }
        sync_dir(&path)?;
        let vote = decode_optional(&dir.join(VOTE_FILE))?;
        let committed = decode_optional(&dir.join(COMMITTED_FILE))?.flatten();
        tracing::info!(
            dir = %dir.display(), entries = entries.len(), ?last_purged, ?vote, "raft log opened"
        );
        Ok(Self {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_path_buf(),
                file,
                file_len: good as u64,
                entries,
                last_purged,
                vote,
                committed,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogInner<S>> {
        // A poisoned lock means a panic mid-update; the process aborts on panic in release,
        // so continuing here only happens in tests.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies the records of `bytes` in order; returns the length of the valid prefix.
fn replay<S: Replicated>(
    bytes: &[u8],
    entries: &mut BTreeMap<u64, Entry<C<S>>>,
    last_purged: &mut Option<LogId<u64>>,
) -> usize {
    let mut pos = 0;
    while let Some((record, next)) = next_record::<S>(bytes, pos) {
        match record {
            Record::Append(entry) => {
                entries.insert(entry.log_id.index, entry);
            }
            Record::TruncateFrom(index) => {
                entries.split_off(&index);
            }
            Record::PurgeTo(log_id) => {
                *entries = entries.split_off(&(log_id.index + 1));
                *last_purged = Some(log_id);
            }
        }
        pos = next;
    }
    pos
}

/// Whether the record at `pos` claims to extend to the end of the file or beyond (a torn
/// append) rather than ending before other bytes.
fn reaches_end(bytes: &[u8], pos: usize) -> bool {
    let Some(header) = bytes.get(pos..pos + RECORD_HEADER) else {
        return true;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    pos + RECORD_HEADER + len >= bytes.len()
}

fn next_record<S: Replicated>(bytes: &[u8], pos: usize) -> Option<(Record<S>, usize)> {
    let header = bytes.get(pos..pos + RECORD_HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > RECORD_MAX {
        return None;
    }
    let body = bytes.get(pos + RECORD_HEADER..pos + RECORD_HEADER + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let record = serde_json::from_slice(body).ok()?;
    Some((record, pos + RECORD_HEADER + len))
}

fn encode_record<S: Replicated>(record: &Record<S>, out: &mut Vec<u8>) {
    let body = serde_json::to_vec(record).expect("raft records serialize to JSON");
    assert!(
        body.len() <= RECORD_MAX,
        "raft record of {} bytes",
        body.len()
    );
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

fn decode_optional<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, ControllerError> {
    match read_optional(path)? {
        None => Ok(None),
        Some(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ControllerError::Corrupt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
    }
}

impl<S: Replicated> LogInner<S> {
    /// Appends `bytes` (whole records) and fdatasyncs them.
    fn write_records(&mut self, bytes: &[u8]) -> Result<(), ControllerError> {
        let path = self.dir.join(LOG_FILE);
        self.file
            .write_all(bytes)
            .map_err(store_error("append", &path))?;
        self.file.sync_data().map_err(store_error("fsync", &path))?;
        self.file_len += bytes.len() as u64;
        Ok(())
    }

    /// Rewrites the log file with only the live records (after a purge made it mostly dead).
    fn compact(&mut self) -> Result<(), ControllerError> {
        let mut bytes = Vec::new();
        if let Some(purged) = self.last_purged {
            encode_record::<S>(&Record::PurgeTo(purged), &mut bytes);
        }
        for entry in self.entries.values() {
            encode_record::<S>(&Record::Append(entry.clone()), &mut bytes);
        }
        let path = self.dir.join(LOG_FILE);
        write_atomic(&path, &bytes)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(store_error("open", &path))?;
        self.file_len = bytes.len() as u64;
        tracing::debug!(bytes = self.file_len, "raft log compacted");
        Ok(())
    }
}

impl<S: Replicated> RaftLogReader<C<S>> for LogStore<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C<S>>>, StorageError<u64>> {
        let inner = self.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl<S: Replicated> RaftLogStorage<C<S>> for LogStore<S> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C<S>>, StorageError<u64>> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let mut inner = self.lock();
        let bytes = serde_json::to_vec(vote).expect("vote serializes");
        blocking(|| write_atomic(&inner.dir.join(VOTE_FILE), &bytes))
            .map_err(|e| StorageIOError::write_vote(io_err(&e)))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let mut inner = self.lock();
        let path = inner.dir.join(COMMITTED_FILE);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(&committed).expect("log id serializes");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C<S>>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<C<S>>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        let mut bytes = Vec::new();
        let mut appended = Vec::new();
        for entry in entries {
            encode_record::<S>(&Record::Append(entry.clone()), &mut bytes);
            appended.push(entry);
        }
        if let Err(e) = blocking(|| inner.write_records(&bytes)) {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(StorageIOError::write_logs(io_err(&e)).into());
        }
        for entry in appended {
            // Raft appends in index order; a gap would mean openraft skipped an entry.
            if let Some((&last, _)) = inner.entries.iter().next_back() {
                assert!(
                    entry.log_id.index == last + 1,
                    "raft log gap: {last} then {}",
                    entry.log_id
                );
            }
            inner.entries.insert(entry.log_id.index, entry);
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut inner = self.lock();
        let mut bytes = Vec::new();
        encode_record::<S>(&Record::TruncateFrom(log_id.index), &mut bytes);
        blocking(|| inner.write_records(&bytes))
            .map_err(|e| StorageIOError::write_logs(io_err(&e)))?;
        inner.entries.split_off(&log_id.index);
        tracing::info!(from = %log_id, "raft log truncated");
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut inner = self.lock();
        assert!(
            inner.last_purged.is_none_or(|p| p.index <= log_id.index),
            "raft log purge goes backwards: {:?} then {log_id}",
            inner.last_purged
        );
        let mut bytes = Vec::new();
        encode_record::<S>(&Record::PurgeTo(log_id), &mut bytes);
        blocking(|| inner.write_records(&bytes))
            .map_err(|e| StorageIOError::write_logs(io_err(&e)))?;
        let kept = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = kept;
        inner.last_purged = Some(log_id);
        if inner.file_len > COMPACT_BYTES {
            inner
                .compact()
                .map_err(|e| StorageIOError::write_logs(io_err(&e)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicated::test_machine::{Log, block_on, entry};

    fn write_appends(dir: &Path, indexes: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        let mut bytes = Vec::new();
        for i in indexes {
            encode_record::<Log>(&Record::Append(entry(i, i * 10, i as u32)), &mut bytes);
        }
        std::fs::write(dir.join(LOG_FILE), &bytes).unwrap();
        bytes
    }

    fn indexes(store: &mut LogStore<Log>) -> Vec<u64> {
        let entries = block_on(store.try_get_log_entries(0..)).unwrap();
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let good = write_appends(dir.path(), 1..=5);
        let mut torn = good.clone();
        let mut sixth = Vec::new();
        encode_record::<Log>(&Record::Append(entry(6, 60, 6)), &mut sixth);
        torn.extend_from_slice(&sixth[..sixth.len() - 3]);
        std::fs::write(dir.path().join(LOG_FILE), &torn).unwrap();

        let mut store = LogStore::<Log>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store), [1, 2, 3, 4, 5]);
        let on_disk = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
        assert_eq!(on_disk, good, "the torn record is gone from the file");
    }

    #[test]
    fn a_flipped_byte_in_the_last_record_cuts_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = write_appends(dir.path(), 1..=3);
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        std::fs::write(dir.path().join(LOG_FILE), &bytes).unwrap();
        let mut store = LogStore::<Log>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store), [1, 2]);
    }

    #[test]
    fn a_damaged_record_before_others_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = write_appends(dir.path(), 1..=3);
        bytes[RECORD_HEADER + 5] ^= 0x20;
        std::fs::write(dir.path().join(LOG_FILE), &bytes).unwrap();
        let err = LogStore::<Log>::open(dir.path()).err().expect("refused");
        assert!(matches!(err, ControllerError::Corrupt { .. }), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join(LOG_FILE)).unwrap(),
            bytes,
            "file untouched"
        );
    }

    #[test]
    fn truncation_purge_and_vote_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        write_appends(dir.path(), 1..=10);
        let mut store = LogStore::<Log>::open(dir.path()).unwrap();
        block_on(store.truncate(*entry(8, 0, 0).get_log_id())).unwrap();
        block_on(store.purge(*entry(3, 0, 0).get_log_id())).unwrap();
        let vote = Vote::new(4, 7);
        block_on(store.save_vote(&vote)).unwrap();
        drop(store);

        let mut store = LogStore::<Log>::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store), [4, 5, 6, 7]);
        let state = block_on(store.get_log_state()).unwrap();
        assert_eq!(state.last_purged_log_id.map(|id| id.index), Some(3));
        assert_eq!(state.last_log_id.map(|id| id.index), Some(7));
        assert_eq!(block_on(store.read_vote()).unwrap(), Some(vote));
    }
}
