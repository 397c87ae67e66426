//! GET_BROKER_CONFIG (26) and UPDATE_BROKER_CONFIG (25).
//!
//! UPDATE_BROKER_CONFIG applies the properties text to `BrokerContext::live_config` (bad
//! values are refused with SYSTEM_ERROR naming the key) and GET_BROKER_CONFIG shows the
//! live values, followed by the keys of RocketMQ's config classes that have no meaning here
//! (`rocketmq_keys`). Nothing is written back to the properties file: a restart returns to the
//! file's values. Keys read per request take effect at once (`enablePropertyFilter`,
//! `longPollingEnable`, `brokerPermission`: sends are refused and the broker re-registers at
//! once with its topics carrying the new permission); the rest are recorded but need a restart.

use std::rc::Rc;

use rmq_core::config::parse_properties;
use rmq_core::remoting::{RemotingCommand, ResponseCode};

use super::super::{Processed, reply, success};
use crate::core_context::CoreContext;

pub fn get_config(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let config = core.broker.live_config.load();
    let text = super::rocketmq_keys::with_rocketmq_keys(&config, config.to_properties_text());
    Ok(success(req).with_body(text.into_bytes()))
}

pub fn update_config(core: &Rc<CoreContext>, req: &RemotingCommand) -> Processed {
    let text = String::from_utf8_lossy(&req.body);
    let props = parse_properties(&text);
    if props.entries.is_empty() {
        return Err(reply(
            req,
            ResponseCode::SystemError,
            "string2Properties error".to_string(),
        ));
    }
    let source = "UPDATE_BROKER_CONFIG";
    let mut updated = (**core.broker.live_config.load()).clone();
    let mut warnings = Vec::new();
    updated
        .apply_properties(&props, source, &mut warnings)
        .and_then(|()| updated.validate(source))
        .map_err(|error| reply(req, ResponseCode::SystemError, error.to_string()))?;
    for warning in &warnings {
        tracing::warn!(key = %warning.key, "{}", warning.message);
    }
    let keys: Vec<&str> = props.entries.iter().map(|e| e.key.as_str()).collect();
    tracing::info!(?keys, "broker config updated at runtime (not persisted)");
    core.broker.live_config.store(std::sync::Arc::new(updated));
    if props.get("brokerPermission").is_some() {
        // As RocketMQ: a new data version and an immediate registration put the new
        // permission in the routes (registration.rs applies it to every topic).
        core.broker.topics.next_data_version();
        core.broker.request_registration();
    }
    Ok(success(req))
}
