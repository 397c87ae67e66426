//! ROCKETMQ binary remoting header (serialize type 1), used by Java clients started with
//! `-Drocketmq.serialize.type=ROCKETMQ` and by some non-Java clients.
//!
//! Wire format (big-endian):
//! ```text
//! int16 code | int8 language | int16 version | int32 opaque | int32 flag |
//! int32 remarkLength | remark (UTF-8; length 0 = no remark) |
//! int32 extLength | extLength bytes of { int16 keyLength | key | int32 valueLength | value }*
//! ```
//! Fixed part: 13 bytes, then 4 + remark, then 4 + ext fields.
//!
//! Tradeoffs, all matching Java's `RocketMQSerializable`:
//! - `code` and `version` are truncated to int16 on encode and sign-extended on decode.
//! - An empty remark encodes like `None` (the format cannot tell them apart).
//! - Invalid UTF-8 becomes U+FFFD, as Java's `new String(bytes, UTF_8)` does.
//! - An unknown language ordinal decodes to `OTHER` (Java would leave it null).
//! - Bytes after the ext section are ignored.
//!
//! The encoder skips (and logs) an ext field whose key exceeds 32767 bytes, because its length
//! cannot be written as an int16 without corrupting the header.
//!
//! # Errors
//! [`FrameError::BadHeader`] when a length is negative or runs past the end of the header.

use crate::remoting::ext_fields::{ExtFields, MAX_EXT_FIELDS, RawFields};

use bytes::BufMut;

use super::codes::LanguageCode;
use super::command::{RemotingCommand, SerializeType};
use super::frame::FrameError;

/// Appends the binary header of `cmd` to `dst`.
pub fn encode_binary_header(cmd: &RemotingCommand, dst: &mut Vec<u8>) {
    write_binary_header(cmd, dst);
}

/// Decodes a binary header. The result has an empty body and `SerializeType::RocketMq`.
pub fn decode_binary_header(bytes: &[u8]) -> Result<RemotingCommand, FrameError> {
    let mut reader = Reader { bytes, position: 0 };
    let code = reader.i16("code")?;
    let language = reader.u8("language")?;
    let version = reader.i16("version")?;
    let opaque = reader.i32("opaque")?;
    let flag = reader.i32("flag")?;
    let remark_length = reader.length_i32("remark length")?;
    let remark = reader.take(remark_length, "remark")?;
    let ext_length = reader.length_i32("ext fields length")?;
    let ext_fields = decode_ext_fields(reader.take(ext_length, "ext fields")?)?;
    let language = LanguageCode::from_u8(language).unwrap_or(LanguageCode::Other);
    Ok(RemotingCommand {
        code: i32::from(code),
        language: language as u8,
        version: i32::from(version),
        opaque,
        flag,
        remark: (!remark.is_empty()).then(|| String::from_utf8_lossy(remark).into_owned()),
        ext_fields,
        serialize_type: SerializeType::RocketMq,
        body: bytes::Bytes::new(),
    })
}

/// Generic over the buffer so that `encode_frame` writes into its `BytesMut` directly.
pub(crate) fn write_binary_header<B: BufMut>(cmd: &RemotingCommand, dst: &mut B) {
    // Truncation to int16 is the format's own limit; Java casts the same way.
    dst.put_i16(cmd.code as i16);
    dst.put_u8(cmd.language);
    dst.put_i16(cmd.version as i16);
    dst.put_i32(cmd.opaque);
    dst.put_i32(cmd.flag);
    let remark = cmd.remark.as_deref().unwrap_or("").as_bytes();
    put_length(dst, remark.len());
    dst.put_slice(remark);
    let ext_length: usize = cmd
        .ext_fields
        .iter()
        .filter(|(key, _)| key.len() <= i16::MAX as usize)
        .map(|(key, value)| 2 + key.len() + 4 + value.len())
        .sum();
    put_length(dst, ext_length);
    for (key, value) in cmd.ext_fields.iter() {
        if !is_encodable_key(key) {
            continue;
        }
        dst.put_i16(key.len() as i16);
        dst.put_slice(key.as_bytes());
        put_length(dst, value.len());
        dst.put_slice(value.as_bytes());
    }
}

fn is_encodable_key(key: &str) -> bool {
    let fits = key.len() <= i16::MAX as usize;
    if !fits {
        tracing::warn!(
            key_length = key.len(),
            "dropping ext field: key longer than int16"
        );
    }
    fits
}

/// Writes an int32 length. Lengths above `i32::MAX` cannot occur in a frame (whose total
/// length is itself an int32), so saturating only guards against a caller bug.
fn put_length<B: BufMut>(dst: &mut B, length: usize) {
    dst.put_i32(i32::try_from(length).unwrap_or(i32::MAX));
}

fn decode_ext_fields(bytes: &[u8]) -> Result<ExtFields, FrameError> {
    let mut fields = RawFields::with_capacity(16, bytes.len());
    let mut reader = Reader { bytes, position: 0 };
    while reader.remaining() > 0 {
        if fields.len() >= MAX_EXT_FIELDS {
            return Err(too_many_ext_fields());
        }
        let key_length = reader.i16("ext key length")?;
        let key_length = usize::try_from(key_length)
            .map_err(|_| FrameError::BadHeader(format!("negative ext key length {key_length}")))?;
        let key = reader.take(key_length, "ext key")?;
        let value_length = reader.length_i32("ext value length")?;
        let value = reader.take(value_length, "ext value")?;
        fields.push(key, value);
    }
    // Invalid UTF-8 becomes U+FFFD per key and value, as Java's decoder does.
    Ok(fields.finish())
}

/// The error of a header with more than [`MAX_EXT_FIELDS`] custom fields (both encodings).
pub(crate) fn too_many_ext_fields() -> FrameError {
    FrameError::BadHeader(format!(
        "more than {MAX_EXT_FIELDS} extFields in one header"
    ))
}

/// Bounds-checked big-endian reads; every failure names the field being read.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn take(&mut self, length: usize, field: &str) -> Result<&'a [u8], FrameError> {
        if length > self.remaining() {
            return Err(FrameError::BadHeader(format!(
                "binary header truncated: {field} needs {length} bytes at offset {}, {} left",
                self.position,
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.position..self.position + length];
        self.position += length;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], FrameError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N, field)?);
        Ok(array)
    }

    fn u8(&mut self, field: &str) -> Result<u8, FrameError> {
        self.array::<1>(field).map(|[byte]| byte)
    }

    fn i16(&mut self, field: &str) -> Result<i16, FrameError> {
        self.array(field).map(i16::from_be_bytes)
    }

    fn i32(&mut self, field: &str) -> Result<i32, FrameError> {
        self.array(field).map(i32::from_be_bytes)
    }

    /// An int32 length, rejected when negative.
    fn length_i32(&mut self, field: &str) -> Result<usize, FrameError> {
        let length = self.i32(field)?;
        usize::try_from(length)
            .map_err(|_| FrameError::BadHeader(format!("negative {field} {length}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The doc example command with a remark, laid out by hand from the format above.
    fn golden() -> (RemotingCommand, Vec<u8>) {
        let mut command = RemotingCommand::new_request(10).with_ext("a", "pg");
        command.opaque = 7;
        command.flag = 2;
        command.remark = Some("hi".into());
        command.serialize_type = SerializeType::RocketMq;
        let mut bytes = vec![0x00, 0x0A, 0x00, 0x01, 0x99]; // code 10, JAVA, version 409
        bytes.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 2]); // opaque, flag
        bytes.extend_from_slice(&[0, 0, 0, 2, b'h', b'i']); // remark
        bytes.extend_from_slice(&[0, 0, 0, 9]); // ext length = 2+1+4+2
        bytes.extend_from_slice(&[0, 1, b'a', 0, 0, 0, 2, b'p', b'g']);
        (command, bytes)
    }

    #[test]
    fn golden_bytes_both_ways() {
        let (command, bytes) = golden();
        let mut encoded = Vec::new();
        encode_binary_header(&command, &mut encoded);
        assert_eq!(encoded, bytes);
        assert_eq!(decode_binary_header(&bytes).unwrap(), command);
    }

    #[test]
    fn round_trip_many_fields_and_sign_extension() {
        let mut command = RemotingCommand::new_request(-2);
        command.version = -1;
        command.opaque = i32::MIN;
        command.language = LanguageCode::Go as u8;
        command.serialize_type = SerializeType::RocketMq;
        for index in 0..50 {
            command.set_ext(&format!("key{index}"), format!("välue\u{1}{index}"));
        }
        command.set_ext("", "");
        let mut encoded = Vec::new();
        encode_binary_header(&command, &mut encoded);
        assert_eq!(decode_binary_header(&encoded).unwrap(), command);
    }

    #[test]
    fn empty_remark_and_ext_decode_as_absent() {
        let mut bytes = vec![0, 34, 12, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        let command = decode_binary_header(&bytes).unwrap();
        assert_eq!(command.code, 34);
        assert_eq!(command.language, LanguageCode::Rust as u8);
        assert_eq!(command.opaque, 1);
        assert_eq!(command.remark, None);
        assert!(command.ext_fields.is_empty());
    }

    #[test]
    fn invalid_utf8_decodes_as_replacement_characters() {
        let (_, mut bytes) = golden();
        bytes[17] = 0xFF; // remark "hi" -> "\xFFi"
        bytes[25] = 0xC3; // key "a": a lone UTF-8 lead byte
        bytes[30] = 0x80; // value "pg" -> "\x80g": a lone continuation byte
        let command = decode_binary_header(&bytes).unwrap();
        assert_eq!(command.remark.as_deref(), Some("\u{FFFD}i"));
        assert_eq!(command.ext("\u{FFFD}"), Some("\u{FFFD}g"));
        assert_eq!(command.ext_fields.len(), 1);
    }

    /// The header's fields as bytes: `(key, value)` pairs after an empty remark.
    fn header_with_fields(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut ext = Vec::new();
        for (key, value) in fields {
            ext.extend_from_slice(&(key.len() as i16).to_be_bytes());
            ext.extend_from_slice(key);
            ext.extend_from_slice(&(value.len() as i32).to_be_bytes());
            ext.extend_from_slice(value);
        }
        let mut bytes = vec![0, 34, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&(ext.len() as i32).to_be_bytes());
        bytes.extend_from_slice(&ext);
        bytes
    }

    #[test]
    fn each_key_and_value_is_text_on_its_own() {
        // "é" is C3 A9: cut between a key and its value, the header's bytes are valid UTF-8
        // as a whole but neither piece is; each piece decodes as it would alone.
        let bytes =
            header_with_fields(&[(&b"k\xC3"[..], &b"\xA9v"[..]), (&b"n"[..], "né".as_bytes())]);
        let command = decode_binary_header(&bytes).unwrap();
        assert_eq!(command.ext("k\u{FFFD}"), Some("\u{FFFD}v"));
        assert_eq!(command.ext("n"), Some("né"));
        assert_eq!(command.ext_fields.len(), 2);
        // Valid multi-byte text in keys and values, and a repeated key (the last one wins),
        // on the fast path and on the per-piece one.
        let fields: [(&[u8], &[u8]); 3] = [
            ("clé".as_bytes(), &b"1"[..]),
            (&b"k"[..], "välue".as_bytes()),
            ("clé".as_bytes(), &b"2"[..]),
        ];
        let command = decode_binary_header(&header_with_fields(&fields)).unwrap();
        assert_eq!(command.ext("clé"), Some("2"));
        assert_eq!(command.ext("k"), Some("välue"));
        assert_eq!(command.ext_fields.len(), 2);
        let mut with_invalid = fields.to_vec();
        with_invalid.push((&b"x"[..], &b"\xFF"[..]));
        let command = decode_binary_header(&header_with_fields(&with_invalid)).unwrap();
        assert_eq!(command.ext("clé"), Some("2"));
        assert_eq!(command.ext("k"), Some("välue"));
        assert_eq!(command.ext("x"), Some("\u{FFFD}"));
        assert_eq!(command.ext_fields.len(), 3);
    }

    #[test]
    fn unknown_language_decodes_as_other() {
        let (_, mut bytes) = golden();
        bytes[2] = 200;
        let command = decode_binary_header(&bytes).unwrap();
        assert_eq!(command.language, LanguageCode::Other as u8);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (_, bytes) = golden();
        for length in 0..bytes.len() {
            let error = decode_binary_header(&bytes[..length]).unwrap_err();
            assert!(
                matches!(error, FrameError::BadHeader(_)),
                "{length}: {error}"
            );
        }
    }

    #[test]
    fn negative_and_oversized_lengths_are_errors() {
        let (_, bytes) = golden();
        let cases: [(usize, &[u8]); 5] = [
            (13, &[0xFF, 0xFF, 0xFF, 0xFF]), // remark length -1
            (13, &[0x7F, 0xFF, 0xFF, 0xFF]), // remark length past the end
            (19, &[0x80, 0, 0, 0]),          // ext length negative
            (23, &[0xFF, 0xFF]),             // key length -1
            (26, &[0, 0, 0, 3]),             // value length past the ext section
        ];
        for (offset, patch) in cases {
            let mut corrupt = bytes.clone();
            corrupt[offset..offset + patch.len()].copy_from_slice(patch);
            assert!(decode_binary_header(&corrupt).is_err(), "patch at {offset}");
        }
    }
}
