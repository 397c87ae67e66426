//! Registration with every name server: at start, every `registerNameServerPeriod`
//! (30 s), at once when topics change, and UNREGISTER_BROKER at shutdown. Name servers
//! are independent; each gets its own connection and a failure with one never delays
//! the others.
//!
//! Controller mode: the broker registers only once the controller gave it a role, with the
//! broker id of that role; when a role change gives it another id (a slave becoming brokerId
//! 0), it unregisters the old id and registers the new one at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rmq_core::body::{PERM_READ, PERM_WRITE, RegisterBrokerBody};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::{NetError, RemotingClient};

use crate::context::SharedContext;

type Clients = RefCell<HashMap<String, Rc<RemotingClient>>>;

/// Lets a request wait until a registration that includes its topic change reached every
/// name server (a heartbeat that created a %RETRY% topic answers after it, as RocketMQ does).
#[derive(Default)]
pub struct RegistrationProgress {
    /// Bumped by every `BrokerContext::request_registration`.
    requested: AtomicU64,
    /// The highest request generation a successful registration covered.
    completed: AtomicU64,
    /// Whether `registration_loop` runs (not in the in-process test harness).
    running: AtomicBool,
}

impl RegistrationProgress {
    /// Records a request; returns its generation.
    pub fn request(&self) -> u64 {
        self.requested.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Waits until a registration covering `generation` succeeded with every name server,
    /// at most `limit`. Returns whether it did (immediately true without a registration loop).
    pub async fn wait_for(&self, generation: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if !self.running.load(Ordering::Acquire)
                || self.completed.load(Ordering::Acquire) >= generation
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            rmq_net::rt::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Runs until the broker stops, then unregisters.
pub async fn registration_loop(ctx: SharedContext) {
    let addrs = ctx.config.namesrv_addrs();
    if addrs.is_empty() {
        tracing::warn!(
            "no name server address (namesrvAddr or NAMESRV_ADDR): clients cannot find this broker"
        );
    }
    let period =
        Duration::from_millis(ctx.config.register_name_server_period.clamp(10_000, 60_000) as u64);
    let clients: Clients = RefCell::default();
    let mut last: Option<Instant> = None;
    let mut registered_id: Option<i64> = None;
    ctx.registration.running.store(true, Ordering::Release);
    while !ctx.stopping.load(Ordering::Acquire) {
        if ctx.role.controller_mode() && ctx.role.generation() == 0 {
            // No role from the controller yet: nothing to announce.
            rmq_net::rt::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let due = last.is_none_or(|at| at.elapsed() >= period);
        let requested = ctx.register_now.swap(false, Ordering::AcqRel);
        let id = ctx.broker_id();
        if let Some(old) = registered_id.filter(|&old| old != id) {
            tracing::info!(
                old,
                new = id,
                "broker id changed: unregistering the old one"
            );
            unregister_all(&ctx, &clients, &addrs, old).await;
        }
        if due || requested || registered_id != Some(id) {
            registered_id = Some(id);
            last = Some(Instant::now());
            // Read after taking the flag: every change requested up to here is in the body
            // built below (requests bump the generation before setting the flag).
            let generation = ctx.registration.requested.load(Ordering::Acquire);
            // A slave that registered before its master learnt no master address: ask
            // again soon rather than a whole period later.
            let all_ok = register_all(&ctx, &clients, &addrs).await;
            if all_ok {
                ctx.registration
                    .completed
                    .fetch_max(generation, Ordering::AcqRel);
            }
            let slave_without_master =
                ctx.is_slave() && ctx.replication.master_ha_addr(&ctx).is_none();
            if !all_ok || slave_without_master {
                // A name server that missed a registration would drop this broker's routes
                // for a whole period: retry soon instead.
                last = Instant::now().checked_sub(period.saturating_sub(RETRY_AFTER_FAILURE));
            }
        }
        rmq_net::rt::sleep(Duration::from_millis(100)).await;
    }
    ctx.registration.running.store(false, Ordering::Release);
    if let Some(id) = registered_id {
        unregister_all(&ctx, &clients, &addrs, id).await;
    }
}

fn timeout(ctx: &SharedContext) -> Duration {
    Duration::from_millis(ctx.config.register_broker_timeout_mills.clamp(1000, 60_000) as u64)
}

async fn client_for(
    ctx: &SharedContext,
    clients: &Clients,
    addr: &str,
) -> Result<Rc<RemotingClient>, NetError> {
    if let Some(client) = clients.borrow().get(addr).filter(|c| !c.is_closed()) {
        return Ok(client.clone());
    }
    let client = RemotingClient::connect(addr, timeout(ctx)).await?;
    clients
        .borrow_mut()
        .insert(addr.to_string(), client.clone());
    Ok(client)
}

fn register_request(ctx: &SharedContext) -> RemotingCommand {
    let mut wrapper = ctx.topics.wrapper();
    wrapper
        .topic_config_table
        .retain(|topic, _| crate::schedule::is_registered(topic));
    // As RocketMQ: a broker without read or write permission registers every topic with
    // the broker's permission, so routes stop offering it to producers (or consumers).
    let permission = ctx.live_config.load().broker_permission;
    if permission & PERM_WRITE == 0 || permission & PERM_READ == 0 {
        for config in wrapper.topic_config_table.values_mut() {
            config.perm = permission;
        }
    }
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: wrapper,
        filter_server_list: Vec::new(),
    };
    let bytes = body.encode(ctx.config.compressed_register);
    RemotingCommand::new_request(request_code::REGISTER_BROKER)
        .with_ext("brokerAddr", ctx.broker_addr)
        .with_ext("brokerId", ctx.broker_id())
        .with_ext("brokerName", &ctx.config.broker_name)
        .with_ext("clusterName", &ctx.config.broker_cluster_name)
        .with_ext("haServerAddr", &ctx.ha_addr)
        .with_ext("compressed", ctx.config.compressed_register)
        .with_ext("bodyCrc32", (crc32fast::hash(&bytes) & 0x7FFF_FFFF) as i32) // UtilAll.crc32 masks the sign bit
        .with_body(bytes)
}

/// Delay before retrying a registration that failed with some name server.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// Registers with every name server; true when all accepted.
async fn register_all(ctx: &SharedContext, clients: &Clients, addrs: &[String]) -> bool {
    let request = register_request(ctx);
    let attempts = addrs.iter().map(|addr| {
        let request = request.clone();
        async move {
            let client = client_for(ctx, clients, addr).await?;
            let response = client.invoke(request, timeout(ctx)).await?;
            Ok::<_, NetError>((addr, response))
        }
    });
    let mut all_ok = true;
    for outcome in join_all(attempts).await {
        all_ok &= matches!(&outcome, Ok((_, r)) if r.code == ResponseCode::Success.code());
        match outcome {
            Ok((addr, response)) if response.code == ResponseCode::Success.code() => {
                ctx.replication
                    .learn(response.ext("haServerAddr"), response.ext("masterAddr"));
                tracing::debug!(namesrv = %addr, master = ?response.ext("masterAddr"), "registered with name server");
            }
            Ok((addr, response)) => tracing::warn!(
                namesrv = %addr, code = response.code, remark = ?response.remark,
                "name server refused registration"
            ),
            Err(error) => tracing::warn!("register to name server failed: {error}"),
        }
    }
    all_ok
}

async fn unregister_all(ctx: &SharedContext, clients: &Clients, addrs: &[String], id: i64) {
    let attempts = addrs.iter().map(|addr| async move {
        let request = RemotingCommand::new_request(request_code::UNREGISTER_BROKER)
            .with_ext("brokerAddr", ctx.broker_addr)
            .with_ext("brokerId", id)
            .with_ext("brokerName", &ctx.config.broker_name)
            .with_ext("clusterName", &ctx.config.broker_cluster_name);
        let client = client_for(ctx, clients, addr).await?;
        client.invoke(request, Duration::from_secs(3)).await
    });
    for outcome in join_all(attempts).await {
        if let Err(error) = outcome {
            tracing::warn!("unregister from name server failed: {error}");
        }
    }
    tracing::info!("unregistered from name servers");
}
