//! Seeded simulation of controller mode: the election state machine (`rmq-election`) with
//! a model of brokers (logs of (epoch, id) records, epoch histories, masters keeping their
//! sync-state set with the broker's own `SyncStateUpkeep` and `CountingMarks` and
//! acknowledging what every counted replica reported, slaves truncating to the consistent
//! point) over a network that loses, delays, reorders, duplicates and partitions messages,
//! with broker crashes and restarts, slaves stopped (SIGSTOP) right after catching up,
//! controller clock jumps, controller outages (the next leader restores a serde
//! snapshot of the state) and operator electMaster calls. After every step the checker (`sim/checker.rs`) verifies: at most
//! one broker acknowledges per master epoch; with `allAckInSyncStateSet=true` every
//! acknowledged record is on every member of the controller's sync-state set; no
//! acknowledged record is missing from the master once it took over; epochs only grow; a
//! slave's log matches its master's below the consistent point.
//!
//! CI runs a short mode (a few thousand schedules, seconds in debug). Long runs:
//!   RMQ_ELECTION_SIM_SCHEDULES=200000 RMQ_ELECTION_SIM_STEPS=600 \
//!     cargo test --release -p rmq-election --test simulation
//! RMQ_ELECTION_SIM_SEED sets the first seed (schedules use seed, seed+1, ...); a failure
//! prints its seed, step, violation and the last events of the schedule.

mod sim;

use sim::checker::{Acked, Checker, Violation};
use sim::world::{Failure, Mutation, SimConfig, Stats, World};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn schedules(default: u64) -> (u64, u64) {
    (
        env_u64("RMQ_ELECTION_SIM_SEED", 1),
        env_u64("RMQ_ELECTION_SIM_SCHEDULES", default),
    )
}

fn steps(default: usize) -> usize {
    env_u64("RMQ_ELECTION_SIM_STEPS", default as u64) as usize
}

fn run_one(seed: u64, config: &SimConfig) -> Result<Stats, Failure> {
    World::new(seed, config.clone(), false).run(seed)
}

/// Runs `count` schedules; the first failure is re-run with tracing to explain it.
fn run_many(first_seed: u64, count: u64, config: &SimConfig) -> Result<Stats, Failure> {
    let mut total = Stats::default();
    for seed in first_seed..first_seed + count {
        match run_one(seed, config) {
            Ok(stats) => total.add(&stats),
            Err(_) => {
                return Err(World::new(seed, config.clone(), true)
                    .run(seed)
                    .expect_err("replays"));
            }
        }
    }
    Ok(total)
}

fn explain(failure: &Failure) -> String {
    format!(
        "seed {} step {}: {:?}\nlast events:\n{}",
        failure.seed,
        failure.step,
        failure.violation,
        failure.trace.join("\n")
    )
}

/// The first failing seed among `count`, for configurations that must fail.
fn first_failure(count: u64, config: &SimConfig) -> Option<Failure> {
    let seed = (1..=count).find(|seed| run_one(*seed, config).is_err())?;
    Some(
        World::new(seed, config.clone(), true)
            .run(seed)
            .expect_err("replays"),
    )
}

#[test]
fn safe_mode_never_loses_an_acknowledged_message() {
    let (seed, count) = schedules(3_000);
    let config = SimConfig::safe(steps(250));
    let stats =
        run_many(seed, count, &config).unwrap_or_else(|failure| panic!("{}", explain(&failure)));
    println!("{count} schedules: {stats:?}");
    // The schedules must really exercise what they claim to.
    assert!(stats.acked > count * 20, "{stats:?}");
    assert!(stats.elections > count / 4, "{stats:?}");
    assert!(
        stats.masterless > 0 && stats.sync_state_changes > count && stats.refusals > count,
        "{stats:?}"
    );
    assert!(
        stats.crashes > count / 4 && stats.truncated_records > 0,
        "{stats:?}"
    );
    // Heartbeats reach the state in group-committed batches, some holding a replica twice.
    assert!(
        stats.batched_heartbeats > count && stats.merged_heartbeats > 0,
        "{stats:?}"
    );
    // The upkeep's paths: unknown outcomes re-sent, refusals decided in the controller's
    // log, joining replicas approved, slaves stopped right after catching up.
    assert!(
        stats.resent > count
            && stats.definite_refusals > count / 10
            && stats.joined > count
            && stats.freezes > count,
        "{stats:?}"
    );
}

#[test]
fn safe_mode_holds_with_five_replicas() {
    let (seed, count) = schedules(500);
    let config = SimConfig {
        brokers: 5,
        ..SimConfig::safe(steps(250))
    };
    let stats =
        run_many(seed, count, &config).unwrap_or_else(|failure| panic!("{}", explain(&failure)));
    assert!(stats.acked > 0 && stats.elections > 0, "{stats:?}");
}

#[test]
fn acknowledging_without_the_sync_state_set_loses_messages() {
    // allAckInSyncStateSet=false with one in-sync replica: the master acknowledges alone.
    let config = SimConfig {
        all_ack_in_sync_state_set: false,
        min_in_sync_replicas: 1,
        ..SimConfig::safe(250)
    };
    let failure =
        first_failure(2_000, &config).expect("some schedule loses an acknowledged message");
    assert!(
        matches!(failure.violation, Violation::AckedLost { .. }),
        "{}",
        explain(&failure)
    );
}

#[test]
fn checker_catches_an_election_outside_the_sync_state_set() {
    let config = SimConfig {
        enable_elect_unclean_master: true,
        ..SimConfig::safe(250)
    };
    let failure = first_failure(3_000, &config).expect("unclean election breaks safety");
    assert!(
        matches!(
            failure.violation,
            Violation::AckedLost { .. } | Violation::AckedNotOnSyncStateMember { .. }
        ),
        "{}",
        explain(&failure)
    );
}

/// The first failure of the safe configuration with `mutation`; it must be a lost or
/// unreplicated acknowledged message (`lost_only`: a lost one).
fn caught(mutation: Mutation, lost_only: bool, why: &str) -> Failure {
    let config = SimConfig {
        mutation: Some(mutation),
        ..SimConfig::safe(250)
    };
    let failure = first_failure(3_000, &config).expect(why);
    let expected = match failure.violation {
        Violation::AckedLost { .. } => true,
        Violation::AckedNotOnSyncStateMember { .. } => !lost_only,
        _ => false,
    };
    assert!(expected, "{}", explain(&failure));
    failure
}

#[test]
fn checker_catches_a_shrink_before_the_controller_approved_it() {
    let why = "an unapproved shrink breaks safety";
    caught(Mutation::ShrinkBeforeApproval, true, why);
}

#[test]
fn checker_catches_counting_only_approved_members() {
    let why = "ignoring a possibly approved expansion breaks safety";
    caught(Mutation::CountApprovedOnly, true, why);
}

/// The broker's rule before commit 87c5b1c: a slave that caught up once was proposed at
/// once, though sends were acknowledged without it since (the SIGSTOP scenario of
/// `broker/tests/controller_client.rs`).
#[test]
fn checker_catches_proposing_a_slave_before_its_counting_mark() {
    let why = "proposing a replica without its counting mark breaks safety";
    caught(Mutation::ProposeOnceCaughtUp, false, why);
}

/// The broker's other rule before commit 87c5b1c: after an unanswered proposal the next one
/// was recomputed without the lost one's members, which the controller could still apply.
#[test]
fn checker_catches_forgetting_a_pending_proposal_on_an_unknown_answer() {
    let why = "dropping a proposal the controller may still apply breaks safety";
    caught(Mutation::ForgetPendingOnUnknown, false, why);
}

#[test]
fn checker_flags_two_acknowledgers_in_one_epoch() {
    let mut checker = Checker::new(true);
    let ack = |id, broker| Acked {
        id,
        broker,
        epoch: 4,
        offset: id,
    };
    assert_eq!(checker.check_acknowledgers(&[ack(1, 1), ack(2, 1)]), Ok(()));
    assert_eq!(
        checker.check_acknowledgers(&[ack(1, 1), ack(2, 1), ack(3, 2)]),
        Err(Violation::TwoMastersAcknowledged {
            epoch: 4,
            first: 1,
            second: 2
        })
    );
}

#[test]
fn checker_catches_a_slave_that_follows_a_master_of_an_older_epoch() {
    let config = SimConfig {
        mutation: Some(Mutation::SlaveFollowsAnyMaster),
        ..SimConfig::safe(250)
    };
    let failure =
        first_failure(3_000, &config).expect("ignoring epochs on the slave breaks safety");
    println!("{}", explain(&failure));
}
