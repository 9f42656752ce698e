//! Starts a slow-path query on the thread that received it, and hands it to the runtime only once
//! it has to wait.
//!
//! A UDP receive thread could spawn each query the fast path cannot answer, but a spawn wakes a
//! runtime worker: a cross-thread wake-up and a context switch before the query even reaches the
//! upstream. Instead the thread polls the query's future once itself, inside the runtime's context
//! (so sockets and timers register with its drivers). That first poll does the work up to the first
//! wait (parse, cache and hosts lookups, sending the upstream query) and often more. If the future
//! is then pending it is parked in its own waker: the resource it waits on (an upstream's answer, a
//! timer) wakes it, which spawns it onto the runtime from the thread that woke it. When that is a
//! runtime worker (the I/O driver delivering the upstream's answer), the spawn goes on that
//! worker's own queue and needs no further wake-up.
//!
//! What that saves: a `udp://` upstream query (and a `tcp://` one on a reused connection) leaves
//! before any thread hop, and when a server on this machine has answered it by the time the query
//! is about to wait, the whole exchange ends in the first poll with no worker woken at all. A DoT
//! query on an open connection is encrypted and written in that first poll as well
//! (`upstream::dot`), so only its answer wakes a worker; so is a DoH query's HTTP/2 frames, which
//! the exchange writes by polling the connection itself (`upstream::h2drive`) rather than waking
//! the connection's task (the CPU per miss this saved is in BENCHMARKS.md, "Figures moved from
//! module docs" and the DoH counts). On an idle server the receive thread still sleeps once per
//! query.
//!
//! Timers: a timer registered from outside the runtime whose deadline is earlier than the time
//! driver's next planned wake-up makes tokio unpark a worker to re-plan, which on an idle server
//! would be a wake-up per query again (every query's deadline timers would be the earliest). The
//! [`Pacer`] keeps a timer at most [`PACE`] ahead while queries are being started, so the driver
//! always plans to wake sooner than any per-query deadline (the shortest, a recursor's exchange, is
//! twice that; only the `parallel` strategy's hedge timers can be shorter, and those still unpark).
//! It ticks only while slow-path queries keep arriving, and sleeps without a timer once a tick
//! (give or take one more round) passes with none.
//!
//! Nothing is lost: a wake that comes while the first poll is still running is remembered and the
//! future is spawned right after it. A parked future is owned by its waker, so it must have
//! registered something that wakes it for sure: every slow-path future has the query deadline's
//! timer and the hard-stop token. When the runtime shuts down its drivers wake everything still
//! registered and the spawn then drops the future, there and then, in whatever code called the
//! waker (possibly under that code's lock): so the slow path's destructors must take no lock a
//! waker's caller may hold. They do not: a cache follower, woken when a leader's flight guard
//! drops its channel under the shard lock, holds nothing whose drop locks a shard.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The pacer's tick: at most half the shortest per-query timer of the default configuration, the
/// recursor's per-server timeout (at least 100 ms, `recursor::servers::MIN_TIMEOUT`; a forwarder's
/// upstream attempt takes at least `upstream::pool::ATTEMPT_MIN`, 500 ms). At 250 ms the
/// recursor's exchange timers (100-400 ms between servers on one network) were nearly all earlier
/// than the driver's planned wake-up, so each upstream query that had to wait woke the runtime's
/// thread once more to re-plan (an eventfd write and a context switch per query, `perf trace`).
/// The composition root checks this against the recursor's constant at compile time.
pub const PACE: Duration = Duration::from_millis(50);

type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Polls `fut` once here (the caller must be inside `runtime`'s context, see [`Handle::enter`]);
/// if it is not done, it continues on `runtime` once woken. `pacer` learns that a query started.
pub(super) fn start(
    fut: impl Future<Output = ()> + Send + 'static,
    runtime: &Handle,
    pacer: &Pacer,
) {
    pacer.note_start();
    let mut job: Job = Box::pin(fut);
    let parked = Arc::new(Parked {
        state: Mutex::new(State::Polling),
        runtime: runtime.clone(),
    });
    let waker = Waker::from(parked.clone());
    // A panic in a task is contained by the runtime; one here must not take the receive thread
    // down either. The future is dropped and its query gets no answer (the client retries).
    let polled = panic::catch_unwind(AssertUnwindSafe(|| {
        job.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    match polled {
        Ok(Poll::Ready(())) => return,
        Ok(Poll::Pending) => {}
        Err(_) => {
            crate::logging::log_limited!(
                tracing::Level::ERROR,
                "a query's handling panicked; dropped"
            );
            return;
        }
    }
    let mut state = parked.lock();
    if matches!(*state, State::Woken) {
        *state = State::Gone;
        drop(state);
        runtime.spawn(job);
    } else {
        *state = State::Parked(job);
    }
}

/// A future between its first poll and its spawn, and the waker that spawns it.
struct Parked {
    state: Mutex<State>,
    runtime: Handle,
}

enum State {
    /// The first poll is running.
    Polling,
    /// Woken during the first poll: spawn it as soon as that returns.
    Woken,
    /// Pending after the first poll, waiting for a wake.
    Parked(Job),
    /// Spawned: the runtime's task owns it and wakes of this waker mean nothing.
    Gone,
}

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No code that can panic runs under this lock; recover from poisoning all the same.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, State::Gone) {
            State::Polling => *state = State::Woken,
            State::Parked(job) => {
                drop(state);
                self.runtime.spawn(job);
            }
            State::Woken => *state = State::Woken,
            State::Gone => {}
        }
    }
}

/// Keeps the time driver's next wake-up near while queries are being started off the runtime (see
/// the module docs).
#[derive(Default)]
pub(super) struct Pacer {
    /// Set by every start, cleared by every tick: whether one came since the last tick.
    started: AtomicBool,
    /// Wakes the idle pacer; notified only by the start that sets `started`.
    wake: Notify,
    /// Ticks so far (for tests and debugging).
    ticks: AtomicU64,
}

impl Pacer {
    /// Notes a start: one atomic swap, and a wake-up of the pacer's task only for the first start
    /// after a tick.
    fn note_start(&self) {
        // Read first: while the pacer ticks the flag is nearly always set, and a plain load does
        // not pull the cache line away from the other receive threads.
        if !self.started.load(Ordering::Relaxed) && !self.started.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Ticks every [`PACE`] while queries keep starting, until `shutdown`.
    pub(super) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
            }
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(PACE) => {}
                }
                self.ticks.fetch_add(1, Ordering::Relaxed);
                if !self.started.swap(false, Ordering::AcqRel) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::oneshot;

    /// A future that finishes in its first poll runs on the calling thread only.
    #[test]
    fn a_ready_future_runs_inline() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ran_on = Arc::new(Mutex::new(None));
        let r = ran_on.clone();
        let _g = rt.enter();
        start(
            async move {
                *r.lock().unwrap() = Some(std::thread::current().id());
            },
            rt.handle(),
            &Pacer::default(),
        );
        assert_eq!(*ran_on.lock().unwrap(), Some(std::thread::current().id()));
    }

    /// A pending future continues on the runtime once woken, and its result arrives.
    #[test]
    fn a_pending_future_finishes_on_the_runtime() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (go_tx, go_rx) = oneshot::channel::<u32>();
        let (done_tx, done_rx) = oneshot::channel::<(u32, bool)>();
        let here = std::thread::current().id();
        {
            let _g = rt.enter();
            start(
                async move {
                    let v = go_rx.await.unwrap();
                    // A timer registered after the first poll works too.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let _ = done_tx.send((v, std::thread::current().id() != here));
                },
                rt.handle(),
                &Pacer::default(),
            );
        }
        go_tx.send(7).unwrap();
        let (v, elsewhere) = rt.block_on(within(done_rx));
        assert_eq!(v, 7);
        assert!(elsewhere, "the rest ran on a runtime worker");
    }

    /// A panic in the first poll is contained: the caller goes on.
    #[test]
    fn a_panic_in_the_first_poll_is_contained() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _g = rt.enter();
        start(
            async {
                panic!("handler bug");
            },
            rt.handle(),
            &Pacer::default(),
        );
        let ran = Arc::new(Mutex::new(false));
        let r = ran.clone();
        start(
            async move {
                *r.lock().unwrap() = true;
            },
            rt.handle(),
            &Pacer::default(),
        );
        assert!(*ran.lock().unwrap());
    }

    /// A parked future is not leaked when the runtime goes away: its timer's shutdown wakes it and
    /// the spawn onto the closed runtime drops it.
    #[test]
    fn a_parked_future_is_dropped_with_the_runtime() {
        struct Dropped(Arc<Mutex<bool>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = true;
            }
        }
        let dropped = Arc::new(Mutex::new(false));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        {
            let _g = rt.enter();
            let guard = Dropped(dropped.clone());
            start(
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                },
                rt.handle(),
                &Pacer::default(),
            );
        }
        assert!(
            !*dropped.lock().unwrap(),
            "parked, not dropped, while the runtime lives"
        );
        drop(rt);
        assert!(*dropped.lock().unwrap());
    }

    /// The pacer ticks while queries keep starting and goes quiet (no timer) within a couple of
    /// ticks after they stop; a new start wakes it again. (Counts are bounds: whether a start lands
    /// just before or just after a tick decides one extra round.)
    #[tokio::test(start_paused = true)]
    async fn the_pacer_ticks_only_while_queries_start() {
        let pacer = Arc::new(Pacer::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(pacer.clone().run(shutdown.clone()));
        let ticks = |p: &Pacer| p.ticks.load(Ordering::Relaxed);
        tokio::time::sleep(PACE * 4).await;
        assert_eq!(ticks(&pacer), 0, "idle until a query starts");
        // Starts every 0.3 ticks for 6 ticks: it ticks all along.
        for _ in 0..20 {
            pacer.note_start();
            tokio::time::sleep(PACE * 3 / 10).await;
        }
        let busy = ticks(&pacer);
        assert!((5..=6).contains(&busy), "{busy} ticks in 6 busy periods");
        // Quiet: at most two more rounds, then none.
        tokio::time::sleep(PACE * 3).await;
        let settled = ticks(&pacer);
        assert!(settled - busy <= 3, "{busy} -> {settled}");
        tokio::time::sleep(PACE * 20).await;
        assert_eq!(ticks(&pacer), settled, "no timer while idle");
        // One start wakes it for a round or two.
        pacer.note_start();
        tokio::time::sleep(PACE * 20).await;
        let woken = ticks(&pacer) - settled;
        assert!((1..=2).contains(&woken), "{woken} ticks after one start");
        shutdown.cancel();
        task.await.unwrap();
    }

    /// A wake during the first poll is not lost.
    #[test]
    fn a_wake_during_the_first_poll_spawns_it() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let mut done_tx = Some(done_tx);
        {
            let _g = rt.enter();
            let mut woke = false;
            start(
                std::future::poll_fn(move |cx| {
                    if woke {
                        let _ = done_tx.take().map(|tx| tx.send(()));
                        return std::task::Poll::Ready(());
                    }
                    woke = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }),
                rt.handle(),
                &Pacer::default(),
            );
        }
        rt.block_on(within(done_rx));
    }

    /// A lost wake would leave the future parked for ever: fail instead of hanging.
    async fn within<T>(rx: oneshot::Receiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the parked future was never spawned")
            .expect("the future was dropped")
    }
}
