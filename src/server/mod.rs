//! The listeners: UDP and TCP sockets that feed queries to the handler chain.
//!
//! ```text
//!   UDP socket xN (SO_REUSEPORT) --recv--> rate limit, checks --QueryView--> chain.answer_fast --> send
//!                                            |                        | false
//!                                            |                        v
//!                                            +--> FORMERR/NOTIMP/  Message::parse --permit--> future:
//!                                                 REFUSED/BADVERS       chain.handle -> fix up -> send
//!                                                         (first poll on the UDP thread, the rest
//!                                                          a task once it waits: `inline`)
//!   TCP listener --accept--> connection task: frames --fast--> write buffer --> coalesced write
//!                                                   --slow--> task (<= pipeline cap) --channel--^
//! ```
//!
//! The server knows only [`Chain`]; which handlers answer is decided elsewhere. Every packet is
//! hostile: nothing here panics on input, and every resource is bounded: slow-path work in flight
//! (`max_udp_inflight`, UDP and TCP together, above which queries are dropped: load shedding), TCP
//! connections (`max_tcp_connections`), queries in flight per connection (`max_tcp_pipeline`, above
//! which the connection is simply not read: back-pressure), answers queued for a TCP client that
//! does not read them (per connection and in all, see `tcp`), frame sizes, idle time, and a
//! safety-net deadline on every query the chain handles. The in-flight budget and the connection
//! slots are shared fairly between clients ([`fair`]), and both are fitted to the open-file limit
//! at bind time.
//!
//! TCP follows RFC 7766: pipelined queries are answered concurrently and out of order (section 6.2.1.1),
//! idle connections are closed (section 6.2.3). At the connection cap the listener closes the
//! connection that has been idle longest (the slowloris defence of encrypted-dns-server): a client
//! that opens connections and sends nothing cannot lock others out. If no connection is idle, the
//! client holding the most connections gives one up, if it holds at least two more than the
//! newcomer's client; otherwise the new one is closed.
//!
//! Shutdown: when the token is cancelled the listeners stop receiving and accepting, connections
//! stop reading and finish the queries they have, and [`Server::run`] waits for all of it up to a
//! grace period, after which the remaining work is abandoned.
//!
//! A client (an address, or an IPv6 /64) may hold at most `max_tcp_per_client` connections; one
//! more is closed as soon as it is accepted, so one host cannot take the whole connection budget
//! even while nobody else needs it. UDP queries can be rate-limited per client network
//! ([`ratelimit`]): checked before anything else is done with a datagram (the allow-list's REFUSED
//! included, which a spoofed flood could otherwise reflect), with one clock read per received batch.
//!
//! Limitations: no DNS over TLS/HTTPS listener (that is an upstream matter here); the rate limit
//! counts queries, not responses, and applies to UDP only; EDNS TCP keepalive (RFC 7828) is not
//! negotiated; the ACL applies per packet for UDP and per connection for TCP.

pub mod acl;
pub mod activation;
mod fair;
mod inline;
pub mod querylog;
pub mod ratelimit;
mod respond;
mod tcp;
mod udp;
mod udp_outbox;
mod udp_send;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::net::UdpSocket;

use arc_swap::ArcSwap;
use thiserror::Error;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use acl::{Acl, Cidr};
pub use activation::Activated;
pub use inline::PACE;
pub use ratelimit::{RateLimitConfig, RateLimitCounters};

use fair::{ClientKey, FairBudget};

use crate::handler::HandlerResult;
use crate::handler::{Chain, Protocol};
use crate::metrics::{QueryCounters, Source};
use crate::wire::edns::DEFAULT_PAYLOAD;
use crate::wire::{Message, QueryView, RType};
use querylog::{Answered, QueryLog};

/// Default idle timeout of a TCP connection.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on concurrent TCP connections (per server).
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = 256;
/// Default cap on concurrent TCP connections from one client.
pub const DEFAULT_MAX_TCP_PER_CLIENT: usize = 64;
/// Default cap on queries in flight per TCP connection.
pub const DEFAULT_MAX_TCP_PIPELINE: usize = 32;
/// Default cap on slow-path UDP queries in flight (per server).
pub const DEFAULT_MAX_UDP_INFLIGHT: usize = 4096;
/// How long [`Server::run`] waits for in-flight work after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Default safety net ([`ServerConfig::query_deadline`]): a query the chain has not answered after this long is abandoned (SERVFAIL over TCP,
/// silence over UDP). Handlers have their own, shorter, upstream timeouts; this only keeps a stuck
/// handler from holding a permit forever.
pub const QUERY_DEADLINE: Duration = Duration::from_secs(15);
/// Largest query accepted over TCP. Queries are small (a question and an OPT record); a larger frame
/// closes the connection, which bounds each connection's read buffer.
pub const MAX_TCP_QUERY_LEN: usize = 16 * 1024;
/// Most SO_REUSEPORT sockets per UDP address.
pub const MAX_UDP_SOCKETS_PER_ADDR: usize = 256;
/// How often a blocking UDP receive loop wakes up, when idle, to check for shutdown.
pub const UDP_POLL: Duration = Duration::from_millis(200);
/// Receive buffer asked for on each UDP listening socket (see `bind_udp`).
const UDP_RECV_BUFFER: usize = 1 << 20;

/// Listener settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Addresses to serve on; each gets UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// Clients allowed to query; others get REFUSED.
    pub acl: Acl,
    /// A TCP connection with nothing in flight is closed after this long without a complete query
    /// or a response written. Partial frames do not count as activity.
    pub tcp_idle_timeout: Duration,
    /// Concurrent TCP connections; at the cap the longest-idle connection is closed to make room
    /// (or the new one, if none is idle).
    pub max_tcp_connections: usize,
    /// Concurrent TCP connections from one client (an address, or an IPv6 /64); a connection
    /// beyond it is closed at once.
    pub max_tcp_per_client: usize,
    /// Per-client rate limiting of UDP queries, if on ([`ratelimit`]).
    pub rate_limit: Option<RateLimitConfig>,
    /// A query the chain has not answered after this long is abandoned: SERVFAIL over TCP, no
    /// answer over UDP (a safety net above the upstreams' own time budget).
    pub query_deadline: Duration,
    /// Queries in flight per TCP connection (at least 1).
    pub max_tcp_pipeline: usize,
    /// Slow-path queries in flight, UDP and TCP together, shared fairly between clients; above it
    /// a new UDP query is dropped and a TCP one answered SERVFAIL.
    pub max_udp_inflight: usize,
    /// SO_REUSEPORT UDP sockets per address, each with its own receive loop (1 to 256).
    pub udp_sockets_per_addr: usize,
    /// The EDNS UDP payload size we advertise and the most we send over UDP (at least 512).
    pub max_udp_payload: u16,
    /// Log every query, one `info` line each (off by default: queries are private), unless
    /// `query_log_file` takes the lines.
    pub log_queries: bool,
    /// Bind addresses no interface has yet (IP_FREEBIND / IPV6_FREEBIND).
    pub freebind: bool,
    /// Write the query lines to this file instead ([`querylog`]); implies logging queries.
    pub query_log_file: Option<Arc<querylog::FileLog>>,
    /// Every response sent is counted here.
    pub metrics: Arc<QueryCounters>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![
                SocketAddr::from(([127, 0, 0, 1], 53)),
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 53)),
            ],
            acl: Acl::loopback(),
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            max_tcp_connections: DEFAULT_MAX_TCP_CONNECTIONS,
            max_tcp_per_client: DEFAULT_MAX_TCP_PER_CLIENT,
            rate_limit: None,
            query_deadline: QUERY_DEADLINE,
            max_tcp_pipeline: DEFAULT_MAX_TCP_PIPELINE,
            max_udp_inflight: DEFAULT_MAX_UDP_INFLIGHT,
            udp_sockets_per_addr: crate::config::knob::worker_threads(0),
            max_udp_payload: DEFAULT_PAYLOAD,
            log_queries: false,
            freebind: false,
            query_log_file: None,
            metrics: Arc::default(),
        }
    }
}

impl ServerConfig {
    /// Lowers the TCP connection cap and the in-flight budget so that together they fit in
    /// `nofile` descriptors, less [`RESERVED_DESCRIPTORS`] and the listening sockets: each
    /// connection holds one, and each query in flight may hold one (a plain upstream's socket).
    /// Connections get at most a quarter. Returns whether anything changed.
    pub fn fit_descriptors(&mut self, nofile: u64) -> bool {
        let listeners = self.listen.len() * (self.udp_sockets_per_addr.max(1) + 1);
        let avail = usize::try_from(nofile)
            .unwrap_or(usize::MAX)
            .saturating_sub(RESERVED_DESCRIPTORS + listeners)
            .max(2 * MIN_FITTED);
        if self
            .max_tcp_connections
            .saturating_add(self.max_udp_inflight)
            <= avail
        {
            return false;
        }
        self.max_tcp_connections = self.max_tcp_connections.min(avail / 4).max(MIN_FITTED);
        self.max_udp_inflight = self
            .max_udp_inflight
            .min(avail - self.max_tcp_connections)
            .max(MIN_FITTED);
        true
    }
}

/// Descriptors [`ServerConfig::fit_descriptors`] leaves for everything but client connections
/// and queries in flight: upstream connection pools, files, the runtime's own.
pub const RESERVED_DESCRIPTORS: usize = 128;
/// The least [`ServerConfig::fit_descriptors`] lowers either cap to.
const MIN_FITTED: usize = 16;

/// The soft limit on open files, if it can be read and is finite.
fn open_file_limit() -> Option<u64> {
    let (soft, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    (soft != nix::sys::resource::RLIM_INFINITY).then_some(soft)
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// A socket could not be created or bound.
    #[error("{}", bind_message(*addr, *proto, source))]
    Bind {
        addr: SocketAddr,
        proto: Protocol,
        source: io::Error,
    },
    /// The configuration lists no address.
    #[error("no listen address configured")]
    NoListenAddress,
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Udp => "udp",
        Protocol::Tcp => "tcp",
    }
}

fn bind_message(addr: SocketAddr, proto: Protocol, source: &io::Error) -> String {
    let mut msg = format!("cannot listen on {} {addr}: {source}", proto_name(proto));
    match source.kind() {
        io::ErrorKind::PermissionDenied if addr.port() != 0 && addr.port() < 1024 => {
            msg.push_str(
                "; ports below 1024 need the CAP_NET_BIND_SERVICE capability: grant it \
                 (e.g. `sudo setcap cap_net_bind_service=+ep $(command -v dnsveil)`, or \
                 AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit) or listen on an \
                 unprivileged port (`--listen 127.0.0.1:5353`)",
            );
        }
        io::ErrorKind::AddrInUse => {
            msg.push_str(&format!(
                "; another program (a DNS server or systemd-resolved?) already uses it: find it with \
                 `ss -lntup 'sport = :{}'`, stop it or choose another --listen address",
                addr.port()
            ));
        }
        io::ErrorKind::AddrNotAvailable => {
            msg.push_str(
                "; no interface on this machine has that address (if it will, once a link is up, \
                 set server.freebind = true)",
            );
        }
        _ => {}
    }
    msg
}

/// Bound sockets, ready to serve.
pub struct Server {
    /// Per configured address: its actual address and its UDP sockets.
    udp: Vec<(SocketAddr, Vec<Arc<UdpSocket>>)>,
    tcp: Vec<(SocketAddr, TcpListener)>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds UDP and TCP on every configured address, or fails on the first that cannot be bound.
    /// Port 0 picks one free port per address, shared by its TCP listener and all its UDP sockets.
    ///
    /// The connection cap and the in-flight budget are first fitted to the open-file limit
    /// ([`ServerConfig::fit_descriptors`]), which is logged when it lowers them.
    pub async fn bind(cfg: ServerConfig, chain: Arc<Chain>) -> Result<Server, ServerError> {
        Server::bind_with(cfg, chain, Activated::none()).await
    }

    /// [`Server::bind`], serving the sockets the service manager passed (`activated`) where they
    /// are: a passed socket at a configured address is used instead of binding one (per
    /// protocol), configured addresses without one are bound, and passed sockets at other
    /// addresses are served as well (see [`activation`]).
    pub async fn bind_with(
        mut cfg: ServerConfig,
        chain: Arc<Chain>,
        mut activated: Activated,
    ) -> Result<Server, ServerError> {
        if cfg.listen.is_empty() && activated.is_empty() {
            return Err(ServerError::NoListenAddress);
        }
        if let Some(nofile) = open_file_limit() {
            let (conns, inflight) = (cfg.max_tcp_connections, cfg.max_udp_inflight);
            if cfg.fit_descriptors(nofile) {
                warn!(
                    open_files = nofile,
                    max_tcp_connections = cfg.max_tcp_connections,
                    max_udp_inflight = cfg.max_udp_inflight,
                    "the open-file limit is too low for max_tcp_connections = {conns} and \
                     max_udp_inflight = {inflight}; using less (raise LimitNOFILE or ulimit -n)"
                );
            }
        }
        let per_addr = cfg.udp_sockets_per_addr.clamp(1, MAX_UDP_SOCKETS_PER_ADDR);
        let mut udp = Vec::with_capacity(cfg.listen.len());
        let mut tcp = Vec::with_capacity(cfg.listen.len());
        let mut skipped = None;
        for &addr in &cfg.listen {
            let bound = match (activated.take_udp(addr), activated.take_tcp(addr)) {
                (None, None) => bind_addr(addr, per_addr, cfg.freebind),
                (passed_udp, passed_tcp) => {
                    complete_passed(addr, passed_udp, passed_tcp, cfg.freebind)
                }
            };
            let (udp_socks, listener, actual) = match bound {
                Ok(bound) => bound,
                Err(e) if ipv6_loopback_unavailable(addr, &e) && cfg.listen.len() > 1 => {
                    warn!(error = %e, "IPv6 is off on this machine; not listening on {addr}");
                    skipped = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            udp.push((actual, udp_socks.into_iter().map(Arc::new).collect()));
            tcp.push((actual, listener));
        }
        for (addr, passed_udp, passed_tcp) in activated.into_rest() {
            if let Some(sock) = passed_udp {
                udp.push((addr, vec![Arc::new(sock)]));
            }
            if let Some(listener) = passed_tcp {
                let listener =
                    TcpListener::from_std(listener).map_err(|source| ServerError::Bind {
                        addr,
                        proto: Protocol::Tcp,
                        source,
                    })?;
                tcp.push((addr, listener));
            }
        }
        if let (true, true, Some(e)) = (tcp.is_empty(), udp.is_empty(), skipped) {
            return Err(e);
        }
        let hard_stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            chain,
            acl: ArcSwap::from_pointee(cfg.acl),
            ours: cfg.max_udp_payload.max(512),
            log_queries: cfg.log_queries || cfg.query_log_file.is_some(),
            query_log: match cfg.query_log_file {
                Some(file) => QueryLog::File(file),
                None if cfg.log_queries => QueryLog::Tracing,
                None => QueryLog::Off,
            },
            metrics: cfg.metrics,
            tcp_idle: cfg.tcp_idle_timeout.max(Duration::from_millis(1)),
            max_pipeline: cfg.max_tcp_pipeline.max(1),
            inflight: FairBudget::new(cfg.max_udp_inflight.max(1)),
            tcp_queued: AtomicUsize::new(0),
            conns: Connections::new(cfg.max_tcp_connections.max(1)),
            max_tcp_per_client: cfg.max_tcp_per_client.max(1),
            limiter: cfg.rate_limit.map(ratelimit::RateLimiter::new),
            started: std::time::Instant::now(),
            query_deadline: cfg.query_deadline.max(Duration::from_millis(1)),
            tracker: TaskTracker::new(),
            pacer: Arc::default(),
            hard_stop,
        });
        Ok(Server { udp, tcp, shared })
    }

    /// The counts of rate-limited queries, when rate limiting is on: for logs and metrics, valid
    /// while the server runs and after.
    pub fn rate_limit_counters(&self) -> Option<Arc<RateLimitCounters>> {
        self.shared.limiter.as_ref().map(|l| l.counters())
    }

    /// The bound addresses: UDP then TCP for each configured address, with actual ports (then
    /// any other passed socket's).
    pub fn local_addrs(&self) -> Vec<(Protocol, SocketAddr)> {
        let mut addrs: Vec<(Protocol, SocketAddr)> = self
            .udp
            .iter()
            .zip(&self.tcp)
            .flat_map(|((u, _), (t, _))| [(Protocol::Udp, *u), (Protocol::Tcp, *t)])
            .collect();
        let paired = self.udp.len().min(self.tcp.len());
        addrs.extend(self.udp[paired..].iter().map(|(a, _)| (Protocol::Udp, *a)));
        addrs.extend(self.tcp[paired..].iter().map(|(a, _)| (Protocol::Tcp, *a)));
        addrs
    }

    /// What may be changed while the server runs (a reload).
    pub fn controls(&self) -> Controls {
        Controls {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight work for up to
    /// [`SHUTDOWN_GRACE`].
    ///
    /// On start it logs, at info level, one line per address and protocol in exactly this form
    /// (integration tests parse it): `listening on udp 127.0.0.1:5353`, `listening on tcp 127.0.0.1:5353`.
    pub async fn run(self, shutdown: CancellationToken) {
        self.run_with_grace(shutdown, SHUTDOWN_GRACE).await;
    }

    /// [`Server::run`] with a chosen grace period.
    pub async fn run_with_grace(self, shutdown: CancellationToken, grace: Duration) {
        let Server { udp, tcp, shared } = self;
        let tracker = shared.tracker.clone();
        let runtime = tokio::runtime::Handle::current();
        // The UDP loops run on threads of their own, outside the runtime's blocking pool (which a
        // runtime waits for when dropped, and which stops a paused test clock from advancing); a
        // tracker token per thread makes the drain below wait for them. They stop on `shutdown`,
        // and also when this future is dropped (the runtime going away without a shutdown
        // request, as at the end of a test): the guard cancels their token then.
        let udp_stop = shutdown.child_token();
        let _udp_guard = udp_stop.clone().drop_guard();
        tracker.spawn(shared.pacer.clone().run(udp_stop.clone()));
        for (addr, socks) in udp {
            for sock in socks {
                let (shared, shutdown, runtime) =
                    (shared.clone(), udp_stop.clone(), runtime.clone());
                let token = tracker.token();
                let spawned = std::thread::Builder::new()
                    .name("dnsveil-udp".into())
                    .spawn(move || {
                        udp::serve(sock, shared, shutdown, runtime);
                        drop(token);
                    });
                if let Err(e) = spawned {
                    warn!(error = %e, "cannot start a UDP receive thread for {addr}");
                }
            }
            info!("listening on udp {addr}");
        }
        for (addr, listener) in tcp {
            tracker.spawn(tcp::accept_loop(listener, shared.clone(), shutdown.clone()));
            info!("listening on tcp {addr}");
        }
        shutdown.cancelled().await;
        info!("shutting down: finishing queries in flight");
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(
                tasks = tracker.len(),
                "grace period over; abandoning unfinished queries"
            );
            shared.hard_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
        }
        info!("server stopped");
    }
}

/// A handle on a server's settings that may change while it runs (a configuration reload).
#[derive(Clone)]
pub struct Controls {
    shared: Arc<Shared>,
}

impl fmt::Debug for Controls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controls").finish_non_exhaustive()
    }
}

impl Controls {
    /// Clients allowed from now on: each UDP query is checked against the new list, and each TCP
    /// connection accepted from now on (connections already open keep their verdict).
    pub fn set_acl(&self, acl: Acl) {
        self.shared.acl.store(Arc::new(acl));
    }
}

/// What every listener task shares.
struct Shared {
    chain: Arc<Chain>,
    /// Swapped by [`Controls::set_acl`] (a reload); read per packet without a lock.
    acl: ArcSwap<Acl>,
    /// Our EDNS payload size (at least 512).
    ours: u16,
    /// Whether `query_log` is on (also logs allow-list refusals).
    log_queries: bool,
    query_log: QueryLog,
    metrics: Arc<QueryCounters>,
    tcp_idle: Duration,
    max_pipeline: usize,
    /// Slow-path queries in flight, UDP and TCP, shared fairly between clients.
    inflight: Arc<FairBudget>,
    /// Answers waiting in the write buffers of TCP clients that do not read them (see `tcp`).
    tcp_queued: AtomicUsize,
    conns: Connections,
    max_tcp_per_client: usize,
    /// Per-client UDP rate limiting, when on.
    limiter: Option<ratelimit::RateLimiter>,
    /// The rate limiter's clock starts here.
    started: std::time::Instant,
    /// How long the chain may take over one query.
    query_deadline: Duration,
    tracker: TaskTracker,
    /// Keeps the timer driver's plan near while UDP threads start queries (see `inline`).
    pacer: Arc<inline::Pacer>,
    /// Cancelled when the grace period is over: everything still running stops at once.
    hard_stop: CancellationToken,
}

impl Shared {
    /// Counts (and logs, if asked) a response about to be sent.
    #[inline]
    fn answered(&self, a: &Answered<'_>) {
        querylog::answered(&self.metrics, &self.query_log, a);
    }

    /// [`Shared::answered`] for a response no stage produced (a refusal, FORMERR, NOTIMP): the
    /// question is read from the packet `pkt` if it can be.
    fn answered_raw(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        pkt: &[u8],
        response: &[u8],
        started: Option<std::time::Instant>,
    ) {
        let view = QueryView::parse(pkt).ok();
        self.answered(&Answered {
            protocol,
            client,
            qname: view.as_ref().map_or(&[][..], |v| v.qname),
            qtype: view.as_ref().map_or(RType(0), |v| v.qtype),
            response,
            source: Source::None,
            upstream: None,
            started,
        });
    }

    /// [`Shared::answered`] for the chain's `outcome` to `query`, written as `response`.
    fn answered_outcome(
        &self,
        protocol: Protocol,
        client: SocketAddr,
        query: &Message,
        outcome: &HandlerResult,
        response: &[u8],
        started: Option<std::time::Instant>,
    ) {
        let (source, upstream) = match outcome {
            Ok(a) => (a.origin().into(), a.upstream()),
            Err(_) => (Source::None, None),
        };
        let q = query.question();
        self.answered(&Answered {
            protocol,
            client,
            qname: q.map_or(&[][..], |q| q.name.as_wire()),
            qtype: q.map_or(RType(0), |q| q.qtype),
            response,
            source,
            upstream,
            started,
        });
    }
}

/// The TCP connection registry: a cap, and enough about each connection to pick an idle one to close.
struct Connections {
    slots: Arc<Semaphore>,
    /// Locked only to add, remove or pick a connection; never held across `.await`.
    live: Mutex<HashMap<u64, Arc<ConnState>>>,
    /// Open connections per client. Locked after `live` when both are, never across `.await`.
    held: Mutex<HashMap<ClientKey, usize>>,
    next_id: AtomicU64,
    epoch: Instant,
}

/// What the acceptor may know about a connection. Written only by the connection's own task.
struct ConnState {
    id: u64,
    /// Whom the connection counts against when a client holds too many.
    client: ClientKey,
    /// Milliseconds since `Connections::epoch` of the last complete query or response.
    last_active: AtomicU64,
    /// Queries in flight; a connection with none is idle.
    inflight: AtomicUsize,
    /// Closes the connection now (eviction or hard stop).
    close: CancellationToken,
}

impl Connections {
    fn new(cap: usize) -> Self {
        Connections {
            slots: Arc::new(Semaphore::new(cap)),
            live: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        Instant::now().duration_since(self.epoch).as_millis() as u64
    }

    fn register(&self, client: ClientKey, close: CancellationToken) -> Arc<ConnState> {
        let state = Arc::new(ConnState {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            client,
            last_active: AtomicU64::new(self.now_ms()),
            inflight: AtomicUsize::new(0),
            close,
        });
        // No .await while the lock is held.
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.insert(state.id, state.clone());
        *self.lock_held().entry(client).or_default() += 1;
        state
    }

    fn unregister(&self, id: u64) {
        // No .await while the lock is held.
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gone) = live.remove(&id) {
            let mut held = self.lock_held();
            if let Some(n) = held.get_mut(&gone.client) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&gone.client);
                }
            }
        }
    }

    /// Connections `client` holds open now.
    fn held_by(&self, client: ClientKey) -> usize {
        self.lock_held().get(&client).copied().unwrap_or(0)
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, usize>> {
        // No .await while the lock is held.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for a connection from `newcomer`: closes the connection idle the longest (oldest
    /// first on ties) or, when none is idle, the least recently active connection of the client
    /// holding the most, if it holds at least two more than `newcomer` ([`fair`]). False if neither
    /// applies: then the new connection is the one to close.
    fn evict_for(&self, newcomer: ClientKey) -> bool {
        // No .await while the lock is held.
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let open = || live.values().filter(|c| !c.close.is_cancelled());
        let victim = open()
            .filter(|c| c.inflight.load(Ordering::Relaxed) == 0)
            .min_by_key(|c| (c.last_active.load(Ordering::Relaxed), c.id))
            .or_else(|| {
                let mut held: HashMap<ClientKey, usize> = HashMap::new();
                for c in open() {
                    *held.entry(c.client).or_default() += 1;
                }
                let mine = held.get(&newcomer).copied().unwrap_or(0);
                let (&heaviest, &most) = held.iter().max_by_key(|&(k, n)| (n, k))?;
                if !fair::may_take_from(most, mine) {
                    return None;
                }
                open()
                    .filter(|c| c.client == heaviest)
                    .min_by_key(|c| (c.last_active.load(Ordering::Relaxed), c.id))
            });
        match victim {
            Some(c) => {
                c.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Whether binding `addr` failed only because IPv6 is off here (the kernel has no IPv6, or `::1`
/// is not configured): then the default `[::1]:53` beside `127.0.0.1:53` is skipped with a warning
/// rather than keeping the resolver from starting. Any other address, or an error, stays fatal.
fn ipv6_loopback_unavailable(addr: SocketAddr, e: &ServerError) -> bool {
    /// EAFNOSUPPORT on Linux: the kernel was built or booted without IPv6.
    const EAFNOSUPPORT: i32 = 97;
    let ServerError::Bind { source, .. } = e else {
        return false;
    };
    addr.ip() == std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        && (source.kind() == io::ErrorKind::AddrNotAvailable
            || source.raw_os_error() == Some(EAFNOSUPPORT))
}

/// Binds one address: TCP first (which picks the port if it is 0), then the UDP sockets on the same
/// port. With port 0, a UDP port already taken means another try with a new port.
fn bind_addr(
    addr: SocketAddr,
    udp_count: usize,
    freebind: bool,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), ServerError> {
    let attempts = if addr.port() == 0 { 16 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let tcp_err = |source| ServerError::Bind {
            addr,
            proto: Protocol::Tcp,
            source,
        };
        let listener = bind_tcp(addr, freebind).map_err(tcp_err)?;
        let actual = listener.local_addr().map_err(tcp_err)?;
        let udp: io::Result<Vec<UdpSocket>> = (0..udp_count)
            .map(|_| bind_udp(actual, udp_count > 1, freebind))
            .collect();
        match udp {
            Ok(socks) => return Ok((socks, listener, actual)),
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                last_err = Some(e);
            }
            Err(source) => {
                return Err(ServerError::Bind {
                    addr,
                    proto: Protocol::Udp,
                    source,
                })
            }
        }
    }
    Err(ServerError::Bind {
        addr,
        proto: Protocol::Udp,
        source: last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)),
    })
}

/// Lets `sock` bind `addr` before any interface has it (a LAN address whose link is not up yet).
fn set_freebind(sock: &socket2::Socket, addr: SocketAddr) -> io::Result<()> {
    if addr.is_ipv6() {
        sock.set_freebind_ipv6(true)
    } else {
        sock.set_freebind(true)
    }
}

/// A configured address for which the service manager passed a socket of one protocol or both:
/// the missing one is bound here, on the same address.
fn complete_passed(
    addr: SocketAddr,
    passed_udp: Option<UdpSocket>,
    passed_tcp: Option<std::net::TcpListener>,
    freebind: bool,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), ServerError> {
    let tcp_err = |source| ServerError::Bind {
        addr,
        proto: Protocol::Tcp,
        source,
    };
    let listener = match passed_tcp {
        Some(l) => TcpListener::from_std(l).map_err(tcp_err)?,
        None => bind_tcp(addr, freebind).map_err(tcp_err)?,
    };
    let udp = match passed_udp {
        Some(sock) => sock,
        None => bind_udp(addr, false, freebind).map_err(|source| ServerError::Bind {
            addr,
            proto: Protocol::Udp,
            source,
        })?,
    };
    Ok((vec![udp], listener, addr))
}

fn bind_tcp(addr: SocketAddr, freebind: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if freebind {
        set_freebind(&sock, addr)?;
    }
    // Restarting must not fail on connections of the previous run in TIME_WAIT.
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

fn bind_udp(addr: SocketAddr, reuse_port: bool, freebind: bool) -> io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if freebind {
        set_freebind(&sock, addr)?;
    }
    if reuse_port {
        // The kernel spreads clients over the sockets by address hash (one receive loop each).
        #[cfg(unix)]
        sock.set_reuse_port(true)?;
    }
    // Room for a burst while the receive thread is busy starting misses (each opens and sends on
    // an upstream socket inline): with the default (212,992 octets on Linux, about 200 small
    // queries at their kernel size) a client with 200 queries outstanding overflowed it now and
    // then, and the kernel dropped queries (`UdpRcvbufErrors`). The kernel caps the request at
    // `net.core.rmem_max` and doubles it; a refusal is not fatal, the default then stays.
    if let Err(e) = sock.set_recv_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!(error = %e, "could not enlarge the UDP receive buffer");
    }
    sock.bind(&addr.into())?;
    let sock: UdpSocket = sock.into();
    prepare_udp(&sock)?;
    Ok(sock)
}

/// Makes a bound UDP socket (ours or one passed by the service manager) ready for its receive
/// thread: blocking, served by a thread of its own (see udp.rs), with timeouts that bound how
/// long shutdown waits for the thread and how long a send may stall it.
fn prepare_udp(sock: &UdpSocket) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(UDP_POLL))?;
    sock.set_write_timeout(Some(UDP_POLL))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    /// A listening UDP socket holds more than the system's default receive buffer, so a burst of
    /// queries waits in the kernel instead of being dropped there.
    #[test]
    fn udp_sockets_get_a_larger_receive_buffer() {
        let sock = bind_udp("127.0.0.1:0".parse().unwrap(), false, false).unwrap();
        let got = socket2::SockRef::from(&sock).recv_buffer_size().unwrap();
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let default = socket2::SockRef::from(&plain).recv_buffer_size().unwrap();
        assert!(got > default, "{got} octets, the default is {default}");
    }

    #[test]
    fn permission_denied_says_how_to_fix_it() {
        let e = ServerError::Bind {
            addr: "0.0.0.0:53".parse().unwrap(),
            proto: Protocol::Udp,
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let msg = e.to_string();
        assert!(msg.contains("udp 0.0.0.0:53"), "{msg}");
        assert!(msg.contains("CAP_NET_BIND_SERVICE"), "{msg}");
        assert!(msg.contains("setcap cap_net_bind_service=+ep"), "{msg}");
        assert!(msg.contains("AmbientCapabilities"), "{msg}");
        assert!(msg.contains("--listen 127.0.0.1:5353"), "{msg}");
        let high = ServerError::Bind {
            addr: "127.0.0.1:5353".parse().unwrap(),
            proto: Protocol::Tcp,
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(!high.to_string().contains("CAP_NET_BIND_SERVICE"));
    }

    #[test]
    fn caps_are_fitted_to_the_open_file_limit() {
        let mut cfg = ServerConfig {
            listen: vec!["127.0.0.1:53".parse().unwrap()],
            udp_sockets_per_addr: 2,
            ..ServerConfig::default()
        };
        assert!(!cfg.clone().fit_descriptors(1 << 20), "plenty");
        assert!(cfg.fit_descriptors(1024));
        let avail = 1024 - RESERVED_DESCRIPTORS - 3;
        assert_eq!(
            cfg.max_tcp_connections,
            DEFAULT_MAX_TCP_CONNECTIONS.min(avail / 4)
        );
        assert_eq!(cfg.max_tcp_connections + cfg.max_udp_inflight, avail);
        let mut tiny = ServerConfig::default();
        assert!(tiny.fit_descriptors(10));
        assert_eq!((tiny.max_tcp_connections, tiny.max_udp_inflight), (16, 16));
    }

    #[test]
    fn eviction_picks_the_longest_idle() {
        let conns = Connections::new(2);
        let me = ClientKey::of([127, 0, 0, 1].into());
        let a = conns.register(me, CancellationToken::new());
        let b = conns.register(me, CancellationToken::new());
        let c = conns.register(me, CancellationToken::new());
        a.last_active.store(50, Ordering::Relaxed);
        b.last_active.store(10, Ordering::Relaxed);
        b.inflight.store(1, Ordering::Relaxed);
        c.last_active.store(20, Ordering::Relaxed);
        assert!(conns.evict_for(me));
        assert!(c.close.is_cancelled(), "b is busy, c idle longer than a");
        assert!(conns.evict_for(me));
        assert!(a.close.is_cancelled());
        assert!(
            !conns.evict_for(me),
            "only a busy connection of the same client is left"
        );
        conns.unregister(a.id);
        assert_eq!(conns.live.lock().unwrap().len(), 2);
    }

    #[test]
    fn connections_are_counted_per_client() {
        let conns = Connections::new(8);
        let me = ClientKey::of([127, 0, 0, 1].into());
        let other = ClientKey::of("2001:db8::1".parse().unwrap());
        let a = conns.register(me, CancellationToken::new());
        let b = conns.register(me, CancellationToken::new());
        let c = conns.register(other, CancellationToken::new());
        assert_eq!((conns.held_by(me), conns.held_by(other)), (2, 1));
        conns.unregister(a.id);
        conns.unregister(a.id);
        assert_eq!(conns.held_by(me), 1, "a second unregister changes nothing");
        conns.unregister(b.id);
        conns.unregister(c.id);
        assert_eq!((conns.held_by(me), conns.held_by(other)), (0, 0));
        assert!(
            conns.held.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    /// With every connection busy, one client holding them all gives one up to another client, but
    /// not to itself, and clients holding about as much as the newcomer are left alone.
    #[test]
    fn with_none_idle_the_client_holding_most_gives_way() {
        let conns = Connections::new(4);
        let flood = ClientKey::of([127, 0, 0, 9].into());
        let other = ClientKey::of([127, 0, 0, 2].into());
        let held: Vec<_> = (0..3)
            .map(|i| {
                let c = conns.register(flood, CancellationToken::new());
                c.inflight.store(1, Ordering::Relaxed);
                c.last_active.store(100 - i, Ordering::Relaxed);
                c
            })
            .collect();
        assert!(!conns.evict_for(flood));
        assert!(conns.evict_for(other));
        assert!(held[2].close.is_cancelled(), "the least recently active");
        assert!(!held[0].close.is_cancelled() && !held[1].close.is_cancelled());
        let mine = conns.register(other, CancellationToken::new());
        mine.inflight.store(1, Ordering::Relaxed);
        // flood holds 2 open, other 1: 2 > 1 + 1 is false.
        assert!(!conns.evict_for(other));
    }
}
