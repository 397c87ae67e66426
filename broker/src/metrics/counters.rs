//! Per-core counters and the one-line hooks the request paths call.
//!
//! Each core thread owns a [`CoreCounters`] in a thread-local, installed at start only when
//! the metrics endpoint is on (`metricsExporterType=2`): a hook is then a thread-local
//! borrow, a map lookup and plain integer adds, with no atomic and no lock; with the
//! endpoint off it is one thread-local check. A scrape asks every core for a copy of its
//! counters (`collect`) and sums them, so nothing on the hot path is shared between cores.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use rmq_core::message::properties;
use rmq_core::remoting::field_hash::FieldHasherBuilder;

use super::histogram::{Histogram, LATENCY_MS_BUCKETS, MESSAGE_SIZE_BUCKETS, RPC_LATENCY_BUCKETS};

/// The counters' maps: keys are topic and group names (bounded by the broker's tables), so
/// the per-process seeded hash of header fields does; SipHash was a fifth of the hooks' cost.
pub type HashMap<K, V> = std::collections::HashMap<K, V, FieldHasherBuilder>;

/// RocketMQ 5's `message_type` label of incoming messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    Normal,
    Fifo,
    Delay,
    Transaction,
}

impl MessageType {
    pub fn label(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Fifo => "fifo",
            MessageType::Delay => "delay",
            MessageType::Transaction => "transaction",
        }
    }

    /// Classifies a send by its properties, in RocketMQ 5's order: transaction, sharding key
    /// (FIFO), then any delay (level > 0) or timer property. One pass over the properties
    /// (a lookup per key was ~60% of the hooks' instructions).
    pub fn of_properties(props: &str) -> Self {
        const PAIRS: u8 = properties::PROPERTY_SEPARATOR as u8;
        const NAME_END: u8 = properties::NAME_VALUE_SEPARATOR as u8;
        let (mut transaction, mut fifo, mut delay) = (false, false, false);
        for segment in props.as_bytes().split(|&b| b == PAIRS) {
            // every name that matters starts with T, _ or D: skip the rest unread
            if !matches!(segment.first(), Some(b'T' | b'_' | b'D')) {
                continue;
            }
            let Some(at) = segment.iter().position(|&b| b == NAME_END) else {
                continue;
            };
            let (name, value) = (&segment[..at], &segment[at + 1..]);
            match name {
                b"TRAN_MSG" => transaction |= value == b"true",
                b"__SHARDINGKEY" => fifo = true,
                b"DELAY" => {
                    let level = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<i32>().ok());
                    delay |= level.is_some_and(|level| level > 0);
                }
                b"TIMER_DELIVER_MS"
                | b"TIMER_DELAY_MS"
                | b"TIMER_DELAY_SEC"
                | b"__STARTDELIVERTIME" => delay = true,
                _ => {}
            }
        }
        if transaction {
            MessageType::Transaction
        } else if fifo {
            MessageType::Fifo
        } else if delay {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }
}

/// Messages stored for one (topic, message type).
#[derive(Debug, Clone)]
pub struct InStats {
    pub messages: u64,
    pub bytes: u64,
    /// Record size (bytes per message of each send).
    pub sizes: Histogram,
}

impl Default for InStats {
    fn default() -> Self {
        Self {
            messages: 0,
            bytes: 0,
            sizes: Histogram::new(MESSAGE_SIZE_BUCKETS),
        }
    }
}

/// Messages pulled by one (group, topic).
#[derive(Debug, Clone, Default)]
pub struct OutStats {
    pub messages: u64,
    pub bytes: u64,
    /// Per queue: the offset after the last message a pull of this group returned (what the
    /// group has fetched; minus its committed offset, the messages in flight).
    pub pulled_to: HashMap<i32, i64>,
}

/// Latency of one (request code, response code).
#[derive(Debug, Clone)]
pub struct RpcStats {
    pub latency_ms: Histogram,
}

/// Everything one core counts.
#[derive(Debug, Clone)]
pub struct CoreCounters {
    /// topic → message type → stats.
    pub messages_in: HashMap<String, HashMap<MessageType, InStats>>,
    /// group → topic → stats.
    pub messages_out: HashMap<String, HashMap<String, OutStats>>,
    /// group → original topic → messages sent to the group's dead-letter queue.
    pub dlq: HashMap<String, HashMap<String, u64>>,
    /// (request code, response code) → latency.
    pub rpc: HashMap<(i32, i32), RpcStats>,
    /// Send requests (10, 310, 320, 324, 325), request to response, milliseconds.
    pub send_latency_ms: Histogram,
    /// Pull requests (11), including long-polling waits, milliseconds.
    pub pull_latency_ms: Histogram,
    /// Remoting connections this core serves now.
    pub connections: i64,
}

impl Default for CoreCounters {
    fn default() -> Self {
        Self {
            messages_in: HashMap::default(),
            messages_out: HashMap::default(),
            dlq: HashMap::default(),
            rpc: HashMap::default(),
            send_latency_ms: Histogram::new(LATENCY_MS_BUCKETS),
            pull_latency_ms: Histogram::new(LATENCY_MS_BUCKETS),
            connections: 0,
        }
    }
}

thread_local! {
    static COUNTERS: RefCell<Option<CoreCounters>> = const { RefCell::new(None) };
    static ENABLED: Cell<bool> = const { Cell::new(false) };
}

/// Starts counting on this thread (a core of a broker with the endpoint on).
pub fn install() {
    COUNTERS.with(|c| *c.borrow_mut() = Some(CoreCounters::default()));
    ENABLED.with(|e| e.set(true));
}

/// Stops counting on this thread and drops its counters.
pub fn uninstall() {
    ENABLED.with(|e| e.set(false));
    COUNTERS.with(|c| c.borrow_mut().take());
}

/// A copy of this thread's counters (`None` when not installed).
pub fn snapshot() -> Option<CoreCounters> {
    COUNTERS.with(|c| c.borrow().clone())
}

fn with_counters(update: impl FnOnce(&mut CoreCounters)) {
    if !ENABLED.with(Cell::get) {
        return;
    }
    COUNTERS.with(|c| {
        if let Some(counters) = c.borrow_mut().as_mut() {
            update(counters);
        }
    });
}

/// Whether hooks count on this thread (callers skip work that only feeds metrics).
pub fn enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// A send stored `count` messages of `wrote_bytes` bytes in all into `topic`.
pub fn on_send(topic: &str, props: &str, count: usize, wrote_bytes: usize) {
    if !enabled() || count == 0 {
        return;
    }
    on_send_typed(topic, MessageType::of_properties(props), count, wrote_bytes);
}

/// [`on_send`] with the message type already known (read from the properties before the
/// send left its connection's core).
pub fn on_send_typed(topic: &str, kind: MessageType, count: usize, wrote_bytes: usize) {
    if !enabled() || count == 0 {
        return;
    }
    with_counters(|c| {
        let stats = match c.messages_in.get_mut(topic) {
            Some(by_type) => by_type.entry(kind).or_default(),
            None => c
                .messages_in
                .entry(topic.to_string())
                .or_default()
                .entry(kind)
                .or_default(),
        };
        stats.messages += count as u64;
        stats.bytes += wrote_bytes as u64;
        stats.sizes.record((wrote_bytes / count) as f64);
    });
}

/// A pull of `group` on `topic`/`queue_id` read `got` (`None`: the store failed).
pub fn on_pull(group: &str, topic: &str, queue_id: i32, got: Option<&rmq_storage::GetMessages>) {
    // Checked here too, not only in `with_counters`: the seeded hasher made the closure
    // bigger and no longer inlined, and the off path paid the call.
    if !enabled() {
        return;
    }
    if let Some(got) = got {
        count_pull(
            group,
            topic,
            queue_id,
            got.count,
            got.body.len(),
            got.next_begin_offset,
        );
    }
}

/// `count` messages (`bytes` bytes) pulled, the next offset to pull being `next_offset`.
fn count_pull(
    group: &str,
    topic: &str,
    queue_id: i32,
    count: usize,
    bytes: usize,
    next_offset: i64,
) {
    with_counters(|c| {
        let by_topic = match c.messages_out.get_mut(group) {
            Some(by_topic) => by_topic,
            None => c.messages_out.entry(group.to_string()).or_default(),
        };
        let stats = match by_topic.get_mut(topic) {
            Some(stats) => stats,
            None => by_topic.entry(topic.to_string()).or_default(),
        };
        stats.messages += count as u64;
        stats.bytes += bytes as u64;
        let pulled = stats.pulled_to.entry(queue_id).or_insert(next_offset);
        *pulled = (*pulled).max(next_offset);
    });
}

/// A message of `topic` that `group` failed too often went to `%DLQ%group`.
pub fn on_dlq(group: &str, topic: &str) {
    with_counters(|c| {
        *c.dlq
            .entry(group.to_string())
            .or_default()
            .entry(topic.to_string())
            .or_default() += 1;
    });
}

/// The time a request started, for [`on_rpc`]; `None` when metrics are off (no clock read).
pub fn rpc_started() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// A request with `request_code` was answered with `response_code` (None: no response, a
/// oneway request), `started` being what [`rpc_started`] returned.
pub fn on_rpc(started: Option<Instant>, request_code: i32, response_code: Option<i32>) {
    let Some(started) = started else {
        return;
    };
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    with_counters(|c| {
        let key = (request_code, response_code.unwrap_or(-1));
        c.rpc
            .entry(key)
            .or_insert_with(|| RpcStats {
                latency_ms: Histogram::new(RPC_LATENCY_BUCKETS),
            })
            .latency_ms
            .record(millis);
        use rmq_core::remoting::request_code as rc;
        match request_code {
            rc::SEND_MESSAGE
            | rc::SEND_MESSAGE_V2
            | rc::SEND_BATCH_MESSAGE
            | rc::SEND_REPLY_MESSAGE
            | rc::SEND_REPLY_MESSAGE_V2 => c.send_latency_ms.record(millis),
            rc::PULL_MESSAGE => c.pull_latency_ms.record(millis),
            _ => {}
        }
    });
}

/// Counts a remoting connection of this core while `serving` runs.
pub async fn counted_connection<F: std::future::Future<Output = ()>>(serving: F) {
    struct Open;
    impl Drop for Open {
        fn drop(&mut self) {
            with_counters(|c| c.connections -= 1);
        }
    }
    with_counters(|c| c.connections += 1);
    let _open = Open;
    serving.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_core::message::properties::keys;

    #[test]
    fn hooks_count_only_once_installed() {
        on_send("T", "", 3, 300);
        assert!(snapshot().is_none());
        install();
        on_send("T", "", 3, 300);
        on_send("T", "TRAN_MSG\u{1}true\u{2}", 1, 50);
        on_send("T", "KEYS\u{1}k\u{2}DELAY\u{1}3\u{2}", 1, 50);
        on_send("T", "DELAY\u{1}0\u{2}__SHARDINGKEY\u{1}s", 1, 50);
        on_send("T", "TIMER_DELAY_SEC\u{1}5", 1, 50);
        assert_eq!(
            [
                keys::TRAN_MSG,
                keys::DELAY,
                keys::TIMER_DELIVER_MS,
                keys::TIMER_DELAY_MS,
                keys::TIMER_DELAY_SEC
            ],
            [
                "TRAN_MSG",
                "DELAY",
                "TIMER_DELIVER_MS",
                "TIMER_DELAY_MS",
                "TIMER_DELAY_SEC"
            ],
            "the classifier matches these names as bytes"
        );
        count_pull("G", "T", 1, 2, 200, 7);
        count_pull("G", "T", 1, 0, 0, 5);
        on_dlq("G", "T");
        on_dlq("G", "T");
        let started = rpc_started();
        on_rpc(
            started,
            rmq_core::remoting::request_code::SEND_MESSAGE,
            Some(0),
        );
        let c = snapshot().expect("installed");
        let normal = &c.messages_in["T"][&MessageType::Normal];
        assert_eq!((normal.messages, normal.bytes), (3, 300));
        assert_eq!(normal.sizes.count(), 1);
        assert_eq!(c.messages_in["T"][&MessageType::Transaction].messages, 1);
        assert_eq!(c.messages_in["T"][&MessageType::Delay].messages, 2);
        assert_eq!(c.messages_in["T"][&MessageType::Fifo].messages, 1);
        let out = &c.messages_out["G"]["T"];
        assert_eq!((out.messages, out.bytes), (2, 200));
        assert_eq!(out.pulled_to[&1], 7, "pulled offset never goes back");
        assert_eq!(c.dlq["G"]["T"], 2);
        assert_eq!(c.send_latency_ms.count(), 1);
        assert_eq!(c.rpc[&(10, 0)].latency_ms.count(), 1);
        uninstall();
        on_send("T", "", 1, 1);
        assert!(snapshot().is_none());
    }
}
