//! A slave whose master fell silent (issue 11: a partition cuts the master's host off; its
//! connections stay open and nothing answers) is elected master: the role change must not
//! wait for the old generation's sessions to time out. Here the "master" is a listener that
//! accepts every connection and reads what comes, but never answers: each shard's HA
//! handshake waits for its welcome (3 s connect timeout) and core 0's metadata copy for its
//! answer (3 s request timeout). Before the fix the role change waited for those timeouts
//! (seen as ~1.2 s more failover time on three network-namespace hosts).

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmq_broker::replication::role;
use rmq_broker::server::start_broker;
use rmq_core::config::BrokerConfig;
use rmq_core::remoting::ResponseCode;
use support::scripted_controller::Namesrv;
use support::{Acked, Topic, controller_mode_config, free_port_pair, send_counting_codes, until};

const TOPIC: Topic = Topic {
    name: "SilentMasterTopic",
    queues: 4,
};
const SHARDS: usize = 2;
/// Well below the 3 s the sessions would wait for a silent master, well above a prompt end
/// (a few stop polls of 20-50 ms) on a loaded CI machine.
const ROLE_CHANGE_LIMIT: Duration = Duration::from_millis(1500);

fn config(root: &Path, port: u16, namesrv: &str) -> BrokerConfig {
    let shards = SHARDS.to_string();
    controller_mode_config(
        root,
        port,
        namesrv,
        "127.0.0.1:1",
        &[
            ("brokerClusterName", "SilentCluster"),
            ("brokerName", "silent-broker"),
            ("shardCount", shards.as_str()),
        ],
    )
}

/// A peer that accepts connections, counts those that sent something, and never answers
/// (the sockets stay open until the test ends).
struct Silent {
    addr: String,
    heard: Arc<AtomicUsize>,
}

impl Silent {
    fn start(held: &Arc<Mutex<Vec<TcpStream>>>) -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let heard = Arc::new(AtomicUsize::new(0));
        let (counter, held) = (heard.clone(), held.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let counter = counter.clone();
                let keep = stream.try_clone().unwrap();
                held.lock().unwrap().push(keep);
                std::thread::spawn(move || {
                    let mut byte = [0u8; 1];
                    if matches!(stream.read(&mut byte), Ok(1)) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    // Drain without answering until the peer closes.
                    let mut sink = [0u8; 4096];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
        });
        Silent { addr, heard }
    }

    fn heard(&self) -> usize {
        self.heard.load(Ordering::SeqCst)
    }
}

#[test]
fn a_slave_of_a_silent_master_takes_writes_at_once_when_elected() {
    let namesrv = Namesrv::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_pair();
    let addr = format!("127.0.0.1:{port}");
    let handle = start_broker(config(dir.path(), port, &namesrv.addr)).expect("start the broker");
    let broker = handle.context().clone();
    let held = Arc::new(Mutex::new(Vec::new()));
    let remoting = Silent::start(&held);
    let ha = Silent::start(&held);
    let mut acked = Acked::new();
    rmq_net::rt::block_on(async {
        role::become_slave(&broker, &remoting.addr, Some(&ha.addr), 1, 2)
            .await
            .unwrap();
        // Every shard waits for its welcome, core 0 for its metadata answer.
        until(
            "the slave's handshakes and metadata copy under way",
            Duration::from_secs(10),
            async || ha.heard() >= SHARDS && remoting.heard() >= 1,
        )
        .await;
        let started = Instant::now();
        role::become_master(&broker, 2, 2, &[2]).await.unwrap();
        let took = started.elapsed();
        println!("role change with a silent master: {took:?}");
        assert!(
            took < ROLE_CHANGE_LIMIT,
            "the role change waited {took:?} for sessions with a silent master (limit \
             {ROLE_CHANGE_LIMIT:?})"
        );
        assert_eq!(
            ha.heard(),
            SHARDS,
            "a shard reconnected to the silent master"
        );
        let codes = send_counting_codes(&addr, TOPIC, 1, 5, &mut acked).await;
        assert_eq!(codes, [(ResponseCode::Success.code(), 5)]);
    })
    .unwrap();
    handle.stop().unwrap();
}
