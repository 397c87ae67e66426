//! NOTIFY_BROKER_ROLE_CHANGED (1008): after an election the leader tells every live broker of
//! the group who the master is, one-way, as RocketMQ 5.3's `ControllerManager` does. A
//! broker that misses it still learns the new master from its next GET_REPLICA_INFO (brokers
//! poll every few seconds), so a failed notification is logged, not retried.

use std::time::Duration;

use bytes::BytesMut;
use rmq_core::body::encode_body;
use rmq_core::remoting::controller::NotifyBrokerRoleChangedRequestHeader;
use rmq_core::remoting::controller::controller_request_code::NOTIFY_BROKER_ROLE_CHANGED;
use rmq_core::remoting::{RemotingCommand, encode_frame};
use rmq_election::{Election, ElectionState};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::replies::{sync_state_set, wire_epoch, wire_id};
use super::wall_clock_ms;
use crate::node::NodeHandle;

/// How long one notification may take (RocketMQ: 3 s).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends the notification of `election` to the group's live members, in the background.
pub(super) fn broker_role_changed(node: &NodeHandle<ElectionState>, election: &Election) {
    let Some(master) = election.new_master else {
        // RocketMQ notifies only when a master was elected.
        return;
    };
    let now_ms = wall_clock_ms();
    let targets: Vec<String> = node.local(|state| {
        election
            .members
            .iter()
            .filter(|&(&id, _)| state.is_alive(now_ms, &election.broker_name, id))
            .map(|(_, addr)| addr.clone())
            .collect()
    });
    let mut request = RemotingCommand::new_request(NOTIFY_BROKER_ROLE_CHANGED);
    NotifyBrokerRoleChangedRequestHeader {
        master_address: election.master_address.clone(),
        master_epoch: Some(wire_epoch(election.master_epoch)),
        sync_state_set_epoch: Some(wire_epoch(election.sync_state_set_epoch)),
        master_broker_id: Some(wire_id(master)),
    }
    .write_to(&mut request);
    request.body = encode_body(&sync_state_set(
        &election.sync_state_set,
        election.sync_state_set_epoch,
    ))
    .into();
    request.mark_oneway();
    for target in targets {
        let request = request.clone();
        let group = election.broker_name.clone();
        tokio::spawn(async move {
            let sent = tokio::time::timeout(NOTIFY_TIMEOUT, send_oneway(&target, &request)).await;
            match sent {
                Ok(Ok(())) => tracing::info!(%target, %group, "broker told of its role change"),
                Ok(Err(e)) => {
                    tracing::warn!(%target, %group, error = %e, "role change not notified")
                }
                Err(_) => tracing::warn!(%target, %group, "role change notification timed out"),
            }
        });
    }
}

async fn send_oneway(target: &str, request: &RemotingCommand) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(target).await?;
    let mut frame = BytesMut::new();
    encode_frame(request, &mut frame);
    stream.write_all(&frame).await?;
    stream.shutdown().await
}
