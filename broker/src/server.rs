//! Starting and stopping the broker: store layout, registries, one pinned runtime per
//! core (each opens the shards it owns, then accepts connections), background duties on
//! core 0 (name server registration, offset persistence, client expiry).
//!
//! Start-up order matters: every core opens (recovers) its shards before any core
//! accepts a connection, because any core may forward work to any shard.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rmq_core::config::{BrokerConfig, FlushDiskType, PinCores};
use rmq_core::remoting::DEFAULT_MAX_FRAME;
use rmq_net::balance::BalancerCore;
use rmq_net::mesh::{Mesh, MeshReceiver, MeshSender};
use rmq_net::placement::Pinning;
use rmq_storage::{FlushMode, ShardStore, StoreConfig, StoreError, StoreLayout};

use crate::clients::ClientManager;
use crate::context::{BrokerContext, BrokerStats, SharedContext, now_ms};
use crate::core_context::{CoreContext, ShardJob};
use crate::groups::GroupManager;
use crate::offsets::OffsetManager;
use crate::processor::BrokerHandler;
use crate::topics::{SystemTopicNames, TopicManager};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] rmq_net::NetError),
    #[error("broker start-up failed: {0}")]
    Startup(String),
    #[error(transparent)]
    Metadata(#[from] crate::json_file::LoadError),
    #[error(transparent)]
    Topics(#[from] crate::topic_log::LoadError),
}

/// A running broker.
pub struct BrokerHandle {
    ctx: SharedContext,
    threads: Vec<JoinHandle<()>>,
    layout: StoreLayout,
}

impl BrokerHandle {
    pub fn context(&self) -> &SharedContext {
        &self.ctx
    }

    /// Stops accepting, unregisters from name servers, flushes and closes every shard,
    /// persists offsets, and marks the store cleanly shut down.
    pub fn stop(self) -> Result<(), BrokerError> {
        self.ctx.stopping.store(true, Ordering::Release);
        for thread in self.threads {
            let _ = thread.join();
        }
        if let Err(error) = self.ctx.topics.close() {
            tracing::error!(
                "topics.json not rewritten at shutdown (its change log is kept): {error}"
            );
        }
        self.ctx.offsets.persist();
        self.ctx.schedule.persist();
        self.ctx.transactions.persist();
        self.layout.mark_clean_shutdown()?;
        tracing::info!("broker shut down cleanly");
        Ok(())
    }
}

/// The store settings the config asks for.
pub fn store_config(config: &BrokerConfig, shard_count: u32) -> StoreConfig {
    let ms = |millis: i32| Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    let count = |value: i32| usize::try_from(value).unwrap_or(0);
    StoreConfig {
        root_dir: config.store_path_root_dir.clone().into(),
        commit_log_dir: config.store_path_commit_log(),
        consume_queue_dir: config.store_path_consume_queue(),
        checkpoint_path: config.store_path_checkpoint(),
        abort_path: config.store_path_abort_file(),
        commit_log_file_size: config.mapped_file_size_commit_log,
        consume_queue_file_size: config.mapped_file_size_consume_queue,
        flush_mode: match config.flush_disk_type {
            FlushDiskType::SyncFlush => FlushMode::Sync,
            FlushDiskType::AsyncFlush => FlushMode::Async,
        },
        direct_io: config.async_flush_direct_io,
        sync_flush_dsync_writes: config.sync_flush_dsync_writes,
        sync_group_delay: Duration::from_micros(u64::from(config.sync_flush_group_delay_micros)),
        sync_group_no_delay_count: usize::try_from(config.sync_flush_group_no_delay_count)
            .unwrap_or(usize::MAX),
        sync_group_delay_probe: config.sync_flush_group_delay_probe,
        sync_flush_timeout: ms(config.sync_flush_timeout),
        flush_interval_commit_log: ms(config.flush_interval_commit_log),
        flush_commit_log_least_pages: u32::try_from(config.flush_commit_log_least_pages)
            .unwrap_or(0),
        flush_commit_log_thorough_interval: ms(config.flush_commit_log_thorough_interval),
        write_back_bytes: config.async_flush_write_back_bytes,
        page_cache_bytes: crate::host_memory::page_cache_per_shard(
            config.async_flush_page_cache_bytes,
            config.access_message_in_memory_max_ratio,
            shard_count,
        ),
        flush_interval_consume_queue: ms(config.flush_interval_consume_queue),
        index_sync_interval: Duration::from_secs(10),
        message_index_safe: config.message_index_safe,
        max_transfer_bytes: count(config.max_transfer_bytes_on_message_in_memory),
        max_transfer_count: count(config.max_transfer_count_on_message_in_memory),
        requested_shard_count: shard_count,
        max_unwritten_bytes: 256 << 20,
        index_dir: config.store_path_index(),
        message_index_enable: config.message_index_enable,
        max_hash_slot_num: u32::try_from(config.max_hash_slot_num.max(1)).unwrap_or(1),
        max_index_num: u32::try_from(config.max_index_num.max(2)).unwrap_or(2),
        epoch_file: config
            .enable_controller_mode
            .then(|| config.store_path_epoch_file()),
        sync_cohort: match config.flush_disk_type {
            FlushDiskType::SyncFlush if config.sync_flush_cohort => {
                Some(Arc::new(rmq_storage::SyncCohort::default()))
            }
            _ => None,
        },
        faults: None,
    }
}

/// The address clients reach this broker on: brokerIP1, else the first non-loopback
/// IPv4 address of the machine, else 127.0.0.1.
pub fn broker_ip(config: &BrokerConfig) -> IpAddr {
    if let Some(ip) = config
        .broker_ip1
        .as_deref()
        .and_then(|ip| ip.trim().parse().ok())
    {
        return ip;
    }
    let detected = nix::ifaddrs::getifaddrs().ok().and_then(|mut addrs| {
        addrs.find_map(|ifa| {
            let ip = ifa.address?.as_sockaddr_in()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(IpAddr::V4(ip))
        })
    });
    detected.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

type MeshEnds = (MeshSender<ShardJob>, MeshReceiver<ShardJob>);

/// What each core takes once at start: its mesh ends and its part of the balancer.
type CoreParts = (MeshEnds, BalancerCore);

/// Starts the broker and returns once every core serves requests.
///
/// # Errors
/// Store locked by another process, recovery failure, port in use, io_uring refused.
pub fn start_broker(config: BrokerConfig) -> Result<BrokerHandle, BrokerError> {
    let core_count = rmq_net::cores::allowed_cpus().len().max(1);
    let requested_shards = if config.shard_count == 0 {
        core_count as u32
    } else {
        config.shard_count
    };
    let store_cfg = store_config(&config, requested_shards);
    let layout = StoreLayout::open(&store_cfg)?;
    let shard_count = layout.shard_count;
    if !layout.previous_shutdown_clean {
        tracing::warn!("previous shutdown was not clean: recovering the store");
    }
    let ip = broker_ip(&config);
    let broker_addr = SocketAddr::new(ip, config.listen_port);
    let listen_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.listen_port);
    // Claimed now (a live listener on the port fails the start-up before the store is
    // recovered), listened on by every core once all shards are open.
    let claim = rmq_net::listener::claim(listen_addr, rmq_net::listener::PORT_RELEASE_PATIENCE)?;
    let claims = (0..core_count)
        .map(|_| claim.try_clone().map(Some))
        .collect::<Result<Vec<_>, _>>()?;
    drop(claim);
    let claims = Arc::new(Mutex::new(claims));
    let idle_poll = std::time::Duration::from_micros(u64::from(config.idle_poll_micros));
    let idle_poll_probe = config.idle_poll_probe;
    let pinning = match config.pin_cores {
        PinCores::Never => Pinning::Never,
        PinCores::Always => Pinning::Always,
        // Under SYNC_FLUSH a shard's thread is woken by its disk completions, and unpinned
        // the kernel packed both shards onto the CPU without the disk's interrupts (send
        // p99.9 at half load 5.7 → 14.6 ms; docs/perf.md "Cores pinned only while polling").
        PinCores::Auto if config.flush_disk_type == FlushDiskType::SyncFlush => Pinning::Always,
        PinCores::Auto => Pinning::WhilePolling,
    };
    let acl = match config.acl_enable {
        true => {
            Some(crate::acl::Acl::open(&config).map_err(|e| BrokerError::Startup(e.to_string()))?)
        }
        false => None,
    };
    let ctx = Arc::new(build_context(
        config,
        broker_addr,
        shard_count,
        core_count,
        acl,
    )?);
    let parts: Arc<Mutex<Vec<Option<CoreParts>>>> = Arc::new(Mutex::new(
        Mesh::new(core_count)
            .into_iter()
            .zip(rmq_net::balance::balancer(core_count))
            .map(Some)
            .collect(),
    ));
    let barrier = Arc::new(Barrier::new(core_count));
    let failed = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let ready_tx = Arc::new(Mutex::new(ready_tx));
    let previous_clean = layout.previous_shutdown_clean;
    let body_ctx = ctx.clone();
    let threads = rmq_net::cores::run_cores_polling(
        "broker",
        core_count,
        idle_poll,
        idle_poll_probe,
        pinning,
        move |core| {
            let ctx = body_ctx.clone();
            let (mesh, balancer) = parts.lock().expect("core parts lock")[core]
                .take()
                .expect("each core takes its parts once");
            let claim = claims.lock().expect("claims lock")[core]
                .take()
                .expect("each core takes its claim once");
            let (store_cfg, barrier, failed, ready_tx) = (
                store_cfg.clone(),
                barrier.clone(),
                failed.clone(),
                ready_tx.clone(),
            );
            async move {
                let start = CoreStart {
                    ctx,
                    core,
                    mesh,
                    balancer,
                    store_cfg,
                    barrier,
                    failed,
                    ready_tx,
                    previous_clean,
                    claim: Some(claim),
                };
                run_core(start).await;
            }
        },
    )
    .map_err(|e| {
        BrokerError::Startup(format!(
            "cannot start core threads (io_uring available?): {e}"
        ))
    })?;
    let mut handle = BrokerHandle {
        ctx,
        threads,
        layout,
    };
    for _ in 0..core_count {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                handle.ctx.stopping.store(true, Ordering::Release);
                for thread in handle.threads.drain(..) {
                    let _ = thread.join();
                }
                return Err(BrokerError::Startup(message));
            }
            Err(_) => {
                return Err(BrokerError::Startup(
                    "a core thread died during start-up".into(),
                ));
            }
        }
    }
    if crate::metrics::exporter_on(&handle.ctx.config) {
        match crate::metrics::http::start(handle.ctx.clone()) {
            Ok(thread) => handle.threads.push(thread),
            Err(message) => {
                handle.ctx.stopping.store(true, Ordering::Release);
                for thread in handle.threads.drain(..) {
                    let _ = thread.join();
                }
                return Err(BrokerError::Startup(message));
            }
        }
    }
    Ok(handle)
}

pub(crate) fn build_context(
    config: BrokerConfig,
    broker_addr: SocketAddr,
    shard_count: u32,
    core_count: usize,
    acl: Option<Arc<crate::acl::Acl>>,
) -> Result<BrokerContext, BrokerError> {
    let config_dir = std::path::Path::new(&config.store_path_root_dir).join("config");
    let names = SystemTopicNames {
        cluster: config.broker_cluster_name.clone(),
        broker_name: config.broker_name.clone(),
        default_queue_nums: config.default_topic_queue_nums,
        auto_create_topic_enable: config.auto_create_topic_enable,
    };
    let ha_ip = config
        .broker_ip2
        .clone()
        .unwrap_or_else(|| broker_addr.ip().to_string());
    let ha_addr = format!("{ha_ip}:{}", config.ha_listen_port());
    Ok(BrokerContext {
        topics: TopicManager::load(config_dir.join("topics.json"), &names)?,
        groups: GroupManager::load(config_dir.join("subscriptionGroup.json"))?,
        offsets: OffsetManager::load(config_dir.join("consumerOffset.json"))?,
        clients: ClientManager::default(),
        schedule: crate::schedule::ScheduleProgress::load(
            &config_dir,
            config.delay_levels_ms().unwrap_or_default(),
        )?,
        transactions: crate::transaction::TransactionState::load(&config_dir)?,
        stats: BrokerStats::default(),
        stats_hub: crate::stats::StatsHub::default(),
        stats_history: crate::stats::StatsHistory::default(),
        metrics: crate::metrics::MetricsHub::default(),
        acl,
        client_calls: crate::client_calls::ClientCalls::default(),
        rebalance_locks: crate::rebalance_lock::RebalanceLocks::default(),
        live_config: arc_swap::ArcSwap::from_pointee(config.clone()),
        replication: crate::replication::ReplicationInfo::default(),
        ack_base: crate::replication::AckPolicy::for_master(&config),
        role: crate::replication::role::RoleState::from_config(&config),
        controller_inbox: crate::controller_client::Inbox::default(),
        register_now: AtomicBool::new(false),
        registration: crate::registration::RegistrationProgress::default(),
        stopping: AtomicBool::new(false),
        started_at_ms: now_ms(),
        config,
        broker_addr,
        ha_addr,
        shard_count,
        core_count,
    })
}

struct CoreStart {
    ctx: SharedContext,
    core: usize,
    mesh: MeshEnds,
    balancer: BalancerCore,
    store_cfg: StoreConfig,
    barrier: Arc<Barrier>,
    failed: Arc<AtomicBool>,
    ready_tx: Arc<Mutex<std::sync::mpsc::Sender<Result<(), String>>>>,
    previous_clean: bool,
    /// This core's descriptor of the broker's listening socket (taken when it listens).
    claim: Option<rmq_net::listener::Claim>,
}

impl CoreStart {
    fn report(&self, result: Result<(), String>) {
        let _ = self.ready_tx.lock().expect("ready lock").send(result);
    }
}

async fn open_shards(start: &CoreStart) -> Result<HashMap<u32, Rc<ShardStore>>, String> {
    let mut shards = HashMap::new();
    for shard in (0..start.ctx.shard_count).filter(|s| start.ctx.core_of_shard(*s) == start.core) {
        let began = Instant::now();
        let store = ShardStore::open(start.store_cfg.clone(), shard, start.previous_clean)
            .await
            .map_err(|e| format!("shard {shard}: {e}"))?;
        tracing::info!(shard, core = start.core, max_offset = store.max_physical_offset(), elapsed = ?began.elapsed(), "shard open");
        shards.insert(shard, store);
    }
    Ok(shards)
}

async fn run_core(mut start: CoreStart) {
    let opened = open_shards(&start).await;
    if opened.is_err() {
        start.failed.store(true, Ordering::Release);
    }
    start.barrier.wait();
    let shards = match opened {
        Ok(shards) if !start.failed.load(Ordering::Acquire) => shards,
        Ok(shards) => {
            return close_after_failure(&start, shards, "another core failed to open its shards")
                .await;
        }
        Err(message) => return start.report(Err(message)),
    };
    let claim = start.claim.take().expect("a core listens once");
    let listener = match rmq_net::listener::listen(claim)
        .map_err(|e| e.to_string())
        .and_then(|l| rmq_net::listener::register(l).map_err(|e| e.to_string()))
    {
        Ok(listener) => listener,
        Err(message) => return close_after_failure(&start, shards, &message).await,
    };
    let (sender, receiver) = start.mesh;
    let balancer = start.balancer;
    let ctx = start.ctx.clone();
    let core = Rc::new(CoreContext::new(start.core, ctx.clone(), shards, sender));
    rmq_net::rt::spawn(core.clone().serve_mesh(receiver)).detach();
    let duties = (start.core == 0).then(|| rmq_net::rt::spawn(core_zero_duties(ctx.clone())));
    if start.core == 0 {
        let reader = Arc::new(rmq_storage::disk_space::Statvfs);
        rmq_net::rt::spawn(crate::retention::retention_loop(core.clone(), reader)).detach();
    }
    crate::schedule::scanner::spawn_scanners(&core);
    if start.core == 0 {
        crate::schedule::ensure_system_topics(&ctx);
        rmq_net::rt::spawn(crate::schedule::scanner::persist_loop(ctx.clone())).detach();
        rmq_net::rt::spawn(crate::transaction::check::check_loop(core.clone())).detach();
    }
    crate::replication::start(&core);
    crate::controller_client::start(&core);
    crate::metrics::start_core(&core);
    ctx.stats_hub.start_core(start.core);
    if start.core == 0 {
        rmq_net::rt::spawn(crate::stats::sampler_loop(ctx.clone(), 0)).detach();
    }
    let _ = start.ready_tx.lock().expect("ready lock").send(Ok(()));
    if start.core == 0 {
        let namesrv = ctx.config.namesrv_addrs().join(";");
        tracing::info!(
            "The broker[{}, {}] boot success. serializeType=JSON and name server is {namesrv}",
            ctx.config.broker_name,
            ctx.broker_addr
        );
        println!(
            "The broker[{}, {}] boot success. serializeType=JSON and name server is {namesrv}",
            ctx.config.broker_name, ctx.broker_addr
        );
    }
    accept_loop(listener, &core, balancer).await;
    if let Some(duties) = duties {
        let _ = duties.await;
    }
    // Let forwarded work in flight finish before the shards close.
    rmq_net::rt::sleep(Duration::from_millis(300)).await;
    for (shard, store) in &core.shards {
        if let Err(error) = store.shutdown().await {
            tracing::error!(shard, "shard shutdown failed: {error}");
        }
    }
}

async fn close_after_failure(
    start: &CoreStart,
    shards: HashMap<u32, Rc<ShardStore>>,
    message: &str,
) {
    for store in shards.values() {
        let _ = store.shutdown().await;
    }
    start.report(Err(message.to_string()));
}

async fn accept_loop(
    listener: rmq_net::listener::TcpListener,
    core: &Rc<CoreContext>,
    balancer: BalancerCore,
) {
    let handler = Rc::new(BrokerHandler { core: core.clone() });
    let config = &core.broker.config;
    let as_usize = |value: u32| usize::try_from(value).unwrap_or(usize::MAX);
    let limits = rmq_net::ConnectionLimits {
        max_frame: usize::try_from(config.max_frame_length)
            .unwrap_or(DEFAULT_MAX_FRAME)
            .max(1024),
        max_in_flight: as_usize(config.connection_max_in_flight_requests),
        max_parked: as_usize(config.connection_max_parked_requests),
        max_queued_reply_bytes: as_usize(config.connection_max_queued_reply_bytes),
    };
    let broker = core.broker.clone();
    let core_id = core.core;
    rmq_net::balance::accept_balanced(
        listener,
        move || broker.stopping.load(Ordering::Acquire),
        balancer,
        move |stream| {
            let serving = rmq_net::serve_connection(stream, handler.clone(), core_id, limits);
            crate::metrics::counted_connection(serving)
        },
    )
    .await;
}

/// Registration, offset persistence and client expiry, on core 0.
async fn core_zero_duties(ctx: SharedContext) {
    let registration = rmq_net::rt::spawn(crate::registration::registration_loop(ctx.clone()));
    let offsets_every =
        Duration::from_millis(ctx.config.flush_consumer_offset_interval.clamp(100, 60_000) as u64);
    let mut last_offsets = Instant::now();
    let mut last_expiry = Instant::now();
    while !ctx.stopping.load(Ordering::Acquire) {
        rmq_net::rt::sleep(Duration::from_millis(100)).await;
        if last_offsets.elapsed() >= offsets_every {
            last_offsets = Instant::now();
            ctx.offsets.persist();
        }
        if last_expiry.elapsed() >= Duration::from_secs(10) {
            last_expiry = Instant::now();
            for group in ctx.clients.expire(Instant::now()) {
                ctx.clients.notify_ids_changed(&group);
            }
        }
    }
    let _ = registration.await;
}
