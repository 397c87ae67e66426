//! Broker configuration: the keys of RocketMQ 4.9.8's BrokerConfig, NettyServerConfig,
//! NettyClientConfig and MessageStoreConfig, read from one `.properties` file (`-c`), then
//! command-line overrides (`-n` → namesrvAddr), then checked by `validate`.
//!
//! Compatibility choices (details and the full key table in docs/config.md):
//! - Defaults are RocketMQ 4.9.8's, with paths under `$HOME` like Java's `user.home`.
//! - Unknown keys warn; keys RocketMQ reads but we have no use for (thread pools, Netty tuning)
//!   are accepted silently; bad values are errors naming the key and the file. RocketMQ silently
//!   ignores both unknown keys and unparsable values.
//! - `mapedFileSizeCommitLog` (≤ 4.5.1 spelling) and `mappedFileSizeCommitLog` (4.5.2+) are both
//!   read; the spelling used is recorded so the broker can log it. Same for the consume queue.
//! - Like Java's BrokerStartup, a master's brokerId is forced to 0 (with a warning here).
//! - `storePathConsumeQueue`, `storePathIndex`, `storeCheckpoint` and `abortFile` appear in many
//!   deployment guides but RocketMQ derives those paths from `storePathRootDir`; so do we, and we
//!   warn when the file names a different path.
//! - `haListenPort` is honoured; RocketMQ 4.9.8 overwrites it with listenPort+1 (we warn).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigWarning};
use super::keys::{BROKER_IGNORED, NETTY_SERVER_IGNORED};
use super::loader::{COMMAND_LINE, KeySpace, apply_entries, read_properties_file};
use super::metrics::{MetricsExporterType, MetricsLabels};
use super::properties::{Properties, PropertyEntry};
use super::value::{ConfigValue, config_struct, home_path};

/// The RocketMQ ≤ 4.5.1 spelling of the commit log file size key.
pub const COMMIT_LOG_SIZE_KEY_OLD: &str = "mapedFileSizeCommitLog";
/// The RocketMQ 4.5.2+ spelling of the commit log file size key.
pub const COMMIT_LOG_SIZE_KEY: &str = "mappedFileSizeCommitLog";
/// The RocketMQ ≤ 4.5.1 spelling of the consume queue file size key.
pub const CONSUME_QUEUE_SIZE_KEY_OLD: &str = "mapedFileSizeConsumeQueue";
/// The RocketMQ 4.5.2+ spelling of the consume queue file size key.
pub const CONSUME_QUEUE_SIZE_KEY: &str = "mappedFileSizeConsumeQueue";

/// Replication role (`brokerRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    /// Master; slaves replicate asynchronously, sends do not wait for them.
    AsyncMaster,
    /// Master; a send waits until a slave has the message (FLUSH_SLAVE_TIMEOUT otherwise).
    SyncMaster,
    /// Replica of the master with the same brokerName; brokerId must be > 0.
    Slave,
}

impl BrokerRole {
    /// All roles, in the order shown in error messages.
    pub const ALL: [BrokerRole; 3] = [
        BrokerRole::AsyncMaster,
        BrokerRole::SyncMaster,
        BrokerRole::Slave,
    ];

    /// The Java enum name, as written in property files.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }

    /// True for ASYNC_MASTER and SYNC_MASTER.
    pub fn is_master(self) -> bool {
        self != BrokerRole::Slave
    }
}

/// How the commit log reaches the disk (`flushDiskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushDiskType {
    /// Sends return once the message is in memory; a background flush follows.
    AsyncFlush,
    /// Sends wait for the flush (FLUSH_DISK_TIMEOUT after syncFlushTimeout).
    SyncFlush,
}

impl FlushDiskType {
    /// All flush types, in the order shown in error messages.
    pub const ALL: [FlushDiskType; 2] = [FlushDiskType::AsyncFlush, FlushDiskType::SyncFlush];

    /// The Java enum name, as written in property files.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
            FlushDiskType::SyncFlush => "SYNC_FLUSH",
        }
    }
}

/// Which SYNC_FLUSH commit log writes are durable when they complete (`syncFlushDsyncWrites`,
/// an rmq-fast extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsyncWrites {
    /// `false`: every group commit round is a write and then an `fdatasync`.
    Never,
    /// `true`: every write is `O_DIRECT | O_DSYNC`, durable when it completes.
    Always,
    /// `idle`: a round that starts with nothing else in flight is one
    /// `O_DIRECT | O_DSYNC` write; rounds under load write, then `fdatasync`, the next
    /// round's write overlapping this round's sync.
    Idle,
    /// `auto` (default): as `idle`, and a loaded shard measures both ways on its own
    /// traffic every few seconds and writes its loaded rounds the faster way.
    Auto,
}

impl DsyncWrites {
    /// All values, in the order shown in error messages.
    pub const ALL: [DsyncWrites; 4] = [
        DsyncWrites::Never,
        DsyncWrites::Always,
        DsyncWrites::Idle,
        DsyncWrites::Auto,
    ];

    /// The value as written in property files.
    pub fn as_str(self) -> &'static str {
        match self {
            DsyncWrites::Never => "false",
            DsyncWrites::Always => "true",
            DsyncWrites::Idle => "idle",
            DsyncWrites::Auto => "auto",
        }
    }
}

/// Whether a core's thread is pinned to its CPU (`pinCores`, an rmq-fast extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCores {
    /// `false`: never; the kernel places the threads.
    Never,
    /// `true`: always (each core on its own CPU, as before this key).
    Always,
    /// `auto` (default): under SYNC_FLUSH always; under ASYNC_FLUSH only while the core
    /// idle-polls (`idlePollMicros`), so two spinning cores never share a CPU, and a core
    /// that sleeps when idle runs wherever a CPU is free.
    Auto,
}

impl PinCores {
    /// All values, in the order shown in error messages.
    pub const ALL: [PinCores; 3] = [PinCores::Never, PinCores::Always, PinCores::Auto];

    /// The value as written in property files.
    pub fn as_str(self) -> &'static str {
        match self {
            PinCores::Never => "false",
            PinCores::Always => "true",
            PinCores::Auto => "auto",
        }
    }
}

impl ConfigValue for PinCores {
    fn parse_value(raw: &str) -> Result<Self, String> {
        parse_enum(raw, &PinCores::ALL, PinCores::as_str)
    }
    fn render_value(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

impl ConfigValue for DsyncWrites {
    fn parse_value(raw: &str) -> Result<Self, String> {
        parse_enum(raw, &DsyncWrites::ALL, DsyncWrites::as_str)
    }
    fn render_value(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

/// Parses a Java enum name: trimmed, any case; the error lists the allowed names.
fn parse_enum<T: Copy>(
    raw: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, String> {
    let wanted = raw.trim();
    all.iter()
        .copied()
        .find(|&v| name(v).eq_ignore_ascii_case(wanted))
        .ok_or_else(|| {
            let allowed: Vec<&str> = all.iter().map(|&v| name(v)).collect();
            format!(
                "invalid value \"{raw}\"; allowed values: {}",
                allowed.join(", ")
            )
        })
}

impl ConfigValue for BrokerRole {
    fn parse_value(raw: &str) -> Result<Self, String> {
        parse_enum(raw, &BrokerRole::ALL, BrokerRole::as_str)
    }
    fn render_value(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

impl ConfigValue for FlushDiskType {
    fn parse_value(raw: &str) -> Result<Self, String> {
        parse_enum(raw, &FlushDiskType::ALL, FlushDiskType::as_str)
    }
    fn render_value(&self) -> Option<String> {
        Some(self.as_str().to_owned())
    }
}

impl fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for FlushDiskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RocketMQ's default brokerName is the host name; "broker-a" if it cannot be read.
fn default_broker_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "broker-a".to_owned())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

config_struct! {
    /// Every broker key rmq-fast reads into a typed field. Field = the Java key in snake_case.
    /// Integer types follow Java (`int` → i32, `long` → i64), except ports (u16) and
    /// file sizes (u64).
    #[derive(Debug, Clone)]
    pub struct BrokerConfig {
        /// RocketMQ installation dir (env ROCKETMQ_HOME); with aclEnable=true it holds the ACL
        /// files (conf/plain_acl.yml, conf/acl/).
        "rocketmqHome" => rocketmq_home: Option<String> = env_nonempty("ROCKETMQ_HOME"),
        /// Name servers, "host:port;host:port". See `namesrv_addrs()` for the env fallback.
        "namesrvAddr" => namesrv_addr: Option<String> = None,
        /// Address advertised to clients; None = detect at runtime.
        "brokerIP1" => broker_ip1: Option<String> = None,
        /// Address advertised to slaves for HA; None = same as brokerIP1.
        "brokerIP2" => broker_ip2: Option<String> = None,
        "brokerName" => broker_name: String = default_broker_name(),
        "brokerClusterName" => broker_cluster_name: String = "DefaultCluster".to_owned(),
        /// 0 = master, > 0 = slave.
        "brokerId" => broker_id: i64 = 0,
        /// PermName bits: 4 READ | 2 WRITE (| 1 INHERIT, 8 PRIORITY).
        "brokerPermission" => broker_permission: i32 = 6,
        "listenPort" => listen_port: u16 = 10911,
        "serverChannelMaxIdleTimeSeconds" => server_channel_max_idle_time_seconds: i32 = 120,
        "defaultTopicQueueNums" => default_topic_queue_nums: i32 = 8,
        "autoCreateTopicEnable" => auto_create_topic_enable: bool = true,
        "clusterTopicEnable" => cluster_topic_enable: bool = true,
        "brokerTopicEnable" => broker_topic_enable: bool = true,
        "autoCreateSubscriptionGroup" => auto_create_subscription_group: bool = true,
        "msgTraceTopicName" => msg_trace_topic_name: String = "RMQ_SYS_TRACE_TOPIC".to_owned(),
        "traceTopicEnable" => trace_topic_enable: bool = false,
        "enablePropertyFilter" => enable_property_filter: bool = false,
        "aclEnable" => acl_enable: bool = false,
        /// The default ACL file, relative to rocketmqHome (Java: -Drocketmq.acl.plain.file).
        "aclPlainFile" => acl_plain_file: String = "conf/plain_acl.yml".to_owned(),
        "notifyConsumerIdsChangedEnable" => notify_consumer_ids_changed_enable: bool = true,
        "rejectTransactionMessage" => reject_transaction_message: bool = false,
        "longPollingEnable" => long_polling_enable: bool = true,
        "shortPollingTimeMills" => short_polling_time_mills: i64 = 1000,
        "slaveReadEnable" => slave_read_enable: bool = false,
        "registerNameServerPeriod" => register_name_server_period: i32 = 30_000,
        "registerBrokerTimeoutMills" => register_broker_timeout_mills: i32 = 6000,
        "compressedRegister" => compressed_register: bool = false,
        "enableSplitRegistration" => enable_split_registration: bool = false,
        "splitRegistrationSize" => split_registration_size: i32 = 800,
        "forceRegister" => force_register: bool = true,
        "flushConsumerOffsetInterval" => flush_consumer_offset_interval: i32 = 5000,
        "flushDelayOffsetInterval" => flush_delay_offset_interval: i64 = 10_000,
        "transactionTimeOut" => transaction_time_out: i64 = 6000,
        "transactionCheckMax" => transaction_check_max: i32 = 15,
        "transactionCheckInterval" => transaction_check_interval: i64 = 60_000,
        "storePathRootDir" => store_path_root_dir: String = home_path("store"),
        /// None = storePathRootDir/commitlog; see `store_path_commit_log()`.
        "storePathCommitLog" => store_path_commit_log: Option<String> = None,
        /// Accepted for old guides; the path is always root/consumequeue (as in RocketMQ).
        "storePathConsumeQueue" => store_path_consume_queue: Option<String> = None,
        /// Accepted for old guides; the path is always root/index.
        "storePathIndex" => store_path_index: Option<String> = None,
        /// Accepted for old guides; the path is always root/checkpoint.
        "storeCheckpoint" => store_checkpoint: Option<String> = None,
        /// Accepted for old guides; the path is always root/abort.
        "abortFile" => abort_file: Option<String> = None,
        /// Bytes per commit log file; also read as `mapedFileSizeCommitLog`.
        "mappedFileSizeCommitLog" => mapped_file_size_commit_log: u64 = 1 << 30,
        /// Bytes per consume queue file (20 per entry); also read as `mapedFileSizeConsumeQueue`.
        "mappedFileSizeConsumeQueue" => mapped_file_size_consume_queue: u64 = 300_000 * 20,
        "maxMessageSize" => max_message_size: i32 = 4 * 1024 * 1024,
        "flushDiskType" => flush_disk_type: FlushDiskType = FlushDiskType::AsyncFlush,
        "flushIntervalCommitLog" => flush_interval_commit_log: i32 = 500,
        "flushCommitLogLeastPages" => flush_commit_log_least_pages: i32 = 4,
        "flushCommitLogThoroughInterval" => flush_commit_log_thorough_interval: i32 = 10_000,
        "flushCommitLogTimed" => flush_commit_log_timed: bool = true,
        "flushIntervalConsumeQueue" => flush_interval_consume_queue: i32 = 1000,
        "flushConsumeQueueLeastPages" => flush_consume_queue_least_pages: i32 = 2,
        "flushConsumeQueueThoroughInterval" => flush_consume_queue_thorough_interval: i32 = 60_000,
        "syncFlushTimeout" => sync_flush_timeout: i32 = 5000,
        "transientStorePoolEnable" => transient_store_pool_enable: bool = false,
        "transientStorePoolSize" => transient_store_pool_size: i32 = 5,
        "commitIntervalCommitLog" => commit_interval_commit_log: i32 = 200,
        "commitCommitLogLeastPages" => commit_commit_log_least_pages: i32 = 4,
        "commitCommitLogThoroughInterval" => commit_commit_log_thorough_interval: i32 = 200,
        /// Hours of the day (0-23, ';'-separated) when expired files are deleted.
        "deleteWhen" => delete_when: String = "04".to_owned(),
        /// Hours a commit log file is kept after its last write.
        "fileReservedTime" => file_reserved_time: i32 = 72,
        "diskMaxUsedSpaceRatio" => disk_max_used_space_ratio: i32 = 75,
        "cleanFileForciblyEnable" => clean_file_forcibly_enable: bool = true,
        "cleanResourceInterval" => clean_resource_interval: i32 = 10_000,
        "deleteCommitLogFilesInterval" => delete_commit_log_files_interval: i32 = 100,
        "deleteConsumeQueueFilesInterval" => delete_consume_queue_files_interval: i32 = 100,
        "destroyMapedFileIntervalForcibly" => destroy_maped_file_interval_forcibly: i32 = 120_000,
        "redeleteHangedFileInterval" => redelete_hanged_file_interval: i32 = 120_000,
        "checkCRCOnRecover" => check_crc_on_recover: bool = true,
        "messageIndexEnable" => message_index_enable: bool = true,
        "messageIndexSafe" => message_index_safe: bool = false,
        "maxHashSlotNum" => max_hash_slot_num: i32 = 5_000_000,
        "maxIndexNum" => max_index_num: i32 = 20_000_000,
        "maxMsgsNumBatch" => max_msgs_num_batch: i32 = 64,
        "defaultQueryMaxNum" => default_query_max_num: i32 = 32,
        "maxTransferBytesOnMessageInMemory" => max_transfer_bytes_on_message_in_memory: i32 =
            262_144,
        "maxTransferCountOnMessageInMemory" => max_transfer_count_on_message_in_memory: i32 = 32,
        "maxTransferBytesOnMessageInDisk" => max_transfer_bytes_on_message_in_disk: i32 = 64 * 1024,
        "maxTransferCountOnMessageInDisk" => max_transfer_count_on_message_in_disk: i32 = 8,
        "accessMessageInMemoryMaxRatio" => access_message_in_memory_max_ratio: i32 = 40,
        "brokerRole" => broker_role: BrokerRole = BrokerRole::AsyncMaster,
        /// None = listenPort + 1; see `ha_listen_port()`.
        "haListenPort" => ha_listen_port: Option<u16> = None,
        /// A slave's master HA address "host:port"; None = learn it from the name server.
        "haMasterAddress" => ha_master_address: Option<String> = None,
        "haSendHeartbeatInterval" => ha_send_heartbeat_interval: i32 = 5000,
        "haHousekeepingInterval" => ha_housekeeping_interval: i32 = 20_000,
        "haTransferBatchSize" => ha_transfer_batch_size: i32 = 32 * 1024,
        "haSlaveFallbehindMax" => ha_slave_fallbehind_max: i32 = 256 * 1024 * 1024,
        /// SYNC_MASTER: how long a send waits for the slave (4.9.8 `slaveTimeout`).
        "slaveTimeout" => slave_timeout: i32 = 3000,
        "messageDelayLevel" => message_delay_level: String =
            "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".to_owned(),
        /// RocketMQ 5 controller mode (issue 11): the controller assigns the broker id and the
        /// role; `brokerId`/`brokerRole` in the file are ignored (as RocketMQ 5).
        "enableControllerMode" => enable_controller_mode: bool = false,
        /// RocketMQ 5: the controllers, `host:port;host:port;...` (or a domain name with
        /// `fetchControllerAddrByDnsLookup`).
        "controllerAddr" => controller_addr: String = String::new(),
        /// RocketMQ 5: `controllerAddr` is a domain name whose A records are the controllers.
        "fetchControllerAddrByDnsLookup" => fetch_controller_addr_by_dns_lookup: bool = false,
        /// RocketMQ 5: how often a slave copies metadata from its master (ms).
        "syncBrokerMetadataPeriod" => sync_broker_metadata_period: i64 = 5000,
        /// RocketMQ 5: how often a master checks its sync-state set (ms).
        "checkSyncStateSetPeriod" => check_sync_state_set_period: i64 = 5000,
        /// RocketMQ 5: how often the broker refreshes the controller metadata (ms).
        "syncControllerMetadataPeriod" => sync_controller_metadata_period: i64 = 10_000,
        /// RocketMQ 5: the controller drops a broker whose heartbeat is older than this (ms).
        /// rmq-fast's default is 2 s, not RocketMQ's 10 s (failover under 3 s after a
        /// partition, issue 11); a master stops acknowledging earlier, see
        /// [`BrokerConfig::controller_fence_bound_ms`].
        "controllerHeartBeatTimeoutMills" => controller_heart_beat_timeout_mills: i64 = 2_000,
        /// RocketMQ 5: how often the broker heartbeats to the controller (ms). rmq-fast's
        /// default is 250 ms, not RocketMQ's 1 s: eight heartbeats per timeout, a fencing
        /// bound of 1.75 s (a controller leader change then rarely fences a healthy master)
        /// and a last heartbeat at most 250 ms old when a master goes silent (docs/perf.md).
        "brokerHeartbeatInterval" => broker_heartbeat_interval: i64 = 250,
        /// RocketMQ 5: election preference, lower wins (ties: epoch, then max offset first).
        "brokerElectionPriority" => broker_election_priority: i32 = i32::MAX,
        /// RocketMQ 5 (MessageStoreConfig): where the epoch history lives; None =
        /// storePathRootDir/epochFileCheckpoint (shard n > 0: the same path + `.shard-{n}`).
        "storePathEpochFile" => store_path_epoch_file: Option<String> = None,
        /// RocketMQ 5: replicas (master included) a SYNC send needs, unless
        /// `allAckInSyncStateSet`.
        "inSyncReplicas" => in_sync_replicas: i32 = 1,
        /// RocketMQ 5: the fewest sync-state-set members a master acknowledges with.
        "minInSyncReplicas" => min_in_sync_replicas: i32 = 1,
        /// RocketMQ 5: a SYNC send is acknowledged only once every sync-state-set member has
        /// it. rmq-fast recommends true (no acknowledged message lost by one failure).
        "allAckInSyncStateSet" => all_ack_in_sync_state_set: bool = false,
        /// RocketMQ 5: lower `inSyncReplicas` to the live in-sync count (not below
        /// `minInSyncReplicas`); as in RocketMQ 5.3.3 only with slave-acting-master, which
        /// rmq-fast does not have: accepted, no effect in controller mode.
        "enableAutoInSyncReplicas" => enable_auto_in_sync_replicas: bool = false,
        /// RocketMQ 5: a slave not caught up for this long leaves the sync-state set (ms).
        "haMaxTimeSlaveNotCatchup" => ha_max_time_slave_not_catchup: i64 = 15_000,
        /// DLedger is not supported: `true` is refused by `validate`.
        "enableDLegerCommitLog" => enable_dleger_commit_log: bool = false,
        /// rmq-fast extension: log directory.
        "logDir" => log_dir: PathBuf = PathBuf::from(home_path("logs/rocketmqlogs")),
        /// rmq-fast extension: number of shards (threads); 0 = number of available cores.
        "shardCount" => shard_count: u32 = 0,
        /// rmq-fast extension: after its last task a core keeps polling its io_uring this
        /// many microseconds before it sleeps (0 = sleep at once), so a request arriving
        /// soon after the last one does not wait for the CPU to wake from idle; with
        /// `idlePollProbe` only while polling is measured to serve more requests.
        "idlePollMicros" => idle_poll_micros: u32 = 100,
        /// rmq-fast extension: the cores poll (`idlePollMicros`) only while the broker's
        /// probe measures that polling serves more requests per second (requests that wait
        /// for their predecessors' replies); false polls after every task.
        "idlePollProbe" => idle_poll_probe: bool = true,
        /// rmq-fast extension: pin each core's thread to its CPU: `auto` always under
        /// SYNC_FLUSH and only while it idle-polls under ASYNC_FLUSH, `true` always, `false`
        /// never.
        "pinCores" => pin_cores: PinCores = PinCores::Auto,
        /// rmq-fast extension: a send whose queue belongs to another core's shard is
        /// answered by that core (written to the socket at once when the connection has
        /// nothing else in flight), instead of going back to the connection's core first.
        "replyFromShard" => reply_from_shard: bool = true,
        /// rmq-fast extension: ASYNC_FLUSH writes the commit log with `O_DIRECT` too, so an
        /// ack waits for the device write; false (default) writes through the page cache like
        /// RocketMQ's mmap (acks survive `kill -9`, not power loss, as in RocketMQ).
        /// SYNC_FLUSH always uses `O_DIRECT`.
        "asyncFlushDirectIo" => async_flush_direct_io: bool = false,
        /// rmq-fast extension: ASYNC_FLUSH through the page cache starts the write-back of
        /// every this many bytes written (whole pages) at once, instead of leaving all of it
        /// to the periodic flush; 0 = off. Makes nothing durable earlier.
        "asyncFlushWriteBackBytes" => async_flush_write_back_bytes: u64 = 512 * 1024,
        /// rmq-fast extension: with write-back on (`asyncFlushWriteBackBytes`), how many bytes
        /// of each shard's commit log behind its write-back point stay in the page cache;
        /// older pages are dropped once written to the device, and their memory takes the next
        /// writes (no page cache growth, no reclaim, no first touch of fresh memory). Reads of
        /// older messages come from the device. -1 (default): `accessMessageInMemoryMaxRatio`%
        /// of RAM split over the shards, the span RocketMQ counts as "in memory"; 0: keep
        /// everything (the kernel's LRU decides).
        "asyncFlushPageCacheBytes" => async_flush_page_cache_bytes: i64 = -1,
        /// rmq-fast extension: which SYNC_FLUSH commit log writes are `O_DIRECT | O_DSYNC`
        /// (durable when they complete: a group commit round is one device round trip instead
        /// of a write followed by an `fdatasync`): `auto` (default) those of a round that
        /// starts with nothing in flight, and those of loaded rounds when the shard measured
        /// that way faster; `idle` only the former; `true` all; `false` none (write, then
        /// `fdatasync`, the next round's write overlapping this round's sync).
        "syncFlushDsyncWrites" => sync_flush_dsync_writes: DsyncWrites = DsyncWrites::Auto,
        /// rmq-fast extension: SYNC_FLUSH group commit delay in microseconds: a sync round
        /// that follows a loaded round (sends arrived while its write was in flight) starts
        /// this long after that round did, unless `syncFlushGroupNoDelayCount` sends already
        /// wait; a round after an idle spell never waits; with `syncFlushGroupDelayProbe`
        /// only while the shard measures that it costs no throughput. 0 = off.
        "syncFlushGroupDelayMicros" => sync_flush_group_delay_micros: u32 = 500,
        /// rmq-fast extension: sends waiting for their flush that end a group commit delay
        /// early; 0 = only the delay ends it.
        "syncFlushGroupNoDelayCount" => sync_flush_group_no_delay_count: u32 = 32,
        /// rmq-fast extension: with a group commit delay, each shard measures delayed against
        /// undelayed rounds on its own traffic (a probe every 3 s) and delays only while that
        /// costs no throughput (a few producers that each wait for their ack lose up to half
        /// of it); `false` delays every round after a loaded one.
        "syncFlushGroupDelayProbe" => sync_flush_group_delay_probe: bool = true,
        /// rmq-fast extension: SYNC_FLUSH runs the shards' sync rounds as one cohort (each
        /// shard syncs once per epoch; an epoch ends when all its syncs have), so the
        /// producers one shard releases find the other's next round not yet started.
        "syncFlushCohort" => sync_flush_cohort: bool = true,
        /// rmq-fast extension: largest accepted remoting frame (RocketMQ's frameMaxLength).
        "maxFrameLength" => max_frame_length: u32 = 16 * 1024 * 1024,
        /// rmq-fast extension: requests of one connection handled at once (long-polling pulls
        /// waiting for a message not counted); at the limit the connection is not read.
        "connectionMaxInFlightRequests" => connection_max_in_flight_requests: u32 = 1024,
        /// rmq-fast extension: long-polling pulls of one connection waiting at once.
        "connectionMaxParkedRequests" => connection_max_parked_requests: u32 = 16384,
        /// rmq-fast extension: reply bytes of one connection queued and not yet written.
        "connectionMaxQueuedReplyBytes" => connection_max_queued_reply_bytes: u32 = 16 * 1024 * 1024,
        /// RocketMQ 5 key: 2 (PROM) serves Prometheus text on `GET /metrics` (broker/src/metrics);
        /// 0 (DISABLE) is the default; 1 and 3 warn "not implemented" and export nothing.
        "metricsExporterType" => metrics_exporter_type: MetricsExporterType =
            MetricsExporterType::Disable,
        /// RocketMQ 5 key: the address the metrics endpoint binds; None = brokerIP1's address.
        "metricsPromExporterHost" => metrics_prom_exporter_host: Option<String> = None,
        /// RocketMQ 5 key: the metrics endpoint's port.
        "metricsPromExporterPort" => metrics_prom_exporter_port: u16 = 5557,
        /// RocketMQ 5 key: extra labels on every metric, `name:value,name:value`.
        "metricsLabel" => metrics_label: MetricsLabels = MetricsLabels::default(),
    }
    extra {
        /// Which spelling set the commit log size (None = default used).
        commit_log_size_key_used: Option<String> = None,
        /// Which spelling set the consume queue size (None = default used).
        consume_queue_size_key_used: Option<String> = None,
        /// Keys accepted without effect, with the values given (kept for GET_BROKER_CONFIG).
        ignored_keys: BTreeMap<String, String> = BTreeMap::new(),
    }
}

impl BrokerConfig {
    /// Builds the config from an optional properties file, then `overrides` (key, value) pairs
    /// applied last (e.g. -n → namesrvAddr). Unknown keys → warnings (not errors). Bad values →
    /// Err naming the key and the file. Runs `validate()`.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = Vec::new();
        let mut config = BrokerConfig::default();
        let mut source_name = COMMAND_LINE.to_owned();
        if let Some(path) = file {
            let (props, name) = read_properties_file(path)?;
            config.apply_properties(&props, &name, &mut warnings)?;
            source_name = name;
        }
        config.apply_properties(
            &Properties::from_pairs(overrides),
            COMMAND_LINE,
            &mut warnings,
        )?;
        config.finish(&source_name, &mut warnings);
        config.validate(&source_name)?;
        Ok((config, warnings))
    }

    /// Defaults, then `props`, then the RocketMQ startup fix-ups. Does not run `validate()`.
    pub fn from_properties(
        props: &Properties,
        source_name: &str,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut config = BrokerConfig::default();
        config.apply_properties(props, source_name, warnings)?;
        config.finish(source_name, warnings);
        Ok(config)
    }

    /// Applies `props` on top of the current values (also usable for UPDATE_BROKER_CONFIG).
    /// When both spellings of a file size key are present, the `mapped…` spelling wins.
    pub fn apply_properties(
        &mut self,
        props: &Properties,
        source_name: &str,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        let skip_old = [
            both_spellings(
                props,
                COMMIT_LOG_SIZE_KEY_OLD,
                COMMIT_LOG_SIZE_KEY,
                source_name,
                warnings,
            ),
            both_spellings(
                props,
                CONSUME_QUEUE_SIZE_KEY_OLD,
                CONSUME_QUEUE_SIZE_KEY,
                source_name,
                warnings,
            ),
        ];
        let mut known: Vec<&str> = BrokerConfig::KEYS.to_vec();
        known.extend([COMMIT_LOG_SIZE_KEY_OLD, CONSUME_QUEUE_SIZE_KEY_OLD]);
        let keys = KeySpace {
            known: &known,
            ignored: &[NETTY_SERVER_IGNORED, BROKER_IGNORED],
        };
        let mut ignored = BTreeMap::new();
        let result = apply_entries(props, source_name, &keys, warnings, &mut ignored, |entry| {
            self.set_entry(entry, skip_old)
        });
        self.ignored_keys.extend(ignored);
        result
    }

    /// Sets one entry; handles the two spellings of the file size keys.
    fn set_entry(
        &mut self,
        entry: &PropertyEntry,
        skip_old: [bool; 2],
    ) -> Option<Result<(), String>> {
        let key = entry.key.as_str();
        let (slot, used) = match key {
            COMMIT_LOG_SIZE_KEY_OLD | COMMIT_LOG_SIZE_KEY => {
                if key == COMMIT_LOG_SIZE_KEY_OLD && skip_old[0] {
                    return Some(Ok(()));
                }
                (
                    &mut self.mapped_file_size_commit_log,
                    &mut self.commit_log_size_key_used,
                )
            }
            CONSUME_QUEUE_SIZE_KEY_OLD | CONSUME_QUEUE_SIZE_KEY => {
                if key == CONSUME_QUEUE_SIZE_KEY_OLD && skip_old[1] {
                    return Some(Ok(()));
                }
                (
                    &mut self.mapped_file_size_consume_queue,
                    &mut self.consume_queue_size_key_used,
                )
            }
            _ => return self.set_key(key, &entry.value),
        };
        Some(u64::parse_value(&entry.value).map(|size| {
            *slot = size;
            *used = Some(key.to_owned());
        }))
    }

    /// What BrokerStartup does after loading: masters get brokerId 0. Also warns where RocketMQ
    /// would silently ignore a key (derived store paths, haListenPort).
    fn finish(&mut self, source_name: &str, warnings: &mut Vec<ConfigWarning>) {
        if self.broker_role.is_master() && self.broker_id != 0 && !self.enable_controller_mode {
            let message = format!(
                "brokerId {} with brokerRole {}: a master's brokerId is always 0 \
                 (as in RocketMQ), using 0",
                self.broker_id, self.broker_role
            );
            warnings.push(ConfigWarning::new(source_name, "brokerId", message));
            self.broker_id = 0;
        }
        if let Some(port) = self.ha_listen_port {
            let rocketmq_port = u32::from(self.listen_port) + 1;
            if u32::from(port) != rocketmq_port {
                let message = format!(
                    "{port} is used; note RocketMQ 4.9.8 ignores haListenPort \
                     and uses listenPort+1 = {rocketmq_port}"
                );
                warnings.push(ConfigWarning::new(source_name, "haListenPort", message));
            }
        }
        self.warn_derived_paths(source_name, warnings);
        if matches!(
            self.metrics_exporter_type,
            MetricsExporterType::OtlpGrpc | MetricsExporterType::Log
        ) {
            let message = format!(
                "{}: feature not implemented, no metrics are exported \
                 (2 = PROM serves GET /metrics)",
                self.metrics_exporter_type
            );
            warnings.push(ConfigWarning::new(
                source_name,
                "metricsExporterType",
                message,
            ));
        }
    }

    fn warn_derived_paths(&self, source_name: &str, warnings: &mut Vec<ConfigWarning>) {
        let derived = [
            (
                "storePathConsumeQueue",
                &self.store_path_consume_queue,
                self.store_path_consume_queue(),
            ),
            (
                "storePathIndex",
                &self.store_path_index,
                self.store_path_index(),
            ),
            (
                "storeCheckpoint",
                &self.store_checkpoint,
                self.store_path_checkpoint(),
            ),
            ("abortFile", &self.abort_file, self.store_path_abort_file()),
        ];
        for (key, given, used) in derived {
            if let Some(given) = given
                && Path::new(given) != used
            {
                let message = format!(
                    "\"{given}\" is ignored: RocketMQ derives this path from storePathRootDir, \
                     and so does rmq-fast, using {}",
                    used.display()
                );
                warnings.push(ConfigWarning::new(source_name, key, message));
            }
        }
    }

    /// namesrvAddr split on ';' (and ','), trimmed, empty removed; falls back to the env
    /// variable NAMESRV_ADDR when the key is unset.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        let raw = self
            .namesrv_addr
            .clone()
            .or_else(|| env_nonempty("NAMESRV_ADDR"))
            .unwrap_or_default();
        split_addrs(&raw)
    }

    /// haListenPort if set, else listenPort + 1 (RocketMQ's rule). Validation keeps it in range.
    pub fn ha_listen_port(&self) -> u16 {
        self.ha_listen_port
            .unwrap_or_else(|| self.listen_port.wrapping_add(1))
    }

    /// All keys with current values as "key=value\n" lines, for GET_BROKER_CONFIG.
    pub fn to_properties_text(&self) -> String {
        let mut out = String::new();
        // Like Java, show the effective HA port rather than omitting it.
        let mut shown = self.clone();
        shown.ha_listen_port = Some(self.ha_listen_port());
        shown.render_keys(&mut out);
        for (key, value) in &self.ignored_keys {
            out.push_str(&format!("{key}={}\n", super::value::escape_value(value)));
        }
        out
    }

    /// The commit log directory: storePathCommitLog, else storePathRootDir/commitlog.
    pub fn store_path_commit_log(&self) -> PathBuf {
        match &self.store_path_commit_log {
            Some(path) => PathBuf::from(path),
            None => self.store_root().join("commitlog"),
        }
    }

    /// storePathRootDir/consumequeue.
    pub fn store_path_consume_queue(&self) -> PathBuf {
        self.store_root().join("consumequeue")
    }

    /// storePathRootDir/index.
    pub fn store_path_index(&self) -> PathBuf {
        self.store_root().join("index")
    }

    /// `storePathEpochFile`, else storePathRootDir/epochFileCheckpoint (controller mode).
    pub fn store_path_epoch_file(&self) -> PathBuf {
        self.store_path_epoch_file.as_ref().map_or_else(
            || self.store_root().join("epochFileCheckpoint"),
            PathBuf::from,
        )
    }

    /// The controllers of `controllerAddr` (`;`-separated, blanks dropped).
    pub fn controller_addrs(&self) -> Vec<String> {
        self.controller_addr
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// How long a controller-mode master keeps acknowledging without an answered heartbeat,
    /// counted from the sending of the last answered one: `controllerHeartBeatTimeoutMills`
    /// minus one `brokerHeartbeatInterval`. It stays below the controller's detection bound
    /// (the timeout counted from the controller's receipt of that heartbeat, always later
    /// than its sending), so an old master stops acknowledging before a new one can be
    /// elected; the margin of one interval absorbs the fencing check's period and clock
    /// skew between controller members (a new leader judges stamps of the old one).
    pub fn controller_fence_bound_ms(&self) -> u64 {
        let timeout = self.controller_heart_beat_timeout_mills.max(1) as u64;
        let interval = self.broker_heartbeat_interval.max(0) as u64;
        let bound = timeout.saturating_sub(interval).max(timeout / 2);
        assert!(
            bound < timeout,
            "fencing bound {bound} ms must stay below the controller's {timeout} ms"
        );
        bound
    }

    /// storePathRootDir/checkpoint.
    pub fn store_path_checkpoint(&self) -> PathBuf {
        self.store_root().join("checkpoint")
    }

    /// storePathRootDir/abort (present at startup = the last shutdown was not clean).
    pub fn store_path_abort_file(&self) -> PathBuf {
        self.store_root().join("abort")
    }

    /// storePathRootDir/lock (single-process guard).
    pub fn store_path_lock_file(&self) -> PathBuf {
        self.store_root().join("lock")
    }

    /// storePathRootDir/config (topics.json, consumerOffset.json, ...).
    pub fn store_path_config(&self) -> PathBuf {
        self.store_root().join("config")
    }

    fn store_root(&self) -> PathBuf {
        PathBuf::from(&self.store_path_root_dir)
    }

    /// shardCount, or the number of available cores when it is 0.
    pub fn effective_shard_count(&self) -> u32 {
        if self.shard_count != 0 {
            return self.shard_count;
        }
        std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
    }
}

/// Warns when a file sets both spellings of a size key; returns true if the old one is skipped.
fn both_spellings(
    props: &Properties,
    old: &str,
    new: &str,
    source_name: &str,
    warnings: &mut Vec<ConfigWarning>,
) -> bool {
    let both = props.get(old).is_some() && props.get(new).is_some();
    if both {
        let message = format!(
            "both `{old}` and `{new}` are set; `{new}` wins (RocketMQ 4.5.2+ reads only `{new}`)"
        );
        warnings.push(ConfigWarning::new(source_name, old, message));
    }
    both
}

/// Splits an address list on ';' and ',', trimming and dropping empty parts.
pub(crate) fn split_addrs(raw: &str) -> Vec<String> {
    raw.split([';', ','])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}
