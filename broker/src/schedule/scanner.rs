//! The scanner of one fixed-delay queue (a delay level or a timer bucket).
//!
//! Contract: runs on the core owning the queue's shard; delivers records strictly in queue
//! order, each no earlier than its leave time (computed from the record itself, so consume
//! queue entries rebuilt by recovery, whose tags code is the TAGS hash, are handled alike);
//! advances the offset only after the re-put satisfied the broker's acknowledgement policy
//! (flush durability and, under SYNC_MASTER, a slave report): a promoted slave takes its delay
//! offsets from the master, so an offset past a copy the slave does not hold would skip that
//! message there. A copy stored on the master that no slave confirmed is waited for (never
//! re-put again); while no slave is connected, delivery of that queue holds at it, as
//! RocketMQ's delay service retries a put that is not PUT_OK. A re-put that failed for a
//! passing reason (owner busy, store error) is retried after a pause, never skipped. A record that can never be delivered (no or invalid REAL_TOPIC/REAL_QID, a real
//! queue that is itself a system queue, a copy the record format cannot hold) is skipped
//! with a warning and counted (`ScheduleProgress::undeliverable`): retrying it would block
//! every later record of its queue forever, and re-putting into a system queue would loop.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rmq_core::message::properties::{self, keys};
use rmq_core::message::{RecordView, parse_record};
use rmq_ha::master::SlaveWait;
use rmq_storage::{GetStatus, ShardStore, StoreError};

use super::progress::QueueFamily;
use super::reput::{ReputError, Target, await_replica, reput};
use super::{TIMER_TOPIC, timer};
use crate::context::now_ms;
use crate::core_context::CoreContext;
use crate::topics::{SCHEDULE_TOPIC, is_not_allowed_send_topic, validate_topic_name};

/// Records read per step.
const READ_BATCH: usize = 32;
/// Longest single sleep, so shutdown is noticed quickly.
const SLEEP_SLICE_MS: i64 = 200;
/// Pause after a failed read or re-put.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

struct Scan {
    core: Rc<CoreContext>,
    store: Rc<ShardStore>,
    family: QueueFamily,
    topic: &'static str,
    queue_id: i32,
}

/// Starts the scanners of every delay level and timer bucket whose shard this core owns.
/// Slaves deliver nothing (the master's deliveries replicate to them). In controller mode
/// the scanners run on every broker and deliver only while it is master, from the progress
/// the master last copied (`replication::metadata_sync`).
pub fn spawn_scanners(core: &Rc<CoreContext>) {
    let broker = &core.broker;
    if broker.is_slave() && !broker.role.controller_mode() {
        return;
    }
    let levels = i32::try_from(broker.schedule.delay_levels_ms.len()).unwrap_or(0);
    let queues = (0..levels)
        .map(|q| (QueueFamily::Level, SCHEDULE_TOPIC, q))
        .chain((0..timer::BUCKET_COUNT).map(|q| (QueueFamily::Timer, TIMER_TOPIC, q)));
    for (family, topic, queue_id) in queues {
        let shard = broker.shard_of_queue(topic, queue_id);
        let Some(store) = core.shards.get(&shard) else {
            continue;
        };
        let scan = Scan {
            core: core.clone(),
            store: store.clone(),
            family,
            topic,
            queue_id,
        };
        rmq_net::rt::spawn(run(scan)).detach();
    }
}

async fn run(scan: Scan) {
    let broker = scan.core.broker.clone();
    let mut next = broker.schedule.get(scan.family, scan.queue_id);
    let mut idle = false;
    while !broker.stopping.load(Ordering::Acquire) {
        if broker.is_slave() {
            idle = true;
            rmq_net::rt::sleep(Duration::from_millis(SLEEP_SLICE_MS as u64)).await;
            continue;
        }
        if idle {
            // Master again (controller mode): resume from the progress copied meanwhile.
            idle = false;
            next = broker.schedule.get(scan.family, scan.queue_id);
        }
        next = step(&scan, next).await;
    }
}

/// Delivers what is due from `next` on; returns the new next offset.
async fn step(scan: &Scan, next: i64) -> i64 {
    let store = &scan.store;
    if next >= store.max_queue_offset(scan.topic, scan.queue_id) {
        let patience = Duration::from_millis(500);
        store
            .wait_for_message(scan.topic, scan.queue_id, next, patience)
            .await;
        return next;
    }
    let all = |_: i64| true;
    let got = match store
        .get_messages(scan.topic, scan.queue_id, next, READ_BATCH, &all)
        .await
    {
        Ok(got) => got,
        Err(error) => {
            tracing::error!(
                topic = scan.topic,
                queue = scan.queue_id,
                "scanner read failed: {error}"
            );
            rmq_net::rt::sleep(RETRY_PAUSE).await;
            return next;
        }
    };
    if got.count == 0 {
        return match got.status {
            GetStatus::OffsetOverflowBadly => got.max_offset,
            _ => got.next_begin_offset.max(next),
        };
    }
    let mut rest = &got.body[..];
    let mut next = next;
    while !rest.is_empty() {
        let Ok(view) = parse_record(rest) else {
            tracing::error!(
                topic = scan.topic,
                queue = scan.queue_id,
                next,
                "malformed record skipped"
            );
            return got.next_begin_offset;
        };
        rest = &rest[view.total_size()..];
        if !wait_until(scan, leave_ms(scan, &view)).await {
            return next;
        }
        match deliver(scan, &view).await {
            Ok(()) => {}
            Err(Failure::Undeliverable(reason)) => {
                tracing::warn!(
                    topic = scan.topic,
                    queue = scan.queue_id,
                    offset = view.queue_offset(),
                    "undeliverable delayed record skipped: {reason}"
                );
                scan.core.broker.schedule.count_undeliverable();
            }
            Err(Failure::Stopping) => return next,
            Err(Failure::Retry(error)) => {
                tracing::warn!(
                    topic = scan.topic,
                    queue = scan.queue_id,
                    "delayed re-put failed, retrying: {error}"
                );
                rmq_net::rt::sleep(RETRY_PAUSE).await;
                return next;
            }
        }
        next = view.queue_offset() + 1;
        scan.core
            .broker
            .schedule
            .advance(scan.family, scan.queue_id, next);
    }
    got.next_begin_offset.max(next)
}

/// Sleeps until `at_ms`; false when the broker started stopping first.
async fn wait_until(scan: &Scan, at_ms: i64) -> bool {
    loop {
        if scan.core.broker.stopping.load(Ordering::Acquire) {
            return false;
        }
        let left = at_ms - now_ms();
        if left <= 0 {
            return true;
        }
        let slice = u64::try_from(left.min(SLEEP_SLICE_MS)).unwrap_or(1);
        rmq_net::rt::sleep(Duration::from_millis(slice)).await;
    }
}

fn timer_deliver_ms(view: &RecordView<'_>) -> i64 {
    properties::get_property(view.properties(), keys::TIMER_DELIVER_MS)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| view.store_timestamp())
}

/// When the record may leave its queue.
fn leave_ms(scan: &Scan, view: &RecordView<'_>) -> i64 {
    let stored = view.store_timestamp();
    match scan.family {
        QueueFamily::Level => {
            let levels = &scan.core.broker.schedule.delay_levels_ms;
            let delay = levels
                .get(usize::try_from(scan.queue_id).unwrap_or(usize::MAX))
                .copied()
                .unwrap_or(0);
            stored.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
        }
        QueueFamily::Timer => timer::leave_ms(scan.queue_id, stored, timer_deliver_ms(view)),
    }
}

/// Why a due record was not re-put.
enum Failure {
    /// It never can be: skip it.
    Undeliverable(String),
    /// A passing failure: try again later.
    Retry(ReputError),
    /// The broker stops before a slave confirmed the copy: the offset stays (the copy is
    /// re-put after the restart: at least once).
    Stopping,
}

/// Re-puts a due record: to its real queue, or (timers) to the next bucket.
async fn deliver(scan: &Scan, view: &RecordView<'_>) -> Result<(), Failure> {
    let target = target(scan.family, view, now_ms()).map_err(Failure::Undeliverable)?;
    match reput(&scan.core, view, &target).await {
        Ok(_) => Ok(()),
        Err(ReputError::NotReplicated { appended, replica }) => {
            await_slave(scan, &target, appended.end_offset, replica).await
        }
        // The copy does not fit a record (topic or properties too long): it never will.
        Err(
            error @ (ReputError::Record(_) | ReputError::Store(StoreError::MessageTooLarge { .. })),
        ) => Err(Failure::Undeliverable(error.to_string())),
        Err(error) => Err(Failure::Retry(error)),
    }
}

/// Waits until a slave confirmed the copy ending at `end_offset` (stored on the master).
async fn await_slave(
    scan: &Scan,
    target: &Target,
    end_offset: i64,
    mut replica: SlaveWait,
) -> Result<(), Failure> {
    tracing::warn!(
        topic = scan.topic,
        queue = scan.queue_id,
        end_offset,
        ?replica,
        "delayed re-put not confirmed by a slave; delivery of this queue waits for one"
    );
    loop {
        if scan.core.broker.stopping.load(Ordering::Acquire) {
            return Err(Failure::Stopping);
        }
        if replica != SlaveWait::Timeout {
            // Not available (no slave, or too far behind) returns at once: do not spin.
            rmq_net::rt::sleep(RETRY_PAUSE).await;
        }
        replica = match await_replica(&scan.core, &target.topic, target.queue_id, end_offset).await
        {
            Ok(SlaveWait::Replicated) => return Ok(()),
            Ok(other) => other,
            Err(_busy) => SlaveWait::NotAvailable,
        };
    }
}

/// Where a due record of `family` goes: its real queue, or (a timer not yet due) the next
/// bucket.
///
/// # Errors
/// Why the record can never be delivered: REAL_TOPIC/REAL_QID missing or invalid, or naming
/// a topic clients may not send to (a system queue: re-putting there would loop).
fn target(family: QueueFamily, view: &RecordView<'_>, now: i64) -> Result<Target, String> {
    let props = view.properties();
    let real_topic =
        properties::get_property(props, keys::REAL_TOPIC).ok_or("no REAL_TOPIC property")?;
    let real_queue = properties::get_property(props, keys::REAL_QID)
        .and_then(|q| q.parse::<i32>().ok())
        .filter(|q| *q >= 0)
        .ok_or("no valid REAL_QID property")?;
    validate_topic_name(real_topic)?;
    if is_not_allowed_send_topic(real_topic) {
        return Err(format!(
            "REAL_TOPIC {real_topic} is a system topic (re-putting there would loop)"
        ));
    }
    Ok(match family {
        QueueFamily::Level => {
            let props = properties::remove_property(props, keys::DELAY);
            Target::like(view, real_topic, real_queue, props)
        }
        QueueFamily::Timer => {
            let deliver = timer_deliver_ms(view);
            if deliver > now {
                let bucket = timer::bucket_for(deliver - now);
                let mut target = Target::like(view, TIMER_TOPIC, bucket, props.to_string());
                target.tags_code = Some(timer::leave_ms(bucket, now, deliver));
                target
            } else {
                Target::like(view, real_topic, real_queue, props.to_string())
            }
        }
    })
}

/// Persists scanner offsets every `flushDelayOffsetInterval` (core 0; also done at shutdown).
pub async fn persist_loop(ctx: crate::context::SharedContext) {
    let every = ctx.config.flush_delay_offset_interval.clamp(100, 600_000);
    let mut last = now_ms();
    while !ctx.stopping.load(Ordering::Acquire) {
        rmq_net::rt::sleep(Duration::from_millis(100)).await;
        if now_ms() - last >= every {
            last = now_ms();
            ctx.schedule.persist();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rmq_core::message::NewRecord;

    fn record(topic: &str, pairs: &[(&str, &str)]) -> BytesMut {
        let props = properties::encode_properties(pairs.iter().copied());
        let host: std::net::SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let new = NewRecord {
            topic,
            queue_id: 0,
            flag: 0,
            body: b"body",
            properties: &props,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        };
        let mut out = BytesMut::new();
        new.encode_into(&mut out).unwrap();
        out
    }

    fn target_of(family: QueueFamily, pairs: &[(&str, &str)]) -> Result<Target, String> {
        let topic = match family {
            QueueFamily::Level => SCHEDULE_TOPIC,
            QueueFamily::Timer => TIMER_TOPIC,
        };
        let bytes = record(topic, pairs);
        target(family, &parse_record(&bytes).unwrap(), 1_000)
    }

    #[test]
    fn records_that_can_never_be_delivered_are_recognised() {
        let long = "t".repeat(200);
        for family in [QueueFamily::Level, QueueFamily::Timer] {
            let ok = target_of(
                family,
                &[("REAL_TOPIC", "T"), ("REAL_QID", "1"), ("DELAY", "1")],
            );
            let ok = ok.expect("a valid record is delivered");
            assert_eq!((ok.topic.as_str(), ok.queue_id), ("T", 1));
            for bad in [
                vec![("REAL_QID", "1")],
                vec![("REAL_TOPIC", "T")],
                vec![("REAL_TOPIC", "T"), ("REAL_QID", "-1")],
                vec![("REAL_TOPIC", "T"), ("REAL_QID", "x")],
                vec![("REAL_TOPIC", long.as_str()), ("REAL_QID", "0")],
                vec![("REAL_TOPIC", "a b"), ("REAL_QID", "0")],
                // Pointing back into a system queue: re-putting would loop forever.
                vec![("REAL_TOPIC", SCHEDULE_TOPIC), ("REAL_QID", "0")],
                vec![("REAL_TOPIC", TIMER_TOPIC), ("REAL_QID", "3")],
                vec![
                    ("REAL_TOPIC", "RMQ_SYS_TRANS_HALF_TOPIC"),
                    ("REAL_QID", "0"),
                ],
            ] {
                assert!(target_of(family, &bad).is_err(), "{family:?} {bad:?}");
            }
        }
        // A timer not yet due hops to its next bucket, keeping its real destination.
        let hop = target_of(
            QueueFamily::Timer,
            &[
                ("REAL_TOPIC", "T"),
                ("REAL_QID", "1"),
                ("TIMER_DELIVER_MS", "9000"),
            ],
        )
        .unwrap();
        assert_eq!((hop.topic.as_str(), hop.queue_id), (TIMER_TOPIC, 4));
    }
}
