//! UPDATE_NAMESRV_CONFIG and GET_NAMESRV_CONFIG (mqadmin updateNamesrvConfig /
//! getNamesrvConfig): the name server's config as `key=value` lines, changed at runtime.
//!
//! As in RocketMQ, keys in `configBlackList` (by default the black list itself,
//! `configStorePath` and `kvConfigPath`) are refused with NO_PERMISSION. Unlike RocketMQ, an
//! update is not written back to the `-c` file: it lasts until the name server restarts.

use std::rc::Rc;

use rmq_core::config::{COMMAND_LINE, parse_properties};
use rmq_core::remoting::{RemotingCommand, ResponseCode};
use rmq_net::ConnectionInfo;

use crate::processor::{NamesrvState, reply};

/// RocketMQ 4.9.8's default `configBlackList`.
pub const DEFAULT_CONFIG_BLACK_LIST: &str = "configBlackList;configStorePath;kvConfigPath";

/// UPDATE_NAMESRV_CONFIG: the body is a properties text.
pub fn update(
    state: &Rc<NamesrvState>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> RemotingCommand {
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return reply(
            req,
            ResponseCode::SystemError,
            Some("config body is not UTF-8".into()),
        );
    };
    let props = parse_properties(text);
    let black_list = black_list(&state.config.borrow());
    if let Some(entry) = props.entries.iter().find(|e| black_list.contains(&e.key)) {
        tracing::warn!(key = %entry.key, peer = %conn.peer, "UPDATE_NAMESRV_CONFIG refused: key in configBlackList");
        return reply(
            req,
            ResponseCode::NoPermission,
            Some("Can not update config in black list.".into()),
        );
    }
    let mut updated = state.config.borrow().clone();
    let mut warnings = Vec::new();
    let applied = updated
        .apply_properties(&props, COMMAND_LINE, &mut warnings)
        .and_then(|()| updated.validate(COMMAND_LINE));
    if let Err(error) = applied {
        return reply(req, ResponseCode::SystemError, Some(error.to_string()));
    }
    for warning in warnings {
        tracing::warn!("UPDATE_NAMESRV_CONFIG: {warning}");
    }
    tracing::info!(peer = %conn.peer, "name server config updated: {}", text.trim().replace('\n', ", "));
    *state.config.borrow_mut() = updated;
    reply(req, ResponseCode::Success, None)
}

/// GET_NAMESRV_CONFIG: every key RocketMQ's NamesrvConfig and NettyServerConfig have (with
/// RocketMQ's defaults for those rmq-fast does not use), plus rmq-fast's own.
pub fn get(state: &Rc<NamesrvState>, req: &RemotingCommand) -> RemotingCommand {
    let text = properties_text(&state.config.borrow());
    reply(req, ResponseCode::Success, None).with_body(text.into_bytes())
}

/// RocketMQ 4.9.8's defaults of the name server's own keys rmq-fast accepts without a typed
/// field (the Netty ones are in `rmq_core::config::netty_defaults`).
const UNTYPED_DEFAULTS: &[(&str, &str)] = &[("configBlackList", DEFAULT_CONFIG_BLACK_LIST)];

fn properties_text(config: &rmq_core::config::NamesrvConfig) -> String {
    let mut text = config.to_properties_text();
    if config.rocketmq_home.is_none() {
        // RocketMQ's name server always has it (its start script sets ROCKETMQ_HOME); unset
        // here, shown empty so tools find the key.
        text.push_str("rocketmqHome=\n");
    }
    let netty = rmq_core::config::netty_defaults::NETTY_SERVER_UNTYPED_DEFAULTS;
    for (key, default) in UNTYPED_DEFAULTS.iter().chain(netty) {
        if !config.ignored_keys.contains_key(*key) {
            text.push_str(&format!("{key}={default}\n"));
        }
    }
    text
}

fn black_list(config: &rmq_core::config::NamesrvConfig) -> Vec<String> {
    config
        .ignored_keys
        .get("configBlackList")
        .map_or(DEFAULT_CONFIG_BLACK_LIST, String::as_str)
        .split(';')
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .collect()
}
