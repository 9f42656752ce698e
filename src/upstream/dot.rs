//! DNS-over-TLS (RFC 7858) with connection reuse and pipelining (RFC 7766).
//!
//! ```text
//!   exchange() --Job--> driver task ----frames----> writer task --TLS--> server
//!       ^                  |  ^                                            |
//!       +----oneshot-------+  +---------Event (frame | failure)--- reader task
//! ```
//!
//! One driver task per transport owns everything mutable: the single connection (opened lazily on
//! the first query), the table of queries waiting for an answer, reconnects and timers. Callers
//! only send it a job and wait on a oneshot, so there is no lock at all.
//!
//! - **Pipelining** (RFC 7766 section 6.2.1.1): every query is written as soon as it arrives; the
//!   driver gives it an ID that is free on the connection and restores the caller's ID on the
//!   answer, so answers may come back in any order.
//! - **Bounds**: at most `max_inflight` queries per transport on the wire; more wait in line for a
//!   slot ([`super::admit`]) and fail with [`UpstreamError::Overloaded`] if none frees up in time.
//!   Each exchange, waiting included, is bounded by `timeout`, connecting by `connect_timeout`.
//! - **Dead connections** (a laptop that slept, a Wi-Fi switch): a read or write error, a server
//!   close or a malformed frame drops the connection and sends its waiting queries *once more*, at
//!   once, on a fresh connection. A connection that has answered nothing for `timeout` while
//!   queries wait is stalled and dropped the same way. [`DotTransport::reset`] does it on demand
//!   (after a network change).
//! - **Idle timeout** (RFC 7766 section 6.2.3): a connection with nothing to do for `idle_timeout`
//!   is closed with a TLS close_notify.
//! - **Backoff**: after a failed connection attempt, queries fail at once with the last error until
//!   [`super::tls::backoff`] has passed, so a pool can fail over instead of waiting.
//! - **Padding** (RFC 8467): queries are padded to blocks of 128 octets before they are written.
//!
//! Limitations: one connection per upstream (a second one would only help past the server's
//! pipelining limit); no TCP Fast Open or 0-RTT early data; answers are matched by ID only — the
//! question is checked by the caller's upstream layer.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::padding::{pad_query, QUERY_BLOCK};
use super::tls::{self, Counters, TlsOptions, TransportStats};
use super::{BadAnswer, BadConfig, BadQuery, Lost, Transport, UpstreamError, UpstreamUrl, Via};
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

/// Most octets the writer gathers into one write (several pipelined queries, one TLS record).
const WRITE_BATCH: usize = 16 * 1024;
/// How many unread frames the reader may queue for the driver before it waits (backpressure).
const EVENT_QUEUE: usize = 256;
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
        let padded = pad_query(query, self.shared.opts.pad_block);
        let mut frame = Vec::with_capacity(2 + padded.len());
        frame.extend_from_slice(&(padded.len() as u16).to_be_bytes());
        frame.extend_from_slice(&padded);

        let (reply, answer) = oneshot::channel();
        let job = Job {
            frame,
            reply,
            retried: false,
        };
        let stopped = || UpstreamError::Lost(Lost::Stopped);
        self.driver()
            .send(Command::Query(job))
            .map_err(|_| stopped())?;
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

/// What the driver and its connection tasks share; read-only apart from the counters.
struct Shared {
    url: String,
    addrs: Vec<SocketAddr>,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    opts: DotOptions,
    stats: Counters,
    /// For the connection failures logged at info, which queries to a broken server repeat.
    log_limit: LogLimiter,
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

/// A job written on the connection, waiting for its answer.
struct Pending {
    job: Job,
    sent_at: Instant,
}

/// What the reader and writer tasks report, tagged with their connection's generation so reports
/// from a connection already dropped are ignored.
enum Event {
    Frame { gen: u64, frame: Vec<u8> },
    Failed { gen: u64, error: UpstreamError },
}

/// The open connection, as the driver sees it.
struct Conn {
    gen: u64,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    pending: HashMap<u16, Pending>,
    /// Since when a query has been waiting with nothing read (None: nothing waits).
    unanswered_since: Option<Instant>,
    last_used: Instant,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Conn {
    /// Closes the connection: politely (close_notify once queued frames are written) or at once.
    fn close(self, graceful: bool) -> HashMap<u16, Pending> {
        self.reader.abort();
        if !graceful {
            self.writer.abort();
        }
        // Dropping `frames` ends the writer's loop, which then shuts the stream down.
        self.pending
    }
}

type ConnectFuture = std::pin::Pin<Box<dyn Future<Output = ConnectResult> + Send>>;
type ConnectResult = Result<TlsStream<TcpStream>, UpstreamError>;

struct Driver {
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedReceiver<Command>,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    conn: Option<Conn>,
    connecting: Option<ConnectFuture>,
    /// Jobs waiting for a connection to open.
    waiting: VecDeque<Job>,
    next_gen: u64,
    /// Consecutive failed connection attempts, and the error of the last one.
    failures: u32,
    last_error: Option<UpstreamError>,
    retry_at: Option<Instant>,
    last_sweep: Instant,
}

impl Driver {
    fn new(shared: Arc<Shared>, jobs: mpsc::UnboundedReceiver<Command>) -> Self {
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        Driver {
            shared,
            jobs,
            events_tx,
            events,
            conn: None,
            connecting: None,
            waiting: VecDeque::new(),
            next_gen: 0,
            failures: 0,
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
                Some(event) = self.events.recv() => self.on_event(event),
                result = poll_connecting(&mut self.connecting) => self.on_connected(result),
                command = self.jobs.recv() => match command {
                    Some(Command::Query(job)) => self.submit(job),
                    Some(Command::Reset) => self.reset(),
                    None => break,
                },
                _ = sleep_until(deadline) => self.on_timer(),
            }
        }
        if let Some(conn) = self.conn.take() {
            conn.close(true);
        }
        tracing::debug!(upstream = %self.shared.url, "DoT driver stopped");
    }

    /// When the timers next need a look: stall check, sweep of abandoned queries, idle close.
    fn next_deadline(&self) -> Option<Instant> {
        let conn = self.conn.as_ref()?;
        let opts = &self.shared.opts;
        let mut deadline = conn.unanswered_since.map(|t| t + opts.timeout);
        let other = if conn.pending.is_empty() {
            conn.last_used + opts.idle_timeout
        } else {
            self.last_sweep + opts.timeout
        };
        deadline = Some(deadline.map_or(other, |d| d.min(other)));
        deadline
    }

    fn reset(&mut self) {
        tracing::info!(upstream = %self.shared.url, "DoT transport reset");
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
        self.drop_conn(UpstreamError::Lost(Lost::Reset));
    }

    fn submit(&mut self, job: Job) {
        if job.reply.is_closed() {
            return; // the caller gave up while the job was queued
        }
        if self.conn.is_some() {
            self.send(job);
        } else {
            self.waiting.push_back(job);
            self.ensure_connecting();
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
                self.failures = self.failures.saturating_add(1);
                Counters::bump(&self.shared.stats.connect_failures);
                let wait = tls::backoff(self.failures);
                log_limited!(limit: &self.shared.log_limit, tracing::Level::INFO,
                    upstream = %self.shared.url, %error, failures = self.failures,
                    backoff = ?wait, "DoT connection failed");
                self.retry_at = Some(Instant::now() + wait);
                self.last_error = Some(error.clone());
                for job in self.waiting.drain(..) {
                    job.fail(error.clone());
                }
                return;
            }
        };
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
        self.shared.stats.handshake(&stream);
        self.next_gen += 1;
        let gen = self.next_gen;
        tracing::debug!(upstream = %self.shared.url, gen, "DoT connection open");
        let (read_half, write_half) = tokio::io::split(stream);
        let (frames, frames_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        self.conn = Some(Conn {
            gen,
            frames,
            pending: HashMap::new(),
            unanswered_since: None,
            last_used: now,
            reader: tokio::spawn(read_loop(read_half, gen, self.events_tx.clone())),
            writer: tokio::spawn(write_loop(
                write_half,
                gen,
                frames_rx,
                self.events_tx.clone(),
            )),
        });
        self.last_sweep = now;
        while let Some(job) = self.waiting.pop_front() {
            self.send(job);
        }
    }

    /// Writes a job on the open connection under a free ID.
    fn send(&mut self, mut job: Job) {
        let Some(conn) = self.conn.as_mut() else {
            self.waiting.push_back(job);
            self.ensure_connecting();
            return;
        };
        if job.reply.is_closed() {
            return;
        }
        let Some(id) = free_id(&conn.pending) else {
            job.fail(UpstreamError::Overloaded);
            return;
        };
        job.frame[2..4].copy_from_slice(&id.to_be_bytes());
        let now = Instant::now();
        let sent = conn.frames.send(job.frame.clone()).is_ok();
        conn.pending.insert(id, Pending { job, sent_at: now });
        conn.unanswered_since.get_or_insert(now);
        conn.last_used = now;
        if !sent {
            self.drop_conn(UpstreamError::Lost(Lost::Stopped));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Frame { gen, frame } => self.on_frame(gen, frame),
            Event::Failed { gen, error } => {
                if self.conn.as_ref().is_some_and(|c| c.gen == gen) {
                    self.drop_conn(error);
                }
            }
        }
    }

    fn on_frame(&mut self, gen: u64, frame: Vec<u8>) {
        if !self.conn.as_ref().is_some_and(|c| c.gen == gen) {
            return;
        }
        // A frame that is not a DNS response means the stream is out of step: drop it.
        if frame.len() < HEADER_LEN || frame[2] & 0x80 == 0 {
            let error = UpstreamError::BadAnswer(BadAnswer::Malformed {
                via: Via::Dot,
                len: frame.len(),
            });
            self.drop_conn(error);
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let now = Instant::now();
        let id = u16::from_be_bytes([frame[0], frame[1]]);
        match conn.pending.remove(&id) {
            Some(p) => {
                let _ = p.job.reply.send(Ok(frame));
            }
            None => {
                tracing::debug!(upstream = %self.shared.url, id, "DoT answer to no waiting query")
            }
        }
        conn.last_used = now;
        conn.unanswered_since = if conn.pending.is_empty() {
            None
        } else {
            Some(now)
        };
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        let timeout = self.shared.opts.timeout;
        let idle_timeout = self.shared.opts.idle_timeout;
        let Some(conn) = self.conn.as_mut() else {
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
        if stalled {
            log_limited!(limit: &self.shared.log_limit, tracing::Level::INFO,
                upstream = %self.shared.url, ?timeout, "DoT connection stalled");
            self.drop_conn(UpstreamError::Timeout(timeout));
        } else if idle {
            if let Some(conn) = self.conn.take() {
                tracing::debug!(upstream = %self.shared.url, gen = conn.gen, "DoT connection idle, closing");
                conn.close(true);
            }
        }
    }

    /// Drops the connection after a failure; its waiting queries go once more on a fresh one.
    fn drop_conn(&mut self, error: UpstreamError) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let gen = conn.gen;
        let pending = conn.close(false);
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
fn free_id(pending: &HashMap<u16, Pending>) -> Option<u16> {
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

/// Reads length-prefixed frames (RFC 1035 section 4.2.2) and hands them to the driver.
async fn read_loop(
    mut stream: ReadHalf<TlsStream<TcpStream>>,
    gen: u64,
    events: mpsc::Sender<Event>,
) {
    let error = loop {
        let mut len = [0u8; 2];
        if let Err(e) = stream.read_exact(&mut len).await {
            break UpstreamError::stream_io(e);
        }
        // At most 65535 octets: the length prefix bounds the allocation.
        let mut frame = vec![0u8; u16::from_be_bytes(len) as usize];
        if let Err(e) = stream.read_exact(&mut frame).await {
            break UpstreamError::stream_io(e);
        }
        if events.send(Event::Frame { gen, frame }).await.is_err() {
            return;
        }
    };
    let _ = events.send(Event::Failed { gen, error }).await;
}

/// Writes frames, gathering whatever is queued into one write.
async fn write_loop(
    mut stream: WriteHalf<TlsStream<TcpStream>>,
    gen: u64,
    mut frames: mpsc::UnboundedReceiver<Vec<u8>>,
    events: mpsc::Sender<Event>,
) {
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    while let Some(frame) = frames.recv().await {
        buf.clear();
        buf.extend_from_slice(&frame);
        while buf.len() < WRITE_BATCH {
            match frames.try_recv() {
                Ok(frame) => buf.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        let written = async {
            stream.write_all(&buf).await?;
            stream.flush().await
        };
        if let Err(e) = written.await {
            let _ = events
                .send(Event::Failed {
                    gen,
                    error: UpstreamError::stream_io(e),
                })
                .await;
            return;
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, stream.shutdown()).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure
mod tests {
    use super::*;

    #[test]
    fn free_ids_are_unique_even_when_crowded() {
        let mut pending = HashMap::new();
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
