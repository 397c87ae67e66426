//! The periodic registration of an unchanged topic table: with `forceRegister=false` the
//! broker asks every name server QUERY_DATA_VERSION first and sends no REGISTER_BROKER when
//! they have its data version (RocketMQ 4.9's `needRegister`); a created topic registers at
//! once, alone (RocketMQ 4.9's `registerIncrementBrokerData`). The name server here is rmq-fast's request handler behind a counter of
//! request codes.

mod support;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmq_core::body::RegisterBrokerBody;
use rmq_core::config::NamesrvConfig;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use rmq_namesrv::kv_config::KvConfig;
use rmq_namesrv::processor::{NamesrvState, handle};
use rmq_net::connection::LocalFuture;
use rmq_net::{ConnectionInfo, ConnectionLimits, RemotingClient, RequestHandler};
use rmq_test_support::ports::free_port;
use support::{TIMEOUT, free_port_pair, wait_until_serving};

#[derive(Default)]
struct Counts {
    registers: AtomicUsize,
    queries: AtomicUsize,
    /// The last REGISTER_BROKER: `partialTopics`, and its topics.
    last: Mutex<Option<(bool, Vec<String>)>>,
}

struct Counting {
    state: Rc<NamesrvState>,
    counts: Arc<Counts>,
}

impl RequestHandler for Counting {
    fn handle(
        self: Rc<Self>,
        conn: Rc<ConnectionInfo>,
        request: RemotingCommand,
    ) -> LocalFuture<Option<RemotingCommand>> {
        if request.code == rc::REGISTER_BROKER {
            let compressed = request.ext("compressed") == Some("true");
            let body = RegisterBrokerBody::decode(&request.body, compressed).unwrap();
            let topics = body.topic_config_serialize_wrapper.topic_config_table;
            let partial = request.ext("partialTopics") == Some("true");
            *self.counts.last.lock().unwrap() = Some((partial, topics.into_keys().collect()));
        }
        match request.code {
            rc::REGISTER_BROKER => self.counts.registers.fetch_add(1, Ordering::SeqCst),
            rc::QUERY_DATA_VERSION => self.counts.queries.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        Box::pin(async move { Some(handle(&self.state, &conn, &request).await) })
    }
}

/// A counting name server on its own thread until `stop`.
fn start_namesrv(port: u16, counts: Arc<Counts>, stop: Arc<AtomicBool>, kv: std::path::PathBuf) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let listener = rmq_net::listener::bind_exclusive(addr, Duration::ZERO).unwrap();
    std::thread::spawn(move || {
        rmq_net::rt::block_on(async move {
            let listener = rmq_net::listener::register(listener).unwrap();
            let handler = Rc::new(Counting {
                state: Rc::new(NamesrvState::new(
                    KvConfig::load(kv),
                    NamesrvConfig::default(),
                )),
                counts,
            });
            let limits = ConnectionLimits::with_max_frame(16 << 20);
            let stopping = stop.clone();
            rmq_net::listener::accept_until(
                listener,
                move || stopping.load(Ordering::Relaxed),
                move |stream| {
                    let handler = handler.clone();
                    rmq_net::rt::spawn(rmq_net::serve_connection(stream, handler, 0, limits))
                        .detach();
                },
            )
            .await;
        })
        .unwrap();
    });
}

fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unchanged_periodic_registration_asks_the_data_version_and_sends_no_topics() {
    let root = tempfile::tempdir().unwrap();
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ns_port = free_port();
    start_namesrv(
        ns_port,
        counts.clone(),
        stop.clone(),
        root.path().join("kv.json"),
    );
    let port = free_port_pair();
    let text = format!(
        "brokerClusterName=SkipCluster\nbrokerName=skip-broker\nbrokerId=0\n\
         listenPort={port}\nnamesrvAddr=127.0.0.1:{ns_port}\nbrokerIP1=127.0.0.1\n\
         storePathRootDir={}\nlogDir={}\nmappedFileSizeCommitLog=1048576\ncleanFileForciblyEnable=false\n\
         maxMessageSize=65536\nmappedFileSizeConsumeQueue=6000\nshardCount=1\n\
         forceRegister=false\nregisterNameServerPeriod=10000\n",
        root.path().join("store").display(),
        root.path().join("logs").display(),
    );
    let config = root.path().join("broker.properties");
    std::fs::write(&config, text).unwrap();
    let log = root.path().join("broker.out");
    let mut broker = support::start_broker(&support::broker_binary(), &config, &log);
    let addr = format!("127.0.0.1:{port}");
    rmq_net::rt::block_on(wait_until_serving(&addr, &mut broker, &log)).unwrap();
    until("first registration", Duration::from_secs(10), || {
        counts.registers.load(Ordering::SeqCst) > 0
    });
    // Start-up registrations settle (system topics created at start register at once).
    std::thread::sleep(Duration::from_millis(1500));
    let registered = counts.registers.load(Ordering::SeqCst);
    until(
        "a periodic QUERY_DATA_VERSION",
        Duration::from_secs(15),
        || counts.queries.load(Ordering::SeqCst) > 0,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        counts.registers.load(Ordering::SeqCst),
        registered,
        "the name server had the data version: no REGISTER_BROKER\n{}",
        support::log_tail(&log)
    );
    // A topic change registers at once, without asking.
    rmq_net::rt::block_on(async {
        let client = RemotingClient::connect(&addr, TIMEOUT).await.unwrap();
        let request = RemotingCommand::new_request(rc::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", "SkipTopic")
            .with_ext("readQueueNums", 4)
            .with_ext("writeQueueNums", 4)
            .with_ext("perm", 6);
        let response = client.invoke(request, TIMEOUT).await.unwrap();
        assert_eq!(response.code, ResponseCode::Success.code(), "{response:?}");
    })
    .unwrap();
    until(
        "registration of the new topic",
        Duration::from_secs(5),
        || counts.registers.load(Ordering::SeqCst) > registered,
    );
    stop.store(true, Ordering::Relaxed);
    // The listener notices `stop` on its next accept; one connection wakes it.
    let _ = std::net::TcpStream::connect(("127.0.0.1", ns_port));
}
