//! UPDATE_CONTROLLER_CONFIG (1009) and GET_CONTROLLER_CONFIG (1010), mqadmin
//! `updateControllerConfig` / `getControllerConfig`: this member's configuration as
//! `key=value` lines, changed at runtime.
//!
//! Per member, as RocketMQ 5.3.3 (`ControllerManager.getConfiguration().update`): a change
//! reaches only the member asked (mqadmin asks every address given with `-a`), and every key
//! with its value is then written to `configStorePath` (default
//! `$HOME/controller/controller.properties`; a member started with that file as `-c` keeps
//! the change across restarts). The file is written before the change applies: a write that
//! fails refuses the request with SYSTEM_ERROR naming the file (5.3.3 logs it and answers
//! success). Keys in `configBlackList`
//! (always `configBlackList`, `configStorePath`, `rocketmqHome`, as 5.3.3, plus those the file
//! lists) are refused with NO_PERMISSION ("Can not update config in black list."). Unlike
//! 5.3.3, which sets any field and silently skips unknown keys and unparsable values, only the
//! keys rmq-fast reads at runtime change ([`RUNTIME_KEYS`]); any other key, an unknown one or
//! a bad value refuses the whole request with SYSTEM_ERROR naming the key.
//!
//! `enableElectUncleanMaster` decides elections, which every replica of the state computes:
//! the raft leader writes its own value into the log (`Command::SetElectUncleanMaster`) when it
//! is changed and whenever it differs from the replicated one (checked on every request the
//! leader answers, brokers heartbeat every second), so the leader's value applies, as in 5.3.3
//! where the leader elects.

use rmq_core::config::keys::{CONTROLLER_IGNORED, NETTY_SERVER_IGNORED};
use rmq_core::config::{COMMAND_LINE, ControllerConfig, parse_properties};
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_election::Command;

use super::ControllerService;
use super::replies::Failure;
use crate::node::RaftRole;

type Node = crate::node::NodeHandle<rmq_election::ElectionState>;

/// The keys a running member honours when changed.
pub const RUNTIME_KEYS: &[&str] = &["enableElectUncleanMaster", "notifyBrokerRoleChanged"];

/// Always black-listed (RocketMQ 5.3.3's `initConfigBlackList`).
const ALWAYS_BLACK_LISTED: &[&str] = &["configBlackList", "configStorePath", "rocketmqHome"];

/// GET_CONTROLLER_CONFIG: every key with this member's current value.
pub(super) fn get(service: &ControllerService, request: &RemotingCommand) -> RemotingCommand {
    let text = service.live().to_properties_text();
    RemotingCommand::response_for(request, ResponseCode::Success as i32, None)
        .with_body(text.into_bytes())
}

/// UPDATE_CONTROLLER_CONFIG: the body is a properties text (see the module docs).
pub(super) async fn update(
    service: &ControllerService,
    node: &Node,
    request: &RemotingCommand,
) -> Result<RemotingCommand, Failure> {
    let system_error = |remark: String| Failure::new(ResponseCode::SystemError as i32, remark);
    let text = std::str::from_utf8(&request.body)
        .map_err(|_| system_error("config body is not UTF-8".to_owned()))?;
    let props = parse_properties(text);
    let mut updated = service.live().clone();
    let black_list = black_list(&updated);
    if props.entries.iter().any(|e| black_list.contains(&e.key)) {
        return Err(Failure::new(
            ResponseCode::NoPermission as i32,
            "Can not update config in black list.",
        ));
    }
    for entry in &props.entries {
        if RUNTIME_KEYS.contains(&entry.key.as_str()) {
            continue;
        }
        let key = entry.key.as_str();
        let known = ControllerConfig::KEYS.contains(&key)
            || CONTROLLER_IGNORED
                .iter()
                .chain(NETTY_SERVER_IGNORED)
                .any(|ignored| ignored.key == key);
        let remark = match known {
            true => format!(
                "{} is read when the controller starts: edit its file and restart it (runtime keys: {})",
                entry.key,
                RUNTIME_KEYS.join(", ")
            ),
            false => format!(
                "unknown controller config key {} (runtime keys: {})",
                entry.key,
                RUNTIME_KEYS.join(", ")
            ),
        };
        return Err(system_error(remark));
    }
    let mut warnings = Vec::new();
    updated
        .apply_properties(&props, COMMAND_LINE, &[], &mut warnings)
        .map_err(|e| system_error(e.to_string()))?;
    let changes = text.trim().replace('\n', ", ");
    persist(&updated).map_err(system_error)?;
    *service.live() = updated;
    tracing::info!("controller config updated: {changes}");
    sync_elect_unclean_master(service, node).await?;
    Ok(RemotingCommand::response_for(
        request,
        ResponseCode::Success as i32,
        None,
    ))
}

/// On the leader: writes this member's `enableElectUncleanMaster` into the replicated state
/// when it differs (see the module docs). A follower does nothing.
///
/// # Errors
/// The write failed (lost leadership, no quorum).
pub(super) async fn sync_elect_unclean_master(
    service: &ControllerService,
    node: &Node,
) -> Result<(), Failure> {
    if node.role() != RaftRole::Leader {
        return Ok(());
    }
    let wanted = service.live().enable_elect_unclean_master;
    if node.local(|state| state.config().enable_elect_unclean_master) == wanted {
        return Ok(());
    }
    node.write(Command::SetElectUncleanMaster { enable: wanted })
        .await?;
    tracing::info!(
        enable = wanted,
        "enableElectUncleanMaster of the leader replicated"
    );
    Ok(())
}

/// Writes every key with its value to `configStorePath` (RocketMQ 5.3.3's
/// `Configuration.persist` after an update), through a temporary file of its own renamed over
/// it, so a crash leaves the old file or the new one and two members writing the same path
/// leave one whole file.
///
/// # Errors
/// Why the file could not be written, naming it.
fn persist(config: &ControllerConfig) -> Result<(), String> {
    let path = &config.config_store_path;
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // Unique: members sharing the default path write it at the same time (mqadmin -a).
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let write_no = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}-{write_no}.tmp", std::process::id()));
        let temporary = std::path::PathBuf::from(temporary);
        let mut file = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(&mut file, config.to_properties_text().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|error| {
        format!(
            "cannot persist the controller config to configStorePath {}: {error}",
            path.display()
        )
    })
}

fn black_list(config: &ControllerConfig) -> Vec<String> {
    let listed = config
        .ignored_keys
        .get("configBlackList")
        .map_or("", String::as_str);
    ALWAYS_BLACK_LISTED
        .iter()
        .copied()
        .chain(listed.split(';'))
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .collect()
}
