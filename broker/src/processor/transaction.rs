//! END_TRANSACTION (37, usually oneway): the producer's commit / rollback of a half message,
//! either right after its local transaction or in answer to CHECK_TRANSACTION_STATE
//! (`fromTransactionCheck=true`).
//!
//! Contract: the half message is found by `commitLogOffset` and must be in the half topic at
//! queue offset `tranStateTableOffset` with `PGROUP == producerGroup`. Commit re-puts it to its
//! real queue (sysflag COMMIT, `REAL_TOPIC`/`REAL_QID` removed, prepared offset = the half's
//! commit-log offset), then logs an op record; rollback only logs the op record. A half message
//! already decided is acknowledged without effect, so a repeated commit never delivers twice.
//! `commitOrRollback=0` (unknown) changes nothing: the check service will ask again.

use std::rc::Rc;

use rmq_core::message::properties::{self, keys};
use rmq_core::message::sysflag::{TRANSACTION_COMMIT_TYPE, reset_transaction_value};
use rmq_core::message::{RecordView, parse_record};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::{Processed, header, reply, success};
use crate::context::now_ms;
use crate::core_context::CoreContext;
use crate::schedule::reput::{ReputError, Target, append_on_owner, read_by_offset, reput};
use crate::transaction::{COMMIT, HALF_QUEUE, HALF_TOPIC, OP_TOPIC, ROLLBACK, op_record};

struct EndHeader {
    producer_group: String,
    half_offset: i64,
    commit_log_offset: i64,
    decision: i32,
    from_check: bool,
}

fn parse(req: &RemotingCommand) -> Result<EndHeader, RemotingCommand> {
    Ok(EndHeader {
        producer_group: header(req, req.ext_str("producerGroup"))?.to_string(),
        half_offset: header(req, req.ext_i64("tranStateTableOffset"))?,
        commit_log_offset: header(req, req.ext_i64("commitLogOffset"))?,
        decision: header(req, req.ext_i32("commitOrRollback"))?,
        from_check: header(req, req.ext_opt_bool("fromTransactionCheck"))?.unwrap_or(false),
    })
}

pub async fn end_transaction(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    if broker.is_slave() {
        let remark = "Can't commit or rollback a transaction on a slave broker".to_string();
        return Err(reply(req, ResponseCode::SlaveNotAvailable, remark));
    }
    let head = parse(req)?;
    if let Err(remark) = crate::topics::validate_group_name(&head.producer_group) {
        return Err(reply(req, ResponseCode::SystemError, remark));
    }
    if head.decision != COMMIT && head.decision != ROLLBACK {
        tracing::debug!(
            half = head.half_offset,
            from_check = head.from_check,
            "transaction state unknown"
        );
        return Ok(success(req));
    }
    let state = &broker.transactions;
    if !state.claim(head.half_offset) {
        tracing::info!(half = head.half_offset, "transaction already decided");
        return Ok(success(req));
    }
    let outcome = decide(core, req, &head).await;
    if let Err(response) = &outcome {
        state.release(head.half_offset);
        tracing::warn!(
            half = head.half_offset,
            commit_log_offset = head.commit_log_offset,
            "END_TRANSACTION failed: {}",
            response.remark.as_deref().unwrap_or_default()
        );
    }
    outcome
}

/// Applies a claimed decision.
async fn decide(core: &Rc<CoreContext>, req: &RemotingCommand, head: &EndHeader) -> Processed {
    let broker = &core.broker;
    let failed = |remark: String| reply(req, ResponseCode::SystemError, remark);
    let raw = read_by_offset(core, head.commit_log_offset)
        .await
        .map_err(|e| failed(format!("Find prepared transaction message failed: {e}")))?
        .ok_or_else(|| failed("Find prepared transaction message failed".to_string()))?;
    let view = parse_record(&raw).map_err(|e| failed(format!("bad half message: {e}")))?;
    check_half(&view, head).map_err(failed)?;
    if head.decision == COMMIT {
        let target = committed_target(&view, head.commit_log_offset).map_err(failed)?;
        // Waits for the policy (under SYNC_MASTER the slave) before the op record is written;
        // a copy only the master holds counts as committed, as RocketMQ's end-transaction.
        ReputError::stored_on_master(reput(core, &view, &target).await)
            .map_err(|e| failed(format!("commit of the half message failed: {e}")))?;
    }
    let op = op_record(broker.broker_addr, head.half_offset, now_ms())
        .map_err(|e| failed(e.to_string()))?;
    crate::transaction::ensure_topic(broker, OP_TOPIC);
    let appended =
        ReputError::stored_on_master(append_on_owner(core, OP_TOPIC, HALF_QUEUE, op).await)
            .map_err(|e| failed(format!("cannot log the transaction decision: {e}")))?;
    broker
        .transactions
        .resolve(head.half_offset, appended.queue_offset);
    Ok(success(req))
}

/// The half message must be the one the producer names.
fn check_half(view: &RecordView<'_>, head: &EndHeader) -> Result<(), String> {
    if view.topic() != HALF_TOPIC {
        return Err(format!(
            "the message at {} is not a half message",
            head.commit_log_offset
        ));
    }
    if view.queue_offset() != head.half_offset {
        return Err(format!(
            "The prepare message queue offset {} does not match tranStateTableOffset {}",
            view.queue_offset(),
            head.half_offset
        ));
    }
    let group = properties::get_property(view.properties(), keys::PGROUP);
    if group != Some(head.producer_group.as_str()) {
        return Err("The producer group wrong".to_string());
    }
    Ok(())
}

/// The committed message: real topic and queue, sysflag COMMIT.
fn committed_target(view: &RecordView<'_>, half_physical: i64) -> Result<Target, String> {
    let props = view.properties();
    let topic = properties::get_property(props, keys::REAL_TOPIC)
        .ok_or("half message without REAL_TOPIC")?;
    let queue_id: i32 = properties::get_property(props, keys::REAL_QID)
        .and_then(|q| q.parse().ok())
        .ok_or("half message without REAL_QID")?;
    // Never re-put into a system queue (a loop); clients cannot send there either.
    if crate::topics::is_not_allowed_send_topic(topic) {
        return Err(format!(
            "half message's REAL_TOPIC {topic} is a system topic"
        ));
    }
    let props = properties::remove_property(props, keys::REAL_TOPIC);
    let props = properties::remove_property(&props, keys::REAL_QID);
    let mut target = Target::like(view, topic, queue_id, props);
    target.sys_flag = reset_transaction_value(view.sys_flag(), TRANSACTION_COMMIT_TYPE);
    target.prepared_transaction_offset = half_physical;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rmq_core::message::NewRecord;

    fn half_with_real_topic(real_topic: &str) -> BytesMut {
        let props = properties::encode_properties([("REAL_TOPIC", real_topic), ("REAL_QID", "0")]);
        let host: std::net::SocketAddr = "127.0.0.1:10911".parse().unwrap();
        let mut out = BytesMut::new();
        NewRecord {
            topic: HALF_TOPIC,
            queue_id: HALF_QUEUE,
            flag: 0,
            body: b"half",
            properties: &props,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
        .encode_into(&mut out)
        .unwrap();
        out
    }

    /// A commit never re-puts into a system queue, whatever the half message says.
    #[test]
    fn commit_never_targets_a_system_queue() {
        let ok = half_with_real_topic("T");
        let target = committed_target(&parse_record(&ok).unwrap(), 7).unwrap();
        assert_eq!(target.topic, "T");
        for system in [
            "SCHEDULE_TOPIC_XXXX",
            "rmq_sys_timer_buckets",
            HALF_TOPIC,
            OP_TOPIC,
        ] {
            let bytes = half_with_real_topic(system);
            assert!(
                committed_target(&parse_record(&bytes).unwrap(), 7).is_err(),
                "{system}"
            );
        }
    }
}
