//! RocketMQ 5's metrics keys (`metricsExporterType`, `metricsPromExporterHost`,
//! `metricsPromExporterPort`), read by rmq-fast's built-in Prometheus endpoint.
//!
//! RocketMQ 5 accepts the exporter type as its number (`2`) or its enum name (`PROM`); so do
//! we, in any case. Only `DISABLE` (0, the default) and `PROM` (2) are served: `OTLP_GRPC`
//! (1) and `LOG` (3) load with a "not implemented" warning and export nothing.

use std::fmt;

use super::value::ConfigValue;

/// Where metrics go (`metricsExporterType`, RocketMQ 5's `MetricsExporterType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExporterType {
    /// 0: no metrics endpoint (the default).
    Disable,
    /// 1: OpenTelemetry gRPC push (not implemented by rmq-fast).
    OtlpGrpc,
    /// 2: an HTTP endpoint serving the Prometheus text format on `GET /metrics`.
    Prom,
    /// 3: metrics written to the log (not implemented by rmq-fast).
    Log,
}

impl MetricsExporterType {
    pub const ALL: [MetricsExporterType; 4] = [
        MetricsExporterType::Disable,
        MetricsExporterType::OtlpGrpc,
        MetricsExporterType::Prom,
        MetricsExporterType::Log,
    ];

    /// The Java enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsExporterType::Disable => "DISABLE",
            MetricsExporterType::OtlpGrpc => "OTLP_GRPC",
            MetricsExporterType::Prom => "PROM",
            MetricsExporterType::Log => "LOG",
        }
    }

    /// The Java enum value (what RocketMQ 5 writes in GET_BROKER_CONFIG).
    pub fn number(self) -> u8 {
        match self {
            MetricsExporterType::Disable => 0,
            MetricsExporterType::OtlpGrpc => 1,
            MetricsExporterType::Prom => 2,
            MetricsExporterType::Log => 3,
        }
    }
}

impl ConfigValue for MetricsExporterType {
    fn parse_value(raw: &str) -> Result<Self, String> {
        let wanted = raw.trim();
        MetricsExporterType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str().eq_ignore_ascii_case(wanted) || t.number().to_string() == wanted)
            .ok_or_else(|| {
                format!(
                    "invalid value \"{raw}\"; allowed values: 0 (DISABLE), 1 (OTLP_GRPC), \
                     2 (PROM), 3 (LOG)"
                )
            })
    }
    fn render_value(&self) -> Option<String> {
        Some(self.number().to_string())
    }
}

/// Extra labels on every metric (`metricsLabel`, RocketMQ 5): `name:value` pairs separated by
/// commas, e.g. `region:eu-1,az:b`. RocketMQ skips a malformed pair with a warning; we refuse
/// the value, naming the pair. Label names follow Prometheus' rule
/// (`[a-zA-Z_][a-zA-Z0-9_]*`) and may not replace the node labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsLabels(pub Vec<(String, String)>);

/// Labels every sample has already.
const NODE_LABELS: [&str; 3] = ["cluster", "node_type", "node_id"];

impl ConfigValue for MetricsLabels {
    fn parse_value(raw: &str) -> Result<Self, String> {
        let mut labels = Vec::new();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once(':') else {
                return Err(format!("\"{pair}\" is not name:value"));
            };
            let name = name.trim();
            let valid = name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if name.is_empty() || !valid || value.contains(':') {
                return Err(format!(
                    "\"{pair}\": a label is name:value with a name of letters, digits and _"
                ));
            }
            if NODE_LABELS.contains(&name)
                || labels.iter().any(|(n, _): &(String, String)| n == name)
            {
                return Err(format!(
                    "label \"{name}\" is given twice or is a node label"
                ));
            }
            labels.push((name.to_string(), value.trim().to_string()));
        }
        Ok(MetricsLabels(labels))
    }
    fn render_value(&self) -> Option<String> {
        let pairs: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}:{v}")).collect();
        Some(pairs.join(","))
    }
}

impl fmt::Display for MetricsExporterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_parse_alike() {
        for (raw, want) in [
            ("0", MetricsExporterType::Disable),
            ("2", MetricsExporterType::Prom),
            ("prom", MetricsExporterType::Prom),
            (" OTLP_GRPC ", MetricsExporterType::OtlpGrpc),
            ("3", MetricsExporterType::Log),
        ] {
            assert_eq!(MetricsExporterType::parse_value(raw), Ok(want), "{raw}");
        }
        let error = MetricsExporterType::parse_value("4").unwrap_err();
        assert!(error.contains("2 (PROM)"), "{error}");
        assert_eq!(
            MetricsExporterType::Prom.render_value().as_deref(),
            Some("2")
        );
    }

    #[test]
    fn labels_parse_and_bad_ones_are_refused() {
        assert_eq!(
            MetricsLabels::parse_value("region:eu-1, az:b").unwrap().0,
            vec![("region".into(), "eu-1".into()), ("az".into(), "b".into())]
        );
        assert_eq!(MetricsLabels::parse_value("").unwrap().0, vec![]);
        for bad in ["region", "1x:y", "a-b:c", "cluster:x", "a:1,a:2", "a:b:c"] {
            assert!(MetricsLabels::parse_value(bad).is_err(), "{bad}");
        }
        let labels = MetricsLabels::parse_value("a:1,b:2").unwrap();
        assert_eq!(labels.render_value().as_deref(), Some("a:1,b:2"));
    }

    #[test]
    fn unimplemented_exporters_warn_and_defaults_are_rocketmq5s() {
        let load = |pairs: &[(&str, &str)]| {
            let owned: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            crate::config::BrokerConfig::load(None, &owned).expect("loads")
        };
        let (config, warnings) = load(&[]);
        assert_eq!(config.metrics_exporter_type, MetricsExporterType::Disable);
        assert_eq!(config.metrics_prom_exporter_port, 5557);
        assert!(warnings.iter().all(|w| w.key != "metricsExporterType"));
        let (config, warnings) = load(&[("metricsExporterType", "1")]);
        assert_eq!(config.metrics_exporter_type, MetricsExporterType::OtlpGrpc);
        assert!(
            warnings
                .iter()
                .any(|w| w.key == "metricsExporterType" && w.message.contains("not implemented")),
            "{warnings:?}"
        );
        let (config, _) = load(&[
            ("metricsExporterType", "PROM"),
            ("metricsPromExporterPort", "9100"),
        ]);
        assert_eq!(config.metrics_exporter_type, MetricsExporterType::Prom);
        assert_eq!(config.metrics_prom_exporter_port, 9100);
    }
}
