//! The UDP receive loop (RFC 1035 section 4.2.1, RFC 6891 for payload sizes).
//!
//! One loop per socket; with SO_REUSEPORT there is one socket per worker thread and the kernel spreads
//! clients over them. The loop answers the fast path itself, from buffers it reuses: no task, no
//! allocation. Only queries the head of the chain cannot answer synchronously become a future, and
//! only with a share of the server-wide in-flight budget ([`super::fair`]); a client that already
//! holds as much of a full budget as any other has its query dropped (it retries), which keeps
//! memory bounded under a flood without letting one client lock out the rest. Such a future starts on
//! this thread, once the fast answers of its batch are sent, and moves to the runtime when it first
//! has to wait ([`super::inline`]).
//!
//! Why a blocking thread and not a tokio task: a cached answer costs a share of a few system calls
//! here (`recvmmsg` and `sendmmsg`, shared by every datagram of a batch). Through the reactor the same
//! answer also pays for the readiness dance whenever the socket runs dry (a failed receive,
//! `epoll_wait`, a task wake-up), which under a typical load, where the server is faster than its
//! clients, is nearly every packet; the benchmark (BENCHMARKS.md) measured it. The thread sleeps in
//! `recvmmsg` itself and wakes at once; it checks for shutdown whenever the socket's read timeout
//! ([`super::UDP_POLL`]) passes. Slow-path queries finish here when their first poll gets that far
//! (a quick local upstream), otherwise as tasks on the runtime, and send their answers on the same
//! socket (a UDP send does not block for long; the socket's write timeout bounds it): those that
//! finish on the runtime together, once per run of its ready tasks ([`super::udp_outbox`]).

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TrackedFuture;
use tracing::{debug, info};

use super::querylog::Answered;
use super::ratelimit::Verdict;
use super::respond::{self, Prepared};
use super::udp_outbox::Outbox;
use super::udp_send::{BatchSender, BATCH};
use super::Shared;
use super::{fair, inline};
use crate::handler::{Protocol, Request};
use crate::wire::{Message, Opcode, QueryView, HEADER_LEN};

/// Largest query read. A longer datagram is cut by the kernel and dropped here: real queries are a
/// question and an OPT record, a few hundred octets at most.
const RECV_BUF: usize = 4096;

/// Receives and answers on `sock` until `shutdown`. Blocking: run it on a thread of its own;
/// `runtime` is where slow-path queries continue once they wait.
///
/// Batching: one `recvmmsg` takes every datagram already queued (up to [`BATCH`]; it blocks only
/// until the first arrives), the fast path answers each into its own buffer, the answers go out
/// together ([`super::udp_send`]: one `sendmmsg`, plus one GSO send per group of equal answers to
/// one client), and then the batch's slow-path queries start. Under load that divides the
/// per-packet system call cost by the batch size; when the server is idle a batch is a single
/// datagram and nothing waits for a batch to fill.
pub(super) fn serve(
    sock: Arc<UdpSocket>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    runtime: Handle,
) {
    // Slow-path queries start on this thread and register their sockets and timers with the
    // runtime's drivers (`inline`).
    let _runtime = runtime.enter();
    let fd = sock.as_raw_fd();
    // Memory an idle thread never touches stays out of its resident set (issue 17's idle budget):
    // the receive buffers are a fresh anonymous mapping (zero pages the kernel supplies where a
    // datagram first lands; the allocator would have zeroed all 128 KiB by hand), and an answer
    // buffer grows on its first use and keeps its capacity after that.
    let mut mapped;
    let mut heap;
    let rbuf: &mut [u8] = match memmap2::MmapMut::map_anon(RECV_BUF * BATCH) {
        Ok(m) => {
            mapped = m;
            &mut mapped
        }
        Err(_) => {
            heap = vec![0u8; RECV_BUF * BATCH];
            &mut heap
        }
    };
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::new()).collect();
    let mut recv_hdrs = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut sender = BatchSender::new(&*sock);
    let outbox = Outbox::new(sock.clone());
    let mut got: [(usize, Option<SockaddrStorage>); BATCH] = [(0, None); BATCH];
    let mut dests: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
    let mut slow: Vec<SlowQuery> = Vec::with_capacity(BATCH);
    while !shutdown.is_cancelled() {
        let n = {
            let mut chunks = rbuf.chunks_exact_mut(RECV_BUF);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
            match recvmmsg(
                fd,
                &mut recv_hdrs,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => {
                    let mut n = 0;
                    for (slot, r) in got.iter_mut().zip(results) {
                        // A cut datagram is dropped (no address: nothing is sent back).
                        let whole = !r.flags.contains(MsgFlags::MSG_TRUNC);
                        *slot = (r.bytes, r.address.filter(|_| whole));
                        n += 1;
                    }
                    n
                }
                Err(e) => {
                    recv_error(std::io::Error::from(e));
                    continue;
                }
            }
        };
        // One clock read per batch, and none without a rate limit.
        let now = shared.limiter.as_ref().map(|_| shared.started.elapsed());
        let mut replies = 0;
        for (&(len, addr), buf) in got[..n].iter().zip(rbuf.chunks_exact(RECV_BUF)) {
            let Some(src) = addr.as_ref().and_then(socket_addr) else {
                continue;
            };
            let pkt = &buf[..len.min(RECV_BUF)];
            if on_datagram(pkt, src, now, &shared, &mut outs[replies], &mut slow) {
                dests[replies] = addr;
                replies += 1;
            }
        }
        sender.send(fd, &outs[..replies], &dests[..replies]);
        // The batch's answers are out; now the queries that need more work start (their first
        // steps run here, see `inline`), so that no cached answer waits behind them. What two or
        // more of them write upstream goes out together when the batch ends (`batch`); a lone
        // query (an idle server's every query) writes as soon as it can, not after the rest of
        // its first poll (its timers, the pool's and the cache's bookkeeping, parking it).
        let _batch = (slow.len() > 1).then(crate::batch::Batch::begin);
        for (query, src, share) in slow.drain(..) {
            // After a stop request (or the server future's drop, before the runtime's drivers go)
            // nothing new starts: the query is dropped, as a spawn onto a closed runtime would be.
            if shutdown.is_cancelled() {
                continue;
            }
            let req = Request {
                query,
                client: Some(src),
                protocol: Protocol::Udp,
            };
            inline::start(
                slow_job(req, src, outbox.clone(), &shared, share),
                &runtime,
                &shared.pacer,
            );
        }
    }
    let (gso_sends, gso_answers) = sender.gso_counts();
    debug!(gso_sends, gso_answers, "udp receive loop stopped");
}

/// A query for the slow path, with its share of the in-flight budget.
type SlowQuery = (Message, SocketAddr, fair::Slot);

/// The std form of a received peer address (IPv4 or IPv6; nothing else arrives on our sockets).
fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

/// Handles one datagram: writes into `out` (cleared first) the answer to send now (from the fast
/// path, or an error reply) and returns true, or returns false when nothing is to be sent now
/// (dropped, or queued in `slow` for the slow path, which sends its own answer). `now` is the rate
/// limiter's clock for this batch (None without a limiter).
fn on_datagram(
    pkt: &[u8],
    src: SocketAddr,
    now: Option<Duration>,
    shared: &Arc<Shared>,
    out: &mut Vec<u8>,
    slow: &mut Vec<SlowQuery>,
) -> bool {
    out.clear();
    // Too short for a header, or a response: never answer (RFC 1035 section 4.1.1).
    if pkt.len() < HEADER_LEN || pkt[2] & 0x80 != 0 {
        return false;
    }
    if let (Some(limiter), Some(now)) = (&shared.limiter, now) {
        match limiter.check(src.ip(), now) {
            Verdict::Allow => {}
            Verdict::Drop => return false,
            Verdict::Slip => {
                return respond::slip(pkt).is_some_and(|bytes| copy_into(out, &bytes));
            }
        }
    }
    let started = shared.log_queries.then(Instant::now);
    if !shared.acl.load().allows(src.ip()) {
        if shared.log_queries {
            info!(proto = "udp", client = %src, "query refused by the allow-list");
        }
        let Some(bytes) = respond::refused(pkt, Protocol::Udp, shared.ours) else {
            return false;
        };
        shared.answered_raw(Protocol::Udp, src, pkt, &bytes, started);
        return copy_into(out, &bytes);
    }
    if let Ok(view) = QueryView::parse(pkt) {
        if fast_path_eligible(&view) {
            let max = respond::udp_limit(view.edns.map(|e| e.udp_payload), shared.ours);
            if let Some(origin) = shared.chain.answer_fast(&view, max, out) {
                if out.len() <= max {
                    shared.answered(&Answered {
                        protocol: Protocol::Udp,
                        client: src,
                        qname: view.qname,
                        qtype: view.qtype,
                        response: out,
                        source: origin.into(),
                        upstream: None,
                        started,
                    });
                    return true;
                }
            }
            out.clear();
        }
    }
    match respond::prepare(pkt, Protocol::Udp, shared.ours) {
        Prepared::Drop => false,
        Prepared::Reply(bytes) => {
            shared.answered_raw(Protocol::Udp, src, pkt, &bytes, started);
            copy_into(out, &bytes)
        }
        Prepared::Query(query) => {
            let Ok(share) = shared.inflight.admit(src.ip()) else {
                debug!(client = %src, "in-flight cap reached and this client holds its share; dropping query");
                return false;
            };
            slow.push((query, src, share));
            false
        }
    }
}

fn copy_into(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    out.clear();
    out.extend_from_slice(bytes);
    true
}

/// The fast path takes only plain queries the head of the chain can answer as is.
pub(super) fn fast_path_eligible(view: &QueryView<'_>) -> bool {
    !view.header.response
        && view.header.opcode == Opcode::QUERY
        && view.edns.map_or(true, |e| e.version == 0)
}

/// What the receive loop starts for a query of the slow path: one future, boxed once by `inline`.
/// Its arguments are its only copy of the query, and it stays under 1 KiB, so that its allocation
/// is one the allocator serves from its per-thread cache (glibc's ends at 1,032 bytes; a larger
/// one also merges the heap's freed small chunks first, on every miss). A wrapping async block
/// would hold a second copy of everything it moves into the inner one.
fn slow_job(
    req: Request,
    src: SocketAddr,
    out: Arc<Outbox>,
    shared: &Arc<Shared>,
    share: fair::Slot,
) -> TrackedFuture<impl std::future::Future<Output = ()>> {
    shared
        .tracker
        .track_future(slow_path(req, src, out, shared.clone(), share))
}

/// The slow path of one query, to its answer (or none: stopped, out of time, or its share gone).
async fn slow_path(
    req: Request,
    src: SocketAddr,
    out: Arc<Outbox>,
    shared: Arc<Shared>,
    share: fair::Slot,
) {
    let started = shared.log_queries.then(Instant::now);
    let outcome = tokio::select! {
        _ = shared.hard_stop.cancelled() => return,
        // Its share went to a client holding less: dropped, as at the cap.
        () = share.cancelled() => return,
        r = tokio::time::timeout(shared.query_deadline, shared.chain.handle(&req)) => r,
    };
    let Ok(outcome) = outcome else {
        debug!(client = %src, "query deadline passed; no answer sent");
        return;
    };
    let limit = respond::limit_for(&req.query, Protocol::Udp, shared.ours);
    let Some(bytes) = respond::respond(&req.query, &outcome, limit, shared.ours) else {
        return;
    };
    shared.answered_outcome(Protocol::Udp, src, &req.query, &outcome, &bytes, started);
    // This query still holds its share: any other slot is another query that may answer soon.
    let alone = shared.inflight.in_use() <= 1;
    out.send(bytes, src, alone).await;
}

/// Backs off after a receive error so that a persistent one cannot spin the loop.
fn recv_error(e: std::io::Error) {
    use std::io::ErrorKind;
    match e.kind() {
        // The read timeout: time to look at the shutdown token.
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted => {}
        // ICMP errors from earlier sends surface as these on some systems and mean nothing here.
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => {
            debug!(error = %e, "udp receive failed")
        }
        _ => {
            debug!(error = %e, "udp receive failed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what an async fn returns, from the fn item alone.
    fn future_size<A, B, C, D, E, R>(_: fn(A, B, C, D, E) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn slow_path_future_fits_the_allocators_thread_cache() {
        // At 1,040 bytes (in a release build; the query held twice, by an outer select's async
        // block too) every miss paid glibc's merge of its freed small chunks: see `slow_job`.
        let size = future_size(slow_job);
        assert!(size <= 1024, "the slow path's future is {size} bytes");
    }
}
