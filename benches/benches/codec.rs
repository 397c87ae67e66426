//! Frame encode/decode, record encode and parse, CRC: the per-message CPU cost.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rmq_core::message::{body_crc, parse_record};
use rmq_core::remoting::{SerializeType, decode_frame, encode_frame};

fn frames(c: &mut Criterion) {
    for (name, ty) in [
        ("json", SerializeType::Json),
        ("rocketmq", SerializeType::RocketMq),
    ] {
        let cmd = rmq_benches::send_request(ty);
        let mut encoded = BytesMut::new();
        encode_frame(&cmd, &mut encoded);
        let mut group = c.benchmark_group(format!("frame_{name}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("encode", |b| {
            let mut out = BytesMut::with_capacity(4096);
            b.iter(|| {
                out.clear();
                encode_frame(&cmd, &mut out);
            })
        });
        group.bench_function("decode", |b| {
            b.iter(|| {
                let mut src = encoded.clone();
                decode_frame(&mut src, 16 << 20)
                    .expect("valid")
                    .expect("complete")
            })
        });
        group.finish();
    }
}

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    for size in [128usize, 1024, 4096] {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("encode_{size}"), |b| {
            b.iter(|| rmq_benches::sample_record(size))
        });
        let record = rmq_benches::sample_record(size);
        group.bench_function(format!("parse_crc_{size}"), |b| {
            b.iter(|| parse_record(&record).expect("valid").crc_ok())
        });
        let body = vec![7u8; size];
        group.bench_function(format!("crc_{size}"), |b| b.iter(|| body_crc(&body)));
    }
    group.finish();
}

criterion_group!(benches, frames, records);
criterion_main!(benches);
