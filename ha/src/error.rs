//! The error type of the replication service. A session error ends that one connection; the
//! slave reconnects, the master forgets the slave until it does.

use std::net::SocketAddr;

use rmq_storage::StoreError;

use crate::frame::FrameError;
use crate::handshake::{HandshakeError, Hello, Status, Welcome};

#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("replication connection {op} failed: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the master HA address {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "master refused shard {shard}: {status:?} (master: {master_shards} shards, segment \
         {master_segment} B, ending at {master_end}; slave: {slave_shards} shards, \
         segment {slave_segment} B, at {slave_offset})"
    )]
    Refused {
        shard: u32,
        status: Status,
        master_shards: u32,
        master_segment: u64,
        master_end: i64,
        slave_shards: u32,
        slave_segment: u64,
        slave_offset: i64,
    },
    #[error(
        "shard {shard}: truncating the log from {slave_offset} to the master's end offset \
         {master_end} failed: {source}"
    )]
    Truncate {
        shard: u32,
        slave_offset: i64,
        master_end: i64,
        #[source]
        source: StoreError,
    },
    #[error(
        "shard {shard}: the log still ends at {end} after truncating to the master's end \
         offset {master_end} (that offset is inside a segment fill here: the logs diverged)"
    )]
    StillAhead {
        shard: u32,
        end: i64,
        master_end: i64,
    },
    #[error(
        "shard {shard}: master no longer has offset {slave_offset} (oldest {oldest}); this \
         slave's store is too far behind: stop it, delete its store directory and restart it \
         to resync"
    )]
    TooFarBehind {
        shard: u32,
        slave_offset: i64,
        oldest: i64,
    },
    #[error(
        "shard {shard}: the master told this empty slave to start at {start}, but its log ends \
         at {end} (it is not empty, or {start} is no segment start)"
    )]
    BadStart { shard: u32, start: i64, end: i64 },
    #[error("frame at offset {got}, expected {expected}")]
    OutOfOrder { got: i64, expected: i64 },
    #[error("peer {peer:?} silent for longer than the housekeeping interval")]
    Silent { peer: Option<SocketAddr> },
    #[error("the connection closed")]
    Closed,
    #[error("the session was stopped (the broker's role changed or it stops)")]
    Stopped,
    #[error(
        "shard {shard}: the master at {addr} sent no epoch history (it is not in controller \
         mode); a controller-mode slave does not follow it"
    )]
    NoMasterEpochs { shard: u32, addr: String },
    #[error(
        "shard {shard}: the master at {addr} is at epoch {master_epoch}, older than epoch \
         {expected} the controller named: not following a stale master"
    )]
    StaleMaster {
        shard: u32,
        addr: String,
        master_epoch: i32,
        expected: i32,
    },
}

impl HaError {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> HaError {
        move |source| HaError::Io { op, source }
    }
}

impl HaError {
    /// The handshake was refused: both sides' view, for the log of whichever side reports it.
    pub fn refused(hello: &Hello, welcome: &Welcome) -> Self {
        HaError::Refused {
            shard: hello.shard,
            status: welcome.status,
            master_shards: welcome.shard_count,
            master_segment: welcome.segment_size,
            master_end: welcome.master_end,
            slave_shards: hello.shard_count,
            slave_segment: hello.segment_size,
            slave_offset: hello.slave_offset,
        }
    }
}
