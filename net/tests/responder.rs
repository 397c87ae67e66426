//! Requests answered from another thread through a `Responder`, over a real socket served by
//! `serve_connection`: the reply is written by the answering thread itself when the
//! connection has nothing else in flight, queued to the connection's writer otherwise, and
//! every reply arrives whole, whichever way it went (the rest of a large direct write cut
//! short by the kernel included). A responder dropped unused answers with its fallback.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rmq_core::remoting::{RemotingCommand, decode_frame, encode_frame};
use rmq_net::connection::LocalFuture;
use rmq_net::direct_write::direct_writes;
use rmq_net::{ConnectionInfo, RequestHandler, Responder};

const MAX_FRAME: usize = 64 << 20;
/// Request code whose responder is dropped without an answer.
const DROP_IT: i32 = 77;
/// Request code answered with a body of this many bytes (more than a socket buffer).
const LARGE: i32 = 78;
const LARGE_BODY: usize = 8 << 20;

/// Hands every request's responder to the answering thread.
struct HandOff {
    to_answerer: mpsc::Sender<(RemotingCommand, Responder)>,
}

impl RequestHandler for HandOff {
    fn handle(
        self: Rc<Self>,
        conn: Rc<ConnectionInfo>,
        request: RemotingCommand,
    ) -> LocalFuture<Option<RemotingCommand>> {
        let responder = conn.responder(&request, 2, "dropped");
        self.to_answerer.send((request, responder)).unwrap();
        Box::pin(async { None })
    }
}

/// Answers in batches of `batch` requests, last first (another core finishing work in its
/// own order), each with code 0 and its opaque as the remark.
fn answerer(batch: usize) -> mpsc::Sender<(RemotingCommand, Responder)> {
    let (tx, rx) = mpsc::channel::<(RemotingCommand, Responder)>();
    std::thread::spawn(move || {
        let mut pending = Vec::new();
        while let Ok(item) = rx.recv() {
            pending.push(item);
            if pending.len() < batch {
                continue;
            }
            for (request, responder) in pending.drain(..).rev() {
                let mut response =
                    RemotingCommand::response_for(&request, 0, Some(request.opaque.to_string()));
                match request.code {
                    DROP_IT => continue,
                    LARGE => response.body = Bytes::from(vec![0xAB; LARGE_BODY]),
                    _ => {}
                }
                responder.send(response);
            }
        }
    });
    tx
}

/// A server on its own thread answering through `answerer(batch)`; returns its address.
fn server(batch: usize) -> SocketAddr {
    let to_answerer = answerer(batch);
    common::serve(move || HandOff { to_answerer }, MAX_FRAME)
}

fn request(code: i32, opaque: i32) -> Vec<u8> {
    let mut request = RemotingCommand::new_request(code);
    request.opaque = opaque;
    let mut frame = BytesMut::new();
    encode_frame(&request, &mut frame);
    frame.to_vec()
}

/// Reads `count` whole responses.
fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<RemotingCommand> {
    let mut pending = BytesMut::new();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while got.len() < count {
        if let Some(response) = decode_frame(&mut pending, MAX_FRAME).unwrap() {
            got.push(response);
            continue;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "connection closed after {} of {count} responses",
            got.len()
        );
        pending.extend_from_slice(&chunk[..n]);
    }
    assert!(pending.is_empty(), "bytes after the last response");
    got
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn one_request_at_a_time_is_answered_by_the_answering_thread_itself() {
    let mut stream = connect(server(1));
    let before = direct_writes();
    for opaque in 1..=20 {
        stream.write_all(&request(10, opaque)).unwrap();
        let response = read_responses(&mut stream, 1).remove(0);
        assert_eq!(response.opaque, opaque);
        assert_eq!(
            response.remark.as_deref(),
            Some(opaque.to_string().as_str())
        );
    }
    // The count is bumped after the write returns: the client may read the reply first.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while direct_writes() - before < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        direct_writes() - before >= 20,
        "replies written directly: {}",
        direct_writes() - before
    );
}

#[test]
fn pipelined_requests_all_get_their_own_reply_whichever_way_it_went() {
    let mut stream = connect(server(50));
    let mut frames = Vec::new();
    for opaque in 1..=200 {
        frames.extend(request(10, opaque));
    }
    stream.write_all(&frames).unwrap();
    let mut opaques: Vec<i32> = read_responses(&mut stream, 200)
        .iter()
        .map(|response| {
            assert_eq!(response.remark, Some(response.opaque.to_string()));
            response.opaque
        })
        .collect();
    opaques.sort();
    assert_eq!(opaques, (1..=200).collect::<Vec<_>>());
}

#[test]
fn a_reply_larger_than_the_socket_buffer_arrives_whole_and_later_ones_after_it() {
    let mut stream = connect(server(1));
    stream.write_all(&request(LARGE, 1)).unwrap();
    // Not read yet: the kernel takes part of the large reply; the rest waits for the writer.
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(&request(10, 2)).unwrap();
    let responses = read_responses(&mut stream, 2);
    assert_eq!(
        responses[0].opaque, 1,
        "the large reply is not cut by the next one"
    );
    assert_eq!(responses[0].body.len(), LARGE_BODY);
    assert!(responses[0].body.iter().all(|&b| b == 0xAB));
    assert_eq!(responses[1].opaque, 2);
}

#[test]
fn a_responder_dropped_unused_answers_with_its_fallback() {
    let mut stream = connect(server(1));
    stream.write_all(&request(DROP_IT, 5)).unwrap();
    let response = read_responses(&mut stream, 1).remove(0);
    assert_eq!(response.opaque, 5);
    assert_eq!(response.code, 2);
    assert_eq!(response.remark.as_deref(), Some("dropped"));
}
