//! Errors of the transport layer.

use std::net::SocketAddr;

/// What can go wrong talking to a peer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("i/o error with {peer}: {source}")]
    Io {
        peer: SocketAddr,
        source: std::io::Error,
    },
    #[error("request to {peer} timed out after {millis} ms")]
    Timeout { peer: SocketAddr, millis: u64 },
    #[error("connection to {peer} closed")]
    Closed { peer: SocketAddr },
    #[error("bad frame from {peer}: {source}")]
    Frame {
        peer: SocketAddr,
        source: rmq_core::remoting::FrameError,
    },
    #[error(
        "address {addr} already in use: another process (a broker or name server already \
         running?) listens on this port"
    )]
    AddrInUse {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
