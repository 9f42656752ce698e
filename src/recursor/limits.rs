//! The work one client query may cause, each limit a named constant (NXNSAttack, CVE-2020-12662,
//! and its kin: a single query must not be able to make us send hundreds of packets).
//!
//! A [`Budget`] is made per client query and shared by everything done for it, the name server
//! address lookups (glueless delegations) included. Reaching a limit ends the query with SERVFAIL
//! ([`super::RecursorError::Limit`]), which the cache keeps for its short SERVFAIL time.
//!
//! | limit | value | unbound's counterpart |
//! |---|---|---|
//! | [`MAX_UPSTREAM_QUERIES`] | 100 | `max-sent-count` 32 per iteration, about 200 in all |
//! | [`MAX_REFERRALS`] | 30 | `MAX_REFERRAL_COUNT` 130 |
//! | [`MAX_NS_LOOKUPS_PER_DELEGATION`] | 8 | `MAX_TARGET_NX` and target fetch limits (16) |
//! | [`MAX_NS_LOOKUPS_PER_QUERY`] | 32 | `MAX_TARGET_COUNT` 64 |
//! | [`MAX_LOOKUP_DEPTH`] | 4 | `MAX_DEPENDENCY_DEPTH`-like nesting |
//! | [`MAX_QUERY_TIME`] | 10 s | (the client's own retry timer) |
//!
//! Each is at or below unbound's, so a hierarchy that resolves with unbound's defaults and is not
//! an attack resolves here, while an attack's amplification is smaller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::wire::{LowerName, Name, RType};

/// Most queries sent to authoritative servers for one client query.
pub const MAX_UPSTREAM_QUERIES: usize = 100;
/// Most referrals followed for one client query.
pub const MAX_REFERRALS: usize = 30;
/// Most name server names without addresses looked up for one delegation.
pub const MAX_NS_LOOKUPS_PER_DELEGATION: usize = 8;
/// Most name server address lookups for one client query.
pub const MAX_NS_LOOKUPS_PER_QUERY: usize = 32;
/// Deepest nesting of name server address lookups (a lookup for a server of a server of ...).
pub const MAX_LOOKUP_DEPTH: usize = 4;
/// Longest one client query is worked on.
pub const MAX_QUERY_TIME: Duration = Duration::from_secs(10);

/// Which limit a query reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    #[error("more than {MAX_UPSTREAM_QUERIES} upstream queries")]
    UpstreamQueries,
    #[error("more than {MAX_REFERRALS} referrals")]
    Referrals,
    #[error("more than {MAX_NS_LOOKUPS_PER_QUERY} name server address lookups")]
    NsLookups,
    #[error("no answer within {MAX_QUERY_TIME:?}")]
    Time,
}

/// What one client query has spent.
#[derive(Debug)]
pub struct Budget {
    queries: AtomicUsize,
    referrals: AtomicUsize,
    ns_lookups: AtomicUsize,
    pub deadline: Instant,
    /// Questions being resolved for name server addresses, to stop a lookup that needs itself.
    /// Never held across an `.await`.
    stack: Mutex<Vec<(LowerName, RType)>>,
}

impl Budget {
    pub fn new(now: Instant) -> Budget {
        Budget {
            queries: AtomicUsize::new(0),
            referrals: AtomicUsize::new(0),
            ns_lookups: AtomicUsize::new(0),
            deadline: now + MAX_QUERY_TIME,
            stack: Mutex::new(Vec::new()),
        }
    }

    fn spend(counter: &AtomicUsize, max: usize, limit: Limit) -> Result<(), Limit> {
        if counter.fetch_add(1, Ordering::Relaxed) >= max {
            return Err(limit);
        }
        Ok(())
    }

    /// One more upstream query.
    pub fn query(&self) -> Result<(), Limit> {
        Self::spend(&self.queries, MAX_UPSTREAM_QUERIES, Limit::UpstreamQueries)
    }

    /// One more referral.
    pub fn referral(&self) -> Result<(), Limit> {
        Self::spend(&self.referrals, MAX_REFERRALS, Limit::Referrals)
    }

    /// One more name server address lookup.
    pub fn ns_lookup(&self) -> Result<(), Limit> {
        Self::spend(&self.ns_lookups, MAX_NS_LOOKUPS_PER_QUERY, Limit::NsLookups)
    }

    /// Upstream queries sent so far.
    pub fn queries_sent(&self) -> usize {
        self.queries
            .load(Ordering::Relaxed)
            .min(MAX_UPSTREAM_QUERIES)
    }

    /// Marks `(name, qtype)` as being looked up; false when it already is (a dependency loop).
    pub fn enter(&self, name: &Name, qtype: RType) -> bool {
        let mut stack = self.stack.lock().unwrap_or_else(|e| e.into_inner());
        let key = (LowerName::from(name), qtype);
        if stack.contains(&key) {
            return false;
        }
        stack.push(key);
        true
    }

    /// Ends [`Budget::enter`].
    pub fn leave(&self, name: &Name, qtype: RType) {
        let mut stack = self.stack.lock().unwrap_or_else(|e| e.into_inner());
        let key = (LowerName::from(name), qtype);
        if let Some(i) = stack.iter().rposition(|k| *k == key) {
            stack.remove(i);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_allows_exactly_its_value() {
        let b = Budget::new(Instant::now());
        for _ in 0..MAX_UPSTREAM_QUERIES {
            b.query().unwrap();
        }
        assert_eq!(b.query(), Err(Limit::UpstreamQueries));
        assert_eq!(b.queries_sent(), MAX_UPSTREAM_QUERIES);
        for _ in 0..MAX_REFERRALS {
            b.referral().unwrap();
        }
        assert_eq!(b.referral(), Err(Limit::Referrals));
        for _ in 0..MAX_NS_LOOKUPS_PER_QUERY {
            b.ns_lookup().unwrap();
        }
        assert_eq!(b.ns_lookup(), Err(Limit::NsLookups));
    }

    #[test]
    fn a_lookup_that_needs_itself_is_refused() {
        let b = Budget::new(Instant::now());
        let n: Name = "ns.loop.test".parse().unwrap();
        assert!(b.enter(&n, RType::A));
        assert!(!b.enter(&"NS.loop.test".parse().unwrap(), RType::A));
        assert!(b.enter(&n, RType::AAAA));
        b.leave(&n, RType::A);
        assert!(b.enter(&n, RType::A));
    }
}
