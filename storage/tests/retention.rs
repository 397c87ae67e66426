//! Retention and disk-full behaviour with small files and an injected free-space reader:
//! expired segments go oldest first, consume queues and index files follow, pulls below the
//! new min get OFFSET_TOO_SMALL (the broker's PULL_OFFSET_MOVED), and a nearly full disk
//! refuses sends and forces deletion until space is back.

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::*;
use rmq_storage::disk_space::{DiskUsage, FreeSpace, disk_guard, sends_refused};
use rmq_storage::retention::{CleanupInputs, ExpiryPolicy, now_ms, plan_cleanup};
use rmq_storage::{Durability, GetStatus, ShardStore, StoreConfig};

const TOPIC: &str = "Retained";

fn retention_config(root: &Path) -> StoreConfig {
    let mut cfg = small_config(root, 1);
    cfg.max_hash_slot_num = 64;
    cfg.max_index_num = 40;
    cfg
}

/// Appends `count` records of ~2 KiB with a key each and waits until they are written.
async fn fill(store: &ShardStore, count: usize) {
    let mut end = 0;
    for i in 0..count {
        let body = vec![b'r'; 2000];
        let properties = format!("KEYS\u{1}key-{i}\u{2}");
        let mut record = encode(TOPIC, 0, &body, &properties, 0);
        end = store
            .append(TOPIC, 0, &mut record, 0, now_ms())
            .unwrap()
            .end_offset;
    }
    store.wait_durable(end, Durability::Written).await.unwrap();
}

#[test]
fn expired_segments_go_and_queues_and_index_follow() {
    let dir = temp_dir();
    let cfg = retention_config(dir.path());
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        fill(&store, 200).await; // ~400 KiB: 7 segments of 64 KiB
        let index_files_before = store.index_file_count();
        assert!(index_files_before >= 3, "{index_files_before}");
        let not_yet = ExpiryPolicy {
            now_ms: now_ms(),
            reserved_ms: 3_600_000,
            force: false,
            max_files: 10,
        };
        assert_eq!(
            store.delete_expired_files(&not_yet).await.unwrap().segments,
            0
        );
        let expired = ExpiryPolicy {
            now_ms: now_ms() + 10_000,
            reserved_ms: 0,
            force: false,
            max_files: 3,
        };
        let deleted = store.delete_expired_files(&expired).await.unwrap();
        assert_eq!(deleted.segments, 3, "at most max_files per round");
        let min = store.min_queue_offset(TOPIC, 0);
        assert!(
            min > 0 && deleted.queue_entries == min,
            "{deleted:?} min {min}"
        );
        assert!(store.index_file_count() < index_files_before);
        let below = store
            .get_messages(TOPIC, 0, 0, 32, &accept_all)
            .await
            .unwrap();
        assert_eq!(below.status, GetStatus::OffsetTooSmall);
        assert_eq!(
            below.next_begin_offset, min,
            "the consumer is told where to go"
        );
        let records = read_queue(&store, TOPIC, 0).await;
        assert_eq!(records.len() as i64, 200 - min);
        assert!(
            store
                .query_by_key(TOPIC, "key-0", 10, 0, i64::MAX)
                .await
                .unwrap()
                .records
                .is_empty()
        );
        let last_key = store
            .query_by_key(TOPIC, "key-199", 10, 0, i64::MAX)
            .await
            .unwrap();
        assert_eq!(last_key.records.len(), 1);
        let everything = ExpiryPolicy {
            max_files: 100,
            ..expired
        };
        store.delete_expired_files(&everything).await.unwrap();
        let written_segment = store.written_offset() / cfg.commit_log_file_size as i64;
        assert_eq!(
            store.min_physical_offset() / cfg.commit_log_file_size as i64,
            written_segment
        );
        let min = store.min_queue_offset(TOPIC, 0);
        store.shutdown().await.unwrap();
        drop(store);
        drop(layout);
        let (_layout, store) = open(&cfg, 0).await;
        assert_eq!(
            store.min_queue_offset(TOPIC, 0),
            min,
            "min offset survives a restart"
        );
        assert_eq!(store.max_queue_offset(TOPIC, 0), 200);
        assert_eq!(read_queue(&store, TOPIC, 0).await.len() as i64, 200 - min);
    });
}

/// A disk whose fullness the test sets.
#[derive(Debug)]
struct FakeDisk(Mutex<f64>);

impl FreeSpace for FakeDisk {
    fn usage(&self, _path: &Path) -> std::io::Result<DiskUsage> {
        let used = *self.0.lock().unwrap();
        Ok(DiskUsage {
            total_bytes: 1000,
            available_bytes: ((1.0 - used) * 1000.0) as u64,
        })
    }
}

#[test]
fn a_nearly_full_disk_refuses_sends_and_forces_deletion() {
    let dir = temp_dir();
    let cfg = retention_config(dir.path());
    let disk = FakeDisk(Mutex::new(0.50));
    let guard = disk_guard(&cfg.commit_log_dir);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        fill(&store, 100).await;
        let plan = |used: f64| {
            *disk.0.lock().unwrap() = used;
            let ratio = guard.update(disk.usage(&cfg.commit_log_dir).unwrap());
            plan_cleanup(&CleanupInputs {
                now_ms: now_ms(),
                hour: 12,
                delete_hours: &[4],
                disk_used_ratio: ratio,
                max_used_ratio: 0.75,
                file_reserved_hours: 72,
                clean_forcibly_enable: true,
            })
        };
        assert_eq!(plan(0.50), None);
        assert_eq!(sends_refused(&cfg.commit_log_dir), None);
        let policy = plan(0.95).expect("a full disk deletes at any hour");
        assert!(policy.force);
        let remark = sends_refused(&cfg.commit_log_dir).expect("sends refused at 95%");
        assert!(remark.contains("disk is full"), "{remark}");
        // Reads keep working while sends are refused.
        assert_eq!(read_queue(&store, TOPIC, 0).await.len(), 100);
        let deleted = store.delete_expired_files(&policy).await.unwrap();
        assert!(deleted.segments > 0, "files go although not expired (72 h)");
        assert!(store.min_queue_offset(TOPIC, 0) > 0);
        assert!(
            !plan(0.80).unwrap().force,
            "above the max ratio only expired files go"
        );
        assert_eq!(
            sends_refused(&cfg.commit_log_dir),
            None,
            "sends resume below 90%"
        );
    });
}

/// The forced round's preview names exactly the messages it deletes that the consumers
/// have not consumed (what the broker warns about before deleting).
#[test]
fn unconsumed_loss_names_what_a_forced_round_deletes_unread() {
    let dir = temp_dir();
    let cfg = retention_config(dir.path());
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let mut end = 0;
        for i in 0..200 {
            let queue = i % 2;
            let mut record = encode(TOPIC, queue, &vec![b'u'; 2000], "", 0);
            end = store
                .append(TOPIC, queue, &mut record, 0, now_ms())
                .unwrap()
                .end_offset;
        }
        store.wait_durable(end, Durability::Written).await.unwrap();
        let forced = ExpiryPolicy {
            now_ms: now_ms(),
            reserved_ms: 72 * 3_600_000,
            force: true,
            max_files: 3,
        };
        // Queue 0 consumed up to 10, queue 1 completely; other topics not watched.
        let consumed_to = |topic: &str, queue: i32| match (topic, queue) {
            (TOPIC, 0) => Some(10),
            (TOPIC, _) => Some(100),
            _ => None,
        };
        let loss = store.unconsumed_loss(&forced, &consumed_to).await.unwrap();
        let min_before = store.min_physical_offset();
        let deleted = store.delete_expired_files(&forced).await.unwrap();
        assert_eq!((loss.segments, deleted.segments), (3, 3));
        assert_eq!(loss.bytes, store.min_physical_offset() - min_before);
        let lost_to = store.min_queue_offset(TOPIC, 0);
        assert!(
            lost_to > 10,
            "the round must reach unread messages: {lost_to}"
        );
        assert_eq!(
            loss.queues,
            vec![rmq_storage::retention::QueueLoss {
                topic: TOPIC.into(),
                queue_id: 0,
                from: 10,
                to: lost_to,
            }]
        );
        assert_eq!(loss.messages, lost_to - 10);
        // Records alternate between the queues: the span from queue 0's 11th record to the
        // new first offset holds its unread records and as many of queue 1's.
        let record = loss.bytes / deleted.queue_entries;
        assert!(
            (loss.unconsumed_bytes - 2 * loss.messages * record).abs() <= 2 * record,
            "{loss:?} record {record}"
        );
        // Everything consumed: nothing unconsumed goes.
        let all_read = |_: &str, _: i32| Some(i64::MAX);
        let loss = store.unconsumed_loss(&forced, &all_read).await.unwrap();
        assert_eq!((loss.messages, loss.unconsumed_bytes), (0, 0));
        assert!(loss.queues.is_empty() && loss.segments == 3);
    });
}
