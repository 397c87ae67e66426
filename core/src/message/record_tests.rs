//! Tests of the commit-log record codec: round trips, the golden header layout, patching,
//! every parse error, and random or mutated bytes that must never panic.

use std::net::SocketAddr;

use bytes::BytesMut;

use super::*;
use crate::message::sysflag::{TRANSACTION_PREPARED_TYPE, transaction_value};

const PROPS: &str = "TAGS\u{1}TagA\u{2}KEYS\u{1}k1\u{2}";

fn sample<'a>(born: &str, store: &str, body: &'a [u8]) -> NewRecord<'a> {
    NewRecord {
        topic: "TopicTest",
        queue_id: 3,
        flag: 7,
        body,
        properties: PROPS,
        sys_flag: TRANSACTION_PREPARED_TYPE,
        born_timestamp: 1_700_000_000_123,
        born_host: born.parse::<SocketAddr>().unwrap(),
        store_host: store.parse::<SocketAddr>().unwrap(),
        reconsume_times: 2,
        prepared_transaction_offset: 99,
    }
}

fn encode(record: &NewRecord<'_>) -> BytesMut {
    let mut buf = BytesMut::new();
    record.encode_into(&mut buf).unwrap();
    assert_eq!(buf.len(), record.encoded_len());
    buf
}

fn check_round_trip(born: &str, store: &str) {
    let record = sample(born, store, b"hello world");
    let buf = encode(&record);
    let view = parse_record(&buf).unwrap();
    assert_eq!(view.total_size(), buf.len());
    assert_eq!(view.raw(), &buf[..]);
    assert_eq!(view.magic(), MESSAGE_MAGIC_CODE);
    assert!(view.crc_ok());
    assert_eq!(view.queue_id(), 3);
    assert_eq!(view.flag(), 7);
    assert_eq!(view.queue_offset(), 0);
    assert_eq!(view.physical_offset(), 0);
    assert_eq!(view.store_timestamp(), 0);
    assert_eq!(
        transaction_value(view.sys_flag()),
        TRANSACTION_PREPARED_TYPE
    );
    assert_eq!(view.born_timestamp(), 1_700_000_000_123);
    assert_eq!(view.born_host(), record.born_host);
    assert_eq!(view.store_host(), record.store_host);
    assert_eq!(view.reconsume_times(), 2);
    assert_eq!(view.prepared_transaction_offset(), 99);
    assert_eq!(view.body(), b"hello world");
    assert_eq!(view.topic(), "TopicTest");
    assert_eq!(view.properties(), PROPS);
    assert_eq!(view.tags_code(), 2_598_919);
    let born_v6 = view.sys_flag() & BORNHOST_V6_FLAG != 0;
    let store_v6 = view.sys_flag() & STOREHOSTADDRESS_V6_FLAG != 0;
    assert_eq!(born_v6, record.born_host.is_ipv6());
    assert_eq!(store_v6, record.store_host.is_ipv6());
}

#[test]
fn round_trip_ipv4_and_ipv6() {
    check_round_trip("10.0.0.1:50000", "192.168.1.100:10911");
    check_round_trip("[2001:db8::1]:50000", "192.168.1.100:10911");
    check_round_trip("10.0.0.1:50000", "[::1]:10911");
    check_round_trip("[fe80::1]:1", "[2001:db8::2]:65535");
}

#[test]
fn v6_bits_follow_addresses_not_caller() {
    let mut record = sample("10.0.0.1:1", "10.0.0.2:2", b"");
    record.sys_flag |= BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG;
    let buf = encode(&record);
    let view = parse_record(&buf).unwrap();
    assert_eq!(
        view.sys_flag() & (BORNHOST_V6_FLAG | STOREHOSTADDRESS_V6_FLAG),
        0
    );
}

#[test]
fn golden_ipv4_header_layout() {
    let mut buf = encode(&sample("1.2.3.4:5", "6.7.8.9:10911", b"xyz"));
    patch_record(&mut buf, 0x1111, 0x2222, 0x3333);
    let total = FIXED_LEN_V4 + 4 + 3 + 1 + 9 + 2 + PROPS.len();
    assert_eq!(buf.len(), total);
    assert_eq!(&buf[0..4], &(total as i32).to_be_bytes());
    assert_eq!(&buf[4..8], &[0xDA, 0xA3, 0x20, 0xA7]);
    assert_eq!(&buf[8..12], &body_crc(b"xyz").to_be_bytes());
    assert_eq!(&buf[12..16], &3i32.to_be_bytes());
    assert_eq!(&buf[16..20], &7i32.to_be_bytes());
    assert_eq!(&buf[20..28], &0x1111i64.to_be_bytes());
    assert_eq!(&buf[28..36], &0x2222i64.to_be_bytes());
    assert_eq!(&buf[36..40], &TRANSACTION_PREPARED_TYPE.to_be_bytes());
    assert_eq!(&buf[40..48], &1_700_000_000_123i64.to_be_bytes());
    assert_eq!(&buf[48..56], &[1, 2, 3, 4, 0, 0, 0, 5]);
    assert_eq!(&buf[56..64], &0x3333i64.to_be_bytes());
    assert_eq!(&buf[64..72], &[6, 7, 8, 9, 0, 0, 0x2A, 0x9F]);
    assert_eq!(&buf[72..76], &2i32.to_be_bytes());
    assert_eq!(&buf[76..84], &99i64.to_be_bytes());
    assert_eq!(&buf[84..88], &3i32.to_be_bytes());
    assert_eq!(&buf[88..91], b"xyz");
    assert_eq!(buf[91], 9);
    assert_eq!(&buf[92..101], b"TopicTest");
    assert_eq!(&buf[101..103], &(PROPS.len() as i16).to_be_bytes());
    assert_eq!(&buf[103..], PROPS.as_bytes());
}

#[test]
fn known_constants() {
    assert_eq!(MESSAGE_MAGIC_CODE as u32, 0xDAA3_20A7);
    assert_eq!(BLANK_MAGIC_CODE as u32, 0xCBD4_3194);
    assert_eq!(record_len(0, 0, 0, false, false), RECORD_LEN_MIN_V1);
    assert_eq!(record_len(1, 2, 3, true, true), RECORD_LEN_MIN_V1 + 6 + 24);
    // java.util.zip.CRC32 of "123456789" is 0xCBF43926; masked to 31 bits.
    assert_eq!(body_crc(b"123456789"), 0x4BF4_3926);
}

#[test]
fn patch_record_sets_append_fields() {
    for (born, store) in [("1.1.1.1:1", "2.2.2.2:2"), ("[::1]:1", "[::2]:2")] {
        let mut buf = encode(&sample(born, store, b"body"));
        patch_record(&mut buf, 42, 1 << 40, 1_700_000_000_999);
        let view = parse_record(&buf).unwrap();
        assert_eq!(view.queue_offset(), 42);
        assert_eq!(view.physical_offset(), 1 << 40);
        assert_eq!(view.store_timestamp(), 1_700_000_000_999);
        assert_eq!(view.born_timestamp(), 1_700_000_000_123);
        assert_eq!(view.store_host(), store.parse::<SocketAddr>().unwrap());
        assert!(view.crc_ok());
    }
}

#[test]
#[should_panic]
fn patch_record_rejects_garbage() {
    let mut buf = vec![0u8; 200];
    patch_record(&mut buf, 1, 2, 3);
}

#[test]
fn encode_limits() {
    let topic = "t".repeat(128);
    let mut record = sample("1.1.1.1:1", "2.2.2.2:2", b"");
    record.topic = &topic;
    let mut buf = BytesMut::new();
    assert_eq!(
        record.encode_into(&mut buf),
        Err(RecordError::TopicTooLong(128))
    );
    record.topic = &topic[..127];
    record.encode_into(&mut buf).unwrap();
    let props = "p".repeat(PROPERTIES_LEN_MAX + 1);
    record.properties = &props;
    let before = buf.len();
    assert_eq!(
        record.encode_into(&mut buf),
        Err(RecordError::PropertiesTooLong(32768))
    );
    assert_eq!(buf.len(), before);
    record.properties = &props[..PROPERTIES_LEN_MAX];
    record.encode_into(&mut buf).unwrap();
    let second = parse_record(&buf[before..]).unwrap();
    assert_eq!(second.properties().len(), PROPERTIES_LEN_MAX);
    assert_eq!(parse_record(&buf).unwrap().topic().len(), 127);
}

#[test]
fn parses_prefix_of_longer_buffer() {
    let mut buf = encode(&sample("1.1.1.1:1", "2.2.2.2:2", b"one"));
    let first_len = buf.len();
    buf.extend_from_slice(&encode(&sample("1.1.1.1:1", "2.2.2.2:2", b"two")));
    let first = parse_record(&buf).unwrap();
    assert_eq!(first.total_size(), first_len);
    assert_eq!(first.body(), b"one");
    assert_eq!(parse_record(&buf[first_len..]).unwrap().body(), b"two");
}

#[test]
fn parse_errors() {
    let buf = encode(&sample("1.1.1.1:1", "2.2.2.2:2", b"body"));
    let short = parse_record(&buf[..3]).map(drop);
    assert_eq!(short, Err(RecordError::Truncated { need: 8, have: 3 }));
    let have = buf.len() - 1;
    let truncated = parse_record(&buf[..have]).map(drop);
    assert_eq!(
        truncated,
        Err(RecordError::Truncated {
            need: buf.len(),
            have
        })
    );

    let mut bad_magic = buf.to_vec();
    bad_magic[4..8].copy_from_slice(&0x1234_5678i32.to_be_bytes());
    assert_eq!(
        parse_record(&bad_magic).map(drop),
        Err(RecordError::BadMagic(0x1234_5678))
    );

    let mut blank = 4096i32.to_be_bytes().to_vec();
    blank.extend_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
    assert_eq!(
        parse_record(&blank).map(drop),
        Err(RecordError::Blank { size: 4096 })
    );
    blank[0..4].copy_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        parse_record(&blank),
        Err(RecordError::BadLength(_))
    ));

    let mut too_small = buf.to_vec();
    too_small[0..4].copy_from_slice(&50i32.to_be_bytes());
    assert!(matches!(
        parse_record(&too_small),
        Err(RecordError::BadLength(_))
    ));
}

#[test]
fn parse_rejects_bad_inner_lengths() {
    let buf = encode(&sample("1.1.1.1:1", "2.2.2.2:2", b"body"));
    let body_len_pos = FIXED_LEN_V4;
    let topic_len_pos = body_len_pos + 4 + 4;
    let props_len_pos = topic_len_pos + 1 + 9;
    let cases: [(usize, &[u8]); 5] = [
        (body_len_pos, &(-1i32).to_be_bytes()),
        (body_len_pos, &5i32.to_be_bytes()),
        (body_len_pos, &i32::MAX.to_be_bytes()),
        (topic_len_pos, &[200]),
        (props_len_pos, &(-2i16).to_be_bytes()),
    ];
    for (pos, patch) in cases {
        let mut bad = buf.to_vec();
        bad[pos..pos + patch.len()].copy_from_slice(patch);
        let result = parse_record(&bad);
        assert!(
            matches!(result, Err(RecordError::BadLength(_))),
            "{pos}: {result:?}"
        );
    }
    // Fields ending before TOTALSIZE.
    let mut short = buf.to_vec();
    short[props_len_pos..props_len_pos + 2].copy_from_slice(&1i16.to_be_bytes());
    assert!(matches!(
        parse_record(&short),
        Err(RecordError::BadLength(_))
    ));
    // A port that does not fit u16.
    let mut port = buf.to_vec();
    port[52..56].copy_from_slice(&70_000i32.to_be_bytes());
    assert!(matches!(
        parse_record(&port),
        Err(RecordError::BadLength(_))
    ));
    // Invalid UTF-8 in the topic.
    let mut utf8 = buf.to_vec();
    utf8[topic_len_pos + 1] = 0xFF;
    assert_eq!(
        parse_record(&utf8).map(drop),
        Err(RecordError::BadUtf8("topic"))
    );
}

#[test]
fn parses_v2_topic_length() {
    // Rebuild a V1 record as V2: the topic length becomes an int16, TOTALSIZE grows by one.
    let v1 = encode(&sample("1.1.1.1:1", "2.2.2.2:2", b"body"));
    let topic_len_pos = FIXED_LEN_V4 + 4 + 4;
    let mut v2 = v1[..topic_len_pos].to_vec();
    v2.extend_from_slice(&9i16.to_be_bytes());
    v2.extend_from_slice(&v1[topic_len_pos + 1..]);
    v2[0..4].copy_from_slice(&(v1.len() as i32 + 1).to_be_bytes());
    v2[4..8].copy_from_slice(&MESSAGE_MAGIC_CODE_V2.to_be_bytes());
    let view = parse_record(&v2).unwrap();
    assert_eq!(view.magic(), MESSAGE_MAGIC_CODE_V2);
    assert_eq!(view.topic(), "TopicTest");
    assert_eq!(view.properties(), PROPS);
}

#[test]
fn properties_bytes_finds_what_parse_record_finds() {
    for (born, store) in [
        ("1.1.1.1:1", "2.2.2.2:2"),
        ("[::1]:1", "2.2.2.2:2"),
        ("1.1.1.1:1", "[::2]:2"),
        ("[::1]:1", "[::2]:2"),
    ] {
        let buf = encode(&sample(born, store, b"a body of some length"));
        assert_eq!(
            properties_bytes(&buf),
            Some(PROPS.as_bytes()),
            "{born} {store}"
        );
        // A longer buffer: only TOTALSIZE bytes belong to the record.
        let mut longer = buf.to_vec();
        longer.extend_from_slice(b"\x02trailing");
        assert_eq!(properties_bytes(&longer), Some(PROPS.as_bytes()));
        assert_eq!(properties_bytes(&buf[..buf.len() - 1]), None, "truncated");
        let mut bad_magic = buf.to_vec();
        bad_magic[4..8].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
        assert_eq!(properties_bytes(&bad_magic), None);
    }
    let v1 = encode(&sample("1.1.1.1:1", "2.2.2.2:2", b"body"));
    let topic_len_pos = FIXED_LEN_V4 + 4 + 4;
    let mut v2 = v1[..topic_len_pos].to_vec();
    v2.extend_from_slice(&9i16.to_be_bytes());
    v2.extend_from_slice(&v1[topic_len_pos + 1..]);
    v2[0..4].copy_from_slice(&(v1.len() as i32 + 1).to_be_bytes());
    v2[4..8].copy_from_slice(&MESSAGE_MAGIC_CODE_V2.to_be_bytes());
    assert_eq!(properties_bytes(&v2), Some(PROPS.as_bytes()));
    assert_eq!(properties_bytes(&[]), None);
}

#[test]
fn crc_detects_corruption() {
    let mut buf = encode(&sample("1.1.1.1:1", "2.2.2.2:2", b"body")).to_vec();
    buf[FIXED_LEN_V4 + 4] ^= 0x01;
    assert!(!parse_record(&buf).unwrap().crc_ok());
}

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let valid = encode(&sample("[::1]:1", "2.2.2.2:2", b"some body bytes")).to_vec();
    for round in 0..20_000 {
        let mut buf: Vec<u8> = if round % 2 == 0 {
            let len = rng.below(300);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            valid.clone()
        };
        // Give random buffers a plausible header so parsing reaches the inner fields.
        if buf.len() >= 8 && round % 4 == 0 {
            let total = rng.below(buf.len() + 16) as i32;
            buf[0..4].copy_from_slice(&total.to_be_bytes());
            buf[4..8].copy_from_slice(&MESSAGE_MAGIC_CODE.to_be_bytes());
        }
        for _ in 0..rng.below(4) {
            if !buf.is_empty() {
                let at = rng.below(buf.len());
                buf[at] = rng.next() as u8;
            }
        }
        let fast = properties_bytes(&buf);
        if let Ok(view) = parse_record(&buf) {
            assert_eq!(fast, Some(view.properties().as_bytes()));
            let _ = (
                view.crc_ok(),
                view.tags_code(),
                view.store_timestamp(),
                view.store_host(),
            );
            let _ = (view.reconsume_times(), view.prepared_transaction_offset());
        }
    }
}
