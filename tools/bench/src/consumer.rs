//! The consumer side: long-poll PULL_MESSAGE on every read queue of the topic, count the
//! records and measure their latency.
//!
//! One OS thread (own io_uring runtime) runs one pull loop per queue; the loops share
//! `--threads` connections per broker (queue `i` uses connection `i % threads`). Each
//! pull asks for 32 messages with SUSPEND|SUBSCRIPTION, subscription `*`, a 15 s suspend
//! and no offset commit (commitOffset -1): the bench keeps its own offsets, starting at
//! the max offset (GET_MAX_OFFSET) or, with `--from-start`, the min offset; a topic that
//! does not exist yet in e2e mode is read from offset 0 once it appears.
//!
//! A SUCCESS body is a concatenation of commit-log records (docs/protocol.md §3.1). Latency per
//! record: born-to-consume from the producer's microsecond body stamp (`message.rs`), else from
//! the born timestamp (ms); store-to-consume from the store timestamp (ms resolution).
//! PULL_NOT_FOUND / RETRY_IMMEDIATELY / OFFSET_MOVED move to `nextBeginOffset` and are not
//! errors; other codes are counted by code and retried after a pause.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rmq_core::message::sysflag::pull as pull_flag;
use rmq_core::message::{RecordError, parse_record};
use rmq_core::remoting::{RemotingCommand, ResponseCode, SerializeType, request_code};
use rmq_net::RemotingClient;

use crate::clock;
use crate::message::body_stamp_us;
use crate::options::{Options, WorkloadKind};
use crate::report::{SharedStats, Stats, code_key, failure_key, lock};
use crate::route::{
    Access, BrokerConnections, QueueTarget, connect_namesrv, fetch_route, queues_of,
};
use crate::runner::RunControl;

/// Messages asked for per pull (Java `pullBatchSize` default).
pub const PULL_BATCH: i32 = 32;
/// How long the broker may hold a pull with nothing to return.
pub const SUSPEND_MILLIS: u64 = 15_000;
/// Pause after a failed pull.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How often to look for the route of a topic that does not exist yet.
const ROUTE_POLL: Duration = Duration::from_millis(500);

/// Starts the consumer thread once its start offsets are known (so that an e2e producer
/// started afterwards is fully seen); returns its stats handle.
///
/// # Errors
/// Name server unreachable, topic missing (consume mode), offsets not readable.
pub fn start(
    options: &Options,
    workload: WorkloadKind,
    control: Arc<RunControl>,
) -> anyhow::Result<Vec<SharedStats>> {
    let stats = SharedStats::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<usize>>();
    let (options, thread_stats) = (options.clone(), stats.clone());
    std::thread::Builder::new()
        .name("bench-consumer".into())
        .spawn(move || {
            let runtime = match rmq_net::rt::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => return drop(ready_tx.send(Err(error.into()))),
            };
            let consumer = Rc::new(Consumer::new(&options, control, thread_stats));
            runtime.block_on(run(consumer, options, workload, ready_tx));
        })
        .context("spawning the consumer thread")?;
    let queues = ready_rx
        .recv()
        .context("the consumer thread died at start")??;
    eprintln!("consuming {queues} queue(s) of topic (0 = waiting for it to be created)");
    Ok(vec![stats])
}

/// Where the pull loops start.
enum StartPlan {
    Queues(Vec<(QueueTarget, i64)>),
    /// e2e on a topic that does not exist yet: read it from 0 once routed.
    AwaitTopic,
}

async fn run(
    consumer: Rc<Consumer>,
    options: Options,
    workload: WorkloadKind,
    ready: std::sync::mpsc::Sender<anyhow::Result<usize>>,
) {
    let plan = match plan(&consumer, &options, workload).await {
        Ok(plan) => plan,
        Err(error) => return drop(ready.send(Err(error))),
    };
    let queues = match plan {
        StartPlan::Queues(queues) => {
            let _ = ready.send(Ok(queues.len()));
            queues
        }
        StartPlan::AwaitTopic => {
            let _ = ready.send(Ok(0));
            match await_topic(&consumer, &options).await {
                Some(queues) => queues.into_iter().map(|queue| (queue, 0)).collect(),
                None => return,
            }
        }
    };
    let mut loops = Vec::with_capacity(queues.len());
    for (position, (queue, offset)) in queues.into_iter().enumerate() {
        loops.push(rmq_net::rt::spawn(pull_loop(
            consumer.clone(),
            position,
            queue,
            offset,
        )));
    }
    for pull in loops {
        let _ = pull.await;
    }
}

async fn plan(
    consumer: &Consumer,
    options: &Options,
    workload: WorkloadKind,
) -> anyhow::Result<StartPlan> {
    let namesrv = connect_namesrv(&options.namesrv, options.timeout()).await?;
    let Some(route) = fetch_route(
        &namesrv,
        &options.topic,
        consumer.serialize,
        options.timeout(),
    )
    .await?
    else {
        if workload == WorkloadKind::E2e {
            return Ok(StartPlan::AwaitTopic);
        }
        bail!("topic {} does not exist", options.topic);
    };
    let queues = queues_of(&route, Access::Read, false, options.queues);
    if queues.is_empty() {
        bail!("no readable master queue in the route of {}", options.topic);
    }
    let code = if options.from_start {
        request_code::GET_MIN_OFFSET
    } else {
        request_code::GET_MAX_OFFSET
    };
    let mut planned = Vec::with_capacity(queues.len());
    for (position, queue) in queues.into_iter().enumerate() {
        let offset = consumer.query_offset(position, &queue, code).await?;
        planned.push((queue, offset));
    }
    Ok(StartPlan::Queues(planned))
}

async fn await_topic(consumer: &Consumer, options: &Options) -> Option<Vec<QueueTarget>> {
    let namesrv = connect_namesrv(&options.namesrv, options.timeout())
        .await
        .ok()?;
    while !consumer.control.stopping() {
        rmq_net::rt::sleep(ROUTE_POLL).await;
        if let Ok(Some(route)) = fetch_route(
            &namesrv,
            &options.topic,
            consumer.serialize,
            options.timeout(),
        )
        .await
        {
            let queues = queues_of(&route, Access::Read, false, options.queues);
            if !queues.is_empty() {
                eprintln!(
                    "topic {} appeared: consuming {} queue(s) from offset 0",
                    options.topic,
                    queues.len()
                );
                return Some(queues);
            }
        }
    }
    None
}

/// What the pull loops share.
struct Consumer {
    group: String,
    topic: String,
    serialize: SerializeType,
    timeout: Duration,
    pool: Vec<BrokerConnections>,
    control: Arc<RunControl>,
    stats: SharedStats,
}

impl Consumer {
    fn new(options: &Options, control: Arc<RunControl>, stats: SharedStats) -> Self {
        Self {
            group: options.consumer_group().to_string(),
            topic: options.topic.clone(),
            serialize: options.serialize.wire(),
            timeout: options.timeout(),
            pool: (0..options.threads)
                .map(|_| BrokerConnections::new(options.timeout()))
                .collect(),
            control,
            stats,
        }
    }

    async fn client(
        &self,
        position: usize,
        queue: &QueueTarget,
    ) -> Result<Rc<RemotingClient>, rmq_net::NetError> {
        self.pool[position % self.pool.len()].get(&queue.addr).await
    }

    /// GET_MAX_OFFSET / GET_MIN_OFFSET of one queue.
    async fn query_offset(
        &self,
        position: usize,
        queue: &QueueTarget,
        code: i32,
    ) -> anyhow::Result<i64> {
        let client = self.client(position, queue).await?;
        let mut request = RemotingCommand::new_request(code)
            .with_ext("topic", &self.topic)
            .with_ext("queueId", queue.queue_id);
        request.serialize_type = self.serialize;
        let response = client.invoke(request, self.timeout).await?;
        if response.code != ResponseCode::Success.code() {
            bail!(
                "offset of {}:{}: code {} {}",
                queue.broker_name,
                queue.queue_id,
                response.code,
                response.remark.unwrap_or_default()
            );
        }
        Ok(response.ext_i64("offset")?)
    }
}

/// The PULL_MESSAGE request for `offset` of one queue.
pub fn pull_request(
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    serialize: SerializeType,
) -> RemotingCommand {
    let mut request = RemotingCommand::new_request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", PULL_BATCH)
        .with_ext("sysFlag", pull_flag::SUSPEND | pull_flag::SUBSCRIPTION)
        .with_ext("commitOffset", -1)
        .with_ext("suspendTimeoutMillis", SUSPEND_MILLIS)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
        .with_ext("expressionType", "TAG");
    request.serialize_type = serialize;
    request
}

async fn pull_loop(consumer: Rc<Consumer>, position: usize, queue: QueueTarget, mut offset: i64) {
    let pull_timeout = Duration::from_millis(SUSPEND_MILLIS) + consumer.timeout;
    while !consumer.control.stopping() {
        let client = match consumer.client(position, &queue).await {
            Ok(client) => client,
            Err(error) => {
                record_error(&consumer, failure_key(&error));
                rmq_net::rt::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let request = pull_request(
            &consumer.group,
            &consumer.topic,
            queue.queue_id,
            offset,
            consumer.serialize,
        );
        let response = match client.invoke(request, pull_timeout).await {
            Ok(response) => response,
            Err(error) => {
                record_error(&consumer, failure_key(&error));
                rmq_net::rt::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        match handle_response(&consumer, &response) {
            Some(next) => offset = next,
            None => rmq_net::rt::sleep(RETRY_PAUSE).await,
        }
    }
}

/// Accounts one pull response; returns the next offset, or `None` to retry after a pause.
fn handle_response(consumer: &Consumer, response: &RemotingCommand) -> Option<i64> {
    let code = ResponseCode::from_code(response.code);
    let next = response.ext_i64("nextBeginOffset").ok();
    match code {
        Some(ResponseCode::Success) => {
            let (now_us, at) = (clock::now_us(), Instant::now());
            let measuring = consumer.control.measuring(at);
            let mut scratch = Stats::default();
            let result = account_records(&mut scratch, &response.body, now_us);
            consumer
                .control
                .consumed_total
                .fetch_add(scratch.messages, Ordering::Relaxed);
            if measuring {
                scratch.requests = 1;
                lock(&consumer.stats).merge(&scratch);
            }
            if let Err(error) = result {
                tracing::warn!("bad record in pull response: {error}");
                record_error(consumer, "bad_record");
            }
            next
        }
        Some(
            ResponseCode::PullNotFound
            | ResponseCode::PullRetryImmediately
            | ResponseCode::PullOffsetMoved,
        ) => next,
        _ => {
            record_error(consumer, code_key(response.code));
            tracing::debug!(code = response.code, remark = ?response.remark, "pull failed");
            None
        }
    }
}

fn record_error(consumer: &Consumer, key: impl Into<String>) {
    if consumer.control.measuring(Instant::now()) {
        lock(&consumer.stats).record_error(key);
    }
}

/// Counts the records of a pull body into `stats`, measuring latency against `now_us`.
///
/// # Errors
/// The first record that does not parse; the records before it are counted.
pub fn account_records(stats: &mut Stats, body: &[u8], now_us: i64) -> Result<(), RecordError> {
    let mut rest = body;
    while !rest.is_empty() {
        let record = parse_record(rest)?;
        rest = &rest[record.total_size()..];
        stats.messages += 1;
        stats.bytes += record.body().len() as u64;
        let born_us = body_stamp_us(record.body()).unwrap_or(record.born_timestamp() * 1000);
        stats.record_latency(micros_between(born_us, now_us));
        stats.record_store_latency(micros_between(record.store_timestamp() * 1000, now_us));
    }
    Ok(())
}

/// `later - earlier`, clamped at zero: clocks of different hosts may disagree.
fn micros_between(earlier_us: i64, later_us: i64) -> Duration {
    Duration::from_micros(u64::try_from(later_us - earlier_us).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use rmq_core::message::{NewRecord, patch_record};

    use super::*;
    use crate::message::stamped_body;

    fn record(dst: &mut BytesMut, body: &[u8], born_ms: i64, store_ms: i64) {
        let start = dst.len();
        let new = NewRecord {
            topic: "T",
            queue_id: 1,
            flag: 0,
            body,
            properties: "WAIT\u{1}true\u{2}",
            sys_flag: 0,
            born_timestamp: born_ms,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_host: "127.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        new.encode_into(dst).unwrap();
        patch_record(&mut dst[start..], 0, start as i64, store_ms);
    }

    #[test]
    fn pull_request_fields() {
        let request = pull_request("g", "T", 3, 42, SerializeType::RocketMq);
        assert_eq!(request.code, 11);
        assert_eq!(request.serialize_type, SerializeType::RocketMq);
        assert_eq!(request.ext_i32("sysFlag").unwrap(), 0x2 | 0x4);
        assert_eq!(request.ext_i64("queueOffset").unwrap(), 42);
        assert_eq!(request.ext_i64("commitOffset").unwrap(), -1);
        assert_eq!(request.ext_i64("suspendTimeoutMillis").unwrap(), 15_000);
        assert_eq!(request.ext("subscription"), Some("*"));
        assert_eq!(
            (request.ext("maxMsgNums"), request.ext("subVersion")),
            (Some("32"), Some("0"))
        );
    }

    #[test]
    fn records_are_counted_with_latency() {
        let now_us = 1_700_000_010_000_000;
        let mut body = BytesMut::new();
        // Stamped body: born-to-consume from the stamp (2.5 ms), store-to-consume 4 ms.
        record(
            &mut body,
            &stamped_body(64, now_us - 2_500),
            1,
            now_us / 1000 - 4,
        );
        // Unstamped body: born timestamp (10 ms); store time in the future clamps to 0.
        record(&mut body, b"short", now_us / 1000 - 10, now_us / 1000 + 5);
        let mut stats = Stats::default();
        account_records(&mut stats, &body, now_us).unwrap();
        assert_eq!((stats.messages, stats.bytes), (2, 69));
        assert_eq!(stats.latency_us.min(), 2_500);
        assert!(stats.latency_us.equivalent(stats.latency_us.max(), 10_000));
        assert_eq!(stats.store_latency_us.min(), 0);
        assert!(
            stats
                .store_latency_us
                .equivalent(stats.store_latency_us.max(), 4_000)
        );
    }

    #[test]
    fn bad_record_stops_counting() {
        let mut body = BytesMut::new();
        record(&mut body, b"ok", 1, 1);
        body.extend_from_slice(&[0u8; 10]);
        let mut stats = Stats::default();
        assert!(account_records(&mut stats, &body, 2_000).is_err());
        assert_eq!(stats.messages, 1);
    }
}
