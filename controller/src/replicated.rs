//! The contract between the raft layer and the replicated state machine, and the openraft
//! type configuration built from it.

use std::cmp::Ordering;
use std::fmt;
use std::io::Cursor;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A deterministic state machine replicated by the controller quorum.
///
/// `apply` must be a pure function of (state, `now_ms`, command): every controller applies
/// the same entries in the same order and must reach the same state. That is why time is
/// an argument (stamped by the leader into the entry) rather than read from a clock.
pub trait Replicated: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// A state change, carried in a raft log entry.
    type Cmd: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// What applying a command answers to the client that submitted it.
    type Out: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;

    /// Applies `cmd` at leader time `now_ms`.
    fn apply(&mut self, now_ms: u64, cmd: &Self::Cmd) -> Self::Out;

    /// The command the leader submits on its periodic timer (e.g. the liveness scan that
    /// turns a lost heartbeat into an election), or None when there is nothing to do.
    /// `leader_since_ms`: when this node (by its clock) found itself leader of the current
    /// term, so that a new leader can give clients time to find it before it judges their
    /// silence. Required to be cheap: it runs on the leader every scan interval.
    fn tick(&self, now_ms: u64, leader_since_ms: u64) -> Option<Self::Cmd>;
}

/// A command with the leader's wall-clock time when it was proposed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Stamped<S: Replicated> {
    pub now_ms: u64,
    pub cmd: S::Cmd,
}

/// openraft's type configuration for state machine `S`. (`declare_raft_types!` cannot
/// declare a generic config, hence the hand-written impls.)
pub struct TypeConfig<S>(PhantomData<fn() -> S>);

impl<S> fmt::Debug for TypeConfig<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypeConfig")
    }
}
impl<S> Clone for TypeConfig<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S> Copy for TypeConfig<S> {}
impl<S> Default for TypeConfig<S> {
    fn default() -> Self {
        Self(PhantomData)
    }
}
impl<S> PartialEq for TypeConfig<S> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<S> Eq for TypeConfig<S> {}
impl<S> PartialOrd for TypeConfig<S> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<S> Ord for TypeConfig<S> {
    fn cmp(&self, _: &Self) -> Ordering {
        Ordering::Equal
    }
}

impl<S: Replicated> openraft::RaftTypeConfig for TypeConfig<S> {
    type D = Stamped<S>;
    /// None for entries that carry no command (blank leader entries, membership).
    type R = Option<S::Out>;
    type NodeId = u64;
    type Node = openraft::BasicNode;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// A replicated list of (time, value) for the stores' unit tests.
#[cfg(test)]
pub(crate) mod test_machine {
    use super::*;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Log(pub(crate) Vec<(u64, u32)>);

    impl Replicated for Log {
        type Cmd = u32;
        type Out = usize;

        fn apply(&mut self, now_ms: u64, cmd: &u32) -> usize {
            self.0.push((now_ms, *cmd));
            self.0.len()
        }

        fn tick(&self, _now_ms: u64, _leader_since_ms: u64) -> Option<u32> {
            None
        }
    }

    /// A normal entry at `index` of term 1 carrying `cmd` stamped `now_ms`.
    pub(crate) fn entry(index: u64, now_ms: u64, cmd: u32) -> openraft::Entry<TypeConfig<Log>> {
        openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
            payload: openraft::EntryPayload::Normal(Stamped { now_ms, cmd }),
        }
    }

    /// Runs `future` to completion on a throw-away runtime.
    pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }
}
