//! QUERY/UPDATE_CONSUMER_OFFSET and the per-queue offset queries.

use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use crate::requests::{assert_code, create_topic, remark, send};

fn update(group: &str, topic: &str, queue_id: i32, offset: i64) -> RemotingCommand {
    RemotingCommand::new_request(rc::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("commitOffset", offset)
}

fn query(group: &str, topic: &str, queue_id: i32) -> RemotingCommand {
    RemotingCommand::new_request(rc::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
}

#[test]
fn committed_offsets_read_back() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("T", 2)).await, ResponseCode::Success);
        assert_code(
            &h.call(update("G", "T", 1, 42)).await,
            ResponseCode::Success,
        );
        let response = h.call(query("G", "T", 1)).await;
        assert_code(&response, ResponseCode::Success);
        assert_eq!(response.ext("offset"), Some("42"));
    });
}

#[test]
fn an_unknown_group_on_an_empty_queue_starts_at_zero() {
    run(async {
        let h = Harness::new().await;
        let response = h.call(query("NoSuchGroup", "NoSuchTopic", 0)).await;
        assert_code(&response, ResponseCode::Success);
        assert_eq!(response.ext("offset"), Some("0"));
    });
}

#[test]
fn a_negative_offset_is_not_committed() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(update("G", "T", 0, 5)).await, ResponseCode::Success);
        assert_code(
            &h.call(update("G", "T", 0, -3)).await,
            ResponseCode::Success,
        );
        assert_eq!(h.ctx().offsets.query("G", "T", 0), Some(5));
    });
}

#[test]
fn a_negative_queue_id_is_refused_and_not_committed() {
    run(async {
        let h = Harness::new().await;
        let response = h.call(update("G", "T", -1, 5)).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("queueId"),
            "{}",
            remark(&response)
        );
        assert_eq!(h.ctx().offsets.query("G", "T", -1), None);
        let query = h.call(query("G", "T", -1)).await;
        assert_code(&query, ResponseCode::SystemError);
    });
}

#[test]
fn bad_names_are_refused_and_not_committed() {
    run(async {
        let h = Harness::new().await;
        let blank = h.call(update(" ", "T", 0, 5)).await;
        assert_code(&blank, ResponseCode::SystemError);
        assert!(remark(&blank).contains("blank"), "{}", remark(&blank));
        let long_topic = "t".repeat(200);
        assert_code(
            &h.call(update("G", &long_topic, 0, 5)).await,
            ResponseCode::SystemError,
        );
        assert_eq!(h.ctx().offsets.query("G", &long_topic, 0), None);
        let missing = RemotingCommand::new_request(rc::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "G")
            .with_ext("topic", "T")
            .with_ext("queueId", 0);
        let response = h.call(missing).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("commitOffset"),
            "{}",
            remark(&response)
        );
    });
}

#[test]
fn queue_offsets_follow_sends() {
    run(async {
        let h = Harness::new().await;
        for _ in 0..3 {
            assert_code(&h.call(send("Q", 0, b"x", "")).await, ResponseCode::Success);
        }
        let ask = |code: i32| {
            RemotingCommand::new_request(code)
                .with_ext("topic", "Q")
                .with_ext("queueId", 0)
                .with_ext("timestamp", 0)
        };
        let max = h.call(ask(rc::GET_MAX_OFFSET)).await;
        assert_eq!(max.ext("offset"), Some("3"));
        let min = h.call(ask(rc::GET_MIN_OFFSET)).await;
        assert_eq!(min.ext("offset"), Some("0"));
        let search = h.call(ask(rc::SEARCH_OFFSET_BY_TIMESTAMP)).await;
        assert_code(&search, ResponseCode::Success);
        let earliest = h.call(ask(rc::GET_EARLIEST_MSG_STORETIME)).await;
        assert_code(&earliest, ResponseCode::Success);
        assert!(earliest.ext("timestamp").unwrap().parse::<i64>().unwrap() > 0);
        let absent = h
            .call(ask(rc::GET_MAX_OFFSET).with_ext("queueId", i32::MIN))
            .await;
        assert_code(&absent, ResponseCode::Success);
        assert_eq!(absent.ext("offset"), Some("0"));
    });
}

#[test]
fn view_message_by_a_bad_offset_is_a_system_error() {
    run(async {
        let h = Harness::new().await;
        for offset in ["-1", "999999999", "zz"] {
            let request =
                RemotingCommand::new_request(rc::VIEW_MESSAGE_BY_ID).with_ext("offset", offset);
            let response = h.call(request).await;
            assert_code(&response, ResponseCode::SystemError);
            assert!(!remark(&response).is_empty());
        }
    });
}

/// GET_ALL_* with the rmq-fast version extension: a slave that holds the current version
/// gets no body; a 4.x slave (no extension) always gets the whole table.
#[test]
fn a_metadata_copy_request_with_the_current_version_gets_no_body() {
    use rmq_broker::replication::metadata_sync::{KNOWN_VERSION, UNCHANGED, VERSION};
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("T", 1)).await, ResponseCode::Success);
        for code in [
            rc::GET_ALL_TOPIC_CONFIG,
            rc::GET_ALL_CONSUMER_OFFSET,
            rc::GET_ALL_DELAY_OFFSET,
            rc::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
        ] {
            let full = h.call(RemotingCommand::new_request(code)).await;
            assert_code(&full, ResponseCode::Success);
            assert!(
                !full.body.is_empty(),
                "code {code}: a 4.x request gets the table"
            );
            assert_eq!(full.ext(UNCHANGED), None);
            let version = full.ext(VERSION).expect("version").to_string();
            let again = RemotingCommand::new_request(code).with_ext(KNOWN_VERSION, &version);
            let unchanged = h.call(again).await;
            assert_code(&unchanged, ResponseCode::Success);
            assert_eq!(unchanged.ext(UNCHANGED), Some("true"), "code {code}");
            assert!(unchanged.body.is_empty(), "code {code}");
            let stale = RemotingCommand::new_request(code).with_ext(KNOWN_VERSION, "older");
            assert!(!h.call(stale).await.body.is_empty(), "code {code}");
        }
        // A commit moves the offsets' version; the same value committed again does not.
        let get = || RemotingCommand::new_request(rc::GET_ALL_CONSUMER_OFFSET);
        let before = h.call(get()).await.ext(VERSION).unwrap().to_string();
        assert_code(&h.call(update("G", "T", 0, 5)).await, ResponseCode::Success);
        let after = h.call(get()).await.ext(VERSION).unwrap().to_string();
        assert_ne!(before, after);
        assert_code(&h.call(update("G", "T", 0, 5)).await, ResponseCode::Success);
        assert_eq!(h.call(get()).await.ext(VERSION).unwrap(), after);
        let known = get().with_ext(KNOWN_VERSION, &before);
        let copied = h.call(known).await;
        let body = String::from_utf8_lossy(&copied.body).to_string();
        assert!(body.contains("T@G"), "{body}");
    });
}
