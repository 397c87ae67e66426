//! The broker's own statistics, as RocketMQ's admin requests report them: the totals and
//! rates of GET_BROKER_RUNTIME_INFO (`putTps`, `msgPutTotalTodayNow`, ...) and the stats
//! items of VIEW_BROKER_STATS_DATA (`TOPIC_PUT_NUMS`, `GROUP_GET_NUMS`, ...).
//!
//! - `counters`: what each core counts, in a thread-local (plain integer adds: no atomic,
//!   no lock, nothing shared between cores on the send and pull paths). Always on.
//! - `hub`: a read asks every core for a copy of its counters and sums them.
//! - `history`: a sampler on core 0 keeps the summed counters over time (every second for
//!   the last 10 minutes, and coarser samples for a day), from which rates, the
//!   per-minute/hour/day stats items and the day marks (`msgPutTotalTodayMorning`) come.

pub mod counters;
pub mod history;
pub mod hub;

pub use counters::{CoreStats, on_get, on_put, on_put_failed, on_send_back};
pub use history::{StatsHistory, sampler_loop};
pub use hub::StatsHub;
