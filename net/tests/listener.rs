//! A server's listening socket is its own: a second server on the same address (started at
//! the same instant, or later) fails with `AddrInUse` at once, the cores' descriptors of
//! the one socket all accept, and a closed listener's port binds again.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rmq_net::NetError;
use rmq_net::listener::{PORT_RELEASE_PATIENCE, bind_exclusive, claim, listen, share};

/// A loopback port the kernel reports free.
fn free_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

#[test]
fn servers_started_at_the_same_instant_on_one_port_one_listens() {
    const SERVERS: usize = 4;
    for _round in 0..20 {
        let addr = free_addr();
        let barrier = Arc::new(Barrier::new(SERVERS));
        let started = Instant::now();
        let results: Vec<_> = (0..SERVERS)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    bind_exclusive(addr, PORT_RELEASE_PATIENCE)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        let listening: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(listening.len(), 1, "{results:?}");
        for result in &results {
            match result {
                Ok(_) => {}
                Err(NetError::AddrInUse { addr: at, .. }) => assert_eq!(*at, addr),
                Err(other) => panic!("not AddrInUse: {other}"),
            }
        }
        // The port is held by a live process (this one): no waiting for its release.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the losers waited {:?}",
            started.elapsed()
        );
        let listener = listening[0].try_clone().unwrap();
        listener.set_nonblocking(false).unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (_served, from) = listener.accept().unwrap();
        assert_eq!(from, client.local_addr().unwrap());
    }
}

/// Two servers may both claim (bind) the address before either listens: only the first
/// to listen gets the port.
#[test]
fn of_two_claims_only_the_first_to_listen_gets_the_port() {
    let addr = free_addr();
    let first = claim(addr, Duration::ZERO).unwrap();
    let second = claim(addr, Duration::ZERO).unwrap();
    let listening = listen(first).unwrap();
    match listen(second) {
        Err(NetError::AddrInUse { .. }) => {}
        other => panic!("the second listen: {other:?}"),
    }
    // A claim after that fails at once.
    match claim(addr, PORT_RELEASE_PATIENCE) {
        Err(error @ NetError::AddrInUse { .. }) => {
            assert!(error.to_string().contains("already in use"), "{error}");
        }
        other => panic!("a late claim: {other:?}"),
    }
    drop(listening);
    listen(claim(addr, Duration::ZERO).unwrap()).expect("the port is free once closed");
}

#[test]
fn every_core_descriptor_accepts_and_the_port_is_freed_with_the_last() {
    let addr = free_addr();
    let mut cores = share(bind_exclusive(addr, Duration::ZERO).unwrap(), 3).unwrap();
    assert_eq!(cores.len(), 3);
    for core in &mut cores {
        core.set_nonblocking(false).unwrap();
        let client = TcpStream::connect(addr).unwrap();
        let (_served, from) = core.accept().unwrap();
        assert_eq!(from, client.local_addr().unwrap());
    }
    let last = cores.pop().unwrap();
    drop(cores);
    assert!(matches!(
        bind_exclusive(addr, Duration::ZERO),
        Err(NetError::AddrInUse { .. })
    ));
    drop(last);
    bind_exclusive(addr, Duration::ZERO).expect("the port is free once every core closed it");
}

/// A listener registered with a runtime and accepting when it is dropped (a server
/// stopped in-process) frees the port for the next start in the same process.
#[test]
fn a_stopped_server_listener_binds_again_in_the_same_process() {
    let addr = free_addr();
    for _start in 0..3 {
        let listener = bind_exclusive(addr, PORT_RELEASE_PATIENCE).expect("bind");
        rmq_net::rt::block_on(async move {
            let listener = rmq_net::listener::register(listener).unwrap();
            let stop = std::rc::Rc::new(std::cell::Cell::new(false));
            let stopping = stop.clone();
            let accepting = rmq_net::rt::spawn(rmq_net::listener::accept_until(
                listener,
                move || stopping.get(),
                |_stream| {},
            ));
            rmq_net::rt::sleep(Duration::from_millis(50)).await;
            stop.set(true);
            accepting.await.unwrap();
        })
        .unwrap();
    }
}
