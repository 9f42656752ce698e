//! A UDP receive thread's own event loop, for slow-path queries that are better served to the end
//! on the thread that received them.
//!
//! By default a receive thread polls a slow-path query once and hands it to the runtime's worker
//! when it first waits (`inline`): in recursive mode a cold query then wakes two threads, the
//! receive thread for the client's datagram and the worker for each upstream answer, and with both
//! on one core each preempts the other. When the chain allows it
//! ([`super::ServerConfig::slow_path_on_receive_thread`]) the receive thread instead starts its
//! queries inside a current-thread runtime of its own, its *home*: their sockets and timers
//! register there, and while any is pending the thread waits for the client socket and their
//! sockets in that runtime's one `epoll` ([`Watch::wait`]), as unbound serves a query in one
//! thread. With nothing pending it sleeps in `recvmmsg` as before, so the cached path keeps its
//! system calls.
//!
//! The rule that keeps this correct: whatever a query registers with a home is waited on only
//! while that thread drives it, which it does for as long as the home has a task alive (and for
//! a bounded drain at shutdown). That holds for futures that own their I/O from start to end (the
//! recursor's socket per upstream query), and not for shared connections (a forwarding rule's
//! pooled UDP or TCP sockets, DoT and DoH connections and their tasks): a connection a home opened
//! would be served only while that thread has queries of its own. Hence the switch is the
//! composition root's to set, for recursive mode without forwarding rules only.
//!
//! Timers: tokio wakes a runtime's driver (an `eventfd` write) when a timer is registered earlier
//! than the driver's planned wake-up, and with no timer pending at its last sleep every
//! registration is earlier. Here nothing needs that wake-up (only this thread registers timers,
//! and never while it sleeps), so a pacer timer keeps the plan near: at most [`PACE`] ahead while
//! the thread waits here, which every per-query timer exceeds (the recursor's shortest is twice
//! that, checked in the composition root).
//!
//! Limitations: the in-flight budget, the deadline and the hard stop apply as on the runtime, but
//! the queries of one receive thread share that thread's CPU (with SO_REUSEPORT, one thread per
//! worker); a query that never waits is no different from before.

use std::future::Future;
use std::net::UdpSocket;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::MsgFlags;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::inline::{self, Pacer, PACE};
use super::udp_send::BATCH;

/// A receive thread's home: a current-thread runtime that only this thread drives.
pub(super) struct Home {
    rt: Runtime,
    /// Queries started here and not yet done: parked after their first poll (not a task yet) or
    /// running as tasks.
    kept: Arc<KeptCount>,
    /// Starts count with the runtime's pacer (`inline`), which does not run here: starts on the
    /// home register nothing with the runtime's time driver.
    pacer: Pacer,
}

impl Home {
    /// A home for the calling thread: an I/O and time driver of its own (an epoll descriptor and
    /// an eventfd).
    pub(super) fn new() -> std::io::Result<Home> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Home {
            rt,
            kept: Arc::default(),
            pacer: Pacer::default(),
        })
    }

    /// Whether queries started here are not done (or anything they spawned here is alive): then
    /// the thread must drive the home.
    pub(super) fn busy(&self) -> bool {
        self.kept.n.load(Ordering::Acquire) > 0 || self.rt.metrics().num_alive_tasks() > 0
    }

    /// Returns once the home is no longer [busy](Self::busy) (checked when its last kept query
    /// ends: a task it spawned that outlives it keeps the thread here until the next datagram).
    async fn idle(&self) {
        loop {
            let notified = self.kept.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if !self.busy() {
                return;
            }
            notified.await;
        }
    }

    /// A query about to start here counts until this is dropped (with the query's future).
    pub(super) fn keep(&self) -> Kept {
        self.kept.n.fetch_add(1, Ordering::AcqRel);
        Kept(self.kept.clone())
    }

    /// Starts `queries` here: each is polled once at once (`inline::start`, inside this home's
    /// context, so what it registers is the home's) and continues as a task of the home when it
    /// waits. No thread is woken for it.
    pub(super) fn start<F: Future<Output = ()> + Send + 'static>(
        &self,
        queries: impl Iterator<Item = F>,
    ) {
        let handle = self.rt.handle();
        self.rt.block_on(async {
            for fut in queries {
                inline::start(fut, handle, &self.pacer);
            }
        });
    }

    /// Drives the home until its queries are done, for at most `limit` (shutdown: they end by
    /// their deadline or the hard stop).
    pub(super) fn drain(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.busy() && Instant::now() < until {
            self.rt
                .block_on(tokio::time::sleep(Duration::from_millis(10)));
        }
    }
}

/// The count of queries a [`Home`] keeps, and a signal for when it falls to zero.
#[derive(Default)]
struct KeptCount {
    n: AtomicUsize,
    /// Wakes the thread's wait in the home ([`Watch::wait`]) so that it goes back to `recvmmsg`.
    /// From the home's own thread (a task ending) that costs no system call: tokio's
    /// current-thread waker writes to its eventfd only from other threads.
    idle: Notify,
}

/// A query kept by a [`Home`]; see [`Home::keep`].
pub(super) struct Kept(Arc<KeptCount>);

impl Drop for Kept {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What [`Watch::wait`] came back with.
pub(super) enum Woke {
    /// The client socket's datagrams, read (or the read's error).
    Read(std::io::Result<usize>),
    /// Look again whether the home is still busy (its last query ended, the pacer ticked), or a
    /// stop request.
    Look,
}

/// The client socket's registration with the thread's home, made when the thread first waits
/// there and kept while it keeps coming back: registered, the socket's every datagram also
/// notifies the home's epoll, a cost the fast path is spared once the thread has received in
/// `recvmmsg` alone for [`QUIET_BATCHES`] batches or for a read timeout.
#[derive(Default)]
pub(super) struct Watch {
    /// A duplicate of the client socket's descriptor, registered for readability. Only read
    /// through, with `MSG_DONTWAIT`: the socket stays blocking for `recvmmsg`'s sleep.
    fd: Option<tokio::net::UdpSocket>,
    /// See the module docs (timers); made at the first wait.
    pace: Option<Pin<Box<Sleep>>>,
    /// Batches received in `recvmmsg` since the last wait here.
    quiet: u32,
    /// Waits in a row that found datagrams without giving the home's queries a turn.
    at_once: u32,
}

/// Batches received in `recvmmsg` after which [`Watch`] lets the registration go.
const QUIET_BATCHES: u32 = 64;

/// Waits in a row that may find datagrams at once before the home's queries get a turn first.
const FAIR_TURNS: u32 = 4;

impl Watch {
    /// Runs the home's event loop (its queries' upstream answers and timers) until the client
    /// socket has datagrams, then reads them with `receive`.
    ///
    /// Fairness: a wait that finds datagrams at once runs none of the home's queries, so after
    /// [`FAIR_TURNS`] such waits in a row they get a turn first (and the reactor one look); a
    /// stream of clients cannot starve them, nor they the clients (the scheduler looks at the
    /// client socket at least every 61 tasks).
    #[inline(never)]
    pub(super) fn wait(
        &mut self,
        home: &Home,
        sock: &UdpSocket,
        shutdown: &CancellationToken,
        mut receive: impl FnMut(MsgFlags) -> std::io::Result<usize>,
    ) -> Woke {
        self.quiet = 0;
        let _entered = home.rt.enter();
        if self.fd.is_none() {
            match register_dup(sock) {
                Ok(fd) => self.fd = Some(fd),
                // Unwatched: the home's queries finish first, then receiving goes on as usual.
                Err(e) => {
                    debug!(error = %e, "cannot watch the udp socket from the receive thread's event loop");
                    home.drain(super::QUERY_DEADLINE);
                    return Woke::Look;
                }
            }
        }
        let Some(fd) = self.fd.as_ref() else {
            return Woke::Look;
        };
        let pace = self
            .pace
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(PACE)));
        let turn_first = self.at_once >= FAIR_TURNS;
        let mut waited = false;
        let woke = home.rt.block_on(async {
            if turn_first {
                tokio::task::yield_now().await;
            }
            let read = async {
                tokio::select! {
                    biased;
                    r = fd.async_io(tokio::io::Interest::READABLE, || {
                        receive(MsgFlags::MSG_WAITFORONE | MsgFlags::MSG_DONTWAIT)
                    }) => Woke::Read(r),
                    () = pace.as_mut() => {
                        pace.as_mut().reset(Instant::now() + PACE);
                        Woke::Look
                    }
                    () = home.idle() => Woke::Look,
                    () = shutdown.cancelled() => Woke::Look,
                }
            };
            let mut read = std::pin::pin!(read);
            std::future::poll_fn(|cx| {
                let r = read.as_mut().poll(cx);
                waited |= r.is_pending();
                r
            })
            .await
        });
        self.at_once = if waited || turn_first {
            0
        } else {
            self.at_once + 1
        };
        if let Woke::Read(Ok(n)) = woke {
            if n < BATCH {
                // The socket is drained: mark it so, and the next wait sleeps at once instead of
                // finding out with a read. Safe: a datagram that came since is a new edge for the
                // reactor, which reports it at its next look.
                let _ = fd.try_io(tokio::io::Interest::READABLE, || {
                    Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
                });
            }
        }
        woke
    }

    /// A batch received in `recvmmsg`: after enough of them the registration goes.
    pub(super) fn quiet(&mut self) {
        if self.fd.is_some() {
            self.quiet += 1;
            if self.quiet >= QUIET_BATCHES {
                self.forget();
            }
        }
    }

    /// Lets the registration go (the thread is idle or receives in `recvmmsg` alone).
    pub(super) fn forget(&mut self) {
        self.fd = None;
        self.quiet = 0;
        self.at_once = 0;
    }
}

/// Registers a duplicate of `sock` with the current runtime's reactor. Tokio takes only
/// non-blocking sockets (it checks), and the flag belongs to the socket, not the descriptor: it is
/// set for the registration and cleared again at once, two system calls that each registration
/// pays (rarely: see [`Watch`]). In between, a concurrent send to a client whose socket buffer is
/// full would fail instead of waiting; a UDP socket's send buffer is not full in practice.
fn register_dup(sock: &UdpSocket) -> std::io::Result<tokio::net::UdpSocket> {
    let dup = sock.try_clone()?;
    dup.set_nonblocking(true)?;
    let registered = tokio::net::UdpSocket::from_std(dup);
    sock.set_nonblocking(false)?;
    registered
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A UDP socket as the receive loop has it (blocking), and a client connected to it.
    fn sockets() -> (UdpSocket, UdpSocket) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        (server, client)
    }

    fn read_one(sock: &UdpSocket, flags: MsgFlags) -> std::io::Result<usize> {
        let mut buf = [0u8; 64];
        nix::sys::socket::recv(std::os::fd::AsRawFd::as_raw_fd(sock), &mut buf, flags)
            .map(|_| 1)
            .map_err(std::io::Error::from)
    }

    /// A query that waits is kept: it finishes on this thread while the thread waits for the
    /// client socket in the home, and the wait then says to look again (no longer busy).
    #[test]
    fn a_waiting_query_finishes_on_the_receive_thread() {
        let home = Home::new().unwrap();
        let (server, _client) = sockets();
        let here = std::thread::current().id();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let kept = home.keep();
        home.start(std::iter::once(async move {
            let _kept = kept;
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(std::thread::current().id(), here);
            d.store(true, Ordering::SeqCst);
        }));
        assert!(home.busy(), "kept after its first poll");
        let mut watch = Watch::default();
        let shutdown = CancellationToken::new();
        let mut looks = 0;
        while home.busy() {
            match watch.wait(&home, &server, &shutdown, |f| read_one(&server, f)) {
                Woke::Look => looks += 1,
                Woke::Read(r) => panic!("nothing was sent: {r:?}"),
            }
            assert!(looks < 100, "the kept query never finished");
        }
        assert!(done.load(Ordering::SeqCst));
        // The socket is still blocking for `recvmmsg` after its registration.
        assert!(!socket2::SockRef::from(&server).nonblocking().unwrap());
    }

    /// A datagram ends the wait with the read; a stop request ends it too.
    #[test]
    fn the_wait_reads_the_client_socket_and_stops_on_request() {
        let home = Home::new().unwrap();
        let (server, client) = sockets();
        let kept = home.keep();
        home.start(std::iter::once(async move {
            let _kept = kept;
            std::future::pending::<()>().await;
        }));
        let mut watch = Watch::default();
        let shutdown = CancellationToken::new();
        client.send(b"query").unwrap();
        let mut read = None;
        for _ in 0..100 {
            if let Woke::Read(r) = watch.wait(&home, &server, &shutdown, |f| read_one(&server, f)) {
                read = Some(r.unwrap());
                break;
            }
        }
        assert_eq!(read, Some(1));
        shutdown.cancel();
        assert!(matches!(
            watch.wait(&home, &server, &shutdown, |f| read_one(&server, f)),
            Woke::Look
        ));
    }

    /// Clients that always have a datagram waiting do not starve a kept query: it gets a turn
    /// at least every FAIR_TURNS waits.
    #[test]
    fn a_stream_of_clients_does_not_starve_kept_queries() {
        let home = Home::new().unwrap();
        let (server, client) = sockets();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let kept = home.keep();
        home.start(std::iter::once(async move {
            let _kept = kept;
            rx.await.unwrap();
            d.store(true, Ordering::SeqCst);
        }));
        let mut watch = Watch::default();
        let shutdown = CancellationToken::new();
        // Woken from another thread's point of view: the wake lands in the home's queue.
        tx.send(()).unwrap();
        for _ in 0..(FAIR_TURNS + 2) {
            client.send(b"q").unwrap();
            client.send(b"q").unwrap();
            let _ = watch.wait(&home, &server, &shutdown, |f| read_one(&server, f));
        }
        assert!(done.load(Ordering::SeqCst), "the kept query never ran");
    }
}
