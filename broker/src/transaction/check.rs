//! The transaction check-back service (one task, on core 0; it reaches the half and op queues
//! through `on_shard`).
//!
//! Every `transactionCheckInterval`: read new op records into [`super::TransactionState`],
//! move the half watermark, then walk the half queue from the watermark. A pending half message
//! stored less than `transactionTimeOut` ago ends the walk (later ones are younger); one inside
//! its `CHECK_IMMUNITY_TIME_IN_SECONDS` is skipped; one checked `transactionCheckMax` times is
//! discarded (op record, never delivered); any other gets CHECK_TRANSACTION_STATE (oneway, body =
//! the half message re-encoded with its real topic and queue) sent to one live producer channel
//! of its `PGROUP`. The check is counted even when no producer is connected, as RocketMQ does,
//! so a transaction whose producer is gone for good is eventually discarded.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rmq_core::message::msg_id::offset_msg_id;
use rmq_core::message::properties::{self, keys};
use rmq_core::message::{NewRecord, RecordView, parse_record, patch_record};
use rmq_core::remoting::{RemotingCommand, request_code};
use rmq_storage::{GetMessages, StoreError};

use super::{HALF_QUEUE, HALF_TOPIC, OP_TOPIC, op_half_offset, op_record};
use crate::context::now_ms;
use crate::core_context::CoreContext;
use crate::schedule::reput::{ReputError, append_on_owner};

/// Records fetched per read.
const READ_BATCH: usize = 64;
/// Half messages one round may look at (the rest wait for the next round).
const ROUND_BUDGET: usize = 20_000;

/// Runs check rounds until the broker stops (masters only).
pub async fn check_loop(core: Rc<CoreContext>) {
    let ctx = core.broker.clone();
    if ctx.is_slave() && !ctx.role.controller_mode() {
        return;
    }
    let every = ctx.config.transaction_check_interval.clamp(100, 3_600_000);
    let mut last = now_ms();
    while !ctx.stopping.load(Ordering::Acquire) {
        rmq_net::rt::sleep(Duration::from_millis(100)).await;
        if now_ms() - last < every || ctx.is_slave() {
            // Controller mode: only a master checks.
            continue;
        }
        last = now_ms();
        if let Err(error) = round(&core).await {
            tracing::warn!("transaction check round failed: {error}");
        }
        ctx.transactions.persist();
    }
}

/// Reads `count` records of a queue from its owner shard, plus the queue's max offset.
async fn fetch(
    core: &Rc<CoreContext>,
    topic: &'static str,
    offset: i64,
) -> Result<(GetMessages, i64), ReputError> {
    let shard = core.broker.shard_of_queue(topic, HALF_QUEUE);
    let got = core
        .on_shard(shard, move |store| async move {
            let all = |_: i64| true;
            let got = store
                .get_messages(topic, HALF_QUEUE, offset, READ_BATCH, &all)
                .await?;
            Ok::<_, StoreError>((got, store.max_queue_offset(topic, HALF_QUEUE)))
        })
        .await??;
    Ok(got)
}

/// Calls `each` for every record in a pull body; stops early when it returns false.
fn for_records(body: &Bytes, mut each: impl FnMut(&RecordView<'_>) -> bool) {
    let mut rest = &body[..];
    while let Ok(view) = parse_record(rest) {
        rest = &rest[view.total_size()..];
        if !each(&view) {
            return;
        }
    }
}

async fn round(core: &Rc<CoreContext>) -> Result<(), ReputError> {
    let state = &core.broker.transactions;
    read_ops(core).await?;
    let (_, max_half) = fetch(core, HALF_TOPIC, state.half_watermark()).await?;
    state.advance_watermark(max_half);
    check_half_messages(core, max_half).await?;
    state.advance_watermark(max_half);
    Ok(())
}

/// Loads op records written since the last round (by any core, or before a restart).
async fn read_ops(core: &Rc<CoreContext>) -> Result<(), ReputError> {
    let state = &core.broker.transactions;
    loop {
        let offset = state.op_scanned();
        let (got, max) = fetch(core, OP_TOPIC, offset).await?;
        for_records(&got.body, |view| {
            if let Some(half) = op_half_offset(view.body()) {
                state.resolve(half, view.queue_offset());
            }
            true
        });
        let next = if got.count == 0 && offset > max {
            max
        } else {
            got.next_begin_offset
        };
        state.set_op_scanned(next);
        if got.count == 0 || next >= max {
            return Ok(());
        }
    }
}

async fn check_half_messages(core: &Rc<CoreContext>, max_half: i64) -> Result<(), ReputError> {
    let ctx = &core.broker;
    let timeout_ms = ctx.config.transaction_time_out.max(0);
    let mut offset = ctx.transactions.half_watermark();
    let mut budget = ROUND_BUDGET;
    while offset < max_half && budget > 0 {
        let (got, _) = fetch(core, HALF_TOPIC, offset).await?;
        if got.count == 0 {
            if got.next_begin_offset <= offset {
                return Ok(());
            }
            offset = got.next_begin_offset;
            continue;
        }
        let mut due = Vec::new();
        let mut young = false;
        for_records(&got.body, |view| {
            budget = budget.saturating_sub(1);
            let age = now_ms() - view.store_timestamp();
            if age < timeout_ms {
                young = true;
                return false;
            }
            due.push(Bytes::copy_from_slice(view.raw()));
            budget > 0
        });
        for raw in &due {
            if let Ok(view) = parse_record(raw) {
                check_one(core, &view).await?;
            }
        }
        if young {
            return Ok(());
        }
        offset = got.next_begin_offset;
    }
    Ok(())
}

/// Checks, discards or skips one old-enough half message.
async fn check_one(core: &Rc<CoreContext>, view: &RecordView<'_>) -> Result<(), ReputError> {
    let ctx = &core.broker;
    let state = &ctx.transactions;
    let half_offset = view.queue_offset();
    if state.is_resolved(half_offset) || state.is_in_flight(half_offset) {
        return Ok(());
    }
    let immunity_ms =
        properties::get_property(view.properties(), keys::CHECK_IMMUNITY_TIME_IN_SECONDS)
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map_or(0, |s| s.saturating_mul(1000));
    if state.check_times(half_offset) == 0 && now_ms() - view.store_timestamp() < immunity_ms {
        return Ok(());
    }
    if state.check_times(half_offset) >= ctx.config.transaction_check_max {
        return discard(core, half_offset).await;
    }
    state.bump_check(half_offset);
    send_check(core, view);
    Ok(())
}

/// Gives up on a half message: logs the decision so it is never checked or delivered again.
async fn discard(core: &Rc<CoreContext>, half_offset: i64) -> Result<(), ReputError> {
    let state = &core.broker.transactions;
    if !state.claim(half_offset) {
        return Ok(());
    }
    let record = op_record(core.broker.broker_addr, half_offset, now_ms())?;
    super::ensure_topic(&core.broker, OP_TOPIC);
    match ReputError::stored_on_master(append_on_owner(core, OP_TOPIC, HALF_QUEUE, record).await) {
        Ok(appended) => {
            state.resolve(half_offset, appended.queue_offset);
            tracing::warn!(
                half_offset,
                "half message discarded after transactionCheckMax checks"
            );
            Ok(())
        }
        Err(error) => {
            state.release(half_offset);
            Err(error)
        }
    }
}

/// Sends CHECK_TRANSACTION_STATE for a half message to one producer of its group.
fn send_check(core: &Rc<CoreContext>, view: &RecordView<'_>) {
    let ctx = &core.broker;
    let props = view.properties();
    let Some(group) = properties::get_property(props, keys::PGROUP) else {
        tracing::warn!(
            offset = view.queue_offset(),
            "half message without PGROUP cannot be checked"
        );
        return;
    };
    let channels: Vec<_> = ctx
        .clients
        .producer_channels(group)
        .into_iter()
        .filter(|c| c.sender.is_open())
        .collect();
    if channels.is_empty() {
        tracing::info!(group, "no live producer to check a half message with");
        return;
    }
    let Some(body) = check_body(ctx, view) else {
        return;
    };
    let pick = usize::try_from(view.queue_offset()).unwrap_or(0) % channels.len();
    let uniq = properties::get_property(props, keys::UNIQ_KEY).unwrap_or_default();
    let mut cmd = RemotingCommand::new_request(request_code::CHECK_TRANSACTION_STATE)
        .with_ext("tranStateTableOffset", view.queue_offset())
        .with_ext("commitLogOffset", view.physical_offset())
        .with_ext("msgId", uniq)
        .with_ext("transactionId", uniq)
        .with_ext(
            "offsetMsgId",
            offset_msg_id(ctx.broker_addr, view.physical_offset()),
        )
        .with_body(body);
    cmd.opaque = ctx.transactions.next_opaque();
    cmd.mark_oneway();
    channels[pick].sender.send(cmd);
}

/// The half message as the producer should see it: real topic and queue, stored offsets.
fn check_body(ctx: &crate::context::BrokerContext, view: &RecordView<'_>) -> Option<BytesMut> {
    let props = view.properties();
    let topic = properties::get_property(props, keys::REAL_TOPIC)?;
    let queue_id = properties::get_property(props, keys::REAL_QID)?
        .parse()
        .ok()?;
    let record = NewRecord {
        topic,
        queue_id,
        flag: view.flag(),
        body: view.body(),
        properties: props,
        sys_flag: view.sys_flag(),
        born_timestamp: view.born_timestamp(),
        born_host: view.born_host(),
        store_host: ctx.broker_addr,
        reconsume_times: view.reconsume_times(),
        prepared_transaction_offset: view.prepared_transaction_offset(),
    };
    let mut buf = BytesMut::with_capacity(record.encoded_len());
    record.encode_into(&mut buf).ok()?;
    patch_record(
        &mut buf,
        view.queue_offset(),
        view.physical_offset(),
        view.store_timestamp(),
    );
    Some(buf)
}
