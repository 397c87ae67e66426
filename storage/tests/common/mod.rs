//! Store fixtures of these tests; the record encoder, record readers, `run`, `open` and
//! `log_range` come from `rmq-test-support`.
#![allow(dead_code, unused_imports)]

pub use rmq_test_support::record::{
    MESSAGE_MAGIC_CODE, body_of, encode, i32_at, i64_at, split_records,
};
pub use rmq_test_support::store::{log_range, open, run};

use std::path::Path;
use std::time::Duration;

use rmq_storage::{FlushMode, ShardStore, StoreConfig, shard_for_queue};

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
