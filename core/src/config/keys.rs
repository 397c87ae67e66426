//! Keys that RocketMQ 4.9.8 reads but rmq-fast accepts without acting on them.
//!
//! Accepting them (instead of warning "unknown key") lets users run RocketMQ's own files
//! unchanged. Each key says why it has no effect; a key for a feature we lack warns when the
//! file switches the feature on, because silently ignoring that would change behaviour.

/// Why an accepted key has no effect in rmq-fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// A Java thread pool, queue or lock: rmq-fast runs one thread per core with no pools.
    ThreadPerCore,
    /// Netty or JVM tuning (buffers, allocators, semaphores) with no counterpart here.
    JvmTuning,
    /// A RocketMQ feature that rmq-fast does not implement.
    NotImplemented,
    /// Not read by RocketMQ 4.9.8 either (older releases or a common mistake).
    Obsolete,
}

impl IgnoreReason {
    /// Short text for warnings and docs/config.md.
    pub fn describe(self) -> &'static str {
        match self {
            IgnoreReason::ThreadPerCore => "accepted, no effect: thread-per-core",
            IgnoreReason::JvmTuning => "accepted, no effect: Netty/JVM tuning",
            IgnoreReason::NotImplemented => "accepted, no effect: feature not implemented",
            IgnoreReason::Obsolete => "accepted, no effect: not read by RocketMQ 4.9.8 either",
        }
    }
}

/// A key accepted without effect. `off`: the value meaning "feature off"; any other value warns.
#[derive(Debug, Clone, Copy)]
pub struct IgnoredKey {
    /// The Java key.
    pub key: &'static str,
    /// Why it has no effect.
    pub reason: IgnoreReason,
    /// For features: the value that keeps them off (compared case-insensitively).
    pub off: Option<&'static str>,
}

const fn pools(key: &'static str) -> IgnoredKey {
    IgnoredKey {
        key,
        reason: IgnoreReason::ThreadPerCore,
        off: None,
    }
}
const fn tuning(key: &'static str) -> IgnoredKey {
    IgnoredKey {
        key,
        reason: IgnoreReason::JvmTuning,
        off: None,
    }
}
const fn missing(key: &'static str, off: Option<&'static str>) -> IgnoredKey {
    IgnoredKey {
        key,
        reason: IgnoreReason::NotImplemented,
        off,
    }
}
const fn obsolete(key: &'static str) -> IgnoredKey {
    IgnoredKey {
        key,
        reason: IgnoreReason::Obsolete,
        off: None,
    }
}

/// NettyServerConfig keys, read by both the broker and the name server.
pub const NETTY_SERVER_IGNORED: &[IgnoredKey] = &[
    pools("serverWorkerThreads"),
    pools("serverCallbackExecutorThreads"),
    pools("serverSelectorThreads"),
    tuning("serverOnewaySemaphoreValue"),
    tuning("serverAsyncSemaphoreValue"),
    tuning("serverSocketSndBufSize"),
    tuning("serverSocketRcvBufSize"),
    tuning("writeBufferHighWaterMark"),
    tuning("writeBufferLowWaterMark"),
    tuning("serverSocketBacklog"),
    tuning("serverPooledByteBufAllocatorEnable"),
    tuning("useEpollNativeSelector"),
];

/// BrokerConfig, NettyClientConfig and MessageStoreConfig keys the broker accepts without effect.
pub const BROKER_IGNORED: &[IgnoredKey] = &[
    pools("sendMessageThreadPoolNums"),
    pools("putMessageFutureThreadPoolNums"),
    pools("pullMessageThreadPoolNums"),
    pools("processReplyMessageThreadPoolNums"),
    pools("queryMessageThreadPoolNums"),
    pools("adminBrokerThreadPoolNums"),
    pools("clientManageThreadPoolNums"),
    pools("consumerManageThreadPoolNums"),
    pools("heartbeatThreadPoolNums"),
    pools("endTransactionThreadPoolNums"),
    pools("sendThreadPoolQueueCapacity"),
    pools("putThreadPoolQueueCapacity"),
    pools("pullThreadPoolQueueCapacity"),
    pools("replyThreadPoolQueueCapacity"),
    pools("queryThreadPoolQueueCapacity"),
    pools("clientManagerThreadPoolQueueCapacity"),
    pools("consumerManagerThreadPoolQueueCapacity"),
    pools("heartbeatThreadPoolQueueCapacity"),
    pools("endTransactionPoolQueueCapacity"),
    pools("useReentrantLockWhenPutMessage"),
    pools("brokerFastFailureEnable"),
    pools("waitTimeMillsInSendQueue"),
    pools("waitTimeMillsInPullQueue"),
    pools("waitTimeMillsInHeartbeatQueue"),
    pools("waitTimeMillsInTransactionQueue"),
    pools("osPageCacheBusyTimeOutMills"),
    pools("debugLockEnable"),
    pools("clientWorkerThreads"),
    pools("clientCallbackExecutorThreads"),
    tuning("clientOnewaySemaphoreValue"),
    tuning("clientAsyncSemaphoreValue"),
    tuning("connectTimeoutMillis"),
    tuning("channelNotActiveInterval"),
    tuning("clientChannelMaxIdleTimeSeconds"),
    tuning("clientSocketSndBufSize"),
    tuning("clientSocketRcvBufSize"),
    tuning("clientPooledByteBufAllocatorEnable"),
    tuning("clientCloseSocketIfTimeout"),
    tuning("transferMsgByHeap"),
    tuning("warmMapedFileEnable"),
    tuning("flushLeastPagesWhenWarmMapedFile"),
    tuning("diskFallRecorded"),
    tuning("fastFailIfNoBufferInStorePool"),
    tuning("highSpeedMode"),
    missing("useTLS", Some("false")),
    missing("messageStorePlugIn", Some("")),
    missing("fetchNamesrvAddrByAddressServer", Some("false")),
    missing("rmqAddressServerDomain", None),
    missing("rmqAddressServerSubGroup", None),
    missing("filterServerNums", Some("0")),
    missing("storeReplyMessageEnable", None),
    missing("disableConsumeIfConsumerReadSlowly", Some("false")),
    missing("consumerFallbehindThreshold", None),
    missing("startAcceptSendRequestTimeStamp", None),
    missing("enableCalcFilterBitMap", Some("false")),
    missing("expectConsumerNumUseFilter", None),
    missing("maxErrorRateOfBloomFilter", None),
    missing("filterDataCleanTimeSpan", None),
    missing("filterSupportRetry", None),
    missing("commercialEnable", None),
    missing("commercialTimerCount", None),
    missing("commercialTransCount", None),
    missing("commercialBigCount", None),
    missing("commercialBaseCount", None),
    missing("maxDelayTime", None),
    missing("regionId", None),
    missing("traceOn", None),
    missing("enableDetailStat", None),
    missing("autoDeleteUnusedStats", None),
    missing("isolateLogEnable", None),
    missing("configBlackList", None),
    missing("flushConsumerOffsetHistoryInterval", None),
    missing("storePathDLedgerCommitLog", None),
    missing("readOnlyCommitLogStorePaths", Some("")),
    missing("enableConsumeQueueExt", Some("false")),
    missing("mappedFileSizeConsumeQueueExt", None),
    missing("bitMapLengthConsumeQueueExt", None),
    missing("putMsgIndexHightWater", None),
    missing("offsetCheckInSlave", None),
    missing("duplicationEnable", Some("false")),
    missing("dLegerGroup", None),
    missing("dLegerPeers", None),
    missing("dLegerSelfId", None),
    missing("preferredLeaderId", None),
    missing("isEnableBatchPush", None),
    missing("enableScheduleMessageStats", None),
    missing("enableLmq", Some("false")),
    missing("enableMultiDispatch", Some("false")),
    missing("maxLmqConsumeQueueNum", None),
    missing("enableScheduleAsyncDeliver", None),
    missing("scheduleAsyncDeliverMaxPendingLimit", None),
    missing("scheduleAsyncDeliverMaxResendNum2Blocked", None),
    obsolete("checkTransactionMessageEnable"),
    obsolete("brokerConfigPath"),
];

/// NamesrvConfig keys the name server accepts without effect.
pub const NAMESRV_IGNORED: &[IgnoredKey] = &[
    missing("configBlackList", None),
    pools("clientRequestThreadPoolNums"),
    pools("defaultThreadPoolNums"),
    pools("clientRequestThreadPoolQueueCapacity"),
    pools("defaultThreadPoolQueueCapacity"),
];

/// RocketMQ 5.3 `ControllerConfig` keys accepted without effect by `rmq-fast controller`.
pub const CONTROLLER_IGNORED: &[IgnoredKey] = &[
    // rmq-fast's controller is always raft (openraft); DLedger's and jRaft's own settings
    // have no counterpart.
    missing("controllerType", Some("DLedger")),
    pools("controllerThreadPoolNums"),
    pools("controllerRequestThreadPoolQueueCapacity"),
    tuning("mappedFileSize"),
    tuning("electMasterMaxRetryCount"),
    tuning("isProcessReadEvent"),
    // One leader scan (scanNotActiveBrokerInterval) finds both dead brokers and dead masters.
    tuning("scanInactiveMasterInterval"),
    missing("metricsExporterType", Some("DISABLE")),
    missing("metricsGrpcExporterTarget", None),
    missing("metricsGrpcExporterHeader", None),
    missing("metricGrpcExporterTimeOutInMills", None),
    missing("metricGrpcExporterIntervalInMills", None),
    missing("metricLoggingExporterIntervalInMills", None),
    missing("metricsPromExporterPort", None),
    missing("metricsPromExporterHost", None),
    missing("metricsLabel", None),
    missing("metricsInDelta", None),
    missing("configBlackList", None),
];

/// Finds `key` in the given tables.
pub fn find_ignored(tables: &[&[IgnoredKey]], key: &str) -> Option<IgnoredKey> {
    tables
        .iter()
        .flat_map(|t| t.iter())
        .find(|k| k.key == key)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tables_have_no_duplicates() {
        let mut seen = HashSet::new();
        for key in NETTY_SERVER_IGNORED.iter().chain(BROKER_IGNORED) {
            assert!(seen.insert(key.key), "duplicate ignored key {}", key.key);
        }
    }
}
