//! Server selection: which address of a zone's name servers to ask next, and how long to wait.
//!
//! Per address, a smoothed round-trip time and its variance (RFC 6298 section 2: gains 1/8 and
//! 1/4), from which the timeout of the next query is derived (SRTT + 4 RTTVAR, within
//! [`MIN_TIMEOUT`]..[`MAX_TIMEOUT`], doubled per consecutive timeout). An address never measured
//! counts as [`UNKNOWN_RTT`] and is waited for [`INITIAL_TIMEOUT`].
//!
//! Order: every usable address whose RTT is within [`RTT_BAND`] of the best is a candidate for the
//! first try, chosen at random among them (unbound's 400 ms band): servers are explored and load is
//! spread, while one that is far slower is asked only when the fast ones fail. After them come the
//! others by RTT, then addresses resting:
//! - a server that timed out rests for [`REST_BASE`], doubled per consecutive timeout up to
//!   [`MAX_REST`]; its RTT is raised to the timeout it failed, so after its rest it is asked first
//!   only when nothing better is left (its record expires after [`STATS_TTL`], and it is probed
//!   afresh; any answer clears it);
//! - a server lame for a zone (it answered without authority, with REFUSED or SERVFAIL, or with a
//!   referral that goes nowhere) rests for that zone for [`LAME_REST`].
//!
//! Besides timing, each record remembers whether the server fails EDNS and whether it loses the
//! letter case of a question (0x20, [`super::case`]); both go with the record when it expires, so
//! such a server is probed afresh later.
//!
//! A resting address is still tried, last, when nothing else is left, so a zone whose servers all
//! rest is not failed without a try.
//!
//! One std mutex guards the table; it is never held across an `.await`. The table is bounded
//! ([`MAX_SERVERS`]): when full, expired records go, then the table is cleared.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;

use crate::wire::{LowerName, Name};

/// RTT assumed for a server never measured (unbound's `UNKNOWN_SERVER_NICENESS`).
pub const UNKNOWN_RTT: Duration = Duration::from_millis(376);
/// Timeout of the first query to a server never measured.
pub const INITIAL_TIMEOUT: Duration = Duration::from_millis(400);
/// Shortest timeout, however fast a server was.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest timeout of one query to one server.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3);
/// Servers within this much of the best RTT are chosen from at random.
pub const RTT_BAND: Duration = Duration::from_millis(400);
/// Rest after a first timeout; doubled per consecutive timeout.
pub const REST_BASE: Duration = Duration::from_secs(5);
/// Longest rest.
pub const MAX_REST: Duration = Duration::from_secs(300);
/// Rest of a server for a zone it is lame for.
pub const LAME_REST: Duration = Duration::from_secs(300);
/// A server's record is forgotten this long after its last update.
pub const STATS_TTL: Duration = Duration::from_secs(900);
/// Most addresses (and zones with lame servers) remembered.
pub const MAX_SERVERS: usize = 16_384;
/// Most lame addresses remembered per zone (the oldest goes first).
pub const MAX_LAME_PER_ZONE: usize = 32;

#[derive(Clone, Copy, Debug)]
struct Stats {
    srtt: Duration,
    rttvar: Duration,
    timeouts: u32,
    rest_until: Option<Instant>,
    no_edns: bool,
    /// Answers 0x20 queries in another case ([`super::case`]).
    no_case: bool,
    updated: Instant,
}

impl Stats {
    /// What is known of a server never measured (or whose record expired).
    fn unknown(now: Instant) -> Stats {
        Stats {
            srtt: UNKNOWN_RTT,
            rttvar: UNKNOWN_RTT / 2,
            timeouts: 0,
            rest_until: None,
            no_edns: false,
            no_case: false,
            updated: now,
        }
    }
}

/// Per-address statistics and lameness.
#[derive(Default)]
pub struct ServerTable {
    /// Never held across an `.await`.
    stats: Mutex<HashMap<IpAddr, Stats>>,
    /// zone -> (address, lame until): looked up once per [`ServerTable::order`], by the zone's
    /// lower-cased name built on the stack. Never held across an `.await`.
    lame: Mutex<HashMap<LowerName, Vec<(IpAddr, Instant)>>>,
}

impl ServerTable {
    pub fn new() -> Self {
        Self::default()
    }

    fn current(&self, ip: IpAddr, now: Instant) -> Option<Stats> {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats
            .get(&ip)
            .copied()
            .filter(|s| now.duration_since(s.updated) < STATS_TTL)
    }

    /// `addrs` in the order to try them for `zone` (see the module docs).
    pub fn order(&self, addrs: &[IpAddr], zone: &Name, now: Instant) -> Vec<IpAddr> {
        let lame = self.lame.lock().unwrap_or_else(|e| e.into_inner());
        let lame_here = match lame.is_empty() {
            true => None,
            false => zone.with_lower(|z| lame.get(z)),
        };
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let mut scored: Vec<(bool, Duration, IpAddr)> = addrs
            .iter()
            .map(|&ip| {
                let s = stats
                    .get(&ip)
                    .filter(|s| now.duration_since(s.updated) < STATS_TTL);
                let resting = s.and_then(|s| s.rest_until).is_some_and(|t| t > now)
                    || lame_here.is_some_and(|l| l.iter().any(|&(i, t)| i == ip && t > now));
                (resting, s.map_or(UNKNOWN_RTT, |s| s.srtt), ip)
            })
            .collect();
        drop(stats);
        drop(lame);
        scored.sort_by_key(|(resting, rtt, _)| (*resting, *rtt));
        let Some(&(false, best, _)) = scored.first() else {
            return scored.into_iter().map(|(_, _, ip)| ip).collect();
        };
        let band = scored
            .iter()
            .take_while(|(resting, rtt, _)| !resting && *rtt <= best + RTT_BAND)
            .count();
        scored[..band].shuffle(&mut rand::thread_rng());
        scored.into_iter().map(|(_, _, ip)| ip).collect()
    }

    /// How long to wait for `ip`.
    pub fn timeout(&self, ip: IpAddr, now: Instant) -> Duration {
        timeout_of(self.current(ip, now))
    }

    /// What asking `ip` needs to know, in one lookup: its timeout, whether it fails EDNS, and
    /// whether it loses the case of a question.
    pub fn plan(&self, ip: IpAddr, now: Instant) -> Plan {
        let s = self.current(ip, now);
        Plan {
            timeout: timeout_of(s),
            no_edns: s.is_some_and(|s| s.no_edns),
            no_case: s.is_some_and(|s| s.no_case),
        }
    }

    /// Whether `ip` is known not to take EDNS.
    pub fn no_edns(&self, ip: IpAddr, now: Instant) -> bool {
        self.current(ip, now).is_some_and(|s| s.no_edns)
    }

    fn update(&self, ip: IpAddr, now: Instant, f: impl FnOnce(Option<Stats>) -> Stats) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if stats.len() >= MAX_SERVERS && !stats.contains_key(&ip) {
            stats.retain(|_, s| now.duration_since(s.updated) < STATS_TTL);
            if stats.len() >= MAX_SERVERS {
                stats.clear();
            }
        }
        // One lookup (the entry) where a get and an insert took two.
        match stats.entry(ip) {
            Entry::Occupied(mut e) => {
                let old = Some(*e.get()).filter(|s| now.duration_since(s.updated) < STATS_TTL);
                *e.get_mut() = f(old);
            }
            Entry::Vacant(e) => {
                e.insert(f(None));
            }
        }
    }

    /// `ip` answered after `rtt`: the RTT estimate moves toward it and any rest ends.
    pub fn answered(&self, ip: IpAddr, rtt: Duration, now: Instant) {
        // After timeouts the old estimate says nothing: start afresh (RFC 6298 section 5, note).
        self.update(ip, now, |old| match old.filter(|s| s.timeouts == 0) {
            None => Stats {
                srtt: rtt,
                rttvar: rtt / 2,
                timeouts: 0,
                rest_until: None,
                no_edns: old.is_some_and(|s| s.no_edns),
                no_case: old.is_some_and(|s| s.no_case),
                updated: now,
            },
            Some(s) => {
                let diff = if s.srtt > rtt {
                    s.srtt - rtt
                } else {
                    rtt - s.srtt
                };
                Stats {
                    srtt: s.srtt * 7 / 8 + rtt / 8,
                    rttvar: s.rttvar * 3 / 4 + diff / 4,
                    timeouts: 0,
                    rest_until: None,
                    no_edns: s.no_edns,
                    no_case: s.no_case,
                    updated: now,
                }
            }
        });
    }

    /// `ip` did not answer within `waited`: it rests (see the module docs).
    pub fn timed_out(&self, ip: IpAddr, waited: Duration, now: Instant) {
        self.update(ip, now, |old| {
            let s = old.unwrap_or(Stats::unknown(now));
            let timeouts = s.timeouts.saturating_add(1);
            let rest = REST_BASE
                .saturating_mul(1 << (timeouts - 1).min(10))
                .min(MAX_REST);
            Stats {
                srtt: s.srtt.max(waited),
                timeouts,
                rest_until: Some(now + rest),
                updated: now,
                ..s
            }
        });
    }

    /// `ip` failed EDNS (FORMERR or NOTIMP to a query with an OPT record).
    pub fn set_no_edns(&self, ip: IpAddr, now: Instant) {
        self.update(ip, now, |old| Stats {
            no_edns: true,
            updated: now,
            ..old.unwrap_or(Stats::unknown(now))
        });
    }

    /// Whether `ip` is known not to keep the case of a question (0x20 fallback).
    pub fn no_case(&self, ip: IpAddr, now: Instant) -> bool {
        self.current(ip, now).is_some_and(|s| s.no_case)
    }

    /// `ip` answered a randomised-case question in another case: it is asked without 0x20 until
    /// its record expires ([`STATS_TTL`] after its last update).
    pub fn set_no_case(&self, ip: IpAddr, now: Instant) {
        self.update(ip, now, |old| Stats {
            no_case: true,
            updated: now,
            ..old.unwrap_or(Stats::unknown(now))
        });
    }

    /// `ip` is lame for `zone`.
    pub fn lame(&self, ip: IpAddr, zone: &Name, now: Instant) {
        let mut lame = self.lame.lock().unwrap_or_else(|e| e.into_inner());
        let until = now + LAME_REST;
        if let Some(list) = zone.with_lower(|z| lame.get_mut(z)) {
            list.retain(|&(i, t)| i != ip && t > now);
            if list.len() >= MAX_LAME_PER_ZONE {
                list.remove(0);
            }
            list.push((ip, until));
            return;
        }
        if lame.len() >= MAX_SERVERS {
            lame.retain(|_, list| list.iter().any(|&(_, t)| t > now));
            if lame.len() >= MAX_SERVERS {
                lame.clear();
            }
        }
        lame.insert(LowerName::from(zone), vec![(ip, until)]);
    }
}

/// What asking one address needs to know ([`ServerTable::plan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub timeout: Duration,
    pub no_edns: bool,
    pub no_case: bool,
}

/// The timeout for a server with `stats` (None: nothing known).
fn timeout_of(stats: Option<Stats>) -> Duration {
    match stats {
        None => INITIAL_TIMEOUT,
        Some(s) => {
            let base = (s.srtt + 4 * s.rttvar).clamp(MIN_TIMEOUT, MAX_TIMEOUT);
            base.saturating_mul(1 << s.timeouts.min(5)).min(MAX_TIMEOUT)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn fast_servers_are_explored_at_random_and_a_slow_one_comes_after_them() {
        let t = ServerTable::new();
        let now = Instant::now();
        let zone: Name = "example".parse().unwrap();
        let (a, b, slow) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        t.answered(a, Duration::from_millis(10), now);
        t.answered(b, Duration::from_millis(20), now);
        t.answered(slow, Duration::from_millis(900), now);
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..200 {
            let order = t.order(&[slow, a, b], &zone, now);
            assert_eq!(order[2], slow);
            firsts.insert(order[0]);
        }
        assert_eq!(
            firsts.len(),
            2,
            "both fast servers are tried first sometimes"
        );
    }

    #[test]
    fn a_dead_server_rests_with_backoff_and_a_lame_one_rests_for_its_zone() {
        let t = ServerTable::new();
        let now = Instant::now();
        let zone: Name = "example".parse().unwrap();
        let other: Name = "other".parse().unwrap();
        let (dead, good, lame) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        assert_eq!(t.timeout(dead, now), INITIAL_TIMEOUT);
        t.timed_out(dead, INITIAL_TIMEOUT, now);
        t.lame(lame, &zone, now);
        for _ in 0..50 {
            assert_eq!(t.order(&[dead, lame, good], &zone, now)[0], good);
        }
        assert_eq!(t.order(&[dead, lame], &other, now)[0], lame);
        // The rest doubles per consecutive timeout, and so does the timeout.
        let first = t.timeout(dead, now);
        t.timed_out(dead, first, now);
        assert!(t.timeout(dead, now) >= first);
        let later = now + REST_BASE + Duration::from_millis(1);
        assert_eq!(t.order(&[dead], &zone, later), vec![dead]);
        assert_eq!(
            t.order(&[dead, good], &zone, later)[0],
            good,
            "still resting"
        );
        let after = now + 2 * REST_BASE + Duration::from_millis(1);
        assert_eq!(
            t.order(&[good, dead], &zone, after)[0],
            good,
            "slow after its rest"
        );
        // An answer clears it.
        t.answered(dead, Duration::from_millis(1), after);
        assert_eq!(t.timeout(dead, after), MIN_TIMEOUT);
        // Records expire.
        assert_eq!(t.timeout(dead, after + STATS_TTL), INITIAL_TIMEOUT);
    }

    #[test]
    fn timeouts_follow_the_measured_rtt_within_their_bounds() {
        let t = ServerTable::new();
        let now = Instant::now();
        let s = ip("192.0.2.9");
        for _ in 0..20 {
            t.answered(s, Duration::from_millis(300), now);
        }
        let to = t.timeout(s, now);
        assert!(
            to >= Duration::from_millis(300) && to < Duration::from_millis(700),
            "{to:?}"
        );
        t.set_no_edns(s, now);
        assert!(t.no_edns(s, now));
    }

    #[test]
    fn a_server_that_loses_case_is_remembered_until_its_record_expires() {
        let t = ServerTable::new();
        let now = Instant::now();
        let (s, other) = (ip("192.0.2.9"), ip("192.0.2.10"));
        assert!(!t.no_case(s, now));
        t.set_no_case(s, now);
        assert!(t.no_case(s, now) && !t.no_case(other, now));
        // Answers and timeouts keep it.
        t.answered(s, Duration::from_millis(5), now);
        t.timed_out(s, INITIAL_TIMEOUT, now);
        t.answered(s, Duration::from_millis(5), now);
        assert!(t.no_case(s, now));
        assert!(!t.no_case(s, now + STATS_TTL), "probed again later");
    }
}
