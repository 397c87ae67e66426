use std::net::IpAddr;

use rmq_core::remoting::{RemotingCommand, request_code as rc};

use super::signature::{ACCESS_KEY, SIGNATURE, sign, signed_content};
use super::*;

const ACL: &str = r#"
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: producer1
    secretKey: secret-producer
    defaultTopicPerm: DENY
    topicPerms:
      - orders=PUB
      - audit=SUB
  - accessKey: trusted1
    secretKey: secret-trusted
    whiteRemoteAddress: 192.168.7.1-9
  - accessKey: admin123
    secretKey: secret-admin1
    admin: true
"#;

fn home_with(text: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("conf")).unwrap();
    std::fs::write(home.path().join("conf/plain_acl.yml"), text).unwrap();
    home
}

fn signed(mut req: RemotingCommand, key: &str, secret: &str) -> RemotingCommand {
    req.set_ext(ACCESS_KEY, key);
    let signature = sign(&signed_content(&req), secret);
    req.set_ext(SIGNATURE, signature);
    req
}

fn send(topic: &str) -> RemotingCommand {
    RemotingCommand::new_request(rc::SEND_MESSAGE_V2)
        .with_ext("a", "pg")
        .with_ext("b", topic)
        .with_body(b"payload".to_vec())
}

fn local() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

#[test]
fn signed_send_with_pub_passes_and_others_are_refused_with_rocketmq_remarks() {
    let home = home_with(ACL);
    let acl = Acl::load(home.path(), "conf/plain_acl.yml").unwrap();
    assert_eq!(
        acl.check(
            local(),
            &signed(send("orders"), "producer1", "secret-producer")
        ),
        Ok(())
    );

    let denied = acl
        .check(
            local(),
            &signed(send("audit"), "producer1", "secret-producer"),
        )
        .unwrap_err();
    assert_eq!(denied.message, "No default permission for topic:audit");
    let response = denied.response(&send("audit"));
    assert_eq!(response.code, 1);
    assert_eq!(
        response.remark.as_deref(),
        Some(
            "org.apache.rocketmq.acl.common.AclException: No default permission for topic:audit, org.apache.rocketmq.acl.plain.PlainPermissionManager.checkPerm(PlainPermissionManager.java:606)"
        )
    );
    // Not listed and the default is DENY.
    assert!(
        acl.check(
            local(),
            &signed(send("other"), "producer1", "secret-producer")
        )
        .is_err()
    );

    let wrong = acl
        .check(
            local(),
            &signed(send("orders"), "producer1", "secret-wrong"),
        )
        .unwrap_err();
    assert_eq!(
        wrong.message,
        "Check signature failed for accessKey=producer1"
    );
    let unknown = acl
        .check(
            local(),
            &signed(send("orders"), "nobody12", "secret-producer"),
        )
        .unwrap_err();
    assert_eq!(unknown.message, "No acl config for nobody12");
    let anonymous = acl.check(local(), &send("orders")).unwrap_err();
    assert_eq!(anonymous.message, "No accessKey is configured");

    // A body changed after signing breaks the signature.
    let mut tampered = signed(send("orders"), "producer1", "secret-producer");
    tampered.body = bytes::Bytes::from_static(b"payloaX");
    assert!(acl.check(local(), &tampered).is_err());
}

#[test]
fn white_addresses_skip_the_signature() {
    let home = home_with(ACL);
    let acl = Acl::load(home.path(), "conf/plain_acl.yml").unwrap();
    let white: IpAddr = "10.10.103.5".parse().unwrap();
    assert_eq!(acl.check(white, &send("anything")), Ok(()));
    // The account's own white address skips signature and permissions.
    let mut req = send("anything");
    req.set_ext(ACCESS_KEY, "trusted1");
    assert_eq!(acl.check("192.168.7.3".parse().unwrap(), &req), Ok(()));
    assert!(acl.check("192.168.7.10".parse().unwrap(), &req).is_err());
}

#[test]
fn admin_codes_need_an_admin_account() {
    let home = home_with(ACL);
    let acl = Acl::load(home.path(), "conf/plain_acl.yml").unwrap();
    let create = RemotingCommand::new_request(rc::UPDATE_AND_CREATE_TOPIC).with_ext("topic", "t1");
    let refused = acl
        .check(
            local(),
            &signed(create.clone(), "producer1", "secret-producer"),
        )
        .unwrap_err();
    assert_eq!(
        refused.message,
        "Need admin permission for request code=17, but accessKey=producer1 is not"
    );
    assert_eq!(
        acl.check(local(), &signed(create, "admin123", "secret-admin1")),
        Ok(())
    );
}

#[test]
fn reload_picks_up_edits_and_keeps_the_previous_acl_on_a_bad_file() {
    let home = home_with(ACL);
    let acl = Acl::load(home.path(), "conf/plain_acl.yml").unwrap();
    let audit = || signed(send("audit"), "producer1", "secret-producer");
    assert!(acl.check(local(), &audit()).is_err());
    std::fs::write(
        home.path().join("conf/plain_acl.yml"),
        ACL.replace("audit=SUB", "audit=PUB|SUB"),
    )
    .unwrap();
    acl.reload_if_changed();
    assert_eq!(acl.check(local(), &audit()), Ok(()));
    std::fs::write(home.path().join("conf/plain_acl.yml"), "accounts: [\n").unwrap();
    acl.reload_if_changed();
    assert_eq!(
        acl.check(local(), &audit()),
        Ok(()),
        "bad file must not drop the ACL"
    );
    // A new file in conf/acl/ is picked up too.
    std::fs::create_dir_all(home.path().join("conf/acl")).unwrap();
    std::fs::write(
        home.path().join("conf/acl/team.yml"),
        "accounts:\n- {accessKey: teamkey1, secretKey: team-secret, defaultTopicPerm: PUB}\n",
    )
    .unwrap();
    acl.reload_if_changed();
    // The default file is still bad, so the whole reload is refused.
    assert!(
        acl.check(local(), &signed(send("x"), "teamkey1", "team-secret"))
            .is_err()
    );
    std::fs::write(home.path().join("conf/plain_acl.yml"), ACL).unwrap();
    acl.reload_if_changed();
    assert_eq!(
        acl.check(local(), &signed(send("x"), "teamkey1", "team-secret")),
        Ok(())
    );
}

#[test]
fn bad_file_at_start_is_an_error_naming_it() {
    let home = home_with("accounts:\n- {accessKey: abc, secretKey: 12345678}\n");
    let error = Acl::load(home.path(), "conf/plain_acl.yml")
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("plain_acl.yml") && error.contains("longer than 6"),
        "{error}"
    );
    // A missing default file is created empty (RocketMQ does the same).
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("conf")).unwrap();
    let acl = Acl::load(empty.path(), "conf/plain_acl.yml").unwrap();
    assert!(empty.path().join("conf/plain_acl.yml").exists());
    assert!(acl.check(local(), &send("t")).is_err());
}

#[test]
fn refusal_log_is_rate_limited() {
    let home = home_with(ACL);
    let acl = Acl::load(home.path(), "conf/plain_acl.yml").unwrap();
    let denied = acl.check(local(), &send("orders")).unwrap_err();
    let peer = "127.0.0.1:5000".parse().unwrap();
    acl.log_refusal(peer, 310, &denied);
    for _ in 0..5 {
        acl.log_refusal(peer, 310, &denied);
    }
    assert_eq!(acl.refusals_not_logged.load(Ordering::Relaxed), 5);
}

#[test]
fn acl_enabled_without_a_home_is_refused() {
    let config = rmq_core::config::BrokerConfig {
        rocketmq_home: None,
        ..Default::default()
    };
    let error = Acl::open(&config).err().unwrap().to_string();
    assert!(
        error.contains("rocketmqHome") && error.contains("ROCKETMQ_HOME"),
        "{error}"
    );
}
