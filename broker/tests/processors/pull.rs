//! PULL_MESSAGE: offsets in and out of range, long polling, subscriptions.

use std::time::{Duration, Instant};

use rmq_broker::testing::{Harness, run};
use rmq_core::message::properties::encode_properties;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use crate::requests::{assert_code, create_topic, remark, send};

const COMMIT_OFFSET: i32 = 1;
const SUSPEND: i32 = 2;
const SUBSCRIPTION: i32 = 4;

fn pull(queue_id: i32, offset: i64, max: i32, sys_flag: i32) -> RemotingCommand {
    RemotingCommand::new_request(rc::PULL_MESSAGE)
        .with_ext("consumerGroup", "CG")
        .with_ext("topic", "P")
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", max)
        .with_ext("sysFlag", sys_flag)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", 100)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
}

async fn with_messages(h: &Harness, count: usize) {
    assert_code(&h.call(create_topic("P", 2)).await, ResponseCode::Success);
    for i in 0..count {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        let props = encode_properties([("TAGS", tag), ("n", &i.to_string())]);
        let response = h
            .call(send("P", 0, format!("m{i}").as_bytes(), &props))
            .await;
        assert_code(&response, ResponseCode::Success);
    }
}

fn next(response: &RemotingCommand) -> i64 {
    response.ext("nextBeginOffset").unwrap().parse().unwrap()
}

#[test]
fn offsets_in_range_return_messages_and_out_of_range_say_so() {
    run(async {
        let h = Harness::new().await;
        with_messages(&h, 5).await;
        let found = h.call(pull(0, 1, 2, 0)).await;
        assert_code(&found, ResponseCode::Success);
        assert_eq!(next(&found), 3);
        assert_eq!(found.ext("maxOffset"), Some("5"));
        let at_end = h.call(pull(0, 5, 32, 0)).await;
        assert_code(&at_end, ResponseCode::PullNotFound);
        assert_eq!(next(&at_end), 5);
        let past = h.call(pull(0, 1000, 32, 0)).await;
        assert_code(&past, ResponseCode::PullOffsetMoved);
        // RocketMQ's correction: back to the min offset while it is still 0
        assert_eq!(next(&past), 0);
        let negative = h.call(pull(0, -7, 32, 0)).await;
        assert_code(&negative, ResponseCode::PullOffsetMoved);
        assert_eq!(next(&negative), 0);
    });
}

#[test]
fn max_msg_nums_is_clamped_whatever_its_value() {
    run(async {
        let h = Harness::new().await;
        with_messages(&h, 3).await;
        for max in [i32::MAX, 0, -1, i32::MIN] {
            let response = h.call(pull(0, 0, max, 0)).await;
            assert_code(&response, ResponseCode::Success);
            assert!(next(&response) >= 1, "max {max}");
        }
    });
}

#[test]
fn queue_ids_outside_the_topic_and_unknown_topics_are_refused() {
    run(async {
        let h = Harness::new().await;
        with_messages(&h, 1).await;
        for queue_id in [-1, 2, i32::MAX] {
            let response = h.call(pull(queue_id, 0, 32, 0)).await;
            assert_code(&response, ResponseCode::SystemError);
            assert!(
                remark(&response).contains("is illegal"),
                "{}",
                remark(&response)
            );
        }
        let unknown = h.call(pull(0, 0, 32, 0).with_ext("topic", "Nope")).await;
        assert_code(&unknown, ResponseCode::TopicNotExist);
        let missing = RemotingCommand::new_request(rc::PULL_MESSAGE).with_ext("topic", "P");
        assert_code(&h.call(missing).await, ResponseCode::SystemError);
    });
}

#[test]
fn a_suspended_pull_waits_and_a_plain_one_does_not() {
    run(async {
        let h = Harness::new().await;
        with_messages(&h, 1).await;
        let began = Instant::now();
        let plain = h.call(pull(0, 1, 32, 0)).await;
        assert_code(&plain, ResponseCode::PullNotFound);
        assert!(began.elapsed() < Duration::from_millis(90));
        let began = Instant::now();
        let held = h.call(pull(0, 1, 32, SUSPEND)).await;
        assert_code(&held, ResponseCode::PullNotFound);
        assert!(
            began.elapsed() >= Duration::from_millis(90),
            "{:?}",
            began.elapsed()
        );
    });
}

#[test]
fn a_pull_commits_the_consumer_offset_it_carries() {
    run(async {
        let h = Harness::new().await;
        with_messages(&h, 3).await;
        let request = pull(0, 2, 32, COMMIT_OFFSET).with_ext("commitOffset", 2);
        assert_code(&h.call(request).await, ResponseCode::Success);
        assert_eq!(h.ctx().offsets.query("CG", "P", 0), Some(2));
        let negative = pull(0, 2, 32, COMMIT_OFFSET).with_ext("commitOffset", -5);
        h.call(negative).await;
        assert_eq!(h.ctx().offsets.query("CG", "P", 0), Some(2));
    });
}

#[test]
fn tag_subscriptions_filter_and_bad_sql_is_a_parse_failure() {
    run(async {
        let h = Harness::with_config(&[("enablePropertyFilter", "true")]).await;
        with_messages(&h, 4).await;
        let tags = pull(0, 0, 32, SUBSCRIPTION).with_ext("subscription", "odd");
        let response = h.call(tags).await;
        assert_code(&response, ResponseCode::Success);
        assert!(response.body.windows(2).any(|w| w == b"m1"));
        assert!(!response.body.windows(2).any(|w| w == b"m0"));
        let sql = pull(0, 0, 32, SUBSCRIPTION)
            .with_ext("expressionType", "SQL92")
            .with_ext("subscription", "n = '2'");
        let response = h.call(sql).await;
        assert_code(&response, ResponseCode::Success);
        assert!(response.body.windows(2).any(|w| w == b"m2"));
        let bad = pull(0, 0, 32, SUBSCRIPTION)
            .with_ext("expressionType", "SQL92")
            .with_ext("subscription", "n = = (");
        let response = h.call(bad).await;
        assert_code(&response, ResponseCode::SubscriptionParseFailed);
        assert!(remark(&response).contains("parse the consumer's subscription"));
        let unknown_type = pull(0, 0, 32, SUBSCRIPTION)
            .with_ext("expressionType", "XPATH")
            .with_ext("subscription", "a");
        let response = h.call(unknown_type).await;
        assert_code(&response, ResponseCode::SubscriptionParseFailed);
    });
}

#[test]
fn sql_is_refused_when_property_filters_are_off() {
    run(async {
        let h = Harness::new().await;
        with_messages(&h, 1).await;
        let sql = pull(0, 0, 32, SUBSCRIPTION)
            .with_ext("expressionType", "SQL92")
            .with_ext("subscription", "n = '0'");
        let response = h.call(sql).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("does not support"),
            "{}",
            remark(&response)
        );
    });
}
