//! Coalescing of identical misses: one question per key in flight at a time.
//!
//! Identical concurrent misses are coalesced: the first becomes the leader and runs the rest of the
//! chain; the others wait on a `watch` channel for its result. If the leader is cancelled, its
//! waiters see the channel close and retry (one of them becomes the new leader). The flights are
//! the shard's `inflight` map, keyed like the entries and changed only under the shard's lock;
//! whoever decides to lead registers the flight there first: a slow-path miss ([`super::lookup`]),
//! a query for stale data ([`super::stale`]) or a background refresh ([`super::refresh`]).
//! Refreshes join the same flights as client misses, so a key is never asked for twice at once,
//! and a burst of queries for a name that just expired costs one upstream query, not one each.
//!
//! The leader also stores what it fetched, before it wakes its waiters: an answer through
//! `policy::prepare` with its verdict (an entry for a client without DO is stripped of the DNSSEC
//! records it did not ask for), an upstream failure as a SERVFAIL entry (`policy::servfail`); a
//! failed refresh of data that can still be answered keeps that data instead
//! ([`Cache::keep_after_failure`]). The leader is answered from the stored form, so that its TTLs
//! are the ones later hits count down from.

use tracing::debug;

use crate::handler::{Answer, BoxFuture, HandlerError, HandlerResult, Origin, BOGUS_TTL};
use crate::wire::builder::MAX_MESSAGE_LEN;
use crate::wire::response;

use super::entry::{Client, Ttls};
use super::key::Key;
use super::policy::{self, Uncacheable};
use super::stale::is_failure;
use super::Cache;

impl Cache {
    /// Runs `fetch` (the rest of the chain, for a miss or a refresh), stores the result and hands
    /// it to the waiters. The flight for `key` must have been registered by the caller.
    pub(super) async fn lead(
        &self,
        fetch: BoxFuture<'_, HandlerResult>,
        key: &Key,
        hash: u64,
        client: &Client<'_>,
        purpose: Fetch,
    ) -> HandlerResult {
        let mut flight = FlightGuard {
            cache: self,
            hash,
            key: key.as_bytes(),
            armed: true,
        };
        let result = fetch.await;
        let now = self.now_ms();
        let failed = is_failure(&result);
        let stored = match &result {
            Ok(a) if a.origin() == Origin::Local => Err(Uncacheable::Local),
            Ok(a) => {
                // An entry for a client without DO holds what that client gets: no DNSSEC
                // records it did not ask for (the upstream query may have asked for them).
                let stripped = (!key.dnssec_ok()
                    && response::has_unasked_dnssec(a.wire(), key.qtype()))
                .then(|| match a.parsed() {
                    Some(m) => response::parsed_without_unasked_dnssec(m),
                    None => response::without_unasked_dnssec(a.wire()),
                });
                match stripped {
                    Some(Err(e)) => Err(Uncacheable::from(e)),
                    Some(Ok(wire)) => policy::prepare(&self.policy().limits, key, &wire, now),
                    None => policy::prepare(&self.policy().limits, key, a.wire(), now),
                }
                .map(|mut entry| {
                    entry.set_verdict(a.verdict());
                    entry
                })
            }
            Err(
                e
                @ (HandlerError::Upstream(_) | HandlerError::Unusable(_) | HandlerError::Bogus(_)),
            ) => {
                let (info, text) = e.extended_error().unzip();
                // A bogus answer is kept longer than a failure to reach the upstreams: it will be
                // bogus again, and finding out costs validation work.
                let lifetime = match e {
                    HandlerError::Bogus(_) => BOGUS_TTL,
                    _ => self.policy().limits.servfail_ttl,
                };
                policy::servfail(
                    key,
                    info,
                    text.as_deref().unwrap_or("").as_bytes(),
                    now,
                    lifetime,
                )
            }
            Err(_) => Err(Uncacheable::ChainError),
        };
        let answer = match (&stored, result) {
            // Answer the leader from the stored form, so its TTLs are the ones later hits count
            // down from.
            (Ok(entry), Ok(original)) => {
                let mut out = Vec::new();
                if entry.render(client, Ttls::At(now), MAX_MESSAGE_LEN, &mut out) {
                    Ok(plain_if(key, original.rewritten(out)))
                } else {
                    Ok(original)
                }
            }
            (_, result) => result,
        };
        if let Err(why) = &stored {
            debug!(reason = %why, "answer not cached");
        }
        let waiters = {
            // Lock held to store the entry and end the flight; nothing awaits here.
            let mut shard = self.shard(hash);
            let kept = failed && self.keep_after_failure(&mut shard, hash, key, now);
            if let (Ok(mut entry), false) = (stored, kept) {
                if purpose == Fetch::Client {
                    // The miss that fetched it is an ask (see `hit_wants_prefetch`); the shard
                    // adds those of the entry it replaces.
                    entry.count_ask();
                }
                shard.insert(hash, entry, now, &self.hasher);
            }
            flight.armed = false;
            shard.inflight.remove(hash, key.as_bytes())
        };
        if let Some(flight) = waiters {
            flight.publish(&answer);
        }
        answer
    }
}

/// `answer`, rendered from the entry of `key`, marked as what a client without DO gets when the
/// key is for such clients (the entry was stripped of what they did not ask for when stored).
pub(super) fn plain_if(key: &Key, answer: Answer) -> Answer {
    if key.dnssec_ok() {
        answer
    } else {
        answer.known_plain()
    }
}

/// Who a leader fetches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fetch {
    /// A client's miss: the new entry has been asked for once.
    Client,
    /// A background refresh: the new entry has not been asked for yet.
    Refresh,
}

/// Ends a flight if its leader is dropped before finishing (the request was cancelled): its
/// waiters see the channel close and retry.
struct FlightGuard<'a> {
    cache: &'a Cache,
    hash: u64,
    key: &'a [u8],
    armed: bool,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Lock held only to remove the flight.
            self.cache
                .shard(self.hash)
                .inflight
                .remove(self.hash, self.key);
        }
    }
}
