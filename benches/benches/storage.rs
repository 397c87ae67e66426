//! The storage engine's hot paths on a real disk (`CARGO_TARGET_TMPDIR`):
//! - `append_to_written`: append 1 KiB records and keep them flowing to `O_DIRECT` writes
//!   (ASYNC_FLUSH's ack level): the per-message cost of the send path inside a shard;
//! - `group_commit/{n}`: `n` concurrent SYNC_FLUSH senders, each appending and waiting for
//!   `fdatasync` (`syncFlushDsyncWrites=false`: every round writes, then syncs): the time per
//!   acknowledged message shows how many share one sync;
//!   `64_senders_200us_turnaround`: each sender appends again 200 µs after its ack, as a
//!   producer does one network round trip later (the broker's case; the plain benches'
//!   senders come back at once); `64_senders_2_shards`: two shards on two threads, 32
//!   senders each, syncing to the same disk as the broker's shards do (the broker's default
//!   `syncFlushDsyncWrites=idle`); `dsync_*`: the same with `O_DSYNC` segments
//!   (`syncFlushDsyncWrites=true`), a round's write being its sync; `idle_*`: with the
//!   default, durable writes for rounds that start idle only;
//! - `recovery_dispatch`: a full recovery scan of 16 MiB that re-dispatches every consume
//!   queue entry and index key (checkpoint and consume queues deleted first).

use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rmq_benches::sample_record;
use rmq_storage::{DsyncWrites, Durability, FlushMode, ShardStore, StoreConfig, StoreLayout};

const TOPIC: &str = "BenchmarkTest";
const QUEUE: i32 = 3;

fn config(dir: &std::path::Path, mode: FlushMode) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.commit_log_file_size = 64 << 20;
    cfg.flush_mode = mode;
    cfg
}

async fn open(cfg: &StoreConfig) -> (StoreLayout, Rc<ShardStore>) {
    let layout = StoreLayout::open(cfg).expect("layout");
    let store = ShardStore::open(cfg.clone(), 0, layout.previous_shutdown_clean)
        .await
        .expect("open");
    (layout, store)
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

fn append_to_written(c: &mut Criterion) {
    let dir = temp_dir();
    let cfg = config(dir.path(), FlushMode::Async);
    let runtime = rmq_net::rt::Runtime::new().expect("runtime");
    let (_layout, store) = runtime.block_on(open(&cfg));
    let mut group = c.benchmark_group("storage");
    group.throughput(Throughput::Elements(1));
    group.bench_function("append_to_written", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                let mut end = 0;
                for i in 0..iters {
                    let mut record = sample_record(1024);
                    end = store
                        .append(TOPIC, QUEUE, &mut record, 0, 1)
                        .expect("append")
                        .end_offset;
                    if i % 1024 == 1023 {
                        store
                            .wait_durable(end, Durability::Written)
                            .await
                            .expect("written");
                    }
                }
                store
                    .wait_durable(end, Durability::Written)
                    .await
                    .expect("written");
                started.elapsed()
            })
        });
    });
    group.finish();
}

async fn sync_senders(
    store: &Rc<ShardStore>,
    senders: u64,
    rounds: u64,
    turnaround: Duration,
    queue: i32,
) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let store = store.clone();
            rmq_net::rt::spawn(async move {
                for _ in 0..rounds {
                    let mut record = sample_record(1024);
                    let end = store
                        .append(TOPIC, queue, &mut record, 0, 1)
                        .expect("append")
                        .end_offset;
                    store
                        .wait_durable(end, Durability::Flushed)
                        .await
                        .expect("flushed");
                    if !turnaround.is_zero() {
                        rmq_net::rt::sleep(turnaround).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    started.elapsed()
}

fn group_commit(c: &mut Criterion) {
    let dir = temp_dir();
    let mut cfg = config(dir.path(), FlushMode::Sync);
    cfg.sync_flush_dsync_writes = DsyncWrites::Never;
    let runtime = rmq_net::rt::Runtime::new().expect("runtime");
    let (_layout, store) = runtime.block_on(open(&cfg));
    let mut group = c.benchmark_group("group_commit");
    group.sample_size(10);
    for senders in [1u64, 16, 64] {
        group.throughput(Throughput::Elements(senders));
        group.bench_function(format!("{senders}_senders"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(sync_senders(&store, senders, iters, Duration::ZERO, QUEUE))
            });
        });
    }
    let turnaround = Duration::from_micros(200);
    group.throughput(Throughput::Elements(64));
    group.bench_function("64_senders_200us_turnaround", |b| {
        b.iter_custom(|iters| runtime.block_on(sync_senders(&store, 64, iters, turnaround, QUEUE)));
    });
    group.finish();
}

/// `group_commit` with durable writes: `O_DSYNC` segments (`dsync_*`: one durable write per
/// round instead of a write and an `fdatasync`, the next write waiting for it instead of
/// overlapping the sync), and durable writes for idle rounds only (`idle_*`, the default).
fn group_commit_dsync(c: &mut Criterion) {
    for (prefix, mode) in [("dsync", DsyncWrites::Always), ("idle", DsyncWrites::Idle)] {
        group_commit_durable_writes(c, prefix, mode);
    }
}

fn group_commit_durable_writes(c: &mut Criterion, prefix: &str, mode: DsyncWrites) {
    let dir = temp_dir();
    let mut cfg = config(dir.path(), FlushMode::Sync);
    cfg.sync_flush_dsync_writes = mode;
    let runtime = rmq_net::rt::Runtime::new().expect("runtime");
    let (_layout, store) = runtime.block_on(open(&cfg));
    let mut group = c.benchmark_group("group_commit");
    group.sample_size(10);
    for (name, turnaround) in [
        ("1_senders", None),
        ("64_senders", Some(Duration::ZERO)),
        (
            "64_senders_200us_turnaround",
            Some(Duration::from_micros(200)),
        ),
    ] {
        let name = format!("{prefix}_{name}");
        let senders = if turnaround.is_some() { 64 } else { 1 };
        let turnaround = turnaround.unwrap_or_default();
        group.throughput(Throughput::Elements(senders));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(sync_senders(&store, senders, iters, turnaround, QUEUE))
            });
        });
    }
    group.finish();
}

/// One shard on its own thread and runtime, as in the broker; runs `sync_senders` rounds on
/// request and answers with the time they took.
struct ShardThread {
    run: std::sync::mpsc::Sender<u64>,
    done: std::sync::mpsc::Receiver<Duration>,
    thread: std::thread::JoinHandle<()>,
}

fn shard_thread(cfg: StoreConfig, shard: u32, senders: u64) -> ShardThread {
    let (run, run_rx) = std::sync::mpsc::channel::<u64>();
    let (done_tx, done) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = rmq_net::rt::Runtime::new().expect("runtime");
        let store = runtime.block_on(async {
            ShardStore::open(cfg, shard, true)
                .await
                .expect("open shard")
        });
        let queue = (0..)
            .find(|&q| rmq_storage::shard_for_queue(TOPIC, q, 2) == shard)
            .expect("a queue of the shard");
        for iters in run_rx {
            let took =
                runtime.block_on(sync_senders(&store, senders, iters, Duration::ZERO, queue));
            if done_tx.send(took).is_err() {
                break;
            }
        }
        runtime.block_on(store.shutdown()).expect("shutdown");
    });
    ShardThread { run, done, thread }
}

fn group_commit_two_shards(c: &mut Criterion) {
    let dir = temp_dir();
    let mut cfg = config(dir.path(), FlushMode::Sync);
    cfg.requested_shard_count = 2;
    let _layout = StoreLayout::open(&cfg).expect("layout");
    let shards: Vec<_> = (0..2).map(|s| shard_thread(cfg.clone(), s, 32)).collect();
    let mut group = c.benchmark_group("group_commit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(64));
    group.bench_function("64_senders_2_shards", |b| {
        b.iter_custom(|iters| {
            for shard in &shards {
                shard.run.send(iters).expect("shard thread");
            }
            shards
                .iter()
                .map(|shard| shard.done.recv().expect("shard thread"))
                .max()
                .expect("two shards")
        });
    });
    group.finish();
    for shard in shards {
        drop(shard.run);
        shard.thread.join().expect("shard thread");
    }
}

fn recovery_dispatch(c: &mut Criterion) {
    let dir = temp_dir();
    let cfg = config(dir.path(), FlushMode::Async);
    let runtime = rmq_net::rt::Runtime::new().expect("runtime");
    let bytes = 16u64 << 20;
    runtime.block_on(async {
        let (_layout, store) = open(&cfg).await;
        let mut end = 0;
        while (end as u64) < bytes {
            let mut record = sample_record(1024);
            end = store
                .append(TOPIC, QUEUE, &mut record, 0, 1)
                .expect("append")
                .end_offset;
        }
        store.shutdown().await.expect("shutdown");
    });
    let mut group = c.benchmark_group("storage");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("recovery_dispatch_16MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let _ = std::fs::remove_dir_all(&cfg.consume_queue_dir);
                let _ = std::fs::remove_dir_all(&cfg.index_dir);
                let _ = std::fs::remove_file(cfg.root_dir.join("shard-0.checkpoint"));
                total += runtime.block_on(async {
                    let started = Instant::now();
                    let (_layout, store) = open(&cfg).await;
                    let elapsed = started.elapsed();
                    assert!(store.max_queue_offset(TOPIC, QUEUE) > 10_000);
                    store.shutdown().await.expect("shutdown");
                    elapsed
                });
            }
            total
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    append_to_written,
    group_commit,
    group_commit_dsync,
    group_commit_two_shards,
    recovery_dispatch
);
criterion_main!(benches);
