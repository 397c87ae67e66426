//! Delayed delivery: RocketMQ delay levels (`DELAY` property) and 5.x-style timers
//! (`TIMER_DELIVER_MS` / `TIMER_DELAY_MS` / `TIMER_DELAY_SEC`), both built on one primitive,
//! the **fixed-delay queue**.
//!
//! # Delay levels (RocketMQ 4.x, on-disk compatible)
//! A send with `DELAY=n` (n > 0, clamped to the highest level) is stored in
//! `SCHEDULE_TOPIC_XXXX` queue n-1 with `REAL_TOPIC`/`REAL_QID`; its consume-queue tags code is
//! the delivery time. Every record of queue n-1 waits the same delay, so the queue is ordered by
//! delivery time and its scanner only ever looks at the head: when the head is due it is re-put
//! to its real queue (without `DELAY`) and the scanner's offset advances. Offsets are persisted
//! to `config/delayOffset.json` (level → offset, RocketMQ's format; GET_ALL_DELAY_OFFSET).
//!
//! # Timers (beyond 4.x): a cascade of power-of-two buckets
//! Arbitrary delivery times up to [`timer::MAX_DELAY_MS`] (7 days) at 1 s precision reuse the
//! same primitive. Topic [`TIMER_TOPIC`] has queues 0..=20: queue b ≥ 1 holds a record for
//! 2^(b-1) s, queue 0 holds records due in less than 1 s until their exact time. A timer message
//! due in r ms goes to the largest bucket whose span is ≤ r; when it leaves, the remaining time
//! is at most half of what it was, so it is re-put to a smaller bucket, until it is due and goes
//! to its real queue. Each bucket is a FIFO of equal delays, so again only heads are examined; no
//! in-memory index, nothing to rebuild after a crash, and bucket offsets are persisted like delay
//! offsets (`config/timerOffset.json`). Cost: a message due in r seconds is rewritten at most
//! popcount(r) ≤ 20 times (write amplification traded for O(1) state and restart safety). Queue 0
//! is ordered only to within 1 s, so a timer message is never early and at most ~1 s late.
//!
//! # Threads
//! Each scanned queue belongs to one shard; its scanner runs on the core owning that shard and
//! re-puts through `CoreContext::on_shard` of the destination queue's shard, advancing only after
//! the re-put reached the broker's ack durability. A crash between re-put and the next offset
//! persist delivers those messages again (at-least-once, as RocketMQ).

pub mod progress;
pub mod reput;
pub mod scanner;
pub mod timer;

use rmq_core::message::properties::{self, keys};

pub use progress::ScheduleProgress;

use crate::topics::SCHEDULE_TOPIC;

/// The system topic holding timer messages in transit (one queue per bucket).
pub const TIMER_TOPIC: &str = "rmq_sys_timer_buckets";

/// Creates the configs of the delay and timer topics the scheduler stores into at start, so
/// tools list them and topic housekeeping knows them (their queues exist in the store
/// regardless). The transaction topics are created on first use, as RocketMQ does
/// (`transaction::ensure_topic`).
pub fn ensure_system_topics(ctx: &crate::context::BrokerContext) {
    use rmq_core::body::{PERM_READ, PERM_WRITE};
    let levels = i32::try_from(ctx.schedule.delay_levels_ms.len()).unwrap_or(1);
    let topics = [
        (SCHEDULE_TOPIC, levels.max(1)),
        (TIMER_TOPIC, timer::BUCKET_COUNT),
    ];
    for (topic, queues) in topics {
        ctx.topics
            .create_if_absent(topic, queues, PERM_READ | PERM_WRITE);
    }
}

/// Whether the name servers hear of `topic`: not the timer topic, which only this broker
/// writes and reads and which RocketMQ does not have (so `topicList` shows what Apache's
/// shows). Clients never need its route: sends to it are refused.
pub fn is_registered(topic: &str) -> bool {
    topic != TIMER_TOPIC
}

/// Where a send is stored instead of its real queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub topic: String,
    pub queue_id: i32,
    pub properties: String,
    /// Consume-queue tags code (the time the record leaves its fixed-delay queue).
    pub tags_code: i64,
}

/// The delay a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    None,
    /// A delay level, already clamped to `1..=levels`.
    Level(i32),
    /// Absolute delivery time (ms since the epoch), in the future.
    Timer(i64),
}

/// Reads the delay properties. Timer properties win when they name a future time; a timer
/// time in the past means "now" (a level still applies then).
///
/// # Errors
/// A remark for MESSAGE_ILLEGAL: unparsable timer value or a delivery time beyond the maximum.
pub fn requested_delay(props: &str, levels: usize, now_ms: i64) -> Result<Delay, String> {
    if let Some(deliver_ms) = timer::deliver_ms(props, now_ms)? {
        if deliver_ms - now_ms > timer::MAX_DELAY_MS {
            return Err(format!(
                "timer message delivery time {deliver_ms} is more than {} s ahead",
                timer::MAX_DELAY_MS / 1000
            ));
        }
        if deliver_ms > now_ms {
            return Ok(Delay::Timer(deliver_ms));
        }
    }
    let level = properties::get_property(props, keys::DELAY)
        .and_then(|d| d.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if level <= 0 || levels == 0 {
        return Ok(Delay::None);
    }
    let max = i32::try_from(levels).unwrap_or(i32::MAX);
    Ok(Delay::Level(level.min(max)))
}

/// Whether a message carries any delay property (batches refuse those).
pub fn has_delay_property(props: &str) -> bool {
    let level = properties::get_property(props, keys::DELAY).and_then(|d| d.parse::<i32>().ok());
    level.is_some_and(|l| l > 0)
        || [
            keys::TIMER_DELIVER_MS,
            keys::TIMER_DELAY_MS,
            keys::TIMER_DELAY_SEC,
        ]
        .iter()
        .any(|k| properties::get_property(props, k).is_some())
}

/// The placement of a message for `real_topic`/`real_queue` with `delay`; `None` for no delay.
pub fn place(
    real_topic: &str,
    real_queue: i32,
    props: &str,
    delay: Delay,
    levels_ms: &[u64],
    now_ms: i64,
) -> Option<Placement> {
    let with_real = |props: &str| {
        let props = properties::set_property(props, keys::REAL_TOPIC, real_topic);
        properties::set_property(&props, keys::REAL_QID, &real_queue.to_string())
    };
    match delay {
        Delay::None => None,
        Delay::Level(level) => {
            assert!(level >= 1 && level as usize <= levels_ms.len());
            let props = properties::set_property(props, keys::DELAY, &level.to_string());
            let delay_ms = i64::try_from(levels_ms[level as usize - 1]).unwrap_or(i64::MAX);
            Some(Placement {
                topic: SCHEDULE_TOPIC.to_string(),
                queue_id: level - 1,
                properties: with_real(&props),
                tags_code: now_ms.saturating_add(delay_ms),
            })
        }
        Delay::Timer(deliver_ms) => {
            let props = timer::normalized_properties(props, deliver_ms);
            let bucket = timer::bucket_for(deliver_ms - now_ms);
            Some(Placement {
                topic: TIMER_TOPIC.to_string(),
                queue_id: bucket,
                properties: with_real(&props),
                tags_code: timer::leave_ms(bucket, now_ms, deliver_ms),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> String {
        properties::encode_properties(pairs.iter().copied())
    }

    #[test]
    fn delay_level_is_clamped_and_rewritten() {
        let levels = [1000, 5000, 10_000];
        let p = props(&[("DELAY", "7"), ("TAGS", "a")]);
        let delay = requested_delay(&p, levels.len(), 100).unwrap();
        assert_eq!(delay, Delay::Level(3));
        let placed = place("T", 2, &p, delay, &levels, 100).unwrap();
        assert_eq!(placed.topic, SCHEDULE_TOPIC);
        assert_eq!(placed.queue_id, 2);
        assert_eq!(placed.tags_code, 10_100);
        let get = |k| properties::get_property(&placed.properties, k).map(str::to_string);
        assert_eq!(get("REAL_TOPIC").as_deref(), Some("T"));
        assert_eq!(get("REAL_QID").as_deref(), Some("2"));
        assert_eq!(get("DELAY").as_deref(), Some("3"));
    }

    #[test]
    fn timer_wins_over_level_only_in_the_future() {
        let p = props(&[("DELAY", "1"), ("TIMER_DELIVER_MS", "5000")]);
        assert_eq!(requested_delay(&p, 3, 1000).unwrap(), Delay::Timer(5000));
        assert_eq!(requested_delay(&p, 3, 9000).unwrap(), Delay::Level(1));
        let far = props(&[("TIMER_DELAY_SEC", "900000")]);
        assert!(requested_delay(&far, 3, 0).is_err());
        assert_eq!(
            requested_delay(&props(&[("TAGS", "x")]), 3, 0).unwrap(),
            Delay::None
        );
        assert!(has_delay_property(&p));
        assert!(!has_delay_property(&props(&[("DELAY", "0")])));
    }
}
