//! Live producers and consumers, learnt from HEART_BEAT, forgotten on UNREGISTER_CLIENT,
//! on connection close, or after `CHANNEL_EXPIRY` without a heartbeat.
//!
//! When a consumer group's membership changes the broker sends
//! NOTIFY_CONSUMER_IDS_CHANGED (oneway) to every member so they rebalance at once; the
//! rebalance itself is client-side, as in RocketMQ.
//!
//! Memory bound (issue 12): a registration is one (group, client id) entry. A client id is at
//! most [`CLIENT_ID_MAX_LENGTH`] bytes and is shared (`Arc<str>`) by every entry of the
//! client, and one connection holds at most [`MAX_REGISTRATIONS_PER_CONNECTION`] entries; so
//! a connection pins at most ~2 MB here whatever it sends (before these bounds, one 2 MB
//! heartbeat naming 1,000 producer groups cost 4 GB: the id was copied into every entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmq_core::body::{ConsumerData, SubscriptionData};
use rmq_core::remoting::{RemotingCommand, request_code};
use rmq_net::connection::ConnectionSender;

/// A client not heard from for this long is dropped (RocketMQ: 120 s).
pub const CHANNEL_EXPIRY: Duration = Duration::from_secs(120);

/// Longest client id accepted (`ip@instanceName[@unitName]` in the Java client, well under
/// 100 bytes in practice; RocketMQ sets no limit).
pub const CLIENT_ID_MAX_LENGTH: usize = 1024;

/// Most producer and consumer registrations one connection may hold. The Java client sends
/// every producer and consumer group of its JVM-wide client instance in each heartbeat, so
/// this is the number of groups one application instance may use on one broker.
pub const MAX_REGISTRATIONS_PER_CONNECTION: usize = 4096;

#[derive(Clone, Debug)]
pub struct ClientChannel {
    /// Shared by all of the client's registrations (see the module docs).
    pub client_id: Arc<str>,
    pub connection_id: u64,
    pub sender: ConnectionSender,
    pub addr: String,
    pub language: u8,
    pub version: i32,
    pub last_update: Instant,
}

#[derive(Default)]
struct ConsumerGroup {
    clients: HashMap<Arc<str>, ClientChannel>,
    subscriptions: HashMap<String, SubscriptionData>,
    data: Option<ConsumerData>,
}

#[derive(Default)]
pub struct ClientManager {
    consumers: Mutex<HashMap<String, ConsumerGroup>>,
    producers: Mutex<HashMap<String, HashMap<Arc<str>, ClientChannel>>>,
    /// Registrations held per connection id (entries of `consumers` and `producers`).
    per_connection: Mutex<HashMap<u64, usize>>,
}

impl ClientManager {
    /// Records a consumer heartbeat. Returns true when the group's membership changed.
    pub fn register_consumer(&self, data: &ConsumerData, channel: ClientChannel) -> bool {
        let mut consumers = self.consumers.lock().expect("clients lock");
        let group = consumers.entry(data.group_name.clone()).or_default();
        let is_new = !group.clients.contains_key(&channel.client_id);
        self.counted_insert(&mut group.clients, channel);
        group.subscriptions = data
            .subscription_data_set
            .iter()
            .map(|sub| (sub.topic.clone(), sub.clone()))
            .collect();
        group.data = Some(data.clone());
        is_new
    }

    pub fn register_producer(&self, group: &str, channel: ClientChannel) {
        let mut producers = self.producers.lock().expect("clients lock");
        let clients = producers.entry(group.to_string()).or_default();
        self.counted_insert(clients, channel);
    }

    /// How many of `groups` the client would newly register on `connection_id` (a group it
    /// already holds on that connection is a renewal), and how many the connection holds.
    /// Callers check [`MAX_REGISTRATIONS_PER_CONNECTION`] before registering; a connection's
    /// requests run on one core thread with no await in between, so the check holds.
    pub fn registrations_to_add(
        &self,
        connection_id: u64,
        client_id: &str,
        producer_groups: &[&str],
        consumer_groups: &[&str],
    ) -> (usize, usize) {
        let held_here = |channel: Option<&ClientChannel>| {
            channel.is_some_and(|channel| channel.connection_id == connection_id)
        };
        let producers = self.producers.lock().expect("clients lock");
        let mut new = producer_groups
            .iter()
            .filter(|group| {
                !held_here(
                    producers
                        .get(**group)
                        .and_then(|clients| clients.get(client_id)),
                )
            })
            .count();
        drop(producers);
        let consumers = self.consumers.lock().expect("clients lock");
        new += consumer_groups
            .iter()
            .filter(|group| {
                !held_here(
                    consumers
                        .get(**group)
                        .and_then(|g| g.clients.get(client_id)),
                )
            })
            .count();
        drop(consumers);
        let held = self.registrations_of(connection_id);
        (new, held)
    }

    /// Registrations `connection_id` holds now.
    pub fn registrations_of(&self, connection_id: u64) -> usize {
        let counts = self.per_connection.lock().expect("clients lock");
        counts.get(&connection_id).copied().unwrap_or(0)
    }

    /// Inserts `channel` under its client id, moving the per-connection count from the entry
    /// it replaces (a reconnected client) to its own connection.
    fn counted_insert(
        &self,
        clients: &mut HashMap<Arc<str>, ClientChannel>,
        channel: ClientChannel,
    ) {
        let connection_id = channel.connection_id;
        let replaced = clients.insert(channel.client_id.clone(), channel);
        let mut counts = self.per_connection.lock().expect("clients lock");
        if let Some(old) = replaced {
            Self::uncount(&mut counts, old.connection_id);
        }
        *counts.entry(connection_id).or_insert(0) += 1;
    }

    fn uncount(counts: &mut HashMap<u64, usize>, connection_id: u64) {
        let count = counts
            .get_mut(&connection_id)
            .expect("a registered entry is counted for its connection");
        assert!(*count > 0, "registration count underflow");
        *count -= 1;
        if *count == 0 {
            counts.remove(&connection_id);
        }
    }

    /// Removes a consumer; returns true when it was a member.
    pub fn unregister_consumer(&self, group: &str, client_id: &str) -> bool {
        let mut consumers = self.consumers.lock().expect("clients lock");
        let Some(entry) = consumers.get_mut(group) else {
            return false;
        };
        let removed = entry.clients.remove(client_id);
        if entry.clients.is_empty() {
            consumers.remove(group);
        }
        if let Some(channel) = &removed {
            Self::uncount(
                &mut self.per_connection.lock().expect("clients lock"),
                channel.connection_id,
            );
        }
        removed.is_some()
    }

    pub fn unregister_producer(&self, group: &str, client_id: &str) {
        let mut producers = self.producers.lock().expect("clients lock");
        if let Some(entry) = producers.get_mut(group) {
            if let Some(channel) = entry.remove(client_id) {
                Self::uncount(
                    &mut self.per_connection.lock().expect("clients lock"),
                    channel.connection_id,
                );
            }
            if entry.is_empty() {
                producers.remove(group);
            }
        }
    }

    /// Drops every client of a closed connection; returns consumer groups that changed.
    pub fn connection_closed(&self, connection_id: u64) -> Vec<String> {
        self.remove_where(|channel| channel.connection_id == connection_id)
    }

    /// Drops clients silent for longer than `CHANNEL_EXPIRY`.
    pub fn expire(&self, now: Instant) -> Vec<String> {
        self.remove_where(|channel| {
            now.saturating_duration_since(channel.last_update) > CHANNEL_EXPIRY
        })
    }

    fn remove_where(&self, gone: impl Fn(&ClientChannel) -> bool) -> Vec<String> {
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        let mut keep = |channel: &ClientChannel| {
            let remove = gone(channel);
            if remove {
                removed.push(channel.connection_id);
            }
            !remove
        };
        let mut consumers = self.consumers.lock().expect("clients lock");
        for (name, group) in consumers.iter_mut() {
            let before = group.clients.len();
            group.clients.retain(|_, channel| keep(channel));
            if group.clients.len() != before {
                changed.push(name.clone());
            }
        }
        consumers.retain(|_, group| !group.clients.is_empty());
        drop(consumers);
        let mut producers = self.producers.lock().expect("clients lock");
        for group in producers.values_mut() {
            group.retain(|_, channel| keep(channel));
        }
        producers.retain(|_, group| !group.is_empty());
        drop(producers);
        let mut counts = self.per_connection.lock().expect("clients lock");
        for connection_id in removed {
            Self::uncount(&mut counts, connection_id);
        }
        changed
    }

    /// Client ids of a consumer group, sorted (clients sort them again anyway).
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let consumers = self.consumers.lock().expect("clients lock");
        let mut ids: Vec<String> = consumers
            .get(group)
            .map(|g| g.clients.keys().map(|id| id.to_string()).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    pub fn consumer_channels(&self, group: &str) -> Vec<ClientChannel> {
        let consumers = self.consumers.lock().expect("clients lock");
        consumers
            .get(group)
            .map(|g| g.clients.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn producer_channels(&self, group: &str) -> Vec<ClientChannel> {
        let producers = self.producers.lock().expect("clients lock");
        producers
            .get(group)
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every producer group with its clients, groups sorted (GET_ALL_PRODUCER_INFO).
    pub fn all_producers(&self) -> Vec<(String, Vec<ClientChannel>)> {
        let producers = self.producers.lock().expect("clients lock");
        let mut all: Vec<(String, Vec<ClientChannel>)> = producers
            .iter()
            .map(|(group, clients)| (group.clone(), clients.values().cloned().collect()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The open channel of the client `client_id`, producers first (where RocketMQ looks for
    /// a request/reply requester), then consumers. Used to push replies to the requester.
    pub fn find_channel(&self, client_id: &str) -> Option<ClientChannel> {
        let open = |channel: &&ClientChannel| channel.sender.is_open();
        let producers = self.producers.lock().expect("clients lock");
        let found = producers
            .values()
            .filter_map(|group| group.get(client_id))
            .find(open)
            .cloned();
        drop(producers);
        if found.is_some() {
            return found;
        }
        let consumers = self.consumers.lock().expect("clients lock");
        consumers
            .values()
            .filter_map(|group| group.clients.get(client_id))
            .find(open)
            .cloned()
    }

    pub fn consumer_data(&self, group: &str) -> Option<ConsumerData> {
        let consumers = self.consumers.lock().expect("clients lock");
        consumers.get(group).and_then(|g| g.data.clone())
    }

    /// The subscription a group registered for `topic`.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        let consumers = self.consumers.lock().expect("clients lock");
        consumers.get(group)?.subscriptions.get(topic).cloned()
    }

    /// Groups subscribed to `topic`.
    pub fn groups_of_topic(&self, topic: &str) -> Vec<String> {
        let consumers = self.consumers.lock().expect("clients lock");
        consumers
            .iter()
            .filter(|(_, g)| g.subscriptions.contains_key(topic))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Tells every member of `group` to rebalance now.
    pub fn notify_ids_changed(&self, group: &str) {
        for channel in self.consumer_channels(group) {
            let mut notify =
                RemotingCommand::new_request(request_code::NOTIFY_CONSUMER_IDS_CHANGED)
                    .with_ext("consumerGroup", group);
            notify.mark_oneway();
            channel.sender.send(notify);
        }
    }
}
