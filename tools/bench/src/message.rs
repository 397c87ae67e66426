//! The messages the producer sends: send headers, properties, unique keys and bodies.
//!
//! Wire format (docs/protocol.md §2.1, §3.3, §3.4): SEND_MESSAGE_V2 (310) carries the one-letter
//! header `a` producerGroup, `b` topic, `c` defaultTopic, `d` defaultTopicQueueNums, `e` queueId,
//! `f` sysFlag, `g` bornTimestamp, `h` flag, `i` properties, `j` reconsumeTimes,
//! `k` unitMode, `m` batch, `n` brokerName; the body is the payload. SEND_BATCH_MESSAGE
//! (320) has the same header with `m=true` and a body of §3.4 entries, each with its own
//! properties. Every message gets a UNIQ_KEY (§3.2) and `WAIT=true`, as the Java client
//! does; `l` (maxReconsumeTimes) is null for plain sends and so is omitted, as Java omits
//! null fields.
//!
//! Bodies start with a 16-byte stamp (`STAMP_MAGIC`, then the send time in microseconds
//! since the epoch) when they are at least 16 bytes long. The consumer reads it back to
//! measure end-to-end latency with microsecond resolution; record timestamps only have
//! milliseconds.
//!
//! Allocations: one body buffer, one properties string and one header map per message.

use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};
use rmq_core::message::batch::{BatchEntry, encode_batch};
use rmq_core::message::properties::{encode_properties, keys};
use rmq_core::remoting::{RemotingCommand, SerializeType, request_code};

use crate::clock;

/// Template topic a broker creates unknown topics from
/// (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
/// Queues an auto-created topic gets (`DefaultMQProducer.defaultTopicQueueNums`).
pub const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;
/// First 8 bytes of a stamped body.
pub const STAMP_MAGIC: &[u8; 8] = b"rmqbench";
/// Bytes of the stamp: magic plus an int64 of microseconds.
pub const STAMP_LEN: usize = 16;
/// Tag put on messages with `--tags on`.
pub const BENCH_TAG: &str = "bench";

/// Generates UNIQ_KEY values: 16 bytes, written as 32 uppercase hex characters.
///
/// Layout (Java `MessageClientIDSetter`): IPv4 (4) | pid (2) | instance (4) |
/// ms since the start of the month (4) | counter (2). Java's instance field is a class
/// loader hash; ours is chosen per worker so that workers in one process never collide.
/// Keys repeat only if one generator makes more than 65536 in one millisecond.
#[derive(Debug, Clone)]
pub struct UniqKeyGenerator {
    prefix: [u8; 10],
    counter: u16,
}

impl UniqKeyGenerator {
    pub fn new(ip: Ipv4Addr, pid: u32, instance: u32) -> Self {
        let mut prefix = [0u8; 10];
        prefix[..4].copy_from_slice(&ip.octets());
        prefix[4..6].copy_from_slice(&(pid as u16).to_be_bytes());
        prefix[6..].copy_from_slice(&instance.to_be_bytes());
        Self { prefix, counter: 0 }
    }

    /// The next key, for a message created at `now_ms`.
    pub fn next_at(&mut self, now_ms: i64) -> String {
        let since_month = (now_ms - clock::month_start_ms(now_ms)) as u32;
        let counter = self.counter;
        self.counter = self.counter.wrapping_add(1);
        let mut raw = [0u8; 16];
        raw[..10].copy_from_slice(&self.prefix);
        raw[10..14].copy_from_slice(&since_month.to_be_bytes());
        raw[14..].copy_from_slice(&counter.to_be_bytes());
        hex_upper(&raw)
    }
}

/// Uppercase hex of `bytes`, as Java's `UtilAll.bytes2string`.
pub fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xF)] as char);
    }
    out
}

/// The properties string of one message.
pub fn message_properties(
    uniq_key: &str,
    tags: Option<&str>,
    message_keys: Option<&str>,
) -> String {
    let mut pairs = Vec::with_capacity(4);
    if let Some(message_keys) = message_keys {
        pairs.push((keys::KEYS, message_keys));
    }
    if let Some(tags) = tags {
        pairs.push((keys::TAGS, tags));
    }
    pairs.push((keys::WAIT, "true"));
    pairs.push((keys::UNIQ_KEY, uniq_key));
    encode_properties(pairs)
}

/// A body of `size` bytes, stamped with `now_us` when it is large enough.
pub fn stamped_body(size: usize, now_us: i64) -> BytesMut {
    let mut body = BytesMut::with_capacity(size);
    if size >= STAMP_LEN {
        body.put_slice(STAMP_MAGIC);
        body.put_i64(now_us);
    }
    while body.len() < size {
        body.put_u8(b'a' + (body.len() % 26) as u8);
    }
    body
}

/// The send time stamped into a body by [`stamped_body`], if it has one.
pub fn body_stamp_us(body: &[u8]) -> Option<i64> {
    if body.len() < STAMP_LEN || &body[..8] != STAMP_MAGIC {
        return None;
    }
    let mut micros = [0u8; 8];
    micros.copy_from_slice(&body[8..16]);
    Some(i64::from_be_bytes(micros))
}

/// The fields of a SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE header that vary per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendHeader<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    /// The template topic. Java always sends `TBW102`; the broker uses it only when the
    /// topic does not exist yet (auto-creation).
    pub default_topic: &'a str,
    pub broker_name: &'a str,
    pub queue_id: i32,
    pub born_ms: i64,
    pub properties: &'a str,
}

/// A SEND_MESSAGE_V2 (`batch` false) or SEND_BATCH_MESSAGE (`batch` true) request.
pub fn send_request(
    header: &SendHeader<'_>,
    batch: bool,
    serialize: SerializeType,
    body: Bytes,
) -> RemotingCommand {
    let code = if batch {
        request_code::SEND_BATCH_MESSAGE
    } else {
        request_code::SEND_MESSAGE_V2
    };
    let mut request = RemotingCommand::new_request(code)
        .with_ext("a", header.group)
        .with_ext("b", header.topic)
        .with_ext("c", header.default_topic)
        .with_ext("d", DEFAULT_TOPIC_QUEUE_NUMS)
        .with_ext("e", header.queue_id)
        .with_ext("f", 0)
        .with_ext("g", header.born_ms)
        .with_ext("h", 0)
        .with_ext("i", header.properties)
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_ext("m", batch)
        .with_ext("n", header.broker_name)
        .with_body(body);
    request.serialize_type = serialize;
    request
}

/// Builds the messages of one worker: keeps its unique key generator and sequence.
#[derive(Debug)]
pub struct MessageFactory {
    pub group: String,
    pub topic: String,
    pub size: usize,
    pub tags: bool,
    pub keys: bool,
    pub serialize: SerializeType,
    pub worker: usize,
    pub uniq: UniqKeyGenerator,
    pub sequence: u64,
}

/// Where one request goes.
#[derive(Debug, Clone, Copy)]
pub struct SendTarget<'a> {
    pub broker_name: &'a str,
    pub queue_id: i32,
}

impl MessageFactory {
    /// One SEND_MESSAGE_V2 request.
    pub fn single(&mut self, target: SendTarget<'_>) -> RemotingCommand {
        let now_us = clock::now_us();
        let properties = self.next_properties(now_us / 1000);
        let body = stamped_body(self.size, now_us).freeze();
        let header = self.header(target, now_us / 1000, &properties);
        send_request(&header, false, self.serialize, body)
    }

    /// One SEND_BATCH_MESSAGE request of `count` messages.
    pub fn batch(&mut self, target: SendTarget<'_>, count: usize) -> RemotingCommand {
        assert!(count > 0, "a batch holds at least one message");
        let now_us = clock::now_us();
        let body = stamped_body(self.size, now_us);
        let properties: Vec<String> = (0..count)
            .map(|_| self.next_properties(now_us / 1000))
            .collect();
        let entries: Vec<BatchEntry<'_>> = properties
            .iter()
            .map(|props| BatchEntry {
                flag: 0,
                body: &body,
                properties: props,
            })
            .collect();
        let mut encoded = BytesMut::with_capacity(count * (body.len() + 80));
        encode_batch(&entries, &mut encoded);
        let batch_properties = encode_properties([(keys::WAIT, "true")]);
        let header = self.header(target, now_us / 1000, &batch_properties);
        send_request(&header, true, self.serialize, encoded.freeze())
    }

    fn header<'a>(
        &'a self,
        target: SendTarget<'a>,
        born_ms: i64,
        properties: &'a str,
    ) -> SendHeader<'a> {
        SendHeader {
            group: &self.group,
            topic: &self.topic,
            default_topic: AUTO_CREATE_TOPIC,
            broker_name: target.broker_name,
            queue_id: target.queue_id,
            born_ms,
            properties,
        }
    }

    fn next_properties(&mut self, now_ms: i64) -> String {
        let uniq_key = self.uniq.next_at(now_ms);
        self.sequence += 1;
        let message_keys = self
            .keys
            .then(|| format!("bench-{}-{}", self.worker, self.sequence));
        let tags = self.tags.then_some(BENCH_TAG);
        message_properties(&uniq_key, tags, message_keys.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rmq_core::message::batch::decode_batch;
    use rmq_core::message::properties::get_property;

    use super::*;

    fn factory() -> MessageFactory {
        MessageFactory {
            group: "pg".into(),
            topic: "T".into(),
            size: 64,
            tags: true,
            keys: true,
            serialize: SerializeType::RocketMq,
            worker: 3,
            uniq: UniqKeyGenerator::new(Ipv4Addr::new(10, 0, 0, 1), 0x1234, 7),
            sequence: 0,
        }
    }

    #[test]
    fn uniq_keys_are_unique_and_shaped_like_java() {
        let mut generator =
            UniqKeyGenerator::new(Ipv4Addr::new(192, 168, 1, 2), 0xAB_CDEF, 0xDEAD_BEEF);
        let now_ms = clock::days_from_civil(2024, 5, 1) * 86_400_000 + 1_000;
        let first = generator.next_at(now_ms);
        assert_eq!(first.len(), 32);
        // ip C0A80102 | pid low 16 bits CDEF | instance DEADBEEF |
        // ms in month 000003E8 | counter 0000
        assert_eq!(first, "C0A80102CDEFDEADBEEF000003E80000");
        let mut seen = HashSet::from([first.clone()]);
        for _ in 1..=u16::MAX {
            assert!(
                seen.insert(generator.next_at(now_ms)),
                "duplicate key within one ms"
            );
        }
        // The 16-bit counter wraps after 65536 keys: unique as long as one generator makes
        // fewer than that per millisecond (a worker makes a few hundred at most), as in Java.
        assert_eq!(generator.next_at(now_ms), first);
        assert!(seen.insert(generator.next_at(now_ms + 1)));
        let mut other =
            UniqKeyGenerator::new(Ipv4Addr::new(192, 168, 1, 2), 0xAB_CDEF, 0xDEAD_BEF0);
        assert!(!seen.contains(&other.next_at(now_ms)));
    }

    #[test]
    fn body_stamp_round_trips() {
        let body = stamped_body(128, 1_700_000_000_123_456);
        assert_eq!(body.len(), 128);
        assert_eq!(body_stamp_us(&body), Some(1_700_000_000_123_456));
        assert_eq!(stamped_body(8, 5).len(), 8);
        assert_eq!(body_stamp_us(&stamped_body(8, 5)), None);
        assert_eq!(body_stamp_us(&[0u8; 32]), None);
    }

    #[test]
    fn v2_header_has_one_letter_keys() {
        let request = factory().single(SendTarget {
            broker_name: "broker-a",
            queue_id: 2,
        });
        assert_eq!(request.code, 310);
        assert_eq!(request.serialize_type, SerializeType::RocketMq);
        let expect = [
            ("a", "pg"),
            ("b", "T"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "2"),
            ("f", "0"),
        ];
        for (key, value) in
            expect
                .into_iter()
                .chain([("h", "0"), ("j", "0"), ("k", "false"), ("m", "false")])
        {
            assert_eq!(request.ext(key), Some(value), "header field {key}");
        }
        assert_eq!(request.ext("n"), Some("broker-a"));
        assert!(
            request.ext("l").is_none(),
            "null fields are omitted as in Java"
        );
        assert!(request.ext_i64("g").unwrap() > 0);
        let props = request.ext("i").unwrap();
        assert_eq!(get_property(props, keys::UNIQ_KEY).map(str::len), Some(32));
        assert_eq!(get_property(props, keys::WAIT), Some("true"));
        assert_eq!(get_property(props, keys::TAGS), Some(BENCH_TAG));
        assert_eq!(get_property(props, keys::KEYS), Some("bench-3-1"));
        assert_eq!(request.body.len(), 64);
        assert!(body_stamp_us(&request.body).is_some());
    }

    #[test]
    fn batch_request_holds_entries_with_own_keys() {
        let mut factory = factory();
        factory.tags = false;
        let request = factory.batch(
            SendTarget {
                broker_name: "b",
                queue_id: 0,
            },
            5,
        );
        assert_eq!(request.code, 320);
        assert_eq!(request.ext("m"), Some("true"));
        assert_eq!(
            get_property(request.ext("i").unwrap(), keys::UNIQ_KEY),
            None
        );
        let entries = decode_batch(&request.body).unwrap();
        assert_eq!(entries.len(), 5);
        let uniq: HashSet<_> = entries
            .iter()
            .map(|e| get_property(e.properties, keys::UNIQ_KEY).unwrap())
            .collect();
        assert_eq!(uniq.len(), 5);
        assert!(
            entries
                .iter()
                .all(|e| e.body.len() == 64 && get_property(e.properties, keys::TAGS).is_none())
        );
        assert_eq!(
            get_property(entries[4].properties, keys::KEYS),
            Some("bench-3-5")
        );
    }
}
