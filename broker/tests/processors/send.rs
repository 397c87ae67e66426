//! SEND_MESSAGE / V2 / batch.

use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

fn send(topic: &str, queue_id: i32, body: &[u8]) -> RemotingCommand {
    RemotingCommand::new_request(rc::SEND_MESSAGE)
        .with_ext("producerGroup", "PG")
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("defaultTopicQueueNums", 4)
        .with_ext("queueId", queue_id)
        .with_ext("sysFlag", 0)
        .with_ext("bornTimestamp", 1)
        .with_ext("flag", 0)
        .with_ext("reconsumeTimes", 0)
        .with_ext("unitMode", false)
        .with_ext("properties", "")
        .with_body(body.to_vec())
}

#[test]
fn send_auto_creates_topic_and_appends() {
    run(async {
        let h = Harness::new().await;
        let response = h.call(send("T1", 0, b"hello")).await;
        assert_eq!(response.code, ResponseCode::Success.code(), "{:?}", response.remark);
        assert_eq!(response.ext("queueOffset"), Some("0"));
        assert!(h.ctx().topics.get("T1").is_some());
    });
}
