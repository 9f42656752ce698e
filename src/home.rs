//! A thread's own reactor, for I/O that should be waited on by the thread that started it.
//!
//! A UDP receive thread starts each slow-path query itself (`server::inline`); a query that then
//! waits for a recursor's upstream answer used to be handed to the runtime's worker, so a cold
//! recursive query woke two threads: the receive thread for the client's datagram and the worker
//! for each upstream answer. A receive thread now owns a small single-threaded runtime, its
//! *home*, and marks its thread with it ([`set`]). A per-query exchange wrapped in [`on_home`]
//! registers its socket and timer with the home of the thread it is polled on, and says so
//! ([`take_used`]); the receive thread then keeps that query and waits for its client socket and
//! its queries' sockets in one event loop (`server::udp`), as unbound serves a query in one thread.
//!
//! The rule that keeps this safe: a resource registered with a home is only ever waited on by that
//! home's thread. So only futures that own their I/O from start to end and share it with nothing
//! (the recursor's one socket per upstream query) are wrapped, and a query whose first poll used
//! the home stays on that thread until it ends. Everything else (connection pools, DoT and DoH
//! connections and their tasks, timers of the query as a whole) registers with the process's
//! runtime as before: the receive thread polls its queries inside that runtime's context
//! (`server::inline`), and [`on_home`] switches to the home only for the wrapped future's poll.
//! On a thread without a home (a runtime worker, a TCP connection's task, a test) [`on_home`] is
//! a plain poll.
//!
//! Anything may use it (like `batch`); it knows nothing of servers or transports.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::Handle;

thread_local! {
    /// This thread's home runtime, if it has one.
    static HOME: RefCell<Option<Handle>> = const { RefCell::new(None) };
    /// Whether an [`on_home`] future was polled with the home since the last [`take_used`].
    static USED: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as `home`'s until the guard is dropped. Not `Send`: it belongs to the thread
/// that set it.
#[must_use = "the thread has its home only while this lives"]
pub struct HomeGuard {
    _thread: PhantomData<*const ()>,
}

/// Makes `home` (a current-thread runtime this thread drives) this thread's home.
pub fn set(home: Handle) -> HomeGuard {
    HOME.with(|h| *h.borrow_mut() = Some(home));
    USED.with(|u| u.set(false));
    HomeGuard {
        _thread: PhantomData,
    }
}

impl Drop for HomeGuard {
    fn drop(&mut self) {
        HOME.with(|h| h.borrow_mut().take());
    }
}

/// Whether a future wrapped in [`on_home`] was polled with this thread's home since the last call
/// (and clears the mark).
pub fn take_used() -> bool {
    USED.with(|u| u.replace(false))
}

/// Polls `fut` with this thread's home as the current runtime (its sockets and timers register
/// there), or plainly on a thread without one. `fut` must own every I/O resource it registers and
/// drop them when it ends (see the module docs).
///
/// `fut` is boxed: the wrapper is a plain struct (an `async fn` taking a future would hold it
/// twice over in its state, and the recursor's boxed query future, that size, copied per query).
pub fn on_home<F: Future>(fut: F) -> OnHome<F> {
    OnHome { fut: Box::pin(fut) }
}

/// See [`on_home`].
pub struct OnHome<F> {
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for OnHome<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        HOME.with(|home| match &*home.borrow() {
            Some(handle) => {
                USED.with(|u| u.set(true));
                let _entered = handle.enter();
                self.fut.as_mut().poll(cx)
            }
            None => self.fut.as_mut().poll(cx),
        })
    }
}
