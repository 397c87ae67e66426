//! rmq-ha: master/slave replication of the commit log (RocketMQ's classic HA).
//!
//! Status: this crate so far holds the replication wire format and the slave-offset
//! bookkeeping the master uses to release SYNC_MASTER sends; the streaming service
//! (per-shard streams, zero-copy sends) is the subject of the replication issue.
//!
//! Contract: a record is "replicated" when a slave has acknowledged an offset past its
//! end. A SYNC_MASTER send is acknowledged only once its record is replicated (and, with
//! SYNC_FLUSH, flushed on the master). Offsets only move forward.

pub mod ack_tracker;
pub mod frame;
