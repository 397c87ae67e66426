//! Test helpers: a docs/protocol.md §3.1 record encoder and store fixtures.
#![allow(dead_code)]

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rmq_storage::{Durability, FlushMode, ShardStore, StoreConfig, StoreLayout, shard_for_queue};

pub const MESSAGE_MAGIC_CODE: i32 = -626843481;

/// Encodes a record the way the broker hands it to the store: offsets and store time zero.
pub fn encode(
    topic: &str,
    queue_id: i32,
    body: &[u8],
    properties: &str,
    sys_flag: i32,
) -> BytesMut {
    let total = 84 + 4 + body.len() + 1 + topic.len() + 2 + properties.len();
    let mut out = BytesMut::with_capacity(total);
    out.put_i32(total as i32);
    out.put_i32(MESSAGE_MAGIC_CODE);
    out.put_i32((crc32fast::hash(body) & 0x7FFF_FFFF) as i32);
    out.put_i32(queue_id);
    out.put_i32(0); // flag
    out.put_i64(0); // queue offset
    out.put_i64(0); // physical offset
    out.put_i32(sys_flag);
    out.put_i64(1_700_000_000_000); // born timestamp
    out.put_slice(&[127, 0, 0, 1]);
    out.put_i32(40_000);
    out.put_i64(0); // store timestamp
    out.put_slice(&[127, 0, 0, 1]);
    out.put_i32(10_911);
    out.put_i32(0); // reconsume times
    out.put_i64(0); // prepared transaction offset
    out.put_i32(body.len() as i32);
    out.put_slice(body);
    out.put_u8(topic.len() as u8);
    out.put_slice(topic.as_bytes());
    out.put_i16(properties.len() as i16);
    out.put_slice(properties.as_bytes());
    assert_eq!(out.len(), total);
    out
}

pub fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

pub fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Splits a pull body into records.
pub fn split_records(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while !body.is_empty() {
        let size = i32_at(body, 0) as usize;
        records.push(body[..size].to_vec());
        body = &body[size..];
    }
    records
}

/// Body bytes of an encoded record (IPv4 hosts).
pub fn body_of(record: &[u8]) -> &[u8] {
    let len = i32_at(record, 84) as usize;
    &record[88..88 + len]
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

pub fn small_config(root: &Path, shards: u32) -> StoreConfig {
    let mut cfg = StoreConfig::new(root);
    cfg.commit_log_file_size = 64 * 1024;
    cfg.consume_queue_file_size = 20 * 100;
    cfg.requested_shard_count = shards;
    cfg.flush_mode = FlushMode::Async;
    cfg.flush_interval_commit_log = Duration::from_millis(20);
    cfg.flush_interval_consume_queue = Duration::from_millis(50);
    cfg.sync_flush_timeout = Duration::from_secs(5);
    cfg
}

/// A queue id of `topic` that shard `shard` owns.
pub fn queue_of_shard(topic: &str, shard: u32, shard_count: u32) -> i32 {
    (0..64)
        .find(|&q| shard_for_queue(topic, q, shard_count) == shard)
        .unwrap()
}

pub fn run<F: std::future::Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new().unwrap().block_on(future)
}

pub async fn open(cfg: &StoreConfig, shard: u32) -> (StoreLayout, Rc<ShardStore>) {
    let layout = StoreLayout::open(cfg).unwrap();
    let store = ShardStore::open(cfg.clone(), shard, layout.previous_shutdown_clean)
        .await
        .unwrap();
    (layout, store)
}

pub fn accept_all(_: i64) -> bool {
    true
}

/// Every record of a queue, pulled from its min offset: (queue offset, record bytes). Checks
/// on the way that each record parses, has a valid body CRC and sits at its queue offset.
pub async fn read_queue(store: &ShardStore, topic: &str, queue: i32) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = store.min_queue_offset(topic, queue);
    loop {
        let got = store
            .get_messages(topic, queue, offset, 32, &accept_all)
            .await
            .unwrap();
        if got.count == 0 {
            return out;
        }
        for record in split_records(&got.body) {
            let view = rmq_core::message::parse_record(&record).expect("a stored record parses");
            assert!(
                view.crc_ok(),
                "body CRC mismatch at {topic}:{queue}:{offset}"
            );
            assert_eq!(
                view.queue_offset(),
                offset,
                "record at the wrong queue offset"
            );
            assert_eq!(view.topic(), topic);
            out.push((offset, record));
            offset += 1;
        }
        assert_eq!(got.next_begin_offset, offset);
    }
}

/// The log's bytes `[from, end)` as the replication stream reads them, once they are written.
pub async fn log_range(store: &ShardStore, from: i64, end: i64) -> BytesMut {
    store.wait_durable(end, Durability::Written).await.unwrap();
    let (mut at, mut out) = (from, BytesMut::new());
    while at < end {
        at += store
            .read_replication_chunk(at, 1 << 20, &mut out)
            .await
            .unwrap() as i64;
    }
    out
}
