//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310, one-letter header keys) and
//! SEND_BATCH_MESSAGE (320).
//!
//! Validation and record encoding run on the core that received the request; the
//! append and the durability wait run on the core owning the queue's shard. The
//! response carries `msgId` (offsetMsgId: store host + commit log offset), `queueId`
//! and `queueOffset`.
//!
//! Rewriting (`place`): a `TRAN_MSG=true` send is stored as a half message (see
//! `transaction`), a `DELAY`/`TIMER_*` send in its fixed-delay queue (see `schedule`); the
//! response then names the requested queue and the offset in the system queue (the producer
//! echoes a half message's offset in END_TRANSACTION). Batches carrying either are refused.

use std::borrow::Cow;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use rmq_core::body::PERM_WRITE;
use rmq_core::message::batch::decode_batch;
use rmq_core::message::msg_id::OffsetMsgId;
use rmq_core::message::properties::{self, keys};
use rmq_core::message::{NewRecord, hash::tags_code};
use rmq_core::remoting::{Field, RemotingCommand, ResponseCode, request_code as rc};
use rmq_ha::master::SlaveWait;
use rmq_net::ConnectionInfo;
use rmq_storage::{AppendResult, StoreError};

use super::{Processed, busy, header, reply};
use crate::context::{BrokerContext, now_ms};
use crate::core_context::{CoreContext, OwnedShard};
use crate::metrics::counters::MessageType;
use crate::replication::Acked;
use crate::topics::{QueueSettings, TopicLookup, validate_group_name, validate_topic_name};
use crate::{schedule, transaction};

/// Largest properties string a record can hold (int16 length).
const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;

/// The send header, whichever of the two spellings the client used; its text borrows the
/// request's.
pub struct SendHeader<'a> {
    pub producer_group: &'a str,
    pub topic: &'a str,
    pub default_topic: &'a str,
    pub default_topic_queue_nums: i32,
    pub queue_id: i32,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub flag: i32,
    pub properties: &'a str,
    pub reconsume_times: i32,
    pub batch: bool,
}

/// The send header's fields: (long name, V2's one-letter name), in slot order.
const SEND_FIELDS: [(&str, &str); 11] = [
    ("producerGroup", "a"),
    ("topic", "b"),
    ("defaultTopic", "c"),
    ("defaultTopicQueueNums", "d"),
    ("queueId", "e"),
    ("sysFlag", "f"),
    ("bornTimestamp", "g"),
    ("flag", "h"),
    ("properties", "i"),
    ("reconsumeTimes", "j"),
    ("batch", "m"),
];

/// The slot in [`SEND_FIELDS`] of a V2 header's field (a jump on the letter).
fn v2_slot(name: &str) -> Option<usize> {
    match name.as_bytes() {
        [letter @ b'a'..=b'j'] => Some(usize::from(letter - b'a')),
        [b'm'] => Some(10),
        _ => None,
    }
}

/// The slot in [`SEND_FIELDS`] of a V1 header's field.
fn v1_slot(name: &str) -> Option<usize> {
    SEND_FIELDS.iter().position(|(long, _)| *long == name)
}

/// Also parses SEND_REPLY_MESSAGE (324, long keys) and SEND_REPLY_MESSAGE_V2 (325), whose
/// headers are the send headers (see `reply`).
///
/// One pass over the header's fields (a decoded header has unique names) instead of a lookup
/// per field: each lookup scanned the fields, which was most of the parse.
pub(crate) fn parse_header(req: &RemotingCommand) -> Result<SendHeader<'_>, RemotingCommand> {
    // V2 renames every field to one letter to save bytes on the wire.
    let v2 = !matches!(req.code, rc::SEND_MESSAGE | rc::SEND_REPLY_MESSAGE);
    let slot_of = if v2 { v2_slot } else { v1_slot };
    let mut values = [None; SEND_FIELDS.len()];
    for (name, value) in req.ext_fields.iter() {
        if let Some(slot) = slot_of(name) {
            values[slot] = Some(value);
        }
    }
    let field = |slot: usize| {
        let (long, short) = SEND_FIELDS[slot];
        Field {
            name: if v2 { short } else { long },
            value: values[slot],
        }
    };
    Ok(SendHeader {
        producer_group: header(req, field(0).str())?,
        topic: header(req, field(1).str())?,
        default_topic: field(2).value.unwrap_or("TBW102"),
        default_topic_queue_nums: header(req, field(3).opt_i32())?.unwrap_or(4),
        queue_id: header(req, field(4).i32())?,
        sys_flag: header(req, field(5).opt_i32())?.unwrap_or(0),
        born_timestamp: header(req, field(6).opt_i64())?.unwrap_or_else(now_ms),
        flag: header(req, field(7).opt_i32())?.unwrap_or(0),
        properties: field(8).value.unwrap_or_default(),
        reconsume_times: header(req, field(9).opt_i32())?.unwrap_or(0),
        batch: req.code == rc::SEND_BATCH_MESSAGE
            || header(req, field(10).opt_bool())?.unwrap_or(false),
    })
}

/// Handles one send request and returns its response (used where the caller needs it:
/// `reply`).
pub async fn process(
    core: &Rc<CoreContext>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> Processed {
    match handle(core, conn, req, None).await? {
        Some(response) => Ok(response),
        None => unreachable!("a send is handed off only when the caller allows it"),
    }
}

/// Handles one send request from a connection. A send whose queue belongs to another core's
/// shard is handed to that core, which answers it itself (`Ok(None)`: the transport sends
/// nothing here), unless `replyFromShard` is off; `started` is the request's metrics clock.
pub async fn process_or_hand_off(
    core: &Rc<CoreContext>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
    started: Option<Instant>,
) -> Result<Option<RemotingCommand>, RemotingCommand> {
    let hand_off = core
        .broker
        .config
        .reply_from_shard
        .then_some(HandOff { started });
    handle(core, conn, req, hand_off).await
}

/// The answer to a send whose shard's core did not take it (a full ring for too long, or a
/// stopping broker): SYSTEM_BUSY, which the Java client retries on another broker.
const HAND_OFF_REFUSED: &str = "[OVERLOAD]system busy, the queue's shard did not accept the send";

/// What a handed-off send needs to answer by itself.
struct HandOff {
    started: Option<Instant>,
}

/// What the shard's core returns: the append (and its durability wait), the replica wait,
/// and the topic the records were stored under (moved there for the append, moved back for
/// the answer).
type ShardOutcome = (
    Result<(AppendResult, Result<(), StoreError>), StoreError>,
    SlaveWait,
    String,
);

/// What a send's answer needs besides the shard's outcome (it travels to the shard's core
/// with a handed-off send, so it owns its data).
struct Answer {
    /// The topic the client sent to, when the send was stored under another one (a half or
    /// delay topic): stats and metrics count the client's topic.
    sent_topic: Option<String>,
    /// The `message_type` metrics label (`None`: metrics are off on this core).
    message_type: Option<MessageType>,
    queue_id: i32,
    store_ts: i64,
    /// A batch's record sizes, which place its ids; empty for a single message.
    batch_sizes: Vec<usize>,
}

async fn handle(
    core: &Rc<CoreContext>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
    hand_off: Option<HandOff>,
) -> Result<Option<RemotingCommand>, RemotingCommand> {
    let broker = &core.broker;
    let mut head = parse_header(req)?;
    check_broker_accepts_sends(broker, req)?;
    let (queue_id, created) = resolve_queue(core, req, &mut head)?;
    if let Some(registration) = created {
        // An acknowledged send never outlives its auto-created topic's config, and a client
        // that looks the topic up after the answer finds its route.
        if let Err(remark) = broker.topics.persisted().await {
            return Err(reply(req, ResponseCode::SystemError, remark));
        }
        broker
            .await_topic_registration(registration, head.topic)
            .await;
    }
    let scan = PropertyScan::of(head.properties);
    let wait = scan.wait != Some("false");
    let stored = place(broker, req, &head, &scan, queue_id)?;
    let records = encode_records(broker, conn, req, &head, &scan, &stored)?;
    let answer_with = Answer {
        sent_topic: (stored.topic != head.topic).then(|| head.topic.to_owned()),
        message_type: crate::metrics::counters::enabled()
            .then(|| MessageType::of_properties(head.properties)),
        queue_id,
        store_ts: now_ms(),
        // A batch answers one id per record: their sizes place them after the first.
        batch_sizes: if head.batch {
            records.iter().map(|(record, _)| record.len()).collect()
        } else {
            Vec::new()
        },
    };
    let policy = broker.ack().for_send(wait);
    if let Err(refused) = policy.admit() {
        // RocketMQ 5 answers IN_SYNC_REPLICAS_NOT_ENOUGH so; nothing is stored.
        tracing::debug!(
            replicas = refused.replicas,
            min = refused.min,
            "send refused"
        );
        return Err(reply(req, ResponseCode::SystemError, refused.to_string()));
    }
    let shard = broker.shard_of_queue(&stored.topic, stored.queue_id);
    let (topic, stored_queue) = (stored.topic.into_owned(), stored.queue_id);
    let store_ts = answer_with.store_ts;
    let append = move |owned: OwnedShard| async move {
        let store = owned.store;
        let mut records = records;
        let appended = if records.len() == 1 {
            let (record, tags) = &mut records[0];
            store.append(&topic, stored_queue, record, *tags, store_ts)
        } else {
            store.append_batch(&topic, stored_queue, &mut records, store_ts)
        };
        match appended {
            Ok(appended) => {
                let acked = policy
                    .wait(&store, &owned.replica, appended.end_offset)
                    .await;
                (Ok((appended, acked.durable)), acked.replica, topic)
            }
            // Nothing stored: no replica to wait for.
            Err(error) => (Err(error), SlaveWait::Replicated, topic),
        }
    };
    let answer = move |broker: &BrokerContext,
                       like: &RemotingCommand,
                       (outcome, replica, topic): ShardOutcome| {
        let response = respond(broker, like, &answer_with, &topic, outcome);
        Acked::respond(replica, response)
    };
    if let Some(HandOff { started }) = hand_off
        && broker.core_of_shard(shard) != core.core
    {
        // The shard's core answers: this core is not woken for the reply.
        let like = RemotingCommand::response_for(req, 0, None);
        let responder = conn.responder(req, ResponseCode::SystemBusy.code(), HAND_OFF_REFUSED);
        let code = req.code;
        let shared = broker.clone();
        // Refused (its ring full for too long), the work is dropped with its responder,
        // which answers SYSTEM_BUSY.
        let _ = core
            .hand_off(shard, move |owned| async move {
                let response = answer(&shared, &like, append(owned).await);
                crate::metrics::on_rpc(started, code, Some(response.code));
                responder.send(response);
            })
            .await;
        return Ok(None);
    }
    let done = core
        .on_owned_shard(shard, append)
        .await
        .map_err(|error| busy(req, &error))?;
    Ok(Some(answer(broker, req, done)))
}

fn check_broker_accepts_sends(
    broker: &BrokerContext,
    req: &RemotingCommand,
) -> Result<(), RemotingCommand> {
    if broker.is_slave() {
        let remark = format!(
            "the broker[{}] role is SLAVE, sending messages is not allowed",
            broker.config.broker_name
        );
        return Err(reply(req, ResponseCode::ServiceNotAvailable, remark));
    }
    // Read live: updateBrokerConfig brokerPermission=4 drains the broker at once.
    if broker.live_config.load().broker_permission & PERM_WRITE == 0 {
        let remark = format!(
            "the broker[{}] sending message is forbidden",
            broker.broker_addr.ip()
        );
        return Err(reply(req, ResponseCode::NoPermission, remark));
    }
    if broker.stopping.load(std::sync::atomic::Ordering::Acquire) {
        return Err(reply(
            req,
            ResponseCode::ServiceNotAvailable,
            "the broker is shutting down".to_string(),
        ));
    }
    if rmq_storage::disk_space::any_store_refusing()
        && let Some(remark) =
            rmq_storage::disk_space::sends_refused(&broker.config.store_path_commit_log())
    {
        return Err(reply(req, ResponseCode::ServiceNotAvailable, remark));
    }
    Ok(())
}

/// Finds (or auto-creates) the topic and picks the queue; when it created the topic, the
/// generation of the topic's registration with the name servers.
fn resolve_queue(
    core: &CoreContext,
    req: &RemotingCommand,
    head: &mut SendHeader,
) -> Result<(i32, Option<u64>), RemotingCommand> {
    let broker = &core.broker;
    if let Err(remark) = validate_topic_name(head.topic) {
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    if crate::topics::is_not_allowed_send_topic(head.topic) {
        let remark = crate::topics::send_forbidden_remark(head.topic);
        return Err(reply(req, ResponseCode::NoPermission, remark));
    }
    if let Err(remark) = validate_group_name(head.producer_group) {
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    let auto_create = broker.config.auto_create_topic_enable;
    let lookup = broker.topics.get_or_create_for_send(
        head.topic,
        head.default_topic,
        head.default_topic_queue_nums,
        auto_create,
    );
    let (config, created) = match lookup {
        TopicLookup::Found(config) => (config, None),
        TopicLookup::Created(config) => {
            let registration = broker.request_topic_registration(&config.topic_name);
            (QueueSettings::from(&config), Some(registration))
        }
        TopicLookup::Missing => {
            let remark = format!("topic[{}] not exist, apply first please!", head.topic);
            return Err(reply(req, ResponseCode::TopicNotExist, remark));
        }
    };
    if config.perm & PERM_WRITE == 0 {
        let remark = format!("the topic[{}] sending message is forbidden", head.topic);
        return Err(reply(req, ResponseCode::NoPermission, remark));
    }
    let queues = config.write_queue_nums.max(config.read_queue_nums);
    if head.queue_id < 0 {
        head.queue_id = (now_ms().unsigned_abs() % config.write_queue_nums.max(1) as u64) as i32;
    }
    if head.queue_id >= queues {
        let remark = format!(
            "request queueId[{}] is illegal, {} Producer: {}",
            head.queue_id, head.topic, head.producer_group
        );
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    Ok((head.queue_id, created))
}

/// Where a send is stored: its own queue, or (delay, timer, half message) a system queue.
/// A plain send borrows the header's text.
struct Stored<'a> {
    topic: Cow<'a, str>,
    queue_id: i32,
    properties: Cow<'a, str>,
    sys_flag: i32,
    /// Consume-queue tags code override (delivery time for delay queues).
    tags_code: Option<i64>,
}

/// Whether properties ask for a delay, a timer or a transaction (batches refuse them).
fn is_special(props: &str) -> bool {
    properties::get_property(props, keys::TRAN_MSG) == Some("true")
        || crate::schedule::has_delay_property(props)
}

/// What the send path reads of a send's own properties, found in one pass over them (the
/// first pair of a name wins, as in `properties::get_property`).
struct PropertyScan<'a> {
    wait: Option<&'a str>,
    tags: Option<&'a str>,
    /// Whether any of [`PLACEMENT_KEYS`] is present.
    placement: bool,
}

impl<'a> PropertyScan<'a> {
    fn of(props: &'a str) -> Self {
        let mut scan = PropertyScan {
            wait: None,
            tags: None,
            placement: false,
        };
        for (name, value) in properties::pairs(props) {
            match name {
                keys::WAIT => {
                    scan.wait.get_or_insert(value);
                }
                keys::TAGS => {
                    scan.tags.get_or_insert(value);
                }
                _ => scan.placement |= PLACEMENT_KEYS.contains(&name),
            }
        }
        scan
    }
}

/// Every property `place` reads: without them a send is stored as it came.
const PLACEMENT_KEYS: &[&str] = &[
    keys::TRAN_MSG,
    keys::TIMER_DELIVER_MS,
    keys::TIMER_DELAY_MS,
    keys::TIMER_DELAY_SEC,
    keys::DELAY,
];

/// Applies the message-rewriting features: transaction half messages go to the half topic,
/// delayed and timer messages to their fixed-delay queues (see `schedule`, `transaction`).
fn place<'a>(
    broker: &BrokerContext,
    req: &RemotingCommand,
    head: &SendHeader<'a>,
    scan: &PropertyScan,
    queue_id: i32,
) -> Result<Stored<'a>, RemotingCommand> {
    let plain = Stored {
        topic: Cow::Borrowed(head.topic),
        queue_id,
        properties: Cow::Borrowed(head.properties),
        sys_flag: head.sys_flag,
        tags_code: None,
    };
    if head.batch {
        if is_special(head.properties) {
            let remark = "a batch may not carry DELAY, TIMER_* or TRAN_MSG".to_string();
            return Err(reply(req, ResponseCode::MessageIllegal, remark));
        }
        return Ok(plain);
    }
    // Most sends carry none of the keys below: one pass instead of a scan per key.
    if !scan.placement {
        return Ok(plain);
    }
    if properties::get_property(head.properties, keys::TRAN_MSG) == Some("true") {
        if broker.config.reject_transaction_message {
            let remark = format!(
                "the broker[{}] sending transaction message is forbidden",
                broker.broker_addr.ip()
            );
            return Err(reply(req, ResponseCode::NoPermission, remark));
        }
        let (properties, sys_flag) =
            transaction::half_placement(head.properties, head.sys_flag, head.topic, queue_id);
        transaction::ensure_topic(broker, transaction::HALF_TOPIC);
        return Ok(Stored {
            topic: Cow::Borrowed(transaction::HALF_TOPIC),
            queue_id: transaction::HALF_QUEUE,
            properties: Cow::Owned(properties),
            sys_flag,
            tags_code: None,
        });
    }
    let levels = &broker.schedule.delay_levels_ms;
    let now = now_ms();
    let delay = schedule::requested_delay(head.properties, levels.len(), now)
        .map_err(|remark| reply(req, ResponseCode::MessageIllegal, remark))?;
    Ok(
        match schedule::place(head.topic, queue_id, head.properties, delay, levels, now) {
            Some(placed) => Stored {
                topic: Cow::Owned(placed.topic),
                queue_id: placed.queue_id,
                properties: Cow::Owned(placed.properties),
                sys_flag: head.sys_flag,
                tags_code: Some(placed.tags_code),
            },
            None => plain,
        },
    )
}

type Records = Vec<(BytesMut, i64)>;

fn encode_records(
    broker: &BrokerContext,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
    head: &SendHeader,
    scan: &PropertyScan,
    stored: &Stored,
) -> Result<Records, RemotingCommand> {
    let max = usize::try_from(broker.config.max_message_size).unwrap_or(usize::MAX);
    if req.body.len() > max {
        let remark = format!("the message body size over max value, MAX: {max}");
        return Err(reply(req, ResponseCode::MessageIllegal, remark));
    }
    let cluster = broker.config.broker_cluster_name.as_str();
    let encode = |flag: i32, body: &[u8], props: &str, tags: Option<&str>| {
        let tags = stored.tags_code.unwrap_or_else(|| tags_code(tags));
        encode_record(broker, conn, req, head, stored, (flag, body, props), tags)
    };
    if !head.batch {
        let props = stored_properties(&stored.properties, cluster);
        // The stored properties differ from the sent ones by WAIT and CLUSTER only, unless
        // `place` rewrote them (then they are scanned for the tag).
        let tags = match stored.properties {
            Cow::Borrowed(_) => scan.tags,
            Cow::Owned(_) => properties::get_property(&props, keys::TAGS),
        };
        return Ok(vec![encode(head.flag, &req.body, &props, tags)?]);
    }
    let batch = decode_batch(&req.body).map_err(|e| {
        reply(
            req,
            ResponseCode::MessageIllegal,
            format!("bad batch body: {e}"),
        )
    })?;
    // The store asserts a batch holds records; an empty one is the client's error.
    if batch.is_empty() {
        let remark = "the batch holds no message (empty body)".to_string();
        return Err(reply(req, ResponseCode::MessageIllegal, remark));
    }
    if let Some(entry) = batch.iter().find(|e| is_special(e.properties)) {
        let remark = format!(
            "a batch may not contain delayed or transactional messages (properties {:?})",
            entry.properties
        );
        return Err(reply(req, ResponseCode::MessageIllegal, remark));
    }
    let mut records = Vec::with_capacity(batch.len());
    for entry in batch {
        let props = with_cluster(entry.properties, cluster);
        let tags = properties::get_property(&props, keys::TAGS);
        records.push(encode(entry.flag, entry.body, &props, tags)?);
    }
    Ok(records)
}

/// One record of a send (`flag`, body, stored properties), with its consume-queue tags code.
fn encode_record(
    broker: &BrokerContext,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
    head: &SendHeader,
    stored: &Stored,
    (flag, body, props): (i32, &[u8], &str),
    tags: i64,
) -> Result<(BytesMut, i64), RemotingCommand> {
    if props.len() > MAX_PROPERTIES_LEN {
        let remark = format!(
            "the message properties size {} over max value {MAX_PROPERTIES_LEN}",
            props.len()
        );
        return Err(reply(req, ResponseCode::MessageIllegal, remark));
    }
    let record = NewRecord {
        topic: &stored.topic,
        queue_id: stored.queue_id,
        flag,
        body,
        properties: props,
        sys_flag: stored.sys_flag,
        born_timestamp: head.born_timestamp,
        born_host: conn.peer,
        store_host: broker.broker_addr,
        reconsume_times: head.reconsume_times,
        prepared_transaction_offset: 0,
    };
    let mut buf = BytesMut::with_capacity(record.encoded_len());
    record
        .encode_into(&mut buf)
        .map_err(|e| reply(req, ResponseCode::MessageIllegal, e.to_string()))?;
    Ok((buf, tags))
}

/// A single message's properties as stored: WAIT removed (it only tells the broker when to
/// answer; RocketMQ does not store it either) and CLUSTER set.
fn stored_properties(props: &str, cluster: &str) -> String {
    properties::remove_and_default(props, keys::WAIT, keys::CLUSTER, cluster)
}

fn with_cluster(props: &str, cluster: &str) -> String {
    if properties::get_property(props, keys::CLUSTER).is_some() {
        return props.to_string();
    }
    properties::set_property(props, keys::CLUSTER, cluster)
}

/// The answer to a send the shard stored (or failed to) under `stored_topic`.
fn respond(
    broker: &BrokerContext,
    req: &RemotingCommand,
    answer: &Answer,
    stored_topic: &str,
    outcome: Result<(AppendResult, Result<(), StoreError>), StoreError>,
) -> RemotingCommand {
    let (appended, durable) = match outcome {
        Ok(pair) => pair,
        Err(error) => return store_error_response(req, &error),
    };
    let code = match durable {
        Ok(()) => ResponseCode::Success,
        Err(StoreError::FlushTimeout) => ResponseCode::FlushDiskTimeout,
        Err(error) => return store_error_response(req, &error),
    };
    let topic = answer.sent_topic.as_deref().unwrap_or(stored_topic);
    crate::stats::on_put(
        topic,
        appended.count,
        appended.wrote_bytes,
        now_ms() - answer.store_ts,
    );
    if let Some(kind) = answer.message_type {
        crate::metrics::counters::on_send_typed(topic, kind, appended.count, appended.wrote_bytes);
    }
    let (queue_id, queue_offset) = (answer.queue_id, appended.queue_offset);
    if answer.batch_sizes.is_empty() {
        let msg_id = OffsetMsgId {
            store_host: broker.broker_addr,
            physical_offset: appended.physical_offset,
        };
        stored_reply(req, code, msg_id, queue_id, queue_offset)
    } else {
        let msg_ids = batch_msg_ids(broker, &appended, &answer.batch_sizes);
        stored_reply(req, code, msg_ids, queue_id, queue_offset)
    }
}

/// The response to a stored send (`SendMessageResponseHeader` plus the region and trace
/// switch RocketMQ adds). Public for the instruction-count gate (benches: `send_response`).
pub fn stored_reply(
    req: &RemotingCommand,
    code: ResponseCode,
    msg_id: impl std::fmt::Display,
    queue_id: i32,
    queue_offset: i64,
) -> RemotingCommand {
    // five fields: reserved at once, the map neither regrows nor rehashes on the way
    reply(req, code, None)
        .with_ext_capacity(5)
        .with_ext("msgId", msg_id)
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", queue_offset)
        .with_ext_str("MSG_REGION", "DefaultRegion")
        .with_ext_str("TRACE_ON", "true")
}

/// A batch's records are contiguous from `physical_offset`; RocketMQ answers the
/// comma-separated offset ids of all of them, in order (the Go client maps them to messages).
fn batch_msg_ids(broker: &BrokerContext, appended: &AppendResult, sizes: &[usize]) -> String {
    assert_eq!(sizes.len(), appended.count, "one size per stored record");
    debug_assert_eq!(sizes.iter().sum::<usize>(), appended.wrote_bytes);
    let mut ids = String::with_capacity(sizes.len() * 33);
    let mut offset = appended.physical_offset;
    for size in sizes {
        if !ids.is_empty() {
            ids.push(',');
        }
        let id = OffsetMsgId {
            store_host: broker.broker_addr,
            physical_offset: offset,
        };
        // Written into the list itself, not through a String per id.
        std::fmt::Write::write_fmt(&mut ids, format_args!("{id}"))
            .expect("writing to a String does not fail");
        offset += *size as i64;
    }
    ids
}

fn store_error_response(req: &RemotingCommand, error: &StoreError) -> RemotingCommand {
    crate::stats::on_put_failed();
    match error {
        StoreError::ShuttingDown => {
            reply(req, ResponseCode::ServiceNotAvailable, error.to_string())
        }
        StoreError::MessageTooLarge { .. } => {
            reply(req, ResponseCode::MessageIllegal, error.to_string())
        }
        _ => {
            tracing::error!("send failed in the store: {error}");
            reply(
                req,
                ResponseCode::SystemError,
                format!("store error: {error}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_scan_answers_what_the_lookups_answer() {
        let cases = [
            "",
            "WAIT\u{1}false\u{2}TAGS\u{1}TagA\u{2}",
            "TAGS\u{1}first\u{2}TAGS\u{1}second\u{2}WAIT\u{1}true\u{2}WAIT\u{1}false",
            "KEYS\u{1}k\u{2}DELAY\u{1}3\u{2}",
            "A\u{1}1\u{2}TRAN_MSG\u{1}true",
            "DELAYX\u{1}3\u{2}XDELAY\u{1}3\u{2}K\u{1}DELAY\u{2}V\u{1}TIMER_DELAY_MS",
            "DELAY\u{2}TAGS\u{2}WAIT",
            "\u{2}\u{2}TIMER_DELIVER_MS\u{1}\u{2}",
            "TIMER_DELAY_SEC\u{1}5\u{2}TAGS\u{1}\u{2}",
        ];
        for props in cases {
            let scan = PropertyScan::of(props);
            assert_eq!(
                scan.wait,
                properties::get_property(props, keys::WAIT),
                "{props:?}"
            );
            assert_eq!(
                scan.tags,
                properties::get_property(props, keys::TAGS),
                "{props:?}"
            );
            let placement = PLACEMENT_KEYS
                .iter()
                .any(|key| properties::get_property(props, key).is_some());
            assert_eq!(scan.placement, placement, "{props:?}");
        }
    }
}
