//! Applies committed entries to the replicated state and keeps its snapshot on disk.
//!
//! The applied state lives in memory only; `snapshot.json` (meta + state, replaced
//! atomically) is its durable form. After a restart the state is the snapshot's, and
//! openraft re-applies the committed entries above it from the raft log.
//!
//! Time: an entry is applied at `max(its stamp, the largest stamp applied before)`, so the
//! state never sees time go backwards when leaders' clocks disagree; that clock is part of
//! the snapshot so every member computes the same times.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use crate::files::{blocking, read_optional, write_atomic};
use crate::replicated::{Replicated, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.json";

type C<S> = TypeConfig<S>;

/// The state and what it has applied; shared by the raft core and the readers.
pub(crate) struct Applied<S> {
    pub(crate) state: S,
    /// The time of the last applied entry (see the module doc).
    pub(crate) clock_ms: u64,
    pub(crate) last_applied: Option<LogId<u64>>,
    pub(crate) membership: StoredMembership<u64, BasicNode>,
}

/// What a snapshot's data holds: the state and its clock.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct SnapshotData<S: Replicated> {
    clock_ms: u64,
    state: S,
}

impl<S: Replicated> SnapshotData<S> {
    fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, BasicNode>,
    /// [`SnapshotData`] as JSON (the bytes sent to a lagging follower).
    data: Vec<u8>,
}

/// The state machine store of one controller; clones share it.
pub(crate) struct StateMachineStore<S: Replicated> {
    dir: PathBuf,
    applied: Arc<Mutex<Applied<S>>>,
    snapshot: Arc<Mutex<Option<SnapshotFile>>>,
}

impl<S: Replicated> Clone for StateMachineStore<S> {
    fn clone(&self) -> Self {
        Self {
            dir: self.dir.clone(),
            applied: self.applied.clone(),
            snapshot: self.snapshot.clone(),
        }
    }
}

impl<S: Replicated> StateMachineStore<S> {
    /// Opens the store in `dir`, starting from its snapshot when there is one, else from
    /// `initial`.
    pub(crate) fn open(dir: &Path, initial: S) -> Result<Self, ControllerError> {
        let path = dir.join(SNAPSHOT_FILE);
        let corrupt = |reason: String| ControllerError::Corrupt {
            path: path.clone(),
            reason,
        };
        let (applied, snapshot) = match read_optional(&path)? {
            None => (
                Applied {
                    state: initial,
                    clock_ms: 0,
                    last_applied: None,
                    membership: StoredMembership::default(),
                },
                None,
            ),
            Some(bytes) => {
                let file: SnapshotFile =
                    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                let data =
                    SnapshotData::<S>::decode(&file.data).map_err(|e| corrupt(e.to_string()))?;
                tracing::info!(last = ?file.meta.last_log_id, "controller state loaded from snapshot");
                let applied = Applied {
                    state: data.state,
                    clock_ms: data.clock_ms,
                    last_applied: file.meta.last_log_id,
                    membership: file.meta.last_membership.clone(),
                };
                (applied, Some(file))
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            applied: Arc::new(Mutex::new(applied)),
            snapshot: Arc::new(Mutex::new(snapshot)),
        })
    }

    pub(crate) fn applied(&self) -> MutexGuard<'_, Applied<S>> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot_slot(&self) -> MutexGuard<'_, Option<SnapshotFile>> {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self, file: SnapshotFile) -> Result<Snapshot<C<S>>, ControllerError> {
        let bytes = serde_json::to_vec(&file).expect("snapshot serializes");
        blocking(|| write_atomic(&self.dir.join(SNAPSHOT_FILE), &bytes))?;
        let snapshot = Snapshot {
            meta: file.meta.clone(),
            snapshot: Box::new(Cursor::new(file.data.clone())),
        };
        *self.snapshot_slot() = Some(file);
        Ok(snapshot)
    }
}

fn snapshot_id(last: Option<LogId<u64>>) -> String {
    match last {
        Some(id) => format!(
            "{}-{}-{}",
            id.leader_id.term, id.leader_id.node_id, id.index
        ),
        None => "empty".to_string(),
    }
}

impl<S: Replicated> RaftSnapshotBuilder<C<S>> for StateMachineStore<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<C<S>>, StorageError<u64>> {
        let file = {
            let applied = self.applied();
            let data = serde_json::to_vec(&SnapshotData::<S> {
                clock_ms: applied.clock_ms,
                state: applied.state.clone(),
            })
            .expect("state serializes");
            SnapshotFile {
                meta: SnapshotMeta {
                    last_log_id: applied.last_applied,
                    last_membership: applied.membership.clone(),
                    snapshot_id: snapshot_id(applied.last_applied),
                },
                data,
            }
        };
        tracing::info!(last = ?file.meta.last_log_id, bytes = file.data.len(), "controller snapshot built");
        self.persist(file)
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)).into())
    }
}

impl<S: Replicated> RaftStateMachine<C<S>> for StateMachineStore<S> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let applied = self.applied();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Option<S::Out>>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<C<S>>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.applied();
        let mut outs = Vec::new();
        for entry in entries {
            assert!(
                applied
                    .last_applied
                    .is_none_or(|last| last.index < entry.log_id.index),
                "entry {} applied twice (last applied {:?})",
                entry.log_id,
                applied.last_applied
            );
            applied.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => outs.push(None),
                EntryPayload::Normal(stamped) => {
                    let now_ms = stamped.now_ms.max(applied.clock_ms);
                    applied.clock_ms = now_ms;
                    outs.push(Some(applied.state.apply(now_ms, &stamped.cmd)));
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    outs.push(None);
                }
            }
        }
        Ok(outs)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let decoded = SnapshotData::<S>::decode(&data).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        self.persist(file).map_err(|e| {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        let mut applied = self.applied();
        applied.state = decoded.state;
        applied.clock_ms = decoded.clock_ms;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        tracing::info!(last = ?meta.last_log_id, "controller snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<C<S>>>, StorageError<u64>> {
        Ok(self.snapshot_slot().as_ref().map(|file| Snapshot {
            meta: file.meta.clone(),
            snapshot: Box::new(Cursor::new(file.data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicated::test_machine::{Log, block_on, entry};

    #[test]
    fn time_never_goes_back_and_survives_a_snapshot_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut machine = StateMachineStore::<Log>::open(dir.path(), Log::default()).unwrap();
        // The second leader's clock is 400 ms behind the first's.
        let entries = vec![entry(1, 1_000, 1), entry(2, 600, 2), entry(3, 1_200, 3)];
        let outs = block_on(machine.apply(entries)).unwrap();
        assert_eq!(outs, [Some(1), Some(2), Some(3)]);
        let times = machine.applied().state.0.clone();
        assert_eq!(times, [(1_000, 1), (1_000, 2), (1_200, 3)]);

        block_on(machine.build_snapshot()).unwrap();
        let mut reloaded = StateMachineStore::<Log>::open(dir.path(), Log::default()).unwrap();
        assert_eq!(reloaded.applied().state.0, times);
        block_on(reloaded.apply(vec![entry(4, 900, 4)])).unwrap();
        assert_eq!(
            reloaded.applied().state.0[3],
            (1_200, 4),
            "clock restored with the state"
        );
    }

    #[test]
    fn a_corrupt_snapshot_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT_FILE), b"{\"meta\":").unwrap();
        let err = StateMachineStore::<Log>::open(dir.path(), Log::default())
            .err()
            .expect("refused");
        assert!(matches!(err, ControllerError::Corrupt { .. }), "{err}");
    }
}
