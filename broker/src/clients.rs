//! Live producers and consumers, learnt from HEART_BEAT, forgotten on UNREGISTER_CLIENT,
//! on connection close, or after `CHANNEL_EXPIRY` without a heartbeat.
//!
//! When a consumer group's membership changes the broker sends
//! NOTIFY_CONSUMER_IDS_CHANGED (oneway) to every member so they rebalance at once; the
//! rebalance itself is client-side, as in RocketMQ.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmq_core::body::{ConsumerData, SubscriptionData};
use rmq_core::remoting::{RemotingCommand, request_code};
use rmq_net::connection::ConnectionSender;

/// A client not heard from for this long is dropped (RocketMQ: 120 s).
pub const CHANNEL_EXPIRY: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct ClientChannel {
    pub client_id: String,
    pub connection_id: u64,
    pub sender: ConnectionSender,
    pub addr: String,
    pub language: u8,
    pub version: i32,
    pub last_update: Instant,
}

#[derive(Default)]
struct ConsumerGroup {
    clients: HashMap<String, ClientChannel>,
    subscriptions: HashMap<String, SubscriptionData>,
    data: Option<ConsumerData>,
}

#[derive(Default)]
pub struct ClientManager {
    consumers: Mutex<HashMap<String, ConsumerGroup>>,
    producers: Mutex<HashMap<String, HashMap<String, ClientChannel>>>,
}

impl ClientManager {
    /// Records a consumer heartbeat. Returns true when the group's membership changed.
    pub fn register_consumer(&self, data: &ConsumerData, channel: ClientChannel) -> bool {
        let mut consumers = self.consumers.lock().expect("clients lock");
        let group = consumers.entry(data.group_name.clone()).or_default();
        let is_new = !group.clients.contains_key(&channel.client_id);
        group.clients.insert(channel.client_id.clone(), channel);
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
        producers
            .entry(group.to_string())
            .or_default()
            .insert(channel.client_id.clone(), channel);
    }

    /// Removes a consumer; returns true when it was a member.
    pub fn unregister_consumer(&self, group: &str, client_id: &str) -> bool {
        let mut consumers = self.consumers.lock().expect("clients lock");
        let Some(entry) = consumers.get_mut(group) else {
            return false;
        };
        let removed = entry.clients.remove(client_id).is_some();
        if entry.clients.is_empty() {
            consumers.remove(group);
        }
        removed
    }

    pub fn unregister_producer(&self, group: &str, client_id: &str) {
        let mut producers = self.producers.lock().expect("clients lock");
        if let Some(entry) = producers.get_mut(group) {
            entry.remove(client_id);
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
        let mut consumers = self.consumers.lock().expect("clients lock");
        for (name, group) in consumers.iter_mut() {
            let before = group.clients.len();
            group.clients.retain(|_, channel| !gone(channel));
            if group.clients.len() != before {
                changed.push(name.clone());
            }
        }
        consumers.retain(|_, group| !group.clients.is_empty());
        drop(consumers);
        let mut producers = self.producers.lock().expect("clients lock");
        for group in producers.values_mut() {
            group.retain(|_, channel| !gone(channel));
        }
        producers.retain(|_, group| !group.is_empty());
        changed
    }

    /// Client ids of a consumer group, sorted (clients sort them again anyway).
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        let consumers = self.consumers.lock().expect("clients lock");
        let mut ids: Vec<String> = consumers
            .get(group)
            .map(|g| g.clients.keys().cloned().collect())
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
