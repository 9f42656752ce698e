//! Drives one HTTP/2 client connection from the threads that submit requests on it, so that a
//! request's frames are written in the poll that submits it, as a DoT query is.
//!
//! ```text
//!   exchange: plan() -> send_request (h2 queues frames, wakes "the connection")
//!                    -> drive(): poll the h2 connection here -> HEADERS + DATA -> TLS -> socket
//!   connection task: drive() when the socket is readable (answers), a timer or h2 asks for it
//! ```
//!
//! The `h2` crate keeps a client connection's I/O in one future ([`h2::client::Connection`]):
//! `send_request` only queues the request's frames and wakes whoever polls that future. Spawned
//! as a task of its own, that is a wake-up of the runtime's worker for every query a UDP receive
//! thread starts (an eventfd write, and a context switch when the worker was asleep), before
//! anything is written. Here the future sits behind a std mutex, and whoever queued frames polls
//! it right away ([`Driven::drive`], or once at the end of a receive batch, see
//! [`crate::batch`]): the frames go out on that thread and the task is not woken.
//!
//! h2 is always polled with one waker of our own, a [`Relay`], so every registration it makes (the
//! socket's readiness, its own "frames queued" notification) comes back here, and the relay
//! decides whether the connection's task must be woken:
//!
//! - while a drive is *planned* (a thread is about to queue frames and then poll the connection
//!   in full), a wake is absorbed: the planned poll starts after it and sees whatever it was for;
//! - while a drive *runs*, a wake is remembered and passed on once the poll is over (it may be for
//!   something the poll had already looked at);
//! - otherwise it wakes the connection's task, which then polls the connection itself.
//!
//! So no wake is lost, and the only wakes dropped are those that a poll which had not yet begun
//! was sure to cover. The lock is held for one poll of the connection (non-blocking reads and
//! writes and h2's bookkeeping), never across an `.await`; h2 wakes streams' waiters under it,
//! which for a slow-path query may spawn (and at shutdown drop) a whole query, so nothing that
//! drops with a query may take this lock.
//!
//! A panic inside h2 is contained by the drive (whichever thread runs it): the connection is
//! dropped, its requests fail and are sent again on a fresh one, as when a connection breaks.
//!
//! Limitations: the thread that queues frames also encrypts and writes them, so under load the
//! receive thread and a runtime worker may briefly wait for each other on the lock (as with DoT).
//! h2 reads before it writes, so a drive on a receive thread also takes in answers that have
//! arrived by then; their exchanges are then spawned from that thread (through the runtime's
//! shared queue, not a worker's own). A batch's end writes what that batch queued, where the task
//! used to gather what several batches queued: at saturation slightly more write calls per query.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::batch;
use crate::logging::log_limited;

/// The h2 connection future of a DoH upstream.
pub(super) type H2Connection = h2::client::Connection<TlsStream<TcpStream>, Bytes>;

/// Wakes pass through to the connection's task.
const IDLE: u8 = 0;
/// A full poll of the connection will start later: wakes until then are covered by it.
const PLANNED: u8 = 1;
/// A poll runs: a wake now may be for something it has already looked at.
const DRIVING: u8 = 2;
/// A wake came while a poll ran: pass it on when the poll is over.
const MISSED: u8 = 3;

/// One HTTP/2 connection, polled by its task and by the threads that submit requests on it.
pub(super) struct Driven {
    /// Held for one poll of the connection, never across an `.await`.
    conn: Mutex<Polled>,
    relay: Arc<Relay>,
    /// The waker h2 is polled with (the relay's).
    waker: Waker,
    /// A drive waits for the end of this thread's receive batch.
    deferred: AtomicBool,
}

struct Polled {
    /// Taken out (and dropped, closing the socket) when the connection's task ends.
    conn: Option<H2Connection>,
    /// How the connection ended, when a drive outside the task saw it end.
    ended: Option<Result<(), h2::Error>>,
}

impl Driven {
    pub(super) fn new(conn: H2Connection) -> Arc<Self> {
        let relay = Arc::new(Relay {
            state: AtomicU8::new(IDLE),
            task: Mutex::new(None),
        });
        Arc::new(Driven {
            conn: Mutex::new(Polled {
                conn: Some(conn),
                ended: None,
            }),
            waker: Waker::from(relay.clone()),
            relay,
            deferred: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Polled> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Announces that this thread is about to queue frames (`send_request`, `send_data`) and will
    /// then call [`Driven::submit`]: h2's wake-ups until that drive are absorbed.
    pub(super) fn plan(&self) {
        self.relay.state.store(PLANNED, Ordering::Release);
    }

    /// Writes what was queued since [`Driven::plan`]: now, or inside a receive batch once at its
    /// end (one TLS record and one system call for all of the batch's requests).
    pub(super) fn submit(self: &Arc<Self>) {
        if self.deferred.swap(true, Ordering::AcqRel) {
            return; // this batch's end drives the connection
        }
        let me = self.clone();
        let deferred = batch::defer(move || {
            me.deferred.store(false, Ordering::Release);
            me.drive();
        });
        if deferred.is_err() {
            self.deferred.store(false, Ordering::Release);
            self.drive();
        }
    }

    /// Polls the connection once on this thread. If that ends it, the task is told.
    pub(super) fn drive(&self) {
        let mut polled = self.lock();
        if polled.ended.is_some() {
            return;
        }
        if let Poll::Ready(result) = self.poll_locked(&mut polled) {
            polled.ended = Some(result);
            drop(polled);
            self.relay.forward();
        }
    }

    /// The connection task's poll: ready when the connection has ended.
    pub(super) fn poll_task(&self, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
        self.relay.set_task(cx.waker());
        let mut polled = self.lock();
        if let Some(result) = polled.ended.take() {
            return Poll::Ready(result);
        }
        self.poll_locked(&mut polled)
    }

    /// Drops the connection (its task has ended): the socket closes even while requests that
    /// failed with it still hold this value.
    pub(super) fn close(&self) {
        let conn = self.lock().conn.take();
        // Dropped outside the lock: h2 wakes every open stream's waiter as it goes.
        drop(conn);
    }

    fn poll_locked(&self, polled: &mut Polled) -> Poll<Result<(), h2::Error>> {
        let Some(conn) = polled.conn.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        self.relay.state.store(DRIVING, Ordering::Release);
        let mut cx = Context::from_waker(&self.waker);
        // Contained here, whichever thread drives: a panic must neither take a UDP receive thread
        // down (a batch's end runs this outside any task) nor leave a half-updated connection
        // behind for the next caller.
        let result = panic::catch_unwind(AssertUnwindSafe(|| Pin::new(conn).poll(&mut cx)));
        if self.relay.state.swap(IDLE, Ordering::AcqRel) == MISSED {
            self.relay.forward();
        }
        result.unwrap_or_else(|_| {
            log_limited!(
                tracing::Level::ERROR,
                "the DoH connection's HTTP/2 state panicked; connection dropped"
            );
            // Its requests fail with it and are sent again on a fresh connection.
            let conn = polled.conn.take();
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(conn)));
            Poll::Ready(Ok(()))
        })
    }
}

/// The waker h2 sees: wakes the connection's task unless a poll will cover the wake anyway.
struct Relay {
    state: AtomicU8,
    /// The connection task's waker, once it has run. Locked only to read or replace it.
    task: Mutex<Option<Waker>>,
}

impl Relay {
    fn set_task(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if !task.as_ref().is_some_and(|t| t.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }

    /// Wakes the connection's task (before its first poll there is nothing to wake: that poll
    /// covers everything).
    fn forward(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self
            .state
            .compare_exchange(DRIVING, MISSED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(PLANNED) | Err(MISSED) => {}
            Err(_) => self.forward(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its wakes: stands in for the connection task.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn relay() -> (Arc<Relay>, Waker, Arc<Count>) {
        let relay = Arc::new(Relay {
            state: AtomicU8::new(IDLE),
            task: Mutex::new(None),
        });
        let count = Arc::new(Count(AtomicUsize::new(0)));
        relay.set_task(&Waker::from(count.clone()));
        (relay.clone(), Waker::from(relay), count)
    }

    fn wakes(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn wakes_pass_through_unless_a_poll_will_cover_them() {
        let (relay, waker, task) = relay();
        waker.wake_by_ref();
        assert_eq!(wakes(&task), 1, "nothing planned: the task is woken");

        relay.state.store(PLANNED, Ordering::SeqCst);
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(wakes(&task), 1, "a planned poll covers what came before it");

        // The poll begins: a wake now may be for something it has already looked at.
        relay.state.store(DRIVING, Ordering::SeqCst);
        waker.wake_by_ref();
        assert_eq!(wakes(&task), 1, "held until the poll is over");
        assert_eq!(relay.state.swap(IDLE, Ordering::SeqCst), MISSED);
        relay.forward();
        assert_eq!(wakes(&task), 2, "passed on after the poll");

        waker.wake_by_ref();
        assert_eq!(wakes(&task), 3, "idle again");
    }

    #[test]
    fn a_relay_without_a_task_yet_drops_nothing_it_needs() {
        let relay = Arc::new(Relay {
            state: AtomicU8::new(IDLE),
            task: Mutex::new(None),
        });
        // Before the task's first poll a wake has nothing to reach; that first poll covers it.
        Waker::from(relay.clone()).wake();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        relay.set_task(&Waker::from(count.clone()));
        Waker::from(relay).wake();
        assert_eq!(wakes(&count), 1);
    }
}
