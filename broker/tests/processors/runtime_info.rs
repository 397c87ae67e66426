//! GET_BROKER_RUNTIME_INFO (28): every key RocketMQ 4.9.8's broker answers, with the
//! counts of what was really sent and pulled.

use rmq_broker::testing::{Harness, run};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use serde_json::Value;

use crate::requests::{assert_code, create_topic, send};

/// The keys of AdminBrokerProcessor.prepareRuntimeInfo, DefaultMessageStore.getRuntimeInfo
/// and StoreStatsService.getRuntimeInfo in 4.9.8 (without the path- and level-suffixed ones
/// and `remainHowManyDataToCommit`, which needs transientStorePoolEnable).
pub const APACHE_KEYS: &[&str] = &[
    "bootTimestamp",
    "runtime",
    "putMessageEntireTimeMax",
    "putMessageTimesTotal",
    "putMessageFailedTimes",
    "putMessageSizeTotal",
    "putMessageDistributeTime",
    "putMessageAverageSize",
    "dispatchMaxBuffer",
    "getMessageEntireTimeMax",
    "putTps",
    "getFoundTps",
    "getMissTps",
    "getTotalTps",
    "getTransferedTps",
    "putLatency99",
    "putLatency999",
    "commitLogDiskRatio",
    "consumeQueueDiskRatio",
    "commitLogMinOffset",
    "commitLogMaxOffset",
    "brokerVersionDesc",
    "brokerVersion",
    "msgPutTotalYesterdayMorning",
    "msgPutTotalTodayMorning",
    "msgPutTotalTodayNow",
    "msgGetTotalYesterdayMorning",
    "msgGetTotalTodayMorning",
    "msgGetTotalTodayNow",
    "sendThreadPoolQueueSize",
    "sendThreadPoolQueueCapacity",
    "pullThreadPoolQueueSize",
    "pullThreadPoolQueueCapacity",
    "queryThreadPoolQueueSize",
    "queryThreadPoolQueueCapacity",
    "EndTransactionQueueSize",
    "EndTransactionThreadPoolQueueCapacity",
    "dispatchBehindBytes",
    "pageCacheLockTimeMills",
    "sendThreadPoolQueueHeadWaitTimeMills",
    "pullThreadPoolQueueHeadWaitTimeMills",
    "queryThreadPoolQueueHeadWaitTimeMills",
    "earliestMessageTimeStamp",
    "startAcceptSendRequestTimeStamp",
    "remainTransientStoreBufferNumbs",
    "remainHowManyDataToFlush",
    "commitLogDirCapacity",
];

pub async fn runtime_info(h: &Harness) -> serde_json::Map<String, Value> {
    let info = h
        .call(RemotingCommand::new_request(rc::GET_BROKER_RUNTIME_INFO))
        .await;
    assert_code(&info, ResponseCode::Success);
    let body: Value = serde_json::from_slice(&info.body).unwrap();
    body["table"].as_object().expect("a table").clone()
}

fn pull(offset: i64) -> RemotingCommand {
    RemotingCommand::new_request(rc::PULL_MESSAGE)
        .with_ext("consumerGroup", "CG")
        .with_ext("topic", "R")
        .with_ext("queueId", 0)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", 32)
        .with_ext("sysFlag", 0)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", 0)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
}

#[test]
fn runtime_info_has_every_apache_key_and_counts_puts_and_gets() {
    run(async {
        let h = Harness::new().await;
        let before = runtime_info(&h).await;
        for key in APACHE_KEYS {
            let value = before.get(*key).and_then(Value::as_str);
            assert!(value.is_some(), "missing {key}: {before:?}");
        }
        assert_eq!(before["msgPutTotalTodayNow"], "0");
        assert_code(&h.call(create_topic("R", 1)).await, ResponseCode::Success);
        for _ in 0..3 {
            assert_code(
                &h.call(send("R", 0, b"body", "")).await,
                ResponseCode::Success,
            );
        }
        let pulled = h.call(pull(0)).await;
        assert_code(&pulled, ResponseCode::Success);
        assert_code(&h.call(pull(3)).await, ResponseCode::PullNotFound);
        let after = runtime_info(&h).await;
        assert_eq!(after["msgPutTotalTodayNow"], "3");
        assert_eq!(after["msgGetTotalTodayNow"], "3");
        assert_eq!(after["msgPutTotalTodayMorning"], "0");
        assert_eq!(after["putMessageTimesTotal"], "3");
        let max: i64 = after["commitLogMaxOffset"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(max, h.store().max_physical_offset());
        assert_eq!(after["commitLogMinOffset"], "0");
        let earliest: i64 = after["earliestMessageTimeStamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(earliest > 1_600_000_000_000, "{earliest}");
        let tps = after["putTps"].as_str().unwrap();
        assert_eq!(tps.split(' ').count(), 3, "{tps}");
        for part in tps.split(' ') {
            part.parse::<f64>().expect("three doubles");
        }
        let distribution = after["putMessageDistributeTime"].as_str().unwrap();
        assert!(distribution.starts_with("[<=0ms]:"), "{distribution}");
    });
}
