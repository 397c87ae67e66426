//! LOCK_BATCH_MQ and UNLOCK_BATCH_MQ.

use rmq_broker::testing::{Harness, run};
use rmq_core::body::{PERM_READ, PERM_WRITE, SubscriptionGroupConfig};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use serde_json::json;

use crate::requests::{assert_code, remark};

fn lock_body(code: i32, client: &str, queues: &[i32]) -> RemotingCommand {
    let mq_set: Vec<_> = queues
        .iter()
        .map(|q| json!({"topic": "T", "brokerName": "broker-a", "queueId": q}))
        .collect();
    let body = json!({"consumerGroup": "G", "clientId": client, "mqSet": mq_set});
    RemotingCommand::new_request(code).with_body(body.to_string().into_bytes())
}

fn locked_queues(response: &RemotingCommand) -> Vec<i64> {
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json body");
    let mut queues: Vec<i64> = body["lockOKMQSet"]
        .as_array()
        .expect("lockOKMQSet")
        .iter()
        .map(|mq| mq["queueId"].as_i64().unwrap())
        .collect();
    queues.sort_unstable();
    queues
}

/// A harness whose topic `T` (4 queues) and group `G` exist: locks are granted only for those.
async fn harness_with_topic_and_group() -> Harness {
    let h = Harness::new().await;
    let broker = &h.core().broker;
    broker
        .topics
        .create_if_absent("T", 4, PERM_READ | PERM_WRITE);
    let group = SubscriptionGroupConfig {
        group_name: "G".into(),
        ..Default::default()
    };
    broker.groups.put(group).unwrap();
    h
}

#[test]
fn a_queue_locked_by_one_client_is_not_granted_to_another_until_unlocked() {
    run(async {
        let h = harness_with_topic_and_group().await;
        let first = h.call(lock_body(rc::LOCK_BATCH_MQ, "c1", &[0, 1])).await;
        assert_code(&first, ResponseCode::Success);
        assert_eq!(locked_queues(&first), [0, 1]);
        let second = h.call(lock_body(rc::LOCK_BATCH_MQ, "c2", &[1, 2])).await;
        assert_eq!(locked_queues(&second), [2]);
        let unlock = h.call(lock_body(rc::UNLOCK_BATCH_MQ, "c1", &[1])).await;
        assert_code(&unlock, ResponseCode::Success);
        let third = h.call(lock_body(rc::LOCK_BATCH_MQ, "c2", &[1, 2])).await;
        assert_eq!(locked_queues(&third), [1, 2]);
    });
}

#[test]
fn only_existing_queues_of_this_broker_are_locked_for_an_existing_group() {
    run(async {
        let h = Harness::new().await;
        let unknown_group = h.call(lock_body(rc::LOCK_BATCH_MQ, "c1", &[0])).await;
        assert_code(&unknown_group, ResponseCode::SubscriptionGroupNotExist);
        let h = harness_with_topic_and_group().await;
        // Queue 7 is beyond the topic's 4 queues; queue 0 exists.
        let granted = h.call(lock_body(rc::LOCK_BATCH_MQ, "c1", &[0, 7])).await;
        assert_eq!(locked_queues(&granted), [0]);
    });
}

#[test]
fn a_bad_lock_body_is_a_system_error() {
    run(async {
        let h = Harness::new().await;
        for body in [&b"not json"[..], br#"{"consumerGroup":"","clientId":"c"}"#] {
            let request = RemotingCommand::new_request(rc::LOCK_BATCH_MQ).with_body(body.to_vec());
            let response = h.call(request).await;
            assert_code(&response, ResponseCode::SystemError);
            assert!(
                remark(&response).contains("bad lock request body"),
                "{}",
                remark(&response)
            );
        }
        let unlock = RemotingCommand::new_request(rc::UNLOCK_BATCH_MQ).with_body(b"[".to_vec());
        assert_code(&h.call(unlock).await, ResponseCode::SystemError);
    });
}
