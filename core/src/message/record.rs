//! The commit-log message record (docs/protocol.md §3.1, Java `CommitLog` / `MessageDecoder`).
//!
//! The same bytes are the on-disk commit log, the PULL / QUERY_MESSAGE / VIEW_MESSAGE_BY_ID
//! response bodies and the HA replication stream, so a record is encoded once at SEND time and
//! then only patched (three fields, at append) and copied. Layout, big-endian:
//! ```text
//! pos  size  field
//!   0     4  TOTALSIZE              whole record, this field included
//!   4     4  MAGICCODE              V1 -626843481 (1-byte topic len), V2 -626843477 (2-byte)
//!   8     4  BODYCRC                crc32(body) & 0x7FFFFFFF
//!  12     4  QUEUEID
//!  16     4  FLAG                   producer's flag
//!  20     8  QUEUEOFFSET            patched at append
//!  28     8  PHYSICALOFFSET         patched at append
//!  36     4  SYSFLAG                bits 0x10 / 0x20 say whether the hosts are IPv6
//!  40     8  BORNTIMESTAMP
//!  48  8|20  BORNHOST               IPv4 4 B + port int32, or IPv6 16 B + port int32
//!   s     8  STORETIMESTAMP         s = 56 with an IPv4 born host; patched at append
//! s+8  8|20  STOREHOST
//!         4  RECONSUMETIMES
//!         8  PREPARED TRANSACTION OFFSET
//!     4 + n  BODYLEN + BODY
//!   1|2 + n  TOPICLEN + TOPIC       V1: 1 byte (topic <= 127 bytes), V2: int16
//!     2 + n  PROPLEN + PROPERTIES   int16, <= 32767 bytes
//! ```
//! With IPv4 hosts the fixed part is 84 bytes. A BLANK record (`[int32 size][BLANK_MAGIC_CODE]`)
//! fills the tail of a commit-log file; [`parse_record`] reports it as [`RecordError::Blank`].
//!
//! We always encode V1 (what 4.x brokers write and every 4.x client decodes) and parse both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{BufMut, BytesMut};

use super::hash;
use super::properties::{self, keys};
use super::sysflag::{BORNHOST_V6_FLAG, STOREHOSTADDRESS_V6_FLAG};

/// Magic of a V1 record (1-byte topic length): `0xDAA320A7`.
pub const MESSAGE_MAGIC_CODE: i32 = -626_843_481;
/// Magic of a V2 record (2-byte topic length, 5.x).
pub const MESSAGE_MAGIC_CODE_V2: i32 = -626_843_477;
/// Magic of the end-of-file filler: `0xCBD43194`.
pub const BLANK_MAGIC_CODE: i32 = -875_286_124;

pub const TOTAL_SIZE_POS: usize = 0;
pub const MAGIC_POS: usize = 4;
pub const BODY_CRC_POS: usize = 8;
pub const QUEUE_ID_POS: usize = 12;
pub const FLAG_POS: usize = 16;
pub const QUEUE_OFFSET_POS: usize = 20;
pub const PHYSICAL_OFFSET_POS: usize = 28;
pub const SYSFLAG_POS: usize = 36;
pub const BORN_TIMESTAMP_POS: usize = 40;
pub const BORN_HOST_POS: usize = 48;

/// Size of an IPv4 host field (address + int32 port).
const HOST_V4_LEN: usize = 4 + 4;
/// Size of an IPv6 host field (address + int32 port).
const HOST_V6_LEN: usize = 16 + 4;
/// Fixed part of a record with IPv4 hosts, up to and excluding BODYLEN.
pub const FIXED_LEN_V4: usize = 84;
/// Longest topic a V1 record can carry (Java checks `> Byte.MAX_VALUE`).
pub const TOPIC_LEN_MAX_V1: usize = 127;
/// Longest properties string (its length is an int16).
pub const PROPERTIES_LEN_MAX: usize = i16::MAX as usize;
/// Smallest possible V1 record: empty body, topic and properties.
pub const RECORD_LEN_MIN_V1: usize = FIXED_LEN_V4 + 4 + 1 + 2;
/// Smallest possible V2 record.
pub const RECORD_LEN_MIN_V2: usize = FIXED_LEN_V4 + 4 + 2 + 2;

const _: () = assert!(FIXED_LEN_V4 == 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8);
const _: () = assert!(BORN_HOST_POS == BORN_TIMESTAMP_POS + 8);
const _: () = assert!(BORN_HOST_POS + HOST_V4_LEN == 56);
const _: () = assert!(QUEUE_OFFSET_POS + 8 == PHYSICAL_OFFSET_POS);
const _: () = assert!(PHYSICAL_OFFSET_POS + 8 == SYSFLAG_POS);

/// Why a record could not be encoded or parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("record truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("bad record magic code {0:#010x}")]
    BadMagic(i32),
    #[error("blank (end-of-file filler) record of {size} bytes")]
    Blank { size: usize },
    #[error("bad record length: {0}")]
    BadLength(String),
    #[error("record {0} is not valid UTF-8")]
    BadUtf8(&'static str),
    #[error("topic of {0} bytes is longer than 127 bytes")]
    TopicTooLong(usize),
    #[error("properties of {0} bytes are longer than 32767 bytes")]
    PropertiesTooLong(usize),
    #[error("record body CRC mismatch")]
    BodyCrcMismatch,
}

/// CRC of a message body as RocketMQ stores it: `java.util.zip.CRC32` masked to 31 bits.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

fn host_len(v6: bool) -> usize {
    if v6 { HOST_V6_LEN } else { HOST_V4_LEN }
}

/// Length of a V1 record with the given field sizes.
pub fn record_len(
    topic_len: usize,
    body_len: usize,
    props_len: usize,
    born_v6: bool,
    store_v6: bool,
) -> usize {
    let hosts_extra = host_len(born_v6) + host_len(store_v6) - 2 * HOST_V4_LEN;
    FIXED_LEN_V4 + hosts_extra + 4 + body_len + 1 + topic_len + 2 + props_len
}

/// Position of STORETIMESTAMP in a record with this sysflag (it follows the born host).
pub fn store_timestamp_pos(sys_flag: i32) -> usize {
    BORN_HOST_POS + host_len(sys_flag & BORNHOST_V6_FLAG != 0)
}

/// The PROPERTIES bytes of a record, found from its length fields alone (no other field is
/// read or validated, no UTF-8 check): for hot paths over records this process encoded, such
/// as the store's dispatch of an append. `None` when TOTALSIZE, the magic or a length field
/// does not fit the buffer; `parse_record` is the checked way to read a record.
pub fn properties_bytes(buf: &[u8]) -> Option<&[u8]> {
    let i32_at = |raw: &[u8], pos: usize| -> Option<i32> {
        Some(i32::from_be_bytes(raw.get(pos..pos + 4)?.try_into().ok()?))
    };
    let total = usize::try_from(i32_at(buf, TOTAL_SIZE_POS)?).ok()?;
    let raw = buf.get(..total)?;
    let topic_len_width = match i32_at(raw, MAGIC_POS)? {
        MESSAGE_MAGIC_CODE => 1,
        MESSAGE_MAGIC_CODE_V2 => 2,
        _ => return None,
    };
    let sys_flag = i32_at(raw, SYSFLAG_POS)?;
    let store_host_v6 = sys_flag & STOREHOSTADDRESS_V6_FLAG != 0;
    // STORETIMESTAMP, STOREHOST, RECONSUMETIMES, PREPAREDTRANSACTIONOFFSET, BODYLENGTH.
    let body_len_pos = store_timestamp_pos(sys_flag) + 8 + host_len(store_host_v6) + 4 + 8;
    let body_len = usize::try_from(i32_at(raw, body_len_pos)?).ok()?;
    let topic_len_pos = (body_len_pos + 4).checked_add(body_len)?;
    let topic_len = match *raw.get(topic_len_pos..topic_len_pos + topic_len_width)? {
        [a] => usize::from(a),
        [a, b] => usize::try_from(i16::from_be_bytes([a, b])).ok()?,
        _ => return None,
    };
    let props_len_pos = topic_len_pos + topic_len_width + topic_len;
    let [a, b] = *raw.get(props_len_pos..props_len_pos + 2)? else {
        return None;
    };
    let props_len = usize::try_from(i16::from_be_bytes([a, b])).ok()?;
    raw.get(props_len_pos + 2..props_len_pos + 2 + props_len)
}

/// A message about to be written, before the broker assigns its offsets and store time.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
    pub flag: i32,
    pub body: &'a [u8],
    pub properties: &'a str,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

impl NewRecord<'_> {
    /// Exact number of bytes [`NewRecord::encode_into`] appends.
    pub fn encoded_len(&self) -> usize {
        record_len(
            self.topic.len(),
            self.body.len(),
            self.properties.len(),
            self.born_host.is_ipv6(),
            self.store_host.is_ipv6(),
        )
    }

    /// The sysflag as stored: the caller's flag with the host-family bits set from the hosts.
    fn stored_sys_flag(&self) -> i32 {
        let mut sys_flag = self.sys_flag & !(BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG);
        if self.born_host.is_ipv6() {
            sys_flag |= BORNHOST_V6_FLAG;
        }
        if self.store_host.is_ipv6() {
            sys_flag |= STOREHOSTADDRESS_V6_FLAG;
        }
        sys_flag
    }

    /// Appends the record with QUEUEOFFSET, PHYSICALOFFSET and STORETIMESTAMP = 0 (patched at
    /// append by [`patch_record`]); sets the BORNHOST_V6/STOREHOST_V6 sysflag bits from the
    /// addresses; computes BODYCRC.
    ///
    /// # Errors
    /// `TopicTooLong` (> 127 bytes) and `PropertiesTooLong` (> 32767 bytes); `dst` is untouched.
    ///
    /// # Panics
    /// If the record would exceed `i32::MAX` bytes: callers enforce `maxMessageSize` first.
    pub fn encode_into(&self, dst: &mut BytesMut) -> Result<(), RecordError> {
        if self.topic.len() > TOPIC_LEN_MAX_V1 {
            return Err(RecordError::TopicTooLong(self.topic.len()));
        }
        if self.properties.len() > PROPERTIES_LEN_MAX {
            return Err(RecordError::PropertiesTooLong(self.properties.len()));
        }
        let total = self.encoded_len();
        assert!(i32::try_from(total).is_ok(), "record of {total} bytes");
        dst.reserve(total);
        let start = dst.len();
        dst.put_i32(total as i32);
        dst.put_i32(MESSAGE_MAGIC_CODE);
        dst.put_i32(body_crc(self.body));
        dst.put_i32(self.queue_id);
        dst.put_i32(self.flag);
        dst.put_i64(0); // QUEUEOFFSET
        dst.put_i64(0); // PHYSICALOFFSET
        dst.put_i32(self.stored_sys_flag());
        dst.put_i64(self.born_timestamp);
        put_host(dst, self.born_host);
        dst.put_i64(0); // STORETIMESTAMP
        put_host(dst, self.store_host);
        dst.put_i32(self.reconsume_times);
        dst.put_i64(self.prepared_transaction_offset);
        dst.put_i32(self.body.len() as i32);
        dst.put_slice(self.body);
        dst.put_u8(self.topic.len() as u8);
        dst.put_slice(self.topic.as_bytes());
        dst.put_i16(self.properties.len() as i16);
        dst.put_slice(self.properties.as_bytes());
        assert_eq!(
            dst.len() - start,
            total,
            "encoded_len disagrees with encode_into"
        );
        Ok(())
    }
}

fn put_host(dst: &mut BytesMut, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => dst.put_slice(&ip.octets()),
        IpAddr::V6(ip) => dst.put_slice(&ip.octets()),
    }
    dst.put_i32(i32::from(addr.port()));
}

/// Writes the three append-time fields into an encoded record (reads its sysflag to find
/// STORETIMESTAMP).
///
/// # Panics
/// If `rec` is not a well-formed record: callers only pass records they encoded.
pub fn patch_record(rec: &mut [u8], queue_offset: i64, physical_offset: i64, store_timestamp: i64) {
    assert!(
        rec.len() >= RECORD_LEN_MIN_V1,
        "record of {} bytes",
        rec.len()
    );
    let magic = read_i32(rec, MAGIC_POS);
    assert!(
        magic == MESSAGE_MAGIC_CODE || magic == MESSAGE_MAGIC_CODE_V2,
        "patching a record with magic {magic:#x}"
    );
    assert_eq!(
        read_i32(rec, TOTAL_SIZE_POS) as usize,
        rec.len(),
        "TOTALSIZE"
    );
    let store_timestamp_at = store_timestamp_pos(read_i32(rec, SYSFLAG_POS));
    assert!(store_timestamp_at + 8 <= rec.len());
    rec[QUEUE_OFFSET_POS..QUEUE_OFFSET_POS + 8].copy_from_slice(&queue_offset.to_be_bytes());
    rec[PHYSICAL_OFFSET_POS..PHYSICAL_OFFSET_POS + 8]
        .copy_from_slice(&physical_offset.to_be_bytes());
    rec[store_timestamp_at..store_timestamp_at + 8].copy_from_slice(&store_timestamp.to_be_bytes());
}

/// Reads a big-endian i32 at `pos`; `pos + 4 <= buf.len()` is the caller's invariant.
fn read_i32(buf: &[u8], pos: usize) -> i32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[pos..pos + 4]);
    i32::from_be_bytes(bytes)
}

/// Reads a big-endian i64 at `pos`; `pos + 8 <= buf.len()` is the caller's invariant.
fn read_i64(buf: &[u8], pos: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[pos..pos + 8]);
    i64::from_be_bytes(bytes)
}

/// Parses the record at the start of `buf` (`buf` may be longer).
///
/// Validates the magic (V1 or V2), that TOTALSIZE is at least the minimum and at most
/// `buf.len()`, and that all inner lengths fit exactly inside TOTALSIZE. Does not check the CRC
/// (see [`RecordView::crc_ok`]).
///
/// # Errors
/// `Truncated` when `buf` is shorter than the header or TOTALSIZE (the caller may read more),
/// `Blank { size }` for an end-of-file filler, `BadMagic`, `BadLength`, `BadUtf8` otherwise.
pub fn parse_record(buf: &[u8]) -> Result<RecordView<'_>, RecordError> {
    if buf.len() < MAGIC_POS + 4 {
        return Err(RecordError::Truncated {
            need: MAGIC_POS + 4,
            have: buf.len(),
        });
    }
    let total_size = read_i32(buf, TOTAL_SIZE_POS);
    let magic = read_i32(buf, MAGIC_POS);
    let len_min = match magic {
        MESSAGE_MAGIC_CODE => RECORD_LEN_MIN_V1,
        MESSAGE_MAGIC_CODE_V2 => RECORD_LEN_MIN_V2,
        BLANK_MAGIC_CODE => {
            return match usize::try_from(total_size) {
                Ok(size) if size >= MAGIC_POS + 4 => Err(RecordError::Blank { size }),
                _ => Err(RecordError::BadLength(format!(
                    "blank record of {total_size} bytes"
                ))),
            };
        }
        other => return Err(RecordError::BadMagic(other)),
    };
    let total = match usize::try_from(total_size) {
        Ok(total) if total >= len_min => total,
        _ => {
            let reason = format!("TOTALSIZE {total_size} is below the minimum {len_min}");
            return Err(RecordError::BadLength(reason));
        }
    };
    if total > buf.len() {
        return Err(RecordError::Truncated {
            need: total,
            have: buf.len(),
        });
    }
    parse_fields(&buf[..total], magic == MESSAGE_MAGIC_CODE_V2)
}

/// Walks the variable part of a record whose TOTALSIZE (`raw.len()`) and magic are valid.
fn parse_fields(raw: &[u8], topic_len_is_i16: bool) -> Result<RecordView<'_>, RecordError> {
    assert!(raw.len() >= RECORD_LEN_MIN_V1);
    let sys_flag = read_i32(raw, SYSFLAG_POS);
    let mut reader = Reader {
        raw,
        pos: BORN_HOST_POS,
    };
    let born_host = reader.host(sys_flag & BORNHOST_V6_FLAG != 0, "born host")?;
    let store_timestamp_pos = reader.pos;
    reader.take(8, "store timestamp")?;
    let store_host = reader.host(sys_flag & STOREHOSTADDRESS_V6_FLAG != 0, "store host")?;
    let reconsume_times_pos = reader.pos;
    reader.take(4 + 8, "reconsume times and prepared offset")?;
    let body_len = reader.length(4, "body")?;
    let body = reader.take(body_len, "body")?;
    let topic_len = reader.length(if topic_len_is_i16 { 2 } else { 1 }, "topic")?;
    let topic = reader.take(topic_len, "topic")?;
    let topic = std::str::from_utf8(topic).map_err(|_| RecordError::BadUtf8("topic"))?;
    let props_len = reader.length(2, "properties")?;
    let props = reader.take(props_len, "properties")?;
    let properties = std::str::from_utf8(props).map_err(|_| RecordError::BadUtf8("properties"))?;
    if reader.pos != raw.len() {
        let reason = format!(
            "TOTALSIZE {} but the fields end at {}",
            raw.len(),
            reader.pos
        );
        return Err(RecordError::BadLength(reason));
    }
    Ok(RecordView {
        raw,
        store_timestamp_pos,
        reconsume_times_pos,
        born_host,
        store_host,
        body,
        topic,
        properties,
    })
}

/// Bounds-checked cursor over one record; every overrun is a `BadLength`.
struct Reader<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.raw.len());
        let Some(end) = end else {
            let reason = format!(
                "{what} of {len} bytes at {} overruns TOTALSIZE {}",
                self.pos,
                self.raw.len()
            );
            return Err(RecordError::BadLength(reason));
        };
        let bytes = &self.raw[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// Reads a signed big-endian length field of `width` bytes (1 is read unsigned).
    fn length(&mut self, width: usize, what: &str) -> Result<usize, RecordError> {
        let bytes = self.take(width, what)?;
        let value = match *bytes {
            [a] => i64::from(a),
            [a, b] => i64::from(i16::from_be_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
            _ => unreachable!("length width {width}"),
        };
        usize::try_from(value)
            .map_err(|_| RecordError::BadLength(format!("negative {what} length {value}")))
    }

    fn host(&mut self, v6: bool, what: &str) -> Result<SocketAddr, RecordError> {
        let ip_len = if v6 { 16 } else { 4 };
        let ip_bytes = self.take(ip_len, what)?;
        let ip = if v6 {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(ip_bytes);
            IpAddr::V6(Ipv6Addr::from(octets))
        } else {
            let mut octets = [0u8; 4];
            octets.copy_from_slice(ip_bytes);
            IpAddr::V4(Ipv4Addr::from(octets))
        };
        let port_pos = self.pos;
        self.take(4, what)?;
        let port = read_i32(self.raw, port_pos);
        let port = u16::try_from(port)
            .map_err(|_| RecordError::BadLength(format!("{what} port {port} out of range")))?;
        Ok(SocketAddr::new(ip, port))
    }
}

/// A validated record borrowed from a buffer: the raw bytes (exactly TOTALSIZE) plus the
/// positions of the variable fields, so accessors are plain loads.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    raw: &'a [u8],
    store_timestamp_pos: usize,
    reconsume_times_pos: usize,
    born_host: SocketAddr,
    store_host: SocketAddr,
    body: &'a [u8],
    topic: &'a str,
    properties: &'a str,
}

impl<'a> RecordView<'a> {
    /// The whole record, exactly `total_size()` bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    pub fn total_size(&self) -> usize {
        self.raw.len()
    }
    pub fn magic(&self) -> i32 {
        read_i32(self.raw, MAGIC_POS)
    }
    /// The stored BODYCRC (not recomputed).
    pub fn body_crc(&self) -> i32 {
        read_i32(self.raw, BODY_CRC_POS)
    }
    pub fn queue_id(&self) -> i32 {
        read_i32(self.raw, QUEUE_ID_POS)
    }
    pub fn flag(&self) -> i32 {
        read_i32(self.raw, FLAG_POS)
    }
    pub fn queue_offset(&self) -> i64 {
        read_i64(self.raw, QUEUE_OFFSET_POS)
    }
    pub fn physical_offset(&self) -> i64 {
        read_i64(self.raw, PHYSICAL_OFFSET_POS)
    }
    pub fn sys_flag(&self) -> i32 {
        read_i32(self.raw, SYSFLAG_POS)
    }
    pub fn born_timestamp(&self) -> i64 {
        read_i64(self.raw, BORN_TIMESTAMP_POS)
    }
    pub fn born_host(&self) -> SocketAddr {
        self.born_host
    }
    pub fn store_timestamp(&self) -> i64 {
        read_i64(self.raw, self.store_timestamp_pos)
    }
    pub fn store_host(&self) -> SocketAddr {
        self.store_host
    }
    pub fn reconsume_times(&self) -> i32 {
        read_i32(self.raw, self.reconsume_times_pos)
    }
    pub fn prepared_transaction_offset(&self) -> i64 {
        read_i64(self.raw, self.reconsume_times_pos + 4)
    }
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    pub fn topic(&self) -> &'a str {
        self.topic
    }
    pub fn properties(&self) -> &'a str {
        self.properties
    }
    /// Whether the stored BODYCRC matches the body.
    pub fn crc_ok(&self) -> bool {
        body_crc(self.body) == self.body_crc()
    }
    /// Tag code from the TAGS property (0 without tags). Delay-topic entries use the delivery
    /// time instead; that rule belongs to the store, not to the record.
    pub fn tags_code(&self) -> i64 {
        hash::tags_code(properties::get_property(self.properties, keys::TAGS))
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
