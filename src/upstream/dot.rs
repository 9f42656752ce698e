//! DNS-over-TLS (RFC 7858) with connection reuse and pipelining (RFC 7766).
//!
//! ```text
//!   exchange() --frame, under the connection's lock--> TLS --> server
//!       ^                                                        |
//!       +--oneshot-- connection task (reads, finishes writes) <--+
//!   exchange() --Job--> driver task (connects, reconnects, timers; only when no connection is open)
//! ```
//!
//! The open connection ([`Live`]: the TLS stream, the output buffer and the table of queries
//! waiting for an answer) sits behind one std mutex. A query on an open connection takes the lock,
//! gets an ID, appends its frame and writes it to the socket itself, on whatever thread runs the
//! exchange (for a UDP client, the receive thread's first poll): no task is woken to send it. The
//! connection's own task reads the answers and completes each waiter directly, and finishes a
//! write the socket could not take at once (the exchange registers that task's waker with the
//! socket). So a miss costs one wake-up of the runtime (the answer arriving), not one to hand the
//! query over, one to write it and one to pass the answer back. Nothing awaits while the lock is
//! held: it covers a non-blocking write or read and the table update around it. Queries started
//! together (two or more from one UDP receive batch, see [`crate::batch`]) are queued together
//! and written once at the batch's end: one TLS record and one system call for all of them.
//!
//! One driver task per transport owns the rest: opening the connection (queries that find none
//! are sent to it as jobs), reconnects, backoff and timers. It wakes at least every half
//! `timeout` while a connection is open, to look at the table for a stall.
//!
//! - **Pipelining** (RFC 7766 section 6.2.1.1): every query is written as soon as it arrives (or
//!   when its batch ends); the exchange gives it an ID that is free on the connection and restores the caller's ID on the
//!   answer, so answers may come back in any order. Frames queued while a write waits go out
//!   together, as one TLS record.
//! - **Bounds**: at most `max_inflight` queries per transport on the wire; more wait in line for a
//!   slot ([`super::admit`]) and fail with [`UpstreamError::Overloaded`] if none frees up in time.
//!   Each exchange, waiting included, is bounded by `timeout`, connecting by `connect_timeout`.
//! - **Dead connections** (a laptop that slept, a Wi-Fi switch): a read or write error, a server
//!   close or a malformed frame drops the connection and sends its waiting queries *once more*, at
//!   once, on a fresh connection. A connection that has answered nothing for `timeout` while
//!   queries wait is stalled and dropped the same way (the driver, which is not told of each
//!   query, looks at least every half `timeout`, and so sets its timer for the stall in time). [`DotTransport::reset`] does it on demand (after a network change).
//! - **Idle timeout** (RFC 7766 section 6.2.3): a connection with nothing to do for `idle_timeout`
//!   is closed with a TLS close_notify.
//! - **Backoff**: after a failed connection attempt, queries fail at once with the last error until
//!   [`super::tls::backoff`] has passed, so a pool can fail over instead of waiting.
//! - **Padding** (RFC 8467): queries are padded to blocks of 128 octets before they are written.
//!
//! Answers are split into frames by [`super::frames::FrameReader`].
//!
//! Limitations: one connection per upstream (a second one would only help past the server's
//! pipelining limit); no TCP Fast Open or 0-RTT early data; answers are matched by ID only — the
//! question is checked by the caller's upstream layer. The lock is taken by the receive thread
//! (writing) and a runtime worker (reading), so under load one may briefly wait for the other.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::frames::FrameReader;
use super::padding::{pad_query_into, padded_len_bound, QUERY_BLOCK};
use super::tls::{self, Counters, TlsOptions, TransportStats};
use super::{BadAnswer, BadConfig, BadQuery, Lost, Transport, UpstreamError, UpstreamUrl, Via};
use crate::batch;
use crate::handler::BoxFuture;
use crate::logging::{log_limited, LogLimiter};
use crate::wire::HEADER_LEN;

/// Default time one exchange may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time an unused connection is kept open.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on queries waiting on one upstream.
pub const DEFAULT_MAX_INFLIGHT: usize = 256;
/// The most queries one transport will ever have in flight (the ID space is 65536).
pub const MAX_INFLIGHT: usize = 8192;

/// Output buffer capacity kept between bursts (a larger one is given back once it drains).
const WRITE_BATCH: usize = 16 * 1024;
/// Reads the connection task does in one poll before it yields to other tasks.
const READS_PER_POLL: usize = 32;
/// Failure reports from connection tasks waiting for the driver (one per connection at most).
const EVENT_QUEUE: usize = 16;
/// How long a graceful close may spend sending close_notify.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Tunables of a DoT transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DotOptions {
    /// Time limit of one exchange, from the call to the answer, connecting included.
    pub timeout: Duration,
    /// An unused connection is closed after this long.
    pub idle_timeout: Duration,
    /// Cap on queries in flight on this upstream (clamped to 1..=[`MAX_INFLIGHT`]).
    pub max_inflight: usize,
    /// Time limit of TCP connect plus TLS handshake, per address.
    pub connect_timeout: Duration,
    /// Pad queries to a multiple of this many octets (RFC 8467); 0 disables padding.
    pub pad_block: usize,
}

impl Default for DotOptions {
    fn default() -> Self {
        DotOptions {
            timeout: DEFAULT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            connect_timeout: DEFAULT_TIMEOUT,
            pad_block: QUERY_BLOCK,
        }
    }
}

/// A DNS-over-TLS upstream: one pipelined, lazily opened TLS connection.
pub struct DotTransport {
    url: String,
    shared: Arc<Shared>,
    /// The driver's inbox; the driver is spawned on the first exchange (so `new` needs no runtime)
    /// and stops when the transport is dropped.
    jobs: OnceLock<mpsc::UnboundedSender<Command>>,
    permits: Semaphore,
}

impl DotTransport {
    /// A transport for `url` (a `tls://` URL) that connects to `addrs` (the upstream's bootstrap
    /// addresses; if empty and the URL's host is an IP address, that address). Never resolves
    /// names. Nothing is opened until the first query.
    pub fn new(
        url: &UpstreamUrl,
        addrs: Vec<SocketAddr>,
        tls: TlsOptions,
        opts: DotOptions,
    ) -> Result<Self, UpstreamError> {
        let UpstreamUrl::Tls { host, port } = url else {
            return Err(UpstreamError::Config(BadConfig::Scheme {
                url: url.clone(),
                want: "tls://",
            }));
        };
        let addrs = bootstrap_addrs(url, host, *port, addrs)?;
        let config = tls::client_config(&tls)?;
        let shared = Shared {
            live: Mutex::new(None),
            url: url.to_string(),
            addrs,
            connector: TlsConnector::from(config),
            server_name: tls.server_name()?,
            stats: Counters::default(),
            log_limit: LogLimiter::default(),
            opts: DotOptions {
                max_inflight: opts.max_inflight.clamp(1, MAX_INFLIGHT),
                ..opts
            },
        };
        Ok(DotTransport {
            url: shared.url.clone(),
            permits: Semaphore::new(shared.opts.max_inflight),
            shared: Arc::new(shared),
            jobs: OnceLock::new(),
        })
    }

    /// Completed TLS handshakes so far (full and resumed).
    pub fn handshakes(&self) -> u64 {
        self.stats().handshakes
    }

    /// Connection counters.
    pub fn stats(&self) -> TransportStats {
        self.shared.stats.snapshot()
    }

    /// Drops the connection now and forgets any connection backoff, for when the network has
    /// changed (new addresses, resume from suspend). Queries waiting on the old connection are
    /// sent again on a fresh one.
    pub fn reset(&self) {
        if let Some(driver) = self.jobs.get() {
            let _ = driver.send(Command::Reset);
        }
    }

    fn driver(&self) -> &mpsc::UnboundedSender<Command> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(Driver::new(self.shared.clone(), rx).run());
            tx
        })
    }

    async fn exchange_inner(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        if query.len() < HEADER_LEN || query.len() > u16::MAX as usize {
            return Err(UpstreamError::BadQuery(BadQuery::Length(query.len())));
        }
        // The timeout covers waiting for a slot and the exchange itself.
        let timeout = self.shared.opts.timeout;
        let deadline = Instant::now() + timeout;
        // Held until this exchange returns, answer or not.
        let _permit = super::admit(&self.permits, deadline).await?;
        let caller_id = [query[0], query[1]];
        // The length prefix, then the padded query written after it (one buffer, one copy).
        let mut frame =
            Vec::with_capacity(2 + padded_len_bound(query.len(), self.shared.opts.pad_block));
        frame.extend_from_slice(&[0, 0]);
        pad_query_into(query, self.shared.opts.pad_block, &mut frame);
        let Ok(len) = u16::try_from(frame.len() - 2) else {
            return Err(UpstreamError::BadQuery(BadQuery::Length(frame.len() - 2)));
        };
        frame[..2].copy_from_slice(&len.to_be_bytes());

        let (reply, answer) = oneshot::channel();
        let job = Job {
            frame,
            reply,
            retried: false,
        };
        let stopped = || UpstreamError::Lost(Lost::Stopped);
        // On an open connection the query is written here and now; otherwise the driver opens one.
        let driver = self.driver();
        if let Some(job) = self.shared.try_send(job) {
            driver.send(Command::Query(job)).map_err(|_| stopped())?;
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(UpstreamError::Timeout(timeout)),
            Ok(Err(_)) => Err(stopped()),
            Ok(Ok(result)) => {
                let mut response = result?;
                response[..2].copy_from_slice(&caller_id);
                Ok(response)
            }
        }
    }
}

impl Transport for DotTransport {
    fn exchange<'a>(&'a self, query: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.exchange_inner(query))
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn reset(&self) {
        DotTransport::reset(self);
    }

    fn stats(&self) -> Option<super::TransportStats> {
        Some(DotTransport::stats(self))
    }
}

/// The addresses to connect to: the bootstrap list, or the URL's own IP address.
pub(crate) fn bootstrap_addrs(
    url: &UpstreamUrl,
    host: &str,
    port: u16,
    addrs: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, UpstreamError> {
    if !addrs.is_empty() {
        return Ok(addrs);
    }
    match url.host_ip() {
        Some(ip) => Ok(vec![SocketAddr::new(ip, port)]),
        None => Err(UpstreamError::Config(BadConfig::NoBootstrap {
            url: url.clone(),
            host: host.to_string(),
        })),
    }
}

/// What the transport, its driver and its connection task share.
struct Shared {
    /// The open connection, if any. A std mutex: held for a non-blocking read or write and the
    /// table update around it, never across an `.await`. No future is polled or dropped under it:
    /// answers and failures go to their waiters once it is released (a waiter's wake-up may
    /// spawn or drop a whole query, see `server::inline`).
    live: Mutex<Option<Live>>,
    url: String,
    addrs: Vec<SocketAddr>,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    opts: DotOptions,
    stats: Counters,
    /// For the connection failures logged at info, which queries to a broken server repeat.
    log_limit: LogLimiter,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, Option<Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `job` on the open connection, or gives it back if there is none (or the one there
    /// is has failed): then the driver takes it. Inside a [`batch::Batch`] the write waits for
    /// the batch's end, and carries every query the batch queued on this connection.
    fn try_send(self: &Arc<Self>, job: Job) -> Option<Job> {
        let refused = {
            let mut live = self.live();
            let Some(conn) = live.as_mut().filter(|c| c.failed.is_none()) else {
                return Some(job);
            };
            let refused = conn.queue(job, Instant::now()).err();
            if refused.is_none() && !conn.flush_deferred {
                let shared = self.clone();
                match batch::defer(move || shared.flush()) {
                    Ok(()) => conn.flush_deferred = true,
                    Err(_) => conn.write_now(),
                }
            }
            refused
        };
        if let Some(job) = refused {
            job.fail(UpstreamError::Overloaded);
        }
        None
    }

    /// Writes what queries of a batch queued on the connection.
    fn flush(&self) {
        if let Some(conn) = self.live().as_mut() {
            conn.flush_deferred = false;
            conn.write_now();
        }
    }

    /// One poll of connection `gen`'s task: finish writes, read and deliver answers. Ready with
    /// the error that broke the connection, or `None` once the connection is no longer current.
    fn poll_conn(
        &self,
        gen: u64,
        cx: &mut Context<'_>,
        reader: &mut FrameReader,
        answers: &mut Vec<Answer>,
    ) -> Poll<Option<UpstreamError>> {
        let outcome = {
            let mut live = self.live();
            let Some(conn) = live.as_mut().filter(|c| c.gen == gen) else {
                return Poll::Ready(None);
            };
            if !conn.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                conn.task = Some(cx.waker().clone());
            }
            conn.poll_io(cx, reader, answers)
        };
        // Outside the lock: a waiter's wake-up may run code that is none of this lock's business.
        for (reply, frame) in answers.drain(..) {
            let _ = reply.send(Ok(frame));
        }
        outcome
    }
}

/// What callers ask of the driver.
enum Command {
    Query(Job),
    Reset,
}

/// One query on its way: its length-prefixed frame (ID rewritten per connection) and who waits.
struct Job {
    frame: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>, UpstreamError>>,
    /// Already sent once on a connection that died.
    retried: bool,
}

impl Job {
    fn fail(self, error: UpstreamError) {
        // The caller may have timed out and gone; nothing to do then.
        let _ = self.reply.send(Err(error));
    }
}

/// The queries written on a connection and waiting, by the ID each went out with.
type IdMap = HashMap<u16, Pending, BuildHasherDefault<IdHasher>>;

/// Hashes [`IdMap`]'s keys, IDs drawn from the CSPRNG ([`free_id`]): one multiplication spreads
/// an ID over the 64 bits the table reads, where SipHash's defence against chosen keys buys
/// nothing for keys no one else chooses (a server's answer only looks one up).
#[derive(Default)]
struct IdHasher(u64);

/// 2^64 divided by the golden ratio (Fibonacci hashing): odd, with its bits well mixed.
const ID_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(ID_MIX);
        }
    }

    fn write_u16(&mut self, id: u16) {
        self.0 = (self.0 ^ u64::from(id)).wrapping_mul(ID_MIX);
    }
}

/// A job written on the connection, waiting for its answer.
struct Pending {
    job: Job,
    sent_at: Instant,
}

/// An answer read, for its waiter.
type Answer = (oneshot::Sender<Result<Vec<u8>, UpstreamError>>, Vec<u8>);

/// What a connection task reports to the driver, tagged with its connection's generation so a
/// report from a connection already dropped is ignored.
struct Failed {
    gen: u64,
    error: UpstreamError,
}

/// The open connection: the stream, what waits to be written, and who waits for an answer.
struct Live {
    gen: u64,
    stream: TlsStream<TcpStream>,
    /// Frames not yet taken by TLS: `out[out_pos..]`, in the order they were queued.
    out: Vec<u8>,
    out_pos: usize,
    /// TLS may hold records the socket has not taken yet.
    unflushed: bool,
    pending: IdMap,
    /// Since when a query has been waiting with nothing read (None: nothing waits).
    unanswered_since: Option<Instant>,
    last_used: Instant,
    /// The connection task's waker, once it has run: a write the socket cannot take now is
    /// registered with it, so that task finishes it. Until then queued frames wait for its
    /// first poll.
    task: Option<Waker>,
    /// A write error met by an exchange, for the connection task to report.
    failed: Option<UpstreamError>,
    /// A batch's end will write what is queued ([`crate::batch`]).
    flush_deferred: bool,
}

impl Live {
    fn new(gen: u64, stream: TlsStream<TcpStream>, now: Instant) -> Self {
        Live {
            gen,
            stream,
            out: Vec::with_capacity(WRITE_BATCH),
            out_pos: 0,
            unflushed: false,
            pending: IdMap::default(),
            unanswered_since: None,
            last_used: now,
            task: None,
            failed: None,
            flush_deferred: false,
        }
    }

    /// Queues `job` under an ID free on this connection (written by [`Live::write_now`] or the
    /// connection task). Gives the job back if every ID is taken.
    fn queue(&mut self, mut job: Job, now: Instant) -> Result<(), Job> {
        let Some(id) = free_id(&self.pending) else {
            return Err(job);
        };
        job.frame[2..4].copy_from_slice(&id.to_be_bytes());
        self.out.extend_from_slice(&job.frame);
        self.pending.insert(id, Pending { job, sent_at: now });
        self.unanswered_since.get_or_insert(now);
        self.last_used = now;
        Ok(())
    }

    /// Writes what is queued, as far as the socket takes it now. A write error marks the
    /// connection failed: its task reports it, and the queries wait in the table to be sent
    /// again with the others.
    fn write_now(&mut self) {
        if self.failed.is_some() {
            return;
        }
        if let Poll::Ready(Err(e)) = self.write_out() {
            self.failed = Some(UpstreamError::stream_io(e));
            if let Some(task) = &self.task {
                task.wake_by_ref();
            }
        }
    }

    /// Hands queued frames to TLS, and TLS's records to the socket, as far as the socket takes
    /// them now. Pending: the rest waits for the connection task, which the socket wakes.
    fn write_out(&mut self) -> Poll<io::Result<()>> {
        let Some(waker) = &self.task else {
            return Poll::Pending;
        };
        let mut cx = Context::from_waker(waker);
        while self.out_pos < self.out.len() {
            match Pin::new(&mut self.stream).poll_write(&mut cx, &self.out[self.out_pos..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out_pos += n;
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.out.clear();
        self.out_pos = 0;
        if self.out.capacity() > 4 * WRITE_BATCH {
            self.out.shrink_to(WRITE_BATCH);
        }
        if self.unflushed {
            match Pin::new(&mut self.stream).poll_flush(&mut cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                other => return other,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The connection task's work: report a failure, finish writes, read and match answers.
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut FrameReader,
        answers: &mut Vec<Answer>,
    ) -> Poll<Option<UpstreamError>> {
        if let Some(error) = self.failed.take() {
            return Poll::Ready(Some(error));
        }
        if let Poll::Ready(Err(e)) = self.write_out() {
            return Poll::Ready(Some(UpstreamError::stream_io(e)));
        }
        for _ in 0..READS_PER_POLL {
            match poll_fill(reader, &mut self.stream, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Some(error)),
                Poll::Ready(Ok(())) => {}
            }
            let now = Instant::now();
            while let Some(frame) = reader.next_frame() {
                if let Err(error) = self.answer(frame, now, answers) {
                    return Poll::Ready(Some(error));
                }
            }
        }
        // More to read, but other tasks get their turn first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Matches one frame read to its waiter.
    fn answer(
        &mut self,
        frame: &[u8],
        now: Instant,
        answers: &mut Vec<Answer>,
    ) -> Result<(), UpstreamError> {
        // A frame that is not a DNS response means the stream is out of step: drop it.
        if frame.len() < HEADER_LEN || frame[2] & 0x80 == 0 {
            return Err(UpstreamError::BadAnswer(BadAnswer::Malformed {
                via: Via::Dot,
                len: frame.len(),
            }));
        }
        let id = u16::from_be_bytes([frame[0], frame[1]]);
        match self.pending.remove(&id) {
            Some(p) => answers.push((p.job.reply, frame.to_vec())),
            None => tracing::debug!(id, "DoT answer to no waiting query"),
        }
        self.last_used = now;
        self.unanswered_since = if self.pending.is_empty() {
            None
        } else {
            Some(now)
        };
        Ok(())
    }
}

/// Reads what the stream has into `reader`: Ready(Ok) when something was read.
fn poll_fill(
    reader: &mut FrameReader,
    stream: &mut TlsStream<TcpStream>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), UpstreamError>> {
    let mut read = ReadBuf::new(reader.space());
    match Pin::new(stream).poll_read(cx, &mut read) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Err(e)) => Poll::Ready(Err(UpstreamError::stream_io(e))),
        Poll::Ready(Ok(())) => match read.filled().len() {
            0 => Poll::Ready(Err(UpstreamError::Lost(Lost::ServerClosed))),
            n => {
                reader.filled(n);
                Poll::Ready(Ok(()))
            }
        },
    }
}

/// The connection's task: reads answers and finishes writes until the connection breaks (then
/// it tells the driver) or the driver drops it.
async fn run_conn(shared: Arc<Shared>, gen: u64, failures: mpsc::Sender<Failed>) {
    let mut reader = FrameReader::default();
    let mut answers = Vec::new();
    let outcome =
        std::future::poll_fn(|cx| shared.poll_conn(gen, cx, &mut reader, &mut answers)).await;
    if let Some(error) = outcome {
        let _ = failures.send(Failed { gen, error }).await;
    }
}

/// Closes a connection politely: what is queued is written, then a TLS close_notify.
fn close_gracefully(mut conn: Live) {
    tokio::spawn(async move {
        let closing = async {
            conn.stream.write_all(&conn.out[conn.out_pos..]).await?;
            conn.stream.shutdown().await
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
    });
}

/// The driver's handle on the open connection's task.
struct Open {
    gen: u64,
    task: JoinHandle<()>,
}

type ConnectFuture = std::pin::Pin<Box<dyn Future<Output = ConnectResult> + Send>>;
type ConnectResult = Result<TlsStream<TcpStream>, UpstreamError>;

struct Driver {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedReceiver<Command>,
    failures_tx: mpsc::Sender<Failed>,
    failures: mpsc::Receiver<Failed>,
    open: Option<Open>,
    connecting: Option<ConnectFuture>,
    /// Jobs waiting for a connection to open.
    waiting: VecDeque<Job>,
    next_gen: u64,
    /// Consecutive failed connection attempts, and the error of the last one.
    failed_attempts: u32,
    last_error: Option<UpstreamError>,
    retry_at: Option<Instant>,
    last_sweep: Instant,
}

impl Driver {
    fn new(shared: Arc<Shared>, jobs: mpsc::UnboundedReceiver<Command>) -> Self {
        let (failures_tx, failures) = mpsc::channel(EVENT_QUEUE);
        Driver {
            shared,
            jobs,
            failures_tx,
            failures,
            open: None,
            connecting: None,
            waiting: VecDeque::new(),
            next_gen: 0,
            failed_attempts: 0,
            last_error: None,
            retry_at: None,
            last_sweep: Instant::now(),
        }
    }

    async fn run(mut self) {
        tracing::debug!(upstream = %self.shared.url, "DoT driver started");
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                Some(Failed { gen, error }) = self.failures.recv() => {
                    if self.open.as_ref().is_some_and(|o| o.gen == gen) {
                        self.drop_conn(error);
                    }
                }
                result = poll_connecting(&mut self.connecting) => self.on_connected(result),
                command = self.jobs.recv() => match command {
                    Some(Command::Query(job)) => self.submit(job),
                    Some(Command::Reset) => self.reset(),
                    None => break,
                },
                _ = sleep_until(deadline) => self.on_timer(),
            }
        }
        self.close_idle();
        tracing::debug!(upstream = %self.shared.url, "DoT driver stopped");
    }

    /// When the timers next need a look: stall check, sweep of abandoned queries, idle close.
    /// Exchanges write without telling the driver, so while a connection is open it looks at
    /// least every half `timeout`.
    fn next_deadline(&self) -> Option<Instant> {
        self.open.as_ref()?;
        let opts = &self.shared.opts;
        let live = self.shared.live();
        let conn = live.as_ref()?;
        let mut deadline = conn.unanswered_since.map(|t| t + opts.timeout);
        let other = if conn.pending.is_empty() {
            conn.last_used + opts.idle_timeout
        } else {
            self.last_sweep + opts.timeout
        };
        deadline = Some(deadline.map_or(other, |d| d.min(other)));
        deadline.map(|d| d.min(Instant::now() + opts.timeout / 2))
    }

    fn reset(&mut self) {
        tracing::info!(upstream = %self.shared.url, "DoT transport reset");
        self.failed_attempts = 0;
        self.retry_at = None;
        self.last_error = None;
        self.drop_conn(UpstreamError::Lost(Lost::Reset));
    }

    fn submit(&mut self, job: Job) {
        if job.reply.is_closed() {
            return; // the caller gave up while the job was queued
        }
        self.send(job);
    }

    /// Writes a job on the open connection, or queues it until one is open.
    fn send(&mut self, job: Job) {
        if self.open.is_none() {
            self.waiting.push_back(job);
            self.ensure_connecting();
            return;
        }
        // A connection that failed is dropped when its task's report arrives; the job waits
        // for the fresh one.
        if let Some(job) = self.shared.try_send(job) {
            self.waiting.push_back(job);
        }
    }

    /// Starts a connection attempt unless one runs or the backoff forbids it.
    fn ensure_connecting(&mut self) {
        if self.connecting.is_some() || self.waiting.is_empty() {
            return;
        }
        if let (Some(at), Some(error)) = (self.retry_at, &self.last_error) {
            if Instant::now() < at {
                let error = error.clone();
                for job in self.waiting.drain(..) {
                    job.fail(error.clone());
                }
                return;
            }
        }
        let shared = self.shared.clone();
        self.connecting = Some(Box::pin(async move {
            tls::connect(
                &shared.addrs,
                &shared.connector,
                &shared.server_name,
                shared.opts.connect_timeout,
            )
            .await
        }));
    }

    fn on_connected(&mut self, result: ConnectResult) {
        self.connecting = None;
        let stream = match result {
            Ok(stream) => stream,
            Err(error) => {
                self.failed_attempts = self.failed_attempts.saturating_add(1);
                Counters::bump(&self.shared.stats.connect_failures);
                let wait = tls::backoff(self.failed_attempts);
                log_limited!(limit: &self.shared.log_limit, tracing::Level::INFO,
                    upstream = %self.shared.url, %error, failures = self.failed_attempts,
                    backoff_ms = wait.as_millis() as u64, "DoT connection failed");
                self.retry_at = Some(Instant::now() + wait);
                self.last_error = Some(error.clone());
                for job in self.waiting.drain(..) {
                    job.fail(error.clone());
                }
                return;
            }
        };
        self.failed_attempts = 0;
        self.retry_at = None;
        self.last_error = None;
        self.shared.stats.handshake(&stream);
        self.next_gen += 1;
        let gen = self.next_gen;
        tracing::debug!(upstream = %self.shared.url, gen, "DoT connection open");
        let now = Instant::now();
        let mut conn = Live::new(gen, stream, now);
        // Queued only: the connection task writes them on its first poll.
        let mut refused = Vec::new();
        for job in self.waiting.drain(..) {
            if !job.reply.is_closed() {
                refused.extend(conn.queue(job, now).err());
            }
        }
        *self.shared.live() = Some(conn);
        self.open = Some(Open {
            gen,
            task: tokio::spawn(run_conn(self.shared.clone(), gen, self.failures_tx.clone())),
        });
        self.last_sweep = now;
        for job in refused {
            job.fail(UpstreamError::Overloaded);
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        let timeout = self.shared.opts.timeout;
        let idle_timeout = self.shared.opts.idle_timeout;
        let (stalled, idle) = {
            let mut live = self.shared.live();
            let Some(conn) = live.as_mut() else {
                return;
            };
            if now >= self.last_sweep + timeout {
                // Forget queries whose callers have given up: late answers to them are dropped.
                self.last_sweep = now;
                conn.pending
                    .retain(|_, p| !(p.job.reply.is_closed() && p.sent_at + timeout <= now));
                if conn.pending.is_empty() {
                    conn.unanswered_since = None;
                }
            }
            let stalled = conn.unanswered_since.is_some_and(|t| t + timeout <= now);
            let idle = conn.pending.is_empty() && conn.last_used + idle_timeout <= now;
            (stalled, idle)
        };
        if stalled {
            log_limited!(limit: &self.shared.log_limit, tracing::Level::INFO,
                upstream = %self.shared.url, timeout_ms = timeout.as_millis() as u64,
                "DoT connection stalled");
            self.drop_conn(UpstreamError::Timeout(timeout));
        } else if idle {
            tracing::debug!(upstream = %self.shared.url, "DoT connection idle, closing");
            self.close_idle();
        }
    }

    /// Takes the open connection away from exchanges and its task.
    fn take_conn(&mut self) -> Option<Live> {
        let open = self.open.take()?;
        open.task.abort();
        let mut live = self.shared.live();
        live.take_if(|c| c.gen == open.gen)
    }

    /// Closes the connection with a close_notify (nothing waits on it, or the transport is gone).
    fn close_idle(&mut self) {
        if let Some(conn) = self.take_conn() {
            close_gracefully(conn);
        }
    }

    /// Drops the connection after a failure; its waiting queries go once more on a fresh one.
    fn drop_conn(&mut self, error: UpstreamError) {
        let Some(conn) = self.take_conn() else {
            return;
        };
        let gen = conn.gen;
        // Dropping the stream closes the socket at once.
        let pending = conn.pending;
        if pending.is_empty() {
            tracing::debug!(upstream = %self.shared.url, gen, %error, "DoT connection closed");
            return;
        }
        Counters::bump(&self.shared.stats.dropped);
        log_limited!(limit: &self.shared.log_limit, tracing::Level::INFO,
            upstream = %self.shared.url, gen, %error, waiting = pending.len(),
            "DoT connection lost");
        let mut pending: Vec<Pending> = pending.into_values().collect();
        pending.sort_by_key(|p| p.sent_at);
        for Pending { mut job, .. } in pending {
            if job.reply.is_closed() {
                continue;
            }
            if job.retried {
                job.fail(error.clone());
            } else {
                job.retried = true;
                Counters::bump(&self.shared.stats.retried);
                self.waiting.push_back(job);
            }
        }
        self.ensure_connecting();
    }
}

/// A random ID not in use on the connection, or `None` if the table is full.
fn free_id(pending: &IdMap) -> Option<u16> {
    if pending.len() >= MAX_INFLIGHT {
        return None;
    }
    // With at most 8192 of 65536 IDs taken, a random probe hits a free one 7 times in 8.
    (0..64)
        .map(|_| rand::random::<u16>())
        .find(|id| !pending.contains_key(id))
        .or_else(|| (0..=u16::MAX).find(|id| !pending.contains_key(id)))
}

async fn poll_connecting(connecting: &mut Option<ConnectFuture>) -> ConnectResult {
    match connecting {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure
mod tests {
    use super::*;

    #[test]
    fn free_ids_are_unique_even_when_crowded() {
        let mut pending = IdMap::default();
        let job = || Job {
            frame: Vec::new(),
            reply: oneshot::channel().0,
            retried: false,
        };
        for _ in 0..MAX_INFLIGHT {
            let id = free_id(&pending).unwrap();
            assert!(!pending.contains_key(&id));
            pending.insert(
                id,
                Pending {
                    job: job(),
                    sent_at: Instant::now(),
                },
            );
        }
        assert_eq!(free_id(&pending), None);
    }

    #[test]
    fn constructor_checks_url_and_addresses() {
        let tls = TlsOptions::new("dns.test");
        let opts = DotOptions::default();
        let https: UpstreamUrl = "https://dns.test/dns-query".parse().unwrap();
        assert!(matches!(
            DotTransport::new(&https, vec![], tls.clone(), opts.clone()),
            Err(UpstreamError::Config(BadConfig::Scheme {
                want: "tls://",
                ..
            }))
        ));
        let named: UpstreamUrl = "tls://dns.test".parse().unwrap();
        assert!(matches!(
            DotTransport::new(&named, vec![], tls.clone(), opts.clone()),
            Err(UpstreamError::Config(BadConfig::NoBootstrap { .. }))
        ));
        let addr: SocketAddr = "127.0.0.1:853".parse().unwrap();
        let t = DotTransport::new(&named, vec![addr], tls.clone(), opts.clone()).unwrap();
        assert_eq!(t.url(), "tls://dns.test:853");
        assert_eq!(t.shared.addrs, vec![addr]);
        let ip: UpstreamUrl = "tls://127.0.0.1:8853".parse().unwrap();
        let t = DotTransport::new(&ip, vec![], TlsOptions::new("127.0.0.1"), opts).unwrap();
        assert_eq!(t.shared.addrs, vec!["127.0.0.1:8853".parse().unwrap()]);
        assert_eq!(t.stats(), TransportStats::default());
    }
}
