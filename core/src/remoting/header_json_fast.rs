//! The fast path of JSON header decoding: one pass over the bytes, in the shape every
//! Java client writes (`{"code":310,"extFields":{"a":"pg",...},"flag":0,...}`), straight into
//! a [`RemotingCommand`].
//!
//! Contract: [`decode_fast`] returns `Some` only when the serde path of `header_json` would
//! decode the same bytes to the same command; on anything it does not handle itself it
//! returns `None` and the caller runs the serde path, which is the reference (it decides
//! errors, their messages, and every lenient form). What this path declines:
//! - nested objects or arrays anywhere but `extFields` itself;
//! - numbers that are not canonical integers of at most 18 digits (fractions, exponents,
//!   `-0`, leading zeros), and integers out of int32 range where an int32 is expected;
//! - duplicate top-level keys, more than [`MAX_EXT_FIELDS`] fields, `\u` escapes of
//!   surrogates, raw control characters or invalid UTF-8 inside strings;
//! - unquoted keys, single quotes, trailing bytes other than whitespace.
//!
//! Why: serde_json spent ~24k instructions per `SEND_MESSAGE_V2` header (its string parser
//! and the visitor machinery around 25 short strings), about as much as the rest of the
//! frame; this path reads the same header in a fraction of that (`frame_decode_json` in the
//! instruction-count gate). The differential tests below hold the contract.

use super::codes::LanguageCode;
use super::command::{RemotingCommand, SerializeType};
use super::ext_fields::{ExtFields, MAX_EXT_FIELDS};
use super::header_json::{i32_from_text, language_from_ordinal, language_from_text};

/// Decodes `bytes` if they have the common shape (see the module docs), else `None`.
pub(crate) fn decode_fast(bytes: &[u8]) -> Option<RemotingCommand> {
    // Validated once: every string below is a slice of `text` between ASCII delimiters.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut cursor = Cursor { text, bytes, at: 0 };
    let mut command = RemotingCommand {
        code: 0,
        language: LanguageCode::Java as u8,
        version: 0,
        opaque: 0,
        flag: 0,
        remark: None,
        ext_fields: ExtFields::default(),
        serialize_type: SerializeType::Json,
        body: bytes::Bytes::new(),
    };
    let mut seen = 0u8;
    cursor.expect(b'{')?;
    if !cursor.eat(b'}') {
        loop {
            let key = cursor.string()?;
            cursor.expect(b':')?;
            let (bit, field) = match key.as_ref() {
                "code" => (1, Field::Int(&mut command.code)),
                "opaque" => (2, Field::Int(&mut command.opaque)),
                "flag" => (4, Field::Int(&mut command.flag)),
                "version" => (8, Field::Int(&mut command.version)),
                "language" => (16, Field::Language(&mut command.language)),
                "remark" => (32, Field::Remark(&mut command.remark)),
                "extFields" => (64, Field::Ext),
                _ => (0, Field::Skip),
            };
            if seen & bit != 0 {
                return None; // serde rejects a duplicate field with its own message
            }
            seen |= bit;
            match field {
                Field::Int(slot) => *slot = cursor.int32()?,
                Field::Language(slot) => *slot = cursor.language()?,
                Field::Remark(slot) => *slot = cursor.scalar()?.text().map(Into::into),
                Field::Ext => cursor.ext_fields(&mut command)?,
                Field::Skip => drop(cursor.scalar()?),
            }
            if cursor.eat(b'}') {
                break;
            }
            cursor.expect(b',')?;
        }
    }
    cursor.skip_whitespace();
    (cursor.at == bytes.len()).then_some(command)
}

/// Where a top-level value goes.
enum Field<'a> {
    Int(&'a mut i32),
    Language(&'a mut u8),
    Remark(&'a mut Option<String>),
    Ext,
    Skip,
}

/// A scalar JSON value, borrowed where it can be.
enum Scalar<'a> {
    Null,
    Bool(bool),
    /// A canonical integer of at most 18 digits (fits i64), as written.
    Int(&'a str),
    Text(std::borrow::Cow<'a, str>),
}

impl<'a> Scalar<'a> {
    /// The value as header text: strings as they are, integers and booleans as written,
    /// null as `None`.
    fn text(self) -> Option<std::borrow::Cow<'a, str>> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(value) => Some(if value { "true" } else { "false" }.into()),
            Scalar::Int(text) => Some(text.into()),
            Scalar::Text(text) => Some(text),
        }
    }
}

struct Cursor<'a> {
    /// The header, valid UTF-8.
    text: &'a str,
    /// `text` as bytes.
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Skips whitespace, then consumes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// A double-quoted string; escapes are decoded.
    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    let raw = self.text.get(start..self.at)?;
                    self.at += 1;
                    return Some(raw.into());
                }
                b'\\' => return self.escaped_string(start).map(Into::into),
                0x00..=0x1F => return None,
                _ => self.at += 1,
            }
        }
    }

    /// The rest of a string that has an escape at `self.at`; `start` is its first byte.
    fn escaped_string(&mut self, start: usize) -> Option<String> {
        let mut text = String::with_capacity(self.at - start + 16);
        let mut run = start;
        loop {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => {
                    text.push_str(self.text.get(run..self.at - 1)?);
                    return Some(text);
                }
                b'\\' => {
                    text.push_str(self.text.get(run..self.at - 1)?);
                    let unescaped = match *self.bytes.get(self.at)? {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0C,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let digits = self.bytes.get(self.at + 1..self.at + 5)?;
                            if !digits.iter().all(u8::is_ascii_hexdigit) {
                                return None; // from_str_radix would take a sign
                            }
                            let hex = self.text.get(self.at + 1..self.at + 5)?;
                            let code = u32::from_str_radix(hex, 16);
                            // Surrogates (pairs or lone) are left to serde_json.
                            text.push(char::from_u32(code.ok()?)?);
                            self.at += 5;
                            run = self.at;
                            continue;
                        }
                        _ => return None,
                    };
                    text.push(char::from(unescaped));
                    self.at += 1;
                    run = self.at;
                }
                0x00..=0x1F => return None,
                _ => {}
            }
        }
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        self.skip_whitespace();
        let rest = &self.bytes[self.at..];
        match *rest.first()? {
            b'"' => self.string().map(Scalar::Text),
            b'n' if rest.starts_with(b"null") => self.word(4, Scalar::Null),
            b't' if rest.starts_with(b"true") => self.word(4, Scalar::Bool(true)),
            b'f' if rest.starts_with(b"false") => self.word(5, Scalar::Bool(false)),
            b'-' | b'0'..=b'9' => self.integer().map(Scalar::Int),
            _ => None,
        }
    }

    fn word(&mut self, length: usize, value: Scalar<'a>) -> Option<Scalar<'a>> {
        self.at += length;
        self.ends_value().then_some(value)
    }

    /// A literal or number must be followed by a delimiter, as in JSON (`nullx` is not null).
    fn ends_value(&self) -> bool {
        matches!(
            self.bytes.get(self.at),
            None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
        )
    }

    /// A canonical integer of 1-18 digits: no leading zeros, no `-0`, no fraction or exponent.
    fn integer(&mut self) -> Option<&'a str> {
        let start = self.at;
        let negative = self.bytes.get(self.at) == Some(&b'-');
        self.at += usize::from(negative);
        let digits_start = self.at;
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
        let digits = &self.bytes[digits_start..self.at];
        let canonical = match digits {
            [] => false,
            [b'0'] => !negative,
            [b'0', ..] => false,
            _ => digits.len() <= 18,
        };
        (canonical && self.ends_value())
            .then(|| self.text.get(start..self.at))
            .flatten()
    }

    /// code / opaque / flag / version: an int32 as a number or numeric string; null is 0.
    fn int32(&mut self) -> Option<i32> {
        match self.scalar()? {
            Scalar::Null => Some(0),
            Scalar::Int(text) => text.parse().ok(),
            Scalar::Text(text) => i32_from_text(&text).ok(),
            Scalar::Bool(_) => None,
        }
    }

    /// A language name or ordinal; null keeps Java, as the serde path does.
    fn language(&mut self) -> Option<u8> {
        let language = match self.scalar()? {
            Scalar::Null => LanguageCode::Java,
            Scalar::Text(text) => language_from_text(&text),
            Scalar::Int(text) => match text.parse::<u64>() {
                Ok(ordinal) => language_from_ordinal(ordinal),
                Err(_) => LanguageCode::Other, // negative
            },
            Scalar::Bool(_) => return None,
        };
        Some(language as u8)
    }

    fn ext_fields(&mut self, command: &mut RemotingCommand) -> Option<()> {
        self.skip_whitespace();
        if self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            return self.ends_value().then_some(());
        }
        self.expect(b'{')?;
        // Unescaped keys and values are never longer than the rest of the header.
        let fields = &mut command.ext_fields;
        *fields = ExtFields::with_capacity(16, self.bytes.len() - self.at);
        if self.eat(b'}') {
            return Some(());
        }
        let mut count = 0usize;
        loop {
            count += 1;
            if count > MAX_EXT_FIELDS {
                return None;
            }
            let key = self.string()?;
            self.expect(b':')?;
            if let Some(value) = self.scalar()?.text() {
                fields.push_decoded(&key, &value);
            }
            if self.eat(b'}') {
                fields.finish_decoding();
                return Some(());
            }
            self.expect(b',')?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoting::header_json::decode_json_header_serde;
    use crate::remoting::header_json::tests::BAD_HEADERS;

    /// The contract: whenever the fast path answers, the serde path agrees.
    fn agrees(text: &[u8]) -> Option<RemotingCommand> {
        let fast = decode_fast(text);
        if let Some(fast) = &fast {
            let serde = decode_json_header_serde(text);
            assert_eq!(
                serde.as_ref().ok(),
                Some(fast),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        fast
    }

    const JAVA_SEND: &str = concat!(
        r#"{"code":310,"extFields":{"a":"please_rename_unique_group_name","b":"TopicTest","#,
        r#""c":"TBW102","d":"4","e":"3","f":"0","g":"1733480000000","h":"0","#,
        r#""i":"TAGS\u0001TagA\u0002WAIT\u0001true\u0002UNIQ_KEY\u0001AC1100\u0002","#,
        r#""j":"0","k":"false","m":"false"},"flag":0,"language":"JAVA","opaque":42,"#,
        r#""serializeTypeCurrentRPC":"JSON","version":399}"#
    );

    #[test]
    fn reads_what_the_java_client_sends() {
        let command = agrees(JAVA_SEND.as_bytes()).expect("the common shape is fast");
        assert_eq!(
            (command.code, command.opaque, command.version),
            (310, 42, 399)
        );
        assert_eq!(command.language, LanguageCode::Java as u8);
        assert_eq!(command.ext_fields.len(), 12);
        assert_eq!(command.ext("b"), Some("TopicTest"));
        assert_eq!(
            command.ext("i"),
            Some("TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}UNIQ_KEY\u{1}AC1100\u{2}")
        );
    }

    #[test]
    fn lenient_forms_it_handles_match_the_serde_path() {
        for text in [
            r#"{}"#,
            r#" { } "#,
            r#"{"code":"10","opaque":" 7 ","flag":null,"language":9,"version":"409"}"#,
            r#"{"code":34,"language":"cpp"}"#,
            r#"{"code":34,"language":"COBOL"}"#,
            r#"{"code":34,"language":99}"#,
            r#"{"code":34,"language":-1}"#,
            r#"{"code":34,"language":""}"#,
            r#"{"code":34,"language":null}"#,
            r#"{"code":10,"extFields":null,"remark":null}"#,
            r#"{"code":10,"extFields":{"q":3,"o":-900000000000,"b":true,"g":null,"s":"v"}}"#,
            r#"{"code":10,"extFields":{"k":"1","k":"2"}}"#,
            r#"{"remark":12,"unknown":"x","other":false,"third":null,"code":1}"#,
            "{\n\t\"code\" : 1 ,\r\n \"extFields\" : { \"a\" : \"b\" } }\n",
            r#"{"code":2147483647,"opaque":-2147483648}"#,
            r#"{"code":1,"extFields":{"u":"\u00e9\u4e2d\/"}}"#,
        ] {
            assert!(agrees(text.as_bytes()).is_some(), "{text}");
        }
    }

    #[test]
    fn declines_what_only_the_serde_path_decides() {
        let only_serde: &[&[u8]] = &[
            br#"{"code":1e3}"#,
            br#"{"code":01}"#,
            br#"{"code":-0}"#,
            br#"{"remark":1234567890123456789}"#,
            br#"{"extFields":[1]}"#,
            br#"{"extFields":{"n":{"x":[1]}}}"#,
            br#"{"unknown":{"deep":[1,2]}}"#,
            br#"{"code":1,"code":2}"#,
            br#"{code:105}"#,
            br#"{'code':105}"#,
            br#"{"code":1} x"#,
            br#"{"code":1,}"#,
            br#"{"code":nullx}"#,
            br#"{"remark":"\ud83d\ude00"}"#,
            br#"{"remark":"\x"}"#,
            br#"{"remark":"\u+123"}"#,
            b"{\"remark\":\"a\tb\"}",
            b"{\"remark\":\"\xff\xfe\"}",
        ];
        for &text in BAD_HEADERS.iter().chain(only_serde) {
            assert_eq!(
                decode_fast(text),
                None,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn caps_ext_fields_like_the_serde_path() {
        let fields = |count: usize| {
            let body: Vec<String> = (0..count).map(|i| format!("\"f{i}\":\"v\"")).collect();
            format!(r#"{{"code":1,"extFields":{{{}}}}}"#, body.join(","))
        };
        assert_eq!(
            agrees(fields(MAX_EXT_FIELDS).as_bytes()).map(|c| c.ext_fields.len()),
            Some(MAX_EXT_FIELDS)
        );
        assert_eq!(decode_fast(fields(MAX_EXT_FIELDS + 1).as_bytes()), None);
    }

    /// Every truncation and every single-byte change of a real header: the fast path either
    /// declines or agrees with the serde path.
    #[test]
    fn mutations_never_disagree_with_the_serde_path() {
        let original = JAVA_SEND.as_bytes();
        let mut answered = 0;
        for end in 0..original.len() {
            answered += usize::from(agrees(&original[..end]).is_some());
        }
        assert_eq!(answered, 0, "no strict prefix is a complete header");
        let replacements = b"\"\\{}[],:0-9aeu \x01\xc3";
        for position in 0..original.len() {
            for &byte in replacements {
                let mut mutated = original.to_vec();
                mutated[position] = byte;
                answered += usize::from(agrees(&mutated).is_some());
            }
        }
        assert!(
            answered > original.len(),
            "most value bytes can change: {answered}"
        );
    }
}
