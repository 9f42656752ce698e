//! Serve-stale (RFC 8767): answering from expired data when the upstreams fail or are late.
//!
//! An expired positive or negative answer is kept until `stale_max_age` past its expiry (or until
//! evicted: expired entries go first). A query for it starts a refresh in the background and waits
//! for it at most `client_timeout` (RFC 8767 section 5's client response timer, 1.8 s by default)
//! from its arrival; if the refresh fails (an upstream failure, a SERVFAIL, or upstreams too busy
//! to be asked) or is late, the query gets the stale data with every TTL set to `stale_answer_ttl`
//! (section 4: 30 s) and an Extended DNS Error "Stale Answer" (RFC 8914 info-code 3). A failed
//! refresh never replaces stale or live data; it holds the entry for `stale_answer_ttl` seconds
//! (section 5's failure recheck timer), during which the entry is answered stale at once, on the
//! fast path, without asking upstream again. A `client_timeout` of 0 answers stale at once and
//! refreshes in the background (unbound's `serve-expired` without a client timeout). A SERVFAIL
//! entry is never served stale, nor will be data that failed DNSSEC validation (there is no
//! validator yet; the rule lives with `entry::Parts::stale_ok`, which such data must set false).
//!
//! The refresh is an ordinary flight ([`super::flight`]), run by the refresher task when there is
//! one ([`super::refresh`]), so that it outlives the query that asked for it; the hold is the
//! entry's own field ([`super::entry::Entry::is_held`]).
//!
//! Limitations:
//! - A stale answer reaches only EDNS clients with its Extended DNS Error (others just see TTL 30).
//! - A refresh that fails is retried only by the next query after the hold, not on a timer.
//! - Stale answers are not persisted differently from live ones; a hold is not persisted.

use std::time::Duration;

use crate::handler::{Answer, HandlerError, HandlerResult};
use crate::wire::Rcode;

use super::entry::{Age, StoredMut};
use super::key::Key;
use super::lookup::Step;
use super::refresh;
use super::shard::{Flight, Shard};
use super::{Cache, CacheConfig};

/// The serve-stale settings, present when serve-stale is on.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stale {
    /// How long past its expiry an entry may be answered stale.
    pub(super) max_age_ms: u64,
    /// The TTL of a stale answer, and how long a failed refresh holds the entry (at least 1 s).
    pub(super) answer_ttl: u32,
    /// How long a query for stale data waits for its refresh.
    pub(super) client_timeout: Duration,
}

impl Stale {
    /// The settings of `cfg`, `None` with serve-stale off.
    pub(super) fn from_config(cfg: &CacheConfig) -> Option<Stale> {
        cfg.serve_stale.then_some(Stale {
            max_age_ms: u64::from(cfg.stale_max_age) * 1000,
            answer_ttl: cfg.stale_answer_ttl.max(1),
            client_timeout: cfg.client_timeout,
        })
    }
}

impl Cache {
    /// How long past expiry an entry may be answered stale, in ms (0 with serve-stale off).
    pub(super) fn stale_window_ms(&self) -> u64 {
        self.policy().stale.map_or(0, |s| s.max_age_ms)
    }

    /// Stale data was found (either path): true when it is answered at once, because a failed
    /// refresh holds the entry or the client timeout is 0; in the latter case its background
    /// refresh is queued, once. False when the query must first wait for a refresh.
    pub(super) fn stale_now(
        &self,
        stale: Stale,
        entry: &mut StoredMut<'_>,
        key: &Key,
        hash: u64,
        now_ms: u64,
    ) -> bool {
        let held = entry.is_held(now_ms);
        if !held && !stale.client_timeout.is_zero() {
            return false;
        }
        if !held && !entry.prefetch_requested() {
            self.request_refresh(entry, key, hash);
        }
        true
    }

    /// Stale data was asked for: join the refresh in flight, or start one (in the refresher, so
    /// that it outlives this query; by this query itself when there is no refresher or its queue
    /// is full). The query keeps `stale` to answer with if the refresh fails or is late. Counted
    /// when the outcome is known.
    pub(super) fn refresh_stale(
        &self,
        shard: &mut Shard,
        key: &Key,
        hash: u64,
        stale: Answer,
    ) -> Step {
        if let Some(flight) = shard.inflight.get_mut(hash, key.as_bytes()) {
            return Step::FollowOrStale(flight.subscribe(), stale);
        }
        let mut flight = Flight::default();
        let rx = flight.subscribe();
        // Not registered only when another key of the same hash is in flight: then the channel is
        // closed at once and this query answers stale (see `Flights`).
        shard.inflight.try_insert(hash, key.as_bytes(), flight);
        let queued = self.refresher.get().is_some_and(|r| {
            r.try_send(refresh::Job {
                key: key.clone(),
                hash,
                claimed: true,
            })
            .is_ok()
        });
        if queued {
            Step::FollowOrStale(rx, stale)
        } else {
            Step::LeadOrStale(stale)
        }
    }

    /// Answers from stale data rendered earlier (its TTLs do not depend on the time).
    pub(super) fn stale_answer(&self, hash: u64, stale: &Answer) -> HandlerResult {
        self.count(hash, |c| {
            c.hits += 1;
            c.stale += 1;
        });
        Ok(stale.clone())
    }

    /// After a failed refresh: true (keep the entry) when the entry is still live, or may still be
    /// answered stale. With serve-stale on, a stale-eligible entry is then held for the stale
    /// answer TTL (RFC 8767 section 5, failure recheck): answered stale at once, and not asked for
    /// again, until then.
    pub(super) fn keep_after_failure(
        &self,
        shard: &mut Shard,
        hash: u64,
        key: &Key,
        now_ms: u64,
    ) -> bool {
        let Some(mut entry) = shard.peek_mut(hash, key.as_bytes()) else {
            return false;
        };
        let stale_ok = entry.stale_ok();
        let keep = entry.age(now_ms, self.stale_window_ms()) != Age::Dead;
        if let (true, true, Some(stale)) = (keep, stale_ok, self.policy().stale) {
            let until = now_ms / 1000 + u64::from(stale.answer_ttl);
            entry.set_held_until_s(until.min(u64::from(u32::MAX)) as u32);
            // Let the next attempt after the hold be asked for again.
            entry.clear_prefetch_requested();
        }
        keep
    }
}

/// True for an outcome that serve-stale covers: the upstreams failed, answered SERVFAIL, or could
/// not be asked in time (saturated).
pub(super) fn is_failure(result: &HandlerResult) -> bool {
    match result {
        Ok(a) => a.rcode_is(Rcode::SERVFAIL),
        Err(
            HandlerError::Upstream(_)
            | HandlerError::Unusable(_)
            | HandlerError::Busy(_)
            | HandlerError::Bogus(_),
        ) => true,
        Err(_) => false,
    }
}
