//! rmq-ha: master/slave replication of the commit log (RocketMQ's classic HA semantics over
//! rmq-fast's own, faster stream; Java slaves are not supported).
//!
//! One TCP connection per shard: the slave's core that owns shard `s` connects to the
//! master's HA port, says hello (`handshake`: shard, shard count, segment size, its end
//! offset), and the master's core owning `s` streams that shard's appended commit log bytes
//! from there (`master`), in frames (`frame`) the slave appends at the same physical offsets
//! and acknowledges with 8-byte reports (`slave`). Mismatched geometry is refused before a
//! single byte streams.
//!
//! Contract: a record is "replicated" when a slave has reported an offset past its end; the
//! slave reports only what its own store has written. A SYNC_MASTER send is acknowledged only
//! once its record is replicated (and, with SYNC_FLUSH, flushed on the master); `AckTracker`
//! releases the waiting sends in groups. Offsets only move forward.
//!
//! Controller mode (issue 11): stores that keep an epoch history exchange it in the handshake,
//! and a slave cuts its log back to the consistent point with its master's history before it
//! streams (`handshake` module docs).

pub mod ack_tracker;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod master;
pub mod slave;

pub use error::HaError;
