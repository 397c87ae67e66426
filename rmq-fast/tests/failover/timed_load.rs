//! Senders for the scenarios that need to know who acknowledged what and when: each
//! acknowledgement records the broker that answered, when the request left and when the
//! answer came, so a test can order acknowledgements against a kill, a SIGSTOP or the
//! controller's sync-state set (`SetWatch`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_core::remoting::ResponseCode;
use rmq_net::RemotingClient;

use crate::support::{Acked, TIMEOUT, send_request};
use crate::{Cluster, TOPIC};

/// One acknowledged SYNC send.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Index of the broker that answered (`Cluster::brokers`).
    pub broker: usize,
    pub sent: Instant,
    pub answered: Instant,
    pub queue: i32,
    pub offset: i64,
    pub body: Bytes,
}

/// How long a sender waits for an answer: longer than any scenario, so an answer a stopped
/// broker gives late is recorded, never dropped by a client timeout.
const ANSWER_LIMIT: Duration = Duration::from_secs(90);
/// The pause after a refusal or a failed connection, so refused senders do not spin.
const BACKOFF: Duration = Duration::from_millis(20);

/// One refused send: the broker, the response code and when it came.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub broker: usize,
    pub code: i32,
    pub answered: Instant,
}

/// Running senders; `stop` ends them and returns what they saw.
pub struct Load {
    stop: Rc<Cell<bool>>,
    acks: Rc<RefCell<Vec<Ack>>>,
    refused: Rc<RefCell<Vec<Refusal>>>,
    tasks: Vec<rmq_net::rt::Task<()>>,
}

impl Load {
    /// `senders` concurrent senders to each of `brokers`, one request at a time each.
    pub fn start(cluster: &Cluster, brokers: &[usize], senders: usize) -> Load {
        let round = cluster.round();
        let (stop, acks, refused) = Default::default();
        let mut load = Load {
            stop,
            acks,
            refused,
            tasks: Vec::new(),
        };
        for &broker in brokers {
            for sender in 0..senders {
                let addr = cluster.brokers[broker].addr.clone();
                let (stop, acks, refused) =
                    (load.stop.clone(), load.acks.clone(), load.refused.clone());
                let sender = broker * 100 + sender;
                load.tasks.push(rmq_net::rt::spawn(async move {
                    let mut seq = 0u64;
                    while !stop.get() {
                        let Ok(client) = RemotingClient::connect(&addr, TIMEOUT).await else {
                            rmq_net::rt::sleep(BACKOFF).await;
                            continue;
                        };
                        while !stop.get() {
                            seq += 1;
                            let (request, queue, body) = send_request(TOPIC, round, sender, seq);
                            let sent = Instant::now();
                            let Ok(answer) = client.invoke(request, ANSWER_LIMIT).await else {
                                break;
                            };
                            if answer.code != ResponseCode::Success.code() {
                                refused.borrow_mut().push(Refusal {
                                    broker,
                                    code: answer.code,
                                    answered: Instant::now(),
                                });
                                rmq_net::rt::sleep(BACKOFF).await;
                                continue;
                            }
                            let offset = answer.ext("queueOffset").unwrap().parse().unwrap();
                            let returned: i32 = answer.ext("queueId").unwrap().parse().unwrap();
                            assert_eq!(returned, queue, "acknowledged on another queue");
                            acks.borrow_mut().push(Ack {
                                broker,
                                sent,
                                answered: Instant::now(),
                                queue,
                                offset,
                                body,
                            });
                        }
                    }
                }));
            }
        }
        load
    }

    /// The acknowledgements so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.borrow().clone()
    }

    /// Stops the senders (each after its request in flight is answered); returns every
    /// acknowledgement and every refusal.
    pub async fn stop(self) -> (Vec<Ack>, Vec<Refusal>) {
        self.stop.set(true);
        for task in self.tasks {
            task.await.expect("a sender");
        }
        let acks = self.acks.borrow().clone();
        let refused = self.refused.borrow().clone();
        (acks, refused)
    }
}

/// Adds `acks` to `acked`, failing when two acknowledgements name one queue offset (two
/// brokers acknowledging as master for the same place).
pub fn record(acked: &mut Acked, acks: &[Ack]) {
    for ack in acks {
        let earlier = acked.insert((ack.queue, ack.offset), ack.body.clone());
        assert!(
            earlier.is_none(),
            "queue offset {}:{} acknowledged twice: {earlier:?}, then by broker {}",
            ack.queue,
            ack.offset,
            ack.broker
        );
    }
}
