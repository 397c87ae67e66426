//! The index of one shard: its [`IndexFile`]s under `index_dir/shard-{n}/`, named by the
//! 20-digit creation time in ms (so name order is age order), and the lookups behind
//! QUERY_MESSAGE.
//!
//! Contract:
//! - `index_record` runs synchronously inside `append` (and during recovery): it indexes the
//!   record's `UNIQ_KEY` and each space-separated `KEYS` entry under `topic#key`; rolled-back
//!   transaction records are skipped. A full file is followed by a new one.
//! - Durability: `sync` runs in the consume queue flusher *before* the checkpoint is written,
//!   when a file has filled up and when stopping or truncating (as RocketMQ flushes its
//!   index), and with `message_index_safe` also every `index_sync_interval`, and then
//!   `consume_queue_safe` never passes the log offset sampled before the last index sync, so it
//!   bounds the index (else a power loss may lose keys indexed since the last sync, as in
//!   RocketMQ; a process crash loses none: the mapping's pages survive it); recovery re-indexes records from the scan
//!   start, skipping those at or below `recovered_end` (the newest file's `endPhyOffset` at
//!   open), so no entry is added twice after a process crash.
//! - Files are created with blocking `std::fs` calls when the previous one fills up (once per
//!   `max_index_num` keys): cheap sparse files, accepted on the shard's thread, because the
//!   append path that triggers it cannot await.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use rmq_core::message::RecordView;
use rmq_core::message::properties::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR, get_property, keys};
use rmq_core::message::record::{properties_bytes, store_timestamp_pos};
use rmq_core::message::sysflag::{TRANSACTION_ROLLBACK_TYPE, transaction_value};

use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::index_file::{IndexFile, key_hash, key_hash_after};
use crate::segment::{parse_segment_name, segment_name};

pub(crate) struct IndexService {
    enabled: bool,
    dir: PathBuf,
    slots: u32,
    capacity: u32,
    files: RefCell<Vec<Rc<IndexFile>>>,
    /// Records at or below this offset were indexed before the last shutdown or crash.
    recovered_end: i64,
    dirty: Cell<bool>,
    /// A file filled up (and a new one was started) since the last successful `sync`.
    full_unsynced: Cell<bool>,
}

/// Keys of one record: UNIQ_KEY and each KEYS entry.
pub(crate) fn record_keys(properties: &str) -> impl Iterator<Item = &str> {
    let uniq = get_property(properties, keys::UNIQ_KEY);
    let listed = get_property(properties, keys::KEYS).unwrap_or("");
    uniq.into_iter()
        .chain(listed.split(' '))
        .filter(|key| !key.is_empty())
}

/// Keys of one record from its raw properties, in `record_keys`' order and with its answers
/// (the first UNIQ_KEY and KEYS properties; empty KEYS entries skipped), found in one pass.
/// Keys that are not UTF-8 are skipped (a record the store encoded has none).
fn raw_record_keys(properties: &[u8]) -> impl Iterator<Item = &str> {
    let value_of = |segment: &'_ [u8], name: &str| -> Option<usize> {
        let after = segment.strip_prefix(name.as_bytes())?;
        (after.first() == Some(&(NAME_VALUE_SEPARATOR as u8))).then_some(name.len() + 1)
    };
    let (mut uniq, mut listed) = (None, None);
    for segment in properties.split(|&byte| byte == PROPERTY_SEPARATOR as u8) {
        if uniq.is_none()
            && let Some(at) = value_of(segment, keys::UNIQ_KEY)
        {
            uniq = Some(&segment[at..]);
        } else if listed.is_none()
            && let Some(at) = value_of(segment, keys::KEYS)
        {
            listed = Some(&segment[at..]);
        }
        if uniq.is_some() && listed.is_some() {
            break;
        }
    }
    uniq.into_iter()
        .chain(listed.unwrap_or_default().split(|&byte| byte == b' '))
        .filter(|key| !key.is_empty())
        .filter_map(|key| std::str::from_utf8(key).ok())
}

impl IndexService {
    pub async fn open(cfg: &StoreConfig, shard: u32) -> Result<IndexService, StoreError> {
        let dir = cfg.shard_index_dir(shard);
        let mut service = IndexService {
            enabled: cfg.message_index_enable,
            dir: dir.clone(),
            slots: cfg.max_hash_slot_num,
            capacity: cfg.max_index_num,
            files: RefCell::new(Vec::new()),
            recovered_end: -1,
            dirty: Cell::new(false),
            full_unsynced: Cell::new(false),
        };
        if !service.enabled {
            return Ok(service);
        }
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create_dir", &dir, 0, e))?;
        let mut names: Vec<i64> = std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io("read_dir", &dir, 0, e))?
            .filter_map(|entry| parse_segment_name(entry.ok()?.file_name().to_str()?))
            .collect();
        names.sort_unstable();
        let mut files = Vec::new();
        for name in names {
            let path = dir.join(segment_name(name));
            match IndexFile::open(&path, service.slots, service.capacity) {
                Ok(file) => files.push(Rc::new(file)),
                Err(error) => {
                    tracing::warn!(%error, "dropping an unusable index file");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        service.recovered_end = files.last().map_or(-1, |f| {
            let header = f.header();
            if header.count > 1 {
                header.end_phy_offset
            } else {
                -1
            }
        });
        service.files = RefCell::new(files);
        Ok(service)
    }

    /// Indexes one record at `position` (append path).
    pub fn index_record(&self, record: &RecordView<'_>, position: i64) -> Result<(), StoreError> {
        if !self.enabled || transaction_value(record.sys_flag()) == TRANSACTION_ROLLBACK_TYPE {
            return Ok(());
        }
        for key in record_keys(record.properties()) {
            let hash = key_hash(record.topic(), key);
            let file = self.writable_file(record.store_timestamp())?;
            let added = file.put(hash, position, record.store_timestamp());
            assert!(added, "a writable index file has room");
        }
        self.dirty.set(true);
        Ok(())
    }

    /// Indexes a record the append path just patched at `position`; `key_prefix` is
    /// `key_prefix_hash` of its topic. Reads only the fields the index needs (the record was
    /// encoded by this process; `index_record` is the checked path), with the same entries.
    /// The index is derived data: a failure (no room for a new index file) is logged, never
    /// fails the send.
    pub fn index_appended(&self, record: &[u8], position: i64, key_prefix: i32) {
        if !self.enabled {
            return;
        }
        let sys_flag = crate::shard_store::sys_flag(record);
        if transaction_value(sys_flag) == TRANSACTION_ROLLBACK_TYPE {
            return;
        }
        let at = store_timestamp_pos(sys_flag);
        let store_timestamp = i64::from_be_bytes(record[at..at + 8].try_into().expect("8 bytes"));
        let properties = properties_bytes(record).expect("the store patched a valid record");
        for key in raw_record_keys(properties) {
            let file = match self.writable_file(store_timestamp) {
                Ok(file) => file,
                Err(error) => {
                    tracing::warn!(%error, dir = %self.dir.display(), position, "indexing a record failed");
                    return;
                }
            };
            let added = file.put(key_hash_after(key_prefix, key), position, store_timestamp);
            assert!(added, "a writable index file has room");
        }
        self.dirty.set(true);
    }

    /// Recovery: indexes a record unless it was indexed before the crash.
    pub fn reindex_record(&self, record: &RecordView<'_>, position: i64) {
        if position <= self.recovered_end {
            return;
        }
        if let Err(error) = self.index_record(record, position) {
            tracing::warn!(%error, position, "re-indexing a record failed");
        }
    }

    fn writable_file(&self, now_ms: i64) -> Result<Rc<IndexFile>, StoreError> {
        if let Some(last) = self.files.borrow().last()
            && !last.is_full()
        {
            return Ok(last.clone());
        }
        let newest = self.files.borrow().last().map_or(0, |f| {
            parse_segment_name(f.path.file_name().and_then(|n| n.to_str()).unwrap_or(""))
                .unwrap_or(0)
        });
        let name = now_ms.max(newest + 1).max(0);
        let path = self.dir.join(segment_name(name));
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| StoreError::io("create_dir", &self.dir, 0, e))?;
        let file = Rc::new(IndexFile::open(&path, self.slots, self.capacity)?);
        let mut files = self.files.borrow_mut();
        // The file before this one is full: it is synced by the next flush round.
        if !files.is_empty() {
            self.full_unsynced.set(true);
        }
        files.push(file.clone());
        Ok(file)
    }

    /// Offsets of records of `topic` whose key is `key`, stored in `[begin_ms, end_ms]`,
    /// newest first (hints; duplicates possible after a power loss).
    pub fn lookup(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Vec<i64> {
        let hash = key_hash(topic, key);
        let mut out = Vec::new();
        for file in self.files.borrow().iter().rev() {
            if out.len() >= max {
                break;
            }
            file.lookup(hash, begin_ms, end_ms, max - out.len(), &mut out);
        }
        out
    }

    /// `(endTimestamp, endPhyOffset)` of the newest file: QUERY_MESSAGE's
    /// indexLastUpdateTimestamp and indexLastUpdatePhyoffset.
    pub fn last_update(&self) -> (i64, i64) {
        self.files.borrow().last().map_or((0, 0), |f| {
            (f.header().end_timestamp, f.header().end_phy_offset)
        })
    }

    /// A slave truncated its log to `to`: entries at or past it stay as stale hints (lookups
    /// re-read and check every record), but the newest file no longer claims to cover them,
    /// so recovery re-indexes the records appended there later.
    pub fn forget_from(&self, to: i64) {
        if let Some(newest) = self.files.borrow().last() {
            newest.cap_end_phy_offset(to - 1);
            self.dirty.set(true);
        }
    }

    /// True when keys were indexed since the last successful `sync`.
    pub fn is_dirty(&self) -> bool {
        self.dirty.get()
    }

    /// True when a file filled up since the last successful `sync` (RocketMQ flushes an
    /// index file when it is full).
    pub fn has_full_unsynced(&self) -> bool {
        self.full_unsynced.get()
    }

    /// `fdatasync`s the files written since the last call.
    pub async fn sync(&self) -> Result<(), StoreError> {
        if !self.dirty.replace(false) {
            return Ok(());
        }
        let files: Vec<Rc<IndexFile>> = self.files.borrow().iter().rev().take(2).cloned().collect();
        let full_unsynced = self.full_unsynced.replace(false);
        for file in files {
            if let Err(error) = file.sync().await {
                self.dirty.set(true);
                self.full_unsynced.set(full_unsynced);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Deletes the files (never the newest) whose every entry points below `min_offset`.
    pub async fn delete_below(&self, min_offset: i64) -> Result<usize, StoreError> {
        let mut removed = Vec::new();
        {
            let mut files = self.files.borrow_mut();
            while files.len() > 1 && files[0].header().end_phy_offset < min_offset {
                removed.push(files.remove(0));
            }
        }
        for file in &removed {
            compio::fs::remove_file(&file.path)
                .await
                .map_err(|e| StoreError::io("remove", &file.path, 0, e))?;
        }
        Ok(removed.len())
    }

    pub fn file_count(&self) -> usize {
        self.files.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use rmq_core::message::sysflag::TRANSACTION_ROLLBACK_TYPE;
    use rmq_core::message::{NewRecord, parse_record, patch_record};

    use super::*;
    use crate::index_file::key_prefix_hash;

    fn record(topic: &str, properties: &str, sys_flag: i32, at_ms: i64) -> BytesMut {
        let mut buf = BytesMut::new();
        NewRecord {
            topic,
            queue_id: 0,
            flag: 0,
            body: b"body",
            properties,
            sys_flag,
            born_timestamp: at_ms,
            born_host: "[::1]:1".parse().unwrap(),
            store_host: "10.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
        .encode_into(&mut buf)
        .unwrap();
        buf
    }

    /// The append path's reader (`index_appended`) and the checked one (`index_record`, used
    /// by recovery) write byte-identical index files: same entries, same order, same hashes.
    #[test]
    fn the_append_path_writes_the_same_index_as_the_checked_path() {
        let cases: &[(&str, &str, i32)] = &[
            (
                "TopicTest",
                "UNIQ_KEY\u{1}C0A80001\u{2}KEYS\u{1}k1 k2  k3\u{2}",
                0,
            ),
            (
                "TopicTest",
                "KEYS\u{1}first\u{2}TAGS\u{1}T\u{2}UNIQ_KEY\u{1}U1\u{2}",
                0,
            ),
            ("TopicTest", "TAGS\u{1}TagA\u{2}", 0),
            ("TopicTest", "", 0),
            (
                "Topic\u{e9}",
                "KEYS\u{1}cl\u{e9} \u{1F600}\u{2}KEYS\u{1}second\u{2}",
                0,
            ),
            (
                "TopicTest",
                "UNIQ_KEY\u{1}\u{2}KEYS\u{1} \u{2}XKEYS\u{1}no\u{2}",
                0,
            ),
            (
                "TopicTest",
                "KEYSX\u{1}no\u{2}UNIQ_KEY\u{1}a\u{2}UNIQ_KEY\u{1}b\u{2}",
                0,
            ),
            (
                "TopicTest",
                "KEYS\u{1}rolled-back\u{2}",
                TRANSACTION_ROLLBACK_TYPE,
            ),
            ("polygenelubricant", "KEYS\u{1}s\u{2}", 0),
        ];
        let root = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            let mut cfg = StoreConfig::new(root.path().join(name));
            cfg.max_hash_slot_num = 7;
            cfg.max_index_num = 64;
            compio::runtime::Runtime::new()
                .unwrap()
                .block_on(IndexService::open(&cfg, 0))
                .unwrap()
        };
        let (fast, checked) = (open("fast"), open("checked"));
        let (mut position, mut positions) = (0, Vec::new());
        for (round, (topic, properties, sys_flag)) in cases.iter().enumerate() {
            let mut buf = record(topic, properties, *sys_flag, 1_700_000_000_000);
            let store_ms = 1_700_000_000_000 + round as i64 * 1500;
            patch_record(&mut buf, round as i64, position, store_ms);
            fast.index_appended(&buf, position, key_prefix_hash(topic));
            let view = parse_record(&buf).unwrap();
            checked.index_record(&view, position).unwrap();
            positions.push(position);
            position += buf.len() as i64;
        }
        let bytes = |service: &IndexService| {
            let files = service.files.borrow();
            assert_eq!(files.len(), 1);
            std::fs::read(&files[0].path).unwrap()
        };
        let written = bytes(&checked);
        assert_eq!(bytes(&fast), written);
        // 4 + 2 + 0 + 0 + 2 + 0 + 1 + 0 + 1 keys; entry numbers start at 1.
        assert_eq!(checked.files.borrow()[0].header().count, 11);
        assert_eq!(
            fast.lookup("Topic\u{e9}", "\u{1F600}", 8, 0, i64::MAX),
            [positions[4]]
        );
    }
}
