//! REGISTER_BROKER without stalling route lookups. The name server serves everything from
//! one core; a broker with a million topics sends a body that takes seconds to inflate,
//! parse and apply, and route lookups used to wait behind it (5 s client timeouts).
//!
//! So a body above [`INLINE_BODY_MAX`] is decoded on a blocking-pool thread, and the topics
//! are applied to the route table [`APPLY_CHUNK`] at a time with a yield to the core's
//! other tasks between chunks. Registrations of one broker address are applied one at a
//! time, in arrival order per connection; a broker unregistered (connection closed,
//! UNREGISTER_BROKER, expiry) while its topics are applied stops the apply, so no route of
//! a gone broker is left behind. The response is sent once every topic is applied.

use std::rc::Rc;
use std::time::{Duration, Instant};

use rmq_core::body::{KVTable, RegisterBrokerBody, TopicConfig, encode_body};
use rmq_core::remoting::{HeaderError, RemotingCommand, ResponseCode};
use rmq_net::ConnectionInfo;

use crate::processor::{NamesrvState, ORDER_TOPIC_NAMESPACE, reply};
use crate::route_table::{Registration, TopicApply};

/// Bodies up to this size are decoded on the core (a few thousand topics: well under a
/// millisecond); larger ones on a blocking-pool thread.
pub const INLINE_BODY_MAX: usize = 64 << 10;

/// Topics applied to the route table between two yields (a few milliseconds of work at most).
pub const APPLY_CHUNK: usize = 4096;

/// The header fields of a REGISTER_BROKER.
struct Header {
    broker_name: String,
    broker_addr: String,
    cluster: String,
    ha_server_addr: String,
    broker_id: i64,
    compressed: bool,
    partial: bool,
    body_crc: i32,
}

fn header(req: &RemotingCommand) -> Result<Header, HeaderError> {
    Ok(Header {
        broker_name: req.ext_str("brokerName")?.to_string(),
        broker_addr: req.ext_str("brokerAddr")?.to_string(),
        cluster: req.ext_str("clusterName")?.to_string(),
        ha_server_addr: req.ext("haServerAddr").unwrap_or_default().to_string(),
        broker_id: req.ext_i64("brokerId")?,
        compressed: req.ext_opt_bool("compressed")?.unwrap_or(false),
        partial: req.ext_opt_bool("partialTopics")?.unwrap_or(false),
        body_crc: req.ext_opt_i32("bodyCrc32")?.unwrap_or(0),
    })
}

/// Handles one REGISTER_BROKER.
pub async fn register_broker(
    state: &Rc<NamesrvState>,
    conn: &ConnectionInfo,
    req: &RemotingCommand,
) -> RemotingCommand {
    let header = match header(req) {
        Ok(header) => header,
        Err(error) => return reply(req, ResponseCode::SystemError, Some(error.to_string())),
    };
    // RocketMQ's UtilAll.crc32 masks the sign bit; compare the same way.
    let crc = (crc32fast::hash(&req.body) & 0x7FFF_FFFF) as i32;
    if header.body_crc != 0 && crc != header.body_crc {
        tracing::warn!(broker = %header.broker_addr, "register rejected: body crc32 mismatch");
        return reply(
            req,
            ResponseCode::SystemError,
            Some("crc32 not match".into()),
        );
    }
    let body = match decode(req, header.compressed).await {
        Ok(body) => body,
        Err(error) => {
            let remark = format!("register broker body cannot be decoded: {error}");
            return reply(req, ResponseCode::SystemError, Some(remark));
        }
    };
    let _turn = BrokerTurn::take(state, &header.broker_addr).await;
    let registration = Registration {
        cluster: header.cluster,
        broker_name: header.broker_name,
        broker_addr: header.broker_addr,
        broker_id: header.broker_id,
        ha_server_addr: header.ha_server_addr,
        topics: body.topic_config_serialize_wrapper,
        connection_id: conn.id,
        partial: header.partial,
    };
    let started = Instant::now();
    let (outcome, pending) = state
        .routes
        .borrow_mut()
        .begin(&registration, Instant::now());
    let table = &registration.topics.topic_config_table;
    let stale = if pending.apply == TopicApply::Replace {
        state.routes.borrow().topics_of(&pending)
    } else {
        Vec::new()
    };
    let mut current = true;
    let configs: Vec<&TopicConfig> = match pending.apply {
        TopicApply::Nothing => Vec::new(),
        _ => table.values().collect(),
    };
    for (index, chunk) in configs.chunks(APPLY_CHUNK).enumerate() {
        if index > 0 {
            rmq_net::rt::yield_now().await;
        }
        current = state
            .routes
            .borrow_mut()
            .apply_chunk(&pending, chunk.iter().copied());
        if !current {
            break;
        }
    }
    for candidates in stale.chunks(APPLY_CHUNK) {
        if !current {
            break;
        }
        current = state
            .routes
            .borrow_mut()
            .remove_stale_chunk(&pending, candidates, table);
        rmq_net::rt::yield_now().await;
    }
    let broker_addr = &registration.broker_addr;
    if !current {
        tracing::info!(broker = %broker_addr, "broker unregistered while its topics were applied");
    }
    let took = started.elapsed();
    if took > Duration::from_millis(100) {
        tracing::info!(broker = %broker_addr, topics = table.len(), ?took, "large registration applied");
    }
    tracing::debug!(broker = %broker_addr, id = registration.broker_id, topics = table.len(), "broker registered");
    let mut response = reply(req, ResponseCode::Success, None);
    if let Some(master) = outcome.master_addr {
        response.set_ext("masterAddr", master);
    }
    if let Some(ha) = outcome.ha_server_addr {
        response.set_ext("haServerAddr", ha);
    }
    let order = KVTable {
        table: state.kv.borrow().namespace(ORDER_TOPIC_NAMESPACE),
    };
    if table.len() > APPLY_CHUNK {
        // Freeing a million topic configs takes a while too: not on the core.
        drop(configs);
        drop(stale);
        rmq_net::rt::spawn_blocking(move || drop(registration)).detach();
    }
    response.with_body(encode_body(&order))
}

/// The body, decoded on the core when small and on a blocking-pool thread otherwise.
async fn decode(req: &RemotingCommand, compressed: bool) -> Result<RegisterBrokerBody, String> {
    if req.body.is_empty() {
        return Ok(RegisterBrokerBody::default());
    }
    if req.body.len() <= INLINE_BODY_MAX {
        return RegisterBrokerBody::decode(&req.body, compressed).map_err(|e| e.to_string());
    }
    let body = req.body.clone();
    let decoded =
        rmq_net::rt::spawn_blocking(move || RegisterBrokerBody::decode(&body, compressed));
    match decoded.await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(failed) => Err(failed.to_string()),
    }
}

/// The right to apply a registration of one broker address; others for it wait.
struct BrokerTurn {
    state: Rc<NamesrvState>,
    broker_addr: String,
}

impl BrokerTurn {
    async fn take(state: &Rc<NamesrvState>, broker_addr: &str) -> BrokerTurn {
        while !state.applying.borrow_mut().insert(broker_addr.to_string()) {
            rmq_net::rt::sleep(Duration::from_millis(1)).await;
        }
        BrokerTurn {
            state: state.clone(),
            broker_addr: broker_addr.to_string(),
        }
    }
}

impl Drop for BrokerTurn {
    fn drop(&mut self) {
        self.state.applying.borrow_mut().remove(&self.broker_addr);
    }
}

#[cfg(test)]
mod tests;
