//! A slave's copy of the master's metadata, and the master's side of it.
//!
//! What travels how (bounded staleness, see docs/architecture.md "Replication"):
//! - **Topics in-band with the data**: the first replicated record of a queue the slave lacks
//!   creates (or widens) the topic config on the slave ([`learn_topic`], called by the store
//!   inside `append_replicated`, before the slave writes and reports the record). So a
//!   topic a SYNC_MASTER send auto-created is on the slave before that send is acknowledged,
//!   and readable there if the master dies right after. Its queue counts are a guess
//!   (max(queue id + 1, `defaultTopicQueueNums`), read/write) until the next copy brings the
//!   master's config.
//! - **Copies every second**: core 0 of a slave asks the master for topic configs, consumer
//!   offsets, delay offsets and subscription groups (GET_ALL_TOPIC_CONFIG 21,
//!   GET_ALL_CONSUMER_OFFSET 43, GET_ALL_DELAY_OFFSET 45, GET_ALL_SUBSCRIPTIONGROUP_CONFIG 201)
//!   every [`SYNC_INTERVAL`], so committed offsets, delay offsets and groups are at most
//!   ~1 s (+ one round trip) old on the slave. Each request carries the version of the table
//!   the slave last applied (ext [`KNOWN_VERSION`]); an rmq-fast master whose table did not
//!   move since answers SUCCESS with no body and [`UNCHANGED`] = true, so an idle second costs
//!   four tiny requests, not four table copies. The extension only adds optional fields: a
//!   RocketMQ 4.x slave (which sends no [`KNOWN_VERSION`]) gets the full bodies as before, and
//!   against a master that ignores it our slave applies the full bodies every second.

use std::rc::Rc;
use std::time::Duration;

use rmq_core::body::{
    ConsumerOffsetSerializeWrapper, DataVersion, DelayOffsetSerializeWrapper, PERM_READ,
    PERM_WRITE, TopicConfigSerializeWrapper, decode_body,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};

use crate::context::{BrokerContext, SharedContext};
use crate::groups::GroupsFile;
use crate::schedule::progress::QueueFamily;
use crate::topics::TopicLookup;

/// Interval of the slave's metadata copy from the master.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How often a slave that does not know its master's address re-registers to learn it.
const ASK_MASTER_INTERVAL: Duration = Duration::from_secs(3);
/// Request ext: the version of the table the slave holds (rmq-fast extension).
pub const KNOWN_VERSION: &str = "rmqFastKnownVersion";
/// Response ext: the version of the table the master answers with.
pub const VERSION: &str = "rmqFastVersion";
/// Response ext: "true" when the table did not move since `KNOWN_VERSION` (empty body).
pub const UNCHANGED: &str = "rmqFastUnchanged";

/// The version of each table a slave copies, as the master states it.
pub enum Table {
    Topics,
    Groups,
    ConsumerOffsets,
    DelayOffsets,
}

fn data_version(version: DataVersion) -> String {
    format!("{}-{}", version.timestamp, version.counter)
}

/// The current version of `table` on this broker (the process start time keeps the counts of
/// a restarted master from repeating an earlier version).
pub fn version_of(broker: &BrokerContext, table: Table) -> String {
    match table {
        Table::Topics => data_version(broker.topics.data_version()),
        Table::Groups => data_version(broker.groups.all().data_version),
        Table::ConsumerOffsets => format!("{}-{}", broker.started_at_ms, broker.offsets.changes()),
        Table::DelayOffsets => format!(
            "{}-{}",
            broker.started_at_ms,
            broker.schedule.level_changes()
        ),
    }
}

/// The master's answer to a GET_ALL_* copy request: `body()` unless the slave already holds
/// this version. The version is read before the body, so a change racing the answer only
/// makes the next copy fetch again.
pub fn answer(
    broker: &BrokerContext,
    req: &RemotingCommand,
    table: Table,
    body: impl FnOnce() -> Vec<u8>,
) -> RemotingCommand {
    let version = version_of(broker, table);
    let response = crate::processor::success(req).with_ext(VERSION, version.as_str());
    if req.ext(KNOWN_VERSION) == Some(version.as_str()) {
        return response.with_ext(UNCHANGED, "true");
    }
    response.with_body(body())
}

/// A queue the slave did not have appeared in the replicated log: make its topic readable
/// (see the module docs).
pub fn learn_topic(broker: &BrokerContext, topic: &str, queue_id: i32) {
    let needed = queue_id.saturating_add(1);
    match broker.topics.get(topic) {
        Some(config) if config.read_queue_nums >= needed => return,
        Some(mut config) => {
            config.read_queue_nums = needed;
            config.write_queue_nums = config.write_queue_nums.max(needed);
            broker.topics.put(config);
        }
        None => {
            let queues = needed.max(broker.config.default_topic_queue_nums);
            let created = broker
                .topics
                .create_if_absent(topic, queues, PERM_READ | PERM_WRITE);
            if !matches!(created, TopicLookup::Created(_)) {
                return;
            }
        }
    }
    tracing::info!(topic, queue_id, "topic learned from the replicated log");
    broker.request_registration();
}

/// The table versions this slave last applied (None: ask for the whole table).
#[derive(Default)]
struct Known {
    topics: Option<String>,
    groups: Option<String>,
    offsets: Option<String>,
    delays: Option<String>,
}

/// Slave core 0: copies the master's metadata every [`SYNC_INTERVAL`].
pub(super) async fn sync_loop(broker: SharedContext, generation: u64) {
    let mut client: Option<Rc<rmq_net::RemotingClient>> = None;
    let mut known = Known::default();
    let mut last_ask: Option<std::time::Instant> = None;
    while !super::role::outdated(&broker, generation) {
        let started = std::time::Instant::now();
        if let Some(addr) = broker.replication.master_addr(&broker) {
            // A master cut off by a partition answers nothing until the request timeouts
            // (3 s): a role change must not wait for them.
            let copy = copy_once(&broker, &addr, &mut client, &mut known);
            if super::role::unless_outdated(&broker, generation, copy)
                .await
                .is_none()
            {
                break;
            }
        } else if last_ask.is_none_or(|at| at.elapsed() >= ASK_MASTER_INTERVAL) {
            // The master's address comes with a registration answer; one given before the
            // master registered had none. Ask again rather than wait the periodic one (30 s).
            last_ask = Some(std::time::Instant::now());
            broker.request_registration();
        }
        let left = SYNC_INTERVAL.saturating_sub(started.elapsed());
        super::role::sleep_unless_outdated(&broker, generation, left).await;
    }
}

/// One copy of the master's tables at `addr`, connecting first when needed.
async fn copy_once(
    broker: &BrokerContext,
    addr: &str,
    client: &mut Option<Rc<rmq_net::RemotingClient>>,
    known: &mut Known,
) {
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        *client = rmq_net::RemotingClient::connect(addr, Duration::from_secs(3))
            .await
            .ok();
        // Another master (or a restarted one) may have other tables.
        *known = Known::default();
    }
    if let Some(connected) = client.as_ref()
        && let Err(error) = sync_from_master(broker, connected, known).await
    {
        tracing::debug!(addr, %error, "metadata sync from master failed");
        *client = None;
    }
}

/// Fetches one table unless the master says the slave holds its version; returns the body
/// and the master's version.
async fn fetch<T: serde::de::DeserializeOwned>(
    client: &rmq_net::RemotingClient,
    code: i32,
    known: &Option<String>,
) -> Result<Option<(T, Option<String>)>, String> {
    let mut request = RemotingCommand::new_request(code);
    if let Some(version) = known {
        request = request.with_ext(KNOWN_VERSION, version.as_str());
    }
    let response = client
        .invoke(request, Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?;
    if response.code != ResponseCode::Success.code() {
        return Err(format!("request {code} answered {}", response.code));
    }
    let version = response.ext(VERSION).map(str::to_string);
    if known.is_some() && response.ext(UNCHANGED) == Some("true") {
        return Ok(None);
    }
    let body = decode_body(&response.body).map_err(|e| format!("request {code}: {e}"))?;
    Ok(Some((body, version)))
}

async fn sync_from_master(
    broker: &BrokerContext,
    client: &rmq_net::RemotingClient,
    known: &mut Known,
) -> Result<(), String> {
    let topics = fetch::<TopicConfigSerializeWrapper>(
        client,
        request_code::GET_ALL_TOPIC_CONFIG,
        &known.topics,
    );
    if let Some((topics, version)) = topics.await? {
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
        known.topics = version;
    }
    let offsets = fetch::<ConsumerOffsetSerializeWrapper>(
        client,
        request_code::GET_ALL_CONSUMER_OFFSET,
        &known.offsets,
    );
    if let Some((offsets, version)) = offsets.await? {
        for (key, queues) in &offsets.offset_table {
            let Some((topic, group)) = ConsumerOffsetSerializeWrapper::split_key(key) else {
                continue;
            };
            for (&queue_id, &offset) in queues {
                broker.offsets.commit(group, topic, queue_id, offset);
            }
        }
        known.offsets = version;
    }
    let delays = fetch::<DelayOffsetSerializeWrapper>(
        client,
        request_code::GET_ALL_DELAY_OFFSET,
        &known.delays,
    );
    if let Some((delays, version)) = delays.await? {
        for (&level, &offset) in &delays.offset_table {
            broker
                .schedule
                .advance(QueueFamily::Level, level - 1, offset);
        }
        known.delays = version;
    }
    let groups = fetch::<GroupsFile>(
        client,
        request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
        &known.groups,
    );
    if let Some((groups, version)) = groups.await? {
        for (name, config) in groups.subscription_group_table {
            if broker.groups.get(&name).as_ref() != Some(&config)
                && let Err(remark) = broker.groups.put(config)
            {
                tracing::warn!(group = %name, "master's subscription group not copied: {remark}");
            }
        }
        known.groups = version;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Harness, run};

    #[test]
    fn a_replicated_queue_creates_or_widens_its_topic_and_never_narrows_it() {
        run(async {
            let h = Harness::with_config(&[("defaultTopicQueueNums", "4")]).await;
            let broker = h.ctx();
            learn_topic(broker, "Learned", 1);
            let config = broker.topics.get("Learned").expect("created");
            assert_eq!((config.read_queue_nums, config.write_queue_nums), (4, 4));
            assert_eq!(config.perm, PERM_READ | PERM_WRITE);
            learn_topic(broker, "Learned", 6);
            let config = broker.topics.get("Learned").expect("kept");
            assert_eq!((config.read_queue_nums, config.write_queue_nums), (7, 7));
            learn_topic(broker, "Learned", 0);
            assert_eq!(broker.topics.get("Learned").unwrap().read_queue_nums, 7);
            // A name the topic table refuses is not created (and nothing panics).
            learn_topic(broker, &"x".repeat(300), 0);
            assert!(broker.topics.get(&"x".repeat(300)).is_none());
        });
    }
}
