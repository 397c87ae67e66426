//! UPDATE_CONTROLLER_CONFIG / GET_CONTROLLER_CONFIG on three `rmq-fast controller` processes:
//! per member, as RocketMQ 5.3.3 (each member answers with its own values and a change reaches
//! only the member asked); the black list, unknown keys, keys read at start and bad values are
//! refused with a remark; `enableElectUncleanMaster` turned on at runtime lets the leader
//! elect a live replica outside the sync-state set.

use std::time::{Duration, Instant};

use rmq_core::config::parse_properties;
use rmq_core::remoting::controller::ElectMasterRequestHeader;
use rmq_core::remoting::controller::controller_request_code as rc;
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::client::{Member, agreed_leader, ask, three_members};
use super::{CLUSTER, ELECTION, GROUP, Heartbeats, Replica, replica_info, request, wait_alive};

fn update(addr: &str, text: &str) -> RemotingCommand {
    let mut update = RemotingCommand::new_request(rc::UPDATE_CONTROLLER_CONFIG);
    update.body = text.as_bytes().to_vec().into();
    ask(addr, update)
}

/// One key of a member's GET_CONTROLLER_CONFIG.
fn value(addr: &str, key: &str) -> Option<String> {
    let reply = ask(
        addr,
        RemotingCommand::new_request(rc::GET_CONTROLLER_CONFIG),
    );
    assert_eq!(reply.code, 0, "{:?}", reply.remark);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    let props = parse_properties(&text);
    props
        .entries
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.value.clone())
}

fn refused(reply: &RemotingCommand, code: ResponseCode, names: &str) {
    assert_eq!(reply.code, code.code(), "{:?}", reply.remark);
    let remark = reply.remark.as_deref().unwrap_or_default();
    assert!(remark.contains(names), "remark {remark:?} names {names}");
}

#[test]
fn controller_config_changes_per_member_at_runtime_and_unclean_election_follows() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = three_members(dir.path());
    members.iter_mut().for_each(Member::start);
    let leader = agreed_leader(&members, ELECTION);
    let leader_addr = members[leader].addr.clone();
    let follower_addr = members[(leader + 1) % 3].addr.clone();
    const UNCLEAN: &str = "enableElectUncleanMaster";
    for member in &members {
        assert_eq!(value(&member.addr, UNCLEAN).as_deref(), Some("false"));
        assert_eq!(
            value(&member.addr, "controllerDLegerSelfId"),
            Some(member.name.clone())
        );
    }

    // Refused, nothing changed.
    let black = "Can not update config in black list.";
    refused(
        &update(&leader_addr, "configStorePath=/tmp/x\n"),
        ResponseCode::NoPermission,
        black,
    );
    refused(
        &update(&leader_addr, "rocketmqHome=/tmp\n"),
        ResponseCode::NoPermission,
        black,
    );
    refused(
        &update(&leader_addr, "noSuchKey=1\n"),
        ResponseCode::SystemError,
        "noSuchKey",
    );
    refused(
        &update(&leader_addr, "scanNotActiveBrokerInterval=100\n"),
        ResponseCode::SystemError,
        "restart",
    );
    refused(
        &update(&leader_addr, "enableElectUncleanMaster=true\nnoSuchKey=1\n"),
        ResponseCode::SystemError,
        "noSuchKey",
    );
    refused(
        &update(&leader_addr, "notifyBrokerRoleChanged=maybe\n"),
        ResponseCode::SystemError,
        "notifyBrokerRoleChanged",
    );
    assert_eq!(value(&leader_addr, UNCLEAN).as_deref(), Some("false"));
    assert_eq!(
        value(&leader_addr, "notifyBrokerRoleChanged").as_deref(),
        Some("true")
    );

    // Broker 1 is master alone in its sync-state set; broker 2 lives outside it.
    let (first, second) = (Replica::new(1), Replica::new(2));
    assert_eq!(first.register(&leader_addr).code, 0);
    assert_eq!(second.register(&leader_addr).code, 0);
    let heartbeats_first = Heartbeats::start(&first, &members);
    let _heartbeats_second = Heartbeats::start(&second, &members);
    wait_alive(&leader_addr, 2);
    let elected = ask(
        &leader_addr,
        request(rc::CONTROLLER_ELECT_MASTER, |r| {
            ElectMasterRequestHeader {
                cluster_name: CLUSTER.into(),
                broker_name: GROUP.into(),
                broker_id: 1,
                designate_elect: false,
                invoke_time: None,
            }
            .write_to(r)
        }),
    );
    assert_eq!(elected.code, 0, "{:?}", elected.remark);
    // The master dies: no sync-state-set member is left, so nobody is elected.
    drop(heartbeats_first);
    let deadline = Instant::now() + ELECTION;
    while replica_info(&leader_addr).0.master_broker_id.is_some() {
        assert!(Instant::now() < deadline, "the dead master stays");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        replica_info(&leader_addr).0.master_broker_id,
        None,
        "clean election only"
    );

    // mqadmin updateControllerConfig -a <all three>: every member changes, the leader elects 2.
    for member in &members {
        let reply = update(&member.addr, "enableElectUncleanMaster=true\n");
        assert_eq!(reply.code, 0, "{:?}", reply.remark);
        assert_eq!(value(&member.addr, UNCLEAN).as_deref(), Some("true"));
    }
    let deadline = Instant::now() + ELECTION;
    while replica_info(&leader_addr).0.master_broker_id != Some(2) {
        assert!(Instant::now() < deadline, "broker 2 not elected uncleanly");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Per member: a follower's change stays on that follower.
    assert_eq!(
        update(&follower_addr, "enableElectUncleanMaster=false\n").code,
        0
    );
    assert_eq!(value(&follower_addr, UNCLEAN).as_deref(), Some("false"));
    assert_eq!(value(&leader_addr, UNCLEAN).as_deref(), Some("true"));
}

/// As RocketMQ 5.3.3, an update writes every key to `configStorePath`: a member started with
/// that file as `-c` keeps the change after a restart; the others keep theirs.
#[test]
fn a_runtime_config_change_is_persisted_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut members = three_members(dir.path());
    members.iter_mut().for_each(Member::start);
    agreed_leader(&members, ELECTION);
    const NOTIFY: &str = "notifyBrokerRoleChanged";
    let changed = &members[1].addr;
    let reply = update(changed, "notifyBrokerRoleChanged=false\n");
    assert_eq!(reply.code, 0, "{:?}", reply.remark);
    let before: Vec<Option<String>> = members
        .iter()
        .map(|m| value(&m.addr, "controllerDLegerPeers"))
        .collect();

    for member in members.iter_mut() {
        member.kill();
        member.start();
    }
    agreed_leader(&members, ELECTION);
    let expected = ["true", "false", "true"];
    for (member, (expected, peers)) in members.iter().zip(expected.iter().zip(&before)) {
        assert_eq!(
            value(&member.addr, NOTIFY).as_deref(),
            Some(*expected),
            "{} after its restart",
            member.name
        );
        assert_eq!(&value(&member.addr, "controllerDLegerPeers"), peers);
    }

    // A file that cannot be written: refused, nothing changed.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let path = blocker.join("controller.properties");
    let config = std::fs::read_to_string(&members[2].config).unwrap();
    std::fs::write(
        &members[2].config,
        format!("{config}configStorePath={}\n", path.display()),
    )
    .unwrap();
    members[2].kill();
    members[2].start();
    agreed_leader(&members, ELECTION);
    let reply = update(&members[2].addr, "notifyBrokerRoleChanged=false\n");
    assert_eq!(
        reply.code,
        ResponseCode::SystemError.code(),
        "{:?}",
        reply.remark
    );
    let remark = reply.remark.unwrap_or_default();
    assert!(remark.contains("configStorePath"), "{remark}");
    assert_eq!(value(&members[2].addr, NOTIFY).as_deref(), Some("true"));
}
