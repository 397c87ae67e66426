//! CLEAN_UNUSED_TOPIC (316), CLEAN_EXPIRED_CONSUMEQUEUE (306) and DELETE_EXPIRED_COMMITLOG
//! (329): what they delete, and that live data survives them.

use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use crate::requests::{assert_code, create_topic, send};

fn topics_with_queues(h: &Harness) -> Vec<String> {
    let mut topics: Vec<String> = h.store().queues().into_iter().map(|(t, _)| t).collect();
    topics.dedup();
    topics
}

#[test]
fn unused_topics_lose_their_queues_known_and_system_topics_keep_them() {
    run(async {
        let h = Harness::new().await;
        for topic in ["Kept", "Gone"] {
            assert_code(&h.call(create_topic(topic, 1)).await, ResponseCode::Success);
            assert_code(
                &h.call(send(topic, 0, b"x", "")).await,
                ResponseCode::Success,
            );
        }
        // a delay message puts a system topic's queue in the store
        let delayed = send("Kept", 0, b"later", "DELAY\u{1}1\u{2}");
        assert_code(&h.call(delayed).await, ResponseCode::Success);
        // forgotten by the table, as after a crash between the table and the store
        assert!(h.ctx().topics.remove("Gone"));
        let before = topics_with_queues(&h);
        assert!(before.contains(&"Gone".to_string()), "{before:?}");
        assert!(
            before.contains(&"SCHEDULE_TOPIC_XXXX".to_string()),
            "{before:?}"
        );
        let clean = RemotingCommand::new_request(rc::CLEAN_UNUSED_TOPIC);
        assert_code(&h.call(clean).await, ResponseCode::Success);
        let after = topics_with_queues(&h);
        assert!(!after.contains(&"Gone".to_string()), "{after:?}");
        assert!(after.contains(&"Kept".to_string()), "{after:?}");
        assert!(
            after.contains(&"SCHEDULE_TOPIC_XXXX".to_string()),
            "{after:?}"
        );
        assert_eq!(h.store().max_queue_offset("Kept", 0), 1);
    });
}

#[test]
fn expired_queue_and_commit_log_cleanups_keep_live_messages() {
    run(async {
        // every segment is expired at once; only the tail segment exists and is protected
        let h = Harness::with_config(&[("fileReservedTime", "0")]).await;
        assert_code(
            &h.call(create_topic("Live", 1)).await,
            ResponseCode::Success,
        );
        for _ in 0..3 {
            assert_code(
                &h.call(send("Live", 0, b"x", "")).await,
                ResponseCode::Success,
            );
        }
        for code in [rc::CLEAN_EXPIRED_CONSUMEQUEUE, rc::DELETE_EXPIRED_COMMITLOG] {
            assert_code(
                &h.call(RemotingCommand::new_request(code)).await,
                ResponseCode::Success,
            );
        }
        assert_eq!(h.store().min_queue_offset("Live", 0), 0);
        assert_eq!(h.store().max_queue_offset("Live", 0), 3);
        let view = RemotingCommand::new_request(rc::VIEW_MESSAGE_BY_ID).with_ext("offset", 0);
        assert_code(&h.call(view).await, ResponseCode::Success);
    });
}
