//! JSON bodies exchanged with clients, brokers and name servers (docs/protocol.md §2.1), and the
//! JSON config files a broker keeps (`topics.json`, `subscriptionGroup.json`,
//! `consumerOffset.json`).
//!
//! One file per noun: [`topic`] (topic configs, data version, permissions), [`route`] (route and
//! cluster data from the name server), [`register`] (REGISTER_BROKER body, plain and
//! compressed), [`heartbeat`] (HEART_BEAT body and subscriptions), [`group`] (subscription
//! groups, consumer lists, queue locks), [`offsets`] (consumer and delay offsets), [`kv`],
//! [`controller`] (RocketMQ 5 controller mode: sync-state sets, replicas, epochs).
//!
//! Field names follow the Java getters (camelCase; a few exceptions are renamed explicitly).
//! Decoding goes through the lenient parser (`remoting::lenient_json`) because fastjson writes
//! integer map keys unquoted; every field that a client may omit has a default. Encoding writes
//! standard JSON, which every 4.x Java client and fastjson accept.

#[macro_use]
mod java_enum;

pub mod admin;
pub mod controller;
pub mod group;
pub mod heartbeat;
pub mod kv;
pub mod offsets;
pub mod register;
pub mod route;
pub mod stats;
pub mod topic;

pub use admin::{
    BrokerStatsData, BrokerStatsItem, ConsumeQueueData, ConsumeStatsList, GroupList, ProducerInfo,
    ProducerTableInfo, QueryConsumeQueueResponseBody,
};
pub use group::{
    ConsumerListBody, LockBatchRequestBody, LockBatchResponseBody, MessageQueue,
    SubscriptionGroupConfig, UnlockBatchRequestBody,
};
pub use heartbeat::{
    ConsumeFromWhere, ConsumeType, ConsumerData, HeartbeatData, MessageModel, ProducerData,
    SubscriptionData,
};
pub use kv::KVTable;
pub use offsets::{ConsumerOffsetSerializeWrapper, DelayOffsetSerializeWrapper};
pub use register::RegisterBrokerBody;
pub use route::{BrokerData, ClusterInfo, QueueData, TopicList, TopicRouteData};
pub use stats::{
    CheckClientRequestBody, Connection, ConsumeStats, ConsumerConnection, OffsetWrapper,
    ProducerConnection, ResetOffsetBody, TopicOffset, TopicStatsTable,
};
pub use topic::{
    DataVersion, PERM_INHERIT, PERM_PRIORITY, PERM_READ, PERM_WRITE, TopicConfig,
    TopicConfigSerializeWrapper, TopicFilterType,
};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("bad JSON body: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bad compressed body: {0}")]
    Compressed(String),
}

/// Decodes a JSON body, accepting fastjson's deviations (unquoted keys, single quotes).
///
/// # Errors
/// `BodyError::Json` when the bytes are not (lenient) JSON of the expected shape.
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    Ok(crate::remoting::lenient_json::from_slice_lenient(bytes)?)
}

/// Encodes a body as standard JSON.
///
/// # Panics
/// If `T`'s `Serialize` fails, which for the types here (string or integer map keys only)
/// would be a programmer error.
pub fn encode_body<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("body types serialize to JSON")
}

/// Milliseconds since the Unix epoch, as Java's `System.currentTimeMillis()`.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
