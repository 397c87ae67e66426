//! Parsing of the almost-JSON that fastjson (and some non-Java clients) put on the wire.
//!
//! Accepted beyond RFC 8259:
//! ```text
//! {0:"127.0.0.1:10911"}        map with non-string keys: fastjson writes them unquoted
//! {brokerName:"a"}             bare identifier keys
//! {'topic':'T'}                single-quoted strings (keys or values)
//! ```
//! Name servers before 4.9.4 answer `GET_ROUTEINFO_BY_TOPIC` with
//! `"brokerAddrs":{0:"ip:port"}` unless the client asks for standard JSON, and brokers of
//! every 4.x version send such maps in `REGISTER_BROKER` bodies, so we must read it.
//!
//! Tradeoff: rather than a second JSON parser we rewrite the text into strict JSON (quote the
//! bare keys, convert single quotes) and hand it to serde_json. The rewrite runs only after the
//! strict parse has failed with a syntax error, so well-formed input costs nothing extra;
//! lenient input costs one copy.
//!
//! # Errors
//! `serde_json::Error` from the strict parse, or from the parse of the rewritten text when a
//! rewrite was possible (its positions refer to the rewritten text).

use serde::de::DeserializeOwned;

/// Parses JSON as fastjson writes and accepts it: object keys may be unquoted identifiers or
/// numbers (`{0:"ip:port"}`, `{brokerName:"a"}`); single-quoted strings are accepted too.
/// Produces a `serde_json::Value`.
pub fn parse_lenient(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    from_slice_lenient(bytes)
}

/// Deserializes `T` from strict JSON, falling back to the lenient rewrite on syntax errors.
pub fn from_slice_lenient<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(error) if error.is_syntax() => match to_strict_json(bytes) {
            Some(strict) => serde_json::from_slice(&strict),
            None => Err(error),
        },
        Err(error) => Err(error),
    }
}

/// Rewrites lenient JSON into strict JSON; `None` when there was nothing to rewrite, so the
/// caller keeps the original (more precise) error.
fn to_strict_json(input: &[u8]) -> Option<Vec<u8>> {
    let mut output = Vec::with_capacity(input.len() + 16);
    let mut rewritten = false;
    let mut position = 0;
    while let Some(&byte) = input.get(position) {
        position = match byte {
            b'"' => copy_double_quoted(input, position, &mut output),
            b'\'' => {
                rewritten = true;
                convert_single_quoted(input, position, &mut output)
            }
            _ if is_bare_token_byte(byte) => {
                let end = bare_token_end(input, position);
                let token = &input[position..end];
                if is_followed_by_colon(input, end) {
                    rewritten = true;
                    output.push(b'"');
                    output.extend_from_slice(token);
                    output.push(b'"');
                } else {
                    output.extend_from_slice(token);
                }
                end
            }
            _ => {
                output.push(byte);
                position + 1
            }
        };
    }
    rewritten.then_some(output)
}

/// Bytes of an unquoted key, number or literal (`true`, `null`, `-1.5e3`). Bytes >= 0x80 are
/// included so that a bare non-ASCII key is quoted whole.
fn is_bare_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'$' | b'-' | b'+' | b'.') || byte >= 0x80
}

fn bare_token_end(input: &[u8], start: usize) -> usize {
    input[start..]
        .iter()
        .position(|&byte| !is_bare_token_byte(byte))
        .map_or(input.len(), |length| start + length)
}

/// A bare token followed by `:` can only be an object key.
fn is_followed_by_colon(input: &[u8], end: usize) -> bool {
    input[end..]
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|&byte| byte == b':')
}

/// Copies a `"..."` string verbatim, escapes included; returns the position after it (or the
/// end of input when unterminated: the strict parse then reports the error).
fn copy_double_quoted(input: &[u8], start: usize, output: &mut Vec<u8>) -> usize {
    let mut position = start + 1;
    while let Some(&byte) = input.get(position) {
        position += if byte == b'\\' { 2 } else { 1 };
        if byte == b'"' {
            break;
        }
    }
    let end = position.min(input.len());
    output.extend_from_slice(&input[start..end]);
    end
}

/// Converts a `'...'` string into a `"..."` one: `\'` becomes `'`, a bare `"` becomes `\"`,
/// other escapes are kept. An unterminated string stays unterminated, so that the strict
/// parse still rejects it.
fn convert_single_quoted(input: &[u8], start: usize, output: &mut Vec<u8>) -> usize {
    output.push(b'"');
    let mut position = start + 1;
    while let Some(&byte) = input.get(position) {
        position += 1;
        match byte {
            b'\'' => {
                output.push(b'"');
                break;
            }
            b'"' => output.extend_from_slice(b"\\\""),
            b'\\' => match input.get(position) {
                Some(b'\'') => {
                    output.push(b'\'');
                    position += 1;
                }
                Some(&escaped) => {
                    output.extend_from_slice(&[b'\\', escaped]);
                    position += 1;
                }
                None => output.push(b'\\'),
            },
            _ => output.push(byte),
        }
    }
    position
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_json_takes_the_fast_path() {
        assert_eq!(to_strict_json(br#"{"a":[1,true,null,"x:y"]}"#), None);
        let value = parse_lenient(br#"{"a":[1,true,null,"x:y"]}"#).unwrap();
        assert_eq!(value, json!({"a": [1, true, null, "x:y"]}));
    }

    #[test]
    fn numeric_keys_from_fastjson_maps() {
        let value =
            parse_lenient(br#"{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"}}"#).unwrap();
        assert_eq!(
            value,
            json!({"brokerAddrs": {"0": "127.0.0.1:10911", "1": "127.0.0.1:10921"}})
        );
    }

    #[test]
    fn bare_identifier_keys_and_literal_values() {
        let value =
            parse_lenient(b"{brokerName : \"a\", id:-1, ok:true, none:null, f:1.5e3}").unwrap();
        assert_eq!(
            value,
            json!({"brokerName": "a", "id": -1, "ok": true, "none": null, "f": 1500.0})
        );
    }

    #[test]
    fn single_quoted_strings() {
        let value = parse_lenient(br#"{'topic':'say "hi" \'x\'\n'}"#).unwrap();
        assert_eq!(value, json!({"topic": "say \"hi\" 'x'\n"}));
    }

    #[test]
    fn quotes_and_colons_inside_strings_are_untouched() {
        let value = parse_lenient(br#"{k:"a\"b:c", "d":{e:"f"}}"#).unwrap();
        assert_eq!(value, json!({"k": "a\"b:c", "d": {"e": "f"}}));
    }

    #[test]
    fn typed_deserialize() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Route {
            #[serde(rename = "brokerAddrs")]
            broker_addrs: std::collections::BTreeMap<i64, String>,
        }
        let route: Route = from_slice_lenient(br#"{"brokerAddrs":{0:"127.0.0.1:10911"}}"#).unwrap();
        assert_eq!(
            route.broker_addrs.get(&0).map(String::as_str),
            Some("127.0.0.1:10911")
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"{",
            b"{a",
            b"{a:",
            b"'",
            b"\"\\",
            b"'\\",
            b"{:1}",
            b"}}}}",
        ] {
            assert!(parse_lenient(input).is_err(), "{input:?}");
        }
    }
}
