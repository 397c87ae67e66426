//! Where a core's thread runs: pinned to its own CPU, or on any CPU the process may use.
//!
//! A core that sleeps when it has nothing to do runs best unpinned: when a kernel thread
//! (proactive reclaim, soft interrupts) or another process holds its CPU for a few
//! milliseconds, the scheduler moves it to a CPU that is free instead of leaving it to wait
//! for that one. A core that idle-polls runs best pinned: two spinning cores placed on one
//! CPU would take it from each other. So [`Pinning::WhilePolling`] pins a core only while
//! its loop polls (the broker's default under ASYNC_FLUSH; under SYNC_FLUSH it pins always,
//! as unpinned shards woken by their disk completions were packed onto one CPU) (docs/perf.md "Cores pinned only while polling": on this
//! project's 2-CPU VM, send p99 at half load 4.2 → 2.0 ms unpinned; one sync producer with
//! polling 19.5k msg/s pinned against 16.4k unpinned).
//!
//! Contract: [`Placement::update`] makes a system call only when the wanted placement
//! changes; a refused call (a CPU taken out of the process's set) is logged and not retried
//! until the wanted placement changes again. Threads a core starts inherit its placement at
//! that moment (compio's blocking pool threads among them).

use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

/// When a core's thread is pinned to its CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// Never: the kernel places it among the process's CPUs.
    Never,
    /// Always, from its start.
    Always,
    /// Only while its loop idle-polls.
    WhilePolling,
}

/// The placement of one core's thread; owned by that thread's loop.
#[derive(Debug)]
pub struct Placement {
    cpu: usize,
    /// The CPUs the process could use when the cores started.
    free: CpuSet,
    pinning: Pinning,
    /// What was last applied (None: nothing yet).
    pinned: Option<bool>,
}

impl Placement {
    /// The placement of the core whose own CPU is `cpu`, with `pinning`; unpinned it may run
    /// on `free` (the process's CPUs, [`crate::cores::allowed_cpus`]).
    pub fn new(cpu: usize, free: &[usize], pinning: Pinning) -> Placement {
        Placement {
            cpu,
            free: cpu_set(free),
            pinning,
            pinned: None,
        }
    }

    /// Places the calling thread for a loop that idle-polls now (`polling`) or sleeps when
    /// idle.
    pub fn update(&mut self, polling: bool) {
        let pin = match self.pinning {
            Pinning::Never => false,
            Pinning::Always => true,
            Pinning::WhilePolling => polling,
        };
        if self.pinned == Some(pin) {
            return;
        }
        self.pinned = Some(pin);
        let set = if pin { cpu_set(&[self.cpu]) } else { self.free };
        match sched_setaffinity(Pid::from_raw(0), &set) {
            Ok(()) => tracing::trace!(cpu = self.cpu, pin, "core placement"),
            Err(errno) => tracing::debug!(cpu = self.cpu, pin, %errno, "core placement refused"),
        }
    }

    /// Whether the last placement pinned the thread.
    pub fn pinned(&self) -> bool {
        self.pinned == Some(true)
    }
}

/// The set of `cpus` (those beyond what a `CpuSet` holds are left out: `allowed_cpus` lists
/// only CPUs a set reported).
fn cpu_set(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        let _ = set.set(cpu);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sched::sched_getaffinity;

    fn allowed_now() -> Vec<usize> {
        let set = sched_getaffinity(Pid::from_raw(0)).expect("affinity");
        (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect()
    }

    /// Runs `body` on a fresh thread (affinity is per thread; the test harness's must not
    /// change).
    fn on_thread<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(body).join().expect("test thread")
    }

    #[test]
    fn while_polling_pins_only_while_the_loop_polls() {
        let (started, polling, sleeping) = on_thread(|| {
            let started = allowed_now();
            let cpu = *started.last().expect("a CPU");
            let mut placement = Placement::new(cpu, &started, Pinning::WhilePolling);
            placement.update(true);
            let polling = (allowed_now(), placement.pinned());
            placement.update(false);
            let sleeping = (allowed_now(), placement.pinned());
            (started, polling, sleeping)
        });
        let cpu = *started.last().unwrap();
        assert_eq!(polling, (vec![cpu], true), "pinned while polling");
        assert_eq!(
            sleeping,
            (started, false),
            "free again once it sleeps when idle"
        );
    }

    #[test]
    fn always_and_never_ignore_polling() {
        let (started, always, never) = on_thread(|| {
            let started = allowed_now();
            let cpu = started[0];
            let mut always = Placement::new(cpu, &started, Pinning::Always);
            let mut never = Placement::new(cpu, &started, Pinning::Never);
            always.update(false);
            let pinned = allowed_now();
            never.update(true);
            (started, pinned, allowed_now())
        });
        assert_eq!(always, vec![started[0]], "pinned though not polling");
        assert_eq!(never, started, "free though polling");
    }
}
