//! `truncate_replica`: a slave ahead of its master cuts its log tail, takes different records
//! at the same offsets, and recovers exactly the new log after a crash or a clean restart
//! (no stale consume queue entry, no index hit for a dropped key).

mod common;

use bytes::{Buf, BytesMut};
use common::*;
use rmq_storage::{Durability, ShardStore, StoreError};

const TOPICS: [&str; 2] = ["TruncA", "TruncB"];
/// A topic only the dropped tail holds: its queue disappears with the tail.
const ONLY_DROPPED: &str = "TruncGone";

/// Appends records `first..first + count` (`tag` tells histories apart), waits until written.
async fn append_some(store: &ShardStore, first: usize, count: usize, tag: &str, extra: bool) {
    let mut end = 0;
    for i in first..first + count {
        let topic = if extra && i % 5 == 0 {
            ONLY_DROPPED
        } else {
            TOPICS[i % 2]
        };
        let body = vec![b'a' + (i % 26) as u8; 100 + (i * 37) % 3000];
        let props = format!("TAGS\u{1}t{}\u{2}KEYS\u{1}{tag}{i}\u{2}", i % 3);
        let mut record = encode(topic, 0, &body, &props, 0);
        end = store
            .append(topic, 0, &mut record, i as i64, 1_000 + i as i64)
            .unwrap()
            .end_offset;
    }
    store.wait_durable(end, Durability::Written).await.unwrap();
}

/// Copies what `master` has written past the slave's end, in `chunk`-byte pieces.
async fn replicate(master: &ShardStore, slave: &ShardStore, chunk: usize) {
    let mut from = slave.max_physical_offset();
    let (mut pending, mut pending_start) = (BytesMut::new(), from);
    while from < master.written_offset() {
        from += master
            .read_replication_chunk(from, chunk, &mut pending)
            .await
            .unwrap() as i64;
        let consumed = slave.append_replicated(pending_start, &pending).unwrap();
        pending.advance(consumed);
        pending_start += consumed as i64;
    }
    assert!(pending.is_empty());
    assert_eq!(slave.max_physical_offset(), master.written_offset());
}

async fn log_bytes(store: &ShardStore) -> BytesMut {
    log_range(store, store.oldest_offset(), store.max_physical_offset()).await
}

async fn assert_same(master: &ShardStore, slave: &ShardStore) {
    assert_eq!(master.max_physical_offset(), slave.max_physical_offset());
    assert!(
        log_bytes(master).await == log_bytes(slave).await,
        "same log bytes"
    );
    for topic in TOPICS.into_iter().chain([ONLY_DROPPED]) {
        assert_eq!(
            master.max_queue_offset(topic, 0),
            slave.max_queue_offset(topic, 0),
            "{topic}"
        );
        assert_eq!(
            read_queue(master, topic, 0).await,
            read_queue(slave, topic, 0).await
        );
    }
}

async fn hits(store: &ShardStore, key: &str) -> usize {
    let mut total = 0;
    for topic in TOPICS.into_iter().chain([ONLY_DROPPED]) {
        total += store
            .query_by_key(topic, key, 32, 0, i64::MAX)
            .await
            .unwrap()
            .records
            .len();
    }
    total
}

/// The slave's view after the truncation and the new records: the new history, nothing of
/// the dropped one.
async fn assert_new_history(new_master: &ShardStore, slave: &ShardStore) {
    assert_same(new_master, slave).await;
    for i in [40, 41, 77, 119] {
        assert_eq!(
            hits(slave, &format!("old{i}")).await,
            0,
            "dropped key old{i}"
        );
    }
    for i in [0, 39] {
        assert_eq!(hits(slave, &format!("old{i}")).await, 1, "kept key old{i}");
    }
    for i in [40, 59] {
        assert_eq!(hits(slave, &format!("new{i}")).await, 1, "new key new{i}");
    }
}

#[test]
fn truncated_tail_is_replaced_and_survives_crash_and_restart() {
    let dirs = [temp_dir(), temp_dir(), temp_dir()];
    let [old_cfg, new_cfg, slave_cfg] = dirs.each_ref().map(|d| small_config(d.path(), 1));
    run(async {
        // Two masters sharing 40 records, then diverging.
        let (_old_layout, old) = open(&old_cfg, 0).await;
        let (_new_layout, new) = open(&new_cfg, 0).await;
        append_some(&old, 0, 40, "old", false).await;
        replicate(&old, &new, 5000).await;
        let cut = new.max_physical_offset();
        append_some(&old, 40, 80, "old", true).await;
        append_some(&new, 40, 20, "new", false).await;
        assert!(
            old.max_physical_offset() > cut + 2 * 65536,
            "several segments dropped"
        );
        {
            let (_slave_layout, slave) = open(&slave_cfg, 0).await;
            replicate(&old, &slave, 3001).await;
            assert!(slave.max_queue_offset(ONLY_DROPPED, 0) > 0);
            assert_eq!(hits(&slave, "old77").await, 1);

            let end = slave.max_physical_offset();
            let outside = slave.truncate_replica(end + 1).await;
            assert!(
                matches!(outside, Err(StoreError::TruncateOutOfRange { .. })),
                "{outside:?}"
            );
            let inside = slave.truncate_replica(cut + 1).await;
            assert!(
                matches!(inside, Err(StoreError::NotRecordBoundary { .. })),
                "{inside:?}"
            );
            assert_eq!(
                slave.max_physical_offset(),
                end,
                "a refused cut changes nothing"
            );

            slave.truncate_replica(cut).await.unwrap();
            assert_eq!(slave.max_physical_offset(), cut);
            assert_eq!(slave.written_offset(), cut);
            for topic in TOPICS {
                assert_eq!(slave.max_queue_offset(topic, 0), 20, "{topic}");
            }
            assert_eq!(slave.max_queue_offset(ONLY_DROPPED, 0), 0);
            assert_eq!(hits(&slave, "old77").await, 0);
            assert!(slave.read_record(cut).await.unwrap().is_none());
            slave.truncate_replica(cut).await.unwrap(); // idempotent

            replicate(&new, &slave, 2000).await;
            assert_new_history(&new, &slave).await;
            // Dropped without shutdown: a crash.
        }
        {
            let (_slave_layout, slave) = open(&slave_cfg, 0).await;
            assert_new_history(&new, &slave).await;
            append_some(&new, 60, 10, "new", false).await;
            replicate(&new, &slave, 4096).await;
            assert_new_history(&new, &slave).await;
            slave.shutdown().await.unwrap();
        }
        let (_slave_layout, slave) = open(&slave_cfg, 0).await;
        assert_new_history(&new, &slave).await;
    });
}

/// Offset of the first segment end after `after` where the log holds a filler, and the
/// filler's position.
async fn filler_before_segment_end(store: &ShardStore, after: i64) -> (i64, i64) {
    let bytes = log_bytes(store).await;
    let base = store.oldest_offset();
    let mut at = 0usize;
    loop {
        let size = i32_at(&bytes, at) as usize;
        let magic = i32_at(&bytes, at + 4);
        if magic != MESSAGE_MAGIC_CODE {
            let segment_end = base + (at + size) as i64;
            if segment_end > after {
                return (base + at as i64, segment_end);
            }
        }
        at += size;
    }
}

#[test]
fn cut_inside_a_segment_fill_keeps_the_filler_and_restarts_cleanly() {
    let dirs = [temp_dir(), temp_dir()];
    let [master_cfg, slave_cfg] = dirs.each_ref().map(|d| small_config(d.path(), 1));
    run(async {
        let (_master_layout, master) = open(&master_cfg, 0).await;
        append_some(&master, 0, 60, "old", false).await;
        let (filler, segment_end) = filler_before_segment_end(&master, 0).await;
        assert!(segment_end < master.max_physical_offset());
        {
            let (_slave_layout, slave) = open(&slave_cfg, 0).await;
            replicate(&master, &slave, 1 << 16).await;
            // Inside the filler's zero fill (or inside the filler itself): the log keeps the
            // filler and ends at the next segment's start.
            for to in [
                filler + 8 + (segment_end - filler - 8) / 2,
                segment_end - 1,
                filler + 3,
            ] {
                slave.truncate_replica(to).await.unwrap();
                assert_eq!(slave.max_physical_offset(), segment_end, "cut at {to}");
            }
            // At the filler itself: the filler goes too.
            slave.truncate_replica(filler).await.unwrap();
            assert_eq!(slave.max_physical_offset(), filler);
            // The same records again, from the master.
            replicate(&master, &slave, 777).await;
            let before = log_bytes(&slave).await;
            assert!(before == log_bytes(&master).await);
            slave.truncate_replica(segment_end).await.unwrap();
            assert_eq!(slave.max_physical_offset(), segment_end);
        }
        // Crash, reopen: the log ends at the segment start, then takes the rest again.
        let (_slave_layout, slave) = open(&slave_cfg, 0).await;
        assert_eq!(slave.max_physical_offset(), segment_end);
        replicate(&master, &slave, 3000).await;
        assert!(log_bytes(&slave).await == log_bytes(&master).await);
        for topic in TOPICS {
            assert_eq!(
                read_queue(&master, topic, 0).await,
                read_queue(&slave, topic, 0).await
            );
        }
    });
}

/// A truncation whose zeroing write fails half-way: replicated appends are refused until a
/// repeated call finishes it; after a crash instead, recovery opens a consistent log that a
/// new truncation cuts again.
#[test]
fn a_failed_truncation_is_finished_by_the_next_call_or_by_recovery() {
    use rmq_storage::faults::{Fault, FileOp, ScriptedFaults};
    let dirs = [temp_dir(), temp_dir(), temp_dir()];
    let [old_cfg, new_cfg, mut slave_cfg] = dirs.each_ref().map(|d| small_config(d.path(), 1));
    let faults = std::sync::Arc::new(ScriptedFaults::default());
    slave_cfg.faults = Some(faults.clone());
    run(async {
        let (_old_layout, old) = open(&old_cfg, 0).await;
        let (_new_layout, new) = open(&new_cfg, 0).await;
        append_some(&old, 0, 40, "old", false).await;
        replicate(&old, &new, 5000).await;
        let cut = new.max_physical_offset();
        append_some(&old, 40, 80, "old", true).await;
        append_some(&new, 40, 20, "new", false).await;
        for crash in [false, true] {
            let (slave_layout, slave) = open(&slave_cfg, 0).await;
            replicate(&old, &slave, 3001).await;
            let end = slave.max_physical_offset();
            slave.wait_durable(end, Durability::Flushed).await.unwrap();
            faults.push(FileOp::Write, Fault::Short(4096));
            let failed = slave.truncate_replica(cut).await;
            assert!(matches!(failed, Err(StoreError::Io { .. })), "{failed:?}");
            assert!(slave.truncation_pending());
            let refused = slave.append_replicated(cut, b"");
            assert!(
                matches!(refused, Err(StoreError::TruncationPending { .. })),
                "{refused:?}"
            );
            if crash {
                drop((slave, slave_layout));
                let (_slave_layout, slave) = open(&slave_cfg, 0).await;
                let end = slave.max_physical_offset();
                assert!(end >= cut, "recovery keeps what the master has");
                for topic in TOPICS {
                    let records = read_queue(&slave, topic, 0).await;
                    assert!(
                        records.len() >= 20,
                        "{topic}: queue readable after the crash"
                    );
                }
                slave.truncate_replica(cut).await.unwrap();
                replicate(&new, &slave, 2000).await;
                assert_new_history(&new, &slave).await;
            } else {
                slave.truncate_replica(cut).await.unwrap();
                assert!(!slave.truncation_pending());
                replicate(&new, &slave, 2000).await;
                assert_new_history(&new, &slave).await;
                drop((slave, slave_layout));
                let (_slave_layout, slave) = open(&slave_cfg, 0).await;
                assert_new_history(&new, &slave).await;
                // Back to the old history for the crash round.
                slave.truncate_replica(cut).await.unwrap();
                slave.shutdown().await.unwrap();
            }
        }
        assert_eq!(faults.injected(), 2);
    });
}
