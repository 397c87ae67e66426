//! Per-core counters: each core thread owns one [`CoreStats`] in a thread-local and the
//! request paths add to it with one-line hooks. A read (`hub`) copies every core's and sums.

use std::cell::RefCell;

use rmq_core::remoting::field_hash::FieldHasherBuilder;

/// Keyed by topic and group names from the network, updated on every send and pull: the
/// seeded word-at-a-time hasher (`field_hash`), as the metrics counters use.
pub type HashMap<K, V> = std::collections::HashMap<K, V, FieldHasherBuilder>;

/// RocketMQ's `putMessageDistributeTime` buckets (ms upper bounds, the last open-ended):
/// `[<=0ms] [0~10ms] [10~50ms] [50~100ms] [100~200ms] [200~500ms] [500ms~1s] [1~2s] [2~3s]
/// [3~4s] [4~5s] [5~10s] [10s~]`.
pub const PUT_TIME_BOUNDS_MS: [i64; 12] = [
    0, 10, 50, 100, 200, 500, 1000, 2000, 3000, 4000, 5000, 10_000,
];

/// Names of [`PUT_TIME_BOUNDS_MS`]'s buckets as RocketMQ prints them.
pub const PUT_TIME_BUCKET_NAMES: [&str; 13] = [
    "[<=0ms]",
    "[0~10ms]",
    "[10~50ms]",
    "[50~100ms]",
    "[100~200ms]",
    "[200~500ms]",
    "[500ms~1s]",
    "[1~2s]",
    "[2~3s]",
    "[3~4s]",
    "[4~5s]",
    "[5~10s]",
    "[10s~]",
];

/// A stats item's running value: the summed quantity and how many events added to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Item {
    pub value: u64,
    pub times: u64,
}

impl Item {
    fn add(&mut self, value: u64) {
        self.value += value;
        self.times += 1;
    }

    fn merge(&mut self, other: &Item) {
        self.value += other.value;
        self.times += other.times;
    }
}

/// Messages stored into one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicPut {
    pub nums: Item,
    pub size: Item,
}

/// Messages one group pulled from one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupGet {
    pub nums: Item,
    pub size: Item,
}

/// Everything one core counts (and, summed, the broker).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoreStats {
    /// Messages stored by sends (a batch counts each message).
    pub put_messages: u64,
    pub put_bytes: u64,
    /// Send requests stored.
    pub put_times: u64,
    /// Send requests the store refused or failed.
    pub put_failures: u64,
    /// Longest send, request to durable, in ms.
    pub put_time_max_ms: i64,
    /// Sends per [`PUT_TIME_BOUNDS_MS`] bucket.
    pub put_time_buckets: [u64; 13],
    /// Pulls that found messages / found none.
    pub get_found: u64,
    pub get_miss: u64,
    /// Messages returned by pulls.
    pub get_transferred: u64,
    /// topic → stored messages.
    pub topics: HashMap<String, TopicPut>,
    /// group → topic → pulled messages.
    pub groups: HashMap<String, HashMap<String, GroupGet>>,
    /// group → original topic → messages sent back for a retry.
    pub send_backs: HashMap<String, HashMap<String, Item>>,
}

impl CoreStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &CoreStats) {
        self.put_messages += other.put_messages;
        self.put_bytes += other.put_bytes;
        self.put_times += other.put_times;
        self.put_failures += other.put_failures;
        self.put_time_max_ms = self.put_time_max_ms.max(other.put_time_max_ms);
        for (mine, theirs) in self.put_time_buckets.iter_mut().zip(other.put_time_buckets) {
            *mine += theirs;
        }
        self.get_found += other.get_found;
        self.get_miss += other.get_miss;
        self.get_transferred += other.get_transferred;
        for (topic, put) in &other.topics {
            let mine = self.topics.entry(topic.clone()).or_default();
            mine.nums.merge(&put.nums);
            mine.size.merge(&put.size);
        }
        for (group, topics) in &other.groups {
            let by_topic = self.groups.entry(group.clone()).or_default();
            for (topic, get) in topics {
                let mine = by_topic.entry(topic.clone()).or_default();
                mine.nums.merge(&get.nums);
                mine.size.merge(&get.size);
            }
        }
        for (group, topics) in &other.send_backs {
            let by_topic = self.send_backs.entry(group.clone()).or_default();
            for (topic, item) in topics {
                by_topic.entry(topic.clone()).or_default().merge(item);
            }
        }
    }
}

thread_local! {
    static STATS: RefCell<CoreStats> = RefCell::new(CoreStats::default());
}

/// A copy of this thread's counters.
pub fn snapshot() -> CoreStats {
    STATS.with(|s| s.borrow().clone())
}

/// Index of the [`PUT_TIME_BOUNDS_MS`] bucket of a send that took `millis`.
pub fn put_time_bucket(millis: i64) -> usize {
    PUT_TIME_BOUNDS_MS
        .iter()
        .position(|&bound| millis <= bound)
        .unwrap_or(PUT_TIME_BOUNDS_MS.len())
}

/// A send stored `count` messages (`bytes` bytes) into `topic`, taking `millis` ms.
pub fn on_put(topic: &str, count: usize, bytes: usize, millis: i64) {
    STATS.with(|s| {
        let mut s = s.borrow_mut();
        s.put_messages += count as u64;
        s.put_bytes += bytes as u64;
        s.put_times += 1;
        s.put_time_max_ms = s.put_time_max_ms.max(millis);
        s.put_time_buckets[put_time_bucket(millis)] += 1;
        let put = match s.topics.get_mut(topic) {
            Some(put) => put,
            None => s.topics.entry(topic.to_string()).or_default(),
        };
        put.nums.value += count as u64;
        put.nums.times += 1;
        put.size.add(bytes as u64);
    });
}

/// A send failed in the store.
pub fn on_put_failed() {
    STATS.with(|s| s.borrow_mut().put_failures += 1);
}

/// A pull of `group` on `topic` returned `count` messages (`bytes` bytes); 0 = a miss.
pub fn on_get(group: &str, topic: &str, count: usize, bytes: usize) {
    STATS.with(|s| {
        let mut s = s.borrow_mut();
        if count == 0 {
            s.get_miss += 1;
            return;
        }
        s.get_found += 1;
        s.get_transferred += count as u64;
        let by_topic = match s.groups.get_mut(group) {
            Some(by_topic) => by_topic,
            None => s.groups.entry(group.to_string()).or_default(),
        };
        let get = match by_topic.get_mut(topic) {
            Some(get) => get,
            None => by_topic.entry(topic.to_string()).or_default(),
        };
        get.nums.value += count as u64;
        get.nums.times += 1;
        get.size.add(bytes as u64);
    });
}

/// `group` sent a message of `topic` back for a retry.
pub fn on_send_back(group: &str, topic: &str) {
    STATS.with(|s| {
        s.borrow_mut()
            .send_backs
            .entry(group.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default()
            .add(1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_rocketmq_bounds() {
        assert_eq!(put_time_bucket(0), 0);
        assert_eq!(put_time_bucket(1), 1);
        assert_eq!(put_time_bucket(10), 1);
        assert_eq!(put_time_bucket(11), 2);
        assert_eq!(put_time_bucket(10_000), 11);
        assert_eq!(put_time_bucket(10_001), 12);
    }

    #[test]
    fn hooks_count_on_this_thread_and_merge() {
        std::thread::spawn(|| {
            on_put("T", 3, 300, 2);
            on_put("T", 1, 50, 0);
            on_put_failed();
            on_get("G", "T", 2, 200);
            on_get("G", "T", 0, 0);
            on_send_back("G", "T");
            let one = snapshot();
            assert_eq!(
                (one.put_messages, one.put_bytes, one.put_times),
                (4, 350, 2)
            );
            assert_eq!(one.put_failures, 1);
            assert_eq!(one.put_time_buckets[0], 1);
            assert_eq!(one.put_time_buckets[1], 1);
            assert_eq!(one.topics["T"].nums, Item { value: 4, times: 2 });
            assert_eq!(
                one.topics["T"].size,
                Item {
                    value: 350,
                    times: 2
                }
            );
            assert_eq!(
                (one.get_found, one.get_miss, one.get_transferred),
                (1, 1, 2)
            );
            assert_eq!(one.groups["G"]["T"].nums, Item { value: 2, times: 1 });
            assert_eq!(one.send_backs["G"]["T"], Item { value: 1, times: 1 });
            let mut sum = one.clone();
            sum.merge(&one);
            assert_eq!(sum.put_messages, 8);
            assert_eq!(sum.topics["T"].nums, Item { value: 8, times: 4 });
            assert_eq!(sum.groups["G"]["T"].size.value, 400);
            assert_eq!(sum.put_time_max_ms, 2);
        })
        .join()
        .unwrap();
        assert_eq!(
            snapshot(),
            CoreStats::default(),
            "another thread's counters"
        );
    }
}
