//! rmq-broker: the broker process minus its storage engine.
//!
//! Owns request processing (`processor`), the broker-wide registries (`topics`,
//! `groups`, `offsets`, `clients`), registration with name servers (`registration`) and
//! the thread-per-core server (`server`, `core_context`).
//!
//! Threads and ownership: one runtime thread per core (pinned to its CPU as `pinCores`
//! says). Each core owns a disjoint set of
//! storage shards (shard `s` lives on core `s % cores`) and accepts its own connections.
//! A request touching a queue is routed to the shard that owns the queue; when that
//! shard lives on another core, the work is sent there over the mesh (an rtrb ring) and
//! the reply comes back on a oneshot channel. Encoding a record and validating a request
//! happen on the receiving core; only the append and the read run on the owner.
//!
//! The registries are broker-wide and rarely written: topic and group configs are read
//! lock-free through `ArcSwap` snapshots; consumer offsets and the client table sit
//! behind a `Mutex` that is taken per commit or heartbeat, never per message.
//!
//! What a send's acknowledgement means (see rmq-storage for the durability states):
//! SYNC_FLUSH acks once the record is flushed (fdatasync), ASYNC_FLUSH once it is
//! written to the kernel (survives kill -9), and a message with `WAIT=false` once it
//! is appended (readable by consumers); under SYNC_MASTER also once a slave reported it.
//! Every append path (sends and the broker's own re-puts) waits through the one policy in
//! `replication::ack_policy`.

// Processors return a ready error response as `Err(RemotingCommand)`: the error path is
// the cold path and building the response there keeps each check next to its remark.
#![allow(clippy::result_large_err)]

pub mod acl;
pub mod client_calls;
pub mod clients;
pub mod context;
pub mod controller_client;
pub mod core_context;
pub mod filter;
pub mod groups;
pub mod host_memory;
pub mod json_file;
pub mod metrics;
pub mod offsets;
pub mod processor;
pub mod rebalance_lock;
pub mod registration;
pub mod replication;
pub mod retention;
pub mod schedule;
pub mod server;
pub mod stats;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod topic_log;
pub mod topics;
pub mod transaction;

pub use server::{BrokerHandle, start_broker};
