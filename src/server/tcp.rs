//! DNS over TCP (RFC 1035 section 4.2.2, RFC 7766).
//!
//! ```text
//!   accept --(client under its cap; slot or evict idlest)--> connection task
//!     read_buf --> rbuf --check/parse frames--> fast path ----------------> wbuf --one write--> client
//!                                          \--> slow task (<= pipeline) --channel--^
//! ```
//!
//! Framing follows tokio's mini-redis: `check` whether the buffer holds a complete frame (2-octet
//! length, then the message), and only then parse it, so split reads of any size just wait for more
//! bytes. A zero-length frame, one too short to hold a header, or one over [`MAX_TCP_QUERY_LEN`]
//! closes the connection: the stream is hostile or out of step, and the cap bounds each connection's
//! buffer.
//!
//! Pipelined queries are answered concurrently and out of order (RFC 7766 section 6.2.1.1): fast-path
//! answers go into the write buffer at once, slow ones run as tasks (at most `max_tcp_pipeline` per
//! connection; at the cap the connection is not read until one finishes) and come back through a
//! channel. Everything ready is written with one `write` call. Responses are never truncated here.
//!
//! What a client may make us hold is bounded, whatever it sends: frames are answered only while
//! less than [`WBUF_CAP`] of answers wait to be written, and the connection is read only when no
//! complete frame is left unanswered, so a client that pipelines queries for a large answer and
//! never reads holds one read buffer and about [`WBUF_CAP`] plus one answer, not every answer to
//! everything it sent (RFC 7766 section 6.2.1 lets a server stop reading). Buffers that grew are
//! shrunk back. A write that cannot proceed waits for the idle timeout, or only
//! [`PRESSURE_WRITE_WAIT`] while all such waiting answers together exceed [`TCP_QUEUED_BUDGET`].
//!
//! A connection with no query in flight is closed after the idle timeout, counted from the last
//! complete query or written response (partial frames do not count, so trickling bytes does not keep
//! a connection alive). After the client half-closes, or on shutdown, the connection stops reading,
//! finishes what is in flight, then closes.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::fair::ClientKey;
use super::querylog::Answered;
use super::respond::{self, Prepared, TCP_LIMIT};
use super::udp::fast_path_eligible;
use super::{ConnState, Shared, MAX_TCP_QUERY_LEN};
use crate::handler::{BusyReason, HandlerError, Protocol, Request};
use crate::wire::{Message, QueryView, HEADER_LEN};

/// How long a new connection waits for an evicted one to let go of its slot.
const EVICT_WAIT: Duration = Duration::from_secs(1);
/// Initial read buffer and the least free space offered to each read.
const READ_CHUNK: usize = 4096;
/// A buffer that grew beyond this is shrunk back once it is empty.
const BUF_KEEP: usize = 64 * 1024;
/// Answers queued for one connection's writing, above which it takes no further query until they
/// are written: a client that sends queries and never reads the answers holds at most this (plus
/// one answer, and its slow-path answers in flight) instead of every answer to everything it sent.
const WBUF_CAP: usize = 32 * 1024;
/// Answers waiting for clients that do not read, across all connections, above which a connection
/// whose client does not read gets [`PRESSURE_WRITE_WAIT`] instead of the idle timeout to do so.
pub(super) const TCP_QUEUED_BUDGET: usize = 32 * 1024 * 1024;
/// How long a stalled write may wait while [`TCP_QUEUED_BUDGET`] is exceeded.
const PRESSURE_WRITE_WAIT: Duration = Duration::from_secs(1);

/// Accepts connections on `listener` until `shutdown`.
pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let stop = shutdown.child_token();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let client = ClientKey::of(peer.ip());
        if shared.conns.held_by(client) >= shared.max_tcp_per_client {
            debug!(client = %peer, "this client holds its most tcp connections; closing the new one");
            continue;
        }
        let Some(permit) = admit(&shared, client, &stop).await else {
            debug!(client = %peer, "tcp connection cap reached, none idle, this client holds its share; closing the new one");
            continue;
        };
        let state = shared
            .conns
            .register(client, shared.hard_stop.child_token());
        let conn = Connection::new(peer, shared.clone(), state.clone());
        shared
            .tracker
            .spawn(conn.serve(stream, stop.child_token(), permit));
    }
}

/// A connection slot: a free one, or one freed by closing the longest-idle connection or one of the
/// client that holds the most ([`Connections::evict_for`](super::Connections::evict_for)).
async fn admit(
    shared: &Shared,
    client: ClientKey,
    stop: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    let slots = &shared.conns.slots;
    if let Ok(p) = slots.clone().try_acquire_owned() {
        return Some(p);
    }
    if !shared.conns.evict_for(client) {
        return None;
    }
    tokio::select! {
        _ = stop.cancelled() => None,
        r = tokio::time::timeout(EVICT_WAIT, slots.clone().acquire_owned()) => r.ok()?.ok(),
    }
}

async fn accept_error(e: io::Error) {
    debug!(error = %e, "tcp accept failed");
    // Out of file descriptors or memory: give the system a moment instead of spinning.
    if !matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the buffer starts with a complete frame (mini-redis' `Frame::check`).
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// Need at least this many bytes in all.
    Incomplete(usize),
    /// A message of this length follows the 2-octet prefix.
    Complete(usize),
    /// A length no query can have.
    Invalid(usize),
}

fn check_frame(buf: &[u8]) -> Frame {
    let [hi, lo, ..] = *buf else {
        return Frame::Incomplete(2);
    };
    let len = u16::from_be_bytes([hi, lo]) as usize;
    if !(HEADER_LEN..=MAX_TCP_QUERY_LEN).contains(&len) {
        return Frame::Invalid(len);
    }
    if buf.len() < 2 + len {
        Frame::Incomplete(2 + len)
    } else {
        Frame::Complete(len)
    }
}

/// Appends `msg` with its length prefix. `msg` is at most 65535 octets (checked by callers).
fn push_framed(wbuf: &mut Vec<u8>, msg: &[u8]) {
    wbuf.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    wbuf.extend_from_slice(msg);
}

/// One client connection's state, owned by its task.
struct Connection {
    peer: SocketAddr,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    allowed: bool,
    /// Finished slow-path responses, framed (empty: no answer). Capacity = pipeline cap, so a task's
    /// `try_send` always finds room.
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Vec<u8>>,
    wbuf: Vec<u8>,
    /// Where the fast path writes, reused.
    scratch: Vec<u8>,
    inflight: usize,
}

impl Connection {
    fn new(peer: SocketAddr, shared: Arc<Shared>, state: Arc<ConnState>) -> Self {
        let (tx, rx) = mpsc::channel(shared.max_pipeline);
        Connection {
            peer,
            allowed: shared.acl.allows(peer.ip()),
            shared,
            state,
            tx,
            rx,
            wbuf: Vec::with_capacity(READ_CHUNK),
            scratch: Vec::with_capacity(512),
            inflight: 0,
        }
    }

    async fn serve(
        mut self,
        mut stream: TcpStream,
        stop_reading: CancellationToken,
        _permit: OwnedSemaphorePermit,
    ) {
        let shared = self.shared.clone();
        let state = self.state.clone();
        let _unregister = Unregister {
            shared: shared.clone(),
            id: state.id,
        };
        if !self.allowed && shared.log_queries {
            info!(proto = "tcp", client = %self.peer, "connection refused by the allow-list");
        }
        let _ = stream.set_nodelay(true);
        let idle = shared.tcp_idle;
        let max_pipeline = shared.max_pipeline;
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut reading = true;
        let mut idle_deadline = Instant::now() + idle;
        // Pinned once: the timer is re-armed only when it fires early, not per query.
        let sleep = tokio::time::sleep_until(idle_deadline);
        let close = state.close.cancelled();
        let stop = stop_reading.cancelled();
        tokio::pin!(sleep, close, stop);
        loop {
            match self.dispatch(&mut rbuf) {
                Ok(0) => {}
                Ok(_) => idle_deadline = self.touch(),
                Err(len) => {
                    debug!(client = %self.peer, len, "bad tcp frame length; closing");
                    return;
                }
            }
            while let Ok(framed) = self.rx.try_recv() {
                self.collect(framed);
            }
            if !self.wbuf.is_empty() {
                if let Err(e) = flush(&mut stream, &mut self.wbuf, &shared, &state.close).await {
                    debug!(client = %self.peer, error = %e, "tcp write failed; closing");
                    return;
                }
                idle_deadline = self.touch();
            }
            shrink(&mut rbuf);
            if self.inflight < max_pipeline && matches!(check_frame(&rbuf), Frame::Complete(_)) {
                // Dispatch stopped at the write cap and the buffer is written now: more of what
                // was read is answered before anything more is read.
                continue;
            }
            if !reading && self.inflight == 0 {
                // Everything complete was answered; a partial frame left over is dropped.
                return;
            }
            // Only this task writes it; the acceptor reads it to find an idle connection.
            state.inflight.store(self.inflight, Ordering::Relaxed);
            // Ready work first: cancellation and the timer are looked at only when nothing is ready.
            tokio::select! {
                biased;
                Some(framed) = self.rx.recv(), if self.inflight > 0 => self.collect(framed),
                r = read_some(&mut stream, &mut rbuf), if reading && self.inflight < max_pipeline => {
                    match r {
                        Ok(0) => reading = false,
                        Ok(_) => {}
                        Err(e) => {
                            debug!(client = %self.peer, error = %e, "tcp read failed; closing");
                            return;
                        }
                    }
                }
                _ = &mut close => return,
                _ = &mut stop, if reading => reading = false,
                _ = &mut sleep, if self.inflight == 0 => {
                    if Instant::now() >= idle_deadline {
                        debug!(client = %self.peer, "tcp connection idle; closing");
                        return;
                    }
                    sleep.as_mut().reset(idle_deadline);
                }
            }
        }
    }

    /// Handles the complete frames in `rbuf` while the pipeline has room and the answers queued
    /// for writing stay under [`WBUF_CAP`]. Returns how many, or the bad length that must close the
    /// connection.
    fn dispatch(&mut self, rbuf: &mut BytesMut) -> Result<usize, usize> {
        let mut handled = 0;
        while self.inflight < self.shared.max_pipeline && self.wbuf.len() < WBUF_CAP {
            match check_frame(rbuf) {
                Frame::Invalid(len) => return Err(len),
                Frame::Incomplete(need) => {
                    rbuf.reserve(need.saturating_sub(rbuf.len()));
                    break;
                }
                Frame::Complete(len) => {
                    self.on_query(&rbuf[2..2 + len]);
                    rbuf.advance(2 + len);
                    handled += 1;
                }
            }
        }
        Ok(handled)
    }

    /// One complete query: answered into the write buffer, or spawned.
    fn on_query(&mut self, msg: &[u8]) {
        let shared = &self.shared;
        let started = shared.log_queries.then(std::time::Instant::now);
        if !self.allowed {
            if let Some(r) = respond::refused(msg, Protocol::Tcp, shared.ours) {
                shared.answered_raw(Protocol::Tcp, self.peer, msg, &r, started);
                push_framed(&mut self.wbuf, &r);
            }
            return;
        }
        if msg[2] & 0x80 != 0 {
            return; // a response, not a query: dropped
        }
        if let Ok(view) = QueryView::parse(msg) {
            if fast_path_eligible(&view) {
                self.scratch.clear();
                let origin = shared
                    .chain
                    .answer_fast(&view, TCP_LIMIT, &mut self.scratch);
                if let Some(origin) = origin.filter(|_| self.scratch.len() <= TCP_LIMIT) {
                    shared.answered(&Answered {
                        protocol: Protocol::Tcp,
                        client: self.peer,
                        qname: view.qname,
                        qtype: view.qtype,
                        response: &self.scratch,
                        source: origin.into(),
                        upstream: None,
                        started,
                    });
                    push_framed(&mut self.wbuf, &self.scratch);
                    return;
                }
            }
        }
        match respond::prepare(msg, Protocol::Tcp, shared.ours) {
            Prepared::Drop => {}
            Prepared::Reply(r) => {
                shared.answered_raw(Protocol::Tcp, self.peer, msg, &r, started);
                push_framed(&mut self.wbuf, &r);
            }
            Prepared::Query(query) => self.spawn_query(query, started),
        }
    }

    fn spawn_query(&mut self, query: Message, started: Option<std::time::Instant>) {
        let Ok(share) = self.shared.inflight.admit(self.peer.ip()) else {
            // This client already holds as much of the server's in-flight budget as any other.
            let busy = Err(busy());
            if let Some(bytes) = respond::respond(&query, &busy, TCP_LIMIT, self.shared.ours) {
                let peer = self.peer;
                self.shared
                    .answered_outcome(Protocol::Tcp, peer, &query, &busy, &bytes, started);
                push_framed(&mut self.wbuf, &bytes);
            }
            return;
        };
        self.inflight += 1;
        let slot = Slot {
            tx: Some(self.tx.clone()),
        };
        let shared = self.shared.clone();
        let client = self.peer;
        self.shared.tracker.spawn(async move {
            let req = Request {
                query,
                client: Some(client),
                protocol: Protocol::Tcp,
            };
            let outcome = tokio::select! {
                biased;
                r = tokio::time::timeout(shared.query_deadline, shared.chain.handle(&req)) => r,
                _ = shared.hard_stop.cancelled() => return,
                // Its share went to a client holding less: the query ends now, and says so.
                _ = share.cancelled() => Ok(Err(busy())),
            };
            drop(share);
            let outcome = outcome.unwrap_or(Err(HandlerError::Deadline(shared.query_deadline)));
            let response = respond::respond(&req.query, &outcome, TCP_LIMIT, shared.ours);
            if let Some(bytes) = response {
                shared.answered_outcome(
                    Protocol::Tcp,
                    client,
                    &req.query,
                    &outcome,
                    &bytes,
                    started,
                );
                let mut framed = Vec::with_capacity(2 + bytes.len());
                push_framed(&mut framed, &bytes);
                slot.send(framed);
            }
        });
    }

    /// A slow-path result arrived.
    fn collect(&mut self, framed: Vec<u8>) {
        self.inflight = self.inflight.saturating_sub(1);
        self.wbuf.extend_from_slice(&framed);
    }

    /// Marks activity now; returns the new idle deadline.
    fn touch(&self) -> Instant {
        self.state
            .last_active
            .store(self.shared.conns.now_ms(), Ordering::Relaxed);
        Instant::now() + self.shared.tcp_idle
    }
}

/// What a query gets when its client has used up its share of the in-flight budget.
fn busy() -> HandlerError {
    HandlerError::Busy(BusyReason::ClientShare)
}

/// Removes the connection from the registry when its task ends, however it ends.
struct Unregister {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.shared.conns.unregister(self.id);
    }
}

/// A slow task's way back to its connection. Sends exactly once: the answer, or (when the task ends
/// without one, even by panicking) an empty message, so the connection's in-flight count stays true.
struct Slot {
    tx: Option<mpsc::Sender<Vec<u8>>>,
}

impl Slot {
    fn send(mut self, framed: Vec<u8>) {
        if let Some(tx) = self.tx.take() {
            // The channel has room for every query in flight; a closed one means the client left.
            let _ = tx.try_send(framed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(Vec::new());
        }
    }
}

/// Reads whatever is available, offering at least [`READ_CHUNK`] bytes of room.
async fn read_some(stream: &mut TcpStream, rbuf: &mut BytesMut) -> io::Result<usize> {
    if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
        rbuf.reserve(READ_CHUNK);
    }
    stream.read_buf(rbuf).await
}

/// Writes the whole buffer: directly when the socket has room (the common case, no timer), else
/// waiting for the client to read, up to the idle timeout, or [`PRESSURE_WRITE_WAIT`] while the
/// answers waiting for clients across all connections exceed [`TCP_QUEUED_BUDGET`].
async fn flush(
    stream: &mut TcpStream,
    wbuf: &mut Vec<u8>,
    shared: &Shared,
    close: &CancellationToken,
) -> io::Result<()> {
    let mut done = 0;
    while done < wbuf.len() {
        match stream.try_write(&wbuf[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if done < wbuf.len() {
        let waiting = Queued::new(&shared.tcp_queued, wbuf.len() - done);
        let limit = write_wait(waiting.total(), shared.tcp_idle);
        tokio::select! {
            _ = close.cancelled() => return Err(io::ErrorKind::ConnectionAborted.into()),
            r = tokio::time::timeout(limit, stream.write_all(&wbuf[done..])) => {
                r.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            }
        }
    }
    wbuf.clear();
    if wbuf.capacity() > BUF_KEEP {
        wbuf.shrink_to(READ_CHUNK);
    }
    Ok(())
}

/// How long a stalled write may wait for its client to read, when `total` octets of answers (its
/// own included) wait in all connections' buffers: the idle timeout, or only
/// [`PRESSURE_WRITE_WAIT`] beyond [`TCP_QUEUED_BUDGET`].
fn write_wait(total: usize, idle: Duration) -> Duration {
    if total > TCP_QUEUED_BUDGET {
        PRESSURE_WRITE_WAIT.min(idle)
    } else {
        idle
    }
}

/// Gives back the memory of a read buffer that grew for a large frame, once it holds little.
fn shrink(rbuf: &mut BytesMut) {
    if rbuf.capacity() > 4 * READ_CHUNK && rbuf.len() <= READ_CHUNK / 2 {
        let mut small = BytesMut::with_capacity(READ_CHUNK);
        small.extend_from_slice(rbuf);
        *rbuf = small;
    }
}

/// Bytes a connection waits to write, counted in a server-wide total while it waits.
struct Queued<'a> {
    total: &'a AtomicUsize,
    bytes: usize,
    after: usize,
}

impl<'a> Queued<'a> {
    fn new(total: &'a AtomicUsize, bytes: usize) -> Self {
        let after = total.fetch_add(bytes, Ordering::Relaxed) + bytes;
        Queued {
            total,
            bytes,
            after,
        }
    }

    /// The server-wide total, this connection's bytes included, when they were counted.
    fn total(&self) -> usize {
        self.after
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked_before_parsing() {
        assert_eq!(check_frame(&[]), Frame::Incomplete(2));
        assert_eq!(check_frame(&[0]), Frame::Incomplete(2));
        assert_eq!(check_frame(&[0, 0]), Frame::Invalid(0));
        assert_eq!(check_frame(&[0, 11]), Frame::Invalid(11));
        assert_eq!(check_frame(&[0xFF, 0xFF]), Frame::Invalid(65535));
        let mut buf = vec![0, 12];
        buf.extend_from_slice(&[0; 11]);
        assert_eq!(check_frame(&buf), Frame::Incomplete(14));
        buf.push(0);
        assert_eq!(check_frame(&buf), Frame::Complete(12));
        buf.extend_from_slice(&[0, 12, 1]);
        assert_eq!(
            check_frame(&buf),
            Frame::Complete(12),
            "a second frame may follow"
        );
    }

    #[test]
    fn stalled_writes_wait_less_once_the_server_wide_budget_is_exceeded() {
        let idle = Duration::from_secs(10);
        assert_eq!(write_wait(0, idle), idle);
        assert_eq!(write_wait(TCP_QUEUED_BUDGET, idle), idle);
        assert_eq!(write_wait(TCP_QUEUED_BUDGET + 1, idle), PRESSURE_WRITE_WAIT);
        let short = Duration::from_millis(200);
        assert_eq!(
            write_wait(TCP_QUEUED_BUDGET + 1, short),
            short,
            "never longer than idle"
        );
        // The total counts what every stalled connection has queued, until it is written.
        let total = AtomicUsize::new(0);
        let a = Queued::new(&total, TCP_QUEUED_BUDGET);
        let b = Queued::new(&total, 10);
        assert_eq!(
            (a.total(), b.total()),
            (TCP_QUEUED_BUDGET, TCP_QUEUED_BUDGET + 10)
        );
        drop(a);
        assert_eq!(total.load(Ordering::Relaxed), 10);
        drop(b);
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn framing_prefixes_the_length() {
        let mut w = Vec::new();
        push_framed(&mut w, &[1, 2, 3]);
        assert_eq!(w, [0, 3, 1, 2, 3]);
    }
}
