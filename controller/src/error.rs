//! The controller crate's error type.

use std::path::PathBuf;

/// What can go wrong in a controller node.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A file of the raft store could not be read, written or synced.
    #[error("controller store {op} {path}: {source}")]
    Store {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A store file exists but does not decode (not a torn tail: those are cut off).
    #[error("controller store {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The peer list is invalid (syntax, duplicate ids, self id missing).
    #[error("controller peers: {0}")]
    Peers(String),
    /// The listener could not bind.
    #[error("controller listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// This node is not the raft leader; `leader` is the leader's address when known.
    #[error("not the controller leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader { leader: Option<String> },
    /// A write or read got no quorum in time (a majority of the members is down or cut off);
    /// a write may still be applied later, when the quorum returns.
    #[error("no controller quorum within {ms} ms")]
    Timeout { ms: u64 },
    /// Raft refused or failed the operation for another reason (shutting down, fatal error).
    #[error("raft: {0}")]
    Raft(String),
    /// The runtime thread could not be started.
    #[error("controller runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
