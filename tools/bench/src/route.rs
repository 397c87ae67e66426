//! Topic routes from the name server, turned into the queues the bench talks to, and the
//! broker connections that serve them.
//!
//! GET_ROUTEINFO_BY_TOPIC (105) answers a `TopicRouteData` JSON body, or TOPIC_NOT_EXIST
//! (17). Like the Java producer, an unknown topic is sent to the brokers of the TBW102
//! template route, at most `defaultTopicQueueNums` (4) queues each, and the broker creates
//! the topic on the first send. Only masters (broker id 0) are used: slaves refuse sends,
//! and pulling from the master is what a default consumer does.
//!
//! Queue order follows Java's `topicRouteData2TopicPublishInfo`: brokers sorted by name,
//! then queue ids ascending; `--queues N` keeps the first N.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::FutureExt;
use futures_util::future::{LocalBoxFuture, Shared};
use rmq_core::body::{PERM_READ, PERM_WRITE, TopicRouteData, decode_body};
use rmq_core::remoting::{RemotingCommand, ResponseCode, SerializeType, request_code};
use rmq_net::{NetError, RemotingClient};

use crate::message::{AUTO_CREATE_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS};

/// One queue and the master that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTarget {
    pub broker_name: String,
    pub addr: String,
    pub queue_id: i32,
}

/// Which side of the route to expand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Write,
    Read,
}

/// The queues of `route` usable for `access`, at most `limit`.
///
/// `template` marks the TBW102 route of a topic that does not exist yet: each broker then
/// contributes at most `DEFAULT_TOPIC_QUEUE_NUMS` queues, the number it will create.
pub fn queues_of(
    route: &TopicRouteData,
    access: Access,
    template: bool,
    limit: Option<usize>,
) -> Vec<QueueTarget> {
    let mut queue_datas: Vec<_> = route.queue_datas.iter().collect();
    queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let mut queues = Vec::new();
    for data in queue_datas {
        let (perm, count) = match access {
            Access::Write => (PERM_WRITE, data.write_queue_nums),
            Access::Read => (PERM_READ, data.read_queue_nums),
        };
        let count = if template {
            count.min(DEFAULT_TOPIC_QUEUE_NUMS)
        } else {
            count
        };
        let broker = route
            .broker_datas
            .iter()
            .find(|broker| broker.broker_name == data.broker_name);
        let Some(addr) = broker.and_then(|broker| broker.master_addr()) else {
            continue;
        };
        if data.perm & perm == 0 {
            continue;
        }
        queues.extend((0..count).map(|queue_id| QueueTarget {
            broker_name: data.broker_name.clone(),
            addr: addr.to_string(),
            queue_id,
        }));
    }
    queues.truncate(limit.unwrap_or(usize::MAX));
    queues
}

/// Connects to the first reachable name server of `addrs`, a RocketMQ-style list
/// `host:port;host:port` (a single address works too), trying them in order.
///
/// # Errors
/// The last connection failure when none is reachable, or an empty list.
pub async fn connect_namesrv(addrs: &str, timeout: Duration) -> anyhow::Result<Rc<RemotingClient>> {
    let mut last = None;
    for addr in addrs
        .split(';')
        .map(str::trim)
        .filter(|addr| !addr.is_empty())
    {
        match RemotingClient::connect(addr, timeout).await {
            Ok(client) => return Ok(client),
            Err(error) => {
                tracing::warn!("name server {addr} unreachable: {error}");
                last = Some(error);
            }
        }
    }
    match last {
        Some(error) => Err(error).with_context(|| format!("name server {addrs}")),
        None => bail!("no name server address in {addrs:?}"),
    }
}

/// Asks the name server for `topic`'s route; `Ok(None)` when the topic does not exist.
///
/// # Errors
/// Transport failures, other response codes, and bodies that are not a route.
pub async fn fetch_route(
    namesrv: &RemotingClient,
    topic: &str,
    serialize: SerializeType,
    timeout: Duration,
) -> anyhow::Result<Option<TopicRouteData>> {
    let mut request =
        RemotingCommand::new_request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    request.serialize_type = serialize;
    let response = namesrv
        .invoke(request, timeout)
        .await
        .context("GET_ROUTEINFO_BY_TOPIC")?;
    if response.code == ResponseCode::TopicNotExist.code() {
        return Ok(None);
    }
    if response.code != ResponseCode::Success.code() {
        bail!(
            "route of {topic}: code {} {}",
            response.code,
            response.remark.unwrap_or_default()
        );
    }
    let route = decode_body(&response.body).with_context(|| format!("route body of {topic}"))?;
    Ok(Some(route))
}

/// The write queues for a producer of `topic`, falling back to the TBW102 template.
///
/// # Errors
/// When neither route exists, no master is writable, or the name server fails.
pub async fn producer_queues(
    namesrv: &RemotingClient,
    topic: &str,
    serialize: SerializeType,
    timeout: Duration,
    limit: Option<usize>,
) -> anyhow::Result<Vec<QueueTarget>> {
    let (route, template) = match fetch_route(namesrv, topic, serialize, timeout).await? {
        Some(route) => (route, false),
        None => {
            tracing::info!("topic {topic} does not exist; sending via {AUTO_CREATE_TOPIC}");
            let template = fetch_route(namesrv, AUTO_CREATE_TOPIC, serialize, timeout).await?;
            let route = template.with_context(|| {
                format!(
                    "no route for {topic} nor {AUTO_CREATE_TOPIC} (autoCreateTopicEnable=false?)"
                )
            })?;
            (route, true)
        }
    };
    let queues = queues_of(&route, Access::Write, template, limit);
    if queues.is_empty() {
        bail!("no writable master queue in the route of {topic}");
    }
    Ok(queues)
}

/// A connection attempt the lanes of a worker share.
type Connecting = Shared<LocalBoxFuture<'static, Result<Rc<RemotingClient>, Rc<NetError>>>>;

enum Connection {
    Live(Rc<RemotingClient>),
    Connecting(Connecting),
}

/// One worker's connections to brokers, by address; a broken connection is replaced on
/// the next use. Single-core (`Rc`), shared by the worker's lanes: lanes that need a
/// connection while one is being opened wait for that one, so a worker holds one
/// connection per broker (as a RocketMQ client instance does), not one per lane that
/// happened to start before the first connect finished.
pub struct BrokerConnections {
    connections: RefCell<HashMap<String, Connection>>,
    timeout: Duration,
}

impl BrokerConnections {
    pub fn new(timeout: Duration) -> Self {
        Self {
            connections: RefCell::default(),
            timeout,
        }
    }

    /// The live connection to `addr`, connecting if needed (or joining the connect in
    /// progress).
    ///
    /// # Errors
    /// `NetError::Connect` when the broker cannot be reached.
    pub async fn get(&self, addr: &str) -> Result<Rc<RemotingClient>, NetError> {
        // No borrow is held across the await: other lanes use the map meanwhile.
        let connecting = {
            let mut connections = self.connections.borrow_mut();
            match connections.get(addr) {
                Some(Connection::Live(client)) if !client.is_closed() => {
                    return Ok(client.clone());
                }
                Some(Connection::Connecting(attempt)) => attempt.clone(),
                _ => {
                    let (owned, timeout) = (addr.to_owned(), self.timeout);
                    let attempt = async move {
                        RemotingClient::connect(&owned, timeout)
                            .await
                            .map_err(Rc::new)
                    }
                    .boxed_local()
                    .shared();
                    connections.insert(addr.to_owned(), Connection::Connecting(attempt.clone()));
                    attempt
                }
            }
        };
        let outcome = connecting.clone().await;
        let mut connections = self.connections.borrow_mut();
        // The first waiter to finish records the outcome; a newer entry (a reconnect
        // started meanwhile) is left alone.
        if matches!(connections.get(addr), Some(Connection::Connecting(current)) if current.ptr_eq(&connecting))
        {
            match &outcome {
                Ok(client) => {
                    connections.insert(addr.to_owned(), Connection::Live(client.clone()));
                }
                Err(_) => {
                    connections.remove(addr);
                }
            }
        }
        outcome.map_err(|error| NetError::Connect {
            addr: addr.to_owned(),
            source: match &*error {
                NetError::Connect { source, .. } => {
                    std::io::Error::new(source.kind(), source.to_string())
                }
                other => std::io::Error::other(other.to_string()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use rmq_core::body::{BrokerData, QueueData};

    use super::*;

    fn route() -> TopicRouteData {
        let queue = |name: &str, read, write, perm| QueueData {
            broker_name: name.into(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            topic_sys_flag: 0,
        };
        let broker = |name: &str, addrs: &[(i64, &str)]| BrokerData {
            cluster: "c".into(),
            broker_name: name.into(),
            broker_addrs: addrs
                .iter()
                .map(|(id, addr)| (*id, addr.to_string()))
                .collect(),
        };
        TopicRouteData {
            queue_datas: vec![
                queue("b", 2, 8, 6),
                queue("a", 3, 3, 6),
                queue("ro", 2, 2, 4),
                queue("slave-only", 2, 2, 6),
            ],
            broker_datas: vec![
                broker("a", &[(0, "10.0.0.1:10911"), (1, "10.0.0.9:10911")]),
                broker("b", &[(0, "10.0.0.2:10911")]),
                broker("ro", &[(0, "10.0.0.3:10911")]),
                broker("slave-only", &[(1, "10.0.0.4:10911")]),
            ],
            ..TopicRouteData::default()
        }
    }

    fn ids(queues: &[QueueTarget]) -> Vec<(&str, i32)> {
        queues
            .iter()
            .map(|q| (q.broker_name.as_str(), q.queue_id))
            .collect()
    }

    #[test]
    fn write_queues_follow_java_order_and_skip_unwritable() {
        let queues = queues_of(&route(), Access::Write, false, None);
        assert_eq!(queues.len(), 3 + 8);
        assert_eq!(ids(&queues[..4]), [("a", 0), ("a", 1), ("a", 2), ("b", 0)]);
        assert_eq!(queues[0].addr, "10.0.0.1:10911", "master, not the slave");
        let limited = queues_of(&route(), Access::Write, false, Some(4));
        assert_eq!(ids(&limited), [("a", 0), ("a", 1), ("a", 2), ("b", 0)]);
    }

    #[test]
    fn template_route_caps_queue_count() {
        let queues = queues_of(&route(), Access::Write, true, None);
        assert_eq!(queues.len(), 3 + 4);
    }

    #[test]
    fn namesrv_list_falls_back_to_the_next_reachable_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        // A port that was just free: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let runtime = rmq_net::rt::Runtime::new().unwrap();
        runtime.block_on(async {
            let timeout = Duration::from_secs(2);
            let client = connect_namesrv(&format!("{closed};{open}"), timeout)
                .await
                .expect("the second address is reachable");
            assert_eq!(client.peer(), open);
            assert!(connect_namesrv(&closed.to_string(), timeout).await.is_err());
            assert!(connect_namesrv(" ; ", timeout).await.is_err());
        });
    }

    #[test]
    fn read_queues_include_read_only_brokers() {
        let queues = queues_of(&route(), Access::Read, false, None);
        assert_eq!(
            ids(&queues),
            [
                ("a", 0),
                ("a", 1),
                ("a", 2),
                ("b", 0),
                ("b", 1),
                ("ro", 0),
                ("ro", 1)
            ]
        );
    }
}
