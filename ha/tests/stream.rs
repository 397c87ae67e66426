//! The replication stream end to end on loopback, inside one runtime: handshake, streaming
//! across segment fillers, reports releasing SYNC_MASTER waiters, resume after reconnect,
//! the refusal of a slave whose store geometry differs, a slave ahead of its master
//! truncating its tail, a slave whose tail the master rewrote after a crash cutting it, and,
//! after retention, an empty slave starting at the master's newest segment while a stale one
//! is refused.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use compio::net::{TcpListener, TcpStream};
use rmq_ha::HaError;
use rmq_ha::handshake::{HELLO_LEN, Status, decode_hello};
use rmq_ha::master::{MasterSettings, ShardReplica, SlaveWait, serve_slave};
use rmq_ha::slave::{SlaveSettings, read_at_least, replicate_shard};
use rmq_storage::{Durability, ShardStore, StoreConfig, StoreLayout};

fn encode(topic: &str, queue_id: i32, body: &[u8]) -> BytesMut {
    rmq_test_support::record::encode(topic, queue_id, body, "", 0)
}

fn config(root: &Path, segment: u64) -> StoreConfig {
    let mut cfg = StoreConfig::new(root);
    cfg.commit_log_file_size = segment;
    cfg.consume_queue_file_size = 20 * 1000;
    cfg.flush_interval_commit_log = Duration::from_millis(10);
    cfg
}

async fn open(cfg: &StoreConfig) -> (StoreLayout, Rc<ShardStore>) {
    rmq_test_support::store::open(cfg, 0).await
}

fn master_settings() -> MasterSettings {
    MasterSettings {
        chunk_max: 16 * 1024,
        heartbeat: Duration::from_millis(200),
        housekeeping: Duration::from_secs(5),
        zero_copy: true,
    }
}

fn slave_settings() -> SlaveSettings {
    SlaveSettings {
        connect_timeout: Duration::from_secs(2),
        heartbeat: Duration::from_millis(200),
        housekeeping: Duration::from_secs(5),
        max_body: 1 << 20,
        read_buffer: 8 * 1024,
        min_master_epoch: -1,
        slave_id: 0,
    }
}

/// Replicates `store` from `addr` in a task; the session ends once `stop` is set.
fn spawn_slave(
    store: &Rc<ShardStore>,
    addr: &str,
) -> (
    Rc<std::cell::Cell<bool>>,
    compio::runtime::JoinHandle<Result<(), HaError>>,
) {
    let stop = Rc::new(std::cell::Cell::new(false));
    let stopping: Rc<dyn Fn() -> bool> = {
        let stop = stop.clone();
        Rc::new(move || stop.get())
    };
    let (store, addr) = (store.clone(), addr.to_string());
    let session = compio::runtime::spawn(async move {
        replicate_shard(&store, &addr, &slave_settings(), stopping).await
    });
    (stop, session)
}

/// Accepts slave connections forever, serving them from `store`.
async fn master(store: Rc<ShardStore>) -> String {
    master_with(store, Rc::default()).await
}

/// `master` with the shard's slave state in the caller's hands.
async fn master_with(store: Rc<ShardStore>, replica: Rc<ShardReplica>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    compio::runtime::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut inbox = BytesMut::new();
            read_at_least(&mut stream, &mut inbox, HELLO_LEN)
                .await
                .unwrap();
            let hello = decode_hello(&inbox).unwrap();
            let never = Rc::new(|| false);
            let session = serve_slave(
                store.clone(),
                replica.clone(),
                stream,
                hello,
                master_settings(),
                never,
            );
            compio::runtime::spawn(session).detach();
        }
    })
    .detach();
    addr
}

fn append(store: &ShardStore, from: usize, count: usize) -> i64 {
    let mut end = 0;
    for i in from..from + count {
        let body = vec![b'x'; 200 + (i * 53) % 4000];
        let mut record = encode("HaTopic", 0, &body);
        end = store
            .append("HaTopic", 0, &mut record, 0, i as i64)
            .unwrap()
            .end_offset;
    }
    end
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        compio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[compio::test]
async fn slave_follows_master_and_releases_sync_waiters() {
    let (master_dir, slave_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ml, master_store) = open(&config(master_dir.path(), 64 * 1024)).await;
    let replica = Rc::new(ShardReplica::default());
    let addr = master_with(master_store.clone(), replica.clone()).await;
    let first_end = append(&master_store, 0, 100);
    let slave_cfg = config(slave_dir.path(), 64 * 1024);
    let (slave_layout, slave_store) = open(&slave_cfg).await;
    let (stop, session) = spawn_slave(&slave_store, &addr);
    until("the first batch", || {
        slave_store.max_physical_offset() == first_end
    })
    .await;
    // A SYNC_MASTER wait on a new record is released by the slave's report.
    let end = append(&master_store, 100, 1);
    let waited = replica.wait(end, Duration::from_secs(5), 1 << 30).await;
    assert_eq!(waited, SlaveWait::Replicated);
    assert!(replica.slave_offset() >= end);
    assert!(
        slave_store.written_offset() >= end,
        "reports follow the slave's writes"
    );
    assert_eq!(slave_store.max_queue_offset("HaTopic", 0), 101);

    stop.set(true);
    assert!(matches!(session.await, Ok(Err(_))));
    slave_store.shutdown().await.unwrap();
    drop((slave_store, slave_layout));
    until("the master to forget the slave", || replica.slaves() == 0).await;
    let no_slave = replica.wait(end + 1, Duration::from_secs(5), 1 << 30).await;
    assert_eq!(no_slave, SlaveWait::NotAvailable);

    // Restart: resume from the slave's own end.
    let last_end = append(&master_store, 101, 60);
    let (_sl, slave_store) = open(&slave_cfg).await;
    let (stop, _session) = spawn_slave(&slave_store, &addr);
    until("the catch-up", || {
        slave_store.max_physical_offset() == last_end
    })
    .await;
    assert_eq!(slave_store.max_queue_offset("HaTopic", 0), 161);
    master_store
        .wait_durable(last_end, Durability::Written)
        .await
        .unwrap();
    stop.set(true);
}

#[compio::test]
async fn a_slave_with_other_segment_size_is_refused() {
    let (master_dir, slave_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_ml, master_store) = open(&config(master_dir.path(), 64 * 1024)).await;
    let addr = master(master_store).await;
    let (_sl, slave_store) = open(&config(slave_dir.path(), 128 * 1024)).await;
    let outcome = replicate_shard(&slave_store, &addr, &slave_settings(), Rc::new(|| false)).await;
    match outcome {
        Err(HaError::Refused { status, .. }) => assert_eq!(status, Status::SegmentSizeMismatch),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(slave_store.max_physical_offset(), 0, "nothing streamed");
    let _ = TcpStream::connect(&addr).await.unwrap();
}

/// Copies `source`'s log `[target end, upto)` into `target`, as a replication stream would.
async fn copy_log(source: &ShardStore, target: &ShardStore, upto: i64) {
    source
        .wait_durable(upto, Durability::Written)
        .await
        .unwrap();
    let mut bytes = BytesMut::new();
    let mut from = target.max_physical_offset();
    while from < upto {
        bytes.clear();
        let read = source
            .read_replication_chunk(from, (upto - from) as usize, &mut bytes)
            .await
            .unwrap();
        assert_eq!(target.append_replicated(from, &bytes).unwrap(), read);
        from += read as i64;
    }
    target
        .wait_durable(upto, Durability::Written)
        .await
        .unwrap();
}

async fn whole_log(store: &ShardStore) -> BytesMut {
    rmq_test_support::store::log_range(store, store.oldest_offset(), store.max_physical_offset())
        .await
}

#[compio::test]
async fn a_slave_ahead_of_its_master_truncates_and_follows() {
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let [source_cfg, master_cfg, slave_cfg] = dirs.each_ref().map(|d| config(d.path(), 64 * 1024));
    // The slave holds 100 records; the master only the first 40 of them (it lost the rest).
    let (_source_layout, source) = open(&source_cfg).await;
    let cut = append(&source, 0, 40);
    let source_end = append(&source, 40, 60);
    let (_master_layout, master_store) = open(&master_cfg).await;
    copy_log(&source, &master_store, cut).await;
    let (_slave_layout, slave_store) = open(&slave_cfg).await;
    copy_log(&source, &slave_store, source_end).await;
    assert!(
        source_end > cut + 2 * 64 * 1024,
        "the dropped tail spans segments"
    );
    assert_eq!(slave_store.max_queue_offset("HaTopic", 0), 100);

    let addr = master(master_store.clone()).await;
    let (stop, session) = spawn_slave(&slave_store, &addr);
    until("the truncation", || {
        slave_store.max_physical_offset() == cut && !slave_store.truncation_pending()
    })
    .await;
    assert_eq!(slave_store.max_queue_offset("HaTopic", 0), 40);
    // Different records at the dropped offsets reach the slave through the same session.
    let mut end = 0;
    for i in 0..30 {
        let mut record = encode("HaOther", 0, &vec![b'n'; 100 + i * 7]);
        end = master_store
            .append("HaOther", 0, &mut record, 0, 5_000 + i as i64)
            .unwrap()
            .end_offset;
    }
    let end = end.max(append(&master_store, 40, 5));
    master_store
        .wait_durable(end, Durability::Written)
        .await
        .unwrap();
    until("the new records", || {
        slave_store.max_physical_offset() == end
    })
    .await;
    assert!(whole_log(&master_store).await == whole_log(&slave_store).await);
    assert_eq!(slave_store.max_queue_offset("HaTopic", 0), 45);
    assert_eq!(slave_store.max_queue_offset("HaOther", 0), 30);
    stop.set(true);
    assert!(matches!(session.await, Ok(Err(_))), "the session ran on");
}

/// The master lost the slave's tail in a crash and appended other records past the slave's
/// end before the slave came back: offsets alone say "behind", the tail check says
/// "diverged"; the slave cuts the stale tail and ends up with the master's log.
#[compio::test]
async fn a_slave_whose_tail_the_master_rewrote_truncates_and_follows() {
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let [source_cfg, master_cfg, slave_cfg] = dirs.each_ref().map(|d| config(d.path(), 64 * 1024));
    let (_source_layout, source) = open(&source_cfg).await;
    let cut = append(&source, 0, 40);
    let source_end = append(&source, 40, 60);
    let (_master_layout, master_store) = open(&master_cfg).await;
    copy_log(&source, &master_store, cut).await;
    let (_slave_layout, slave_store) = open(&slave_cfg).await;
    copy_log(&source, &slave_store, source_end).await;
    // Other records from `cut` on, past the slave's end.
    let mut end = 0;
    for i in 0..150 {
        let mut record = encode("HaOther", 0, &vec![b'n'; 300 + i * 11]);
        end = master_store
            .append("HaOther", 0, &mut record, 0, 5_000 + i as i64)
            .unwrap()
            .end_offset;
    }
    master_store
        .wait_durable(end, Durability::Written)
        .await
        .unwrap();
    assert!(end > source_end, "the master is past the slave's end");

    let addr = master(master_store.clone()).await;
    let (stop, session) = spawn_slave(&slave_store, &addr);
    until("the master's log", || {
        slave_store.max_physical_offset() == end
    })
    .await;
    assert!(whole_log(&master_store).await == whole_log(&slave_store).await);
    assert_eq!(slave_store.max_queue_offset("HaTopic", 0), 40);
    assert_eq!(slave_store.max_queue_offset("HaOther", 0), 150);
    stop.set(true);
    assert!(matches!(session.await, Ok(Err(_))), "the session ran on");
}

/// The slave is ahead of its master, but the master's end is not a record boundary of the
/// slave's log (the master lost the slave's tail, then wrote and lost other records there):
/// the slave cuts to the start of that segment instead and ends up with the master's log.
#[compio::test]
async fn a_slave_ahead_whose_cut_is_no_record_boundary_cuts_the_segment() {
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let [source_cfg, master_cfg, slave_cfg] = dirs.each_ref().map(|d| config(d.path(), 64 * 1024));
    let (_source_layout, source) = open(&source_cfg).await;
    let cut = append(&source, 0, 40);
    let source_end = append(&source, 40, 60);
    let (_master_layout, master_store) = open(&master_cfg).await;
    copy_log(&source, &master_store, cut).await;
    let (_slave_layout, slave_store) = open(&slave_cfg).await;
    copy_log(&source, &slave_store, source_end).await;
    // One record of a size no record of the slave's tail starts after.
    let mut record = encode("HaOther", 0, &[b'n'; 77]);
    let end = master_store
        .append("HaOther", 0, &mut record, 0, 5_000)
        .unwrap()
        .end_offset;
    master_store
        .wait_durable(end, Durability::Written)
        .await
        .unwrap();
    assert!(end < source_end, "the slave is ahead");

    let addr = master(master_store.clone()).await;
    let (stop, session) = spawn_slave(&slave_store, &addr);
    until("the master's log", || {
        slave_store.max_physical_offset() == end
    })
    .await;
    assert!(whole_log(&master_store).await == whole_log(&slave_store).await);
    assert_eq!(slave_store.max_queue_offset("HaTopic", 0), 40);
    assert_eq!(slave_store.max_queue_offset("HaOther", 0), 1);
    stop.set(true);
    assert!(matches!(session.await, Ok(Err(_))), "the session ran on");
}

/// Every record of `HaTopic`:0 from queue offset `from`.
async fn pull_from(store: &ShardStore, from: i64) -> Vec<u8> {
    let (mut offset, mut out) = (from, Vec::new());
    loop {
        let got = store
            .get_messages("HaTopic", 0, offset, 32, &|_| true)
            .await
            .unwrap();
        if got.count == 0 {
            return out;
        }
        offset = got.next_begin_offset;
        out.extend_from_slice(&got.body);
    }
}

/// Retention deleted the master's oldest segments: a new, empty slave starts at the master's
/// newest segment (as RocketMQ's slave at offset 0 starts at the master's last file) and
/// follows from there; a slave that holds records the master no longer has is refused with
/// an error telling its operator to wipe it.
#[compio::test]
async fn an_empty_slave_starts_at_the_newest_segment_after_retention() {
    use rmq_storage::retention::{ExpiryPolicy, now_ms};
    let dirs = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let [master_cfg, slave_cfg, stale_cfg] = dirs.each_ref().map(|d| config(d.path(), 64 * 1024));
    let (_master_layout, master_store) = open(&master_cfg).await;
    let early = append(&master_store, 0, 10);
    let (_stale_layout, stale_store) = open(&stale_cfg).await;
    copy_log(&master_store, &stale_store, early).await;
    let end = append(&master_store, 10, 300);
    master_store
        .wait_durable(end, Durability::Written)
        .await
        .unwrap();
    let policy = ExpiryPolicy {
        now_ms: now_ms() + 10_000,
        reserved_ms: 0,
        force: false,
        max_files: 3,
    };
    let deleted = master_store.delete_expired_files(&policy).await.unwrap();
    assert_eq!(deleted.segments, 3);
    let oldest = master_store.oldest_offset();
    let start = master_store.segment_start_of(end);
    assert!(
        0 < oldest && oldest < start,
        "oldest {oldest}, newest segment {start}"
    );
    let addr = master(master_store.clone()).await;

    // A stale slave is refused, with an actionable error.
    let outcome = replicate_shard(&stale_store, &addr, &slave_settings(), Rc::new(|| false)).await;
    match &outcome {
        Err(HaError::TooFarBehind {
            slave_offset,
            oldest: told,
            ..
        }) => assert_eq!((*slave_offset, *told), (early, oldest)),
        other => panic!("expected TooFarBehind, got {other:?}"),
    }
    let message = outcome.unwrap_err().to_string();
    assert!(message.contains("delete its store directory"), "{message}");
    assert_eq!(stale_store.max_physical_offset(), early, "nothing changed");

    // An empty slave starts at the newest segment.
    let (_slave_layout, slave_store) = open(&slave_cfg).await;
    let (stop, session) = spawn_slave(&slave_store, &addr);
    until("the master's newest segment", || {
        slave_store.max_physical_offset() == end
    })
    .await;
    assert_eq!(slave_store.oldest_offset(), start);
    assert!(
        rmq_test_support::store::log_range(&master_store, start, end).await
            == whole_log(&slave_store).await
    );
    let first = slave_store.min_queue_offset("HaTopic", 0);
    assert!(first > 0, "the queue starts at the master's queue offset");
    assert!(first >= master_store.min_queue_offset("HaTopic", 0));
    assert_eq!(
        pull_from(&slave_store, first).await,
        pull_from(&master_store, first).await
    );

    // Further appends replicate.
    let later = append(&master_store, 310, 50);
    until("the later records", || {
        slave_store.max_physical_offset() == later
    })
    .await;
    assert!(
        rmq_test_support::store::log_range(&master_store, start, later).await
            == whole_log(&slave_store).await
    );
    assert_eq!(slave_store.max_queue_offset("HaTopic", 0), 360);
    assert_eq!(
        pull_from(&slave_store, first).await,
        pull_from(&master_store, first).await
    );
    stop.set(true);
    assert!(matches!(session.await, Ok(Err(_))), "the session ran on");
}
