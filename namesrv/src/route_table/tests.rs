use super::*;
use rmq_core::body::{PERM_READ, PERM_WRITE};

fn topics(names: &[&str]) -> TopicConfigSerializeWrapper {
    TopicConfigSerializeWrapper {
        topic_config_table: names
            .iter()
            .map(|n| {
                let mut config = TopicConfig::new(n);
                config.read_queue_nums = 4;
                config.write_queue_nums = 4;
                (n.to_string(), config)
            })
            .collect(),
        data_version: DataVersion::default(),
    }
}

fn reg(name: &str, addr: &str, id: i64, conn: u64, t: &[&str]) -> Registration {
    Registration {
        cluster: "c1".into(),
        broker_name: name.into(),
        broker_addr: addr.into(),
        broker_id: id,
        ha_server_addr: format!("{addr}-ha"),
        topics: topics(t),
        connection_id: conn,
        partial: false,
    }
}

#[test]
fn master_topics_become_routes() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    table.register(
        reg("broker-a", "1.1.1.1:10911", 0, 1, &["T1", "TBW102"]),
        now,
    );
    table.register(reg("broker-b", "2.2.2.2:10911", 0, 2, &["T1"]), now);
    let route = table.route("T1", None).expect("route");
    assert_eq!(route.queue_datas.len(), 2);
    assert_eq!(route.broker_datas.len(), 2);
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    assert_eq!(table.route("TBW102", None).unwrap().broker_datas.len(), 1);
    assert!(table.route("nope", None).is_none());
    assert_eq!(table.cluster_info().cluster_addr_table["c1"].len(), 2);
}

#[test]
fn slave_learns_master_and_ha_address() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    table.register(reg("broker-a", "1.1.1.1:10911", 0, 1, &["T1"]), now);
    let outcome = table.register(reg("broker-a", "2.2.2.2:11011", 1, 2, &["T1"]), now);
    assert_eq!(outcome.master_addr.as_deref(), Some("1.1.1.1:10911"));
    assert_eq!(outcome.ha_server_addr.as_deref(), Some("1.1.1.1:10911-ha"));
    let route = table.route("T1", None).unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs.len(), 2);
}

#[test]
fn expiry_and_connection_close_remove_brokers() {
    let mut table = RouteTable::default();
    let start = Instant::now();
    table.register(reg("broker-a", "1.1.1.1:10911", 0, 1, &["T1"]), start);
    table.register(reg("broker-b", "2.2.2.2:10911", 0, 2, &["T2"]), start);
    let later = start + Duration::from_secs(100);
    table.register(reg("broker-b", "2.2.2.2:10911", 0, 2, &["T2"]), later);
    let gone = table.expire(start + Duration::from_secs(121), Duration::from_secs(120));
    assert_eq!(gone, vec!["1.1.1.1:10911".to_string()]);
    assert!(table.route("T1", None).is_none());
    assert!(table.route("T2", None).is_some());
    assert_eq!(
        table.connection_closed(2),
        vec!["2.2.2.2:10911".to_string()]
    );
    assert!(table.route("T2", None).is_none());
    assert!(table.cluster_info().broker_addr_table.is_empty());
    table.check_invariants();
}

#[test]
fn losing_the_master_keeps_the_slave_and_its_queues_routable() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    table.register(reg("broker-a", "1.1.1.1:10911", 0, 1, &["T1"]), now);
    table.register(reg("broker-a", "2.2.2.2:11011", 1, 2, &["T1"]), now);
    table.unregister("1.1.1.1:10911");
    let info = table.cluster_info();
    assert_eq!(info.broker_addr_table["broker-a"].broker_addrs.len(), 1);
    let route = table.route("T1", None).expect("slave still serves reads");
    assert_eq!(
        route.broker_datas[0]
            .broker_addrs
            .get(&1)
            .map(String::as_str),
        Some("2.2.2.2:11011")
    );
    table.unregister("2.2.2.2:11011");
    assert!(table.route("T1", None).is_none());
}

/// A broker restarted under another name at the same address: the old name (and its
/// routes) must go, and the expiry of that address must clear everything. The old name
/// used to keep the address, and its routes outlived the 120 s expiry.
#[test]
fn an_address_re_registered_under_another_name_leaves_the_old_name() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    table.register(reg("broker-old", "1.1.1.1:10911", 0, 1, &["T1"]), now);
    table.register(reg("broker-new", "1.1.1.1:10911", 0, 2, &["T2"]), now);
    assert!(
        table.route("T1", None).is_none(),
        "the old name's routes are gone"
    );
    let route = table.route("T2", None).expect("the new name is routed");
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(route.broker_datas[0].broker_name, "broker-new");
    let clusters = table.cluster_info();
    assert!(!clusters.broker_addr_table.contains_key("broker-old"));
    assert_eq!(
        clusters.cluster_addr_table["c1"].iter().collect::<Vec<_>>(),
        ["broker-new"]
    );
    // Same for a move to another cluster.
    let mut moved = reg("broker-new", "1.1.1.1:10911", 0, 3, &["T2"]);
    moved.cluster = "c2".into();
    table.register(moved, now);
    let clusters = table.cluster_info();
    assert!(!clusters.cluster_addr_table.contains_key("c1"));
    assert_eq!(clusters.cluster_addr_table["c2"].len(), 1);
    // Expiry of the address now forgets it completely.
    let later = now + Duration::from_secs(121);
    table.expire(later, Duration::from_secs(120));
    assert!(table.route("T2", None).is_none());
    assert!(table.cluster_info().broker_addr_table.is_empty());
    table.check_invariants();
}

fn versioned(name: &str, addr: &str, t: &[&str], counter: i64) -> Registration {
    let mut registration = reg(name, addr, 0, 1, t);
    registration.topics.data_version.counter = counter;
    registration
}

fn write_perms(table: &RouteTable, topic: &str) -> Vec<bool> {
    let route = table.route(topic, None).expect("route");
    route
        .queue_datas
        .iter()
        .map(|q| q.perm & PERM_WRITE != 0)
        .collect()
}

/// mqadmin wipeWritePerm drains a broker before maintenance: its queues lose PERM_WRITE in
/// every route and stay so across the periodic re-registrations (same data version), until
/// its topics change or addWritePerm gives write back. Other brokers are untouched.
#[test]
fn wiped_write_permission_survives_re_registration_until_topics_change() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    table.register(
        versioned("broker-a", "1.1.1.1:10911", &["T1", "T2"], 1),
        now,
    );
    table.register(versioned("broker-b", "2.2.2.2:10911", &["T1"], 1), now);
    assert_eq!(table.set_write_perm("broker-a", true), 2);
    assert_eq!(table.set_write_perm("broker-x", true), 0);
    let route = table.route("T1", None).unwrap();
    for queue in &route.queue_datas {
        let writeable = queue.perm & PERM_WRITE != 0;
        assert_eq!(writeable, queue.broker_name == "broker-b", "{queue:?}");
        assert!(queue.perm & PERM_READ != 0);
    }
    table.register(
        versioned("broker-a", "1.1.1.1:10911", &["T1", "T2"], 1),
        now,
    );
    assert_eq!(
        write_perms(&table, "T2"),
        [false],
        "periodic registration keeps it wiped"
    );
    assert_eq!(table.set_write_perm("broker-a", false), 2);
    assert_eq!(write_perms(&table, "T2"), [true]);
    table.set_write_perm("broker-a", true);
    table.register(
        versioned("broker-a", "1.1.1.1:10911", &["T1", "T2", "T3"], 2),
        now,
    );
    assert_eq!(
        write_perms(&table, "T2"),
        [true],
        "a topic change re-applies the configs"
    );
    assert!(table.route("T3", None).is_some());
}

/// The parts of a split registration share one data version: each part's topics are added
/// (a full registration with an unchanged version would be ignored), none is removed, and a
/// later part with a moved version updates only its own topics.
#[test]
fn parts_of_a_split_registration_add_their_topics() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    let part = |t: &[&str], counter: i64| {
        let mut registration = versioned("b1", "a1", t, counter);
        registration.partial = true;
        registration
    };
    table.register(part(&["T1", "T2"], 1), now);
    table.register(part(&["T3", "T4"], 1), now);
    for topic in ["T1", "T2", "T3", "T4"] {
        assert!(table.route(topic, None).is_some(), "{topic}");
    }
    // The next registration's first part: nothing of the other part disappears.
    table.register(part(&["T1", "T2"], 2), now);
    assert!(table.route("T4", None).is_some());
    // A full registration still replaces the broker's topics.
    table.register(versioned("b1", "a1", &["T1"], 3), now);
    assert!(table.route("T4", None).is_none());
    assert!(table.route("T1", None).is_some());
    table.check_invariants();
}

/// A replacing registration applied in chunks (as `crate::register` does for large bodies)
/// ends where the one-step apply ends: the new topics routed, the dropped ones gone, other
/// brokers' queues of shared topics untouched.
#[test]
fn a_registration_applied_in_chunks_replaces_the_brokers_topics() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    let old: Vec<String> = (0..50).map(|i| format!("T{i}")).collect();
    let old: Vec<&str> = old.iter().map(String::as_str).collect();
    table.register(versioned("b1", "a1", &old, 1), now);
    table.register(versioned("b2", "a2", &["T0", "T49"], 1), now);
    let new: Vec<String> = (25..100).map(|i| format!("T{i}")).collect();
    let new: Vec<&str> = new.iter().map(String::as_str).collect();
    let registration = versioned("b1", "a1", &new, 2);
    let (_, pending) = table.begin(&registration, now);
    assert_eq!(pending.apply, TopicApply::Replace);
    let stale = table.topics_of(&pending);
    let configs: Vec<&TopicConfig> = registration.topics.topic_config_table.values().collect();
    for chunk in configs.chunks(7) {
        assert!(table.apply_chunk(&pending, chunk.iter().copied()));
    }
    let keep = &registration.topics.topic_config_table;
    for chunk in stale.chunks(7) {
        assert!(table.remove_stale_chunk(&pending, chunk, keep));
    }
    table.check_invariants();
    for i in 0..100 {
        let brokers: Vec<String> = table
            .route(&format!("T{i}"), None)
            .map(|r| r.queue_datas.into_iter().map(|q| q.broker_name).collect())
            .unwrap_or_default();
        let mut want = Vec::new();
        if i >= 25 {
            want.push("b1");
        }
        if i == 0 || i == 49 {
            want.push("b2");
        }
        want.sort();
        assert_eq!(brokers, want, "T{i}");
    }
    assert_eq!(table.topic_count(), 76);
}

/// A broker unregistered (connection closed) while its topics are applied: the rest of
/// the apply is refused, and no route of it is left behind.
#[test]
fn a_broker_gone_during_a_chunked_apply_leaves_no_route() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    table.register(versioned("b1", "a1", &["A", "B"], 1), now);
    let registration = versioned("b1", "a1", &["C", "D", "E"], 2);
    let (_, pending) = table.begin(&registration, now);
    let stale = table.topics_of(&pending);
    let mut configs = registration.topics.topic_config_table.values();
    assert!(table.apply_chunk(&pending, configs.by_ref().take(1)));
    assert_eq!(table.connection_closed(1), vec!["a1".to_string()]);
    assert!(!table.apply_chunk(&pending, configs));
    let keep = &registration.topics.topic_config_table;
    assert!(!table.remove_stale_chunk(&pending, &stale, keep));
    assert_eq!(table.topic_count(), 0, "no route of a gone broker");
    table.check_invariants();
    // Registered again (a new epoch): the old pending apply stays refused.
    table.register(versioned("b1", "a1", &["A"], 3), now);
    assert!(!table.apply_chunk(&pending, registration.topics.topic_config_table.values()));
    assert_eq!(table.topic_count(), 1);
    table.check_invariants();
}

/// Controller mode (RocketMQ 5's stateVersion, the master epoch): a master deposed while cut
/// off from the controllers keeps re-registering as brokerId 0; it must not take the id back
/// from the new master of a later epoch.
#[test]
fn a_deposed_master_cannot_take_id_0_back_from_a_newer_epoch() {
    let mut table = RouteTable::default();
    let now = Instant::now();
    let with_epoch = |addr: &str, conn: u64, epoch: i64| {
        let mut registration = reg("broker-a", addr, 0, conn, &["T1"]);
        registration.topics.data_version.state_version = epoch;
        registration
    };
    table.register(with_epoch("1.1.1.1:10911", 1, 1), now);
    table.register(with_epoch("2.2.2.2:11011", 2, 2), now);
    let masters = |table: &RouteTable| {
        table.route("T1", None).unwrap().broker_datas[0]
            .broker_addrs
            .clone()
    };
    assert_eq!(masters(&table)[&0], "2.2.2.2:11011");
    // The old master's periodic registration, still as brokerId 0 in epoch 1.
    let outcome = table.register(with_epoch("1.1.1.1:10911", 1, 1), now);
    assert_eq!(outcome, RegisterOutcome::default());
    assert_eq!(
        masters(&table)[&0],
        "2.2.2.2:11011",
        "the deposed master took the route back"
    );
    table.check_invariants();
    // Once it follows the new master (another id) it is taken as a slave.
    let mut slave = with_epoch("1.1.1.1:10911", 1, 2);
    slave.broker_id = 3;
    table.register(slave, now);
    assert_eq!(
        masters(&table).get(&3).map(String::as_str),
        Some("1.1.1.1:10911")
    );
    // An equal state version takes the id, as before (classic mode: both 0).
    table.register(with_epoch("3.3.3.3:10911", 4, 2), now);
    assert_eq!(masters(&table)[&0], "3.3.3.3:10911");
}
