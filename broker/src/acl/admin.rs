//! The mqadmin ACL request codes, answered as RocketMQ 4.9.8's AdminBrokerProcessor does:
//! UPDATE_AND_CREATE_ACL_CONFIG (50, `updateAclConfig`), DELETE_ACL_CONFIG (51,
//! `deleteAclConfig`), GET_BROKER_CLUSTER_ACL_INFO (52, `clusterAclConfigVersion`),
//! UPDATE_GLOBAL_WHITE_ADDRS_CONFIG (53, `updateGlobalWhiteAddr`) and
//! GET_BROKER_CLUSTER_ACL_CONFIG (54, `getAclConfig` of RocketMQ 4.7-4.9.4; 4.9.8's
//! broker dropped it).
//!
//! Changes rewrite the YAML file that holds the account (new accounts go to the default
//! file), keep the file's other content, bump its `dataVersion`, and are checked before
//! anything is written so a change can never leave a file the loader refuses.

use rmq_core::remoting::{RemotingCommand, ResponseCode, request_code as rc};
use serde_yaml_ng::{Mapping, Value};

use super::Acl;
use super::address::AddressPattern;
use super::file::{read_yaml, write_yaml};
use super::table::{self, account_from_yaml, check_keys, check_resource_perms, text};
use crate::context::{BrokerContext, now_ms};

/// Answers an ACL request code (`None` for other codes). Changes (file writes with fsync)
/// run on a blocking thread, off the core.
pub async fn process(broker: &BrokerContext, req: &RemotingCommand) -> Option<RemotingCommand> {
    let failed = match req.code {
        rc::UPDATE_AND_CREATE_ACL_CONFIG => ResponseCode::UpdateAndCreateAclConfigFailed,
        rc::DELETE_ACL_CONFIG => ResponseCode::DeleteAclConfigFailed,
        rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => ResponseCode::UpdateGlobalWhiteAddrsConfigFailed,
        rc::GET_BROKER_CLUSTER_ACL_INFO | rc::GET_BROKER_CLUSTER_ACL_CONFIG => {
            ResponseCode::SystemError
        }
        _ => return None,
    };
    let respond = |code: ResponseCode, remark: Option<String>| {
        RemotingCommand::response_for(req, code.code(), remark)
    };
    let Some(acl) = broker.acl.clone() else {
        return Some(respond(
            failed,
            Some("ACL is not enabled on this broker (aclEnable=false)".into()),
        ));
    };
    let change: fn(&Acl, &RemotingCommand) -> Result<(), String> = match req.code {
        rc::UPDATE_AND_CREATE_ACL_CONFIG => update_account,
        rc::DELETE_ACL_CONFIG => delete_account,
        rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => update_global_white,
        rc::GET_BROKER_CLUSTER_ACL_INFO => return Some(version_info(&acl, broker, req)),
        _ => return Some(all_config(&acl, req)),
    };
    let request = req.clone();
    let result = rmq_net::rt::spawn_blocking(move || change(&acl, &request))
        .await
        .unwrap_or_else(|_| Err("the ACL change failed (its thread panicked)".into()));
    Some(match result {
        Ok(()) => respond(ResponseCode::Success, None),
        Err(remark) => {
            tracing::warn!(code = req.code, "ACL change refused: {remark}");
            respond(failed, Some(remark))
        }
    })
}

/// UtilAll.split: None stays None, blank is empty, otherwise comma-separated.
fn split(text: Option<&str>) -> Option<Vec<String>> {
    let text = text?;
    Some(
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_owned())
            .collect(),
    )
}

fn accounts_mut(doc: &mut Value) -> Result<&mut Vec<Value>, String> {
    let map = doc
        .as_mapping_mut()
        .ok_or("the ACL file is not a mapping")?;
    let accounts = map
        .entry(Value::from("accounts"))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if accounts.is_null() {
        *accounts = Value::Sequence(Vec::new());
    }
    accounts
        .as_sequence_mut()
        .ok_or_else(|| "accounts must be a list".to_owned())
}

fn bump_version(doc: &mut Value) {
    let old = table::data_version(doc);
    let mut version = Mapping::new();
    version.insert("counter".into(), Value::from(old.counter + 1));
    version.insert("timestamp".into(), Value::from(now_ms()));
    if let Some(map) = doc.as_mapping_mut() {
        map.insert(
            "dataVersion".into(),
            Value::Sequence(vec![Value::Mapping(version)]),
        );
    }
}

fn read_doc(path: &std::path::Path) -> Result<Value, String> {
    Ok(read_yaml(path)
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| Value::Mapping(Mapping::new())))
}

fn update_account(acl: &Acl, req: &RemotingCommand) -> Result<(), String> {
    let access_key = req.ext("accessKey");
    let secret_key = req.ext("secretKey");
    check_keys(access_key, secret_key)?;
    let access_key = access_key.expect("checked").to_owned();
    let topic_perms = split(req.ext("topicPerms"));
    let group_perms = split(req.ext("groupPerms"));
    check_resource_perms(topic_perms.as_deref().unwrap_or_default())?;
    check_resource_perms(group_perms.as_deref().unwrap_or_default())?;
    acl.write_then_reload(|table| {
        let path = table
            .account_file
            .get(&access_key)
            .cloned()
            .unwrap_or_else(|| acl.paths.default_file.clone());
        let mut doc = read_doc(&path)?;
        let accounts = accounts_mut(&mut doc)?;
        let position = accounts
            .iter()
            .position(|a| text(a.get("accessKey")).as_deref() == Some(access_key.as_str()));
        let mut entry = match position {
            Some(index) => accounts.remove(index),
            None => Value::Mapping(Mapping::new()),
        };
        let map = entry
            .as_mapping_mut()
            .ok_or("an account is not a mapping")?;
        let mut set = |key: &str, value: Value| {
            map.insert(key.into(), value);
        };
        set("accessKey", access_key.clone().into());
        set("secretKey", secret_key.expect("checked").into());
        if let Some(white) = req.ext("whiteRemoteAddress") {
            set("whiteRemoteAddress", white.into());
        }
        set("admin", (req.ext("admin") == Some("true")).into());
        for key in ["defaultTopicPerm", "defaultGroupPerm"] {
            if let Some(perm) = req.ext(key).filter(|p| !p.is_empty()) {
                set(key, perm.into());
            }
        }
        for (key, list) in [("topicPerms", &topic_perms), ("groupPerms", &group_perms)] {
            if let Some(list) = list {
                set(
                    key,
                    Value::Sequence(list.iter().map(|s| s.as_str().into()).collect()),
                );
            }
        }
        account_from_yaml(&entry)?;
        accounts.push(entry);
        bump_version(&mut doc);
        write_yaml(&path, &doc).map_err(|e| e.to_string())
    })
}

fn delete_account(acl: &Acl, req: &RemotingCommand) -> Result<(), String> {
    let access_key = req.ext("accessKey").unwrap_or_default().to_owned();
    let failed = format!(
        "The accesskey[{access_key}] corresponding to accessConfig has been deleted failed."
    );
    acl.write_then_reload(|table| {
        let path = table.account_file.get(&access_key).ok_or(failed.clone())?;
        let mut doc = read_doc(path)?;
        let accounts = accounts_mut(&mut doc)?;
        let before = accounts.len();
        accounts.retain(|a| text(a.get("accessKey")).as_deref() != Some(access_key.as_str()));
        if accounts.len() == before {
            return Err(failed.clone());
        }
        bump_version(&mut doc);
        write_yaml(path, &doc).map_err(|e| e.to_string())
    })
}

fn update_global_white(acl: &Acl, req: &RemotingCommand) -> Result<(), String> {
    let addrs = req.ext("globalWhiteAddrs");
    let failed = format!(
        "The globalWhiteAddresses[{}] has been updated failed.",
        addrs.unwrap_or("null")
    );
    let addrs = split(addrs).ok_or(failed.clone())?;
    for addr in &addrs {
        AddressPattern::parse(addr).map_err(|e| e.to_string())?;
    }
    let path = match req.ext("aclFileFullPath").filter(|p| !p.is_empty()) {
        None => acl.paths.default_file.clone(),
        Some(path) => {
            let path = std::path::PathBuf::from(path);
            let name = path.to_string_lossy();
            let acceptable = path.is_file()
                && path.starts_with(&acl.paths.home)
                && (name.ends_with(".yml") || name.ends_with(".yaml"));
            if !acceptable {
                return Err(failed);
            }
            path
        }
    };
    acl.write_then_reload(|_| {
        let mut doc = read_doc(&path)?;
        let map = doc
            .as_mapping_mut()
            .ok_or("the ACL file is not a mapping")?;
        map.insert(
            "globalWhiteRemoteAddresses".into(),
            Value::Sequence(addrs.iter().map(|s| s.as_str().into()).collect()),
        );
        bump_version(&mut doc);
        write_yaml(&path, &doc).map_err(|e| e.to_string())
    })
}

fn version_info(acl: &Acl, broker: &BrokerContext, req: &RemotingCommand) -> RemotingCommand {
    let table = acl.table();
    let version = table
        .versions
        .get(&acl.paths.default_file)
        .copied()
        .unwrap_or_default();
    let all: Vec<String> = table
        .versions
        .iter()
        .map(|(path, v)| {
            format!(
                "{}:{}",
                serde_json::Value::from(path.to_string_lossy()),
                v.to_json()
            )
        })
        .collect();
    RemotingCommand::response_for(req, ResponseCode::Success.code(), None)
        .with_ext("version", version.to_json())
        .with_ext("allAclFileVersion", format!("{{{}}}", all.join(",")))
        .with_ext("brokerName", &broker.config.broker_name)
        .with_ext("brokerAddr", broker.broker_addr)
        .with_ext("clusterName", &broker.config.broker_cluster_name)
}

fn all_config(acl: &Acl, req: &RemotingCommand) -> RemotingCommand {
    let table = acl.table();
    let mut white = Vec::new();
    let mut configs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in &table.files {
        let Ok(Some(doc)) = read_yaml(path) else {
            continue;
        };
        if let Ok(Some(addrs)) = table::text_list(
            doc.get("globalWhiteRemoteAddresses"),
            "globalWhiteRemoteAddresses",
        ) {
            white.extend(addrs);
        }
        for account in doc
            .get("accounts")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let Some(key) = text(account.get("accessKey")) else {
                continue;
            };
            if !seen.insert(key.clone()) {
                continue;
            }
            let list = |name: &str| table::text_list(account.get(name), name).ok().flatten();
            configs.push(serde_json::json!({
                "accessKey": key,
                "secretKey": text(account.get("secretKey")),
                "whiteRemoteAddress": text(account.get("whiteRemoteAddress")),
                "admin": text(account.get("admin")).as_deref() == Some("true"),
                "defaultTopicPerm": text(account.get("defaultTopicPerm")),
                "defaultGroupPerm": text(account.get("defaultGroupPerm")),
                "topicPerms": list("topicPerms"),
                "groupPerms": list("groupPerms"),
            }));
        }
    }
    let body = serde_json::json!({ "globalWhiteAddrs": white, "plainAccessConfigs": configs });
    RemotingCommand::response_for(req, ResponseCode::Success.code(), None)
        .with_body(serde_json::to_vec(&body).expect("JSON values serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> (tempfile::TempDir, Acl) {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("conf")).unwrap();
        std::fs::write(
            home.path().join("conf/plain_acl.yml"),
            "# kept keys survive rewrites\nextra: 1\naccounts:\n- {accessKey: existing1, secretKey: secret-old}\n",
        )
        .unwrap();
        let acl = Acl::load(home.path(), "conf/plain_acl.yml").unwrap();
        (home, acl)
    }

    fn update(fields: &[(&str, &str)]) -> RemotingCommand {
        let mut req = RemotingCommand::new_request(rc::UPDATE_AND_CREATE_ACL_CONFIG);
        for (k, v) in fields {
            req.set_ext(k, v);
        }
        req
    }

    #[test]
    fn create_update_delete_rewrite_the_file_and_the_table() {
        let (home, acl) = acl();
        let req = update(&[
            ("accessKey", "newkey12"),
            ("secretKey", "newsecret"),
            ("admin", "false"),
            ("defaultTopicPerm", "DENY"),
            ("topicPerms", "orders=PUB,audit=SUB"),
            ("groupPerms", "cg=SUB"),
            ("whiteRemoteAddress", "10.0.0.*"),
        ]);
        update_account(&acl, &req).unwrap();
        let table = acl.table();
        let account = &table.accounts["newkey12"];
        assert_eq!(
            account.resource_perms.as_ref().unwrap()["%RETRY%cg"],
            super::super::perm::SUB
        );
        let doc = read_yaml(&home.path().join("conf/plain_acl.yml"))
            .unwrap()
            .unwrap();
        assert_eq!(doc.get("extra"), Some(&Value::from(1)));
        assert_eq!(table::data_version(&doc).counter, 1);

        // Updating an existing key changes it in place.
        update_account(
            &acl,
            &update(&[("accessKey", "existing1"), ("secretKey", "secret-new")]),
        )
        .unwrap();
        assert_eq!(acl.table().accounts["existing1"].secret_key, "secret-new");
        assert_eq!(acl.table().accounts.len(), 2);

        let short = update_account(
            &acl,
            &update(&[("accessKey", "abc"), ("secretKey", "12345678")]),
        );
        assert_eq!(
            short.unwrap_err(),
            "The accessKey=abc and secretKey=12345678 cannot be null and length should longer than 6"
        );
        let bad_perm = update(&[
            ("accessKey", "newkey12"),
            ("secretKey", "newsecret"),
            ("topicPerms", "t=ALL"),
        ]);
        assert!(
            update_account(&acl, &bad_perm)
                .unwrap_err()
                .contains("Parse resource permission error for t=ALL")
        );

        let mut delete =
            RemotingCommand::new_request(rc::DELETE_ACL_CONFIG).with_ext("accessKey", "newkey12");
        delete_account(&acl, &delete).unwrap();
        assert!(!acl.table().accounts.contains_key("newkey12"));
        delete.set_ext("accessKey", "newkey12");
        assert_eq!(
            delete_account(&acl, &delete).unwrap_err(),
            "The accesskey[newkey12] corresponding to accessConfig has been deleted failed."
        );
    }

    #[test]
    fn global_white_addresses_are_validated_then_written() {
        let (home, acl) = acl();
        let req = RemotingCommand::new_request(rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
            .with_ext("globalWhiteAddrs", "10.1.1.*,192.168.0.5");
        update_global_white(&acl, &req).unwrap();
        assert_eq!(acl.table().global_white.len(), 2);
        let bad = RemotingCommand::new_request(rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
            .with_ext("globalWhiteAddrs", "10.1.1.300");
        assert!(update_global_white(&acl, &bad).is_err());
        assert_eq!(acl.table().global_white.len(), 2);
        let outside = RemotingCommand::new_request(rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
            .with_ext("globalWhiteAddrs", "10.1.1.1")
            .with_ext("aclFileFullPath", "/etc/passwd");
        assert_eq!(
            update_global_white(&acl, &outside).unwrap_err(),
            "The globalWhiteAddresses[10.1.1.1] has been updated failed."
        );
        let text = std::fs::read_to_string(home.path().join("conf/plain_acl.yml")).unwrap();
        assert!(text.contains("192.168.0.5"), "{text}");

        let listing = all_config(
            &acl,
            &RemotingCommand::new_request(rc::GET_BROKER_CLUSTER_ACL_CONFIG),
        );
        let body: serde_json::Value = serde_json::from_slice(&listing.body).unwrap();
        assert_eq!(body["globalWhiteAddrs"][0], "10.1.1.*");
        assert_eq!(body["plainAccessConfigs"][0]["accessKey"], "existing1");
    }
}
