//! `icount <path> <iterations>`: runs one hot path `iterations` times and exits, so that
//! valgrind can count its instructions (driven by `icount-gate`, see that binary).
//!
//! Contract: every path builds its fixture first, then runs the measured operation
//! exactly `iterations` times, with `black_box` around inputs and outputs so nothing is
//! optimised away. Running with 0 iterations measures the fixture and process overhead
//! alone, which `icount-gate` subtracts. The fixtures are fixed (no clock, no randomness).
//! `icount --list` prints the path names, one per line.
//!
//! It allocates with the broker's allocator (mimalloc, as in `rmq-fast/src/main.rs`), so a
//! path's allocations count what they cost in the broker rather than in glibc's malloc.

use std::hint::black_box;
use std::process::ExitCode;

use bytes::BytesMut;
use rmq_broker::processor::send::stored_reply;
use rmq_core::message::batch::{BatchEntry, decode_batch, encode_batch};
use rmq_core::message::msg_id::{OffsetMsgId, offset_msg_id};
use rmq_core::message::properties::get_property;
use rmq_core::message::{body_crc, parse_record, patch_record};
use rmq_core::remoting::{
    RemotingCommand, ResponseCode, SerializeType, decode_frame, encode_frame,
};

use rmq_benches::dispatch::DispatchFixture;
use rmq_benches::pull::{PullFixture, assemble_pull};

/// The broker's allocator (see the module docs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One measured path: its name and a runner taking the iteration count.
struct Path {
    name: &'static str,
    run: fn(u64),
}

const PATHS: &[Path] = &[
    Path {
        name: "frame_encode_json",
        run: |n| frame_encode(SerializeType::Json, n),
    },
    Path {
        name: "frame_encode_rocketmq",
        run: |n| frame_encode(SerializeType::RocketMq, n),
    },
    Path {
        name: "frame_decode_json",
        run: |n| frame_decode(SerializeType::Json, n),
    },
    Path {
        name: "frame_decode_rocketmq",
        run: |n| frame_decode(SerializeType::RocketMq, n),
    },
    Path {
        name: "record_encode_128",
        run: |n| record_encode(128, n),
    },
    Path {
        name: "record_encode_4096",
        run: |n| record_encode(4096, n),
    },
    Path {
        name: "record_patch",
        run: record_patch,
    },
    Path {
        name: "record_parse_crc_1024",
        run: record_parse_crc,
    },
    Path {
        name: "crc_1024",
        run: |n| crc(1024, n),
    },
    Path {
        name: "crc_4096",
        run: |n| crc(4096, n),
    },
    Path {
        name: "batch_decode_16x128",
        run: batch_decode,
    },
    Path {
        name: "msg_id_and_tags",
        run: msg_id_and_tags,
    },
    Path {
        name: "cq_index_dispatch_1024",
        run: consume_queue_dispatch,
    },
    Path {
        name: "pull_response_32x1024",
        run: pull_response,
    },
    Path {
        name: "send_response_rocketmq",
        run: send_response,
    },
    Path {
        name: "spawn_1k_future",
        run: spawn_large_future,
    },
    Path {
        name: "send_processor_128",
        run: send_processor,
    },
    Path {
        name: "metrics_hooks_off",
        run: |n| metrics_hooks(false, n),
    },
    Path {
        name: "metrics_hooks_on",
        run: |n| metrics_hooks(true, n),
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        for path in PATHS {
            println!("{}", path.name);
        }
        return ExitCode::SUCCESS;
    }
    let (Some(name), Some(iterations)) = (args.first(), args.get(1)) else {
        eprintln!("usage: icount <path> <iterations> | icount --list");
        return ExitCode::from(2);
    };
    let Ok(iterations) = iterations.parse::<u64>() else {
        eprintln!("icount: iterations must be a non-negative integer, got {iterations:?}");
        return ExitCode::from(2);
    };
    match PATHS.iter().find(|path| path.name == name) {
        Some(path) => {
            (path.run)(iterations);
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("icount: unknown path {name:?} (icount --list)");
            ExitCode::from(2)
        }
    }
}

/// Cycles over `SEED_SPREAD` equal commands: each header map has its own hash seed, so
/// the iteration order of the ext fields (and the work it implies) is averaged out
/// instead of depending on the one seed this process drew.
fn frame_encode(serialize_type: SerializeType, iterations: u64) {
    const SEED_SPREAD: usize = 64;
    let cmds: Vec<RemotingCommand> = (0..SEED_SPREAD)
        .map(|_| rmq_benches::send_request(serialize_type))
        .collect();
    let mut out = BytesMut::with_capacity(4096);
    for cmd in cmds
        .iter()
        .cycle()
        .take(usize::try_from(iterations).unwrap_or(usize::MAX))
    {
        out.clear();
        encode_frame(black_box(cmd), &mut out);
        black_box(&out);
    }
}

fn frame_decode(serialize_type: SerializeType, iterations: u64) {
    let mut encoded = BytesMut::new();
    encode_frame(&rmq_benches::send_request(serialize_type), &mut encoded);
    let encoded = encoded.freeze();
    for _ in 0..iterations {
        let mut src = BytesMut::from(black_box(&encoded[..]));
        let decoded = decode_frame(&mut src, 16 << 20);
        assert!(matches!(decoded, Ok(Some(_))), "fixture frame decodes");
        black_box(decoded.ok());
    }
}

fn record_encode(body_len: usize, iterations: u64) {
    for _ in 0..iterations {
        black_box(rmq_benches::sample_record(black_box(body_len)));
    }
}

/// What the store does to every appended record: write queue offset, physical offset and
/// store timestamp in place.
fn record_patch(iterations: u64) {
    let mut record = rmq_benches::sample_record(1024);
    for i in 0..iterations {
        let i = i as i64;
        patch_record(
            black_box(&mut record[..]),
            i,
            i * 1200,
            1_700_000_000_000 + i,
        );
    }
    black_box(&record);
}

fn record_parse_crc(iterations: u64) {
    let record = rmq_benches::sample_record(1024);
    for _ in 0..iterations {
        let view = parse_record(black_box(&record[..]));
        assert!(
            view.as_ref().is_ok_and(|view| view.crc_ok()),
            "fixture parses"
        );
        black_box(view.ok());
    }
}

fn crc(len: usize, iterations: u64) {
    let body = vec![7u8; len];
    for _ in 0..iterations {
        black_box(body_crc(black_box(&body)));
    }
}

fn batch_decode(iterations: u64) {
    let body = vec![b'y'; 128];
    let entries: Vec<BatchEntry<'_>> = (0..16)
        .map(|_| BatchEntry {
            flag: 0,
            body: &body,
            properties: "KEYS\u{1}k\u{2}",
        })
        .collect();
    let mut encoded = BytesMut::new();
    encode_batch(&entries, &mut encoded);
    for _ in 0..iterations {
        let decoded = decode_batch(black_box(&encoded[..]));
        assert!(
            decoded.as_ref().is_ok_and(|d| d.len() == 16),
            "fixture batch decodes"
        );
        black_box(decoded.ok());
    }
}

/// Per-message work of a send response and a consume queue entry: the offset message id
/// and the tags hash code, plus one property lookup.
fn msg_id_and_tags(iterations: u64) {
    let record = rmq_benches::sample_record(128);
    let view = parse_record(&record).ok();
    assert!(view.is_some(), "fixture parses");
    let Some(view) = view else { return };
    for i in 0..iterations {
        black_box(offset_msg_id(view.store_host(), black_box(i as i64)));
        black_box(view.tags_code());
        black_box(get_property(black_box(view.properties()), "UNIQ_KEY"));
    }
}

/// What a send's answer costs once the store has placed the message: the broker's response
/// (`rmq_broker::processor::send::stored_reply`: offset message id and five header fields)
/// encoded into a frame with the binary header, as the connection's writer does.
fn send_response(iterations: u64) {
    let request = rmq_benches::send_request(SerializeType::RocketMq);
    let store_host = "127.0.0.1:10911".parse().expect("fixture address");
    let mut out = BytesMut::with_capacity(4096);
    for i in 0..iterations {
        let offset = black_box(i as i64) * 300;
        let response = stored_reply(
            black_box(&request),
            ResponseCode::Success,
            OffsetMsgId {
                store_host,
                physical_offset: offset,
            },
            3,
            black_box(i as i64),
        );
        encode_frame(&response, &mut out);
        black_box(&out);
        out.clear();
    }
}

/// Per appended record: its consume queue entry and index keys (in memory and the mmapped
/// index file under the system temp dir; no io_uring).
fn consume_queue_dispatch(iterations: u64) {
    let mut fixture = DispatchFixture::new(&std::env::temp_dir(), 1024);
    for _ in 0..iterations {
        fixture.dispatch_next();
    }
    black_box(fixture.entries());
}

/// One PULL_MESSAGE response of 32 × 1 KiB records read from the in-memory tail of a real
/// store (compio runtime, files under the system temp dir). The loop never awaits I/O, so
/// the store's background tasks do not run inside it.
fn pull_response(iterations: u64) {
    let fixture = PullFixture::new(&std::env::temp_dir(), 32, 1024);
    fixture.runtime.block_on(async {
        let mut out = BytesMut::with_capacity(64 << 10);
        for _ in 0..iterations {
            let response =
                assemble_pull(&fixture.store, black_box(&fixture.request), &mut out).await;
            black_box(&response);
        }
        black_box(&out);
    });
}

/// The metrics hooks of one send, one pull and their two requests (broker/src/metrics): with
/// the endpoint off (one thread-local check each) and on (per-core map updates, two latency
/// histograms). Topic, group and queue stay the same, as under a steady load.
fn metrics_hooks(enabled: bool, iterations: u64) {
    use rmq_broker::metrics::{on_pull, on_rpc, on_send, rpc_started};
    use rmq_core::remoting::request_code::{PULL_MESSAGE, SEND_MESSAGE_V2};
    if enabled {
        rmq_broker::metrics::counters::install();
    }
    let props = "KEYS\u{1}k1\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}C0A8000100002A9F0000000000000001\u{2}";
    let got = rmq_storage::GetMessages {
        status: rmq_storage::GetStatus::Found,
        next_begin_offset: 32,
        min_offset: 0,
        max_offset: 64,
        body: bytes::Bytes::from(vec![0u8; 32 * 1024]),
        count: 32,
    };
    for _ in 0..iterations {
        let started = rpc_started();
        on_send(black_box("BenchmarkTest"), black_box(props), 1, 1230);
        on_rpc(started, SEND_MESSAGE_V2, Some(0));
        let started = rpc_started();
        on_pull(
            black_box("BenchGroup"),
            black_box("BenchmarkTest"),
            3,
            Some(black_box(&got)),
        );
        on_rpc(started, PULL_MESSAGE, Some(0));
    }
    black_box(rmq_broker::metrics::counters::snapshot());
}

/// A stored 128-byte send through the broker's processor dispatch, in process: header,
/// topic lookup, record encoding, the append and its durability wait (ASYNC_FLUSH: written
/// to the page cache), stats and the response; no socket, no frame codec. The request is a
/// clone of one decoded request (what the codec hands the dispatch, allocations included).
fn send_processor(iterations: u64) {
    rmq_broker::testing::run(async move {
        let harness = rmq_broker::testing::Harness::new().await;
        let request = rmq_benches::send_request(SerializeType::RocketMq);
        // Creates the topic, outside the measured sends.
        let first = harness.call(request.clone()).await;
        assert_eq!(
            first.code,
            ResponseCode::Success.code(),
            "{:?}",
            first.remark
        );
        for _ in 0..iterations {
            let response = harness.call(black_box(request.clone())).await;
            assert_eq!(response.code, ResponseCode::Success.code());
            black_box(response);
        }
    });
}

/// Spawns a task whose future is as large as the shard side of a send hand-off (~1.4 KB)
/// and runs it to completion: what `rmq_net::rt::spawn` costs per handed-off send.
fn spawn_large_future(iterations: u64) {
    /// Held across an await, so it is part of the future's state.
    struct Payload([u8; 1344]);
    let runtime = rmq_net::rt::Runtime::new().expect("a compio runtime (io_uring)");
    runtime.block_on(async move {
        for i in 0..iterations {
            let seed = black_box(i as u8);
            let task = rmq_net::rt::spawn(async move {
                let payload = Payload([seed; 1344]);
                std::future::ready(()).await;
                black_box(&payload.0);
                payload.0[1343]
            });
            black_box(task.await.expect("the task runs to completion"));
        }
    });
}
