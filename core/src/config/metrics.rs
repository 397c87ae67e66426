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
