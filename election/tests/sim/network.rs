//! The simulated network: every message has a delivery time (random delay, so messages
//! overtake each other), links can be cut (messages on a cut link are lost or held back
//! until it heals), some messages are lost anyway, and some arrive twice (a client's retry
//! after a timeout: the controller may apply the same request twice; not a master's
//! `AlterSyncStateSet`, which the broker re-sends only knowingly).

use std::collections::BTreeSet;

use rmq_election::{BrokerId, Command, EpochEntry, ProposalAnswer, ReplicaInfo, SyncStateProposal};

use super::rng::Rng;

/// A node: a broker, the controller (the raft group, seen from outside as one, for requests)
/// or one controller member (heartbeats go to every member).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Broker(BrokerId),
    Controller,
    Member(usize),
}

#[derive(Clone, Debug)]
#[allow(dead_code)] // the epoch shows in traces only
pub struct Record {
    pub epoch: u32,
    pub id: u64,
}

#[derive(Clone, Debug)]
pub enum Message {
    /// A broker's request; the controller answers the sender.
    Apply {
        from: BrokerId,
        cmd: Command,
    },
    GetInfo {
        from: BrokerId,
    },
    /// A broker's heartbeat to one controller member: every member notes its receipt, the
    /// raft leader also records it in the state.
    Heartbeat {
        from: BrokerId,
        member: usize,
        cmd: Command,
    },
    /// The controller's view of the group, as a broker learns it from any answer or
    /// role-change notification.
    Info {
        to: BrokerId,
        info: ReplicaInfo,
    },
    /// The controller's answer to a master's `AlterSyncStateSet` (of mastership `epoch`).
    Answer {
        to: BrokerId,
        epoch: u32,
        proposal: SyncStateProposal,
        answer: ProposalAnswer,
    },
    /// A master's log and epoch history, as a slave's fetch would return them.
    Replicate {
        from: BrokerId,
        to: BrokerId,
        epoch: u32,
        log: Vec<Record>,
        history: Vec<EpochEntry>,
    },
    /// A slave holds the master's log up to `end` (in mastership `epoch`).
    Ack {
        from: BrokerId,
        to: BrokerId,
        epoch: u32,
        end: u64,
    },
}

impl Message {
    fn endpoints(&self) -> (Node, Node) {
        match self {
            Self::Apply { from, .. } | Self::GetInfo { from } => {
                (Node::Broker(*from), Node::Controller)
            }
            Self::Heartbeat { from, member, .. } => (Node::Broker(*from), Node::Member(*member)),
            Self::Info { to, .. } | Self::Answer { to, .. } => {
                (Node::Controller, Node::Broker(*to))
            }
            Self::Replicate { from, to, .. } | Self::Ack { from, to, .. } => {
                (Node::Broker(*from), Node::Broker(*to))
            }
        }
    }

    /// Whether the network may deliver it twice (a client's retry nobody sees). Never a
    /// master's `AlterSyncStateSet`: the broker's controller client sends each copy once, and
    /// a copy it sends again is one its sync-state-set upkeep knows of (after the first
    /// one's outcome became unknown).
    fn may_duplicate(&self) -> bool {
        !matches!(
            self,
            Self::Apply {
                cmd: Command::AlterSyncStateSet { .. },
                ..
            }
        )
    }

    pub fn involves(&self, broker: BrokerId) -> bool {
        let (a, b) = self.endpoints();
        a == Node::Broker(broker) || b == Node::Broker(broker)
    }
}

struct InFlight {
    deliver_at_ms: u64,
    message: Message,
}

pub struct Network {
    in_flight: Vec<InFlight>,
    /// Cut links, each stored as (smaller node, larger node).
    cut: BTreeSet<(Node, Node)>,
    pub delay_max_ms: u64,
    pub loss_per_mille: u64,
    pub duplicate_per_mille: u64,
}

impl Network {
    pub fn new(delay_max_ms: u64, loss_per_mille: u64, duplicate_per_mille: u64) -> Self {
        Self {
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            delay_max_ms,
            loss_per_mille,
            duplicate_per_mille,
        }
    }

    pub fn send(&mut self, rng: &mut Rng, now_ms: u64, message: Message) {
        let deliver_at_ms = now_ms + rng.range(1, self.delay_max_ms);
        self.in_flight.push(InFlight {
            deliver_at_ms,
            message,
        });
    }

    /// `message` arrives at `at_ms` (held back for a stopped receiver).
    pub fn send_at(&mut self, at_ms: u64, message: Message) {
        self.in_flight.push(InFlight {
            deliver_at_ms: at_ms,
            message,
        });
    }

    /// The broker a message is for.
    pub fn receiver(message: &Message) -> Option<BrokerId> {
        match message.endpoints().1 {
            Node::Broker(id) => Some(id),
            Node::Controller | Node::Member(_) => None,
        }
    }

    fn link(a: Node, b: Node) -> (Node, Node) {
        if a <= b { (a, b) } else { (b, a) }
    }

    pub fn set_cut(&mut self, a: Node, b: Node, cut: bool) {
        if cut {
            self.cut.insert(Self::link(a, b));
        } else {
            self.cut.remove(&Self::link(a, b));
        }
    }

    pub fn heal_all(&mut self) {
        self.cut.clear();
    }

    pub fn cut_links(&self) -> usize {
        self.cut.len()
    }

    /// A broker crashed: its connections are gone, and what was on them with them.
    pub fn drop_involving(&mut self, broker: BrokerId) {
        self.in_flight
            .retain(|flight| !flight.message.involves(broker));
    }

    /// The messages due at `now_ms`, in random order; lost ones are left out, ones on a cut
    /// link are lost or held back.
    pub fn due(&mut self, rng: &mut Rng, now_ms: u64) -> Vec<Message> {
        let mut due = Vec::new();
        let mut index = 0;
        while index < self.in_flight.len() {
            if self.in_flight[index].deliver_at_ms > now_ms {
                index += 1;
                continue;
            }
            let flight = self.in_flight.swap_remove(index);
            let (a, b) = flight.message.endpoints();
            if self.cut.contains(&Self::link(a, b)) {
                if rng.chance(500) {
                    let deliver_at_ms = now_ms + rng.range(50, 500);
                    self.in_flight.push(InFlight {
                        deliver_at_ms,
                        message: flight.message,
                    });
                }
                continue;
            }
            if rng.chance(self.loss_per_mille) {
                continue;
            }
            if rng.chance(self.duplicate_per_mille) && flight.message.may_duplicate() {
                let deliver_at_ms = now_ms + rng.range(1, self.delay_max_ms * 4);
                self.in_flight.push(InFlight {
                    deliver_at_ms,
                    message: flight.message.clone(),
                });
            }
            due.push(flight.message);
        }
        for i in (1..due.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            due.swap(i, j);
        }
        due
    }
}
