//! `topic-create-rate [existing] [creates] [concurrency] [admin|send]`: with `existing`
//! topics already in the table (default 0, added directly and made durable first), creates
//! `creates` more (default 2000) through the broker's request dispatch, in process
//! (`rmq_broker::testing::Harness`: a real store in a temporary directory, the real topic
//! change log and its fsyncs; no sockets), `concurrency` requests in flight (default 1: one
//! admin client creating one topic after another), and prints creates per second.
//! `admin` (default) sends UPDATE_AND_CREATE_TOPIC; `send` auto-creates each topic with a
//! SEND_MESSAGE to it (template TBW102).
//!
//! Each create is acknowledged only once it is durable, so the figures are the cost of
//! durable creates as a client sees it. Results are in docs/perf.md (Topic creation).

use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rmq_broker::testing::{Harness, run};
use rmq_core::body::TopicConfig;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};

fn arg(index: usize, default: usize) -> usize {
    std::env::args()
        .nth(index)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn create(topic: &str) -> RemotingCommand {
    RemotingCommand::new_request(request_code::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", "8")
        .with_ext("writeQueueNums", "8")
        .with_ext("perm", "6")
        .with_ext("topicFilterType", "SINGLE_TAG")
}

fn send(topic: &str) -> RemotingCommand {
    RemotingCommand::new_request(request_code::SEND_MESSAGE)
        .with_ext("producerGroup", "PG")
        .with_ext("topic", topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("defaultTopicQueueNums", 4)
        .with_ext("queueId", 0)
        .with_ext("sysFlag", 0)
        .with_ext("bornTimestamp", 1)
        .with_ext("flag", 0)
        .with_ext("reconsumeTimes", 0)
        .with_ext("unitMode", false)
        .with_ext("properties", "")
        .with_body(b"topic-create-rate".to_vec())
}

fn main() {
    let existing = arg(1, 0);
    let creates = arg(2, 2_000).max(1);
    let concurrency = arg(3, 1).max(1);
    let by_send = std::env::args().nth(4).as_deref() == Some("send");
    run(async {
        let harness = Harness::new().await;
        let topics = &harness.ctx().topics;
        let preload = Instant::now();
        for i in 0..existing {
            let mut config = TopicConfig::new(&format!("Existing_{i:07}"));
            config.read_queue_nums = 8;
            config.write_queue_nums = 8;
            topics.put(config);
        }
        topics.flush().expect("preloaded topics durable");
        eprintln!(
            "{existing} topics preloaded in {:.1} s",
            preload.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        let mut in_flight = FuturesUnordered::new();
        let mut next = 0;
        let mut done = 0;
        while done < creates {
            while next < creates && in_flight.len() < concurrency {
                let topic = format!("CreateRate_{next:07}");
                let request = if by_send {
                    send(&topic)
                } else {
                    create(&topic)
                };
                in_flight.push(harness.call(request));
                next += 1;
            }
            let response = in_flight.next().await.expect("a create in flight");
            assert_eq!(
                response.code,
                ResponseCode::Success as i32,
                "{:?}",
                response.remark
            );
            done += 1;
        }
        let total = started.elapsed().as_secs_f64();
        let mode = if by_send { "send" } else { "admin" };
        println!(
            "existing {existing} mode {mode} concurrency {concurrency}: {creates} creates in {total:.2} s = {:.0}/s",
            creates as f64 / total
        );
    });
}
