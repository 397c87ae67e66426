//! The message properties string (docs/protocol.md §3.3, Java
//! `MessageDecoder.messageProperties2String`).
//!
//! Layout, as the Java client writes it (note the trailing separator after every pair):
//! ```text
//! name \u{1} value \u{2} name \u{1} value \u{2} ...
//! ```
//! It travels in the SEND header (`properties` / `i`) and is stored verbatim in record field 17.
//! Readers here are tolerant: a missing trailing separator, empty segments and segments without
//! a name/value separator are skipped rather than rejected, because Java's own parser skips them
//! too and old or foreign clients produce them. Writers always emit the Java form.

/// Separates a name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Terminates each name/value pair.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// Well-known property names (Java `MessageConst.PROPERTY_*`; exact string values).
pub mod keys {
    pub const KEYS: &str = "KEYS";
    pub const TAGS: &str = "TAGS";
    /// "false" means the producer does not wait for flush or replication.
    pub const WAIT: &str = "WAIT";
    /// Delay level (1-based index into `messageDelayLevel`).
    pub const DELAY: &str = "DELAY";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    /// "true" marks a transactional half message.
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const PGROUP: &str = "PGROUP";
    pub const MIN_OFFSET: &str = "MIN_OFFSET";
    pub const MAX_OFFSET: &str = "MAX_OFFSET";
    pub const BUYER_ID: &str = "BUYER_ID";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
    pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
    pub const MQ2_FLAG: &str = "MQ2_FLAG";
    pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
    pub const MSG_REGION: &str = "MSG_REGION";
    pub const TRACE_ON: &str = "TRACE_ON";
    /// The client-generated message id users see as msgId (§3.2).
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const EXTEND_UNIQ_INFO: &str = "EXTEND_UNIQ_INFO";
    pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
    pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
    pub const INNER_NUM: &str = "INNER_NUM";
    pub const INNER_BASE: &str = "INNER_BASE";
    pub const DUP_INFO: &str = "DUP_INFO";
    pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
    pub const TRANSACTION_ID: &str = "__transactionId__";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const INSTANCE_ID: &str = "INSTANCE_ID";
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    pub const TTL: &str = "TTL";
    pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
    pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
    pub const CLUSTER: &str = "CLUSTER";
    pub const MSG_TYPE: &str = "MSG_TYPE";
    pub const INNER_MULTI_DISPATCH: &str = "INNER_MULTI_DISPATCH";
    pub const INNER_MULTI_QUEUE_OFFSET: &str = "INNER_MULTI_QUEUE_OFFSET";
    pub const POP_CK: &str = "POP_CK";
    pub const POP_CK_OFFSET: &str = "POP_CK_OFFSET";
    pub const FIRST_POP_TIME: &str = "1ST_POP_TIME";
    pub const FORWARD_QUEUE_ID: &str = "PROPERTY_FORWARD_QUEUE_ID";
    pub const REDIRECT: &str = "REDIRECT";
    pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
    /// 5.x timer messages: absolute delivery time in ms.
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    /// 5.x timer messages: delay in seconds.
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    /// 5.x timer messages: delay in ms.
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
    pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
    pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
    pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
    pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
    pub const TIMER_DELAY_LEVEL: &str = "TIMER_DELAY_LEVEL";
    /// 5.x FIFO sharding key (Java value is `__SHARDINGKEY`).
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    pub const BORN_HOST: &str = "__BORNHOST";
    pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
    /// Properties starting with this prefix are never stored (5.x).
    pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";
}

/// Iterates the well-formed `(name, value)` pairs of `props`, skipping malformed segments.
/// The first pair of a name is the one `get_property` answers.
pub fn pairs(props: &str) -> impl Iterator<Item = (&str, &str)> {
    props
        .split(PROPERTY_SEPARATOR)
        .filter_map(|segment| segment.split_once(NAME_VALUE_SEPARATOR))
}

/// The value of `key` in `props`, if present (first occurrence wins). Does not allocate.
pub fn get_property<'a>(props: &'a str, key: &str) -> Option<&'a str> {
    // Same answer as `pairs(props).find(..)`, in one separator search per segment: a send
    // looks up ~10 properties, and splitting every segment twice per lookup was ~3% of the
    // broker's CPU. A name never contains the name/value separator, so a segment belongs to
    // `key` exactly when it starts with `key` followed by that separator.
    if key.contains(NAME_VALUE_SEPARATOR) {
        return None;
    }
    let mut start = 0;
    loop {
        let rest = &props[start..];
        let end = rest
            .find(PROPERTY_SEPARATOR)
            .map_or(props.len(), |i| start + i);
        let segment = &props[start..end];
        if let Some(after) = segment.strip_prefix(key)
            && let Some(value) = after.strip_prefix(NAME_VALUE_SEPARATOR)
        {
            return Some(value);
        }
        if end == props.len() {
            return None;
        }
        start = end + PROPERTY_SEPARATOR.len_utf8();
    }
}

/// All well-formed pairs in order. Segments without a name/value separator are skipped.
pub fn parse_properties(props: &str) -> Vec<(String, String)> {
    pairs(props)
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Encodes pairs in the Java form (every pair followed by `PROPERTY_SEPARATOR`).
pub fn encode_properties<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        push_pair(&mut out, name, value);
    }
    out
}

fn push_pair(out: &mut String, name: &str, value: &str) {
    // A separator inside a name would split the pair differently on the way back in.
    debug_assert!(!name.contains([NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR]));
    out.push_str(name);
    out.push(NAME_VALUE_SEPARATOR);
    out.push_str(value);
    out.push(PROPERTY_SEPARATOR);
}

/// `props` with `key` set to `value`: replaces every existing occurrence by one pair in the
/// position of the first, or appends it. Other pairs keep their order; malformed segments are
/// dropped.
pub fn set_property(props: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(props.len() + key.len() + value.len() + 2);
    let mut written = false;
    for (name, old) in pairs(props) {
        if name != key {
            push_pair(&mut out, name, old);
        } else if !written {
            push_pair(&mut out, key, value);
            written = true;
        }
    }
    if !written {
        push_pair(&mut out, key, value);
    }
    out
}

/// `props` without any pair named `key`. Malformed segments are dropped.
pub fn remove_property(props: &str, key: &str) -> String {
    let mut out = String::with_capacity(props.len() + 1);
    for (name, value) in pairs(props).filter(|(name, _)| *name != key) {
        push_pair(&mut out, name, value);
    }
    out
}

/// `props` without any pair named `remove`, and with `key` set to `default` when no pair
/// names it: one allocation for what `remove_property` then `set_property` do in several
/// (a send's stored properties drop `WAIT` and gain `CLUSTER`). Pairs keep their order;
/// malformed segments are dropped.
pub fn remove_and_default(props: &str, remove: &str, key: &str, default: &str) -> String {
    debug_assert_ne!(remove, key, "a key is either removed or defaulted");
    let mut out = String::with_capacity(props.len() + key.len() + default.len() + 3);
    let mut has_key = false;
    for (name, value) in pairs(props).filter(|(name, _)| *name != remove) {
        has_key |= name == key;
        push_pair(&mut out, name, value);
    }
    if !has_key {
        push_pair(&mut out, key, default);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_and_default_is_remove_then_set_if_absent() {
        let cases = [
            "",
            "WAIT\u{1}true\u{2}",
            "KEYS\u{1}k\u{2}WAIT\u{1}false\u{2}TAGS\u{1}a\u{2}",
            "CLUSTER\u{1}mine\u{2}WAIT\u{1}true",
            "WAIT\u{1}1\u{2}WAIT\u{1}2\u{2}CLUSTER\u{1}x\u{2}CLUSTER\u{1}y\u{2}",
            "broken\u{2}KEYS\u{1}k",
        ];
        for props in cases {
            let removed = remove_property(props, keys::WAIT);
            let expected = if get_property(&removed, keys::CLUSTER).is_some() {
                removed
            } else {
                set_property(&removed, keys::CLUSTER, "DefaultCluster")
            };
            let got = remove_and_default(props, keys::WAIT, keys::CLUSTER, "DefaultCluster");
            assert_eq!(got, expected, "{props:?}");
        }
    }

    const JAVA_FORM: &str = "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}";

    #[test]
    fn get_finds_values() {
        assert_eq!(get_property(JAVA_FORM, keys::TAGS), Some("TagA"));
        assert_eq!(get_property(JAVA_FORM, keys::KEYS), Some("k1 k2"));
        assert_eq!(get_property(JAVA_FORM, keys::WAIT), Some("true"));
        assert_eq!(get_property(JAVA_FORM, keys::DELAY), None);
        assert_eq!(get_property("", keys::TAGS), None);
        // The one-pass lookup agrees with the pair parser on odd inputs.
        for props in [
            "",
            "\u{2}",
            "A\u{1}1\u{2}",
            "A\u{1}1\u{2}B",
            "AB\u{1}2\u{2}A\u{1}1",
            "junk\u{2}A\u{1}x\u{1}y\u{2}A\u{1}second\u{2}",
            "\u{1}empty-name\u{2}A\u{1}\u{2}",
            "A\u{2}A\u{1}v",
        ] {
            for key in ["A", "AB", "B", "", "x", "A\u{1}x"] {
                let expected = pairs(props).find(|(n, _)| *n == key).map(|(_, v)| v);
                assert_eq!(get_property(props, key), expected, "{props:?} {key:?}");
            }
        }
        // No trailing separator, empty and malformed segments.
        assert_eq!(
            get_property("\u{2}junk\u{2}TAGS\u{1}x", keys::TAGS),
            Some("x")
        );
        // Empty value is still a value.
        assert_eq!(get_property("TAGS\u{1}\u{2}", keys::TAGS), Some(""));
    }

    #[test]
    fn parse_and_encode_round_trip() {
        let parsed = parse_properties(JAVA_FORM);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[1], ("TAGS".to_owned(), "TagA".to_owned()));
        let encoded = encode_properties(parsed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        assert_eq!(encoded, JAVA_FORM);
        assert!(parse_properties("").is_empty());
        assert_eq!(
            parse_properties("a\u{1}b\u{2}\u{2}nope\u{2}c\u{1}d").len(),
            2
        );
    }

    #[test]
    fn set_replaces_or_appends() {
        let replaced = set_property(JAVA_FORM, keys::TAGS, "TagB");
        assert_eq!(
            replaced,
            "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagB\u{2}WAIT\u{1}true\u{2}"
        );
        let appended = set_property(JAVA_FORM, keys::DELAY, "3");
        assert_eq!(appended, format!("{JAVA_FORM}DELAY\u{1}3\u{2}"));
        assert_eq!(set_property("", "A", "1"), "A\u{1}1\u{2}");
        // Missing trailing separator is repaired, duplicates collapse.
        assert_eq!(
            set_property("A\u{1}1\u{2}A\u{1}2", "A", "3"),
            "A\u{1}3\u{2}"
        );
    }

    #[test]
    fn remove_drops_key() {
        let removed = remove_property(JAVA_FORM, keys::KEYS);
        assert_eq!(removed, "TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}");
        assert_eq!(remove_property(JAVA_FORM, "ABSENT"), JAVA_FORM);
        assert_eq!(remove_property("", "A"), "");
    }
}
