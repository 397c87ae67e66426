//! Configuration of brokers and name servers from RocketMQ's own `.properties` files.
//!
//! - `properties`: the Java `.properties` syntax (comments, separators, continuations, escapes).
//! - `broker` / `namesrv` / `controller`: typed configs with RocketMQ 4.9.8 keys and defaults, `load` (file then
//!   command-line overrides), and `validate`.
//! - `error`: `ConfigError` (refuse to start) and `ConfigWarning` (log and continue).
//!
//! Unlike RocketMQ, which silently ignores unknown keys and unparsable values, we warn about
//! unknown keys and refuse bad values, always naming the key and the file. docs/config.md lists
//! every key with its default, bounds and whether rmq-fast honours it.

pub mod broker;
mod broker_validate;
pub mod controller;
pub mod error;
pub mod keys;
mod loader;
pub mod metrics;
pub mod namesrv;
pub mod netty_defaults;
pub mod properties;
mod value;

#[cfg(test)]
mod broker_tests;

pub use broker::{
    BrokerConfig, BrokerRole, COMMIT_LOG_SIZE_KEY, COMMIT_LOG_SIZE_KEY_OLD, CONSUME_QUEUE_SIZE_KEY,
    CONSUME_QUEUE_SIZE_KEY_OLD, DsyncWrites, FlushDiskType, PinCores,
};
pub use broker_validate::{
    COMMIT_LOG_ALIGNMENT, COMMIT_LOG_SIZE_MIN, CONSUME_QUEUE_ENTRY_SIZE, check_host_port,
    parse_delay_levels, parse_delete_when,
};
pub use controller::ControllerConfig;
pub use error::{ConfigError, ConfigWarning};
pub use keys::{IgnoreReason, IgnoredKey};
pub use loader::COMMAND_LINE;
pub use metrics::{MetricsExporterType, MetricsLabels};
pub use namesrv::NamesrvConfig;
pub use properties::{Properties, PropertyEntry, parse_properties};
