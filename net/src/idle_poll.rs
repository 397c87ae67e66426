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
//! "A task ran" is counted per thread: every future spawned through [`crate::rt::spawn`]
//! (and the loop's main future) bumps a counter when polled; tasks spawned on compio
//! directly are not seen (they still run; they just do not extend the window).
//!
//! With a zero window the loop is compio's `Runtime::block_on` itself.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

thread_local! {
    static POLLS: Cell<u64> = const { Cell::new(0) };
    static BLOCKING_WAITS: Cell<u64> = const { Cell::new(0) };
}

/// Blocking waits this thread's polling loop has made (its window ran out): how often an
/// idle-polling core went to sleep.
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
/// `idle_poll` after the last task ran before blocking. A zero `idle_poll` is compio's
/// `block_on`.
pub fn block_on_polling<F: Future>(
    runtime: &compio::runtime::Runtime,
    idle_poll: Duration,
    future: F,
) -> F::Output {
    if idle_poll.is_zero() {
        return runtime.block_on(future);
    }
    runtime.enter(|| {
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            runtime: runtime.waker(),
        });
        let waker = Waker::from(main.clone());
        let mut context = Context::from_waker(&waker);
        let mut future = pin!(future);
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
            let now = polls();
            if more || now != seen {
                seen = now;
                last_work = Instant::now();
                runtime.poll_with(Some(Duration::ZERO));
            } else if last_work.elapsed() < idle_poll {
                std::thread::yield_now();
                runtime.poll_with(Some(Duration::ZERO));
            } else {
                BLOCKING_WAITS.with(|waits| waits.set(waits.get() + 1));
                runtime.poll();
                // A blocking wait that ends starts a fresh window only if a task runs.
                last_work = Instant::now() - idle_poll;
            }
        }
    })
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

    #[test]
    fn a_busy_core_polls_between_tasks_instead_of_sleeping() {
        // A timer ticks every 2 ms, 100 times. With a 50 ms window the loop is still polling
        // when each tick fires, so it never has to block (a wait happens only if the thread
        // was kept off the CPU for a whole window); with a 100 µs window it blocks before
        // every tick.
        fn waits_while_ticking(window: Duration) -> u64 {
            let rt = runtime();
            let before = blocking_waits();
            block_on_polling(&rt, window, async {
                for _ in 0..100 {
                    crate::rt::sleep(Duration::from_millis(2)).await;
                }
            });
            blocking_waits() - before
        }
        let polling = waits_while_ticking(Duration::from_millis(50));
        let sleeping = waits_while_ticking(Duration::from_micros(100));
        assert!(
            polling <= 10,
            "polled between ticks, {polling} blocking waits"
        );
        assert!(
            sleeping >= 50,
            "slept between ticks, {sleeping} blocking waits"
        );
    }
}
