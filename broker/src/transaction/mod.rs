//! Transactional messages (RocketMQ 4.x two-phase sends).
//!
//! - **Prepare**: a send with `TRAN_MSG=true` is stored in `RMQ_SYS_TRANS_HALF_TOPIC` queue 0
//!   with `REAL_TOPIC`/`REAL_QID` and its transaction sysflag reset to NOT (so the store gives it
//!   a half-queue offset, which the producer echoes as `tranStateTableOffset`); nobody subscribes
//!   to the half topic, so it is invisible.
//! - **Decide** (END_TRANSACTION, `processor::transaction`): commit re-puts the half message to
//!   its real queue with sysflag COMMIT; rollback writes nothing there. Either way an **op
//!   record** goes to `RMQ_SYS_TRANS_OP_HALF_TOPIC` queue 0 (tags `d`, body = the half queue
//!   offset in decimal), as RocketMQ does: the op queue is the durable decision log.
//! - **Check back** ([`check`]): every `transactionCheckInterval`, half messages without an op
//!   record and older than `transactionTimeOut` (or their `CHECK_IMMUNITY_TIME_IN_SECONDS`) get
//!   CHECK_TRANSACTION_STATE sent to a live producer of their `PGROUP`, at most
//!   `transactionCheckMax` times; then they are discarded (an op record, no delivery).
//!
//! [`TransactionState`] is the in-memory view of the decision log, shared by all cores:
//! resolved half offsets at or above the **half watermark** (every half offset below it is
//! resolved), the check counts of pending ones, and the op-queue offset from which the log must
//! be re-read after a restart. It is persisted to `config/transactionProgress.json` after every
//! check round and at shutdown; the op records themselves are the source of truth, so losing
//! the file only means re-reading more of the op queue.

pub mod check;
pub mod state;

use std::net::SocketAddr;

use bytes::BytesMut;
use rmq_core::message::properties::{self, keys};
use rmq_core::message::sysflag::{TRANSACTION_NOT_TYPE, reset_transaction_value};
use rmq_core::message::{NewRecord, RecordError, hash::tags_code};

pub use state::TransactionState;

pub use crate::topics::TRANS_HALF_TOPIC as HALF_TOPIC;

/// The decision log topic.
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Tags of an op record ("delete the half message").
pub const OP_TAG: &str = "d";
/// Queue of the half topic and of the op topic.
pub const HALF_QUEUE: i32 = 0;

/// `END_TRANSACTION.commitOrRollback` values (transaction sysflag values).
pub const COMMIT: i32 = 8;
pub const ROLLBACK: i32 = 12;

/// Creates the half or op topic's config on its first use, as RocketMQ does, and has the
/// broker register it at once (before that, `topicList` does not show it, as on Apache).
pub fn ensure_topic(ctx: &crate::context::BrokerContext, topic: &str) {
    use rmq_core::body::{PERM_READ, PERM_WRITE};
    debug_assert!(topic == HALF_TOPIC || topic == OP_TOPIC, "{topic}");
    if ctx.topics.get(topic).is_some() {
        return;
    }
    let lookup = ctx
        .topics
        .create_if_absent(topic, 1, PERM_READ | PERM_WRITE);
    if matches!(lookup, crate::topics::TopicLookup::Created(_)) {
        ctx.request_topic_registration(topic);
    }
}

/// Properties and sysflag of the half message stored for a prepared send.
pub fn half_placement(
    props: &str,
    sys_flag: i32,
    real_topic: &str,
    real_queue: i32,
) -> (String, i32) {
    let props = properties::set_property(props, keys::REAL_TOPIC, real_topic);
    let props = properties::set_property(&props, keys::REAL_QID, &real_queue.to_string());
    (
        props,
        reset_transaction_value(sys_flag, TRANSACTION_NOT_TYPE),
    )
}

/// Encodes the op record resolving half queue offset `half_offset`.
///
/// # Errors
/// Never for these fixed short fields; typed for the caller's convenience.
pub fn op_record(
    broker_addr: SocketAddr,
    half_offset: i64,
    now_ms: i64,
) -> Result<(BytesMut, i64), RecordError> {
    let props = properties::encode_properties([(keys::TAGS, OP_TAG), (keys::WAIT, "false")]);
    let body = half_offset.to_string();
    let record = NewRecord {
        topic: OP_TOPIC,
        queue_id: HALF_QUEUE,
        flag: 0,
        body: body.as_bytes(),
        properties: &props,
        sys_flag: 0,
        born_timestamp: now_ms,
        born_host: broker_addr,
        store_host: broker_addr,
        reconsume_times: 0,
        prepared_transaction_offset: 0,
    };
    let mut buf = BytesMut::with_capacity(record.encoded_len());
    record.encode_into(&mut buf)?;
    Ok((buf, tags_code(Some(OP_TAG))))
}

/// The half offset an op record's body names, if it is one of ours.
pub fn op_half_offset(body: &[u8]) -> Option<i64> {
    std::str::from_utf8(body).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmq_core::message::parse_record;
    use rmq_core::message::sysflag::{TRANSACTION_PREPARED_TYPE, transaction_value};

    #[test]
    fn half_message_keeps_real_queue_and_loses_prepared_bit() {
        let (props, flag) =
            half_placement("TAGS\u{1}a\u{2}", TRANSACTION_PREPARED_TYPE | 1, "T", 3);
        assert_eq!(transaction_value(flag), TRANSACTION_NOT_TYPE);
        assert_eq!(flag & 1, 1);
        assert_eq!(properties::get_property(&props, "REAL_TOPIC"), Some("T"));
        assert_eq!(properties::get_property(&props, "REAL_QID"), Some("3"));
    }

    #[test]
    fn op_record_round_trips() {
        let addr: SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let (buf, tags) = op_record(addr, 42, 7).unwrap();
        let view = parse_record(&buf).unwrap();
        assert_eq!(view.topic(), OP_TOPIC);
        assert_eq!(op_half_offset(view.body()), Some(42));
        assert_eq!(tags, tags_code(Some("d")));
        assert_eq!(op_half_offset(b"x"), None);
    }
}
