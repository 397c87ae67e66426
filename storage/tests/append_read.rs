//! Append, read back, batches, statuses, filters, time search, long polling.

mod common;

use std::time::Duration;

use common::*;
use rmq_storage::{Durability, GetStatus, StoreError};

#[test]
fn append_and_read_back() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let mut ends = Vec::new();
        for i in 0..50 {
            let body = format!("message-{i}");
            let mut record = encode("TopicA", 0, body.as_bytes(), "TAGS\u{1}a\u{2}", 0);
            let result = store
                .append("TopicA", 0, &mut record, 7, 1_000 + i)
                .unwrap();
            assert_eq!(result.queue_offset, i);
            assert_eq!(result.count, 1);
            assert_eq!(
                result.end_offset,
                result.physical_offset + record.len() as i64
            );
            assert_eq!(i64_at(&record, 20), i, "queue offset patched");
            assert_eq!(
                i64_at(&record, 28),
                result.physical_offset,
                "physical offset patched"
            );
            assert_eq!(i64_at(&record, 56), 1_000 + i, "store timestamp patched");
            ends.push(result);
        }
        assert_eq!(store.max_queue_offset("TopicA", 0), 50);
        assert_eq!(store.min_queue_offset("TopicA", 0), 0);
        assert_eq!(store.max_queue_offset("Unknown", 0), 0);
        // Readable before anything was written.
        let pulled = store
            .get_messages("TopicA", 0, 0, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(pulled.status, GetStatus::Found);
        assert_eq!(pulled.count, 32);
        assert_eq!(pulled.next_begin_offset, 32);
        let records = split_records(&pulled.body);
        assert_eq!(body_of(&records[5]), b"message-5");
        let last = ends.last().unwrap();
        store
            .wait_durable(last.end_offset, Durability::Written)
            .await
            .unwrap();
        assert!(store.written_offset() >= last.end_offset);
        let one = store
            .read_record(ends[7].physical_offset)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body_of(&one), b"message-7");
        assert!(
            store
                .read_record(ends[7].physical_offset + 1)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store.read_record(1 << 56).await.unwrap().is_none(),
            "other shard"
        );
        store.shutdown().await.unwrap();
        let mut record = encode("TopicA", 0, b"late", "", 0);
        assert!(matches!(
            store.append("TopicA", 0, &mut record, 0, 0),
            Err(StoreError::ShuttingDown)
        ));
    });
}

#[test]
fn batch_gets_consecutive_offsets_and_one_end() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let mut single = encode("T", 1, b"first", "", 0);
        store.append("T", 1, &mut single, 0, 1).unwrap();
        let mut batch: Vec<_> = (0..5)
            .map(|i| (encode("T", 1, format!("b{i}").as_bytes(), "", 0), i as i64))
            .collect();
        let result = store.append_batch("T", 1, &mut batch, 2).unwrap();
        assert_eq!((result.queue_offset, result.count), (1, 5));
        let total: usize = batch.iter().map(|(r, _)| r.len()).sum();
        assert_eq!(result.wrote_bytes, total);
        assert_eq!(result.end_offset, result.physical_offset + total as i64);
        for (i, (record, _)) in batch.iter().enumerate() {
            assert_eq!(i64_at(record, 20), 1 + i as i64);
        }
        store
            .wait_durable(result.end_offset, Durability::Flushed)
            .await
            .unwrap();
        let pulled = store
            .get_messages("T", 1, 1, 32, &|tags| tags >= 3)
            .await
            .unwrap();
        assert_eq!(pulled.count, 2, "tags 3 and 4 pass the filter");
        assert_eq!(pulled.next_begin_offset, 6);
    });
}

#[test]
fn transaction_prepared_records_are_not_dispatched() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let mut prepared = encode("Half", 0, b"half", "", 0x4);
        let result = store.append("Half", 0, &mut prepared, 0, 1).unwrap();
        assert_eq!(result.queue_offset, 0);
        assert_eq!(store.max_queue_offset("Half", 0), 0);
        assert!(
            store
                .read_record(result.physical_offset)
                .await
                .unwrap()
                .is_some()
        );
        let mut committed = encode("Half", 0, b"commit", "", 0x8);
        store.append("Half", 0, &mut committed, 0, 2).unwrap();
        assert_eq!(store.max_queue_offset("Half", 0), 1);
    });
}

#[test]
fn get_messages_statuses() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let empty = store
            .get_messages("S", 0, 0, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(
            (empty.status, empty.next_begin_offset),
            (GetStatus::NoMessageInQueue, 0)
        );
        for i in 0..10 {
            let mut record = encode("S", 0, b"x", "", 0);
            store.append("S", 0, &mut record, i % 2, 0).unwrap();
        }
        let one = store
            .get_messages("S", 0, 10, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(
            (one.status, one.next_begin_offset),
            (GetStatus::OffsetOverflowOne, 10)
        );
        let badly = store
            .get_messages("S", 0, 15, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(
            (badly.status, badly.next_begin_offset),
            (GetStatus::OffsetOverflowBadly, 0)
        );
        assert_eq!((badly.min_offset, badly.max_offset), (0, 10));
        let small = store
            .get_messages("S", 0, -1, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(
            (small.status, small.next_begin_offset),
            (GetStatus::OffsetTooSmall, 0)
        );
        let none = store
            .get_messages("S", 0, 0, 32, &|tags| tags == 5)
            .await
            .unwrap();
        assert_eq!(
            (none.status, none.next_begin_offset),
            (GetStatus::NoMatchedMessage, 10)
        );
        let odd = store
            .get_messages("S", 0, 0, 3, &|tags| tags == 1)
            .await
            .unwrap();
        assert_eq!(
            (odd.status, odd.count, odd.next_begin_offset),
            (GetStatus::Found, 3, 6)
        );
    });
}

#[test]
fn pull_respects_byte_limit() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.max_transfer_bytes = 1000;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        for _ in 0..10 {
            let mut record = encode("B", 0, &[1u8; 300], "", 0);
            store.append("B", 0, &mut record, 0, 0).unwrap();
        }
        let pulled = store
            .get_messages("B", 0, 0, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(pulled.count, 2);
        assert_eq!(pulled.next_begin_offset, 2);
    });
}

#[test]
fn search_by_timestamp_and_earliest_time() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        assert_eq!(store.earliest_message_time("Q", 0).await.unwrap(), None);
        for i in 0..20 {
            let mut record = encode("Q", 0, b"t", "", 0);
            store
                .append("Q", 0, &mut record, 0, 1_000 + i * 10)
                .unwrap();
        }
        assert_eq!(
            store.search_offset_by_timestamp("Q", 0, 0).await.unwrap(),
            0
        );
        assert_eq!(
            store
                .search_offset_by_timestamp("Q", 0, 1_050)
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            store
                .search_offset_by_timestamp("Q", 0, 1_051)
                .await
                .unwrap(),
            6
        );
        assert_eq!(
            store
                .search_offset_by_timestamp("Q", 0, 9_999)
                .await
                .unwrap(),
            20
        );
        assert_eq!(
            store.earliest_message_time("Q", 0).await.unwrap(),
            Some(1_000)
        );
    });
}

#[test]
fn wait_for_message_wakes_on_append_and_times_out() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let started = std::time::Instant::now();
        assert!(
            !store
                .wait_for_message("W", 0, 0, Duration::from_millis(100))
                .await
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
        let appender = store.clone();
        compio::runtime::spawn(async move {
            compio::time::sleep(Duration::from_millis(50)).await;
            let mut record = encode("W", 0, b"wake", "", 0);
            appender.append("W", 0, &mut record, 0, 0).unwrap();
        })
        .detach();
        let started = std::time::Instant::now();
        assert!(
            store
                .wait_for_message("W", 0, 0, Duration::from_secs(10))
                .await
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            store
                .wait_for_message("W", 0, 0, Duration::from_secs(10))
                .await,
            "already there"
        );
    });
}

#[test]
fn misrouted_queue_is_rejected() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 2);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let foreign = queue_of_shard("R", 1, 2);
        let mut record = encode("R", foreign, b"x", "", 0);
        assert!(matches!(
            store.append("R", foreign, &mut record, 0, 0),
            Err(StoreError::Config(_))
        ));
    });
}

#[test]
fn delete_topic_drops_queues_and_files() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        for q in 0..3 {
            let mut record = encode("D", q, b"x", "", 0);
            store.append("D", q, &mut record, 0, 0).unwrap();
        }
        let mut keep = encode("K", 0, b"x", "", 0);
        store.append("K", 0, &mut keep, 0, 0).unwrap();
        compio::time::sleep(Duration::from_millis(150)).await;
        assert!(cfg.consume_queue_dir.join("D").join("0").exists());
        assert_eq!(store.queues().len(), 4);
        store.delete_topic("D").unwrap();
        assert_eq!(store.queues(), vec![("K".to_string(), 0)]);
        assert!(!cfg.consume_queue_dir.join("D").exists());
        assert_eq!(store.max_queue_offset("D", 0), 0);
    });
}

#[test]
fn reads_span_the_memory_tail_and_disk_while_appending() {
    let dir = temp_dir();
    let mut cfg = small_config(dir.path(), 1);
    cfg.commit_log_file_size = 16 << 20;
    cfg.max_transfer_bytes = 4 << 20;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        // 96 MiB > the 64 MiB kept in memory: the oldest records must come from disk.
        let body_len = 60_000;
        let count = (96 << 20) / body_len;
        for i in 0..count {
            let mut body = vec![(i % 256) as u8; body_len];
            body[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let mut record = encode("Tail", 0, &body, "", 0);
            let result = store.append("Tail", 0, &mut record, 0, i as i64).unwrap();
            if i % 64 == 0 {
                store
                    .wait_durable(result.end_offset, Durability::Written)
                    .await
                    .unwrap();
            }
        }
        let end = store.max_physical_offset();
        store.wait_durable(end, Durability::Written).await.unwrap();
        let reads_before = store.stats().disk_reads;
        let mut offset = 0i64;
        while offset < count as i64 {
            let pulled = store
                .get_messages("Tail", 0, offset, 32, &accept_all)
                .await
                .unwrap();
            assert_eq!(pulled.status, GetStatus::Found);
            for record in split_records(&pulled.body) {
                let body = body_of(&record);
                assert_eq!(
                    u64::from_be_bytes(body[..8].try_into().unwrap()),
                    offset as u64
                );
                assert!(body[8..].iter().all(|&b| b == (offset % 256) as u8));
                offset += 1;
            }
        }
        assert!(
            store.stats().disk_reads > reads_before,
            "old records were read from disk"
        );
        store.shutdown().await.unwrap();
    });
}
