//! The validating stage: every answer from the stages after it (the forwarder, the recursor) is
//! checked with DNSSEC before it goes up to the cache and the client.
//!
//! ```text
//!   cache -> hosts -> special names -> Validator --query with DO=1, CD=1--> forwarder -> upstream
//!                                         |  <------------- answer ----------------------+
//!                                         |--DS, DNSKEY via Chain::lookup (the stages after it)
//!                                         |  TrustCache: anchor -> zone cuts -> keys (trust.rs)
//!                                         |--judge the answer (judge.rs): Secure | Insecure
//!                                         |  | Indeterminate -> Answer with that verdict
//!                                         \--Bogus -> HandlerError::Bogus -> SERVFAIL + EDE,
//!                                            remembered by the cache for BOGUS_TTL
//! ```
//!
//! Why here: behind the cache, so a validated answer is stored with its verdict and every hit
//! (fast path included) replays it without validating again; in front of the forwarder and the
//! recursor, so both modes share it; after hosts and special-use names, which are our own data.
//! The DS and DNSKEY lookups go through a [`Chain`] of the stages after this one, so they travel
//! over the same encrypted upstreams as the query and follow the same forwarding rules.
//!
//! The rules it applies:
//! - Every query it sends on asks DO=1 and CD=1 ([`QueryFlags::VALIDATION`]): the upstream's own
//!   validation would hide a bogus answer behind its SERVFAIL, and its AD bit is never believed
//!   (the verdict decides AD; see [`crate::handler::answer`]).
//! - A client that sets CD validates for itself: its query is passed on unvalidated and the answer
//!   gets [`Verdict::Indeterminate`] (no AD), under the cache's separate CD key.
//! - Names at or below a negative trust anchor (RFC 7646: `resolver.insecure_domains`, and the
//!   domains of forwarding rules, which are private zones the public DNS denies) are not validated:
//!   [`Verdict::Insecure`].
//! - A bogus answer is a [`HandlerError::Bogus`]: SERVFAIL with the Extended DNS Error of its
//!   reason (RFC 8914), kept by the cache for [`BOGUS_TTL`](crate::handler::BOGUS_TTL) seconds. An insecure answer caused by
//!   an algorithm, digest or NSEC3 iterations value we do not validate carries EDE 1, 2 or 27.
//!
//! A secure NSEC denial is remembered ([`NsecCache`], RFC 8198): a later name in a range it
//! proved empty is answered NXDOMAIN or NODATA here, with those records as its proof, without
//! asking upstream.
//!
//! Work per client query is bounded (KeyTrap, CVE-2023-50387; CVE-2023-50868): the signature
//! budget of [`crate::dnssec::Budget`], the NSEC3 hash budget of
//! [`crate::dnssec::denial::HashBudget`], and at most [`MAX_FETCHES_PER_QUERY`] DS and DNSKEY
//! lookups. Past any of them the answer is bogus (EDE 6), as unbound answers past its limits.

mod aggressive;
mod judge;
mod rrsets;
mod trust;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;
use tracing::debug;

pub use aggressive::{NsecCache, MAX_NSEC_PER_ZONE, MAX_ZONES};
pub use trust::{TrustCache, ZoneKeys, MAX_STEPS, MAX_STEP_TTL};

use crate::clock::WallClock;
use crate::dnssec::denial::HashBudget;
use crate::dnssec::memo::VerifiedSignatures;
use crate::dnssec::{Budget, TrustAnchors};
use crate::handler::{
    Answer, Bogus, BogusReason, BoxFuture, Chain, Handler, HandlerError, HandlerResult, Lookup,
    Next, Origin, Request, Verdict,
};
use crate::wire::edns::{ede, DEFAULT_PAYLOAD};
use crate::wire::{Edns, Message, Name, QueryFlags, Question, RType, Rcode};

/// The most DS and DNSKEY lookups one client query may cause. A cold name under the root needs
/// five (root DNSKEY, then DS and DNSKEY per zone cut); a CNAME chain across a few new signed
/// zones a dozen or two; a name 34 labels deep in unsigned reverse DNS (ip6.arpa) one per
/// label down to where signing stops. Sixty-four leaves room for all of those and bounds the rest.
pub const MAX_FETCHES_PER_QUERY: u32 = 64;

/// Why a DS or DNSKEY lookup gave nothing to validate with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The lookup was answered with an error code.
    #[error("{rtype} lookup for {name} answered {rcode}")]
    Rcode {
        name: Name,
        rtype: RType,
        rcode: Rcode,
    },
}

/// The trust anchors of `files`, or the built-in IANA root anchors when there are none. The
/// error names the file (and line) and what is wrong with it.
pub fn load_anchors(files: &[PathBuf]) -> Result<TrustAnchors, String> {
    if files.is_empty() {
        return Ok(TrustAnchors::iana_root());
    }
    let mut all = TrustAnchors::default();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        all.extend(TrustAnchors::parse(&text, file).map_err(|e| e.to_string())?);
    }
    Ok(all)
}

/// The validating stage.
pub struct Validator {
    trust: TrustCache,
    /// Validated NSEC records, for aggressive negative answers (RFC 8198).
    nsecs: NsecCache,
    /// Negative trust anchors: names at or below these are not validated.
    insecure: Vec<Name>,
    /// The stages after this one, for DS and DNSKEY.
    lookups: Chain,
    clock: WallClock,
    /// Signatures verified before, shared by every query's budget.
    verified: Arc<VerifiedSignatures>,
}

impl Validator {
    /// A validator with these anchors and negative trust anchors, asking `lookups` for DS and
    /// DNSKEY.
    pub fn new(
        anchors: TrustAnchors,
        insecure: Vec<Name>,
        lookups: Chain,
        clock: WallClock,
    ) -> Self {
        Validator {
            trust: TrustCache::new(anchors),
            nsecs: NsecCache::default(),
            insecure,
            lookups,
            clock,
            verified: Arc::new(VerifiedSignatures::new()),
        }
    }

    /// The remembered chain-of-trust steps (for tests and statistics).
    pub fn trust(&self) -> &TrustCache {
        &self.trust
    }

    /// True when `name` is at or below a negative trust anchor.
    pub fn is_insecure_domain(&self, name: &Name) -> bool {
        self.insecure.iter().any(|d| name.is_subdomain_of(d))
    }

    /// The validated NSEC records kept for aggressive negative answers.
    pub fn nsecs(&self) -> &NsecCache {
        &self.nsecs
    }

    /// Validates the answer the stages after this one give for `question`.
    async fn validate(&self, req: &Request, question: &Question, next: Next<'_>) -> HandlerResult {
        let now_ms = self.clock.unix_ms();
        if let Some(m) = self
            .nsecs
            .answer(question, QueryFlags::of(&req.query), now_ms)
        {
            debug!(name = %question.name, qtype = %question.qtype, "denied from validated NSEC records");
            return Answer::from_message(&m, Origin::Cache, Verdict::Secure)
                .map_err(HandlerError::internal);
        }
        let flags = QueryFlags {
            recursion_desired: req.query.header.recursion_desired,
            ..QueryFlags::VALIDATION
        };
        let sent = Request {
            query: Message::outgoing(question, flags, req.query.header.id, DEFAULT_PAYLOAD),
            client: req.client,
            protocol: req.protocol,
        };
        let mut answer = next.run(&sent).await?;
        let msg = answer.take_message().map_err(HandlerError::internal)?;
        let mut work = Work {
            lookups: &self.lookups,
            now: (now_ms / 1000) as u32,
            now_ms,
            budget: Budget::remembering(self.verified.clone()),
            hashes: HashBudget::new(),
            fetches: 0,
        };
        let judged = judge::judge(&self.trust, question, &msg, &mut work).await?;
        debug!(
            name = %question.name,
            qtype = %question.qtype,
            verdict = ?judged.verdict,
            signatures = work.budget.used(),
            lookups = work.fetches,
            "validated"
        );
        if let Verdict::Bogus(b) = judged.verdict {
            return Err(HandlerError::Bogus(b));
        }
        if let (Verdict::Secure, Some(zone)) = (&judged.verdict, &judged.denial_zone) {
            self.nsecs.remember(zone, &msg, now_ms, |r| {
                judged
                    .caps
                    .iter()
                    .filter(|(n, t, _)| *t == r.rtype() && *n == r.name)
                    .map(|&(_, _, ttl)| ttl)
                    .fold(r.ttl, u32::min)
            });
        }
        finish(answer, msg, judged)
    }
}

impl Handler for Validator {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        let Some(question) = req.query.question() else {
            return next.run(req);
        };
        if req.query.header.checking_disabled {
            // The client validates for itself: pass the query on as it is (with CD) and vouch
            // for nothing.
            return with_verdict(next.run(req), Verdict::Indeterminate);
        }
        if self.is_insecure_domain(&question.name) {
            return with_verdict(next.run(req), Verdict::Insecure);
        }
        Box::pin(self.validate(req, question, next))
    }

    fn name(&self) -> &'static str {
        "validate"
    }
}

/// What one client query may still spend on validation, and how it fetches DS and DNSKEY.
pub(crate) struct Work<'a> {
    lookups: &'a Chain,
    /// Seconds since the epoch, modulo 2^32 (signature windows are serial numbers).
    pub now: u32,
    pub now_ms: u64,
    pub budget: Budget,
    pub hashes: HashBudget,
    fetches: u32,
}

impl Work<'_> {
    /// Asks the stages after the validator for `name`/`rtype` with DO=1 and CD=1.
    async fn fetch(&mut self, name: &Name, rtype: RType) -> Result<Message, HandlerError> {
        if self.fetches >= MAX_FETCHES_PER_QUERY {
            return Err(HandlerError::Bogus(Bogus {
                reason: BogusReason::Other,
                detail: Arc::from(format!(
                    "validation needs more than {MAX_FETCHES_PER_QUERY} DS and DNSKEY lookups"
                )),
            }));
        }
        self.fetches += 1;
        let lookup = Lookup {
            question: Question::new(name.clone(), rtype),
            flags: QueryFlags::VALIDATION,
        };
        let mut answer = self.lookups.lookup(&lookup).await?;
        answer.take_message().map_err(HandlerError::internal)
    }
}

/// The answer with its verdict: TTLs capped by what verified, and the Extended DNS Error of an
/// insecure answer attached; re-encoded only when one of those changed something.
pub(super) fn finish(answer: Answer, mut msg: Message, judged: judge::Judged) -> HandlerResult {
    let mut changed = false;
    for r in msg.answers.iter_mut().chain(msg.authority.iter_mut()) {
        let covered = match &r.data {
            crate::wire::RData::Rrsig(s) => s.type_covered,
            _ => r.rtype(),
        };
        let cap = judged
            .caps
            .iter()
            .filter(|(n, t, _)| *t == covered && *n == r.name)
            .map(|&(_, _, ttl)| ttl)
            .min();
        if let Some(cap) = cap.filter(|&c| r.ttl > c) {
            r.ttl = cap;
            changed = true;
        }
    }
    if let Some(code) = judged.ede {
        msg.edns
            .get_or_insert_with(Edns::default)
            .add_extended_error(code, insecure_text(code));
        changed = true;
    }
    let answer = if changed {
        answer.rewritten(msg.encode().map_err(HandlerError::internal)?)
    } else {
        answer
    };
    Ok(answer.with_parsed(msg).with_verdict(judged.verdict))
}

/// The text of the Extended DNS Error an insecure answer carries.
fn insecure_text(code: u16) -> &'static str {
    match code {
        ede::UNSUPPORTED_DNSKEY_ALGORITHM => {
            "signed only with algorithms not validated: treated as unsigned"
        }
        ede::UNSUPPORTED_DS_DIGEST_TYPE => "DS digest types not supported: treated as unsigned",
        ede::UNSUPPORTED_NSEC3_ITERATIONS_VALUE => {
            "NSEC3 iterations above the limit: treated as unsigned"
        }
        _ => "treated as unsigned",
    }
}

/// `answer` with `verdict` in place of whatever the stage after gave.
fn with_verdict<'a>(
    answer: BoxFuture<'a, HandlerResult>,
    verdict: Verdict,
) -> BoxFuture<'a, HandlerResult> {
    Box::pin(async move { Ok(answer.await?.with_verdict(verdict)) })
}
