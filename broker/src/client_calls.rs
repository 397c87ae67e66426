//! Requests the broker sends to a client and whose answer it waits for (RocketMQ's
//! `Broker2Client.callClient`): GET_CONSUMER_RUNNING_INFO relayed from an admin to the
//! consumer. Each call gets an opaque of its own; the client's response arrives on the
//! client's connection (any core, `BrokerHandler::response`) and is handed to the waiting
//! call through a one-shot channel. A call that times out or whose connection closes
//! forgets its opaque, so a late answer is dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use futures_channel::oneshot;
use rmq_core::remoting::RemotingCommand;
use rmq_net::connection::ConnectionSender;

/// How long a call waits for the client (RocketMQ's `callClient` timeout).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to a client gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("connection to the client is closed")]
    Closed,
    #[error("wait response on the channel timeout, {0}(ms)")]
    Timeout(u128),
}

/// The calls waiting for a client's answer (broker-wide).
#[derive(Default)]
pub struct ClientCalls {
    next_opaque: AtomicI32,
    waiting: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
}

impl ClientCalls {
    /// Sends `request` on `sender` and waits at most `patience` for the client's response.
    pub async fn call(
        &self,
        sender: &ConnectionSender,
        mut request: RemotingCommand,
        patience: Duration,
    ) -> Result<RemotingCommand, CallError> {
        let opaque = self
            .next_opaque
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        request.opaque = opaque;
        let (reply, answer) = oneshot::channel();
        self.waiting
            .lock()
            .expect("client calls lock")
            .insert(opaque, reply);
        let result = if sender.send(request) {
            match rmq_net::rt::timeout(patience, answer).await {
                Ok(Ok(response)) => Ok(response),
                Ok(Err(_)) => Err(CallError::Closed),
                Err(_) => Err(CallError::Timeout(patience.as_millis())),
            }
        } else {
            Err(CallError::Closed)
        };
        self.waiting
            .lock()
            .expect("client calls lock")
            .remove(&opaque);
        result
    }

    /// A response from a client: wakes the call waiting for its opaque. Returns false when
    /// no call waits for it (late, or never asked).
    pub fn answered(&self, response: RemotingCommand) -> bool {
        let waiting = self
            .waiting
            .lock()
            .expect("client calls lock")
            .remove(&response.opaque);
        match waiting {
            Some(reply) => reply.send(response).is_ok(),
            None => false,
        }
    }
}
