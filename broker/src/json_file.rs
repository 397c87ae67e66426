//! Crash-safe JSON config files (topics.json, subscriptionGroup.json,
//! consumerOffset.json): write to `name.tmp`, fsync, keep the previous file as
//! `name.bak`, rename into place. Loading falls back to `.bak` when the main file is
//! missing or unreadable, as RocketMQ's ConfigManager does.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Loads `path` (or its `.bak`). None when neither exists or parses.
pub fn load<T: DeserializeOwned>(path: &Path) -> Option<T> {
    for candidate in [path.to_path_buf(), with_suffix(path, ".bak")] {
        let Ok(bytes) = std::fs::read(&candidate) else {
            continue;
        };
        match rmq_core::remoting::lenient_json::from_slice_lenient::<T>(&bytes) {
            Ok(value) => return Some(value),
            Err(error) => {
                tracing::error!(path = %candidate.display(), "config file unreadable: {error}");
            }
        }
    }
    None
}

/// Writes `value` to `path` atomically.
///
/// # Errors
/// The I/O error, with the file named in the log by the caller.
pub fn store<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = with_suffix(path, ".tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    if path.exists() {
        let _ = std::fs::copy(path, with_suffix(path, ".bak"));
    }
    std::fs::rename(&tmp, path)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}
