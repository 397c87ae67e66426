//! Controller mode over the real stream (issue 11): a slave mirrors its master's epoch
//! history as its log reaches each entry; an old master that comes back as a slave of the new
//! one cuts its log back to the consistent point of both histories and follows; a
//! controller-mode slave refuses a master without a history or older than the epoch it was
//! told to follow; a classic slave of a controller-mode master is unaffected.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use compio::net::TcpListener;
use rmq_ha::HaError;
use rmq_ha::handshake::{HELLO_LEN, decode_hello};
use rmq_ha::master::{MasterSettings, serve_slave};
use rmq_ha::slave::{SlaveSettings, read_at_least, replicate_shard};
use rmq_storage::{Durability, EpochEntry, ShardStore, StoreConfig, StoreLayout};

const TOPIC: &str = "EpochTopic";

fn config(root: &Path, epochs: bool) -> StoreConfig {
    let mut cfg = StoreConfig::new(root);
    cfg.commit_log_file_size = 64 * 1024;
    cfg.consume_queue_file_size = 20 * 1000;
    cfg.flush_interval_commit_log = Duration::from_millis(10);
    if epochs {
        cfg.epoch_file = Some(root.join("epochFileCheckpoint"));
    }
    cfg
}

async fn open(cfg: &StoreConfig) -> (StoreLayout, Rc<ShardStore>) {
    rmq_test_support::store::open(cfg, 0).await
}

fn settings(min_master_epoch: i32) -> SlaveSettings {
    SlaveSettings {
        connect_timeout: Duration::from_secs(2),
        heartbeat: Duration::from_millis(100),
        housekeeping: Duration::from_secs(5),
        max_body: 1 << 20,
        read_buffer: 8 * 1024,
        min_master_epoch,
        slave_id: 0,
    }
}

/// Serves slaves from `store` until `stop` is set (then every session ends).
async fn master(store: Rc<ShardStore>, stop: Rc<std::cell::Cell<bool>>) -> String {
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
            let stop = stop.clone();
            let stopping: Rc<dyn Fn() -> bool> = Rc::new(move || stop.get());
            let settings = MasterSettings {
                chunk_max: 16 * 1024,
                heartbeat: Duration::from_millis(100),
                housekeeping: Duration::from_secs(5),
                zero_copy: true,
            };
            let session = serve_slave(
                store.clone(),
                Rc::default(),
                stream,
                hello,
                settings,
                stopping,
            );
            compio::runtime::spawn(session).detach();
        }
    })
    .detach();
    addr
}

type Session = compio::runtime::JoinHandle<Result<(), HaError>>;

fn follow(
    store: &Rc<ShardStore>,
    addr: &str,
    min_epoch: i32,
) -> (Rc<std::cell::Cell<bool>>, Session) {
    let stop = Rc::new(std::cell::Cell::new(false));
    let stopping: Rc<dyn Fn() -> bool> = {
        let stop = stop.clone();
        Rc::new(move || stop.get())
    };
    let (store, addr) = (store.clone(), addr.to_string());
    let session = compio::runtime::spawn(async move {
        replicate_shard(&store, &addr, &settings(min_epoch), stopping).await
    });
    (stop, session)
}

async fn append(store: &ShardStore, from: usize, count: usize, fill: u8) -> i64 {
    let mut end = 0;
    for i in from..from + count {
        let body = vec![fill; 300 + (i * 71) % 3000];
        let mut record = rmq_test_support::record::encode(TOPIC, 0, &body, "", 0);
        end = store
            .append(TOPIC, 0, &mut record, 0, i as i64)
            .unwrap()
            .end_offset;
    }
    store.wait_durable(end, Durability::Written).await.unwrap();
    end
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        compio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn whole_log(store: &ShardStore) -> BytesMut {
    let (from, to) = (store.oldest_offset(), store.max_physical_offset());
    rmq_test_support::store::log_range(store, from, to).await
}

async fn stop_session(stop: &std::cell::Cell<bool>, session: Session) {
    stop.set(true);
    let _ = session.await;
}

#[compio::test]
async fn an_old_master_rejoins_the_new_one_at_the_consistent_point() {
    let dirs = [(); 2].map(|()| tempfile::tempdir().unwrap());
    let [a_cfg, b_cfg] = dirs.each_ref().map(|d| config(d.path(), true));
    let (_a_layout, a) = open(&a_cfg).await;
    let (_b_layout, b) = open(&b_cfg).await;

    // A is master of epoch 1, then of epoch 3 (re-elected); B follows across both.
    a.begin_epoch(1).unwrap();
    append(&a, 0, 30, b'1').await;
    a.begin_epoch(3).unwrap();
    let shared = append(&a, 30, 20, b'3').await;
    let a_stop = Rc::new(std::cell::Cell::new(false));
    let a_addr = master(a.clone(), a_stop.clone()).await;
    let (stop, session) = follow(&b, &a_addr, 3);
    until("B caught up", || b.max_physical_offset() == shared).await;
    assert_eq!(
        b.epoch_entries(),
        a.epoch_entries(),
        "B mirrors A's history"
    );
    assert_eq!(b.epoch_entries().len(), 2);
    stop_session(&stop, session).await;

    // A writes a tail B never gets (never acknowledged), then dies; B becomes master of
    // epoch 4 and writes less than A's lost tail (A is ahead of B afterwards).
    a_stop.set(true);
    let a_end = append(&a, 50, 70, b'x').await;
    b.begin_epoch(4).unwrap();
    let b_end = append(&b, 50, 10, b'4').await;
    assert!(a_end > b_end, "A is ahead of B");

    let b_stop = Rc::new(std::cell::Cell::new(false));
    let b_addr = master(b.clone(), b_stop.clone()).await;
    // A follows B: cut back to `shared` (where B's epoch 4 starts), then B's records.
    let (stop, session) = follow(&a, &b_addr, 4);
    until("A follows B", || a.max_physical_offset() == b_end).await;
    assert!(
        whole_log(&a).await == whole_log(&b).await,
        "A holds B's log"
    );
    assert_eq!(a.max_queue_offset(TOPIC, 0), 60);
    assert_eq!(
        a.epoch_entries(),
        [
            EpochEntry::new(1, 0),
            EpochEntry::new(3, b.epoch_entries()[1].start_offset),
            EpochEntry::new(4, shared)
        ]
    );
    let more = append(&b, 60, 5, b'4').await;
    until("A keeps following", || a.max_physical_offset() == more).await;
    stop_session(&stop, session).await;
    b_stop.set(true);
}

#[compio::test]
async fn a_controller_mode_slave_refuses_a_classic_or_stale_master() {
    let dirs = [(); 4].map(|()| tempfile::tempdir().unwrap());
    let (_c_layout, classic) = open(&config(dirs[0].path(), false)).await;
    let (_m_layout, master_store) = open(&config(dirs[1].path(), true)).await;
    let (_s_layout, slave) = open(&config(dirs[2].path(), true)).await;
    let (_k_layout, classic_slave) = open(&config(dirs[3].path(), false)).await;
    append(&classic, 0, 5, b'c').await;
    master_store.begin_epoch(2).unwrap();
    let end = append(&master_store, 0, 5, b'm').await;
    let stop = Rc::new(std::cell::Cell::new(false));
    let classic_addr = master(classic.clone(), stop.clone()).await;
    let master_addr = master(master_store.clone(), stop.clone()).await;

    let (_, session) = follow(&slave, &classic_addr, -1);
    let refused = session.await.unwrap();
    assert!(
        matches!(refused, Err(HaError::NoMasterEpochs { .. })),
        "{refused:?}"
    );
    let (_, session) = follow(&slave, &master_addr, 3);
    let refused = session.await.unwrap();
    assert!(
        matches!(
            refused,
            Err(HaError::StaleMaster {
                master_epoch: 2,
                expected: 3,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        slave.max_physical_offset(),
        0,
        "nothing replicated from either"
    );

    // A classic slave of a controller-mode master replicates as before (no history sent).
    let (classic_stop, session) = follow(&classic_slave, &master_addr, -1);
    until("the classic slave", || {
        classic_slave.max_physical_offset() == end
    })
    .await;
    stop_session(&classic_stop, session).await;
    stop.set(true);
}
