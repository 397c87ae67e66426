//! A `RemotingClient` dropped or closed while its server is silent lets go of the
//! connection: its reader task ends and the socket closes, so the silent peer's writes
//! are refused instead of being read by a task nobody owns.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmq_net::RemotingClient;

/// Well above the few milliseconds a closed socket takes to be refused on loopback.
const PROMPT: Duration = Duration::from_secs(3);

/// A server that never answers: it waits for the client's end of stream, then writes the
/// start of a frame that never completes (a client still reading keeps waiting for its
/// end) until a write is refused (the client's socket is closed). `Ok(how long after EOF)`, or `Err`
/// when writes were still accepted after `PROMPT`.
fn silent_peer(listener: TcpListener) -> std::thread::JoinHandle<Result<Duration, String>> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(PROMPT)).unwrap();
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) => return Err(format!("no end of stream from the client: {error}")),
            }
        }
        let eof = Instant::now();
        // The length prefix of a 1 MiB frame, then its body, a little at a time.
        let mut chunk: Vec<u8> = (1u32 << 20).to_be_bytes().to_vec();
        while eof.elapsed() < PROMPT {
            if stream.write_all(&chunk).is_err() {
                return Ok(eof.elapsed());
            }
            chunk = vec![0u8; 64];
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "the client's socket still reads {PROMPT:?} after it was let go"
        ))
    })
}

/// Runs `let_go` on a client connected to a silent peer, keeping the runtime turning (and
/// what `let_go` kept alive) until the peer has its answer.
fn peer_after(
    let_go: fn(Rc<RemotingClient>) -> Option<Rc<RemotingClient>>,
) -> Result<Duration, String> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = silent_peer(listener);
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let watcher = std::thread::spawn(move || {
        let outcome = peer.join().unwrap();
        finished.store(true, Ordering::Release);
        outcome
    });
    rmq_net::rt::block_on(async move {
        let client = RemotingClient::connect(&addr, Duration::from_secs(5))
            .await
            .unwrap();
        let _kept = let_go(client);
        while !done.load(Ordering::Acquire) {
            rmq_net::rt::sleep(Duration::from_millis(10)).await;
        }
    })
    .unwrap();
    watcher.join().unwrap()
}

#[test]
fn a_client_dropped_while_its_peer_is_silent_closes_its_socket() {
    let took = peer_after(|client| {
        drop(client);
        None
    })
    .expect("socket closed");
    assert!(took < PROMPT, "{took:?}");
}

#[test]
fn a_client_closed_while_its_peer_is_silent_closes_its_socket() {
    let took = peer_after(|client| {
        client.close();
        Some(client)
    })
    .expect("socket closed");
    assert!(took < PROMPT, "{took:?}");
}
