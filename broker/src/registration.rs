//! Registration with every name server: at start, every `registerNameServerPeriod`
//! (30 s), at once when topics change, and UNREGISTER_BROKER at shutdown. Name servers
//! are independent; each gets its own connection and a failure with one never delays
//! the others.
//!
//! The periodic registration is skipped when every name server already has this broker's
//! data version (RocketMQ 4.9's `needRegister`: QUERY_DATA_VERSION to each, which also
//! renews the broker's liveness there; a Java name server answers it the same way) when
//! `forceRegister=false`, or, whatever `forceRegister`, for a master with more than
//! [`LARGE_TABLE_TOPICS`] topics: resending a million unchanged topics every 30 s costs
//! seconds of CPU on both sides and changes nothing (a name server ignores the topics of a
//! registration whose data version it has). A registration is never skipped at start, after
//! a topic change, after one failed with some name server, or while a slave has no master.
//!
//! Controller mode: the broker registers only once the controller gave it a role, with the
//! broker id of that role; when a role change gives it another id (a slave becoming brokerId
//! 0), it registers the new one at once ([`register_role_change`]): to every name server on
//! a connection and in a task of its own, so that neither a periodic registration still
//! waiting for an unreachable name server (up to `registerBrokerTimeoutMills`) nor that name
//! server delays it anywhere else. A request built for an id that is no longer the broker's
//! is not sent (it would switch a name server's entry back to the old id).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::task::AtomicWaker;
use rmq_core::body::{
    DataVersion, PERM_READ, PERM_WRITE, RegisterBrokerBody, TopicConfigSerializeWrapper,
    decode_body, encode_body,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code};
use rmq_net::{NetError, RemotingClient};

use crate::context::SharedContext;

type Clients = RefCell<HashMap<String, Rc<RemotingClient>>>;

thread_local! {
    /// Per broker address, the connections to the name servers (one per name server) of the
    /// registrations this thread sends for that broker: its registration loop and its role
    /// changes, both on core 0. Never shared between brokers (tests run several in one
    /// process): a name server ties a broker's liveness to the connection it registered on.
    static CLIENTS: RefCell<HashMap<String, Rc<Clients>>> = RefCell::default();
}

fn shared_clients(ctx: &SharedContext) -> Rc<Clients> {
    CLIENTS.with(|all| {
        all.borrow_mut()
            .entry(ctx.broker_addr.to_string())
            .or_default()
            .clone()
    })
}

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
    /// What changed since the last registration: created or updated topics, or (`full`)
    /// anything else.
    changed: Mutex<Changed>,
    /// Wakes `registration_loop` out of its pause when a registration is requested (a send
    /// that created a topic waits for it, so it should not wait for the next tick).
    wake: AtomicWaker,
}

#[derive(Default)]
struct Changed {
    topics: Vec<String>,
    full: bool,
}

/// Topic changes that may be registered incrementally before a full registration is sent
/// (10,000 topics are ~2.5 MB of JSON; a burst of creates between two registration ticks
/// past 1,024 used to send the whole table).
const INCREMENT_TOPICS_MAX: usize = 10_000;

impl RegistrationProgress {
    /// Records a request for a full registration; returns its generation.
    pub fn request(&self) -> u64 {
        self.changed.lock().expect("registration changes").full = true;
        self.requested.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Records a request to register `topic`, just created or updated (its config and the
    /// data version are already in the topic table); returns its generation.
    pub fn request_topic(&self, topic: &str) -> u64 {
        let mut changed = self.changed.lock().expect("registration changes");
        if changed.topics.len() < INCREMENT_TOPICS_MAX {
            changed.topics.push(topic.to_string());
        } else {
            changed.full = true;
        }
        drop(changed);
        self.requested.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The changes recorded since the last call: the topics, or None when only a full
    /// registration covers them.
    fn take_changed(&self) -> Option<Vec<String>> {
        let changed = std::mem::take(&mut *self.changed.lock().expect("registration changes"));
        (!changed.full).then_some(changed.topics)
    }

    /// Wakes the registration loop (after `BrokerContext::register_now` was set).
    pub fn wake_loop(&self) {
        self.wake.wake();
    }

    /// Pauses the registration loop for `pause` or until `requested` is set.
    async fn pause(&self, requested: &AtomicBool, pause: Duration) {
        let woken = std::future::poll_fn(|cx| {
            self.wake.register(cx.waker());
            if requested.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let _ = rmq_net::rt::timeout(pause, woken).await;
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
    let clients = shared_clients(&ctx);
    let mut last: Option<Instant> = None;
    let mut registered_id: Option<i64> = None;
    // The next registration must be a full one (the last failed, or a slave lacks its master).
    let mut force_next = true;
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
            // No UNREGISTER_BROKER first: a name server replaces the entry of this address
            // under another id when it registers (RocketMQ 4.9.8's "switch slave to master"
            // rule, ours too), and an unregister removes the address from the route until
            // the registration arrives, after waiting for any unreachable name server.
            tracing::info!(old, new = id, "broker id changed: registering the new one");
        }
        if due || requested || registered_id != Some(id) {
            let force = force_next || requested || registered_id != Some(id);
            let same_id = registered_id == Some(id);
            registered_id = Some(id);
            last = Some(Instant::now());
            // Read after taking the flag: every change requested up to here is in the body
            // built below (requests bump the generation before setting the flag).
            let generation = ctx.registration.requested.load(Ordering::Acquire);
            // Changed topics only, when that is all that changed. The data version moves
            // after they are taken, so the increment's version was never sent before (a
            // Java name server ignores the topics of a registration whose version it has)
            // and a topic recorded later gets an increment of its own.
            let incremental = requested && !force_next && same_id && may_skip_unchanged(&ctx);
            let increment = ctx.registration.take_changed().filter(|_| incremental);
            let all_ok = match increment {
                // Recorded topics that an earlier increment already took.
                Some(topics) if topics.is_empty() => true,
                Some(topics) => {
                    ctx.topics.next_data_version();
                    match increment_request(&ctx, &topics, ctx.topics.data_version()) {
                        Some(request) => send_all(&ctx, &clients, &addrs, &[request]).await,
                        None => register_all(&ctx, &clients, &addrs).await,
                    }
                }
                None if !force
                    && may_skip_unchanged(&ctx)
                    && unchanged_everywhere(&ctx, &clients, &addrs).await =>
                {
                    tracing::debug!("name servers have this data version: registration skipped");
                    true
                }
                None => register_all(&ctx, &clients, &addrs).await,
            };
            if all_ok {
                ctx.registration
                    .completed
                    .fetch_max(generation, Ordering::AcqRel);
            }
            // A slave that registered before its master learnt no master address: ask
            // again soon rather than a whole period later.
            let slave_without_master =
                ctx.is_slave() && ctx.replication.master_ha_addr(&ctx).is_none();
            force_next = !all_ok || slave_without_master;
            if !all_ok || slave_without_master {
                // A name server that missed a registration would drop this broker's routes
                // for a whole period: retry soon instead.
                last = Instant::now().checked_sub(period.saturating_sub(RETRY_AFTER_FAILURE));
            }
        }
        ctx.registration
            .pause(&ctx.register_now, Duration::from_millis(100))
            .await;
    }
    ctx.registration.running.store(false, Ordering::Release);
    if let Some(id) = registered_id {
        unregister_all(&ctx, &clients, &addrs, id).await;
    }
}

/// Topics above which a master skips an unchanged periodic registration even with
/// `forceRegister=true` (past it the body is compressed: megabytes of topics resent for
/// nothing every period).
pub const LARGE_TABLE_TOPICS: usize = 10_000;

/// Whether an unchanged periodic registration may be skipped (see the module doc).
fn may_skip_unchanged(ctx: &SharedContext) -> bool {
    !ctx.config.force_register
        || (ctx.broker_id() == 0 && ctx.topics.snapshot().len() > LARGE_TABLE_TOPICS)
}

/// True when every name server answers QUERY_DATA_VERSION with `changed=false` and this
/// broker's data version (RocketMQ 4.9's `BrokerOuterAPI.needRegister`); any error, refusal
/// or other version means a registration is needed.
async fn unchanged_everywhere(ctx: &SharedContext, clients: &Clients, addrs: &[String]) -> bool {
    if addrs.is_empty() {
        return false;
    }
    let ours = ctx.topics.data_version();
    let queries = addrs.iter().map(|addr| async move {
        let request = RemotingCommand::new_request(request_code::QUERY_DATA_VERSION)
            .with_ext("brokerAddr", ctx.broker_addr)
            .with_ext("brokerId", ctx.broker_id())
            .with_ext("brokerName", &ctx.config.broker_name)
            .with_ext("clusterName", &ctx.config.broker_cluster_name)
            .with_body(encode_body(&ours));
        let client = client_for(ctx, clients, addr).await?;
        client.invoke(request, timeout(ctx)).await
    });
    join_all(queries).await.iter().all(|answer| {
        answer.as_ref().is_ok_and(|response| {
            response.code == ResponseCode::Success.code()
                && response.ext("changed") == Some("false")
                && decode_body::<DataVersion>(&response.body).is_ok_and(|theirs| theirs == ours)
        })
    })
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

/// Plain JSON bodies estimated above this are sent compressed even with
/// `compressedRegister=false` (a 4.9.x name server accepts both; RocketMQ's #5296: plain
/// bodies pass the 16 MiB frame at ~60k topics).
pub const AUTO_COMPRESS_BYTES: usize = 4 << 20;

/// Room left in a frame for the header of a REGISTER_BROKER request.
const FRAME_HEADROOM: usize = 64 << 10;

/// The REGISTER_BROKER requests of one registration: one request, or (split registration)
/// several, each holding part of the topics with the same data version and marked
/// `partialTopics=true` (an rmq-fast name server then adds or updates those topics and
/// removes none; RocketMQ 5's name server does the same unmarked).
///
/// The body is compressed when `compressedRegister=true` or when its JSON would pass
/// [`AUTO_COMPRESS_BYTES`]. It is split into requests of `splitRegistrationSize` topics
/// when `enableSplitRegistration=true` (RocketMQ 5), and otherwise only when one request
/// would not fit in `maxFrameLength`: then into as few parts as fit. Built off the core
/// threads ([`build_off_core`]): at 1M topics encoding takes seconds.
pub fn register_requests(ctx: &SharedContext) -> Vec<RemotingCommand> {
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
    let estimate: usize = wrapper
        .topic_config_table
        .keys()
        .map(|name| 2 * name.len() + 200)
        .sum();
    let compress = ctx.config.compressed_register || estimate > AUTO_COMPRESS_BYTES;
    let max_body = (ctx.config.max_frame_length as usize).saturating_sub(FRAME_HEADROOM);
    let split = usize::try_from(ctx.config.split_registration_size)
        .unwrap_or(1)
        .max(1);
    let topics = wrapper.topic_config_table.len();
    if ctx.config.enable_split_registration && topics >= split {
        return parts(ctx, &wrapper, topics.div_ceil(split), compress);
    }
    let whole = request(ctx, &wrapper, compress, false);
    if whole.body.len() <= max_body || topics <= 1 {
        return vec![whole];
    }
    // Too large for one frame even compressed: as few parts as fit.
    let mut count = whole.body.len().div_ceil(max_body.max(1)) + 1;
    loop {
        let requests = parts(ctx, &wrapper, count, compress);
        if requests.iter().all(|r| r.body.len() <= max_body) || count >= topics {
            tracing::info!(
                topics,
                parts = requests.len(),
                "registration split to fit maxFrameLength"
            );
            return requests;
        }
        count = (count * 2).min(topics);
    }
}

/// The topics of `wrapper` in `count` partial requests (name order, sizes within one).
fn parts(
    ctx: &SharedContext,
    wrapper: &TopicConfigSerializeWrapper,
    count: usize,
    compress: bool,
) -> Vec<RemotingCommand> {
    let mut names: Vec<&String> = wrapper.topic_config_table.keys().collect();
    names.sort();
    let size = names.len().div_ceil(count.max(1)).max(1);
    names
        .chunks(size)
        .map(|chunk| {
            let part = TopicConfigSerializeWrapper {
                topic_config_table: chunk
                    .iter()
                    .map(|name| ((*name).clone(), wrapper.topic_config_table[*name].clone()))
                    .collect(),
                data_version: wrapper.data_version,
            };
            request(ctx, &part, compress, true)
        })
        .collect()
}

fn request(
    ctx: &SharedContext,
    wrapper: &TopicConfigSerializeWrapper,
    compress: bool,
    partial: bool,
) -> RemotingCommand {
    let body = RegisterBrokerBody {
        topic_config_serialize_wrapper: wrapper.clone(),
        filter_server_list: Vec::new(),
    };
    let bytes = body.encode(compress);
    let mut request = RemotingCommand::new_request(request_code::REGISTER_BROKER)
        .with_ext("brokerAddr", ctx.broker_addr)
        .with_ext("brokerId", ctx.broker_id())
        .with_ext("brokerName", &ctx.config.broker_name)
        .with_ext("clusterName", &ctx.config.broker_cluster_name)
        .with_ext("haServerAddr", &ctx.ha_addr)
        .with_ext("compressed", compress)
        .with_ext("bodyCrc32", (crc32fast::hash(&bytes) & 0x7FFF_FFFF) as i32) // UtilAll.crc32 masks the sign bit
        .with_body(bytes);
    if partial {
        request.set_ext(PARTIAL_TOPICS, "true");
    }
    request
}

/// Header of a REGISTER_BROKER that holds only part of the broker's topics (split
/// registration); see `rmq_namesrv`'s route table.
pub const PARTIAL_TOPICS: &str = "partialTopics";

/// Runs [`register_requests`] on a thread of its own, so encoding a large table never
/// stalls the core the registration loop runs on.
async fn build_off_core(ctx: &SharedContext) -> Vec<RemotingCommand> {
    let (sender, receiver) = futures_channel::oneshot::channel();
    let owned = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("register-encode".into())
        .spawn(move || {
            let _ = sender.send(register_requests(&owned));
        });
    match spawned {
        Ok(_) => receiver.await.unwrap_or_default(),
        Err(error) => {
            tracing::warn!("no thread to encode the registration ({error}): encoding here");
            register_requests(ctx)
        }
    }
}

/// Delay before retrying a registration that failed with some name server.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// The REGISTER_BROKER of only `topics` (RocketMQ 4.9's `registerIncrementBrokerData`): their
/// configs and the current data version, marked `partialTopics=true` (an rmq-fast name server
/// adds or updates them and removes none; a Java name server applies the topics of any
/// registration with a new data version and removes none). None when a topic is gone (a
/// full registration then says so) or the request would not fit in a frame.
fn increment_request(
    ctx: &SharedContext,
    topics: &[String],
    data_version: DataVersion,
) -> Option<RemotingCommand> {
    let permission = ctx.live_config.load().broker_permission;
    let mut table = HashMap::with_capacity(topics.len());
    for name in topics {
        let mut config = ctx.topics.get(name)?;
        if !crate::schedule::is_registered(name) {
            continue;
        }
        if permission & PERM_WRITE == 0 || permission & PERM_READ == 0 {
            config.perm = permission;
        }
        table.insert(name.clone(), config);
    }
    let wrapper = TopicConfigSerializeWrapper {
        topic_config_table: table,
        data_version,
    };
    let request = request(ctx, &wrapper, false, true);
    let max_body = (ctx.config.max_frame_length as usize).saturating_sub(FRAME_HEADROOM);
    if request.body.len() > max_body {
        // More changed topics than fit in a frame: the full registration splits.
        return None;
    }
    tracing::debug!(topics = topics.len(), "registering changed topics only");
    Some(request)
}

/// Registers with every name server (each gets the parts of a split registration in
/// order); true when all accepted every part.
async fn register_all(ctx: &SharedContext, clients: &Clients, addrs: &[String]) -> bool {
    let requests = build_off_core(ctx).await;
    send_all(ctx, clients, addrs, &requests).await
}

/// A role change's registration (controller mode, see the module docs): the current id and
/// topics, sent at once to every name server, each in its own task, over the connections
/// the registration loop uses (requests on one connection are answered independently, and a
/// name server drops the brokers registered over a connection that closes, so a connection
/// of its own could not be closed after it). The registration loop registers the new id too
/// when it is free (the same data, harmless).
pub fn register_role_change(ctx: &SharedContext) {
    let ctx = ctx.clone();
    rmq_net::rt::spawn(async move {
        let requests = Rc::new(build_off_core(&ctx).await);
        let id = ctx.broker_id();
        for addr in ctx.config.namesrv_addrs() {
            let (ctx, requests) = (ctx.clone(), requests.clone());
            rmq_net::rt::spawn(async move {
                let clients = shared_clients(&ctx);
                let addrs = [addr];
                if send_all(&ctx, &clients, &addrs, &requests).await {
                    tracing::info!(namesrv = %addrs[0], id, "role change registered");
                }
            })
            .detach();
        }
    })
    .detach();
}

/// Sends `requests` in order to every name server; true when all accepted every one.
async fn send_all(
    ctx: &SharedContext,
    clients: &Clients,
    addrs: &[String],
    requests: &[RemotingCommand],
) -> bool {
    if requests.is_empty() {
        return false;
    }
    let attempts = addrs.iter().map(|addr| async move {
        let client = client_for(ctx, clients, addr).await?;
        let mut last = None;
        for request in requests {
            let id = ctx.broker_id().to_string();
            if request.ext("brokerId") != Some(id.as_str()) {
                // Built before a role change: the new id's registration is under way.
                tracing::debug!(namesrv = %addr, "registration of a former broker id dropped");
                break;
            }
            let response = client.invoke(request.clone(), timeout(ctx)).await?;
            let refused = response.code != ResponseCode::Success.code();
            last = Some(response);
            if refused {
                break;
            }
        }
        Ok::<_, NetError>((addr, last))
    });
    let mut all_ok = true;
    for outcome in join_all(attempts).await {
        all_ok &= matches!(&outcome, Ok((_, Some(r))) if r.code == ResponseCode::Success.code());
        match outcome {
            Ok((_, None)) => {}
            Ok((addr, Some(response))) if response.code == ResponseCode::Success.code() => {
                ctx.replication
                    .learn(response.ext("haServerAddr"), response.ext("masterAddr"));
                tracing::debug!(namesrv = %addr, master = ?response.ext("masterAddr"), "registered with name server");
            }
            Ok((addr, Some(response))) => tracing::warn!(
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
