//! The controller requests a broker sends (RocketMQ 5's `BrokerOuterAPI` controller calls), over
//! one connection per controller address, each with a typed answer or a [`CallError`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use rmq_core::body::controller::SyncStateSet;
use rmq_core::body::decode_body;
use rmq_core::remoting::controller::{
    ApplyBrokerIdRequestHeader, BrokerHeartbeatRequestHeader, ElectMasterRequestHeader,
    ElectMasterResponseHeader, GetMetaDataResponseHeader, GetNextBrokerIdRequestHeader,
    GetNextBrokerIdResponseHeader, GetReplicaInfoRequestHeader, GetReplicaInfoResponseHeader,
    HEARTBEAT_RECORDED_BY_LEADER, NOT_LEADER_KNOWN_LEADER, RegisterBrokerToControllerRequestHeader,
    RegisterBrokerToControllerResponseHeader, controller_request_code as code,
    controller_response_code,
};
use rmq_core::remoting::{HeaderError, RemotingCommand, ResponseCode};
use rmq_net::{NetError, RemotingClient};

/// How long one controller request may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("controller {addr}: {source}")]
    Net {
        addr: String,
        #[source]
        source: NetError,
    },
    #[error("controller {addr} answered {code}: {remark}")]
    Refused {
        addr: String,
        code: i32,
        remark: String,
        /// CONTROLLER_NOT_LEADER from rmq-fast's controllers: the leader as `addr` knows it
        /// ([`NOT_LEADER_KNOWN_LEADER`]).
        known_leader: Option<String>,
    },
    #[error("controller {addr}: bad answer: {reason}")]
    BadAnswer { addr: String, reason: String },
    /// Dropped unanswered because a role change notification arrived meanwhile (see
    /// [`Controllers::interrupted_by`]).
    #[error("controller {addr}: call dropped for a role change notification")]
    Interrupted { addr: String },
}

impl CallError {
    /// The controller's response code, when it answered.
    pub fn code(&self) -> Option<i32> {
        match self {
            CallError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The member answered CONTROLLER_NOT_LEADER: Some(the leader it names, if any).
    pub fn not_leader(&self) -> Option<Option<&str>> {
        match self {
            CallError::Refused {
                code: controller_response_code::CONTROLLER_NOT_LEADER,
                known_leader,
                ..
            } => Some(known_leader.as_deref()),
            _ => None,
        }
    }
}

/// Where the broker's master is, as the controller says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo {
    pub master_id: Option<i64>,
    pub master_addr: Option<String>,
    pub master_epoch: i32,
    pub sync_state_set: Vec<i64>,
    pub sync_state_set_epoch: i32,
}

/// How often a call in flight checks its interrupt ([`Controllers::interrupted_by`]).
const INTERRUPT_POLL: Duration = Duration::from_millis(20);

/// Connections to the controllers, reused between calls.
#[derive(Default)]
pub struct Controllers {
    clients: RefCell<HashMap<String, Rc<RemotingClient>>>,
    /// When it holds, a call in flight is dropped ([`CallError::Interrupted`]).
    interrupt: Option<Box<dyn Fn() -> bool>>,
}

impl Controllers {
    /// Calls that are dropped, unanswered, as soon as `interrupt` holds (checked every
    /// [`INTERRUPT_POLL`]). The client loop's calls stop so for a role change notification:
    /// a call to a member that cannot answer (cut off, or a deposed leader) would otherwise
    /// hold the notification back for up to [`CALL_TIMEOUT`].
    pub fn interrupted_by(interrupt: impl Fn() -> bool + 'static) -> Controllers {
        Controllers {
            clients: RefCell::default(),
            interrupt: Some(Box::new(interrupt)),
        }
    }

    async fn client(&self, addr: &str) -> Result<Rc<RemotingClient>, CallError> {
        if let Some(client) = self.clients.borrow().get(addr).filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let client = RemotingClient::connect(addr, CALL_TIMEOUT)
            .await
            .map_err(|source| CallError::Net {
                addr: addr.to_string(),
                source,
            })?;
        self.clients
            .borrow_mut()
            .insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Sends `request` to `addr`; a SUCCESS answer or an error.
    pub async fn call(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<RemotingCommand, CallError> {
        let Some(interrupt) = &self.interrupt else {
            return self.call_once(addr, request).await;
        };
        let call = self.call_once(addr, request);
        rmq_net::rt::unless_stopped(interrupt, INTERRUPT_POLL, call)
            .await
            .unwrap_or_else(|| {
                Err(CallError::Interrupted {
                    addr: addr.to_string(),
                })
            })
    }

    async fn call_once(
        &self,
        addr: &str,
        request: RemotingCommand,
    ) -> Result<RemotingCommand, CallError> {
        let client = self.client(addr).await?;
        let response = client
            .invoke(request, CALL_TIMEOUT)
            .await
            .map_err(|source| {
                self.clients.borrow_mut().remove(addr);
                CallError::Net {
                    addr: addr.to_string(),
                    source,
                }
            })?;
        if response.code != ResponseCode::Success.code() {
            return Err(CallError::Refused {
                addr: addr.to_string(),
                code: response.code,
                remark: response.remark.clone().unwrap_or_default(),
                known_leader: response
                    .ext(NOT_LEADER_KNOWN_LEADER)
                    .filter(|leader| !leader.is_empty())
                    .map(str::to_owned),
            });
        }
        Ok(response)
    }
}

fn bad(addr: &str, reason: impl ToString) -> CallError {
    CallError::BadAnswer {
        addr: addr.to_string(),
        reason: reason.to_string(),
    }
}

fn header<T>(addr: &str, read: Result<T, HeaderError>) -> Result<T, CallError> {
    read.map_err(|e| bad(addr, e))
}

fn request(code: i32, write: impl FnOnce(&mut RemotingCommand)) -> RemotingCommand {
    let mut request = RemotingCommand::new_request(code);
    write(&mut request);
    request
}

/// CONTROLLER_GET_METADATA_INFO: the leader's address as `addr` sees it (`addr` itself when
/// it leads).
pub async fn leader(controllers: &Controllers, addr: &str) -> Result<Option<String>, CallError> {
    let response = controllers
        .call(addr, request(code::CONTROLLER_GET_METADATA_INFO, |_| {}))
        .await?;
    let meta = header(addr, GetMetaDataResponseHeader::read(&response))?;
    if meta.is_leader {
        return Ok(Some(addr.to_string()));
    }
    Ok(meta.controller_leader_address.filter(|a| !a.is_empty()))
}

/// CONTROLLER_GET_NEXT_BROKER_ID.
pub async fn next_broker_id(
    controllers: &Controllers,
    leader: &str,
    cluster: &str,
    name: &str,
) -> Result<i64, CallError> {
    let head = GetNextBrokerIdRequestHeader {
        cluster_name: Some(cluster.to_string()),
        broker_name: Some(name.to_string()),
    };
    let response = controllers
        .call(
            leader,
            request(code::CONTROLLER_GET_NEXT_BROKER_ID, |r| head.write_to(r)),
        )
        .await?;
    let answer = header(leader, GetNextBrokerIdResponseHeader::read(&response))?;
    answer
        .next_broker_id
        .ok_or_else(|| bad(leader, "no nextBrokerId"))
}

/// CONTROLLER_APPLY_BROKER_ID: claims `id` with `check_code`.
pub async fn apply_broker_id(
    controllers: &Controllers,
    leader: &str,
    cluster: &str,
    name: &str,
    id: i64,
    check_code: &str,
) -> Result<(), CallError> {
    let head = ApplyBrokerIdRequestHeader {
        cluster_name: Some(cluster.to_string()),
        broker_name: Some(name.to_string()),
        applied_broker_id: Some(id),
        register_check_code: Some(check_code.to_string()),
    };
    controllers
        .call(
            leader,
            request(code::CONTROLLER_APPLY_BROKER_ID, |r| head.write_to(r)),
        )
        .await
        .map(|_| ())
}

fn sync_state_set(addr: &str, response: &RemotingCommand) -> Result<SyncStateSet, CallError> {
    if response.body.is_empty() {
        return Ok(SyncStateSet::default());
    }
    decode_body(&response.body).map_err(|e| bad(addr, e))
}

/// CONTROLLER_REGISTER_BROKER: where the master is.
pub async fn register(
    controllers: &Controllers,
    leader: &str,
    head: &RegisterBrokerToControllerRequestHeader,
) -> Result<ReplicaInfo, CallError> {
    let response = controllers
        .call(
            leader,
            request(code::CONTROLLER_REGISTER_BROKER, |r| head.write_to(r)),
        )
        .await?;
    let answer = header(
        leader,
        RegisterBrokerToControllerResponseHeader::read(&response),
    )?;
    let sss = sync_state_set(leader, &response)?;
    Ok(ReplicaInfo {
        master_id: answer.master_broker_id,
        master_addr: answer.master_address.filter(|a| !a.is_empty()),
        master_epoch: answer.master_epoch.unwrap_or(-1),
        sync_state_set: sss.sync_state_set.into_iter().collect(),
        sync_state_set_epoch: answer
            .sync_state_set_epoch
            .unwrap_or(sss.sync_state_set_epoch),
    })
}

/// CONTROLLER_GET_REPLICA_INFO.
pub async fn replica_info(
    controllers: &Controllers,
    leader: &str,
    name: &str,
) -> Result<ReplicaInfo, CallError> {
    let head = GetReplicaInfoRequestHeader {
        broker_name: Some(name.to_string()),
    };
    let response = controllers
        .call(
            leader,
            request(code::CONTROLLER_GET_REPLICA_INFO, |r| head.write_to(r)),
        )
        .await?;
    let answer = header(leader, GetReplicaInfoResponseHeader::read(&response))?;
    let sss = sync_state_set(leader, &response)?;
    Ok(ReplicaInfo {
        master_id: answer.master_broker_id,
        master_addr: answer.master_address.filter(|a| !a.is_empty()),
        master_epoch: answer.master_epoch.unwrap_or(-1),
        sync_state_set: sss.sync_state_set.into_iter().collect(),
        sync_state_set_epoch: sss.sync_state_set_epoch,
    })
}

/// CONTROLLER_ELECT_MASTER for this broker's group (not designated).
pub async fn elect(
    controllers: &Controllers,
    leader: &str,
    cluster: &str,
    name: &str,
    id: i64,
) -> Result<(), CallError> {
    let head = ElectMasterRequestHeader {
        cluster_name: cluster.to_string(),
        broker_name: name.to_string(),
        broker_id: id,
        designate_elect: false,
        invoke_time: Some(crate::context::now_ms()),
    };
    let response = controllers
        .call(
            leader,
            request(code::CONTROLLER_ELECT_MASTER, |r| head.write_to(r)),
        )
        .await?;
    let _ = header(leader, ElectMasterResponseHeader::read(&response))?;
    Ok(())
}

/// BROKER_HEARTBEAT.
///
/// `Ok(true)` when the answer proves that the raft leader recorded it: our controllers say
/// so ([`HEARTBEAT_RECORDED_BY_LEADER`]); without that field (RocketMQ's controllers) only
/// the answer of `leader`, the member the broker believes leads, counts.
pub async fn heartbeat(
    controllers: &Controllers,
    addr: &str,
    leader: &str,
    head: &BrokerHeartbeatRequestHeader,
) -> Result<bool, CallError> {
    let response = controllers
        .call(addr, request(code::BROKER_HEARTBEAT, |r| head.write_to(r)))
        .await?;
    Ok(match response.ext(HEARTBEAT_RECORDED_BY_LEADER) {
        Some(recorded) => recorded == "true",
        None => addr == leader,
    })
}

/// CONTROLLER_ALTER_SYNC_STATE_SET: asks for `new_set` in place of the set of epoch
/// `sss_epoch`, as master `master_id` of `master_epoch`; the new set's epoch.
pub async fn alter_sync_state_set(
    controllers: &Controllers,
    leader: &str,
    name: &str,
    (master_id, master_epoch): (i64, i32),
    new_set: &std::collections::BTreeSet<i64>,
    sss_epoch: i32,
) -> Result<i32, CallError> {
    let head = rmq_core::remoting::controller::AlterSyncStateSetRequestHeader {
        broker_name: Some(name.to_string()),
        master_broker_id: Some(master_id),
        master_epoch: Some(master_epoch),
        invoke_time: crate::context::now_ms(),
    };
    let body = rmq_core::body::encode_body(&SyncStateSet {
        sync_state_set: new_set.clone(),
        sync_state_set_epoch: sss_epoch,
    });
    let request = request(code::CONTROLLER_ALTER_SYNC_STATE_SET, |r| head.write_to(r));
    let response = controllers.call(leader, request.with_body(body)).await?;
    let answer = header(
        leader,
        rmq_core::remoting::controller::AlterSyncStateSetResponseHeader::read(&response),
    )?;
    Ok(answer.new_sync_state_set_epoch)
}
