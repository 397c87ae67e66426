//! What one core owns: its storage shards and its ends of the cross-core mesh.
//!
//! `on_shard` runs a closure on the core that owns a shard: inline when that is this
//! core, otherwise by sending the closure over the mesh; the result comes back on a
//! oneshot channel. The closure runs on the owner's runtime, so the shard needs no lock.
//! `hand_off` sends work that needs no result back (it answers its request itself).

use std::cell::RefCell;
use std::collections::HashMap;

use rmq_core::remoting::field_hash::FieldHasherBuilder;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use rmq_ha::master::ShardReplica;
use rmq_net::mesh::{MeshReceiver, MeshSender};
use rmq_storage::ShardStore;

use crate::context::SharedContext;

/// Work for a shard, sent to its owner core.
pub struct ShardJob {
    pub shard: u32,
    pub run: Box<dyn FnOnce(OwnedShard) + Send>,
}

/// How long a sender waits for room in a full ring before answering SYSTEM_BUSY.
const RING_FULL_PATIENCE: Duration = Duration::from_millis(200);

/// The shard's owner could not take the work (ring full for too long, or stopped).
#[derive(Debug, thiserror::Error)]
#[error("[OVERLOAD]system busy, shard {shard} did not accept work")]
pub struct ShardBusy {
    pub shard: u32,
}

/// Shard id → what this core holds of it; looked up twice per send, with the cheap seeded
/// hasher (`field_hash`) rather than SipHash.
pub type ShardMap<T> = HashMap<u32, T, FieldHasherBuilder>;

pub struct CoreContext {
    pub core: usize,
    pub broker: SharedContext,
    pub shards: ShardMap<Rc<ShardStore>>,
    /// Each owned shard's slaves as a master sees them: connected slaves, their reported
    /// offset and the SYNC_MASTER waiters (`replication::ack_policy`); empty of slaves on
    /// other roles. Owned here (not in a thread-local) and passed explicitly.
    pub replicas: ShardMap<Rc<ShardReplica>>,
    links: RefCell<MeshSender<ShardJob>>,
}

/// A shard as work on its owner core sees it: the store and its slave state.
#[derive(Clone)]
pub struct OwnedShard {
    pub store: Rc<ShardStore>,
    pub replica: Rc<ShardReplica>,
}

impl CoreContext {
    pub fn new(
        core: usize,
        broker: SharedContext,
        shards: HashMap<u32, Rc<ShardStore>>,
        links: MeshSender<ShardJob>,
    ) -> Self {
        let replicas = shards.keys().map(|&shard| (shard, Rc::default())).collect();
        Self {
            core,
            broker,
            shards: shards.into_iter().collect(),
            replicas,
            links: RefCell::new(links),
        }
    }

    /// The store and slave state of `shard`, which this core owns.
    ///
    /// # Panics
    /// When this core does not own `shard` (work is only ever run on the owner).
    pub fn owned(&self, shard: u32) -> OwnedShard {
        let store = self.shards.get(&shard);
        let replica = self.replicas.get(&shard);
        let (Some(store), Some(replica)) = (store, replica) else {
            panic!("core {} does not own shard {shard}", self.core);
        };
        OwnedShard {
            store: store.clone(),
            replica: replica.clone(),
        }
    }

    /// Runs `work` on the owner of `shard` and returns its result.
    pub async fn on_shard<R, F, Fut>(&self, shard: u32, work: F) -> Result<R, ShardBusy>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardStore>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.on_owned_shard(shard, move |owned| work(owned.store))
            .await
    }

    /// `on_shard` for work that also needs the shard's slave state (acknowledgements).
    pub async fn on_owned_shard<R, F, Fut>(&self, shard: u32, work: F) -> Result<R, ShardBusy>
    where
        R: Send + 'static,
        F: FnOnce(OwnedShard) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let owner = self.broker.core_of_shard(shard);
        if owner == self.core {
            return Ok(work(self.owned(shard)).await);
        }
        let (done_tx, done_rx) = oneshot::channel();
        let run: Box<dyn FnOnce(OwnedShard) + Send> = Box::new(move |owned| {
            rmq_net::rt::spawn(async move {
                let _ = done_tx.send(work(owned).await);
            })
            .detach();
        });
        self.send_job(owner, ShardJob { shard, run }).await?;
        done_rx.await.map_err(|_| ShardBusy { shard })
    }

    /// Queues `work` on the core owning `shard`, another core, and returns once it is
    /// queued: the work answers its request itself (through a `Responder`), so this core is
    /// not woken again for it. Err when the owner did not take it; the work was dropped.
    pub async fn hand_off<F, Fut>(&self, shard: u32, work: F) -> Result<(), ShardBusy>
    where
        F: FnOnce(OwnedShard) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let owner = self.broker.core_of_shard(shard);
        assert_ne!(
            owner, self.core,
            "work for this core's own shard is not handed off"
        );
        let run: Box<dyn FnOnce(OwnedShard) + Send> = Box::new(move |owned| {
            rmq_net::rt::spawn(work(owned)).detach();
        });
        self.send_job(owner, ShardJob { shard, run }).await
    }

    async fn send_job(&self, owner: usize, mut job: ShardJob) -> Result<(), ShardBusy> {
        let deadline = std::time::Instant::now() + RING_FULL_PATIENCE;
        loop {
            let shard = job.shard;
            match self.links.borrow_mut().send(owner, job) {
                Ok(()) => return Ok(()),
                Err(back) => job = back,
            }
            if std::time::Instant::now() > deadline {
                return Err(ShardBusy { shard });
            }
            rmq_net::rt::sleep(Duration::from_micros(100)).await;
        }
    }

    /// Executes jobs other cores send to this core's shards, for as long as the core runs:
    /// the task ends when the core's runtime is dropped after its shards closed. No timer
    /// per batch: a job that arrives while the core stops still runs and meets a stopping
    /// shard, which answers it with an error (as before the loop noticed the stop).
    pub async fn serve_mesh(self: Rc<Self>, mut inbound: MeshReceiver<ShardJob>) {
        let mut batch = Vec::new();
        loop {
            inbound.recv_batch(&mut batch).await;
            for job in batch.drain(..) {
                (job.run)(self.owned(job.shard));
            }
        }
    }
}
