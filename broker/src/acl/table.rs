//! The loaded ACL: accounts by access key, global white addresses, and each file's
//! dataVersion, built from the YAML of every ACL file (PlainPermissionManager.load).
//!
//! Values are read as fastjson reads them: a number or boolean where a string is
//! expected (`secretKey: 12345678`) is taken as its text.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::AclError;
use super::address::AddressPattern;
use super::file::{AclPaths, read_yaml};
use super::perm::{DENY, is_known_perm, parse_perm, retry_topic};

/// RocketMQ's minimum lengths are "longer than 6".
pub const MIN_KEY_LEN: usize = 7;

/// One account (PlainAccessResource as owned by the broker).
#[derive(Debug, Clone)]
pub struct Account {
    pub access_key: String,
    pub secret_key: String,
    pub white: AddressPattern,
    pub admin: bool,
    pub default_topic_perm: u8,
    pub default_group_perm: u8,
    /// Topic and `%RETRY%group` grants; None when the account lists neither.
    pub resource_perms: Option<HashMap<String, u8>>,
}

/// A file's DataVersion (`dataVersion: [{counter, timestamp}]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataVersion {
    pub timestamp: i64,
    pub counter: i64,
}

impl DataVersion {
    /// fastjson's rendering: `{"counter":1,"timestamp":1700000000000}`.
    pub fn to_json(self) -> String {
        format!(
            "{{\"counter\":{},\"timestamp\":{}}}",
            self.counter, self.timestamp
        )
    }
}

/// The whole ACL in force.
#[derive(Debug, Default)]
pub struct AclTable {
    pub global_white: Vec<AddressPattern>,
    pub accounts: HashMap<String, Account>,
    /// Which file defines each access key.
    pub account_file: HashMap<String, PathBuf>,
    pub versions: BTreeMap<PathBuf, DataVersion>,
    pub files: Vec<PathBuf>,
}

/// A scalar as text (`None` for null or a missing key).
pub fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of scalars (`None` when missing).
pub fn text_list(value: Option<&Value>, what: &str) -> Result<Option<Vec<String>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Sequence(items)) => Ok(Some(
            items.iter().filter_map(|item| text(Some(item))).collect(),
        )),
        Some(_) => Err(format!("{what} must be a list")),
    }
}

/// `resource=PERM` (StringUtils.split on '=': empty pieces dropped).
pub fn split_resource(entry: &str) -> Option<(&str, &str)> {
    let mut pieces = entry.split('=').filter(|p| !p.is_empty());
    let resource = pieces.next()?;
    let perm = pieces.next()?;
    pieces
        .next()
        .is_none()
        .then(|| (resource.trim(), perm.trim()))
}

/// Permission.checkResourcePerms (used before the admin API writes a file).
pub fn check_resource_perms(entries: &[String]) -> Result<(), String> {
    for entry in entries {
        let Some((_, perm)) = split_resource(entry) else {
            return Err(format!(
                "Parse Resource format error for {entry}.\nThe expected resource format is 'Res=Perm'. For example: topicA=SUB"
            ));
        };
        if !is_known_perm(perm) {
            return Err(format!(
                "Parse resource permission error for {entry}.\nThe expected permissions are 'SUB' or 'PUB' or 'SUB|PUB' or 'PUB|SUB'."
            ));
        }
    }
    Ok(())
}

/// checkPlainAccessConfig's rule and message.
pub fn check_keys(access_key: Option<&str>, secret_key: Option<&str>) -> Result<(), String> {
    let long = |k: Option<&str>| k.is_some_and(|k| k.chars().count() >= MIN_KEY_LEN);
    if long(access_key) && long(secret_key) {
        Ok(())
    } else {
        Err(format!(
            "The accessKey={} and secretKey={} cannot be null and length should longer than 6",
            access_key.unwrap_or("null"),
            secret_key.unwrap_or("null")
        ))
    }
}

/// Builds an account from its YAML mapping (buildPlainAccessResource).
pub fn account_from_yaml(value: &Value) -> Result<Account, String> {
    let field = |name: &str| value.get(name);
    let access_key = text(field("accessKey"));
    let secret_key = text(field("secretKey"));
    check_keys(access_key.as_deref(), secret_key.as_deref())?;
    let white_text = text(field("whiteRemoteAddress")).unwrap_or_default();
    let white = AddressPattern::parse(&white_text).map_err(|e| e.to_string())?;
    let admin = matches!(text(field("admin")).as_deref(), Some("true"));
    let mut perms: Option<HashMap<String, u8>> = None;
    for (key, is_topic) in [("groupPerms", false), ("topicPerms", true)] {
        let kind = if is_topic { "topic" } else { "group" };
        let Some(entries) = text_list(field(key), key)? else {
            continue;
        };
        let map = perms.get_or_insert_with(HashMap::new);
        for entry in entries {
            let (resource, perm) = split_resource(&entry)
                .ok_or_else(|| format!("Parse resource permission failed for {kind}:{entry}"))?;
            let resource = if is_topic {
                resource.to_owned()
            } else {
                retry_topic(resource)
            };
            map.insert(resource, parse_perm(Some(perm)));
        }
    }
    Ok(Account {
        access_key: access_key.expect("checked"),
        secret_key: secret_key.expect("checked"),
        white,
        admin,
        default_topic_perm: text(field("defaultTopicPerm")).map_or(DENY, |p| parse_perm(Some(&p))),
        default_group_perm: text(field("defaultGroupPerm")).map_or(DENY, |p| parse_perm(Some(&p))),
        resource_perms: perms,
    })
}

/// The first element of `dataVersion`.
pub fn data_version(doc: &Value) -> DataVersion {
    let first = doc
        .get("dataVersion")
        .and_then(Value::as_sequence)
        .and_then(|s| s.first());
    let number = |name: &str| {
        first
            .and_then(|v| text(v.get(name)))
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0)
    };
    DataVersion {
        timestamp: number("timestamp"),
        counter: number("counter"),
    }
}

impl AclTable {
    /// Loads every ACL file. Any bad file fails the whole load (errors name the file).
    pub fn load(paths: &AclPaths) -> Result<Self, AclError> {
        let mut table = AclTable {
            files: paths.list_files(),
            ..AclTable::default()
        };
        for file in table.files.clone() {
            let Some(doc) = read_yaml(&file)? else {
                table.versions.insert(file, DataVersion::default());
                continue;
            };
            table
                .add_file(&file, &doc)
                .map_err(|message| AclError::File(file.clone(), message))?;
        }
        Ok(table)
    }

    fn add_file(&mut self, file: &Path, doc: &Value) -> Result<(), String> {
        if let Some(addrs) = text_list(
            doc.get("globalWhiteRemoteAddresses"),
            "globalWhiteRemoteAddresses",
        )? {
            for addr in addrs {
                let pattern = AddressPattern::parse(&addr).map_err(|e| e.to_string())?;
                self.global_white.push(pattern);
            }
        }
        match doc.get("accounts") {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(accounts)) => {
                for value in accounts {
                    let account = account_from_yaml(value)?;
                    match self.account_file.get(&account.access_key) {
                        Some(other) if other != file => {
                            tracing::warn!(access_key = %account.access_key, file = %file.display(),
                                "the accessKey is repeated in multiple ACL files; keeping {}", other.display());
                        }
                        _ => {
                            self.account_file
                                .insert(account.access_key.clone(), file.to_path_buf());
                            self.accounts.insert(account.access_key.clone(), account);
                        }
                    }
                }
            }
            Some(_) => return Err("accounts must be a list".into()),
        }
        self.versions.insert(file.to_path_buf(), data_version(doc));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::perm::{PUB, SUB};

    const SAMPLE: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
  - accessKey: rocketmq2
    secretKey: "12345678"
    whiteRemoteAddress: 192.168.1.*
    admin: true
dataVersion:
  - counter: 3
    timestamp: 1700000000000
"#;

    #[test]
    fn loads_rocketmq_sample_file() {
        let home = tempfile::tempdir().unwrap();
        let paths = AclPaths::new(home.path(), "conf/plain_acl.yml");
        std::fs::create_dir_all(home.path().join("conf")).unwrap();
        std::fs::write(&paths.default_file, SAMPLE).unwrap();
        let table = AclTable::load(&paths).unwrap();
        assert_eq!(table.global_white.len(), 2);
        let acct = &table.accounts["RocketMQ"];
        assert_eq!(acct.secret_key, "12345678");
        assert!(!acct.admin);
        assert_eq!(acct.white, AddressPattern::Nothing);
        assert_eq!(acct.default_group_perm, SUB);
        let perms = acct.resource_perms.as_ref().unwrap();
        assert_eq!(perms["topicA"], DENY);
        assert_eq!(perms["topicB"], PUB | SUB);
        assert_eq!(perms["%RETRY%groupA"], DENY);
        let admin = &table.accounts["rocketmq2"];
        assert!(admin.admin);
        assert!(admin.resource_perms.is_none());
        assert_eq!(
            table.versions[&paths.default_file],
            DataVersion {
                timestamp: 1_700_000_000_000,
                counter: 3
            }
        );
    }

    #[test]
    fn bad_files_fail_naming_file_and_cause() {
        let home = tempfile::tempdir().unwrap();
        let paths = AclPaths::new(home.path(), "conf/plain_acl.yml");
        std::fs::create_dir_all(&paths.dir).unwrap();
        let cases = [
            (
                "accounts:\n- accessKey: short\n  secretKey: 12345678\n",
                "length should longer than 6",
            ),
            (
                "accounts:\n- accessKey: abcdefgh\n  secretKey: 12345678\n  topicPerms: [topicA]\n",
                "Parse resource permission failed for topic:topicA",
            ),
            ("globalWhiteRemoteAddresses: [10.0.0.300]\n", "10.0.0.300"),
            ("accounts: {a: 1}\n", "accounts must be a list"),
        ];
        for (text, expected) in cases {
            std::fs::write(paths.dir.join("team.yml"), text).unwrap();
            let error = AclTable::load(&paths).unwrap_err().to_string();
            assert!(
                error.contains("team.yml") && error.contains(expected),
                "{error}"
            );
        }
    }

    #[test]
    fn first_file_defining_a_key_wins() {
        let home = tempfile::tempdir().unwrap();
        let paths = AclPaths::new(home.path(), "conf/plain_acl.yml");
        std::fs::create_dir_all(&paths.dir).unwrap();
        std::fs::write(
            paths.dir.join("a.yml"),
            "accounts:\n- {accessKey: abcdefgh, secretKey: first123}\n",
        )
        .unwrap();
        std::fs::write(
            paths.dir.join("b.yml"),
            "accounts:\n- {accessKey: abcdefgh, secretKey: second12}\n",
        )
        .unwrap();
        let table = AclTable::load(&paths).unwrap();
        assert_eq!(table.accounts["abcdefgh"].secret_key, "first123");
        assert_eq!(table.account_file["abcdefgh"], paths.dir.join("a.yml"));
    }
}
