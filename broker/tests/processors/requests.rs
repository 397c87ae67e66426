//! Request builders shared by the processor tests.

use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

/// A SEND_MESSAGE (V1 header) of `body` to `topic`/`queue_id` with `properties`.
pub fn send(topic: &str, queue_id: i32, body: &[u8], properties: &str) -> RemotingCommand {
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
        .with_ext("properties", properties)
        .with_body(body.to_vec())
}

/// The same send with the V2 (single letter) header names.
pub fn send_v2(topic: &str, queue_id: i32, body: &[u8], properties: &str) -> RemotingCommand {
    RemotingCommand::new_request(rc::SEND_MESSAGE_V2)
        .with_ext("a", "PG")
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", queue_id)
        .with_ext("f", 0)
        .with_ext("g", 1)
        .with_ext("h", 0)
        .with_ext("i", properties)
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_body(body.to_vec())
}

/// UPDATE_AND_CREATE_TOPIC with `queues` read and write queues, read-write.
pub fn create_topic(topic: &str, queues: i32) -> RemotingCommand {
    RemotingCommand::new_request(rc::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", queues)
        .with_ext("writeQueueNums", queues)
        .with_ext("perm", 6)
        .with_ext("topicFilterType", "SINGLE_TAG")
}

/// Asserts the response's code, printing the remark when it differs.
#[track_caller]
pub fn assert_code(response: &RemotingCommand, code: ResponseCode) {
    assert_eq!(response.code, code.code(), "remark: {:?}", response.remark);
}

/// The response's remark ("" when none).
pub fn remark(response: &RemotingCommand) -> &str {
    response.remark.as_deref().unwrap_or_default()
}
