//! Commit log records (docs/protocol.md §3.1) as the broker hands them to the store, and
//! readers of the fields tests look at.

use bytes::{BufMut, BytesMut};

pub const MESSAGE_MAGIC_CODE: i32 = -626843481;

/// Encodes a record the way the broker hands it to the store: IPv4 hosts, offsets and store
/// time zero, born at a fixed time.
///
/// # Panics
/// When `topic` is longer than 255 bytes or `properties` longer than 32767 bytes.
pub fn encode(
    topic: &str,
    queue_id: i32,
    body: &[u8],
    properties: &str,
    sys_flag: i32,
) -> BytesMut {
    let topic_len = u8::try_from(topic.len()).expect("a topic fits in 255 bytes");
    let properties_len = i16::try_from(properties.len()).expect("properties fit in an i16");
    let total = 84 + 4 + body.len() + 1 + topic.len() + 2 + properties.len();
    let mut out = BytesMut::with_capacity(total);
    out.put_i32(i32::try_from(total).expect("a record fits in an i32"));
    out.put_i32(MESSAGE_MAGIC_CODE);
    out.put_i32((crc32fast::hash(body) & 0x7FFF_FFFF) as i32);
    out.put_i32(queue_id);
    out.put_i32(0); // flag
    out.put_i64(0); // queue offset
    out.put_i64(0); // physical offset
    out.put_i32(sys_flag);
    out.put_i64(1_700_000_000_000); // born timestamp
    out.put_slice(&[127, 0, 0, 1]);
    out.put_i32(40_000);
    out.put_i64(0); // store timestamp
    out.put_slice(&[127, 0, 0, 1]);
    out.put_i32(10_911);
    out.put_i32(0); // reconsume times
    out.put_i64(0); // prepared transaction offset
    out.put_i32(i32::try_from(body.len()).expect("a body fits in an i32"));
    out.put_slice(body);
    out.put_u8(topic_len);
    out.put_slice(topic.as_bytes());
    out.put_i16(properties_len);
    out.put_slice(properties.as_bytes());
    assert_eq!(out.len(), total);
    out
}

/// The big-endian i64 at `at`.
pub fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The big-endian i32 at `at`.
pub fn i32_at(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Splits a pull body (records back to back) into records.
///
/// # Panics
/// On a record size that is not positive.
pub fn split_records(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while !body.is_empty() {
        let size = usize::try_from(i32_at(body, 0)).expect("a positive record size");
        assert!(size > 0, "a zero record size");
        records.push(body[..size].to_vec());
        body = &body[size..];
    }
    records
}

/// Body bytes of an encoded record (IPv4 hosts).
pub fn body_of(record: &[u8]) -> &[u8] {
    let len = usize::try_from(i32_at(record, 84)).expect("a body length");
    &record[88..88 + len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_record_reads_back() {
        let record = encode("T", 3, b"body", "a\u{1}b\u{2}", 0);
        assert_eq!(i32_at(&record, 0) as usize, record.len());
        assert_eq!(i32_at(&record, 12), 3);
        assert_eq!(body_of(&record), b"body");
        let mut two = record.to_vec();
        two.extend_from_slice(&record);
        assert_eq!(split_records(&two), vec![record.to_vec(), record.to_vec()]);
    }
}
