//! The producer side: `--threads` workers spread over `--cores` OS threads, each worker
//! with its own broker connections, message factory and send schedule.
//!
//! A worker runs `lanes` concurrent loops over one shared schedule (see `rate.rs`):
//! - sync: 1 lane, one SEND_MESSAGE_V2 outstanding;
//! - async: `--inflight` lanes, so at most that many requests are outstanding (bounded
//!   window, no unbounded queue in the client);
//! - batch: 1 lane of SEND_BATCH_MESSAGE with `--batch-size` messages;
//! - oneway: 1 lane; every `--inflight`-th message is sent two-way and waited for. The
//!   client's outgoing queue is unbounded, so without that barrier a closed-loop oneway
//!   run would only measure how fast memory fills. Only the barrier sends have an RT.
//!
//! Queues are used round robin, worker `w` starting at queue `w`. A response is counted
//! by its code: SUCCESS (0) adds the request's messages, anything else is an error keyed
//! by code; transport failures are keyed `timeout` / `closed` / `connect`.

use std::cell::{Cell, RefCell};
use std::net::{Ipv4Addr, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_net::{NetError, RemotingClient};

use crate::message::{MessageFactory, SendTarget, UniqKeyGenerator};
use crate::options::{Options, SendMode};
use crate::rate::{Schedule, Slot, latency_since};
use crate::report::{SharedStats, code_key, failure_key, lock};
use crate::route::{BrokerConnections, QueueTarget, connect_namesrv, producer_queues};
use crate::runner::RunControl;

/// Pause after a connection failure, so a dead broker is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// Resolves the route and starts the producer threads; returns one stats handle per thread.
///
/// # Errors
/// When the name server or route cannot be reached, or a thread cannot start.
pub fn start(options: &Options, control: Arc<RunControl>) -> anyhow::Result<Vec<SharedStats>> {
    let queues = resolve_queues(options)?;
    eprintln!(
        "producing to {} queue(s) of {} on {:?}",
        queues.len(),
        options.topic,
        distinct_brokers(&queues)
    );
    let queues = Arc::new(queues);
    // The schedule starts now, not at process start: route resolution must not become a
    // backlog that the open loop then bursts to catch up on.
    let schedule_start = Instant::now();
    let cores = options.cores.min(options.threads);
    let mut all_stats = Vec::with_capacity(cores);
    control
        .producers_live
        .store(options.threads, Ordering::Relaxed);
    for core in 0..cores {
        let stats = SharedStats::default();
        all_stats.push(stats.clone());
        let (options, queues, control) = (options.clone(), queues.clone(), control.clone());
        std::thread::Builder::new()
            .name(format!("bench-producer-{core}"))
            .spawn(move || {
                run_core(
                    CoreSetup {
                        core,
                        cores,
                        schedule_start,
                    },
                    &options,
                    &queues,
                    &control,
                    &stats,
                )
            })
            .context("spawning a producer thread")?;
    }
    Ok(all_stats)
}

fn resolve_queues(options: &Options) -> anyhow::Result<Vec<QueueTarget>> {
    rmq_net::rt::block_on(async {
        let namesrv = connect_namesrv(&options.namesrv, options.timeout()).await?;
        producer_queues(
            &namesrv,
            &options.topic,
            options.serialize.wire(),
            options.timeout(),
            options.queues,
        )
        .await
    })
    .context("creating an io_uring runtime")?
}

fn distinct_brokers(queues: &[QueueTarget]) -> Vec<&str> {
    let mut addrs: Vec<&str> = queues.iter().map(|queue| queue.addr.as_str()).collect();
    addrs.dedup();
    addrs
}

/// Which workers a producer thread runs, and when their schedules start.
#[derive(Debug, Clone, Copy)]
struct CoreSetup {
    core: usize,
    cores: usize,
    schedule_start: Instant,
}

/// Body of producer thread `core`: the workers `w` with `w % cores == core`.
fn run_core(
    setup: CoreSetup,
    options: &Options,
    queues: &Arc<Vec<QueueTarget>>,
    control: &Arc<RunControl>,
    stats: &SharedStats,
) {
    let CoreSetup {
        core,
        cores,
        schedule_start,
    } = setup;
    let runtime = match rmq_net::rt::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("producer thread {core}: no io_uring runtime: {error}");
            let workers = (core..options.threads).step_by(cores).count();
            control.producers_live.fetch_sub(workers, Ordering::Relaxed);
            return;
        }
    };
    let local_ip = local_ipv4(&queues[0].addr);
    runtime.block_on(async {
        let mut handles = Vec::new();
        for worker in (core..options.threads).step_by(cores) {
            let shared = (queues.clone(), control.clone(), stats.clone());
            let state = Worker::new(worker, options, shared, schedule_start, local_ip);
            handles.push(rmq_net::rt::spawn(run_worker(Rc::new(state))));
        }
        for handle in handles {
            let _ = handle.await;
        }
    });
}

/// The address this host uses to reach `addr` (for UNIQ_KEY); no packet is sent.
fn local_ipv4(addr: &str) -> Ipv4Addr {
    let probe = UdpSocket::bind("0.0.0.0:0").and_then(|socket| {
        socket.connect(addr)?;
        socket.local_addr()
    });
    match probe.map(|local| local.ip()) {
        Ok(std::net::IpAddr::V4(ip)) if !ip.is_unspecified() => ip,
        _ => Ipv4Addr::LOCALHOST,
    }
}

/// One producer worker; its lanes share it through `Rc`.
struct Worker {
    index: usize,
    mode: SendMode,
    inflight: usize,
    batch_size: usize,
    size: usize,
    timeout: Duration,
    queues: Arc<Vec<QueueTarget>>,
    next_queue: Cell<usize>,
    schedule: RefCell<Schedule>,
    factory: RefCell<MessageFactory>,
    connections: BrokerConnections,
    control: Arc<RunControl>,
    stats: SharedStats,
}

impl Worker {
    fn new(
        index: usize,
        options: &Options,
        shared: (Arc<Vec<QueueTarget>>, Arc<RunControl>, SharedStats),
        schedule_start: Instant,
        ip: Ipv4Addr,
    ) -> Self {
        let (queues, control, stats) = shared;
        let requests_per_sec = options.rate / options.messages_per_request() as f64;
        let schedule = Schedule::new(schedule_start, requests_per_sec, options.threads, index);
        let instance =
            std::process::id().rotate_left(16) ^ (index as u32).wrapping_mul(0x9E37_79B9);
        let factory = MessageFactory {
            group: options.producer_group().to_string(),
            topic: options.topic.clone(),
            size: options.size,
            tags: options.tags.is_on(),
            keys: options.keys.is_on(),
            serialize: options.serialize.wire(),
            worker: index,
            uniq: UniqKeyGenerator::new(ip, std::process::id(), instance ^ clock_salt()),
            sequence: 0,
        };
        Self {
            index,
            mode: options.mode,
            inflight: options.inflight,
            batch_size: options.batch_size,
            size: options.size,
            timeout: options.timeout(),
            next_queue: Cell::new(index % queues.len()),
            queues,
            schedule: RefCell::new(schedule),
            factory: RefCell::new(factory),
            connections: BrokerConnections::new(options.timeout()),
            control,
            stats,
        }
    }

    fn lanes(&self) -> usize {
        if self.mode == SendMode::Async {
            self.inflight
        } else {
            1
        }
    }

    fn messages_per_request(&self) -> usize {
        if self.mode == SendMode::Batch {
            self.batch_size
        } else {
            1
        }
    }

    fn next_queue(&self) -> &QueueTarget {
        let position = self.next_queue.get();
        self.next_queue.set((position + 1) % self.queues.len());
        &self.queues[position]
    }

    fn build(&self, queue: &QueueTarget) -> RemotingCommand {
        let target = SendTarget {
            broker_name: &queue.broker_name,
            queue_id: queue.queue_id,
        };
        let mut factory = self.factory.borrow_mut();
        match self.mode {
            SendMode::Batch => factory.batch(target, self.batch_size),
            _ => factory.single(target),
        }
    }
}

/// Nanoseconds of the wall clock, to tell apart runs of one pid (containers reuse pids).
fn clock_salt() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos())
}

async fn run_worker(worker: Rc<Worker>) {
    let mut lanes = Vec::with_capacity(worker.lanes());
    for _ in 0..worker.lanes() {
        lanes.push(rmq_net::rt::spawn(run_lane(worker.clone())));
    }
    for lane in lanes {
        let _ = lane.await;
    }
    worker
        .control
        .producers_live
        .fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(worker = worker.index, "producer worker done");
}

/// One sender loop: claim a slot, wait for its time, send, record.
async fn run_lane(worker: Rc<Worker>) {
    let messages = worker.messages_per_request() as u64;
    loop {
        let slot = worker.schedule.borrow_mut().next_slot(Instant::now());
        if !worker.control.claim(messages) {
            return;
        }
        if slot.intended > Instant::now() {
            rmq_net::rt::sleep_until(slot.intended).await;
        }
        if worker.control.stopping() {
            return;
        }
        let queue = worker.next_queue().clone();
        let client = match worker.connections.get(&queue.addr).await {
            Ok(client) => client,
            Err(error) => {
                record_failure(&worker, &slot, &error);
                rmq_net::rt::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let request = worker.build(&queue);
        let barrier = (slot.index + 1).is_multiple_of(worker.inflight as u64);
        if worker.mode == SendMode::Oneway && !barrier {
            send_oneway(&worker, &slot, &client, request);
            continue;
        }
        let result = client.invoke(request, worker.timeout).await;
        match result {
            Ok(response) => record_response(&worker, &slot, &response, messages),
            Err(error) => record_failure(&worker, &slot, &error),
        }
    }
}

fn send_oneway(worker: &Worker, slot: &Slot, client: &RemotingClient, request: RemotingCommand) {
    match client.invoke_oneway(request) {
        Ok(()) => {
            worker.control.sent_total.fetch_add(1, Ordering::Relaxed);
            if worker.control.measuring(slot.intended) {
                let mut stats = lock(&worker.stats);
                stats.messages += 1;
                stats.requests += 1;
                stats.bytes += worker.size as u64;
            }
        }
        Err(error) => record_failure(worker, slot, &error),
    }
}

fn record_response(worker: &Worker, slot: &Slot, response: &RemotingCommand, messages: u64) {
    let completed = Instant::now();
    let ok = response.code == ResponseCode::Success.code();
    if ok {
        worker
            .control
            .sent_total
            .fetch_add(messages, Ordering::Relaxed);
    }
    if !worker.control.measuring(slot.intended) {
        return;
    }
    let mut stats = lock(&worker.stats);
    stats.requests += 1;
    stats.record_latency(latency_since(slot.intended, completed));
    if ok {
        stats.messages += messages;
        stats.bytes += messages * worker.size as u64;
    } else {
        stats.record_error(code_key(response.code));
        tracing::debug!(code = response.code, remark = ?response.remark, "send failed");
    }
}

fn record_failure(worker: &Worker, slot: &Slot, error: &NetError) {
    if worker.control.measuring(slot.intended) {
        lock(&worker.stats).record_error(failure_key(error));
    }
    tracing::debug!("send failed: {error}");
}
