//! The admin reads of mqadmin, the dashboard and the exporter: QUERY_TOPIC_CONSUME_BY_WHO
//! (300), GET_SYSTEM_TOPIC_LIST_FROM_BROKER (305), VIEW_BROKER_STATS_DATA (315),
//! GET_BROKER_CONSUME_STATS (317), QUERY_CONSUME_QUEUE (321), GET_ALL_PRODUCER_INFO (328),
//! and GET_CONSUMER_RUNNING_INFO (307) relayed to the consumer.

use futures_util::StreamExt;
use rmq_broker::stats::CoreStats;
use rmq_broker::stats::history::local_day;
use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use rmq_net::RequestHandler;
use serde_json::{Value, json};

use crate::requests::{assert_code, create_topic, remark, send};

fn heartbeat(client: &str, group: &str, topic: &str) -> RemotingCommand {
    let body = json!({
        "clientID": client,
        "producerDataSet": [{"groupName": "PG"}],
        "consumerDataSet": [{
            "groupName": group,
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
            "subscriptionDataSet": [{"topic": topic, "subString": "*", "tagsSet": [], "codeSet": []}],
            "unitMode": false
        }]
    });
    RemotingCommand::new_request(rc::HEART_BEAT).with_body(body.to_string().into_bytes())
}

fn commit(group: &str, topic: &str, queue_id: i32, offset: i64) -> RemotingCommand {
    RemotingCommand::new_request(rc::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("commitOffset", offset)
}

fn json_of(response: &RemotingCommand) -> Value {
    serde_json::from_slice(&response.body).expect("a JSON body")
}

async fn topic_with_messages(h: &Harness, topic: &str, count: usize) {
    assert_code(&h.call(create_topic(topic, 2)).await, ResponseCode::Success);
    for i in 0..count {
        let sent = h.call(send(topic, 0, format!("m{i}").as_bytes(), "")).await;
        assert_code(&sent, ResponseCode::Success);
    }
}

#[test]
fn consumers_of_a_topic_are_online_subscribers_and_groups_with_offsets() {
    run(async {
        let h = Harness::new().await;
        topic_with_messages(&h, "T", 2).await;
        assert_code(
            &h.call(heartbeat("c1", "Online", "T")).await,
            ResponseCode::Success,
        );
        assert_code(
            &h.call(commit("Offline", "T", 0, 1)).await,
            ResponseCode::Success,
        );
        assert_code(
            &h.call(commit("Elsewhere", "U", 0, 1)).await,
            ResponseCode::Success,
        );
        let who =
            RemotingCommand::new_request(rc::QUERY_TOPIC_CONSUME_BY_WHO).with_ext("topic", "T");
        let response = h.call(who).await;
        assert_code(&response, ResponseCode::Success);
        assert_eq!(
            json_of(&response),
            json!({"groupList": ["Offline", "Online"]})
        );
        let missing = h
            .call(RemotingCommand::new_request(rc::QUERY_TOPIC_CONSUME_BY_WHO))
            .await;
        assert_code(&missing, ResponseCode::SystemError);
        assert!(remark(&missing).contains("topic"), "{}", remark(&missing));
    });
}

#[test]
fn system_topics_are_rocketmqs_set_plus_ours() {
    run(async {
        let h = Harness::new().await;
        let response = h
            .call(RemotingCommand::new_request(
                rc::GET_SYSTEM_TOPIC_LIST_FROM_BROKER,
            ))
            .await;
        assert_code(&response, ResponseCode::Success);
        let body = json_of(&response);
        let topics: Vec<&str> = body["topicList"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for expected in [
            "TBW102",
            "SCHEDULE_TOPIC_XXXX",
            "RMQ_SYS_TRANS_HALF_TOPIC",
            "RMQ_SYS_TRANS_OP_HALF_TOPIC",
            "RMQ_SYS_TRACE_TOPIC",
            "SELF_TEST_TOPIC",
            "OFFSET_MOVED_EVENT",
            "rmq_sys_timer_buckets",
        ] {
            assert!(
                topics.contains(&expected),
                "{expected} missing from {topics:?}"
            );
        }
        assert!(!topics.contains(&"DefaultCluster"), "{topics:?}");
    });
}

#[test]
fn producers_are_listed_by_group_with_their_clients() {
    run(async {
        let h = Harness::new().await;
        let empty = h
            .call(RemotingCommand::new_request(rc::GET_ALL_PRODUCER_INFO))
            .await;
        assert_code(&empty, ResponseCode::Success);
        assert_eq!(json_of(&empty), json!({"data": {}}));
        assert_code(
            &h.call(heartbeat("p1", "CG", "T")).await,
            ResponseCode::Success,
        );
        let response = h
            .call(RemotingCommand::new_request(rc::GET_ALL_PRODUCER_INFO))
            .await;
        let body = json_of(&response);
        let clients = body["data"]["PG"].as_array().expect("group PG");
        assert_eq!(clients.len(), 1, "{body}");
        assert_eq!(clients[0]["clientId"], "p1");
        assert_eq!(clients[0]["remoteIP"], "127.0.0.1:40000");
        assert_eq!(clients[0]["language"], "JAVA");
        let seen = clients[0]["lastUpdateTimestamp"].as_i64().unwrap();
        assert!(
            (seen - rmq_broker::context::now_ms()).abs() < 60_000,
            "{seen}"
        );
    });
}

#[test]
fn stats_data_counts_puts_since_the_window_began() {
    run(async {
        let h = Harness::new().await;
        let now = rmq_broker::context::now_ms();
        // a sample from before the sends: the minute window starts there
        h.ctx()
            .stats_history
            .record(&CoreStats::default(), now - 2_000, local_day(now));
        topic_with_messages(&h, "S", 3).await;
        let view = |name: &str, key: &str| {
            RemotingCommand::new_request(rc::VIEW_BROKER_STATS_DATA)
                .with_ext("statsName", name)
                .with_ext("statsKey", key)
        };
        let response = h.call(view("TOPIC_PUT_NUMS", "S")).await;
        assert_code(&response, ResponseCode::Success);
        let body = json_of(&response);
        assert_eq!(body["statsMinute"]["sum"], 3, "{body}");
        assert!(body["statsMinute"]["tps"].as_f64().unwrap() > 0.0, "{body}");
        for period in ["statsHour", "statsDay"] {
            assert!(body[period]["sum"].is_i64(), "{body}");
        }
        for (name, key) in [("TOPIC_PUT_NUMS", "Nothing"), ("NO_SUCH_STATS", "S")] {
            let response = h.call(view(name, key)).await;
            assert_code(&response, ResponseCode::SystemError);
            assert_eq!(
                remark(&response),
                format!("The stats <{name}> <{key}> not exist")
            );
        }
    });
}

#[test]
fn broker_consume_stats_lists_each_group_with_its_lag() {
    run(async {
        let h = Harness::new().await;
        topic_with_messages(&h, "L", 5).await;
        assert_code(
            &h.call(commit("LagGroup", "L", 0, 2)).await,
            ResponseCode::Success,
        );
        let update_group = RemotingCommand::new_request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(br#"{"groupName":"LagGroup","consumeEnable":true}"#.to_vec());
        assert_code(&h.call(update_group).await, ResponseCode::Success);
        let response = h
            .call(
                RemotingCommand::new_request(rc::GET_BROKER_CONSUME_STATS)
                    .with_ext("isOrder", false),
            )
            .await;
        assert_code(&response, ResponseCode::Success);
        let text = String::from_utf8(response.body.to_vec()).unwrap();
        // queue-object map keys: not standard JSON, checked as text
        assert!(text.starts_with(r#"{"consumeStatsList":["#), "{text}");
        assert!(
            text.contains(r#"{"LagGroup":[{"offsetTable":{{"topic":"L","brokerName":"broker-a","queueId":0}:{"brokerOffset":5,"consumerOffset":2,"#),
            "{text}"
        );
        assert!(
            text.ends_with(r#","brokerAddr":"127.0.0.1:10911","totalDiff":3}"#),
            "{text}"
        );
        let ordered = h
            .call(
                RemotingCommand::new_request(rc::GET_BROKER_CONSUME_STATS)
                    .with_ext("isOrder", true),
            )
            .await;
        let text = String::from_utf8(ordered.body.to_vec()).unwrap();
        assert!(text.contains(r#"{"LagGroup":[]}"#), "{text}");
        assert!(text.ends_with(r#""totalDiff":0}"#), "{text}");
    });
}

#[test]
fn consume_queue_entries_point_at_the_stored_messages() {
    run(async {
        let h = Harness::new().await;
        topic_with_messages(&h, "Q", 4).await;
        let query = |index: i64, count: i32| {
            RemotingCommand::new_request(rc::QUERY_CONSUME_QUEUE)
                .with_ext("topic", "Q")
                .with_ext("queueId", 0)
                .with_ext("index", index)
                .with_ext("count", count)
                .with_ext("consumerGroup", "Nobody")
        };
        let response = h.call(query(1, 2)).await;
        assert_code(&response, ResponseCode::Success);
        let body = json_of(&response);
        assert_eq!(
            (
                body["minQueueIndex"].as_i64(),
                body["maxQueueIndex"].as_i64()
            ),
            (Some(0), Some(4))
        );
        assert_eq!(body["filterData"], "Nobody@Q is not online!");
        let entries = body["queueData"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{body}");
        let view = RemotingCommand::new_request(rc::VIEW_MESSAGE_BY_ID)
            .with_ext("offset", entries[0]["physicOffset"].as_i64().unwrap());
        let record = h.call(view).await;
        assert_code(&record, ResponseCode::Success);
        assert_eq!(
            record.body.len() as i64,
            entries[0]["physicSize"].as_i64().unwrap()
        );
        assert!(record.body.ends_with(b"m1") || record.body.windows(2).any(|w| w == b"m1"));
        let past_end = h.call(query(9, 2)).await;
        assert_code(&past_end, ResponseCode::Success);
        assert_eq!(remark(&past_end), "Index 9 of 0@Q is not exist!");
        let no_queue = h
            .call(
                RemotingCommand::new_request(rc::QUERY_CONSUME_QUEUE)
                    .with_ext("topic", "Q")
                    .with_ext("queueId", 7)
                    .with_ext("index", 0)
                    .with_ext("count", 1),
            )
            .await;
        assert_code(&no_queue, ResponseCode::SystemError);
        assert_eq!(remark(&no_queue), "7@Q is not exist!");
    });
}

#[test]
fn running_info_is_relayed_to_the_consumer_and_its_answer_back() {
    run(async {
        let mut h = Harness::new().await;
        assert_code(
            &h.call(heartbeat("c1", "CG", "T")).await,
            ResponseCode::Success,
        );
        let ask = |client: &str| {
            let mut request = RemotingCommand::new_request(rc::GET_CONSUMER_RUNNING_INFO)
                .with_ext("consumerGroup", "CG")
                .with_ext("clientId", client)
                .with_ext("jstackEnable", false);
            request.opaque = 77;
            request
        };
        let offline = h.call(ask("c2")).await;
        assert_code(&offline, ResponseCode::SystemError);
        assert_eq!(remark(&offline), "The Consumer <CG> <c2> not online");

        let call = rmq_net::rt::spawn({
            let handler = h.handler.clone();
            let conn = h.conn.clone();
            handler.handle(conn, ask("c1"))
        });
        let relayed = loop {
            let pushed = h.pushed.next().await.expect("a request to the consumer");
            if pushed.code == rc::GET_CONSUMER_RUNNING_INFO {
                break pushed;
            }
        };
        assert!(!relayed.is_response() && !relayed.is_oneway());
        assert_eq!(relayed.ext("clientId"), Some("c1"));
        assert_eq!(relayed.ext("jstackEnable"), Some("false"));
        let answer = RemotingCommand::response_for(&relayed, 0, None)
            .with_body(br#"{"properties":{"PROP_CONSUME_TYPE":"CONSUME_PASSIVELY"}}"#.to_vec());
        // a stray answer nobody asked for is dropped
        let mut stray = answer.clone();
        stray.opaque = relayed.opaque.wrapping_add(1000);
        h.handler.response(&h.conn, stray);
        h.handler.response(&h.conn, answer);
        let response = call.await.unwrap().expect("a response");
        assert_code(&response, ResponseCode::Success);
        assert_eq!(response.opaque, 77);
        assert!(response.is_response());
        assert_eq!(
            json_of(&response)["properties"]["PROP_CONSUME_TYPE"],
            "CONSUME_PASSIVELY"
        );
    });
}

#[test]
fn consume_directly_relays_the_stored_message_to_the_consumer() {
    run(async {
        let mut h = Harness::new().await;
        assert_code(&h.call(create_topic("D", 1)).await, ResponseCode::Success);
        let sent = h.call(send("D", 0, b"direct", "")).await;
        assert_code(&sent, ResponseCode::Success);
        let msg_id = sent.ext("msgId").expect("offset msgId").to_owned();
        assert_code(
            &h.call(heartbeat("c1", "CG", "D")).await,
            ResponseCode::Success,
        );
        let ask = |id: &str| {
            RemotingCommand::new_request(rc::CONSUME_MESSAGE_DIRECTLY)
                .with_ext("consumerGroup", "CG")
                .with_ext("clientId", "c1")
                .with_ext("msgId", id)
        };
        let bad = h.call(ask("not-a-msg-id")).await;
        assert_code(&bad, ResponseCode::SystemError);
        assert!(
            remark(&bad).contains("can not find message"),
            "{}",
            remark(&bad)
        );

        let call = rmq_net::rt::spawn({
            let handler = h.handler.clone();
            let conn = h.conn.clone();
            handler.handle(conn, ask(&msg_id))
        });
        let relayed = loop {
            let pushed = h.pushed.next().await.expect("a request to the consumer");
            if pushed.code == rc::CONSUME_MESSAGE_DIRECTLY {
                break pushed;
            }
        };
        assert_eq!(relayed.ext("brokerName"), Some("broker-a"));
        assert_eq!(relayed.ext("msgId"), Some(msg_id.as_str()));
        let record = rmq_core::message::parse_record(&relayed.body).expect("a stored record");
        assert_eq!(record.topic(), "D");
        assert_eq!(record.body(), b"direct");
        let answer = RemotingCommand::response_for(&relayed, 0, None)
            .with_body(br#"{"order":false,"consumeResult":"CR_SUCCESS"}"#.to_vec());
        h.handler.response(&h.conn, answer);
        let response = call.await.unwrap().expect("a response");
        assert_code(&response, ResponseCode::Success);
        assert_eq!(json_of(&response)["consumeResult"], "CR_SUCCESS");
    });
}
