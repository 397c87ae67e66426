//! The per-shard index behind QUERY_MESSAGE: UNIQ_KEY and KEYS lookups, time windows, and
//! what a crash leaves (no duplicate after re-indexing, no stale entry returned).

mod common;

use common::*;
use rmq_core::message::parse_record;
use rmq_storage::retention::now_ms;
use rmq_storage::{Durability, ShardStore};

const TOPIC: &str = "Indexed";

fn props(uniq: &str, keys: &str) -> String {
    format!("UNIQ_KEY\u{1}{uniq}\u{2}KEYS\u{1}{keys}\u{2}")
}

async fn append(
    store: &ShardStore,
    topic: &str,
    body: &str,
    properties: &str,
    stored_ms: i64,
) -> i64 {
    let mut record = encode(topic, 0, body.as_bytes(), properties, 0);
    let appended = store.append(topic, 0, &mut record, 0, stored_ms).unwrap();
    store
        .wait_durable(appended.end_offset, Durability::Written)
        .await
        .unwrap();
    appended.end_offset
}

async fn bodies(store: &ShardStore, topic: &str, key: &str, begin: i64, end: i64) -> Vec<String> {
    let result = store
        .query_by_key(topic, key, 32, begin, end)
        .await
        .unwrap();
    result
        .records
        .iter()
        .map(|r| String::from_utf8(parse_record(r).unwrap().body().to_vec()).unwrap())
        .collect()
}

#[test]
fn finds_messages_by_uniq_key_and_each_key() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        let t = 1_700_000_000_000;
        append(
            &store,
            TOPIC,
            "first",
            &props("U1", "order-1 customer-7"),
            t,
        )
        .await;
        append(
            &store,
            TOPIC,
            "second",
            &props("U2", "order-2 customer-7"),
            t + 5_000,
        )
        .await;
        append(&store, "Other", "foreign", &props("U3", "order-1"), t).await;
        assert_eq!(bodies(&store, TOPIC, "U1", 0, i64::MAX).await, ["first"]);
        assert_eq!(
            bodies(&store, TOPIC, "order-1", 0, i64::MAX).await,
            ["first"]
        );
        assert_eq!(
            bodies(&store, TOPIC, "customer-7", 0, i64::MAX).await,
            ["second", "first"]
        );
        assert_eq!(
            bodies(&store, TOPIC, "customer-7", t + 4_000, t + 9_000).await,
            ["second"]
        );
        assert!(
            bodies(&store, TOPIC, "nobody", 0, i64::MAX)
                .await
                .is_empty()
        );
        let result = store
            .query_by_key(TOPIC, "customer-7", 1, 0, i64::MAX)
            .await
            .unwrap();
        assert_eq!(result.records.len(), 1, "maxNum caps the answer");
        assert_eq!(result.index_last_update_timestamp, t + 5_000);
        assert!(result.index_last_update_phy_offset > 0);
    });
}

#[test]
fn a_crash_neither_duplicates_nor_resurrects_index_entries() {
    let dir = temp_dir();
    let cfg = small_config(dir.path(), 1);
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        let mut ends = Vec::new();
        for i in 0..20 {
            let body = format!("kept-{i}");
            ends.push(
                append(
                    &store,
                    TOPIC,
                    &body,
                    &props(&format!("K{i}"), "shared"),
                    now_ms(),
                )
                .await,
            );
        }
        drop(store); // crash: no shutdown, no final checkpoint
        drop(layout);
        // Damage the last two records on disk: recovery must cut them.
        let cut_from = ends[17];
        let size = cfg.commit_log_file_size as i64;
        let path = cfg
            .commit_log_dir
            .join(format!("{:020}", cut_from / size * size));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (cut_from % size) as usize;
        bytes[at..at + 300].fill(0xAB);
        std::fs::write(&path, &bytes).unwrap();
        let (_layout, store) = open(&cfg, 0).await;
        assert_eq!(store.max_queue_offset(TOPIC, 0), 18);
        append(
            &store,
            TOPIC,
            "replacement",
            &props("NEW", "other"),
            now_ms(),
        )
        .await;
        for i in 0..18 {
            assert_eq!(
                bodies(&store, TOPIC, &format!("K{i}"), 0, i64::MAX).await,
                [format!("kept-{i}")]
            );
        }
        assert!(
            bodies(&store, TOPIC, "K18", 0, i64::MAX).await.is_empty(),
            "lost record not returned"
        );
        assert_eq!(
            bodies(&store, TOPIC, "shared", 0, i64::MAX).await.len(),
            18,
            "no duplicates"
        );
        assert_eq!(
            bodies(&store, TOPIC, "NEW", 0, i64::MAX).await,
            ["replacement"]
        );
    });
}

#[test]
fn the_index_is_synced_when_a_file_fills_and_on_the_interval_only_when_message_index_safe() {
    for safe in [false, true] {
        let dir = temp_dir();
        let mut cfg = small_config(dir.path(), 1);
        cfg.max_index_num = 8;
        cfg.max_hash_slot_num = 4;
        cfg.index_sync_interval = std::time::Duration::from_millis(1);
        cfg.message_index_safe = safe;
        run(async {
            let (_layout, store) = open(&cfg, 0).await;
            let t = now_ms();
            append(&store, TOPIC, "first", &props("U0", "k0"), t).await;
            // Several consume queue flush rounds (50 ms each).
            compio::time::sleep(std::time::Duration::from_millis(300)).await;
            let before_full = store.stats().index_syncs;
            if safe {
                assert!(before_full >= 1, "messageIndexSafe syncs on its interval");
            } else {
                assert_eq!(
                    before_full, 0,
                    "no periodic index sync without messageIndexSafe"
                );
            }
            // Two keys per record: the 8-entry file fills and a second one starts.
            for i in 1..=6 {
                append(
                    &store,
                    TOPIC,
                    "more",
                    &props(&format!("U{i}"), &format!("k{i}")),
                    t,
                )
                .await;
            }
            compio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(
                store.stats().index_syncs > before_full,
                "the full index file is synced (messageIndexSafe={safe})"
            );
            if !safe {
                let after_full = store.stats().index_syncs;
                compio::time::sleep(std::time::Duration::from_millis(300)).await;
                assert_eq!(
                    store.stats().index_syncs,
                    after_full,
                    "and not again until the next one fills"
                );
            }
            // The keys are still found in both files.
            assert_eq!(
                bodies(&store, TOPIC, "k0", 0, i64::MAX).await,
                vec!["first"]
            );
            assert_eq!(bodies(&store, TOPIC, "U6", 0, i64::MAX).await, vec!["more"]);
        });
    }
}
