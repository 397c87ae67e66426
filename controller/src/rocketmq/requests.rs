//! One handler per controller request code, answering as RocketMQ 5.3's
//! `ControllerRequestProcessor` + `ReplicasInfoManager` do (codes, remarks, headers, bodies).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use rmq_core::body::controller::{
    BrokerMemberGroup, BrokerReplicasInfo, ElectMasterResponseBody, SyncStateSet,
};
use rmq_core::body::{decode_body, encode_body};
use rmq_core::remoting::controller::controller_request_code as rc;
use rmq_core::remoting::controller::controller_response_code as code;
use rmq_core::remoting::controller::{
    AlterSyncStateSetRequestHeader, AlterSyncStateSetResponseHeader, ApplyBrokerIdRequestHeader,
    ApplyBrokerIdResponseHeader, BrokerHeartbeatRequestHeader,
    CleanControllerBrokerDataRequestHeader, ElectMasterRequestHeader, ElectMasterResponseHeader,
    GetMetaDataResponseHeader, GetNextBrokerIdRequestHeader, GetNextBrokerIdResponseHeader,
    GetReplicaInfoRequestHeader, GetReplicaInfoResponseHeader, HEARTBEAT_RECORDED_BY_LEADER,
    RegisterBrokerToControllerRequestHeader, RegisterBrokerToControllerResponseHeader,
};
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_election::{Command, ElectionState, HeartbeatReport, Outcome};

use super::replies::{
    Failure, broker_id, epoch, replicas_info, sync_state_set, wire_epoch, wire_id,
};
use super::{ControllerService, config_admin, wall_clock_ms};
use crate::node::{NodeHandle, RaftRole};

type Node = NodeHandle<ElectionState>;
type Answer = Result<RemotingCommand, Failure>;

/// Answers one request; every failure is a response code with a remark.
pub(super) async fn handle(
    service: &ControllerService,
    node: &Node,
    peer: SocketAddr,
    request: &RemotingCommand,
) -> RemotingCommand {
    // A new leader, or a changed value: the leader's enableElectUncleanMaster goes into the
    // replicated state before it answers anything (`config_admin`).
    if request.code != rc::UPDATE_CONTROLLER_CONFIG
        && let Err(failure) = config_admin::sync_elect_unclean_master(service, node).await
    {
        tracing::warn!(remark = %failure.remark, "enableElectUncleanMaster not replicated");
    }
    let answer = match request.code {
        rc::BROKER_HEARTBEAT => heartbeat(service, node, peer, request).await,
        rc::CONTROLLER_ALTER_SYNC_STATE_SET => alter_sync_state_set(node, request).await,
        rc::CONTROLLER_ELECT_MASTER => elect_master(service, node, request).await,
        rc::CONTROLLER_REGISTER_BROKER => register_broker(node, request).await,
        rc::CONTROLLER_GET_REPLICA_INFO => replica_info(node, request).await,
        rc::CONTROLLER_GET_METADATA_INFO => Ok(metadata(service, node, request)),
        rc::CONTROLLER_GET_SYNC_STATE_DATA => sync_state_data(node, request).await,
        rc::CONTROLLER_GET_NEXT_BROKER_ID => next_broker_id(node, request).await,
        rc::CONTROLLER_APPLY_BROKER_ID => apply_broker_id(node, request).await,
        rc::CLEAN_BROKER_DATA => clean_broker_data(node, request).await,
        rc::GET_CONTROLLER_CONFIG => Ok(config_admin::get(service, request)),
        rc::UPDATE_CONTROLLER_CONFIG => config_admin::update(service, node, request).await,
        other => Err(Failure::new(
            ResponseCode::RequestCodeNotSupported as i32,
            format!(" request type {other} not supported"),
        )),
    };
    answer.unwrap_or_else(|failure| {
        tracing::debug!(code = request.code, answer = failure.code, remark = %failure.remark, "controller request failed");
        failure.reply_to(request)
    })
}

fn success(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_for(request, ResponseCode::Success as i32, None)
}

/// Replicates `cmd`; a refusal of the state is a failure.
async fn write(node: &Node, cmd: Command) -> Result<Outcome, Failure> {
    match node.write(cmd).await? {
        Outcome::Refused(refusal) => Err(refusal.into()),
        outcome => Ok(outcome),
    }
}

fn unexpected(outcome: &Outcome) -> Failure {
    Failure::new(
        ResponseCode::SystemError as i32,
        format!("unexpected controller outcome {outcome:?}"),
    )
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, Failure> {
    value.ok_or_else(|| Failure::invalid(format!("the custom field <{field}> is null")))
}

async fn heartbeat(
    service: &ControllerService,
    node: &Node,
    peer: SocketAddr,
    request: &RemotingCommand,
) -> Answer {
    let header = BrokerHeartbeatRequestHeader::read(request)?;
    let Some(id) = header.broker_id else {
        return Err(Failure::invalid("Heart beat with empty brokerId"));
    };
    let id = broker_id("brokerId", id)?;
    service.heard_from(peer, (header.broker_name.clone(), id));
    // Every member accepts heartbeats (brokers send them to all) and keeps its receipt
    // time (`heard_from`); the leader records them, several per log entry (`heartbeats`:
    // group commit) and answering once that entry applied, and says so in its answer (only
    // such an answer counts for the broker's fencing).
    let recorded = node.role() == RaftRole::Leader;
    if recorded {
        let report = HeartbeatReport {
            cluster: header.cluster_name,
            broker_name: header.broker_name,
            broker_id: id,
            address: header.broker_addr,
            epoch: header.epoch.unwrap_or(-1),
            max_offset: header.max_offset.unwrap_or(-1),
            confirm_offset: header.confirm_offset.unwrap_or(-1),
            election_priority: header.election_priority.unwrap_or(i32::MAX),
            timeout_ms: header
                .heartbeat_timeout_mills
                .and_then(|ms| u64::try_from(ms).ok())
                .filter(|&ms| ms > 0),
        };
        let writer = node.clone();
        let write = move |cmd: Command| {
            let node = writer.clone();
            async move { node.write(cmd).await.map_err(Failure::from) }
        };
        match service.heartbeats.record(report, write).await? {
            Outcome::HeartbeatRecorded => {}
            Outcome::Refused(refusal) => return Err(refusal.into()),
            other => return Err(unexpected(&other)),
        }
    }
    let mut reply = success(request);
    reply.remark = Some("Heart beat success".to_owned());
    reply.set_ext(HEARTBEAT_RECORDED_BY_LEADER, recorded);
    Ok(reply)
}

async fn alter_sync_state_set(node: &Node, request: &RemotingCommand) -> Answer {
    let header = AlterSyncStateSetRequestHeader::read(request)?;
    let proposed: SyncStateSet = decode_body(&request.body)
        .map_err(|e| Failure::invalid(format!("bad SyncStateSet body: {e}")))?;
    let new_sync_state_set = proposed
        .sync_state_set
        .iter()
        .map(|&id| broker_id("syncStateSet member", id))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let cmd = Command::AlterSyncStateSet {
        broker_name: required("brokerName", header.broker_name)?,
        master_broker_id: broker_id(
            "masterBrokerId",
            required("masterBrokerId", header.master_broker_id)?,
        )?,
        master_epoch: epoch("masterEpoch", required("masterEpoch", header.master_epoch)?)?,
        new_sync_state_set,
        sync_state_set_epoch: epoch("syncStateSetEpoch", proposed.sync_state_set_epoch)?,
    };
    match write(node, cmd).await? {
        Outcome::SyncStateSetAltered {
            sync_state_set: members,
            sync_state_set_epoch,
        } => {
            let mut reply = success(request);
            AlterSyncStateSetResponseHeader {
                new_sync_state_set_epoch: wire_epoch(sync_state_set_epoch),
            }
            .write_to(&mut reply);
            Ok(reply.with_body(encode_body(&sync_state_set(&members, sync_state_set_epoch))))
        }
        other => Err(unexpected(&other)),
    }
}

async fn elect_master(
    service: &ControllerService,
    node: &Node,
    request: &RemotingCommand,
) -> Answer {
    let header = ElectMasterRequestHeader::read(request)?;
    // brokerId -1: the election was asked for by a controller (RocketMQ's convention).
    let requested = (header.broker_id >= 0)
        .then(|| broker_id("brokerId", header.broker_id))
        .transpose()?;
    let broker_name = header.broker_name;
    let cmd = Command::ElectMaster {
        broker_name: broker_name.clone(),
        broker_id: requested,
        designate: header.designate_elect,
    };
    let outcome = write(node, cmd).await?;
    let reply = match &outcome {
        Outcome::MasterStillExists {
            master,
            sync_state_set: members,
        } => {
            let mut reply = RemotingCommand::response_for(
                request,
                code::CONTROLLER_MASTER_STILL_EXIST,
                Some(format!(
                    "The old master {} is still alive, not need to elect new master for broker {broker_name}",
                    master.broker_id
                )),
            );
            ElectMasterResponseHeader {
                master_broker_id: Some(wire_id(master.broker_id)),
                master_address: Some(master.address.clone()),
                master_epoch: Some(wire_epoch(master.master_epoch)),
                sync_state_set_epoch: Some(wire_epoch(master.sync_state_set_epoch)),
            }
            .write_to(&mut reply);
            let body = ElectMasterResponseBody {
                broker_member_group: None,
                sync_state_set: members.iter().map(|&id| wire_id(id)).collect(),
            };
            return Ok(reply.with_body(encode_body(&body)));
        }
        Outcome::Elected(elections) => {
            let election = elections
                .iter()
                .find(|e| e.broker_name == broker_name)
                .ok_or_else(|| unexpected(&outcome))?;
            let Some(master) = election.new_master else {
                return Err(Failure::new(
                    code::CONTROLLER_MASTER_NOT_AVAILABLE,
                    "Old master has down and failed to elect a new broker master",
                ));
            };
            let mut reply = success(request);
            ElectMasterResponseHeader {
                master_broker_id: Some(wire_id(master)),
                master_address: election.master_address.clone(),
                master_epoch: Some(wire_epoch(election.master_epoch)),
                sync_state_set_epoch: Some(wire_epoch(election.sync_state_set_epoch)),
            }
            .write_to(&mut reply);
            let cluster = node.local(|s| s.group(&broker_name).map(|g| g.cluster.clone()));
            let body = ElectMasterResponseBody {
                broker_member_group: Some(BrokerMemberGroup {
                    cluster: cluster.unwrap_or_default(),
                    broker_name: broker_name.clone(),
                    broker_addrs: election
                        .members
                        .iter()
                        .map(|(&id, addr)| (wire_id(id), addr.clone()))
                        .collect(),
                }),
                sync_state_set: election
                    .sync_state_set
                    .iter()
                    .map(|&id| wire_id(id))
                    .collect(),
            };
            reply.with_body(encode_body(&body))
        }
        other => return Err(unexpected(other)),
    };
    service.announce(node, &outcome).await;
    Ok(reply)
}

async fn register_broker(node: &Node, request: &RemotingCommand) -> Answer {
    let header = RegisterBrokerToControllerRequestHeader::read(request)?;
    let cluster = required("clusterName", header.cluster_name)?;
    let broker_name = required("brokerName", header.broker_name)?;
    let cmd = Command::RegisterBroker {
        cluster: cluster.clone(),
        broker_name: broker_name.clone(),
        broker_id: broker_id("brokerId", required("brokerId", header.broker_id)?)?,
        address: required("brokerAddress", header.broker_address)?,
    };
    match write(node, cmd).await? {
        Outcome::Registered {
            master,
            sync_state_set: members,
            sync_state_set_epoch,
        } => {
            let mut reply = success(request);
            RegisterBrokerToControllerResponseHeader {
                cluster_name: Some(cluster),
                broker_name: Some(broker_name),
                master_broker_id: master.as_ref().map(|m| wire_id(m.broker_id)),
                master_address: master.as_ref().map(|m| m.address.clone()),
                master_epoch: master.as_ref().map(|m| wire_epoch(m.master_epoch)),
                sync_state_set_epoch: master.as_ref().map(|m| wire_epoch(m.sync_state_set_epoch)),
            }
            .write_to(&mut reply);
            Ok(reply.with_body(encode_body(&sync_state_set(&members, sync_state_set_epoch))))
        }
        other => Err(unexpected(&other)),
    }
}

async fn replica_info(node: &Node, request: &RemotingCommand) -> Answer {
    let header = GetReplicaInfoRequestHeader::read(request)?;
    let broker_name = required("brokerName", header.broker_name)?;
    let info = node.read(|s| s.replica_info(&broker_name)).await??;
    let mut reply = success(request);
    GetReplicaInfoResponseHeader {
        master_broker_id: info.master_broker_id.map(wire_id),
        master_address: info.master_address.clone(),
        master_epoch: Some(wire_epoch(info.master_epoch)),
    }
    .write_to(&mut reply);
    let body = sync_state_set(&info.sync_state_set, info.sync_state_set_epoch);
    Ok(reply.with_body(encode_body(&body)))
}

/// Who leads the quorum; every member answers (brokers and mqadmin find the leader with it).
fn metadata(
    service: &ControllerService,
    node: &Node,
    request: &RemotingCommand,
) -> RemotingCommand {
    let leader = node.leader();
    let peers: String = node
        .peers()
        .iter()
        .map(|p| format!("{}:{};", p.name, p.addr))
        .collect();
    let mut reply = success(request);
    GetMetaDataResponseHeader {
        group: Some(service.live().controller_dleger_group.clone()),
        controller_leader_id: leader.as_ref().map(|p| p.name.clone()),
        controller_leader_address: leader.as_ref().map(|p| p.addr.clone()),
        is_leader: node.role() == RaftRole::Leader,
        peers: Some(peers),
    }
    .write_to(&mut reply);
    reply
}

async fn sync_state_data(node: &Node, request: &RemotingCommand) -> Answer {
    let names: Vec<String> = if request.body.is_empty() {
        Vec::new()
    } else {
        decode_body(&request.body).map_err(|e| {
            Failure::invalid(format!("body is not a JSON list of broker names: {e}"))
        })?
    };
    if names.is_empty() {
        // RocketMQ 5.3 answers `createResponseCommand(null)`.
        return Err(Failure::new(
            ResponseCode::SystemError as i32,
            "not set any response code",
        ));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let now_ms = wall_clock_ms();
    let data = node.read(|s| s.sync_state_data(now_ms, &names)).await?;
    let body = BrokerReplicasInfo {
        replicas_info_table: data
            .iter()
            .map(|group| (group.broker_name.clone(), replicas_info(group)))
            .collect(),
    };
    Ok(success(request).with_body(encode_body(&body)))
}

async fn next_broker_id(node: &Node, request: &RemotingCommand) -> Answer {
    let header = GetNextBrokerIdRequestHeader::read(request)?;
    let broker_name = required("brokerName", header.broker_name.clone())?;
    let next = node.read(|s| s.next_broker_id(&broker_name)).await?;
    let mut reply = success(request);
    GetNextBrokerIdResponseHeader {
        cluster_name: header.cluster_name,
        broker_name: header.broker_name,
        next_broker_id: Some(wire_id(next)),
    }
    .write_to(&mut reply);
    Ok(reply)
}

async fn apply_broker_id(node: &Node, request: &RemotingCommand) -> Answer {
    let header = ApplyBrokerIdRequestHeader::read(request)?;
    let cmd = Command::ApplyBrokerId {
        cluster: required("clusterName", header.cluster_name.clone())?,
        broker_name: required("brokerName", header.broker_name.clone())?,
        broker_id: broker_id(
            "appliedBrokerId",
            required("appliedBrokerId", header.applied_broker_id)?,
        )?,
        register_check_code: required("registerCheckCode", header.register_check_code)?,
    };
    match write(node, cmd).await? {
        Outcome::BrokerIdApplied { .. } => {
            let mut reply = success(request);
            ApplyBrokerIdResponseHeader {
                cluster_name: header.cluster_name,
                broker_name: header.broker_name,
            }
            .write_to(&mut reply);
            Ok(reply)
        }
        other => Err(unexpected(&other)),
    }
}

async fn clean_broker_data(node: &Node, request: &RemotingCommand) -> Answer {
    let header = CleanControllerBrokerDataRequestHeader::read(request)?;
    let broker_ids = match header.broker_controller_ids_to_clean.as_deref() {
        None | Some("") => None,
        Some(list) => Some(
            list.split(';')
                .filter(|id| !id.trim().is_empty())
                .map(|id| {
                    let id: i64 = id.trim().parse().map_err(|_| {
                        Failure::new(
                            code::CONTROLLER_INVALID_CLEAN_BROKER_METADATA,
                            format!("brokerControllerIdsToClean {list:?}: {id:?} is not an id"),
                        )
                    })?;
                    broker_id("brokerControllerIdsToClean", id)
                })
                .collect::<Result<BTreeSet<_>, _>>()?,
        ),
    };
    let cmd = Command::CleanBrokerData {
        broker_name: header.broker_name,
        broker_ids,
        clean_living: header.is_clean_living_broker.unwrap_or(false),
    };
    match write(node, cmd).await? {
        Outcome::BrokerDataCleaned => Ok(success(request)),
        other => Err(unexpected(&other)),
    }
}
