//! HEART_BEAT (34), UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38).

use std::rc::Rc;
use std::time::Instant;

use rmq_core::body::{
    ConsumerListBody, HeartbeatData, PERM_READ, PERM_WRITE, decode_body, encode_body,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_net::ConnectionInfo;

use super::{Processed, header, reply, success};
use crate::clients::{CLIENT_ID_MAX_LENGTH, ClientChannel, MAX_REGISTRATIONS_PER_CONNECTION};
use crate::core_context::CoreContext;
use crate::topics::{GROUP_MAX_LENGTH, RETRY_GROUP_TOPIC_PREFIX, TopicLookup};

/// Registers the producers and consumers a client announces. A %RETRY% topic it creates is
/// registered with the name servers before the answer, so the client's next route refresh
/// finds it (RocketMQ registers synchronously there too).
pub async fn heartbeat(
    core: &Rc<CoreContext>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> Processed {
    let data: HeartbeatData = decode_body(&req.body).map_err(|e| {
        reply(
            req,
            ResponseCode::SystemError,
            format!("bad heartbeat body: {e}"),
        )
    })?;
    let broker = &core.broker;
    if let Err(remark) = admit(core, conn, &data) {
        tracing::warn!(peer = %conn.peer, "heartbeat refused: {remark}");
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    let channel = ClientChannel {
        client_id: data.client_id.as_str().into(),
        connection_id: conn.id,
        sender: conn.sender(),
        addr: conn.peer.to_string(),
        language: req.language,
        version: req.version,
        last_update: Instant::now(),
    };
    let mut registration = None;
    for consumer in &data.consumer_data_set {
        let group = &consumer.group_name;
        let Some(config) = broker
            .groups
            .get_or_create(group, broker.config.auto_create_subscription_group)
        else {
            tracing::warn!(group = %group, "heartbeat from a consumer of an unknown subscription group");
            continue;
        };
        // Consumers of a group also pull its retry topic; make sure it exists.
        let retry_topic = format!("{RETRY_GROUP_TOPIC_PREFIX}{group}");
        let queues = config.retry_queue_nums.max(1);
        if let TopicLookup::Created(_) =
            broker
                .topics
                .create_if_absent(&retry_topic, queues, PERM_READ | PERM_WRITE)
        {
            registration = Some((broker.request_topic_registration(&retry_topic), retry_topic));
        }
        if broker.clients.register_consumer(consumer, channel.clone()) {
            tracing::info!(group = %group, client = %data.client_id, "new consumer connected");
            broker.clients.notify_ids_changed(group);
        }
    }
    for producer in &data.producer_data_set {
        broker
            .clients
            .register_producer(&producer.group_name, channel.clone());
    }
    if let Some((generation, retry_topic)) = registration {
        broker
            .await_topic_registration(generation, &retry_topic)
            .await;
    }
    Ok(success(req))
}

/// Checks a heartbeat before it changes anything: the client id and every group name within
/// their length limits, and the connection within its registration budget (the bounds are
/// explained in `clients`).
fn admit(core: &CoreContext, conn: &ConnectionInfo, data: &HeartbeatData) -> Result<(), String> {
    if data.client_id.len() > CLIENT_ID_MAX_LENGTH {
        return Err(format!(
            "the clientID is {} bytes, longer than the limit of {CLIENT_ID_MAX_LENGTH}",
            data.client_id.len()
        ));
    }
    let producer_groups: Vec<&str> = data
        .producer_data_set
        .iter()
        .map(|p| p.group_name.as_str())
        .collect();
    let consumer_groups: Vec<&str> = data
        .consumer_data_set
        .iter()
        .map(|c| c.group_name.as_str())
        .collect();
    if let Some(group) = producer_groups
        .iter()
        .chain(&consumer_groups)
        .find(|group| group.len() > GROUP_MAX_LENGTH)
    {
        return Err(format!(
            "the group {}... is {} bytes, longer than group max length {GROUP_MAX_LENGTH}",
            group.chars().take(32).collect::<String>(),
            group.len()
        ));
    }
    let (new, held) = core.broker.clients.registrations_to_add(
        conn.id,
        &data.client_id,
        &producer_groups,
        &consumer_groups,
    );
    if held + new > MAX_REGISTRATIONS_PER_CONNECTION {
        return Err(format!(
            "this connection would hold {} producer and consumer registrations, more than the \
             limit of {MAX_REGISTRATIONS_PER_CONNECTION}",
            held + new
        ));
    }
    Ok(())
}

pub fn unregister(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let client_id = header(req, req.ext_str("clientID"))?;
    let clients = &core.broker.clients;
    if let Some(group) = req.ext("producerGroup") {
        clients.unregister_producer(group, client_id);
    }
    if let Some(group) = req.ext("consumerGroup")
        && clients.unregister_consumer(group, client_id)
    {
        tracing::info!(group, client = client_id, "consumer unregistered");
        clients.notify_ids_changed(group);
    }
    Ok(success(req))
}

pub fn consumer_list(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let group = header(req, req.ext_str("consumerGroup"))?;
    let ids = core.broker.clients.consumer_ids(group);
    if ids.is_empty() {
        return Err(reply(
            req,
            ResponseCode::SystemError,
            format!("no consumer for this group, {group}"),
        ));
    }
    Ok(success(req).with_body(encode_body(&ConsumerListBody {
        consumer_id_list: ids,
    })))
}
