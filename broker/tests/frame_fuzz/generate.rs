//! Seeded generation and mutation of RocketMQ remoting frames for the frame fuzzer.
//!
//! A case is a request built field by field (code, flag, language, opaque, extFields from the
//! names the processors read plus random ones, values from a list of awkward shapes, a body
//! that is empty, random bytes, random JSON or large), encoded with the JSON or the binary
//! (ROCKETMQ) header, then, for about half of the cases, mutated on the wire: bytes of the
//! header overwritten, the header-meta word (serialization byte, header length) replaced, the
//! header swapped for random JSON, or the frame length prefix, truncation and trailing garbage
//! changed so that the stream loses its framing. The first `CODES` cases walk every request
//! code from 0 in turn, so every code the broker and the name server handle is sent.

use bytes::BytesMut;
use rmq_core::remoting::{RemotingCommand, SerializeType, encode_frame};
use rmq_test_support::rng::XorShift;

/// Request codes walked in order by the first cases (RocketMQ 4.x codes end at 353).
pub const CODES: u64 = 400;

/// One generated frame.
#[derive(Debug)]
pub struct Case {
    pub bytes: Vec<u8>,
    /// Mutated on the wire (the server may close the connection on it).
    pub mutated: bool,
    /// What was generated, for a failure message.
    pub what: String,
}

/// Header fields the processors of the broker and the name server read.
const FIELDS: &[&str] = &[
    "topic",
    "consumerGroup",
    "producerGroup",
    "queueId",
    "queueOffset",
    "maxMsgNums",
    "sysFlag",
    "commitOffset",
    "suspendTimeoutMillis",
    "subscription",
    "subVersion",
    "expressionType",
    "defaultTopic",
    "defaultTopicQueueNums",
    "bornTimestamp",
    "flag",
    "properties",
    "reconsumeTimes",
    "unitMode",
    "batch",
    "maxReconsumeTimes",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "brokerName",
    "brokerAddr",
    "clusterName",
    "brokerId",
    "haServerAddr",
    "compressed",
    "bodyCrc32",
    "key",
    "namespace",
    "value",
    "group",
    "offset",
    "msgId",
    "timestamp",
    "beginTimestamp",
    "endTimestamp",
    "maxNum",
    "clientId",
    "tranStateTableOffset",
    "commitLogOffset",
    "commitOrRollback",
    "fromTransactionCheck",
    "transactionId",
    "originMsgId",
    "originTopic",
    "delayLevel",
    "readQueueNums",
    "writeQueueNums",
    "perm",
    "topicFilterType",
    "topicSysFlag",
    "order",
    "keys",
    "isUnitTopic",
    "isForce",
    "jstackEnable",
    "consumeFromWhere",
    "accessKey",
    "secretKey",
    "whiteRemoteAddress",
    "admin",
    "defaultTopicPerm",
    "defaultGroupPerm",
    "topicPerms",
    "groupPerms",
    "Signature",
    "AccessKey",
    "dataVersion",
    "zoneName",
    "topicConfig",
    "enableActingMaster",
    "queueIdSet",
    "mqType",
    "lockBatch",
    "remark",
    "configName",
    "kvConfigKey",
];

/// Values shaped to reach edge cases of parsers and processors.
fn value(rng: &mut XorShift) -> String {
    match rng.below(20) {
        0 => String::new(),
        1 => rng.below(64).to_string(),
        2 => (-(rng.below(1 << 40) as i64)).to_string(),
        3 => i64::MAX.to_string(),
        4 => i64::MIN.to_string(),
        5 => i32::MAX.to_string(),
        6 => "TopicTest".to_owned(),
        7 => "%RETRY%group".to_owned(),
        8 => [
            "SCHEDULE_TOPIC_XXXX",
            "RMQ_SYS_TRANS_HALF_TOPIC",
            "TBW102",
            "rmq_sys_timer_buckets",
        ][rng.below(4) as usize]
            .to_owned(),
        9 => "*".to_owned(),
        10 => "TagA || TagB".to_owned(),
        11 => "a > 1 AND (b = 'x' OR c IS NULL) AND".repeat(1 + rng.below(4) as usize),
        12 => ["true", "false", "TRUE", "1"][rng.below(4) as usize].to_owned(),
        13 => "x".repeat(rng.below(20_000) as usize),
        14 => format!(
            "KEYS\u{1}k{}\u{2}DELAY\u{1}{}\u{2}TRAN_MSG\u{1}true\u{2}REAL_TOPIC\u{1}{}\u{2}",
            rng.below(100),
            rng.below(40),
            ["", "T", "SCHEDULE_TOPIC_XXXX"][rng.below(3) as usize]
        ),
        15 => format!("127.0.0.1:{}", rng.below(70_000)),
        16 => random_text(rng, 64),
        17 => "1.5".to_owned(),
        18 => "\u{0}\u{ffff}é".to_owned(),
        _ => format!("{}", rng.next_u64()),
    }
}

fn random_text(rng: &mut XorShift, max: u64) -> String {
    let len = rng.below(max + 1) as usize;
    let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Random JSON text, nested up to `depth`.
fn json(rng: &mut XorShift, depth: u32) -> String {
    let kind = if depth == 0 {
        rng.below(4)
    } else {
        rng.below(6)
    };
    match kind {
        0 => rng.below(1 << 20).to_string(),
        1 => format!("{:?}", value(rng)),
        2 => ["true", "false", "null", "-1", "1e400"][rng.below(5) as usize].to_owned(),
        3 => format!("\"{}\"", FIELDS[rng.below(FIELDS.len() as u64) as usize]),
        4 => {
            let items: Vec<String> = (0..rng.below(5)).map(|_| json(rng, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let items: Vec<String> = (0..rng.below(6))
                .map(|_| {
                    let key = FIELDS[rng.below(FIELDS.len() as u64) as usize];
                    format!("\"{key}\":{}", json(rng, depth - 1))
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

fn body(rng: &mut XorShift) -> Vec<u8> {
    match rng.below(10) {
        0..=2 => Vec::new(),
        3..=5 => (0..rng.below(4096)).map(|_| rng.below(256) as u8).collect(),
        6..=8 => json(rng, 4).into_bytes(),
        _ => vec![rng.below(256) as u8; rng.below(1 << 20) as usize],
    }
}

fn code(rng: &mut XorShift, index: u64) -> i32 {
    if index < CODES {
        return index as i32;
    }
    match rng.below(10) {
        0..=7 => rng.below(CODES) as i32,
        8 => rng.next_u64() as i32,
        _ => [10, 11, 310, 320, 34, 35, 36, 37, 103, 105, 106][rng.below(11) as usize],
    }
}

/// The `index`-th case of the generator's sequence.
pub fn case(rng: &mut XorShift, index: u64) -> Case {
    let mut cmd = RemotingCommand::new_request(code(rng, index));
    cmd.opaque = rng.next_u64() as i32;
    cmd.flag = match rng.below(10) {
        0 => 2,                     // oneway
        1 => 1,                     // a "response" the server did not ask for
        2 => rng.next_u64() as i32, // any bits
        _ => 0,
    };
    cmd.language = rng.below(16) as u8;
    cmd.version = rng.next_u64() as i32;
    if rng.below(8) == 0 {
        cmd.remark = Some(value(rng));
    }
    for _ in 0..rng.below(14) {
        let key = if rng.below(10) == 0 {
            random_text(rng, 12)
        } else {
            FIELDS[rng.below(FIELDS.len() as u64) as usize].to_owned()
        };
        cmd.set_ext(&key, value(rng));
    }
    cmd.body = body(rng).into();
    cmd.serialize_type = if rng.below(2) == 0 {
        SerializeType::Json
    } else {
        SerializeType::RocketMq
    };
    let mut out = BytesMut::new();
    encode_frame(&cmd, &mut out);
    let mut bytes = out.to_vec();
    let mut what = format!(
        "code {} {:?} flag {} {} ext fields, body {} B",
        cmd.code,
        cmd.serialize_type,
        cmd.flag,
        cmd.ext_fields.len(),
        cmd.body.len()
    );
    let mutated = rng.below(2) == 0;
    if mutated {
        what.push_str(", mutated: ");
        what.push_str(mutate(rng, &mut bytes));
    }
    Case {
        bytes,
        mutated,
        what,
    }
}

/// Applies one wire mutation; returns its name.
fn mutate(rng: &mut XorShift, bytes: &mut Vec<u8>) -> &'static str {
    let header_len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) & 0x00ff_ffff;
    let header_end = 8 + header_len as usize;
    match rng.below(8) {
        0 | 1 => {
            for _ in 0..1 + rng.below(8) {
                let at = 8 + rng.below((header_end - 8).max(1) as u64) as usize;
                if at < bytes.len() {
                    bytes[at] = rng.below(256) as u8;
                }
            }
            "header bytes overwritten"
        }
        2 => {
            let meta = match rng.below(4) {
                0 => rng.next_u64() as u32,
                1 => (rng.below(256) as u32) << 24 | header_len,
                2 => header_len + 1 + rng.below(64) as u32,
                _ => header_len.saturating_sub(1 + rng.below(64) as u32),
            };
            bytes[4..8].copy_from_slice(&meta.to_be_bytes());
            "header meta replaced"
        }
        3 => {
            let header = json(rng, 3).into_bytes();
            let body = bytes[header_end.min(bytes.len())..].to_vec();
            let mut frame = Vec::with_capacity(8 + header.len() + body.len());
            frame.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
            frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
            frame.extend_from_slice(&header);
            frame.extend_from_slice(&body);
            *bytes = frame;
            "header replaced by random JSON"
        }
        4 => {
            let length: i32 = match rng.below(5) {
                0 => -(rng.below(1 << 31) as i32) - 1,
                1 => i32::MAX,
                2 => 16 * 1024 * 1024 + rng.below(1024) as i32,
                3 => rng.below(8) as i32,
                _ => rng.below(bytes.len() as u64 * 2) as i32,
            };
            bytes[0..4].copy_from_slice(&length.to_be_bytes());
            "length prefix replaced"
        }
        5 => {
            bytes.truncate(rng.below(bytes.len() as u64) as usize);
            "truncated"
        }
        6 => {
            let extra = rng.below(64);
            bytes.extend((0..extra).map(|_| rng.below(256) as u8));
            "garbage appended"
        }
        _ => {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
            "one bit flipped"
        }
    }
}
