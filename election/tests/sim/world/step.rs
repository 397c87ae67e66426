//! One step of a schedule: time passes, due messages arrive, periodic work runs, and the
//! generator picks faults and client sends; then sends that became safe are acknowledged.

use std::collections::BTreeSet;

use rmq_election::{ProposalAnswer, SyncStateProposal};

use super::*;

impl World {
    pub(super) fn step(&mut self) {
        self.now_ms += self.rng.range(1, 30);
        if self.rng.chance(2) {
            let jump = self.rng.range(1_500, 4_000) as i64;
            self.controller_skew_ms += jump;
            self.note(|| format!("controller clock jumps +{jump} ms"));
        } else if self.rng.chance(2) {
            let jump = self.rng.range(100, 2_000) as i64;
            self.controller_skew_ms -= jump;
            self.note(|| format!("controller clock jumps -{jump} ms (new leader)"));
        }
        for message in self.network.due(&mut self.rng, self.now_ms) {
            self.deliver(message);
        }
        self.write_heartbeats();
        self.controller_faults();
        self.periodic();
        self.faults();
        self.client_sends();
        self.masters_work();
        self.acknowledge();
    }

    /// The quorum goes away for a while (leader killed, no majority); the next leader starts
    /// from the replicated state (a snapshot round trip here) with its own clock. An operator
    /// runs mqadmin electMaster now and then.
    fn controller_faults(&mut self) {
        if self.now_ms >= self.controller_down_until_ms && self.rng.chance(2) {
            self.controller_down_until_ms = self.now_ms + self.rng.range(300, 3_000);
            let dead = self.leader;
            // The heartbeat write in flight fails: its heartbeats were never recorded.
            self.heartbeats = HeartbeatBatch::new();
            self.note(|| format!("controller quorum lost (leader {dead} dies)"));
        }
        if self.controller_down_until_ms > 0 && self.now_ms >= self.controller_down_until_ms {
            self.controller_down_until_ms = 0;
            let snapshot = serde_json::to_string(&self.controller).expect("state serializes");
            let restored: ElectionState =
                serde_json::from_str(&snapshot).expect("state deserializes");
            assert_eq!(
                restored, self.controller,
                "a snapshot restores the whole state"
            );
            self.controller = restored;
            self.controller_skew_ms += self.rng.range(0, 2_000) as i64 - 500;
            // The old leader comes back with an empty receipt table; any member may lead
            // now (the restarted one too: then its start grace applies).
            let old = self.leader;
            self.members[old].restart(self.now_ms);
            self.leader = self.rng.below(MEMBERS as u64) as usize;
            let leader = self.leader;
            self.note(|| format!("controller quorum back with leader {leader}"));
        }
        if self.rng.chance(3) {
            let id = self.rng.range(1, self.brokers.len() as u64);
            let cmd = Command::ElectMaster {
                broker_name: GROUP.into(),
                broker_id: Some(id),
                designate: true,
            };
            self.apply_controller(None, &cmd);
        }
    }

    /// The heartbeat write in flight completes now and then (a quorum fsync takes a few
    /// steps); the heartbeats collected meanwhile are written as one entry, at the time of
    /// the write, later than their arrival, as on the raft leader.
    fn write_heartbeats(&mut self) {
        if self.heartbeats.is_empty() || !self.heartbeats.is_full() && !self.rng.chance(400) {
            return;
        }
        let batch = std::mem::take(&mut self.heartbeats);
        if batch.len() > 1 {
            self.stats.batched_heartbeats += batch.len() as u64;
        }
        let cmd = batch.into_command().expect("not empty");
        self.apply_controller(None, &cmd);
    }

    fn controller_up(&self) -> bool {
        self.controller_down_until_ms == 0
    }

    fn periodic(&mut self) {
        if self.now_ms >= self.next_tick_ms && self.controller_up() {
            self.next_tick_ms = self.now_ms + 100;
            let (now, leader) = (self.now_ms, &self.members[self.leader]);
            let scan = self
                .controller
                .scan(self.controller_now(), |_, id, timeout_ms| {
                    leader.heard(now, id, timeout_ms)
                });
            if let Some(cmd) = scan {
                self.apply_controller(None, &cmd);
            }
        }
        for index in 0..self.brokers.len() {
            if !self.brokers[index].runs(self.now_ms) || self.now_ms < self.next_heartbeat_ms[index]
            {
                continue;
            }
            self.next_heartbeat_ms[index] = self.now_ms + self.rng.range(150, 350);
            let id = self.brokers[index].id;
            let cmd = self.heartbeat(id);
            for member in 0..MEMBERS {
                let cmd = cmd.clone();
                let heartbeat = Message::Heartbeat {
                    from: id,
                    member,
                    cmd,
                };
                self.network.send(&mut self.rng, self.now_ms, heartbeat);
            }
            let request = match self.brokers[index].role {
                Role::Unknown => Message::Apply {
                    from: id,
                    cmd: self.register(id),
                },
                _ => Message::GetInfo { from: id },
            };
            self.network.send(&mut self.rng, self.now_ms, request);
        }
    }

    fn register(&self, id: BrokerId) -> Command {
        Command::RegisterBroker {
            cluster: CLUSTER.into(),
            broker_name: GROUP.into(),
            broker_id: id,
            address: format!("10.0.0.{id}:10911"),
        }
    }

    fn faults(&mut self) {
        let count = self.brokers.len() as u64;
        if self.rng.chance(6) {
            let index = self.rng.below(count) as usize;
            if self.brokers[index].up {
                self.crash(index);
            }
        }
        for index in 0..self.brokers.len() {
            if !self.brokers[index].up && self.rng.chance(15) {
                self.brokers[index].restart();
                self.next_heartbeat_ms[index] = self.now_ms;
                let id = self.brokers[index].id;
                self.note(|| format!("broker {id} restarts"));
            }
        }
        if self.rng.chance(6) {
            let a = Node::Broker(self.rng.range(1, count));
            let b = if self.rng.chance(500) {
                Node::Controller
            } else {
                Node::Broker(self.rng.range(1, count))
            };
            if a != b {
                self.network.set_cut(a, b, true);
                self.note(|| format!("link {a:?} - {b:?} cut"));
            }
        }
        if self.rng.chance(4) {
            // Heartbeat loss between a broker and one member (the leader or a follower).
            let a = Node::Broker(self.rng.range(1, count));
            let b = Node::Member(self.rng.below(MEMBERS as u64) as usize);
            self.network.set_cut(a, b, true);
            self.note(|| format!("link {a:?} - {b:?} cut"));
        }
        if self.network.cut_links() > 0 && self.rng.chance(12) {
            self.network.heal_all();
            self.note(|| "all links healed".to_owned());
        }
    }

    fn crash(&mut self, index: usize) {
        let id = self.brokers[index].id;
        self.brokers[index].crash();
        self.network.drop_involving(id);
        self.pending.retain(|pending| pending.broker != id);
        self.stats.crashes += 1;
        self.note(|| format!("broker {id} crashes"));
        if self.rng.chance(500) {
            // The controller sees the connection close.
            self.apply_controller(
                None,
                &Command::BrokerLost {
                    broker_name: GROUP.into(),
                    broker_id: id,
                },
            );
        }
    }

    /// Load comes in bursts (busy and quiet phases of 50 steps), so replicas both fall
    /// behind and catch up.
    fn client_sends(&mut self) {
        let busy = (self.now_ms / 750).is_multiple_of(2);
        if !self.rng.chance(if busy { 800 } else { 80 }) {
            return;
        }
        let masters: Vec<usize> = (0..self.brokers.len())
            .filter(|i| {
                self.brokers[*i].runs(self.now_ms) && self.brokers[*i].master_view().is_some()
            })
            .collect();
        if masters.is_empty() {
            return;
        }
        let index = masters[self.rng.below(masters.len() as u64) as usize];
        let id = self.next_send_id;
        self.next_send_id += 1;
        if let Some((epoch, offset)) = self.brokers[index].append(id) {
            let broker = self.brokers[index].id;
            self.pending.push(Pending {
                id,
                broker,
                epoch,
                offset,
            });
        }
    }

    /// Masters stream their log to the other brokers and keep their SSS (the broker's
    /// `checkSyncStateSetPeriod`).
    fn masters_work(&mut self) {
        let all: BTreeSet<BrokerId> = self.brokers.iter().map(|b| b.id).collect();
        for index in 0..self.brokers.len() {
            if !self.brokers[index].runs(self.now_ms) {
                continue;
            }
            let Some(view) = self.brokers[index].master_view() else {
                continue;
            };
            let epoch = view.master_epoch();
            let from = self.brokers[index].id;
            for to in all.iter().copied().filter(|to| *to != from) {
                if self.rng.chance(350) {
                    let log = self.brokers[index].log.clone();
                    let history = self.brokers[index].history.clone();
                    self.network.send(
                        &mut self.rng,
                        self.now_ms,
                        Message::Replicate {
                            from,
                            to,
                            epoch,
                            log,
                            history,
                        },
                    );
                }
            }
            if self.rng.chance(100) {
                self.check_sync_state_set(index);
            }
        }
    }

    fn check_sync_state_set(&mut self, index: usize) {
        let from = self.brokers[index].id;
        let broken = self.config.mutation.and_then(Mutation::broken);
        let now_ms = self.now_ms;
        let Role::Master(view) = &mut self.brokers[index].role else {
            return;
        };
        let pending = view.upkeep().pending().cloned();
        let Some(proposal) = view.check(now_ms, broken) else {
            return;
        };
        if pending.as_ref() == Some(&proposal) {
            self.stats.resent += 1;
        }
        let cmd = Command::AlterSyncStateSet {
            broker_name: GROUP.into(),
            master_broker_id: from,
            master_epoch: view.master_epoch(),
            new_sync_state_set: proposal.new_set.clone(),
            sync_state_set_epoch: proposal.based_on_epoch,
        };
        self.note(|| {
            format!(
                "master {from} proposes SSS {:?} on epoch {}",
                proposal.new_set, proposal.based_on_epoch
            )
        });
        self.network
            .send(&mut self.rng, self.now_ms, Message::Apply { from, cmd });
    }

    fn deliver(&mut self, message: Message) {
        if let Some(to) = Network::receiver(&message) {
            let frozen_until_ms = self.brokers[to as usize - 1].frozen_until_ms;
            if frozen_until_ms > self.now_ms {
                // A stopped process reads nothing; its connections keep what was sent.
                self.network.send_at(frozen_until_ms, message);
                return;
            }
        }
        match message {
            Message::Apply { .. } | Message::GetInfo { .. } if !self.controller_up() => {}
            Message::Heartbeat { from, member, cmd } => {
                // The leader is down during an outage; the other members still listen.
                if !self.controller_up() && member == self.leader {
                    return;
                }
                self.members[member].heard.insert(from, self.now_ms);
                if self.controller_up() && member == self.leader {
                    // Recorded with the next heartbeat write (group commit, `write_heartbeats`).
                    let report = cmd.heartbeat_report().expect("a heartbeat");
                    let before = self.heartbeats.len();
                    self.heartbeats
                        .push(report)
                        .expect("a batch holds every replica of the group");
                    if self.heartbeats.len() == before {
                        self.stats.merged_heartbeats += 1;
                    }
                }
            }
            Message::Apply { from, cmd } => self.apply_controller(Some(from), &cmd),
            Message::GetInfo { from } => {
                let info = self.info();
                self.network
                    .send(&mut self.rng, self.now_ms, Message::Info { to: from, info });
            }
            Message::Info { to, info } => self.learn(to, &info),
            Message::Answer {
                to,
                epoch,
                proposal,
                answer,
            } => {
                let broken = self.config.mutation.and_then(Mutation::broken);
                let broker = &mut self.brokers[to as usize - 1];
                if let Role::Master(view) = &mut broker.role
                    && broker.up
                    && view.master_epoch() == epoch
                {
                    if answer == ProposalAnswer::Refused
                        && view.upkeep().pending() == Some(&proposal)
                    {
                        self.stats.definite_refusals += 1;
                    }
                    view.answered(&proposal, answer, broken);
                }
            }
            Message::Replicate {
                from,
                to,
                epoch,
                log,
                history,
            } => {
                let broker = &mut self.brokers[to as usize - 1];
                match broker.replicate(from, epoch, &log, &history) {
                    Ok(Some(end)) => {
                        if end == log.len() as u64 && self.rng.chance(20) {
                            // Stopped right after catching up (SIGSTOP): its report still
                            // goes out, then nothing for a while.
                            let until = self.now_ms + self.rng.range(300, 2_500);
                            self.brokers[to as usize - 1].frozen_until_ms = until;
                            self.stats.freezes += 1;
                            self.note(|| {
                                format!("broker {to} stopped until {until} after catching up")
                            });
                        }
                        self.network.send(
                            &mut self.rng,
                            self.now_ms,
                            Message::Ack {
                                from: to,
                                to: from,
                                epoch,
                                end,
                            },
                        );
                    }
                    Ok(None) => {}
                    Err(divergence) => self.divergence = Some(Violation::Diverged(divergence.0)),
                }
            }
            Message::Ack {
                from,
                to,
                epoch,
                end,
            } => {
                let broker = &mut self.brokers[to as usize - 1];
                if let Role::Master(view) = &mut broker.role
                    && broker.up
                    && view.master_epoch() == epoch
                {
                    view.record_report(from, end, self.now_ms);
                }
            }
        }
    }

    fn learn(&mut self, to: BrokerId, info: &ReplicaInfo) {
        let broker = &mut self.brokers[to as usize - 1];
        if !broker.up {
            return;
        }
        broker.learn(info);
        if info.master_broker_id.is_none() && matches!(broker.role, Role::Unknown) {
            let cmd = Command::ElectMaster {
                broker_name: GROUP.into(),
                broker_id: Some(to),
                designate: false,
            };
            self.network
                .send(&mut self.rng, self.now_ms, Message::Apply { from: to, cmd });
        }
    }

    /// Applies a command on the controller and answers: the sender gets the group's state,
    /// every broker gets it after an election (role-change notification).
    fn apply_controller(&mut self, from: Option<BrokerId>, cmd: &Command) {
        let now = self.controller_now();
        let members_before = self.info().sync_state_set.len();
        let outcome = self.controller.apply(now, cmd);
        match &outcome {
            Outcome::Elected(elections) if !elections.is_empty() => {
                for election in elections {
                    if election.new_master.is_some() {
                        self.stats.elections += 1;
                    } else {
                        self.stats.masterless += 1;
                    }
                }
                self.note(|| format!("{cmd:?} -> {outcome:?}"));
                self.broadcast_info();
                return;
            }
            Outcome::SyncStateSetAltered { .. } => {
                self.stats.sync_state_changes += 1;
                self.note(|| format!("{cmd:?} -> {outcome:?}"));
            }
            Outcome::Refused(_) => {
                self.stats.refusals += 1;
                self.note(|| format!("{cmd:?} -> {outcome:?}"));
            }
            _ => {}
        }
        if let (
            Some(from),
            Command::AlterSyncStateSet {
                master_epoch,
                new_sync_state_set,
                sync_state_set_epoch,
                ..
            },
        ) = (from, cmd)
        {
            // The master's call gets this answer only (as the broker's).
            let answer = match &outcome {
                Outcome::SyncStateSetAltered {
                    sync_state_set_epoch,
                    ..
                } => ProposalAnswer::Accepted {
                    epoch: *sync_state_set_epoch,
                },
                Outcome::Refused(refusal) => ProposalAnswer::from_refusal(Some(refusal.code)),
                _ => ProposalAnswer::Unknown,
            };
            if let Outcome::SyncStateSetAltered { .. } = outcome {
                self.stats.joined += u64::from(new_sync_state_set.len() > members_before);
            }
            let message = Message::Answer {
                to: from,
                epoch: *master_epoch,
                proposal: SyncStateProposal {
                    new_set: new_sync_state_set.clone(),
                    based_on_epoch: *sync_state_set_epoch,
                },
                answer,
            };
            self.network.send(&mut self.rng, self.now_ms, message);
            return;
        }
        if let Some(from) = from
            && !matches!(outcome, Outcome::HeartbeatRecorded)
        {
            let info = self.info();
            self.network
                .send(&mut self.rng, self.now_ms, Message::Info { to: from, info });
        }
    }

    /// Acknowledges every pending send its master may acknowledge now.
    fn acknowledge(&mut self) {
        let mut still = Vec::with_capacity(self.pending.len());
        for pending in std::mem::take(&mut self.pending) {
            let broker = &mut self.brokers[pending.broker as usize - 1];
            let Role::Master(view) = &mut broker.role else {
                continue;
            };
            if !broker.up || view.master_epoch() != pending.epoch {
                continue; // no longer master in that epoch: the client sees a failure
            }
            if broker.frozen_until_ms > self.now_ms {
                still.push(pending);
                continue;
            }
            let (all_ack, min_in_sync) = (
                self.config.all_ack_in_sync_state_set,
                self.config.min_in_sync_replicas,
            );
            let limit = match self.config.mutation {
                Some(Mutation::CountApprovedOnly) => {
                    view.ack_limit_of(view.upkeep().approved().0, true, 0)
                }
                Some(Mutation::ShrinkBeforeApproval) => {
                    let upkeep = view.upkeep();
                    let mut counted = upkeep.counted();
                    if let Some(shrink) = upkeep.pending() {
                        let approved = upkeep.approved().0;
                        counted.retain(|id| shrink.new_set.contains(id) || !approved.contains(id));
                    }
                    view.ack_limit_of(&counted, true, 0)
                }
                _ => view.ack_limit(all_ack, min_in_sync),
            };
            if pending.offset < limit {
                assert_eq!(
                    broker.log[pending.offset as usize].id, pending.id,
                    "a master never truncates"
                );
                let acked = Acked {
                    id: pending.id,
                    broker: pending.broker,
                    epoch: pending.epoch,
                    offset: pending.offset,
                };
                self.acked.push(acked);
                self.stats.acked += 1;
            } else {
                still.push(pending);
            }
        }
        self.pending = still;
    }
}
