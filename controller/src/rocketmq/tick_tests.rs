//! The leader timer's decision (`Replicated::tick` of `ElectionState`): a new raft leader
//! does not replace a master whose heartbeats only aged while there was no leader.

use rmq_election::{Command, ElectionConfig, ElectionState, Outcome};

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
    assert_eq!(state.tick(1_000 + TIMEOUT_MS + 1, 0), Some(Command::Tick));
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
    // Still silent a whole timeout after the new leader took over: now it is dead.
    assert_eq!(state.tick(since + TIMEOUT_MS, since), Some(Command::Tick));
    // It found the new leader in time: nothing to do.
    state.apply(since + 900, &heartbeat(1));
    assert_eq!(state.tick(since + TIMEOUT_MS, since), None);
}
