//! The state machine command by command: registration, heartbeats, elections, the fencing of
//! `AlterSyncStateSet`, cleaning, and replay determinism.

use std::collections::BTreeSet;

use rmq_election::{Command, ElectionConfig, ElectionState, Outcome, RefusalCode};

const GROUP: &str = "broker-a";
const CLUSTER: &str = "DefaultCluster";
const TIMEOUT_MS: u64 = 1_000;

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

fn address(id: u64) -> String {
    format!("127.0.0.1:{}", 31000 + id)
}

fn heartbeat(id: u64, epoch: i32, max_offset: i64, priority: i32) -> Command {
    Command::Heartbeat {
        cluster: CLUSTER.into(),
        broker_name: GROUP.into(),
        broker_id: id,
        address: address(id),
        epoch,
        max_offset,
        confirm_offset: max_offset,
        election_priority: priority,
        timeout_ms: None,
    }
}

fn register(state: &mut ElectionState, now_ms: u64, id: u64) {
    assert_eq!(state.next_broker_id(GROUP), id);
    let apply = Command::ApplyBrokerId {
        cluster: CLUSTER.into(),
        broker_name: GROUP.into(),
        broker_id: id,
        register_check_code: format!("{};{now_ms}", address(id)),
    };
    assert_eq!(
        state.apply(now_ms, &apply),
        Outcome::BrokerIdApplied { broker_id: id }
    );
    let reg = Command::RegisterBroker {
        cluster: CLUSTER.into(),
        broker_name: GROUP.into(),
        broker_id: id,
        address: address(id),
    };
    assert!(matches!(
        state.apply(now_ms, &reg),
        Outcome::Registered { .. }
    ));
    assert_eq!(
        state.apply(now_ms, &heartbeat(id, 0, 0, i32::MAX)),
        Outcome::HeartbeatRecorded
    );
}

fn alter(master: u64, master_epoch: u32, new: &[u64], sss_epoch: u32) -> Command {
    Command::AlterSyncStateSet {
        broker_name: GROUP.into(),
        master_broker_id: master,
        master_epoch,
        new_sync_state_set: set(new),
        sync_state_set_epoch: sss_epoch,
    }
}

fn refusal(outcome: Outcome) -> RefusalCode {
    match outcome {
        Outcome::Refused(refusal) => refusal.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn elected(outcome: Outcome) -> Option<u64> {
    match outcome {
        Outcome::Elected(elections) => {
            assert_eq!(elections.len(), 1, "{elections:?}");
            elections[0].new_master
        }
        other => panic!("expected an election, got {other:?}"),
    }
}

/// Three replicas, 1 master (epoch 1), SSS {1, 2, 3} at SSS epoch 2.
fn group_of_three() -> ElectionState {
    let mut state = ElectionState::new(ElectionConfig {
        heartbeat_timeout_ms: TIMEOUT_MS,
        ..Default::default()
    });
    for id in 1..=3 {
        register(&mut state, 0, id);
    }
    let first = Command::ElectMaster {
        broker_name: GROUP.into(),
        broker_id: Some(1),
        designate: false,
    };
    assert_eq!(elected(state.apply(0, &first)), Some(1));
    let info = state.replica_info(GROUP).unwrap();
    assert_eq!(
        (
            info.master_broker_id,
            info.master_epoch,
            info.sync_state_set_epoch
        ),
        (Some(1), 1, 1)
    );
    assert_eq!(info.sync_state_set, set(&[1]));
    assert!(matches!(
        state.apply(0, &alter(1, 1, &[1, 2, 3], 1)),
        Outcome::SyncStateSetAltered {
            sync_state_set_epoch: 2,
            ..
        }
    ));
    state
}

#[test]
fn broker_ids_are_handed_out_once_and_reclaimed_only_by_their_owner() {
    let mut state = ElectionState::default();
    assert_eq!(state.next_broker_id(GROUP), 1);
    let apply = |id: u64, code: &str| Command::ApplyBrokerId {
        cluster: CLUSTER.into(),
        broker_name: GROUP.into(),
        broker_id: id,
        register_check_code: code.into(),
    };
    assert_eq!(
        refusal(state.apply(0, &apply(2, "a:1;0"))),
        RefusalCode::BrokerIdInvalid,
        "a group starts at id 1"
    );
    assert_eq!(
        state.apply(0, &apply(1, "a:1;0")),
        Outcome::BrokerIdApplied { broker_id: 1 }
    );
    assert_eq!(
        state.apply(0, &apply(1, "a:1;0")),
        Outcome::BrokerIdApplied { broker_id: 1 },
        "same broker again"
    );
    assert_eq!(
        refusal(state.apply(0, &apply(1, "b:2;0"))),
        RefusalCode::BrokerIdInvalid,
        "another broker"
    );
    assert_eq!(
        state.apply(0, &apply(7, "c:3;0")),
        Outcome::BrokerIdApplied { broker_id: 7 }
    );
    assert_eq!(state.next_broker_id(GROUP), 8, "never below an id in use");
    assert_eq!(
        refusal(state.apply(0, &apply(0, "d;0"))),
        RefusalCode::BrokerIdInvalid
    );
    assert_eq!(
        refusal(state.apply(0, &apply(u64::MAX, "d;0"))),
        RefusalCode::BrokerIdInvalid
    );
    assert_eq!(state.group(GROUP).unwrap().address(7), Some("c:3"));
}

#[test]
fn unregistered_brokers_are_told_to_register() {
    let mut state = ElectionState::default();
    assert_eq!(
        refusal(state.apply(0, &heartbeat(1, 0, 0, 0))),
        RefusalCode::BrokerNeedToBeRegistered
    );
    let elect = Command::ElectMaster {
        broker_name: GROUP.into(),
        broker_id: Some(1),
        designate: false,
    };
    assert_eq!(
        refusal(state.apply(0, &elect)),
        RefusalCode::BrokerNeedToBeRegistered
    );
    assert_eq!(
        state.replica_info(GROUP).unwrap_err().code,
        RefusalCode::BrokerMetadataNotExist
    );
}

#[test]
fn alter_sync_state_set_is_fenced_by_master_and_both_epochs() {
    let mut state = group_of_three();
    assert_eq!(
        refusal(state.apply(1, &alter(2, 1, &[1, 2], 2))),
        RefusalCode::InvalidMaster
    );
    assert_eq!(
        refusal(state.apply(1, &alter(1, 0, &[1, 2], 2))),
        RefusalCode::FencedMasterEpoch
    );
    assert_eq!(
        refusal(state.apply(1, &alter(1, 1, &[1, 2], 1))),
        RefusalCode::FencedSyncStateSetEpoch
    );
    assert_eq!(
        refusal(state.apply(1, &alter(1, 1, &[1, 2, 3], 2))),
        RefusalCode::AlterSyncStateSetFailed
    );
    assert_eq!(
        refusal(state.apply(1, &alter(1, 1, &[2, 3], 2))),
        RefusalCode::AlterSyncStateSetFailed
    );
    assert_eq!(
        refusal(state.apply(1, &alter(1, 1, &[1, 9], 2))),
        RefusalCode::InvalidReplicas
    );
    assert_eq!(
        state.replica_info(GROUP).unwrap().sync_state_set_epoch,
        2,
        "refusals change nothing"
    );
    // A shrink with the right epochs is approved; the old SSS epoch is fenced afterwards.
    assert!(matches!(
        state.apply(1, &alter(1, 1, &[1, 2], 2)),
        Outcome::SyncStateSetAltered {
            sync_state_set_epoch: 3,
            ..
        }
    ));
    assert_eq!(
        refusal(state.apply(1, &alter(1, 1, &[1], 2))),
        RefusalCode::FencedSyncStateSetEpoch
    );
    // Only live replicas join.
    state.apply(TIMEOUT_MS / 2, &heartbeat(1, 1, 0, 0));
    state.apply(TIMEOUT_MS / 2, &heartbeat(2, 1, 0, 0));
    assert_eq!(
        refusal(state.apply(TIMEOUT_MS + 1, &alter(1, 1, &[1, 2, 3], 3))),
        RefusalCode::BrokerNotAlive
    );
}

#[test]
fn lost_master_is_replaced_by_the_best_sync_state_set_member() {
    let mut state = group_of_three();
    // 2 is at a higher epoch than 3 even though 3 has more data; 4 is outside the SSS.
    state.apply(10, &heartbeat(2, 2, 50, 5));
    state.apply(10, &heartbeat(3, 1, 900, 0));
    let lost = Command::BrokerLost {
        broker_name: GROUP.into(),
        broker_id: 1,
    };
    assert_eq!(elected(state.apply(20, &lost)), Some(2));
    let info = state.replica_info(GROUP).unwrap();
    assert_eq!((info.master_epoch, info.sync_state_set_epoch), (2, 3));
    assert_eq!(
        info.sync_state_set,
        set(&[2]),
        "RocketMQ 5: the SSS restarts as {{new master}}"
    );
    // The old master is fenced from now on.
    assert_eq!(
        refusal(state.apply(21, &alter(1, 1, &[1, 2], 3))),
        RefusalCode::InvalidMaster
    );
    assert_eq!(
        refusal(state.apply(21, &alter(2, 1, &[2, 3], 3))),
        RefusalCode::FencedMasterEpoch
    );
}

#[test]
fn equal_epochs_prefer_the_larger_offset_then_the_smaller_priority_value() {
    let mut state = group_of_three();
    state.apply(10, &heartbeat(2, 1, 500, 9));
    state.apply(10, &heartbeat(3, 1, 500, 1));
    let lost = Command::BrokerLost {
        broker_name: GROUP.into(),
        broker_id: 1,
    };
    assert_eq!(
        elected(state.apply(20, &lost)),
        Some(3),
        "same epoch and offset: priority 1 beats 9"
    );

    let mut state = group_of_three();
    state.apply(10, &heartbeat(2, 1, 501, 9));
    state.apply(10, &heartbeat(3, 1, 500, 1));
    assert_eq!(
        elected(state.apply(20, &lost)),
        Some(2),
        "offset before priority"
    );
}

#[test]
fn a_delayed_heartbeat_does_not_lower_what_the_election_compares() {
    let mut state = group_of_three();
    state.apply(10, &heartbeat(2, 1, 800, 0));
    state.apply(11, &heartbeat(2, 1, 300, 0));
    state.apply(11, &heartbeat(3, 1, 700, 0));
    let lost = Command::BrokerLost {
        broker_name: GROUP.into(),
        broker_id: 1,
    };
    assert_eq!(elected(state.apply(20, &lost)), Some(2));
}

#[test]
fn tick_elects_when_the_master_heartbeat_times_out() {
    let mut state = group_of_three();
    state.apply(500, &heartbeat(2, 1, 10, 0));
    state.apply(500, &heartbeat(3, 1, 10, 0));
    let nothing = Outcome::Elected(Vec::new());
    assert!(!state.tick_needed(TIMEOUT_MS));
    assert_eq!(
        state.apply(TIMEOUT_MS, &Command::Tick),
        nothing,
        "master within its timeout"
    );
    assert!(state.tick_needed(TIMEOUT_MS + 1));
    assert_eq!(
        elected(state.apply(TIMEOUT_MS + 1, &Command::Tick)),
        Some(2)
    );
    assert!(!state.tick_needed(TIMEOUT_MS + 2));
    assert_eq!(
        state.apply(TIMEOUT_MS + 2, &Command::Tick),
        nothing,
        "2 is alive"
    );
}

#[test]
fn a_tick_after_every_heartbeat_lapsed_keeps_the_master() {
    // A new raft leader whose clock runs far ahead sees every broker silent at once.
    let mut state = group_of_three();
    for id in 1..=3 {
        state.apply(10, &heartbeat(id, 1, 10, 0));
    }
    let later = 10 * TIMEOUT_MS;
    assert!(!state.tick_needed(later));
    assert_eq!(
        state.apply(later, &Command::Tick),
        Outcome::Elected(Vec::new())
    );
    assert_eq!(state.replica_info(GROUP).unwrap().master_broker_id, Some(1));
    // As soon as one replica of the group reports again, the silent master is replaced.
    state.apply(later + 1, &heartbeat(3, 1, 10, 0));
    assert!(state.tick_needed(later + 2));
    assert_eq!(elected(state.apply(later + 2, &Command::Tick)), Some(3));
}

#[test]
fn without_a_live_member_the_group_loses_its_master_and_regains_it_from_the_set() {
    let mut state = group_of_three();
    assert!(matches!(
        state.apply(1, &alter(1, 1, &[1, 2], 2)),
        Outcome::SyncStateSetAltered { .. }
    ));
    state.apply(500, &heartbeat(3, 1, 999, 0)); // alive but not in the SSS
    assert_eq!(
        elected(state.apply(TIMEOUT_MS + 1, &Command::Tick)),
        None,
        "3 is not eligible"
    );
    let info = state.replica_info(GROUP).unwrap();
    assert_eq!(
        (info.master_broker_id, info.master_epoch),
        (None, 2),
        "the old master is fenced"
    );
    assert_eq!(
        info.sync_state_set,
        set(&[1, 2]),
        "kept so a member can come back"
    );
    let elect = Command::ElectMaster {
        broker_name: GROUP.into(),
        broker_id: Some(3),
        designate: false,
    };
    assert_eq!(
        refusal(state.apply(TIMEOUT_MS + 2, &elect)),
        RefusalCode::ElectMasterFailed
    );
    // 2 comes back: the next tick elects it.
    state.apply(TIMEOUT_MS + 3, &heartbeat(2, 1, 5, 0));
    assert_eq!(
        elected(state.apply(TIMEOUT_MS + 4, &Command::Tick)),
        Some(2)
    );
    assert_eq!(state.replica_info(GROUP).unwrap().master_epoch, 3);
}

#[test]
fn unclean_election_takes_a_replica_outside_the_set() {
    let mut state = group_of_three();
    assert!(matches!(
        state.apply(1, &alter(1, 1, &[1, 2], 2)),
        Outcome::SyncStateSetAltered { .. }
    ));
    let mut unclean = serde_json::to_value(&state).unwrap();
    unclean["config"]["enable_elect_unclean_master"] = true.into();
    let mut unclean: ElectionState = serde_json::from_value(unclean).unwrap();
    for state in [&mut state, &mut unclean] {
        state.apply(500, &heartbeat(3, 1, 999, 0));
    }
    assert_eq!(elected(state.apply(TIMEOUT_MS + 1, &Command::Tick)), None);
    assert_eq!(
        elected(unclean.apply(TIMEOUT_MS + 1, &Command::Tick)),
        Some(3)
    );
}

/// `SetElectUncleanMaster` (mqadmin updateControllerConfig, written into the log by the
/// leader) changes which replica a later election may pick, and a follower that applies the
/// same log from a snapshot taken before it elects alike.
#[test]
fn set_elect_unclean_master_changes_what_a_later_election_picks_on_every_replica() {
    let before: Vec<(u64, Command)> = vec![
        (1, alter(1, 1, &[1, 2], 2)),
        (500, heartbeat(3, 1, 999, 0)), // alive but not in the SSS
    ];
    let after: Vec<(u64, Command)> = vec![
        (600, Command::SetElectUncleanMaster { enable: true }),
        (TIMEOUT_MS + 1, Command::Tick),
    ];
    let mut leader = group_of_three();
    for (now, cmd) in &before {
        leader.apply(*now, cmd);
    }
    let snapshot = serde_json::to_string(&leader).unwrap();
    let mut clean = leader.clone();
    let outcomes: Vec<Outcome> = after
        .iter()
        .map(|(now, cmd)| leader.apply(*now, cmd))
        .collect();
    assert_eq!(outcomes[0], Outcome::ConfigChanged);
    assert_eq!(
        elected(outcomes[1].clone()),
        Some(3),
        "only an unclean election takes 3"
    );
    assert_eq!(
        elected(clean.apply(TIMEOUT_MS + 1, &Command::Tick)),
        None,
        "without the command 3 is not eligible"
    );

    let mut follower: ElectionState = serde_json::from_str(&snapshot).unwrap();
    let replayed: Vec<Outcome> = after
        .iter()
        .map(|(now, cmd)| follower.apply(*now, cmd))
        .collect();
    assert_eq!((&follower, &replayed), (&leader, &outcomes));

    // Switched off again: the next election is clean again (3 times out while 1, outside
    // the new SSS {3}, is alive: an unclean election would take 1).
    for state in [&mut leader, &mut follower] {
        let off = Command::SetElectUncleanMaster { enable: false };
        assert_eq!(state.apply(TIMEOUT_MS + 2, &off), Outcome::ConfigChanged);
        state.apply(TIMEOUT_MS + 3, &heartbeat(1, 1, 5_000, 0));
        assert_eq!(
            elected(state.apply(2 * TIMEOUT_MS, &Command::Tick)),
            None,
            "1 lies outside the set"
        );
    }
    assert_eq!(follower, leader);
}

#[test]
fn admin_elect_master_designates_only_an_eligible_broker() {
    let mut state = group_of_three();
    for id in 1..=3 {
        state.apply(10, &heartbeat(id, 1, 10, 0));
    }
    let designate = |id| Command::ElectMaster {
        broker_name: GROUP.into(),
        broker_id: Some(id),
        designate: true,
    };
    assert!(matches!(
        state.apply(11, &designate(1)),
        Outcome::MasterStillExists { .. }
    ));
    assert_eq!(elected(state.apply(11, &designate(3))), Some(3));
    // Now the SSS is {3}: 2 is not eligible until 3 takes it back in.
    assert_eq!(
        refusal(state.apply(12, &designate(2))),
        RefusalCode::ElectMasterFailed
    );
    assert_eq!(
        refusal(state.apply(12, &designate(9))),
        RefusalCode::InvalidReplicas
    );
    assert_eq!(state.replica_info(GROUP).unwrap().master_broker_id, Some(3));
}

#[test]
fn clean_broker_data_refuses_live_brokers_unless_told() {
    let mut state = group_of_three();
    state.apply(10, &heartbeat(3, 1, 0, 0));
    let clean = |ids: Option<&[u64]>, living| Command::CleanBrokerData {
        broker_name: GROUP.into(),
        broker_ids: ids.map(set),
        clean_living: living,
    };
    assert_eq!(
        refusal(state.apply(20, &clean(Some(&[3]), false))),
        RefusalCode::InvalidCleanBrokerMetadata
    );
    assert_eq!(
        state.apply(TIMEOUT_MS + 20, &clean(Some(&[3]), false)),
        Outcome::BrokerDataCleaned
    );
    assert_eq!(
        state.replica_info(GROUP).unwrap().sync_state_set,
        set(&[1, 2])
    );
    assert_eq!(
        state.apply(TIMEOUT_MS + 20, &clean(Some(&[1]), true)),
        Outcome::BrokerDataCleaned
    );
    let info = state.replica_info(GROUP).unwrap();
    assert_eq!(
        (info.master_broker_id, info.master_epoch),
        (None, 2),
        "cleaning the master fences it"
    );
    assert_eq!(
        state.apply(TIMEOUT_MS + 20, &clean(None, true)),
        Outcome::BrokerDataCleaned
    );
    assert!(state.group(GROUP).is_none());
    assert_eq!(
        refusal(state.apply(0, &clean(None, true))),
        RefusalCode::InvalidCleanBrokerMetadata
    );
}

#[test]
fn sync_state_data_splits_members_and_marks_liveness() {
    let mut state = group_of_three();
    assert!(matches!(
        state.apply(1, &alter(1, 1, &[1, 3], 2)),
        Outcome::SyncStateSetAltered { .. }
    ));
    state.apply(1_500, &heartbeat(3, 1, 0, 0));
    let data = state.sync_state_data(1_600, &[GROUP, "missing"]);
    assert_eq!(data.len(), 1);
    let ids = |replicas: &[rmq_election::ReplicaIdentity]| -> Vec<(u64, bool)> {
        replicas.iter().map(|r| (r.broker_id, r.alive)).collect()
    };
    assert_eq!(ids(&data[0].in_sync_replicas), vec![(1, false), (3, true)]);
    assert_eq!(ids(&data[0].not_in_sync_replicas), vec![(2, false)]);
}

#[test]
fn replaying_the_log_gives_the_same_state_and_outcomes_even_with_a_clock_going_back() {
    let commands: Vec<(u64, Command)> = vec![
        (100, heartbeat(2, 1, 10, 0)),
        (50, heartbeat(3, 1, 20, 0)), // a new raft leader with a slower clock
        (TIMEOUT_MS + 60, Command::Tick),
        (TIMEOUT_MS + 70, alter(3, 2, &[2, 3], 3)),
    ];
    let run = || {
        let mut state = group_of_three();
        let outcomes: Vec<Outcome> = commands
            .iter()
            .map(|(now, cmd)| state.apply(*now, cmd))
            .collect();
        (state, outcomes)
    };
    let (first, outcomes) = run();
    assert_eq!(run(), (first.clone(), outcomes.clone()));
    // The stamp 50 counts as 100 (the clock never goes back): taken literally, 3 would be
    // dead at the tick (50 + TIMEOUT_MS < TIMEOUT_MS + 60) and 2 elected; 3 has more data.
    assert_eq!(elected(outcomes[2].clone()), Some(3));
    let json = serde_json::to_string(&first).unwrap();
    assert_eq!(serde_json::from_str::<ElectionState>(&json).unwrap(), first);
}
