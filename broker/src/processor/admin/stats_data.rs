//! VIEW_BROKER_STATS_DATA (315): one stats item (`TOPIC_PUT_NUMS` of a topic,
//! `GROUP_GET_NUMS` of `topic@group`, `BROKER_PUT_NUMS` of the cluster, ...) over the last
//! minute, hour and day, from the stats history (`stats::history`). An item never counted
//! is SYSTEM_ERROR "The stats <name> <key> not exist", as RocketMQ answers.

use std::rc::Rc;

use rmq_core::body::{BrokerStatsData, BrokerStatsItem, encode_body};
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::super::{Processed, header, reply, success};
use crate::core_context::CoreContext;
use crate::stats::history::{StatsName, Window};

pub async fn view_stats(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let name = header(req, req.ext_str("statsName"))?;
    let key = header(req, req.ext_str("statsKey"))?;
    let not_exist = || {
        let remark = format!("The stats <{name}> <{key}> not exist");
        reply(req, ResponseCode::SystemError, remark)
    };
    let stats_name = StatsName::parse(name).ok_or_else(not_exist)?;
    let broker = &core.broker;
    let live = broker.stats_hub.gather(core.core).await;
    let now = crate::context::now_ms();
    let cluster = &broker.config.broker_cluster_name;
    let [minute, hour, day] = broker
        .stats_history
        .windows(&live, now, stats_name, key, cluster)
        .ok_or_else(not_exist)?;
    let item = |w: Window| BrokerStatsItem::new(w.sum, w.tps, w.avgpt);
    let body = BrokerStatsData {
        stats_minute: item(minute),
        stats_hour: item(hour),
        stats_day: item(day),
    };
    Ok(success(req).with_body(encode_body(&body)))
}
