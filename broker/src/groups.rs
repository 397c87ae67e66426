//! Subscription group configs (`config/subscriptionGroup.json`): read lock-free,
//! written rarely, auto-created on first use when `autoCreateSubscriptionGroup=true`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rmq_core::body::{DataVersion, SubscriptionGroupConfig};

#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct GroupsFile {
    #[serde(default)]
    pub subscription_group_table: HashMap<String, SubscriptionGroupConfig>,
    #[serde(default)]
    pub data_version: DataVersion,
}

/// All subscription groups of this broker.
pub struct GroupManager {
    snapshot: ArcSwap<GroupsFile>,
    write_lock: Mutex<()>,
    path: PathBuf,
}

impl GroupManager {
    pub fn load(path: PathBuf) -> Self {
        let file: GroupsFile = crate::json_file::load(&path).unwrap_or_default();
        Self {
            snapshot: ArcSwap::from_pointee(file),
            write_lock: Mutex::new(()),
            path,
        }
    }

    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.snapshot
            .load()
            .subscription_group_table
            .get(group)
            .cloned()
    }

    /// The group's config, created with defaults when missing and `auto_create`.
    pub fn get_or_create(&self, group: &str, auto_create: bool) -> Option<SubscriptionGroupConfig> {
        if let Some(config) = self.get(group) {
            return Some(config);
        }
        if !auto_create {
            return None;
        }
        let config = SubscriptionGroupConfig {
            group_name: group.to_string(),
            ..Default::default()
        };
        self.put(config.clone());
        Some(config)
    }

    pub fn put(&self, config: SubscriptionGroupConfig) {
        let _guard = self.write_lock.lock().expect("group write lock");
        let mut file = (**self.snapshot.load()).clone();
        tracing::info!(group = %config.group_name, "subscription group updated");
        file.subscription_group_table
            .insert(config.group_name.clone(), config);
        file.data_version.next();
        self.publish(file);
    }

    pub fn remove(&self, group: &str) -> bool {
        let _guard = self.write_lock.lock().expect("group write lock");
        let mut file = (**self.snapshot.load()).clone();
        let existed = file.subscription_group_table.remove(group).is_some();
        if existed {
            file.data_version.next();
            self.publish(file);
        }
        existed
    }

    pub fn all(&self) -> Arc<GroupsFile> {
        self.snapshot.load_full()
    }

    fn publish(&self, file: GroupsFile) {
        if let Err(error) = crate::json_file::store(&self.path, &file) {
            tracing::error!(path = %self.path.display(), "cannot persist subscription groups: {error}");
        }
        self.snapshot.store(Arc::new(file));
    }
}
