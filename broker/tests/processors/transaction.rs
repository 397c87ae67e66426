//! END_TRANSACTION against half messages sent through the harness.

use rmq_broker::testing::{Harness, run};
use rmq_core::message::properties::encode_properties;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use crate::requests::{assert_code, create_topic, remark, send};

const COMMIT: i32 = 8;
const ROLLBACK: i32 = 12;
const UNKNOWN: i32 = 0;

/// Sends a half message to `topic` and returns (commit log offset, half queue offset).
async fn half(h: &Harness, topic: &str) -> (i64, i64) {
    let props = encode_properties([("TRAN_MSG", "true"), ("PGROUP", "PG"), ("UNIQ_KEY", "U")]);
    let mut request = send(topic, 0, b"half", &props);
    request.set_ext("sysFlag", 4);
    let response = h.call(request).await;
    assert_code(&response, ResponseCode::Success);
    let msg_id = response.ext("msgId").expect("msgId").to_string();
    let (_, physical) = rmq_core::message::msg_id::decode_offset_msg_id(&msg_id).expect("msg id");
    let queue_offset = response.ext("queueOffset").unwrap().parse().unwrap();
    (physical, queue_offset)
}

fn end(half: (i64, i64), decision: i32) -> RemotingCommand {
    RemotingCommand::new_request(rc::END_TRANSACTION)
        .with_ext("producerGroup", "PG")
        .with_ext("commitLogOffset", half.0)
        .with_ext("tranStateTableOffset", half.1)
        .with_ext("commitOrRollback", decision)
        .with_ext("fromTransactionCheck", false)
}

#[test]
fn commit_makes_the_message_visible_and_rollback_does_not() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("TX", 1)).await, ResponseCode::Success);
        let first = half(&h, "TX").await;
        assert_eq!(
            h.store().max_queue_offset("TX", 0),
            0,
            "a half message is hidden"
        );
        assert_code(&h.call(end(first, UNKNOWN)).await, ResponseCode::Success);
        assert_eq!(h.store().max_queue_offset("TX", 0), 0);
        assert_code(&h.call(end(first, COMMIT)).await, ResponseCode::Success);
        assert_eq!(h.store().max_queue_offset("TX", 0), 1);
        // deciding again changes nothing
        assert_code(&h.call(end(first, COMMIT)).await, ResponseCode::Success);
        assert_eq!(h.store().max_queue_offset("TX", 0), 1);
        let second = half(&h, "TX").await;
        assert_code(&h.call(end(second, ROLLBACK)).await, ResponseCode::Success);
        assert_eq!(h.store().max_queue_offset("TX", 0), 1);
    });
}

#[test]
fn bad_offsets_and_wrong_groups_are_system_errors_and_commit_nothing() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("TX", 1)).await, ResponseCode::Success);
        let good = half(&h, "TX").await;
        for bad in [
            (-1, good.1),
            (i64::MAX, good.1),
            (good.0 + 1, good.1),
            (good.0, good.1 + 5),
        ] {
            let response = h.call(end(bad, COMMIT)).await;
            assert_code(&response, ResponseCode::SystemError);
            assert!(!remark(&response).is_empty());
        }
        let wrong_group = end(good, COMMIT).with_ext("producerGroup", "Other");
        let response = h.call(wrong_group).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("producer group"),
            "{}",
            remark(&response)
        );
        assert_eq!(h.store().max_queue_offset("TX", 0), 0);
        // the failures released the claim: the real decision still applies
        assert_code(&h.call(end(good, COMMIT)).await, ResponseCode::Success);
        assert_eq!(h.store().max_queue_offset("TX", 0), 1);
    });
}

#[test]
fn missing_headers_are_system_errors() {
    run(async {
        let h = Harness::new().await;
        let request = RemotingCommand::new_request(rc::END_TRANSACTION)
            .with_ext("producerGroup", "PG")
            .with_ext("commitOrRollback", COMMIT);
        let response = h.call(request).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(!remark(&response).is_empty());
    });
}

/// As RocketMQ, the half and op topics exist only once a transaction used them (so
/// `topicList` does not show them on a broker that never saw one).
#[test]
fn the_transaction_topics_are_created_on_first_use() {
    run(async {
        let h = Harness::new().await;
        let (half_topic, op_topic) = ("RMQ_SYS_TRANS_HALF_TOPIC", "RMQ_SYS_TRANS_OP_HALF_TOPIC");
        assert!(h.ctx().topics.get(half_topic).is_none());
        assert!(h.ctx().topics.get(op_topic).is_none());
        assert_code(&h.call(create_topic("TX", 1)).await, ResponseCode::Success);
        let prepared = half(&h, "TX").await;
        let half_config = h.ctx().topics.get(half_topic).expect("half topic created");
        assert_eq!((half_config.read_queue_nums, half_config.perm), (1, 6));
        assert!(h.ctx().topics.get(op_topic).is_none());
        assert_code(&h.call(end(prepared, COMMIT)).await, ResponseCode::Success);
        assert!(h.ctx().topics.get(op_topic).is_some(), "op topic created");
        assert_eq!(h.store().max_queue_offset("TX", 0), 1);
    });
}
