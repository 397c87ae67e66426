//! Java `.properties` parsing, as `java.util.Properties.load` does it, with one deliberate
//! difference: trailing whitespace of values is trimmed.
//!
//! Syntax (the rules that trip people up, see docs/config.md):
//! - `#` and `!` start a comment only as the first non-blank character of a line. There are no
//!   inline comments: `key=value  # note` gives the value `value  # note`. The loaders warn when a
//!   value contains ` #`, because that is nearly always a mistaken inline comment.
//! - The key ends at the first unescaped `=`, `:` or blank; blanks around the separator are
//!   skipped.
//! - A line ending in an odd number of `\` continues on the next line, whose leading blanks are
//!   dropped. A comment line never continues.
//! - Escapes: `\uXXXX` (UTF-16, surrogate pairs joined), `\t`, `\n`, `\r`, `\f`, and `\x` for any
//!   other `x`. A malformed `\u` (Java throws) becomes U+FFFD so the loaders can report it.
//!
//! Tradeoff: the input is `&str`. Java reads files as ISO-8859-1; the loaders decode UTF-8 and fall
//! back to ISO-8859-1, so the Chinese comments of the deployment guides survive either way.
//! Later duplicates are kept as separate entries (in file order): the loaders apply them in order,
//! so the last one wins as in Java, and they can warn about the duplicate.

/// One `key=value` pair of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyEntry {
    /// The key after unescaping.
    pub key: String,
    /// The value after unescaping, trailing whitespace trimmed.
    pub value: String,
    /// 1-based line where the entry starts (its first physical line).
    pub line: usize,
}

/// The entries of a properties file, in file order, duplicates included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// Entries in the order they appear.
    pub entries: Vec<PropertyEntry>,
}

impl Properties {
    /// The last value given for `key`, as Java's `Properties.getProperty` would return it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    }

    /// Builds properties from (key, value) pairs, e.g. command-line overrides; line is 0.
    pub fn from_pairs(pairs: &[(String, String)]) -> Properties {
        let entries = pairs
            .iter()
            .map(|(key, value)| PropertyEntry {
                key: key.clone(),
                value: value.trim().to_owned(),
                line: 0,
            })
            .collect();
        Properties { entries }
    }
}

/// Java `.properties` whitespace: space, tab and form feed (not newline).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn trim_start_blank(line: &str) -> &str {
    line.trim_start_matches(is_blank)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Parses the text of a `.properties` file. Never fails: every line yields an entry or is skipped.
pub fn parse_properties(text: &str) -> Properties {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    let mut entries = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let line_number = next + 1;
        let first = trim_start_blank(lines[next]);
        next += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = first.to_owned();
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            let Some(continuation) = lines.get(next) else {
                break;
            };
            next += 1;
            logical.push_str(trim_start_blank(continuation));
        }
        entries.push(split_entry(&logical, line_number));
    }
    Properties { entries }
}

/// Splits one logical line into key and value, following Java's `Properties.load0`.
fn split_entry(logical: &str, line: usize) -> PropertyEntry {
    let mut key_end = logical.len();
    let mut value_start = logical.len();
    let mut has_separator = false;
    let mut escaped = false;
    for (index, c) in logical.char_indices() {
        if !escaped && (c == '=' || c == ':') {
            (key_end, value_start, has_separator) = (index, index + 1, true);
            break;
        }
        if !escaped && is_blank(c) {
            (key_end, value_start) = (index, index + 1);
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    let mut rest = &logical[value_start..];
    loop {
        rest = trim_start_blank(rest);
        match rest.chars().next() {
            Some(c @ ('=' | ':')) if !has_separator => {
                has_separator = true;
                rest = &rest[c.len_utf8()..];
            }
            _ => break,
        }
    }
    PropertyEntry {
        key: unescape(&logical[..key_end]),
        value: unescape(rest).trim_end().to_owned(),
        line,
    }
}

/// Decodes `\uXXXX`, `\t`, `\n`, `\r`, `\f` and `\x` escapes; a trailing lone `\` is dropped.
fn unescape(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    let mut units: Vec<u16> = Vec::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        let decoded = if c != '\\' {
            c
        } else {
            match chars.next() {
                None => break,
                Some('t') => '\t',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('f') => '\u{c}',
                Some('u') => match hex4(&mut chars) {
                    Some(unit) => {
                        units.push(unit);
                        continue;
                    }
                    None => char::REPLACEMENT_CHARACTER,
                },
                Some(other) => other,
            }
        };
        let mut buffer = [0u16; 2];
        units.extend_from_slice(decoded.encode_utf16(&mut buffer));
    }
    // Lone surrogates from `\uD800`-style escapes become U+FFFD, as does a malformed `\u`.
    String::from_utf16_lossy(&units)
}

/// Reads exactly four hex digits. On failure the consumed digits are lost, like Java's exception.
fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u16> {
    let mut value: u16 = 0;
    for _ in 0..4 {
        let digit = chars.clone().next()?.to_digit(16)?;
        chars.next();
        value = value * 16 + digit as u16;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        let props = parse_properties(text);
        props
            .entries
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn separators_equals_colon_and_whitespace() {
        let text = "a=1\nb:2\nc 3\nd = 4\ne\t:\t5\nf  =  =6\ng\n";
        let expected = vec![
            pair("a", "1"),
            pair("b", "2"),
            pair("c", "3"),
            pair("d", "4"),
            pair("e", "5"),
            pair("f", "=6"),
            pair("g", ""),
        ];
        assert_eq!(pairs(text), expected);
    }

    #[test]
    fn comments_only_at_line_start() {
        let text = "# comment\n   ! bang comment\nkey=value  # note\n  #x=1\nother=a#b\n";
        assert_eq!(
            pairs(text),
            vec![pair("key", "value  # note"), pair("other", "a#b")]
        );
    }

    #[test]
    fn continuation_lines_and_line_numbers() {
        let text = "\nlevels=1s 5s \\\n     10s \\\n  30s\nnext=x\n# comment \\\nafter=y\n";
        let props = parse_properties(text);
        assert_eq!(props.entries[0].value, "1s 5s 10s 30s");
        assert_eq!(props.entries[0].line, 2);
        assert_eq!(
            (props.entries[1].key.as_str(), props.entries[1].line),
            ("next", 5)
        );
        // A comment line ending in a backslash does not swallow the next line.
        assert_eq!(props.entries[2].key, "after");
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let text = "path=C:\\\\dir\\\\\nnext=1\n";
        assert_eq!(
            pairs(text),
            vec![pair("path", "C:\\dir\\"), pair("next", "1")]
        );
    }

    #[test]
    fn escapes() {
        let text = "k\\=ey\\ x=a\\tb\\nc\\u0041\\u4e2d\\z\nsmile=\\uD83D\\uDE00\nbad=\\u12G4\n";
        assert_eq!(
            pairs(text),
            vec![
                pair("k=ey x", "a\tb\ncA中z"),
                pair("smile", "😀"),
                pair("bad", "\u{fffd}G4"),
            ]
        );
    }

    #[test]
    fn trailing_whitespace_trimmed_crlf_and_bom() {
        let text = "\u{feff}brokerId=1   \r\nlistenPort = 10911\t\r\nname=broker-a\r";
        assert_eq!(
            pairs(text),
            vec![
                pair("brokerId", "1"),
                pair("listenPort", "10911"),
                pair("name", "broker-a")
            ]
        );
    }

    #[test]
    fn last_duplicate_wins_in_get() {
        let props = parse_properties("a=1\na=2\n");
        assert_eq!(props.entries.len(), 2);
        assert_eq!(props.get("a"), Some("2"));
        assert_eq!(props.get("missing"), None);
    }
}
