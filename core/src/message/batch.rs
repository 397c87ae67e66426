//! The SEND_BATCH_MESSAGE body (docs/protocol.md §3.4, Java `MessageDecoder.encodeMessages`).
//!
//! The body is a concatenation of entries, big-endian:
//! ```text
//! int32 totalSize | int32 magic (0) | int32 bodyCRC (0) | int32 flag |
//! int32 bodyLen | body | int16 propLen | properties
//! ```
//! `totalSize` counts the whole entry (20 + bodyLen + 2 + propLen). Topic and queue come from the
//! request header; the broker expands each entry into a full record (`record::NewRecord`).
//! Magic and CRC are written as 0 by the Java client and ignored on decode.

use bytes::{BufMut, BytesMut};

use super::record::RecordError;

/// Bytes of an entry besides its body and properties.
const ENTRY_OVERHEAD: usize = 4 + 4 + 4 + 4 + 4 + 2;

/// One message of a batch, borrowed from the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEntry<'a> {
    pub flag: i32,
    pub body: &'a [u8],
    pub properties: &'a str,
}

fn read_i32(buf: &[u8], pos: usize) -> i32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[pos..pos + 4]);
    i32::from_be_bytes(bytes)
}

/// Splits a batch body into its entries.
///
/// # Errors
/// `Truncated` when an entry runs past the end of `body`; `BadLength` when an entry's inner
/// lengths disagree with its `totalSize`; `BadUtf8("properties")`.
pub fn decode_batch(body: &[u8]) -> Result<Vec<BatchEntry<'_>>, RecordError> {
    let mut entries = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (entry, size) = decode_entry(rest)?;
        entries.push(entry);
        rest = &rest[size..];
    }
    Ok(entries)
}

/// Decodes the entry at the start of `buf`; returns it and its size.
fn decode_entry(buf: &[u8]) -> Result<(BatchEntry<'_>, usize), RecordError> {
    if buf.len() < ENTRY_OVERHEAD {
        return Err(RecordError::Truncated {
            need: ENTRY_OVERHEAD,
            have: buf.len(),
        });
    }
    let total_size = read_i32(buf, 0);
    let total = usize::try_from(total_size)
        .ok()
        .filter(|total| *total >= ENTRY_OVERHEAD)
        .ok_or_else(|| RecordError::BadLength(format!("batch entry size {total_size}")))?;
    if total > buf.len() {
        return Err(RecordError::Truncated {
            need: total,
            have: buf.len(),
        });
    }
    let entry = &buf[..total];
    let flag = read_i32(entry, 12);
    let body_len = read_i32(entry, 16);
    let body_end = usize::try_from(body_len)
        .ok()
        .and_then(|len| len.checked_add(20))
        .filter(|end| end + 2 <= total)
        .ok_or_else(|| inner_mismatch("body", body_len.into(), total))?;
    let props_len = i16::from_be_bytes([entry[body_end], entry[body_end + 1]]);
    let props_start = body_end + 2;
    let props_end = usize::try_from(props_len)
        .ok()
        .map(|len| props_start + len)
        .filter(|end| *end == total)
        .ok_or_else(|| inner_mismatch("properties", props_len.into(), total))?;
    let properties = std::str::from_utf8(&entry[props_start..props_end])
        .map_err(|_| RecordError::BadUtf8("properties"))?;
    let batch_entry = BatchEntry {
        flag,
        body: &entry[20..body_end],
        properties,
    };
    Ok((batch_entry, total))
}

fn inner_mismatch(what: &str, len: i64, total: usize) -> RecordError {
    RecordError::BadLength(format!(
        "batch entry {what} length {len} does not fit size {total}"
    ))
}

/// Appends `entries` in the Java client's batch format.
///
/// # Panics
/// If properties exceed 32767 bytes or an entry exceeds `i32::MAX`: callers build batches from
/// messages they already validated.
pub fn encode_batch(entries: &[BatchEntry<'_>], dst: &mut BytesMut) {
    for entry in entries {
        let props_len = i16::try_from(entry.properties.len()).expect("properties over 32767 B");
        let total = ENTRY_OVERHEAD + entry.body.len() + entry.properties.len();
        let total = i32::try_from(total).expect("batch entry over 2 GiB");
        dst.reserve(total as usize);
        dst.put_i32(total);
        dst.put_i32(0); // magic: unused in batches
        dst.put_i32(0); // body CRC: computed by the broker per record
        dst.put_i32(entry.flag);
        dst.put_i32(entry.body.len() as i32);
        dst.put_slice(entry.body);
        dst.put_i16(props_len);
        dst.put_slice(entry.properties.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<BatchEntry<'static>> {
        vec![
            BatchEntry {
                flag: 0,
                body: b"first",
                properties: "TAGS\u{1}A\u{2}",
            },
            BatchEntry {
                flag: 9,
                body: b"",
                properties: "",
            },
            BatchEntry {
                flag: -1,
                body: &[0xFF; 300],
                properties: "KEYS\u{1}k\u{2}",
            },
        ]
    }

    #[test]
    fn round_trip() {
        let entries = sample();
        let mut buf = BytesMut::new();
        encode_batch(&entries, &mut buf);
        assert_eq!(
            buf.len(),
            entries
                .iter()
                .map(|e| 22 + e.body.len() + e.properties.len())
                .sum::<usize>()
        );
        assert_eq!(&buf[0..4], &(22 + 5 + 7i32).to_be_bytes());
        assert_eq!(decode_batch(&buf).unwrap(), entries);
        assert!(decode_batch(&[]).unwrap().is_empty());
    }

    #[test]
    fn truncated_batch() {
        let mut buf = BytesMut::new();
        encode_batch(&sample(), &mut buf);
        for cut in [1, 10, 21, buf.len() - 1] {
            let result = decode_batch(&buf[..cut]);
            assert!(
                matches!(result, Err(RecordError::Truncated { .. })),
                "{cut}: {result:?}"
            );
        }
    }

    #[test]
    fn inconsistent_lengths() {
        let mut buf = BytesMut::new();
        encode_batch(&sample()[..1], &mut buf);
        let mut body_long = buf.to_vec();
        body_long[16..20].copy_from_slice(&100i32.to_be_bytes());
        assert!(matches!(
            decode_batch(&body_long),
            Err(RecordError::BadLength(_))
        ));
        let mut negative = buf.to_vec();
        negative[16..20].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            decode_batch(&negative),
            Err(RecordError::BadLength(_))
        ));
        let mut small_total = buf.to_vec();
        small_total[0..4].copy_from_slice(&3i32.to_be_bytes());
        assert!(matches!(
            decode_batch(&small_total),
            Err(RecordError::BadLength(_))
        ));
        let mut props_short = buf.to_vec();
        props_short[25..27].copy_from_slice(&1i16.to_be_bytes());
        assert!(matches!(
            decode_batch(&props_short),
            Err(RecordError::BadLength(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 80) as usize;
            let mut buf: Vec<u8> = (0..len).map(|i| (state >> (i % 56)) as u8).collect();
            if len >= 4 {
                buf[0..4].copy_from_slice(&((state % 90) as i32).to_be_bytes());
            }
            let _ = decode_batch(&buf);
        }
    }
}
