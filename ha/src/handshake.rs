//! The handshake that opens one shard's replication stream (rmq-fast's own; Java slaves are
//! not supported).
//!
//! Slave → master, [`HELLO_LEN`] bytes, big-endian:
//! `u32 magic | u32 version | u32 shard | u32 shardCount | u64 segmentSize | i64 slaveOffset |
//! i64 checkFrom | u32 checkCrc | u32 flags`
//! (`slaveOffset` = the slave's max physical offset of that shard; `checkCrc` = CRC32 of the
//! slave's log bytes `[checkFrom, slaveOffset)`, its tail, see [`check_from`]; `flags` was a
//! zero reserved field: bit 0, [`FLAG_EPOCHS`], is set by a controller-mode slave only).
//!
//! Master → slave, [`WELCOME_LEN`] bytes:
//! `u32 magic | u32 status | u32 shardCount | u64 segmentSize | i64 masterEnd | i64 start`
//!
//! Controller mode (issue 11, RocketMQ 5's AutoSwitch handshake): a slave with an epoch history
//! sets [`FLAG_EPOCHS`]; a master with one then sets [`STATUS_EPOCHS_FOLLOW`] in `status` and
//! sends its epoch history right after the welcome: `u32 count | count x (i32 epoch, i64
//! start)` (at most [`MAX_EPOCHS`]). Before it acts on the status, the slave cuts its log back
//! to the consistent point of both histories (`ShardStore::truncate_to_consistent_point`) and
//! says hello again; once accepted it mirrors the master's history as its log reaches each
//! entry. A classic peer neither sets nor sees either bit; a controller-mode slave refuses a
//! master that sends no history (it is not in controller mode) or whose newest epoch is older
//! than the one the controller named.
//!
//! After an `Ok` welcome the master streams `start..` as transfer frames (see `frame`) and the
//! slave answers with 8-byte reports. Any other status closes the connection: after
//! `SlaveAhead` the slave truncates its log to `masterEnd` and says hello again at once;
//! after `Diverged` (its tail differs from the master's bytes at the same offsets) it
//! truncates to `start` (a hint: the master's end when it started, or -1) or else to the start
//! of the segment holding its tail, and says hello again at once; after `StartAt` (the slave
//! is empty, its offset is the shard base, and the master's retention deleted the start of
//! the shard) the slave's empty log restarts at `start`, the start of the master's newest
//! segment (what RocketMQ 4.x does for a slave at offset 0), and says hello again at once;
//! after the others it logs the reason and retries later (a mismatch never streams a single
//! byte, because offsets would mean different things on both sides). A slave that is not
//! empty and needs bytes the master deleted (`OffsetUnavailable`, `start` = the master's
//! oldest offset) cannot catch up by itself: its operator must wipe its store.
//!
//! Why the tail check: the master ships *appended* bytes, so after a `kill -9` the slave may
//! hold bytes the master lost; when the restarted master appends past the slave's end before
//! the slave reconnects, comparing offsets alone would let the slave keep that stale tail (and
//! count it as replicated). Records carry their store timestamp and physical offset, so two
//! incarnations of the master never write the same bytes at one offset; a slave whose tail
//! matches the master's holds the master's log below it (every record there was written by
//! one incarnation together with everything before it).

use bytes::{Buf, BufMut, BytesMut};
use rmq_storage::EpochEntry;

/// "RMQH".
pub const MAGIC: u32 = 0x524D_5148;
pub const VERSION: u32 = 2;
pub const HELLO_LEN: usize = 48;
/// Longest tail a hello's checksum covers: twice RocketMQ's default maxMessageSize (4 MiB),
/// so it reaches back past the start of the last record even after a segment's zero fill.
pub const CHECK_WINDOW: i64 = 8 << 20;
pub const WELCOME_LEN: usize = 36;
/// Hello flag: the slave keeps an epoch history and wants the master's.
pub const FLAG_EPOCHS: u32 = 1;
/// Hello flags bits 8..32: a controller-mode slave's broker id (0: not given), so the master
/// can tell its sync-state-set members apart.
pub const SLAVE_ID_SHIFT: u32 = 8;
/// Largest broker id a hello carries.
pub const MAX_SLAVE_ID: i64 = (1 << 24) - 1;
/// Welcome status bit: the master's epoch history follows the welcome.
pub const STATUS_EPOCHS_FOLLOW: u32 = 0x100;
/// Most epoch entries a welcome may carry (a history grows by one per election).
pub const MAX_EPOCHS: usize = 1 << 16;
/// Bytes of one epoch entry on the wire.
pub const EPOCH_ENTRY_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub shard: u32,
    pub shard_count: u32,
    pub segment_size: u64,
    pub slave_offset: i64,
    /// Start of the tail the checksum covers (`slave_offset` when the log is empty).
    pub check_from: i64,
    /// CRC32 of the slave's log bytes `[check_from, slave_offset)`.
    pub check_crc: u32,
    /// [`FLAG_EPOCHS`] or 0.
    pub flags: u32,
}

impl Hello {
    /// A controller-mode slave asking for the master's epoch history.
    pub fn wants_epochs(&self) -> bool {
        self.flags & FLAG_EPOCHS != 0
    }

    /// The slave's controller broker id, when it gave one.
    pub fn slave_id(&self) -> Option<i64> {
        let id = i64::from(self.flags >> SLAVE_ID_SHIFT);
        (id > 0).then_some(id)
    }

    /// The flags of a controller-mode slave with broker id `id` (0 or out of range: none).
    pub fn controller_flags(id: i64) -> u32 {
        let id = if (1..=MAX_SLAVE_ID).contains(&id) {
            id as u32
        } else {
            0
        };
        FLAG_EPOCHS | (id << SLAVE_ID_SHIFT)
    }
}

/// Where the checksummed tail of a log ending at `end` starts: [`CHECK_WINDOW`] before it,
/// but never before the segment holding its last byte (`segment_start_of_last`) nor before
/// the oldest offset.
pub fn check_from(end: i64, segment_start_of_last: i64, oldest: i64) -> i64 {
    if end <= oldest {
        return end;
    }
    (end - CHECK_WINDOW).max(segment_start_of_last).max(oldest)
}

/// Why a master accepts or refuses a slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// The stores were created with different shard counts.
    ShardCountMismatch = 1,
    /// Different `mappedFileSizeCommitLog`: physical offsets would not line up.
    SegmentSizeMismatch = 2,
    /// The slave needs bytes the master no longer has (deleted segments) and its log is not
    /// empty: it cannot resync by itself (`start` is the master's oldest offset).
    OffsetUnavailable = 3,
    /// The slave holds bytes past the master's end: it must truncate to `master_end`.
    SlaveAhead = 4,
    /// Unknown protocol version or shard number.
    BadRequest = 5,
    /// The slave's tail differs from the master's bytes at the same offsets (it holds what a
    /// crashed master lost, and the restarted master appended other records there): it must
    /// truncate (to `start` when that is a hint, see the module docs).
    Diverged = 6,
    /// The slave's log is empty (its offset is the shard base) but the master no longer has
    /// the start of the shard: the slave's log must begin at `start`, the start of the
    /// master's newest segment (RocketMQ: a slave at offset 0 starts at the master's last
    /// file), and it says hello again from there.
    StartAt = 7,
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
            Status::Diverged,
            Status::StartAt,
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
    /// First offset the master streams (the slave's offset when `Ok`); with `Diverged`, where
    /// the slave should cut its log (-1: no hint); with `StartAt`, where an empty slave's log
    /// must begin; with `OffsetUnavailable`, the master's oldest offset.
    pub start: i64,
    /// The master's epoch history follows (controller mode, see the module docs).
    pub epochs_follow: bool,
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
    #[error("the master announced {0} epoch entries (at most {MAX_EPOCHS})")]
    TooManyEpochs(usize),
}

pub fn encode_hello(hello: &Hello) -> BytesMut {
    let mut out = BytesMut::with_capacity(HELLO_LEN);
    out.put_u32(MAGIC);
    out.put_u32(VERSION);
    out.put_u32(hello.shard);
    out.put_u32(hello.shard_count);
    out.put_u64(hello.segment_size);
    out.put_i64(hello.slave_offset);
    out.put_i64(hello.check_from);
    out.put_u32(hello.check_crc);
    out.put_u32(hello.flags);
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
        check_from: src.get_i64(),
        check_crc: src.get_u32(),
        flags: src.get_u32(),
    })
}

pub fn encode_welcome(welcome: &Welcome) -> BytesMut {
    let mut out = BytesMut::with_capacity(WELCOME_LEN);
    out.put_u32(MAGIC);
    let follow = if welcome.epochs_follow {
        STATUS_EPOCHS_FOLLOW
    } else {
        0
    };
    out.put_u32(welcome.status as u32 | follow);
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
    let raw = src.get_u32();
    let code = raw & !STATUS_EPOCHS_FOLLOW;
    let status = Status::from_code(code).ok_or(HandshakeError::BadStatus(raw))?;
    Ok(Welcome {
        status,
        shard_count: src.get_u32(),
        segment_size: src.get_u64(),
        master_end: src.get_i64(),
        start: src.get_i64(),
        epochs_follow: raw & STATUS_EPOCHS_FOLLOW != 0,
    })
}

/// The epoch history block that follows a welcome with `epochs_follow`.
pub fn encode_epochs(entries: &[EpochEntry]) -> BytesMut {
    assert!(entries.len() <= MAX_EPOCHS, "epoch history too long");
    let mut out = BytesMut::with_capacity(4 + entries.len() * EPOCH_ENTRY_LEN);
    out.put_u32(entries.len() as u32);
    for entry in entries {
        out.put_i32(entry.epoch);
        out.put_i64(entry.start_offset);
    }
    out
}

/// Bytes the epoch block starting `src` takes, once its count is readable.
pub fn epochs_len(src: &[u8]) -> Result<Option<usize>, HandshakeError> {
    if src.len() < 4 {
        return Ok(None);
    }
    let count = u32::from_be_bytes(src[..4].try_into().expect("4 bytes")) as usize;
    if count > MAX_EPOCHS {
        return Err(HandshakeError::TooManyEpochs(count));
    }
    Ok(Some(4 + count * EPOCH_ENTRY_LEN))
}

/// Decodes a whole epoch block (see [`epochs_len`]).
pub fn decode_epochs(mut src: &[u8]) -> Result<Vec<EpochEntry>, HandshakeError> {
    let need = epochs_len(src)?.ok_or(HandshakeError::Short {
        need: 4,
        have: src.len(),
    })?;
    check_len(src, need)?;
    let count = src.get_u32() as usize;
    Ok((0..count)
        .map(|_| EpochEntry::new(src.get_i32(), src.get_i64()))
        .collect())
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

/// The master's answer to a hello, given its shard's geometry and offsets (`oldest`: the
/// start of its oldest segment; `end`: its max physical offset). Pure, so every refusal is
/// unit-tested.
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
    } else if hello.slave_offset < oldest
        && hello.slave_offset == rmq_storage::shard_base(hello.shard)
    {
        // An empty slave: its log begins at the master's newest segment.
        let newest = hello.slave_offset
            + ((end - hello.slave_offset) as u64 / segment_size * segment_size) as i64;
        return Welcome {
            status: Status::StartAt,
            shard_count,
            segment_size,
            master_end: end,
            start: newest,
            epochs_follow: false,
        };
    } else if hello.slave_offset < oldest {
        return Welcome {
            status: Status::OffsetUnavailable,
            shard_count,
            segment_size,
            master_end: end,
            start: oldest,
            epochs_follow: false,
        };
    } else {
        Status::Ok
    };
    Welcome {
        status,
        shard_count,
        segment_size,
        master_end: end,
        start: hello.slave_offset,
        epochs_follow: false,
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
            check_from: offset - 10,
            check_crc: 0xDEAD_BEEF,
            flags: 0,
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
    fn an_empty_slave_below_the_oldest_offset_starts_at_the_newest_segment() {
        let base = 1i64 << 56;
        let segment = SEGMENT as i64;
        let oldest = base + 3 * segment;
        let answer_at = |offset: i64, end: i64| answer(&hello(offset), 4, SEGMENT, oldest, end);
        let empty = answer_at(base, base + 5 * segment + 77);
        assert_eq!(empty.status, Status::StartAt);
        assert_eq!(empty.start, base + 5 * segment);
        let at_boundary = answer_at(base, base + 6 * segment);
        assert_eq!(
            at_boundary.start,
            base + 6 * segment,
            "an empty newest segment"
        );
        let stale = answer_at(base + 100, base + 5 * segment);
        assert_eq!(stale.status, Status::OffsetUnavailable);
        assert_eq!(stale.start, oldest, "the master's oldest offset");
        let from_start = answer(&hello(base), 4, SEGMENT, base, base + 5 * segment);
        assert_eq!(
            from_start.status,
            Status::Ok,
            "nothing deleted: stream everything"
        );
        assert_eq!(decode_welcome(&encode_welcome(&empty)), Ok(empty));
    }

    #[test]
    fn epochs_travel_only_when_asked_for() {
        let classic = encode_hello(&hello(1 << 56));
        assert_eq!(
            &classic[44..48],
            &[0, 0, 0, 0],
            "a classic hello keeps zero there"
        );
        let asking = Hello {
            flags: FLAG_EPOCHS,
            ..hello(1 << 56)
        };
        let decoded = decode_hello(&encode_hello(&asking)).unwrap();
        assert!(decoded.wants_epochs());
        assert_eq!(decoded.slave_id(), None);
        let with_id = Hello {
            flags: Hello::controller_flags(5),
            ..hello(1 << 56)
        };
        let decoded = decode_hello(&encode_hello(&with_id)).unwrap();
        assert!(decoded.wants_epochs());
        assert_eq!(decoded.slave_id(), Some(5));
        assert_eq!(Hello::controller_flags(MAX_SLAVE_ID + 1), FLAG_EPOCHS);
        assert!(!decode_hello(&classic).unwrap().wants_epochs());
        let mut welcome = answer(&asking, 4, SEGMENT, 1 << 56, 1 << 56 | 64);
        assert!(!welcome.epochs_follow);
        welcome.epochs_follow = true;
        let bytes = encode_welcome(&welcome);
        assert_eq!(decode_welcome(&bytes), Ok(welcome));
        let entries = [
            EpochEntry::new(1, 1 << 56),
            EpochEntry::new(4, 1 << 56 | 40),
        ];
        let block = encode_epochs(&entries);
        assert_eq!(epochs_len(&block[..3]), Ok(None));
        assert_eq!(epochs_len(&block), Ok(Some(block.len())));
        assert_eq!(decode_epochs(&block), Ok(entries.to_vec()));
        assert!(decode_epochs(&block[..block.len() - 1]).is_err());
        let huge = (MAX_EPOCHS as u32 + 1).to_be_bytes();
        assert_eq!(
            epochs_len(&huge),
            Err(HandshakeError::TooManyEpochs(MAX_EPOCHS + 1))
        );
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

    #[test]
    fn the_checked_tail_stays_in_the_last_segment() {
        let base = 1i64 << 56;
        let segment = 1i64 << 20;
        assert_eq!(check_from(base, base, base), base, "empty log");
        assert_eq!(check_from(base + 100, base, base), base);
        assert_eq!(
            check_from(base + segment, base, base),
            base,
            "after a filler"
        );
        let far = base + 3 * CHECK_WINDOW;
        assert_eq!(check_from(far, base, base), far - CHECK_WINDOW);
        assert_eq!(check_from(far, far - 5, base), far - 5);
        assert_eq!(check_from(far, base, far - 7), far - 7, "retention");
    }
}
