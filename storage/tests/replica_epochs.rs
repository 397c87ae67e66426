//! Controller-mode failover at the store level: a master's epoch history, a slave that mirrors
//! it, and an old master that comes back as a slave and cuts its log back to the consistent
//! point with the new master's history (log, consume queues, index and history), also across
//! crashes.

mod common;

use bytes::{Buf, BytesMut};
use common::*;
use rmq_storage::{ConsistentPoint, Durability, EpochEntry, ShardStore, StoreConfig, StoreError};

const TOPIC: &str = "EpochT";

fn epoch_config(root: &std::path::Path) -> StoreConfig {
    let mut cfg = small_config(root, 1);
    cfg.epoch_file = Some(root.join("epochFileCheckpoint"));
    cfg
}

/// Appends records `first..first + count` keyed `{tag}{i}`, waits until written.
async fn append_some(store: &ShardStore, first: usize, count: usize, tag: &str) {
    let mut end = 0;
    for i in first..first + count {
        let body = vec![b'a' + (i % 26) as u8; 200 + (i * 53) % 2500];
        let props = format!("KEYS\u{1}{tag}{i}\u{2}");
        let mut record = encode(TOPIC, 0, &body, &props, 0);
        end = store
            .append(TOPIC, 0, &mut record, i as i64, 1_000 + i as i64)
            .unwrap()
            .end_offset;
    }
    store.wait_durable(end, Durability::Written).await.unwrap();
}

/// Copies what `master` has written past the slave's end and mirrors its history, as the
/// HA stream does.
async fn replicate(master: &ShardStore, slave: &ShardStore) {
    let mut from = slave.max_physical_offset();
    let (mut pending, mut start) = (BytesMut::new(), from);
    while from < master.written_offset() {
        from += master
            .read_replication_chunk(from, 3000, &mut pending)
            .await
            .unwrap() as i64;
        let consumed = slave.append_replicated(start, &pending).unwrap();
        pending.advance(consumed);
        start += consumed as i64;
        slave.adopt_epochs(&master.epoch_entries()).unwrap();
    }
    slave.adopt_epochs(&master.epoch_entries()).unwrap();
}

async fn hits(store: &ShardStore, key: &str) -> usize {
    let found = store.query_by_key(TOPIC, key, 32, 0, i64::MAX).await;
    found.unwrap().records.len()
}

async fn assert_follows(master: &ShardStore, slave: &ShardStore) {
    assert_eq!(master.max_physical_offset(), slave.max_physical_offset());
    let end = master.max_physical_offset();
    assert!(
        log_range(master, master.oldest_offset(), end).await
            == log_range(slave, slave.oldest_offset(), end).await,
        "same log bytes"
    );
    assert_eq!(
        read_queue(master, TOPIC, 0).await,
        read_queue(slave, TOPIC, 0).await
    );
    assert_eq!(master.epoch_entries(), slave.epoch_entries());
}

#[test]
fn an_old_master_rejoins_by_cutting_back_to_the_consistent_point() {
    let dirs = [temp_dir(), temp_dir()];
    let [a_cfg, b_cfg] = dirs.each_ref().map(|d| epoch_config(d.path()));
    run(async {
        let (_b_layout, b) = open(&b_cfg, 0).await;
        let shared_end;
        {
            let (_a_layout, a) = open(&a_cfg, 0).await;
            // A is master of epoch 1; B follows and mirrors its history.
            assert!(a.begin_epoch(1).unwrap());
            append_some(&a, 0, 40, "one").await;
            assert_eq!(
                b.truncate_to_consistent_point(&a.epoch_entries(), a.max_physical_offset())
                    .await
                    .unwrap(),
                ConsistentPoint::Unknown,
                "an empty history has nothing to compare"
            );
            replicate(&a, &b).await;
            assert_follows(&a, &b).await;
            shared_end = b.max_physical_offset();
            // A writes a tail B never receives (never acknowledged under allAckInSyncStateSet),
            // across segment ends, then dies (dropped without shutdown: kill -9).
            append_some(&a, 40, 120, "lost").await;
            assert!(a.max_physical_offset() > shared_end + 2 * 65536);
        }
        // B is elected with epoch 2 and takes writes.
        assert!(b.begin_epoch(2).unwrap());
        assert!(!b.begin_epoch(2).unwrap(), "the same epoch again: no-op");
        assert_eq!(
            b.epoch_entries(),
            [EpochEntry::new(1, 0), EpochEntry::new(2, shared_end)]
        );
        append_some(&b, 40, 25, "two").await;

        // A restarts and follows B: it keeps epoch 1 up to where B's epoch 2 starts.
        let (a_layout, a) = open(&a_cfg, 0).await;
        assert_eq!(a.epoch_entries(), [EpochEntry::new(1, 0)]);
        assert_eq!(hits(&a, "lost77").await, 1);
        let point = a
            .truncate_to_consistent_point(&b.epoch_entries(), b.max_physical_offset())
            .await
            .unwrap();
        assert_eq!(point, ConsistentPoint::Truncated(shared_end));
        assert_eq!(a.max_physical_offset(), shared_end);
        assert_eq!(a.max_queue_offset(TOPIC, 0), 40);
        assert_eq!(hits(&a, "lost77").await, 0);
        assert_eq!(
            a.truncate_to_consistent_point(&b.epoch_entries(), b.max_physical_offset())
                .await
                .unwrap(),
            ConsistentPoint::Agrees
        );
        replicate(&b, &a).await;
        assert_follows(&b, &a).await;
        assert_eq!(hits(&a, "two50").await, 1);
        drop((a, a_layout));

        // A crash of A after all that: the same log, queues and history come back.
        let (_a_layout, a) = open(&a_cfg, 0).await;
        assert_follows(&b, &a).await;
        assert_eq!(hits(&a, "lost77").await, 0);
        assert_eq!(hits(&a, "one39").await, 1);
    });
}

#[test]
fn a_slave_that_was_master_of_an_epoch_nobody_kept_drops_it() {
    // A slave S was briefly master of epoch 2 (wrote a little, acknowledged nothing) while the
    // controller moved on: M is master of epoch 3 from the end of epoch 1.
    let dirs = [temp_dir(), temp_dir()];
    let [m_cfg, s_cfg] = dirs.each_ref().map(|d| epoch_config(d.path()));
    run(async {
        let (_m_layout, m) = open(&m_cfg, 0).await;
        let (_s_layout, s) = open(&s_cfg, 0).await;
        m.begin_epoch(1).unwrap();
        append_some(&m, 0, 30, "one").await;
        replicate(&m, &s).await;
        let shared = s.max_physical_offset();
        s.begin_epoch(2).unwrap();
        append_some(&s, 30, 10, "stray").await;
        m.begin_epoch(3).unwrap();
        append_some(&m, 30, 5, "three").await;
        // The stray epoch goes from the history too (truncated with the log).
        let point = s
            .truncate_to_consistent_point(&m.epoch_entries(), m.max_physical_offset())
            .await
            .unwrap();
        assert_eq!(point, ConsistentPoint::Truncated(shared));
        assert_eq!(s.epoch_entries(), [EpochEntry::new(1, 0)]);
        replicate(&m, &s).await;
        assert_follows(&m, &s).await;
        assert_eq!(hits(&s, "stray35").await, 0);
        // Epochs only grow: an older epoch is refused.
        assert!(matches!(
            m.begin_epoch(2),
            Err(StoreError::EpochRegression { .. })
        ));
    });
}

/// A shard the old master of epoch 1 wrote nothing to (or only what nobody acknowledged): its
/// slave, promoted with that shard empty, records `(2, 0)` in place of its copy of `(1, 0)`,
/// so the two histories share no entry. The old master must still rejoin (cutting the shard
/// back to 0), not stay out for good with "no entry in common" as it did (seen in a SIGSTOP
/// failover of tools/bench/controller-leader-change.py).
#[test]
fn an_old_master_rejoins_when_its_slave_began_the_next_epoch_on_an_empty_shard() {
    let dirs = [temp_dir(), temp_dir(), temp_dir()];
    let [old_cfg, new_cfg, empty_cfg] = dirs.each_ref().map(|d| epoch_config(d.path()));
    run(async {
        let (_o_layout, old) = open(&old_cfg, 0).await;
        let (_n_layout, new) = open(&new_cfg, 0).await;
        let (_e_layout, empty) = open(&empty_cfg, 0).await;
        old.begin_epoch(1).unwrap();
        empty.begin_epoch(1).unwrap();
        replicate(&old, &new).await;
        assert_eq!(new.epoch_entries(), [EpochEntry::new(1, 0)]);
        // Unacknowledged: written by the old master after its slave stopped following.
        append_some(&old, 0, 4, "stray").await;
        new.begin_epoch(2).unwrap();
        assert_eq!(
            new.epoch_entries(),
            [EpochEntry::new(2, 0)],
            "empty epoch 1 replaced"
        );
        append_some(&new, 0, 6, "two").await;

        let point = old
            .truncate_to_consistent_point(&new.epoch_entries(), new.max_physical_offset())
            .await
            .unwrap();
        assert_eq!(point, ConsistentPoint::Truncated(0));
        replicate(&new, &old).await;
        assert_follows(&new, &old).await;
        assert_eq!(hits(&old, "stray1").await, 0);

        let point = empty
            .truncate_to_consistent_point(&new.epoch_entries(), new.max_physical_offset())
            .await
            .unwrap();
        assert_eq!(point, ConsistentPoint::Agrees);
        replicate(&new, &empty).await;
        assert_follows(&new, &empty).await;
    });
}

#[test]
fn histories_with_nothing_in_common_are_refused_and_classic_stores_have_none() {
    let dirs = [temp_dir(), temp_dir(), temp_dir()];
    let [x_cfg, y_cfg, _] = dirs.each_ref().map(|d| epoch_config(d.path()));
    let classic_cfg = small_config(dirs[2].path(), 1);
    run(async {
        let (_x_layout, x) = open(&x_cfg, 0).await;
        let (_y_layout, y) = open(&y_cfg, 0).await;
        x.begin_epoch(4).unwrap();
        append_some(&x, 0, 5, "x").await;
        y.begin_epoch(5).unwrap();
        append_some(&y, 0, 5, "y").await;
        let end = y.max_physical_offset();
        let refused = y
            .truncate_to_consistent_point(&x.epoch_entries(), x.max_physical_offset())
            .await;
        assert!(
            matches!(refused, Err(StoreError::NoConsistentPoint { .. })),
            "{refused:?}"
        );
        assert_eq!(y.max_physical_offset(), end, "nothing cut");

        let (_c_layout, classic) = open(&classic_cfg, 0).await;
        assert!(!classic.has_epoch_history());
        assert!(matches!(
            classic.begin_epoch(1),
            Err(StoreError::NoEpochHistory { .. })
        ));
        assert!(!dirs[2].path().join("epochFileCheckpoint").exists());
    });
}

#[test]
fn a_crash_between_the_log_cut_and_the_history_cut_is_repaired_at_open() {
    let dir = temp_dir();
    let cfg = epoch_config(dir.path());
    let file = dir.path().join("epochFileCheckpoint");
    run(async {
        let end;
        {
            let (_layout, store) = open(&cfg, 0).await;
            store.begin_epoch(1).unwrap();
            append_some(&store, 0, 20, "a").await;
            end = store.max_physical_offset();
        }
        // The history still names an epoch starting past the (cut) end of the log.
        let stale = format!("1-0\n7-{}\n", end + 4096);
        let crc = crc32fast::hash(stale.as_bytes()) & 0x7FFF_FFFF;
        std::fs::write(&file, format!("2\n{crc}\n{stale}")).unwrap();
        let (_layout, store) = open(&cfg, 0).await;
        assert_eq!(store.epoch_entries(), [EpochEntry::new(1, 0)]);
        assert_eq!(store.last_epoch(), 1);
        assert_eq!(store.max_physical_offset(), end);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap().lines().count(),
            3,
            "the repaired history was written back"
        );
        // A damaged file stops the shard from opening rather than forgetting epochs.
        drop(store);
        drop(_layout);
        std::fs::write(&file, "2\n5\n1-0\n").unwrap();
        let layout = rmq_storage::StoreLayout::open(&cfg).unwrap();
        let refused = ShardStore::open(cfg.clone(), 0, layout.previous_shutdown_clean).await;
        assert!(
            matches!(refused, Err(StoreError::Corrupt { .. })),
            "{:?}",
            refused.err()
        );
    });
}
