//! The leader timer's decision: a new raft leader does not replace a master whose
//! heartbeats only aged while there was no leader, by its own receipts (`receipts`,
//! `ControllerService::periodic`) or, without receipts, by a grace of one timeout
//! (`Replicated::tick` of `ElectionState`).

use std::time::{Duration, Instant};

use rmq_election::{Command, ElectionConfig, ElectionState, Outcome};

use super::receipts::Receipts;
use crate::replicated::Replicated;

const GROUP: &str = "broker-a";
const TIMEOUT_MS: u64 = 2_000;

fn heartbeat(id: u64) -> Command {
    Command::Heartbeat {
        cluster: "DefaultCluster".into(),
        broker_name: GROUP.into(),
        broker_id: id,
        address: format!("127.0.0.1:{}", 32_100 + id),
        epoch: 1,
        max_offset: 10,
        confirm_offset: 10,
        election_priority: i32::MAX,
        timeout_ms: Some(TIMEOUT_MS),
    }
}

/// Master 1, slave 2 in the sync-state set, both heartbeating until `last_ms`.
fn master_and_slave(last_ms: u64) -> ElectionState {
    let mut state = ElectionState::new(ElectionConfig::default());
    for id in 1..=2 {
        let apply = Command::ApplyBrokerId {
            cluster: "DefaultCluster".into(),
            broker_name: GROUP.into(),
            broker_id: id,
            register_check_code: format!("127.0.0.1:{};0", 32_100 + id),
        };
        assert!(matches!(
            state.apply(0, &apply),
            Outcome::BrokerIdApplied { .. }
        ));
        let register = Command::RegisterBroker {
            cluster: "DefaultCluster".into(),
            broker_name: GROUP.into(),
            broker_id: id,
            address: format!("127.0.0.1:{}", 32_100 + id),
        };
        assert!(matches!(
            state.apply(0, &register),
            Outcome::Registered { .. }
        ));
        state.apply(0, &heartbeat(id));
    }
    let elect = Command::ElectMaster {
        broker_name: GROUP.into(),
        broker_id: Some(1),
        designate: false,
    };
    assert!(matches!(state.apply(0, &elect), Outcome::Elected(_)));
    let alter = Command::AlterSyncStateSet {
        broker_name: GROUP.into(),
        master_broker_id: 1,
        master_epoch: 1,
        new_sync_state_set: [1, 2].into(),
        sync_state_set_epoch: 1,
    };
    assert!(matches!(
        state.apply(0, &alter),
        Outcome::SyncStateSetAltered { .. }
    ));
    for id in 1..=2 {
        state.apply(last_ms, &heartbeat(id));
    }
    state
}

#[test]
fn a_steady_leader_elects_once_the_master_is_silent_for_its_timeout() {
    let mut state = master_and_slave(1_000);
    state.apply(2_500, &heartbeat(2));
    // Leader since long before: the master's silence counts in full.
    assert_eq!(
        state.tick(1_000 + TIMEOUT_MS, 0),
        None,
        "within the timeout"
    );
    assert_eq!(
        state.tick(1_000 + TIMEOUT_MS + 1, 0),
        Some(replace_master())
    );
}

#[test]
fn a_new_leader_gives_brokers_a_timeout_to_find_it() {
    // The old leader recorded both at 1 s and died; the new one leads from 4 s, and the
    // slave found it first (the master, alive, is still looking for it).
    let mut state = master_and_slave(1_000);
    let since = 4_000;
    state.apply(since + 100, &heartbeat(2));
    assert_eq!(
        state.tick(since + 200, since),
        None,
        "a master silent only while there was no leader is not replaced"
    );
    assert_eq!(state.tick(since + TIMEOUT_MS - 1, since), None);
    assert_eq!(state.tick(since + TIMEOUT_MS, since), None);
    // Still silent a whole timeout after the new leader took over: now it is dead.
    assert_eq!(
        state.tick(since + TIMEOUT_MS + 1, since),
        Some(replace_master())
    );
    // It found the new leader in time: nothing to do.
    state.apply(since + 900, &heartbeat(1));
    assert_eq!(state.tick(since + TIMEOUT_MS + 1, since), None);
}

fn replace_master() -> Command {
    Command::Scan {
        silent_masters: [(GROUP.to_owned(), 1)].into(),
    }
}

/// What `ControllerService::periodic` computes: the scan with this member's receipts.
fn scan(
    state: &ElectionState,
    receipts: &Receipts,
    start: Instant,
    now_ms: u64,
) -> Option<Command> {
    let now = start + Duration::from_millis(now_ms);
    state.scan(now_ms, |group, id, timeout_ms| {
        receipts.heard(now, group, id, timeout_ms)
    })
}

#[test]
fn a_new_leader_that_heard_the_master_as_a_follower_keeps_it_without_a_grace() {
    // Times in ms since this member started (its clock and the wall clock agree here).
    // The old leader recorded both at 1 s and died at 1.2 s; this member heard both as a
    // follower until then, and only the master keeps heartbeating it afterwards.
    let start = Instant::now();
    let at = |ms| start + Duration::from_millis(ms);
    let mut state = master_and_slave(1_000);
    let mut receipts = Receipts::new(start);
    for ms in (200..=1_200).step_by(500) {
        receipts.record((GROUP.into(), 1), at(ms));
        receipts.record((GROUP.into(), 2), at(ms));
    }
    // It leads from 2.5 s; the slave found it and is recorded, the master was heard at 2.4 s
    // (it heartbeats every member) but is not recorded yet.
    receipts.record((GROUP.into(), 1), at(2_400));
    receipts.record((GROUP.into(), 2), at(2_600));
    state.apply(2_600, &heartbeat(2));
    assert_eq!(
        scan(&state, &receipts, start, 3_100),
        None,
        "replicated: the master is dead; its receipts: alive"
    );
    assert_eq!(scan(&state, &receipts, start, 4_400), None);
    // Silent on this member for the timeout as well: replaced at once, no grace counted
    // from the leader change (which would wait until 4.5 s and beyond).
    assert_eq!(
        scan(&state, &receipts, start, 4_401),
        Some(replace_master())
    );
    // Dead by its receipts but alive in the replicated state: kept (fencing is counted
    // against the replicated liveness).
    let mut recorded = state.clone();
    recorded.apply(3_000, &heartbeat(1));
    assert_eq!(scan(&recorded, &receipts, start, 4_401), None);
}

#[test]
fn a_master_killed_with_the_leader_is_replaced_one_timeout_after_its_last_heartbeat() {
    let start = Instant::now();
    let at = |ms| start + Duration::from_millis(ms);
    let mut state = master_and_slave(1_000);
    let mut receipts = Receipts::new(start);
    receipts.record((GROUP.into(), 1), at(1_000));
    receipts.record((GROUP.into(), 2), at(1_000));
    // The new leader leads from 2.2 s and records the slave.
    receipts.record((GROUP.into(), 2), at(2_300));
    state.apply(2_300, &heartbeat(2));
    assert_eq!(scan(&state, &receipts, start, 1_000 + TIMEOUT_MS), None);
    let cmd = scan(&state, &receipts, start, 1_001 + TIMEOUT_MS).expect("elects");
    assert_eq!(cmd, replace_master());
    let Outcome::Elected(elections) = state.apply(1_001 + TIMEOUT_MS, &cmd) else {
        panic!("the scan elects");
    };
    assert_eq!(elections[0].new_master, Some(2));
}

#[test]
fn a_member_that_just_started_gives_replicas_it_never_heard_one_timeout() {
    // The member starts at 1 s (wall clock) and leads at once; the master's last recorded
    // heartbeat is from 0 s, the slave reaches it at 1.5 s, the master never does.
    let start = Instant::now();
    let scan_at = |state: &ElectionState, receipts: &Receipts, now_ms: u64| {
        let now = start + Duration::from_millis(now_ms - 1_000);
        state.scan(now_ms, |group, id, timeout_ms| {
            receipts.heard(now, group, id, timeout_ms)
        })
    };
    let mut state = master_and_slave(0);
    let mut receipts = Receipts::new(start);
    receipts.record((GROUP.into(), 2), start + Duration::from_millis(500));
    state.apply(1_500, &heartbeat(2));
    assert_eq!(scan_at(&state, &receipts, 2_500), None, "within its grace");
    assert_eq!(scan_at(&state, &receipts, 1_000 + TIMEOUT_MS), None);
    assert_eq!(
        scan_at(&state, &receipts, 1_001 + TIMEOUT_MS),
        Some(replace_master())
    );
}
