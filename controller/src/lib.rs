//! The controller quorum of RocketMQ 5 "controller mode": a replicated state machine that
//! decides, per broker group, who is master and which replicas are in sync.
//!
//! The consensus is openraft (0.9, the maintained stable line); this crate supplies what
//! openraft leaves to the application:
//! - `replicated`: the [`Replicated`] trait a state machine implements (the election state
//!   of crate `rmq-election`, or a toy machine in tests) and the raft type configuration;
//! - `log_store`: the raft log, vote and committed index on disk, fsynced before openraft is
//!   told an entry is durable;
//! - `state_machine`: applies committed entries and keeps the snapshot on disk;
//! - `peers`: the member list as `controllerDLegerPeers` writes it, and raft ids;
//! - `wire`: remoting frames over tokio sockets (one port serves raft peers and clients);
//! - `network`: raft RPC to the other controllers over that port;
//! - `server`: the listener; raft RPC goes to openraft, everything else to a [`Service`];
//! - `rocketmq`: the election state of `rmq-election` served with RocketMQ 5.3's controller
//!   protocol, and [`start_controller`] from a `ControllerConfig`;
//! - `node`: one controller, on its own tokio runtime (the controller is not on the
//!   message data path, so it does not share the brokers' io_uring cores).
//!
//! Durability contract: an entry is acknowledged to openraft (and so counted in a quorum)
//! only after the log file holding it is fsynced; the vote is fsynced before any reply
//! that depends on it. A restarted controller rebuilds its state from snapshot + log.

mod error;
mod files;
mod log_store;
mod network;
mod node;
mod peers;
mod replicated;
mod rocketmq;
mod server;
mod state_machine;
pub mod wire;

pub use error::ControllerError;
pub use node::{ControllerNode, NodeConfig, NodeHandle, QUORUM_WAIT, RaftRole};
pub use peers::{Peer, parse_peers, peer_id};
pub use replicated::{Replicated, Stamped};
pub use rocketmq::{ControllerService, ElectionController, start_controller};
pub use server::{CLIENT_REQUESTS_IN_FLIGHT, Service};
