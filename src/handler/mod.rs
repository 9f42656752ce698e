//! The handler chain: each stage answers a query or passes it to the next.
//!
//! ```text
//!   server --Request--> Chain[0] --next--> Chain[1] --next--> ... --> Chain[n-1]
//!                           <--------- Result<Answer, HandlerError> ---------+
//!   stage --Lookup (question + flags, no client)--> a Chain of the stages after it
//! ```
//!
//! What comes back is an [`Answer`]: the response as checked wire bytes, its origin and its DNSSEC
//! verdict ([`answer`]). The server writes the client's response from those bytes once.
//!
//! A handler sees the query and a [`Next`] for the rest of the chain, so it can answer itself
//! (hosts), pass the query on (a forwarding rule that does not match), or wrap the rest of the chain
//! (the cache stores whatever comes back). A handler may also offer a synchronous fast path,
//! [`Handler::answer_fast`], which the server tries before it builds a request at all: a cache hit
//! is answered from stored wire data without a task, a parse or an allocation.
//!
//! A stage that must ask the stages after it without a client (the cache refreshing an entry in the
//! background; soon the validator fetching DNSKEY and DS, the recursor the addresses of name
//! servers) is given its own [`Chain`] of those stages when the application is composed, and asks
//! it with [`Chain::lookup`]: a question and the flags of the query to send, no fake client, no
//! reference back to the chain above it.
//!
//! This module depends only on `wire`; it never knows a concrete handler or socket.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::wire::edns::{ede, DEFAULT_PAYLOAD};
use crate::wire::scrub::ScrubError;
use crate::wire::{Message, QueryFlags, QueryView, Question, Rcode};

pub mod answer;
pub mod swap;

pub use answer::{Answer, Bogus, BogusReason, Origin, Verdict, BOGUS_TTL};

/// A boxed, sendable future (handlers are stored as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the query reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

/// A query on its way through the chain.
#[derive(Clone, Debug)]
pub struct Request {
    /// The parsed query, exactly as the client sent it.
    pub query: Message,
    /// The client's address; None for a stage's own [`Lookup`].
    pub client: Option<SocketAddr>,
    pub protocol: Protocol,
}

/// Why the chain produced no answer. Each variant maps to one response code and one Extended DNS
/// Error (RFC 8914) for the client ([`HandlerError::rcode`], [`HandlerError::extended_error`]), as
/// rustls maps each of its errors to one alert; the cause it carries becomes the EDE's text.
///
/// `#[non_exhaustive]`: the stages to come (validation, recursion) add their own failures.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// Nothing in the chain could answer (no upstream matched).
    #[error("no handler answered")]
    Unanswered,
    /// The query is not allowed (REFUSED).
    #[error("refused: {0}")]
    Refused(RefusalReason),
    /// Every upstream failed or timed out: the last failure, as the stage that asked them
    /// reported it (`upstream::UpstreamError` for the forwarder). This module does not know the
    /// upstream layer (it depends on `wire` only), so the cause is any error value; its type
    /// survives behind the `Arc` (downcast it to look inside).
    #[error("upstream failure: {0}")]
    Upstream(Arc<dyn std::error::Error + Send + Sync>),
    /// The query could not be worked on for lack of room (see [`BusyReason`]). Unlike
    /// [`HandlerError::Upstream`] this says nothing about the name, so the cache does not keep it.
    #[error("busy: {0}")]
    Busy(BusyReason),
    /// An upstream answered, but with data we refuse to use (a CNAME chain too long or looping:
    /// [`crate::wire::scrub`]). Like [`HandlerError::Upstream`] it says something about the name,
    /// so the cache keeps it for its short SERVFAIL time.
    #[error("unusable answer: {0}")]
    Unusable(ScrubError),
    /// DNSSEC validation found the answer bogus (RFC 4035 section 5.5): SERVFAIL with the
    /// Extended DNS Error of the reason, which the cache keeps for a short while.
    #[error("DNSSEC bogus: {}", .0.detail)]
    Bogus(Bogus),
    /// The chain did not answer within the server's time limit for a query.
    #[error("no answer within {0:?}")]
    Deadline(Duration),
    /// The query is of a kind we do not implement.
    #[error("not implemented")]
    NotImplemented,
    /// Anything else that must become SERVFAIL; the cause is for the operator, never in the EDE.
    #[error("internal error: {0}")]
    Internal(Arc<dyn std::error::Error + Send + Sync>),
}

/// Why a query is refused ([`HandlerError::Refused`]).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// Local policy does not let this client ask this.
    #[error("not allowed by local policy")]
    Policy,
}

/// Why a query found no room ([`HandlerError::Busy`]).
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusyReason {
    /// Every upstream tried stayed at its in-flight cap for the whole timeout.
    #[error("upstream overloaded")]
    Upstreams,
    /// The client has used up its share of the server's in-flight budget.
    #[error("too many queries in flight from this client")]
    ClientShare,
}

impl HandlerError {
    /// An upstream failure with this cause.
    pub fn upstream(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        HandlerError::Upstream(Arc::new(cause))
    }

    /// An internal failure with this cause.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        HandlerError::Internal(Arc::new(cause))
    }

    /// The response code for this error.
    pub fn rcode(&self) -> Rcode {
        match self {
            HandlerError::Refused(_) => Rcode::REFUSED,
            HandlerError::NotImplemented => Rcode::NOTIMP,
            HandlerError::Unanswered
            | HandlerError::Upstream(_)
            | HandlerError::Busy(_)
            | HandlerError::Unusable(_)
            | HandlerError::Bogus(_)
            | HandlerError::Deadline(_)
            | HandlerError::Internal(_) => Rcode::SERVFAIL,
        }
    }

    /// The Extended DNS Error info code and text, if one applies.
    pub fn extended_error(&self) -> Option<(u16, String)> {
        match self {
            HandlerError::Unanswered => Some((
                ede::NOT_READY,
                "no upstream configured for this name".into(),
            )),
            HandlerError::Refused(why) => Some((ede::PROHIBITED, why.to_string())),
            HandlerError::Upstream(why) => Some((ede::NETWORK_ERROR, why.to_string())),
            HandlerError::Busy(why) => Some((ede::OTHER, why.to_string())),
            // No registered code fits an answer whose data we refuse: 22 and 23 would blame the
            // network, 24 (Invalid Data) is for an authoritative server's own zone. RFC 8914
            // section 4.1 asks "Other" to carry a text saying what happened.
            HandlerError::Unusable(why) => {
                Some((ede::OTHER, format!("upstream answer refused: {why}")))
            }
            HandlerError::Bogus(b) => Some((b.reason.ede(), b.detail.to_string())),
            // The upstreams are the likely reason, but which one failed how is not known here.
            HandlerError::Deadline(_) => Some((ede::NETWORK_ERROR, self.to_string())),
            HandlerError::NotImplemented => None,
            HandlerError::Internal(_) => Some((ede::OTHER, "internal error".into())),
        }
    }
}

/// What every handler returns.
pub type HandlerResult = Result<Answer, HandlerError>;

/// An answer of our own data (hosts, local records, special-use names): encoded once, never
/// validated.
pub fn local_answer(response: &Message) -> HandlerResult {
    Answer::from_message(response, Origin::Local, Verdict::Unchecked)
        .map_err(HandlerError::internal)
}

/// A question a stage asks the stages after it on its own behalf, with the flags of the query
/// to send (e.g. [`QueryFlags::VALIDATION`] for DNSKEY and DS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub question: Question,
    pub flags: QueryFlags,
}

impl Lookup {
    /// The request the stages see for this lookup: the question as a query with these flags
    /// (DO in an OPT record), no client.
    pub fn request(&self) -> Request {
        let mut query = Message::outgoing(&self.question, self.flags, 0, DEFAULT_PAYLOAD);
        if !self.flags.dnssec_ok {
            query.edns = None;
        }
        Request {
            query,
            client: None,
            protocol: Protocol::Udp,
        }
    }
}

/// One stage of the chain.
pub trait Handler: Send + Sync + 'static {
    /// Answers `req` or hands it to `next`.
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult>;

    /// Writes a complete response for `query` into `out` (which is empty) and returns where it
    /// came from (for metrics and the query log), or returns `None` to let the query take the
    /// slow path. Must not block. `max_len` is the largest
    /// response the transport accepts; a stage that cannot fit its answer must leave out the
    /// additional records (and, for a positive answer, an authority section of NS records only), or
    /// else write a TC=1 response (RFC 2181 section 9), or return false.
    fn answer_fast(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> Option<Origin> {
        let _ = (query, max_len, out);
        None
    }

    /// The fast path of this stage at the head of the chain, with the fast path of the stages
    /// after it in `next`: a stage in front of the cache (blocking) answers some queries itself
    /// and hands the others to `next`, and may look at what `next` wrote and replace it. The same
    /// contract as [`Handler::answer_fast`]; the default is that method (`next` is not run).
    fn answer_fast_in_chain(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        next: FastNext<'_>,
    ) -> Option<Origin> {
        let _ = next;
        self.answer_fast(query, max_len, out)
    }

    /// [`Handler::answer_fast_in_chain`] for a stage behind a [`Screen`] (the blocker's check of
    /// every answer): the answer written into `out` is judged by `screen`, and the result says
    /// whether it passed. A stage that stores answers (the cache) may remember that an answer
    /// passed the screen's current [`Screen::generation`] and not ask again until the generation
    /// changes; the default asks `screen` every time. An answer that fails is left in `out` for
    /// the screening stage to replace, and must not have had any effect (no prefetch queued).
    fn answer_fast_screened(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        next: FastNext<'_>,
        screen: &dyn Screen,
    ) -> Option<Screened> {
        let origin = self.answer_fast_in_chain(query, max_len, out, next)?;
        Some(if screen.passes(query, out) {
            Screened::Passed(origin)
        } else {
            Screened::Failed(origin)
        })
    }

    /// A short name for logs.
    fn name(&self) -> &'static str;
}

/// A check a stage in front of the cache applies to every answer it lets through (the blocker:
/// the question name and the answer's CNAME targets against its lists).
///
/// The generation is what lets the cache skip the check: an answer stored in the cache that
/// passed the check of generation `g` passes it again as long as the generation is `g`, because
/// neither the stored bytes nor the check have changed. A screen changes its generation whenever
/// the same answer could be judged differently (a list reload).
pub trait Screen {
    /// The version of the check: never 0 (a stored answer's "never checked"), below 2^31 (a
    /// stage that stores answers may keep a flag beside it), and never the same for two different
    /// checks in one process.
    fn generation(&self) -> u32;

    /// Whether `answer`, a complete response to `query`, may go to the client.
    fn passes(&self, query: &QueryView<'_>, answer: &[u8]) -> bool;

    /// The screen's own answer to `query` (a blocked name's), if it has one: `failed` is the
    /// answer the next stage wrote and the screen failed (its CNAME chain may be the reason), or
    /// empty when the next stage had none. The answer is written into `out` (cleared first) as a
    /// complete response with ID 0 and an OPT record carrying every option an EDNS client gets, so
    /// that a stage that stores it (the cache) can answer any client from it; the result is how
    /// many seconds it may be reused, and only while [`Screen::generation`] stays the same. The
    /// default has none.
    fn own_answer(&self, query: &QueryView<'_>, failed: &[u8], out: &mut Vec<u8>) -> Option<u32> {
        let _ = (query, failed, out);
        None
    }
}

/// What a screened fast path produced ([`Handler::answer_fast_screened`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screened {
    /// The answer in `out` passed the screen (now, or earlier in the same generation).
    Passed(Origin),
    /// The answer in `out` failed the screen: the screening stage replaces it.
    Failed(Origin),
    /// Nothing answered, and the screen was asked for an answer of its own and has none
    /// ([`Screen::own_answer`]): the screening stage need not ask again; the slow path.
    Missed,
}

/// The rest of the chain after the current handler.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    rest: &'a [Arc<dyn Handler>],
}

impl<'a> Next<'a> {
    /// Runs the rest of the chain; with nothing left, the query is unanswered.
    pub fn run(self, req: &'a Request) -> BoxFuture<'a, HandlerResult> {
        match self.rest.split_first() {
            Some((first, rest)) => first.handle(req, Next { rest }),
            None => Box::pin(std::future::ready(Err(HandlerError::Unanswered))),
        }
    }
}

/// The fast paths of the rest of the chain after the current handler
/// ([`Handler::answer_fast_in_chain`]).
#[derive(Clone, Copy)]
pub struct FastNext<'a> {
    rest: &'a [Arc<dyn Handler>],
}

impl FastNext<'_> {
    /// Runs the next stage's fast path; with nothing left, `None` (the slow path).
    pub fn run(self, query: &QueryView<'_>, max_len: usize, out: &mut Vec<u8>) -> Option<Origin> {
        match self.rest.split_first() {
            Some((first, rest)) => {
                first.answer_fast_in_chain(query, max_len, out, FastNext { rest })
            }
            None => None,
        }
    }

    /// Runs the next stage's screened fast path ([`Handler::answer_fast_screened`]); with nothing
    /// left, `None` (the slow path).
    pub fn run_screened(
        self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        screen: &dyn Screen,
    ) -> Option<Screened> {
        match self.rest.split_first() {
            Some((first, rest)) => {
                first.answer_fast_screened(query, max_len, out, FastNext { rest }, screen)
            }
            None => None,
        }
    }
}

/// The assembled chain.
#[derive(Clone, Default)]
pub struct Chain {
    handlers: Vec<Arc<dyn Handler>>,
}

impl Chain {
    /// A chain of these handlers, in order.
    pub fn new(handlers: Vec<Arc<dyn Handler>>) -> Self {
        Chain { handlers }
    }

    /// Runs the whole chain.
    pub fn handle<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, HandlerResult> {
        self.as_next().run(req)
    }

    /// The whole chain as a [`Next`]: for a handler that runs the stages after it on its own behalf,
    /// without a client. The cache's background refresh is given a chain of the handlers that
    /// follow it in the server's chain, and hands this to its usual miss path.
    pub fn as_next(&self) -> Next<'_> {
        Next {
            rest: &self.handlers,
        }
    }

    /// Asks the whole chain `lookup`'s question, for a stage (no client).
    pub fn lookup(&self, lookup: &Lookup) -> BoxFuture<'_, HandlerResult> {
        let req = lookup.request();
        Box::pin(async move { self.as_next().run(&req).await })
    }

    /// The first handler's fast path (only the head of the chain may answer without the rest,
    /// or hand the query to the fast path of the next: [`Handler::answer_fast_in_chain`]), and
    /// where the answer came from.
    pub fn answer_fast(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> Option<Origin> {
        FastNext {
            rest: &self.handlers,
        }
        .run(query, max_len, out)
    }

    /// The handlers' names, in order (for the start-up log).
    pub fn names(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|h| h.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Name, RType};

    struct Pass;
    impl Handler for Pass {
        fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
            next.run(req)
        }
        fn name(&self) -> &'static str {
            "pass"
        }
    }

    struct Answering;
    impl Handler for Answering {
        fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
            Box::pin(async move {
                let m = Message::response_to(&req.query);
                Ok(Answer::from_message(&m, Origin::Local, Verdict::Unchecked).unwrap())
            })
        }
        fn name(&self) -> &'static str {
            "answer"
        }
    }

    fn request() -> Request {
        Request {
            query: Message::query("example.com".parse::<Name>().unwrap(), RType::A),
            client: Some("127.0.0.1:1".parse().unwrap()),
            protocol: Protocol::Udp,
        }
    }

    /// A cause from outside this module, as the upstream layer's errors are.
    #[derive(Debug, Error)]
    #[error("connection failed: 192.0.2.1:853: {0}")]
    struct Refused(std::io::Error);

    #[test]
    fn each_error_maps_to_one_rcode_and_ede_with_its_cause() {
        let refused = || Refused(std::io::ErrorKind::ConnectionRefused.into());
        let io_text = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).to_string();
        let cases = [
            (
                HandlerError::Unanswered,
                Rcode::SERVFAIL,
                Some((
                    ede::NOT_READY,
                    "no upstream configured for this name".to_string(),
                )),
            ),
            (
                HandlerError::Refused(RefusalReason::Policy),
                Rcode::REFUSED,
                Some((ede::PROHIBITED, "not allowed by local policy".into())),
            ),
            (
                HandlerError::upstream(refused()),
                Rcode::SERVFAIL,
                Some((
                    ede::NETWORK_ERROR,
                    format!("connection failed: 192.0.2.1:853: {io_text}"),
                )),
            ),
            (
                HandlerError::Busy(BusyReason::Upstreams),
                Rcode::SERVFAIL,
                Some((ede::OTHER, "upstream overloaded".into())),
            ),
            (
                HandlerError::Busy(BusyReason::ClientShare),
                Rcode::SERVFAIL,
                Some((
                    ede::OTHER,
                    "too many queries in flight from this client".into(),
                )),
            ),
            (
                HandlerError::Unusable(ScrubError::ChainTooLong),
                Rcode::SERVFAIL,
                Some((
                    ede::OTHER,
                    "upstream answer refused: CNAME chain longer than 11 links".into(),
                )),
            ),
            (
                HandlerError::Deadline(Duration::from_secs(4)),
                Rcode::SERVFAIL,
                Some((ede::NETWORK_ERROR, "no answer within 4s".into())),
            ),
            (HandlerError::NotImplemented, Rcode::NOTIMP, None),
            (
                HandlerError::internal(std::io::Error::other("stored answer does not parse")),
                Rcode::SERVFAIL,
                Some((ede::OTHER, "internal error".into())),
            ),
        ];
        for (e, rcode, ede) in cases {
            assert_eq!(e.rcode(), rcode, "{e:?}");
            assert_eq!(e.extended_error(), ede, "{e:?}");
        }
    }

    #[test]
    fn the_cause_keeps_its_type_and_text() {
        let e = HandlerError::upstream(Refused(std::io::ErrorKind::ConnectionRefused.into()));
        assert!(e
            .to_string()
            .starts_with("upstream failure: connection failed: 192.0.2.1:853: "));
        let HandlerError::Upstream(cause) = e.clone() else {
            panic!("{e:?}");
        };
        let Some(Refused(io)) = cause.downcast_ref::<Refused>() else {
            panic!("{cause:?}");
        };
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        // The internal cause goes to the log, not to the client.
        let internal = HandlerError::internal(std::io::Error::other("secret detail"));
        assert!(internal.to_string().contains("secret detail"));
        assert!(!internal.extended_error().unwrap().1.contains("secret"));
    }

    #[tokio::test]
    async fn passes_until_a_handler_answers() {
        let chain = Chain::new(vec![Arc::new(Pass), Arc::new(Answering)]);
        assert!(chain.handle(&request()).await.unwrap().header().response);
        let empty = Chain::new(vec![Arc::new(Pass)]);
        assert!(matches!(
            empty.handle(&request()).await,
            Err(HandlerError::Unanswered)
        ));
        assert_eq!(chain.names(), ["pass", "answer"]);
    }
    /// Records the request it sees and answers it.
    struct Recorder(std::sync::Mutex<Option<Request>>);
    impl Handler for Recorder {
        fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
            *self.0.lock().unwrap() = Some(req.clone());
            Box::pin(async move { local_answer(&Message::response_to(&req.query)) })
        }
        fn name(&self) -> &'static str {
            "recorder"
        }
    }

    #[tokio::test]
    async fn a_lookup_asks_with_its_flags_and_no_client() {
        let recorder = Arc::new(Recorder(std::sync::Mutex::new(None)));
        let chain = Chain::new(vec![Arc::new(Pass), recorder.clone()]);
        let question = Question::new("example.com".parse::<Name>().unwrap(), RType::DNSKEY);
        for flags in [
            QueryFlags::VALIDATION,
            QueryFlags::ITERATION,
            QueryFlags::default(),
        ] {
            let lookup = Lookup {
                question: question.clone(),
                flags,
            };
            let answer = chain.lookup(&lookup).await.unwrap();
            assert_eq!(answer.message().unwrap().questions, vec![question.clone()]);
            let seen = recorder.0.lock().unwrap().take().unwrap();
            assert_eq!(seen.client, None);
            assert_eq!(QueryFlags::of(&seen.query), flags);
            assert_eq!(seen.query.questions, vec![question.clone()]);
        }
    }
}
