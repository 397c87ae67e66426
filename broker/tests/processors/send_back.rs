//! CONSUMER_SEND_MSG_BACK: retry and dead-letter queues.

use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use crate::requests::{assert_code, create_topic, remark, send};

fn back(offset: i64, group: &str, delay_level: i32, max_times: i32) -> RemotingCommand {
    RemotingCommand::new_request(rc::CONSUMER_SEND_MSG_BACK)
        .with_ext("offset", offset)
        .with_ext("group", group)
        .with_ext("delayLevel", delay_level)
        .with_ext("originTopic", "B")
        .with_ext("maxReconsumeTimes", max_times)
}

async fn sent_offset(h: &Harness, reconsume_times: i32) -> i64 {
    let mut request = send("B", 0, b"retry me", "");
    request.set_ext("reconsumeTimes", reconsume_times);
    let response = h.call(request).await;
    assert_code(&response, ResponseCode::Success);
    let id = response.ext("msgId").unwrap();
    rmq_core::message::msg_id::decode_offset_msg_id(id)
        .unwrap()
        .1
}

#[test]
fn a_negative_delay_level_goes_to_the_dead_letter_queue() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("B", 1)).await, ResponseCode::Success);
        let offset = sent_offset(&h, 0).await;
        assert_code(
            &h.call(back(offset, "CG", -1, 16)).await,
            ResponseCode::Success,
        );
        assert_eq!(h.store().max_queue_offset("%DLQ%CG", 0), 1);
    });
}

#[test]
fn a_retry_goes_to_the_delay_queue_and_creates_the_retry_topic() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("B", 1)).await, ResponseCode::Success);
        let offset = sent_offset(&h, 0).await;
        assert_code(
            &h.call(back(offset, "CG", 0, 16)).await,
            ResponseCode::Success,
        );
        assert!(h.ctx().topics.get("%RETRY%CG").is_some());
    });
}

#[test]
fn reconsume_times_at_the_i32_limit_do_not_overflow() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("B", 1)).await, ResponseCode::Success);
        let at_limit = sent_offset(&h, i32::MAX).await;
        let response = h.call(back(at_limit, "CG", 0, i32::MAX)).await;
        assert_code(&response, ResponseCode::Success);
        assert_eq!(h.store().max_queue_offset("%DLQ%CG", 0), 1);
        let below = sent_offset(&h, i32::MAX - 1).await;
        let response = h.call(back(below, "CG", 0, i32::MAX)).await;
        assert_code(&response, ResponseCode::Success);
    });
}

#[test]
fn a_bad_offset_is_a_system_error_and_nothing_is_stored() {
    run(async {
        let h = Harness::new().await;
        for offset in [-1, i64::MAX, 12345] {
            let response = h.call(back(offset, "CG", 0, 16)).await;
            assert_code(&response, ResponseCode::SystemError);
            assert!(
                remark(&response).contains("look message by offset failed"),
                "{}",
                remark(&response)
            );
        }
        assert_eq!(h.store().max_queue_offset("%DLQ%CG", 0), 0);
    });
}

#[test]
fn an_unknown_group_without_auto_create_is_refused() {
    run(async {
        let h = Harness::with_config(&[("autoCreateSubscriptionGroup", "false")]).await;
        let response = h.call(back(0, "Unknown", 0, 16)).await;
        assert_code(&response, ResponseCode::SubscriptionGroupNotExist);
        assert!(remark(&response).contains("Unknown"));
        let bad = h.call(back(0, "bad name!", 0, 16)).await;
        assert_code(&bad, ResponseCode::SubscriptionGroupNotExist);
    });
}

#[test]
fn under_sync_master_a_send_back_no_slave_confirmed_is_answered_as_a_failure() {
    run(async {
        let h =
            Harness::with_config(&[("brokerRole", "SYNC_MASTER"), ("slaveTimeout", "100")]).await;
        assert_code(&h.call(create_topic("B", 1)).await, ResponseCode::Success);
        let stored = h.call(send("B", 0, b"retry me", "")).await;
        assert_code(&stored, ResponseCode::SlaveNotAvailable);
        let id = stored.ext("msgId").unwrap();
        let offset = rmq_core::message::msg_id::decode_offset_msg_id(id)
            .unwrap()
            .1;
        // As RocketMQ: SYSTEM_ERROR naming the put status, so the consumer retries itself.
        let response = h.call(back(offset, "CG", -1, 16)).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("SLAVE_NOT_AVAILABLE"),
            "{}",
            remark(&response)
        );
        // With a slave holding the log, the same send-back succeeds.
        let store = h.store().clone();
        let replica = h.replica().clone();
        let _slave = replica.connected(store.max_physical_offset());
        let report = {
            let replica = replica.clone();
            let store = store.clone();
            async move {
                // The slave reports what the master appended meanwhile.
                for _ in 0..50 {
                    rmq_net::rt::sleep(std::time::Duration::from_millis(10)).await;
                    replica.on_report(store.max_physical_offset());
                }
            }
        };
        let (response, ()) =
            futures_util::future::join(h.call(back(offset, "CG", -1, 16)), report).await;
        assert_code(&response, ResponseCode::Success);
    });
}
