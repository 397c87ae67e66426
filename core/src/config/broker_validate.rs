//! `BrokerConfig::validate` and the parsers for the structured string keys (`deleteWhen`,
//! `messageDelayLevel`, addresses).
//!
//! RocketMQ clamps a few values silently (diskMaxUsedSpaceRatio to 10..=95) and misbehaves on
//! others at runtime (a bad delay level makes the schedule service fail to start). We refuse
//! them at startup instead, naming the key, the bounds and why.

use super::broker::{
    BrokerConfig, COMMIT_LOG_SIZE_KEY, COMMIT_LOG_SIZE_KEY_OLD, CONSUME_QUEUE_SIZE_KEY,
    CONSUME_QUEUE_SIZE_KEY_OLD, split_addrs,
};
use super::error::ConfigError;

/// Commit log files are written with O_DIRECT, which needs 4 KiB alignment.
pub const COMMIT_LOG_ALIGNMENT: u64 = 4096;
/// Smallest commit log file: 16 aligned pages.
pub const COMMIT_LOG_SIZE_MIN: u64 = COMMIT_LOG_ALIGNMENT * 16;
/// Bytes per consume queue entry (offset i64, size i32, tags code i64).
pub const CONSUME_QUEUE_ENTRY_SIZE: u64 = 20;
/// Bytes an END_FILE blank record needs at the end of a commit log file.
const END_FILE_MIN_BLANK_LENGTH: u64 = 8;
/// Largest `idlePollMicros`: 10 ms of polling per wake-up is already ~all of a core at
/// 100 timer ticks a second; beyond it the key would only keep an idle broker busy.
pub const MAX_IDLE_POLL_MICROS: u32 = 10_000;

const _: () = assert!(COMMIT_LOG_SIZE_MIN.is_multiple_of(COMMIT_LOG_ALIGNMENT));

/// Parses `deleteWhen`: hours 0-23 separated by ';' (RocketMQ's `UtilAll.isItTimeToDo`).
pub fn parse_delete_when(raw: &str) -> Result<Vec<u8>, String> {
    let hours: Result<Vec<u8>, String> = raw
        .split(';')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| match h.parse::<u8>() {
            Ok(hour) if hour <= 23 => Ok(hour),
            _ => Err(format!(
                "invalid hour \"{h}\" in \"{raw}\"; expected hours 0-23 separated by ';', \
                 e.g. 04 or 01;13"
            )),
        })
        .collect();
    let hours = hours?;
    if hours.is_empty() {
        return Err("expected hours 0-23 separated by ';', e.g. 04, got an empty value".to_owned());
    }
    Ok(hours)
}

/// Parses `messageDelayLevel`: blank-separated durations with unit s, m, h or d, e.g. "1s 5m 2h".
/// Returns the delays in milliseconds; level n is entry n-1.
pub fn parse_delay_levels(raw: &str) -> Result<Vec<u64>, String> {
    let mut levels = Vec::new();
    for token in raw.split_whitespace() {
        let unit_ms: u64 = match token.chars().last() {
            Some('s') => 1000,
            Some('m') => 60 * 1000,
            Some('h') => 60 * 60 * 1000,
            Some('d') => 24 * 60 * 60 * 1000,
            _ => {
                return Err(format!(
                    "invalid level \"{token}\": expected a number with unit s, m, h or d, e.g. 30s"
                ));
            }
        };
        let number = &token[..token.len() - 1];
        let delay = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms));
        match delay {
            Some(ms) if ms > 0 => levels.push(ms),
            _ => {
                return Err(format!(
                    "invalid level \"{token}\": expected a positive number before the unit"
                ));
            }
        }
    }
    if levels.is_empty() {
        return Err("expected at least one level, e.g. \"1s 5s 10s 30s 1m\"".to_owned());
    }
    Ok(levels)
}

/// Checks "host:port" (the port after the last ':'), as RocketMQ's `string2SocketAddress` needs.
pub fn check_host_port(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!(
            "address \"{addr}\" has no port; expected host:port, e.g. 127.0.0.1:9876"
        ));
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 && !host.is_empty() => Ok(()),
        _ => Err(format!(
            "address \"{addr}\" is not host:port with a port in 1..=65535"
        )),
    }
}

/// `[(key, value as i64), ...]` from `"key" => value` pairs, one per line.
macro_rules! keyed {
    ($($key:literal => $value:expr),* $(,)?) => { [$(($key, i64::from($value))),*] };
}

impl BrokerConfig {
    /// Checks bounds and relations between keys. Errors name the key and `source_name`.
    pub fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        self.check_identity()
            .and_then(|()| self.check_sizes())
            .and_then(|()| self.check_store())
            .and_then(|()| self.check_positive())
            .and_then(|()| self.check_text_keys())
            .map_err(|(key, message)| ConfigError::new(source_name, key, message))
    }

    /// The delays of `messageDelayLevel` in milliseconds (level n = entry n-1).
    pub fn delay_levels_ms(&self) -> Result<Vec<u64>, String> {
        parse_delay_levels(&self.message_delay_level)
    }

    /// The hours of `deleteWhen`.
    pub fn delete_when_hours(&self) -> Result<Vec<u8>, String> {
        parse_delete_when(&self.delete_when)
    }

    fn check_identity(&self) -> Result<(), (&'static str, String)> {
        if self.listen_port == 0 {
            return Err(("listenPort", "port must be in 1..=65535, got 0".to_owned()));
        }
        let ha_port = u32::from(self.listen_port) + 1;
        match self.ha_listen_port {
            None if ha_port > u32::from(u16::MAX) => {
                return Err((
                    "listenPort",
                    "65535 leaves no room for the HA port (listenPort+1); set haListenPort"
                        .to_owned(),
                ));
            }
            Some(0) => {
                return Err((
                    "haListenPort",
                    "port must be in 1..=65535, got 0".to_owned(),
                ));
            }
            Some(p) if p == self.listen_port => {
                return Err((
                    "haListenPort",
                    format!("{p} is also listenPort; the HA port must differ"),
                ));
            }
            _ => {}
        }
        if self.broker_name.trim().is_empty() {
            return Err(("brokerName", "must not be empty".to_owned()));
        }
        if self.broker_cluster_name.trim().is_empty() {
            return Err(("brokerClusterName", "must not be empty".to_owned()));
        }
        if self.enable_controller_mode {
            // brokerId/brokerRole are the controller's to give (RocketMQ 5).
            if self.controller_addrs().is_empty() {
                return Err((
                    "controllerAddr",
                    "enableControllerMode=true needs controllerAddr host:port;host:port;...".into(),
                ));
            }
            if !self.fetch_controller_addr_by_dns_lookup {
                for addr in self.controller_addrs() {
                    check_host_port(&addr).map_err(|m| ("controllerAddr", m))?;
                }
            }
            for (key, value) in [
                ("syncBrokerMetadataPeriod", self.sync_broker_metadata_period),
                ("checkSyncStateSetPeriod", self.check_sync_state_set_period),
                (
                    "syncControllerMetadataPeriod",
                    self.sync_controller_metadata_period,
                ),
                (
                    "controllerHeartBeatTimeoutMills",
                    self.controller_heart_beat_timeout_mills,
                ),
                ("brokerHeartbeatInterval", self.broker_heartbeat_interval),
                (
                    "haMaxTimeSlaveNotCatchup",
                    self.ha_max_time_slave_not_catchup,
                ),
            ] {
                if value <= 0 {
                    return Err((key, format!("must be > 0 ms, got {value}")));
                }
            }
            // At least two heartbeats per timeout, and room for the fencing margin (one
            // interval) below it.
            if self.controller_heart_beat_timeout_mills < 2 * self.broker_heartbeat_interval {
                return Err((
                    "controllerHeartBeatTimeoutMills",
                    format!(
                        "must be >= 2 x brokerHeartbeatInterval ({} ms), got {}",
                        self.broker_heartbeat_interval, self.controller_heart_beat_timeout_mills
                    ),
                ));
            }
            if self.in_sync_replicas < 1 || self.min_in_sync_replicas < 1 {
                return Err((
                    "minInSyncReplicas",
                    "inSyncReplicas and minInSyncReplicas must be >= 1".into(),
                ));
            }
        } else if self.broker_role.is_master() && self.broker_id != 0 {
            return Err((
                "brokerId",
                format!("a master's brokerId must be 0, got {}", self.broker_id),
            ));
        }
        if !self.enable_controller_mode && !self.broker_role.is_master() && self.broker_id <= 0 {
            return Err((
                "brokerId",
                format!("a SLAVE's brokerId must be > 0, got {}", self.broker_id),
            ));
        }
        if !(0..=15).contains(&self.broker_permission) {
            return Err((
                "brokerPermission",
                format!(
                    "expected PermName bits 0..=15 (6 = read+write), got {}",
                    self.broker_permission
                ),
            ));
        }
        if self.enable_dleger_commit_log {
            return Err((
                "enableDLegerCommitLog",
                "DLedger mode is not supported by rmq-fast; use master/slave (brokerRole) instead"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    fn check_sizes(&self) -> Result<(), (&'static str, String)> {
        let commit_log_key = match self.commit_log_size_key_used.as_deref() {
            Some(COMMIT_LOG_SIZE_KEY_OLD) => COMMIT_LOG_SIZE_KEY_OLD,
            _ => COMMIT_LOG_SIZE_KEY,
        };
        let commit_log = self.mapped_file_size_commit_log;
        if commit_log < COMMIT_LOG_SIZE_MIN || !commit_log.is_multiple_of(COMMIT_LOG_ALIGNMENT) {
            let message = format!(
                "{commit_log} must be a multiple of {COMMIT_LOG_ALIGNMENT} and at least \
                 {COMMIT_LOG_SIZE_MIN} (rmq-fast writes the commit log with O_DIRECT, which \
                 needs 4 KiB alignment); default 1073741824"
            );
            return Err((commit_log_key, message));
        }
        let queue_key = match self.consume_queue_size_key_used.as_deref() {
            Some(CONSUME_QUEUE_SIZE_KEY_OLD) => CONSUME_QUEUE_SIZE_KEY_OLD,
            _ => CONSUME_QUEUE_SIZE_KEY,
        };
        let queue = self.mapped_file_size_consume_queue;
        if queue == 0 || !queue.is_multiple_of(CONSUME_QUEUE_ENTRY_SIZE) {
            let message = format!(
                "{queue} must be a positive multiple of {CONSUME_QUEUE_ENTRY_SIZE} \
                 (bytes per entry); default 6000000"
            );
            return Err((queue_key, message));
        }
        if !(10..=95).contains(&self.disk_max_used_space_ratio) {
            let message = format!(
                "expected a percentage in 10..=95 (RocketMQ clamps to this range), got {}",
                self.disk_max_used_space_ratio
            );
            return Err(("diskMaxUsedSpaceRatio", message));
        }
        if self.idle_poll_micros > MAX_IDLE_POLL_MICROS {
            let message = format!(
                "expected at most {MAX_IDLE_POLL_MICROS} (µs a core polls before it sleeps; \
                 more keeps an idle broker busy), got {}",
                self.idle_poll_micros
            );
            return Err(("idlePollMicros", message));
        }
        self.check_message_sizes(commit_log)
    }

    fn check_message_sizes(&self, commit_log: u64) -> Result<(), (&'static str, String)> {
        let max_message = u64::try_from(self.max_message_size).unwrap_or(0);
        if max_message == 0 || max_message + END_FILE_MIN_BLANK_LENGTH > commit_log {
            let message = format!(
                "{} must be positive and fit in one commit log file ({commit_log} bytes)",
                self.max_message_size
            );
            return Err(("maxMessageSize", message));
        }
        if u64::from(self.max_frame_length) <= max_message {
            let message = format!(
                "{} must exceed maxMessageSize ({max_message}): \
                 a frame carries a header plus the message",
                self.max_frame_length
            );
            return Err(("maxFrameLength", message));
        }
        Ok(())
    }

    fn check_store(&self) -> Result<(), (&'static str, String)> {
        if !(0..=100).contains(&self.access_message_in_memory_max_ratio) {
            return Err((
                "accessMessageInMemoryMaxRatio",
                format!(
                    "expected a percentage 0..=100, got {}",
                    self.access_message_in_memory_max_ratio
                ),
            ));
        }
        if self.async_flush_page_cache_bytes < -1 {
            return Err((
                "asyncFlushPageCacheBytes",
                format!(
                    "expected bytes >= 0, or -1 for the default, got {}",
                    self.async_flush_page_cache_bytes
                ),
            ));
        }
        if self.file_reserved_time < 0 {
            return Err((
                "fileReservedTime",
                format!("expected hours >= 0, got {}", self.file_reserved_time),
            ));
        }
        if self.store_path_root_dir.trim().is_empty() {
            return Err(("storePathRootDir", "must not be empty".to_owned()));
        }
        Ok(())
    }

    /// Intervals, timeouts, counts and sizes that must be > 0 (0 or less would spin or stall).
    fn check_positive(&self) -> Result<(), (&'static str, String)> {
        let values = keyed![
            "defaultTopicQueueNums" => self.default_topic_queue_nums,
            "shortPollingTimeMills" => self.short_polling_time_mills,
            "registerNameServerPeriod" => self.register_name_server_period,
            "registerBrokerTimeoutMills" => self.register_broker_timeout_mills,
            "splitRegistrationSize" => self.split_registration_size,
            "flushConsumerOffsetInterval" => self.flush_consumer_offset_interval,
            "flushDelayOffsetInterval" => self.flush_delay_offset_interval,
            "transactionTimeOut" => self.transaction_time_out,
            "transactionCheckMax" => self.transaction_check_max,
            "transactionCheckInterval" => self.transaction_check_interval,
            "flushIntervalCommitLog" => self.flush_interval_commit_log,
            "flushCommitLogThoroughInterval" => self.flush_commit_log_thorough_interval,
            "flushIntervalConsumeQueue" => self.flush_interval_consume_queue,
            "flushConsumeQueueThoroughInterval" => self.flush_consume_queue_thorough_interval,
            "syncFlushTimeout" => self.sync_flush_timeout,
            "commitIntervalCommitLog" => self.commit_interval_commit_log,
            "cleanResourceInterval" => self.clean_resource_interval,
            "maxHashSlotNum" => self.max_hash_slot_num,
            "maxIndexNum" => self.max_index_num,
            "maxMsgsNumBatch" => self.max_msgs_num_batch,
            "defaultQueryMaxNum" => self.default_query_max_num,
            "maxTransferBytesOnMessageInMemory" => self.max_transfer_bytes_on_message_in_memory,
            "connectionMaxInFlightRequests" => self.connection_max_in_flight_requests,
            "connectionMaxParkedRequests" => self.connection_max_parked_requests,
            "connectionMaxQueuedReplyBytes" => self.connection_max_queued_reply_bytes,
            "maxTransferCountOnMessageInMemory" => self.max_transfer_count_on_message_in_memory,
            "maxTransferBytesOnMessageInDisk" => self.max_transfer_bytes_on_message_in_disk,
            "maxTransferCountOnMessageInDisk" => self.max_transfer_count_on_message_in_disk,
            "haSendHeartbeatInterval" => self.ha_send_heartbeat_interval,
            "haHousekeepingInterval" => self.ha_housekeeping_interval,
            "haTransferBatchSize" => self.ha_transfer_batch_size,
            "slaveTimeout" => self.slave_timeout,
        ];
        for (key, value) in values {
            if value <= 0 {
                return Err((key, format!("must be > 0, got {value}")));
            }
        }
        let non_negative = keyed![
            "flushCommitLogLeastPages" => self.flush_commit_log_least_pages,
            "flushConsumeQueueLeastPages" => self.flush_consume_queue_least_pages,
            "commitCommitLogLeastPages" => self.commit_commit_log_least_pages,
            "haSlaveFallbehindMax" => self.ha_slave_fallbehind_max,
        ];
        match non_negative.into_iter().find(|&(_, value)| value < 0) {
            Some((key, value)) => Err((key, format!("must be >= 0, got {value}"))),
            None => Ok(()),
        }
    }

    fn check_text_keys(&self) -> Result<(), (&'static str, String)> {
        self.delete_when_hours().map_err(|m| ("deleteWhen", m))?;
        self.delay_levels_ms()
            .map_err(|m| ("messageDelayLevel", m))?;
        if let Some(raw) = &self.namesrv_addr {
            for addr in split_addrs(raw) {
                check_host_port(&addr).map_err(|m| {
                    (
                        "namesrvAddr",
                        format!("{m}; expected \"host:port;host:port\""),
                    )
                })?;
            }
        }
        if let Some(addr) = &self.ha_master_address {
            check_host_port(addr.trim()).map_err(|m| ("haMasterAddress", m))?;
        }
        if self.msg_trace_topic_name.trim().is_empty() {
            return Err(("msgTraceTopicName", "must not be empty".to_owned()));
        }
        Ok(())
    }
}
