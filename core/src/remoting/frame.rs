//! Framing of remoting commands on a TCP stream.
//!
//! Wire format (big-endian), one frame per command:
//! ```text
//! +----------------+---------------------------------+-------------+-----------+
//! | int32 length   | int32 header meta               | header      | body      |
//! | = 4 + H + B    | serializeType << 24 | H (24 bit)| H bytes     | B bytes   |
//! +----------------+---------------------------------+-------------+-----------+
//! ```
//! `length` counts everything after itself. The whole frame, length field included, may not
//! exceed the configured maximum (Java: `LengthFieldBasedFrameDecoder(16 MiB, 0, 4, 0, 4)`).
//! Serialize type 0 is JSON (`header_json.rs`), 1 is ROCKETMQ binary (`header_binary.rs`).
//!
//! Allocations per decoded frame: the header's strings and map; the body is a zero-copy
//! slice of the receive buffer. Per encoded frame: none beyond `dst` growing, and one small
//! vector when a JSON header sorts its ext fields.
//!
//! # Errors
//! Every [`FrameError`] means the byte stream can no longer be trusted (we cannot know where
//! the next frame starts), so the connection must be closed, as Java's `NettyDecoder` does.
//!
//! # Cancel-safety
//! `decode_frame` consumes bytes only when it returns a complete frame, so it can be called
//! again after any `Ok(None)` with more bytes appended.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::command::{RemotingCommand, SerializeType};
use super::header_binary::{decode_binary_header, write_binary_header};
use super::header_json::{decode_json_header, write_json_header};

/// Java's default `com.rocketmq.remoting.frameMaxLength`.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Size of the leading length field.
const LENGTH_FIELD: usize = 4;
/// Size of the header-meta word (serialize type + header length).
const HEADER_META: usize = 4;
/// The header length has 24 bits.
const HEADER_LENGTH_MAX: usize = 0x00FF_FFFF;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// `length` is the whole frame including the length field.
    #[error("frame of {length} bytes exceeds the maximum of {max} bytes")]
    TooLarge { length: usize, max: usize },
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("header length {header_length} does not fit in a frame of {frame_length} bytes")]
    HeaderLengthInvalid {
        header_length: usize,
        frame_length: usize,
    },
    #[error("unknown serialize type {0} in header meta")]
    UnknownSerializeType(u8),
    #[error("bad header: {0}")]
    BadHeader(String),
}

/// Decodes one complete frame from the front of `src` (advancing it) or returns Ok(None) if
/// more bytes are needed. Any Err means the stream cannot be resynchronised and the connection
/// must be closed. Checks the length against `max_frame` as soon as the 4-byte length is
/// available (before the whole frame arrives).
///
/// # Errors
/// `NegativeLength`, `TooLarge` and a length too short for the header meta (`BadHeader`) are
/// reported from the first 4 bytes; the others once the frame is complete.
pub fn decode_frame(
    src: &mut BytesMut,
    max_frame: usize,
) -> Result<Option<RemotingCommand>, FrameError> {
    let Some(field) = length_field(src) else {
        return Ok(None);
    };
    let length = frame_length(field, max_frame)?;
    if src.len() < LENGTH_FIELD + length {
        return Ok(None);
    }
    src.advance(LENGTH_FIELD);
    let frame = src.split_to(length).freeze();
    decode_frame_content(frame).map(Some)
}

/// The length field of the frame at the front of `src`, once its 4 bytes have arrived.
fn length_field(src: &[u8]) -> Option<i32> {
    let field = src.get(..LENGTH_FIELD)?;
    Some(i32::from_be_bytes(
        field.try_into().expect("LENGTH_FIELD bytes"),
    ))
}

/// The whole size (length field included) of the frame at the front of `src`, once its
/// length field has arrived: for a reader sizing its next read. Not validated: a negative
/// field gives `None`; [`decode_frame`] checks it against the frame limit.
pub fn announced_frame_len(src: &[u8]) -> Option<usize> {
    let length = usize::try_from(length_field(src)?).ok()?;
    Some(LENGTH_FIELD + length)
}

/// Validates the length field; returns the number of bytes that follow it.
fn frame_length(length: i32, max_frame: usize) -> Result<usize, FrameError> {
    let length = usize::try_from(length).map_err(|_| FrameError::NegativeLength(length))?;
    let total = LENGTH_FIELD + length;
    if total > max_frame {
        return Err(FrameError::TooLarge {
            length: total,
            max: max_frame,
        });
    }
    if length < HEADER_META {
        return Err(FrameError::BadHeader(format!(
            "frame length {length} is shorter than the {HEADER_META}-byte header meta"
        )));
    }
    Ok(length)
}

/// Decodes header meta, header and body of a frame whose length field is already removed.
fn decode_frame_content(frame: Bytes) -> Result<RemotingCommand, FrameError> {
    let meta = match frame.get(..HEADER_META) {
        Some(&[b0, b1, b2, b3]) => u32::from_be_bytes([b0, b1, b2, b3]),
        _ => {
            return Err(FrameError::BadHeader(
                "frame shorter than header meta".into(),
            ));
        }
    };
    let serialize_byte = (meta >> 24) as u8;
    let header_length = (meta & HEADER_LENGTH_MAX as u32) as usize;
    let serialize_type = SerializeType::from_u8(serialize_byte)
        .ok_or(FrameError::UnknownSerializeType(serialize_byte))?;
    let header_end = HEADER_META + header_length;
    if header_end > frame.len() {
        return Err(FrameError::HeaderLengthInvalid {
            header_length,
            frame_length: frame.len(),
        });
    }
    let header = &frame[HEADER_META..header_end];
    let mut command = match serialize_type {
        SerializeType::Json => decode_json_header(header)?,
        SerializeType::RocketMq => decode_binary_header(header)?,
    };
    command.serialize_type = serialize_type;
    command.body = frame.slice(header_end..);
    Ok(command)
}

/// Appends one frame (length, header meta, header in cmd.serialize_type, body) to dst.
///
/// # Panics
/// If the encoded header exceeds 16 MiB - 1 (its 24-bit length field) or the frame exceeds
/// `i32::MAX` bytes. Both mean a caller built an absurd command: headers are a few hundred
/// bytes and bodies are bounded by the message size limit long before this.
pub fn encode_frame(cmd: &RemotingCommand, dst: &mut BytesMut) {
    let start = dst.len();
    dst.reserve(LENGTH_FIELD + HEADER_META + 256 + cmd.body.len());
    // Placeholders, patched once the header and frame lengths are known.
    dst.put_u32(0);
    dst.put_u32(0);
    match cmd.serialize_type {
        SerializeType::Json => write_json_header(cmd, dst),
        SerializeType::RocketMq => write_binary_header(cmd, dst),
    }
    let header_length = dst.len() - start - LENGTH_FIELD - HEADER_META;
    assert!(
        header_length <= HEADER_LENGTH_MAX,
        "remoting header of {header_length} bytes exceeds the 24-bit header length field"
    );
    dst.put_slice(&cmd.body);
    let Ok(length) = i32::try_from(dst.len() - start - LENGTH_FIELD) else {
        panic!("remoting frame longer than i32::MAX bytes");
    };
    let meta = (cmd.serialize_type as u32) << 24 | header_length as u32;
    dst[start..start + LENGTH_FIELD].copy_from_slice(&length.to_be_bytes());
    dst[start + LENGTH_FIELD..start + LENGTH_FIELD + HEADER_META]
        .copy_from_slice(&meta.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::codes::LanguageCode;

    const DOC_JSON_HEADER: &[u8] = concat!(
        r#"{"code":10,"extFields":{"a":"pg","b":"T"},"flag":0,"language":"JAVA","opaque":7,"#,
        r#""serializeTypeCurrentRPC":"JSON","version":409}"#
    )
    .as_bytes();

    fn doc_command(serialize_type: SerializeType) -> RemotingCommand {
        let mut command = RemotingCommand::new_request(10)
            .with_ext("a", "pg")
            .with_ext("b", "T")
            .with_body(&b"hello"[..]);
        command.opaque = 7;
        command.serialize_type = serialize_type;
        command
    }

    /// Builds a frame by hand from the layout in the module doc.
    fn frame(serialize_type: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
        let length = (4 + header.len() + body.len()) as u32;
        let meta = (u32::from(serialize_type) << 24) | header.len() as u32;
        let mut bytes = length.to_be_bytes().to_vec();
        bytes.extend_from_slice(&meta.to_be_bytes());
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(body);
        bytes
    }

    fn binary_doc_header() -> Vec<u8> {
        let mut header = vec![0, 10, 0, 0x01, 0x99, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0];
        header.extend_from_slice(&[0, 0, 0, 17]); // ext fields of 9 + 8 bytes
        let a = [0, 1, b'a', 0, 0, 0, 2, b'p', b'g'];
        let b = [0, 1, b'b', 0, 0, 0, 1, b'T'];
        header.extend_from_slice(&a);
        header.extend_from_slice(&b);
        header
    }

    fn decode_all(bytes: &[u8]) -> Result<Option<RemotingCommand>, FrameError> {
        decode_frame(&mut BytesMut::from(bytes), DEFAULT_MAX_FRAME)
    }

    #[test]
    fn golden_json_frame() {
        let expected = frame(0, DOC_JSON_HEADER, b"hello");
        let mut encoded = BytesMut::new();
        encode_frame(&doc_command(SerializeType::Json), &mut encoded);
        assert_eq!(&encoded[..], &expected[..]);
        let decoded = decode_all(&expected).unwrap().unwrap();
        assert_eq!(decoded, doc_command(SerializeType::Json));
    }

    #[test]
    fn golden_binary_frame_decodes_either_ext_order() {
        let expected = frame(1, &binary_doc_header(), b"hello");
        let decoded = decode_all(&expected).unwrap().unwrap();
        assert_eq!(decoded, doc_command(SerializeType::RocketMq));
        // HashMap order decides the ext field order on encode, so compare the frame via a
        // re-decode plus the parts whose position is fixed.
        let mut encoded = BytesMut::new();
        encode_frame(&decoded, &mut encoded);
        assert_eq!(encoded.len(), expected.len());
        assert_eq!(&encoded[..29], &expected[..29]);
        assert_eq!(&encoded[encoded.len() - 5..], b"hello");
        assert_eq!(decode_all(&encoded).unwrap().unwrap(), decoded);
    }

    #[test]
    fn round_trips_in_both_serializations() {
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let mut request = doc_command(serialize_type);
            request.language = LanguageCode::Cpp as u8;
            let mut response = RemotingCommand::response_for(&request, 1, Some("boom".into()))
                .with_ext("queueOffset", -1)
                .with_body(vec![0u8; 70_000]);
            response.mark_oneway();
            for command in [request, response] {
                let mut encoded = BytesMut::new();
                encode_frame(&command, &mut encoded);
                let decoded = decode_frame(&mut encoded, DEFAULT_MAX_FRAME).unwrap();
                assert_eq!(decoded.as_ref(), Some(&command));
                assert!(encoded.is_empty());
            }
        }
    }

    #[test]
    fn partial_frames_wait_then_decode() {
        let bytes = frame(0, DOC_JSON_HEADER, b"hello");
        let mut src = BytesMut::new();
        for &byte in &bytes[..bytes.len() - 1] {
            src.put_u8(byte);
            assert!(decode_frame(&mut src, DEFAULT_MAX_FRAME).unwrap().is_none());
        }
        assert_eq!(
            src.len(),
            bytes.len() - 1,
            "nothing consumed while incomplete"
        );
        src.put_u8(bytes[bytes.len() - 1]);
        let decoded = decode_frame(&mut src, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(decoded.body, Bytes::from_static(b"hello"));
        assert!(src.is_empty());
    }

    #[test]
    fn back_to_back_frames_then_a_partial_one() {
        let mut src = BytesMut::new();
        src.extend_from_slice(&frame(0, DOC_JSON_HEADER, b"one"));
        src.extend_from_slice(&frame(1, &binary_doc_header(), b""));
        let third = frame(0, br#"{"code":11}"#, b"");
        src.extend_from_slice(&third[..6]);
        let first = decode_frame(&mut src, DEFAULT_MAX_FRAME).unwrap().unwrap();
        let second = decode_frame(&mut src, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(
            (first.body.as_ref(), first.serialize_type),
            (&b"one"[..], SerializeType::Json)
        );
        assert_eq!(second.serialize_type, SerializeType::RocketMq);
        assert!(second.body.is_empty());
        assert!(decode_frame(&mut src, DEFAULT_MAX_FRAME).unwrap().is_none());
        src.extend_from_slice(&third[6..]);
        let last = decode_frame(&mut src, DEFAULT_MAX_FRAME).unwrap().unwrap();
        assert_eq!(last.code, 11);
    }

    #[test]
    fn oversize_length_rejected_before_the_body_arrives() {
        let mut src = BytesMut::from(&1000u32.to_be_bytes()[..]);
        let error = decode_frame(&mut src, 1000).unwrap_err();
        assert!(
            matches!(
                error,
                FrameError::TooLarge {
                    length: 1004,
                    max: 1000
                }
            ),
            "{error}"
        );
        // Exactly at the limit is fine (and incomplete).
        let mut src = BytesMut::from(&996u32.to_be_bytes()[..]);
        assert!(decode_frame(&mut src, 1000).unwrap().is_none());
        let huge = BytesMut::from(&0x7FFF_FFFFu32.to_be_bytes()[..]);
        assert!(matches!(
            decode_frame(&mut huge.clone(), DEFAULT_MAX_FRAME),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn negative_and_tiny_lengths_rejected() {
        let error = decode_all(&(-5i32).to_be_bytes()).unwrap_err();
        assert!(matches!(error, FrameError::NegativeLength(-5)), "{error}");
        let error = decode_all(&[0, 0, 0, 3, 0, 0, 0]).unwrap_err();
        assert!(matches!(error, FrameError::BadHeader(_)), "{error}");
    }

    #[test]
    fn header_length_beyond_frame_rejected() {
        let mut bytes = frame(0, br#"{"code":11}"#, b"");
        bytes[7] += 1;
        let error = decode_all(&bytes).unwrap_err();
        assert!(
            matches!(
                error,
                FrameError::HeaderLengthInvalid {
                    header_length: 12,
                    frame_length: 15
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn bad_json_header_rejected() {
        let error = decode_all(&frame(0, b"{\"code\":", b"body")).unwrap_err();
        assert!(matches!(error, FrameError::BadHeader(_)), "{error}");
    }

    #[test]
    fn unknown_serialize_type_rejected() {
        let error = decode_all(&frame(2, br#"{"code":11}"#, b"")).unwrap_err();
        assert!(
            matches!(error, FrameError::UnknownSerializeType(2)),
            "{error}"
        );
    }

    #[test]
    fn truncated_binary_header_rejected() {
        let header = binary_doc_header();
        let error = decode_all(&frame(1, &header[..header.len() - 3], b"")).unwrap_err();
        assert!(matches!(error, FrameError::BadHeader(_)), "{error}");
    }

    /// xorshift64: deterministic, seedable, no dependency.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    /// Decodes until the stream needs more bytes or fails; must never panic.
    fn drain(bytes: &[u8], max_frame: usize) {
        let mut src = BytesMut::from(bytes);
        while let Ok(Some(_)) = decode_frame(&mut src, max_frame) {}
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let length = rng.below(64);
            let mut bytes: Vec<u8> = (0..length).map(|_| rng.next() as u8).collect();
            // Small plausible lengths and serialize types reach the header decoders.
            if bytes.len() >= 8 && rng.below(2) == 0 {
                let frame_length = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&frame_length.to_be_bytes());
                bytes[4] = rng.below(3) as u8;
                bytes[5] = 0;
                bytes[6] = 0;
            }
            drain(&bytes, 1 + rng.below(128));
        }
    }

    #[test]
    fn mutated_valid_frames_never_panic() {
        let mut rng = Xorshift(0xD1B5_4A32_D192_ED03);
        let mut seeds = Vec::new();
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let mut encoded = BytesMut::new();
            encode_frame(&doc_command(serialize_type), &mut encoded);
            seeds.push(encoded.to_vec());
        }
        seeds.push(frame(
            0,
            br#"{code:10,extFields:{'a':1,b:null},language:"GO"}"#,
            b"x",
        ));
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let index = rng.below(bytes.len());
                bytes[index] = rng.next() as u8;
            }
            bytes.truncate(bytes.len() - rng.below(bytes.len() / 4 + 1));
            drain(&bytes, DEFAULT_MAX_FRAME);
        }
    }

    /// A JSON header whose extFields are `names`, as a whole frame.
    fn json_frame_with_fields(names: &[String]) -> BytesMut {
        let mut header = String::from(r#"{"code":10,"opaque":1,"extFields":{"#);
        for (n, name) in names.iter().enumerate() {
            if n > 0 {
                header.push(',');
            }
            header.push('"');
            for c in name.chars() {
                match c {
                    '"' | '\\' => header.push_str(&format!("\\u{:04x}", c as u32)),
                    c if (c as u32) < 0x20 => header.push_str(&format!("\\u{:04x}", c as u32)),
                    c => header.push(c),
                }
            }
            header.push_str(r#"":"v""#);
        }
        header.push_str("}}");
        let mut frame = BytesMut::new();
        frame.put_i32((HEADER_META + header.len()) as i32);
        frame.put_u32(header.len() as u32);
        frame.extend_from_slice(header.as_bytes());
        frame
    }

    /// A RocketMQ-binary header whose extFields are `names`, as a whole frame.
    fn binary_frame_with_fields(names: &[String]) -> BytesMut {
        // By hand: code, language, version, opaque, flag, remark length (0), ext length and
        // the fields.
        let mut fields = Vec::new();
        for name in names {
            fields.put_i16(name.len() as i16);
            fields.extend_from_slice(name.as_bytes());
            fields.put_i32(1);
            fields.put_u8(b'v');
        }
        let mut header = Vec::new();
        header.put_i16(10);
        header.put_u8(0);
        header.put_i16(0);
        header.put_i32(1);
        header.put_i32(0);
        header.put_i32(0);
        header.put_i32(fields.len() as i32);
        header.extend_from_slice(&fields);
        let mut frame = BytesMut::new();
        frame.put_i32((HEADER_META + header.len()) as i32);
        frame.put_u32((1 << 24) | header.len() as u32);
        frame.extend_from_slice(&header);
        frame
    }

    /// 20,000 names crafted to collide under the old unseeded extFields hash (with it,
    /// 100,000 of them cost 18 s of a core): refused by the field cap at once, in both
    /// encodings; a header at the cap made of such names still decodes quickly.
    #[test]
    fn colliding_ext_field_names_cost_bounded_time() {
        use crate::remoting::ext_fields::MAX_EXT_FIELDS;
        use crate::remoting::field_hash::tests::colliding_names;
        let names = colliding_names(20_000);
        for mut frame in [
            json_frame_with_fields(&names),
            binary_frame_with_fields(&names),
        ] {
            let started = std::time::Instant::now();
            match decode_frame(&mut frame, DEFAULT_MAX_FRAME) {
                Err(FrameError::BadHeader(text)) => assert!(text.contains("extFields"), "{text}"),
                Ok(Some(command)) => panic!("{} fields accepted", command.ext_fields.len()),
                other => panic!("expected the field cap to refuse the header, got {other:?}"),
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
        let at_cap = &names[..MAX_EXT_FIELDS];
        for mut frame in [
            json_frame_with_fields(at_cap),
            binary_frame_with_fields(at_cap),
        ] {
            let started = std::time::Instant::now();
            let command = decode_frame(&mut frame, DEFAULT_MAX_FRAME)
                .unwrap()
                .unwrap();
            assert_eq!(command.ext_fields.len(), MAX_EXT_FIELDS);
            assert_eq!(command.ext(&at_cap[7]), Some("v"));
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
    }

    #[test]
    fn announced_frame_len_needs_the_whole_length_field() {
        assert_eq!(announced_frame_len(&[0, 0, 1]), None);
        assert_eq!(announced_frame_len(&[0, 0, 1, 0, 9, 9]), Some(4 + 256));
        assert_eq!(
            announced_frame_len(&(-1i32).to_be_bytes()),
            None,
            "negative"
        );
    }
}
