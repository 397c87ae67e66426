//! Replication glue between the broker and rmq-ha.
//!
//! - Master (any role but SLAVE): core 0 listens on the HA port (`haListenPort`, default
//!   listenPort + 1), reads each slave connection's hello, and hands the socket to the core
//!   owning the requested shard, which streams that shard (`rmq_ha::master::serve_slave`).
//! - Slave: every core runs one replication client per shard it owns, against the master HA
//!   address (`haMasterAddress`, else the `haServerAddr` the name server returned at
//!   registration), reconnecting every second after a failure. Core 0 also copies topic
//!   configs, consumer offsets, delay offsets and subscription groups from the master every
//!   10 s (GET_ALL_TOPIC_CONFIG 21, GET_ALL_CONSUMER_OFFSET 43, GET_ALL_DELAY_OFFSET 45,
//!   GET_ALL_SUBSCRIPTIONGROUP_CONFIG 201).
//! - SYNC_MASTER sends: [`wait_durable`] waits for the flush level and for a slave report in
//!   parallel, on the shard's core; [`with_slave_outcome`] turns a missing or late slave into
//!   SLAVE_NOT_AVAILABLE (11) / FLUSH_SLAVE_TIMEOUT (12) with the send header still filled.

use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use compio::BufResult;
use compio::io::AsyncWriteExt;
use compio::net::{TcpListener, TcpStream};
use rmq_core::body::{
    ConsumerOffsetSerializeWrapper, DelayOffsetSerializeWrapper, TopicConfigSerializeWrapper,
    decode_body,
};
use rmq_core::config::BrokerRole;
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_ha::handshake::{HELLO_LEN, Status, Welcome, decode_hello, encode_welcome};
use rmq_ha::master::{MasterSettings, SlaveWait};
use rmq_ha::slave::SlaveSettings;
use rmq_storage::{Durability, ShardStore, StoreError};

use crate::context::{BrokerContext, SharedContext};
use crate::core_context::CoreContext;
use crate::groups::GroupsFile;
use crate::schedule::progress::QueueFamily;

/// Smallest frame body the master sends (RocketMQ's haTransferBatchSize of 32 KiB is too
/// small to keep a fast link busy).
const CHUNK_MIN: usize = 1 << 20;
/// Interval of the slave's metadata copy from the master.
const SYNC_INTERVAL: Duration = Duration::from_secs(10);
/// Pause before a slave reconnects after a failed session.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Where a slave's master is, as learned from the name servers.
#[derive(Default)]
pub struct ReplicationInfo {
    master_ha_addr: Mutex<Option<String>>,
    master_addr: Mutex<Option<String>>,
}

impl ReplicationInfo {
    /// Records the `haServerAddr` / `masterAddr` of a REGISTER_BROKER response.
    pub fn learn(&self, ha_addr: Option<&str>, master_addr: Option<&str>) {
        let keep = |slot: &Mutex<Option<String>>, value: Option<&str>| {
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                let mut slot = slot.lock().expect("replication info lock");
                if slot.as_deref() != Some(value) {
                    tracing::info!(addr = value, "learned master address");
                    *slot = Some(value.to_string());
                }
            }
        };
        keep(&self.master_ha_addr, ha_addr);
        keep(&self.master_addr, master_addr);
    }

    pub fn master_addr(&self) -> Option<String> {
        self.master_addr
            .lock()
            .expect("replication info lock")
            .clone()
    }

    /// `haMasterAddress` if configured, else what the name servers said.
    pub fn master_ha_addr(&self, broker: &BrokerContext) -> Option<String> {
        broker
            .config
            .ha_master_address
            .clone()
            .filter(|a| !a.trim().is_empty())
            .or_else(|| {
                self.master_ha_addr
                    .lock()
                    .expect("replication info lock")
                    .clone()
            })
    }
}

/// Starts this core's replication duties (see the module docs).
pub fn start(core: &Rc<CoreContext>) {
    let broker = &core.broker;
    if broker.is_slave() {
        for store in core.shards.values() {
            compio::runtime::spawn(slave_loop(broker.clone(), store.clone())).detach();
        }
        if core.core == 0 {
            compio::runtime::spawn(sync_loop(broker.clone())).detach();
        }
    } else if core.core == 0 {
        compio::runtime::spawn(listen(core.clone())).detach();
    }
}

fn ms(millis: i32, floor: u64) -> Duration {
    Duration::from_millis(u64::try_from(millis).unwrap_or(0).max(floor))
}

fn stopping_of(broker: &SharedContext) -> Rc<dyn Fn() -> bool> {
    let broker = broker.clone();
    Rc::new(move || broker.stopping.load(Ordering::Acquire))
}

async fn bind(broker: &BrokerContext) -> Option<TcpListener> {
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], broker.config.ha_listen_port()));
    // A just-killed predecessor may hold the port for a moment (io_uring closes lazily).
    for attempt in 0..150 {
        match std::net::TcpListener::bind(addr).and_then(TcpListener::from_std) {
            Ok(listener) => return Some(listener),
            Err(error) if attempt == 149 || broker.stopping.load(Ordering::Acquire) => {
                tracing::error!(%addr, %error, "cannot listen on the HA port: slaves cannot replicate");
                return None;
            }
            Err(_) => compio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}

/// Core 0 of a master: accepts slave connections and hands each to its shard's core.
async fn listen(core: Rc<CoreContext>) {
    let Some(listener) = bind(&core.broker).await else {
        return;
    };
    tracing::info!(
        port = core.broker.config.ha_listen_port(),
        "HA service listening"
    );
    while !core.broker.stopping.load(Ordering::Acquire) {
        match compio::time::timeout(Duration::from_millis(200), listener.accept()).await {
            Ok(Ok((stream, peer))) => {
                let core = core.clone();
                compio::runtime::spawn(async move {
                    if let Err(error) = hand_over(&core, stream).await {
                        tracing::warn!(%peer, %error, "slave connection refused");
                    }
                })
                .detach();
            }
            Ok(Err(error)) => tracing::warn!(%error, "HA accept failed"),
            Err(_) => {}
        }
    }
}

/// Reads a slave's hello and moves the socket to the core owning the shard it asks for.
async fn hand_over(core: &Rc<CoreContext>, mut stream: TcpStream) -> Result<(), rmq_ha::HaError> {
    let _ = stream.set_nodelay(true);
    let mut inbox = BytesMut::new();
    let reading = rmq_ha::slave::read_at_least(&mut stream, &mut inbox, HELLO_LEN);
    compio::time::timeout(Duration::from_secs(5), reading)
        .await
        .map_err(|_| rmq_ha::HaError::Silent {
            peer: stream.peer_addr().ok(),
        })??;
    let hello = decode_hello(&inbox)?;
    let broker = &core.broker;
    if hello.shard >= broker.shard_count || inbox.len() != HELLO_LEN {
        let refusal = Welcome {
            status: Status::BadRequest,
            shard_count: broker.shard_count,
            segment_size: broker.config.mapped_file_size_commit_log,
            master_end: 0,
            start: 0,
        };
        let BufResult(sent, _) = stream.write_all(encode_welcome(&refusal)).await;
        return sent.map_err(|source| rmq_ha::HaError::Io {
            op: "welcome",
            source,
        });
    }
    // The session must run on the shard's core; a duplicate of the descriptor crosses the
    // mesh (sockets are not tied to a ring), the original closes here.
    let fd: OwnedFd = stream
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| rmq_ha::HaError::Io { op: "dup", source })?;
    drop(stream);
    let settings = master_settings(broker);
    let stopping_broker = broker.clone();
    let handed = core
        .on_shard(hello.shard, move |store: Rc<ShardStore>| async move {
            let stream = TcpStream::from_std(std::net::TcpStream::from(fd)).map_err(|source| {
                rmq_ha::HaError::Io {
                    op: "adopt",
                    source,
                }
            })?;
            let stopping = stopping_of(&stopping_broker);
            compio::runtime::spawn(async move {
                if let Err(error) =
                    rmq_ha::master::serve_slave(store, stream, hello, settings, stopping).await
                {
                    tracing::warn!(%error, "slave session failed");
                }
            })
            .detach();
            Ok::<(), rmq_ha::HaError>(())
        })
        .await;
    handed.map_err(|busy| rmq_ha::HaError::Io {
        op: "hand over",
        source: std::io::Error::other(busy.to_string()),
    })?
}

fn master_settings(broker: &BrokerContext) -> MasterSettings {
    let config = &broker.config;
    MasterSettings {
        chunk_max: usize::try_from(config.ha_transfer_batch_size)
            .unwrap_or(0)
            .max(CHUNK_MIN),
        heartbeat: ms(config.ha_send_heartbeat_interval, 100),
        housekeeping: ms(config.ha_housekeeping_interval, 1000),
        zero_copy: true,
    }
}

fn slave_settings(broker: &BrokerContext) -> SlaveSettings {
    let config = &broker.config;
    SlaveSettings {
        connect_timeout: Duration::from_secs(3),
        heartbeat: ms(config.ha_send_heartbeat_interval, 100),
        housekeeping: ms(config.ha_housekeeping_interval, 1000),
        max_body: 64 << 20,
        read_buffer: 1 << 20,
    }
}

/// One shard of a slave: replicate, and reconnect after any failure.
async fn slave_loop(broker: SharedContext, store: Rc<ShardStore>) {
    let settings = slave_settings(&broker);
    let mut last_error = String::new();
    while !broker.stopping.load(Ordering::Acquire) {
        let Some(addr) = broker.replication.master_ha_addr(&broker) else {
            compio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let outcome =
            rmq_ha::slave::replicate_shard(&store, &addr, &settings, stopping_of(&broker)).await;
        if let Err(error) = outcome {
            let text = error.to_string();
            // A refused handshake or a dead master repeats every second: log changes only.
            if text != last_error {
                if matches!(error, rmq_ha::HaError::TooFarBehind { .. }) {
                    // Retrying cannot help: the operator must wipe this slave's store.
                    tracing::error!(shard = store.shard(), addr, %error, "slave cannot resync");
                } else {
                    tracing::warn!(shard = store.shard(), addr, %error, "replication session ended");
                }
                last_error = text;
            }
        }
        compio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// What a send waits for from the slaves: SYNC_MASTER and `WAIT` not false.
#[derive(Debug, Clone, Copy)]
pub struct SyncWait {
    timeout: Duration,
    fallbehind_max: i64,
}

/// The slave wait a send needs, if any (decided on the receiving core).
pub fn sync_wait(broker: &BrokerContext, wait_store_msg_ok: bool) -> Option<SyncWait> {
    (wait_store_msg_ok && broker.config.broker_role == BrokerRole::SyncMaster).then(|| SyncWait {
        timeout: ms(broker.config.slave_timeout, 1),
        fallbehind_max: i64::from(broker.config.ha_slave_fallbehind_max.max(0)),
    })
}

/// Waits for `level` and, when asked, for a slave report past `end_offset`, in parallel.
pub async fn wait_durable(
    store: &ShardStore,
    end_offset: i64,
    level: Durability,
    slave: Option<SyncWait>,
) -> (Result<(), StoreError>, SlaveWait) {
    let Some(slave) = slave else {
        return (
            store.wait_durable(end_offset, level).await,
            SlaveWait::Replicated,
        );
    };
    let replica = rmq_ha::master::replica(store.shard());
    futures_util::future::join(
        store.wait_durable(end_offset, level),
        replica.wait(end_offset, slave.timeout, slave.fallbehind_max),
    )
    .await
}

/// Moves the slave outcome out of a send's shard result.
pub fn split<T, E>(outcome: Result<(T, SlaveWait), E>) -> (Result<T, E>, SlaveWait) {
    match outcome {
        Ok((value, slave)) => (Ok(value), slave),
        Err(error) => (Err(error), SlaveWait::Replicated),
    }
}

/// A successful send response becomes SLAVE_NOT_AVAILABLE / FLUSH_SLAVE_TIMEOUT when the
/// slave did not confirm (the header stays: the message is stored on the master).
pub fn with_slave_outcome(mut response: RemotingCommand, slave: SlaveWait) -> RemotingCommand {
    if response.code != ResponseCode::Success.code() {
        return response;
    }
    match slave {
        SlaveWait::Replicated => {}
        SlaveWait::NotAvailable => response.code = ResponseCode::SlaveNotAvailable.code(),
        SlaveWait::Timeout => response.code = ResponseCode::FlushSlaveTimeout.code(),
    }
    response
}

/// Slave core 0: copies the master's metadata every [`SYNC_INTERVAL`].
async fn sync_loop(broker: SharedContext) {
    let mut client: Option<Rc<rmq_net::RemotingClient>> = None;
    while !broker.stopping.load(Ordering::Acquire) {
        if let Some(addr) = broker.replication.master_addr() {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = rmq_net::RemotingClient::connect(&addr, Duration::from_secs(3))
                    .await
                    .ok();
            }
            if let Some(connected) = &client
                && let Err(error) = sync_from_master(&broker, connected).await
            {
                tracing::debug!(addr, %error, "metadata sync from master failed");
                client = None;
            }
        }
        let deadline = std::time::Instant::now() + SYNC_INTERVAL;
        while std::time::Instant::now() < deadline && !broker.stopping.load(Ordering::Acquire) {
            compio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn fetch<T: serde::de::DeserializeOwned>(
    client: &rmq_net::RemotingClient,
    code: i32,
) -> Result<T, String> {
    let request = RemotingCommand::new_request(code);
    let response = client
        .invoke(request, Duration::from_secs(3))
        .await
        .map_err(|e| e.to_string())?;
    if response.code != ResponseCode::Success.code() {
        return Err(format!("request {code} answered {}", response.code));
    }
    decode_body(&response.body).map_err(|e| format!("request {code}: {e}"))
}

async fn sync_from_master(
    broker: &BrokerContext,
    client: &rmq_net::RemotingClient,
) -> Result<(), String> {
    let topics: TopicConfigSerializeWrapper =
        fetch(client, request_code::GET_ALL_TOPIC_CONFIG).await?;
    let mut changed = false;
    for (name, config) in topics.topic_config_table {
        if broker.topics.get(&name).as_ref() != Some(&config) {
            broker.topics.put(config);
            changed = true;
        }
    }
    if changed {
        broker.request_registration();
    }
    let offsets: ConsumerOffsetSerializeWrapper =
        fetch(client, request_code::GET_ALL_CONSUMER_OFFSET).await?;
    for (key, queues) in &offsets.offset_table {
        let Some((topic, group)) = ConsumerOffsetSerializeWrapper::split_key(key) else {
            continue;
        };
        for (&queue_id, &offset) in queues {
            broker.offsets.commit(group, topic, queue_id, offset);
        }
    }
    let delays: DelayOffsetSerializeWrapper =
        fetch(client, request_code::GET_ALL_DELAY_OFFSET).await?;
    for (&level, &offset) in &delays.offset_table {
        broker
            .schedule
            .advance(QueueFamily::Level, level - 1, offset);
    }
    let groups: GroupsFile = fetch(client, request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).await?;
    for (name, config) in groups.subscription_group_table {
        if broker.groups.get(&name).as_ref() != Some(&config)
            && let Err(remark) = broker.groups.put(config)
        {
            tracing::warn!(group = %name, "master's subscription group not copied: {remark}");
        }
    }
    Ok(())
}
