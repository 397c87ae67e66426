//! One compio runtime per core.
//!
//! `run_cores` starts `count` threads; thread `i` owns the `i`-th CPU the process may run on
//! (modulo their number), is pinned to it as its [`Pinning`] says (`placement`), and runs
//! `body(i)` to completion on its own io_uring runtime. Everything a core owns lives inside
//! `body`'s future: nothing needs `Send` except what `body` captures at start. [`run_cores_polling`] runs the cores with an
//! idle-poll window (see `idle_poll`): they poll the ring that long after their last task
//! before sleeping.

use std::thread::JoinHandle;
use std::time::Duration;

use crate::placement::{Pinning, Placement};

/// CPUs this process may run on, in ascending order (falls back to 0..available_parallelism).
pub fn allowed_cpus() -> Vec<usize> {
    let mut cpus = Vec::new();
    if let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        for cpu in 0..nix::sched::CpuSet::count() {
            if set.is_set(cpu).unwrap_or(false) {
                cpus.push(cpu);
            }
        }
    }
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        cpus.extend(0..n);
    }
    cpus
}

/// Starts one thread per core, each with its own runtime running `body(core)`; a core
/// sleeps as soon as it has nothing to run, and so is never pinned.
///
/// # Errors
/// An error when a thread or an io_uring instance cannot be created (io_uring refused by
/// the kernel or a seccomp profile shows up here, with the OS error).
pub fn run_cores<F, Fut>(name: &str, count: usize, body: F) -> std::io::Result<Vec<JoinHandle<()>>>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    run_cores_polling(
        name,
        count,
        Duration::ZERO,
        false,
        Pinning::WhilePolling,
        body,
    )
}

/// [`run_cores`] whose cores poll the ring for `idle_poll` after their last task before
/// they sleep (zero: sleep at once). With `probed`, they poll only while the process's
/// [`crate::poll_probe::PollProbe`] measures that polling serves more requests. `pinning`
/// says when a core's thread is pinned to its CPU.
///
/// # Errors
/// As [`run_cores`].
pub fn run_cores_polling<F, Fut>(
    name: &str,
    count: usize,
    idle_poll: Duration,
    probed: bool,
    pinning: Pinning,
    body: F,
) -> std::io::Result<Vec<JoinHandle<()>>>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    assert!(count > 0, "at least one core");
    let cpus = allowed_cpus();
    let probe = (probed && !idle_poll.is_zero())
        .then(|| std::sync::Arc::new(crate::poll_probe::PollProbe::new(count)));
    let mut handles = Vec::with_capacity(count);
    for core in 0..count {
        let cpu = cpus[core % cpus.len()];
        let body = body.clone();
        let probe = probe.clone();
        let placement = Placement::new(cpu, &cpus, pinning);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let handle = std::thread::Builder::new()
            .name(format!("{name}-core{core}"))
            .spawn(move || {
                let runtime = compio::runtime::RuntimeBuilder::new().build();
                let runtime = match runtime {
                    Ok(runtime) => {
                        let _ = ready_tx.send(Ok(()));
                        runtime
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                // As compio's `block_on` does: a panicking core's tasks are dropped (with the
                // runtime) after the unwind was caught, not while it is in progress.
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let probe = probe.as_deref().map(|probe| (probe, core));
                    crate::idle_poll::block_on_placed(
                        &runtime,
                        idle_poll,
                        probe,
                        Some(placement),
                        body(core),
                    );
                }));
                drop(runtime);
                if let Err(panic) = run {
                    std::panic::resume_unwind(panic);
                }
            })?;
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("core thread died at start")))?;
        handles.push(handle);
    }
    Ok(handles)
}
