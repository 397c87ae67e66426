//! Reading every core's counters: each core runs a small task answering snapshot requests
//! (`serve`); a reader on any core asks all of them and sums the answers. The reader's own
//! core is read directly, so a broker with one core (or the test harness, which runs no
//! background task) needs no message at all.

use std::sync::Mutex;
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

use super::counters::{self, CoreStats};

type Request = oneshot::Sender<CoreStats>;

/// The readers' ends of every core's snapshot channel (broker-wide).
#[derive(Default)]
pub struct StatsHub {
    cores: Mutex<Vec<(usize, mpsc::UnboundedSender<Request>)>>,
}

/// How long a read waits for a core before counting it as silent.
const CORE_PATIENCE: Duration = Duration::from_secs(2);

impl StatsHub {
    /// Registers the calling core and serves its snapshots until the broker stops (the
    /// channel closes with the hub).
    pub fn start_core(&self, core: usize) {
        let (sender, mut requests) = mpsc::unbounded::<Request>();
        self.cores
            .lock()
            .expect("stats hub lock")
            .push((core, sender));
        rmq_net::rt::spawn(async move {
            while let Some(reply) = requests.next().await {
                let _ = reply.send(counters::snapshot());
            }
        })
        .detach();
    }

    /// The counters of every core summed; `caller` is the core asking (read directly). A
    /// core that does not answer in time is left out and logged.
    pub async fn gather(&self, caller: usize) -> CoreStats {
        let mut total = counters::snapshot();
        let waits: Vec<(usize, oneshot::Receiver<CoreStats>)> = {
            let cores = self.cores.lock().expect("stats hub lock");
            cores
                .iter()
                .filter(|(core, _)| *core != caller)
                .filter_map(|(core, sender)| {
                    let (reply, answer) = oneshot::channel();
                    sender.unbounded_send(reply).ok().map(|()| (*core, answer))
                })
                .collect()
        };
        for (core, answer) in waits {
            match rmq_net::rt::timeout(CORE_PATIENCE, answer).await {
                Ok(Ok(stats)) => total.merge(&stats),
                _ => tracing::warn!(core, "core did not report its statistics"),
            }
        }
        total
    }
}
