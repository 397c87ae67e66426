//! Topic and group administration, broker config, runtime info and stats.

use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};

use crate::requests::{assert_code, create_topic, remark, send};

#[test]
fn create_topic_refuses_bad_arguments_and_stores_nothing() {
    run(async {
        let h = Harness::new().await;
        for queues in [0, -1, 1025, i32::MAX] {
            let response = h.call(create_topic("Bad", queues)).await;
            assert_code(&response, ResponseCode::SystemError);
            assert!(
                remark(&response).contains("1..=1024"),
                "{}",
                remark(&response)
            );
        }
        let cases = [
            ("", "blank"),
            ("has space", "illegal characters"),
            ("TBW102", "AUTO_CREATE_TOPIC"),
            ("SCHEDULE_TOPIC_XXXX", "system topic"),
        ];
        for (topic, expected) in cases {
            let response = h.call(create_topic(topic, 4)).await;
            assert_code(&response, ResponseCode::SystemError);
            assert!(
                remark(&response).contains(expected),
                "{topic}: {}",
                remark(&response)
            );
        }
        let long = "x".repeat(128);
        assert_code(
            &h.call(create_topic(&long, 4)).await,
            ResponseCode::SystemError,
        );
        let mut no_perm = create_topic("Bad", 4);
        no_perm.ext_fields.remove("perm");
        let response = h.call(no_perm).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(remark(&response).contains("perm"), "{}", remark(&response));
        assert!(h.ctx().topics.get("Bad").is_none());
        assert!(h.ctx().topics.get(&long).is_none());
    });
}

#[test]
fn create_update_query_and_delete_a_topic() {
    run(async {
        let h = Harness::new().await;
        assert_code(
            &h.call(create_topic("Orders", 4)).await,
            ResponseCode::Success,
        );
        assert_code(
            &h.call(create_topic("Orders", 8)).await,
            ResponseCode::Success,
        );
        assert_eq!(h.ctx().topics.get("Orders").unwrap().write_queue_nums, 8);
        let all = h
            .call(RemotingCommand::new_request(rc::GET_ALL_TOPIC_CONFIG))
            .await;
        assert_code(&all, ResponseCode::Success);
        let body: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
        assert_eq!(body["topicConfigTable"]["Orders"]["readQueueNums"], 8);
        assert_code(
            &h.call(send("Orders", 3, b"x", "")).await,
            ResponseCode::Success,
        );
        let stats =
            RemotingCommand::new_request(rc::GET_TOPIC_STATS_INFO).with_ext("topic", "Orders");
        assert_code(&h.call(stats.clone()).await, ResponseCode::Success);
        let delete =
            RemotingCommand::new_request(rc::DELETE_TOPIC_IN_BROKER).with_ext("topic", "Orders");
        assert_code(&h.call(delete).await, ResponseCode::Success);
        assert!(h.ctx().topics.get("Orders").is_none());
        let gone = h.call(stats).await;
        assert_code(&gone, ResponseCode::TopicNotExist);
        assert!(remark(&gone).contains("not exist"), "{}", remark(&gone));
    });
}

#[test]
fn system_topics_cannot_be_deleted() {
    run(async {
        let h = Harness::new().await;
        let delete = RemotingCommand::new_request(rc::DELETE_TOPIC_IN_BROKER)
            .with_ext("topic", "SCHEDULE_TOPIC_XXXX");
        let response = h.call(delete).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(h.ctx().topics.get("SCHEDULE_TOPIC_XXXX").is_some());
    });
}

#[test]
fn subscription_groups_refuse_bad_bodies_and_names() {
    run(async {
        let h = Harness::new().await;
        let create = |body: &str| {
            RemotingCommand::new_request(rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(body.as_bytes().to_vec())
        };
        let garbage = h.call(create("nope")).await;
        assert_code(&garbage, ResponseCode::SystemError);
        assert!(remark(&garbage).contains("bad subscription group body"));
        let blank = h.call(create(r#"{"groupName":"  "}"#)).await;
        assert_code(&blank, ResponseCode::SystemError);
        let long = format!(r#"{{"groupName":"{}"}}"#, "g".repeat(256));
        assert_code(&h.call(create(&long)).await, ResponseCode::SystemError);
        assert_code(
            &h.call(create(r#"{"groupName":"Good"}"#)).await,
            ResponseCode::Success,
        );
        assert!(h.ctx().groups.get("Good").is_some());
        assert_eq!(
            h.ctx().groups.all().subscription_group_table.len(),
            1 + base_groups(&h)
        );
    });
}

fn base_groups(h: &Harness) -> usize {
    h.ctx()
        .groups
        .all()
        .subscription_group_table
        .keys()
        .filter(|g| *g != "Good")
        .count()
}

#[test]
fn broker_config_and_runtime_info_answer() {
    run(async {
        let h = Harness::new().await;
        let config = h
            .call(RemotingCommand::new_request(rc::GET_BROKER_CONFIG))
            .await;
        assert_code(&config, ResponseCode::Success);
        let text = String::from_utf8(config.body.to_vec()).unwrap();
        assert!(text.contains("brokerName=broker-a"), "{text}");
        let info = h
            .call(RemotingCommand::new_request(rc::GET_BROKER_RUNTIME_INFO))
            .await;
        assert_code(&info, ResponseCode::Success);
        let body: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
        assert!(body["table"]["brokerVersion"].is_string(), "{body}");
    });
}

#[test]
fn consume_stats_of_an_unknown_group_are_empty_and_known_ones_count_lag() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("S", 1)).await, ResponseCode::Success);
        for _ in 0..3 {
            assert_code(&h.call(send("S", 0, b"x", "")).await, ResponseCode::Success);
        }
        let stats = |group: &str| {
            RemotingCommand::new_request(rc::GET_CONSUME_STATS)
                .with_ext("consumerGroup", group)
                .with_ext("topic", "S")
        };
        let unknown = h.call(stats("Nobody")).await;
        assert_code(&unknown, ResponseCode::Success);
        h.ctx().offsets.commit("G", "S", 0, 1);
        let known = h.call(stats("G")).await;
        assert_code(&known, ResponseCode::Success);
        let text = String::from_utf8_lossy(&known.body);
        assert!(text.contains("\"brokerOffset\":3"), "{text}");
        assert!(text.contains("\"consumerOffset\":1"), "{text}");
        let missing = RemotingCommand::new_request(rc::GET_CONSUME_STATS);
        assert_code(&h.call(missing).await, ResponseCode::SystemError);
    });
}

#[test]
fn an_unknown_request_code_is_not_supported() {
    run(async {
        let h = Harness::new().await;
        let response = h.call(RemotingCommand::new_request(987_654)).await;
        assert_code(&response, ResponseCode::RequestCodeNotSupported);
        assert!(
            remark(&response).contains("987654"),
            "{}",
            remark(&response)
        );
    });
}

#[test]
fn update_broker_config_refuses_bad_values_and_keeps_the_old_config() {
    run(async {
        let h = Harness::new().await;
        let update = |body: &str| {
            RemotingCommand::new_request(rc::UPDATE_BROKER_CONFIG)
                .with_body(body.as_bytes().to_vec())
        };
        let empty = h.call(update("")).await;
        assert_code(&empty, ResponseCode::SystemError);
        let bad = h
            .call(update("defaultTopicQueueNums=abc\nlongPollingEnable=false"))
            .await;
        assert_code(&bad, ResponseCode::SystemError);
        assert!(
            remark(&bad).contains("defaultTopicQueueNums"),
            "{}",
            remark(&bad)
        );
        assert!(
            h.ctx().live_config.load().long_polling_enable,
            "nothing applied"
        );
        assert_code(
            &h.call(update("longPollingEnable=false")).await,
            ResponseCode::Success,
        );
        assert!(!h.ctx().live_config.load().long_polling_enable);
    });
}

#[test]
fn reset_offset_of_an_unknown_group_or_topic_changes_nothing() {
    run(async {
        let h = Harness::new().await;
        assert_code(&h.call(create_topic("RS", 2)).await, ResponseCode::Success);
        for _ in 0..3 {
            assert_code(
                &h.call(send("RS", 0, b"x", "")).await,
                ResponseCode::Success,
            );
        }
        let reset = |topic: &str, group: &str| {
            RemotingCommand::new_request(rc::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_ext("topic", topic)
                .with_ext("group", group)
                .with_ext("timestamp", 0)
                .with_ext("isForce", true)
        };
        let unknown_topic = h.call(reset("Nope", "G")).await;
        assert_code(&unknown_topic, ResponseCode::SystemError);
        assert!(
            remark(&unknown_topic).contains("no topic"),
            "{}",
            remark(&unknown_topic)
        );
        // the group has an offset for queue 0 only: refused, and queue 0 keeps its offset
        h.ctx().offsets.commit("G", "RS", 0, 3);
        let partial = h.call(reset("RS", "G")).await;
        assert_code(&partial, ResponseCode::SystemError);
        assert_eq!(h.ctx().offsets.query("G", "RS", 0), Some(3));
        h.ctx().offsets.commit("G", "RS", 1, 0);
        assert_code(&h.call(reset("RS", "G")).await, ResponseCode::Success);
        assert_eq!(h.ctx().offsets.query("G", "RS", 0), Some(0));
    });
}

#[test]
fn connection_lists_of_unknown_groups_are_errors() {
    run(async {
        let h = Harness::new().await;
        let producers = RemotingCommand::new_request(rc::GET_PRODUCER_CONNECTION_LIST)
            .with_ext("producerGroup", "NoProducers");
        let response = h.call(producers).await;
        assert_code(&response, ResponseCode::SystemError);
        assert!(
            remark(&response).contains("not exist"),
            "{}",
            remark(&response)
        );
        let consumers = RemotingCommand::new_request(rc::GET_CONSUMER_CONNECTION_LIST)
            .with_ext("consumerGroup", "NoConsumers");
        assert_code(&h.call(consumers).await, ResponseCode::ConsumerNotOnline);
    });
}

/// Every key RocketMQ 4.9.7's broker answers that rmq-fast had no field for (mqadmin
/// `getBrokerConfig` against Apache; `exportConfigs` reads filterServerNums, traceOn, useTLS).
const ROCKETMQ_ONLY_KEYS: &[&str] = &[
    "adminBrokerThreadPoolNums",
    "autoDeleteUnusedStats",
    "bitMapLengthConsumeQueueExt",
    "brokerFastFailureEnable",
    "channelNotActiveInterval",
    "clientAsyncSemaphoreValue",
    "clientCallbackExecutorThreads",
    "clientChannelMaxIdleTimeSeconds",
    "clientCloseSocketIfTimeout",
    "clientManageThreadPoolNums",
    "clientManagerThreadPoolQueueCapacity",
    "clientOnewaySemaphoreValue",
    "clientPooledByteBufAllocatorEnable",
    "clientSocketRcvBufSize",
    "clientSocketSndBufSize",
    "clientWorkerThreads",
    "commercialBaseCount",
    "commercialBigCount",
    "commercialEnable",
    "commercialTimerCount",
    "commercialTransCount",
    "connectTimeoutMillis",
    "consumerFallbehindThreshold",
    "consumerManageThreadPoolNums",
    "consumerManagerThreadPoolQueueCapacity",
    "debugLockEnable",
    "disableConsumeIfConsumerReadSlowly",
    "diskFallRecorded",
    "duplicationEnable",
    "enableCalcFilterBitMap",
    "enableConsumeQueueExt",
    "enableDetailStat",
    "enableLmq",
    "enableMultiDispatch",
    "enableScheduleAsyncDeliver",
    "enableScheduleMessageStats",
    "endTransactionPoolQueueCapacity",
    "endTransactionThreadPoolNums",
    "expectConsumerNumUseFilter",
    "fastFailIfNoBufferInStorePool",
    "fetchNamesrvAddrByAddressServer",
    "filterDataCleanTimeSpan",
    "filterServerNums",
    "filterSupportRetry",
    "flushConsumerOffsetHistoryInterval",
    "flushLeastPagesWhenWarmMapedFile",
    "heartbeatThreadPoolNums",
    "heartbeatThreadPoolQueueCapacity",
    "highSpeedMode",
    "isEnableBatchPush",
    "isolateLogEnable",
    "mapedFileSizeCommitLog",
    "mappedFileSizeConsumeQueueExt",
    "maxDelayTime",
    "maxErrorRateOfBloomFilter",
    "maxLmqConsumeQueueNum",
    "messageStorePlugIn",
    "offsetCheckInSlave",
    "osPageCacheBusyTimeOutMills",
    "processReplyMessageThreadPoolNums",
    "pullMessageThreadPoolNums",
    "pullThreadPoolQueueCapacity",
    "putMessageFutureThreadPoolNums",
    "putMsgIndexHightWater",
    "putThreadPoolQueueCapacity",
    "queryMessageThreadPoolNums",
    "queryThreadPoolQueueCapacity",
    "regionId",
    "replyThreadPoolQueueCapacity",
    "rocketmqHome",
    "scheduleAsyncDeliverMaxPendingLimit",
    "scheduleAsyncDeliverMaxResendNum2Blocked",
    "sendMessageThreadPoolNums",
    "sendThreadPoolQueueCapacity",
    "serverAsyncSemaphoreValue",
    "serverCallbackExecutorThreads",
    "serverOnewaySemaphoreValue",
    "serverPooledByteBufAllocatorEnable",
    "serverSelectorThreads",
    "serverSocketBacklog",
    "serverSocketRcvBufSize",
    "serverSocketSndBufSize",
    "serverWorkerThreads",
    "startAcceptSendRequestTimeStamp",
    "storePathCommitLog",
    "storeReplyMessageEnable",
    "traceOn",
    "transferMsgByHeap",
    "useEpollNativeSelector",
    "useReentrantLockWhenPutMessage",
    "useTLS",
    "waitTimeMillsInHeartbeatQueue",
    "waitTimeMillsInPullQueue",
    "waitTimeMillsInSendQueue",
    "waitTimeMillsInTransactionQueue",
    "warmMapedFileEnable",
    "writeBufferHighWaterMark",
    "writeBufferLowWaterMark",
];

#[test]
fn broker_config_answers_every_rocketmq_key_once_with_file_values_first() {
    run(async {
        let h = Harness::with_config(&[("sendMessageThreadPoolNums", "128")]).await;
        let config = h
            .call(RemotingCommand::new_request(rc::GET_BROKER_CONFIG))
            .await;
        assert_code(&config, ResponseCode::Success);
        let text = String::from_utf8(config.body.to_vec()).unwrap();
        let pairs: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let value = |key: &str| {
            let found: Vec<&str> = pairs
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .collect();
            assert_eq!(found.len(), 1, "{key} shown {} times", found.len());
            found[0]
        };
        for key in ROCKETMQ_ONLY_KEYS {
            value(key);
        }
        assert!(pairs.len() >= 178, "{} keys", pairs.len());
        assert_eq!(value("sendMessageThreadPoolNums"), "128");
        assert_eq!(value("traceOn"), "true");
        assert_eq!(value("filterServerNums"), "0");
        assert_eq!(value("mapedFileSizeCommitLog"), "16777216");
        assert!(value("storePathCommitLog").ends_with("commitlog"), "{text}");
    });
}
