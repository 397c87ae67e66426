//! A shard's epoch history (RocketMQ 5's `EpochFileCache`, controller mode only): the list of
//! `(epoch, startOffset)` entries saying which master epoch wrote which part of the log. Entry
//! `i` covers `[start_i, start_{i+1})`, the last one `[start_last, log end)`.
//!
//! - A broker that becomes master with epoch `E` appends `(E, its log end)` before it accepts a
//!   single write ([`EpochHistory::begin`]).
//! - A slave mirrors its master's entries as far as its own log reaches
//!   ([`EpochHistory::adopt`]).
//! - Two replicas agree on their logs up to the [`find_consistent_point`] of their histories;
//!   a slave truncates its log there before it follows a new master.
//!
//! File: one per shard (shard 0 at `storePathEpochFile`, default `{storePathRootDir}/epochFileCheckpoint`,
//! in RocketMQ's `CheckpointFile` format so a one-shard store's file reads like RocketMQ's; shard
//! `n > 0` at the same path with `.shard-{n}` appended): line 1 the entry count, line 2 the CRC32
//! of the entry lines (as Java's `UtilAll.crc32`: masked to 31 bits), then one `epoch-start` line
//! per entry. Every change is written to `name.tmp`, fsynced, renamed over `name` and the
//! directory fsynced, so the file always holds one complete version.
//!
//! Crash safety: a truncation cuts the log first and the history after it; an entry starting
//! past the end of the log (a crash in between, or a log that lost its unflushed tail) labels
//! bytes that no longer exist and is dropped when the history is loaded ([`EpochHistory::load`]).
//! Invariants (checked on load and on every change): epochs strictly increase, start offsets
//! strictly increase.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// One epoch's first log offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

impl EpochEntry {
    pub fn new(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }
}

/// The offset up to which two logs hold the same bytes, judged by their histories: the newest
/// local entry that the other history holds with the same epoch and start, cut at the smaller
/// of the two ends of that epoch (RocketMQ's `findConsistentPoint`; computed by
/// `rmq_election::consistent_point`, the controller's own model of it; 0 without a shared
/// entry when both begin at offset 0 and the remote's first epoch is newer than every local
/// one). `None` when nothing is known in common (or `local` is empty), and when either
/// history is not one (negative epochs or offsets, out of order, past its end).
pub fn find_consistent_point(
    local: &[EpochEntry],
    local_end: i64,
    remote: &[EpochEntry],
    remote_end: i64,
) -> Option<i64> {
    let local = to_election(local, local_end)?;
    let remote = to_election(remote, remote_end)?;
    let point = rmq_election::consistent_point(&local, &remote)?;
    i64::try_from(point).ok()
}

fn to_election(entries: &[EpochEntry], end: i64) -> Option<rmq_election::EpochHistory> {
    let entries = entries
        .iter()
        .map(|e| {
            Some(rmq_election::EpochEntry {
                epoch: u32::try_from(e.epoch).ok()?,
                start_offset: u64::try_from(e.start_offset).ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    rmq_election::EpochHistory::new(entries, u64::try_from(end).ok()?).ok()
}

/// Checks the invariants of a list of entries.
fn check_order(entries: &[EpochEntry]) -> Result<(), String> {
    for pair in entries.windows(2) {
        if pair[1].epoch <= pair[0].epoch || pair[1].start_offset <= pair[0].start_offset {
            return Err(format!(
                "entries out of order: {:?} then {:?}",
                pair[0], pair[1]
            ));
        }
    }
    Ok(())
}

/// A shard's epoch history and its file (see the module docs).
#[derive(Debug)]
pub struct EpochHistory {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl EpochHistory {
    /// Reads the history at `path` (empty when the file does not exist) and drops the entries
    /// starting past `log_end` (rewriting the file if it dropped any).
    ///
    /// # Errors
    /// `Corrupt` when the file cannot be parsed, its CRC or count does not match or its entries
    /// are out of order; `Io` when it cannot be read or rewritten.
    pub fn load(path: impl Into<PathBuf>, log_end: i64) -> Result<EpochHistory, StoreError> {
        let path = path.into();
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(|reason| StoreError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io("read", &path, 0, e)),
        };
        let mut history = EpochHistory { path, entries };
        let stale = history.entries.iter().filter(|e| e.start_offset > log_end);
        if stale.clone().next().is_some() {
            tracing::warn!(
                path = %history.path.display(),
                log_end,
                dropped = ?stale.collect::<Vec<_>>(),
                "epoch entries past the end of the log dropped"
            );
            history.entries.retain(|e| e.start_offset <= log_end);
            history.persist()?;
        }
        Ok(history)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The newest epoch, -1 when empty (RocketMQ's `lastEpoch`).
    pub fn last_epoch(&self) -> i32 {
        self.last().map_or(-1, |e| e.epoch)
    }

    /// This replica becomes master of `epoch` with its log ending at `log_end`: appends
    /// `(epoch, log_end)`. The same epoch again is a no-op (returns false). An epoch
    /// whose previous entry starts at `log_end` (it wrote nothing) is replaced.
    ///
    /// # Errors
    /// `EpochRegression` when `epoch` is older than the newest entry or `log_end` is below its
    /// start; `Io` when the file cannot be written (the history is then unchanged).
    pub fn begin(&mut self, epoch: i32, log_end: i64) -> Result<bool, StoreError> {
        let regression = |last: EpochEntry| StoreError::EpochRegression {
            path: self.path.clone(),
            last: (last.epoch, last.start_offset),
            new: (epoch, log_end),
        };
        let mut next = self.entries.clone();
        if let Some(last) = self.last() {
            if last.epoch == epoch && last.start_offset <= log_end {
                return Ok(false);
            }
            if last.epoch > epoch || last.start_offset > log_end {
                return Err(regression(last));
            }
            if last.start_offset == log_end {
                next.pop();
            }
        }
        next.push(EpochEntry::new(epoch, log_end));
        self.replace(next)
    }

    /// A slave's history becomes its master's entries that start at or below its own log
    /// end (`log_end`; the caller made sure its log agrees with the master's below it, by
    /// [`find_consistent_point`] and truncation). Returns whether anything changed.
    ///
    /// # Errors
    /// `Corrupt` when `master` is out of order; `Io` when the file cannot be written.
    pub fn adopt(&mut self, master: &[EpochEntry], log_end: i64) -> Result<bool, StoreError> {
        check_order(master).map_err(|reason| StoreError::Corrupt {
            path: self.path.clone(),
            offset: 0,
            reason: format!("master's epoch history: {reason}"),
        })?;
        let reached = master.iter().take_while(|e| e.start_offset <= log_end);
        let next: Vec<EpochEntry> = reached.copied().collect();
        if next == self.entries {
            return Ok(false);
        }
        self.replace(next)
    }

    /// Drops the entries starting at or past `offset` (the log was cut there). Returns whether
    /// anything changed.
    ///
    /// # Errors
    /// `Io` when the file cannot be written.
    pub fn truncate_from(&mut self, offset: i64) -> Result<bool, StoreError> {
        let next: Vec<EpochEntry> = self
            .entries
            .iter()
            .copied()
            .filter(|e| e.start_offset < offset)
            .collect();
        if next.len() == self.entries.len() {
            return Ok(false);
        }
        self.replace(next)
    }

    /// Forgets every entry (an empty log restarted elsewhere).
    ///
    /// # Errors
    /// `Io` when the file cannot be written.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        if !self.entries.is_empty() {
            self.replace(Vec::new())?;
        }
        Ok(())
    }

    fn replace(&mut self, next: Vec<EpochEntry>) -> Result<bool, StoreError> {
        assert!(
            check_order(&next).is_ok(),
            "epoch history invariant: {next:?}"
        );
        let previous = std::mem::replace(&mut self.entries, next);
        if let Err(error) = self.persist() {
            self.entries = previous;
            return Err(error);
        }
        Ok(true)
    }

    fn persist(&self) -> Result<(), StoreError> {
        let tmp = self.path.with_extension(match self.path.extension() {
            Some(ext) => format!("{}.tmp", ext.to_string_lossy()),
            None => "tmp".to_string(),
        });
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |e| StoreError::io(op, path, 0, e)
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create_dir", dir))?;
        let mut file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        file.write_all(render(&self.entries).as_bytes())
            .map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("fsync", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(io("rename", &self.path))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync_dir", dir))
    }
}

/// Java's `UtilAll.crc32`: CRC32 masked to a non-negative `int`.
fn java_crc32(bytes: &[u8]) -> i32 {
    (crc32fast::hash(bytes) & 0x7FFF_FFFF) as i32
}

fn render(entries: &[EpochEntry]) -> String {
    let lines: String = entries
        .iter()
        .map(|e| format!("{}-{}\n", e.epoch, e.start_offset))
        .collect();
    format!(
        "{}\n{}\n{lines}",
        entries.len(),
        java_crc32(lines.as_bytes())
    )
}

fn parse(text: &str) -> Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    let mut header = |what: &str| -> Result<i64, String> {
        let line = lines.next().ok_or(format!("no {what} line"))?;
        line.trim()
            .parse::<i64>()
            .map_err(|e| format!("{what} line {line:?}: {e}"))
    };
    let count = header("count")?;
    let crc = header("crc")?;
    let mut body = String::new();
    let mut entries = Vec::new();
    for line in lines {
        body.push_str(line);
        body.push('\n');
        let (epoch, start) = line
            .split_once('-')
            .ok_or(format!("entry line {line:?} is not epoch-start"))?;
        let epoch = epoch.parse::<i32>().map_err(|e| format!("{line:?}: {e}"))?;
        let start = start.parse::<i64>().map_err(|e| format!("{line:?}: {e}"))?;
        entries.push(EpochEntry::new(epoch, start));
    }
    if entries.len() as i64 != count {
        return Err(format!(
            "{count} entries announced, {} found",
            entries.len()
        ));
    }
    // RocketMQ writes 0 to mean "not checked".
    if crc != 0 && crc != i64::from(java_crc32(body.as_bytes())) {
        return Err(format!("entries CRC {crc} does not match"));
    }
    check_order(&entries)?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, start: i64) -> EpochEntry {
        EpochEntry::new(epoch, start)
    }

    #[test]
    fn consistent_point_follows_rocketmq() {
        // Same history, different ends: the shorter log.
        let both = [e(1, 0), e(2, 100)];
        assert_eq!(find_consistent_point(&both, 150, &both, 300), Some(150));
        assert_eq!(find_consistent_point(&both, 300, &both, 150), Some(150));
        // The slave kept writing epoch 2 as master; the new master started epoch 3 at 100.
        let slave = [e(1, 0), e(2, 100)];
        let master = [e(1, 0), e(3, 100)];
        assert_eq!(find_consistent_point(&slave, 170, &master, 400), Some(100));
        // Epoch 2 ended earlier on the master than on the old master.
        let old = [e(1, 0), e(2, 100)];
        let new = [e(1, 0), e(2, 100), e(3, 130)];
        assert_eq!(find_consistent_point(&old, 180, &new, 500), Some(130));
        // Same epoch number, different start: not the same epoch.
        let other = [e(1, 0), e(2, 90)];
        assert_eq!(find_consistent_point(&old, 180, &other, 500), Some(90));
        // Nothing shared: the master's log holds only a newer epoch from offset 0, so this
        // log keeps nothing; a local epoch newer than the master's first is an operator's call.
        assert_eq!(
            find_consistent_point(&[e(4, 0)], 10, &[e(5, 0)], 10),
            Some(0)
        );
        assert_eq!(find_consistent_point(&[e(5, 0)], 10, &[e(4, 0)], 10), None);
        assert_eq!(find_consistent_point(&[], 10, &[e(5, 0)], 10), None);
    }

    #[test]
    fn begin_appends_grows_and_refuses_regressions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epochFileCheckpoint");
        let mut history = EpochHistory::load(&path, 0).unwrap();
        assert_eq!(history.last_epoch(), -1);
        assert!(history.begin(1, 0).unwrap());
        assert!(!history.begin(1, 50).unwrap(), "same epoch: no-op");
        assert!(history.begin(3, 50).unwrap());
        // Epoch 3 wrote nothing: epoch 4 replaces it at the same start.
        assert!(history.begin(4, 50).unwrap());
        assert_eq!(history.entries(), &[e(1, 0), e(4, 50)]);
        assert!(matches!(
            history.begin(2, 80),
            Err(StoreError::EpochRegression { .. })
        ));
        assert!(matches!(
            history.begin(5, 40),
            Err(StoreError::EpochRegression { .. })
        ));
        assert_eq!(history.entries(), &[e(1, 0), e(4, 50)]);
        let reread = EpochHistory::load(&path, 60).unwrap();
        assert_eq!(reread.entries(), history.entries());
    }

    #[test]
    fn the_file_is_rocketmq_checkpoint_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epochFileCheckpoint");
        let mut history = EpochHistory::load(&path, 0).unwrap();
        history.begin(7, 0).unwrap();
        history.begin(8, 8000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = "7-0\n8-8000\n";
        let crc = (crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF).to_string();
        assert_eq!(text, format!("2\n{crc}\n{lines}"));
        // RocketMQ's own example file reads (crc 0 = unchecked).
        std::fs::write(&path, "2\n0\n7-7000\n8-8000\n").unwrap();
        let read = EpochHistory::load(&path, 9000).unwrap();
        assert_eq!(read.entries(), &[e(7, 7000), e(8, 8000)]);
    }

    #[test]
    fn damaged_files_are_refused_not_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epochs");
        for bad in [
            "2\n1\n7-0\n8-10\n",
            "3\n0\n7-0\n8-10\n",
            "2\n0\n8-0\n7-10\n",
            "x\n0\n",
            "1\n0\n7:0\n",
            "",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(
                    EpochHistory::load(&path, 100),
                    Err(StoreError::Corrupt { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn entries_past_the_log_end_are_dropped_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epochs");
        let mut history = EpochHistory::load(&path, 0).unwrap();
        history.begin(1, 0).unwrap();
        history.begin(2, 100).unwrap();
        history.begin(3, 200).unwrap();
        // The log lost its tail past 150 (crash between a log cut and the history's).
        let repaired = EpochHistory::load(&path, 150).unwrap();
        assert_eq!(repaired.entries(), &[e(1, 0), e(2, 100)]);
        let again = EpochHistory::load(&path, 1000).unwrap();
        assert_eq!(
            again.entries(),
            &[e(1, 0), e(2, 100)],
            "the repair was saved"
        );
        // An entry starting exactly at the end stays (a master that wrote nothing yet).
        assert_eq!(EpochHistory::load(&path, 100).unwrap().entries().len(), 2);
    }

    #[test]
    fn a_crash_during_a_write_leaves_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epochs");
        let mut history = EpochHistory::load(&path, 0).unwrap();
        history.begin(1, 0).unwrap();
        // What a crash after writing the temporary file but before the rename leaves.
        std::fs::write(dir.path().join("epochs.tmp"), "1\n0\n9-").unwrap();
        assert_eq!(EpochHistory::load(&path, 10).unwrap().entries(), &[e(1, 0)]);
        history.begin(2, 10).unwrap();
        assert_eq!(
            EpochHistory::load(&path, 10).unwrap().entries(),
            &[e(1, 0), e(2, 10)]
        );
        assert!(!dir.path().join("epochs.tmp").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_history_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("epochs");
        let mut history = EpochHistory::load(&path, 0).unwrap();
        history.begin(1, 0).unwrap();
        // The directory becomes a file: every write fails.
        std::fs::remove_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub"), "").unwrap();
        assert!(matches!(history.begin(2, 5), Err(StoreError::Io { .. })));
        assert_eq!(history.entries(), &[e(1, 0)]);
    }

    #[test]
    fn a_slave_adopts_what_its_log_reaches_and_truncates_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = EpochHistory::load(dir.path().join("epochs"), 0).unwrap();
        let master = [e(1, 0), e(2, 100), e(5, 300)];
        assert!(history.adopt(&master, 50).unwrap());
        assert_eq!(history.entries(), &[e(1, 0)]);
        assert!(!history.adopt(&master, 99).unwrap());
        assert!(history.adopt(&master, 300).unwrap());
        assert_eq!(history.entries(), &master);
        assert!(history.truncate_from(300).unwrap());
        assert_eq!(history.entries(), &[e(1, 0), e(2, 100)]);
        assert!(!history.truncate_from(250).unwrap());
        assert!(matches!(
            history.adopt(&[e(2, 0), e(1, 10)], 50),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
