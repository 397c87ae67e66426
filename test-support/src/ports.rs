//! Free TCP ports for tests that start servers, and ports held for a test's lifetime
//! (`HeldPorts`).

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
/// for each call in this process: a broker started on a port another one listens on fails to
/// start.
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

/// Consecutive ports held for as long as this value lives, so that no other process (another
/// test binary, a concurrent run of the same test) is handed one of them, and no outgoing
/// connection takes one as its local port while the server meant for it is down.
///
/// The first port is chosen by the kernel (`bind` to port 0, in the ephemeral range), the
/// others are the ports after it, each checked unbound (a `bind` without `SO_REUSEADDR` fails
/// beside any socket on the port). Every socket is bound to 0.0.0.0 with `SO_REUSEADDR` and
/// never listens: a server started on the port (`SO_REUSEADDR`) binds beside it, while the
/// kernel hands a bound port to no other `bind(0)` and to no `connect`.
///
/// Fixed port ranges checked free and then released (what the controller and failover tests
/// used) are not enough: two runs check the same port before either server binds it, and the
/// second server then fails to start with "address in use".
#[derive(Debug)]
pub struct HeldPorts {
    first: u16,
    _sockets: Vec<socket2::Socket>,
}

impl HeldPorts {
    /// `count` consecutive ports (at least one).
    ///
    /// # Panics
    /// When no such run of ports is found in 1000 attempts.
    pub fn take(count: u16) -> HeldPorts {
        assert!(count >= 1, "at least one port");
        for _ in 0..1000 {
            let Some(first) = hold(0) else { continue };
            let port = first
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map(|a| a.port());
            let Some(port) = port.filter(|p| p.checked_add(count - 1).is_some()) else {
                continue;
            };
            let rest: Option<Vec<socket2::Socket>> = (1..count).map(|i| hold(port + i)).collect();
            if let Some(rest) = rest {
                let mut sockets = vec![first];
                sockets.extend(rest);
                return HeldPorts {
                    first: port,
                    _sockets: sockets,
                };
            }
        }
        panic!("no {count} consecutive free ports");
    }

    /// The first port.
    pub fn port(&self) -> u16 {
        self.first
    }
}

/// A socket bound to `port` (0: one the kernel picks) on 0.0.0.0, without `SO_REUSEADDR` (so
/// the bind fails beside any socket already on the port), then given `SO_REUSEADDR` (so the
/// server meant for the port binds beside it).
fn hold(port: u16) -> Option<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    let addr: std::net::SocketAddr = ([0, 0, 0, 0], port).into();
    socket.bind(&addr.into()).ok()?;
    socket.set_reuse_address(true).ok()?;
    Some(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a bind without `SO_REUSEADDR` (what `HeldPorts::take` does to check a port)
    /// succeeds on `port`.
    fn unbound(port: u16) -> bool {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let addr: std::net::SocketAddr = ([0, 0, 0, 0], port).into();
        socket.bind(&addr.into()).is_ok()
    }

    #[test]
    fn held_ports_are_bound_until_dropped_and_never_handed_out_twice() {
        let held: Vec<HeldPorts> = (0..50).map(|_| HeldPorts::take(2)).collect();
        let mut ports: Vec<u16> = held.iter().flat_map(|h| [h.port(), h.port() + 1]).collect();
        assert!(ports.iter().all(|&p| !unbound(p)), "{ports:?}");
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 100, "a port handed out twice");
        let port = held[0].port();
        drop(held);
        assert!(unbound(port) && unbound(port + 1));
    }

    /// A server's exclusive listener (`rmq_net::listener::bind_exclusive`, `SO_REUSEADDR`) and
    /// a plain std listener (the controller's and the test servers') bind beside the holding
    /// sockets.
    #[test]
    fn the_server_meant_for_a_held_port_binds_it() {
        let pair = HeldPorts::take(2);
        for port in [pair.port(), pair.port() + 1] {
            let addr: std::net::SocketAddr = ([0, 0, 0, 0], port).into();
            let listener =
                rmq_net::listener::bind_exclusive(addr, std::time::Duration::ZERO).unwrap();
            listener.set_nonblocking(false).unwrap();
            let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (_accepted, from) = listener.accept().unwrap();
            assert_eq!(from, client.local_addr().unwrap());
        }
        let single = HeldPorts::take(1);
        let listener = TcpListener::bind(("0.0.0.0", single.port())).unwrap();
        std::net::TcpStream::connect(("127.0.0.1", single.port())).unwrap();
        listener.accept().unwrap();
    }
}
