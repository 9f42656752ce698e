//! Recursive mode: dnsveil resolves names itself, from the root down, so that no single third
//! party sees every query. The [`Recursor`] is the last stage of the chain: the cache, hosts,
//! special-use names and forwarding rules come first, and with `mode = "recursive"` the forwarder
//! has no default group, so what no rule matches comes here.
//!
//! ```text
//!   Request --> Recursor::handle --> Resolver::resolve (resolve.rs: the loop and its limits)
//!                                      | deleg.rs    delegation cache: deepest cut, TTLs, ghost-domain rule
//!                                      | servers.rs  per-address SRTT, timeouts, exploration, rests
//!                                      | exchange.rs one query: random port + ID, TCP on TC, EDNS fallback
//!                                      | case.rs     0x20: random case out, exact case back, fallback
//!                                      | step.rs     answer / referral / lame, bailiwick, scrub
//!                                      | flight.rs   identical in-flight questions merged
//!                                      | answers.rs  each step's answer by question, for its TTL
//!                                      | hints.rs    root hints (embedded named.root or a file), priming
//!                                      | caution.rs  addresses never asked with the public root
//!                                      | limits.rs   the work budget of one client query
//!   <-- Answer { wire, Origin::Upstream, Verdict::Unchecked } (the cache above stores it)
//! ```
//!
//! DNSSEC: a query with DO=1 is resolved with DO=1 toward the authoritative servers, and the answer
//! keeps its RRSIGs, and a negative answer its SOA and NSEC/NSEC3 records with their RRSIGs, so a
//! validating stage in front can check them; its `Lookup`s for DNSKEY and DS go to the right
//! servers (DS to the parent's). The verdict here is always [`Verdict::Unchecked`]: this stage does
//! not validate. With DO=0 those records are left out of the answer.
//!
//! Spoofing defences: see exchange.rs (random port and ID per UDP query, answer matched to the
//! question), step.rs (bailiwick) and flight.rs (merging).
//!
//! 0x20 case randomisation (`resolver.qname_case_randomization`, off by default as unbound's
//! `use-caps-for-id`): see case.rs; servers that do not keep case are remembered in servers.rs.
//!
//! Limitations: no DNS cookies; no aggressive use of NSEC (RFC 8198);
//! IPv6 toward servers is tried after IPv4 only through the server order (no Happy Eyeballs); a
//! name server address is looked up A first and AAAA only when it has no A; lameness is remembered
//! per address and zone, timeouts per address.

pub mod answers;
pub mod case;
pub mod caution;
pub mod deleg;
pub mod exchange;
pub mod flight;
pub mod fuzzing;
pub mod hints;
pub mod limits;
pub mod resolve;
pub mod servers;
pub mod step;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use thiserror::Error;
use tracing::{debug, info};

use crate::handler::{
    Answer, BoxFuture, Handler, HandlerError, HandlerResult, Next, Origin, Request, Verdict,
};
use crate::wire::scrub::ScrubError;
use crate::wire::{Message, Name, QueryFlags, RType};

pub use hints::{HintsError, RootHints};
pub use limits::Limit;
pub use resolve::Resolver;

/// Why a recursive resolution failed.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum RecursorError {
    /// A work limit of [`limits`] was reached.
    #[error("recursion limit reached: {0}")]
    Limit(#[from] Limit),
    /// No server of the zone gave a usable answer.
    #[error("no name server of {zone} answered")]
    NoServer { zone: Name },
    /// An answer's data is refused (a CNAME chain too long or looping).
    #[error("{0}")]
    Unusable(ScrubError),
}

impl From<RecursorError> for HandlerError {
    fn from(e: RecursorError) -> HandlerError {
        match e {
            RecursorError::Unusable(s) => HandlerError::Unusable(s),
            other => HandlerError::upstream(other),
        }
    }
}

/// What the recursor is built from (the config's `root_hints`, `query_port`, `query_ipv6`,
/// `qname_case_randomization`).
#[derive(Clone, Debug)]
pub struct RecursorConfig {
    pub hints: RootHints,
    pub query_port: u16,
    pub query_ipv6: bool,
    pub case_randomization: bool,
}

/// The recursive stage.
pub struct Recursor {
    resolver: Arc<Resolver>,
}

impl Recursor {
    pub fn new(config: RecursorConfig) -> Recursor {
        let mut resolver = Resolver::new(config.hints, config.query_port, config.query_ipv6);
        resolver.case_randomization = config.case_randomization;
        Recursor {
            resolver: Arc::new(resolver),
        }
    }

    /// Primes the root NS set now (at start; later, when it expires, the next query does).
    pub async fn prime(&self) {
        let budget = limits::Budget::new(tokio::time::Instant::now());
        match self.resolver.prime(&budget).await {
            Ok(d) => info!(
                servers = d.servers.len(),
                port = self.resolver.port,
                "recursive mode: root primed"
            ),
            Err(e) => info!(error = %e, "recursive mode: priming failed; using the root hints"),
        }
    }

    /// Queries sent to authoritative servers since start.
    pub fn queries_sent(&self) -> u64 {
        self.resolver.sent.load(Ordering::Relaxed)
    }

    async fn answer(&self, req: &Request) -> HandlerResult {
        let Some(question) = req.query.question() else {
            return Err(HandlerError::NotImplemented);
        };
        let flags = QueryFlags::of(&req.query);
        let mut found = self.resolver.resolve(question, flags.dnssec_ok).await?;
        if !flags.dnssec_ok {
            let dnssec = |t: RType| matches!(t, RType::RRSIG | RType::NSEC | RType::NSEC3);
            let asked = question.qtype;
            found
                .answers
                .retain(|r| r.rtype() == asked || !dnssec(r.rtype()));
            found.authority.retain(|r| !dnssec(r.rtype()));
        }
        let mut response = Message::response_to(&req.query);
        response.set_rcode(found.rcode());
        response.answers = found.answers;
        response.authority = found.authority;
        debug!(rcode = %response.rcode(), answers = response.answers.len(), "recursive answer");
        Answer::from_message(&response, Origin::Upstream, Verdict::Unchecked)
            .map_err(HandlerError::internal)
    }
}

impl Handler for Recursor {
    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(self.answer(req))
    }

    fn name(&self) -> &'static str {
        "recursor"
    }
}
