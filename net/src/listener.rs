//! The listening socket of a server: one socket per address, bound exclusively, shared by
//! the server's cores.
//!
//! A server (broker, name server, bench null broker) binds one socket to its address with
//! `SO_REUSEADDR` but without `SO_REUSEPORT`, so a second process on the same address fails
//! with "address in use", as Apache RocketMQ's servers do, even when both start at the same
//! instant: two sockets may both be bound, but the kernel lets only one of them listen.
//! Each core accepts on its own duplicate of the socket ([`share`]); `balance` then hands the
//! connection to the least-loaded core. The port is released when the last duplicate
//! closes, i.e. when the cores stop, so a server restarted in the same process binds again.
//!
//! Binding is split in two for servers that must not accept before they are ready (the
//! broker recovers its store first): [`claim`] binds (and fails at once beside a listening
//! socket), [`listen`] starts listening (and fails if another process started listening on
//! the address in between). [`bind_exclusive`] does both.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::NetError;

/// A listening socket registered with this core's runtime.
pub type TcpListener = compio::net::TcpListener;
/// A connection on this core's runtime.
pub type TcpStream = compio::net::TcpStream;

/// How long start-up waits for a port held by a listening socket that no live process owns.
///
/// A process killed with `kill -9` can hold its listening socket for a moment after it
/// exits: io_uring releases the files of in-flight operations (our pending accepts)
/// asynchronously. The same holds for a server stopped and started again in one process.
/// A port another live process listens on fails at once.
pub const PORT_RELEASE_PATIENCE: Duration = Duration::from_secs(15);

/// The server's socket, bound to its address but not yet listening (see [`listen`]).
#[derive(Debug)]
pub struct Claim {
    addr: SocketAddr,
    socket: Socket,
}

impl Claim {
    /// The address the socket is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A duplicate of the socket (the same socket, another descriptor), for another core.
    ///
    /// # Errors
    /// `NetError::Bind` when the descriptor cannot be duplicated.
    pub fn try_clone(&self) -> Result<Claim, NetError> {
        let socket = self.socket.try_clone().map_err(|source| NetError::Bind {
            addr: self.addr,
            source,
        })?;
        Ok(Claim {
            addr: self.addr,
            socket,
        })
    }
}

/// Binds a socket to `addr` for a server that listens on it later.
///
/// While the port is busy and no live process owns the busy socket (see
/// [`PORT_RELEASE_PATIENCE`]), the bind is retried for up to `patience`.
///
/// # Errors
/// `NetError::AddrInUse` when another socket listens on the address, `NetError::Bind` when
/// the address is not local or the socket cannot be made.
pub fn claim(addr: SocketAddr, patience: Duration) -> Result<Claim, NetError> {
    let deadline = Instant::now() + patience;
    let mut warned = false;
    loop {
        match try_claim(addr) {
            Err(NetError::AddrInUse { .. })
                if Instant::now() < deadline && !listened_on_by_live_process(addr.port()) =>
            {
                if !warned {
                    tracing::warn!(%addr, "port busy, waiting for it to be released");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            claimed => return claimed,
        }
    }
}

fn try_claim(addr: SocketAddr) -> Result<Claim, NetError> {
    let failed = |source: std::io::Error| bind_error(addr, source);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(failed)?;
    // Connections of a previous run in TIME_WAIT, and the test's placeholder sockets
    // (test-support's `HeldPorts`, bound and never listening), do not block the bind.
    socket.set_reuse_address(true).map_err(failed)?;
    socket.bind(&addr.into()).map_err(failed)?;
    Ok(Claim { addr, socket })
}

/// Starts listening on a claimed socket; several duplicates of one socket may each call it.
///
/// # Errors
/// `NetError::AddrInUse` when another socket started listening on the address since the
/// claim (two servers started at the same instant: only the first listens).
pub fn listen(claim: Claim) -> Result<std::net::TcpListener, NetError> {
    let failed = |source: std::io::Error| bind_error(claim.addr, source);
    claim.socket.listen(1024).map_err(failed)?;
    claim.socket.set_nonblocking(true).map_err(failed)?;
    Ok(claim.socket.into())
}

/// [`claim`] then [`listen`]: a server's listening socket on `addr`, which no other
/// process can listen on while it is open.
///
/// # Errors
/// As [`claim`] and [`listen`].
pub fn bind_exclusive(
    addr: SocketAddr,
    patience: Duration,
) -> Result<std::net::TcpListener, NetError> {
    listen(claim(addr, patience)?)
}

/// `count` descriptors of `listener`'s one socket, one for each core.
///
/// # Errors
/// `NetError::Bind` when a descriptor cannot be duplicated.
pub fn share(
    listener: std::net::TcpListener,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, NetError> {
    let addr = listener.local_addr().map_err(|source| NetError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let mut shared = Vec::with_capacity(count);
    for _ in 1..count {
        shared.push(
            listener
                .try_clone()
                .map_err(|source| NetError::Bind { addr, source })?,
        );
    }
    if count > 0 {
        shared.push(listener);
    }
    Ok(shared)
}

fn bind_error(addr: SocketAddr, source: std::io::Error) -> NetError {
    match source.kind() {
        std::io::ErrorKind::AddrInUse => NetError::AddrInUse { addr, source },
        _ => NetError::Bind { addr, source },
    }
}

/// Registers a listening, non-blocking std listener (from [`bind_exclusive`], [`listen`] or
/// [`share`]) with this core's runtime.
///
/// # Errors
/// The runtime refused the socket.
pub fn register(listener: std::net::TcpListener) -> std::io::Result<TcpListener> {
    TcpListener::from_std(listener)
}

/// Whether a live process whose descriptors this process may read (its own, the same
/// user's; all for root) has a socket listening on `port`: then waiting for the port is
/// pointless. A socket nobody has open (still held by a dead process's io_uring) is not.
fn listened_on_by_live_process(port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    processes
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(is_pid))
        .filter_map(|entry| std::fs::read_dir(entry.path().join("fd")).ok())
        .flat_map(|fds| fds.flatten())
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| socket_inode(target.to_str()?))
        .any(|inode| inodes.contains(&inode))
}

fn is_pid(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// "socket:[12345]" -> 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inodes of the TCP sockets listening on `port` (any address), from /proc/net/tcp{,6}.
fn listening_inodes(port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if *state == LISTEN
                && local_port == Some(port)
                && let Ok(inode) = inode.parse()
            {
                inodes.push(inode);
            }
        }
    }
    inodes
}

/// Accepts connections on `listener`, handing each to `on_accept`, until `stopping()`.
///
/// The accept itself is never cancelled on a timer: cancelling an in-flight io_uring
/// accept can race with its completion and drop a connection the kernel already
/// accepted (the peer then sees it closed at once). So the accept loop runs in its own
/// task, and only shutdown cancels it.
pub async fn accept_until<F>(
    listener: compio::net::TcpListener,
    stopping: impl Fn() -> bool,
    mut on_accept: F,
) where
    F: FnMut(compio::net::TcpStream) + 'static,
{
    let accepting = crate::rt::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => on_accept(stream),
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    compio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
    while !stopping() {
        compio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(accepting);
}
