//! Numeric codes of the RocketMQ 4.x remoting protocol: request codes, response codes and
//! the client language tag.
//!
//! Wire format: every value here travels inside a remoting header (see `frame.rs`).
//! - request code: `code` of a request; JSON int, binary int16.
//! - response code: `code` of a response (flag bit 0 set); JSON int, binary int16.
//! - language: JSON name string (`"JAVA"`), binary int8 ordinal.
//!
//! The values are wire-stable: they come from `RequestCode`, `ResponseCode`,
//! `RemotingSysResponseCode` and `LanguageCode` of rocketmq-all-4.9.8. A value must never be
//! renumbered or reused for a different meaning, because clients already in the field send and
//! interpret them. 5.x codes are not listed; where 5.x reuses a 4.x number (209 to 211) the
//! 4.x meaning wins, since 4.x clients are the ones we serve.
//!
//! # Errors
//! Nothing here fails: lookups of unknown values return `None`, and the caller decides whether
//! that is `REQUEST_CODE_NOT_SUPPORTED` or merely an unnamed code in a log line.

/// Request codes of rocketmq-all-4.9.8 (`RequestCode`), named exactly as in Java so that logs
/// and grep across both code bases agree.
pub mod request_code {
    /// Declares each code as a `pub const` and builds [`name`] from the same list, so the two
    /// can never drift apart.
    macro_rules! request_codes {
        ($($name:ident = $value:literal,)*) => {
            $(pub const $name: i32 = $value;)*

            /// The Java constant name of a request code, for logs; `None` for codes that
            /// 4.9.8 does not define.
            pub fn name(code: i32) -> Option<&'static str> {
                match code {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// Every defined code, in declaration order; used by tests to check uniqueness.
            #[cfg(test)]
            pub(crate) const ALL: &[(i32, &str)] = &[$(($value, stringify!($name)),)*];
        };
    }

    request_codes! {
        SEND_MESSAGE = 10,
        PULL_MESSAGE = 11,
        QUERY_MESSAGE = 12,
        QUERY_BROKER_OFFSET = 13,
        QUERY_CONSUMER_OFFSET = 14,
        UPDATE_CONSUMER_OFFSET = 15,
        UPDATE_AND_CREATE_TOPIC = 17,
        GET_ALL_TOPIC_CONFIG = 21,
        GET_TOPIC_CONFIG_LIST = 22,
        GET_TOPIC_NAME_LIST = 23,
        UPDATE_BROKER_CONFIG = 25,
        GET_BROKER_CONFIG = 26,
        TRIGGER_DELETE_FILES = 27,
        GET_BROKER_RUNTIME_INFO = 28,
        SEARCH_OFFSET_BY_TIMESTAMP = 29,
        GET_MAX_OFFSET = 30,
        GET_MIN_OFFSET = 31,
        GET_EARLIEST_MSG_STORETIME = 32,
        VIEW_MESSAGE_BY_ID = 33,
        HEART_BEAT = 34,
        UNREGISTER_CLIENT = 35,
        CONSUMER_SEND_MSG_BACK = 36,
        END_TRANSACTION = 37,
        GET_CONSUMER_LIST_BY_GROUP = 38,
        CHECK_TRANSACTION_STATE = 39,
        NOTIFY_CONSUMER_IDS_CHANGED = 40,
        LOCK_BATCH_MQ = 41,
        UNLOCK_BATCH_MQ = 42,
        GET_ALL_CONSUMER_OFFSET = 43,
        GET_ALL_DELAY_OFFSET = 45,
        CHECK_CLIENT_CONFIG = 46,
        UPDATE_AND_CREATE_ACL_CONFIG = 50,
        DELETE_ACL_CONFIG = 51,
        GET_BROKER_CLUSTER_ACL_INFO = 52,
        UPDATE_GLOBAL_WHITE_ADDRS_CONFIG = 53,
        GET_BROKER_CLUSTER_ACL_CONFIG = 54,
        PUT_KV_CONFIG = 100,
        GET_KV_CONFIG = 101,
        DELETE_KV_CONFIG = 102,
        REGISTER_BROKER = 103,
        UNREGISTER_BROKER = 104,
        GET_ROUTEINFO_BY_TOPIC = 105,
        GET_BROKER_CLUSTER_INFO = 106,
        UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200,
        GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201,
        GET_TOPIC_STATS_INFO = 202,
        GET_CONSUMER_CONNECTION_LIST = 203,
        GET_PRODUCER_CONNECTION_LIST = 204,
        WIPE_WRITE_PERM_OF_BROKER = 205,
        GET_ALL_TOPIC_LIST_FROM_NAMESERVER = 206,
        DELETE_SUBSCRIPTIONGROUP = 207,
        GET_CONSUME_STATS = 208,
        SUSPEND_CONSUMER = 209,
        RESUME_CONSUMER = 210,
        RESET_CONSUMER_OFFSET_IN_CONSUMER = 211,
        RESET_CONSUMER_OFFSET_IN_BROKER = 212,
        ADJUST_CONSUMER_THREAD_POOL = 213,
        WHO_CONSUME_THE_MESSAGE = 214,
        DELETE_TOPIC_IN_BROKER = 215,
        DELETE_TOPIC_IN_NAMESRV = 216,
        GET_KVLIST_BY_NAMESPACE = 219,
        RESET_CONSUMER_CLIENT_OFFSET = 220,
        GET_CONSUMER_STATUS_FROM_CLIENT = 221,
        INVOKE_BROKER_TO_RESET_OFFSET = 222,
        INVOKE_BROKER_TO_GET_CONSUMER_STATUS = 223,
        GET_TOPICS_BY_CLUSTER = 224,
        QUERY_TOPIC_CONSUME_BY_WHO = 300,
        REGISTER_FILTER_SERVER = 301,
        REGISTER_MESSAGE_FILTER_CLASS = 302,
        QUERY_CONSUME_TIME_SPAN = 303,
        GET_SYSTEM_TOPIC_LIST_FROM_NS = 304,
        GET_SYSTEM_TOPIC_LIST_FROM_BROKER = 305,
        CLEAN_EXPIRED_CONSUMEQUEUE = 306,
        GET_CONSUMER_RUNNING_INFO = 307,
        QUERY_CORRECTION_OFFSET = 308,
        CONSUME_MESSAGE_DIRECTLY = 309,
        SEND_MESSAGE_V2 = 310,
        GET_UNIT_TOPIC_LIST = 311,
        GET_HAS_UNIT_SUB_TOPIC_LIST = 312,
        GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST = 313,
        CLONE_GROUP_OFFSET = 314,
        VIEW_BROKER_STATS_DATA = 315,
        CLEAN_UNUSED_TOPIC = 316,
        GET_BROKER_CONSUME_STATS = 317,
        UPDATE_NAMESRV_CONFIG = 318,
        GET_NAMESRV_CONFIG = 319,
        SEND_BATCH_MESSAGE = 320,
        QUERY_CONSUME_QUEUE = 321,
        QUERY_DATA_VERSION = 322,
        RESUME_CHECK_HALF_MESSAGE = 323,
        SEND_REPLY_MESSAGE = 324,
        SEND_REPLY_MESSAGE_V2 = 325,
        PUSH_REPLY_MESSAGE_TO_CLIENT = 326,
        ADD_WRITE_PERM_OF_BROKER = 327,
        GET_ALL_PRODUCER_INFO = 328,
        DELETE_EXPIRED_COMMITLOG = 329,
    }
}

/// Response codes of rocketmq-all-4.9.8: `RemotingSysResponseCode` (0 to 4) followed by
/// `ResponseCode`. The gaps (5 to 9, 29 to 199, 212 to 214) are unassigned in 4.x.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseCode {
    Success = 0,
    SystemError = 1,
    SystemBusy = 2,
    RequestCodeNotSupported = 3,
    TransactionFailed = 4,
    FlushDiskTimeout = 10,
    SlaveNotAvailable = 11,
    FlushSlaveTimeout = 12,
    MessageIllegal = 13,
    ServiceNotAvailable = 14,
    VersionNotSupported = 15,
    NoPermission = 16,
    TopicNotExist = 17,
    TopicExistAlready = 18,
    PullNotFound = 19,
    PullRetryImmediately = 20,
    PullOffsetMoved = 21,
    QueryNotFound = 22,
    SubscriptionParseFailed = 23,
    SubscriptionNotExist = 24,
    SubscriptionNotLatest = 25,
    SubscriptionGroupNotExist = 26,
    FilterDataNotExist = 27,
    FilterDataNotLatest = 28,
    TransactionShouldCommit = 200,
    TransactionShouldRollback = 201,
    TransactionStateUnknow = 202,
    TransactionStateGroupWrong = 203,
    NoBuyerId = 204,
    NotInCurrentUnit = 205,
    ConsumerNotOnline = 206,
    ConsumeMsgTimeout = 207,
    NoMessage = 208,
    UpdateAndCreateAclConfigFailed = 209,
    DeleteAclConfigFailed = 210,
    UpdateGlobalWhiteAddrsConfigFailed = 211,
    FlowControl = 215,
}

impl ResponseCode {
    /// Every variant, in numeric order; `from_code` searches it so the enum stays the single
    /// source of the numbers.
    const ALL: [ResponseCode; 37] = [
        Self::Success,
        Self::SystemError,
        Self::SystemBusy,
        Self::RequestCodeNotSupported,
        Self::TransactionFailed,
        Self::FlushDiskTimeout,
        Self::SlaveNotAvailable,
        Self::FlushSlaveTimeout,
        Self::MessageIllegal,
        Self::ServiceNotAvailable,
        Self::VersionNotSupported,
        Self::NoPermission,
        Self::TopicNotExist,
        Self::TopicExistAlready,
        Self::PullNotFound,
        Self::PullRetryImmediately,
        Self::PullOffsetMoved,
        Self::QueryNotFound,
        Self::SubscriptionParseFailed,
        Self::SubscriptionNotExist,
        Self::SubscriptionNotLatest,
        Self::SubscriptionGroupNotExist,
        Self::FilterDataNotExist,
        Self::FilterDataNotLatest,
        Self::TransactionShouldCommit,
        Self::TransactionShouldRollback,
        Self::TransactionStateUnknow,
        Self::TransactionStateGroupWrong,
        Self::NoBuyerId,
        Self::NotInCurrentUnit,
        Self::ConsumerNotOnline,
        Self::ConsumeMsgTimeout,
        Self::NoMessage,
        Self::UpdateAndCreateAclConfigFailed,
        Self::DeleteAclConfigFailed,
        Self::UpdateGlobalWhiteAddrsConfigFailed,
        Self::FlowControl,
    ];

    /// The wire value.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The variant for a wire value; `None` for values 4.9.8 does not define.
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|variant| variant.code() == code)
    }
}

/// The language a peer is written in (`LanguageCode`). Brokers only log it, but they must
/// echo a valid one, and JSON headers carry it by name.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LanguageCode {
    #[default]
    Java = 0,
    Cpp = 1,
    Dotnet = 2,
    Python = 3,
    Delphi = 4,
    Erlang = 5,
    Ruby = 6,
    Other = 7,
    Http = 8,
    Go = 9,
    Php = 10,
    Oms = 11,
    Rust = 12,
}

impl LanguageCode {
    /// Every variant with its Java name, indexed by ordinal.
    const NAMED: [(LanguageCode, &'static str); 13] = [
        (Self::Java, "JAVA"),
        (Self::Cpp, "CPP"),
        (Self::Dotnet, "DOTNET"),
        (Self::Python, "PYTHON"),
        (Self::Delphi, "DELPHI"),
        (Self::Erlang, "ERLANG"),
        (Self::Ruby, "RUBY"),
        (Self::Other, "OTHER"),
        (Self::Http, "HTTP"),
        (Self::Go, "GO"),
        (Self::Php, "PHP"),
        (Self::Oms, "OMS"),
        (Self::Rust, "RUST"),
    ];

    /// The variant for a binary-header ordinal; `None` when out of range.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::NAMED
            .get(usize::from(v))
            .map(|(language, _)| *language)
    }

    /// The Java enum name, as written in JSON headers (`"JAVA"`).
    pub fn name(self) -> &'static str {
        Self::NAMED[self as usize].1
    }

    /// The variant for a Java enum name. Case-insensitive, because hand-written non-Java
    /// clients have been seen sending `"Go"` and `"cpp"`.
    pub fn from_name(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::NAMED
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
            .map(|(language, _)| *language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn request_codes_are_unique_and_named() {
        let mut values = HashSet::new();
        for (value, name) in request_code::ALL {
            assert!(values.insert(*value), "duplicate request code {value}");
            assert_eq!(request_code::name(*value), Some(*name));
        }
        assert_eq!(request_code::SEND_MESSAGE_V2, 310);
        assert_eq!(
            request_code::name(request_code::HEART_BEAT),
            Some("HEART_BEAT")
        );
        assert_eq!(request_code::name(16), None);
        assert_eq!(request_code::name(-1), None);
    }

    #[test]
    fn response_codes_round_trip() {
        for variant in ResponseCode::ALL {
            assert_eq!(ResponseCode::from_code(variant.code()), Some(variant));
        }
        assert_eq!(ResponseCode::FlowControl.code(), 215);
        assert_eq!(ResponseCode::from_code(212), None);
        assert_eq!(ResponseCode::from_code(i32::MIN), None);
    }

    #[test]
    fn language_codes_by_ordinal_and_name() {
        for (ordinal, (language, name)) in LanguageCode::NAMED.iter().enumerate() {
            assert_eq!(*language as usize, ordinal);
            assert_eq!(LanguageCode::from_u8(ordinal as u8), Some(*language));
            assert_eq!(language.name(), *name);
            assert_eq!(LanguageCode::from_name(name), Some(*language));
        }
        assert_eq!(LanguageCode::from_u8(13), None);
        assert_eq!(LanguageCode::from_name("go"), Some(LanguageCode::Go));
        assert_eq!(LanguageCode::from_name("COBOL"), None);
    }
}
