//! The broker registry and the routes computed from it. Pure state: no I/O, no clock of
//! its own (callers pass `now`), so every rule is unit-tested.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rmq_core::body::{
    BrokerData, ClusterInfo, DataVersion, PERM_READ, PERM_WRITE, QueueData, TopicConfig,
    TopicConfigSerializeWrapper, TopicList, TopicRouteData,
};

/// Master broker id.
pub const MASTER_ID: i64 = 0;

/// One registration, as carried by REGISTER_BROKER.
pub struct Registration {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addr: String,
    pub broker_id: i64,
    pub ha_server_addr: String,
    pub topics: TopicConfigSerializeWrapper,
    /// Connection the registration came on (closing it unregisters the broker).
    pub connection_id: u64,
    /// The body holds only part of the broker's topics (a split registration, header
    /// `partialTopics=true`): its topics are added or updated, none is removed.
    pub partial: bool,
}

/// What REGISTER_BROKER answers: where a slave finds its master.
#[derive(Debug, Default, PartialEq)]
pub struct RegisterOutcome {
    pub master_addr: Option<String>,
    pub ha_server_addr: Option<String>,
}

struct LiveBroker {
    last_update: Instant,
    data_version: DataVersion,
    ha_server_addr: String,
    connection_id: u64,
    broker_name: String,
    cluster: String,
}

/// All brokers known to this name server.
#[derive(Default)]
pub struct RouteTable {
    /// topic → broker name → queue layout.
    topic_queues: HashMap<String, BTreeMap<String, QueueData>>,
    brokers: BTreeMap<String, BrokerData>,
    clusters: HashMap<String, BTreeSet<String>>,
    /// broker address → liveness.
    live: HashMap<String, LiveBroker>,
}

impl RouteTable {
    /// Records a registration; a master's topic configs replace its queue data.
    pub fn register(&mut self, reg: Registration, now: Instant) -> RegisterOutcome {
        // An address that comes back under another broker name or cluster (a broker
        // restarted with a new brokerName) leaves its old name first: otherwise the old name
        // kept the address, and its routes, forever, since expiry is keyed by address.
        let renamed = self
            .live
            .get(&reg.broker_addr)
            .is_some_and(|live| live.broker_name != reg.broker_name || live.cluster != reg.cluster);
        if renamed {
            self.unregister(&reg.broker_addr);
        }
        self.clusters
            .entry(reg.cluster.clone())
            .or_default()
            .insert(reg.broker_name.clone());
        let data = self
            .brokers
            .entry(reg.broker_name.clone())
            .or_insert_with(|| BrokerData {
                cluster: reg.cluster.clone(),
                broker_name: reg.broker_name.clone(),
                broker_addrs: BTreeMap::new(),
            });
        // One address per id: an address that moved to another id (slave promoted by
        // an operator) is removed from its old slot first.
        data.broker_addrs
            .retain(|id, addr| *addr != reg.broker_addr || *id == reg.broker_id);
        let first = data
            .broker_addrs
            .insert(reg.broker_id, reg.broker_addr.clone())
            .is_none();
        // As RocketMQ: a master's topics are applied only when new or when its data version
        // moved, so a periodic re-registration does not undo WIPE_WRITE_PERM_OF_BROKER.
        let changed = self
            .live
            .get(&reg.broker_addr)
            .is_none_or(|live| live.data_version != reg.topics.data_version);
        if reg.broker_id == MASTER_ID && reg.partial {
            // As RocketMQ 5 for every registration: a topic is applied when the data version
            // moved or this broker has no queues for it yet (the later parts of a split
            // registration carry the same version as the first).
            self.merge_master_topics(&reg.broker_name, &reg.topics, first || changed);
        } else if reg.broker_id == MASTER_ID && (first || changed) {
            self.replace_master_topics(&reg.broker_name, &reg.topics);
        }
        self.live.insert(
            reg.broker_addr.clone(),
            LiveBroker {
                last_update: now,
                data_version: reg.topics.data_version,
                ha_server_addr: reg.ha_server_addr.clone(),
                connection_id: reg.connection_id,
                broker_name: reg.broker_name.clone(),
                cluster: reg.cluster.clone(),
            },
        );
        debug_assert!(
            self.brokers
                .iter()
                .filter(|(_, data)| data.broker_addrs.values().any(|a| *a == reg.broker_addr))
                .count()
                == 1,
            "an address belongs to one broker name"
        );
        self.outcome_for(&reg.broker_name, reg.broker_id)
    }

    fn outcome_for(&self, broker_name: &str, broker_id: i64) -> RegisterOutcome {
        if broker_id == MASTER_ID {
            return RegisterOutcome::default();
        }
        let master = self
            .brokers
            .get(broker_name)
            .and_then(|data| data.broker_addrs.get(&MASTER_ID));
        match master {
            Some(addr) => RegisterOutcome {
                master_addr: Some(addr.clone()),
                ha_server_addr: self.live.get(addr).map(|live| live.ha_server_addr.clone()),
            },
            None => RegisterOutcome::default(),
        }
    }

    fn merge_master_topics(
        &mut self,
        broker_name: &str,
        topics: &TopicConfigSerializeWrapper,
        all: bool,
    ) {
        for config in topics.topic_config_table.values() {
            let queues = self
                .topic_queues
                .entry(config.topic_name.clone())
                .or_default();
            if all || !queues.contains_key(broker_name) {
                queues.insert(broker_name.to_string(), queue_data(broker_name, config));
            }
        }
    }

    fn replace_master_topics(&mut self, broker_name: &str, topics: &TopicConfigSerializeWrapper) {
        for queues in self.topic_queues.values_mut() {
            queues.remove(broker_name);
        }
        for config in topics.topic_config_table.values() {
            self.topic_queues
                .entry(config.topic_name.clone())
                .or_default()
                .insert(broker_name.to_string(), queue_data(broker_name, config));
        }
        self.topic_queues.retain(|_, queues| !queues.is_empty());
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe`) or ADD_WRITE_PERM_OF_BROKER on every queue layout
    /// of `broker_name`, until its next topic change. Returns how many topics it touched.
    pub fn set_write_perm(&mut self, broker_name: &str, wipe: bool) -> i32 {
        let mut count = 0;
        for queues in self.topic_queues.values_mut() {
            if let Some(data) = queues.get_mut(broker_name) {
                data.perm = if wipe {
                    data.perm & !PERM_WRITE
                } else {
                    PERM_READ | PERM_WRITE
                };
                count += 1;
            }
        }
        count
    }

    /// Removes one broker address (UNREGISTER_BROKER, expiry, connection closed).
    pub fn unregister(&mut self, broker_addr: &str) {
        let Some(live) = self.live.remove(broker_addr) else {
            return;
        };
        let mut name_gone = false;
        if let Some(data) = self.brokers.get_mut(&live.broker_name) {
            data.broker_addrs.retain(|_, addr| addr != broker_addr);
            name_gone = data.broker_addrs.is_empty();
        }
        if name_gone {
            self.brokers.remove(&live.broker_name);
            if let Some(names) = self.clusters.get_mut(&live.cluster) {
                names.remove(&live.broker_name);
                if names.is_empty() {
                    self.clusters.remove(&live.cluster);
                }
            }
        }
        if name_gone {
            // While a slave of the name is alive its queues stay routable, so consumers
            // keep reading from the slave when the master is down (RocketMQ does the same).
            for queues in self.topic_queues.values_mut() {
                queues.remove(&live.broker_name);
            }
            self.topic_queues.retain(|_, queues| !queues.is_empty());
        }
        tracing::info!(broker = broker_addr, name = %live.broker_name, "broker removed");
    }

    /// Removes every broker registered over `connection_id`. Returns their addresses.
    pub fn connection_closed(&mut self, connection_id: u64) -> Vec<String> {
        let gone: Vec<String> = self
            .live
            .iter()
            .filter(|(_, live)| live.connection_id == connection_id)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &gone {
            self.unregister(addr);
        }
        gone
    }

    /// Removes brokers not heard from within `expiry`. Returns their addresses.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .live
            .iter()
            .filter(|(_, live)| now.saturating_duration_since(live.last_update) > expiry)
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in &gone {
            tracing::warn!(broker = %addr, "broker expired: no registration for {expiry:?}");
            self.unregister(addr);
        }
        gone
    }

    /// The route of `topic`, or None when no live broker carries it.
    pub fn route(&self, topic: &str, order_conf: Option<String>) -> Option<TopicRouteData> {
        let queues = self.topic_queues.get(topic)?;
        let queue_datas: Vec<QueueData> = queues.values().cloned().collect();
        let broker_datas: Vec<BrokerData> = queues
            .keys()
            .filter_map(|name| self.brokers.get(name).cloned())
            .collect();
        if broker_datas.is_empty() {
            return None;
        }
        Some(TopicRouteData {
            order_topic_conf: order_conf,
            queue_datas,
            broker_datas,
            filter_server_table: HashMap::new(),
        })
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self
                .brokers
                .iter()
                .map(|(name, data)| (name.clone(), data.clone()))
                .collect(),
            cluster_addr_table: self.clusters.clone(),
        }
    }

    pub fn all_topics(&self) -> TopicList {
        TopicList {
            topic_list: self.topic_queues.keys().cloned().collect(),
            broker_addr: None,
        }
    }

    /// Topics carried by any broker of `cluster`.
    pub fn topics_of_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster).cloned().unwrap_or_default();
        let topic_list = self
            .topic_queues
            .iter()
            .filter(|(_, queues)| queues.keys().any(|name| names.contains(name)))
            .map(|(topic, _)| topic.clone())
            .collect();
        TopicList {
            topic_list,
            broker_addr: None,
        }
    }

    pub fn delete_topic(&mut self, topic: &str) {
        self.topic_queues.remove(topic);
    }

    /// The data version a broker last registered with, if it is live.
    pub fn data_version(&self, broker_addr: &str) -> Option<&DataVersion> {
        self.live.get(broker_addr).map(|live| &live.data_version)
    }

    /// Refreshes liveness without a topic change (QUERY_DATA_VERSION path).
    pub fn touch(&mut self, broker_addr: &str, now: Instant) {
        if let Some(live) = self.live.get_mut(broker_addr) {
            live.last_update = now;
        }
    }
}

fn queue_data(broker_name: &str, config: &TopicConfig) -> QueueData {
    QueueData {
        broker_name: broker_name.to_string(),
        read_queue_nums: config.read_queue_nums,
        write_queue_nums: config.write_queue_nums,
        perm: config.perm,
        topic_sys_flag: config.topic_sys_flag,
    }
}

#[cfg(test)]
mod tests;
