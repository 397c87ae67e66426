//! JSON remoting header (serialize type 0), the default of every Java client.
//!
//! Wire format, exactly as fastjson writes `RemotingCommand` (keys sorted, absent ones omitted):
//! ```text
//! {"code":10,"extFields":{"a":"pg","b":"T"},"flag":0,"language":"JAVA","opaque":7,
//!  "remark":"...","serializeTypeCurrentRPC":"JSON","version":409}
//! ```
//! `extFields` is omitted when empty and `remark` when `None`. We write `extFields` keys in
//! sorted order (Java writes `HashMap` order, which no reader depends on) so that output is
//! deterministic and testable.
//!
//! Decoding is lenient, because all of these have been seen from real clients:
//! - `serializeTypeCurrentRPC` missing (it is ignored: the frame's meta byte decides);
//! - `extFields` values that are numbers or booleans (stringified), or `null` (skipped);
//! - `language` as a name (any case; unknown names give `OTHER`) or as an ordinal;
//! - `code`/`opaque`/`flag`/`version` as numbers or numeric strings; `null` or missing = 0;
//! - unknown keys; unquoted keys and single-quoted strings (via `lenient_json`).
//!
//! The encoder writes straight into the caller's buffer with no intermediate allocation
//! beyond one small vector to sort the `extFields` keys.
//!
//! # Errors
//! [`FrameError::BadHeader`] when the bytes are not a JSON object of that shape, or a number
//! does not fit in an int32.

use crate::remoting::ext_fields::{ExtFields, MAX_EXT_FIELDS};
use std::fmt;

use bytes::BufMut;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::codes::LanguageCode;
use super::command::{RemotingCommand, SerializeType};
use super::frame::FrameError;
use super::header_json_fast::decode_fast;
use super::lenient_json::from_slice_lenient;

/// Appends the JSON header of `cmd` to `dst`.
pub fn encode_json_header(cmd: &RemotingCommand, dst: &mut Vec<u8>) {
    write_json_header(cmd, dst);
}

/// Decodes a JSON header. The result has an empty body and `SerializeType::Json`.
///
/// The common shape takes the one-pass path of `header_json_fast`; anything it declines is
/// read by serde_json here, which decides every error and lenient form.
pub fn decode_json_header(bytes: &[u8]) -> Result<RemotingCommand, FrameError> {
    match decode_fast(bytes) {
        Some(command) => Ok(command),
        None => decode_json_header_serde(bytes),
    }
}

/// The reference decoder (see [`decode_json_header`]).
pub(crate) fn decode_json_header_serde(bytes: &[u8]) -> Result<RemotingCommand, FrameError> {
    let header: JsonHeader = from_slice_lenient(bytes)
        .map_err(|error| FrameError::BadHeader(format!("invalid JSON header: {error}")))?;
    Ok(RemotingCommand {
        code: header.code,
        language: header.language.unwrap_or(LanguageCode::Java) as u8,
        version: header.version,
        opaque: header.opaque,
        flag: header.flag,
        remark: header.remark,
        ext_fields: header.ext_fields,
        serialize_type: SerializeType::Json,
        body: bytes::Bytes::new(),
    })
}

/// Generic over the buffer so that `encode_frame` writes into its `BytesMut` directly.
pub(crate) fn write_json_header<B: BufMut>(cmd: &RemotingCommand, dst: &mut B) {
    dst.put_slice(b"{\"code\":");
    put_decimal(dst, i64::from(cmd.code));
    if !cmd.ext_fields.is_empty() {
        dst.put_slice(b",\"extFields\":{");
        let mut fields: Vec<(&str, &str)> = cmd.ext_fields.iter().collect();
        fields.sort_unstable_by(|left, right| left.0.cmp(right.0));
        for (index, (key, value)) in fields.into_iter().enumerate() {
            if index > 0 {
                dst.put_u8(b',');
            }
            put_json_string(dst, key);
            dst.put_u8(b':');
            put_json_string(dst, value);
        }
        dst.put_u8(b'}');
    }
    dst.put_slice(b",\"flag\":");
    put_decimal(dst, i64::from(cmd.flag));
    let language = LanguageCode::from_u8(cmd.language).unwrap_or(LanguageCode::Other);
    dst.put_slice(b",\"language\":\"");
    dst.put_slice(language.name().as_bytes());
    dst.put_slice(b"\",\"opaque\":");
    put_decimal(dst, i64::from(cmd.opaque));
    if let Some(remark) = &cmd.remark {
        dst.put_slice(b",\"remark\":");
        put_json_string(dst, remark);
    }
    dst.put_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    put_decimal(dst, i64::from(cmd.version));
    dst.put_u8(b'}');
}

fn put_decimal<B: BufMut>(dst: &mut B, value: i64) {
    // 20 digits hold u64::MAX, so any i64 magnitude fits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut magnitude = value.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if value < 0 {
        dst.put_u8(b'-');
    }
    dst.put_slice(&digits[start..]);
}

/// Writes a JSON string the way fastjson does: short escapes for `"` `\` and the common
/// control characters, `\u00XX` for the rest below 0x20 (properties use 0x01 and 0x02 as
/// separators), everything else as raw UTF-8.
fn put_json_string<B: BufMut>(dst: &mut B, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    dst.put_u8(b'"');
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let short_escape = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0C => b'f',
            0x00..=0x1F => 0,
            _ => continue,
        };
        dst.put_slice(&bytes[run_start..index]);
        run_start = index + 1;
        if short_escape == 0 {
            let unicode = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xF)],
            ];
            dst.put_slice(&unicode);
        } else {
            dst.put_slice(&[b'\\', short_escape]);
        }
    }
    dst.put_slice(&bytes[run_start..]);
    dst.put_u8(b'"');
}

/// The header as it arrives. Absent and `null` fields take Java's defaults.
#[derive(Deserialize)]
struct JsonHeader {
    #[serde(default, deserialize_with = "lenient_i32")]
    code: i32,
    #[serde(default, deserialize_with = "lenient_language")]
    language: Option<LanguageCode>,
    #[serde(default, deserialize_with = "lenient_i32")]
    version: i32,
    #[serde(default, deserialize_with = "lenient_i32")]
    opaque: i32,
    #[serde(default, deserialize_with = "lenient_i32")]
    flag: i32,
    #[serde(default, deserialize_with = "lenient_text")]
    remark: Option<String>,
    #[serde(default, rename = "extFields", deserialize_with = "lenient_ext_fields")]
    ext_fields: ExtFields,
}

fn lenient_i32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    deserializer.deserialize_any(I32Visitor)
}

struct I32Visitor;

impl<'de> Visitor<'de> for I32Visitor {
    type Value = i32;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an int32 as a number or a numeric string")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i32, E> {
        i32::try_from(value).map_err(|_| E::custom(format!("{value} does not fit in an int32")))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i32, E> {
        i32::try_from(value).map_err(|_| E::custom(format!("{value} does not fit in an int32")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<i32, E> {
        i32_from_text(value).map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<i32, E> {
        Ok(0)
    }
}

/// An int32 written as a string: trimmed; empty is 0.
pub(crate) fn i32_from_text(value: &str) -> Result<i32, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(0);
    }
    trimmed
        .parse()
        .map_err(|_| format!("{value:?} is not an int32"))
}

/// A language written as a string: a name in any case, or an ordinal; else `OTHER`.
pub(crate) fn language_from_text(value: &str) -> LanguageCode {
    let by_ordinal = || {
        value
            .trim()
            .parse::<u8>()
            .ok()
            .and_then(LanguageCode::from_u8)
    };
    LanguageCode::from_name(value)
        .or_else(by_ordinal)
        .unwrap_or(LanguageCode::Other)
}

/// A language written as a non-negative number; unknown ordinals are `OTHER`.
pub(crate) fn language_from_ordinal(value: u64) -> LanguageCode {
    u8::try_from(value)
        .ok()
        .and_then(LanguageCode::from_u8)
        .unwrap_or(LanguageCode::Other)
}

fn lenient_language<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<LanguageCode>, D::Error> {
    deserializer.deserialize_any(LanguageVisitor)
}

struct LanguageVisitor;

impl<'de> Visitor<'de> for LanguageVisitor {
    type Value = Option<LanguageCode>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a language name or ordinal")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Some(language_from_text(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Some(language_from_ordinal(value)))
    }

    fn visit_i64<E: de::Error>(self, _value: i64) -> Result<Self::Value, E> {
        // Only negative values reach here (serde_json reports non-negatives as u64).
        Ok(Some(LanguageCode::Other))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

fn lenient_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    deserializer.deserialize_any(TextVisitor)
}

/// Accepts a string, number or boolean as text, and `null` as `None`. Arrays and objects are
/// kept as their compact JSON text rather than rejected: fastjson would have done the same
/// when casting them to `String`.
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<String>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string, number, boolean or null")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Some(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Some(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Some(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Some(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Some(value.to_string()))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Some(value.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Some(value.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Some(value.to_string()))
    }
}

/// Wraps [`TextVisitor`] so it can be a map value type.
struct ExtValue(Option<String>);

impl<'de> Deserialize<'de> for ExtValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor).map(ExtValue)
    }
}

fn lenient_ext_fields<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ExtFields, D::Error> {
    deserializer.deserialize_option(ExtFieldsVisitor)
}

/// Reads `extFields` straight into [`ExtFields`] (no intermediate map), refusing more than
/// [`MAX_EXT_FIELDS`] of them; `null` values are skipped, a `null` map is empty.
struct ExtFieldsVisitor;

impl<'de> Visitor<'de> for ExtFieldsVisitor {
    type Value = ExtFields;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of header fields or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<ExtFields, E> {
        Ok(ExtFields::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<ExtFields, E> {
        Ok(ExtFields::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<ExtFields, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExtFields, A::Error> {
        let mut fields = ExtFields::default();
        let mut seen = 0usize;
        while let Some((key, ExtValue(value))) = map.next_entry::<String, ExtValue>()? {
            seen += 1;
            if seen > MAX_EXT_FIELDS {
                return Err(de::Error::custom(format!(
                    "more than {MAX_EXT_FIELDS} extFields in one header"
                )));
            }
            if let Some(value) = value {
                fields.push_decoded(&key, &value);
            }
        }
        fields.finish_decoding();
        Ok(fields)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const DOC_EXAMPLE: &str = concat!(
        r#"{"code":10,"extFields":{"a":"pg","b":"T"},"flag":0,"language":"JAVA","opaque":7,"#,
        r#""serializeTypeCurrentRPC":"JSON","version":409}"#
    );

    fn doc_example_command() -> RemotingCommand {
        let mut command = RemotingCommand::new_request(10)
            .with_ext("b", "T")
            .with_ext("a", "pg");
        command.opaque = 7;
        command
    }

    fn encode(command: &RemotingCommand) -> String {
        let mut bytes = Vec::new();
        encode_json_header(command, &mut bytes);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn encodes_the_doc_example_byte_for_byte() {
        assert_eq!(encode(&doc_example_command()), DOC_EXAMPLE);
    }

    #[test]
    fn encodes_response_with_remark_and_no_ext_fields() {
        let request = doc_example_command();
        let response = RemotingCommand::response_for(&request, 17, Some("no \"T\"\n".into()));
        assert_eq!(
            encode(&response),
            concat!(
                r#"{"code":17,"flag":1,"language":"JAVA","opaque":7,"remark":"no \"T\"\n","#,
                r#""serializeTypeCurrentRPC":"JSON","version":409}"#
            )
        );
    }

    #[test]
    fn decodes_the_doc_example() {
        let command = decode_json_header(DOC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(command, doc_example_command());
    }

    #[test]
    fn round_trips_escapes_negatives_and_unicode() {
        let mut command = RemotingCommand::new_request(-3)
            .with_ext("i", "TAGS\u{1}a\u{2}KEYS\u{1}k1 k2\u{2}")
            .with_ext("quote\\", "\"\t\u{8}\u{c}\r\u{1f}/é中");
        command.opaque = i32::MIN;
        command.flag = 3;
        command.version = i32::MAX;
        command.language = LanguageCode::Rust as u8;
        command.remark = Some(String::new());
        let text = encode(&command);
        assert!(
            text.contains(r#""i":"TAGS\u0001a\u0002KEYS\u0001k1 k2\u0002""#),
            "{text}"
        );
        assert!(text.contains(r#""language":"RUST""#));
        assert_eq!(decode_json_header(text.as_bytes()).unwrap(), command);
        // What we write takes the one-pass path, and the serde path reads it the same.
        assert_eq!(decode_fast(text.as_bytes()).as_ref(), Some(&command));
        assert_eq!(decode_json_header_serde(text.as_bytes()).unwrap(), command);
        let strict: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(strict["extFields"]["quote\\"], "\"\t\u{8}\u{c}\r\u{1f}/é中");
    }

    #[test]
    fn lenient_numbers_languages_and_missing_fields() {
        let text = br#"{"code":"10","opaque":" 7 ","flag":null,"language":9,"version":"409"}"#;
        let command = decode_json_header(text).unwrap();
        assert_eq!((command.code, command.opaque, command.flag), (10, 7, 0));
        assert_eq!(command.language, LanguageCode::Go as u8);
        assert_eq!(command.version, 409);
        assert!(command.ext_fields.is_empty() && command.remark.is_none());

        let named = decode_json_header(br#"{"code":34,"language":"cpp"}"#).unwrap();
        assert_eq!(named.language, LanguageCode::Cpp as u8);
        for unknown in [r#""COBOL""#, "99", "-1", r#""""#] {
            let text = format!(r#"{{"code":34,"language":{unknown}}}"#);
            let command = decode_json_header(text.as_bytes()).unwrap();
            assert_eq!(command.language, LanguageCode::Other as u8, "{unknown}");
        }
        let bare = decode_json_header(b"{}").unwrap();
        assert_eq!(bare.language, LanguageCode::Java as u8);
    }

    #[test]
    fn lenient_ext_field_values() {
        let text = concat!(
            r#"{"code":10,"extFields":{"queueId":3,"offset":-9000000000,"batch":true,"f":1.5,"#,
            r#""gone":null,"nested":{"x":[1]},"s":"v"},"unknownKey":{"deep":[1,2]}}"#
        )
        .as_bytes();
        let command = decode_json_header(text).unwrap();
        assert_eq!(command.ext("queueId"), Some("3"));
        assert_eq!(command.ext("offset"), Some("-9000000000"));
        assert_eq!(command.ext("batch"), Some("true"));
        assert_eq!(command.ext("f"), Some("1.5"));
        assert_eq!(command.ext("gone"), None);
        assert_eq!(command.ext("nested"), Some(r#"{"x":[1]}"#));
        assert_eq!(command.ext("s"), Some("v"));
        assert_eq!(command.ext_fields.len(), 6);
        let null_map = decode_json_header(br#"{"code":10,"extFields":null,"remark":null}"#);
        assert!(null_map.unwrap().ext_fields.is_empty());
    }

    #[test]
    fn lenient_unquoted_keys() {
        let text = br#"{code:105,extFields:{topic:'T',0:"x"},language:"JAVA",opaque:1}"#;
        let command = decode_json_header(text).unwrap();
        assert_eq!(command.code, 105);
        assert_eq!(command.ext("topic"), Some("T"));
        assert_eq!(command.ext("0"), Some("x"));
    }

    /// Headers the decoder refuses (the one-pass path must decline each of them too).
    pub(crate) const BAD_HEADERS: &[&[u8]] = &[
        b"",
        b"{",
        b"not json",
        br#"{"code":"ten"}"#,
        br#"{"code":2147483648}"#,
        br#"{"opaque":1.5}"#,
        br#"{"extFields":[1]}"#,
        b"\xff\xfe",
    ];

    #[test]
    fn bad_headers_are_errors() {
        for &text in BAD_HEADERS {
            let error = decode_json_header(text).unwrap_err();
            assert!(
                matches!(error, FrameError::BadHeader(_)),
                "{text:?}: {error}"
            );
        }
    }
}
