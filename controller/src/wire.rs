//! Remoting frames over tokio sockets: the one wire format of the controller port.
//!
//! Clients (brokers, mqadmin) speak the RocketMQ remoting protocol with the controller
//! request codes; raft peers use the same framing with the private code [`RAFT_RPC`] and a
//! JSON body, so one port serves both, as RocketMQ 5's DLedger controller does.
//!
//! # Cancel-safety
//! [`FrameReader::read`] keeps partial frames in its buffer, so a cancelled read loses
//! nothing; [`write_command`] is not cancel-safe (a cancelled write leaves half a frame:
//! the caller drops the connection).

use bytes::BytesMut;
use rmq_core::remoting::{
    DEFAULT_MAX_FRAME, FrameError, RemotingCommand, decode_frame, encode_frame,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Request code of raft RPC between controllers (outside RocketMQ's code space, which ends
/// below 10000).
pub const RAFT_RPC: i32 = 52001;

/// Buffered frame decoding from a byte stream.
pub struct FrameReader<R> {
    stream: R,
    buffer: BytesMut,
    max_frame: usize,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("connection closed")]
    Closed,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(stream: R) -> Self {
        Self {
            stream,
            buffer: BytesMut::with_capacity(8192),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    /// The next complete command.
    ///
    /// # Errors
    /// EOF ([`WireError::Closed`]), a socket error or an undecodable frame; the connection
    /// is unusable after any of them.
    pub async fn read(&mut self) -> Result<RemotingCommand, WireError> {
        loop {
            if let Some(command) = decode_frame(&mut self.buffer, self.max_frame)? {
                return Ok(command);
            }
            self.buffer.reserve(8192);
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Err(WireError::Closed);
            }
        }
    }
}

/// Writes one command as a frame.
///
/// # Errors
/// The socket failed; the connection is unusable.
pub async fn write_command<W: AsyncWrite + Unpin>(
    stream: &mut W,
    command: &RemotingCommand,
) -> Result<(), WireError> {
    let mut frame = BytesMut::new();
    encode_frame(command, &mut frame);
    stream.write_all(&frame).await?;
    Ok(())
}
