//! Free TCP ports for tests that start servers.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// A port the kernel reports free on 127.0.0.1 (another process may take it before use).
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Two free ports below the ephemeral range (listenPort and the HA port after it), distinct
/// for each call in this process: brokers bind with SO_REUSEPORT, so two brokers on one port
/// would both start and share the connections.
///
/// # Panics
/// When the process's range of pairs is used up.
pub fn free_port_pair() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 2_000) as u16 * 4;
    loop {
        let port = base + NEXT.fetch_add(2, Ordering::Relaxed);
        assert!(port < 32_000, "no free port pair");
        let free = |p: u16| TcpListener::bind(("0.0.0.0", p)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
}
