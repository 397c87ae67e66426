//! The custom header fields of a command (`extFields`): a small map of short names to
//! stringified values, stored flat.
//!
//! Every request decodes 5-20 fields and looks a few of them up; every response sets a few.
//! As a `HashMap<String, String>` that was two allocations per field plus the table: 25 on a
//! `SEND_MESSAGE_V2` request, about as much work as parsing it. Here all keys and values live
//! back to back in one `String` and each field is three offsets into it, so a decoded header
//! costs two allocations whatever its size, and a lookup is a scan that compares lengths
//! before bytes (with one-letter names, about as fast as hashing them).
//!
//! Contracts:
//! - keys are unique: [`ExtFields::insert`] replaces, and a decoder's duplicates keep the
//!   last value, as the `HashMap` of Java's `RemotingCommand` does;
//! - iteration order is unspecified (encoders that need an order sort);
//! - memory stays bounded by the live fields: a replaced value's bytes are reclaimed once the
//!   dead bytes outgrow the live ones (a command whose fields are set again and again);
//! - a header holds at most [`MAX_EXT_FIELDS`] fields (RocketMQ's headers have fewer than
//!   40; ACL adds three); decoders refuse more, so a crafted header costs bounded work: a
//!   lookup is linear in the fields, and de-duplicating a decoded header sorts when it is
//!   large (no quadratic path, no hash to flood).

use std::fmt;

/// Most custom header fields accepted in one header (see the module docs).
pub const MAX_EXT_FIELDS: usize = 1024;

/// Dead bytes a map may hold beyond its live ones before a replacing insert compacts it.
const COMPACT_SLACK: usize = 256;

/// Up to this many decoded fields are de-duplicated pairwise; more are sorted.
const PAIRWISE_DEDUP_MAX: usize = 24;

/// Custom header fields: name → stringified value (see the module docs).
#[derive(Clone, Default)]
pub struct ExtFields {
    /// Every field's key followed by its value, field after field (replaced fields leave
    /// their bytes here until [`ExtFields::insert`] compacts: never more than twice the live
    /// bytes plus [`COMPACT_SLACK`]).
    text: String,
    /// One per field: key `text[start..key_end]`, value `text[key_end..end]`.
    spans: Vec<Span>,
    /// While decoding: one bit per [`key_signature`] pushed so far, and whether two pushed
    /// keys shared one (only then can there be duplicates for `finish_decoding` to drop).
    decoded_signatures: u64,
    maybe_duplicates: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    start: u32,
    key_end: u32,
    end: u32,
}

/// An empty map with room for `capacity` fields.
pub fn ext_fields_with_capacity(capacity: usize) -> ExtFields {
    ExtFields::with_capacity(capacity, capacity * 24)
}

impl ExtFields {
    /// An empty map with room for `fields` fields of `bytes` key and value bytes in all.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            spans: Vec::with_capacity(fields),
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Room for `additional` more fields (of ~24 bytes each).
    pub fn reserve(&mut self, additional: usize) {
        self.spans.reserve(additional);
        self.text.reserve(additional * 24);
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|index| self.value_at(index))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value`; returns whether `key` was already there (its value replaced).
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        let span = self.append(key, value);
        self.place(key, span)
    }

    /// Sets `key` to `value` as [`Display`](fmt::Display) writes it, straight into the map's
    /// text (no intermediate `String`); returns whether `key` was already there.
    pub fn insert_display(&mut self, key: &str, value: impl fmt::Display) -> bool {
        let start = self.text.len();
        self.text.push_str(key);
        let key_end = self.text.len();
        fmt::Write::write_fmt(&mut self.text, format_args!("{value}"))
            .expect("writing to a String does not fail");
        let span = self.span(start, key_end);
        self.place(key, span)
    }

    /// Makes `span` (just appended for `key`) the field `key`, replacing an earlier one.
    fn place(&mut self, key: &str, span: Span) -> bool {
        match self.position(key) {
            Some(index) => {
                self.spans[index] = span;
                self.compact_if_wasteful();
                true
            }
            None => {
                self.spans.push(span);
                false
            }
        }
    }

    /// Rewrites the text with the live fields only, once dead bytes outgrow the live ones:
    /// a command whose fields are set again and again stays bounded.
    fn compact_if_wasteful(&mut self) {
        let live: usize = self
            .spans
            .iter()
            .map(|span| (span.end - span.start) as usize)
            .sum();
        if self.text.len() <= 2 * live + COMPACT_SLACK {
            return;
        }
        let mut compacted = Self::with_capacity(self.spans.len(), live);
        for (key, value) in self.iter() {
            compacted.push_decoded(key, value);
        }
        compacted.decoded_signatures = 0;
        compacted.maybe_duplicates = false;
        *self = compacted;
        debug_assert_eq!(
            self.text.len(),
            live,
            "compaction keeps exactly the live bytes"
        );
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.position(key)?;
        let value = self.value_at(index).to_owned();
        self.spans.remove(index);
        Some(value)
    }

    /// The fields as `(key, value)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.spans.iter().map(|span| {
            let key_end = span.key_end as usize;
            (
                &self.text[span.start as usize..key_end],
                &self.text[key_end..span.end as usize],
            )
        })
    }

    /// Adds a decoded field without looking for an earlier one of the same name: a decoder
    /// pushes every field, then calls [`finish_decoding`](Self::finish_decoding) once.
    pub(crate) fn push_decoded(&mut self, key: &str, value: &str) {
        let signature = key_signature(key.as_bytes());
        self.maybe_duplicates |= self.decoded_signatures & signature != 0;
        self.decoded_signatures |= signature;
        let span = self.append(key, value);
        self.spans.push(span);
    }

    /// The map of a decoder that collected raw key and value bytes (see [`RawFields`]).
    fn from_raw(raw: RawFields) -> ExtFields {
        let RawFields {
            bytes,
            spans,
            signatures,
            maybe_duplicates,
        } = raw;
        let boundaries = spans.iter().all(|span| {
            starts_char(&bytes, span.key_end as usize) && starts_char(&bytes, span.end as usize)
        });
        let mut fields = match String::from_utf8(bytes) {
            // Valid as a whole and cut only where characters start: every piece is valid.
            Ok(text) if boundaries => ExtFields {
                text,
                spans,
                decoded_signatures: signatures,
                maybe_duplicates,
            },
            // Some piece is not UTF-8 (or a character spans two pieces): each piece on its
            // own, invalid bytes replaced as Java's decoder does.
            result => {
                let bytes = match result {
                    Ok(text) => text.into_bytes(),
                    Err(error) => error.into_bytes(),
                };
                let mut fields = ExtFields::with_capacity(spans.len(), bytes.len());
                for span in &spans {
                    let key = &bytes[span.start as usize..span.key_end as usize];
                    let value = &bytes[span.key_end as usize..span.end as usize];
                    fields.push_decoded(
                        &String::from_utf8_lossy(key),
                        &String::from_utf8_lossy(value),
                    );
                }
                fields
            }
        };
        fields.finish_decoding();
        fields
    }

    /// Drops all but the last of every run of same-named decoded fields (Java's `HashMap`
    /// keeps the last `put`). Pairwise for small headers, by sorting for large ones, so a
    /// header at [`MAX_EXT_FIELDS`] costs `n log n` comparisons, not `n²`.
    pub(crate) fn finish_decoding(&mut self) {
        let maybe_duplicates = std::mem::take(&mut self.maybe_duplicates);
        self.decoded_signatures = 0;
        if !maybe_duplicates {
            debug_assert!(self.keys_are_unique(), "distinct signatures, distinct keys");
            return;
        }
        let count = self.spans.len();
        let mut dead: Vec<bool> = Vec::new();
        if count <= PAIRWISE_DEDUP_MAX {
            for later in 1..count {
                for earlier in 0..later {
                    if self.same_key(earlier, later) {
                        dead.resize(count, false);
                        dead[earlier] = true;
                    }
                }
            }
        } else {
            let mut order: Vec<usize> = (0..count).collect();
            order.sort_by(|&left, &right| {
                self.key_at(left)
                    .cmp(self.key_at(right))
                    .then(left.cmp(&right))
            });
            for pair in order.windows(2) {
                if self.same_key(pair[0], pair[1]) {
                    dead.resize(count, false);
                    dead[pair[0]] = true;
                }
            }
        }
        if !dead.is_empty() {
            let mut index = 0;
            self.spans.retain(|_| {
                index += 1;
                !dead[index - 1]
            });
        }
        debug_assert!(self.keys_are_unique(), "finish_decoding leaves unique keys");
    }

    fn keys_are_unique(&self) -> bool {
        let mut keys: Vec<&str> = self.iter().map(|(key, _)| key).collect();
        keys.sort_unstable();
        keys.windows(2).all(|pair| pair[0] != pair[1])
    }

    /// Appends `key` then `value` to the text; returns their span.
    fn append(&mut self, key: &str, value: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(key);
        let key_end = self.text.len();
        self.text.push_str(value);
        self.span(start, key_end)
    }

    /// The span of the field whose key starts at `start` and whose value runs from
    /// `key_end` to the end of the text.
    fn span(&self, start: usize, key_end: usize) -> Span {
        // A frame (and so a header) is under 2 GiB: its length field is an int32.
        let offset = |length: usize| u32::try_from(length).expect("ext fields fit in u32");
        Span {
            start: offset(start),
            key_end: offset(key_end),
            end: offset(self.text.len()),
        }
    }

    /// Lengths, then first bytes, inline; only a candidate that matches both is compared
    /// whole. A `SEND_MESSAGE_V2` header's names are all one letter long, so comparing the
    /// slices of every field (a `memcmp` call each) was most of a send's header parsing.
    fn position(&self, key: &str) -> Option<usize> {
        let key = key.as_bytes();
        let text = self.text.as_bytes();
        let Some((&first, rest)) = key.split_first() else {
            return self
                .spans
                .iter()
                .position(|span| span.key_end == span.start);
        };
        self.spans.iter().position(|span| {
            let start = span.start as usize;
            (span.key_end - span.start) as usize == key.len()
                && text[start] == first
                && (rest.is_empty() || text[start + 1..span.key_end as usize] == *rest)
        })
    }

    /// Lengths first: most names differ in length or in their first byte.
    fn same_key(&self, left: usize, right: usize) -> bool {
        let (left, right) = (self.spans[left], self.spans[right]);
        left.key_end - left.start == right.key_end - right.start
            && self.text.as_bytes()[left.start as usize..left.key_end as usize]
                == self.text.as_bytes()[right.start as usize..right.key_end as usize]
    }

    fn key_at(&self, index: usize) -> &str {
        let span = self.spans[index];
        &self.text[span.start as usize..span.key_end as usize]
    }

    fn value_at(&self, index: usize) -> &str {
        let span = self.spans[index];
        &self.text[span.key_end as usize..span.end as usize]
    }
}

/// The fields of a header being decoded, as the bytes the frame carried: a decoder pushes
/// every key and value, then [`RawFields::finish`] checks UTF-8 once for all of them, where
/// checking each short key and value on its own cost a call per string (2.7% of the broker's
/// CPU at full load with binary headers). Duplicates are dropped as by
/// [`ExtFields::finish_decoding`].
pub(crate) struct RawFields {
    bytes: Vec<u8>,
    spans: Vec<Span>,
    signatures: u64,
    maybe_duplicates: bool,
}

impl RawFields {
    /// Room for `fields` fields of `bytes` key and value bytes in all.
    pub(crate) fn with_capacity(fields: usize, bytes: usize) -> RawFields {
        RawFields {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(fields),
            signatures: 0,
            maybe_duplicates: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn push(&mut self, key: &[u8], value: &[u8]) {
        let signature = key_signature(key);
        self.maybe_duplicates |= self.signatures & signature != 0;
        self.signatures |= signature;
        let offset = |length: usize| u32::try_from(length).expect("ext fields fit in u32");
        let start = offset(self.bytes.len());
        self.bytes.extend_from_slice(key);
        let key_end = offset(self.bytes.len());
        self.bytes.extend_from_slice(value);
        let end = offset(self.bytes.len());
        self.spans.push(Span {
            start,
            key_end,
            end,
        });
    }

    /// The decoded map: each key and value as text, invalid UTF-8 replaced by U+FFFD per
    /// piece (as decoding each on its own would), the last of same-named fields kept.
    pub(crate) fn finish(self) -> ExtFields {
        ExtFields::from_raw(self)
    }
}

/// Whether a character may start at `index` (or it is the end): not a continuation byte.
fn starts_char(bytes: &[u8], index: usize) -> bool {
    bytes.get(index).is_none_or(|&byte| (byte as i8) >= -0x40)
}

/// One of 64 bits from a key's length and end bytes: equal keys have equal signatures.
/// One-letter names (all of `SEND_MESSAGE_V2`'s) get distinct bits, so a header of them is
/// known duplicate-free without comparing any two.
fn key_signature(key: &[u8]) -> u64 {
    let bit = match key {
        [] => 0,
        [only] => u32::from(*only),
        [first, .., last] => {
            u32::from(*first) ^ (u32::from(*last) << 2) ^ ((key.len() as u32) << 3)
        }
    };
    1 << (bit & 63)
}

/// Equal when they hold the same fields, in any order.
impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(key, value)| other.get(key) == Some(value))
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(fields: I) -> Self {
        let mut map = Self::default();
        for (key, value) in fields {
            map.insert(key, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_map() {
        let mut fields = ext_fields_with_capacity(2);
        let mut model = HashMap::new();
        for i in 0..100 {
            let (key, value) = (format!("field{}", i % 37), i.to_string());
            assert_eq!(
                fields.insert(&key, &value),
                model.insert(key.clone(), value).is_some()
            );
            if i % 11 == 0 {
                let gone = format!("field{}", i % 7);
                assert_eq!(fields.remove(&gone), model.remove(&gone));
            }
        }
        assert_eq!(fields.len(), model.len());
        for (key, value) in &model {
            assert_eq!(fields.get(key), Some(value.as_str()), "{key}");
        }
        assert_eq!(fields.get("field"), None);
        assert_eq!(fields.get(""), None);
        let mut listed: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        listed.sort();
        let mut expected: Vec<(String, String)> = model.into_iter().collect();
        expected.sort();
        assert_eq!(listed, expected);
    }

    #[test]
    fn lookups_tell_apart_names_sharing_a_length_or_a_first_byte() {
        let names = [
            "", "a", "b", "ab", "ba", "aa", "abc", "abd", "\u{e9}", "\u{e8}",
        ];
        let mut fields = ExtFields::default();
        for (i, name) in names.iter().enumerate() {
            fields.insert(name, &i.to_string());
        }
        for (i, name) in names.iter().enumerate() {
            assert_eq!(fields.get(name), Some(i.to_string().as_str()), "{name:?}");
        }
        for absent in ["c", "bb", "abe", "abcd", "\u{ea}"] {
            assert_eq!(fields.get(absent), None, "{absent:?}");
        }
    }

    #[test]
    fn replacing_again_and_again_stays_bounded() {
        let mut fields: ExtFields = [("topic", "T"), ("queueId", "3")].into_iter().collect();
        for round in 0..10_000 {
            fields.insert("queueOffset", &format!("{round:020}"));
            assert!(
                fields.text.len() <= 2 * (5 + 1 + 7 + 1 + 11 + 20) + COMPACT_SLACK,
                "{} bytes held after {round} replacements",
                fields.text.len()
            );
        }
        assert_eq!(fields.get("queueOffset"), Some("00000000000000009999"));
        assert_eq!(
            (fields.get("topic"), fields.get("queueId")),
            (Some("T"), Some("3"))
        );
        assert_eq!(fields.len(), 3);
    }

    #[test]
    fn equality_ignores_order_and_replaced_bytes() {
        let mut left: ExtFields = [("a", "1"), ("b", "2")].into_iter().collect();
        let right: ExtFields = [("b", "2"), ("a", "1")].into_iter().collect();
        assert_eq!(left, right);
        left.insert("a", "x");
        assert_ne!(left, right);
        left.insert("a", "1");
        assert_eq!(left, right);
        left.insert("c", "");
        assert_ne!(left, right);
        assert_eq!(format!("{right:?}"), r#"{"b": "2", "a": "1"}"#);
    }

    #[test]
    fn decoded_duplicates_keep_the_last_value() {
        for count in [2, 5, PAIRWISE_DEDUP_MAX, PAIRWISE_DEDUP_MAX + 1, 300] {
            let mut fields = ExtFields::default();
            for i in 0..count {
                // Every name three times, with the pass as the value.
                for pass in 0..3 {
                    let key = format!("k{}", (i + pass * 7) % count);
                    fields.push_decoded(&key, &format!("{i}.{pass}"));
                }
            }
            fields.finish_decoding();
            assert_eq!(fields.len(), count, "{count}");
            let mut model = HashMap::new();
            for i in 0..count {
                for pass in 0..3 {
                    model.insert(
                        format!("k{}", (i + pass * 7) % count),
                        format!("{i}.{pass}"),
                    );
                }
            }
            for (key, value) in &model {
                assert_eq!(fields.get(key), Some(value.as_str()), "{count} {key}");
            }
        }
    }

    #[test]
    fn one_letter_names_need_no_comparison() {
        let mut fields = ExtFields::default();
        for name in [
            "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
        ] {
            fields.push_decoded(name, "v");
        }
        assert!(!fields.maybe_duplicates);
        fields.push_decoded("a", "w");
        assert!(fields.maybe_duplicates);
        fields.finish_decoding();
        assert_eq!((fields.len(), fields.get("a")), (14, Some("w")));
        assert!(!fields.maybe_duplicates && fields.decoded_signatures == 0);
    }

    #[test]
    fn distinct_decoded_fields_are_all_kept() {
        let mut fields = ExtFields::default();
        for name in ["a", "b", "topic", "", "ab", "ba"] {
            fields.push_decoded(name, name);
        }
        fields.finish_decoding();
        assert_eq!(fields.len(), 6);
        assert_eq!(fields.get(""), Some(""));
        assert_eq!(fields.get("ba"), Some("ba"));
    }
}
