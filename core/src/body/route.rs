//! Routing data served by the name server (Java `QueueData`, `BrokerData`, `TopicRouteData`,
//! `ClusterInfo`, `TopicList`).
//!
//! GET_ROUTEINFO_BY_TOPIC response:
//! ```text
//! {"orderTopicConf":"...",                                   (absent when null)
//!  "queueDatas":[{"brokerName":"a","readQueueNums":4,"writeQueueNums":4,"perm":6,
//!                 "topicSysFlag":0}],
//!  "brokerDatas":[{"cluster":"c","brokerName":"a","brokerAddrs":{"0":"10.0.0.1:10911"}}],
//!  "filterServerTable":{}}
//! ```
//! Name servers before 4.9.4 write `brokerAddrs` keys unquoted (`{0:"ip:port"}`, docs/protocol.md
//! §4.4); [`super::decode_body`] accepts that. We always write quoted keys. Old versions spell
//! `topicSysFlag` as `topicSynFlag`; both are read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Broker id of the master in `brokerAddrs`.
pub const MASTER_ID: i64 = 0;

/// One broker's queues of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    #[serde(alias = "topicSynFlag")]
    pub topic_sys_flag: i32,
}

/// One broker name (master and slaves) and its addresses by broker id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<i64, String>,
}

impl BrokerData {
    /// Address of the master (broker id 0), if registered.
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }
}

/// The route of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueData>,
    pub broker_datas: Vec<BrokerData>,
    /// Broker address -> filter server addresses (obsolete feature; normally empty).
    pub filter_server_table: HashMap<String, Vec<String>>,
}

/// GET_BROKER_CLUSTER_INFO response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    /// Broker name -> its addresses.
    pub broker_addr_table: HashMap<String, BrokerData>,
    /// Cluster name -> broker names.
    pub cluster_addr_table: HashMap<String, BTreeSet<String>>,
}

/// Topic list responses (GET_ALL_TOPIC_LIST_FROM_NAMESERVER and friends).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    pub topic_list: BTreeSet<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{decode_body, encode_body};

    const OLD_NAMESRV: &[u8] =
        br#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"},
        "brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},
        "queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSynFlag":0,
        "writeQueueNums":4}]}"#;

    #[test]
    fn reads_unquoted_integer_keys() {
        let route: TopicRouteData = decode_body(OLD_NAMESRV).unwrap();
        assert_eq!(route.order_topic_conf, None);
        let broker = &route.broker_datas[0];
        assert_eq!(broker.master_addr(), Some("127.0.0.1:10911"));
        assert_eq!(broker.broker_addrs[&1], "127.0.0.1:10921");
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        let minimal: BrokerData = decode_body(br#"{"brokerAddrs":{0:"127.0.0.1:10911"}}"#).unwrap();
        assert_eq!(minimal.master_addr(), Some("127.0.0.1:10911"));
    }

    #[test]
    fn writes_standard_json() {
        let route: TopicRouteData = decode_body(OLD_NAMESRV).unwrap();
        let json = String::from_utf8(encode_body(&route)).unwrap();
        assert!(json.contains(r#""brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"}"#));
        assert!(json.contains(r#""topicSysFlag":0"#), "{json}");
        assert!(!json.contains("orderTopicConf"));
        let strict: TopicRouteData = serde_json::from_str(&json).unwrap();
        assert_eq!(strict, route);
    }

    #[test]
    fn cluster_info_and_topic_list() {
        let java = br#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911"},
            "brokerName":"broker-a","cluster":"c1"}},"clusterAddrTable":{"c1":["broker-a"]}}"#;
        let info: ClusterInfo = decode_body(java).unwrap();
        assert!(info.cluster_addr_table["c1"].contains("broker-a"));
        assert_eq!(info.broker_addr_table["broker-a"].cluster, "c1");
        let list = TopicList {
            topic_list: ["b".into(), "a".into()].into(),
            broker_addr: None,
        };
        assert_eq!(encode_body(&list), br#"{"topicList":["a","b"]}"#);
    }
}
