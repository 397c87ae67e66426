//! `RemotingCommand`: one request or response of the RocketMQ remoting protocol, in memory.
//!
//! Wire format (encoded by `frame.rs`, headers by `header_json.rs` / `header_binary.rs`):
//! ```text
//! header fields: code, language, version, opaque, flag, remark?, extFields?
//! flag bit 0 (RPC_TYPE_RESPONSE) = this is a response; bit 1 (RPC_TYPE_ONEWAY) = no reply
//! extFields:     every "custom header" field of the Java header class, stringified
//! ```
//!
//! Tradeoff: Java decodes `extFields` into typed header classes by reflection. We keep the
//! string map and give typed, lenient accessors (`ext_i64`, `ext_opt_bool`, ...) so that each
//! processor reads exactly the fields it needs and reports a missing one the way Java does.
//!
//! # Errors
//! The accessors return [`HeaderError`], whose text matches Java's
//! `RemotingCommandException` ("the custom field <queueId> is null"); processors send it back
//! as the remark of a `SYSTEM_ERROR` response.

use crate::remoting::ext_fields::ExtFields;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use super::codes::LanguageCode;

/// Flag bit set on responses.
pub const RPC_TYPE_RESPONSE: i32 = 1;
/// Flag bit set on one-way requests: the receiver must not reply.
pub const RPC_TYPE_ONEWAY: i32 = 1 << 1;

/// `MQVersion.Version.V4_9_8.ordinal()`: the version we claim in requests we originate.
pub const VERSION_V4_9_8: i32 = 409;

/// How a header is encoded; the high byte of the frame's header-meta word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum SerializeType {
    #[default]
    Json = 0,
    RocketMq = 1,
}

impl SerializeType {
    /// The variant for the header-meta high byte; `None` for unknown bytes.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }

    /// The Java enum name (`"JSON"`, `"ROCKETMQ"`), as JSON headers write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::RocketMq => "ROCKETMQ",
        }
    }
}

/// One remoting request or response.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotingCommand {
    /// Request code (`request_code::*`) or, in a response, a `ResponseCode` value.
    pub code: i32,
    /// `LanguageCode` ordinal of the sender; unknown names decode to `Other` (7).
    pub language: u8,
    /// Sender's `MQVersion` ordinal.
    pub version: i32,
    /// Request id; the response echoes it.
    pub opaque: i32,
    /// `RPC_TYPE_RESPONSE` / `RPC_TYPE_ONEWAY` bits.
    pub flag: i32,
    /// Error text of a response; `None` is distinct from an empty remark only in JSON.
    pub remark: Option<String>,
    /// Stringified custom header fields.
    pub ext_fields: ExtFields,
    /// How the header was decoded, and will be encoded.
    pub serialize_type: SerializeType,
    /// Opaque body bytes (message payload or a JSON document).
    pub body: Bytes,
}

/// A custom header field is missing or does not parse as the type the processor needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the custom field <{field}> {reason}")]
pub struct HeaderError {
    pub field: String,
    pub reason: String,
}

impl HeaderError {
    fn missing(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            reason: "is null".to_owned(),
        }
    }

    fn unparsable(field: &str, what: &str, value: &str) -> Self {
        Self {
            field: field.to_owned(),
            reason: format!("is not {what}: {value:?}"),
        }
    }
}

impl RemotingCommand {
    /// A request with `code`, claiming to be a 4.9.8 Java client. The caller sets `opaque`.
    pub fn new_request(code: i32) -> Self {
        Self {
            code,
            language: LanguageCode::Java as u8,
            version: VERSION_V4_9_8,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::default(),
            serialize_type: SerializeType::Json,
            body: Bytes::new(),
        }
    }

    /// The response to `req`: same opaque and serialize type (Java replies in the request's
    /// serialization, and clients match replies by opaque), response flag set.
    pub fn response_for(req: &RemotingCommand, code: i32, remark: Option<String>) -> Self {
        Self {
            code,
            language: LanguageCode::Java as u8,
            version: req.version,
            opaque: req.opaque,
            flag: RPC_TYPE_RESPONSE,
            remark,
            ext_fields: ExtFields::default(),
            serialize_type: req.serialize_type,
            body: Bytes::new(),
        }
    }

    pub fn is_response(&self) -> bool {
        self.flag & RPC_TYPE_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & RPC_TYPE_ONEWAY != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= RPC_TYPE_ONEWAY;
    }

    pub fn mark_response(&mut self) {
        self.flag |= RPC_TYPE_RESPONSE;
    }

    /// Room for `additional` more custom header fields: a response that sets several (a send's
    /// five) reserves them at once instead of regrowing and rehashing its map on the way.
    pub fn with_ext_capacity(mut self, additional: usize) -> Self {
        self.ext_fields.reserve(additional);
        self
    }

    /// Builder form of [`set_ext`](Self::set_ext).
    pub fn with_ext(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.set_ext(key, value);
        self
    }

    /// [`with_ext`](Self::with_ext) for a value that is text already: copied as is, without
    /// the formatting machinery (a hot response's constant fields).
    pub fn with_ext_str(mut self, key: &str, value: &str) -> Self {
        self.ext_fields.insert(key, value);
        self
    }

    /// Sets a custom header field; values are stringified as Java does (`true`, `42`),
    /// written straight into the header's text.
    pub fn set_ext(&mut self, key: &str, value: impl fmt::Display) {
        self.ext_fields.insert_display(key, value);
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The raw value of a custom header field.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }

    /// A required field, as text (an empty string counts as present, as in Java).
    pub fn ext_str(&self, key: &str) -> Result<&str, HeaderError> {
        self.ext(key).ok_or_else(|| HeaderError::missing(key))
    }

    /// A required int32 field; surrounding whitespace is tolerated.
    pub fn ext_i32(&self, key: &str) -> Result<i32, HeaderError> {
        self.field(key).i32()
    }

    /// A required int64 field; surrounding whitespace is tolerated.
    pub fn ext_i64(&self, key: &str) -> Result<i64, HeaderError> {
        self.field(key).i64()
    }

    /// A required boolean field: `true`/`false` in any case, or `1`/`0`.
    pub fn ext_bool(&self, key: &str) -> Result<bool, HeaderError> {
        self.field(key).bool()
    }

    /// An optional int32 field: missing or empty is `Ok(None)`, garbage is an error.
    pub fn ext_opt_i32(&self, key: &str) -> Result<Option<i32>, HeaderError> {
        self.field(key).opt_i32()
    }

    /// An optional int64 field: missing or empty is `Ok(None)`, garbage is an error.
    pub fn ext_opt_i64(&self, key: &str) -> Result<Option<i64>, HeaderError> {
        self.field(key).opt_i64()
    }

    /// An optional boolean field: missing or empty is `Ok(None)`, garbage is an error.
    pub fn ext_opt_bool(&self, key: &str) -> Result<Option<bool>, HeaderError> {
        self.field(key).opt_bool()
    }

    /// The custom header field `name`, looked up, for the typed readers of [`Field`].
    pub fn field<'a>(&'a self, name: &'a str) -> Field<'a> {
        Field {
            name,
            value: self.ext(name),
        }
    }
}

/// A custom header field and its value if the command has it: the typed readers of
/// `RemotingCommand::ext_*` for a field already looked up (a processor that reads a
/// whole header in one pass over its fields builds these itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

impl<'a> Field<'a> {
    /// Required, as text (an empty string counts as present, as in Java).
    pub fn str(self) -> Result<&'a str, HeaderError> {
        self.value.ok_or_else(|| HeaderError::missing(self.name))
    }

    /// A required int32; surrounding whitespace is tolerated.
    pub fn i32(self) -> Result<i32, HeaderError> {
        parse_number(self.name, self.str()?)
    }

    /// A required int64; surrounding whitespace is tolerated.
    pub fn i64(self) -> Result<i64, HeaderError> {
        parse_number(self.name, self.str()?)
    }

    /// A required boolean: `true`/`false` in any case, or `1`/`0`.
    pub fn bool(self) -> Result<bool, HeaderError> {
        parse_bool(self.name, self.str()?)
    }

    /// An optional int32: missing or empty is `Ok(None)`, garbage is an error.
    pub fn opt_i32(self) -> Result<Option<i32>, HeaderError> {
        self.present()
            .map(|v| parse_number(self.name, v))
            .transpose()
    }

    /// An optional int64: missing or empty is `Ok(None)`, garbage is an error.
    pub fn opt_i64(self) -> Result<Option<i64>, HeaderError> {
        self.present()
            .map(|v| parse_number(self.name, v))
            .transpose()
    }

    /// An optional boolean: missing or empty is `Ok(None)`, garbage is an error.
    pub fn opt_bool(self) -> Result<Option<bool>, HeaderError> {
        self.present().map(|v| parse_bool(self.name, v)).transpose()
    }

    /// The value unless it is missing or blank: non-Java clients send `""` for an unset
    /// optional number.
    fn present(self) -> Option<&'a str> {
        self.value.filter(|v| !trim(v).is_empty())
    }
}

/// `value.trim()`, skipping the Unicode whitespace scan when the value starts and ends with
/// printable ASCII (every number and boolean a client sends).
fn trim(value: &str) -> &str {
    let printable = |byte: Option<&u8>| byte.is_some_and(|&b| b > b' ' && b < 0x7F);
    let bytes = value.as_bytes();
    if printable(bytes.first()) && printable(bytes.last()) {
        value
    } else {
        value.trim()
    }
}

fn parse_number<T: FromStr>(key: &str, value: &str) -> Result<T, HeaderError> {
    trim(value)
        .parse()
        .map_err(|_| HeaderError::unparsable(key, "a number", value))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, HeaderError> {
    let trimmed = trim(value);
    if trimmed.eq_ignore_ascii_case("true") || trimmed == "1" {
        Ok(true)
    } else if trimmed.eq_ignore_ascii_case("false") || trimmed == "0" {
        Ok(false)
    } else {
        Err(HeaderError::unparsable(key, "a boolean", value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_is_str_trim() {
        for value in [
            "",
            " ",
            "42",
            " 42",
            "42 ",
            "\t-7\n",
            "\u{3000}5\u{3000}",
            "5\u{85}",
            "true",
            "\u{7f}1",
            "x y",
        ] {
            assert_eq!(trim(value), value.trim(), "{value:?}");
        }
        let request = RemotingCommand::new_request(10)
            .with_ext("a", " 42\t")
            .with_ext("b", "\u{3000}7")
            .with_ext("c", "  ");
        assert_eq!(request.ext_i32("a"), Ok(42));
        assert_eq!(request.ext_opt_i64("b"), Ok(Some(7)));
        assert_eq!(request.ext_opt_i32("c"), Ok(None));
    }

    #[test]
    fn request_and_response_flags() {
        let mut request = RemotingCommand::new_request(10);
        request.opaque = 42;
        request.version = 401;
        request.serialize_type = SerializeType::RocketMq;
        assert!(!request.is_response() && !request.is_oneway());
        assert_eq!(request.language, LanguageCode::Java as u8);

        let response = RemotingCommand::response_for(&request, 17, Some("no topic".into()));
        assert!(response.is_response() && !response.is_oneway());
        assert_eq!(response.opaque, 42);
        assert_eq!(response.version, 401);
        assert_eq!(response.serialize_type, SerializeType::RocketMq);
        assert_eq!(response.remark.as_deref(), Some("no topic"));

        request.mark_oneway();
        assert!(request.is_oneway());
        request.mark_response();
        assert_eq!(request.flag, RPC_TYPE_RESPONSE | RPC_TYPE_ONEWAY);
    }

    #[test]
    fn typed_accessors() {
        let command = RemotingCommand::new_request(11)
            .with_ext("queueId", 3)
            .with_ext("offset", " 9000000000 ")
            .with_ext("batch", "TRUE")
            .with_ext("unitMode", "0")
            .with_ext("empty", "")
            .with_ext("bad", "x")
            .with_body(&b"payload"[..]);
        assert_eq!(command.ext_i32("queueId"), Ok(3));
        assert_eq!(command.ext_i64("offset"), Ok(9_000_000_000));
        assert_eq!(command.ext_bool("batch"), Ok(true));
        assert_eq!(command.ext_bool("unitMode"), Ok(false));
        assert_eq!(command.ext_str("empty"), Ok(""));
        assert_eq!(command.ext_opt_i32("empty"), Ok(None));
        assert_eq!(command.ext_opt_i64("missing"), Ok(None));
        assert_eq!(command.ext_opt_bool("batch"), Ok(Some(true)));
        assert_eq!(command.ext_opt_i32("queueId"), Ok(Some(3)));
        assert!(command.ext_opt_i32("bad").is_err());
        assert!(command.ext_opt_bool("bad").is_err());
        assert!(
            command.ext_i32("offset").is_err(),
            "int32 overflow must not wrap"
        );
        assert_eq!(command.body, Bytes::from_static(b"payload"));
    }

    #[test]
    fn header_error_text_matches_java() {
        let command = RemotingCommand::new_request(11).with_ext("queueId", "x");
        let missing = command.ext_i32("topic").unwrap_err();
        assert_eq!(missing.to_string(), "the custom field <topic> is null");
        let garbage = command.ext_i32("queueId").unwrap_err();
        assert_eq!(
            garbage.to_string(),
            "the custom field <queueId> is not a number: \"x\""
        );
        let not_bool = command.ext_bool("queueId").unwrap_err();
        assert_eq!(
            not_bool.to_string(),
            "the custom field <queueId> is not a boolean: \"x\""
        );
    }
}
