//! Scenario (issue 11): kill -9 of the SLAVE mid-stream with `allAckInSyncStateSet=true`,
//! then, once it is back, kill -9 of the master (two failures in sequence).
//!
//! While the controller still has the dead slave in the sync-state set, the master must not
//! acknowledge a message the slave lacks: no send that left after the kill may be
//! acknowledged before the controller approved the set without the slave (`SetWatch` orders
//! the acknowledgements against the controller's answers). Once it approved, the master
//! acknowledges alone. The slave restarts, catches up and re-enters the set; then the master
//! is killed and the slave must take over with every acknowledged message, byte-identical.

use std::time::{Duration, Instant};

use crate::cluster::{SetWatch, in_sync_addrs, replicas};
use crate::support::{Acked, verify};
use crate::timed_load::{Load, record};
use crate::{Cluster, FAILOVER_LIMIT, LOAD_MS, SENDERS, TOPIC, rounds};

#[test]
fn kill_9_of_the_slave_then_of_the_master_loses_no_acknowledged_message() {
    let mut cluster = Cluster::start(true);
    rmq_net::rt::block_on(async {
        let mut acked = cluster.first_master().await;
        for round in 1..=rounds() {
            // Each round's master kill makes the other broker master for the next.
            let master = (round + 1) % 2;
            slave_then_master(&mut cluster, round, master, &mut acked).await;
        }
        println!("{} messages acknowledged and read back", acked.len());
    })
    .unwrap();
}

/// One round: kill -9 of the slave under load and its return, then kill -9 of `master`.
async fn slave_then_master(cluster: &mut Cluster, round: usize, master: usize, acked: &mut Acked) {
    let slave = 1 - master;
    let master_addr = cluster.brokers[master].addr.clone();
    let slave_addr = cluster.brokers[slave].addr.clone();

    let load = Load::start(cluster, &[master], SENDERS);
    rmq_net::rt::sleep(Duration::from_millis(LOAD_MS)).await;
    let watch = SetWatch::start(&cluster.members);
    rmq_net::rt::sleep(Duration::from_millis(100)).await;
    cluster.brokers[slave].kill();
    let killed = Instant::now();
    let after_kill = |load: &Load| load.acks().into_iter().filter(|a| a.sent > killed).count();
    cluster
        .wait(
            "the master acknowledging alone",
            FAILOVER_LIMIT,
            async || match after_kill(&load) {
                0 => Err("no send that left after the kill acknowledged".into()),
                _ => Ok(()),
            },
        )
        .await;
    cluster
        .wait(
            "the controller's set without the slave",
            FAILOVER_LIMIT,
            async || {
                let set = in_sync_addrs(&replicas(&cluster.members)?);
                match set == [master_addr.clone()].into() {
                    true => Ok(()),
                    false => Err(format!("sync-state set {set:?}")),
                }
            },
        )
        .await;
    // A few more answers of the watch with the set shrunk.
    rmq_net::rt::sleep(Duration::from_millis(100)).await;
    let (acks, refused) = load.stop().await;
    let seen = watch.stop();

    // The last time the controller still had the slave in the set.
    let last_with_slave = seen
        .iter()
        .filter(|s| s.set.contains(&slave_addr))
        .map(|s| s.asked)
        .max()
        .expect("the controller had the slave in the set before the kill");
    // Decided by the master while the controller still had the slave in the set, for a
    // message that left after the slave died: the slave lacks it.
    let early: Vec<_> = acks
        .iter()
        .filter(|a| a.sent > killed && a.answered < last_with_slave)
        .collect();
    assert!(
        early.is_empty(),
        "the master acknowledged {} sends that left after the slave's kill -9 while the \
         controller still had the slave in the sync-state set (the first: {:?} after the \
         kill)",
        early.len(),
        early.first().map(|a| a.answered - killed)
    );
    let shrunk = seen
        .iter()
        .find(|s| s.asked > last_with_slave)
        .expect("the controller approved a set without the slave");
    assert_eq!(
        shrunk.set,
        [master_addr.clone()].into(),
        "the set after the slave's removal"
    );
    let first = acks
        .iter()
        .filter(|a| a.sent > killed)
        .map(|a| a.answered)
        .min()
        .unwrap();
    println!(
        "round {round}: kill -9 of the slave: the controller still had it in the set {:?} after the kill, \
         the master acknowledged alone after {:?} ({} acknowledged under load, {} refused)",
        last_with_slave.saturating_duration_since(killed),
        first - killed,
        acks.len(),
        refused.len()
    );
    record(acked, &acks);
    verify(&master_addr, TOPIC, acked, round).await.unwrap();

    // Back: it catches up and re-enters the set; then the master dies.
    cluster.brokers[slave].start().await;
    cluster.settle(master, acked).await;
    cluster.failover(round, master, false, acked).await;
}
