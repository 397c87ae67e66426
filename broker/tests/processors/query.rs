//! QUERY_MESSAGE (by key) and VIEW_MESSAGE_BY_ID.

use rmq_broker::testing::{Harness, run};
use rmq_core::message::properties::encode_properties;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use crate::requests::{assert_code, create_topic, remark, send};

fn by_key(key: &str, max_num: i32) -> RemotingCommand {
    RemotingCommand::new_request(rc::QUERY_MESSAGE)
        .with_ext("topic", "K")
        .with_ext("key", key)
        .with_ext("maxNum", max_num)
        .with_ext("beginTimestamp", 0)
        .with_ext("endTimestamp", i64::MAX)
}

#[test]
fn a_key_finds_its_messages_and_an_unknown_key_is_query_not_found() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("K", 1)).await, ResponseCode::Success);
        let props = encode_properties([("KEYS", "order-1")]);
        let sent = h.call(send("K", 0, b"payload", &props)).await;
        assert_code(&sent, ResponseCode::Success);
        let found = h.call(by_key("order-1", 32)).await;
        assert_code(&found, ResponseCode::Success);
        assert!(found.body.windows(7).any(|w| w == b"payload"));
        let absent = h.call(by_key("order-2", 32)).await;
        assert_code(&absent, ResponseCode::QueryNotFound);
        assert!(remark(&absent).contains("can not find message"));
        for max_num in [0, -5, i32::MIN] {
            let response = h.call(by_key("order-1", max_num)).await;
            assert_code(&response, ResponseCode::QueryNotFound);
        }
        let huge = h.call(by_key("order-1", i32::MAX)).await;
        assert_code(&huge, ResponseCode::Success);
        let view = RemotingCommand::new_request(rc::VIEW_MESSAGE_BY_ID)
            .with_ext("offset", sent.ext("msgId").unwrap());
        let viewed = h.call(view).await;
        assert_code(&viewed, ResponseCode::Success);
        assert!(viewed.body.windows(7).any(|w| w == b"payload"));
    });
}

#[test]
fn missing_query_headers_are_system_errors() {
    run(async {
        let h = Harness::new().await;
        let request = RemotingCommand::new_request(rc::QUERY_MESSAGE).with_ext("topic", "K");
        let response = h.call(request).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(!remark(&response).is_empty());
    });
}
