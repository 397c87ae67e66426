//! The Grafana dashboard (docs/grafana/rmq-fast.json) parses as JSON and queries only metrics
//! the broker serves, and docs/metrics.md documents every metric the broker serves. The set
//! of served metrics comes from rendering a scrape with one row of everything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use rmq_broker::metrics::collect::ShardSnapshot;
use rmq_broker::metrics::counters::{InStats, MessageType, OutStats};
use rmq_broker::metrics::exposition::render;
use rmq_broker::metrics::histogram::{Histogram, LATENCY_MS_BUCKETS, RPC_LATENCY_BUCKETS};
use rmq_broker::metrics::scrape::{Disk, Lag, Scrape};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn full_scrape() -> Scrape {
    let mut messages_in = BTreeMap::new();
    messages_in.insert(("T".to_string(), MessageType::Normal), InStats::default());
    let mut messages_out = BTreeMap::new();
    messages_out.insert(("G".to_string(), "T".to_string()), OutStats::default());
    let mut rpc = BTreeMap::new();
    rpc.insert((10, 0), Histogram::new(RPC_LATENCY_BUCKETS));
    let mut lag = BTreeMap::new();
    lag.insert(("G".to_string(), "T".to_string()), Lag::default());
    Scrape {
        cluster: "C".into(),
        node_id: "B".into(),
        extra_labels: vec![("region".into(), "eu-1".into())],
        messages_in,
        messages_out,
        dlq: BTreeMap::from([(("G".to_string(), "T".to_string()), 1)]),
        rpc,
        send_latency_ms: Histogram::new(LATENCY_MS_BUCKETS),
        pull_latency_ms: Histogram::new(LATENCY_MS_BUCKETS),
        connections: vec![(0, 1)],
        lag,
        shards: vec![ShardSnapshot {
            shard: 0,
            appended: 10,
            written: 10,
            flushed: 5,
            stats: rmq_storage::ShardStats::default(),
            slaves: 1,
            replicated: Some(7),
        }],
        topic_number: 1,
        consumer_group_number: 1,
        broker_permission: 6,
        disk: Some(Disk {
            total_bytes: 100,
            used_bytes: 50,
        }),
        forced_cleanup_unconsumed: (3, 3000),
    }
}

#[test]
fn metrics_label_is_on_every_sample() {
    let text = render(full_scrape()).unwrap();
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(samples.len() > 20);
    for line in samples {
        assert!(line.contains("region=\"eu-1\""), "{line}");
    }
}

/// Metric name → type, from the `# TYPE` lines.
fn served() -> BTreeMap<String, String> {
    let text = render(full_scrape()).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect()
}

/// Every `rocketmq_*` / `rmq_*` identifier in `text`.
fn metric_tokens(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let starts = (text[i..].starts_with("rocketmq_") || text[i..].starts_with("rmq_"))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let end = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| i + n);
            found.insert(text[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

/// Whether `token` is a served sample name (histograms also as _bucket/_sum/_count).
fn is_served(served: &BTreeMap<String, String>, token: &str) -> bool {
    if served.contains_key(token) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        token
            .strip_suffix(suffix)
            .is_some_and(|base| served.get(base).is_some_and(|kind| kind == "histogram"))
    })
}

fn expressions(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match v {
                    serde_json::Value::String(s) if key == "expr" || key == "definition" => {
                        out.push(s.clone())
                    }
                    _ => expressions(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_queries_only_served_metrics() {
    let served = served();
    assert!(
        served.contains_key("rocketmq_messages_in_total"),
        "{served:?}"
    );
    let text = std::fs::read_to_string(repo().join("docs/grafana/rmq-fast.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has queries: {exprs:?}");
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        let tokens = metric_tokens(expr);
        assert!(!tokens.is_empty(), "query without a metric: {expr}");
        for token in tokens {
            assert!(
                is_served(&served, &token),
                "dashboard queries {token}, not served: {expr}"
            );
            queried.insert(token);
        }
    }
    for required in [
        "rocketmq_messages_in_total",
        "rocketmq_consumer_lag_messages",
    ] {
        assert!(queried.contains(required), "dashboard lacks {required}");
    }
}

#[test]
fn metrics_doc_lists_every_served_metric() {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    for name in served().keys() {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/metrics.md does not list `{name}`"
        );
    }
    let served = served();
    for token in metric_tokens(&doc) {
        // named in the doc as RocketMQ 5 metrics rmq-fast does not serve
        if token.ends_with('_') || token == "rocketmq_processor_watermark" {
            continue;
        }
        assert!(
            is_served(&served, &token),
            "docs/metrics.md names {token}, not served"
        );
    }
}
