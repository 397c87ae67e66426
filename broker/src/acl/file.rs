//! Where the ACL files are and how they are read and written.
//!
//! As RocketMQ 4.9.8's PlainPermissionManager: every `*.yml`/`*.yaml` under
//! `$ROCKETMQ_HOME/conf/acl/` (recursively, except `$ROCKETMQ_HOME/conf/tools.yml`), plus the
//! default file `$ROCKETMQ_HOME/<aclPlainFile>` (`conf/plain_acl.yml`), which is created
//! empty when missing. Writes replace a file atomically (temp file, fsync, rename, fsync of
//! the directory) so a crash never leaves a half-written ACL.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_yaml_ng::Value;

use super::AclError;

/// The ACL file locations of one broker.
#[derive(Debug, Clone)]
pub struct AclPaths {
    pub home: PathBuf,
    pub default_file: PathBuf,
    pub dir: PathBuf,
}

impl AclPaths {
    pub fn new(home: &Path, plain_file: &str) -> Self {
        Self {
            home: home.to_path_buf(),
            default_file: home.join(plain_file),
            dir: home.join("conf").join("acl"),
        }
    }

    /// The ACL files in load order: the directory's files (sorted), then the default file.
    pub fn list_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let tools = self.home.join("conf").join("tools.yml");
        collect_yaml(&self.dir, &tools, &mut files);
        files.sort();
        if self.default_file.exists() && !files.contains(&self.default_file) {
            files.push(self.default_file.clone());
        }
        files
    }

    /// Creates the default file (empty) when missing, as RocketMQ does at start.
    pub fn ensure_default_file(&self) -> Result<(), AclError> {
        if self.default_file.exists() {
            return Ok(());
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.default_file)
            .map(drop)
            .map_err(|e| AclError::Io(self.default_file.clone(), e))
    }
}

fn collect_yaml(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == skip {
            continue;
        }
        let name = path.to_string_lossy();
        if name.ends_with(".yml") || name.ends_with(".yaml") {
            out.push(path);
        } else if path.is_dir() {
            collect_yaml(&path, skip, out);
        }
    }
}

/// What identifies a file's version for the change watcher: modification time and size.
pub type Stamp = Option<(SystemTime, u64)>;

pub fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads one ACL file: `None` when missing or empty (RocketMQ skips those).
pub fn read_yaml(path: &Path) -> Result<Option<Value>, AclError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AclError::Io(path.to_path_buf(), e)),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| AclError::File(path.to_path_buf(), e.to_string()))?;
    match value {
        Value::Null => Ok(None),
        Value::Mapping(_) => Ok(Some(value)),
        _ => Err(AclError::File(
            path.to_path_buf(),
            "the top level must be a mapping (globalWhiteRemoteAddresses, accounts)".into(),
        )),
    }
}

/// Replaces `path` with `value` atomically.
pub fn write_yaml(path: &Path, value: &Value) -> Result<(), AclError> {
    let io = |e| AclError::Io(path.to_path_buf(), e);
    let text = serde_yaml_ng::to_string(value)
        .map_err(|e| AclError::File(path.to_path_buf(), e.to_string()))?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_dir_files_recursively_then_default_skipping_tools() {
        let home = tempfile::tempdir().unwrap();
        let paths = AclPaths::new(home.path(), "conf/plain_acl.yml");
        std::fs::create_dir_all(paths.dir.join("team")).unwrap();
        std::fs::write(paths.dir.join("b.yaml"), "").unwrap();
        std::fs::write(paths.dir.join("team").join("a.yml"), "").unwrap();
        std::fs::write(paths.dir.join("notes.txt"), "").unwrap();
        std::fs::write(home.path().join("conf").join("tools.yml"), "").unwrap();
        assert_eq!(paths.list_files().len(), 2);
        paths.ensure_default_file().unwrap();
        let files = paths.list_files();
        assert_eq!(files.len(), 3);
        assert_eq!(files.last().unwrap(), &paths.default_file);
    }

    #[test]
    fn write_replaces_and_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain_acl.yml");
        assert!(read_yaml(&path).unwrap().is_none());
        let value: Value = serde_yaml_ng::from_str("accounts:\n- accessKey: abcdefg\n").unwrap();
        write_yaml(&path, &value).unwrap();
        assert_eq!(read_yaml(&path).unwrap().unwrap(), value);
        assert!(!dir.path().join("plain_acl.yml.tmp").exists());
        std::fs::write(&path, "accounts: [\n").unwrap();
        assert!(
            read_yaml(&path)
                .unwrap_err()
                .to_string()
                .contains("plain_acl.yml")
        );
        std::fs::write(&path, "- a\n").unwrap();
        assert!(read_yaml(&path).is_err());
    }
}
