//! The built-in metrics endpoint: RocketMQ 5's `metricsExporterType=2` (PROM), an HTTP
//! server answering `GET /metrics` with the Prometheus text format, with RocketMQ 5's
//! metric names and labels plus rmq-fast's own (docs/metrics.md lists every metric).
//!
//! - `counters`: what each core counts (per-core, no atomics, no locks) and the one-line
//!   hooks of the send, pull, request and connection paths.
//! - `histogram`: fixed-bucket histograms, merged across cores at scrape time.
//! - `collect`: a scrape asks every core for its counters and its shards' state.
//! - `scrape`: the merged view, with consumer lag and storage figures.
//! - `exposition`: that view in the Prometheus text format (prometheus-client's encoder).
//! - `http`: the listener, a thread of its own outside the cores' runtimes.
//!
//! With the endpoint off (the default) nothing is installed and each hook costs one
//! thread-local flag check.

pub mod collect;
pub mod counters;
pub mod exposition;
pub mod histogram;
pub mod http;
pub mod scrape;

use rmq_core::config::{BrokerConfig, MetricsExporterType};

pub use collect::{MetricsHub, start_core};
pub use counters::{counted_connection, on_dlq, on_pull, on_rpc, on_send, rpc_started};

/// Whether this broker serves `GET /metrics`.
pub fn exporter_on(config: &BrokerConfig) -> bool {
    config.metrics_exporter_type == MetricsExporterType::Prom
}
