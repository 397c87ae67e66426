//! Disk faults below the commit log (the `DiskFaults` seam): ENOSPC, EIO, short writes, torn
//! blocks and failing syncs. A failed write fails the sends it covers with an error, never
//! corrupts the store, and the store recovers to its last valid record after a crash.

mod common;

use std::sync::Arc;

use common::*;
use rmq_storage::faults::{Fault, FileOp, ScriptedFaults};
use rmq_storage::{DsyncWrites, Durability, FlushMode, ShardStore, StoreConfig, StoreError};

const TOPIC: &str = "Faulty";

fn faulty_config(root: &std::path::Path) -> (StoreConfig, Arc<ScriptedFaults>) {
    let faults = Arc::new(ScriptedFaults::default());
    let mut cfg = small_config(root, 1);
    cfg.faults = Some(faults.clone());
    (cfg, faults)
}

fn append(store: &ShardStore, i: usize) -> rmq_storage::AppendResult {
    let body = format!("fault-{i}-{}", "y".repeat(500 + i * 331 % 1500));
    let mut record = encode(TOPIC, 0, body.as_bytes(), "", 0);
    store
        .append(TOPIC, 0, &mut record, 0, 1_000 + i as i64)
        .unwrap()
}

fn body_index(record: &[u8]) -> usize {
    let body = std::str::from_utf8(body_of(record)).unwrap();
    body.split('-').nth(1).unwrap().parse().unwrap()
}

/// Reopens the store (after a crash: the store was dropped without shutdown) and returns the
/// indices of the records it holds, checking they are dense and valid.
async fn reopen_and_read(
    cfg: &StoreConfig,
) -> (
    rmq_storage::StoreLayout,
    std::rc::Rc<ShardStore>,
    Vec<usize>,
) {
    let (layout, store) = open(cfg, 0).await;
    let records = read_queue(&store, TOPIC, 0).await;
    let indices: Vec<usize> = records.iter().map(|(_, r)| body_index(r)).collect();
    for (position, index) in indices.iter().enumerate() {
        assert_eq!(
            *index, position,
            "records must be the appended prefix, in order"
        );
    }
    (layout, store, indices)
}

#[test]
fn enospc_fails_the_send_and_writes_resume_when_space_returns() {
    let dir = temp_dir();
    let (cfg, faults) = faulty_config(dir.path());
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        let first = append(&store, 0);
        store
            .wait_durable(first.end_offset, Durability::Written)
            .await
            .unwrap();
        faults.set_disk_full(true);
        let second = append(&store, 1);
        let error = store
            .wait_durable(second.end_offset, Durability::Written)
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Io { .. }), "{error}");
        assert!(error.to_string().contains("No space left"), "{error}");
        assert_eq!(
            store.written_offset(),
            first.end_offset,
            "nothing past the failure counts as written"
        );
        faults.set_disk_full(false);
        let third = append(&store, 2);
        store
            .wait_durable(third.end_offset, Durability::Written)
            .await
            .unwrap();
        assert!(faults.injected() > 0);
        drop(store);
        drop(layout);
        let (_layout, _store, indices) = reopen_and_read(&cfg).await;
        assert_eq!(indices, vec![0, 1, 2]);
    });
}

#[test]
fn short_write_then_crash_recovers_the_valid_prefix() {
    let dir = temp_dir();
    let (cfg, faults) = faulty_config(dir.path());
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        let acked = append(&store, 0);
        store
            .wait_durable(acked.end_offset, Durability::Written)
            .await
            .unwrap();
        faults.push(FileOp::Write, Fault::Short(4096));
        let mut last = acked;
        for i in 1..12 {
            last = append(&store, i);
        }
        assert!(
            store
                .wait_durable(last.end_offset, Durability::Written)
                .await
                .is_err()
        );
        drop(store); // crash before the retry
        drop(layout);
        let (_layout, store, indices) = reopen_and_read(&cfg).await;
        assert!(!indices.is_empty() && indices.len() < 12, "{indices:?}");
        let next = append(&store, indices.len());
        store
            .wait_durable(next.end_offset, Durability::Written)
            .await
            .unwrap();
    });
}

#[test]
fn torn_block_is_cut_at_the_last_valid_record_and_appends_continue() {
    let dir = temp_dir();
    let (cfg, faults) = faulty_config(dir.path());
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        let mut acked = append(&store, 0);
        for i in 1..4 {
            acked = append(&store, i);
        }
        store
            .wait_durable(acked.end_offset, Durability::Written)
            .await
            .unwrap();
        let torn_at = (acked.end_offset % 4096) as usize + 1000;
        faults.push(FileOp::Write, Fault::Torn(torn_at));
        let mut last = acked;
        for i in 4..10 {
            last = append(&store, i);
        }
        assert!(
            store
                .wait_durable(last.end_offset, Durability::Written)
                .await
                .is_err()
        );
        drop(store);
        drop(layout);
        let (layout, store, indices) = reopen_and_read(&cfg).await;
        assert!(
            indices.len() >= 4,
            "acknowledged records survive: {indices:?}"
        );
        assert!(indices.len() < 10, "the torn record is gone: {indices:?}");
        let count = indices.len();
        let next = append(&store, count);
        store
            .wait_durable(next.end_offset, Durability::Written)
            .await
            .unwrap();
        drop(store);
        drop(layout);
        let (_layout, _store, indices) = reopen_and_read(&cfg).await;
        assert_eq!(indices.len(), count + 1);
    });
}

#[test]
fn failed_fdatasync_fails_sync_flush_waiters_then_recovers() {
    let dir = temp_dir();
    let (mut cfg, faults) = faulty_config(dir.path());
    cfg.flush_mode = FlushMode::Sync;
    cfg.sync_flush_dsync_writes = DsyncWrites::Never;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        faults.push(FileOp::Sync, Fault::Error(nix_eio()));
        let first = append(&store, 0);
        let error = store
            .wait_durable(first.end_offset, Durability::Flushed)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("fdatasync"), "{error}");
        let second = append(&store, 1);
        store
            .wait_durable(second.end_offset, Durability::Flushed)
            .await
            .unwrap();
        assert_eq!(store.flushed_offset(), second.end_offset);
        store.shutdown().await.unwrap();
    });
}

/// SYNC_FLUSH with durable writes for idle rounds (the default `auto`): a lone send's round is one
/// `O_DSYNC` write; when it fails, the send's `Flushed` wait fails with the write's error,
/// nothing is counted flushed, and the next send (the failed bytes rewritten with it) is
/// acknowledged and survives a reopen with the first.
#[test]
fn failed_durable_write_fails_sync_flush_waiters_then_recovers() {
    let dir = temp_dir();
    let (mut cfg, faults) = faulty_config(dir.path());
    cfg.flush_mode = FlushMode::Sync;
    assert_eq!(
        cfg.sync_flush_dsync_writes,
        DsyncWrites::Auto,
        "the default"
    );
    run(async {
        let (layout, store) = open(&cfg, 0).await;
        let before = store.stats();
        faults.push(FileOp::Write, Fault::Error(nix_eio()));
        let first = append(&store, 0);
        let error = store
            .wait_durable(first.end_offset, Durability::Flushed)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("write"), "{error}");
        assert!(store.flushed_offset() < first.end_offset);
        let second = append(&store, 1);
        store
            .wait_durable(second.end_offset, Durability::Flushed)
            .await
            .unwrap();
        assert_eq!(store.flushed_offset(), second.end_offset);
        assert_eq!(
            store.stats().fdatasyncs,
            before.fdatasyncs,
            "durable writes, no sync"
        );
        drop(store);
        drop(layout);
        let (_layout, _store, indices) = reopen_and_read(&cfg).await;
        assert_eq!(indices, vec![0, 1], "both records, once each");
    });
}

/// The kernel may drop dirty pages whose write-back failed and reports that once: after a
/// failed fdatasync the store writes everything since the last good flush again, from memory,
/// before the next sync, in both write modes.
#[test]
fn failed_fdatasync_rewrites_everything_since_the_last_flush() {
    for direct_io in [false, true] {
        let dir = temp_dir();
        let (mut cfg, faults) = faulty_config(dir.path());
        cfg.direct_io = direct_io;
        cfg.flush_interval_commit_log = std::time::Duration::from_secs(3600);
        cfg.flush_commit_log_thorough_interval = std::time::Duration::from_secs(3600);
        run(async {
            let (layout, store) = open(&cfg, 0).await;
            let first = append(&store, 0);
            store
                .wait_durable(first.end_offset, Durability::Flushed)
                .await
                .unwrap();
            let mut last = first;
            for i in 1..40 {
                last = append(&store, i);
            }
            store
                .wait_durable(last.end_offset, Durability::Written)
                .await
                .unwrap();
            let before = store.stats();
            faults.push(FileOp::Sync, Fault::Error(nix_eio()));
            let error = store
                .wait_durable(last.end_offset, Durability::Flushed)
                .await
                .unwrap_err();
            assert!(error.to_string().contains("fdatasync"), "{error}");
            assert_eq!(store.flushed_offset(), first.end_offset);
            store
                .wait_durable(last.end_offset, Durability::Flushed)
                .await
                .unwrap();
            let after = store.stats();
            let unflushed = (last.end_offset - first.end_offset) as u64;
            assert!(
                after.commit_log_write_bytes - before.commit_log_write_bytes >= unflushed,
                "direct_io={direct_io}: {} bytes rewritten, {unflushed} were unflushed",
                after.commit_log_write_bytes - before.commit_log_write_bytes
            );
            assert_eq!(store.flushed_offset(), last.end_offset);
            drop(store);
            drop(layout);
        });
        run(async {
            let (_layout, _store, indices) = reopen_and_read(&cfg).await;
            assert_eq!(indices.len(), 40, "direct_io={direct_io}");
        });
    }
}

#[test]
fn a_dead_disk_caps_unwritten_memory_instead_of_growing() {
    let dir = temp_dir();
    let (mut cfg, faults) = faulty_config(dir.path());
    cfg.max_unwritten_bytes = 256 << 10;
    run(async {
        let (_layout, store) = open(&cfg, 0).await;
        faults.set_disk_full(true);
        let mut refused = None;
        for i in 0..1000 {
            let body = vec![b'z'; 4000];
            let mut record = encode(TOPIC, 0, &body, "", 0);
            if let Err(error) = store.append(TOPIC, 0, &mut record, 0, i) {
                refused = Some(error);
                break;
            }
        }
        let error = refused.expect("appends stop at the backlog limit");
        assert!(matches!(error, StoreError::WriteBacklog { .. }), "{error}");
        faults.set_disk_full(false);
        let end = store.max_physical_offset();
        store.wait_durable(end, Durability::Written).await.unwrap();
        let mut record = encode(TOPIC, 0, b"after", "", 0);
        store.append(TOPIC, 0, &mut record, 0, 0).unwrap();
    });
}

fn nix_eio() -> i32 {
    5 // EIO
}
