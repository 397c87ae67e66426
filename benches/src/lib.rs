//! Criterion benchmarks of rmq-fast's hot paths live in `benches/`; this library only
//! holds shared fixtures (also used by the `icount` binary).

pub mod dispatch;
pub mod pull;

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use rmq_core::message::NewRecord;
use rmq_core::remoting::{RemotingCommand, SerializeType, request_code};

/// The topic of every fixture.
pub const TOPIC: &str = "BenchmarkTest";

/// Polls `future` once, outside any runtime: for store code that is `async` by signature
/// but performs no asynchronous I/O. Panics if the future is not ready.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future awaited I/O; it needs a runtime"),
    }
}

/// Encodes a typical record with a body of `body_len` bytes.
pub fn sample_record(body_len: usize) -> BytesMut {
    let body = vec![b'x'; body_len];
    let props = "TAGS\u{1}TagA\u{2}KEYS\u{1}key-1\u{2}UNIQ_KEY\u{1}7F0000010001000000000000000000AA\u{2}WAIT\u{1}true\u{2}";
    let record = NewRecord {
        topic: "BenchmarkTest",
        queue_id: 3,
        flag: 0,
        body: &body,
        properties: props,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "127.0.0.1:50000".parse().expect("literal"),
        store_host: "127.0.0.1:10911".parse().expect("literal"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    };
    let mut buf = BytesMut::with_capacity(record.encoded_len());
    record.encode_into(&mut buf).expect("valid record");
    buf
}

/// A SEND_MESSAGE_V2 request as the Java client sends it (short header names).
pub fn send_request(serialize_type: SerializeType) -> RemotingCommand {
    let mut cmd = RemotingCommand::new_request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "bench_producer_group")
        .with_ext("b", "BenchmarkTest")
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", 3)
        .with_ext("f", 0)
        .with_ext("g", 1_700_000_000_000i64)
        .with_ext("h", 0)
        .with_ext("i", "TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}")
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_ext("m", false)
        .with_body(vec![b'x'; 128]);
    cmd.serialize_type = serialize_type;
    cmd.opaque = 42;
    cmd
}
