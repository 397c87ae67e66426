//! Bodies of the admin reads mqadmin, the dashboard and the exporter use beyond the queue
//! stats of `stats`: `GroupList` (QUERY_TOPIC_CONSUME_BY_WHO), `ProducerTableInfo` /
//! `ProducerInfo` (GET_ALL_PRODUCER_INFO), `BrokerStatsData` / `BrokerStatsItem`
//! (VIEW_BROKER_STATS_DATA), `ConsumeStatsList` (GET_BROKER_CONSUME_STATS) and
//! `QueryConsumeQueueResponseBody` / `ConsumeQueueData` (QUERY_CONSUME_QUEUE).
//!
//! ```text
//! {"groupList":["g1","g2"]}
//! {"data":{"pg":[{"clientId":"ip@pid","remoteIP":"127.0.0.1:5000","language":"JAVA",
//!   "version":399,"lastUpdateTimestamp":1700000000000}]}}
//! {"statsMinute":{"sum":3,"tps":0.05,"avgpt":1.0},"statsHour":{...},"statsDay":{...}}
//! {"consumeStatsList":[{"g":[<ConsumeStats>,...]}],"brokerAddr":"ip:port","totalDiff":5}
//! {"queueData":[{"physicOffset":0,"physicSize":180,"tagsCode":0,"eval":false}],
//!  "maxQueueIndex":8,"minQueueIndex":0}
//! ```
//! Fields Java leaves null are omitted, as fastjson does.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ConsumeStats, SubscriptionData};

/// QUERY_TOPIC_CONSUME_BY_WHO response: the groups consuming a topic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupList {
    pub group_list: BTreeSet<String>,
}

/// One producer client (Java `ProducerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerInfo {
    pub client_id: String,
    #[serde(rename = "remoteIP")]
    pub remote_ip: String,
    /// `LanguageCode` name, e.g. `"JAVA"`.
    pub language: String,
    pub version: i32,
    pub last_update_timestamp: i64,
}

/// GET_ALL_PRODUCER_INFO response: producer group -> its clients.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerTableInfo {
    pub data: BTreeMap<String, Vec<ProducerInfo>>,
}

/// A stats item over one period (Java `BrokerStatsItem`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerStatsItem {
    pub sum: i64,
    pub tps: f64,
    pub avgpt: f64,
}

impl BrokerStatsItem {
    /// An item whose rates are finite (JSON has no NaN or infinity).
    pub fn new(sum: u64, tps: f64, avgpt: f64) -> Self {
        let finite = |value: f64| if value.is_finite() { value } else { 0.0 };
        BrokerStatsItem {
            sum: i64::try_from(sum).unwrap_or(i64::MAX),
            tps: finite(tps),
            avgpt: finite(avgpt),
        }
    }
}

/// VIEW_BROKER_STATS_DATA response.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerStatsData {
    pub stats_minute: BrokerStatsItem,
    pub stats_hour: BrokerStatsItem,
    pub stats_day: BrokerStatsItem,
}

/// GET_BROKER_CONSUME_STATS response: per subscription group, the consume stats of each
/// topic it has offsets for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumeStatsList {
    pub consume_stats_list: Vec<(String, Vec<ConsumeStats>)>,
    pub broker_addr: String,
    pub total_diff: i64,
}

impl ConsumeStatsList {
    /// JSON with each `ConsumeStats` written by its own encoder (queue-object map keys).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"{\"consumeStatsList\":[".to_vec();
        for (index, (group, stats)) in self.consume_stats_list.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.push(b'{');
            out.extend(super::encode_body(group));
            out.extend(b":[");
            for (at, one) in stats.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                out.extend(one.encode());
            }
            out.extend(b"]}");
        }
        out.extend(b"],\"brokerAddr\":");
        out.extend(super::encode_body(&self.broker_addr));
        out.extend(format!(",\"totalDiff\":{}}}", self.total_diff).into_bytes());
        out
    }
}

/// One consume queue entry (Java `ConsumeQueueData`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumeQueueData {
    pub physic_offset: i64,
    pub physic_size: i32,
    pub tags_code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_data_json: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_map: Option<String>,
    pub eval: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
}

/// QUERY_CONSUME_QUEUE response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueryConsumeQueueResponseBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_data: Option<SubscriptionData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_data: Option<String>,
    pub queue_data: Vec<ConsumeQueueData>,
    pub max_queue_index: i64,
    pub min_queue_index: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{MessageQueue, OffsetWrapper, decode_body, encode_body};

    #[test]
    fn producer_table_names_remote_ip_as_java() {
        let mut table = ProducerTableInfo::default();
        table.data.insert(
            "pg".into(),
            vec![ProducerInfo {
                client_id: "c".into(),
                remote_ip: "127.0.0.1:1".into(),
                language: "JAVA".into(),
                version: 399,
                last_update_timestamp: 7,
            }],
        );
        let json = String::from_utf8(encode_body(&table)).unwrap();
        assert_eq!(
            json,
            r#"{"data":{"pg":[{"clientId":"c","remoteIP":"127.0.0.1:1","language":"JAVA","version":399,"lastUpdateTimestamp":7}]}}"#
        );
    }

    #[test]
    fn stats_items_never_carry_nan() {
        let item = BrokerStatsItem::new(3, f64::NAN, f64::INFINITY);
        assert_eq!((item.sum, item.tps, item.avgpt), (3, 0.0, 0.0));
        let json = String::from_utf8(encode_body(&BrokerStatsData::default())).unwrap();
        assert!(
            json.starts_with(r#"{"statsMinute":{"sum":0,"tps":0.0"#),
            "{json}"
        );
    }

    #[test]
    fn consume_stats_list_nests_queue_keyed_stats() {
        let mut stats = ConsumeStats::default();
        stats.offset_table.insert(
            MessageQueue {
                topic: "T".into(),
                broker_name: "b".into(),
                queue_id: 0,
            },
            OffsetWrapper {
                broker_offset: 5,
                consumer_offset: 2,
                last_timestamp: 0,
            },
        );
        let list = ConsumeStatsList {
            consume_stats_list: vec![("g".into(), vec![stats]), ("h".into(), vec![])],
            broker_addr: "1.2.3.4:10911".into(),
            total_diff: 3,
        };
        let json = String::from_utf8(list.encode()).unwrap();
        assert_eq!(
            json,
            r#"{"consumeStatsList":[{"g":[{"offsetTable":{{"topic":"T","brokerName":"b","queueId":0}:{"brokerOffset":5,"consumerOffset":2,"lastTimestamp":0}},"consumeTps":0.0}]},{"h":[]}],"brokerAddr":"1.2.3.4:10911","totalDiff":3}"#
        );
    }

    #[test]
    fn consume_queue_body_omits_nulls() {
        let body = QueryConsumeQueueResponseBody {
            queue_data: vec![ConsumeQueueData {
                physic_offset: 10,
                physic_size: 20,
                ..ConsumeQueueData::default()
            }],
            max_queue_index: 1,
            ..QueryConsumeQueueResponseBody::default()
        };
        let json = String::from_utf8(encode_body(&body)).unwrap();
        assert_eq!(
            json,
            r#"{"queueData":[{"physicOffset":10,"physicSize":20,"tagsCode":0,"eval":false}],"maxQueueIndex":1,"minQueueIndex":0}"#
        );
        let back: QueryConsumeQueueResponseBody = decode_body(json.as_bytes()).unwrap();
        assert_eq!(back, body);
    }
}
