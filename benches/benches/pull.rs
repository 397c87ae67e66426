//! Pull-response assembly: the broker's PULL_MESSAGE path for 32 records of 1 KiB that sit
//! in the commit log's in-memory tail (header parse, tag filter on each consume queue entry,
//! record bytes gathered into the body, response header, frame encoded), on a real
//! `ShardStore` inside a compio runtime (`rmq_broker::processor::pull::pull_from_store`).

use std::time::Instant;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rmq_benches::pull::{PullFixture, assemble_pull};

const MESSAGES: usize = 32;

fn pull(c: &mut Criterion) {
    let fixture = PullFixture::new(env!("CARGO_TARGET_TMPDIR").as_ref(), MESSAGES, 1024);
    let mut group = c.benchmark_group("pull");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("response_32x1024", |b| {
        b.iter_custom(|iters| {
            fixture.runtime.block_on(async {
                let mut out = BytesMut::with_capacity(64 << 10);
                let started = Instant::now();
                for _ in 0..iters {
                    assemble_pull(&fixture.store, &fixture.request, &mut out).await;
                }
                let elapsed = started.elapsed();
                assert!(out.len() > fixture.body_bytes, "frame holds the records");
                elapsed
            })
        });
    });
    group.finish();
}

criterion_group!(benches, pull);
criterion_main!(benches);
