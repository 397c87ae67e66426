//! The name server's KV config store (namespace → key → value), persisted as JSON at
//! `kvConfigPath` (`{"configTable":{namespace:{key:value}}}`, RocketMQ's layout).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Namespaced key/value settings set by tools (e.g. ORDER_TOPIC_CONFIG).
pub struct KvConfig {
    path: PathBuf,
    table: BTreeMap<String, BTreeMap<String, String>>,
}

impl KvConfig {
    /// Loads the file if present; a missing file is an empty table, an unreadable one is
    /// logged and treated as empty (the name server must come up).
    pub fn load(path: PathBuf) -> Self {
        let table = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes).unwrap_or_else(|| {
                tracing::warn!(path = %path.display(), "kv config unreadable, starting empty");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Self { path, table }
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    pub fn namespace(&self, namespace: &str) -> HashMap<String, String> {
        self.table
            .get(namespace)
            .map(|keys| keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    pub fn put(&mut self, namespace: &str, key: &str, value: &str) {
        self.table
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
        self.persist();
    }

    pub fn delete(&mut self, namespace: &str, key: &str) {
        if let Some(keys) = self.table.get_mut(namespace) {
            keys.remove(key);
            if keys.is_empty() {
                self.table.remove(namespace);
            }
        }
        self.persist();
    }

    fn persist(&self) {
        let doc = serde_json::json!({ "configTable": self.table });
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&doc).unwrap_or_default())?;
            std::fs::rename(&tmp, &self.path)
        };
        if let Err(error) = write() {
            tracing::error!(path = %self.path.display(), "cannot persist kv config: {error}");
        }
    }
}

fn parse(bytes: &[u8]) -> Option<BTreeMap<String, BTreeMap<String, String>>> {
    let value = rmq_core::remoting::lenient_json::parse_lenient(bytes).ok()?;
    serde_json::from_value(value.get("configTable")?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reload() {
        let dir = std::env::temp_dir().join(format!("rmq-kv-{}", std::process::id()));
        let path = dir.join("kvConfig.json");
        let mut kv = KvConfig::load(path.clone());
        kv.put("ORDER_TOPIC_CONFIG", "t1", "broker-a:4");
        kv.put("ns", "k", "v");
        kv.delete("ns", "k");
        let again = KvConfig::load(path);
        assert_eq!(again.get("ORDER_TOPIC_CONFIG", "t1"), Some("broker-a:4"));
        assert_eq!(again.get("ns", "k"), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
