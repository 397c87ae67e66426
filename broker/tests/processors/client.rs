//! HEART_BEAT, UNREGISTER_CLIENT and GET_CONSUMER_LIST_BY_GROUP.

use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use serde_json::json;

use crate::requests::{assert_code, remark};

fn heartbeat(client: &str, group: &str) -> RemotingCommand {
    let body = json!({
        "clientID": client,
        "producerDataSet": [{"groupName": "PG"}],
        "consumerDataSet": [{
            "groupName": group,
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet": [{"topic": "T", "subString": "*", "tagsSet": [], "codeSet": []}],
            "unitMode": false
        }]
    });
    RemotingCommand::new_request(rc::HEART_BEAT).with_body(body.to_string().into_bytes())
}

fn consumer_list(group: &str) -> RemotingCommand {
    RemotingCommand::new_request(rc::GET_CONSUMER_LIST_BY_GROUP).with_ext("consumerGroup", group)
}

#[test]
fn a_heartbeat_registers_the_consumer_and_its_retry_topic_until_unregistered() {
    run(async {
        let h = Harness::new().await;
        assert_code(
            &h.call(heartbeat("client-1", "CG")).await,
            ResponseCode::Success,
        );
        assert!(h.ctx().groups.get("CG").is_some());
        assert!(h.ctx().topics.get("%RETRY%CG").is_some());
        let list = h.call(consumer_list("CG")).await;
        assert_code(&list, ResponseCode::Success);
        assert!(String::from_utf8_lossy(&list.body).contains("client-1"));
        let unregister = RemotingCommand::new_request(rc::UNREGISTER_CLIENT)
            .with_ext("clientID", "client-1")
            .with_ext("consumerGroup", "CG")
            .with_ext("producerGroup", "PG");
        assert_code(&h.call(unregister).await, ResponseCode::Success);
        let after = h.call(consumer_list("CG")).await;
        assert_code(&after, ResponseCode::SystemError);
        assert!(remark(&after).contains("no consumer"), "{}", remark(&after));
    });
}

#[test]
fn a_heartbeat_with_a_bad_group_creates_nothing() {
    run(async {
        let h = Harness::new().await;
        assert_code(
            &h.call(heartbeat("client-1", "bad group!")).await,
            ResponseCode::Success,
        );
        assert!(h.ctx().groups.get("bad group!").is_none());
        assert!(h.ctx().topics.get("%RETRY%bad group!").is_none());
        assert!(h.ctx().clients.consumer_ids("bad group!").is_empty());
    });
}

#[test]
fn a_bad_heartbeat_body_or_missing_client_id_is_a_system_error() {
    run(async {
        let h = Harness::new().await;
        let garbage = RemotingCommand::new_request(rc::HEART_BEAT).with_body(b"{{".to_vec());
        let response = h.call(garbage).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("bad heartbeat body"),
            "{}",
            remark(&response)
        );
        let unregister = RemotingCommand::new_request(rc::UNREGISTER_CLIENT);
        let response = h.call(unregister).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("clientID"),
            "{}",
            remark(&response)
        );
    });
}

#[test]
fn an_unknown_enum_value_in_a_heartbeat_is_refused_and_registers_nothing() {
    run(async {
        let h = Harness::new().await;
        let body = json!({
            "clientID": "client-9",
            "consumerDataSet": [{"groupName": "EG", "consumeType": "CONSUME_SOMEHOW"}]
        });
        let request =
            RemotingCommand::new_request(rc::HEART_BEAT).with_body(body.to_string().into_bytes());
        let response = h.call(request).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("bad heartbeat body"),
            "{}",
            remark(&response)
        );
        assert!(h.ctx().groups.get("EG").is_none());
        assert!(h.ctx().clients.consumer_ids("EG").is_empty());
    });
}

#[test]
fn check_client_config_refuses_sql_it_cannot_compile() {
    run(async {
        let h = Harness::with_config(&[("enablePropertyFilter", "true")]).await;
        let check = |expression: &str| {
            let body = json!({
                "clientId": "c",
                "group": "G",
                "subscriptionData": {"topic": "T", "subString": expression, "expressionType": "SQL92"}
            });
            RemotingCommand::new_request(rc::CHECK_CLIENT_CONFIG)
                .with_body(body.to_string().into_bytes())
        };
        assert_code(&h.call(check("a > 1")).await, ResponseCode::Success);
        let bad = h.call(check("a >")).await;
        assert_code(&bad, ResponseCode::SubscriptionParseFailed);
        let garbage =
            RemotingCommand::new_request(rc::CHECK_CLIENT_CONFIG).with_body(b"{".to_vec());
        assert_code(&h.call(garbage).await, ResponseCode::SystemError);
    });
}
