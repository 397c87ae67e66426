//! Reload on change: a thread polls the ACL files' modification time and size every
//! second (RocketMQ's AclFileWatchService polls every 5 s) and reloads when a file
//! changed, appeared or disappeared. The thread holds only a weak reference and ends
//! when the broker drops its `Acl`.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Acl;
use super::file::{AclPaths, Stamp, stamp};

/// How often the files are polled.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The files and their stamps, in load order.
pub type Stamps = Vec<(PathBuf, Stamp)>;

pub fn stamps(paths: &AclPaths) -> Stamps {
    let mut files = paths.list_files();
    if !files.contains(&paths.default_file) {
        files.push(paths.default_file.clone());
    }
    files
        .into_iter()
        .map(|file| {
            let stamp = stamp(&file);
            (file, stamp)
        })
        .collect()
}

/// Starts the polling thread.
pub fn spawn(acl: &Arc<Acl>) {
    let weak: Weak<Acl> = Arc::downgrade(acl);
    let started = std::thread::Builder::new()
        .name("acl-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(POLL_INTERVAL);
                let Some(acl) = weak.upgrade() else {
                    return;
                };
                acl.reload_if_changed();
            }
        });
    if let Err(error) = started {
        tracing::error!("cannot start the ACL file watcher, edits need a restart: {error}");
    }
}
