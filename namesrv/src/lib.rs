//! rmq-namesrv: the name server.
//!
//! Owns the broker registry (`route_table`): which brokers exist, in which cluster, with
//! which topics and queues, and when each was last heard from; plus the KV config store
//! (`kv_config`). It answers route queries from producers, consumers and tools.
//!
//! Contracts (as in RocketMQ, where name servers are independent and share nothing):
//! - A broker is "live" from its REGISTER_BROKER until UNREGISTER_BROKER, until the
//!   connection it registered on closes, or until `brokerChannelExpiredTime` (120 s)
//!   passes without a new registration. Brokers re-register every 30 s.
//! - Routes are computed from the live registry only; a topic no live broker carries is
//!   TOPIC_NOT_EXIST.
//! - State is in memory (rebuilt from broker registrations within one period after a
//!   restart), except the KV config, persisted to `kvConfigPath` on every change.
//!
//! One core serves everything: the name server handles a few requests per client per
//! 30 s, so it runs a single pinned runtime and keeps its state in a `RefCell`.

pub mod config_admin;
pub mod kv_config;
pub mod processor;
pub mod register;
pub mod route_table;
pub mod server;

pub use server::run_namesrv;
