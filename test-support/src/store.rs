//! Store fixtures: a runtime for one test, opening a shard, and reading the log's bytes.

use std::rc::Rc;

use bytes::BytesMut;
use rmq_storage::{Durability, ShardStore, StoreConfig, StoreLayout};

/// Runs `future` to completion on a fresh compio runtime on this thread.
///
/// # Panics
/// When the runtime cannot start.
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    rmq_net::rt::block_on(future).expect("compio runtime")
}

/// Opens the store's layout and shard `shard`, recovering as the layout says.
///
/// # Panics
/// When the layout or the shard cannot be opened.
pub async fn open(cfg: &StoreConfig, shard: u32) -> (StoreLayout, Rc<ShardStore>) {
    let layout = StoreLayout::open(cfg).expect("store layout");
    let store = ShardStore::open(cfg.clone(), shard, layout.previous_shutdown_clean)
        .await
        .expect("open the shard");
    (layout, store)
}

/// The log's bytes `[from, end)` as the replication stream reads them, once they are
/// written.
///
/// # Panics
/// When the store fails to wait or to read.
pub async fn log_range(store: &ShardStore, from: i64, end: i64) -> BytesMut {
    store
        .wait_durable(end, Durability::Written)
        .await
        .expect("the range is written");
    let (mut at, mut out) = (from, BytesMut::new());
    while at < end {
        let read = store
            .read_replication_chunk(at, 1 << 20, &mut out)
            .await
            .expect("read the log");
        at += i64::try_from(read).expect("a chunk length");
    }
    out
}
