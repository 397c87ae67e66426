//! Metadata travels with the data: a name server, a SYNC_MASTER and its SLAVE (the real
//! `rmq-fast` binary, loopback). The test
//! 1. commits a consumer offset on the master three times, each time checking that the slave
//!    serves it ~1.5 s later (bounded staleness of the metadata copy), while a DELAY=1 message
//!    is delivered on the master and its delay offset must reach the slave too;
//! 2. auto-creates a topic by sending 2,000 messages (SYNC_MASTER, every one acknowledged
//!    SUCCESS; right after the first acknowledgement the slave must already serve the new
//!    topic), kills the master with SIGKILL right after the last acknowledgement, and reads
//!    every acknowledged message back from the slave (before, the slave copied topic configs
//!    every 10 s and answered TOPIC_NOT_EXIST), and finds the committed offset there.
//!
//! About 10-15 s. `RMQ_FAST_BIN` points at a prebuilt binary, as for `crash_loop`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_core::body::{DelayOffsetSerializeWrapper, decode_body};
use rmq_core::message::properties::{encode_properties, keys};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::RemotingClient;
use support::{Acked, Broker, TIMEOUT, Topic};

/// Topic created explicitly on the master before anything else (offsets, delays, probes).
const PROBE: &str = "MetaProbeTopic";
/// Topic the 2,000 sends auto-create.
const AUTO: Topic = Topic {
    name: "MetaAutoTopic",
    queues: 4,
};
const MESSAGES: u64 = 2_000;
const GROUP: &str = "meta-group";
/// How stale a committed offset may be on the slave: a copy every 1 s, plus a margin for a
/// loaded CI host. Three rounds this far apart cannot all be served by a 10 s copy (the old
/// interval), so the test fails with it.
const STALENESS: Duration = Duration::from_millis(1_500);

fn write_config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.properties"));
    std::fs::write(&path, text).unwrap();
    path
}

fn broker_config(dir: &Path, name: &str, port: u16, namesrv: u16, role: &str) -> String {
    let root = dir.join(name);
    format!(
        "brokerClusterName=MetaCluster\nbrokerName=meta\n{role}listenPort={port}\n\
         namesrvAddr=127.0.0.1:{namesrv}\nbrokerIP1=127.0.0.1\nstorePathRootDir={}\n\
         logDir={}\nflushDiskType=ASYNC_FLUSH\nmappedFileSizeCommitLog=4194304\nmaxMessageSize=65536\n\
         mappedFileSizeConsumeQueue=60000\nshardCount=2\nautoCreateTopicEnable=true\n\
         cleanFileForciblyEnable=false\ndefaultTopicQueueNums=4\nmessageDelayLevel=1s 2s\n",
        root.join("store").display(),
        root.join("logs").display(),
    )
}

fn start(binary: &Path, args: &[&str], config: &Path, log: &Path) -> Broker {
    let log = std::fs::File::create(log).unwrap();
    std::process::Command::new(binary)
        .args(args)
        .arg(config)
        .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .map(rmq_test_support::process::KillOnDrop)
        .expect("start rmq-fast")
}

async fn invoke(client: &RemotingClient, request: RemotingCommand) -> RemotingCommand {
    client.invoke(request, TIMEOUT).await.expect("response")
}

fn send(topic: &str, queue_id: i32, body: &Bytes, properties: &str) -> RemotingCommand {
    RemotingCommand::new_request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", "meta-producer")
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", AUTO.queues)
        .with_ext("e", queue_id)
        .with_ext("f", 0)
        .with_ext("g", 1_700_000_000_000i64)
        .with_ext("h", 0)
        .with_ext("i", properties)
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_body(body.clone())
}

fn commit(offset: i64) -> RemotingCommand {
    RemotingCommand::new_request(request_code::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", PROBE)
        .with_ext("queueId", 0)
        .with_ext("commitOffset", offset)
}

async fn committed(client: &RemotingClient) -> Option<i64> {
    let request = RemotingCommand::new_request(request_code::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", GROUP)
        .with_ext("topic", PROBE)
        .with_ext("queueId", 0);
    let response = invoke(client, request).await;
    (response.code == ResponseCode::Success.code())
        .then(|| response.ext("offset").and_then(|o| o.trim().parse().ok()))
        .flatten()
}

async fn delay_offsets(client: &RemotingClient) -> DelayOffsetSerializeWrapper {
    let request = RemotingCommand::new_request(request_code::GET_ALL_DELAY_OFFSET);
    let response = invoke(client, request).await;
    assert_eq!(response.code, ResponseCode::Success.code());
    decode_body(&response.body).expect("delay offsets body")
}

#[test]
fn a_topic_auto_created_just_before_the_master_dies_and_the_group_offset_are_on_the_slave() {
    let binary = support::broker_binary();
    let dir = tempfile::tempdir().unwrap();
    let (namesrv_port, master_port, slave_port) = (
        support::free_port_pair(),
        support::free_port_pair(),
        support::free_port_pair(),
    );
    let namesrv_config = write_config(
        dir.path(),
        "namesrv",
        &format!(
            "listenPort={namesrv_port}\nkvConfigPath={}\n",
            dir.path().join("kv.json").display()
        ),
    );
    let master_role = format!(
        "brokerRole=SYNC_MASTER\nbrokerId=0\nhaListenPort={}\n",
        master_port + 1
    );
    let slave_role = format!(
        "brokerRole=SLAVE\nbrokerId=1\nhaListenPort={}\nhaMasterAddress=127.0.0.1:{}\n",
        slave_port + 1,
        master_port + 1
    );
    let master_config = write_config(
        dir.path(),
        "master",
        &broker_config(
            dir.path(),
            "master",
            master_port,
            namesrv_port,
            &master_role,
        ),
    );
    let slave_config = write_config(
        dir.path(),
        "slave",
        &broker_config(dir.path(), "slave", slave_port, namesrv_port, &slave_role),
    );
    let logs = |name: &str| dir.path().join(format!("{name}.out"));
    let _namesrv = start(
        &binary,
        &["namesrv", "-c"],
        &namesrv_config,
        &logs("namesrv"),
    );
    let mut master = start(&binary, &["broker", "-c"], &master_config, &logs("master"));
    let mut slave = start(&binary, &["broker", "-c"], &slave_config, &logs("slave"));
    let (master_addr, slave_addr) = (
        format!("127.0.0.1:{master_port}"),
        format!("127.0.0.1:{slave_port}"),
    );
    let runtime = rmq_net::rt::Runtime::new().unwrap();
    let outcome = runtime.block_on(async {
        support::wait_until_serving(&master_addr, &mut master.0, &logs("master")).await;
        support::wait_until_serving(&slave_addr, &mut slave.0, &logs("slave")).await;
        let to_master = RemotingClient::connect(&master_addr, TIMEOUT)
            .await
            .unwrap();
        let to_slave = RemotingClient::connect(&slave_addr, TIMEOUT).await.unwrap();
        let create = RemotingCommand::new_request(request_code::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", PROBE)
            .with_ext("readQueueNums", 1)
            .with_ext("writeQueueNums", 1)
            .with_ext("perm", 6);
        assert_eq!(invoke(&to_master, create).await.code, 0);
        // Until the slave replicates (and has learned the master's address).
        let deadline = Instant::now() + Duration::from_secs(30);
        let probe = Bytes::from_static(b"probe");
        while invoke(&to_master, send(PROBE, 0, &probe, "")).await.code != 0 {
            assert!(Instant::now() < deadline, "the slave never replicated");
            rmq_net::rt::sleep(Duration::from_millis(200)).await;
        }
        // Until the slave copies metadata at all (it learns the master's address from the
        // name server).
        assert_eq!(invoke(&to_master, commit(1)).await.code, 0);
        while committed(&to_slave).await != Some(1) {
            assert!(
                Instant::now() < deadline,
                "the slave never copied an offset"
            );
            rmq_net::rt::sleep(Duration::from_millis(200)).await;
        }
        // 1. Committed offsets and delay offsets follow within ~1 s.
        let delayed = encode_properties([(keys::DELAY, "1")]);
        let response = invoke(&to_master, send(PROBE, 0, &probe, &delayed)).await;
        assert_eq!(response.code, 0, "{:?}", response.remark);
        for round in 1..=3 {
            assert_eq!(invoke(&to_master, commit(round * 10)).await.code, 0);
            rmq_net::rt::sleep(STALENESS).await;
            assert_eq!(
                committed(&to_slave).await,
                Some(round * 10),
                "round {round}: the committed offset is not on the slave {STALENESS:?} later"
            );
        }
        let on_master = delay_offsets(&to_master).await.offset_table;
        assert_eq!(
            on_master.get(&1),
            Some(&1),
            "the delayed message was delivered"
        );
        assert_eq!(
            delay_offsets(&to_slave).await.offset_table.get(&1),
            Some(&1),
            "the delay offset is not on the slave"
        );
        // 2. A topic auto-created right before the master dies.
        let mut acked = Acked::new();
        for seq in 0..MESSAGES {
            let queue_id = (seq % AUTO.queues as u64) as i32;
            let body = Bytes::from(format!("meta-{seq}"));
            let response = invoke(&to_master, send(AUTO.name, queue_id, &body, "")).await;
            assert_eq!(response.code, 0, "send {seq}: {:?}", response.remark);
            support::record_ack(&mut acked, &response, queue_id, &body);
            if seq == 0 {
                // Acknowledged under SYNC_MASTER: the topic is on the slave now, not after
                // its next copy (milliseconds, where the copy runs every second).
                let pull = support::pull_request(AUTO.name, 0, 0);
                let read = invoke(&to_slave, pull).await;
                assert_eq!(
                    read.code, 0,
                    "first message not readable on the slave: {:?}",
                    read.remark
                );
            }
        }
        master.0.kill().unwrap();
        master.0.wait().unwrap();
        support::verify(&slave_addr, AUTO, &acked, 0).await
    });
    outcome.expect("reads from the slave");
    runtime.block_on(async {
        let to_slave = RemotingClient::connect(&slave_addr, TIMEOUT).await.unwrap();
        assert_eq!(committed(&to_slave).await, Some(30));
    });
}
