//! Tests of `BrokerConfig` loading: the shipped conf/ files (the 2m-2s-sync seed files verbatim),
//! error and warning texts, both spellings of the file size keys, overrides, and validation.

use std::path::{Path, PathBuf};

use super::broker::{BrokerConfig, BrokerRole, DsyncWrites, FlushDiskType};
use super::controller::ControllerConfig;
use super::error::ConfigWarning;
use super::keys::{BROKER_IGNORED, CONTROLLER_IGNORED, NAMESRV_IGNORED, NETTY_SERVER_IGNORED};
use super::namesrv::NamesrvConfig;
use super::properties::parse_properties;

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load_file(relative: &str) -> (BrokerConfig, Vec<ConfigWarning>) {
    let path = repo_dir().join("conf").join(relative);
    BrokerConfig::load(Some(&path), &[]).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn from_text(text: &str) -> Result<(BrokerConfig, Vec<ConfigWarning>), super::error::ConfigError> {
    let mut warnings = Vec::new();
    let config =
        BrokerConfig::from_properties(&parse_properties(text), "test.properties", &mut warnings)?;
    config.validate("test.properties")?;
    Ok((config, warnings))
}

fn overrides(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Writes `text` to a fresh file under the temp dir and returns its path.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmq-fast-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// What each 2m-2s-sync seed file sets: file, brokerName, brokerId, role, flush, port, store dir.
type SeedExpectation = (
    &'static str,
    &'static str,
    i64,
    BrokerRole,
    FlushDiskType,
    u16,
    &'static str,
);

const SEED_FILES: [SeedExpectation; 4] = [
    (
        "broker-a",
        "broker-a",
        0,
        BrokerRole::SyncMaster,
        FlushDiskType::SyncFlush,
        10911,
        "store",
    ),
    (
        "broker-a-s",
        "broker-a",
        1,
        BrokerRole::Slave,
        FlushDiskType::AsyncFlush,
        11011,
        "store2",
    ),
    (
        "broker-b",
        "broker-b",
        0,
        BrokerRole::SyncMaster,
        FlushDiskType::SyncFlush,
        10911,
        "store",
    ),
    (
        "broker-b-s",
        "broker-b",
        1,
        BrokerRole::Slave,
        FlushDiskType::AsyncFlush,
        11011,
        "store",
    ),
];

fn check_seed_file(expected: SeedExpectation) {
    let (file, name, id, role, flush, port, store) = expected;
    let (config, warnings) = load_file(&format!("2m-2s-sync/{file}.properties"));
    assert!(warnings.is_empty(), "{file}: {warnings:?}");
    assert_eq!(config.broker_cluster_name, "rocketmq-cluster");
    assert_eq!(
        (config.broker_name.as_str(), config.broker_id),
        (name, id),
        "{file}"
    );
    assert_eq!(
        (config.broker_role, config.flush_disk_type),
        (role, flush),
        "{file}"
    );
    assert_eq!(
        (config.listen_port, config.ha_listen_port()),
        (port, port + 1),
        "{file}"
    );
    let root = format!("/usr/local/rocketmq/{store}");
    assert_eq!(config.store_path_root_dir, root);
    assert_eq!(
        config.store_path_commit_log(),
        Path::new(&root).join("commitlog")
    );
    assert_eq!(
        config.store_path_consume_queue(),
        Path::new(&root).join("consumequeue")
    );
    let addrs = ["rocketmq-nameserver1:9876", "rocketmq-nameserver2:9876"];
    assert_eq!(config.namesrv_addrs(), addrs);
    assert_eq!(
        (config.default_topic_queue_nums, config.file_reserved_time),
        (4, 120)
    );
    assert!(config.auto_create_topic_enable && config.auto_create_subscription_group);
    assert_eq!(config.delete_when, "04");
    assert_eq!(config.mapped_file_size_commit_log, 1_073_741_824);
    assert_eq!(
        (config.max_message_size, config.disk_max_used_space_ratio),
        (65536, 88)
    );
}

#[test]
fn seed_files_load_with_their_values_and_no_warnings() {
    for expected in SEED_FILES {
        check_seed_file(expected);
    }
}

#[test]
fn seed_slave_file_reads_the_typo_size_keys() {
    let (config, _) = load_file("2m-2s-sync/broker-a-s.properties");
    assert_eq!(config.broker_id, 1);
    assert_eq!(config.broker_role, BrokerRole::Slave);
    assert_eq!(config.listen_port, 11011);
    assert_eq!(config.mapped_file_size_commit_log, 1_073_741_824);
    assert_eq!(
        config.commit_log_size_key_used.as_deref(),
        Some("mapedFileSizeCommitLog")
    );
    assert_eq!(config.mapped_file_size_consume_queue, 300_000);
    assert_eq!(
        config.consume_queue_size_key_used.as_deref(),
        Some("mapedFileSizeConsumeQueue")
    );
    assert_eq!(config.max_message_size, 65536);
    assert_eq!(config.disk_max_used_space_ratio, 88);
    assert_eq!(
        config.store_checkpoint.as_deref(),
        Some("/usr/local/rocketmq/store2/checkpoint")
    );
}

#[test]
fn other_shipped_files_load_cleanly() {
    for file in [
        "broker.properties",
        "2m-2s-async/broker-a.properties",
        "2m-2s-async/broker-a-s.properties",
        "2m-2s-async/broker-b.properties",
        "2m-2s-async/broker-b-s.properties",
    ] {
        let (config, warnings) = load_file(file);
        assert!(warnings.is_empty(), "{file}: {warnings:?}");
        assert_eq!(config.flush_disk_type, FlushDiskType::AsyncFlush, "{file}");
        assert_ne!(config.broker_role, BrokerRole::SyncMaster, "{file}");
    }
}

#[test]
fn defaults_are_rocketmq_4_9_8() {
    let config = BrokerConfig::default();
    assert_eq!(config.broker_cluster_name, "DefaultCluster");
    assert_eq!(
        (config.listen_port, config.ha_listen_port()),
        (10911, 10912)
    );
    assert_eq!(
        (config.broker_role, config.flush_disk_type),
        (BrokerRole::AsyncMaster, FlushDiskType::AsyncFlush)
    );
    assert_eq!(config.mapped_file_size_commit_log, 1 << 30);
    assert_eq!(config.mapped_file_size_consume_queue, 6_000_000);
    assert_eq!(
        (config.max_message_size, config.disk_max_used_space_ratio),
        (4_194_304, 75)
    );
    assert_eq!(
        (config.file_reserved_time, config.default_topic_queue_nums),
        (72, 8)
    );
    assert_eq!(
        (config.slave_timeout, config.sync_flush_timeout),
        (3000, 5000)
    );
    assert!(config.store_path_root_dir.ends_with("store"));
    assert_eq!(config.delay_levels_ms().unwrap().len(), 18);
    assert_eq!(config.delay_levels_ms().unwrap()[17], 2 * 60 * 60 * 1000);
    assert_eq!(config.commit_log_size_key_used, None);
    config.validate("defaults").unwrap();
}

#[test]
fn bad_broker_role_names_key_file_and_allowed_values() {
    let path = temp_file("bad-role.properties", "brokerName=b\nbrokerRole=MASTR\n");
    let err = BrokerConfig::load(Some(&path), &[]).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.key, "brokerRole");
    assert!(text.contains("bad-role.properties"), "{text}");
    assert!(text.contains("ASYNC_MASTER, SYNC_MASTER, SLAVE"), "{text}");
    assert!(
        text.contains("\"MASTR\"") && text.contains("line 2"),
        "{text}"
    );
    std::fs::remove_file(&path).unwrap();
    // Unlike Java's Enum.valueOf, case and surrounding blanks are forgiven.
    let (config, _) = from_text("brokerRole = sync_master \nbrokerId=0\n").unwrap();
    assert_eq!(config.broker_role, BrokerRole::SyncMaster);
}

#[test]
fn non_number_port_names_listen_port() {
    let err = from_text("listenPort=10911a\n").unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.source_name.as_str()),
        ("listenPort", "test.properties")
    );
    assert!(
        err.message.contains("expected an integer, got \"10911a\""),
        "{err}"
    );
    let err = from_text("listenPort=0\n").unwrap_err();
    assert_eq!(err.key, "listenPort");
    let err = from_text("listenPort=70000\n").unwrap_err();
    assert!(err.message.contains("out of range"), "{err}");
    let err = from_text("autoCreateTopicEnable=yes\n").unwrap_err();
    assert_eq!(err.key, "autoCreateTopicEnable");
}

#[test]
fn unknown_keys_warn_and_known_ignored_keys_do_not() {
    let text = "brokerNmae=x\nsendMessageThreadPoolNums=128\nserverWorkerThreads=8\n\
                checkTransactionMessageEnable=false\n";
    let (config, warnings) = from_text(text).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].key, "brokerNmae");
    assert!(
        warnings[0].message.contains("did you mean `brokerName`"),
        "{}",
        warnings[0]
    );
    assert_eq!(
        config
            .ignored_keys
            .get("sendMessageThreadPoolNums")
            .map(String::as_str),
        Some("128")
    );
    assert!(
        config
            .to_properties_text()
            .contains("sendMessageThreadPoolNums=128\n")
    );
    let (_, warnings) = from_text("enableLmq=true\nuseTLS=false\n").unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].message.contains("feature not implemented"),
        "{}",
        warnings[0]
    );
}

#[test]
fn both_size_spellings_new_one_wins_with_warning() {
    let text = "mappedFileSizeCommitLog=8388608\nmapedFileSizeCommitLog=1073741824\n\
                mapedFileSizeConsumeQueue=6000\n";
    let (config, warnings) = from_text(text).unwrap();
    assert_eq!(config.mapped_file_size_commit_log, 8_388_608);
    assert_eq!(
        config.commit_log_size_key_used.as_deref(),
        Some("mappedFileSizeCommitLog")
    );
    assert_eq!(
        config.consume_queue_size_key_used.as_deref(),
        Some("mapedFileSizeConsumeQueue")
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0]
            .message
            .contains("`mappedFileSizeCommitLog` wins"),
        "{}",
        warnings[0]
    );
}

#[test]
fn overrides_win_over_the_file() {
    let path = temp_file(
        "override.properties",
        "brokerName=b\nnamesrvAddr=10.0.0.1:9876\nlistenPort=10911\n",
    );
    let args = overrides(&[
        ("namesrvAddr", "127.0.0.1:9876; 127.0.0.2:9876,"),
        ("listenPort", "20911"),
    ]);
    let (config, warnings) = BrokerConfig::load(Some(&path), &args).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.namesrv_addrs(), ["127.0.0.1:9876", "127.0.0.2:9876"]);
    assert_eq!(
        (config.listen_port, config.ha_listen_port()),
        (20911, 20912)
    );
    let err = BrokerConfig::load(Some(&path), &overrides(&[("listenPort", "x")])).unwrap_err();
    assert_eq!(
        (err.source_name.as_str(), err.key.as_str()),
        ("command line", "listenPort")
    );
    std::fs::remove_file(&path).unwrap();
    let err =
        BrokerConfig::load(Some(Path::new("/nonexistent/broker.properties")), &[]).unwrap_err();
    assert!(err.to_string().contains("cannot read the file"), "{err}");
}

#[test]
fn validation_refuses_bad_values_with_reasons() {
    let cases = [
        ("deleteWhen=25", "deleteWhen", "0-23"),
        ("deleteWhen=04;x", "deleteWhen", "invalid hour"),
        (
            "messageDelayLevel=1s 5x",
            "messageDelayLevel",
            "unit s, m, h or d",
        ),
        (
            "mappedFileSizeCommitLog=1000000",
            "mappedFileSizeCommitLog",
            "O_DIRECT",
        ),
        (
            "mapedFileSizeCommitLog=4096",
            "mapedFileSizeCommitLog",
            "at least 65536",
        ),
        (
            "mapedFileSizeConsumeQueue=300001",
            "mapedFileSizeConsumeQueue",
            "multiple of 20",
        ),
        (
            "diskMaxUsedSpaceRatio=99",
            "diskMaxUsedSpaceRatio",
            "10..=95",
        ),
        ("idlePollMicros=10001", "idlePollMicros", "at most 10000"),
        (
            "asyncFlushPageCacheBytes=-2",
            "asyncFlushPageCacheBytes",
            "-1 for the default",
        ),
        (
            "enableDLegerCommitLog=true",
            "enableDLegerCommitLog",
            "not supported",
        ),
        ("brokerRole=SLAVE\nbrokerId=0", "brokerId", "> 0"),
        ("namesrvAddr=127.0.0.1", "namesrvAddr", "no port"),
        ("haListenPort=10911", "haListenPort", "must differ"),
        ("flushIntervalCommitLog=0", "flushIntervalCommitLog", "> 0"),
        (
            "maxMessageSize=20000000\nmaxFrameLength=16777216",
            "maxFrameLength",
            "exceed maxMessageSize",
        ),
    ];
    for (text, key, fragment) in cases {
        let err = from_text(text).unwrap_err();
        assert_eq!(err.key, key, "{text}: {err}");
        assert!(err.message.contains(fragment), "{text}: {err}");
    }
}

#[test]
fn idle_polling_defaults_to_a_probed_100_us_window() {
    let (config, _) = from_text("").unwrap();
    assert_eq!(config.idle_poll_micros, 100);
    assert!(config.idle_poll_probe);
    let (config, _) = from_text("idlePollMicros=200\nidlePollProbe=false").unwrap();
    assert_eq!(config.idle_poll_micros, 200);
    assert!(!config.idle_poll_probe);
    assert_eq!(from_text("idlePollMicros=0").unwrap().0.idle_poll_micros, 0);
    assert!(from_text("idlePollProbe=maybe").is_err());
}

#[test]
fn cores_are_pinned_only_while_polling_by_default() {
    use crate::config::PinCores;
    assert_eq!(from_text("").unwrap().0.pin_cores, PinCores::Auto);
    for (raw, value) in [
        ("true", PinCores::Always),
        ("false", PinCores::Never),
        ("AUTO", PinCores::Auto),
    ] {
        let (config, _) = from_text(&format!("pinCores={raw}")).unwrap();
        assert_eq!(config.pin_cores, value, "{raw}");
    }
    let error = from_text("pinCores=sometimes").unwrap_err().to_string();
    assert!(error.contains("pinCores"), "{error}");
}

#[test]
fn sync_flush_dsync_writes_takes_false_true_idle_auto_and_defaults_to_auto() {
    let value = |text: &str| from_text(text).map(|(c, _)| c.sync_flush_dsync_writes);
    assert_eq!(value("").unwrap(), DsyncWrites::Auto);
    assert_eq!(
        value("syncFlushDsyncWrites=false").unwrap(),
        DsyncWrites::Never
    );
    assert_eq!(
        value("syncFlushDsyncWrites=TRUE").unwrap(),
        DsyncWrites::Always
    );
    assert_eq!(
        value("syncFlushDsyncWrites= idle ").unwrap(),
        DsyncWrites::Idle
    );
    let err = value("syncFlushDsyncWrites=sometimes").unwrap_err();
    assert_eq!(err.key, "syncFlushDsyncWrites");
    let text = err.to_string();
    assert!(
        text.contains("\"sometimes\"") && text.contains("false, true, idle, auto"),
        "{text}"
    );
}

#[test]
fn startup_fixups_warn() {
    let text = "brokerId=3\nhaListenPort=12000\nstorePathRootDir=/data/s\n\
                storePathIndex=/other/index\nabortFile=/data/s/abort/\n";
    let (config, warnings) = from_text(text).unwrap();
    assert_eq!(config.broker_id, 0);
    assert_eq!(config.ha_listen_port(), 12000);
    assert_eq!(config.store_path_index(), Path::new("/data/s/index"));
    assert_eq!(config.store_path_config(), Path::new("/data/s/config"));
    let keys: Vec<&str> = warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        keys,
        ["brokerId", "haListenPort", "storePathIndex"],
        "{warnings:?}"
    );
}

#[test]
fn inline_comment_is_part_of_the_value() {
    let (config, warnings) = from_text("brokerName=broker-a  # master\n").unwrap();
    assert_eq!(config.broker_name, "broker-a  # master");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].message.contains("no inline comments"),
        "{}",
        warnings[0]
    );
    let err = from_text("listenPort=10911 # port\n").unwrap_err();
    assert!(err.message.contains("no inline comments"), "{err}");
}

#[test]
fn properties_text_round_trips() {
    let text =
        "brokerName=b\nbrokerIP1=10.0.0.5\nstorePathRootDir=C:\\\\store\nmessageDelayLevel=1s 1m\n";
    let (config, _) = from_text(text).unwrap();
    let rendered = config.to_properties_text();
    assert!(rendered.contains("haListenPort=10912\n"), "{rendered}");
    assert!(!rendered.contains("brokerIP2="), "unset keys are omitted");
    let (again, warnings) = from_text(&rendered).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(again.store_path_root_dir, "C:\\store");
    assert_eq!(again.broker_ip1.as_deref(), Some("10.0.0.5"));
    assert_eq!(again.to_properties_text(), rendered);
}

#[test]
fn docs_list_every_key() {
    let docs = std::fs::read_to_string(repo_dir().join("docs/config.md")).expect("docs/config.md");
    let ignored = NETTY_SERVER_IGNORED
        .iter()
        .chain(BROKER_IGNORED)
        .chain(NAMESRV_IGNORED)
        .chain(CONTROLLER_IGNORED)
        .map(|k| k.key);
    let typed = BrokerConfig::KEYS
        .iter()
        .chain(NamesrvConfig::KEYS)
        .chain(ControllerConfig::KEYS)
        .copied();
    let aliases = ["mapedFileSizeCommitLog", "mapedFileSizeConsumeQueue"];
    for key in typed.chain(ignored).chain(aliases) {
        assert!(
            docs.contains(&format!("`{key}`")),
            "docs/config.md does not mention `{key}`"
        );
    }
}

/// Found by the frame fuzzer: UPDATE_BROKER_CONFIG with a 1 MB unknown key stalled a core for
/// minutes computing "did you mean" edit distances against every known key (and a body of
/// many unknown keys did the same one key at a time).
#[test]
fn huge_and_numerous_unknown_keys_cost_little() {
    let started = std::time::Instant::now();
    let long_key = "k".repeat(300_000);
    let (_, warnings) = from_text(&format!("{long_key}=1\n")).unwrap();
    assert_eq!(warnings.len(), 1, "one unknown key, one warning");
    let many: String = (0..20_000).map(|i| format!("brokerNme{i}=1\n")).collect();
    let (_, warnings) = from_text(&many).unwrap();
    assert_eq!(warnings.len(), 20_000);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}

#[test]
fn controller_mode_keys_parse_and_brokerid_role_are_the_controllers() {
    let text = "brokerName=broker-a\nbrokerRole=SLAVE\nbrokerId=0\nenableControllerMode=true\n\
                controllerAddr=127.0.0.1:9878; 127.0.0.2:9878 ;127.0.0.3:9878\n\
                allAckInSyncStateSet=true\nbrokerElectionPriority=2\n\
                haMaxTimeSlaveNotCatchup=3000\ncontrollerHeartBeatTimeoutMills=4000\n\
                storePathEpochFile=/data/epochs\n";
    let (config, warnings) = from_text(text).expect("controller mode ignores brokerId/brokerRole");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(config.enable_controller_mode && config.all_ack_in_sync_state_set);
    assert_eq!(
        config.controller_addrs(),
        ["127.0.0.1:9878", "127.0.0.2:9878", "127.0.0.3:9878"]
    );
    assert_eq!(config.broker_election_priority, 2);
    assert_eq!(config.ha_max_time_slave_not_catchup, 3000);
    assert_eq!(config.controller_heart_beat_timeout_mills, 4000);
    assert_eq!(
        config.store_path_epoch_file(),
        PathBuf::from("/data/epochs")
    );
    let defaults = BrokerConfig::default();
    assert!(!defaults.enable_controller_mode && !defaults.all_ack_in_sync_state_set);
    assert_eq!(defaults.broker_election_priority, i32::MAX);
    // rmq-fast's own defaults (RocketMQ 5: 10 s and 1 s), fencing one interval earlier.
    assert_eq!(defaults.controller_heart_beat_timeout_mills, 2_000);
    assert_eq!(defaults.broker_heartbeat_interval, 250);
    assert_eq!(defaults.controller_fence_bound_ms(), 1_750);
    assert_eq!(config.controller_fence_bound_ms(), 3_750);
    assert_eq!(defaults.sync_controller_metadata_period, 10_000);
    assert!(
        defaults
            .store_path_epoch_file()
            .ends_with("epochFileCheckpoint")
    );

    let no_controllers = from_text("enableControllerMode=true\n").unwrap_err();
    assert!(
        no_controllers.to_string().contains("controllerAddr"),
        "{no_controllers}"
    );
    let bad = from_text("enableControllerMode=true\ncontrollerAddr=nohostport\n").unwrap_err();
    assert!(bad.to_string().contains("controllerAddr"), "{bad}");
    let zero = from_text(
        "enableControllerMode=true\ncontrollerAddr=127.0.0.1:9878\nhaMaxTimeSlaveNotCatchup=0\n",
    )
    .unwrap_err();
    assert!(
        zero.to_string().contains("haMaxTimeSlaveNotCatchup"),
        "{zero}"
    );
    // Classic mode keeps its checks.
    assert!(from_text("brokerRole=SLAVE\nbrokerId=0\n").is_err());
}

#[test]
fn controller_heartbeat_timeout_needs_two_heartbeats() {
    let base = "brokerName=broker-a\nenableControllerMode=true\ncontrollerAddr=127.0.0.1:9878\n";
    let error = from_text(&format!(
        "{base}brokerHeartbeatInterval=1000\ncontrollerHeartBeatTimeoutMills=1500\n"
    ))
    .expect_err("a timeout shorter than two heartbeats");
    assert!(
        error
            .to_string()
            .contains("controllerHeartBeatTimeoutMills"),
        "{error}"
    );
    // RocketMQ 5's own pair of values is accepted and keeps its timeout.
    let (config, _) = from_text(&format!(
        "{base}brokerHeartbeatInterval=1000\ncontrollerHeartBeatTimeoutMills=10000\n"
    ))
    .expect("RocketMQ 5's defaults");
    assert_eq!(config.controller_fence_bound_ms(), 9_000);
}

#[test]
fn sync_flush_group_commit_keys_default_to_a_probed_delay_and_refuse_negative_values() {
    let (config, _) = from_text("").unwrap();
    assert_eq!(config.sync_flush_group_delay_micros, 500);
    assert_eq!(config.sync_flush_group_no_delay_count, 32);
    assert!(config.sync_flush_group_delay_probe);
    let (config, _) = from_text(
        "syncFlushGroupDelayMicros=0\nsyncFlushGroupNoDelayCount=0\nsyncFlushGroupDelayProbe=false",
    )
    .unwrap();
    assert_eq!(config.sync_flush_group_delay_micros, 0);
    assert_eq!(config.sync_flush_group_no_delay_count, 0);
    assert!(!config.sync_flush_group_delay_probe);
    let err = from_text("syncFlushGroupDelayMicros=-1").unwrap_err();
    assert_eq!(err.key, "syncFlushGroupDelayMicros");
}
