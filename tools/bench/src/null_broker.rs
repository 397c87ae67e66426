//! `rmq-fast-bench null-broker`: a broker that stores nothing, the request/response
//! ceiling of this machine.
//!
//! It registers one topic with the name server like a real master and answers every
//! SEND_MESSAGE / SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE with SEND_OK and the same response
//! fields a broker sends (msgId, queueId, queueOffset, region, trace flag), on rmq-fast's
//! own transport (one io_uring runtime per core, pinned as the broker's are by default, one
//! listening socket accepted on by every core, connections balanced over the cores as in the
//! broker). Driving it with `produce` measures what the load generator, the kernel's
//! loopback TCP and the remoting codec cost per message with no broker work at all: no real
//! broker, ours or Apache's, can exceed that figure on the same machine with the same load
//! generator, so it bounds every throughput ratio measured there.
//!
//! Not a broker: it keeps no data, pulls are refused with SYSTEM_ERROR, and admin
//! requests are answered SUCCESS without effect (so clients that heartbeat keep working).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rmq_core::body::{RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper};
use rmq_core::message::msg_id::offset_msg_id;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::connection::{ConnectionInfo, LocalFuture};
use rmq_net::cores::run_cores_polling;
use rmq_net::placement::Pinning;
use rmq_net::{RemotingClient, RequestHandler};

/// Largest frame accepted (as a broker's default).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Registration period: well inside the name server's 120 s expiry.
const REGISTER_PERIOD: Duration = Duration::from_secs(30);

/// Options of `null-broker`.
#[derive(Debug, Clone, Args)]
pub struct NullBrokerOptions {
    /// Name server to register with.
    #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Address to listen on; registered as the broker address.
    #[arg(long, default_value = "127.0.0.1:10911")]
    pub listen: SocketAddr,
    /// Topic registered in the route (read and write).
    #[arg(long, default_value = "BenchmarkTest")]
    pub topic: String,
    /// Queues of the topic.
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    /// Threads (one io_uring runtime each, as the broker's shards).
    #[arg(long, default_value_t = 2)]
    pub cores: usize,
    /// µs a core keeps polling its ring after its last task before it sleeps (the broker's
    /// `idlePollMicros`; 0 = sleep at once).
    #[arg(long, default_value_t = 0)]
    pub idle_poll_us: u32,
    /// Poll only while the probe measures that polling serves more requests (the broker's
    /// `idlePollProbe`; off here by default, so the null broker stays the plain ceiling).
    #[arg(long)]
    pub idle_poll_probe: bool,
    #[arg(long, default_value = "null-broker")]
    pub broker_name: String,
    #[arg(long, default_value = "NullCluster")]
    pub cluster: String,
}

/// Runs until SIGINT/SIGTERM.
///
/// # Errors
/// When the port cannot be bound, a core cannot start, or the first registration fails.
pub fn run(options: NullBrokerOptions) -> anyhow::Result<()> {
    if options.queues < 1 || options.cores < 1 {
        bail!("--queues and --cores must be at least 1");
    }
    let shared =
        rmq_net::listener::bind_exclusive(options.listen, rmq_net::listener::PORT_RELEASE_PATIENCE)
            .and_then(|listener| rmq_net::listener::share(listener, options.cores))
            .with_context(|| format!("listen address {}", options.listen))?;
    let listeners = Arc::new(std::sync::Mutex::new(
        shared.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("signal handler")?;
    }
    let (registered_tx, registered_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let registered_tx = Arc::new(std::sync::Mutex::new(Some(registered_tx)));
    let body_options = options.clone();
    let body_stop = stop.clone();
    let balancers = Arc::new(std::sync::Mutex::new(
        rmq_net::balance::balancer(options.cores)
            .into_iter()
            .map(Some)
            .collect::<Vec<_>>(),
    ));
    let poll = Duration::from_micros(u64::from(options.idle_poll_us));
    let handles = run_cores_polling(
        "null-broker",
        options.cores,
        poll,
        options.idle_poll_probe,
        // As the broker's default (`pinCores=auto`).
        Pinning::WhilePolling,
        move |core| {
            let options = body_options.clone();
            let stop = body_stop.clone();
            let registered_tx = registered_tx.clone();
            let balancer = balancers.lock().expect("balancer lock")[core]
                .take()
                .expect("each core takes its balancer once");
            let listener = listeners.lock().expect("listeners lock")[core]
                .take()
                .expect("each core takes its listener once");
            async move {
                let listener =
                    match rmq_net::listener::register(listener).map_err(|e| e.to_string()) {
                        Ok(listener) => listener,
                        Err(error) => {
                            report(&registered_tx, Err(error));
                            return;
                        }
                    };
                if core == 0 {
                    rmq_net::rt::spawn(register_loop(options.clone(), stop.clone(), registered_tx))
                        .detach();
                }
                let handler = Rc::new(NullHandler {
                    broker_addr: options.listen,
                    next_offset: Cell::new(0),
                });
                let accept_stop = stop.clone();
                rmq_net::balance::accept_balanced(
                    listener,
                    move || accept_stop.load(Ordering::Acquire),
                    balancer,
                    move |stream| {
                        rmq_net::serve_connection(
                            stream,
                            handler.clone(),
                            core,
                            rmq_net::ConnectionLimits::with_max_frame(MAX_FRAME),
                        )
                    },
                )
                .await;
            }
        },
    )
    .context("starting the null broker's cores (io_uring)")?;
    registered_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow::anyhow!("no answer from name server {}", options.namesrv))?
        .map_err(|error| anyhow::anyhow!(error))?;
    println!(
        "null broker {} listening on {}: topic {} with {} queues registered at {}",
        options.broker_name, options.listen, options.topic, options.queues, options.namesrv
    );
    for handle in handles {
        let _ = handle.join();
    }
    Ok(())
}

type Reporter = Arc<std::sync::Mutex<Option<std::sync::mpsc::Sender<Result<(), String>>>>>;

fn report(tx: &Reporter, outcome: Result<(), String>) {
    if let Some(tx) = tx.lock().expect("report lock").take() {
        let _ = tx.send(outcome);
    }
}

async fn register_loop(options: NullBrokerOptions, stop: Arc<AtomicBool>, registered: Reporter) {
    let mut client: Option<Rc<RemotingClient>> = None;
    let mut since_last = REGISTER_PERIOD;
    while !stop.load(Ordering::Acquire) {
        if since_last >= REGISTER_PERIOD {
            since_last = Duration::ZERO;
            let outcome = register_once(&options, &mut client).await;
            if let Err(error) = &outcome {
                tracing::warn!("null broker registration failed: {error}");
                client = None;
            }
            report(&registered, outcome);
        }
        rmq_net::rt::sleep(Duration::from_millis(100)).await;
        since_last += Duration::from_millis(100);
    }
}

async fn register_once(
    options: &NullBrokerOptions,
    client: &mut Option<Rc<RemotingClient>>,
) -> Result<(), String> {
    let timeout = Duration::from_secs(3);
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        let connected = RemotingClient::connect(&options.namesrv, timeout)
            .await
            .map_err(|e| e.to_string())?;
        *client = Some(connected);
    }
    let client = client.as_ref().expect("connected above");
    let response = client
        .invoke(register_request(options), timeout)
        .await
        .map_err(|e| e.to_string())?;
    if response.code != ResponseCode::Success.code() {
        return Err(format!(
            "name server refused registration: code {} {:?}",
            response.code, response.remark
        ));
    }
    Ok(())
}

fn register_request(options: &NullBrokerOptions) -> RemotingCommand {
    let mut topic = TopicConfig::new(&options.topic);
    topic.read_queue_nums = options.queues;
    topic.write_queue_nums = options.queues;
    let mut wrapper = TopicConfigSerializeWrapper::default();
    wrapper
        .topic_config_table
        .insert(options.topic.clone(), topic);
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: wrapper,
        filter_server_list: Vec::new(),
    }
    .encode(false);
    RemotingCommand::new_request(request_code::REGISTER_BROKER)
        .with_ext("brokerAddr", options.listen)
        .with_ext("brokerId", 0)
        .with_ext("brokerName", &options.broker_name)
        .with_ext("clusterName", &options.cluster)
        .with_ext("haServerAddr", options.listen)
        .with_ext("compressed", false)
        .with_ext("bodyCrc32", (crc32fast::hash(&body) & 0x7FFF_FFFF) as i32)
        .with_body(body)
}

/// Answers requests without doing anything.
struct NullHandler {
    broker_addr: SocketAddr,
    /// Stands in for both the commit-log and the queue offset: distinct per answer.
    next_offset: Cell<i64>,
}

impl NullHandler {
    fn answer(&self, request: &RemotingCommand) -> RemotingCommand {
        match request.code {
            request_code::SEND_MESSAGE
            | request_code::SEND_MESSAGE_V2
            | request_code::SEND_BATCH_MESSAGE => {
                let offset = self.next_offset.get();
                self.next_offset.set(offset + 1);
                // SEND_MESSAGE_V2 abbreviates queueId as "e".
                let queue_id = request
                    .ext("queueId")
                    .or_else(|| request.ext("e"))
                    .unwrap_or("0")
                    .to_owned();
                RemotingCommand::response_for(request, ResponseCode::Success.code(), None)
                    .with_ext("msgId", offset_msg_id(self.broker_addr, offset))
                    .with_ext("queueId", queue_id)
                    .with_ext("queueOffset", offset)
                    .with_ext("MSG_REGION", "DefaultRegion")
                    .with_ext("TRACE_ON", "true")
            }
            request_code::PULL_MESSAGE => RemotingCommand::response_for(
                request,
                ResponseCode::SystemError.code(),
                Some("the null broker stores nothing to pull".to_owned()),
            ),
            _ => RemotingCommand::response_for(request, ResponseCode::Success.code(), None),
        }
    }
}

impl RequestHandler for NullHandler {
    fn handle(
        self: Rc<Self>,
        _conn: Rc<ConnectionInfo>,
        request: RemotingCommand,
    ) -> LocalFuture<Option<RemotingCommand>> {
        let response = self.answer(&request);
        Box::pin(async move { Some(response) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> NullHandler {
        NullHandler {
            broker_addr: "127.0.0.1:10911".parse().unwrap(),
            next_offset: Cell::new(0),
        }
    }

    #[test]
    fn sends_get_send_ok_with_distinct_offsets_and_the_request_queue() {
        let handler = handler();
        let request = RemotingCommand::new_request(request_code::SEND_MESSAGE_V2)
            .with_ext("e", 5)
            .with_body(b"hello".to_vec());
        let first = handler.answer(&request);
        let second = handler.answer(&request);
        assert_eq!(first.code, ResponseCode::Success.code());
        assert_eq!(first.ext("queueId"), Some("5"));
        assert_eq!(first.ext("queueOffset"), Some("0"));
        assert_eq!(second.ext("queueOffset"), Some("1"));
        assert_ne!(first.ext("msgId"), second.ext("msgId"));
        assert_eq!(first.opaque, request.opaque);
    }

    #[test]
    fn pulls_are_refused_and_registration_names_the_topic() {
        let handler = handler();
        let pull = RemotingCommand::new_request(request_code::PULL_MESSAGE);
        assert_eq!(handler.answer(&pull).code, ResponseCode::SystemError.code());
        let options = NullBrokerOptions {
            namesrv: "127.0.0.1:9876".into(),
            listen: "127.0.0.1:10911".parse().unwrap(),
            topic: "T".into(),
            queues: 3,
            cores: 1,
            idle_poll_us: 0,
            idle_poll_probe: false,
            broker_name: "b".into(),
            cluster: "c".into(),
        };
        let request = register_request(&options);
        let body = RegisterBrokerBody::decode(&request.body, false).unwrap();
        let topic = &body.topic_config_serialize_wrapper.topic_config_table["T"];
        assert_eq!((topic.read_queue_nums, topic.write_queue_nums), (3, 3));
        assert_eq!(request.ext("brokerAddr"), Some("127.0.0.1:10911"));
    }
}
