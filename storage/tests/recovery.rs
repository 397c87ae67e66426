//! Crash recovery: drop without shutdown, damage the tail, reopen.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use rmq_storage::{AppendResult, Durability, GetStatus, StoreConfig};

/// Appends `count` records alternating over queues 0 and 1, waits until they are written,
/// optionally lets the consume queue flusher run, then drops everything without shutdown.
fn crash_after_appends(cfg: &StoreConfig, count: usize, settle: Duration) -> Vec<AppendResult> {
    run(async {
        let (layout, store) = open(cfg, 0).await;
        let results = append_alternating(&store, count);
        let end = results.last().unwrap().end_offset;
        store.wait_durable(end, Durability::Written).await.unwrap();
        compio::time::sleep(settle).await;
        drop(store);
        drop(layout);
        results
    })
}

/// Appends `count` records "crash-{i}-..." of varied sizes, alternating over queues 0 and 1.
fn append_alternating(store: &rmq_storage::ShardStore, count: usize) -> Vec<AppendResult> {
    (0..count)
        .map(|i| {
            let queue = (i % 2) as i32;
            let body = format!("crash-{i}-{}", "x".repeat(i * 13 % 700));
            let mut record = encode("Crash", queue, body.as_bytes(), "", 0);
            store
                .append("Crash", queue, &mut record, i as i64, 10_000 + i as i64)
                .unwrap()
        })
        .collect()
}

fn segment_path(cfg: &StoreConfig, physical_offset: i64) -> (PathBuf, u64) {
    let size = cfg.commit_log_file_size as i64;
    let start = physical_offset / size * size;
    (
        cfg.commit_log_dir.join(format!("{start:020}")),
        (physical_offset - start) as u64,
    )
}

fn overwrite(path: &PathBuf, at: u64, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// Reads every message of the queue and checks offsets, bodies and CRC-valid records.
async fn check_queue(
    store: &rmq_storage::ShardStore,
    queue: i32,
    expected: &[(usize, &AppendResult)],
) {
    assert_eq!(
        store.max_queue_offset("Crash", queue),
        expected.len() as i64
    );
    let mut offset = 0i64;
    while (offset as usize) < expected.len() {
        let pulled = store
            .get_messages("Crash", queue, offset, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(pulled.status, GetStatus::Found);
        for record in split_records(&pulled.body) {
            let (i, result) = expected[offset as usize];
            let view = rmq_core::message::parse_record(&record).unwrap();
            assert!(view.crc_ok());
            assert_eq!(view.physical_offset(), result.physical_offset);
            assert_eq!(view.queue_offset(), offset);
            assert!(view.body().starts_with(format!("crash-{i}-").as_bytes()));
            offset += 1;
        }
    }
}

fn expected_for(results: &[AppendResult], queue: i32, keep: usize) -> Vec<(usize, &AppendResult)> {
    results
        .iter()
        .enumerate()
        .take(keep)
        .filter(|(i, _)| (*i % 2) as i32 == queue)
        .collect()
}

#[test]
fn crash_with_flushed_queues_and_corrupt_last_record() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    let results = crash_after_appends(&cfg, 120, Duration::from_millis(200));
    let last = results.last().unwrap();
    let (path, at) = segment_path(&cfg, last.physical_offset);
    overwrite(&path, at + 90, b"garbage!");
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        assert!(!layout.previous_shutdown_clean);
        assert_eq!(store.max_physical_offset(), last.physical_offset);
        assert_eq!(store.flushed_offset(), last.physical_offset);
        check_queue(&store, 0, &expected_for(&results, 0, 119)).await;
        check_queue(&store, 1, &expected_for(&results, 1, 119)).await;
        assert!(
            store
                .read_record(last.physical_offset)
                .await
                .unwrap()
                .is_none()
        );
        // The log continues where the valid records end, with the next queue offset.
        let mut record = encode("Crash", 1, b"after", "", 0);
        let again = store.append("Crash", 1, &mut record, 0, 1).unwrap();
        assert_eq!(again.physical_offset, last.physical_offset);
        assert_eq!(again.queue_offset, last.queue_offset);
        store.shutdown().await.unwrap();
        layout.mark_clean_shutdown().unwrap();
    });
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        assert!(layout.previous_shutdown_clean);
        assert_eq!(store.max_queue_offset("Crash", 1), 60);
        let pulled = store
            .get_messages("Crash", 1, 59, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(body_of(&split_records(&pulled.body)[0]), b"after");
    });
}

#[test]
fn crash_with_unflushed_queues_and_torn_tail() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.flush_interval_consume_queue = Duration::from_secs(3600);
    let results = crash_after_appends(&cfg, 150, Duration::ZERO);
    assert!(
        !cfg.consume_queue_dir.join("Crash").exists(),
        "queues never flushed"
    );
    let last = results.last().unwrap();
    let (path, at) = segment_path(&cfg, last.physical_offset);
    let len = (last.end_offset - last.physical_offset) as u64;
    overwrite(&path, at + len - 40, &[0u8; 40]);
    // Stale bytes after the tear (a record from a lost later write) must not come back.
    overwrite(&path, at + len + 16, b"stale stale stale");
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        assert!(!layout.previous_shutdown_clean);
        assert_eq!(store.max_physical_offset(), last.physical_offset);
        check_queue(&store, 0, &expected_for(&results, 0, 149)).await;
        check_queue(&store, 1, &expected_for(&results, 1, 149)).await;
        store.shutdown().await.unwrap();
        layout.mark_clean_shutdown().unwrap();
    });
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes[at as usize..].iter().all(|&b| b == 0),
        "tail zeroed on disk"
    );
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        check_queue(&store, 0, &expected_for(&results, 0, 149)).await;
        check_queue(&store, 1, &expected_for(&results, 1, 149)).await;
    });
}

#[test]
fn missing_checkpoint_rebuilds_everything_from_the_log() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    let results = crash_after_appends(&cfg, 80, Duration::from_millis(200));
    std::fs::remove_dir_all(&cfg.consume_queue_dir).unwrap();
    std::fs::remove_file(cfg.root_dir.join("shard-0.checkpoint")).unwrap();
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        assert_eq!(
            store.max_physical_offset(),
            results.last().unwrap().end_offset
        );
        check_queue(&store, 0, &expected_for(&results, 0, 80)).await;
        check_queue(&store, 1, &expected_for(&results, 1, 80)).await;
    });
}

/// A written record survives a crash before any `fdatasync`, whether segments are written
/// through the page cache (ASYNC_FLUSH default) or with `O_DIRECT` (`asyncFlushDirectIo`).
#[test]
fn written_records_survive_a_crash_before_any_sync_in_both_write_modes() {
    for direct_io in [false, true] {
        let dir = temp_dir();
        let mut cfg = small_config(dir.path(), 1);
        cfg.direct_io = direct_io;
        cfg.flush_interval_commit_log = Duration::from_secs(3600);
        cfg.flush_commit_log_thorough_interval = Duration::from_secs(3600);
        cfg.flush_interval_consume_queue = Duration::from_secs(3600);
        let count = 150;
        let results = run(async {
            let (layout, store) = open(&cfg, 0).await;
            let results = append_alternating(&store, count);
            let end = results.last().unwrap().end_offset;
            store.wait_durable(end, Durability::Written).await.unwrap();
            let stats = store.stats();
            if !direct_io {
                assert!(!stats.direct_io, "page-cache writes reported as O_DIRECT");
            }
            assert!(stats.commit_log_writes > 0);
            assert!(
                store.flushed_offset() < end,
                "no fdatasync ran: the records are only written"
            );
            drop(store);
            drop(layout);
            results
        });
        run(async {
            let (layout, store) = open(&cfg, 0).await;
            assert!(!layout.previous_shutdown_clean);
            assert_eq!(
                store.max_physical_offset(),
                results.last().unwrap().end_offset,
                "direct_io={direct_io}"
            );
            check_queue(&store, 0, &expected_for(&results, 0, count)).await;
            check_queue(&store, 1, &expected_for(&results, 1, count)).await;
        });
    }
}

/// `consume_queue_safe` of shard 0's checkpoint file (layout in storage/src/checkpoint.rs).
fn checkpoint_consume_queue_safe(cfg: &StoreConfig) -> i64 {
    let bytes = std::fs::read(cfg.root_dir.join("shard-0.checkpoint")).unwrap();
    i64_at(&bytes, 24)
}

/// messageIndexSafe: the checkpoint never passes the index's last sync; without it the
/// checkpoint follows the consume queues while the index syncs on its own, slower clock.
#[test]
fn message_index_safe_holds_the_checkpoint_at_the_last_index_sync() {
    for index_safe in [true, false] {
        let dir = temp_dir();
        let mut cfg = small_config(dir.path(), 1);
        cfg.message_index_safe = index_safe;
        cfg.index_sync_interval = Duration::from_secs(3600);
        cfg.flush_interval_consume_queue = Duration::from_millis(20);
        run(async {
            let (_layout, store) = open(&cfg, 0).await;
            let append = |i: i64| {
                let props = format!("KEYS\u{1}key-{i}\u{2}");
                let mut record = encode("Idx", 0, b"body", &props, 0);
                store.append("Idx", 0, &mut record, i, 1_000 + i).unwrap()
            };
            let first = append(0);
            store
                .wait_durable(first.end_offset, Durability::Flushed)
                .await
                .unwrap();
            // The first queue flush after open always syncs the index.
            compio::time::sleep(Duration::from_millis(150)).await;
            assert_eq!(checkpoint_consume_queue_safe(&cfg), first.end_offset);
            let mut last = first;
            for i in 1..20 {
                last = append(i);
            }
            store
                .wait_durable(last.end_offset, Durability::Flushed)
                .await
                .unwrap();
            compio::time::sleep(Duration::from_millis(150)).await;
            let safe = checkpoint_consume_queue_safe(&cfg);
            if index_safe {
                assert_eq!(safe, first.end_offset, "held at the index's last sync");
            } else {
                assert_eq!(safe, last.end_offset, "follows the consume queues");
            }
        });
    }
}

#[test]
fn clean_reopen_keeps_everything() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    let results = run(async {
        let (layout, store) = open(&cfg, 0).await;
        let mut results = Vec::new();
        for i in 0..100 {
            let queue = i % 2;
            let body = format!("crash-{i}-");
            let mut record = encode("Crash", queue, body.as_bytes(), "", 0);
            results.push(
                store
                    .append("Crash", queue, &mut record, i as i64, i as i64)
                    .unwrap(),
            );
        }
        store.shutdown().await.unwrap();
        assert_eq!(store.flushed_offset(), store.max_physical_offset());
        layout.mark_clean_shutdown().unwrap();
        results
    });
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        assert!(layout.previous_shutdown_clean);
        assert_eq!(
            store.max_physical_offset(),
            results.last().unwrap().end_offset
        );
        check_queue(&store, 0, &expected_for(&results, 0, 100)).await;
        check_queue(&store, 1, &expected_for(&results, 1, 100)).await;
        assert_eq!(
            store
                .search_offset_by_timestamp("Crash", 0, 50)
                .await
                .unwrap(),
            25
        );
    });
}
