//! Heartbeat bodies as the Java and C++ clients send them, and subscription matching.

use super::*;
use crate::body::{decode_body, encode_body};
use crate::message::hash::tags_code;

const JAVA_HEARTBEAT: &[u8] = br#"{"clientID":"10.0.0.5@1234#987","consumerDataSet":[{
    "consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY",
    "groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,
    "codeSet":[2598919],"expressionType":"TAG","subString":"TagA","subVersion":1700000000000,
    "tagsSet":["TagA"],"topic":"TopicTest"},{"classFilterMode":false,"codeSet":[],
    "expressionType":"TAG","subString":"*","subVersion":1700000000001,"tagsSet":[],
    "topic":"%RETRY%cg"}],"unitMode":false}],"producerDataSet":[{"groupName":"pg"},
    {"groupName":"CLIENT_INNER_PRODUCER"}]}"#;

const CPP_HEARTBEAT: &[u8] = br#"{"clientID":"10.0.0.6@99","consumerDataSet":[{
    "consumeFromWhere":0,"consumeType":1,"groupName":"cpp_group","messageModel":1,
    "subscriptionDataSet":[{"subString":"TagA || TagB","subVersion":"1700000000000",
    "tagsSet":["TagA","TagB"],"codeSet":[2598919,"2598920"],"topic":"T"}]}],"producerDataSet":[]}"#;

#[test]
fn java_client_heartbeat() {
    let heartbeat: HeartbeatData = decode_body(JAVA_HEARTBEAT).unwrap();
    assert_eq!(heartbeat.client_id, "10.0.0.5@1234#987");
    assert_eq!(heartbeat.producer_data_set.len(), 2);
    let consumer = &heartbeat.consumer_data_set[0];
    assert_eq!(consumer.consume_type, ConsumeType::ConsumePassively);
    assert_eq!(consumer.message_model, MessageModel::Clustering);
    assert_eq!(
        consumer.consume_from_where,
        ConsumeFromWhere::ConsumeFromFirstOffset
    );
    let sub = &consumer.subscription_data_set[0];
    assert_eq!(sub.sub_version, 1_700_000_000_000);
    assert_eq!(sub.code_set, vec![2_598_919]);
    assert!(sub.matches_tags_code(tags_code(Some("TagA"))));
    assert!(!sub.matches_tags_code(tags_code(Some("TagB"))));
    assert!(consumer.subscription_data_set[1].matches_tags_code(12345));
    // Our output is read back identically and uses the Java names.
    let json = String::from_utf8(encode_body(&heartbeat)).unwrap();
    assert!(json.contains(r#""clientID":"10.0.0.5@1234#987""#));
    assert!(json.contains(r#""consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET""#));
    assert_eq!(
        decode_body::<HeartbeatData>(json.as_bytes()).unwrap(),
        heartbeat
    );
}

#[test]
fn cpp_client_heartbeat() {
    let heartbeat: HeartbeatData = decode_body(CPP_HEARTBEAT).unwrap();
    let consumer = &heartbeat.consumer_data_set[0];
    assert_eq!(consumer.consume_type, ConsumeType::ConsumePassively);
    assert_eq!(consumer.message_model, MessageModel::Clustering);
    assert_eq!(
        consumer.consume_from_where,
        ConsumeFromWhere::ConsumeFromLastOffset
    );
    assert!(!consumer.unit_mode);
    let sub = &consumer.subscription_data_set[0];
    assert_eq!(sub.sub_version, 1_700_000_000_000);
    assert_eq!(sub.code_set, vec![2_598_919, 2_598_920]);
    assert_eq!(sub.expression_type, "TAG");
    assert!(!sub.class_filter_mode);
}

#[test]
fn minimal_and_null_fields() {
    let heartbeat: HeartbeatData = decode_body(br#"{"clientID":"c"}"#).unwrap();
    assert!(heartbeat.consumer_data_set.is_empty() && heartbeat.producer_data_set.is_empty());
    let sub: SubscriptionData =
        decode_body(br#"{"topic":"T","subVersion":null,"codeSet":null,"expressionType":null}"#)
            .unwrap();
    assert_eq!((sub.sub_version, sub.expression_type.as_str()), (0, "TAG"));
    assert!(sub.code_set.is_empty());
    let consumer: ConsumerData = decode_body(br#"{"groupName":"g","messageModel":"0"}"#).unwrap();
    assert_eq!(consumer.message_model, MessageModel::Broadcasting);
}

#[test]
fn enum_rejects_unknown() {
    assert!(decode_body::<ConsumerData>(br#"{"consumeType":7}"#).is_err());
    assert!(decode_body::<ConsumerData>(br#"{"consumeType":-1}"#).is_err());
    assert!(decode_body::<ConsumerData>(br#"{"messageModel":"SOMETIMES"}"#).is_err());
}

#[test]
fn enum_ordinals_match_java() {
    assert_eq!(ConsumeFromWhere::ConsumeFromFirstOffset.ordinal(), 4);
    assert_eq!(ConsumeFromWhere::ConsumeFromTimestamp.ordinal(), 5);
    assert_eq!(
        ConsumeFromWhere::from_ordinal(3),
        Some(ConsumeFromWhere::ConsumeFromMaxOffset)
    );
    assert_eq!(
        MessageModel::from_name("BROADCASTING"),
        Some(MessageModel::Broadcasting)
    );
    assert_eq!(ConsumeType::ConsumeActively.as_str(), "CONSUME_ACTIVELY");
}

#[test]
fn expression_parsing() {
    let all = SubscriptionData::from_expression("T", "*");
    assert_eq!(all.sub_string, "*");
    assert!(all.tags_set.is_empty() && all.code_set.is_empty());
    assert!(all.matches_tags_code(0) && all.matches_tags_code(42));
    let empty = SubscriptionData::from_expression("T", "");
    assert_eq!(empty.sub_string, "*");
    let tags = SubscriptionData::from_expression("T", " TagA ||TagB|| ||TagA");
    assert_eq!(tags.tags_set, vec!["TagA", "TagB"]);
    assert_eq!(tags.code_set, vec![2_598_919, 2_598_920]);
    assert_eq!(tags.sub_string, " TagA ||TagB|| ||TagA");
    assert!(tags.sub_version > 0);
    assert!(tags.matches_tags_code(tags_code(Some("TagB"))));
    assert!(!tags.matches_tags_code(tags_code(Some("TagC"))));
    assert!(
        !tags.matches_tags_code(0),
        "untagged messages do not match a tag list"
    );
    let sql = SubscriptionData {
        expression_type: "SQL92".into(),
        ..tags.clone()
    };
    assert!(sql.matches_tags_code(tags_code(Some("TagC"))));
}
