//! Topic configuration (Java `TopicConfig`, `TopicConfigSerializeWrapper`, `DataVersion`,
//! `PermName`, `TopicFilterType`).
//!
//! JSON (GET_ALL_TOPIC_CONFIG response, `config/topics.json`, inside REGISTER_BROKER):
//! ```text
//! {"topicConfigTable":{"T":{"topicName":"T","readQueueNums":8,"writeQueueNums":8,"perm":6,
//!   "topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false}},
//!  "dataVersion":{"timestamp":1700000000000,"counter":3}}
//! ```
//! Text form (`TopicConfig.encode()`, used by the compressed REGISTER_BROKER body):
//! `topicName readQueueNums writeQueueNums perm topicFilterType`, separated by one space. It
//! carries neither `topicSysFlag` nor `order`; decoding leaves them at their defaults, as Java's.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Messages of this topic are served with priority (name server only).
pub const PERM_PRIORITY: i32 = 8;
/// Consumers may read.
pub const PERM_READ: i32 = 4;
/// Producers may write.
pub const PERM_WRITE: i32 = 2;
/// Topics created from this one (TBW102) inherit its config.
pub const PERM_INHERIT: i32 = 1;

pub fn is_readable(perm: i32) -> bool {
    perm & PERM_READ == PERM_READ
}

pub fn is_writeable(perm: i32) -> bool {
    perm & PERM_WRITE == PERM_WRITE
}

pub fn is_inherited(perm: i32) -> bool {
    perm & PERM_INHERIT == PERM_INHERIT
}

/// Java `TopicFilterType`; [`TopicConfig`] keeps it as its string name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TopicFilterType {
    #[default]
    SingleTag,
    MultiTag,
}

impl TopicFilterType {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicFilterType::SingleTag => "SINGLE_TAG",
            TopicFilterType::MultiTag => "MULTI_TAG",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SINGLE_TAG" => Some(TopicFilterType::SingleTag),
            "MULTI_TAG" => Some(TopicFilterType::MultiTag),
            _ => None,
        }
    }
}

/// One topic's configuration on one broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    /// `"SINGLE_TAG"` or `"MULTI_TAG"` (see [`TopicFilterType`]).
    pub topic_filter_type: String,
    pub topic_sys_flag: i32,
    pub order: bool,
}

impl Default for TopicConfig {
    /// Java's defaults: 16 read and write queues, read and write permission, single tag.
    fn default() -> Self {
        TopicConfig {
            topic_name: String::new(),
            read_queue_nums: 16,
            write_queue_nums: 16,
            perm: PERM_READ | PERM_WRITE,
            topic_filter_type: TopicFilterType::SingleTag.as_str().to_owned(),
            topic_sys_flag: 0,
            order: false,
        }
    }
}

impl TopicConfig {
    /// A topic with Java's default settings.
    pub fn new(name: &str) -> Self {
        TopicConfig {
            topic_name: name.to_owned(),
            ..TopicConfig::default()
        }
    }

    /// Java `TopicConfig.encode()`: the five first fields joined by a single space.
    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.topic_name,
            self.read_queue_nums,
            self.write_queue_nums,
            self.perm,
            self.topic_filter_type
        )
    }

    /// Java `TopicConfig.decode()`: exactly five space-separated fields with integer queue
    /// counts and permission and a known filter type; `None` otherwise.
    pub fn decode(s: &str) -> Option<Self> {
        let mut fields = s.split(' ');
        let topic_name = fields.next()?;
        let read_queue_nums = fields.next()?.parse().ok()?;
        let write_queue_nums = fields.next()?.parse().ok()?;
        let perm = fields.next()?.parse().ok()?;
        let filter_type = TopicFilterType::from_name(fields.next()?)?;
        if fields.next().is_some() {
            return None;
        }
        Some(TopicConfig {
            topic_name: topic_name.to_owned(),
            read_queue_nums,
            write_queue_nums,
            perm,
            topic_filter_type: filter_type.as_str().to_owned(),
            ..TopicConfig::default()
        })
    }
}

/// Version of a broker's topic table; the name server skips unchanged re-registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    pub timestamp: i64,
    pub counter: i64,
    /// RocketMQ 5's `stateVersion`: in controller mode the broker's master epoch, set at each
    /// role change; a name server refuses a registration for a broker id held by another
    /// address with a larger one (a deposed master cannot take its old id back). 0 (not
    /// sent: a 4.x peer never sees it) in classic mode.
    #[serde(skip_serializing_if = "is_zero")]
    pub state_version: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl DataVersion {
    /// A fresh version stamped now with counter 0 (Java's `new DataVersion()`).
    pub fn now() -> Self {
        DataVersion {
            timestamp: super::now_ms(),
            counter: 0,
            state_version: 0,
        }
    }

    /// Java `nextVersion(stateVersion)`: as [`Self::next`], with a new state version.
    pub fn next_state(&mut self, state_version: i64) {
        self.next();
        self.state_version = state_version;
    }

    /// Java `nextVersion()`: stamp now and bump the counter.
    pub fn next(&mut self) {
        self.timestamp = super::now_ms();
        self.counter = self.counter.wrapping_add(1);
    }
}

/// All topic configs of a broker with their version.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicConfigSerializeWrapper {
    pub topic_config_table: HashMap<String, TopicConfig>,
    pub data_version: DataVersion,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode_body, encode_body};

    #[test]
    fn text_form_round_trip() {
        let mut config = TopicConfig::new("TopicTest");
        config.read_queue_nums = 8;
        config.write_queue_nums = 4;
        config.perm = PERM_READ;
        assert_eq!(config.encode(), "TopicTest 8 4 4 SINGLE_TAG");
        assert_eq!(TopicConfig::decode(&config.encode()), Some(config.clone()));
        config.topic_filter_type = "MULTI_TAG".to_owned();
        assert_eq!(TopicConfig::decode(&config.encode()), Some(config));
    }

    #[test]
    fn text_form_drops_sys_flag_and_order() {
        let mut config = TopicConfig::new("T");
        config.order = true;
        config.topic_sys_flag = 3;
        let decoded = TopicConfig::decode(&config.encode()).unwrap();
        assert!(!decoded.order);
        assert_eq!(decoded.topic_sys_flag, 0);
    }

    #[test]
    fn text_form_rejects_malformed() {
        for bad in [
            "",
            "T 1 2 6",
            "T 1 2 6 SINGLE_TAG extra",
            "T x 2 6 SINGLE_TAG",
            "T 1 2 6 NOPE",
        ] {
            assert_eq!(TopicConfig::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn json_defaults_and_names() {
        let config: TopicConfig = decode_body(br#"{"topicName":"T","perm":2}"#).unwrap();
        assert_eq!(config.read_queue_nums, 16);
        assert_eq!(config.perm, PERM_WRITE);
        assert_eq!(config.topic_filter_type, "SINGLE_TAG");
        let json = String::from_utf8(encode_body(&config)).unwrap();
        for key in [
            "topicName",
            "readQueueNums",
            "writeQueueNums",
            "topicFilterType",
            "topicSysFlag",
        ] {
            assert!(json.contains(&format!("\"{key}\"")), "{json}");
        }
    }

    #[test]
    fn wrapper_from_java() {
        let java = br#"{"dataVersion":{"counter":3,"timestamp":1700000000000},
            "topicConfigTable":{"TBW102":{"order":false,"perm":7,"readQueueNums":8,
            "topicFilterType":"SINGLE_TAG","topicName":"TBW102","topicSysFlag":0,
            "writeQueueNums":8}}}"#;
        let wrapper: TopicConfigSerializeWrapper = decode_body(java).unwrap();
        assert_eq!(wrapper.data_version.counter, 3);
        let tbw = &wrapper.topic_config_table["TBW102"];
        assert!(is_inherited(tbw.perm) && is_readable(tbw.perm) && is_writeable(tbw.perm));
        let again: TopicConfigSerializeWrapper = decode_body(&encode_body(&wrapper)).unwrap();
        assert_eq!(again, wrapper);
    }

    #[test]
    fn data_version_next() {
        let mut version = DataVersion::default();
        version.next();
        assert_eq!(version.counter, 1);
        assert!(version.timestamp > 0);
    }
}
