//! RocketMQ 4.9.8's `NettyServerConfig` defaults for the keys rmq-fast accepts but has no typed
//! field for (its transport is not Netty). The broker's GET_BROKER_CONFIG and the name server's
//! GET_NAMESRV_CONFIG list them, as Java does, so tools that read a key find it; one list so
//! the two servers cannot drift apart.

/// `NettyServerConfig` keys without a typed field, with RocketMQ 4.9.8's defaults.
/// `serverWorkerThreads` is not here: each server lists it with its own default.
pub const NETTY_SERVER_UNTYPED_DEFAULTS: &[(&str, &str)] = &[
    ("serverCallbackExecutorThreads", "0"),
    ("serverSelectorThreads", "3"),
    ("serverOnewaySemaphoreValue", "256"),
    ("serverAsyncSemaphoreValue", "64"),
    ("serverSocketSndBufSize", "0"),
    ("serverSocketRcvBufSize", "0"),
    ("writeBufferHighWaterMark", "0"),
    ("writeBufferLowWaterMark", "0"),
    ("serverSocketBacklog", "1024"),
    ("serverPooledByteBufAllocatorEnable", "true"),
    ("useEpollNativeSelector", "false"),
];
