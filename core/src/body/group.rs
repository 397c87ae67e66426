//! Consumer-group bodies (Java `SubscriptionGroupConfig`, `ConsumerListBody`, `MessageQueue`,
//! `LockBatchRequestBody`, `LockBatchResponseBody`, `UnlockBatchRequestBody`).
//!
//! ```text
//! SubscriptionGroupConfig  {"groupName":"cg","consumeEnable":true,"consumeFromMinEnable":true,
//!                           "consumeBroadcastEnable":true,"retryQueueNums":1,"retryMaxTimes":16,
//!                           "brokerId":0,"whichBrokerWhenConsumeSlowly":1,
//!                           "notifyConsumerIdsChangedEnable":true}
//! ConsumerListBody         {"consumerIdList":["10.0.0.5@1234"]}
//! LockBatchRequestBody     {"consumerGroup":"cg","clientId":"...","mqSet":[{"topic":"T",
//!                           "brokerName":"broker-a","queueId":0}]}
//! LockBatchResponseBody    {"lockOKMQSet":[...]}
//! ```
//! 5.x adds fields to SubscriptionGroupConfig (groupSysFlag, consumeTimeoutMinute, ...); they
//! are ignored on input.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Settings of one consumer group on one broker (`subscriptionGroup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub retry_queue_nums: i32,
    /// Deliveries before a message goes to the DLQ.
    pub retry_max_times: i32,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    pub notify_consumer_ids_changed_enable: bool,
}

impl Default for SubscriptionGroupConfig {
    /// Java's defaults.
    fn default() -> Self {
        SubscriptionGroupConfig {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
        }
    }
}

impl SubscriptionGroupConfig {
    /// A group with Java's default settings.
    pub fn new(group_name: &str) -> Self {
        SubscriptionGroupConfig {
            group_name: group_name.to_owned(),
            ..Self::default()
        }
    }
}

/// GET_CONSUMER_LIST_BY_GROUP response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerListBody {
    pub consumer_id_list: Vec<String>,
}

/// One queue of a topic on one broker. Ordered like Java's `compareTo`: topic, broker name,
/// queue id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageQueue {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
}

/// LOCK_BATCH_MQ request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockBatchRequestBody {
    pub consumer_group: String,
    pub client_id: String,
    pub mq_set: BTreeSet<MessageQueue>,
}

/// LOCK_BATCH_MQ response: the queues now locked by the requesting client.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LockBatchResponseBody {
    /// Java getter `getLockOKMQSet`, hence the unusual JSON key.
    #[serde(rename = "lockOKMQSet")]
    pub lock_ok_mq_set: BTreeSet<MessageQueue>,
}

/// UNLOCK_BATCH_MQ request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UnlockBatchRequestBody {
    pub consumer_group: String,
    pub client_id: String,
    pub mq_set: BTreeSet<MessageQueue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode_body, encode_body};

    #[test]
    fn group_defaults() {
        let config: SubscriptionGroupConfig = decode_body(br#"{"groupName":"cg"}"#).unwrap();
        assert_eq!(config, SubscriptionGroupConfig::new("cg"));
        assert!(config.consume_enable && config.notify_consumer_ids_changed_enable);
        assert_eq!((config.retry_queue_nums, config.retry_max_times), (1, 16));
        let json = String::from_utf8(encode_body(&config)).unwrap();
        assert!(
            json.contains(r#""whichBrokerWhenConsumeSlowly":1"#),
            "{json}"
        );
        assert!(json.contains(r#""consumeFromMinEnable":true"#), "{json}");
    }

    #[test]
    fn lock_bodies() {
        let request: LockBatchRequestBody = decode_body(
            br#"{"clientId":"c1","consumerGroup":"cg","mqSet":[{"brokerName":"b","queueId":1,
            "topic":"T"},{"brokerName":"b","queueId":0,"topic":"T"}]}"#,
        )
        .unwrap();
        assert_eq!(request.mq_set.len(), 2);
        assert_eq!(request.mq_set.first().unwrap().queue_id, 0);
        let response = LockBatchResponseBody {
            lock_ok_mq_set: request.mq_set.clone(),
        };
        let json = String::from_utf8(encode_body(&response)).unwrap();
        assert!(json.starts_with(r#"{"lockOKMQSet":[{"topic":"T","brokerName":"b","queueId":0}"#));
        let unlock: UnlockBatchRequestBody = decode_body(json.as_bytes()).unwrap();
        assert!(unlock.mq_set.is_empty(), "unknown keys are ignored");
    }

    #[test]
    fn consumer_list() {
        let body = ConsumerListBody {
            consumer_id_list: vec!["a@1".into()],
        };
        assert_eq!(encode_body(&body), br#"{"consumerIdList":["a@1"]}"#);
    }
}
