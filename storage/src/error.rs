//! The one error type of the storage crate. I/O errors carry the operation, the file and the
//! offset, so an operator can find the failing sector; `Corrupt` names the bad file position.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} failed on {path:?} at offset {offset}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("store {0:?} is locked by another process")]
    Locked(PathBuf),
    #[error("corrupt store file {path:?} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    #[error("flush did not complete within the sync flush timeout")]
    FlushTimeout,
    #[error("store is shutting down")]
    ShuttingDown,
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error(
        "{unwritten} bytes wait for the disk to flush them (limit {limit}): the disk is failing or too slow"
    )]
    WriteBacklog { unwritten: usize, limit: usize },
    #[error("shard {shard}: cannot truncate the log to {to}: outside [{oldest}, {end}]")]
    TruncateOutOfRange {
        shard: u32,
        to: i64,
        oldest: i64,
        end: i64,
    },
    #[error("shard {shard}: cannot truncate the log to {to}: not a record boundary ({reason})")]
    NotRecordBoundary { shard: u32, to: i64, reason: String },
    #[error("shard {shard}: a truncation of the log did not complete; repeat truncate_replica")]
    TruncationPending { shard: u32 },
    #[error("the bytes at {offset} were truncated away while being read (the log ends at {end})")]
    TruncatedDuringRead { offset: i64, end: i64 },
    #[error(
        "epoch history {path:?}: (epoch, start) {new:?} does not follow the newest entry {last:?}"
    )]
    EpochRegression {
        path: PathBuf,
        last: (i32, i64),
        new: (i32, i64),
    },
    #[error("shard {shard}: the epoch history has no entry in common with the master's ({reason})")]
    NoConsistentPoint { shard: u32, reason: String },
    #[error("shard {shard}: no epoch history (the store was opened without an epoch file)")]
    NoEpochHistory { shard: u32 },
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        offset: u64,
        source: std::io::Error,
    ) -> StoreError {
        StoreError::Io {
            op,
            path: path.into(),
            offset,
            source,
        }
    }

    /// A copy for a second waiter: `std::io::Error` is not `Clone`, so the source is rebuilt
    /// from its kind and message.
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::Io {
                op,
                path,
                offset,
                source,
            } => StoreError::Io {
                op,
                path: path.clone(),
                offset: *offset,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            StoreError::Locked(path) => StoreError::Locked(path.clone()),
            StoreError::Corrupt {
                path,
                offset,
                reason,
            } => StoreError::Corrupt {
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            StoreError::MessageTooLarge { size, max } => StoreError::MessageTooLarge {
                size: *size,
                max: *max,
            },
            StoreError::FlushTimeout => StoreError::FlushTimeout,
            StoreError::ShuttingDown => StoreError::ShuttingDown,
            StoreError::Config(reason) => StoreError::Config(reason.clone()),
            StoreError::WriteBacklog { unwritten, limit } => StoreError::WriteBacklog {
                unwritten: *unwritten,
                limit: *limit,
            },
            StoreError::TruncateOutOfRange {
                shard,
                to,
                oldest,
                end,
            } => StoreError::TruncateOutOfRange {
                shard: *shard,
                to: *to,
                oldest: *oldest,
                end: *end,
            },
            StoreError::NotRecordBoundary { shard, to, reason } => StoreError::NotRecordBoundary {
                shard: *shard,
                to: *to,
                reason: reason.clone(),
            },
            StoreError::TruncationPending { shard } => {
                StoreError::TruncationPending { shard: *shard }
            }
            StoreError::TruncatedDuringRead { offset, end } => StoreError::TruncatedDuringRead {
                offset: *offset,
                end: *end,
            },
            StoreError::EpochRegression { path, last, new } => StoreError::EpochRegression {
                path: path.clone(),
                last: *last,
                new: *new,
            },
            StoreError::NoConsistentPoint { shard, reason } => StoreError::NoConsistentPoint {
                shard: *shard,
                reason: reason.clone(),
            },
            StoreError::NoEpochHistory { shard } => StoreError::NoEpochHistory { shard: *shard },
        }
    }
}
