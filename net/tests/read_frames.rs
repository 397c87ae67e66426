//! The connection's reader over a real socket: frames arrive whole whatever the pieces the
//! peer writes them in (many frames in one write, a frame a byte at a time, a multi-MiB frame
//! in small pieces), and each request reaches the handler with its body intact. The reader
//! reads straight into its pending buffer (`connection.rs`, `read_room`), so these are the
//! cases where a frame straddles reads and the buffer has to grow under a partial frame.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rmq_core::remoting::{RemotingCommand, decode_frame, encode_frame};
use rmq_net::connection::LocalFuture;
use rmq_net::{ConnectionInfo, RequestHandler};

const MAX_FRAME: usize = 16 << 20;

/// Answers every request with code 0 and a remark naming its body: length and CRC32.
struct Echo;

impl RequestHandler for Echo {
    fn handle(
        self: Rc<Self>,
        _conn: Rc<ConnectionInfo>,
        request: RemotingCommand,
    ) -> LocalFuture<Option<RemotingCommand>> {
        let remark = describe(&request.body);
        Box::pin(async move { Some(RemotingCommand::response_for(&request, 0, Some(remark))) })
    }
}

fn describe(body: &[u8]) -> String {
    format!("{}:{:08x}", body.len(), crc32fast::hash(body))
}

fn server() -> SocketAddr {
    common::serve(|| Echo, MAX_FRAME)
}

/// A request frame with `body`; its bytes vary with `seed` so a misplaced piece shows.
fn request(opaque: i32, body_len: usize, seed: u8) -> (Vec<u8>, String) {
    let mut request = RemotingCommand::new_request(10);
    request.opaque = opaque;
    let body: Vec<u8> = (0..body_len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let expected = describe(&body);
    request.body = Bytes::from(body);
    let mut frame = BytesMut::new();
    encode_frame(&request, &mut frame);
    (frame.to_vec(), expected)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads `count` responses; returns (opaque, remark) in arrival order.
fn responses(stream: &mut TcpStream, count: usize) -> Vec<(i32, String)> {
    let mut pending = BytesMut::new();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while got.len() < count {
        if let Some(response) = decode_frame(&mut pending, MAX_FRAME).unwrap() {
            assert_eq!(response.code, 0, "{:?}", response.remark);
            got.push((response.opaque, response.remark.unwrap_or_default()));
            continue;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} of {count} responses", got.len());
        pending.extend_from_slice(&chunk[..n]);
    }
    got
}

#[test]
fn many_frames_in_one_write_are_each_answered_whole() {
    let mut stream = connect(server());
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    // Sizes around the reader's idle room (2 KiB) and read chunk (64 KiB).
    let sizes = [0, 1, 100, 2000, 2048, 4096, 4300, 65_000, 70_000, 3];
    for (i, size) in sizes.iter().cycle().take(40).enumerate() {
        let (frame, remark) = request(i as i32, *size, i as u8);
        bytes.extend_from_slice(&frame);
        expected.push((i as i32, remark));
    }
    stream.write_all(&bytes).unwrap();
    let mut got = responses(&mut stream, expected.len());
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn a_frame_written_a_byte_at_a_time_arrives_whole() {
    let mut stream = connect(server());
    let (frame, remark) = request(7, 5000, 3);
    for byte in &frame {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(responses(&mut stream, 1), vec![(7, remark)]);
    // The connection is still in step: the next frame, in one write.
    let (frame, remark) = request(8, 10, 4);
    stream.write_all(&frame).unwrap();
    assert_eq!(responses(&mut stream, 1), vec![(8, remark)]);
}

#[test]
fn a_large_frame_in_small_pieces_then_small_frames_arrive_whole() {
    let mut stream = connect(server());
    let (large, large_remark) = request(1, 6 << 20, 9);
    let (small, small_remark) = request(2, 300, 1);
    // The large frame in 1000-byte pieces with pauses (the reader sees many partial reads
    // and grows its buffer under the partial frame), the small one right behind it.
    for (i, piece) in large.chunks(1000).enumerate() {
        stream.write_all(piece).unwrap();
        if i % 512 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    stream.write_all(&small).unwrap();
    let mut got = responses(&mut stream, 2);
    got.sort();
    assert_eq!(got, vec![(1, large_remark), (2, small_remark)]);
}
