//! The per-shard checkpoint `root/shard-{n}.checkpoint`: where recovery may start.
//!
//! Layout (64 bytes, big-endian): magic u64 | shard u32 | version u32 |
//! commit_log_flushed i64 | consume_queue_safe i64 | commit_log_timestamp i64 |
//! consume_queue_timestamp i64 | revalidate_from i64 | crc32 u32 (of bytes 0..56) | padding.
//! Version 1 files (no `revalidate_from`, crc of bytes 0..52 at 52) are still read.
//!
//! `revalidate_from` is an older record boundary, about [`REVALIDATE_BYTES`] before the safe
//! offsets: after a crash recovery re-validates from there, so damage to the most recently
//! flushed records (a disk cache that lied about fdatasync) is still found, while the scan
//! stays bounded (a few MiB plus one checkpoint interval of traffic).
//!
//! Contract: `commit_log_flushed` is a record boundary below which the commit log was
//! fdatasync'd; `consume_queue_safe` is a record boundary below which every record's consume
//! queue entry was written and fsynced. Both were true when the file was written (after the
//! flushes), so recovery may start its scan at the smaller one. A torn or foreign file fails
//! the CRC and makes recovery scan the whole shard, which is slow but correct.

use std::path::{Path, PathBuf};

use compio::BufResult;
use compio::fs::{File, OpenOptions};
use compio::io::AsyncWriteAtExt;

use crate::error::StoreError;

const MAGIC: u64 = 0x524d_5153_4850_4331; // "RMQSHPC1"
const VERSION: u32 = 2;

/// How far before the safe offsets a crash recovery re-validates the log.
pub(crate) const REVALIDATE_BYTES: i64 = 16 << 20;
const LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub shard: u32,
    pub commit_log_flushed: i64,
    pub consume_queue_safe: i64,
    pub commit_log_timestamp: i64,
    pub consume_queue_timestamp: i64,
    /// A record boundary at or below both safe offsets (see the module docs).
    pub revalidate_from: i64,
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.extend_from_slice(&MAGIC.to_be_bytes());
        bytes.extend_from_slice(&self.shard.to_be_bytes());
        bytes.extend_from_slice(&VERSION.to_be_bytes());
        bytes.extend_from_slice(&self.commit_log_flushed.to_be_bytes());
        bytes.extend_from_slice(&self.consume_queue_safe.to_be_bytes());
        bytes.extend_from_slice(&self.commit_log_timestamp.to_be_bytes());
        bytes.extend_from_slice(&self.consume_queue_timestamp.to_be_bytes());
        bytes.extend_from_slice(&self.revalidate_from.to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes.resize(LEN, 0);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        if bytes.len() < 60 {
            return None;
        }
        let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4"));
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8"));
        let version = u32_at(12);
        if i64_at(0) as u64 != MAGIC || !(1..=VERSION).contains(&version) {
            return None;
        }
        let crc_end = if version == 1 { 52 } else { 56 };
        if crc32fast::hash(&bytes[..crc_end]) != u32_at(crc_end) {
            return None;
        }
        let safe = i64_at(16).min(i64_at(24));
        Some(Checkpoint {
            revalidate_from: if version == 1 {
                safe
            } else {
                i64_at(48).min(safe)
            },
            shard: u32_at(8),
            commit_log_flushed: i64_at(16),
            consume_queue_safe: i64_at(24),
            commit_log_timestamp: i64_at(32),
            consume_queue_timestamp: i64_at(40),
        })
    }

    /// The checkpoint of `shard`, `None` when missing or invalid.
    pub fn load(path: &Path, shard: u32) -> Option<Checkpoint> {
        let bytes = std::fs::read(path).ok()?;
        let checkpoint = Checkpoint::decode(&bytes);
        if checkpoint.is_none() {
            tracing::warn!(?path, "checkpoint invalid; recovery scans the whole shard");
        }
        checkpoint.filter(|c| c.shard == shard)
    }
}

/// The open checkpoint file of a shard, rewritten in place (64 bytes, one sector).
pub(crate) struct CheckpointFile {
    path: PathBuf,
    file: File,
}

impl CheckpointFile {
    pub async fn open(path: PathBuf) -> Result<CheckpointFile, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .await
            .map_err(|e| StoreError::io("open", &path, 0, e))?;
        Ok(CheckpointFile { path, file })
    }

    pub async fn store(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut file = &self.file;
        let BufResult(result, _) = file.write_all_at(checkpoint.encode(), 0).await;
        result.map_err(|e| StoreError::io("write", &self.path, 0, e))?;
        self.file
            .sync_data()
            .await
            .map_err(|e| StoreError::io("fdatasync", &self.path, 0, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_torn_bytes() {
        let checkpoint = Checkpoint {
            shard: 3,
            commit_log_flushed: (3 << 56) + 4096,
            consume_queue_safe: (3 << 56) + 100,
            commit_log_timestamp: 1_700_000_000_000,
            consume_queue_timestamp: 1_700_000_000_001,
            revalidate_from: 3 << 56,
        };
        let mut bytes = checkpoint.encode();
        assert_eq!(bytes.len(), LEN);
        assert_eq!(Checkpoint::decode(&bytes), Some(checkpoint));
        bytes[20] ^= 1;
        assert_eq!(Checkpoint::decode(&bytes), None);
    }
}
