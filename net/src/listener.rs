//! Listening sockets shared by all cores through `SO_REUSEPORT`.
//!
//! Each core binds its own socket to the same address; the kernel spreads incoming
//! connections across them, so accepting needs no cross-core hand-off.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::NetError;

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

/// Checks that nobody else listens on `addr` before the cores bind it with
/// `SO_REUSEPORT` (which would otherwise silently share the port with a stale process
/// of the same user).
pub fn ensure_port_free(addr: SocketAddr) -> Result<(), NetError> {
    let probe =
        std::net::TcpListener::bind(addr).map_err(|source| NetError::Bind { addr, source })?;
    drop(probe);
    Ok(())
}
