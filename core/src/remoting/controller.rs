//! RocketMQ 5's controller protocol (controller mode, automatic failover): its request codes,
//! response codes and custom headers, shared by the controller (`controller/`) and the broker's
//! controller client so the two can never disagree on a name.
//!
//! Facts come from rocketmq-all-5.3.3 (`RequestCode`, `ResponseCode`, the header classes under
//! `remoting/protocol/header/controller/` and `NotifyBrokerRoleChangedRequestHeader`,
//! `BrokerHeartbeatRequestHeader`); the JSON bodies are in `body::controller`. These codes are
//! outside 4.9.8's range, so a 4.x peer never sends them; they are kept out of `request_code`,
//! which lists exactly 4.9.8's codes.
//!
//! Who sends what (request → answer):
//! - broker → controller: `CONTROLLER_GET_METADATA_INFO` (who leads the quorum),
//!   `CONTROLLER_GET_NEXT_BROKER_ID`, `CONTROLLER_APPLY_BROKER_ID`,
//!   `CONTROLLER_REGISTER_BROKER`, `BROKER_HEARTBEAT`, `CONTROLLER_GET_REPLICA_INFO`,
//!   `CONTROLLER_ELECT_MASTER`, `CONTROLLER_ALTER_SYNC_STATE_SET` (master only);
//! - controller → broker: `NOTIFY_BROKER_ROLE_CHANGED` (one-way, after an election);
//! - admin tool → controller: `CONTROLLER_GET_METADATA_INFO`, `CONTROLLER_GET_SYNC_STATE_DATA`,
//!   `CONTROLLER_ELECT_MASTER`, `CLEAN_BROKER_DATA`, `GET_CONTROLLER_CONFIG`,
//!   `UPDATE_CONTROLLER_CONFIG`; admin tool → broker: `GET_BROKER_EPOCH_CACHE`.
//!
//! Headers are typed structs with `read` (from a command's ext fields) and `write_to`. Java's
//! boxed types (`Long`, `Integer`, `String` without `@CFNotNull`) may be null, which on the wire
//! is an absent field: those are `Option`s here; primitives and `@CFNotNull` fields are required.

use super::{HeaderError, RemotingCommand};

/// Request codes of RocketMQ 5's controller mode.
pub mod controller_request_code {
    /// Broker → controller liveness report (also a name server code in 5.x).
    pub const BROKER_HEARTBEAT: i32 = 904;
    pub const CONTROLLER_ALTER_SYNC_STATE_SET: i32 = 1001;
    pub const CONTROLLER_ELECT_MASTER: i32 = 1002;
    /// `REGISTER_BROKER_TO_CONTROLLER` in the Java header's name.
    pub const CONTROLLER_REGISTER_BROKER: i32 = 1003;
    pub const CONTROLLER_GET_REPLICA_INFO: i32 = 1004;
    pub const CONTROLLER_GET_METADATA_INFO: i32 = 1005;
    pub const CONTROLLER_GET_SYNC_STATE_DATA: i32 = 1006;
    /// Served by the broker (mqadmin `getBrokerEpoch`).
    pub const GET_BROKER_EPOCH_CACHE: i32 = 1007;
    /// Controller → broker, one-way.
    pub const NOTIFY_BROKER_ROLE_CHANGED: i32 = 1008;
    pub const UPDATE_CONTROLLER_CONFIG: i32 = 1009;
    pub const GET_CONTROLLER_CONFIG: i32 = 1010;
    pub const CLEAN_BROKER_DATA: i32 = 1011;
    pub const CONTROLLER_GET_NEXT_BROKER_ID: i32 = 1012;
    pub const CONTROLLER_APPLY_BROKER_ID: i32 = 1013;

    /// The Java constant name of a controller request code, for logs.
    pub fn name(code: i32) -> Option<&'static str> {
        Some(match code {
            BROKER_HEARTBEAT => "BROKER_HEARTBEAT",
            CONTROLLER_ALTER_SYNC_STATE_SET => "CONTROLLER_ALTER_SYNC_STATE_SET",
            CONTROLLER_ELECT_MASTER => "CONTROLLER_ELECT_MASTER",
            CONTROLLER_REGISTER_BROKER => "CONTROLLER_REGISTER_BROKER",
            CONTROLLER_GET_REPLICA_INFO => "CONTROLLER_GET_REPLICA_INFO",
            CONTROLLER_GET_METADATA_INFO => "CONTROLLER_GET_METADATA_INFO",
            CONTROLLER_GET_SYNC_STATE_DATA => "CONTROLLER_GET_SYNC_STATE_DATA",
            GET_BROKER_EPOCH_CACHE => "GET_BROKER_EPOCH_CACHE",
            NOTIFY_BROKER_ROLE_CHANGED => "NOTIFY_BROKER_ROLE_CHANGED",
            UPDATE_CONTROLLER_CONFIG => "UPDATE_CONTROLLER_CONFIG",
            GET_CONTROLLER_CONFIG => "GET_CONTROLLER_CONFIG",
            CLEAN_BROKER_DATA => "CLEAN_BROKER_DATA",
            CONTROLLER_GET_NEXT_BROKER_ID => "CONTROLLER_GET_NEXT_BROKER_ID",
            CONTROLLER_APPLY_BROKER_ID => "CONTROLLER_APPLY_BROKER_ID",
            _ => return None,
        })
    }
}

/// Response codes of RocketMQ 5's controller (`ResponseCode.CONTROLLER_*`, 2000-2016).
pub mod controller_response_code {
    /// The request's master epoch is not the current one (a deposed master).
    pub const CONTROLLER_FENCED_MASTER_EPOCH: i32 = 2000;
    /// The request's sync-state-set epoch is not the current one.
    pub const CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH: i32 = 2001;
    pub const CONTROLLER_INVALID_MASTER: i32 = 2002;
    pub const CONTROLLER_INVALID_REPLICAS: i32 = 2003;
    /// No master could be elected (no eligible replica alive).
    pub const CONTROLLER_MASTER_NOT_AVAILABLE: i32 = 2004;
    pub const CONTROLLER_INVALID_REQUEST: i32 = 2005;
    pub const CONTROLLER_BROKER_NOT_ALIVE: i32 = 2006;
    /// This controller is not the quorum's leader; ask `CONTROLLER_GET_METADATA_INFO`.
    pub const CONTROLLER_NOT_LEADER: i32 = 2007;
    pub const CONTROLLER_BROKER_METADATA_NOT_EXIST: i32 = 2008;
    pub const CONTROLLER_INVALID_CLEAN_BROKER_METADATA: i32 = 2009;
    pub const CONTROLLER_BROKER_NEED_TO_BE_REGISTERED: i32 = 2010;
    pub const CONTROLLER_MASTER_STILL_EXIST: i32 = 2011;
    pub const CONTROLLER_ELECT_MASTER_FAILED: i32 = 2012;
    pub const CONTROLLER_ALTER_SYNC_STATE_SET_FAILED: i32 = 2013;
    pub const CONTROLLER_BROKER_ID_INVALID: i32 = 2014;
    /// Java name `CONTROLLER_JRAFT_INTERNAL_ERROR`; here: the quorum failed the request.
    pub const CONTROLLER_JRAFT_INTERNAL_ERROR: i32 = 2015;
    pub const CONTROLLER_BROKER_LIVE_INFO_NOT_EXISTS: i32 = 2016;
}

/// One custom-header field type: how it is read from and written to a command's ext fields.
pub trait HeaderField: Sized {
    /// Reads field `key`; a required type fails when it is missing or unparsable.
    ///
    /// # Errors
    /// [`HeaderError`] naming the field.
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError>;
    /// Writes the field; an absent optional field is left out, as Java does for null.
    fn write(&self, cmd: &mut RemotingCommand, key: &str);
}

impl HeaderField for String {
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError> {
        cmd.ext_str(key).map(str::to_owned)
    }
    fn write(&self, cmd: &mut RemotingCommand, key: &str) {
        cmd.set_ext(key, self);
    }
}

impl HeaderField for i64 {
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError> {
        cmd.ext_i64(key)
    }
    fn write(&self, cmd: &mut RemotingCommand, key: &str) {
        cmd.set_ext(key, self);
    }
}

impl HeaderField for i32 {
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError> {
        cmd.ext_i32(key)
    }
    fn write(&self, cmd: &mut RemotingCommand, key: &str) {
        cmd.set_ext(key, self);
    }
}

impl HeaderField for bool {
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError> {
        cmd.ext_bool(key)
    }
    fn write(&self, cmd: &mut RemotingCommand, key: &str) {
        cmd.set_ext(key, self);
    }
}

impl HeaderField for Option<String> {
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError> {
        Ok(cmd.ext(key).map(str::to_owned))
    }
    fn write(&self, cmd: &mut RemotingCommand, key: &str) {
        if let Some(value) = self {
            cmd.set_ext(key, value);
        }
    }
}

impl HeaderField for Option<i64> {
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError> {
        cmd.ext_opt_i64(key)
    }
    fn write(&self, cmd: &mut RemotingCommand, key: &str) {
        if let Some(value) = self {
            cmd.set_ext(key, value);
        }
    }
}

impl HeaderField for Option<i32> {
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError> {
        cmd.ext_opt_i32(key)
    }
    fn write(&self, cmd: &mut RemotingCommand, key: &str) {
        if let Some(value) = self {
            cmd.set_ext(key, value);
        }
    }
}

impl HeaderField for Option<bool> {
    fn read(cmd: &RemotingCommand, key: &str) -> Result<Self, HeaderError> {
        cmd.ext_opt_bool(key)
    }
    fn write(&self, cmd: &mut RemotingCommand, key: &str) {
        if let Some(value) = self {
            cmd.set_ext(key, value);
        }
    }
}

/// Declares a header struct, its `read` and its `write_to` from one list of
/// `field: Type = "javaName"` entries, so the Rust and wire names cannot drift apart.
macro_rules! controller_header {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// Reads the header from a command's ext fields.
            ///
            /// # Errors
            /// [`HeaderError`] for a missing required field or an unparsable value.
            pub fn read(cmd: &RemotingCommand) -> Result<Self, HeaderError> {
                Ok(Self { $($field: <$ty as HeaderField>::read(cmd, $key)?,)* })
            }

            /// Writes every present field into `cmd`'s ext fields.
            pub fn write_to(&self, cmd: &mut RemotingCommand) {
                $(HeaderField::write(&self.$field, cmd, $key);)*
            }
        }
    };
}

controller_header! {
    /// `BROKER_HEARTBEAT` (904), broker → controller, every `controllerHeartBeat` interval.
    BrokerHeartbeatRequestHeader {
        cluster_name: String = "clusterName",
        broker_addr: String = "brokerAddr",
        broker_name: String = "brokerName",
        broker_id: Option<i64> = "brokerId",
        /// The broker's current master epoch (its newest epoch-history entry).
        epoch: Option<i32> = "epoch",
        max_offset: Option<i64> = "maxOffset",
        confirm_offset: Option<i64> = "confirmOffset",
        /// After how long without a heartbeat the controller may consider the broker dead.
        heartbeat_timeout_mills: Option<i64> = "heartbeatTimeoutMills",
        /// Smaller value = preferred in an election (`brokerElectionPriority`).
        election_priority: Option<i32> = "electionPriority",
    }
}

/// An ext field of rmq-fast's answer to `BROKER_HEARTBEAT`: "true" when the answering member
/// recorded the heartbeat as raft leader (replicated it), "false" when it only noted its
/// receipt as a follower. Brokers heartbeat every member; only a recording leader's answer
/// proves the controller still counts them alive (fencing). RocketMQ's controllers do not
/// send it: then only the answer of the member the broker believes leads counts.
pub const HEARTBEAT_RECORDED_BY_LEADER: &str = "recordedByLeader";

/// An ext field of rmq-fast's `CONTROLLER_NOT_LEADER` answer: the address of the leader as the
/// answering member knows it (the one `CONTROLLER_GET_METADATA_INFO` names), absent while it
/// knows none. A broker sends its next requests there at once instead of asking every member
/// again; RocketMQ's controllers do not send it (nor do its brokers read it).
pub const NOT_LEADER_KNOWN_LEADER: &str = "controllerLeaderAddress";

controller_header! {
    /// `CONTROLLER_ALTER_SYNC_STATE_SET` (1001) request; body: `SyncStateSet` (the new set and
    /// the sync-state-set epoch it replaces).
    AlterSyncStateSetRequestHeader {
        broker_name: Option<String> = "brokerName",
        master_broker_id: Option<i64> = "masterBrokerId",
        master_epoch: Option<i32> = "masterEpoch",
        invoke_time: i64 = "invokeTime",
    }
}

controller_header! {
    /// `CONTROLLER_ALTER_SYNC_STATE_SET` response.
    AlterSyncStateSetResponseHeader {
        new_sync_state_set_epoch: i32 = "newSyncStateSetEpoch",
    }
}

controller_header! {
    /// `CONTROLLER_ELECT_MASTER` (1002) request, from a broker (`designateElect=false`,
    /// `brokerId` = itself) or from `mqadmin electMaster` (`designateElect=true`).
    ElectMasterRequestHeader {
        cluster_name: String = "clusterName",
        broker_name: String = "brokerName",
        broker_id: i64 = "brokerId",
        designate_elect: bool = "designateElect",
        invoke_time: Option<i64> = "invokeTime",
    }
}

controller_header! {
    /// `CONTROLLER_ELECT_MASTER` response; body: `ElectMasterResponseBody`.
    ElectMasterResponseHeader {
        master_broker_id: Option<i64> = "masterBrokerId",
        master_address: Option<String> = "masterAddress",
        master_epoch: Option<i32> = "masterEpoch",
        sync_state_set_epoch: Option<i32> = "syncStateSetEpoch",
    }
}

controller_header! {
    /// `CONTROLLER_GET_METADATA_INFO` (1005) response (no request header).
    GetMetaDataResponseHeader {
        group: Option<String> = "group",
        controller_leader_id: Option<String> = "controllerLeaderId",
        controller_leader_address: Option<String> = "controllerLeaderAddress",
        is_leader: bool = "isLeader",
        /// `id-host:port;id-host:port;...`
        peers: Option<String> = "peers",
    }
}

controller_header! {
    /// `CONTROLLER_GET_REPLICA_INFO` (1004) request.
    GetReplicaInfoRequestHeader {
        broker_name: Option<String> = "brokerName",
    }
}

controller_header! {
    /// `CONTROLLER_GET_REPLICA_INFO` response; body: `SyncStateSet`.
    GetReplicaInfoResponseHeader {
        master_broker_id: Option<i64> = "masterBrokerId",
        master_address: Option<String> = "masterAddress",
        master_epoch: Option<i32> = "masterEpoch",
    }
}

controller_header! {
    /// `CLEAN_BROKER_DATA` (1011) request (mqadmin `cleanBrokerMetadata`).
    CleanControllerBrokerDataRequestHeader {
        cluster_name: Option<String> = "clusterName",
        broker_name: String = "brokerName",
        /// `id;id;...`; absent = the whole broker group.
        broker_controller_ids_to_clean: Option<String> = "brokerControllerIdsToClean",
        is_clean_living_broker: Option<bool> = "isCleanLivingBroker",
        invoke_time: Option<i64> = "invokeTime",
    }
}

controller_header! {
    /// `CONTROLLER_GET_NEXT_BROKER_ID` (1012) request.
    GetNextBrokerIdRequestHeader {
        cluster_name: Option<String> = "clusterName",
        broker_name: Option<String> = "brokerName",
    }
}

controller_header! {
    /// `CONTROLLER_GET_NEXT_BROKER_ID` response.
    GetNextBrokerIdResponseHeader {
        cluster_name: Option<String> = "clusterName",
        broker_name: Option<String> = "brokerName",
        next_broker_id: Option<i64> = "nextBrokerId",
    }
}

controller_header! {
    /// `CONTROLLER_APPLY_BROKER_ID` (1013) request: claim `appliedBrokerId` for the broker
    /// identified by `registerCheckCode` (RocketMQ 5: `address;timestamp`).
    ApplyBrokerIdRequestHeader {
        cluster_name: Option<String> = "clusterName",
        broker_name: Option<String> = "brokerName",
        applied_broker_id: Option<i64> = "appliedBrokerId",
        register_check_code: Option<String> = "registerCheckCode",
    }
}

controller_header! {
    /// `CONTROLLER_APPLY_BROKER_ID` response.
    ApplyBrokerIdResponseHeader {
        cluster_name: Option<String> = "clusterName",
        broker_name: Option<String> = "brokerName",
    }
}

controller_header! {
    /// `CONTROLLER_REGISTER_BROKER` (1003) request, after the broker has its id.
    RegisterBrokerToControllerRequestHeader {
        cluster_name: Option<String> = "clusterName",
        broker_name: Option<String> = "brokerName",
        broker_id: Option<i64> = "brokerId",
        broker_address: Option<String> = "brokerAddress",
        invoke_time: Option<i64> = "invokeTime",
    }
}

controller_header! {
    /// `CONTROLLER_REGISTER_BROKER` response; body: `SyncStateSet`.
    RegisterBrokerToControllerResponseHeader {
        cluster_name: Option<String> = "clusterName",
        broker_name: Option<String> = "brokerName",
        master_broker_id: Option<i64> = "masterBrokerId",
        master_address: Option<String> = "masterAddress",
        master_epoch: Option<i32> = "masterEpoch",
        sync_state_set_epoch: Option<i32> = "syncStateSetEpoch",
    }
}

controller_header! {
    /// `NOTIFY_BROKER_ROLE_CHANGED` (1008), controller → broker, one-way; body: `SyncStateSet`.
    NotifyBrokerRoleChangedRequestHeader {
        master_address: Option<String> = "masterAddress",
        master_epoch: Option<i32> = "masterEpoch",
        sync_state_set_epoch: Option<i32> = "syncStateSetEpoch",
        master_broker_id: Option<i64> = "masterBrokerId",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_through_ext_fields_with_java_names() {
        let header = BrokerHeartbeatRequestHeader {
            cluster_name: "DefaultCluster".into(),
            broker_addr: "127.0.0.1:10911".into(),
            broker_name: "broker-a".into(),
            broker_id: Some(2),
            epoch: Some(3),
            max_offset: Some(1024),
            confirm_offset: None,
            heartbeat_timeout_mills: Some(10_000),
            election_priority: Some(1),
        };
        let mut cmd = RemotingCommand::new_request(controller_request_code::BROKER_HEARTBEAT);
        header.write_to(&mut cmd);
        assert_eq!(cmd.ext("brokerAddr"), Some("127.0.0.1:10911"));
        assert_eq!(cmd.ext("heartbeatTimeoutMills"), Some("10000"));
        assert_eq!(cmd.ext("confirmOffset"), None, "null is an absent field");
        assert_eq!(BrokerHeartbeatRequestHeader::read(&cmd).unwrap(), header);
    }

    #[test]
    fn a_missing_required_field_is_an_error_naming_it() {
        let mut cmd =
            RemotingCommand::new_request(controller_request_code::CONTROLLER_ELECT_MASTER);
        cmd.set_ext("clusterName", "c");
        cmd.set_ext("brokerName", "b");
        cmd.set_ext("designateElect", "true");
        let err = ElectMasterRequestHeader::read(&cmd).unwrap_err();
        assert_eq!(err.field, "brokerId");
        cmd.set_ext("brokerId", "x1");
        assert_eq!(
            ElectMasterRequestHeader::read(&cmd).unwrap_err().field,
            "brokerId"
        );
        cmd.set_ext("brokerId", "1");
        let header = ElectMasterRequestHeader::read(&cmd).unwrap();
        assert!(header.designate_elect);
        assert_eq!(header.invoke_time, None);
    }

    #[test]
    fn controller_codes_have_names_and_do_not_collide_with_4x_codes() {
        use super::super::request_code;
        for code in [
            904, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
        ] {
            assert!(controller_request_code::name(code).is_some(), "{code}");
            assert_eq!(request_code::name(code), None, "{code} is a 4.9.8 code");
        }
    }
}
