//! Permissions: the DENY/PUB/SUB bits, what each request code needs on which resource
//! (PlainAccessValidator.parse of RocketMQ 4.9.8; groups are checked as their `%RETRY%`
//! topic), the admin-only request codes, and the check of an account's grants.

use rmq_core::body::HeartbeatData;
use rmq_core::remoting::{RemotingCommand, request_code as rc};

use super::table::Account;

/// Permission bits (org.apache.rocketmq.acl.common.Permission).
pub const DENY: u8 = 1;
pub const ANY: u8 = 1 << 1;
pub const PUB: u8 = 1 << 2;
pub const SUB: u8 = 1 << 3;

/// The retry topic prefix groups are checked under.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// Sends to the trace topic are never refused (message trace of any client).
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// `PUB`, `SUB`, `PUB|SUB`/`SUB|PUB`, `DENY`; anything else (or nothing) is DENY.
pub fn parse_perm(text: Option<&str>) -> u8 {
    match text.map(str::trim) {
        Some("PUB") => PUB,
        Some("SUB") => SUB,
        Some("PUB|SUB") | Some("SUB|PUB") => PUB | SUB,
        _ => DENY,
    }
}

/// Whether a perm string is one of the four RocketMQ accepts (the admin API refuses
/// others; the file loader reads them as DENY like RocketMQ).
pub fn is_known_perm(text: &str) -> bool {
    matches!(text.trim(), "PUB" | "SUB" | "PUB|SUB" | "SUB|PUB" | "DENY")
}

/// Permission.checkPermission.
pub fn check_permission(needed: u8, owned: u8) -> bool {
    if owned & DENY != 0 {
        return false;
    }
    if needed & ANY != 0 {
        return owned & (PUB | SUB) != 0;
    }
    needed & owned != 0
}

pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

/// Request codes only admin accounts may send: RocketMQ 4.9.8's Permission.ADMIN_CODE,
/// plus the ACL changes and the ACL listing (which shows secret keys). RocketMQ 4.9.8
/// lets any account change the ACL; refusing that is deliberate (docs/architecture.md).
pub fn needs_admin(code: i32) -> bool {
    matches!(
        code,
        rc::UPDATE_AND_CREATE_TOPIC
            | rc::UPDATE_BROKER_CONFIG
            | rc::DELETE_TOPIC_IN_BROKER
            | rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
            | rc::DELETE_SUBSCRIPTIONGROUP
            | rc::UPDATE_AND_CREATE_ACL_CONFIG
            | rc::DELETE_ACL_CONFIG
            | rc::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG
            | rc::GET_BROKER_CLUSTER_ACL_CONFIG
    )
}

/// The resources a request touches and the permission each needs, in check order.
/// `Err` is the message of RocketMQ's AclException for an undecodable request.
pub fn needed_resources(req: &RemotingCommand) -> Result<Vec<(String, u8)>, String> {
    let mut needed: Vec<(String, u8)> = Vec::new();
    let mut add = |resource: Option<String>, perm: u8| {
        if let Some(resource) = resource {
            match needed.iter_mut().find(|(r, _)| *r == resource) {
                Some(entry) => entry.1 = perm,
                None => needed.push((resource, perm)),
            }
        }
    };
    let field = |name: &str| req.ext(name).map(str::to_owned);
    let group = |name: &str| req.ext(name).map(retry_topic);
    match req.code {
        rc::SEND_MESSAGE | rc::SEND_MESSAGE_V2 | rc::SEND_BATCH_MESSAGE => {
            // V1 headers name the topic `topic`, V2 headers `b` (group `a`). RocketMQ
            // 4.9.8 checks nothing for SEND_BATCH_MESSAGE; we check it like a send.
            let (topic, group_key) = match req.code {
                rc::SEND_MESSAGE => (req.ext("topic"), "group"),
                rc::SEND_MESSAGE_V2 => (req.ext("b"), "a"),
                _ => match req.ext("b") {
                    Some(topic) => (Some(topic), "a"),
                    None => (req.ext("topic"), "producerGroup"),
                },
            };
            match topic {
                Some(topic) if topic.starts_with(RETRY_PREFIX) => add(group(group_key), SUB),
                topic => add(topic.map(str::to_owned), PUB),
            }
        }
        rc::CONSUMER_SEND_MSG_BACK => add(group("group"), SUB),
        rc::PULL_MESSAGE => {
            add(field("topic"), SUB);
            add(group("consumerGroup"), SUB);
        }
        rc::QUERY_MESSAGE => add(field("topic"), SUB),
        rc::HEART_BEAT => {
            let data: HeartbeatData =
                rmq_core::body::decode_body(&req.body).map_err(|e| e.to_string())?;
            for consumer in &data.consumer_data_set {
                add(Some(retry_topic(&consumer.group_name)), SUB);
                for subscription in &consumer.subscription_data_set {
                    add(Some(subscription.topic.clone()), SUB);
                }
            }
        }
        rc::UNREGISTER_CLIENT => add(group("consumerGroup"), SUB),
        rc::GET_CONSUMER_LIST_BY_GROUP => add(group("consumerGroup"), SUB),
        rc::UPDATE_CONSUMER_OFFSET => {
            add(group("consumerGroup"), SUB);
            add(field("topic"), SUB);
        }
        _ => {}
    }
    Ok(needed)
}

/// PlainPermissionManager.checkPerm: `Err` is the AclException message.
pub fn check_account(account: &Account, code: i32, needed: &[(String, u8)]) -> Result<(), String> {
    if needs_admin(code) && !account.admin {
        return Err(format!(
            "Need admin permission for request code={code}, but accessKey={} is not",
            account.access_key
        ));
    }
    if needed.is_empty() || (account.resource_perms.is_none() && account.admin) {
        return Ok(());
    }
    for (resource, perm) in needed {
        let group = resource.strip_prefix(RETRY_PREFIX);
        let owned = account
            .resource_perms
            .as_ref()
            .and_then(|perms| perms.get(resource).copied())
            .unwrap_or(if group.is_some() {
                account.default_group_perm
            } else {
                account.default_topic_perm
            });
        if !check_permission(*perm, owned) {
            let printed = match group {
                Some(group) => format!("group:{group}"),
                None => format!("topic:{resource}"),
            };
            return Err(format!("No default permission for {printed}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn account(admin: bool, perms: &[(&str, u8)]) -> Account {
        Account {
            access_key: "rocketmq2".into(),
            secret_key: "12345678".into(),
            white: super::super::address::AddressPattern::Nothing,
            admin,
            default_topic_perm: DENY,
            default_group_perm: SUB,
            resource_perms: (!perms.is_empty()).then(|| {
                perms
                    .iter()
                    .map(|(r, p)| (r.to_string(), *p))
                    .collect::<HashMap<_, _>>()
            }),
        }
    }

    #[test]
    fn perm_strings_and_bits() {
        assert_eq!(parse_perm(Some("PUB")), PUB);
        assert_eq!(parse_perm(Some(" SUB|PUB ")), PUB | SUB);
        assert_eq!(parse_perm(Some("pub")), DENY);
        assert_eq!(parse_perm(None), DENY);
        assert!(check_permission(PUB, PUB | SUB));
        assert!(!check_permission(PUB, SUB));
        assert!(!check_permission(PUB, DENY | PUB));
        assert!(check_permission(ANY, SUB));
        assert!(!check_permission(ANY, DENY));
    }

    #[test]
    fn send_needs_pub_on_topic_and_retry_send_needs_sub_on_group() {
        let req = RemotingCommand::new_request(rc::SEND_MESSAGE_V2)
            .with_ext("a", "pg")
            .with_ext("b", "orders");
        assert_eq!(
            needed_resources(&req).unwrap(),
            vec![("orders".into(), PUB)]
        );
        let retry = RemotingCommand::new_request(rc::SEND_MESSAGE_V2)
            .with_ext("a", "cg")
            .with_ext("b", "%RETRY%cg");
        assert_eq!(
            needed_resources(&retry).unwrap(),
            vec![("%RETRY%cg".into(), SUB)]
        );
        let batch = RemotingCommand::new_request(rc::SEND_BATCH_MESSAGE)
            .with_ext("a", "pg")
            .with_ext("b", "orders");
        assert_eq!(
            needed_resources(&batch).unwrap(),
            vec![("orders".into(), PUB)]
        );
    }

    #[test]
    fn pull_and_offset_need_sub_on_topic_and_group() {
        let pull = RemotingCommand::new_request(rc::PULL_MESSAGE)
            .with_ext("topic", "orders")
            .with_ext("consumerGroup", "cg");
        assert_eq!(
            needed_resources(&pull).unwrap(),
            vec![("orders".into(), SUB), ("%RETRY%cg".into(), SUB)]
        );
        let heartbeat = RemotingCommand::new_request(rc::HEART_BEAT).with_body(b"{]".to_vec());
        assert!(needed_resources(&heartbeat).is_err());
    }

    #[test]
    fn account_grants_resolve_explicit_then_default() {
        let acct = account(false, &[("orders", PUB), ("%RETRY%cgDenied", DENY)]);
        assert!(check_account(&acct, rc::SEND_MESSAGE, &[("orders".into(), PUB)]).is_ok());
        assert_eq!(
            check_account(&acct, rc::PULL_MESSAGE, &[("orders".into(), SUB)]).unwrap_err(),
            "No default permission for topic:orders"
        );
        // Not listed: topic default DENY, group default SUB.
        assert!(check_account(&acct, rc::PULL_MESSAGE, &[("other".into(), SUB)]).is_err());
        assert!(check_account(&acct, rc::PULL_MESSAGE, &[("%RETRY%cg".into(), SUB)]).is_ok());
        assert_eq!(
            check_account(&acct, rc::PULL_MESSAGE, &[("%RETRY%cgDenied".into(), SUB)]).unwrap_err(),
            "No default permission for group:cgDenied"
        );
        assert_eq!(
            check_account(&acct, rc::UPDATE_AND_CREATE_TOPIC, &[]).unwrap_err(),
            "Need admin permission for request code=17, but accessKey=rocketmq2 is not"
        );
        // An admin without resource grants may do anything.
        let admin = account(true, &[]);
        assert!(check_account(&admin, rc::UPDATE_AND_CREATE_TOPIC, &[]).is_ok());
        assert!(check_account(&admin, rc::PULL_MESSAGE, &[("x".into(), SUB)]).is_ok());
    }
}
