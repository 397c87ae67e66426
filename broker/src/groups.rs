//! Subscription group configs (`config/subscriptionGroup.json`): read lock-free,
//! written rarely, auto-created on first use when `autoCreateSubscriptionGroup=true`.
//!
//! Only valid names are ever stored (`topics::validate_group_name`: RocketMQ's characters, at
//! most 255 of them): auto-creation refuses others and [`GroupManager::put`] returns the
//! reason, so the group file stays small whatever clients send (500 groups of 100 KB names
//! used to make a 100 MB file, rewritten on each create).

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
    /// # Errors
    /// The file exists but neither it nor its backup can be read (never starts empty).
    pub fn load(path: PathBuf) -> Result<Self, crate::json_file::LoadError> {
        let file: GroupsFile = crate::json_file::load_or_default(&path)?;
        Ok(Self {
            snapshot: ArcSwap::from_pointee(file),
            write_lock: Mutex::new(()),
            path,
        })
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
        if !auto_create || crate::topics::validate_group_name(group).is_err() {
            return None;
        }
        let config = SubscriptionGroupConfig {
            group_name: group.to_string(),
            ..Default::default()
        };
        self.put(config.clone()).ok()?;
        Some(config)
    }

    /// Creates or replaces a group.
    ///
    /// # Errors
    /// The remark for a group name RocketMQ's rules refuse (nothing is stored).
    pub fn put(&self, config: SubscriptionGroupConfig) -> Result<(), String> {
        crate::topics::validate_group_name(&config.group_name)?;
        let _guard = self.write_lock.lock().expect("group write lock");
        let mut file = (**self.snapshot.load()).clone();
        tracing::info!(group = %config.group_name, "subscription group updated");
        file.subscription_group_table
            .insert(config.group_name.clone(), config);
        file.data_version.next();
        self.publish(file);
        Ok(())
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
