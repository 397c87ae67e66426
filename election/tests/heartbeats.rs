//! Group commit of heartbeats: a `HeartbeatBatch` written as one `Command::Heartbeats` does
//! to the state what the single heartbeats in arrival order would have done, keeps arrival
//! order, holds one report per replica (the newest wins) and is bounded.

use rmq_election::{
    Command, ElectionConfig, ElectionState, HeartbeatBatch, HeartbeatReport,
    MAX_HEARTBEATS_PER_ENTRY, Outcome, RefusalCode,
};

const CLUSTER: &str = "DefaultCluster";

fn report(group: &str, id: u64, epoch: i32, max_offset: i64, priority: i32) -> HeartbeatReport {
    HeartbeatReport {
        cluster: CLUSTER.into(),
        broker_name: group.into(),
        broker_id: id,
        address: format!("10.0.0.{id}:10911"),
        epoch,
        max_offset,
        confirm_offset: max_offset - 1,
        election_priority: priority,
        timeout_ms: Some(1_000 + priority as u64),
    }
}

fn single(report: &HeartbeatReport) -> Command {
    Command::Heartbeat {
        cluster: report.cluster.clone(),
        broker_name: report.broker_name.clone(),
        broker_id: report.broker_id,
        address: report.address.clone(),
        epoch: report.epoch,
        max_offset: report.max_offset,
        confirm_offset: report.confirm_offset,
        election_priority: report.election_priority,
        timeout_ms: report.timeout_ms,
    }
}

/// Groups g0..g{groups} with replicas 1..=replicas registered, no heartbeat yet.
fn registered(groups: usize, replicas: u64) -> ElectionState {
    let mut state = ElectionState::new(ElectionConfig::default());
    for g in 0..groups {
        for id in 1..=replicas {
            let apply = Command::ApplyBrokerId {
                cluster: CLUSTER.into(),
                broker_name: format!("g{g}"),
                broker_id: id,
                register_check_code: format!("10.0.0.{id}:10911;0"),
            };
            assert_eq!(
                state.apply(0, &apply),
                Outcome::BrokerIdApplied { broker_id: id }
            );
        }
    }
    state
}

/// A tiny deterministic generator (splitmix64) for the equivalence test.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

#[test]
fn a_batch_keeps_arrival_order_and_answers_each_report_at_its_slot() {
    let mut batch = HeartbeatBatch::new();
    let reports = [
        report("g1", 2, 1, 10, 0),
        report("g0", 1, 1, 10, 0),
        report("g9", 1, 1, 10, 0), // not registered: refused, the others still recorded
        report("g0", 2, 1, 10, 0),
    ];
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(batch.push(r.clone()), Ok(i));
    }
    let cmd = batch.into_command().expect("four reports");
    assert_eq!(cmd, Command::Heartbeats(reports.to_vec()));

    let mut state = registered(2, 2);
    let Outcome::HeartbeatsRecorded(outcomes) = state.apply(5_000, &cmd) else {
        panic!("a batch answers one outcome per report");
    };
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[0], Outcome::HeartbeatRecorded);
    assert_eq!(outcomes[1], Outcome::HeartbeatRecorded);
    assert!(
        matches!(&outcomes[2], Outcome::Refused(r) if r.code == RefusalCode::BrokerNeedToBeRegistered),
        "{:?}",
        outcomes[2]
    );
    assert_eq!(outcomes[3], Outcome::HeartbeatRecorded);
    for (group, id) in [("g0", 1), ("g0", 2), ("g1", 2)] {
        let live = state.group(group).unwrap().replicas[&id].liveness.clone();
        assert_eq!(
            live.map(|l| l.last_heartbeat_ms),
            Some(5_000),
            "{group} {id}"
        );
    }
    assert!(state.group("g1").unwrap().replicas[&1].liveness.is_none());
}

#[test]
fn a_replica_heard_twice_in_one_batch_has_one_report_and_the_newest_wins() {
    let mut batch = HeartbeatBatch::new();
    assert_eq!(batch.push(report("g0", 1, 2, 50, 7)), Ok(0));
    assert_eq!(batch.push(report("g0", 2, 1, 10, 0)), Ok(1));
    // Newer heartbeat of replica 1: new priority and time-out, but a progress that went
    // back (a delayed heartbeat overtaken on another connection) does not lower it.
    assert_eq!(batch.push(report("g0", 1, 2, 40, 3)), Ok(0));
    assert_eq!(batch.len(), 2);
    let Some(Command::Heartbeats(reports)) = batch.into_command() else {
        panic!("a batch command");
    };
    assert_eq!(reports[0].election_priority, 3);
    assert_eq!(reports[0].timeout_ms, Some(1_003));
    assert_eq!(
        (
            reports[0].epoch,
            reports[0].max_offset,
            reports[0].confirm_offset
        ),
        (2, 50, 49)
    );
    assert_eq!(reports[1], report("g0", 2, 1, 10, 0));
}

/// Random reports (few replicas, so duplicates are common), cut into batches at random:
/// the state after the batches equals the state after the single heartbeats, and each
/// heartbeat's answer (its slot's outcome) equals its single answer.
#[test]
fn batches_apply_exactly_like_the_single_heartbeats_in_arrival_order() {
    let mut rng = Rng(11);
    for round in 0..300 {
        let mut singles = registered(2, 3);
        let mut batched = singles.clone();
        let mut now = 1_000;
        let mut batch = HeartbeatBatch::new();
        let mut expected = Vec::new();
        for _ in 0..rng.below(40) + 1 {
            let r = report(
                &format!("g{}", rng.below(3)), // g2 is not registered
                rng.below(3) + 1,
                rng.below(3) as i32,
                rng.below(5) as i64,
                rng.below(4) as i32,
            );
            let slot = batch.push(r.clone()).expect("far below the bound");
            // A single heartbeat applied at the time its batch will be written.
            expected.push((slot, r));
            if rng.below(4) == 0 {
                now += rng.below(300);
                let cmd = std::mem::take(&mut batch).into_command().unwrap();
                let Outcome::HeartbeatsRecorded(outcomes) = batched.apply(now, &cmd) else {
                    panic!("round {round}: a batch answers HeartbeatsRecorded");
                };
                for (slot, r) in expected.drain(..) {
                    assert_eq!(singles.apply(now, &single(&r)), outcomes[slot], "{round}");
                }
                assert_eq!(batched, singles, "round {round}");
            }
        }
        if let Some(cmd) = batch.into_command() {
            let Outcome::HeartbeatsRecorded(outcomes) = batched.apply(now, &cmd) else {
                panic!("round {round}: a batch answers HeartbeatsRecorded");
            };
            for (slot, r) in expected.drain(..) {
                assert_eq!(singles.apply(now, &single(&r)), outcomes[slot], "{round}");
            }
        }
        assert_eq!(batched, singles, "round {round}");
    }
}

#[test]
fn a_batch_is_bounded_but_still_takes_replicas_it_holds() {
    let mut batch = HeartbeatBatch::new();
    let groups = MAX_HEARTBEATS_PER_ENTRY;
    for g in 0..groups {
        assert_eq!(batch.push(report(&format!("g{g}"), 1, 0, 0, 0)), Ok(g));
    }
    assert!(batch.is_full());
    let extra = report("another", 1, 0, 0, 0);
    assert_eq!(batch.push(extra.clone()), Err(extra));
    assert_eq!(batch.push(report("g7", 1, 0, 5, 0)), Ok(7));
    assert_eq!(batch.len(), MAX_HEARTBEATS_PER_ENTRY);
    assert!(HeartbeatBatch::new().into_command().is_none());
}
