//! The broker registry and the routes computed from it. Pure state: no I/O, no clock of
//! its own (callers pass `now`), so every rule is unit-tested.
//!
//! Sized for a million topics: a topic's queue layouts are a short vector (one entry per
//! broker name carrying it, in name order) keyed by a shared `Rc<str>`, broker names are
//! shared `Rc<str>`s, and each broker name keeps the set of its topics so unregistering,
//! wiping write permission or replacing a broker's topics touches only that broker's topics.
//! A registration's topics can be applied in bounded chunks ([`RouteTable::begin`],
//! [`RouteTable::apply_chunk`], [`RouteTable::remove_stale_chunk`]) so the one core that
//! serves lookups never applies a million topics in one go (`crate::register`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
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

/// What a registration does to its broker's topics, decided by [`RouteTable::begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicApply {
    /// A slave, or a master re-registering an unchanged data version.
    Nothing,
    /// Add or update the body's topics, remove none (split registration); `all` false
    /// applies only topics the broker has no queues for yet.
    Merge { all: bool },
    /// The body is all of the broker's topics: apply them, then remove the others.
    Replace,
}

/// A registration whose topics are being applied: the broker it is for and what to do.
pub struct PendingTopics {
    broker_addr: String,
    epoch: u64,
    broker: Rc<str>,
    pub apply: TopicApply,
}

struct LiveBroker {
    last_update: Instant,
    data_version: DataVersion,
    ha_server_addr: String,
    connection_id: u64,
    broker_name: String,
    cluster: String,
    /// Changes with every registration of this address that was not live before: a
    /// pending apply of an address unregistered meanwhile stops ([`RouteTable::is_current`]).
    epoch: u64,
}

/// One broker name's queues of a topic (Java `QueueData` without the owned name).
#[derive(Clone)]
struct Queues {
    broker: Rc<str>,
    read: i32,
    write: i32,
    perm: i32,
    sys_flag: i32,
}

impl Queues {
    fn new(broker: &Rc<str>, config: &TopicConfig) -> Queues {
        Queues {
            broker: broker.clone(),
            read: config.read_queue_nums,
            write: config.write_queue_nums,
            perm: config.perm,
            sys_flag: config.topic_sys_flag,
        }
    }

    fn queue_data(&self) -> QueueData {
        QueueData {
            broker_name: self.broker.to_string(),
            read_queue_nums: self.read,
            write_queue_nums: self.write,
            perm: self.perm,
            topic_sys_flag: self.sys_flag,
        }
    }
}

/// All brokers known to this name server.
#[derive(Default)]
pub struct RouteTable {
    /// topic → queue layouts, one per broker name, sorted by broker name.
    topic_queues: HashMap<Rc<str>, Vec<Queues>>,
    /// broker name → the topics it has queues for (the keys of `topic_queues`).
    broker_topics: HashMap<Rc<str>, HashSet<Rc<str>>>,
    brokers: BTreeMap<String, BrokerData>,
    clusters: HashMap<String, BTreeSet<String>>,
    /// broker address → liveness.
    live: HashMap<String, LiveBroker>,
    next_epoch: u64,
}

impl RouteTable {
    /// Records a registration and applies all its topics at once (small bodies, tests).
    pub fn register(&mut self, reg: Registration, now: Instant) -> RegisterOutcome {
        let (outcome, pending) = self.begin(&reg, now);
        let table = &reg.topics.topic_config_table;
        self.apply_chunk(&pending, table.values());
        if pending.apply == TopicApply::Replace {
            let stale = self.topics_of(&pending);
            self.remove_stale_chunk(&pending, &stale, table);
        }
        outcome
    }

    /// Records the broker of a registration (name, address, cluster, liveness, data version)
    /// and decides what to do with its topics; the caller then applies them with
    /// [`Self::apply_chunk`] and, for [`TopicApply::Replace`], removes the others with
    /// [`Self::remove_stale_chunk`] over [`Self::topics_of`] taken before the first chunk.
    pub fn begin(&mut self, reg: &Registration, now: Instant) -> (RegisterOutcome, PendingTopics) {
        if let Some((holder, theirs)) = self.outranked(reg) {
            // As RocketMQ 5: a registration for an id that another live address holds with a
            // larger state version (controller mode: master epoch) is refused (ignored:
            // unlike RocketMQ the address is not unregistered, since a stale registration
            // still in flight must not remove the one it sent since under its new id). A
            // master deposed while cut off from the controllers would otherwise take the
            // route back from the new one at each of its periodic registrations.
            tracing::warn!(
                broker = reg.broker_name,
                id = reg.broker_id,
                addr = reg.broker_addr,
                state_version = reg.topics.data_version.state_version,
                holder,
                holder_state_version = theirs,
                "registration refused: the id is held by a broker of a newer state version"
            );
            let refused = PendingTopics {
                broker_addr: reg.broker_addr.clone(),
                epoch: 0,
                broker: Rc::from(reg.broker_name.as_str()),
                apply: TopicApply::Nothing,
            };
            return (RegisterOutcome::default(), refused);
        }
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
        let previous = self.live.get(&reg.broker_addr);
        let changed = previous.is_none_or(|live| live.data_version != reg.topics.data_version);
        let apply = if reg.broker_id != MASTER_ID {
            TopicApply::Nothing
        } else if reg.partial {
            // As RocketMQ 5 for every registration: a topic is applied when the data version
            // moved or this broker has no queues for it yet (the later parts of a split
            // registration carry the same version as the first).
            TopicApply::Merge {
                all: first || changed,
            }
        } else if first || changed {
            TopicApply::Replace
        } else {
            TopicApply::Nothing
        };
        let epoch = match previous {
            Some(live) => live.epoch,
            None => {
                self.next_epoch += 1;
                self.next_epoch
            }
        };
        self.live.insert(
            reg.broker_addr.clone(),
            LiveBroker {
                last_update: now,
                data_version: reg.topics.data_version,
                ha_server_addr: reg.ha_server_addr.clone(),
                connection_id: reg.connection_id,
                broker_name: reg.broker_name.clone(),
                cluster: reg.cluster.clone(),
                epoch,
            },
        );
        let broker = match self.broker_topics.get_key_value(reg.broker_name.as_str()) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Rc<str> = Rc::from(reg.broker_name.as_str());
                self.broker_topics.insert(name.clone(), HashSet::new());
                name
            }
        };
        debug_assert!(
            self.brokers
                .iter()
                .filter(|(_, data)| data.broker_addrs.values().any(|a| *a == reg.broker_addr))
                .count()
                == 1,
            "an address belongs to one broker name"
        );
        let pending = PendingTopics {
            broker_addr: reg.broker_addr.clone(),
            epoch,
            broker,
            apply,
        };
        (self.outcome_for(&reg.broker_name, reg.broker_id), pending)
    }

    /// The other live address holding `reg`'s broker id with a larger state version than
    /// `reg`'s, and that version.
    fn outranked(&self, reg: &Registration) -> Option<(String, i64)> {
        let holder = self
            .brokers
            .get(&reg.broker_name)?
            .broker_addrs
            .get(&reg.broker_id)
            .filter(|addr| **addr != reg.broker_addr)?;
        let live = self
            .live
            .get(holder)
            .filter(|live| live.cluster == reg.cluster)?;
        let theirs = live.data_version.state_version;
        (theirs > reg.topics.data_version.state_version).then(|| (holder.clone(), theirs))
    }

    /// Whether the broker of `pending` is still registered as it was when it began (not
    /// unregistered, expired or renamed since): applying more of its topics is only right then.
    pub fn is_current(&self, pending: &PendingTopics) -> bool {
        self.live
            .get(&pending.broker_addr)
            .is_some_and(|live| live.epoch == pending.epoch)
            && self.broker_topics.contains_key(&pending.broker)
    }

    /// Applies some of a registration's topics as [`PendingTopics::apply`] says. False (and
    /// nothing applied) once the broker is no longer current.
    pub fn apply_chunk<'a>(
        &mut self,
        pending: &PendingTopics,
        configs: impl IntoIterator<Item = &'a TopicConfig>,
    ) -> bool {
        if !self.is_current(pending) {
            return false;
        }
        let overwrite = match pending.apply {
            TopicApply::Nothing => return true,
            TopicApply::Merge { all } => all,
            TopicApply::Replace => true,
        };
        for config in configs {
            self.put(&pending.broker, config, overwrite);
        }
        true
    }

    /// The topics `pending`'s broker has queues for now (before a replacing registration
    /// applies its first chunk: the candidates for [`Self::remove_stale_chunk`]).
    pub fn topics_of(&self, pending: &PendingTopics) -> Vec<Rc<str>> {
        self.broker_topics
            .get(&pending.broker)
            .map(|topics| topics.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes `pending`'s broker from those of `candidates` the registration does not
    /// carry (`keep`, keyed by topic name). False once the broker is no longer current.
    pub fn remove_stale_chunk(
        &mut self,
        pending: &PendingTopics,
        candidates: &[Rc<str>],
        keep: &HashMap<String, TopicConfig>,
    ) -> bool {
        if !self.is_current(pending) {
            return false;
        }
        for topic in candidates {
            if !keep.contains_key(&**topic) {
                self.remove_queues(topic, &pending.broker);
            }
        }
        true
    }

    /// Adds `broker`'s queues of `config`'s topic, or replaces them when `overwrite`.
    fn put(&mut self, broker: &Rc<str>, config: &TopicConfig, overwrite: bool) {
        let name = config.topic_name.as_str();
        let topic = match self.topic_queues.get_key_value(name) {
            Some((topic, _)) => topic.clone(),
            None => {
                let topic: Rc<str> = Rc::from(name);
                self.topic_queues
                    .insert(topic.clone(), Vec::with_capacity(1));
                topic
            }
        };
        let queues = self.topic_queues.get_mut(name).expect("inserted above");
        match queues.binary_search_by(|q| (*q.broker).cmp(broker)) {
            Ok(at) if overwrite => queues[at] = Queues::new(broker, config),
            Ok(_) => {}
            Err(at) => queues.insert(at, Queues::new(broker, config)),
        }
        self.broker_topics
            .entry(broker.clone())
            .or_default()
            .insert(topic);
    }

    /// Removes `broker`'s queues of `topic` (and the topic once no broker carries it).
    fn remove_queues(&mut self, topic: &str, broker: &str) {
        if let Some(queues) = self.topic_queues.get_mut(topic) {
            queues.retain(|q| &*q.broker != broker);
            if queues.is_empty() {
                self.topic_queues.remove(topic);
            }
        }
        if let Some(topics) = self.broker_topics.get_mut(broker) {
            topics.remove(topic);
        }
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

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe`) or ADD_WRITE_PERM_OF_BROKER on every queue layout
    /// of `broker_name`, until its next topic change. Returns how many topics it touched.
    pub fn set_write_perm(&mut self, broker_name: &str, wipe: bool) -> i32 {
        let Some(topics) = self.broker_topics.get(broker_name) else {
            return 0;
        };
        let mut count = 0;
        for topic in topics {
            let queues = self.topic_queues.get_mut(topic);
            let queues = queues.into_iter().flatten();
            for queues in queues.filter(|q| &*q.broker == broker_name) {
                queues.perm = if wipe {
                    queues.perm & !PERM_WRITE
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
            // While a slave of the name is alive its queues stay routable, so consumers
            // keep reading from the slave when the master is down (RocketMQ does the same).
            let topics = self.broker_topics.remove(live.broker_name.as_str());
            for topic in topics.into_iter().flatten() {
                self.remove_queues(&topic, &live.broker_name);
            }
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
        let broker_datas: Vec<BrokerData> = queues
            .iter()
            .filter_map(|q| self.brokers.get(&*q.broker).cloned())
            .collect();
        if broker_datas.is_empty() {
            return None;
        }
        Some(TopicRouteData {
            order_topic_conf: order_conf,
            queue_datas: queues.iter().map(Queues::queue_data).collect(),
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
            topic_list: self.topic_queues.keys().map(|t| t.to_string()).collect(),
            broker_addr: None,
        }
    }

    /// Topics carried by any broker of `cluster`.
    pub fn topics_of_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster).into_iter().flatten();
        let topics: HashSet<&Rc<str>> = names
            .filter_map(|name| self.broker_topics.get(name.as_str()))
            .flatten()
            .collect();
        TopicList {
            topic_list: topics.into_iter().map(|t| t.to_string()).collect(),
            broker_addr: None,
        }
    }

    pub fn delete_topic(&mut self, topic: &str) {
        for queues in self.topic_queues.remove(topic).into_iter().flatten() {
            if let Some(topics) = self.broker_topics.get_mut(&queues.broker) {
                topics.remove(topic);
            }
        }
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

    /// Number of topics with at least one route.
    pub fn topic_count(&self) -> usize {
        self.topic_queues.len()
    }

    /// Asserts that the per-broker topic sets and the per-topic queue layouts agree.
    #[cfg(test)]
    fn check_invariants(&self) {
        let mut pairs = 0;
        for (topic, queues) in &self.topic_queues {
            assert!(!queues.is_empty(), "{topic} has no queues");
            assert!(queues.windows(2).all(|w| w[0].broker < w[1].broker));
            for q in queues {
                assert!(self.broker_topics[&q.broker].contains(topic), "{topic}");
                pairs += 1;
            }
        }
        let listed: usize = self.broker_topics.values().map(HashSet::len).sum();
        assert_eq!(listed, pairs, "broker topic sets list only routed topics");
    }
}

#[cfg(test)]
mod tests;
