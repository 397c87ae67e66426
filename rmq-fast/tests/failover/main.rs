//! Issue 11's loopback failover with real processes, end to end: three `rmq-fast controller`
//! members, an `rmq-fast namesrv` and two `rmq-fast broker`s of one group in controller mode,
//! each process with its own files on disk. The first broker becomes master, the second
//! enters its sync-state set; four concurrent senders send SYNC messages to the master and
//! record every acknowledged (queue, offset, body); then the master is killed with SIGKILL
//! mid-stream (in some rounds together with the controllers' raft leader). The test asserts
//! that the slave becomes brokerId 0 in the name server's route and acknowledges sends again
//! within `FAILOVER_LIMIT`, that every acknowledged message reads back byte-identical from
//! it, and that the killed broker restarts as a slave (brokerId != 0), holds the new
//! master's queues record for record and re-enters the sync-state set, after which SYNC
//! sends are acknowledged with it in the set. Failover times are printed. Before each kill the
//! slave is frozen for a moment (SIGSTOP): the master must acknowledge nothing meanwhile.
//!
//! Two tests here: `allAckInSyncStateSet=true` (the recommended setting; round 1 also kills
//! the controller leader, so the new raft leader must find the dead master by its missing
//! heartbeats) and `allAckInSyncStateSet=false` (round 1 kills the master alone; see
//! `kill_9_of_the_master_fails_over_without_all_ack_in_sync_state_set` for what that setting does and does not guarantee).
//! Two scenarios (both `allAckInSyncStateSet=true`), each in its own file:
//! - `slave_kill.rs`: kill -9 of the SLAVE mid-stream (the master acknowledges nothing the
//!   slave lacks until the controller approved the set without it, then acknowledges
//!   alone), its return, then kill -9 of the master (two failures in sequence).
//! - `cut_off.rs`: the master CUT OFF (SIGSTOP: connections open, heartbeats stopped), the
//!   slave elected, SIGCONT: at most one master acknowledging, the old one rejoins as a
//!   slave and drops what the new master lacks. What loopback cannot cover is said there.
//!
//! CI runs one round of each test; `cargo test` runs two at a time on a 2-core box (~25 s
//! for the four on an idle one, debug build; the scenarios add ~10 s). Long mode:
//! `RMQ_FAILOVER_ROUNDS=N` runs N rounds per test, the master alternating between the two
//! brokers (and the controller leader killed every other round in the first two tests).
//! `RMQ_FAILOVER_KEEP=1` keeps the processes' files and logs (the path is printed).
//!
//! Ports: every process listens on ports the kernel chose, held by the test while it runs
//! (`rmq_test_support::ports::HeldPorts`, also while a process is down). Ranges checked free
//! and released let two concurrent runs start members and name servers on the same ports:
//! one run's controllers exited (address in use) and its brokers joined the other run's
//! group, acknowledging on that run's stores.

#[allow(dead_code)]
#[path = "../controller/client.rs"]
mod client;
mod cluster;
mod cut_off;
mod slave_kill;
#[path = "../../../broker/tests/support/mod.rs"]
mod support;
mod timed_load;

use std::cell::Cell;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use client::{Member, agreed_leader, three_members};
use cluster::{Broker, Namesrv, in_sync_addrs, replicas};
use rmq_core::remoting::ResponseCode;
use support::{
    Acked, Topic, load_then_kill, read_queue, route_ids, send_counting_codes, send_request, verify,
};

pub const TOPIC: Topic = Topic {
    name: "LoopFailoverTopic",
    queues: 4,
};
/// From the kill to the new master in the route and acknowledging, for a loaded 2-core box
/// (printed; on an idle one ~0.1-0.3 s for the master alone, ~4-5 s with the controller
/// leader, whose successor waits for the master's heartbeats to time out: 3 s here).
const FAILOVER_LIMIT: Duration = Duration::from_secs(20);
/// For a (re)started broker to follow, catch up and enter the sync-state set.
const SETTLE_LIMIT: Duration = Duration::from_secs(40);
/// How long the slave is frozen (well below `haMaxTimeSlaveNotCatchup`, 2 s).
const FROZEN: Duration = Duration::from_millis(700);
/// Concurrent senders, and how long they send before the kill.
const SENDERS: usize = 4;
const LOAD_MS: u64 = 1_500;

fn rounds() -> usize {
    std::env::var("RMQ_FAILOVER_ROUNDS")
        .ok()
        .map(|n| n.parse().expect("RMQ_FAILOVER_ROUNDS is a number"))
        .unwrap_or(1)
}

/// With `allAckInSyncStateSet=true` a SYNC send is acknowledged once every member of the
/// sync-state set holds it, so no single kill -9 (of the master, of the controller leader, or
/// both) loses an acknowledged message.
#[test]
fn kill_9_of_the_master_and_the_controller_leader_loses_no_acknowledged_message() {
    run(true);
}

/// `allAckInSyncStateSet=false`: failover must work the same. What is guaranteed then: a
/// SYNC send waits for one slave's report while the set has other members, so in this group
/// of two (one slave) an acknowledged message is on the slave the controller elects, and the
/// test asserts that too. Not guaranteed in general: with two or more slaves the elected one
/// may not be the one that reported (the election prefers the larger max offset, which is not
/// a promise per message), and a set shrunk to the master alone acknowledges on the master's
/// word only; the election model (`election/tests/simulation.rs`) shows such losses.
#[test]
fn kill_9_of_the_master_fails_over_without_all_ack_in_sync_state_set() {
    run(false);
}

/// The processes, and a source of round numbers that keep message keys unique.
struct Cluster {
    /// Deleted on drop (None: kept, `RMQ_FAILOVER_KEEP`).
    _dir: Option<tempfile::TempDir>,
    members: Vec<Member>,
    namesrv: Namesrv,
    brokers: [Broker; 2],
    all_ack: bool,
    next_round: Cell<usize>,
}

fn run(all_ack: bool) {
    let mut cluster = Cluster::start(all_ack);
    rmq_net::rt::block_on(async {
        let mut acked = cluster.first_master().await;
        for round in 1..=rounds() {
            let master = (round + 1) % 2;
            let kill_leader = (round + usize::from(all_ack)) % 2 == 0;
            cluster
                .failover(round, master, kill_leader, &mut acked)
                .await;
        }
        println!("{} messages acknowledged and read back", acked.len());
    })
    .unwrap();
}

impl Cluster {
    /// The controllers (agreed on a leader) and the name server; the brokers are written,
    /// not started (`first_master`).
    fn start(all_ack: bool) -> Cluster {
        let mut dir = Some(tempfile::tempdir().unwrap());
        let root = dir.as_ref().unwrap().path().to_path_buf();
        if std::env::var_os("RMQ_FAILOVER_KEEP").is_some() {
            println!("files kept in {:?}", dir.take().unwrap().keep());
        }
        let mut members = three_members(&root);
        members.iter_mut().for_each(Member::start);
        agreed_leader(&members, SETTLE_LIMIT);
        let namesrv = Namesrv::start(&root);
        let controllers: Vec<String> = members.iter().map(|m| m.addr.clone()).collect();
        let controllers = controllers.join(";");
        let brokers =
            ["a", "b"].map(|name| Broker::new(name, &root, &namesrv.addr, &controllers, all_ack));
        Cluster {
            _dir: dir,
            members,
            namesrv,
            brokers,
            all_ack,
            next_round: Cell::new(0),
        }
    }

    /// Starts the brokers: the first becomes master, the second its slave in its sync-state
    /// set (`settle`); returns the messages acknowledged meanwhile.
    async fn first_master(&mut self) -> Acked {
        let mut acked = Acked::new();
        self.brokers[0].start().await;
        self.until_master(0).await;
        self.brokers[1].start().await;
        self.settle(0, &mut acked).await;
        acked
    }
}

impl Cluster {
    fn round(&self) -> usize {
        self.next_round.set(self.next_round.get() + 1);
        self.next_round.get()
    }

    /// One round: load on `master`, kill -9 of it (and of the raft leader when
    /// `kill_leader`), the other broker takes over with every acknowledged message, the
    /// killed processes restart and the old master rejoins as a slave.
    async fn failover(
        &mut self,
        round: usize,
        master: usize,
        kill_leader: bool,
        acked: &mut Acked,
    ) {
        let slave = 1 - master;
        self.frozen_slave_holds_back_acks(master).await;
        let leader = kill_leader.then(|| agreed_leader(&self.members, SETTLE_LIMIT));
        let master_addr = self.brokers[master].addr.clone();
        let load_round = self.round();
        let (members, brokers) = (&mut self.members, &mut self.brokers);
        let mut killed = None;
        let loaded = load_then_kill(&master_addr, TOPIC, SENDERS, load_round, LOAD_MS, || {
            if let Some(leader) = leader {
                members[leader].kill();
            }
            brokers[master].kill();
            killed = Some(Instant::now());
        })
        .await;
        let killed = killed.expect("killed under load");
        assert!(
            loaded.len() > 20,
            "round {round}: only {} acknowledged under load",
            loaded.len()
        );
        acked.extend(loaded);

        let new_master = self.brokers[slave].addr.clone();
        self.wait(
            "the slave as brokerId 0 in the route",
            FAILOVER_LIMIT,
            async || {
                let route = route_ids(&self.namesrv.addr, TOPIC.name).await;
                match route.first() {
                    Some((0, addr)) if *addr == new_master => Ok(()),
                    _ => Err(format!("route {route:?}")),
                }
            },
        )
        .await;
        let in_route = killed.elapsed();
        let refused = self.until_acknowledged(slave, acked).await;
        let acknowledging = killed.elapsed();
        println!(
            "round {round} (allAckInSyncStateSet={}): kill -9 of the master{} -> the slave is brokerId 0 in the route \
             after {in_route:?}, acknowledges a SYNC send after {acknowledging:?} (refused \
             before: {refused:?})",
            self.all_ack,
            if kill_leader {
                " and the controller leader"
            } else {
                ""
            },
        );
        assert!(
            acknowledging < FAILOVER_LIMIT,
            "round {round}: {acknowledging:?}"
        );
        // Registered as brokerId 0 only once it takes writes: a client routed to it is served.
        assert_eq!(
            refused,
            [],
            "round {round}: refused after the route named it master"
        );
        verify(&new_master, TOPIC, acked, round).await.unwrap();

        if let Some(leader) = leader {
            self.members[leader].start();
        }
        self.brokers[master].start().await;
        self.settle(slave, acked).await;
    }
}

impl Cluster {
    /// Waits until `master` is the group's master for the controller and the name server,
    /// with the other broker in its sync-state set and registered as a slave (sending a few
    /// messages meanwhile); then SYNC sends are acknowledged, and the slave holds every
    /// acknowledged message, its queues record for record the master's.
    async fn settle(&self, master: usize, acked: &mut Acked) {
        let (master, slave) = (&self.brokers[master], &self.brokers[1 - master]);
        let both = BTreeSet::from([master.addr.clone(), slave.addr.clone()]);
        let what = format!(
            "{} master, {} its slave in its sync-state set",
            master.name, slave.name
        );
        self.wait(&what, SETTLE_LIMIT, async || {
            send_counting_codes(&master.addr, TOPIC, self.round(), 3, acked).await;
            let route = route_ids(&self.namesrv.addr, TOPIC.name).await;
            let info = replicas(&self.members)?;
            let routed = route.len() == 2
                && route[0] == (0, master.addr.clone())
                && route[1].0 != 0
                && route[1].1 == slave.addr;
            let set = in_sync_addrs(&info);
            if routed && info.master_address.as_ref() == Some(&master.addr) && set == both {
                return Ok(());
            }
            Err(format!(
                "route {route:?}, master {:?}, sync-state set {set:?}",
                info.master_address
            ))
        })
        .await;
        let codes = send_counting_codes(&master.addr, TOPIC, self.round(), 20, acked).await;
        assert_eq!(
            codes,
            [(ResponseCode::Success.code(), 20)],
            "SYNC sends with {} in the set",
            slave.name
        );
        let holds = format!("{} holding {}'s queues", slave.name, master.name);
        self.wait(&holds, SETTLE_LIMIT, async || {
            let (on_master, on_slave) = (queues(&master.addr).await, queues(&slave.addr).await);
            if on_master == on_slave {
                return Ok(());
            }
            let counts = |q: &Vec<Vec<bytes::Bytes>>| q.iter().map(Vec::len).collect::<Vec<_>>();
            Err(format!(
                "master {:?}, slave {:?}",
                counts(&on_master),
                counts(&on_slave)
            ))
        })
        .await;
        verify(&slave.addr, TOPIC, acked, self.next_round.get())
            .await
            .unwrap();
    }

    /// While the slave is frozen (SIGSTOP; for less than `haMaxTimeSlaveNotCatchup` and the
    /// heartbeat timeout, so it stays in the set) the master acknowledges nothing: a SYNC send
    /// waits for the slave's report. A kill -9 on loopback rarely exposes a master that
    /// acknowledges on its own word (its slave is microseconds behind); this does, every time.
    async fn frozen_slave_holds_back_acks(&self, master: usize) {
        let (master, slave) = (&self.brokers[master], &self.brokers[1 - master]);
        let client = rmq_net::RemotingClient::connect(&master.addr, support::TIMEOUT)
            .await
            .unwrap();
        slave.signal("STOP");
        let (request, _, _) = send_request(TOPIC, self.round(), 0, 0);
        let frozen = Instant::now();
        let answer = client.invoke(request, FROZEN).await;
        let answered = frozen.elapsed();
        slave.signal("CONT");
        // No answer within FROZEN (the send still waits) or a refusal: nothing acknowledged.
        if let Ok(answer) = answer {
            assert_ne!(
                answer.code,
                ResponseCode::Success.code(),
                "{} acknowledged a send {answered:?} after {} (in its sync-state set) was \
                 frozen: {:?}",
                master.name,
                slave.name,
                answer.ext_fields
            );
        }
    }

    /// Waits until `broker` is the group's master for the controller (the first start).
    async fn until_master(&self, broker: usize) {
        let addr = &self.brokers[broker].addr;
        self.wait("the first broker elected", SETTLE_LIMIT, async || {
            let info = replicas(&self.members)?;
            match info.master_address {
                Some(master) if master == *addr => Ok(()),
                other => Err(format!("master {other:?}")),
            }
        })
        .await;
    }

    /// Sends one message at a time to `broker` until one is acknowledged; returns the
    /// codes of the refusals before (code, count).
    async fn until_acknowledged(&self, broker: usize, acked: &mut Acked) -> Vec<(i32, usize)> {
        let addr = &self.brokers[broker].addr;
        let what = format!("a SYNC send acknowledged by {}", self.brokers[broker].name);
        let mut refused: Vec<(i32, usize)> = Vec::new();
        self.wait(&what, FAILOVER_LIMIT, async || {
            let codes = send_counting_codes(addr, TOPIC, self.round(), 1, acked).await;
            match codes[..] {
                [(code, 1)] if code == ResponseCode::Success.code() => Ok(()),
                [(code, 1)] => {
                    match refused.iter_mut().find(|(c, _)| *c == code) {
                        Some((_, n)) => *n += 1,
                        None => refused.push((code, 1)),
                    }
                    Err(format!("refused: {refused:?}"))
                }
                _ => unreachable!("one send, one answer: {codes:?}"),
            }
        })
        .await;
        refused
    }

    /// Polls `check` every 50 ms until it holds; fails naming `what`, the last state `check`
    /// reported and the ends of the processes' logs after `limit`.
    async fn wait(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl AsyncFnMut() -> Result<(), String>,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let state = match check().await {
                Ok(()) => return,
                Err(state) => state,
            };
            if Instant::now() > deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what}: {state}\n{}",
                    self.logs()
                );
            }
            rmq_net::rt::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logs(&self) -> String {
        let brokers = self
            .brokers
            .iter()
            .map(|b| format!("--- broker {}:\n{}", b.name, b.log_tail()));
        let members = self.members.iter().map(|m| {
            let text = m.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            format!("--- controller {}:\n{tail}", m.name)
        });
        brokers.chain(members).collect::<Vec<_>>().join("\n")
    }
}

/// Every queue of the topic on `addr`, as whole stored records.
async fn queues(addr: &str) -> Vec<Vec<bytes::Bytes>> {
    let client = rmq_net::RemotingClient::connect(addr, support::TIMEOUT)
        .await
        .unwrap();
    let mut all = Vec::new();
    for queue in 0..TOPIC.queues {
        let (records, _) = read_queue(&client, TOPIC.name, queue, 0).await.unwrap();
        all.push(records.into_iter().map(|r| r.record).collect());
    }
    all
}
