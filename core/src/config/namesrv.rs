//! Name server configuration: RocketMQ 4.9.8's NamesrvConfig and NettyServerConfig keys plus a
//! few rmq-fast keys, read from an optional `.properties` file (`-c`) and then overrides.
//!
//! Like NamesrvStartup, the default port is 9876 and `configStorePath` becomes the `-c` file.
//! The broker liveness timings are fixed constants in RocketMQ 4.9.8 (scan every 10 s, expire
//! after 120 s); rmq-fast makes them keys (`scanNotActiveBrokerInterval`, the 5.x name, and
//! `brokerChannelExpiredTime`) so tests can shorten them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::controller::ControllerConfig;
use super::error::{ConfigError, ConfigWarning};
use super::keys::{CONTROLLER_IGNORED, NAMESRV_IGNORED, NETTY_SERVER_IGNORED, find_ignored};
use super::loader::{COMMAND_LINE, KeySpace, apply_entries, read_properties_file};
use super::properties::Properties;
use super::value::{config_struct, home_path};

config_struct! {
    /// Every name server key rmq-fast reads into a typed field.
    #[derive(Debug, Clone)]
    pub struct NamesrvConfig {
        "listenPort" => listen_port: u16 = 9876,
        /// RocketMQ installation dir (env ROCKETMQ_HOME); informational.
        "rocketmqHome" => rocketmq_home: Option<String> =
            std::env::var("ROCKETMQ_HOME").ok().filter(|v| !v.trim().is_empty()),
        /// Where the KV config (PUT_KV_CONFIG, ORDER_TOPIC_CONFIG) is persisted.
        "kvConfigPath" => kv_config_path: String = home_path("namesrv/kvConfig.json"),
        /// The config file, as RocketMQ records it (replaced by the `-c` path).
        "configStorePath" => config_store_path: String = home_path("namesrv/namesrv.properties"),
        "productEnvName" => product_env_name: String = "center".to_owned(),
        "clusterTest" => cluster_test: bool = false,
        /// Return ORDER_TOPIC_CONFIG in routes (GET_ROUTEINFO_BY_TOPIC orderTopicConf).
        "orderMessageEnable" => order_message_enable: bool = false,
        /// Accepted, unused: rmq-fast has no worker pool.
        "serverWorkerThreads" => server_worker_threads: i32 = 8,
        "serverChannelMaxIdleTimeSeconds" => server_channel_max_idle_time_seconds: i32 = 120,
        /// rmq-fast key (5.x name): how often expired brokers are looked for, in ms.
        "scanNotActiveBrokerInterval" => scan_not_active_broker_interval_ms: u64 = 10_000,
        /// rmq-fast key: a broker not re-registered for this long (ms) is removed.
        "brokerChannelExpiredTime" => broker_channel_expired_time_ms: u64 = 120_000,
        /// RocketMQ 5: also run a controller member (the `ControllerConfig` keys of this file).
        "enableControllerInNamesrv" => enable_controller_in_namesrv: bool = false,
        /// rmq-fast extension: log directory.
        "logDir" => log_dir: PathBuf = PathBuf::from(home_path("logs/rocketmqlogs")),
        /// rmq-fast extension: largest accepted remoting frame.
        "maxFrameLength" => max_frame_length: u32 = 16 * 1024 * 1024,
        /// rmq-fast extension: requests of one connection handled at once; at the limit the
        /// connection is not read until replies drain.
        "connectionMaxInFlightRequests" => connection_max_in_flight_requests: u32 = 1024,
        /// rmq-fast extension: reply bytes of one connection queued and not yet written.
        "connectionMaxQueuedReplyBytes" => connection_max_queued_reply_bytes: u32 = 16 * 1024 * 1024,
    }
    extra {
        /// Keys accepted without effect, with the values given.
        ignored_keys: BTreeMap<String, String> = BTreeMap::new(),
    }
}

impl NamesrvConfig {
    /// Builds the config from an optional properties file, then `overrides` applied last.
    /// Unknown keys → warnings; bad values → Err naming the key and the file. Runs `validate()`.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<(NamesrvConfig, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = Vec::new();
        let mut config = NamesrvConfig::default();
        let mut source_name = COMMAND_LINE.to_owned();
        if let Some(path) = file {
            let (props, name) = read_properties_file(path)?;
            config.apply_properties(&props, &name, &mut warnings)?;
            config.config_store_path = name.clone();
            source_name = name;
        }
        config.apply_properties(
            &Properties::from_pairs(overrides),
            COMMAND_LINE,
            &mut warnings,
        )?;
        config.validate(&source_name)?;
        Ok((config, warnings))
    }

    /// Defaults, then `props`. Does not run `validate()`.
    pub fn from_properties(
        props: &Properties,
        source_name: &str,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<NamesrvConfig, ConfigError> {
        let mut config = NamesrvConfig::default();
        config.apply_properties(props, source_name, warnings)?;
        Ok(config)
    }

    /// Applies `props` on top of the current values (also usable for UPDATE_NAMESRV_CONFIG).
    pub fn apply_properties(
        &mut self,
        props: &Properties,
        source_name: &str,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        let keys = KeySpace {
            known: NamesrvConfig::KEYS,
            ignored: &[NETTY_SERVER_IGNORED, NAMESRV_IGNORED],
        };
        let mut ignored = BTreeMap::new();
        let result = apply_entries(props, source_name, &keys, warnings, &mut ignored, |entry| {
            let set = self.set_key(&entry.key, &entry.value);
            // Controller keys belong to the embedded controller, which reads the same file.
            set.or_else(|| is_controller_key(&entry.key).then_some(Ok(())))
        });
        self.ignored_keys.extend(ignored);
        result
    }

    /// Checks bounds. Errors name the key and `source_name`.
    pub fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| Err(ConfigError::new(source_name, key, message));
        if self.listen_port == 0 {
            return fail("listenPort", "port must be in 1..=65535, got 0".to_owned());
        }
        if self.scan_not_active_broker_interval_ms == 0 {
            return fail("scanNotActiveBrokerInterval", "must be > 0 ms".to_owned());
        }
        if self.broker_channel_expired_time_ms < self.scan_not_active_broker_interval_ms {
            let message = format!(
                "{} ms is shorter than scanNotActiveBrokerInterval ({} ms)",
                self.broker_channel_expired_time_ms, self.scan_not_active_broker_interval_ms
            );
            return fail("brokerChannelExpiredTime", message);
        }
        if self.max_frame_length < 64 * 1024 {
            return fail(
                "maxFrameLength",
                format!("{} is below the 65536-byte minimum", self.max_frame_length),
            );
        }
        if self.connection_max_in_flight_requests == 0 {
            return fail("connectionMaxInFlightRequests", "must be > 0".to_owned());
        }
        if self.connection_max_queued_reply_bytes == 0 {
            return fail("connectionMaxQueuedReplyBytes", "must be > 0".to_owned());
        }
        if self.kv_config_path.trim().is_empty() {
            return fail("kvConfigPath", "must not be empty".to_owned());
        }
        Ok(())
    }

    /// All keys with current values as "key=value\n" lines, for GET_NAMESRV_CONFIG.
    pub fn to_properties_text(&self) -> String {
        let mut out = String::new();
        self.render_keys(&mut out);
        for (key, value) in &self.ignored_keys {
            out.push_str(&format!("{key}={}\n", super::value::escape_value(value)));
        }
        out
    }
}

/// A key of the controller's config (read by it when `enableControllerInNamesrv=true`).
fn is_controller_key(key: &str) -> bool {
    let own = ControllerConfig::KEYS
        .iter()
        .any(|k| *k == key && !NamesrvConfig::KEYS.contains(k));
    own || find_ignored(&[CONTROLLER_IGNORED], key).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::properties::parse_properties;

    fn conf_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conf")
    }

    #[test]
    fn defaults_match_rocketmq() {
        let config = NamesrvConfig::default();
        assert_eq!(config.listen_port, 9876);
        assert!(config.kv_config_path.ends_with("namesrv/kvConfig.json"));
        assert_eq!(config.scan_not_active_broker_interval_ms, 10_000);
        assert_eq!(config.broker_channel_expired_time_ms, 120_000);
        assert!(!config.order_message_enable);
        config.validate("defaults").unwrap();
    }

    #[test]
    fn shipped_namesrv_properties_loads_cleanly() {
        let path = conf_dir().join("namesrv.properties");
        let (config, warnings) = NamesrvConfig::load(Some(&path), &[]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.listen_port, 9876);
        assert_eq!(config.config_store_path, path.display().to_string());
    }

    #[test]
    fn netty_keys_accepted_unknown_warned_overrides_win() {
        let props = parse_properties("serverSelectorThreads=3\nlistenPort=9877\nlistenport=1\n");
        let mut warnings = Vec::new();
        let mut config =
            NamesrvConfig::from_properties(&props, "n.properties", &mut warnings).unwrap();
        assert_eq!(config.listen_port, 9877);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].message.contains("did you mean `listenPort`"),
            "{}",
            warnings[0]
        );
        assert_eq!(
            config
                .ignored_keys
                .get("serverSelectorThreads")
                .map(String::as_str),
            Some("3")
        );
        let overrides = Properties::from_pairs(&[("listenPort".to_owned(), "9999".to_owned())]);
        config
            .apply_properties(&overrides, COMMAND_LINE, &mut warnings)
            .unwrap();
        assert_eq!(config.listen_port, 9999);
        assert!(config.to_properties_text().contains("listenPort=9999\n"));
    }

    #[test]
    fn bad_port_names_the_key_and_file() {
        let props = parse_properties("listenPort=98x6\n");
        let err = NamesrvConfig::from_properties(&props, "namesrv.properties", &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.key, "listenPort");
        assert_eq!(err.source_name, "namesrv.properties");
        assert!(
            err.to_string()
                .contains("expected an integer, got \"98x6\""),
            "{err}"
        );
    }
}
