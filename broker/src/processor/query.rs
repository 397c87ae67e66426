//! QUERY_MESSAGE (12): messages of a topic by key (UNIQ_KEY or one of KEYS) in a store-time
//! window, what `MQAdmin.queryMessage` and `viewMessage` by unique key send.
//!
//! Every shard has its own index, so the query fans out to all shards (each on its owner
//! core), and the answers are merged: newest first, at most `maxNum` records, the response
//! header carrying the largest `indexLastUpdateTimestamp` / `indexLastUpdatePhyoffset`. No
//! record: QUERY_NOT_FOUND, as RocketMQ answers (the client then asks the other brokers).

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use rmq_core::message::parse_record;
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_storage::QueryResult;

use super::{Processed, busy, header, reply, success};
use crate::core_context::CoreContext;

/// Header flag the client sets when the key is a UNIQ_KEY (`viewMessage` of a msgId).
const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

struct QueryHeader {
    topic: String,
    key: String,
    max_num: usize,
    begin_ms: i64,
    end_ms: i64,
}

fn parse_header(core: &CoreContext, req: &RemotingCommand) -> Result<QueryHeader, RemotingCommand> {
    let mut max_num = header(req, req.ext_i32("maxNum"))?;
    if header(req, req.ext_opt_bool(UNIQUE_KEY_QUERY))?.unwrap_or(false) {
        max_num = core.broker.config.default_query_max_num;
    }
    Ok(QueryHeader {
        topic: header(req, req.ext_str("topic"))?.to_string(),
        key: header(req, req.ext_str("key"))?.to_string(),
        max_num: usize::try_from(max_num.clamp(0, 64 * 1024)).unwrap_or(0),
        begin_ms: header(req, req.ext_i64("beginTimestamp"))?,
        end_ms: header(req, req.ext_i64("endTimestamp"))?,
    })
}

/// Handles one QUERY_MESSAGE request.
pub async fn process(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let head = parse_header(core, req)?;
    let mut answers = Vec::new();
    for shard in 0..core.broker.shard_count {
        let (topic, key) = (head.topic.clone(), head.key.clone());
        let (max, begin, end) = (head.max_num, head.begin_ms, head.end_ms);
        let answer = core
            .on_shard(shard, move |store| async move {
                store.query_by_key(&topic, &key, max, begin, end).await
            })
            .await
            .map_err(|error| busy(req, &error))?;
        match answer {
            Ok(result) => answers.push(result),
            Err(error) => {
                let remark = format!("store error: {error}");
                return Err(reply(req, ResponseCode::SystemError, remark));
            }
        }
    }
    let (last_timestamp, last_phy_offset) = last_update(&answers);
    let records = merge(answers, head.max_num);
    if records.is_empty() {
        let remark = "can not find message, maybe time range not correct".to_string();
        return Ok(reply(req, ResponseCode::QueryNotFound, remark)
            .with_ext("indexLastUpdateTimestamp", last_timestamp)
            .with_ext("indexLastUpdatePhyoffset", last_phy_offset));
    }
    let mut body = BytesMut::with_capacity(records.iter().map(Bytes::len).sum());
    for record in &records {
        body.extend_from_slice(record);
    }
    Ok(success(req)
        .with_ext("indexLastUpdateTimestamp", last_timestamp)
        .with_ext("indexLastUpdatePhyoffset", last_phy_offset)
        .with_body(body.freeze()))
}

fn last_update(answers: &[QueryResult]) -> (i64, i64) {
    let timestamp = answers
        .iter()
        .map(|a| a.index_last_update_timestamp)
        .max()
        .unwrap_or(0);
    let phy_offset = answers
        .iter()
        .map(|a| a.index_last_update_phy_offset)
        .max()
        .unwrap_or(0);
    (timestamp, phy_offset)
}

/// All shards' records, newest store time first, at most `max`.
fn merge(answers: Vec<QueryResult>, max: usize) -> Vec<Bytes> {
    let mut records: Vec<(i64, Bytes)> = answers
        .into_iter()
        .flat_map(|answer| answer.records)
        .map(|bytes| {
            let stored = parse_record(&bytes).map_or(0, |r| r.store_timestamp());
            (stored, bytes)
        })
        .collect();
    records.sort_by_key(|record| std::cmp::Reverse(record.0));
    records.truncate(max);
    records.into_iter().map(|(_, bytes)| bytes).collect()
}
