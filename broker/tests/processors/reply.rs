//! SEND_REPLY_MESSAGE(_V2): the reply is stored and pushed to the requesting client.

use rmq_broker::testing::{Harness, run};
use rmq_core::message::properties::encode_properties;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use serde_json::json;

use crate::requests::{assert_code, create_topic, remark, send};

fn reply_to(properties: &str) -> RemotingCommand {
    let mut request = send("R", 0, b"the answer", properties);
    request.code = rc::SEND_REPLY_MESSAGE;
    request
}

#[test]
fn a_reply_without_its_requester_is_refused_before_it_is_stored() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("R", 1)).await, ResponseCode::Success);
        let response = h.call(reply_to("")).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("REPLY_TO_CLIENT"),
            "{}",
            remark(&response)
        );
        assert_eq!(h.store().max_queue_offset("R", 0), 0, "nothing stored");
    });
}

#[test]
fn a_reply_is_stored_and_pushed_to_the_requester_connection() {
    run(async {
        let mut h = Harness::new().await;
        assert_code(&h.call(create_topic("R", 1)).await, ResponseCode::Success);
        let heartbeat =
            json!({"clientID": "requester-1", "producerDataSet": [{"groupName": "PG"}]});
        let request = RemotingCommand::new_request(rc::HEART_BEAT)
            .with_body(heartbeat.to_string().into_bytes());
        assert_code(&h.call(request).await, ResponseCode::Success);
        let props =
            encode_properties([("REPLY_TO_CLIENT", "requester-1"), ("CORRELATION_ID", "c1")]);
        let response = h.call(reply_to(&props)).await;
        assert_code(&response, ResponseCode::Success);
        assert_eq!(h.store().max_queue_offset("R", 0), 1);
        let pushed = h.pushed.try_recv().expect("a push");
        assert_eq!(pushed.code, rc::PUSH_REPLY_MESSAGE_TO_CLIENT);
        assert_eq!(&pushed.body[..], b"the answer");
        let unknown = encode_properties([("REPLY_TO_CLIENT", "nobody")]);
        let response = h.call(reply_to(&unknown)).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("not found"),
            "{}",
            remark(&response)
        );
    });
}
