//! The replication API: a slave fed with the master's written bytes in arbitrary chunks
//! (records split across chunks, segment fillers, zero fills) ends with the master's exact
//! bytes and the same consume queues, also after a restart in the middle.

mod common;

use bytes::{Buf, BytesMut};
use common::*;
use rmq_storage::{Durability, ShardStore, StoreError};

const TOPICS: [&str; 2] = ["ReplicaA", "ReplicaB"];

/// Appends `count` records of varying sizes to both topics, then waits until written.
async fn append_some(store: &ShardStore, first: usize, count: usize) {
    let mut end = 0;
    for i in first..first + count {
        let topic = TOPICS[i % 2];
        let body = vec![b'a' + (i % 26) as u8; 100 + (i * 37) % 3000];
        let props = format!("TAGS\u{1}t{}\u{2}KEYS\u{1}k{i}\u{2}", i % 3);
        let mut record = encode(topic, 0, &body, &props, 0);
        end = store
            .append(topic, 0, &mut record, i as i64, 1_000 + i as i64)
            .unwrap()
            .end_offset;
    }
    store.wait_durable(end, Durability::Written).await.unwrap();
}

/// Copies everything the master has written to the slave in `chunk`-byte pieces, the way
/// the HA stream does (a partial record waits for the next piece).
async fn replicate(master: &ShardStore, slave: &ShardStore, chunk: usize) {
    let mut from = slave.max_physical_offset();
    let mut pending = BytesMut::new();
    let mut pending_start = from;
    while from < master.written_offset() {
        let read = master
            .read_replication_chunk(from, chunk, &mut pending)
            .await
            .unwrap();
        assert!(read > 0);
        from += read as i64;
        let consumed = slave.append_replicated(pending_start, &pending).unwrap();
        pending.advance(consumed);
        pending_start += consumed as i64;
    }
    assert!(pending.is_empty(), "nothing left over at a record boundary");
    assert_eq!(slave.max_physical_offset(), master.written_offset());
}

async fn assert_same(master: &ShardStore, slave: &ShardStore) {
    let end = slave.max_physical_offset();
    slave.wait_durable(end, Durability::Written).await.unwrap();
    let (mut at, mut left, mut right) = (master.oldest_offset(), BytesMut::new(), BytesMut::new());
    while at < end {
        let n = master
            .read_replication_chunk(at, 1 << 20, &mut left)
            .await
            .unwrap();
        let m = slave
            .read_replication_chunk(at, 1 << 20, &mut right)
            .await
            .unwrap();
        assert_eq!(n, m);
        at += n as i64;
    }
    assert!(left == right, "slave bytes equal the master's");
    for topic in TOPICS {
        assert_eq!(
            read_queue(master, topic, 0).await,
            read_queue(slave, topic, 0).await
        );
        assert_eq!(
            master.max_queue_offset(topic, 0),
            slave.max_queue_offset(topic, 0)
        );
    }
}

#[test]
fn slave_reproduces_master_bytes_and_queues_across_restart() {
    let (master_dir, slave_dir) = (temp_dir(), temp_dir());
    let master_cfg = small_config(master_dir.path(), 1);
    let slave_cfg = small_config(slave_dir.path(), 1);
    run(async {
        let (_master_layout, master) = open(&master_cfg, 0).await;
        append_some(&master, 0, 120).await;
        {
            let (_slave_layout, slave) = open(&slave_cfg, 0).await;
            replicate(&master, &slave, 3001).await;
            assert_same(&master, &slave).await;
            assert!(master.oldest_offset() < master.written_offset() - 2 * 65536);
            slave.shutdown().await.unwrap();
        }
        append_some(&master, 120, 80).await;
        let (_slave_layout, slave) = open(&slave_cfg, 0).await;
        replicate(&master, &slave, 777).await;
        assert_same(&master, &slave).await;
        assert_eq!(slave.max_queue_offset("ReplicaA", 0), 100);
    });
}

#[test]
fn bytes_that_do_not_continue_the_log_are_refused() {
    let (master_dir, slave_dir) = (temp_dir(), temp_dir());
    let master_cfg = small_config(master_dir.path(), 1);
    let slave_cfg = small_config(slave_dir.path(), 1);
    run(async {
        let (_master_layout, master) = open(&master_cfg, 0).await;
        append_some(&master, 0, 3).await;
        let (_slave_layout, slave) = open(&slave_cfg, 0).await;
        let mut bytes = BytesMut::new();
        master
            .read_replication_chunk(0, 1 << 20, &mut bytes)
            .await
            .unwrap();
        let gap = slave.append_replicated(100, &bytes);
        assert!(matches!(gap, Err(StoreError::Corrupt { .. })), "{gap:?}");
        let mut damaged = bytes.clone();
        let last = damaged.len() - 1;
        damaged[last - 40] ^= 0xFF; // inside the third record's body
        let first_two = slave.append_replicated(0, &damaged);
        assert!(matches!(first_two, Err(StoreError::Corrupt { .. })));
        let beyond = master
            .read_replication_chunk(master.written_offset() + 1, 10, &mut bytes)
            .await;
        assert!(matches!(beyond, Err(StoreError::Config(_))));
    });
}

/// Everything `store` holds from `from` to its end.
async fn log_from(store: &ShardStore, from: i64) -> BytesMut {
    log_range(store, from, store.max_physical_offset()).await
}

/// The master's records of `topic` from queue offset `from`, as a pull returns them.
async fn pull_from(store: &ShardStore, topic: &str, from: i64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let got = store
            .get_messages(topic, 0, offset, 32, &accept_all)
            .await
            .unwrap();
        if got.count == 0 {
            return out;
        }
        offset = got.next_begin_offset;
        out.extend(split_records(&got.body));
    }
}

#[test]
fn an_empty_slave_restarts_its_log_at_the_masters_newest_segment() {
    use rmq_storage::retention::{ExpiryPolicy, now_ms};
    let (master_dir, slave_dir) = (temp_dir(), temp_dir());
    let master_cfg = small_config(master_dir.path(), 1);
    let slave_cfg = small_config(slave_dir.path(), 1);
    run(async {
        let (_master_layout, master) = open(&master_cfg, 0).await;
        append_some(&master, 0, 200).await;
        let policy = ExpiryPolicy {
            now_ms: now_ms() + 10_000,
            reserved_ms: 0,
            force: false,
            max_files: 2,
        };
        assert_eq!(
            master.delete_expired_files(&policy).await.unwrap().segments,
            2
        );
        let start = master.segment_start_of(master.max_physical_offset());
        assert!(
            start > master.oldest_offset(),
            "the newest segment is not the oldest"
        );
        let mut first_queue_offsets = Vec::new();
        {
            let (_slave_layout, slave) = open(&slave_cfg, 0).await;
            slave.reset_empty_replica(start).await.unwrap();
            assert_eq!(slave.max_physical_offset(), start);
            assert_eq!(slave.oldest_offset(), start);
            drop(slave); // a crash right after the reset
        }
        {
            let (_slave_layout, slave) = open(&slave_cfg, 0).await;
            assert_eq!(
                slave.max_physical_offset(),
                start,
                "the reset survives a crash"
            );
            assert_eq!(slave.oldest_offset(), start);
            replicate(&master, &slave, 1999).await;
            assert!(log_from(&master, start).await == log_from(&slave, start).await);
            for topic in TOPICS {
                let first = slave.min_queue_offset(topic, 0);
                assert!(
                    first > 0,
                    "{topic}: the queue starts at the master's offset"
                );
                assert_eq!(
                    slave.max_queue_offset(topic, 0),
                    master.max_queue_offset(topic, 0)
                );
                assert_eq!(
                    pull_from(&master, topic, first).await,
                    pull_from(&slave, topic, first).await
                );
                first_queue_offsets.push(first);
            }
            drop(slave); // a crash before the consume queues were flushed, maybe
        }
        append_some(&master, 200, 40).await;
        for clean in [false, true, false] {
            let (_slave_layout, slave) = open(&slave_cfg, 0).await;
            assert_eq!(slave.oldest_offset(), start);
            replicate(&master, &slave, 4096).await;
            assert!(log_from(&master, start).await == log_from(&slave, start).await);
            for (topic, &first) in TOPICS.iter().zip(&first_queue_offsets) {
                assert_eq!(
                    slave.min_queue_offset(topic, 0),
                    first,
                    "{topic} after reopening"
                );
                assert_eq!(
                    slave.max_queue_offset(topic, 0),
                    master.max_queue_offset(topic, 0)
                );
                let below = slave
                    .get_messages(topic, 0, first - 1, 32, &accept_all)
                    .await
                    .unwrap();
                assert_eq!(
                    below.count, 0,
                    "nothing below the slave's first queue offset"
                );
                assert_eq!(
                    pull_from(&master, topic, first).await,
                    pull_from(&slave, topic, first).await
                );
            }
            if clean {
                slave.shutdown().await.unwrap();
            }
        }
    });
}
