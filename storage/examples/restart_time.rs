//! Restart time after a crash: fills one shard with N GiB of commit log (1 GiB segments,
//! 1 KiB messages over 8 queues, RocketMQ defaults otherwise), drops the store without
//! shutdown (what `kill -9` leaves: written data, the abort marker, the last periodic
//! checkpoint), then times open + recovery + the first acknowledged send (SYNC: flushed).
//!
//! `cargo run --release -p rmq-storage --example restart_time -- GIB DIR` (GIB may be
//! fractional: the worst case ends just before a segment boundary; defaults 2, a
//! temporary directory under the current one). Results go to docs/perf.md.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use rmq_storage::{Durability, ShardStore, StoreConfig, StoreLayout};

const TOPIC: &str = "RestartTopic";
const BODY_LEN: usize = 1024;
const QUEUES: i32 = 8;

fn main() {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let dir = args.next().map(PathBuf::from);
    let temp = tempfile::tempdir_in(".").expect("temp dir");
    let root = dir.unwrap_or_else(|| temp.path().to_path_buf());
    let cfg = StoreConfig::new(&root);
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    let fill_started = Instant::now();
    let written = runtime.block_on(fill(&cfg, (gib * (1u64 << 30) as f64) as u64));
    let fill_time = fill_started.elapsed();
    println!(
        "filled {:.2} GiB in {:.1} s ({:.0} MiB/s)",
        written as f64 / (1u64 << 30) as f64,
        fill_time.as_secs_f64(),
        written as f64 / (1 << 20) as f64 / fill_time.as_secs_f64()
    );
    drop_caches_hint();
    let (open, first_send) = runtime.block_on(restart(&cfg));
    println!(
        "restart after crash: recovery {:.0} ms, first acknowledged (flushed) send {:.0} ms after start",
        open.as_secs_f64() * 1000.0,
        first_send.as_secs_f64() * 1000.0
    );
}

fn record(queue_id: i32) -> BytesMut {
    let body = [b'r'; BODY_LEN];
    let properties = "WAIT\u{1}true\u{2}";
    let total = 84 + 4 + BODY_LEN + 1 + TOPIC.len() + 2 + properties.len();
    let mut out = BytesMut::with_capacity(total);
    out.put_i32(total as i32);
    out.put_i32(rmq_core::message::MESSAGE_MAGIC_CODE);
    out.put_i32((crc32fast::hash(&body) & 0x7FFF_FFFF) as i32);
    out.put_i32(queue_id);
    out.put_i32(0);
    out.put_i64(0);
    out.put_i64(0);
    out.put_i32(0);
    out.put_i64(1_700_000_000_000);
    out.put_slice(&[127, 0, 0, 1, 0, 0, 0x9c, 0x40]);
    out.put_i64(0);
    out.put_slice(&[127, 0, 0, 1, 0, 0, 0x2a, 0x9f]);
    out.put_i32(0);
    out.put_i64(0);
    out.put_i32(BODY_LEN as i32);
    out.put_slice(&body);
    out.put_u8(TOPIC.len() as u8);
    out.put_slice(TOPIC.as_bytes());
    out.put_i16(properties.len() as i16);
    out.put_slice(properties.as_bytes());
    out
}

/// Appends batches until `bytes` are written, then "crashes" (drop without shutdown).
async fn fill(cfg: &StoreConfig, bytes: u64) -> i64 {
    let layout = StoreLayout::open(cfg).expect("layout");
    let store = ShardStore::open(cfg.clone(), 0, layout.previous_shutdown_clean)
        .await
        .expect("open");
    let mut end = store.max_physical_offset();
    let mut queue_id = 0;
    while (end as u64) < bytes {
        let mut batch: Vec<(BytesMut, i64)> = (0..256).map(|_| (record(queue_id), 0)).collect();
        let appended = store
            .append_batch(TOPIC, queue_id, &mut batch, 1_700_000_000_000)
            .expect("append");
        end = appended.end_offset;
        queue_id = (queue_id + 1) % QUEUES;
        if store.max_physical_offset() - store.written_offset() > 64 << 20 {
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
    compio::time::sleep(Duration::from_millis(1500)).await; // a periodic checkpoint passes
    drop(store);
    drop(layout);
    end
}

/// Opens the crashed store and sends one message; returns (recovery, first send) times.
async fn restart(cfg: &StoreConfig) -> (Duration, Duration) {
    let started = Instant::now();
    let layout = StoreLayout::open(cfg).expect("layout");
    assert!(
        !layout.previous_shutdown_clean,
        "the fill must look like a crash"
    );
    let store = ShardStore::open(cfg.clone(), 0, false)
        .await
        .expect("recover");
    let recovered = started.elapsed();
    let mut message = record(0);
    let appended = store
        .append(TOPIC, 0, &mut message, 0, 1_700_000_000_001)
        .expect("first send");
    store
        .wait_durable(appended.end_offset, Durability::Flushed)
        .await
        .expect("flushed");
    let first_send = started.elapsed();
    store.shutdown().await.expect("shutdown");
    layout.mark_clean_shutdown().expect("clean");
    (recovered, first_send)
}

/// Page-cache state matters for the recovery read; say how to measure it cold.
fn drop_caches_hint() {
    if std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok() {
        println!("dropped the page cache (cold restart)");
    } else {
        println!("could not drop the page cache (not root): warm restart");
    }
}
