//! Forwarding rules: the handler that sends a query to the upstream group its name routes to.
//!
//! ```text
//!   query name --longest matching suffix--> rule's UpstreamGroup --answer--> client
//!              \--no rule--> default group (if any) --> ...      \--none--> next handler
//! ```
//!
//! A rule is a domain suffix (`lan`, `168.192.in-addr.arpa`, a VPN's internal domain) with its own
//! upstreams; the most specific (most labels) matching suffix wins. Matching is label-aligned and
//! case-insensitive (RFC 4343): `lan` matches `lan` and `router.lan` but not `plan`.
//!
//! Rules are kept sorted by label count, most specific first, and scanned in order: with the handful
//! of rules a home or VPN setup has, a linear scan of `is_subdomain_of` beats building a trie.
//!
//! An answer is scrubbed here, once, before it goes back up the chain (and so before the cache
//! stores it): [`crate::wire::scrub`] drops every record that does not answer the question, and
//! refuses an answer whose CNAME chain is too long or loops, which the client gets as SERVFAIL
//! with an Extended DNS Error "Other Error" ([`ede::OTHER`]) saying why
//! ([`HandlerError::Unusable`]). Not in the upstream pool: such an answer says something about the
//! name, not the server, so it must neither count against the upstream's health nor send the query
//! on to every other upstream.
//!
//! An answer of the common simple shape (the data asked for at the question name, the zone's SOA or
//! NS, an OPT record) was checked on the wire by the upstream layer ([`crate::wire::simple`]): it
//! has nothing to scrub, so it is neither parsed nor scrubbed and its bytes go up as they came.
//!
//! When every upstream of the group fails, the query fails with [`HandlerError::Upstream`] holding
//! the last [`UpstreamError`] as it is, which the server sends as SERVFAIL with an Extended DNS
//! Error "Network Error" ([`ede::NETWORK_ERROR`]) whose text is that error's: what failed, and
//! where. When they failed only because each stayed saturated for the whole timeout, it fails with
//! [`HandlerError::Busy`] instead, which the cache does not keep.
//!
//! [`ede::OTHER`]: crate::wire::edns::ede::OTHER
//! [`ede::NETWORK_ERROR`]: crate::wire::edns::ede::NETWORK_ERROR
//!
//! Limitations: a query with no question is passed on unforwarded (the server rejects those
//! earlier anyway); rules match the first question only.

use std::sync::Arc;

use tracing::debug;

use crate::handler::{
    Answer, BoxFuture, BusyReason, Handler, HandlerError, HandlerResult, Next, Origin, Request,
    Verdict,
};
use crate::upstream::{forwarding_flags, Reply, UpstreamError, UpstreamGroup};
use crate::wire::scrub::scrub;
use crate::wire::{Header, Name};

/// A set of suffix rules, each with a value; looks up the most specific rule for a name.
#[derive(Clone, Debug)]
pub struct SuffixRules<T> {
    /// Sorted by label count, most labels first; ties keep their configured order.
    rules: Vec<(Name, T)>,
}

impl<T> SuffixRules<T> {
    /// Rules in any order. When the same suffix appears twice, the first one wins.
    pub fn new(mut rules: Vec<(Name, T)>) -> Self {
        // A stable sort keeps configured order among rules of equal length.
        rules.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.label_count()));
        SuffixRules { rules }
    }

    /// The value of the longest suffix `name` lies at or below.
    pub fn lookup(&self, name: &Name) -> Option<&T> {
        self.rules
            .iter()
            .find(|(suffix, _)| name.is_subdomain_of(suffix))
            .map(|(_, v)| v)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True without rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The forwarding handler.
pub struct Forwarder {
    rules: SuffixRules<Arc<UpstreamGroup>>,
    default: Option<Arc<UpstreamGroup>>,
}

impl Forwarder {
    /// Suffix rules plus an optional default group for names no rule matches. Without a default,
    /// unmatched names go to the next handler.
    pub fn new(
        rules: Vec<(Name, Arc<UpstreamGroup>)>,
        default: Option<Arc<UpstreamGroup>>,
    ) -> Self {
        Forwarder {
            rules: SuffixRules::new(rules),
            default,
        }
    }

    /// The group a name routes to, if any.
    pub fn route(&self, name: &Name) -> Option<&Arc<UpstreamGroup>> {
        self.rules.lookup(name).or(self.default.as_ref())
    }

    /// Every distinct group (rules first, then the default), e.g. to reset them all after a
    /// network change.
    pub fn groups(&self) -> Vec<Arc<UpstreamGroup>> {
        let mut out: Vec<Arc<UpstreamGroup>> = Vec::new();
        let all = self.rules.rules.iter().map(|(_, g)| g).chain(&self.default);
        for g in all {
            if !out.iter().any(|seen| Arc::ptr_eq(seen, g)) {
                out.push(g.clone());
            }
        }
        out
    }
}

impl Forwarder {
    /// Every distinct group with a name for metrics: `default`, or a rule's first domain
    /// (without the final dot).
    pub fn named_groups(&self) -> Vec<(String, Arc<UpstreamGroup>)> {
        let mut out: Vec<(String, Arc<UpstreamGroup>)> = Vec::new();
        let rules = self.rules.rules.iter().map(|(n, g)| {
            let name = n.to_string();
            (name.trim_end_matches('.').to_string(), g)
        });
        let all = rules.chain(self.default.iter().map(|g| ("default".to_string(), g)));
        for (name, g) in all {
            if !out.iter().any(|(_, seen)| Arc::ptr_eq(seen, g)) {
                out.push((name, g.clone()));
            }
        }
        out
    }
}

impl Handler for Forwarder {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        let routed = req
            .query
            .question()
            .and_then(|q| Some((q, self.route(&q.name)?)));
        let Some((question, group)) = routed else {
            return next.run(req);
        };
        Box::pin(async move {
            // Fail closed: every configured upstream failed; the client gets SERVFAIL with an
            // Extended DNS Error "Network Error" (`ede::NETWORK_ERROR`) naming the last failure.
            // There is no other server to try, and certainly no plaintext one.
            let Reply {
                parsed,
                wire,
                upstream,
                ..
            } = group
                .query(question, forwarding_flags(&req.query))
                .await
                .map_err(|e| {
                    debug!(error = %e, "every upstream failed");
                    match e {
                        UpstreamError::Overloaded => HandlerError::Busy(BusyReason::Upstreams),
                        e => HandlerError::upstream(e),
                    }
                })?;
            // An answer of the simple shape was checked on the wire and has nothing to scrub
            // (`wire::simple`): its bytes go up the chain as they came.
            let Some(mut message) = parsed else {
                debug!(
                    rcode = Header::parse(&wire).map_or(0, |h| h.rcode_low),
                    "upstream answered (simple shape)"
                );
                return Ok(Answer::checked(wire, Origin::Upstream, Verdict::Unchecked)
                    .with_upstream(upstream));
            };
            let scrubbed = scrub(&mut message, question).map_err(|e| {
                debug!(error = %e, "upstream answer refused");
                HandlerError::Unusable(e)
            })?;
            debug!(
                rcode = %message.rcode(),
                answers = message.answers.len(),
                dropped = scrubbed.dropped,
                synthesized = scrubbed.synthesized,
                "upstream answered"
            );
            // The bytes go up the chain as they came, unless scrubbing changed the message or the
            // upstream's bare error had no question (the check filled ours in): then once encoded.
            let unchanged = scrubbed.dropped == 0
                && scrubbed.synthesized == 0
                && Header::parse(&wire).is_ok_and(|h| h.qdcount == 1);
            let wire = if unchanged {
                wire
            } else {
                message.encode().map_err(HandlerError::internal)?.into()
            };
            // The response writer clears AA: we relay, we are not the zone's server (RFC 1035
            // section 4.1.1). Not validated here: the verdict is the validator's to give.
            Ok(Answer::checked(wire, Origin::Upstream, Verdict::Unchecked)
                .with_upstream(upstream)
                .with_parsed(message))
        })
    }

    fn name(&self) -> &'static str {
        "forward"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn rules() -> SuffixRules<&'static str> {
        SuffixRules::new(vec![
            (name("lan"), "router"),
            (name("168.192.in-addr.arpa"), "router-ptr"),
            (name("corp.example"), "vpn"),
            (name("eu.corp.example"), "vpn-eu"),
            (name("lan"), "duplicate"),
        ])
    }

    #[test]
    fn longest_label_aligned_suffix_wins() {
        let r = rules();
        assert_eq!(r.len(), 5);
        assert_eq!(r.lookup(&name("lan")), Some(&"router"));
        assert_eq!(r.lookup(&name("Router.LAN")), Some(&"router"));
        assert_eq!(r.lookup(&name("plan")), None);
        assert_eq!(r.lookup(&name("lan.example")), None);
        assert_eq!(
            r.lookup(&name("1.1.168.192.in-addr.arpa")),
            Some(&"router-ptr")
        );
        assert_eq!(r.lookup(&name("1.1.169.192.in-addr.arpa")), None);
        assert_eq!(r.lookup(&name("git.corp.example")), Some(&"vpn"));
        assert_eq!(r.lookup(&name("git.EU.corp.example")), Some(&"vpn-eu"));
        assert_eq!(r.lookup(&name("eu.corp.example")), Some(&"vpn-eu"));
        assert_eq!(r.lookup(&name("xeu.corp.example")), Some(&"vpn"));
        assert_eq!(r.lookup(&name("example")), None);
        assert_eq!(r.lookup(&Name::root()), None);
    }

    #[test]
    fn root_rule_matches_everything_last() {
        let r = SuffixRules::new(vec![(Name::root(), 0), (name("lan"), 1)]);
        assert_eq!(r.lookup(&name("a.lan")), Some(&1));
        assert_eq!(r.lookup(&name("example.com")), Some(&0));
        assert!(!r.is_empty());
        assert!(SuffixRules::<u8>::new(Vec::new()).is_empty());
    }
}
