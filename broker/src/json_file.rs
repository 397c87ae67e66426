//! Crash-safe JSON metadata files under the store's `config/` (topics.json,
//! subscriptionGroup.json, consumerOffset.json, delayOffset.json, timerOffset.json,
//! transaction progress).
//!
//! Invariant: at every instant (a kill -9 or power loss anywhere in [`store`]) at least one
//! of `name` and `name.bak` holds a complete, parseable version, and `name` holds either
//! the previous or the new one:
//! 1. the new content is written to `name.tmp` and fsynced;
//! 2. `name.bak` is replaced atomically by the current `name` (hard link to
//!    `name.bak.tmp`, or a fsynced copy where links are unsupported, then rename), so
//!    `.bak` is never truncated or half-written;
//! 3. `name.tmp` is renamed over `name` and the directory is fsynced.
//!
//! Loading never starts empty on damage: `name`, else `name.bak`; when a file exists but
//! neither parses, [`load`] fails with a [`LoadError`] naming the file and how to recover
//! (RocketMQ's ConfigManager likewise refuses to start). Only a store that has neither
//! file (fresh) loads as `None`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A metadata file that exists but can be used in no version.
#[derive(Debug, thiserror::Error)]
#[error(
    "metadata file {path} is unreadable ({reason}) and its backup {bak} cannot be used \
     ({bak_reason}); refusing to start with empty metadata. To recover, restore a good copy \
     of {path} (e.g. copy a valid {bak} over it), or delete both files to start with none \
     of this file's entries"
)]
pub struct LoadError {
    pub path: String,
    pub reason: String,
    pub bak: String,
    pub bak_reason: String,
}

enum Attempt<T> {
    Missing,
    Bad(String),
    Good(T),
}

fn attempt<T: DeserializeOwned>(path: &Path) -> Attempt<T> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Attempt::Missing,
        Err(error) => return Attempt::Bad(error.to_string()),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Attempt::Bad("empty file".into());
    }
    match rmq_core::remoting::lenient_json::from_slice_lenient::<T>(&bytes) {
        Ok(value) => Attempt::Good(value),
        Err(error) => Attempt::Bad(error.to_string()),
    }
}

/// Loads `path`, falling back to `path.bak`. `Ok(None)` only when neither file exists.
///
/// # Errors
/// A file exists but neither it nor its backup parses.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, LoadError> {
    let bak = with_suffix(path, ".bak");
    let main = attempt::<T>(path);
    if let Attempt::Good(value) = main {
        return Ok(Some(value));
    }
    let backup = attempt::<T>(&bak);
    match (main, backup) {
        (Attempt::Missing, Attempt::Missing) => Ok(None),
        (main, Attempt::Good(value)) => {
            let reason = match main {
                Attempt::Bad(reason) => reason,
                _ => "missing".into(),
            };
            tracing::warn!(path = %path.display(), "metadata file unusable ({reason}): loaded its backup {}", bak.display());
            Ok(Some(value))
        }
        (main, backup) => {
            let describe = |a: Attempt<T>| match a {
                Attempt::Bad(reason) => reason,
                _ => "missing".into(),
            };
            Err(LoadError {
                path: path.display().to_string(),
                reason: describe(main),
                bak: bak.display().to_string(),
                bak_reason: describe(backup),
            })
        }
    }
}

/// Loads `path` like [`load`], the default value for a fresh store.
///
/// # Errors
/// See [`load`].
pub fn load_or_default<T: DeserializeOwned + Default>(path: &Path) -> Result<T, LoadError> {
    Ok(load(path)?.unwrap_or_default())
}

/// Writes `value` to `path` atomically, keeping the previous version as `path.bak`
/// (see the module docs for the order of steps).
///
/// # Errors
/// The I/O error, with the file named in the log by the caller.
pub fn store<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    store_bytes(path, &bytes)
}

/// [`store`] for already serialized content.
///
/// # Errors
/// The I/O error.
pub fn store_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    store_steps(path, bytes, usize::MAX)
}

/// The steps of [`store_bytes`], stopping after the first `steps` of them (tests simulate a
/// crash between any two steps with it).
fn store_steps(path: &Path, bytes: &[u8], steps: usize) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = with_suffix(path, ".tmp");
    let bak = with_suffix(path, ".bak");
    let bak_tmp = with_suffix(path, ".bak.tmp");
    let had_file = path.exists();
    let all: [&dyn Fn() -> std::io::Result<()>; 5] = [
        &|| {
            std::fs::create_dir_all(dir)?;
            write_synced(&tmp, bytes)
        },
        // `.bak.tmp`: a hard link to the current file (or a synced copy without links).
        &|| {
            if !had_file {
                return Ok(());
            }
            let _ = std::fs::remove_file(&bak_tmp);
            if std::fs::hard_link(path, &bak_tmp).is_err() {
                let current = std::fs::read(path)?;
                write_synced(&bak_tmp, &current)?;
            }
            Ok(())
        },
        // `.bak` replaced atomically: never truncated or half-written.
        &|| {
            if had_file {
                std::fs::rename(&bak_tmp, &bak)?;
            }
            Ok(())
        },
        &|| std::fs::rename(&tmp, path),
        &|| sync_dir(dir),
    ];
    for step in all.iter().take(steps) {
        step()?;
    }
    Ok(())
}

/// Bytes written between two syncs of a large file (see [`write_synced`]).
const SYNC_EVERY_BYTES: usize = 1 << 20;

/// Writes and syncs `bytes`, syncing every [`SYNC_EVERY_BYTES`] on the way: on ext4
/// (data=ordered) a journal commit first writes every dirty data block of the files it
/// covers, so one large unsynced write (topics.json at 1M topics: ~200 MB) would hold every
/// other small sync of the file system (the topic log's appends) for as long as it takes.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    let mut pieces = bytes.chunks(SYNC_EVERY_BYTES).peekable();
    while let Some(piece) = pieces.next() {
        file.write_all(piece)?;
        if pieces.peek().is_some() {
            file.sync_data()?;
        }
    }
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type Table = BTreeMap<String, i32>;

    fn table(n: i32) -> Table {
        (0..n).map(|i| (format!("k{i}"), i)).collect()
    }

    #[test]
    fn fresh_store_loads_none() {
        let dir = tempfile::tempdir().unwrap();
        let loaded: Option<Table> = load(&dir.path().join("t.json")).unwrap();
        assert!(loaded.is_none());
    }

    #[test]
    fn store_keeps_previous_version_as_bak() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        store(&path, &table(1)).unwrap();
        store(&path, &table(2)).unwrap();
        assert_eq!(load::<Table>(&path).unwrap(), Some(table(2)));
        let bak: Table =
            serde_json::from_slice(&std::fs::read(dir.path().join("t.json.bak")).unwrap()).unwrap();
        assert_eq!(bak, table(1));
        // The main file damaged: the backup is used.
        std::fs::write(&path, b"{ not json").unwrap();
        assert_eq!(load::<Table>(&path).unwrap(), Some(table(1)));
    }

    /// A crash (the process stops) between any two steps of a write leaves a loadable
    /// file holding the old or the new version, and never a partial `.bak`.
    #[test]
    fn a_crash_between_any_two_steps_of_a_write_leaves_a_valid_version() {
        for steps in 0..=5 {
            for history in 0..3 {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("topics.json");
                // 0: fresh store, 1: a file without backup, 2: a file and its backup.
                for version in 0..history {
                    store(&path, &table(version + 1)).unwrap();
                }
                let old = (history > 0).then(|| table(history));
                let new = table(9);
                let bytes = serde_json::to_vec_pretty(&new).unwrap();
                store_steps(&path, &bytes, steps).unwrap();
                let loaded = load::<Table>(&path)
                    .unwrap_or_else(|e| panic!("crash after {steps} steps ({history}): {e}"));
                assert!(
                    loaded == old || loaded == Some(new.clone()),
                    "after {steps} steps ({history}): {loaded:?}"
                );
                if steps == 5 {
                    assert_eq!(loaded, Some(new.clone()));
                }
                // Each file present is complete on its own.
                for name in ["topics.json", "topics.json.bak"] {
                    let file = dir.path().join(name);
                    if let Ok(bytes) = std::fs::read(&file) {
                        let parsed: Result<Table, _> = serde_json::from_slice(&bytes);
                        assert!(
                            parsed.is_ok(),
                            "{name} torn after {steps} steps ({history})"
                        );
                    }
                }
                // A new write after the crash completes and keeps the old version as backup.
                let had_file = path.exists();
                store(&path, &table(10)).unwrap();
                assert_eq!(load::<Table>(&path).unwrap(), Some(table(10)));
                if had_file {
                    let bak = std::fs::read(dir.path().join("topics.json.bak")).unwrap();
                    let bak: Table = serde_json::from_slice(&bak).unwrap();
                    assert!(bak == new || Some(&bak) == old.as_ref(), "{bak:?}");
                }
            }
        }
    }

    #[test]
    fn unreadable_file_and_empty_bak_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topics.json");
        std::fs::write(&path, b"{\"topicConfigTable\": {").unwrap();
        std::fs::write(dir.path().join("topics.json.bak"), b"").unwrap();
        let error = load::<Table>(&path).unwrap_err().to_string();
        assert!(error.contains("topics.json"), "{error}");
        assert!(error.contains("refusing to start"), "{error}");
        assert!(error.contains("empty file"), "{error}");
        // An empty main file with no backup is damage too, never a fresh store.
        std::fs::write(&path, b"").unwrap();
        std::fs::remove_file(dir.path().join("topics.json.bak")).unwrap();
        assert!(load::<Table>(&path).is_err());
    }
}
