//! Keeps connections that outlive a query on the process's runtime, whichever thread the query
//! runs on.
//!
//! A UDP receive thread may serve its slow-path queries to the end in an event loop of its own
//! (`server::home`, recursive mode): what such a query registers (sockets, timers, spawned tasks)
//! goes to that loop, which the thread drives only while it has queries of its own. That is right
//! for what a query owns (the recursor's socket per upstream query) and wrong for what it shares:
//! a pooled UDP socket, a TCP, DoT or DoH connection and its task, opened by one query and used by
//! the next, possibly on another thread. Stages that use such pools (forwarding rules, the
//! captive-portal fallback) wrap their upstream calls in [`shared`], which polls them inside the
//! process's runtime's context when the thread has marked one ([`mark`]): their connections
//! register there, their tasks are spawned there, and their answers wake the query from there.
//! Elsewhere (a runtime worker, a TCP connection's task, a test) it is a plain poll.
//!
//! Anything may use it (like `batch`); it knows nothing of servers or transports.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::runtime::Handle;

thread_local! {
    /// The process's runtime, on a thread that may poll queries in a runtime of its own.
    static RUNTIME: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Marks this thread's process runtime until the guard is dropped. Not `Send`: it belongs to the
/// thread that set it.
#[must_use = "the mark lasts only while this lives"]
pub struct Marked {
    _thread: PhantomData<*const ()>,
}

/// Marks `runtime` as where this thread's shared connections belong.
pub fn mark(runtime: Handle) -> Marked {
    RUNTIME.with(|r| *r.borrow_mut() = Some(runtime));
    Marked {
        _thread: PhantomData,
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        RUNTIME.with(|r| r.borrow_mut().take());
    }
}

/// Polls `fut` inside the process's runtime's context on a marked thread (see the module docs),
/// plainly elsewhere. Boxed: a plain struct around a boxed future costs one allocation, where an
/// `async fn` taking the future would hold it twice over in its state.
pub fn shared<F: Future>(fut: F) -> Shared<F> {
    Shared { fut: Box::pin(fut) }
}

/// See [`shared`].
pub struct Shared<F> {
    fut: Pin<Box<F>>,
}

impl<F: Future> Future for Shared<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        RUNTIME.with(|runtime| match &*runtime.borrow() {
            Some(handle) => {
                let _entered = handle.enter();
                self.fut.as_mut().poll(cx)
            }
            None => self.fut.as_mut().poll(cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a marked thread a wrapped future registers with the marked runtime even when polled
    /// inside another one; unmarked, with the current one.
    #[test]
    fn a_wrapped_future_spawns_on_the_marked_runtime() {
        let process = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let home = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spawned_on = || {
            shared(async {
                tokio::spawn(async { std::thread::current().name().map(str::to_owned) })
            })
        };
        let _mark = mark(process.handle().clone());
        let task = home.block_on(spawned_on());
        let name = process.block_on(task).unwrap();
        assert_ne!(name.as_deref(), std::thread::current().name());
        drop(_mark);
        // Unmarked: the home's own.
        let task = home.block_on(async { spawned_on().await.await.unwrap() });
        assert_eq!(task.as_deref(), std::thread::current().name());
    }
}
