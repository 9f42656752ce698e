//! The UDP receive loop (RFC 1035 section 4.2.1, RFC 6891 for payload sizes).
//!
//! One loop per socket; with SO_REUSEPORT there is one socket per worker thread and the kernel spreads
//! clients over them. The loop answers the fast path itself, from buffers it reuses: no task, no
//! allocation. Only queries the head of the chain cannot answer synchronously get a task, and only
//! while a permit from the server-wide in-flight cap is free; above the cap the query is dropped
//! (the client retries), which keeps memory bounded under a flood.
//!
//! Why a blocking thread and not a tokio task: a cached answer costs two system calls here
//! (`recvfrom`, `sendto`). Through the reactor the same answer also pays for the readiness dance
//! whenever the socket runs dry (a failed `recvfrom`, `epoll_wait`, a task wake-up), which under a
//! typical load, where the server is faster than its clients, is nearly every packet; the benchmark
//! (BENCHMARKS.md) measured it. The thread sleeps in `recvfrom` itself and wakes at once; it checks for
//! shutdown whenever the socket's read timeout ([`super::UDP_POLL`]) passes. Slow-path queries still
//! run as tasks on the runtime and send their answers on the same socket (a UDP send does not block
//! for long; the socket's write timeout bounds it).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::respond::{self, Prepared};
use super::{Shared, QUERY_DEADLINE};
use crate::handler::{Protocol, Request};
use crate::wire::{Message, Name, Opcode, QueryView, HEADER_LEN};

/// Largest datagram read; anything longer is cut by the kernel and then fails to parse.
const RECV_BUF: usize = 65535;

/// Receives and answers on `sock` until `shutdown`. Blocking: run it on a thread of its own;
/// `runtime` is where slow-path queries are spawned.
pub(super) fn serve(
    sock: Arc<UdpSocket>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    runtime: Handle,
) {
    let mut rbuf = vec![0u8; RECV_BUF];
    let mut out = Vec::with_capacity(4096);
    while !shutdown.is_cancelled() {
        let (len, src) = match sock.recv_from(&mut rbuf) {
            Ok(x) => x,
            Err(e) => {
                recv_error(e);
                continue;
            }
        };
        let pkt = &rbuf[..len];
        if let Some(reply) = on_datagram(pkt, src, &sock, &shared, &runtime, &mut out) {
            if let Err(e) = sock.send_to(reply.as_ref(), src) {
                debug!(error = %e, "udp send failed");
            }
        }
    }
}

/// What to send back right away, if anything.
enum Reply<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Reply<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Reply::Borrowed(b) => b,
            Reply::Owned(v) => v,
        }
    }
}

/// Handles one datagram: answers it from the fast path into `out`, builds an error reply, or spawns
/// the slow path (which sends its own answer).
fn on_datagram<'o>(
    pkt: &[u8],
    src: SocketAddr,
    sock: &Arc<UdpSocket>,
    shared: &Arc<Shared>,
    runtime: &Handle,
    out: &'o mut Vec<u8>,
) -> Option<Reply<'o>> {
    // Too short for a header, or a response: never answer (RFC 1035 section 4.1.1).
    if pkt.len() < HEADER_LEN || pkt[2] & 0x80 != 0 {
        return None;
    }
    if !shared.acl.allows(src.ip()) {
        if shared.log_queries {
            debug!(proto = "udp", client = %src, "query refused by the allow-list");
        }
        return respond::refused(pkt, Protocol::Udp, shared.ours).map(Reply::Owned);
    }
    if let Ok(view) = QueryView::parse(pkt) {
        if fast_path_eligible(&view) {
            let max = respond::udp_limit(view.edns.map(|e| e.udp_payload), shared.ours);
            out.clear();
            if shared.chain.answer_fast(&view, max, out) && out.len() <= max {
                if shared.log_queries {
                    log_view("udp", src, &view, "answered on the fast path");
                }
                return Some(Reply::Borrowed(out));
            }
        }
    }
    match respond::prepare(pkt, Protocol::Udp, shared.ours) {
        Prepared::Drop => None,
        Prepared::Reply(bytes) => Some(Reply::Owned(bytes)),
        Prepared::Query(query) => {
            let Ok(permit) = shared.udp_inflight.clone().try_acquire_owned() else {
                debug!(client = %src, "udp in-flight cap reached; dropping query");
                return None;
            };
            let (sock, task_shared) = (sock.clone(), shared.clone());
            shared.tracker.spawn_on(
                async move {
                    let _permit = permit;
                    slow_path(query, src, sock, task_shared).await;
                },
                runtime,
            );
            None
        }
    }
}

/// The fast path takes only plain queries the head of the chain can answer as is.
pub(super) fn fast_path_eligible(view: &QueryView<'_>) -> bool {
    !view.header.response
        && view.header.opcode == Opcode::QUERY
        && view.edns.map_or(true, |e| e.version == 0)
}

async fn slow_path(query: Message, src: SocketAddr, sock: Arc<UdpSocket>, shared: Arc<Shared>) {
    let req = Request {
        query,
        client: src,
        protocol: Protocol::Udp,
    };
    let outcome = tokio::select! {
        _ = shared.hard_stop.cancelled() => return,
        r = tokio::time::timeout(QUERY_DEADLINE, shared.chain.handle(&req)) => r,
    };
    let Ok(outcome) = outcome else {
        debug!(client = %src, "query deadline passed; no answer sent");
        return;
    };
    let resp = respond::finish(&req.query, outcome, shared.ours);
    if shared.log_queries {
        log_answer("udp", src, &req.query, &resp);
    }
    let limit = respond::limit_for(&req.query, Protocol::Udp, shared.ours);
    let Some(bytes) = respond::encode(&resp, &req.query, limit, shared.ours) else {
        return;
    };
    if let Err(e) = sock.send_to(&bytes, src) {
        debug!(error = %e, "udp send failed");
    }
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

/// Debug line for a fast-path answer (only when query logging is on).
pub(super) fn log_view(proto: &'static str, client: SocketAddr, view: &QueryView<'_>, what: &str) {
    let name = Name::from_wire(view.qname).map_or_else(|_| "?".to_string(), |n| n.to_string());
    debug!(proto, %client, qname = %name, qtype = %view.qtype, "{what}");
}

/// Debug line for a slow-path answer (only when query logging is on).
pub(super) fn log_answer(proto: &'static str, client: SocketAddr, query: &Message, resp: &Message) {
    if let Some(q) = query.question() {
        debug!(
            proto, %client, qname = %q.name, qtype = %q.qtype, rcode = %resp.rcode(),
            answers = resp.answers.len(), "answered"
        );
    }
}
