//! Java `String.hashCode()` and the tag code derived from it.
//!
//! RocketMQ stores `TAGS.hashCode()` in every ConsumeQueue entry (docs/protocol.md §4.1) and
//! consumers send the same hash of each subscribed tag in `SubscriptionData.codeSet`; the broker
//! filters by comparing the two. The IndexFile hashes `topic#key` the same way (§4.2). Any
//! difference from Java here silently breaks filtering or key lookups, so the hash runs over UTF-16
//! code units (characters outside the BMP count as two surrogates) with wrapping `i32` arithmetic.

/// Java `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    java_string_hash_continue(0, s)
}

/// `java_string_hash` of the concatenation of `parts`, without building it (the index hashes
/// `topic + "#" + key` for every key of every message).
pub fn java_string_hash_concat(parts: &[&str]) -> i32 {
    parts
        .iter()
        .fold(0, |hash, part| java_string_hash_continue(hash, part))
}

/// Continues `java_string_hash` of a prefix (`hash`) over `s`: the hash of `prefix + s`.
pub fn java_string_hash_continue(hash: i32, s: &str) -> i32 {
    if s.is_ascii() {
        return s.bytes().fold(hash, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(i32::from(byte))
        });
    }
    s.encode_utf16().fold(hash, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The ConsumeQueue tag code of a message: 0 when it has no tags (or empty tags), otherwise the
/// Java hash of the tag string, sign-extended as Java's `long` widening does.
pub fn tags_code(tags: Option<&str>) -> i64 {
    match tags {
        None | Some("") => 0,
        Some(tags) => i64::from(java_string_hash(tags)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_values() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 3105);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // 'T'=84, 'a'=97, 'g'=103, 'A'=65: ((84*31+97)*31+103)*31+65.
        assert_eq!(java_string_hash("TagA"), 2_598_919);
        // U+1F600 is the surrogate pair D83D DE00: 55357*31 + 56832.
        assert_eq!(java_string_hash("\u{1F600}"), 1_772_899);
        // Non-ASCII BMP character: one code unit, not its UTF-8 bytes.
        assert_eq!(java_string_hash("\u{e9}"), 0xE9);
        assert_eq!(
            java_string_hash_concat(&["Topic\u{e9}", "#", "key\u{1F600}1"]),
            java_string_hash("Topic\u{e9}#key\u{1F600}1")
        );
        assert_eq!(java_string_hash_concat(&[]), 0);
    }

    #[test]
    fn wraps_like_java() {
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, a well known Java curiosity.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        let long = "x".repeat(1000);
        let _ = java_string_hash(&long);
    }

    #[test]
    fn tags_code_rules() {
        assert_eq!(tags_code(None), 0);
        assert_eq!(tags_code(Some("")), 0);
        assert_eq!(tags_code(Some("TagA")), 2_598_919);
        assert_eq!(tags_code(Some("polygenelubricants")), i64::from(i32::MIN));
    }
}
