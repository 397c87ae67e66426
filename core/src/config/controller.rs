//! Controller configuration (RocketMQ 5 controller mode): `ControllerConfig` keys of
//! rocketmq-all-5.3.3, read by `rmq-fast controller -c FILE` and, when a name server's file sets
//! `enableControllerInNamesrv=true`, from the name server's file.
//!
//! As in RocketMQ 5's DLedger controller, a member serves brokers and mqadmin on its own address
//! in `controllerDLegerPeers` (the port raft uses too); `listenPort` does not move it.
//! The keys of the other config sharing a file (the name server's when embedded) are not
//! reported as unknown: both configs read the same file, as Java's `properties2Object` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigWarning};
use super::keys::{CONTROLLER_IGNORED, IgnoredKey, NAMESRV_IGNORED, NETTY_SERVER_IGNORED};
use super::loader::{COMMAND_LINE, KeySpace, apply_entries, read_properties_file};
use super::properties::Properties;
use super::value::{config_struct, home_path};

config_struct! {
    /// Every controller key rmq-fast reads into a typed field.
    #[derive(Debug, Clone)]
    pub struct ControllerConfig {
        /// The raft group's name; every member must use the same.
        "controllerDLegerGroup" => controller_dleger_group: String = String::new(),
        /// Every member: `n0-host:port;n1-host:port;n2-host:port` (3 for fault tolerance).
        "controllerDLegerPeers" => controller_dleger_peers: String = String::new(),
        /// This member's name in `controllerDLegerPeers`.
        "controllerDLegerSelfId" => controller_dleger_self_id: String = String::new(),
        /// Raft log, vote and snapshot of this member.
        "controllerStorePath" => controller_store_path: String = home_path("DLedgerController"),
        /// Elect a master outside the sync-state set when none of it is alive (may lose
        /// acknowledged messages).
        "enableElectUncleanMaster" => enable_elect_unclean_master: bool = false,
        /// Send NOTIFY_BROKER_ROLE_CHANGED to a group's brokers after an election.
        "notifyBrokerRoleChanged" => notify_broker_role_changed: bool = true,
        /// How often the leader looks for brokers whose heartbeats stopped, in ms. rmq-fast's
        /// default is 100 ms, not RocketMQ 5's 5 s (it adds up to one interval to every
        /// failover after a partition; a scan reads memory and writes only when it elects).
        "scanNotActiveBrokerInterval" => scan_not_active_broker_interval_ms: u64 = 100,
        /// Accepted for RocketMQ files; the port is this member's in `controllerDLegerPeers`.
        "listenPort" => listen_port: u16 = 0,
        /// RocketMQ installation dir (env ROCKETMQ_HOME); informational.
        "rocketmqHome" => rocketmq_home: Option<String> =
            std::env::var("ROCKETMQ_HOME").ok().filter(|v| !v.trim().is_empty()),
        /// rmq-fast extension: raft heartbeat interval between members, in ms.
        "controllerRaftHeartbeatIntervalMs" => raft_heartbeat_interval_ms: u64 = 100,
        /// rmq-fast extension: raft election timeout in ms. A follower that knew a leader
        /// stands for election after 2.5-3 times this without hearing from it (openraft
        /// 0.9's leader lease of 1.5x plus a timeout of 1-1.5x), and stops naming it in
        /// CONTROLLER_GET_METADATA_INFO after 1x.
        "controllerRaftElectionTimeoutMs" => raft_election_timeout_ms: u64 = 500,
        /// rmq-fast extension: log directory.
        "logDir" => log_dir: PathBuf = PathBuf::from(home_path("logs/rocketmqlogs")),
        /// Where UPDATE_CONTROLLER_CONFIG writes every key after a change, as RocketMQ 5.3.3
        /// (`Configuration.persist`); read at start only when it is the `-c` file.
        "configStorePath" => config_store_path: PathBuf =
            PathBuf::from(home_path("controller/controller.properties")),
    }
    extra {
        /// Keys accepted without effect, with the values given.
        ignored_keys: BTreeMap<String, String> = BTreeMap::new(),
    }
}

impl ControllerConfig {
    /// Builds the config from an optional properties file, then `overrides`. `host_keys` are
    /// the keys of the config sharing the file (e.g. `NamesrvConfig::KEYS`): not warned about.
    /// Runs `validate()`.
    ///
    /// # Errors
    /// A bad value or a missing group, peer list or self id, naming the key and the file.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(String, String)],
        host_keys: &[&str],
    ) -> Result<(ControllerConfig, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = Vec::new();
        let mut config = ControllerConfig::default();
        let mut source_name = COMMAND_LINE.to_owned();
        if let Some(path) = file {
            let (props, name) = read_properties_file(path)?;
            config.apply_properties(&props, &name, host_keys, &mut warnings)?;
            source_name = name;
        }
        let overrides = Properties::from_pairs(overrides);
        config.apply_properties(&overrides, COMMAND_LINE, host_keys, &mut warnings)?;
        config.validate(&source_name)?;
        Ok((config, warnings))
    }

    /// Applies `props` on top of the current values. Does not run `validate()`.
    ///
    /// # Errors
    /// A value that does not parse, naming the key and `source_name`.
    pub fn apply_properties(
        &mut self,
        props: &Properties,
        source_name: &str,
        host_keys: &[&str],
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<(), ConfigError> {
        let host_ignored: &[IgnoredKey] = if host_keys.is_empty() {
            &[]
        } else {
            NAMESRV_IGNORED
        };
        let keys = KeySpace {
            known: ControllerConfig::KEYS,
            ignored: &[CONTROLLER_IGNORED, NETTY_SERVER_IGNORED, host_ignored],
        };
        let mut ignored = BTreeMap::new();
        let result = apply_entries(props, source_name, &keys, warnings, &mut ignored, |entry| {
            let set = self.set_key(&entry.key, &entry.value);
            // The host config reads its own keys from the same file.
            set.or_else(|| host_keys.contains(&entry.key.as_str()).then_some(Ok(())))
        });
        self.ignored_keys.extend(ignored);
        result
    }

    /// Checks what a member needs to start. Errors name the key and `source_name`.
    ///
    /// # Errors
    /// An empty group, peer list or self id; zero intervals; an election timeout not above
    /// twice the raft heartbeat.
    pub fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let fail = |key: &str, message: String| Err(ConfigError::new(source_name, key, message));
        let required = [
            ("controllerDLegerGroup", &self.controller_dleger_group),
            ("controllerDLegerPeers", &self.controller_dleger_peers),
            ("controllerDLegerSelfId", &self.controller_dleger_self_id),
        ];
        for (key, value) in required {
            if value.trim().is_empty() {
                return fail(key, "must be set to run a controller".to_owned());
            }
        }
        if self.controller_store_path.trim().is_empty() {
            return fail("controllerStorePath", "must not be empty".to_owned());
        }
        if self.scan_not_active_broker_interval_ms == 0 {
            return fail("scanNotActiveBrokerInterval", "must be > 0 ms".to_owned());
        }
        if self.raft_heartbeat_interval_ms == 0 {
            return fail(
                "controllerRaftHeartbeatIntervalMs",
                "must be > 0 ms".to_owned(),
            );
        }
        if self.raft_election_timeout_ms <= 2 * self.raft_heartbeat_interval_ms {
            let message = format!(
                "{} ms must be more than twice controllerRaftHeartbeatIntervalMs ({} ms)",
                self.raft_election_timeout_ms, self.raft_heartbeat_interval_ms
            );
            return fail("controllerRaftElectionTimeoutMs", message);
        }
        Ok(())
    }

    /// All keys with current values as "key=value\n" lines (GET_CONTROLLER_CONFIG).
    pub fn to_properties_text(&self) -> String {
        let mut out = String::new();
        self.render_keys(&mut out);
        for (key, value) in &self.ignored_keys {
            out.push_str(&format!("{key}={}\n", super::value::escape_value(value)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamesrvConfig;
    use crate::config::properties::parse_properties;

    fn conf(text: &str, host_keys: &[&str]) -> (ControllerConfig, Vec<ConfigWarning>) {
        let mut warnings = Vec::new();
        let mut config = ControllerConfig::default();
        let props = parse_properties(text);
        config
            .apply_properties(&props, "c.properties", host_keys, &mut warnings)
            .unwrap();
        (config, warnings)
    }

    #[test]
    fn rocketmq_sample_files_load_with_rocketmq_defaults() {
        let (config, warnings) = conf(
            "controllerDLegerGroup = group1\n\
             controllerDLegerPeers = n0-127.0.0.1:9878;n1-127.0.0.1:9868;n2-127.0.0.1:9858\n\
             controllerDLegerSelfId = n0\n",
            &[],
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        config.validate("c.properties").unwrap();
        assert_eq!(config.controller_dleger_self_id, "n0");
        assert!(config.controller_store_path.ends_with("DLedgerController"));
        assert!(!config.enable_elect_unclean_master);
        assert!(config.notify_broker_role_changed);
        assert_eq!(config.scan_not_active_broker_interval_ms, 100);
    }

    #[test]
    fn shipped_controller_files_load_cleanly() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conf/controller");
        for member in ["n0", "n1", "n2"] {
            let path = dir.join(format!("controller-{member}.properties"));
            let (config, warnings) = ControllerConfig::load(Some(&path), &[], &[]).unwrap();
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(config.controller_dleger_self_id, member);
            assert_eq!(config.controller_dleger_peers.split(';').count(), 3);
        }
    }

    #[test]
    fn a_namesrv_file_shares_keys_without_warnings_either_way() {
        let text = "listenPort = 9876\nenableControllerInNamesrv = true\n\
                    controllerDLegerGroup = group1\ncontrollerDLegerPeers = n0-127.0.0.1:9878\n\
                    controllerDLegerSelfId = n0\nkvConfigPath = /tmp/kv.json\n";
        let (config, warnings) = conf(text, NamesrvConfig::KEYS);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.controller_dleger_peers, "n0-127.0.0.1:9878");
        let mut warnings = Vec::new();
        let namesrv = NamesrvConfig::from_properties(&parse_properties(text), "n", &mut warnings);
        assert!(namesrv.unwrap().enable_controller_in_namesrv);
        assert!(warnings.is_empty(), "{warnings:?}");
        // Alone, a namesrv-only key is unknown to the controller.
        let (_, warnings) = conf("kvConfigPath = /tmp/kv.json\n", &[]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn missing_members_and_bad_values_name_the_key() {
        let (config, _) = conf(
            "controllerDLegerGroup = g\ncontrollerDLegerSelfId = n0\n",
            &[],
        );
        let err = config.validate("c.properties").unwrap_err();
        assert_eq!(err.key, "controllerDLegerPeers");
        let props = parse_properties("enableElectUncleanMaster = yes\n");
        let err = ControllerConfig::default()
            .apply_properties(&props, "c.properties", &[], &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.key, "enableElectUncleanMaster");
        let (config, _) = conf(
            "controllerDLegerGroup=g\ncontrollerDLegerPeers=n0-h:1\ncontrollerDLegerSelfId=n0\n\
             controllerRaftElectionTimeoutMs=150\n",
            &[],
        );
        let err = config.validate("c.properties").unwrap_err();
        assert_eq!(err.key, "controllerRaftElectionTimeoutMs");
    }
}
