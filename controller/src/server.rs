//! The controller port: raft RPC from the other members and remoting requests from brokers
//! and tools, on one listener (as RocketMQ 5's DLedger controller serves both on its peer
//! port).
//!
//! Per connection: one reader task decodes frames; a raft RPC is answered in order on the
//! reader (a peer sends one at a time); every other request runs in its own task, at most
//! [`CLIENT_REQUESTS_IN_FLIGHT`] per connection, and its answer goes to the writer task.
//! An undecodable frame closes the connection, as the name server and broker do.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rmq_core::remoting::{RemotingCommand, ResponseCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use crate::network::{RaftReply, RaftRequest};
use crate::node::NodeHandle;
use crate::replicated::Replicated;
use crate::wire::{FrameReader, RAFT_RPC, write_command};

/// Client requests of one connection being handled at once; the reader stops reading
/// beyond that (back-pressure instead of unbounded tasks).
pub const CLIENT_REQUESTS_IN_FLIGHT: usize = 64;

/// What answers the client-facing requests of a controller (the RocketMQ 5 controller
/// protocol for the election state; a toy protocol in tests).
pub trait Service<S: Replicated>: Send + Sync + 'static {
    /// Answers one request (not a raft RPC); None sends nothing (oneway requests).
    /// Required: the crate knows no request code but its own raft RPC.
    fn handle(
        &self,
        node: &NodeHandle<S>,
        peer: SocketAddr,
        request: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>> + Send;

    /// Called on the leader with what its periodic command (see `Replicated::tick`) answered
    /// once applied. Required, not defaulted: a service that ignored it would miss the
    /// outcomes nobody asked for, such as an election after a lost heartbeat, which the
    /// brokers must be told about.
    fn after_tick(&self, node: &NodeHandle<S>, out: S::Out) -> impl Future<Output = ()> + Send;

    /// The leader's periodic command at `now_ms` (its timer asks every scan interval; it
    /// writes what this answers). `leader_since_ms`: when this node (by its clock) found
    /// itself leader of the current term. Default: the state's own `Replicated::tick`; a
    /// service that keeps its own view of its clients (the election controller's receipt
    /// times of heartbeats) passes it in here. Must be cheap.
    fn periodic(&self, node: &NodeHandle<S>, now_ms: u64, leader_since_ms: u64) -> Option<S::Cmd> {
        node.local(|state| state.tick(now_ms, leader_since_ms))
    }

    /// Called when a client connection (not a raft peer's) closes. Required: a broker's
    /// connection closing is how the controller learns at once that the broker died
    /// (RocketMQ 5 elects on it too), instead of waiting for its heartbeats to time out.
    fn closed(&self, node: &NodeHandle<S>, peer: SocketAddr) -> impl Future<Output = ()> + Send;
}

/// Accepts connections until the runtime stops.
pub(crate) async fn serve<S: Replicated, V: Service<S>>(
    listener: TcpListener,
    node: NodeHandle<S>,
    service: Arc<V>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, peer, node.clone(), service.clone()));
            }
            Err(e) => {
                // EMFILE and the like: wait instead of spinning on the error.
                tracing::warn!(error = %e, "controller accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection<S: Replicated, V: Service<S>>(
    stream: TcpStream,
    peer: SocketAddr,
    node: NodeHandle<S>,
    service: Arc<V>,
) {
    let (read, mut write) = stream.into_split();
    let (replies, mut outbox) = mpsc::unbounded_channel::<RemotingCommand>();
    let writer = tokio::spawn(async move {
        while let Some(reply) = outbox.recv().await {
            if let Err(e) = write_command(&mut write, &reply).await {
                tracing::debug!(%peer, error = %e, "controller connection write failed");
                return;
            }
        }
    });
    let mut reader = FrameReader::new(read);
    let permits = Arc::new(Semaphore::new(CLIENT_REQUESTS_IN_FLIGHT));
    // A connection that carries raft RPC is a peer's, not a client's.
    let mut client = true;
    loop {
        let request = match reader.read().await {
            Ok(request) => request,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "controller connection closed");
                break;
            }
        };
        if request.is_response() {
            // Nothing is asked of a client over its own connection.
            continue;
        }
        if request.code == RAFT_RPC {
            client = false;
            let reply = raft_rpc(&node, &request).await;
            if replies.send(reply).is_err() {
                break;
            }
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (node, service, replies) = (node.clone(), service.clone(), replies.clone());
        tokio::spawn(async move {
            let oneway = request.is_oneway();
            let reply = service.handle(&node, peer, request).await;
            if let Some(reply) = reply.filter(|_| !oneway) {
                let _ = replies.send(reply);
            }
            drop(permit);
        });
    }
    drop(replies);
    let _ = writer.await;
    if client {
        service.closed(&node, peer).await;
    }
}

/// Hands a raft RPC to openraft and wraps its answer (an error of the target's raft is an
/// answer too: the caller's raft decides what it means).
async fn raft_rpc<S: Replicated>(
    node: &NodeHandle<S>,
    request: &RemotingCommand,
) -> RemotingCommand {
    let decoded: Result<RaftRequest<S>, _> = serde_json::from_slice(&request.body);
    let reply = match decoded {
        Err(e) => {
            tracing::warn!(error = %e, "undecodable raft rpc");
            return RemotingCommand::response_for(
                request,
                ResponseCode::SystemError as i32,
                Some(format!("undecodable raft rpc: {e}")),
            );
        }
        Ok(RaftRequest::Append(rpc)) => {
            let answer = node.raft().append_entries(rpc).await;
            if answer.as_ref().is_ok_and(|reply| {
                !matches!(reply, openraft::raft::AppendEntriesResponse::HigherVote(_))
            }) {
                node.leader_heard();
            }
            RaftReply::Append(answer)
        }
        Ok(RaftRequest::Vote(rpc)) => RaftReply::Vote(node.raft().vote(rpc).await),
        Ok(RaftRequest::Snapshot(rpc)) => {
            RaftReply::Snapshot(node.raft().install_snapshot(rpc).await)
        }
    };
    let body = serde_json::to_vec(&reply).expect("raft replies serialize");
    RemotingCommand::response_for(request, ResponseCode::Success as i32, None).with_body(body)
}
