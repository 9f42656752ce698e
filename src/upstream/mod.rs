//! Upstream resolvers: where a query goes when no local stage can answer it.
//!
//! ```text
//!   forward handler --Message--> Upstream (validate) --bytes--> Transport (udp/tcp/tls/https)
//! ```
//!
//! A [`Transport`] moves wire bytes to one server and back: connection reuse, pipelining, framing,
//! TLS. [`Upstream`] wraps any transport with the checks every answer must pass before we believe it
//! (random ID, matching ID and question, sane size), so no transport can forget them.
//! [`UpstreamGroup`] (pool.rs) spreads queries over several upstreams: strategy, retries, hedging,
//! circuit breakers. [`netwatch`] resets every transport when the network changes under us.
//! [`UpstreamError`] (error.rs) says why an exchange failed, with its cause kept as a value.
//!
//! Privacy: the query we send is rebuilt from the client's question only – a fresh ID, RD=1, CD
//! copied, and our own OPT record (payload 1232, DO copied). No client EDNS option (Client Subnet
//! (RFC 7871 section 11.1 lets a stub strip it), cookies, padding, anything unknown) ever leaves.
//!
//! Fail closed: nothing here ever builds a transport that was not configured. An encrypted
//! upstream that fails is retried on another configured upstream or reported as a failure, never
//! asked again in plaintext.

pub mod doh;
pub mod dot;
pub mod error;
pub mod frames;
mod h2drive;
pub mod netwatch;
pub mod network;
pub mod padding;
pub mod plain;
pub mod pool;
pub mod tls;
pub mod url;

pub use error::{
    BadAnswer, BadConfig, BadQuery, CaFileProblem, ConnectCause, HttpError, Lost, PinProblem,
    UpstreamError, Via,
};
pub use pool::{PoolConfig, Strategy, UpstreamGroup, MAX_ATTEMPTS};
pub use url::UpstreamUrl;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::handler::BoxFuture;
use crate::metrics::{UpstreamCounters, UpstreamCounts};
use crate::wire::edns::DEFAULT_PAYLOAD;
use bytes::Bytes;
pub use tls::TransportStats;

use crate::wire::{simple, Header, Message, Opcode, QueryFlags, Question, Rcode};

/// Admission to a transport's in-flight cap: a free slot at once, or a place in the semaphore's
/// (fair, first come first served) queue until `deadline`. Queueing rather than failing at the
/// cap matters under a burst of misses: the cap bounds what one connection carries, and a query
/// that waits a millisecond for a slot is better off than one that fails over (or SERVFAILs).
pub(crate) async fn admit(
    permits: &tokio::sync::Semaphore,
    deadline: tokio::time::Instant,
) -> Result<tokio::sync::SemaphorePermit<'_>, UpstreamError> {
    if let Ok(permit) = permits.try_acquire() {
        return Ok(permit);
    }
    match tokio::time::timeout_at(deadline, permits.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        // Timed out in the queue, or the semaphore was closed (never, in practice).
        _ => Err(UpstreamError::Overloaded),
    }
}

/// Moves one query's wire bytes to a server and returns the response's wire bytes.
///
/// The transport may rewrite the message ID on the wire (to multiplex several queries on one
/// connection) but must return the response with the ID of `query` restored.
pub trait Transport: Send + Sync + 'static {
    /// One exchange. Bounded in time by the transport's own timeout.
    fn exchange<'a>(&'a self, query: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>>;

    /// The upstream's URL, for logs and metrics.
    fn url(&self) -> &str;

    /// Drops pooled connections (and any connection backoff) because the network changed: new
    /// addresses, a resume from suspend. Queries in flight may fail or be retried on a fresh
    /// connection; later queries open one. The default does nothing (nothing is pooled).
    fn reset(&self) {}

    /// Connection counters (handshakes, ...) of a transport that keeps connections; `None` for
    /// one that does not (plain UDP).
    fn stats(&self) -> Option<TransportStats> {
        None
    }
}

/// The query we send upstream for `question`, with message ID `id`: the flags the caller chose
/// for its purpose (forwarding: RD=1 and the client's DO and CD; validation:
/// [`QueryFlags::VALIDATION`]) and our own EDNS (payload 1232, no options at all).
pub fn outgoing_query(question: &Question, flags: QueryFlags, id: u16) -> Message {
    Message::outgoing(question, flags, id, DEFAULT_PAYLOAD)
}

/// The flags a forwarder sends a client's query with: RD=1, the client's DO and CD.
pub fn forwarding_flags(client_query: &Message) -> QueryFlags {
    QueryFlags {
        recursion_desired: true,
        ..QueryFlags::of(client_query)
    }
}

/// A checked answer from an upstream: the bytes as they came (the ID is ours, a random one; the
/// rest is as the upstream sent it) and, unless they were checked on the wire, the message they
/// parse to.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The parsed answer; `None` for an answer of the simple shape ([`crate::wire::simple`]):
    /// checked on the wire, and one that scrubbing would leave exactly as it is.
    pub parsed: Option<Message>,
    pub wire: Bytes,
    /// The URL of the upstream that answered.
    pub upstream: Arc<str>,
    rcode: Rcode,
}

impl Reply {
    /// The response code.
    pub fn rcode(&self) -> Rcode {
        self.rcode
    }

    /// The whole answer, parsed: the parsed form if it has one, else parsed from the bytes now
    /// (checked bytes, so this does not fail in practice).
    pub fn take_message(&mut self) -> Result<Message, UpstreamError> {
        match self.parsed.take() {
            Some(m) => Ok(m),
            None => Message::parse(&self.wire)
                .map_err(|e| UpstreamError::BadAnswer(BadAnswer::Parse(e))),
        }
    }
}

/// True for a response header that may leave the question out: an error (FORMERR, SERVFAIL,
/// NOTIMP, REFUSED) with no question, answer or authority records and at most an OPT record. Many
/// servers (nsd, for one) answer a query they reject with such a bare header, and RFC 1035 does not
/// ask an error to echo the question; dropping it as a non-answer would leave the query to time out
/// and count the server as down. It carries no data a spoofer could plant, and the ID (and, for
/// plain UDP, the address and port) must still match.
pub fn is_bare_error(h: &Header) -> bool {
    h.response
        && h.qdcount == 0
        && h.ancount == 0
        && h.nscount == 0
        && h.arcount <= 1
        && BARE_ERRORS.iter().any(|r| r.low() == h.rcode_low)
}

/// The response codes a bare error ([`is_bare_error`]) may carry.
const BARE_ERRORS: [Rcode; 4] = [
    Rcode::FORMERR,
    Rcode::SERVFAIL,
    Rcode::NOTIMP,
    Rcode::REFUSED,
];

/// Parses `raw` and checks that it answers `sent`: QR=1, same ID, same opcode and same questions
/// (names case-insensitively, type, class), or no question in a bare error ([`is_bare_error`]),
/// which is returned with `sent`'s question filled in.
pub fn check_answer(sent: &Message, raw: &[u8]) -> Result<Message, UpstreamError> {
    check_answer_to(&sent.questions, sent.header.id, sent.header.opcode, raw)
}

/// [`check_answer`] for a query given by its parts (`questions`, `id`, `opcode`): for callers that
/// write their queries without a [`Message`] ([`Message::encode_outgoing`]).
pub fn check_answer_to(
    questions: &[Question],
    id: u16,
    opcode: Opcode,
    raw: &[u8],
) -> Result<Message, UpstreamError> {
    let bad = |why| Err(UpstreamError::BadAnswer(why));
    let answer = match Message::parse(raw) {
        Ok(answer) => answer,
        Err(e) => return bad(BadAnswer::Parse(e)),
    };
    if !answer.header.response {
        return bad(BadAnswer::NotResponse);
    }
    if answer.header.id != id {
        return bad(BadAnswer::Id {
            got: answer.header.id,
            sent: id,
        });
    }
    if answer.header.opcode != opcode {
        return bad(BadAnswer::Opcode {
            got: answer.header.opcode,
            sent: opcode,
        });
    }
    // `Question`'s equality compares names case-insensitively (RFC 4343).
    if answer.questions == questions {
        return Ok(answer);
    }
    if answer.questions.is_empty() && Header::parse(raw).is_ok_and(|h| is_bare_error(&h)) {
        // From here on it is an ordinary error response to our question (so the cache can keep
        // a SERVFAIL for its short time, RFC 2308 section 7.1).
        let mut answer = answer;
        answer.questions = questions.to_vec();
        return Ok(answer);
    }
    bad(BadAnswer::Question)
}

/// One upstream: a transport plus the checks every answer must pass.
pub struct Upstream {
    transport: Arc<dyn Transport>,
    /// The transport's URL, shared with every [`Reply`] (the query log names it).
    url: Arc<str>,
    timeout: Duration,
    counters: UpstreamCounters,
}

impl Upstream {
    /// An upstream over `transport`; every exchange through [`Upstream::ask`] is abandoned after
    /// `timeout` (a safety net over the transport's own timeout; the pool's attempts have their
    /// own give-up time instead).
    pub fn new(transport: Arc<dyn Transport>, timeout: Duration) -> Self {
        Upstream {
            url: Arc::from(transport.url()),
            transport,
            timeout,
            counters: UpstreamCounters::default(),
        }
    }

    /// The upstream's URL.
    pub fn url(&self) -> &str {
        self.transport.url()
    }

    /// What this upstream did so far: exchanges, failures, latency.
    pub fn counts(&self) -> UpstreamCounts {
        self.counters.snapshot()
    }

    /// The transport's connection counters, if it keeps connections.
    pub fn transport_stats(&self) -> Option<TransportStats> {
        self.transport.stats()
    }

    /// Drops the transport's pooled connections ([`Transport::reset`]).
    pub fn reset(&self) {
        self.transport.reset();
    }

    /// Asks `question` with `flags` (the query built by [`outgoing_query`] with a random ID) and
    /// returns the checked answer with the bytes it came in. The answer carries our ID.
    pub async fn ask(
        &self,
        question: &Question,
        flags: QueryFlags,
    ) -> Result<Reply, UpstreamError> {
        self.ask_bounded(question, flags, true).await
    }

    /// [`Upstream::ask`] for the pool, which bounds every attempt in time itself (its give-up
    /// time, never past the query's deadline): no timer of this layer's own on top.
    pub(crate) async fn ask_attempt(
        &self,
        question: &Question,
        flags: QueryFlags,
    ) -> Result<Reply, UpstreamError> {
        self.ask_bounded(question, flags, false).await
    }

    /// The exchange and the checks; with `bounded`, abandoned after `timeout`.
    async fn ask_bounded(
        &self,
        question: &Question,
        flags: QueryFlags,
        bounded: bool,
    ) -> Result<Reply, UpstreamError> {
        // `rand::random` draws from the thread-local CSPRNG (ChaCha, seeded from the OS).
        let id = rand::random::<u16>();
        // The query `outgoing_query` builds, written as its encoding.
        let wire = Message::encode_outgoing(question, flags, id, Some(DEFAULT_PAYLOAD));
        let start = Instant::now();
        let exchange = self.transport.exchange(&wire);
        let exchanged = if bounded {
            tokio::time::timeout(self.timeout, exchange)
                .await
                .map_err(|_| UpstreamError::Timeout(self.timeout))
        } else {
            Ok(exchange.await)
        };
        let checked = exchanged.and_then(|r| {
            let raw = r?;
            // The common shape is checked on the bytes; anything else is parsed and checked.
            if let Some(rcode) = simple::check(&raw, id, Opcode::QUERY, question) {
                return Ok((raw, None, rcode));
            }
            let message = check_answer_to(std::slice::from_ref(question), id, Opcode::QUERY, &raw)?;
            let rcode = message.rcode();
            Ok((raw, Some(message), rcode))
        });
        // A future dropped before this point (the pool moved on) is not counted.
        self.counters.record(checked.is_ok(), start.elapsed());
        let (raw, parsed, rcode) = checked?;
        Ok(Reply {
            upstream: self.url.clone(),
            parsed,
            wire: Bytes::from(raw),
            rcode,
        })
    }

    /// Forwards the client's query `q` ([`forwarding_flags`]) and returns the checked answer
    /// (for `dnsveil query` and tests; the forwarder goes through a pool).
    pub async fn query(&self, q: &Message) -> Result<Message, UpstreamError> {
        let question = q
            .question()
            .ok_or(UpstreamError::BadQuery(BadQuery::NoQuestion))?;
        self.ask(question, forwarding_flags(q))
            .await?
            .take_message()
    }
}

/// Everything needed to build one upstream's transport; the app fills it from the config and
/// `dnsveil query` from its flags.
#[derive(Clone, Debug)]
pub struct UpstreamSpec {
    pub url: UpstreamUrl,
    /// Where to connect for a host name (static addresses, never resolved); an IP host needs none.
    pub bootstrap: Vec<SocketAddr>,
    /// Extra CA certificates (PEM) trusted beside webpki-roots.
    pub ca_file: Option<PathBuf>,
    /// SPKI SHA-256 pins of the server's certificate; empty means no pinning.
    pub pins: Vec<[u8; 32]>,
    /// DoH only: use GET instead of POST.
    pub doh_get: bool,
    /// Time limit of one exchange.
    pub timeout: Duration,
}

impl UpstreamSpec {
    /// A spec for `url` with no bootstrap, CA, pins, POST, and `timeout`.
    pub fn new(url: UpstreamUrl, timeout: Duration) -> Self {
        UpstreamSpec {
            url,
            bootstrap: Vec::new(),
            ca_file: None,
            pins: Vec::new(),
            doh_get: false,
            timeout,
        }
    }
}

/// Builds the transport for an upstream: plain UDP/TCP, DoT or DoH.
pub fn build_transport(spec: &UpstreamSpec) -> Result<Arc<dyn Transport>, UpstreamError> {
    let tls_options = |host: &str| tls::TlsOptions {
        server_name: host.to_string(),
        extra_ca_pem: spec.ca_file.clone(),
        spki_pins: spec.pins.clone(),
        alpn: Vec::new(),
    };
    Ok(match &spec.url {
        // A forwarder's one upstream: its UDP sockets are reused (see `plain`'s module doc).
        UpstreamUrl::Udp(addr) => Arc::new(plain::UdpTransport::new(
            *addr,
            plain::PlainOptions {
                timeout: spec.timeout,
                reuse_udp: true,
            },
        )),
        UpstreamUrl::Tcp(addr) => Arc::new(plain::TcpTransport::new(
            *addr,
            plain::PlainOptions {
                timeout: spec.timeout,
                reuse_udp: false,
            },
        )),
        UpstreamUrl::Tls { host, .. } => {
            let opts = dot::DotOptions {
                timeout: spec.timeout,
                ..dot::DotOptions::default()
            };
            Arc::new(dot::DotTransport::new(
                &spec.url,
                spec.bootstrap.clone(),
                tls_options(host),
                opts,
            )?)
        }
        UpstreamUrl::Network { path } => {
            Arc::new(network::NetworkTransport::new(path.clone(), spec.timeout))
        }
        UpstreamUrl::Https { host, .. } => {
            let method = if spec.doh_get {
                doh::DohMethod::Get
            } else {
                doh::DohMethod::Post
            };
            let opts = doh::DohOptions {
                timeout: spec.timeout,
                method,
                ..doh::DohOptions::default()
            };
            Arc::new(doh::DohTransport::new(
                &spec.url,
                spec.bootstrap.clone(),
                tls_options(host),
                opts,
            )?)
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::wire::Edns;
    use crate::wire::{ClientSubnet, EdnsOption, Name, Question, RType};

    #[tokio::test(start_paused = true)]
    async fn admission_waits_for_a_slot_until_the_deadline() {
        use tokio::time::{Duration, Instant};
        let permits = tokio::sync::Semaphore::new(1);
        let held = admit(&permits, Instant::now()).await.unwrap();
        // Nobody frees the slot: the wait ends at the deadline, as overloaded.
        let start = Instant::now();
        let r = admit(&permits, start + Duration::from_millis(100)).await;
        assert!(matches!(r, Err(UpstreamError::Overloaded)), "{r:?}");
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        // The slot frees up before the deadline: the waiter gets it then.
        let (got, _) = tokio::join!(
            admit(&permits, Instant::now() + Duration::from_millis(100)),
            async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                drop(held);
            }
        );
        assert!(got.is_ok());
        assert_eq!(start.elapsed(), Duration::from_millis(130));
    }

    fn client_query() -> Message {
        let mut q = Message::query("Example.COM".parse::<Name>().unwrap(), RType::AAAA);
        q.header.id = 777;
        q.header.checking_disabled = true;
        q.header.authentic_data = true;
        q.edns = Some(Edns {
            udp_payload: 4096,
            dnssec_ok: true,
            options: vec![
                EdnsOption::ClientSubnet(ClientSubnet {
                    family: 1,
                    source_prefix: 24,
                    scope_prefix: 0,
                    address: Box::new([192, 0, 2]),
                }),
                EdnsOption::Cookie {
                    client: [7; 8],
                    server: Box::new([]),
                },
                EdnsOption::Unknown {
                    code: 65001,
                    data: Box::new([1]),
                },
            ],
            ..Edns::default()
        });
        q
    }

    #[test]
    fn outgoing_query_strips_client_options() {
        let q = client_query();
        let out = outgoing_query(&q.questions[0], forwarding_flags(&q), 4242);
        assert_eq!(out.header.id, 4242);
        assert!(out.header.recursion_desired);
        assert!(out.header.checking_disabled);
        assert!(!out.header.authentic_data);
        assert!(!out.header.response);
        assert_eq!(out.questions, q.questions);
        let edns = out.edns.as_ref().unwrap();
        assert_eq!(edns.udp_payload, DEFAULT_PAYLOAD);
        assert!(edns.dnssec_ok);
        assert!(edns.options.is_empty());

        // A client without EDNS gets DO=0, CD=0, and RD=1 even if the client cleared it.
        let mut plain = Message::query("a.example".parse::<Name>().unwrap(), RType::A);
        plain.header.recursion_desired = false;
        let out = outgoing_query(&plain.questions[0], forwarding_flags(&plain), 1);
        assert!(out.header.recursion_desired);
        assert!(!out.header.checking_disabled);
        assert!(!out.edns.unwrap().dnssec_ok);

        // A validator's query: DO=1 and CD=1 whatever the client sent; an iterator's: RD=0.
        let out = outgoing_query(&plain.questions[0], QueryFlags::VALIDATION, 2);
        assert!(out.header.recursion_desired && out.header.checking_disabled);
        assert!(out.edns.unwrap().dnssec_ok);
        let out = outgoing_query(&plain.questions[0], QueryFlags::ITERATION, 3);
        assert!(!out.header.recursion_desired);
    }

    #[test]
    fn check_answer_rejects_mismatches() {
        let q = client_query();
        let sent = outgoing_query(&q.questions[0], forwarding_flags(&q), 100);
        let mut good = Message::response_to(&sent);
        good.questions[0].name = "EXAMPLE.com".parse().unwrap();
        good.set_rcode(Rcode::NXDOMAIN);
        let got = check_answer(&sent, &good.encode().unwrap()).unwrap();
        assert_eq!(got.rcode(), Rcode::NXDOMAIN);

        let bad = |f: &dyn Fn(&mut Message)| {
            let mut m = good.clone();
            f(&mut m);
            check_answer(&sent, &m.encode().unwrap())
        };
        let why = |r: Result<Message, UpstreamError>| match r {
            Err(UpstreamError::BadAnswer(why)) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            why(bad(&|m| m.header.id = 101)),
            BadAnswer::Id {
                got: 101,
                sent: 100
            }
        );
        assert_eq!(
            why(bad(&|m| m.header.response = false)),
            BadAnswer::NotResponse
        );
        assert_eq!(
            why(bad(&|m| m.questions[0].qtype = RType::A)),
            BadAnswer::Question
        );
        assert_eq!(
            why(bad(&|m| m.questions[0].qclass = crate::wire::Class::CH)),
            BadAnswer::Question
        );
        assert_eq!(
            why(bad(&|m| m
                .questions
                .push(Question::new(Name::root(), RType::NS)))),
            BadAnswer::Question
        );
        // No question: only a bare error passes (nsd answers a query it rejects that way).
        assert_eq!(why(bad(&|m| m.questions.clear())), BadAnswer::Question);
        let bare = bad(&|m| {
            m.questions.clear();
            m.set_rcode(Rcode::REFUSED);
        });
        let bare = bare.unwrap();
        assert_eq!(bare.rcode(), Rcode::REFUSED);
        assert_eq!(bare.questions, sent.questions, "taken from our query");
        assert!(matches!(
            why(bad(&|m| {
                m.questions.clear();
                m.set_rcode(Rcode::REFUSED);
                m.header.id = 101;
            })),
            BadAnswer::Id { got: 101, .. }
        ));
        assert!(matches!(
            why(check_answer(&sent, &[0, 100, 0x80])),
            BadAnswer::Parse(_)
        ));
    }

    #[test]
    fn transports_are_built_for_every_scheme() {
        let spec = |url: &str| UpstreamSpec::new(url.parse().unwrap(), Duration::from_secs(1));
        let udp = build_transport(&spec("udp://127.0.0.1:5300")).unwrap();
        assert_eq!(udp.url(), "udp://127.0.0.1:5300");
        let tcp = build_transport(&spec("tcp://[::1]:53")).unwrap();
        assert_eq!(tcp.url(), "tcp://[::1]:53");
        assert!(build_transport(&spec("tls://127.0.0.1:853")).is_ok());
        assert!(build_transport(&spec("https://[::1]/dns-query")).is_ok());
        // A host name with no bootstrap address can never be reached without plaintext DNS.
        assert!(matches!(
            build_transport(&spec("tls://dns.example")),
            Err(UpstreamError::Config(BadConfig::NoBootstrap { .. }))
        ));
        let mut with_bootstrap = spec("https://dns.example/dns-query");
        with_bootstrap.bootstrap = vec!["127.0.0.1:443".parse().unwrap()];
        assert!(build_transport(&with_bootstrap).is_ok());
    }

    #[test]
    fn empty_group_is_a_config_error() {
        assert!(matches!(
            UpstreamGroup::new(Vec::new()),
            Err(UpstreamError::Config(BadConfig::EmptyGroup))
        ));
    }
}
