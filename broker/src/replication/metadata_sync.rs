//! A slave's metadata copy: core 0 fetches topic configs, consumer offsets, delay offsets
//! and subscription groups from the master every 10 s (GET_ALL_TOPIC_CONFIG 21,
//! GET_ALL_CONSUMER_OFFSET 43, GET_ALL_DELAY_OFFSET 45, GET_ALL_SUBSCRIPTIONGROUP_CONFIG 201).

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rmq_core::body::{
    ConsumerOffsetSerializeWrapper, DelayOffsetSerializeWrapper, TopicConfigSerializeWrapper,
    decode_body,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};

use crate::context::{BrokerContext, SharedContext};
use crate::groups::GroupsFile;
use crate::schedule::progress::QueueFamily;

/// Interval of the slave's metadata copy from the master.
const SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// Slave core 0: copies the master's metadata every [`SYNC_INTERVAL`].
pub(super) async fn sync_loop(broker: SharedContext) {
    let mut client: Option<Rc<rmq_net::RemotingClient>> = None;
    while !broker.stopping.load(Ordering::Acquire) {
        if let Some(addr) = broker.replication.master_addr() {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = rmq_net::RemotingClient::connect(&addr, Duration::from_secs(3))
                    .await
                    .ok();
            }
            if let Some(connected) = &client
                && let Err(error) = sync_from_master(&broker, connected).await
            {
                tracing::debug!(addr, %error, "metadata sync from master failed");
                client = None;
            }
        }
        let deadline = std::time::Instant::now() + SYNC_INTERVAL;
        while std::time::Instant::now() < deadline && !broker.stopping.load(Ordering::Acquire) {
            compio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn fetch<T: serde::de::DeserializeOwned>(
    client: &rmq_net::RemotingClient,
    code: i32,
) -> Result<T, String> {
    let request = RemotingCommand::new_request(code);
    let response = client
        .invoke(request, Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?;
    if response.code != ResponseCode::Success.code() {
        return Err(format!("request {code} answered {}", response.code));
    }
    decode_body(&response.body).map_err(|e| format!("request {code}: {e}"))
}

async fn sync_from_master(
    broker: &BrokerContext,
    client: &rmq_net::RemotingClient,
) -> Result<(), String> {
    let topics: TopicConfigSerializeWrapper =
        fetch(client, request_code::GET_ALL_TOPIC_CONFIG).await?;
    let mut changed = false;
    for (name, config) in topics.topic_config_table {
        if broker.topics.get(&name).as_ref() != Some(&config) {
            broker.topics.put(config);
            changed = true;
        }
    }
    if changed {
        broker.request_registration();
    }
    let offsets: ConsumerOffsetSerializeWrapper =
        fetch(client, request_code::GET_ALL_CONSUMER_OFFSET).await?;
    for (key, queues) in &offsets.offset_table {
        let Some((topic, group)) = ConsumerOffsetSerializeWrapper::split_key(key) else {
            continue;
        };
        for (&queue_id, &offset) in queues {
            broker.offsets.commit(group, topic, queue_id, offset);
        }
    }
    let delays: DelayOffsetSerializeWrapper =
        fetch(client, request_code::GET_ALL_DELAY_OFFSET).await?;
    for (&level, &offset) in &delays.offset_table {
        broker
            .schedule
            .advance(QueueFamily::Level, level - 1, offset);
    }
    let groups: GroupsFile = fetch(client, request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
    for (name, config) in groups.subscription_group_table {
        if broker.groups.get(&name).as_ref() != Some(&config)
            && let Err(remark) = broker.groups.put(config)
        {
            tracing::warn!(group = %name, "master's subscription group not copied: {remark}");
        }
    }
    Ok(())
}
