//! The runtime seam: spawning (also of blocking work), timers and the clock, for every crate
//! above `net`.
//!
//! rmq-fast runs on compio (one io_uring runtime per pinned core, see `cores`). Code outside
//! `net` and `storage` should spawn, sleep and time out only through this module (and take
//! sockets from `listener`), so that swapping compio (or running under a simulated clock and
//! executor in tests) means rewriting this file, not every call site; `ha`'s replication
//! stream is the one other user of compio's socket types. Everything here runs on the
//! calling thread's runtime: a spawned task stays on the core that spawned it.
//!
//! Contract: these functions panic when called outside a runtime started by `cores` (or a
//! test runtime), as compio does; [`now`] and [`unix_millis`] work anywhere.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A spawned task. Awaiting it gives the task's output; dropping it cancels the task, so
/// keep it or [`Task::detach`] it.
#[must_use = "dropping a Task cancels it; call detach() to let it run"]
pub struct Task<T>(compio::runtime::JoinHandle<T>);

impl<T> Task<T> {
    /// Lets the task run to completion on its own.
    pub fn detach(self) {
        self.0.detach();
    }

    /// The task has finished (its output, if any, is ready).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

/// Why awaiting a [`Task`] gave no output.
#[derive(Debug, thiserror::Error)]
#[error("task did not complete: {0}")]
pub struct TaskFailed(String);

impl<T> Future for Task<T> {
    type Output = Result<T, TaskFailed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|done| done.map_err(|error| TaskFailed(error.to_string())))
    }
}

/// Futures larger than this are boxed once by [`spawn`] before they travel through the
/// runtime's spawn path (see there).
pub const SPAWN_INLINE_MAX: usize = 256;

/// Runs `future` as a new task on this core's runtime. Its polls count as work for the
/// core's idle-poll window (see `idle_poll`).
///
/// A future larger than [`SPAWN_INLINE_MAX`] bytes is boxed first: the runtime's spawn moves
/// the future by value through several frames into the task's allocation, and for the
/// broker's per-send tasks (~1.4 KB, the shard side of a hand-off) those copies into cold
/// memory were 3% of the broker's CPU at full load (docs/perf.md, "Spawn copies"); boxed,
/// the future is copied once and only a pointer travels.
#[track_caller]
pub fn spawn<F: Future + 'static>(future: F) -> Task<F::Output> {
    if std::mem::size_of::<F>() > SPAWN_INLINE_MAX {
        spawn_small(Box::pin(future))
    } else {
        spawn_small(future)
    }
}

#[track_caller]
fn spawn_small<F: Future + 'static>(future: F) -> Task<F::Output> {
    Task(compio::runtime::spawn(async move {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            crate::idle_poll::note_poll();
            future.as_mut().poll(cx)
        })
        .await
    }))
}

/// Runs the blocking `work` (file writes, fsync) on a thread outside the cores; awaiting the
/// task does not block this core.
pub fn spawn_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Task<T> {
    Task(compio::runtime::spawn_blocking(work))
}

/// Waits `duration` without blocking the core.
pub async fn sleep(duration: Duration) {
    compio::time::sleep(duration).await;
}

/// Waits until `deadline` without blocking the core.
pub async fn sleep_until(deadline: Instant) {
    compio::time::sleep_until(deadline).await;
}

/// `future` did not finish within its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

/// Runs `future` for at most `duration`; `Err(Elapsed)` (and `future` dropped) after that.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    compio::time::timeout(duration, future)
        .await
        .map_err(|_| Elapsed)
}

/// Runs `work` until it ends (`Some(output)`), or until `stop()` is seen true, checked every
/// `poll` (`None`; `work` is dropped then). For work that waits on a peer which may never
/// answer while its owner is shutting down or moving on.
pub async fn unless_stopped<F: Future>(
    stop: impl Fn() -> bool,
    poll: Duration,
    work: F,
) -> Option<F::Output> {
    let watch = async {
        while !stop() {
            sleep(poll).await;
        }
    };
    match futures_util::future::select(std::pin::pin!(work), std::pin::pin!(watch)).await {
        futures_util::future::Either::Left((output, _)) => Some(output),
        futures_util::future::Either::Right(((), _)) => None,
    }
}

/// Lets every other ready task of this core run before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Runs `future` to completion on a new runtime on this thread (tests, tools, benches;
/// broker and name server cores start theirs with `cores::run_cores`).
///
/// # Errors
/// The runtime cannot be created (io_uring refused by the kernel or a seccomp profile).
pub fn block_on<F: Future>(future: F) -> std::io::Result<F::Output> {
    Ok(Runtime::new()?.block_on(future))
}

/// A runtime on this thread that runs several futures in turn, for tests and tools that keep
/// files or sockets open from one run to the next (they belong to the runtime that opened
/// them, so each run must use the same one).
pub struct Runtime(compio::runtime::Runtime);

impl Runtime {
    /// # Errors
    /// The runtime cannot be created (io_uring refused by the kernel or a seccomp profile).
    pub fn new() -> std::io::Result<Runtime> {
        Ok(Runtime(compio::runtime::Runtime::new()?))
    }

    /// Runs `future` to completion on this runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// The monotonic clock timers use.
pub fn now() -> Instant {
    Instant::now()
}

/// Milliseconds since the Unix epoch (wall clock; 0 before 1970).
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn run<F: Future>(future: F) -> F::Output {
        block_on(future).expect("runtime")
    }

    #[test]
    fn spawned_task_output_and_timeouts() {
        run(async {
            let task = spawn(async { 7 });
            assert_eq!(task.await.expect("task output"), 7);
            let slow = timeout(Duration::from_millis(20), sleep(Duration::from_secs(5))).await;
            assert_eq!(slow, Err(Elapsed));
            let quick = timeout(Duration::from_secs(5), async { 3 }).await;
            assert_eq!(quick, Ok(3));
            let began = now();
            sleep_until(began + Duration::from_millis(15)).await;
            assert!(began.elapsed() >= Duration::from_millis(15));
        });
    }

    #[test]
    fn large_spawned_futures_run_and_cancel_like_small_ones() {
        struct Guard(Rc<Cell<bool>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        run(async {
            // State held across an await makes the future larger than the boxing threshold.
            let big = async {
                let state = [7u8; 2 * SPAWN_INLINE_MAX];
                sleep(Duration::from_millis(1)).await;
                state.iter().map(|&b| u32::from(b)).sum::<u32>()
            };
            assert!(std::mem::size_of_val(&big) > SPAWN_INLINE_MAX);
            assert_eq!(
                spawn(big).await.expect("task output"),
                7 * 2 * SPAWN_INLINE_MAX as u32
            );

            let dropped = Rc::new(Cell::new(false));
            let guard = Guard(dropped.clone());
            let pending = spawn(async move {
                let _guard = guard;
                let state = [1u8; 2 * SPAWN_INLINE_MAX];
                sleep(Duration::from_secs(60)).await;
                black_box_sum(&state)
            });
            sleep(Duration::from_millis(1)).await;
            assert!(!dropped.get(), "the task is still waiting");
            drop(pending);
            // compio drops a cancelled task's future at the core's next tick.
            sleep(Duration::from_millis(1)).await;
            assert!(dropped.get(), "dropping the task dropped its boxed future");
        });
    }

    fn black_box_sum(state: &[u8]) -> u32 {
        std::hint::black_box(state)
            .iter()
            .map(|&b| u32::from(b))
            .sum()
    }

    #[test]
    fn blocking_work_runs_off_the_core_thread() {
        run(async {
            let core_thread = std::thread::current().id();
            let worker = spawn_blocking(move || std::thread::current().id())
                .await
                .expect("blocking task output");
            assert_ne!(worker, core_thread);
        });
    }

    #[test]
    fn unless_stopped_gives_the_output_or_drops_the_work_once_stopped() {
        run(async {
            let never = || false;
            let done = unless_stopped(never, Duration::from_millis(5), async { 4 }).await;
            assert_eq!(done, Some(4));

            let stop = Rc::new(Cell::new(false));
            let dropped = Rc::new(Cell::new(false));
            let flag = stop.clone();
            spawn(async move {
                sleep(Duration::from_millis(30)).await;
                flag.set(true);
            })
            .detach();
            struct Guard(Rc<Cell<bool>>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    self.0.set(true);
                }
            }
            let guard = Guard(dropped.clone());
            let silent = async move {
                let _guard = guard;
                sleep(Duration::from_secs(30)).await;
                5
            };
            let began = now();
            let checked = stop.clone();
            let out = unless_stopped(move || checked.get(), Duration::from_millis(5), silent).await;
            assert_eq!(out, None);
            assert!(dropped.get(), "the work was dropped");
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "{:?}",
                began.elapsed()
            );
        });
    }

    #[test]
    fn yield_now_lets_other_tasks_run() {
        run(async {
            let ran = Rc::new(Cell::new(false));
            let flag = ran.clone();
            spawn(async move { flag.set(true) }).detach();
            assert!(!ran.get());
            yield_now().await;
            assert!(ran.get(), "the spawned task ran while this one yielded");
        });
    }

    #[test]
    fn wall_clock_is_after_2020() {
        assert!(unix_millis() > 1_577_836_800_000);
    }
}
