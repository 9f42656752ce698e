//! Work a thread puts off until the end of the batch of queries it is starting.
//!
//! The UDP receive loop starts every slow-path query of a `recvmmsg` batch on its own thread
//! (`server::inline`). A DoT or DoH query on an open connection is written by that first poll; written
//! one by one, 32 queries of a batch would be 32 TLS records and 32 system calls, where a task
//! that wrote them later would have gathered them into one. Inside a [`Batch`] a transport
//! queues its frame and asks, once per batch, to be called back when the batch ends
//! ([`defer`]); then one write carries all of them, still on this thread and with no task woken.
//! Outside a batch (a runtime worker, a TCP connection's task, a receive batch that starts only
//! one such query) nothing is deferred.
//!
//! Anything may use it (like `metrics`); it knows nothing of servers or transports.

use std::cell::RefCell;
use std::marker::PhantomData;

type Deferred = Box<dyn FnOnce()>;

thread_local! {
    /// The open batch's callbacks (`None`: no batch open on this thread).
    static OPEN: RefCell<Option<Vec<Deferred>>> = const { RefCell::new(None) };
}

/// An open batch on this thread; the callbacks deferred in it run when it is dropped. Not `Send`:
/// it belongs to the thread that opened it. A batch opened inside another adds nothing: the
/// outer one runs everything.
#[must_use = "the batch ends when this is dropped"]
pub struct Batch {
    outer: bool,
    _thread: PhantomData<*const ()>,
}

impl Batch {
    /// Opens a batch on this thread.
    pub fn begin() -> Batch {
        let outer = OPEN.with(|open| {
            let mut open = open.borrow_mut();
            let outer = open.is_none();
            if outer {
                *open = Some(Vec::new());
            }
            outer
        });
        Batch {
            outer,
            _thread: PhantomData,
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.outer {
            return;
        }
        // Taken first: what a callback defers runs at once (no batch is open any more).
        let deferred = OPEN
            .with(|open| open.borrow_mut().take())
            .unwrap_or_default();
        for f in deferred {
            f();
        }
    }
}

/// Runs `f` when this thread's open batch ends; without one, gives `f` back to be run now.
pub fn defer<F: FnOnce() + 'static>(f: F) -> Result<(), F> {
    OPEN.with(|open| match open.borrow_mut().as_mut() {
        Some(deferred) => {
            deferred.push(Box::new(f));
            Ok(())
        }
        None => Err(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn deferred_work_runs_when_the_outer_batch_ends() {
        let ran = Rc::new(RefCell::new(Vec::new()));
        let log = |n| {
            let ran = ran.clone();
            move || ran.borrow_mut().push(n)
        };
        assert!(defer(log(0)).is_err(), "no batch: run it yourself");
        {
            let _outer = Batch::begin();
            assert!(defer(log(1)).is_ok());
            {
                let _inner = Batch::begin();
                assert!(defer(log(2)).is_ok());
            }
            assert!(ran.borrow().is_empty(), "the inner batch runs nothing");
        }
        assert_eq!(*ran.borrow(), vec![1, 2]);
        assert!(defer(log(3)).is_err(), "closed again");
    }
}
