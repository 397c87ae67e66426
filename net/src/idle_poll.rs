//! The cores' run loop: compio's `block_on`, plus bounded idle polling.
//!
//! compio's own loop blocks in `io_uring_enter` as soon as no task is ready. On a VM the
//! thread then leaves the vCPU idle, and the next completion pays the wake-up from halt
//! before the broker sees it (docs/perf.md, "Send latency at half load"). With an idle-poll
//! window, [`block_on_polling`] keeps polling the ring without sleeping (zero-timeout
//! `io_uring_enter`) until `idle_poll` has passed since the last task ran, and only then
//! blocks: a core under steady load stays awake between requests, an idle core sleeps
//! after one window, so an idle broker costs one window of CPU per timer tick (Seastar's
//! `--idle-poll-time-us`, bounded the same way).
//!
//! Whether the window is used at all can be left to the process's [`PollProbe`]
//! ([`block_on_probed`], `poll_probe.rs`): polling only while it measures that polling serves
//! more requests per second. [`block_on_placed`] also pins the thread to its CPU while it
//! polls, or always, or never (`placement.rs`).
//!
//! "A task ran" is counted per thread: every future spawned through [`crate::rt::spawn`]
//! (and the loop's main future) bumps a counter when polled; tasks spawned on compio
//! directly are not seen (they still run; they just do not extend the window).
//!
//! With a zero window the loop is compio's `Runtime::block_on` (run the ready tasks, poll
//! the ring without waiting while tasks are still ready, else block), with one difference:
//! every zero-timeout poll keeps the driver marked awake ([`poll_ring_now`]). compio 0.12's
//! io_uring driver marks itself asleep before each `io_uring_enter` and awake again only
//! when the enter succeeds; a zero-timeout poll that finds no completion fails with
//! `TimedOut` before that, so until the next poll every task woken *on this thread* is taken
//! for a wake-up from another thread: an eventfd `write`, a completion for it and a `read`
//! to clear it (measured: one of each per message in the null broker, two in the broker;
//! docs/perf.md, "Broker CPU per message at low rates").

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::placement::Placement;
use crate::poll_probe::PollProbe;

thread_local! {
    static POLLS: Cell<u64> = const { Cell::new(0) };
    static SERVED: Cell<u64> = const { Cell::new(0) };
    static BLOCKING_WAITS: Cell<u64> = const { Cell::new(0) };
}

/// Blocking waits this thread's loop has made (no task ready and, when idle-polling, its
/// window ran out): how often a core went to sleep.
pub fn blocking_waits() -> u64 {
    BLOCKING_WAITS.with(Cell::get)
}

/// Counts one task poll on this thread (what ends an idle window).
#[inline]
pub(crate) fn note_poll() {
    POLLS.with(|polls| polls.set(polls.get().wrapping_add(1)));
}

fn polls() -> u64 {
    POLLS.with(Cell::get)
}

/// Counts one request read on this thread (what the [`PollProbe`] measures).
#[inline]
pub fn note_request() {
    SERVED.with(|served| served.set(served.get().wrapping_add(1)));
}

fn served() -> u64 {
    SERVED.with(Cell::get)
}

/// Wakes the runtime (as compio's own main-future waker does) and remembers that the main
/// future asked to be polled, so the spinning loop polls it only then.
struct MainWaker {
    woken: AtomicBool,
    runtime: Waker,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.runtime.wake_by_ref();
    }
}

/// Runs `future` to completion on `runtime`, polling the ring without sleeping for up to
/// `idle_poll` after the last task ran before blocking. A zero `idle_poll` blocks as soon as
/// no task is ready (compio's `block_on`, without its spurious self-wake-ups: module doc).
pub fn block_on_polling<F: Future>(
    runtime: &compio::runtime::Runtime,
    idle_poll: Duration,
    future: F,
) -> F::Output {
    block_on_probed(runtime, idle_poll, None, future)
}

/// [`block_on_polling`] for core `probe.1` of a process whose [`PollProbe`] decides whether
/// its cores poll at all: while it says no, the loop blocks as with a zero window; the loop
/// publishes this core's served requests ([`note_request`]) to it.
pub fn block_on_probed<F: Future>(
    runtime: &compio::runtime::Runtime,
    idle_poll: Duration,
    probe: Option<(&PollProbe, usize)>,
    future: F,
) -> F::Output {
    block_on_placed(runtime, idle_poll, probe, None, future)
}

/// [`block_on_probed`] that also places the calling thread (`placement`): pinned or not
/// by whether the loop idle-polls at that moment, as the placement's policy says.
pub fn block_on_placed<F: Future>(
    runtime: &compio::runtime::Runtime,
    idle_poll: Duration,
    probe: Option<(&PollProbe, usize)>,
    mut placement: Option<Placement>,
    future: F,
) -> F::Output {
    let mut place = |polling: bool| {
        if let Some(placement) = placement.as_mut() {
            placement.update(polling);
        }
    };
    runtime.enter(|| {
        let driver = runtime.waker();
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            runtime: driver.clone(),
        });
        let waker = Waker::from(main.clone());
        let mut context = Context::from_waker(&waker);
        let mut future = pin!(future);
        let polling = !idle_poll.is_zero();
        // A loop without a window never polls; one with a window and no probe always does.
        place(polling && probe.is_none_or(|(probe, _)| probe.polling()));
        let mut seen = polls();
        let mut last_work = Instant::now();
        loop {
            if main.woken.swap(false, Ordering::AcqRel) {
                note_poll();
                if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                    runtime.run();
                    return output;
                }
            }
            let more = runtime.run();
            if !polling {
                poll_or_block(runtime, &driver, more);
                continue;
            }
            let now = Instant::now();
            let polled = polls();
            let worked = more || polled != seen;
            if worked {
                seen = polled;
                last_work = now;
            }
            let poll_now = match probe {
                Some((probe, core)) => {
                    probe.tick(core, served(), now);
                    probe.polling()
                }
                None => true,
            };
            place(poll_now);
            if !poll_now {
                // As with a zero window.
                poll_or_block(runtime, &driver, more);
            } else if worked {
                poll_ring_now(runtime, &driver);
            } else if now.saturating_duration_since(last_work) < idle_poll {
                std::thread::yield_now();
                poll_ring_now(runtime, &driver);
            } else {
                block(runtime);
                // A blocking wait that ends starts a fresh window only if a task runs.
                last_work = Instant::now() - idle_poll;
            }
        }
    })
}

/// The loop without a window: reaps completions without waiting while tasks are still
/// ready (`more`), else blocks.
fn poll_or_block(runtime: &compio::runtime::Runtime, driver: &Waker, more: bool) {
    if more {
        poll_ring_now(runtime, driver);
    } else {
        block(runtime);
    }
}

/// Blocks until a completion or a wake-up, counted in [`blocking_waits`].
fn block(runtime: &compio::runtime::Runtime) {
    BLOCKING_WAITS.with(|waits| waits.set(waits.get() + 1));
    runtime.poll();
}

/// Reaps the ring's completions without waiting, leaving the driver marked awake.
///
/// `driver` is the runtime's own waker. Waking it first tells the coming poll not to wait for
/// a completion; such a poll always succeeds, so the driver marks itself awake again instead
/// of staying "asleep" after a zero-timeout `io_uring_enter` that found nothing (module
/// doc). The wake is an atomic `fetch_or`, no syscall, whenever the driver is marked awake
/// or already notified: always, except after a blocking wait that a timer ended and whose
/// timers woke no task.
fn poll_ring_now(runtime: &compio::runtime::Runtime, driver: &Waker) {
    driver.wake_by_ref();
    runtime.poll_with(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn runtime() -> compio::runtime::Runtime {
        compio::runtime::Runtime::new().expect("io_uring runtime")
    }

    /// CPU time this thread has used (CLOCK_THREAD_CPUTIME_ID).
    fn thread_cpu() -> Duration {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
            .expect("thread cpu clock");
        Duration::from(now)
    }

    /// `write`-family syscalls this thread has made (`syscw` of /proc/thread-self/io).
    fn thread_write_syscalls() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
        io.lines()
            .find_map(|line| line.strip_prefix("syscw: "))
            .and_then(|count| count.trim().parse().ok())
            .expect("syscw line")
    }

    #[test]
    fn tasks_woken_on_their_own_core_cost_no_eventfd_write() {
        // A task that spawns a task (ready, but spawning notifies nobody) leaves a task ready
        // after the tick, so the loop polls the ring without waiting. With compio's
        // `block_on` that poll finds nothing and leaves the driver marked asleep, and the
        // spawned task's first wake-up (here a yield) writes the runtime's eventfd: ~1,000
        // writes for 1,000 such tasks (the broker's shard core does this per forwarded send:
        // `serve_mesh` spawns the job, the job wakes the flusher). With the loop's own
        // zero-timeout poll: none.
        for window in [Duration::ZERO, Duration::from_micros(50)] {
            let rt = runtime();
            let before = thread_write_syscalls();
            let yielded = block_on_polling(&rt, window, async {
                crate::rt::spawn(async {
                    let mut done = 0;
                    for _ in 0..1_000 {
                        done += crate::rt::spawn(async {
                            crate::rt::yield_now().await;
                            1
                        })
                        .await
                        .expect("task output");
                    }
                    done
                })
                .await
                .expect("task output")
            });
            let writes = thread_write_syscalls() - before;
            assert_eq!(yielded, 1_000);
            assert!(
                writes < 10,
                "window {window:?}: {writes} write syscalls for 1,000 local wake-ups"
            );
        }
    }

    #[test]
    fn completes_futures_and_spawned_tasks() {
        let rt = runtime();
        let out = block_on_polling(&rt, Duration::from_micros(100), async {
            let done = Rc::new(Cell::new(0));
            let mut tasks = Vec::new();
            for i in 0..10 {
                let done = done.clone();
                tasks.push(crate::rt::spawn(async move {
                    crate::rt::yield_now().await;
                    done.set(done.get() + i);
                    i * 2
                }));
            }
            let mut sum = 0;
            for task in tasks {
                sum += task.await.expect("task output");
            }
            (sum, done.get())
        });
        assert_eq!(out, (90, 45));
    }

    #[test]
    fn timers_fire_and_blocking_work_wakes_the_loop() {
        let rt = runtime();
        let started = Instant::now();
        let out = block_on_polling(&rt, Duration::from_micros(50), async {
            crate::rt::sleep(Duration::from_millis(30)).await;
            crate::rt::spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(20));
                5
            })
            .await
            .expect("blocking output")
        });
        assert_eq!(out, 5);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(50),
            "timer and work waited: {took:?}"
        );
        assert!(took < Duration::from_secs(2), "woken promptly: {took:?}");
    }

    #[test]
    fn a_core_woken_from_another_thread_runs_its_main_future() {
        let rt = runtime();
        let (tx, rx) = futures_channel::oneshot::channel::<u32>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            tx.send(11).expect("receiver alive");
        });
        let out = block_on_polling(&rt, Duration::from_micros(20), rx);
        sender.join().expect("sender thread");
        assert_eq!(out.expect("sent"), 11);
    }

    #[test]
    fn an_idle_core_sleeps_after_its_window() {
        // One second of waiting on a timer: a spinning loop would burn ~1 s of CPU; with a
        // 200 µs window the thread polls once and then sleeps in io_uring_enter.
        let rt = runtime();
        let before = thread_cpu();
        block_on_polling(&rt, Duration::from_micros(200), async {
            crate::rt::sleep(Duration::from_secs(1)).await;
        });
        let used = thread_cpu() - before;
        assert!(
            used < Duration::from_millis(50),
            "idle CPU over 1 s: {used:?}"
        );
    }

    /// Blocking waits of a loop with `window` (and `probe`) while a timer ticks every 10 ms,
    /// 30 times.
    fn blocking_waits_while_ticking(window: Duration, probe: Option<(&PollProbe, usize)>) -> u64 {
        let rt = runtime();
        let before = blocking_waits();
        block_on_probed(&rt, window, probe, async {
            for _ in 0..30 {
                crate::rt::sleep(Duration::from_millis(10)).await;
            }
        });
        blocking_waits() - before
    }

    #[test]
    fn a_busy_core_polls_between_tasks_instead_of_sleeping() {
        // A timer ticks every 10 ms, 30 times. With a 50 ms window the loop is still polling
        // when each tick fires, so it never has to block (a wait happens only if the thread
        // was kept off the CPU for a whole window); with a 100 µs window it blocks before
        // every tick it did not oversleep. Ticks of 10 ms, not 2: on a loaded 2-core CI
        // machine a thread kept off the CPU past a 2 ms tick found its timer fired and did
        // not need to block (14 and 42 of 100 seen).
        fn waits_while_ticking(window: Duration) -> u64 {
            blocking_waits_while_ticking(window, None)
        }
        let polling = waits_while_ticking(Duration::from_millis(50));
        let sleeping = waits_while_ticking(Duration::from_micros(100));
        assert!(
            polling <= 3,
            "polled between ticks, {polling} blocking waits"
        );
        assert!(
            sleeping >= 20,
            "slept between ticks, {sleeping} blocking waits"
        );
    }

    #[test]
    fn a_probed_loop_polls_only_while_its_probe_says_so() {
        // As above with a 50 ms window, under a probe that has not measured yet (no request
        // is counted here, so it never will): it keeps its starting way.
        fn waits_under(polling: bool) -> u64 {
            let room: &'static rmq_core::way_probe::ProbeRoom = Box::leak(Box::default());
            let settings = rmq_core::way_probe::ProbeSettings {
                start_favoured: !polling,
                ..crate::poll_probe::SETTINGS
            };
            let probe = PollProbe::with(1, settings, room, Instant::now());
            assert_eq!(probe.polling(), polling);
            blocking_waits_while_ticking(Duration::from_millis(50), Some((&probe, 0)))
        }
        let polling = waits_under(true);
        let sleeping = waits_under(false);
        assert!(
            polling <= 3,
            "polled between ticks, {polling} blocking waits"
        );
        assert!(
            sleeping >= 20,
            "slept between ticks, {sleeping} blocking waits"
        );
    }
}
