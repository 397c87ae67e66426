//! The keys of RocketMQ 4.9.8's `BrokerConfig`, `MessageStoreConfig`, `NettyServerConfig`
//! and `NettyClientConfig` that GET_BROKER_CONFIG shows beside ours, so that tools reading
//! them (mqadmin `getBrokerConfig`, `exportConfigs`, dashboards) find every key Apache's
//! broker answers. These keys have no meaning here (thread pools, Netty buffers, features
//! we do not have); they show RocketMQ's defaults (the processor-count ones computed as
//! RocketMQ computes them), unless the properties file set them, in which case the file's
//! value is shown (`ignored_keys`). docs/config.md lists the groups.

use rmq_core::config::BrokerConfig;

/// RocketMQ-only keys with fixed defaults.
const FIXED: &[(&str, &str)] = &[
    // BrokerConfig: thread pools and queues (rmq-fast is thread-per-core)
    ("adminBrokerThreadPoolNums", "16"),
    ("clientManageThreadPoolNums", "32"),
    ("consumerManageThreadPoolNums", "32"),
    ("sendThreadPoolQueueCapacity", "10000"),
    ("putThreadPoolQueueCapacity", "10000"),
    ("pullThreadPoolQueueCapacity", "100000"),
    ("replyThreadPoolQueueCapacity", "10000"),
    ("queryThreadPoolQueueCapacity", "20000"),
    ("clientManagerThreadPoolQueueCapacity", "1000000"),
    ("consumerManagerThreadPoolQueueCapacity", "1000000"),
    ("heartbeatThreadPoolQueueCapacity", "50000"),
    ("endTransactionPoolQueueCapacity", "100000"),
    ("waitTimeMillsInSendQueue", "200"),
    ("waitTimeMillsInPullQueue", "5000"),
    ("waitTimeMillsInHeartbeatQueue", "31000"),
    ("waitTimeMillsInTransactionQueue", "3000"),
    ("brokerFastFailureEnable", "true"),
    ("startAcceptSendRequestTimeStamp", "0"),
    // BrokerConfig: features rmq-fast does not have
    ("filterServerNums", "0"),
    ("fetchNamesrvAddrByAddressServer", "false"),
    ("transferMsgByHeap", "true"),
    ("maxDelayTime", "40"),
    ("regionId", "DefaultRegion"),
    ("traceOn", "true"),
    ("messageStorePlugIn", ""),
    ("highSpeedMode", "false"),
    ("commercialEnable", "true"),
    ("commercialTimerCount", "1"),
    ("commercialTransCount", "1"),
    ("commercialBigCount", "1"),
    ("commercialBaseCount", "1"),
    ("disableConsumeIfConsumerReadSlowly", "false"),
    ("consumerFallbehindThreshold", "17179869184"),
    ("enableCalcFilterBitMap", "false"),
    ("expectConsumerNumUseFilter", "32"),
    ("maxErrorRateOfBloomFilter", "20"),
    ("filterDataCleanTimeSpan", "86400000"),
    ("filterSupportRetry", "false"),
    ("flushConsumerOffsetHistoryInterval", "60000"),
    ("storeReplyMessageEnable", "true"),
    ("autoDeleteUnusedStats", "false"),
    ("enableDetailStat", "true"),
    ("isolateLogEnable", "false"),
    // MessageStoreConfig: store features and tuning of RocketMQ's store
    ("enableConsumeQueueExt", "false"),
    ("mappedFileSizeConsumeQueueExt", "50331648"),
    ("bitMapLengthConsumeQueueExt", "64"),
    ("putMsgIndexHightWater", "600000"),
    ("osPageCacheBusyTimeOutMills", "1000"),
    ("useReentrantLockWhenPutMessage", "true"),
    ("warmMapedFileEnable", "false"),
    ("flushLeastPagesWhenWarmMapedFile", "4096"),
    ("fastFailIfNoBufferInStorePool", "false"),
    ("offsetCheckInSlave", "false"),
    ("debugLockEnable", "false"),
    ("duplicationEnable", "false"),
    ("diskFallRecorded", "true"),
    ("isEnableBatchPush", "false"),
    ("enableScheduleMessageStats", "true"),
    ("enableMultiDispatch", "false"),
    ("maxLmqConsumeQueueNum", "20000"),
    ("enableLmq", "false"),
    ("enableScheduleAsyncDeliver", "false"),
    ("scheduleAsyncDeliverMaxPendingLimit", "2000"),
    ("scheduleAsyncDeliverMaxResendNum2Blocked", "3"),
    // NettyServerConfig
    ("serverWorkerThreads", "8"),
    // (the other NettyServerConfig keys: rmq_core::config::netty_defaults)
    // NettyClientConfig (the broker's connections to name servers)
    ("clientWorkerThreads", "4"),
    ("clientOnewaySemaphoreValue", "65535"),
    ("clientAsyncSemaphoreValue", "65535"),
    ("connectTimeoutMillis", "3000"),
    ("channelNotActiveInterval", "60000"),
    ("clientChannelMaxIdleTimeSeconds", "120"),
    ("clientSocketSndBufSize", "0"),
    ("clientSocketRcvBufSize", "0"),
    ("clientPooledByteBufAllocatorEnable", "false"),
    ("clientCloseSocketIfTimeout", "true"),
    ("useTLS", "false"),
];

/// RocketMQ's thread-pool defaults that depend on the number of processors.
fn per_processor(processors: i64) -> [(&'static str, i64); 7] {
    [
        ("sendMessageThreadPoolNums", processors.min(4)),
        ("putMessageFutureThreadPoolNums", processors.min(4)),
        ("pullMessageThreadPoolNums", 16 + processors * 2),
        ("processReplyMessageThreadPoolNums", 16 + processors * 2),
        ("queryMessageThreadPoolNums", 8 + processors),
        ("heartbeatThreadPoolNums", processors.min(32)),
        (
            "endTransactionThreadPoolNums",
            (8 + processors * 2).max(processors.min(4) * 4),
        ),
    ]
}

/// `text` (our keys, `key=value` lines) followed by every RocketMQ key it lacks.
pub fn with_rocketmq_keys(config: &BrokerConfig, mut text: String) -> String {
    let shown: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, _)| key.to_owned())
        .collect();
    let processors = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
    let mut extra: Vec<(&str, String)> = FIXED
        .iter()
        .chain(rmq_core::config::netty_defaults::NETTY_SERVER_UNTYPED_DEFAULTS)
        .map(|(key, value)| (*key, (*value).to_owned()))
        .chain(
            per_processor(processors)
                .into_iter()
                .map(|(key, value)| (key, value.to_string())),
        )
        .collect();
    extra.push(("clientCallbackExecutorThreads", processors.to_string()));
    // keys we have under another spelling or as a derived value
    extra.push((
        "mapedFileSizeCommitLog",
        config.mapped_file_size_commit_log.to_string(),
    ));
    extra.push((
        "storePathCommitLog",
        config.store_path_commit_log().display().to_string(),
    ));
    // unset here (no ROCKETMQ_HOME): shown empty rather than left out
    extra.push(("rocketmqHome", String::new()));
    for (key, value) in extra {
        if !shown.contains(key) {
            text.push_str(key);
            text.push('=');
            text.push_str(&value);
            text.push('\n');
        }
    }
    text
}
