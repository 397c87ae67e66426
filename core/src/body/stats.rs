//! Bodies of the admin reads used by mqadmin and dashboards, and of offset resets:
//! Java `TopicStatsTable`/`TopicOffset` (GET_TOPIC_STATS_INFO), `ConsumeStats`/`OffsetWrapper`
//! (GET_CONSUME_STATS), `ConsumerConnection`/`ProducerConnection`/`Connection`
//! (GET_CONSUMER/PRODUCER_CONNECTION_LIST), `ResetOffsetBody` (INVOKE_BROKER_TO_RESET_OFFSET,
//! RESET_CONSUMER_CLIENT_OFFSET) and `CheckClientRequestBody` (CHECK_CLIENT_CONFIG).
//!
//! Maps keyed by `MessageQueue` are written the way fastjson writes them, with the key object
//! itself as the map key (not a string), which is what the Java client's fastjson expects:
//! ```text
//! {"offsetTable":{{"topic":"T","brokerName":"b","queueId":0}:{"minOffset":0,"maxOffset":8,
//!   "lastUpdateTimestamp":1700000000000}}}
//! ```
//! That is not standard JSON, so these types have an `encode()` of their own instead of going
//! through `encode_body`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConsumeFromWhere, ConsumeType, MessageModel, MessageQueue, SubscriptionData};

/// CHECK_CLIENT_CONFIG request: the subscription a consumer is about to start with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CheckClientRequestBody {
    pub client_id: String,
    pub group: String,
    pub subscription_data: Option<SubscriptionData>,
}

/// Offsets of one queue (GET_TOPIC_STATS_INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicOffset {
    pub min_offset: i64,
    pub max_offset: i64,
    /// Store time of the queue's last message, 0 for an empty queue.
    pub last_update_timestamp: i64,
}

/// GET_TOPIC_STATS_INFO response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicStatsTable {
    pub offset_table: BTreeMap<MessageQueue, TopicOffset>,
}

/// One queue's progress of a consumer group (GET_CONSUME_STATS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OffsetWrapper {
    /// The queue's max offset.
    pub broker_offset: i64,
    /// The group's committed offset (0 if none).
    pub consumer_offset: i64,
    /// Store time of the last consumed message, 0 if unknown.
    pub last_timestamp: i64,
}

/// GET_CONSUME_STATS response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumeStats {
    pub offset_table: BTreeMap<MessageQueue, OffsetWrapper>,
    pub consume_tps: f64,
}

/// Offsets to reset a group to (INVOKE_BROKER_TO_RESET_OFFSET response and the
/// RESET_CONSUMER_CLIENT_OFFSET request sent to consumers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResetOffsetBody {
    pub offset_table: BTreeMap<MessageQueue, i64>,
}

/// One client connection (Java `Connection`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection {
    pub client_id: String,
    pub client_addr: String,
    /// `LanguageCode` name, e.g. `"JAVA"`.
    pub language: String,
    pub version: i32,
}

/// GET_CONSUMER_CONNECTION_LIST response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerConnection {
    pub connection_set: Vec<Connection>,
    pub subscription_table: BTreeMap<String, SubscriptionData>,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

/// GET_PRODUCER_CONNECTION_LIST response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerConnection {
    pub connection_set: Vec<Connection>,
}

/// Writes `{"<name>":{<queue object>:<value>,...}` followed by `extra` fields and `}`.
fn encode_queue_map<V: Serialize>(
    name: &str,
    map: &BTreeMap<MessageQueue, V>,
    extra: &[(&str, String)],
) -> Vec<u8> {
    let mut out = format!("{{\"{name}\":{{").into_bytes();
    for (index, (queue, value)) in map.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend(super::encode_body(queue));
        out.push(b':');
        out.extend(super::encode_body(value));
    }
    out.push(b'}');
    for (key, json) in extra {
        out.extend(format!(",\"{key}\":{json}").into_bytes());
    }
    out.push(b'}');
    out
}

impl TopicStatsTable {
    pub fn encode(&self) -> Vec<u8> {
        encode_queue_map("offsetTable", &self.offset_table, &[])
    }
}

impl ConsumeStats {
    pub fn encode(&self) -> Vec<u8> {
        let tps = if self.consume_tps.is_finite() {
            self.consume_tps
        } else {
            0.0
        };
        let tps = serde_json::to_string(&tps).expect("a finite double");
        encode_queue_map("offsetTable", &self.offset_table, &[("consumeTps", tps)])
    }
}

impl ResetOffsetBody {
    pub fn encode(&self) -> Vec<u8> {
        encode_queue_map("offsetTable", &self.offset_table, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::decode_body;

    fn queue(id: i32) -> MessageQueue {
        MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: id,
        }
    }

    #[test]
    fn queue_keyed_maps_use_object_keys() {
        let mut stats = TopicStatsTable::default();
        stats.offset_table.insert(
            queue(1),
            TopicOffset {
                min_offset: 0,
                max_offset: 8,
                last_update_timestamp: 5,
            },
        );
        stats.offset_table.insert(queue(0), TopicOffset::default());
        let json = String::from_utf8(stats.encode()).unwrap();
        assert_eq!(
            json,
            r#"{"offsetTable":{{"topic":"T","brokerName":"b","queueId":0}:{"minOffset":0,"maxOffset":0,"lastUpdateTimestamp":0},{"topic":"T","brokerName":"b","queueId":1}:{"minOffset":0,"maxOffset":8,"lastUpdateTimestamp":5}}}"#
        );
        let mut consume = ConsumeStats::default();
        consume
            .offset_table
            .insert(queue(2), OffsetWrapper::default());
        let json = String::from_utf8(consume.encode()).unwrap();
        assert!(json.ends_with(r#"}},"consumeTps":0.0}"#), "{json}");
        let empty = String::from_utf8(ResetOffsetBody::default().encode()).unwrap();
        assert_eq!(empty, r#"{"offsetTable":{}}"#);
    }

    #[test]
    fn check_client_body() {
        let body: CheckClientRequestBody = decode_body(
            br#"{"clientId":"c","group":"g","subscriptionData":{"topic":"T",
            "subString":"a > 1","expressionType":"SQL92","classFilterMode":false}}"#,
        )
        .unwrap();
        let sub = body.subscription_data.unwrap();
        assert_eq!(
            (sub.expression_type.as_str(), sub.sub_string.as_str()),
            ("SQL92", "a > 1")
        );
    }
}
