//! The delegation cache: zone cut -> name servers (names and addresses), with TTLs, so a query
//! starts at the deepest cut known instead of at the root.
//!
//! ```text
//!   referral from the parent's servers (bailiwick-checked in step.rs)
//!        --> Delegation { zone, NS names, in-bailiwick glue, expires }   (insert_if_absent)
//!   NS name --address lookup / glue--> addresses with their own TTL     (addresses)
//!   query name --walk up the labels--> deepest unexpired Delegation      (deepest)
//! ```
//!
//! Ghost-domain protection (CVE-2012-1033): a delegation is stored only from a referral by the
//! parent's servers, never from NS records in a child's own answers, and an unexpired delegation is
//! never replaced or extended. When it expires it is gone, and the next query asks the parent again:
//! a domain removed from its parent dies with its TTL however often its own servers are asked.
//! TTLs are capped at [`MAX_DELEGATION_TTL`] (a day, as unbound's `cache-max-ttl`).
//!
//! Bounded: at most [`MAX_ZONES`] delegations and [`MAX_ADDR_NAMES`] name server names; when full,
//! expired entries go, then the whole map is cleared (a cold start, not a failure). The maps sit
//! behind std mutexes that are never held across an `.await`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::wire::{LowerName, Name};

/// Longest a delegation or an address is kept.
pub const MAX_DELEGATION_TTL: Duration = Duration::from_secs(86_400);
/// Most delegations kept.
pub const MAX_ZONES: usize = 50_000;
/// Most name server names whose addresses are kept.
pub const MAX_ADDR_NAMES: usize = 100_000;
/// Most NS names kept per delegation (a zone with more is served by the first ones).
pub const MAX_NS_PER_ZONE: usize = 32;

/// A name server of a delegation and the addresses its referral carried (in-bailiwick glue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsServer {
    pub name: Name,
    pub glue: Vec<IpAddr>,
}

/// A zone cut and its servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    pub zone: Name,
    pub servers: Vec<NsServer>,
    pub expires: Instant,
}

/// Delegations and name server addresses.
#[derive(Default)]
pub struct DelegationCache {
    /// Never held across an `.await`.
    zones: Mutex<HashMap<LowerName, Arc<Delegation>>>,
    /// NS name -> (addresses, expiry). Never held across an `.await`.
    addrs: Mutex<HashMap<LowerName, (Vec<IpAddr>, Instant)>>,
}

/// The TTL of a record as a duration, capped.
pub fn ttl(seconds: u32) -> Duration {
    Duration::from_secs(u64::from(seconds)).min(MAX_DELEGATION_TTL)
}

impl DelegationCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The deepest unexpired delegation at or above `name`.
    pub fn deepest(&self, name: &Name, now: Instant) -> Option<Arc<Delegation>> {
        // The name and each of its ancestors are suffixes of its lower-cased wire form, one per
        // label boundary: looked up as slices, with no name built per level.
        name.with_lower(|wire| {
            let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
            let mut at = 0;
            loop {
                let suffix = wire.get(at..)?;
                if let Some(d) = zones.get(suffix) {
                    if d.expires > now {
                        return Some(d.clone());
                    }
                }
                match suffix.first() {
                    Some(&len) if len > 0 => at += 1 + usize::from(len),
                    _ => return None,
                }
            }
        })
    }

    /// Stores `d` unless an unexpired delegation for its zone is already there (ghost-domain
    /// protection: see the module docs); returns the one in force.
    pub fn insert_if_absent(&self, mut d: Delegation, now: Instant) -> Arc<Delegation> {
        d.servers.truncate(MAX_NS_PER_ZONE);
        let key = LowerName::from(&d.zone);
        let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = zones.get(&key) {
            if old.expires > now {
                return old.clone();
            }
        }
        if zones.len() >= MAX_ZONES {
            zones.retain(|_, d| d.expires > now);
            if zones.len() >= MAX_ZONES {
                zones.clear();
            }
        }
        let d = Arc::new(d);
        zones.insert(key, d.clone());
        d
    }

    /// The unexpired addresses stored for name server `name` (an empty list is a failed lookup,
    /// remembered briefly).
    pub fn addresses(&self, name: &Name, now: Instant) -> Option<Vec<IpAddr>> {
        let addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        name.with_lower(|key| {
            addrs
                .get(key)
                .filter(|(_, exp)| *exp > now)
                .map(|(a, _)| a.clone())
        })
    }

    /// Calls `f` with the unexpired addresses stored for name server `name`, without copying
    /// them; false (and `f` not called) when there are none stored.
    pub fn with_addresses(&self, name: &Name, now: Instant, f: impl FnOnce(&[IpAddr])) -> bool {
        let addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        let found = name.with_lower(|key| addrs.get(key).filter(|(_, exp)| *exp > now));
        match found {
            Some((a, _)) => {
                f(a);
                true
            }
            None => false,
        }
    }

    /// Stores the addresses of name server `name` for `ttl`.
    pub fn set_addresses(&self, name: &Name, list: Vec<IpAddr>, ttl: Duration, now: Instant) {
        let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        if addrs.len() >= MAX_ADDR_NAMES {
            addrs.retain(|_, (_, exp)| *exp > now);
            if addrs.len() >= MAX_ADDR_NAMES {
                addrs.clear();
            }
        }
        addrs.insert(
            LowerName::from(name),
            (list, now + ttl.min(MAX_DELEGATION_TTL)),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn deleg(zone: &str, ns: &str, expires: Instant) -> Delegation {
        Delegation {
            zone: n(zone),
            servers: vec![NsServer {
                name: n(ns),
                glue: vec![],
            }],
            expires,
        }
    }

    #[test]
    fn the_deepest_unexpired_cut_is_found() {
        let c = DelegationCache::new();
        let now = Instant::now();
        c.insert_if_absent(deleg(".", "a.root", now + Duration::from_secs(100)), now);
        c.insert_if_absent(deleg("test", "ns.test", now + Duration::from_secs(50)), now);
        c.insert_if_absent(
            deleg(
                "EXAMPLE.test",
                "ns.example.test",
                now + Duration::from_secs(10),
            ),
            now,
        );
        assert_eq!(
            c.deepest(&n("www.example.TEST"), now).unwrap().zone,
            n("example.test")
        );
        assert_eq!(c.deepest(&n("other.test"), now).unwrap().zone, n("test"));
        let later = now + Duration::from_secs(20);
        assert_eq!(
            c.deepest(&n("www.example.test"), later).unwrap().zone,
            n("test")
        );
        assert_eq!(c.deepest(&n("org"), later).unwrap().zone, n("."));
        assert!(c
            .deepest(&n("org"), now + Duration::from_secs(200))
            .is_none());
    }

    #[test]
    fn an_unexpired_delegation_is_neither_replaced_nor_extended() {
        let c = DelegationCache::new();
        let now = Instant::now();
        let first = now + Duration::from_secs(10);
        c.insert_if_absent(deleg("ghost.test", "ns1.ghost.test", first), now);
        let kept = c.insert_if_absent(
            deleg(
                "ghost.test",
                "ns2.ghost.test",
                now + Duration::from_secs(1000),
            ),
            now + Duration::from_secs(5),
        );
        assert_eq!(kept.expires, first);
        assert_eq!(kept.servers[0].name, n("ns1.ghost.test"));
        assert!(c
            .deepest(&n("ghost.test"), now + Duration::from_secs(11))
            .is_none());
        // Expired: the parent's new referral is taken.
        let fresh = c.insert_if_absent(
            deleg(
                "ghost.test",
                "ns2.ghost.test",
                now + Duration::from_secs(100),
            ),
            now + Duration::from_secs(11),
        );
        assert_eq!(fresh.servers[0].name, n("ns2.ghost.test"));
    }

    #[test]
    fn addresses_expire() {
        let c = DelegationCache::new();
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        c.set_addresses(&n("ns.test"), vec![ip], Duration::from_secs(5), now);
        assert_eq!(c.addresses(&n("NS.test"), now), Some(vec![ip]));
        assert_eq!(
            c.addresses(&n("ns.test"), now + Duration::from_secs(5)),
            None
        );
        assert_eq!(ttl(u32::MAX), MAX_DELEGATION_TTL);
    }
}
