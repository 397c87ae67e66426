//! Consume-queue dispatch: what the append path does per record after copying it into the
//! commit log, i.e. push its 20-byte consume queue entry and index its keys (UNIQ_KEY and
//! one KEYS entry) in the mmapped index file (`rmq_storage::bench_hooks::DispatchTarget`).
//!
//! The real broker flushes and trims the consume queue's in-memory tail every
//! `flush_interval_consume_queue`; here nothing is flushed, so a fresh target (new temp dir,
//! new index file; untimed) is used every `CHUNK` records to keep the tail bounded.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rmq_benches::dispatch::DispatchFixture;

const CHUNK: u64 = 16_384;

fn dispatch(c: &mut Criterion) {
    let parent = env!("CARGO_TARGET_TMPDIR");
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(1));
    group.bench_function("consume_queue_and_index_1024", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let run = left.min(CHUNK);
                let mut fixture = DispatchFixture::new(parent.as_ref(), 1024);
                let started = Instant::now();
                for _ in 0..run {
                    fixture.dispatch_next();
                }
                total += started.elapsed();
                assert_eq!(fixture.entries(), run as i64 + 1);
                left -= run;
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
