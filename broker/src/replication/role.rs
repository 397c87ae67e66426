//! The broker's role at runtime (issue 11, controller mode): master or slave, its broker id,
//! its master epoch and, as a slave, whom it follows. In classic mode the role comes from
//! `brokerRole`/`brokerId` and never changes; in controller mode the controller changes it
//! through [`become_master`] and [`become_slave`] (the internal API the controller client
//! drives).
//!
//! A change bumps the role *generation*. Every core runs [`run_duties`]: it starts the duties
//! of the current generation (a slave replicates each shard it owns and core 0 copies the
//! master's metadata; core 0 of a master listens on the HA port), and when the generation
//! moves it stops them (the sessions' `stopping` closures see the new generation: the HA
//! listener closes, master sessions drop their slaves, slave sessions close, within
//! [`DUTY_TICK`] or `rmq_ha::slave::STOP_POLL`, also while they wait on a master that answers
//! nothing: see [`unless_outdated`]), waits until they ended, applies the new role to its shards (a new master starts its epoch on every shard
//! before any write, `ShardStore::begin_epoch`) and reports the generation settled.
//!
//! Order of a change, so no write lands where it must not:
//! - slave → master (epoch E): the broker keeps refusing writes while the cores stop
//!   following and start epoch E on every shard; only when every core settled does it accept
//!   writes, as brokerId 0, and re-register with every name server at once (the old id
//!   unregistered). SYNC acknowledgements then wait for the slaves (`AckPolicy`).
//! - master → slave of A (epoch E): writes are refused at once (SERVICE_NOT_AVAILABLE, as a
//!   4.x slave answers), then the cores drop the HA listener and its sessions (waiting sends
//!   fail: nothing more is acknowledged), wait [`IN_FLIGHT_GRACE`] for appends already on
//!   their way, and follow A with `min_master_epoch` E: the handshake cuts each shard back to
//!   the consistent point with A's epoch history. The broker re-registers with its new id.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rmq_core::config::{BrokerConfig, BrokerRole};

use crate::context::SharedContext;
use crate::core_context::CoreContext;

/// How long a core that stops being master waits for appends already past the role check.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_millis(300);
/// How often a core's duty loop looks for a new generation or sync-state set.
pub const DUTY_TICK: Duration = Duration::from_millis(20);
/// How long a role change waits for every core to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// What the role is (a consistent snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub role: BrokerRole,
    /// The id registered with the name servers: 0 for a master that takes writes.
    pub broker_id: i64,
    /// The id the controller assigned (controller mode; a master keeps it while it registers
    /// as 0); in classic mode `brokerId`.
    pub controller_id: i64,
    /// Master epoch (controller mode; -1 in classic mode).
    pub epoch: i32,
    /// A slave's master: its remoting address and HA address (controller mode; classic
    /// slaves learn them from the name servers, see `ReplicationInfo`).
    pub master_addr: Option<String>,
    pub master_ha_addr: Option<String>,
    pub generation: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RoleError {
    #[error("epoch {requested} is older than this broker's epoch {current}")]
    StaleEpoch { requested: i32, current: i32 },
    #[error("the role cannot change: the broker is not in controller mode")]
    NotControllerMode,
    #[error("cores did not settle role generation {generation} within {SETTLE_LIMIT:?}")]
    NotSettled { generation: u64 },
    #[error("the broker is stopping")]
    Stopping,
}

/// The broker's role (see the module docs). Reads on the send path are one atomic load.
pub struct RoleState {
    current: Mutex<Role>,
    /// Writes are refused (a slave, or a master whose cores have not settled yet).
    refuses_writes: AtomicBool,
    /// Acknowledgements wait for a slave report.
    waits_for_replica: AtomicBool,
    /// A controller-mode master's sync-state set size (itself included), checked against
    /// `minInSyncReplicas` before every append (`AckPolicy::admit`); 0: no check.
    in_sync_replicas: AtomicUsize,
    generation: AtomicU64,
    /// Cores that applied `generation`.
    settled: AtomicUsize,
    /// A master's sync-state set without itself (`apply_sync_state_set`), and its version.
    required: Mutex<BTreeSet<i64>>,
    required_version: AtomicU64,
    controller_mode: bool,
}

impl RoleState {
    /// Classic mode: `brokerRole`/`brokerId`, for good. Controller mode: a slave following
    /// nobody, refusing writes, until the controller gives a role.
    pub fn from_config(config: &BrokerConfig) -> RoleState {
        let initial = match config.enable_controller_mode {
            true => BrokerRole::Slave,
            false => config.broker_role,
        };
        let role = Role {
            role: initial,
            broker_id: config.broker_id,
            controller_id: config.broker_id,
            epoch: -1,
            master_addr: None,
            master_ha_addr: None,
            generation: 0,
        };
        RoleState {
            refuses_writes: AtomicBool::new(initial == BrokerRole::Slave),
            waits_for_replica: AtomicBool::new(initial == BrokerRole::SyncMaster),
            in_sync_replicas: AtomicUsize::new(0),
            current: Mutex::new(role),
            generation: AtomicU64::new(0),
            settled: AtomicUsize::new(0),
            required: Mutex::new(BTreeSet::new()),
            required_version: AtomicU64::new(0),
            controller_mode: config.enable_controller_mode,
        }
    }

    pub fn snapshot(&self) -> Role {
        self.current.lock().expect("role lock").clone()
    }

    /// True while the broker refuses writes (a slave, or a master not settled yet).
    pub fn refuses_writes(&self) -> bool {
        self.refuses_writes.load(Ordering::Acquire)
    }

    pub fn waits_for_replica(&self) -> bool {
        self.waits_for_replica.load(Ordering::Acquire)
    }

    /// A controller-mode master's in-sync replica count (its applied sync-state set, itself
    /// included; RocketMQ 5's `inSyncReplicasNums`); None in classic mode and as a slave.
    pub fn in_sync_replicas(&self) -> Option<usize> {
        match self.in_sync_replicas.load(Ordering::Acquire) {
            0 => None,
            count => Some(count),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn broker_id(&self) -> i64 {
        self.current.lock().expect("role lock").broker_id
    }

    pub fn controller_mode(&self) -> bool {
        self.controller_mode
    }

    /// Installs `next` as a new generation (writes stay refused until [`Self::open_as_master`]).
    fn change(&self, next: impl FnOnce(&Role) -> Role) -> Role {
        let mut current = self.current.lock().expect("role lock");
        self.refuses_writes.store(true, Ordering::Release);
        self.waits_for_replica.store(false, Ordering::Release);
        self.in_sync_replicas.store(0, Ordering::Release);
        let mut role = next(&current);
        role.generation = current.generation + 1;
        self.settled.store(0, Ordering::Release);
        self.generation.store(role.generation, Ordering::Release);
        *current = role.clone();
        role
    }

    /// Installs this broker as master of `epoch`: writes stay refused, and the registered id
    /// stays the old one, until [`Self::open_as_master`] (a registration in between must not
    /// announce as brokerId 0 a broker that refuses sends).
    fn begin_master(&self, epoch: i32, controller_id: i64) -> Role {
        self.change(|current| Role {
            role: BrokerRole::SyncMaster,
            broker_id: current.broker_id,
            controller_id,
            epoch,
            master_addr: None,
            master_ha_addr: None,
            generation: 0,
        })
    }

    /// A settled master of `generation` takes writes, as brokerId 0; false (and nothing
    /// changes) when another change overtook it.
    fn open_as_master(&self, generation: u64) -> bool {
        let mut current = self.current.lock().expect("role lock");
        if current.generation != generation {
            return false;
        }
        assert!(current.role.is_master(), "only a master opens for writes");
        current.broker_id = 0;
        self.refuses_writes.store(false, Ordering::Release);
        true
    }

    fn settle(&self, generation: u64) {
        if self.generation() == generation {
            self.settled.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn settled(&self, generation: u64, cores: usize) -> bool {
        self.generation() == generation && self.settled.load(Ordering::Acquire) >= cores
    }
}

fn check_epoch(current: &Role, epoch: i32) -> Result<(), RoleError> {
    if epoch < current.epoch {
        return Err(RoleError::StaleEpoch {
            requested: epoch,
            current: current.epoch,
        });
    }
    Ok(())
}

async fn wait_settled(broker: &SharedContext, generation: u64) -> Result<(), RoleError> {
    let deadline = std::time::Instant::now() + SETTLE_LIMIT;
    while !broker.role.settled(generation, broker.core_count) {
        if broker.stopping.load(Ordering::Acquire) {
            return Err(RoleError::Stopping);
        }
        if broker.role.generation() != generation || std::time::Instant::now() > deadline {
            return Err(RoleError::NotSettled { generation });
        }
        rmq_net::rt::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Makes this broker (controller id `controller_id`) the master of `epoch` with the
/// sync-state set `sync_state_set` (controller ids, this one included; see
/// [`apply_sync_state_set`]): returns once it accepts writes as brokerId 0. A no-op when it
/// already is master of `epoch`.
///
/// # Errors
/// `StaleEpoch` for an epoch older than the current one; `NotSettled` when a core did not
/// apply the change in time (or another change overtook it); `NotControllerMode`.
pub async fn become_master(
    broker: &SharedContext,
    epoch: i32,
    controller_id: i64,
    sync_state_set: &[i64],
) -> Result<(), RoleError> {
    let role = &broker.role;
    if !role.controller_mode {
        return Err(RoleError::NotControllerMode);
    }
    {
        let current = role.snapshot();
        check_epoch(&current, epoch)?;
        if current.role.is_master() && current.epoch == epoch && !role.refuses_writes() {
            apply_sync_state_set(broker, sync_state_set);
            return Ok(());
        }
    }
    let next = role.begin_master(epoch, controller_id);
    // Before the cores start the generation, so they take the new set with it.
    apply_sync_state_set(broker, sync_state_set);
    wait_settled(broker, next.generation).await?;
    broker.topics.next_state_version(epoch);
    if !role.open_as_master(next.generation) {
        return Err(RoleError::NotSettled {
            generation: next.generation,
        });
    }
    broker.request_registration();
    crate::registration::register_role_change(broker);
    tracing::warn!(epoch, "this broker is master now");
    Ok(())
}

/// A master's SYNC acknowledgements follow RocketMQ 5.3.3's rules (`AckPolicy`): with
/// `allAckInSyncStateSet` a send waits for a report of every other member of its sync-state
/// set (each core hands the set to its shards' `ShardReplica::set_required` within
/// [`DUTY_TICK`]) and, alone in it, the master acknowledges by itself; without it a send
/// waits for `inSyncReplicas` - 1 distinct slaves whatever the set, and for at least one
/// slave while the set has other members (RocketMQ 5.3.3 waits for none with
/// `inSyncReplicas=1`; rmq-fast keeps its safer rule there). Either way
/// the set's size (itself included) is the in-sync replica count appends are admitted
/// against (`minInSyncReplicas`). The controller decides the set: a
/// shrink is applied only once it accepted it, an expansion is applied (as the union of the
/// old and new sets) before it is asked for (`controller_client`).
pub fn apply_sync_state_set(broker: &SharedContext, sync_state_set: &[i64]) {
    let me = broker.role.snapshot().controller_id;
    let others: BTreeSet<i64> = sync_state_set
        .iter()
        .copied()
        .filter(|&id| id != me)
        .collect();
    // With `allAckInSyncStateSet` every SYNC send goes through its shard's wait, which
    // decides on the shard's core, after the append, from the set it holds then (an empty
    // set releases at once): deciding here, before the set reached the shards, would let a
    // send past a slave that is already counted as holding everything acknowledged.
    let all_ack = broker.role.controller_mode() && broker.config.all_ack_in_sync_state_set;
    // Without it, RocketMQ 5.3.3 acknowledges on the master's word alone for
    // inSyncReplicas=1; rmq-fast still waits for one slave while the set has other members.
    let waits = all_ack || broker.config.in_sync_replicas > 1 || !others.is_empty();
    broker
        .role
        .waits_for_replica
        .store(waits, Ordering::Release);
    broker
        .role
        .in_sync_replicas
        .store(others.len() + 1, Ordering::Release);
    *broker.role.required.lock().expect("role lock") = others;
    broker.role.required_version.fetch_add(1, Ordering::AcqRel);
}

/// The sync-state set a master applies now (without itself).
pub fn applied_sync_state_set(broker: &SharedContext) -> BTreeSet<i64> {
    broker.role.required.lock().expect("role lock").clone()
}

/// Hands this core's shards whose reports release a send: controller mode with
/// `allAckInSyncStateSet`, every member of the applied sync-state set; controller mode
/// without it, `inSyncReplicas` - 1 distinct slaves; classic, any slave.
fn push_required(core: &CoreContext) {
    let broker = &core.broker;
    let config = &broker.config;
    let controller_mode = broker.role.controller_mode();
    let required = (controller_mode && config.all_ack_in_sync_state_set)
        .then(|| applied_sync_state_set(broker));
    let slaves_needed = match controller_mode && !config.all_ack_in_sync_state_set {
        true => usize::try_from(config.in_sync_replicas.max(1) - 1).unwrap_or(0),
        false => 0,
    };
    for (shard, replica) in &core.replicas {
        replica.set_slaves_needed(slaves_needed);
        let log_end = core
            .shards
            .get(shard)
            .map_or(0, |store| store.max_physical_offset());
        replica.set_required(required.clone(), log_end);
    }
}

/// Makes this broker a slave with `broker_id` following the master at `master_addr`
/// (remoting) / `master_ha_addr` (HA; None: the one the name servers give for the master)
/// in `epoch`; returns once every core stopped acting as master and follows.
///
/// # Errors
/// As [`become_master`].
pub async fn become_slave(
    broker: &SharedContext,
    master_addr: &str,
    master_ha_addr: Option<&str>,
    epoch: i32,
    broker_id: i64,
) -> Result<(), RoleError> {
    let role = &broker.role;
    if !role.controller_mode {
        return Err(RoleError::NotControllerMode);
    }
    {
        let current = role.snapshot();
        check_epoch(&current, epoch)?;
        let same = current.role == BrokerRole::Slave
            && current.epoch == epoch
            && current.broker_id == broker_id
            && current.master_addr.as_deref() == Some(master_addr)
            && current.master_ha_addr.as_deref() == master_ha_addr;
        if same {
            return Ok(());
        }
    }
    let next = role.change(|_| Role {
        role: BrokerRole::Slave,
        broker_id,
        controller_id: broker_id,
        epoch,
        master_addr: Some(master_addr.to_string()),
        master_ha_addr: master_ha_addr.map(str::to_string),
        generation: 0,
    });
    broker.topics.next_state_version(epoch);
    broker.request_registration();
    crate::registration::register_role_change(broker);
    wait_settled(broker, next.generation).await?;
    tracing::warn!(
        epoch,
        broker_id,
        master = master_addr,
        "this broker is a slave now"
    );
    Ok(())
}

/// Fencing (controller mode): a master that may have been replaced (it cannot reach the
/// controller, or the controller refused its epoch) stops accepting writes at once; only a
/// new [`become_master`] from the controller lifts it.
pub fn fence(broker: &SharedContext) {
    broker.role.refuses_writes.store(true, Ordering::Release);
}

/// Whether work of role `generation` must stop (a newer role, or the broker stops).
pub fn outdated(broker: &SharedContext, generation: u64) -> bool {
    broker.stopping.load(Ordering::Acquire) || broker.role.generation() != generation
}

/// Sleeps `pause`, cut short once role `generation` is outdated: the tasks of a generation
/// pause between attempts, and a role change waits for them to end (a slave elected master
/// takes writes only then).
pub async fn sleep_unless_outdated(broker: &SharedContext, generation: u64, pause: Duration) {
    let deadline = std::time::Instant::now() + pause;
    while !outdated(broker, generation) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        rmq_net::rt::sleep(left.min(DUTY_TICK)).await;
    }
}

/// Runs `work` until it ends, or until role `generation` is outdated (None; `work` is
/// dropped then). For the tasks of a generation that wait on a peer: a master cut off by a
/// partition answers nothing until their timeouts, and a role change waits for every task of
/// the old generation to end.
pub async fn unless_outdated<F: Future>(
    broker: &SharedContext,
    generation: u64,
    work: F,
) -> Option<F::Output> {
    rmq_net::rt::unless_stopped(|| outdated(broker, generation), DUTY_TICK, work).await
}

/// This core's replication duties for each role generation, until the broker stops (see the
/// module docs).
pub async fn run_duties(core: Rc<CoreContext>) {
    let broker = core.broker.clone();
    while !broker.stopping.load(Ordering::Acquire) {
        let role = broker.role.snapshot();
        let generation = role.generation;
        if generation > 0 && role.role.is_master() {
            for (&shard, store) in &core.shards {
                if let Err(error) = store.begin_epoch(role.epoch) {
                    // The role cannot be taken without it: stay unsettled, the change fails.
                    tracing::error!(shard, epoch = role.epoch, %error, "cannot start the epoch");
                    return;
                }
            }
        }
        broker.role.settle(generation);
        if generation > 0 && role.role.is_master() && core.core == 0 {
            // Slaves are served once every shard started the epoch.
            while !broker.role.settled(generation, broker.core_count)
                && !outdated(&broker, generation)
            {
                rmq_net::rt::sleep(Duration::from_millis(5)).await;
            }
        }
        let tasks = super::start_generation(&core, &role);
        // A mastership counts joining slaves from its own start: marks of an earlier one
        // would let a slave in that lacks what was acknowledged since.
        for replica in core.replicas.values() {
            replica.forget_counting_marks();
        }
        let mut pushed = None;
        while !outdated(&broker, generation) {
            let version = broker.role.required_version.load(Ordering::Acquire);
            if pushed != Some(version) {
                pushed = Some(version);
                push_required(&core);
            }
            if role.role.is_master() && broker.role.refuses_writes() {
                // Fenced (or not settled yet: then nothing waits): sends waiting for slaves
                // this master may no longer reach answer FLUSH_SLAVE_TIMEOUT now, within a
                // tick of the fence, rather than at `slaveTimeout`, so their clients retry
                // elsewhere before their own timeout.
                let ended: usize = core.replicas.values().map(|r| r.abandon_waiters()).sum();
                if ended > 0 {
                    tracing::warn!(ended, "sends waiting for slaves ended: writes are refused");
                }
            }
            rmq_net::rt::sleep(DUTY_TICK).await;
        }
        for task in tasks {
            let _ = task.await;
        }
        if role.role.is_master() {
            rmq_net::rt::sleep(IN_FLIGHT_GRACE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller_mode() -> RoleState {
        let pairs = [
            ("enableControllerMode".to_string(), "true".to_string()),
            ("controllerAddr".to_string(), "127.0.0.1:1".to_string()),
        ];
        RoleState::from_config(&BrokerConfig::load(None, &pairs).unwrap().0)
    }

    #[test]
    fn a_new_master_announces_id_0_only_once_it_takes_writes() {
        let role = controller_mode();
        role.change(|current| Role {
            role: BrokerRole::Slave,
            broker_id: 2,
            controller_id: 2,
            epoch: 1,
            ..current.clone()
        });
        let next = role.begin_master(2, 2);
        assert!(role.refuses_writes());
        assert_eq!(role.broker_id(), 2, "announced as 0 while refusing writes");
        assert!(role.open_as_master(next.generation));
        assert!(!role.refuses_writes());
        assert_eq!((role.broker_id(), role.snapshot().controller_id), (0, 2));
    }

    #[test]
    fn an_overtaken_master_change_does_not_open() {
        let role = controller_mode();
        let first = role.begin_master(1, 1);
        let second = role.begin_master(2, 1);
        assert!(!role.open_as_master(first.generation));
        assert!(role.refuses_writes());
        assert!(role.open_as_master(second.generation));
        assert_eq!(role.snapshot().epoch, 2);
    }
}
