//! SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE.

use bytes::BytesMut;
use rmq_broker::testing::{Harness, run};
use rmq_core::message::batch::{BatchEntry, encode_batch};
use rmq_core::message::properties::encode_properties;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use crate::requests::{assert_code, create_topic, remark, send, send_v2};

async fn max_offset(h: &Harness, topic: &str, queue_id: i32) -> i64 {
    h.store().max_queue_offset(topic, queue_id)
}

#[test]
fn single_send_auto_creates_the_topic_and_appends() {
    run(async {
        let h = Harness::new().await;
        let response = h.call(send("T1", 0, b"hello", "")).await;
        assert_code(&response, ResponseCode::Success);
        assert_eq!(response.ext("queueOffset"), Some("0"));
        assert_eq!(response.ext("queueId"), Some("0"));
        assert!(response.ext("msgId").is_some_and(|id| id.len() == 32));
        assert_eq!(h.ctx().topics.get("T1").unwrap().write_queue_nums, 4);
        let second = h.call(send("T1", 0, b"again", "")).await;
        assert_eq!(second.ext("queueOffset"), Some("1"));
        assert_eq!(max_offset(&h, "T1", 0).await, 2);
    });
}

#[test]
fn v2_headers_and_properties_are_stored() {
    run(async {
        let h = Harness::new().await;
        let props = encode_properties([("KEYS", "k1"), ("TAGS", "tagA"), ("UNIQ_KEY", "U1")]);
        let response = h.call(send_v2("T2", 1, b"v2 body", &props)).await;
        assert_code(&response, ResponseCode::Success);
        assert_eq!(response.ext("queueId"), Some("1"));
        let got = h
            .store()
            .get_messages("T2", 1, 0, 1, &|_| true)
            .await
            .expect("read back");
        let record = rmq_core::message::parse_record(&got.body).expect("a record");
        assert_eq!(record.body(), b"v2 body");
        assert!(record.properties().contains("tagA"));
        assert!(record.properties().contains("k1"));
    });
}

#[test]
fn missing_topic_without_auto_create_is_topic_not_exist() {
    run(async {
        let h = Harness::with_config(&[("autoCreateTopicEnable", "false")]).await;
        let response = h.call(send("Nowhere", 0, b"x", "")).await;
        assert_code(&response, ResponseCode::TopicNotExist);
        assert!(
            remark(&response).contains("not exist"),
            "{}",
            remark(&response)
        );
        assert!(h.ctx().topics.get("Nowhere").is_none());
    });
}

#[test]
fn a_queue_id_past_the_topic_is_refused_and_nothing_is_stored() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("T3", 2)).await, ResponseCode::Success);
        let response = h.call(send("T3", 2, b"x", "")).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("queueId[2] is illegal"),
            "{}",
            remark(&response)
        );
        let huge = h.call(send("T3", i32::MAX, b"x", "")).await;
        assert_code(&huge, ResponseCode::SystemError);
        assert_eq!(
            max_offset(&h, "T3", 0).await + max_offset(&h, "T3", 1).await,
            0
        );
    });
}

#[test]
fn a_negative_queue_id_picks_a_valid_queue() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("T4", 2)).await, ResponseCode::Success);
        let response = h.call(send("T4", -1, b"x", "")).await;
        assert_code(&response, ResponseCode::Success);
        let queue: i32 = response.ext("queueId").unwrap().parse().unwrap();
        assert!((0..2).contains(&queue));
    });
}

#[test]
fn a_body_over_max_message_size_is_message_illegal() {
    run(async {
        let h = Harness::with_config(&[("maxMessageSize", "1024")]).await;
        assert_code(&h.call(create_topic("T5", 1)).await, ResponseCode::Success);
        let response = h.call(send("T5", 0, &[7u8; 1025], "")).await;
        assert_code(&response, ResponseCode::MessageIllegal);
        assert!(
            remark(&response).contains("body size over max"),
            "{}",
            remark(&response)
        );
        assert_eq!(max_offset(&h, "T5", 0).await, 0);
        assert_code(
            &h.call(send("T5", 0, &[7u8; 1024], "")).await,
            ResponseCode::Success,
        );
    });
}

#[test]
fn bad_names_and_missing_headers_are_refused() {
    run(async {
        let h = Harness::new().await;
        let bad = h.call(send("bad topic!", 0, b"x", "")).await;
        assert_code(&bad, ResponseCode::SystemError);
        assert!(
            remark(&bad).contains("illegal characters"),
            "{}",
            remark(&bad)
        );
        assert!(h.ctx().topics.get("bad topic!").is_none());
        let no_queue = RemotingCommand::new_request(rc::SEND_MESSAGE)
            .with_ext("producerGroup", "PG")
            .with_ext("topic", "T6")
            .with_body(b"x".to_vec());
        let response = h.call(no_queue).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(!remark(&response).is_empty());
        let mut bad_flag = send("T6", 0, b"x", "");
        bad_flag.set_ext("sysFlag", "not-a-number");
        assert_code(&h.call(bad_flag).await, ResponseCode::SystemError);
        assert!(h.ctx().topics.get("T6").is_none());
    });
}

#[test]
fn a_read_only_topic_refuses_sends() {
    run(async {
        let h = Harness::new().await;
        let mut request = create_topic("T7", 1);
        request.set_ext("perm", 4);
        assert_code(&h.call(request).await, ResponseCode::Success);
        let response = h.call(send("T7", 0, b"x", "")).await;
        assert_code(&response, ResponseCode::NoPermission);
        assert!(
            remark(&response).contains("forbidden"),
            "{}",
            remark(&response)
        );
    });
}

#[test]
fn a_batch_stores_every_entry_and_a_corrupt_one_nothing() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("T8", 1)).await, ResponseCode::Success);
        let props = encode_properties([("UNIQ_KEY", "A")]);
        let entries = [
            BatchEntry {
                flag: 0,
                body: b"one",
                properties: &props,
            },
            BatchEntry {
                flag: 0,
                body: b"two",
                properties: &props,
            },
            BatchEntry {
                flag: 0,
                body: b"three",
                properties: &props,
            },
        ];
        let mut body = BytesMut::new();
        encode_batch(&entries, &mut body);
        let mut batch = send_v2("T8", 0, &body, "");
        batch.code = rc::SEND_BATCH_MESSAGE;
        assert_code(&h.call(batch.clone()).await, ResponseCode::Success);
        assert_eq!(max_offset(&h, "T8", 0).await, 3);
        let truncated = batch.clone().with_body(body[..body.len() - 2].to_vec());
        let response = h.call(truncated).await;
        assert_code(&response, ResponseCode::MessageIllegal);
        assert!(
            remark(&response).contains("bad batch body"),
            "{}",
            remark(&response)
        );
        assert_eq!(max_offset(&h, "T8", 0).await, 3);
    });
}

#[test]
fn a_batch_may_not_carry_a_delay() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("T9", 1)).await, ResponseCode::Success);
        let props = encode_properties([("DELAY", "3")]);
        let entries = [BatchEntry {
            flag: 0,
            body: b"late",
            properties: &props,
        }];
        let mut body = BytesMut::new();
        encode_batch(&entries, &mut body);
        let mut batch = send_v2("T9", 0, &body, "");
        batch.code = rc::SEND_BATCH_MESSAGE;
        let response = h.call(batch).await;
        assert_code(&response, ResponseCode::MessageIllegal);
        assert_eq!(max_offset(&h, "T9", 0).await, 0);
    });
}

#[test]
fn a_delay_level_out_of_range_is_refused() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("T10", 1)).await, ResponseCode::Success);
        let props = encode_properties([("DELAY", "99")]);
        let response = h.call(send("T10", 0, b"x", &props)).await;
        // RocketMQ clamps a level past the last one to the last level.
        assert_code(&response, ResponseCode::Success);
        assert_eq!(max_offset(&h, "T10", 0).await, 0, "a delayed message waits");
    });
}

/// The records a queue holds from offset 0 (at most `max`), as (physical offset, properties).
async fn stored_records(h: &Harness, topic: &str, max: usize) -> Vec<(i64, String)> {
    let got = h
        .store()
        .get_messages(topic, 0, 0, max, &|_| true)
        .await
        .expect("read back");
    let mut records = Vec::new();
    let mut rest = &got.body[..];
    while !rest.is_empty() {
        let record = rmq_core::message::parse_record(rest).expect("a record");
        records.push((record.physical_offset(), record.properties().to_string()));
        rest = &rest[record.total_size()..];
    }
    records
}

/// RocketMQ answers a batch with the comma-separated offset ids of every message, in order:
/// the Go client maps them to its messages (we answered the first id only).
#[test]
fn a_batch_answers_one_offset_id_per_message() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("TB", 1)).await, ResponseCode::Success);
        assert_code(
            &h.call(send("TB", 0, b"before", "")).await,
            ResponseCode::Success,
        );
        let props = encode_properties([("UNIQ_KEY", "A"), ("WAIT", "true")]);
        let bodies: [&[u8]; 3] = [b"one", b"two two", b"three three three"];
        let entries: Vec<BatchEntry> = bodies
            .iter()
            .map(|body| BatchEntry {
                flag: 0,
                body,
                properties: &props,
            })
            .collect();
        let mut body = BytesMut::new();
        encode_batch(&entries, &mut body);
        let mut batch = send_v2("TB", 0, &body, "");
        batch.code = rc::SEND_BATCH_MESSAGE;
        let response = h.call(batch).await;
        assert_code(&response, ResponseCode::Success);
        let ids: Vec<&str> = response.ext("msgId").unwrap().split(',').collect();
        let stored = stored_records(&h, "TB", 4).await;
        assert_eq!(stored.len(), 4);
        assert_eq!(ids.len(), 3, "{ids:?}");
        for (id, (offset, _)) in ids.iter().zip(&stored[1..]) {
            let (host, decoded) = rmq_core::message::msg_id::decode_offset_msg_id(id).unwrap();
            assert_eq!(decoded, *offset, "{id}");
            assert_eq!(host, h.ctx().broker_addr);
        }
    });
}

/// WAIT only tells the broker when to answer: RocketMQ strips it from a stored message
/// (mqadmin printMsg showed it on ours). Other properties and CLUSTER are stored.
#[test]
fn a_single_message_is_stored_without_wait() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("TW", 1)).await, ResponseCode::Success);
        for wait in ["true", "false"] {
            let props = encode_properties([("WAIT", wait), ("TAGS", "tagW"), ("UNIQ_KEY", "U")]);
            assert_code(
                &h.call(send_v2("TW", 0, b"w", &props)).await,
                ResponseCode::Success,
            );
        }
        let no_wait = encode_properties([("KEYS", "k")]);
        assert_code(
            &h.call(send_v2("TW", 0, b"w", &no_wait)).await,
            ResponseCode::Success,
        );
        let stored = stored_records(&h, "TW", 3).await;
        assert_eq!(stored.len(), 3);
        for (_, props) in &stored {
            let get = |key| rmq_core::message::properties::get_property(props, key);
            assert_eq!(get("WAIT"), None, "{props:?}");
            assert!(get("CLUSTER").is_some(), "{props:?}");
        }
        let first = &stored[0].1;
        assert_eq!(
            rmq_core::message::properties::get_property(first, "TAGS"),
            Some("tagW")
        );
        assert_eq!(
            rmq_core::message::properties::get_property(first, "UNIQ_KEY"),
            Some("U")
        );
    });
}

#[test]
fn header_errors_name_the_field_in_the_client_spelling() {
    run(async {
        let h = Harness::new().await;
        let mut no_topic = send_v2("T9", 0, b"x", "");
        no_topic.ext_fields.remove("b");
        let response = h.call(no_topic).await;
        assert_code(&response, ResponseCode::SystemError);
        assert_eq!(remark(&response), "the custom field <b> is null");

        let mut no_queue = send("T9", 0, b"x", "");
        no_queue.ext_fields.remove("queueId");
        let response = h.call(no_queue).await;
        assert_code(&response, ResponseCode::SystemError);
        assert_eq!(remark(&response), "the custom field <queueId> is null");

        let bad_flag = send_v2("T9", 0, b"x", "").with_ext("h", "seven");
        let response = h.call(bad_flag).await;
        assert_code(&response, ResponseCode::SystemError);
        assert_eq!(
            remark(&response),
            "the custom field <h> is not a number: \"seven\""
        );

        // Blank optional numbers are unset (non-Java clients send ""), and V2 letters the
        // send does not read (k: unitMode) are ignored.
        let blank = send_v2("T9", 2, b"x", "")
            .with_ext("f", "")
            .with_ext("j", " ")
            .with_ext("k", "not read");
        let response = h.call(blank).await;
        assert_code(&response, ResponseCode::Success);
        assert_eq!(response.ext("queueId"), Some("2"));
    });
}
