//! Raft RPC to the other controllers: one lazily (re)connected TCP connection per peer,
//! one request in flight on it at a time (openraft drives each peer from one task).

use std::time::Duration;

use bytes::Bytes;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rmq_core::remoting::RemotingCommand;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::replicated::{Replicated, TypeConfig};
use crate::wire::{FrameReader, RAFT_RPC, WireError, write_command};

type C<S> = TypeConfig<S>;

/// A raft RPC request, the JSON body of a [`RAFT_RPC`] frame.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum RaftRequest<S: Replicated> {
    Append(AppendEntriesRequest<C<S>>),
    Vote(VoteRequest<u64>),
    Snapshot(InstallSnapshotRequest<C<S>>),
}

/// The reply to a [`RaftRequest`], as the target's raft answered it.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) enum RaftReply {
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
}

/// Creates a [`PeerClient`] per target.
pub(crate) struct Network;

impl<S: Replicated> RaftNetworkFactory<C<S>> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            conn: None,
            opaque: 0,
        }
    }
}

pub(crate) struct PeerClient {
    target: u64,
    addr: String,
    conn: Option<(FrameReader<OwnedReadHalf>, OwnedWriteHalf)>,
    opaque: i32,
}

/// A failed call: `Unreachable` makes openraft back off, `Network` retries at once.
enum CallError {
    Unreachable(std::io::Error),
    Network(WireError),
    Timeout,
}

impl PeerClient {
    async fn call(&mut self, body: Vec<u8>, ttl: Duration) -> Result<Bytes, CallError> {
        match tokio::time::timeout(ttl, self.call_inner(body)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                // The reply may still arrive on this connection: drop it to stay in step.
                self.conn = None;
                Err(CallError::Timeout)
            }
        }
    }

    /// Cancel-safe: the connection is taken out for the call and put back only after its
    /// reply arrived, so a call dropped midway (openraft cancels RPCs it gave up on) leaves
    /// no connection with an unread reply behind.
    async fn call_inner(&mut self, body: Vec<u8>) -> Result<Bytes, CallError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect(&self.addr)
                    .await
                    .map_err(CallError::Unreachable)?;
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                (FrameReader::new(read), write)
            }
        };
        let (reader, writer) = (&mut conn.0, &mut conn.1);
        self.opaque = self.opaque.wrapping_add(1);
        let mut request = RemotingCommand::new_request(RAFT_RPC).with_body(body);
        request.opaque = self.opaque;
        write_command(writer, &request)
            .await
            .map_err(CallError::Network)?;
        let reply = reader.read().await.map_err(CallError::Network)?;
        if reply.opaque != self.opaque || reply.code != 0 {
            return Err(CallError::Network(WireError::Io(std::io::Error::other(
                format!(
                    "raft reply opaque {} code {} remark {:?}",
                    reply.opaque, reply.code, reply.remark
                ),
            ))));
        }
        self.conn = Some(conn);
        Ok(reply.body)
    }

    async fn rpc<S: Replicated, E: std::error::Error>(
        &mut self,
        request: &RaftRequest<S>,
        option: &RPCOption,
    ) -> Result<RaftReply, RPCError<u64, BasicNode, E>> {
        let body = serde_json::to_vec(request).expect("raft requests serialize");
        let reply = match self.call(body, option.hard_ttl()).await {
            Ok(reply) => reply,
            Err(CallError::Unreachable(e)) => {
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Err(CallError::Network(e)) => return Err(RPCError::Network(NetworkError::new(&e))),
            Err(CallError::Timeout) => {
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "raft rpc timed out");
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        };
        serde_json::from_slice(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

fn mismatch<E: std::error::Error>() -> RPCError<u64, BasicNode, E> {
    let e = std::io::Error::other("raft reply of another kind than the request");
    RPCError::Network(NetworkError::new(&e))
}

impl<S: Replicated> RaftNetwork<C<S>> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C<S>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.rpc::<S, _>(&RaftRequest::Append(rpc), &option).await? {
            RaftReply::Append(reply) => {
                reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C<S>>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .rpc::<S, _>(&RaftRequest::Snapshot(rpc), &option)
            .await?
        {
            RaftReply::Snapshot(reply) => {
                reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .rpc::<S, _>(&RaftRequest::<S>::Vote(rpc), &option)
            .await?
        {
            RaftReply::Vote(reply) => {
                reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch()),
        }
    }
}
