//! The HEART_BEAT body (Java `HeartbeatData`, `ProducerData`, `ConsumerData`,
//! `SubscriptionData`) and the subscription expression rules of `FilterAPI`.
//!
//! Java client (fastjson, enums as names):
//! ```text
//! {"clientID":"10.0.0.5@1234","producerDataSet":[{"groupName":"pg"}],
//!  "consumerDataSet":[{"groupName":"cg","consumeType":"CONSUME_PASSIVELY",
//!    "messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","unitMode":false,
//!    "subscriptionDataSet":[{"classFilterMode":false,"topic":"T","subString":"TagA || TagB",
//!      "tagsSet":["TagA","TagB"],"codeSet":[2598919,2598920],"subVersion":1700000000000,
//!      "expressionType":"TAG"}]}]}
//! ```
//! The C++ client sends enums as ordinals, `subVersion` as a string and omits optional fields;
//! everything here therefore has a default and the enums accept a name or an ordinal.

use serde::{Deserialize, Deserializer, Serialize};

/// `subString` that subscribes to every tag.
pub const SUB_ALL: &str = "*";
/// `expressionType` of tag subscriptions (the default).
pub const EXPRESSION_TYPE_TAG: &str = "TAG";
/// `expressionType` of SQL92 property filters.
pub const EXPRESSION_TYPE_SQL92: &str = "SQL92";

java_enum! {
    /// Java `ConsumeType`: pull (actively) or push (passively) consumer. Defaults to push,
    /// what clients use by default.
    #[derive(Default)]
    pub enum ConsumeType {
        ConsumeActively = "CONSUME_ACTIVELY",
        #[default]
        ConsumePassively = "CONSUME_PASSIVELY",
    }
}

java_enum! {
    /// Java `MessageModel`. Defaults to clustering, the client default.
    #[derive(Default)]
    pub enum MessageModel {
        Broadcasting = "BROADCASTING",
        #[default]
        Clustering = "CLUSTERING",
    }
}

java_enum! {
    /// Java `ConsumeFromWhere`; deprecated constants keep their ordinals. Defaults to the
    /// client default, last offset.
    #[derive(Default)]
    pub enum ConsumeFromWhere {
        #[default]
        ConsumeFromLastOffset = "CONSUME_FROM_LAST_OFFSET",
        /// Deprecated in Java.
        ConsumeFromLastOffsetAndFromMinWhenBootFirst =
            "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
        /// Deprecated in Java.
        ConsumeFromMinOffset = "CONSUME_FROM_MIN_OFFSET",
        /// Deprecated in Java.
        ConsumeFromMaxOffset = "CONSUME_FROM_MAX_OFFSET",
        ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET",
        ConsumeFromTimestamp = "CONSUME_FROM_TIMESTAMP",
    }
}

/// The heartbeat a client sends every 30 s to every broker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeartbeatData {
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub producer_data_set: Vec<ProducerData>,
    pub consumer_data_set: Vec<ConsumerData>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProducerData {
    pub group_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsumerData {
    pub group_name: String,
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
    pub subscription_data_set: Vec<SubscriptionData>,
    pub unit_mode: bool,
}

/// One topic subscription of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionData {
    pub class_filter_mode: bool,
    pub topic: String,
    pub sub_string: String,
    pub tags_set: Vec<String>,
    /// Java `String.hashCode()` of each tag, compared with ConsumeQueue tag codes.
    #[serde(deserialize_with = "lenient_i32_list")]
    pub code_set: Vec<i32>,
    #[serde(deserialize_with = "lenient_i64")]
    pub sub_version: i64,
    #[serde(deserialize_with = "expression_type_or_tag")]
    pub expression_type: String,
}

impl Default for SubscriptionData {
    fn default() -> Self {
        SubscriptionData {
            class_filter_mode: false,
            topic: String::new(),
            sub_string: String::new(),
            tags_set: Vec::new(),
            code_set: Vec::new(),
            sub_version: 0,
            expression_type: EXPRESSION_TYPE_TAG.to_owned(),
        }
    }
}

impl SubscriptionData {
    /// Java `FilterAPI.buildSubscriptionData`: `"*"` or empty subscribes to everything;
    /// otherwise the expression is split on `||`, each tag trimmed, empty tags skipped and
    /// duplicates dropped (Java keeps them in sets). `subVersion` is now in ms, as in Java.
    pub fn from_expression(topic: &str, expr: &str) -> Self {
        let mut data = SubscriptionData {
            topic: topic.to_owned(),
            sub_string: expr.to_owned(),
            sub_version: super::now_ms(),
            ..SubscriptionData::default()
        };
        if expr.is_empty() || expr == SUB_ALL {
            data.sub_string = SUB_ALL.to_owned();
            return data;
        }
        for tag in expr
            .split("||")
            .map(str::trim)
            .filter(|tag| !tag.is_empty())
        {
            if !data.tags_set.iter().any(|known| known == tag) {
                data.tags_set.push(tag.to_owned());
            }
            let code = crate::message::hash::java_string_hash(tag);
            if !data.code_set.contains(&code) {
                data.code_set.push(code);
            }
        }
        data
    }

    /// Whether a ConsumeQueue entry with `tags_code` passes this subscription on the broker
    /// (Java `ExpressionMessageFilter.isMatchedByConsumeQueue`): class-filter mode, non-tag
    /// expressions (SQL92 is evaluated later), `"*"` and empty match everything; otherwise the
    /// code, truncated to `int` as Java does, must be in `codeSet`. Hash collisions pass here
    /// and are filtered by the client, which compares tag strings.
    pub fn matches_tags_code(&self, tags_code: i64) -> bool {
        let is_tag_type =
            self.expression_type.is_empty() || self.expression_type == EXPRESSION_TYPE_TAG;
        if self.class_filter_mode || !is_tag_type {
            return true;
        }
        if self.sub_string.is_empty() || self.sub_string == SUB_ALL {
            return true;
        }
        self.code_set.contains(&(tags_code as i32))
    }
}

/// A JSON integer as clients send it: a number or a numeric string.
#[derive(Deserialize)]
#[serde(untagged)]
enum LenientInt {
    Number(i64),
    Text(String),
    Null(()),
}

impl LenientInt {
    fn into_i64<E: serde::de::Error>(self) -> Result<i64, E> {
        match self {
            LenientInt::Number(value) => Ok(value),
            LenientInt::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("expected an integer, got {text:?}"))),
            LenientInt::Null(()) => Ok(0),
        }
    }
}

fn lenient_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    LenientInt::deserialize(deserializer)?.into_i64()
}

fn lenient_i32_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i32>, D::Error> {
    let items = Option::<Vec<LenientInt>>::deserialize(deserializer)?.unwrap_or_default();
    items
        .into_iter()
        .map(|item| {
            let value = item.into_i64::<D::Error>()?;
            i32::try_from(value).map_err(|_| serde::de::Error::custom("code out of int range"))
        })
        .collect()
}

fn expression_type_or_tag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| EXPRESSION_TYPE_TAG.to_owned()))
}

#[cfg(test)]
#[path = "heartbeat_tests.rs"]
mod tests;
