//! Plain DNS over UDP and TCP (`udp://` and `tcp://`): for LAN resolvers and tests only.
//!
//! ```text
//!   UdpTransport: fresh socket on a random port --connect()--> server
//!                 wait for a datagram that answers *this* query (ID + question, or ID alone on a
//!                 bare error); ignore others
//!                 TC=1, or a datagram that fills the 4 KiB buffer? --> same query over
//!                 TcpTransport, within the same deadline
//!   TcpTransport: 2-octet length prefix (RFC 1035 section 4.2.2, RFC 7766 section 8)
//! ```
//!
//! Anti-spoofing (RFC 5452 section 9.1): UDP queries go out from sockets on random ports chosen by
//! the OS, and each socket is `connect()`ed, so the kernel delivers only datagrams from the
//! server's address and port. By default every query gets a new socket. A forwarder's transport
//! ([`PlainOptions::reuse_udp`]) keeps sockets that finished an exchange cleanly and sends later
//! queries from them, one query at a time per socket, each socket for at most
//! [`UDP_SOCKET_MAX_USES`] queries and [`UDP_SOCKET_MAX_AGE`]: a new socket per query cost a fifth
//! of the forwarder's CPU per cache miss (socket, bind, connect, epoll registration and close,
//! measured with `perf`), and the port of a socket toward the one configured upstream is seen only
//! by that upstream and whoever is on the path to it, who could forge answers anyway. The
//! recursor asks servers anyone may run, an attacker's among them, who would learn a reused
//! port: it keeps a new socket per query (as unbound does). dnsdist and dnsmasq also reuse their
//! sockets toward a forwarding target. A socket whose exchange failed or was abandoned (timeout)
//! is closed, never reused: a late answer could otherwise wait in it. The message ID is chosen by [`super::Upstream`]
//! from a CSPRNG. A datagram whose ID or question (compared case-insensitively) does not match the
//! query is dropped and we keep waiting until the deadline: an off-path attacker who guesses wrong
//! cannot make the exchange fail early, and cannot get a forged answer accepted without guessing
//! port and ID together. The one exception to the question match is a bare error (FORMERR,
//! SERVFAIL, NOTIMP or REFUSED with no question and no records, [`super::is_bare_error`]), which
//! servers such as nsd send for a query they reject: it carries no data to plant, and a spoofer
//! still needs port and ID.
//!
//! With [`UdpTransport::exact_case`] (0x20 case randomisation in recursive mode), the question must
//! also match octet for octet: a datagram that differs only in letter case is dropped and the wait
//! goes on, and when the deadline passes after such a drop the exchange fails with
//! [`BadAnswer::QuestionCase`] rather than a plain timeout (the caller's cue for its fallback).
//!
//! Every exchange is bounded by one deadline ([`PlainOptions::timeout`]) that covers the UDP wait
//! and the TCP retry after truncation together. TCP responses are bounded by their 16-bit length
//! prefix (at most 65,535 octets, read into a buffer of exactly that length).
//!
//! TCP connections are reused for later queries (RFC 7766 section 6.2.1): after a complete exchange
//! the connection goes back to a small idle pool (at most [`MAX_IDLE_TCP`] connections, each kept
//! for at most [`TCP_IDLE_KEEP`]). A reused connection that the server has closed in the meantime
//! fails at once; the query is then retried once on a fresh connection.
//!
//! Limitations: no pipelining of several in-flight queries on one TCP connection (each connection
//! carries one query at a time); plain DNS is neither private nor authenticated, which is why it is
//! meant only for servers on the local network.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tracing::debug;

use super::{BadAnswer, BadQuery, Transport, UpstreamError, Via};
use crate::handler::BoxFuture;
use crate::wire::name::NameBuf;
use crate::wire::{Header, Name, Reader, HEADER_LEN};

/// Receive buffer for UDP answers. Every query we send advertises an EDNS payload of
/// `DEFAULT_PAYLOAD` (1232) octets, so a datagram that fills this buffer is not an answer we can
/// trust whole: the exchange moves to TCP, as for TC=1. A socket kept for reuse has its own; a
/// socket for one query reads into one per thread (`UdpTransport::take_waiting_here`).
const UDP_RECV_BUF: usize = 4096;
/// Datagrams that do not answer the query read in one go before the exchange yields (see
/// `UdpTransport::take_waiting`).
const MAX_IGNORED_PER_READ: usize = 16;
/// Most queries sent from one reused UDP socket ([`PlainOptions::reuse_udp`]) before it is closed
/// and a new one, on a new random port, takes its place.
pub const UDP_SOCKET_MAX_USES: u32 = 100;
/// Longest a reused UDP socket lives, however few queries it carried.
pub const UDP_SOCKET_MAX_AGE: Duration = Duration::from_secs(30);
/// Most idle UDP sockets kept per upstream for reuse (each holds a port and a descriptor).
pub const MAX_IDLE_UDP: usize = 128;
/// Most idle TCP connections kept per upstream.
pub const MAX_IDLE_TCP: usize = 4;
/// How long an idle TCP connection is kept for reuse. Servers close idle connections after a few
/// seconds (RFC 7766 section 6.2.3), so keeping them longer only collects dead ones.
pub const TCP_IDLE_KEEP: Duration = Duration::from_secs(5);

/// Options of the plain transports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainOptions {
    /// The whole exchange (UDP wait plus any TCP retry) must finish within this.
    pub timeout: Duration,
    /// Send later UDP queries from sockets that finished an exchange cleanly (forwarding only:
    /// see the module doc). Off: a new socket, on a new random port, per query.
    pub reuse_udp: bool,
}

impl PlainOptions {
    /// The default timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
}

impl Default for PlainOptions {
    fn default() -> Self {
        PlainOptions {
            timeout: Self::DEFAULT_TIMEOUT,
            reuse_udp: false,
        }
    }
}

/// DNS over UDP to one server, retrying over TCP when the answer is truncated.
pub struct UdpTransport {
    server: SocketAddr,
    /// `udp://` and the address, written on first use: the recursor makes a transport per query
    /// and never asks for it, and formatting it cost more than parsing the answer.
    url: OnceLock<String>,
    opts: PlainOptions,
    tcp: TcpTransport,
    /// The question of a UDP answer must match the query's byte for byte ([`Self::exact_case`]).
    exact_case: bool,
    /// A datagram was dropped only because its question's letter case differed.
    case_mismatch: AtomicBool,
    /// Sockets kept for reuse when [`PlainOptions::reuse_udp`] is on. A std Mutex: held only to
    /// push or pop, never across an `.await`.
    idle_udp: Mutex<Vec<UdpSlot>>,
}

/// A UDP socket connected to the server, registered with the runtime, with its receive buffer.
struct UdpSlot {
    sock: AsyncFd<std::net::UdpSocket>,
    buf: Box<[u8]>,
    uses_left: u32,
    born: Instant,
}

impl UdpTransport {
    /// A transport to `server`.
    pub fn new(server: SocketAddr, opts: PlainOptions) -> Self {
        UdpTransport {
            server,
            url: OnceLock::new(),
            tcp: TcpTransport::new(server, opts.clone()),
            opts,
            exact_case: false,
            case_mismatch: AtomicBool::new(false),
            idle_udp: Mutex::new(Vec::new()),
        }
    }

    /// Accepts a UDP answer only when its question is the query's byte for byte, letter case
    /// included (0x20 case randomisation, draft-vixie-dnsext-dns0x20): a datagram that differs
    /// only in case is dropped like one with a wrong ID, and the exchange keeps waiting. Over TCP
    /// (after truncation) the case is not checked: a stream is not open to off-path spoofing.
    pub fn exact_case(mut self) -> Self {
        self.exact_case = true;
        self
    }

    /// True when a datagram was dropped only for its question's letter case: with
    /// [`Self::exact_case`], after an exchange that timed out, the sign of a server that does not
    /// preserve case (or of a spoofer who guessed port and ID but not the case).
    pub fn saw_case_mismatch(&self) -> bool {
        self.case_mismatch.load(Ordering::Relaxed)
    }

    /// One exchange: the query over UDP, and over TCP when the answer is truncated or fills the
    /// receive buffer, all within [`PlainOptions::timeout`] (one timer). The same as
    /// [`Transport::exchange`] without its boxed future, for callers that know the type.
    pub async fn exchange_udp(&self, query: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let deadline = Instant::now() + self.opts.timeout;
        let answer = match timeout_at(deadline, self.udp_once(query)).await {
            Ok(r) => r?,
            Err(_) if self.saw_case_mismatch() => {
                return Err(UpstreamError::BadAnswer(BadAnswer::QuestionCase))
            }
            Err(_) => return Err(UpstreamError::Timeout(self.opts.timeout)),
        };
        if let Some(answer) = answer {
            if !Header::parse(&answer).is_ok_and(|h| h.truncated) {
                return Ok(answer);
            }
        }
        debug!(upstream = %self.url(), "truncated or oversize answer, retrying over TCP");
        self.tcp.exchange_until(query, deadline).await
    }

    /// Sends the query and waits (without a deadline of its own) for a datagram that answers it;
    /// None when one fills the receive buffer (it may have been cut: ask over TCP).
    ///
    /// The query is sent with a plain non-blocking send before the socket is registered with the
    /// runtime, and the socket is registered for read readiness only. A tokio `UdpSocket` would
    /// register for writes too: a fresh socket is writable at once, so the registration itself
    /// woke the I/O driver's thread, and the send waited for that thread to report the readiness.
    /// Per query that was a wake-up and two context switches before the query left (`perf sched`
    /// showed it), with the query held back behind them.
    ///
    /// Before registering, a non-blocking read: a server on this machine may already have
    /// answered (the send wakes it, and where it shares our CPU it often runs at once). Its answer
    /// is then taken here, and the exchange ends without the runtime's I/O driver, so no worker
    /// thread is woken for it. Otherwise the receive costs one system call that finds nothing.
    async fn udp_once(&self, query: &[u8]) -> Result<Option<Vec<u8>>, UpstreamError> {
        if self.opts.reuse_udp {
            return self.udp_reused(query).await;
        }
        let io = UpstreamError::io;
        let sock = self.fresh_socket()?;
        // A fresh socket's send buffer holds far more than one query, so this send does not
        // find it full; if it ever did, the exchange fails like on any other I/O error.
        sock.send(query).map_err(io)?;
        loop {
            match self.take_waiting_here(&sock, query)? {
                Waiting::Answer(answer) => return Ok(answer),
                Waiting::Nothing => break,
                Waiting::More => tokio::task::yield_now().await,
            }
        }
        let sock = register(sock)?;
        self.wait_registered(&sock, query, None).await
    }

    /// [`Self::udp_once`] from a kept socket when one is idle (a new one otherwise), which goes
    /// back to the idle list only after a clean exchange: dropped on error or cancellation.
    async fn udp_reused(&self, query: &[u8]) -> Result<Option<Vec<u8>>, UpstreamError> {
        let mut slot = match self.take_idle_udp() {
            Some(slot) => slot,
            None => UdpSlot {
                sock: register(self.fresh_socket()?)?,
                buf: vec![0u8; UDP_RECV_BUF].into_boxed_slice(),
                uses_left: UDP_SOCKET_MAX_USES,
                born: Instant::now(),
            },
        };
        slot.sock.get_ref().send(query).map_err(UpstreamError::io)?;
        let UdpSlot { sock, buf, .. } = &mut slot;
        // A kept socket is still marked readable from its last answer, so the first wait reads
        // at once: the early read of `udp_once`, without a second read that finds nothing.
        let answer = self.wait_registered(sock, query, Some(buf)).await?;
        slot.uses_left -= 1;
        self.put_idle_udp(slot);
        Ok(answer)
    }

    /// A non-blocking UDP socket on a random port, connected to the server: two system calls.
    ///
    /// The socket is made non-blocking (and close-on-exec) by `socket(2)` itself, and it is not
    /// bound: `connect(2)` binds an unbound UDP socket to an ephemeral port the kernel picks at
    /// random from `ip_local_port_range`, the same choice as `bind(2)` to port 0 (Linux
    /// `udp_lib_get_port`). A `std` socket took two more calls per query (`bind`, and `ioctl` for
    /// non-blocking mode): for the recursor 2.7 of its 15 system calls per cold name on the
    /// benchmark hierarchy (`benches/kernel_recursive.py`).
    fn fresh_socket(&self) -> Result<std::net::UdpSocket, UpstreamError> {
        use socket2::{Domain, Protocol, Socket, Type};
        let io = UpstreamError::io;
        let sock = Socket::new(
            Domain::for_address(self.server),
            Type::DGRAM.nonblocking(),
            Some(Protocol::UDP),
        )
        .map_err(io)?;
        sock.connect(&self.server.into())
            .map_err(|e| UpstreamError::connect(self.server, e))?;
        Ok(sock.into())
    }

    /// Waits on the runtime for a datagram on `sock` that answers `query`, read into `buf` (None:
    /// this thread's buffer, borrowed only while reading).
    async fn wait_registered(
        &self,
        sock: &AsyncFd<std::net::UdpSocket>,
        query: &[u8],
        mut buf: Option<&mut [u8]>,
    ) -> Result<Option<Vec<u8>>, UpstreamError> {
        loop {
            let mut ready = sock.readable().await.map_err(UpstreamError::io)?;
            let taken = match buf.as_deref_mut() {
                Some(buf) => self.take_waiting(sock.get_ref(), query, buf),
                None => self.take_waiting_here(sock.get_ref(), query),
            };
            match taken? {
                Waiting::Answer(answer) => return Ok(answer),
                Waiting::Nothing => ready.clear_ready(),
                Waiting::More => {
                    drop(ready);
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    fn take_idle_udp(&self) -> Option<UdpSlot> {
        // Lock held only for the pops; no `.await` inside. Sockets past their age are dropped
        // (closed) after the lock is released.
        let mut old = Vec::new();
        let slot = {
            let mut idle = self.idle_udp.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match idle.pop() {
                    Some(s) if s.born.elapsed() >= UDP_SOCKET_MAX_AGE => old.push(s),
                    other => break other,
                }
            }
        };
        drop(old);
        slot
    }

    fn put_idle_udp(&self, slot: UdpSlot) {
        if slot.uses_left == 0 || slot.born.elapsed() >= UDP_SOCKET_MAX_AGE {
            return;
        }
        // Lock held only for the push; no `.await` inside.
        let mut idle = self.idle_udp.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_UDP {
            idle.push(slot);
        }
    }

    /// Idle UDP sockets kept for reuse right now.
    pub fn idle_udp_sockets(&self) -> usize {
        // Lock held only to read the length.
        self.idle_udp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// [`Self::take_waiting`] with this thread's receive buffer. The buffer is borrowed only for
    /// the non-blocking reads, never across an `.await`, so one per thread serves every exchange
    /// on it; a fresh zeroed buffer per query cost more than the rest of its parsing.
    fn take_waiting_here(
        &self,
        sock: &std::net::UdpSocket,
        query: &[u8],
    ) -> Result<Waiting, UpstreamError> {
        thread_local! {
            static RECV_BUF: std::cell::RefCell<Vec<u8>> =
                std::cell::RefCell::new(vec![0u8; UDP_RECV_BUF]);
        }
        RECV_BUF.with(|buf| match buf.try_borrow_mut() {
            Ok(mut buf) => self.take_waiting(sock, query, &mut buf),
            // Not reachable (nothing here re-enters), but never worth a panic.
            Err(_) => self.take_waiting(sock, query, &mut vec![0u8; UDP_RECV_BUF]),
        })
    }

    /// Reads the datagrams waiting on `sock` (connected to the server, non-blocking) until one
    /// answers `query`, none is left, or [`MAX_IGNORED_PER_READ`] did not answer it. The bound
    /// keeps a flood of datagrams from the server's address (a spoofer who found our port) from
    /// holding the thread: the exchange yields, and its deadline still runs. ICMP errors (port
    /// unreachable) surface as a receive error, which fails the exchange fast.
    fn take_waiting(
        &self,
        sock: &std::net::UdpSocket,
        query: &[u8],
        buf: &mut [u8],
    ) -> Result<Waiting, UpstreamError> {
        for _ in 0..MAX_IGNORED_PER_READ {
            let n = match sock.recv(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Ok(Waiting::Nothing)
                }
                // ICMP port unreachable: nothing listens there, as a refused TCP connect.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(UpstreamError::connect(self.server, e))
                }
                Err(e) => return Err(UpstreamError::io(e)),
            };
            let datagram = &buf[..n];
            let matched = match question_match(query, datagram) {
                QuestionMatch::Exact => true,
                QuestionMatch::IgnoringCase if self.exact_case => {
                    self.case_mismatch.store(true, Ordering::Relaxed);
                    debug!(upstream = %self.url(), "dropping an answer whose question's case differs");
                    false
                }
                QuestionMatch::IgnoringCase => true,
                QuestionMatch::No => false,
            };
            if matched {
                // One that fills the buffer may have been cut: None sends the query to TCP.
                return Ok(Waiting::Answer((n < buf.len()).then(|| datagram.to_vec())));
            }
            debug!(upstream = %self.url(), len = n, "ignoring a datagram that is not our answer");
        }
        Ok(Waiting::More)
    }
}

/// `sock` registered with the runtime for read readiness only.
///
/// `with_interest` is deprecated because a wrapped value could hand out a different or closed
/// descriptor later (tokio PR 8587); its replacement is an `unsafe fn`, which this crate forbids.
/// A `std::net::UdpSocket` owns its descriptor and returns that same one until it is dropped,
/// which is the condition the replacement asks its caller to promise. A datagram that arrived
/// before the registration makes it report the socket readable at once.
fn register(sock: std::net::UdpSocket) -> Result<AsyncFd<std::net::UdpSocket>, UpstreamError> {
    #[allow(deprecated)]
    AsyncFd::with_interest(sock, Interest::READABLE).map_err(UpstreamError::io)
}

/// What [`UdpTransport::take_waiting`] found.
#[derive(Debug, PartialEq, Eq)]
enum Waiting {
    /// The answer (None when it filled the receive buffer).
    Answer(Option<Vec<u8>>),
    /// No datagram left.
    Nothing,
    /// Only datagrams that do not answer the query, and maybe more of them.
    More,
}

impl Transport for UdpTransport {
    fn exchange<'a>(&'a self, query: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.exchange_udp(query))
    }

    fn url(&self) -> &str {
        self.url.get_or_init(|| format!("udp://{}", self.server))
    }

    /// Closes the kept UDP sockets (after a network change their source address may be gone)
    /// and the idle connections of the TCP fallback.
    fn reset(&self) {
        let idle = std::mem::take(&mut *self.idle_udp.lock().unwrap_or_else(|e| e.into_inner()));
        drop(idle);
        self.tcp.reset();
    }
}

/// An idle TCP connection and when it went idle.
struct IdleConn {
    stream: TcpStream,
    since: Instant,
}

/// DNS over TCP to one server.
pub struct TcpTransport {
    server: SocketAddr,
    /// `tcp://` and the address, written on first use (see `UdpTransport::url`).
    url: OnceLock<String>,
    opts: PlainOptions,
    /// Idle connections for reuse. A std Mutex: it is only held to push or pop, never across an
    /// `.await`.
    idle: Mutex<Vec<IdleConn>>,
}

impl TcpTransport {
    /// A transport to `server`.
    pub fn new(server: SocketAddr, opts: PlainOptions) -> Self {
        TcpTransport {
            server,
            url: OnceLock::new(),
            opts,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// One exchange that must finish by `deadline`.
    async fn exchange_until(
        &self,
        query: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        let query_len = u16::try_from(query.len())
            .map_err(|_| UpstreamError::BadQuery(BadQuery::Length(query.len())))?;
        let mut frame = Vec::with_capacity(2 + query.len());
        frame.extend_from_slice(&query_len.to_be_bytes());
        frame.extend_from_slice(query);
        let work = async {
            if let Some(mut stream) = self.take_idle() {
                match exchange_on(&mut stream, &frame, query).await {
                    Ok(answer) => {
                        self.put_idle(stream);
                        return Ok(answer);
                    }
                    // The server may have closed the idle connection: try once more, fresh.
                    Err(e) => {
                        debug!(upstream = %self.url(), error = %e, "reused connection failed")
                    }
                }
            }
            let mut stream = TcpStream::connect(self.server)
                .await
                .map_err(|e| UpstreamError::connect(self.server, e))?;
            let _ = stream.set_nodelay(true);
            let answer = exchange_on(&mut stream, &frame, query).await?;
            self.put_idle(stream);
            Ok(answer)
        };
        match timeout_at(deadline, work).await {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout(self.opts.timeout)),
        }
    }

    /// Closes every idle connection (after a network change they are most likely dead).
    pub fn reset(&self) {
        // Lock held only to take the list; the streams are closed after it is released.
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        drop(idle);
    }

    /// Idle connections kept right now.
    pub fn idle_connections(&self) -> usize {
        // Lock held only to read the length.
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn take_idle(&self) -> Option<TcpStream> {
        // Lock held only for the pop; no `.await` inside.
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        idle.retain(|c| now.duration_since(c.since) < TCP_IDLE_KEEP);
        idle.pop().map(|c| c.stream)
    }

    fn put_idle(&self, stream: TcpStream) {
        // Lock held only for the push; no `.await` inside.
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_TCP {
            idle.push(IdleConn {
                stream,
                since: Instant::now(),
            });
        }
    }
}

impl Transport for TcpTransport {
    fn exchange<'a>(&'a self, query: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.exchange_until(query, Instant::now() + self.opts.timeout))
    }

    fn url(&self) -> &str {
        self.url.get_or_init(|| format!("tcp://{}", self.server))
    }

    /// Closes every idle connection; connections busy with a query finish it and are then kept.
    fn reset(&self) {
        TcpTransport::reset(self);
    }
}

/// Writes one framed query and reads one framed answer, which must answer `query`.
async fn exchange_on(
    stream: &mut TcpStream,
    frame: &[u8],
    query: &[u8],
) -> Result<Vec<u8>, UpstreamError> {
    let io = UpstreamError::stream_io;
    stream.write_all(frame).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let len = u16::from_be_bytes(len) as usize;
    if len < HEADER_LEN {
        return Err(UpstreamError::BadAnswer(BadAnswer::Short {
            via: Via::Tcp,
            len,
        }));
    }
    let mut answer = vec![0u8; len];
    stream.read_exact(&mut answer).await.map_err(io)?;
    // Over TCP a mismatch is not a spoofing attempt but a confused server: fail, and since the
    // connection is then dropped, no later query can read this stream out of step.
    if !answers_query(query, &answer) {
        return Err(UpstreamError::BadAnswer(BadAnswer::Mismatch {
            via: Via::Tcp,
        }));
    }
    Ok(answer)
}

/// True when `answer` is a response (QR=1) with the ID and question section of `query` (names
/// compared case-insensitively, RFC 4343), or a bare error with its ID ([`super::is_bare_error`]).
/// Malformed input is simply `false`.
pub fn answers_query(query: &[u8], answer: &[u8]) -> bool {
    question_match(query, answer) != QuestionMatch::No
}

/// The first question's name of `msg`, if it has one that parses.
pub fn question_name_of(msg: &[u8]) -> Option<Name> {
    let h = Header::parse(msg).ok()?;
    if h.qdcount == 0 {
        return None;
    }
    let mut r = Reader::new(msg);
    r.take(HEADER_LEN).ok()?;
    Name::read(&mut r).ok()
}

/// How an answer's header and question section match a query's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuestionMatch {
    /// ID, opcode and question octet for octet (a bare error: ID and opcode).
    Exact,
    /// As `Exact`, except for the letter case of a name.
    IgnoringCase,
    /// Not an answer to the query (or malformed).
    No,
}

/// Compares `answer` with `query`: QR=1, the same ID and opcode, and the same question section,
/// names first compared octet for octet and then ignoring ASCII case; a bare error with no
/// question ([`super::is_bare_error`]) matches on its ID alone. Bounded by the query's question
/// count; malformed input is [`QuestionMatch::No`].
pub fn question_match(query: &[u8], answer: &[u8]) -> QuestionMatch {
    let (Ok(qh), Ok(ah)) = (Header::parse(query), Header::parse(answer)) else {
        return QuestionMatch::No;
    };
    if !ah.response || ah.id != qh.id || ah.opcode != qh.opcode {
        return QuestionMatch::No;
    }
    if ah.qdcount != qh.qdcount {
        return if ah.qdcount == 0 && super::is_bare_error(&ah) {
            QuestionMatch::Exact
        } else {
            QuestionMatch::No
        };
    }
    let mut qr = Reader::new(query);
    let mut ar = Reader::new(answer);
    if qr.take(HEADER_LEN).is_err() || ar.take(HEADER_LEN).is_err() {
        return QuestionMatch::No;
    }
    let mut result = QuestionMatch::Exact;
    for _ in 0..qh.qdcount {
        let same = (|| {
            // Read on the stack: the names are only compared.
            let (mut qn, mut an) = (NameBuf::new(), NameBuf::new());
            qn.read_from(&mut qr).ok()?;
            an.read_from(&mut ar).ok()?;
            let qtc = qr.array::<4>().ok()?;
            let atc = ar.array::<4>().ok()?;
            if qtc != atc || !qn.eq_ignore_case(&an) {
                return Some(QuestionMatch::No);
            }
            Some(if qn.as_wire() == an.as_wire() {
                QuestionMatch::Exact
            } else {
                QuestionMatch::IgnoringCase
            })
        })();
        match same {
            Some(QuestionMatch::Exact) => {}
            Some(QuestionMatch::IgnoringCase) => result = QuestionMatch::IgnoringCase,
            _ => return QuestionMatch::No,
        }
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::wire::{Message, RType, Rcode};

    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut m = Message::query(name.parse().unwrap(), RType::A);
        m.header.id = id;
        m.encode().unwrap()
    }

    fn answer_to(q: &[u8]) -> Message {
        let mut m = Message::response_to(&Message::parse(q).unwrap());
        m.header.recursion_available = false;
        m
    }

    /// The query leaves during the exchange's first poll, before the runtime's I/O driver has run
    /// at all (here it never runs: nothing drives the runtime), so a receive thread that starts
    /// a query inline (`server::inline`) gets it out without waking a worker.
    #[test]
    fn the_udp_query_leaves_in_the_first_poll() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ctx = rt.enter();
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let t = UdpTransport::new(server.local_addr().unwrap(), PlainOptions::default());
        let q = query(0x4242, "first.poll.example");
        let mut exchange = t.exchange(&q);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(exchange.as_mut().poll(&mut cx).is_pending());
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &q[..]);
    }

    /// Datagrams from the server that do not answer the query are read at most
    /// `MAX_IGNORED_PER_READ` at a time (a flood cannot hold the thread), and the answer behind
    /// them is still found.
    #[test]
    fn a_flood_of_wrong_datagrams_is_read_in_bounded_steps() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let t = UdpTransport::new(server.local_addr().unwrap(), PlainOptions::default());
        let q = query(0x7777, "flood.example");
        let mut wrong = answer_to(&q);
        wrong.header.id = 0x7778;
        let wrong = wrong.encode().unwrap();
        let right = answer_to(&q).encode().unwrap();
        let to = client.local_addr().unwrap();
        for _ in 0..MAX_IGNORED_PER_READ + 4 {
            server.send_to(&wrong, to).unwrap();
        }
        server.send_to(&right, to).unwrap();
        // Loopback delivers at send time: everything is queued now.
        let mut buf = vec![0u8; UDP_RECV_BUF];
        assert_eq!(
            t.take_waiting(&client, &q, &mut buf).unwrap(),
            Waiting::More
        );
        assert_eq!(
            t.take_waiting(&client, &q, &mut buf).unwrap(),
            Waiting::Answer(Some(right))
        );
        assert_eq!(
            t.take_waiting(&client, &q, &mut buf).unwrap(),
            Waiting::Nothing
        );
    }

    #[test]
    fn the_question_matcher_tells_exact_case_from_other_case() {
        let q = query(0x2020, "wWw.ExAmple.COM");
        let a = answer_to(&q);
        assert_eq!(
            question_match(&q, &a.encode().unwrap()),
            QuestionMatch::Exact
        );
        for other in ["www.example.com", "WWW.EXAMPLE.COM", "wWw.ExAmple.COm"] {
            let mut m = a.clone();
            m.questions[0].name = other.parse().unwrap();
            assert_eq!(
                question_match(&q, &m.encode().unwrap()),
                QuestionMatch::IgnoringCase,
                "{other}"
            );
        }
        let mut m = a.clone();
        m.questions[0].name = "wWw.ExAmple.net".parse().unwrap();
        assert_eq!(question_match(&q, &m.encode().unwrap()), QuestionMatch::No);
        let mut m = a.clone();
        m.header.id = 0x2021;
        assert_eq!(question_match(&q, &m.encode().unwrap()), QuestionMatch::No);
        assert_eq!(question_match(&q, &q), QuestionMatch::No, "QR=0");
        assert_eq!(question_match(&q, &[0u8; 3]), QuestionMatch::No);
    }

    /// With exact case, a datagram whose question differs only in case is dropped like one with
    /// a wrong ID, the right one behind it is taken, and the drop is remembered.
    #[test]
    fn exact_case_drops_an_answer_in_another_case_and_keeps_waiting() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let q = query(0x0020, "wWw.ExAmple.COM");
        let mut forged = answer_to(&q);
        forged.questions[0].name = "www.example.com".parse().unwrap();
        let forged = forged.encode().unwrap();
        let right = answer_to(&q).encode().unwrap();
        let to = client.local_addr().unwrap();
        let mut buf = vec![0u8; UDP_RECV_BUF];
        // Without exact case the forged one is taken.
        let loose = UdpTransport::new(server.local_addr().unwrap(), PlainOptions::default());
        server.send_to(&forged, to).unwrap();
        assert_eq!(
            loose.take_waiting(&client, &q, &mut buf).unwrap(),
            Waiting::Answer(Some(forged.clone()))
        );
        assert!(!loose.saw_case_mismatch());
        let exact =
            UdpTransport::new(server.local_addr().unwrap(), PlainOptions::default()).exact_case();
        server.send_to(&forged, to).unwrap();
        assert_eq!(
            exact.take_waiting(&client, &q, &mut buf).unwrap(),
            Waiting::Nothing
        );
        assert!(exact.saw_case_mismatch());
        server.send_to(&forged, to).unwrap();
        server.send_to(&right, to).unwrap();
        assert_eq!(
            exact.take_waiting(&client, &q, &mut buf).unwrap(),
            Waiting::Answer(Some(right))
        );
    }

    #[test]
    fn matches_id_question_and_qr() {
        let q = query(0x1234, "www.example.com");
        let a = answer_to(&q);
        assert!(answers_query(&q, &a.encode().unwrap()));

        let mut upper = a.clone();
        upper.questions[0].name = "WWW.EXAMPLE.COM".parse().unwrap();
        assert!(answers_query(&q, &upper.encode().unwrap()));

        let mut wrong_id = a.clone();
        wrong_id.header.id = 0x1235;
        assert!(!answers_query(&q, &wrong_id.encode().unwrap()));

        let mut wrong_name = a.clone();
        wrong_name.questions[0].name = "www.example.net".parse().unwrap();
        assert!(!answers_query(&q, &wrong_name.encode().unwrap()));

        let mut wrong_type = a.clone();
        wrong_type.questions[0].qtype = RType::AAAA;
        assert!(!answers_query(&q, &wrong_type.encode().unwrap()));

        let mut no_question = a.clone();
        no_question.questions.clear();
        assert!(!answers_query(&q, &no_question.encode().unwrap()));
        // An error may leave the question out (nsd's FORMERR and REFUSED do), as long as it
        // carries no records.
        for rcode in super::super::BARE_ERRORS {
            let mut bare = no_question.clone();
            bare.set_rcode(rcode);
            assert!(answers_query(&q, &bare.encode().unwrap()), "{rcode}");
            let mut bare_wrong_id = bare.clone();
            bare_wrong_id.header.id = 0x1235;
            assert!(!answers_query(&q, &bare_wrong_id.encode().unwrap()));
        }
        let mut nx = no_question.clone();
        nx.set_rcode(Rcode::NXDOMAIN);
        assert!(!answers_query(&q, &nx.encode().unwrap()));
        let mut with_data = no_question.clone();
        with_data.set_rcode(Rcode::REFUSED);
        with_data.answers.push(crate::wire::Record::new(
            "www.example.com".parse().unwrap(),
            60,
            crate::wire::RData::A("192.0.2.1".parse().unwrap()),
        ));
        assert!(!answers_query(&q, &with_data.encode().unwrap()));

        let full = a.encode().unwrap();
        assert!(!answers_query(&q, &full[..full.len() - 3]));

        let mut not_response = a;
        not_response.header.response = false;
        assert!(!answers_query(&q, &not_response.encode().unwrap()));

        // The query itself reflected back is not an answer; garbage is not either.
        assert!(!answers_query(&q, &q));
        assert!(!answers_query(&q, &[0x12, 0x34, 0x80]));
    }

    #[test]
    fn default_timeout_is_two_seconds() {
        assert_eq!(PlainOptions::default().timeout, Duration::from_secs(2));
    }

    /// A server on a thread that answers every query, `batch` queries at a time (it answers none
    /// until it holds that many), and reports the source port each came from.
    fn answering_server(batch: usize) -> (SocketAddr, std::sync::mpsc::Receiver<u16>) {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let (ports, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || loop {
            let mut held = Vec::new();
            let mut buf = [0u8; 512];
            while held.len() < batch {
                let Ok((n, from)) = server.recv_from(&mut buf) else {
                    return;
                };
                if ports.send(from.port()).is_err() {
                    return;
                }
                held.push((answer_to(&buf[..n]).encode().unwrap(), from));
            }
            for (answer, from) in held {
                let _ = server.send_to(&answer, from);
            }
        });
        (addr, rx)
    }

    fn reusing() -> PlainOptions {
        PlainOptions {
            reuse_udp: true,
            ..PlainOptions::default()
        }
    }

    /// A forwarder's transport sends later queries from the socket of an earlier clean exchange,
    /// at most `UDP_SOCKET_MAX_USES` times, then from a new one.
    #[tokio::test]
    async fn reused_udp_sockets_keep_their_port_until_their_uses_run_out() {
        let (addr, ports) = answering_server(1);
        let t = UdpTransport::new(addr, reusing());
        let mut seen = Vec::new();
        for i in 0..=UDP_SOCKET_MAX_USES {
            let q = query(i as u16, "reuse.example");
            let answer = t.exchange(&q).await.unwrap();
            assert_eq!(answer[..2], q[..2]);
            seen.push(ports.recv().unwrap());
        }
        let first = seen[0];
        let uses = seen.iter().take_while(|&&p| p == first).count();
        assert_eq!(uses, UDP_SOCKET_MAX_USES as usize, "ports: {seen:?}");
        assert_ne!(seen[UDP_SOCKET_MAX_USES as usize], first);
        assert_eq!(t.idle_udp_sockets(), 1);
        t.reset();
        assert_eq!(t.idle_udp_sockets(), 0);
    }

    /// Without reuse (the recursor) no socket is kept; with it, a socket whose exchange timed
    /// out is closed, not kept (a late answer could wait in it).
    #[tokio::test]
    async fn only_clean_exchanges_keep_their_socket() {
        let (addr, _ports) = answering_server(1);
        let fresh = UdpTransport::new(addr, PlainOptions::default());
        fresh.exchange(&query(1, "fresh.example")).await.unwrap();
        assert_eq!(fresh.idle_udp_sockets(), 0);

        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let opts = PlainOptions {
            timeout: Duration::from_millis(50),
            ..reusing()
        };
        let t = UdpTransport::new(silent.local_addr().unwrap(), opts);
        assert!(matches!(
            t.exchange(&query(2, "silent.example")).await,
            Err(UpstreamError::Timeout(_))
        ));
        assert_eq!(t.idle_udp_sockets(), 0);
    }

    /// Two exchanges in flight at once use two sockets (one query per socket at a time), and both
    /// go back to the idle list.
    #[tokio::test]
    async fn concurrent_exchanges_do_not_share_a_socket() {
        // Neither is answered before both are asked.
        let (addr, ports) = answering_server(2);
        let t = UdpTransport::new(addr, reusing());
        let (a, b) = (query(10, "a.example"), query(11, "b.example"));
        let (ra, rb) = tokio::join!(t.exchange(&a), t.exchange(&b));
        assert_eq!(ra.unwrap()[..2], a[..2]);
        assert_eq!(rb.unwrap()[..2], b[..2]);
        assert_ne!(ports.recv().unwrap(), ports.recv().unwrap());
        assert_eq!(t.idle_udp_sockets(), 2);
    }
}
