use super::*;

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
