//! The scanner of one fixed-delay queue (a delay level or a timer bucket).
//!
//! Contract: runs on the core owning the queue's shard; delivers records strictly in queue
//! order, each no earlier than its leave time (computed from the record itself, so consume
//! queue entries rebuilt by recovery, whose tags code is the TAGS hash, are handled alike);
//! advances the persisted offset only after the re-put reached send durability. A failed
//! re-put is retried after a pause, never skipped; a malformed record is skipped with an error.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rmq_core::message::properties::{self, keys};
use rmq_core::message::{RecordView, parse_record};
use rmq_storage::{GetStatus, ShardStore};

use super::progress::QueueFamily;
use super::reput::{Target, reput};
use super::{TIMER_TOPIC, timer};
use crate::context::now_ms;
use crate::core_context::CoreContext;
use crate::topics::SCHEDULE_TOPIC;

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
/// Slaves deliver nothing (the master's deliveries replicate to them).
pub fn spawn_scanners(core: &Rc<CoreContext>) {
    let broker = &core.broker;
    if broker.is_slave() {
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
        compio::runtime::spawn(run(scan)).detach();
    }
}

async fn run(scan: Scan) {
    let broker = scan.core.broker.clone();
    let mut next = broker.schedule.get(scan.family, scan.queue_id);
    while !broker.stopping.load(Ordering::Acquire) {
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
            compio::time::sleep(RETRY_PAUSE).await;
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
        if let Err(error) = deliver(scan, &view).await {
            tracing::warn!(
                topic = scan.topic,
                queue = scan.queue_id,
                "delayed re-put failed, retrying: {error}"
            );
            compio::time::sleep(RETRY_PAUSE).await;
            return next;
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
        compio::time::sleep(Duration::from_millis(slice)).await;
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

/// Re-puts a due record: to its real queue, or (timers) to the next bucket.
async fn deliver(scan: &Scan, view: &RecordView<'_>) -> Result<(), super::reput::ReputError> {
    let props = view.properties();
    let real_topic = properties::get_property(props, keys::REAL_TOPIC);
    let real_queue = properties::get_property(props, keys::REAL_QID).and_then(|q| q.parse().ok());
    let (Some(real_topic), Some(real_queue)) = (real_topic, real_queue) else {
        tracing::error!(
            topic = scan.topic,
            offset = view.queue_offset(),
            "delayed record without REAL_TOPIC/REAL_QID dropped"
        );
        return Ok(());
    };
    let target = match scan.family {
        QueueFamily::Level => {
            let props = properties::remove_property(props, keys::DELAY);
            Target::like(view, real_topic, real_queue, props)
        }
        QueueFamily::Timer => {
            let deliver = timer_deliver_ms(view);
            let now = now_ms();
            if deliver > now {
                let bucket = timer::bucket_for(deliver - now);
                let mut target = Target::like(view, TIMER_TOPIC, bucket, props.to_string());
                target.tags_code = Some(timer::leave_ms(bucket, now, deliver));
                target
            } else {
                Target::like(view, real_topic, real_queue, props.to_string())
            }
        }
    };
    reput(&scan.core, view, &target).await.map(|_| ())
}

/// Persists scanner offsets every `flushDelayOffsetInterval` (core 0; also done at shutdown).
pub async fn persist_loop(ctx: crate::context::SharedContext) {
    let every = ctx.config.flush_delay_offset_interval.clamp(100, 600_000);
    let mut last = now_ms();
    while !ctx.stopping.load(Ordering::Acquire) {
        compio::time::sleep(Duration::from_millis(100)).await;
        if now_ms() - last >= every {
            last = now_ms();
            ctx.schedule.persist();
        }
    }
}
