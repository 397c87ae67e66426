//! Offset tables (Java `ConsumerOffsetSerializeWrapper`, and the delay-offset file).
//!
//! `config/consumerOffset.json` and the GET_ALL_CONSUMER_OFFSET response:
//! ```text
//! {"offsetTable":{"TopicTest@cg":{0:120,1:97}}}     (fastjson: integer keys unquoted)
//! ```
//! `config/delayOffset.json` and GET_ALL_DELAY_OFFSET: `{"offsetTable":{1:35,2:0}}` (delay
//! level -> offset in SCHEDULE_TOPIC_XXXX queue level-1).
//! We read both key styles and write quoted keys, which fastjson reads too.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Separator of the `topic@group` keys.
pub const TOPIC_GROUP_SEPARATOR: char = '@';

/// Committed consumer offsets: `topic@group` -> queue id -> next offset to consume.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerOffsetSerializeWrapper {
    pub offset_table: HashMap<String, BTreeMap<i32, i64>>,
}

impl ConsumerOffsetSerializeWrapper {
    /// The `offsetTable` key of a topic and group.
    pub fn key(topic: &str, group: &str) -> String {
        format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}")
    }

    /// Splits a key into topic and group. Topics cannot contain '@', so split at the first.
    pub fn split_key(key: &str) -> Option<(&str, &str)> {
        key.split_once(TOPIC_GROUP_SEPARATOR)
    }
}

/// Progress of the delay-message scheduler: delay level -> offset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DelayOffsetSerializeWrapper {
    pub offset_table: BTreeMap<i32, i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode_body, encode_body};

    #[test]
    fn reads_fastjson_file() {
        let java = br#"{"offsetTable":{"TopicTest@cg":{0:120,1:97},"%RETRY%cg@cg":{0:0}}}"#;
        let wrapper: ConsumerOffsetSerializeWrapper = decode_body(java).unwrap();
        let key = ConsumerOffsetSerializeWrapper::key("TopicTest", "cg");
        assert_eq!(wrapper.offset_table[&key][&1], 97);
        assert_eq!(
            ConsumerOffsetSerializeWrapper::split_key(&key),
            Some(("TopicTest", "cg"))
        );
        let json = encode_body(&wrapper);
        assert_eq!(
            decode_body::<ConsumerOffsetSerializeWrapper>(&json).unwrap(),
            wrapper
        );
    }

    #[test]
    fn delay_offsets() {
        let wrapper: DelayOffsetSerializeWrapper =
            decode_body(br#"{"offsetTable":{1:35,2:0}}"#).unwrap();
        assert_eq!(wrapper.offset_table[&1], 35);
        assert_eq!(encode_body(&wrapper), br#"{"offsetTable":{"1":35,"2":0}}"#);
    }
}
