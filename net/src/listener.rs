//! Listening sockets shared by all cores through `SO_REUSEPORT`.
//!
//! Each core binds its own socket to the same address; the kernel spreads incoming
//! connections across them, so accepting needs no cross-core hand-off.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::NetError;

/// A listening socket registered with this core's runtime.
pub type TcpListener = compio::net::TcpListener;
/// A connection on this core's runtime.
pub type TcpStream = compio::net::TcpStream;

/// Registers a bound, non-blocking std listener (e.g. from [`bind_reuseport`]) with this
/// core's runtime.
///
/// # Errors
/// The runtime refused the socket.
pub fn register(listener: std::net::TcpListener) -> std::io::Result<TcpListener> {
    TcpListener::from_std(listener)
}

/// Binds a listening socket with `SO_REUSEADDR` and `SO_REUSEPORT` set.
///
/// # Errors
/// `NetError::Bind` when the address is in use by another process or not local.
pub fn bind_reuseport(addr: SocketAddr) -> Result<std::net::TcpListener, NetError> {
    let bind_error = |source| NetError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_error)?;
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.set_reuse_port(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    socket.listen(1024).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    Ok(socket.into())
}

/// How long start-up waits for a port still held by a process that just died.
pub const PORT_RELEASE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(15);

/// Checks that nobody else listens on `addr` before the cores bind it with
/// `SO_REUSEPORT` (which would otherwise silently share the port with a stale process
/// of the same user).
///
/// A process killed with `kill -9` can hold its listening socket for a moment after it
/// exits: io_uring releases the files of in-flight operations (our pending accepts)
/// asynchronously. So a busy port is retried for up to `PORT_RELEASE_PATIENCE`.
pub fn ensure_port_free(addr: SocketAddr) -> Result<(), NetError> {
    let deadline = std::time::Instant::now() + PORT_RELEASE_PATIENCE;
    let mut warned = false;
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(probe) => {
                drop(probe);
                return Ok(());
            }
            Err(source)
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                if !warned {
                    tracing::warn!(%addr, "port busy, waiting for it to be released");
                    warned = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(source) => return Err(NetError::Bind { addr, source }),
        }
    }
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
