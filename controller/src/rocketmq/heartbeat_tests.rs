//! The leader's heartbeat group commit (`heartbeats`): a lone heartbeat is written at once;
//! heartbeats arriving during a write go into the next entry together, in arrival order, one
//! report per replica; each sender gets its own outcome; a failed write fails every
//! heartbeat of its batch and the writer carries on.

use std::sync::{Arc, Mutex};

use rmq_core::remoting::controller::controller_response_code as code;
use rmq_election::{Command, ElectionConfig, ElectionState, HeartbeatReport, Outcome};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::heartbeats::HeartbeatWriter;
use super::replies::Failure;

/// A raft write stand-in: records each command, then waits for the test to let it succeed
/// (applied to `state`) or fail (CONTROLLER_NOT_LEADER, as when leadership is lost).
struct FakeRaft {
    written: Mutex<Vec<Command>>,
    state: Mutex<ElectionState>,
    verdicts: tokio::sync::Mutex<mpsc::UnboundedReceiver<bool>>,
}

impl FakeRaft {
    fn new() -> (Arc<Self>, mpsc::UnboundedSender<bool>) {
        let mut state = ElectionState::new(ElectionConfig::default());
        for id in 1..=3 {
            let apply = Command::ApplyBrokerId {
                cluster: "c".into(),
                broker_name: "g".into(),
                broker_id: id,
                register_check_code: format!("10.0.0.{id}:10911;0"),
            };
            assert!(matches!(
                state.apply(0, &apply),
                Outcome::BrokerIdApplied { .. }
            ));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let raft = Self {
            written: Mutex::new(Vec::new()),
            state: Mutex::new(state),
            verdicts: tokio::sync::Mutex::new(rx),
        };
        (Arc::new(raft), tx)
    }

    async fn write(&self, cmd: Command) -> Result<Outcome, Failure> {
        self.written.lock().unwrap().push(cmd.clone());
        let verdict = self.verdicts.lock().await.recv().await;
        if verdict != Some(true) {
            return Err(Failure::new(code::CONTROLLER_NOT_LEADER, "not leader"));
        }
        Ok(self.state.lock().unwrap().apply(1_000, &cmd))
    }

    fn written(&self) -> Vec<Command> {
        self.written.lock().unwrap().clone()
    }
}

fn report(group: &str, id: u64, max_offset: i64) -> HeartbeatReport {
    HeartbeatReport {
        cluster: "c".into(),
        broker_name: group.into(),
        broker_id: id,
        address: format!("10.0.0.{id}:10911"),
        epoch: 1,
        max_offset,
        confirm_offset: max_offset,
        election_priority: i32::MAX,
        timeout_ms: None,
    }
}

type Sent = JoinHandle<Result<Outcome, Failure>>;

/// Sends `report` as a broker's handler would (a task awaiting its answer).
fn send(writer: &Arc<HeartbeatWriter>, raft: &Arc<FakeRaft>, report: HeartbeatReport) -> Sent {
    let writer = writer.clone();
    let raft = raft.clone();
    tokio::spawn(async move {
        let write = move |cmd| {
            let raft = raft.clone();
            async move { raft.write(cmd).await }
        };
        writer.record(report, write).await
    })
}

/// Lets the other tasks run until `done` holds (they only need a few polls).
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

fn code_of(answer: Result<Outcome, Failure>) -> i32 {
    match answer {
        Ok(Outcome::Refused(refusal)) => refusal.code.response_code(),
        Ok(other) => panic!("expected a failure, got {other:?}"),
        Err(failure) => failure.code,
    }
}

#[tokio::test]
async fn heartbeats_arriving_during_a_write_share_the_next_entry_in_arrival_order() {
    let (raft, verdicts) = FakeRaft::new();
    let writer = Arc::new(HeartbeatWriter::default());

    // Idle: written at once, alone.
    let first = send(&writer, &raft, report("g", 1, 10));
    until(|| raft.written().len() == 1).await;
    assert_eq!(
        raft.written()[0],
        Command::Heartbeats(vec![report("g", 1, 10)])
    );

    // While it is in flight: replica 2, replica 1 again (twice), an unregistered replica.
    let b = send(&writer, &raft, report("g", 2, 20));
    let a1 = send(&writer, &raft, report("g", 1, 11));
    let x = send(&writer, &raft, report("unknown", 1, 0));
    let a2 = send(&writer, &raft, report("g", 1, 12));
    until(|| writer.queued() == vec![3]).await;
    assert_eq!(
        raft.written().len(),
        1,
        "nothing else written during a write"
    );

    verdicts.send(true).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), Outcome::HeartbeatRecorded);
    until(|| raft.written().len() == 2).await;
    assert_eq!(
        raft.written()[1],
        Command::Heartbeats(vec![
            report("g", 2, 20),
            report("g", 1, 12),
            report("unknown", 1, 0),
        ])
    );
    verdicts.send(true).unwrap();
    for sent in [b, a1, a2] {
        assert_eq!(sent.await.unwrap().unwrap(), Outcome::HeartbeatRecorded);
    }
    assert_eq!(
        code_of(x.await.unwrap()),
        code::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED
    );
    let state = raft.state.lock().unwrap().clone();
    let live = |id| state.group("g").unwrap().replicas[&id].liveness.clone();
    assert_eq!(live(1).map(|l| l.max_offset), Some(12));
    assert_eq!(live(2).map(|l| l.max_offset), Some(20));
    assert!(live(3).is_none());
    until(|| writer.queued().is_empty()).await;
}

#[tokio::test]
async fn a_failed_write_fails_every_heartbeat_of_its_batch_and_the_next_is_written() {
    let (raft, verdicts) = FakeRaft::new();
    let writer = Arc::new(HeartbeatWriter::default());
    let first = send(&writer, &raft, report("g", 1, 10));
    until(|| raft.written().len() == 1).await;
    let batch: Vec<Sent> = (1..=3)
        .map(|id| send(&writer, &raft, report("g", id, 30)))
        .collect();
    until(|| writer.queued() == vec![3]).await;

    verdicts.send(true).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), Outcome::HeartbeatRecorded);
    until(|| raft.written().len() == 2).await;
    verdicts.send(false).unwrap();
    for sent in batch {
        assert_eq!(code_of(sent.await.unwrap()), code::CONTROLLER_NOT_LEADER);
    }
    let state = raft.state.lock().unwrap().clone();
    let offset = |id| {
        state.group("g").unwrap().replicas[&id]
            .liveness
            .clone()
            .map(|l| l.max_offset)
    };
    assert_eq!((offset(1), offset(2), offset(3)), (Some(10), None, None));

    // The writer went idle after the failure; the next heartbeat is written at once.
    let again = send(&writer, &raft, report("g", 2, 40));
    until(|| raft.written().len() == 3).await;
    verdicts.send(true).unwrap();
    assert_eq!(again.await.unwrap().unwrap(), Outcome::HeartbeatRecorded);
}
