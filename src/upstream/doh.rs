//! DNS-over-HTTPS (RFC 8484) over one multiplexed HTTP/2 connection per upstream.
//!
//! ```text
//!   exchange() --clone of SendRequest--> h2 stream ----\      written by the exchange's own poll
//!   exchange() --clone of SendRequest--> h2 stream -----+--> one TLS connection (ALPN h2) --> server
//!   exchange() --clone of SendRequest--> h2 stream ----/      read by the connection's task
//! ```
//!
//! The client is the `h2` crate's, used directly: an exchange opens its stream and waits on the
//! stream's own response future, which the connection's task completes as it reads the answer.
//! (hyper's client on top of it adds a dispatch queue and spawns a task per request to carry the
//! response back, a task hop per query for features a DNS client does not use.) The exchange
//! writes its request's frames itself, in the poll that submits them (or, for queries one UDP
//! receive batch starts, once at the batch's end), as a DoT query is written: the h2 connection
//! is polled by whichever thread has work for it ([`super::h2drive`]), so sending a query wakes
//! no task, and a miss costs one wake-up of the runtime (the answer arriving).
//!
//! - **One connection** carries every concurrent query as its own HTTP/2 stream. It is opened
//!   lazily by the first query; queries that arrive meanwhile wait for that same handshake (a
//!   `OnceCell` per connection generation), so a burst costs one handshake, not one each.
//! - **Requests**: `POST` with `application/dns-message` by default; `GET` with the query in
//!   base64url without padding as `?dns=` and the ID set to 0 (RFC 8484 section 4.1), so identical
//!   queries are identical URLs for HTTP caches. The caller's ID is restored on the answer.
//! - **Answers are checked**: status 200, media type `application/dns-message`, a body no larger
//!   than `max_response` (read through a length limit, never buffered past it), at least a
//!   header, and the ID we sent. Anything else is [`UpstreamError::Http`] or `BadAnswer`.
//! - **Dead connections**: a request that fails below HTTP (connection reset, closed, refused
//!   stream) is sent once more on a fresh connection at once. HTTP/2 PINGs while requests are open
//!   detect a silent peer; an exchange that times out on a connection that has answered nothing
//!   for the whole timeout drops that connection, so the next query does not wait on it too, and
//!   its other open requests are retried at once. [`DohTransport::reset`] does the same on demand
//!   (after a network change).
//! - **Bounds**: at most `max_inflight` requests per transport on the wire; more wait in line for
//!   a slot ([`super::admit`]) and fail with [`UpstreamError::Overloaded`] if none frees up in
//!   time. Each exchange, waiting included, is bounded by `timeout`, connecting by
//!   `connect_timeout`.
//! - **Idle**: the connection is closed after `idle_timeout` without requests. After a failed
//!   connection attempt, queries fail at once until [`super::tls::backoff`] has passed.
//! - **Padding** (RFC 8467): queries are padded to blocks of 128 octets.
//!
//! Limitations: HTTP/2 only (ALPN must select `h2`; no HTTP/1.1 fallback, no HTTP/3); the name
//! verified is `TlsOptions::server_name` (normally the URL's host); HTTP caching headers are
//! ignored (the DNS cache does that job).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, RecvStream};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use rustls::pki_types::ServerName;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::dot::bootstrap_addrs;
use super::h2drive::Driven;
use super::padding::{pad_query, QUERY_BLOCK};
use super::tls::{self, Counters, TlsOptions, TransportStats};
use super::{
    BadAnswer, BadConfig, BadQuery, HttpError, Lost, Transport, UpstreamError, UpstreamUrl, Via,
};
use crate::handler::BoxFuture;
use crate::logging::{log_limited, LogLimiter};
use crate::wire::HEADER_LEN;

/// The DoH media type (RFC 8484 section 6).
pub const DNS_MESSAGE: &str = "application/dns-message";
/// Default time one exchange may take, connecting included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default largest answer body accepted.
pub const DEFAULT_MAX_RESPONSE: usize = 65535;
/// Default time an unused connection is kept open.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on requests in flight on one upstream.
pub const DEFAULT_MAX_INFLIGHT: usize = 256;
/// The most requests one transport will ever have in flight.
pub const MAX_INFLIGHT: usize = 8192;
/// Padded query lengths whose `content-length` value is made once: 0 to 7 blocks (a query of up
/// to 896 octets with the default 128-octet blocks).
const PADDED_LENGTHS: usize = 8;

/// How queries are sent (RFC 8484 section 4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DohMethod {
    #[default]
    Post,
    Get,
}

/// Tunables of a DoH transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DohOptions {
    /// Time limit of one exchange, from the call to the answer, connecting included.
    pub timeout: Duration,
    pub method: DohMethod,
    /// Largest answer body accepted (at most 65535, a DNS message's limit).
    pub max_response: usize,
    /// Time limit of TCP connect plus TLS and HTTP/2 handshakes, per address.
    pub connect_timeout: Duration,
    /// An unused connection is closed after this long.
    pub idle_timeout: Duration,
    /// Cap on requests in flight on this upstream (clamped to 1..=[`MAX_INFLIGHT`]).
    pub max_inflight: usize,
    /// Pad queries to a multiple of this many octets (RFC 8467); 0 disables padding.
    pub pad_block: usize,
}

impl Default for DohOptions {
    fn default() -> Self {
        DohOptions {
            timeout: DEFAULT_TIMEOUT,
            method: DohMethod::Post,
            max_response: DEFAULT_MAX_RESPONSE,
            connect_timeout: DEFAULT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            pad_block: QUERY_BLOCK,
        }
    }
}

/// A DNS-over-HTTPS upstream: one lazily opened HTTP/2 connection shared by all queries.
pub struct DohTransport {
    url: String,
    /// `https://authority/path`, the request target of every query.
    uri: Uri,
    /// `content-length` values of padded queries, by length in padding blocks (0 to 7).
    content_lengths: Vec<HeaderValue>,
    shared: Arc<Shared>,
    /// The current connection generation. A std mutex: held only to read or swap the Arc, never
    /// across an `.await`.
    slot: Mutex<Arc<Slot>>,
    permits: Semaphore,
}

impl DohTransport {
    /// A transport for `url` (an `https://` URL) that connects to `addrs` (bootstrap addresses; if
    /// empty and the URL's host is an IP address, that address). ALPN is always `h2`.
    pub fn new(
        url: &UpstreamUrl,
        addrs: Vec<SocketAddr>,
        mut tls: TlsOptions,
        opts: DohOptions,
    ) -> Result<Self, UpstreamError> {
        let UpstreamUrl::Https { host, port, path } = url else {
            return Err(UpstreamError::Config(BadConfig::Scheme {
                url: url.clone(),
                want: "https://",
            }));
        };
        let addrs = bootstrap_addrs(url, host, *port, addrs)?;
        let authority = match (host.contains(':'), *port) {
            (true, 443) => format!("[{host}]"),
            (true, p) => format!("[{host}]:{p}"),
            (false, 443) => host.clone(),
            (false, p) => format!("{host}:{p}"),
        };
        let uri = format!("https://{authority}{path}");
        let uri = uri.parse::<Uri>().map_err(|e| {
            UpstreamError::Config(BadConfig::RequestUri {
                url: url.clone(),
                error: Arc::new(e),
            })
        })?;
        tls.alpn = vec![b"h2".to_vec()];
        let config = tls::client_config(&tls)?;
        let opts = DohOptions {
            max_response: opts.max_response.clamp(HEADER_LEN, u16::MAX as usize),
            max_inflight: opts.max_inflight.clamp(1, MAX_INFLIGHT),
            ..opts
        };
        let content_lengths = (0..PADDED_LENGTHS)
            .map(|blocks| HeaderValue::from(blocks * opts.pad_block))
            .collect();
        Ok(DohTransport {
            url: url.to_string(),
            uri,
            content_lengths,
            permits: Semaphore::new(opts.max_inflight),
            shared: Arc::new(Shared {
                url: url.to_string(),
                addrs,
                connector: TlsConnector::from(config),
                server_name: tls.server_name()?,
                opts,
                stats: Counters::default(),
                failures: AtomicUsize::new(0),
                next_gen: AtomicU64::new(0),
                log_limit: LogLimiter::default(),
            }),
            slot: Mutex::new(Arc::new(Slot::default())),
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
    /// changed (new addresses, resume from suspend). Requests open on the old connection are sent
    /// again on a fresh one.
    pub fn reset(&self) {
        tracing::info!(upstream = %self.url, "DoH transport reset");
        self.shared.failures.store(0, Ordering::Relaxed);
        // Lock held only for the swap, no .await.
        let old = std::mem::replace(
            &mut *self.slot.lock().unwrap_or_else(|e| e.into_inner()),
            Arc::new(Slot::default()),
        );
        if let Some(Ok(conn)) = old.cell.get() {
            conn.state.closed.cancel();
        }
    }

    async fn exchange_inner(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        if query.len() < HEADER_LEN || query.len() > u16::MAX as usize {
            return Err(UpstreamError::BadQuery(BadQuery::Length(query.len())));
        }
        // The timeout covers waiting for a slot and the exchange itself.
        let timeout = self.shared.opts.timeout;
        let started = Instant::now();
        let deadline = started + timeout;
        let _permit = super::admit(&self.permits, deadline).await?;
        let caller_id = [query[0], query[1]];
        let mut wire = pad_query(query, self.shared.opts.pad_block);
        if self.shared.opts.method == DohMethod::Get {
            wire[..2].copy_from_slice(&[0, 0]);
        }
        let sent_id = [wire[0], wire[1]];
        let wire = Bytes::from(wire);

        let mut used: Option<Conn> = None;
        let attempt = async {
            let mut retried = false;
            loop {
                let conn = self.connection().await?;
                used = Some(conn.clone());
                match self.send(&conn, &wire).await {
                    Ok(body) => return Ok(body),
                    Err(Failure::Answer(e)) => return Err(e),
                    Err(Failure::Connection(e)) => {
                        // New queries go to a fresh connection; streams still open on this one
                        // may finish (it closes when idle), in case only our stream was reset.
                        self.invalidate(&conn, false);
                        if retried {
                            return Err(e);
                        }
                        retried = true;
                        Counters::bump(&self.shared.stats.retried);
                        tracing::debug!(upstream = %self.url, error = %e, "DoH connection lost, retrying");
                    }
                }
            }
        };
        let body = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(result) => result?,
            Err(_) => {
                // Nothing answered on this connection for the whole exchange: it is likely dead.
                if let Some(conn) = used {
                    if !conn.state.answered_since(started) {
                        log_limited!(limit: &self.shared.log_limit, tracing::Level::INFO,
                            upstream = %self.url, timeout_ms = timeout.as_millis() as u64,
                            "DoH connection stalled");
                        self.invalidate(&conn, true);
                    }
                }
                return Err(UpstreamError::Timeout(timeout));
            }
        };
        if body.len() < HEADER_LEN {
            return Err(UpstreamError::BadAnswer(BadAnswer::Short {
                via: Via::Doh,
                len: body.len(),
            }));
        }
        if body[..2] != sent_id {
            return Err(UpstreamError::BadAnswer(BadAnswer::Id {
                got: u16::from_be_bytes([body[0], body[1]]),
                sent: u16::from_be_bytes(sent_id),
            }));
        }
        let mut body = body;
        body[..2].copy_from_slice(&caller_id);
        Ok(body)
    }

    /// The live connection, opening one (once, for all concurrent callers) if there is none.
    async fn connection(&self) -> Result<Conn, UpstreamError> {
        let slot = {
            // Lock held only for the swap below, no .await.
            let mut current = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            let stale = match current.cell.get() {
                None => false,
                Some(Ok(conn)) => conn.state.closed.is_cancelled(),
                Some(Err(failed)) => Instant::now() >= failed.retry_at,
            };
            if stale {
                *current = Arc::new(Slot::default());
            }
            current.clone()
        };
        let shared = &self.shared;
        // Boxed: opening a connection is a large future (TCP, TLS and HTTP/2 handshakes), and
        // inline it would make every exchange's future that large, connection open or not.
        match slot
            .cell
            .get_or_init(|| Box::pin(open(shared.clone())))
            .await
        {
            Ok(conn) => Ok(conn.clone()),
            Err(failed) => Err(failed.error.clone()),
        }
    }

    /// Forgets `conn` if it is still the current connection, so the next query opens another;
    /// with `close`, also tears it down at once (failing whatever is still open on it).
    fn invalidate(&self, conn: &Conn, close: bool) {
        {
            // Lock held only for the swap, no .await.
            let mut current = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(Ok(live)) = current.cell.get() {
                if live.state.gen == conn.state.gen {
                    *current = Arc::new(Slot::default());
                    Counters::bump(&self.shared.stats.dropped);
                }
            }
        }
        if close {
            conn.state.closed.cancel();
        }
    }

    /// One HTTP exchange on `conn`: the answer body, or why there is none.
    async fn send(&self, conn: &Conn, wire: &Bytes) -> Result<Vec<u8>, Failure> {
        let request = self.request(wire).map_err(Failure::Answer)?;
        let lost = |e| Failure::Connection(UpstreamError::Http(HttpError::Request(Arc::new(e))));
        conn.state.begin();
        let exchange = async {
            // Waits only while the server's limit of concurrent streams is reached.
            let mut sender = conn.sender.clone().ready().await.map_err(lost)?;
            let post = self.shared.opts.method == DohMethod::Post;
            // The frames are written by this poll (or at the end of its receive batch), not by
            // a wake-up of the connection's task (h2drive.rs).
            conn.driven.plan();
            let sent = sender
                .send_request(request, !post)
                .and_then(|(response, mut body)| {
                    if post {
                        body.send_data(wire.clone(), true)?;
                    }
                    Ok((response, body))
                });
            conn.driven.submit();
            let (response, body) = sent.map_err(lost)?;
            let response = response.await.map_err(lost)?;
            conn.state.answered();
            let answer = check_response(response, self.shared.opts.max_response).await;
            // The stream's last handle going tells h2 to look at the connection: done here, on
            // this thread, rather than by a wake-up of its task.
            conn.driven.plan();
            drop(body);
            conn.driven.drive();
            answer
        };
        let result = tokio::select! {
            result = exchange => result,
            _ = conn.state.closed.cancelled() => {
                Err(Failure::Connection(UpstreamError::Lost(Lost::Reset)))
            }
        };
        conn.state.end();
        result
    }

    /// The request's head; a POST's body (the query) is sent on its stream. Built in place (the
    /// builder moves the whole request at every header) with its header values shared, not made.
    fn request(&self, wire: &[u8]) -> Result<Request<()>, UpstreamError> {
        let dns_message = HeaderValue::from_static(DNS_MESSAGE);
        let mut request = Request::new(());
        match self.shared.opts.method {
            DohMethod::Post => {
                *request.method_mut() = Method::POST;
                *request.uri_mut() = self.uri.clone();
                let headers = request.headers_mut();
                headers.reserve(3);
                headers.insert(ACCEPT, dns_message.clone());
                headers.insert(CONTENT_TYPE, dns_message);
                headers.insert(CONTENT_LENGTH, self.content_length(wire.len()));
            }
            DohMethod::Get => {
                let dns = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(wire);
                let sep = if self.uri.query().is_some() { '&' } else { '?' };
                *request.uri_mut() =
                    format!("{}{sep}dns={dns}", self.uri).parse().map_err(|e| {
                        UpstreamError::Http(HttpError::BuildRequest(Arc::new(http::Error::from(e))))
                    })?;
                request.headers_mut().insert(ACCEPT, dns_message);
            }
        }
        Ok(request)
    }

    /// The `content-length` value for a body of `len` octets: one of those made up front for
    /// padded queries (a clone shares it), or a new one.
    fn content_length(&self, len: usize) -> HeaderValue {
        let block = self.shared.opts.pad_block;
        if block > 0 && len % block == 0 {
            if let Some(value) = self.content_lengths.get(len / block) {
                return value.clone();
            }
        }
        HeaderValue::from(len)
    }
}

impl Drop for DohTransport {
    fn drop(&mut self) {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Ok(conn)) = slot.cell.get() {
            conn.state.closed.cancel();
        }
    }
}

impl Transport for DohTransport {
    fn exchange<'a>(&'a self, query: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.exchange_inner(query))
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn reset(&self) {
        DohTransport::reset(self);
    }

    fn stats(&self) -> Option<super::TransportStats> {
        Some(DohTransport::stats(self))
    }
}

/// Why a request produced no answer: the connection failed (worth one retry on a fresh one), or
/// the server answered with something that is not a DNS answer (not worth it).
enum Failure {
    Connection(UpstreamError),
    Answer(UpstreamError),
}

/// Checks status, media type and size, and reads the body, never past `max` octets.
async fn check_response(
    response: http::Response<RecvStream>,
    max: usize,
) -> Result<Vec<u8>, Failure> {
    let http = |e| Failure::Answer(UpstreamError::Http(e));
    if response.status() != StatusCode::OK {
        return Err(http(HttpError::Status(response.status())));
    }
    let media_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case(DNS_MESSAGE)) {
        let media_type = media_type.map(str::to_ascii_lowercase);
        return Err(http(HttpError::ContentType(media_type)));
    }
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|&n| n > max as u64) {
        return Err(http(HttpError::DeclaredTooLarge { len, max }));
    }
    let mut body = response.into_body();
    let mut answer = Vec::with_capacity(declared.map_or(512, |n| n as usize));
    while let Some(chunk) = body.data().await {
        // The stream broke while the body was arriving: the connection's fault.
        let chunk = chunk
            .map_err(|e| Failure::Connection(UpstreamError::Http(HttpError::Body(Arc::new(e)))))?;
        // Read, so the server may send as much again (HTTP/2 flow control).
        let _ = body.flow_control().release_capacity(chunk.len());
        if answer.len() + chunk.len() > max {
            return Err(http(HttpError::BodyTooLarge { max }));
        }
        answer.extend_from_slice(&chunk);
    }
    Ok(answer)
}

/// What every connection of the transport shares.
struct Shared {
    url: String,
    addrs: Vec<SocketAddr>,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    opts: DohOptions,
    stats: Counters,
    /// Consecutive failed connection attempts.
    failures: AtomicUsize,
    next_gen: AtomicU64,
    /// For the connection failures logged at info, which queries to a broken server repeat.
    log_limit: LogLimiter,
}

/// One connection generation: empty until the first caller opens it, then the connection or the
/// failure every caller of this generation sees.
#[derive(Default)]
struct Slot {
    cell: OnceCell<Result<Conn, Failed>>,
}

struct Failed {
    error: UpstreamError,
    /// No new attempt before this.
    retry_at: Instant,
}

/// A handle on the open connection; clones share it.
#[derive(Clone)]
struct Conn {
    sender: SendRequest<Bytes>,
    driven: Arc<Driven>,
    state: Arc<ConnState>,
}

/// Activity of one connection, for idle and stall decisions.
struct ConnState {
    gen: u64,
    /// The moment the connection opened; the other times are offsets from it in microseconds.
    opened: Instant,
    last_used_us: AtomicU64,
    last_response_us: AtomicU64,
    in_flight: AtomicUsize,
    /// Cancelled to tear the connection down; open requests on it then fail (and are retried).
    closed: CancellationToken,
}

impl ConnState {
    fn now_us(&self) -> u64 {
        self.opened.elapsed().as_micros() as u64
    }

    /// A request starts (the time it ends is what idleness counts from, see `idle_deadline`).
    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.last_used_us.store(self.now_us(), Ordering::Relaxed);
    }

    fn answered(&self) {
        self.last_response_us
            .store(self.now_us().max(1), Ordering::Relaxed);
    }

    /// Whether any answer arrived at or after `t`.
    fn answered_since(&self, t: Instant) -> bool {
        match self.last_response_us.load(Ordering::Relaxed) {
            0 => false,
            us => self.opened + Duration::from_micros(us) >= t,
        }
    }

    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        Some(self.opened + Duration::from_micros(self.last_used_us.load(Ordering::Relaxed)) + idle)
    }
}

/// Opens a connection: TCP, TLS with ALPN h2, the HTTP/2 handshake, and a task that drives it
/// until it fails or idles out.
async fn open(shared: Arc<Shared>) -> Result<Conn, Failed> {
    let opts = &shared.opts;
    let attempt = async {
        let stream = tls::connect(
            &shared.addrs,
            &shared.connector,
            &shared.server_name,
            opts.connect_timeout,
        )
        .await?;
        shared.stats.handshake(&stream);
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(UpstreamError::Http(HttpError::NoH2));
        }
        let handshake = h2::client::Builder::new().handshake::<_, Bytes>(stream);
        tokio::time::timeout(opts.connect_timeout, handshake)
            .await
            .map_err(|_| UpstreamError::Http(HttpError::HandshakeTimeout(opts.connect_timeout)))?
            .map_err(|e| UpstreamError::Http(HttpError::Handshake(Arc::new(e))))
    };
    let (sender, mut connection) = match attempt.await {
        Ok(parts) => parts,
        Err(error) => {
            let failures = shared.failures.fetch_add(1, Ordering::Relaxed) + 1;
            Counters::bump(&shared.stats.connect_failures);
            let wait = tls::backoff(failures.min(u32::MAX as usize) as u32);
            log_limited!(limit: &shared.log_limit, tracing::Level::INFO,
                upstream = %shared.url, %error, failures, backoff_ms = wait.as_millis() as u64,
                "DoH connection failed");
            return Err(Failed {
                error,
                retry_at: Instant::now() + wait,
            });
        }
    };
    shared.failures.store(0, Ordering::Relaxed);
    let gen = shared.next_gen.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::debug!(upstream = %shared.url, gen, "DoH connection open");

    let state = Arc::new(ConnState {
        gen,
        opened: Instant::now(),
        last_used_us: AtomicU64::new(0),
        last_response_us: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        closed: CancellationToken::new(),
    });
    let idle = opts.idle_timeout;
    let interval = opts.timeout;
    let url = shared.url.clone();
    let watched = state.clone();
    let mut pings = connection.ping_pong();
    let driven = Driven::new(connection);
    let polled = driven.clone();
    tokio::spawn(async move {
        tokio::select! {
            result = std::future::poll_fn(|cx| polled.poll_task(cx)) => {
                if let Err(e) = result {
                    tracing::debug!(upstream = %url, gen, error = %e, "DoH connection ended");
                }
            }
            _ = idle_watch(&watched, idle) => {
                tracing::debug!(upstream = %url, gen, "DoH connection idle, closing");
            }
            _ = keep_alive(pings.as_mut(), &watched, interval) => {
                tracing::debug!(upstream = %url, gen, "DoH connection silent, closing");
            }
            _ = watched.closed.cancelled() => {
                tracing::debug!(upstream = %url, gen, "DoH connection dropped");
            }
        }
        // Whatever ended the connection, requests still waiting on it must not hang.
        watched.closed.cancel();
        polled.close();
    });
    Ok(Conn {
        sender,
        driven,
        state,
    })
}

/// PINGs every `interval` while requests are open; returns when one has gone unanswered for
/// `interval`, so a silent peer fails its requests within two intervals.
async fn keep_alive(pings: Option<&mut h2::PingPong>, state: &ConnState, interval: Duration) {
    let Some(pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(interval).await;
        if state.in_flight.load(Ordering::Relaxed) == 0 {
            continue;
        }
        match tokio::time::timeout(interval, pings.ping(Ping::opaque())).await {
            Ok(Ok(_)) => {}
            // No pong in time, or the connection is broken (its own branch reports that).
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Returns once the connection has had no request for `idle`.
async fn idle_watch(state: &ConnState, idle: Duration) {
    loop {
        match state.idle_deadline(idle) {
            Some(at) if Instant::now() >= at => return,
            Some(at) => tokio::time::sleep_until(at).await,
            // Busy: look again after a while.
            None => tokio::time::sleep(idle).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure
mod tests {
    use super::*;

    #[test]
    fn constructor_builds_the_request_uri() {
        let tls = TlsOptions::new("dns.test");
        let opts = DohOptions::default();
        let addr: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let url: UpstreamUrl = "https://dns.test/dns-query".parse().unwrap();
        let t = DohTransport::new(&url, vec![addr], tls.clone(), opts.clone()).unwrap();
        assert_eq!(t.uri, "https://dns.test/dns-query");
        let url: UpstreamUrl = "https://[::1]:8443/q".parse().unwrap();
        let t = DohTransport::new(&url, vec![], TlsOptions::new("::1"), opts.clone()).unwrap();
        assert_eq!(t.uri, "https://[::1]:8443/q");
        assert_eq!(t.shared.addrs, vec!["[::1]:8443".parse().unwrap()]);
        let tls_url: UpstreamUrl = "tls://dns.test".parse().unwrap();
        assert!(DohTransport::new(&tls_url, vec![addr], tls.clone(), opts.clone()).is_err());
        let named: UpstreamUrl = "https://dns.test/dns-query".parse().unwrap();
        assert!(DohTransport::new(&named, vec![], tls, opts).is_err());
    }

    #[test]
    fn post_requests_declare_their_length() {
        let url: UpstreamUrl = "https://dns.test/dns-query".parse().unwrap();
        let addr: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let opts = DohOptions::default();
        let t = DohTransport::new(&url, vec![addr], TlsOptions::new("dns.test"), opts).unwrap();
        // Padded lengths (values made up front) and any other length alike.
        for len in [128, 256, 896, 1024, 1000, 12] {
            let req = t.request(&vec![0; len]).unwrap();
            assert_eq!(req.method(), Method::POST);
            assert_eq!(req.uri(), "https://dns.test/dns-query");
            assert_eq!(req.headers()[CONTENT_LENGTH], len.to_string().as_str());
            assert_eq!(req.headers()[CONTENT_TYPE], DNS_MESSAGE);
            assert_eq!(req.headers()[ACCEPT], DNS_MESSAGE);
            assert_eq!(req.headers().len(), 3);
        }
    }

    #[test]
    fn get_requests_carry_base64url_without_padding() {
        let url: UpstreamUrl = "https://dns.test/dns-query".parse().unwrap();
        let opts = DohOptions {
            method: DohMethod::Get,
            ..DohOptions::default()
        };
        let addr: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let t = DohTransport::new(&url, vec![addr], TlsOptions::new("dns.test"), opts).unwrap();
        // Octets chosen so standard base64 would need '+', '/' and '=' padding.
        let req = t.request(&[0xFB, 0xFF, 0xBF, 0x00]).unwrap();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().query(), Some("dns=-_-_AA"));
        assert_eq!(req.headers()[ACCEPT], DNS_MESSAGE);
    }
}
