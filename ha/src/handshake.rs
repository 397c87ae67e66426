//! The handshake that opens one shard's replication stream (rmq-fast's own; Java slaves are
//! not supported).
//!
//! Slave → master, [`HELLO_LEN`] bytes, big-endian:
//! `u32 magic | u32 version | u32 shard | u32 shardCount | u64 segmentSize | i64 slaveOffset`
//! (`slaveOffset` = the slave's max physical offset of that shard).
//!
//! Master → slave, [`WELCOME_LEN`] bytes:
//! `u32 magic | u32 status | u32 shardCount | u64 segmentSize | i64 masterEnd | i64 start`
//!
//! After an `Ok` welcome the master streams `start..` as transfer frames (see `frame`) and the
//! slave answers with 8-byte reports. Any other status closes the connection: after
//! `SlaveAhead` the slave truncates its log to `masterEnd` and says hello again at once;
//! after the others it logs the reason and retries later (a mismatch never streams a single
//! byte, because offsets would mean different things on both sides).

use bytes::{Buf, BufMut, BytesMut};

/// "RMQH".
pub const MAGIC: u32 = 0x524D_5148;
pub const VERSION: u32 = 1;
pub const HELLO_LEN: usize = 32;
pub const WELCOME_LEN: usize = 36;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub shard: u32,
    pub shard_count: u32,
    pub segment_size: u64,
    pub slave_offset: i64,
}

/// Why a master accepts or refuses a slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// The stores were created with different shard counts.
    ShardCountMismatch = 1,
    /// Different `mappedFileSizeCommitLog`: physical offsets would not line up.
    SegmentSizeMismatch = 2,
    /// The slave needs bytes the master no longer has (deleted segments).
    OffsetUnavailable = 3,
    /// The slave holds bytes past the master's end: it must truncate to `master_end`.
    SlaveAhead = 4,
    /// Unknown protocol version or shard number.
    BadRequest = 5,
}

impl Status {
    fn from_code(code: u32) -> Option<Status> {
        [
            Status::Ok,
            Status::ShardCountMismatch,
            Status::SegmentSizeMismatch,
            Status::OffsetUnavailable,
            Status::SlaveAhead,
            Status::BadRequest,
        ]
        .into_iter()
        .find(|s| *s as u32 == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    pub status: Status,
    pub shard_count: u32,
    pub segment_size: u64,
    /// The master's end offset (every byte below is in its log): a slave ahead of it cuts its
    /// log back to it.
    pub master_end: i64,
    /// First offset the master streams (the slave's offset when `Ok`).
    pub start: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("not an rmq-fast replication peer (magic {0:#010x})")]
    BadMagic(u32),
    #[error("replication protocol version {0} not supported (this is {VERSION})")]
    BadVersion(u32),
    #[error("unknown welcome status {0}")]
    BadStatus(u32),
    #[error("handshake needs {need} bytes, got {have}")]
    Short { need: usize, have: usize },
}

pub fn encode_hello(hello: &Hello) -> BytesMut {
    let mut out = BytesMut::with_capacity(HELLO_LEN);
    out.put_u32(MAGIC);
    out.put_u32(VERSION);
    out.put_u32(hello.shard);
    out.put_u32(hello.shard_count);
    out.put_u64(hello.segment_size);
    out.put_i64(hello.slave_offset);
    assert_eq!(out.len(), HELLO_LEN);
    out
}

pub fn decode_hello(mut src: &[u8]) -> Result<Hello, HandshakeError> {
    check_len(src, HELLO_LEN)?;
    check_magic(src.get_u32())?;
    let version = src.get_u32();
    if version != VERSION {
        return Err(HandshakeError::BadVersion(version));
    }
    Ok(Hello {
        shard: src.get_u32(),
        shard_count: src.get_u32(),
        segment_size: src.get_u64(),
        slave_offset: src.get_i64(),
    })
}

pub fn encode_welcome(welcome: &Welcome) -> BytesMut {
    let mut out = BytesMut::with_capacity(WELCOME_LEN);
    out.put_u32(MAGIC);
    out.put_u32(welcome.status as u32);
    out.put_u32(welcome.shard_count);
    out.put_u64(welcome.segment_size);
    out.put_i64(welcome.master_end);
    out.put_i64(welcome.start);
    assert_eq!(out.len(), WELCOME_LEN);
    out
}

pub fn decode_welcome(mut src: &[u8]) -> Result<Welcome, HandshakeError> {
    check_len(src, WELCOME_LEN)?;
    check_magic(src.get_u32())?;
    let code = src.get_u32();
    let status = Status::from_code(code).ok_or(HandshakeError::BadStatus(code))?;
    Ok(Welcome {
        status,
        shard_count: src.get_u32(),
        segment_size: src.get_u64(),
        master_end: src.get_i64(),
        start: src.get_i64(),
    })
}

fn check_len(src: &[u8], need: usize) -> Result<(), HandshakeError> {
    if src.len() < need {
        return Err(HandshakeError::Short {
            need,
            have: src.len(),
        });
    }
    Ok(())
}

fn check_magic(magic: u32) -> Result<(), HandshakeError> {
    if magic != MAGIC {
        return Err(HandshakeError::BadMagic(magic));
    }
    Ok(())
}

/// The master's answer to a hello, given its shard's geometry and offsets. Pure, so every
/// refusal is unit-tested.
pub fn answer(
    hello: &Hello,
    shard_count: u32,
    segment_size: u64,
    oldest: i64,
    end: i64,
) -> Welcome {
    let status = if hello.shard_count != shard_count {
        Status::ShardCountMismatch
    } else if hello.segment_size != segment_size {
        Status::SegmentSizeMismatch
    } else if hello.shard >= shard_count {
        Status::BadRequest
    } else if hello.slave_offset > end {
        Status::SlaveAhead
    } else if hello.slave_offset < oldest {
        Status::OffsetUnavailable
    } else {
        Status::Ok
    };
    Welcome {
        status,
        shard_count,
        segment_size,
        master_end: end,
        start: hello.slave_offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: u64 = 1 << 30;

    fn hello(offset: i64) -> Hello {
        Hello {
            shard: 1,
            shard_count: 4,
            segment_size: SEGMENT,
            slave_offset: offset,
        }
    }

    #[test]
    fn hello_and_welcome_round_trip() {
        let sent = hello(1 << 56 | 4096);
        assert_eq!(decode_hello(&encode_hello(&sent)), Ok(sent));
        let welcome = answer(&sent, 4, SEGMENT, 1 << 56, 1 << 56 | 8192);
        assert_eq!(welcome.status, Status::Ok);
        assert_eq!(welcome.start, sent.slave_offset);
        assert_eq!(decode_welcome(&encode_welcome(&welcome)), Ok(welcome));
    }

    #[test]
    fn mismatches_are_refused_before_any_byte_streams() {
        let base = 1i64 << 56;
        let status = |h: Hello| answer(&h, 4, SEGMENT, base, base + 100).status;
        assert_eq!(
            status(Hello {
                shard_count: 2,
                ..hello(base)
            }),
            Status::ShardCountMismatch
        );
        assert_eq!(
            status(Hello {
                segment_size: 1 << 20,
                ..hello(base)
            }),
            Status::SegmentSizeMismatch
        );
        assert_eq!(
            status(Hello {
                shard: 9,
                shard_count: 4,
                ..hello(base)
            }),
            Status::BadRequest
        );
        assert_eq!(status(hello(base + 101)), Status::SlaveAhead);
        assert_eq!(status(hello(base - 1)), Status::OffsetUnavailable);
        assert_eq!(status(hello(base + 100)), Status::Ok);
    }

    #[test]
    fn garbage_is_rejected() {
        let mut bytes = encode_hello(&hello(0));
        bytes[0] = 0;
        assert!(matches!(
            decode_hello(&bytes),
            Err(HandshakeError::BadMagic(_))
        ));
        let mut bytes = encode_hello(&hello(0));
        bytes[7] = 9;
        assert_eq!(decode_hello(&bytes), Err(HandshakeError::BadVersion(9)));
        assert!(matches!(
            decode_hello(&bytes[..10]),
            Err(HandshakeError::Short { .. })
        ));
        let mut welcome = encode_welcome(&answer(&hello(0), 4, SEGMENT, 0, 0));
        welcome[7] = 77;
        assert_eq!(decode_welcome(&welcome), Err(HandshakeError::BadStatus(77)));
    }
}
