//! GET_BROKER_CONSUME_STATS (317): for every subscription group, the consume stats of each
//! topic it has committed offsets for (RocketMQ's `fetchAllConsumeStatsInBroker`): the
//! queues' max offsets against the group's offsets, the group's pull rate over the last
//! minute, and the total lag of the broker. `isOrder=true` keeps only ordered topics; a
//! topic the group's online clients no longer subscribe to is left out.

use std::rc::Rc;

use rmq_core::body::{ConsumeStats, ConsumeStatsList, OffsetWrapper};
use rmq_core::remoting::RemotingCommand;

use super::super::{Processed, success};
use super::consume_stats::topics_of_group;
use super::queues::{queue_of, queue_offsets};
use crate::core_context::CoreContext;
use crate::stats::history::StatsName;

pub async fn broker_consume_stats(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let broker = &core.broker;
    let is_order = req
        .ext("isOrder")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let offsets = broker.offsets.wrapper();
    let live = broker.stats_hub.gather(core.core).await;
    let now = crate::context::now_ms();
    let cluster = &broker.config.broker_cluster_name;
    let mut groups: Vec<String> = broker
        .groups
        .all()
        .subscription_group_table
        .keys()
        .cloned()
        .collect();
    groups.sort();
    let mut body = ConsumeStatsList {
        broker_addr: broker.broker_addr.to_string(),
        ..ConsumeStatsList::default()
    };
    for group in groups {
        let online = broker.clients.consumer_data(&group).is_some();
        let mut list = Vec::new();
        for topic in topics_of_group(&offsets, &group) {
            let Some(config) = broker.topics.get(&topic) else {
                continue;
            };
            if is_order && !config.order {
                continue;
            }
            if online && broker.clients.subscription(&group, &topic).is_none() {
                continue;
            }
            let mut stats = ConsumeStats::default();
            for queue_id in 0..config.write_queue_nums {
                let consumer_offset = broker
                    .offsets
                    .query(&group, &topic, queue_id)
                    .unwrap_or(0)
                    .max(0);
                let last =
                    move |_min: i64, _max: i64| (consumer_offset > 0).then(|| consumer_offset - 1);
                let (_, broker_offset, last_timestamp) =
                    queue_offsets(core, req, &topic, queue_id, last).await?;
                body.total_diff += broker_offset - consumer_offset;
                stats.offset_table.insert(
                    queue_of(core, &topic, queue_id),
                    OffsetWrapper {
                        broker_offset,
                        consumer_offset,
                        last_timestamp,
                    },
                );
            }
            let key = format!("{topic}@{group}");
            stats.consume_tps = broker
                .stats_history
                .windows(&live, now, StatsName::GroupGetNums, &key, cluster)
                .map_or(0.0, |[minute, _, _]| minute.tps);
            list.push(stats);
        }
        body.consume_stats_list.push((group, list));
    }
    Ok(success(req).with_body(body.encode()))
}
