//! The two ways a query reaches the cache, and what each does with what it finds.
//!
//! ```text
//!  fast path  (Handler::answer_fast: a QueryView, nothing allocated)
//!    key on the stack -> shard lock -> live entry: render, screen, queue its prefetch when due -> hit
//!                                   -> stale entry answered at once (held, or client_timeout 0)
//!                                   -> anything else: false, and the server takes the slow path
//!  slow path  (Handler::handle: a parsed Request)
//!    shard lock -> step -> Hit | Follow a flight | Lead one | FollowOrStale | LeadOrStale
//!    lock released -> wait for the flight or lead it (bounded by client_timeout for stale data)
//! ```
//!
//! The fast path is what a hit costs: one lock, one hash lookup and one copy of the stored bytes
//! with ID, question spelling, flags and TTLs patched ([`Entry::render`]), and no allocation. It
//! declines whatever it cannot answer exactly as the slow path would: a miss, stale data that must
//! first be refreshed, a query the cache does not answer (not a QUERY, an uncacheable type), or one
//! the slow path answers FORMERR or BADVERS (malformed EDNS options, EDNS version other than 0). So
//! a hit and a miss look alike to the client.
//!
//! Behind the blocker the fast path is screened ([`crate::handler::Screen`]): a rendered answer is
//! judged by the blocker's check unless the entry's place in the shard's index records that it
//! passed the check's current generation (then the hit costs one comparison more), and an entry
//! that passes is stamped with it. An answer that fails goes back to the blocker with no effect
//! here: not counted, no prefetch or refresh queued. The slow path is not screened: the blocker
//! checks what comes back.
//!
//! A miss or a failed entry on the screened fast path asks the screen for its own answer (the
//! blocked response): stored in the entry's place, stamped with the screen's generation and a flag
//! that makes it the screen's own, and answered as a local answer. Hits on it are answered only
//! under that generation ([`Cache::own_hit`]); the slow path misses it.
//!
//! The slow path decides under the shard's lock what a query does ([`Step`]) and acts on it with
//! the lock released, because following or leading a flight ([`super::flight`]) awaits; stale data
//! goes through serve-stale ([`super::stale`]). Live hits on either path count toward prefetch
//! ([`super::prefetch`]).
//!
//! [`Entry::render`]: super::entry::Entry::render

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::handler::{Answer, HandlerResult, Next, Origin, Request, Screen, Screened};
use crate::wire::builder::MAX_MESSAGE_LEN;
use crate::wire::edns::check_options;
use crate::wire::{Message, Opcode, QueryView};

use super::entry::{Client, Ttls};
use super::flight::{plain_if, Fetch};
use super::key::Key;
use super::policy;
use super::shard::{hash_key, Flight, Found, Shard, OWN};
use super::stale::is_failure;
use super::Cache;

impl Cache {
    /// The fast path: keys `query` on the stack and answers it from the stored bytes
    /// ([`Cache::answer_key`]) and says whether they were fresh or stale; `None` leaves it to the
    /// slow path (see the module docs). With a `screen` (the blocker in front), the answer is
    /// judged by it unless the entry already passed the screen's generation.
    #[inline]
    pub(super) fn fast_path(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        screen: Option<&dyn Screen>,
    ) -> Option<Screened> {
        let h = &query.header;
        if h.response || h.opcode != Opcode::QUERY {
            return None;
        }
        if !policy::cacheable_question(query.qtype, query.qclass) {
            return None;
        }
        let dnssec_ok = match query.edns {
            None => false,
            Some(e) if e.version != 0 || (e.has_options && options_malformed(query)) => {
                return None
            }
            Some(e) => e.dnssec_ok,
        };
        let key = Key::new(
            query.qname,
            query.qtype,
            query.qclass,
            dnssec_ok,
            h.checking_disabled,
        )?;
        let client = Client {
            id: h.id,
            recursion_available: true,
            qname: query.qname,
            recursion_desired: h.recursion_desired,
            checking_disabled: h.checking_disabled,
            wants_ad: h.authentic_data || dnssec_ok,
            edns: query.edns.map(|e| e.dnssec_ok),
            payload: self.payload,
        };
        let screen = screen.map(|s| (s, query));
        self.answer_key(&key, &client, max_len, out, screen)
    }

    /// Writes the cached answer for `key` into `out` and says whether it was fresh or stale; `None`
    /// on a miss (or on stale data the slow path must first try to refresh).
    ///
    /// With a screen, an entry stamped with the screen's generation is answered without asking it
    /// (the stored bytes passed that very check before); any other entry is rendered and judged,
    /// and stamped if it passes. An entry that fails is answered as [`Screened::Failed`] with no
    /// other effect: not counted, no prefetch or refresh queued (so a name blocked since it was
    /// stored never reaches an upstream through the cache), not stamped.
    ///
    /// With a screen, a miss and a failed entry then ask the screen for its own answer
    /// ([`Screen::own_answer`]): one is stored in place of the failed entry, stamped as the
    /// screen's own under its generation, and answered as [`Origin::Local`]; the next ask of the
    /// same generation is a hit on it and nothing else (see [`Cache::own_hit`]).
    fn answer_key(
        &self,
        key: &Key,
        client: &Client<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        screen: Option<(&dyn Screen, &QueryView<'_>)>,
    ) -> Option<Screened> {
        let hash = hash_key(&self.hasher, key.as_bytes());
        let failed = {
            // Lock held for the lookup, the copy and (once per entry and generation) the screen's
            // check, which is synchronous and bounded; nothing here awaits.
            let mut guard = self.shard(hash);
            match self.answer_locked(&mut guard, key, hash, client, max_len, out, screen)? {
                Locked::Answered(screened) => return Some(screened),
                Locked::Missed => None,
                Locked::Failed(origin) => Some(origin),
            }
        };
        // A miss or a failed answer behind a screen: the screen's own answer, if it has one,
        // written, stored and answered with the lock released (the screen's lookup may touch
        // cold memory; storing takes the lock again).
        let (screen, query) = screen?;
        let generation = screen.generation() & !OWN;
        let previous = failed.map(|_| std::mem::take(out));
        let Some(lifetime) = screen.own_answer(query, previous.as_deref().unwrap_or(&[]), out)
        else {
            return Some(match (failed, previous) {
                (Some(origin), Some(previous)) => {
                    *out = previous;
                    Screened::Failed(origin)
                }
                _ => Screened::Missed,
            });
        };
        let now = self.now_ms();
        // An own answer that cannot be stored or rendered (too long an Extended DNS Error text)
        // is left to the screening stage, which writes it itself.
        let entry = policy::own(key, out, lifetime, now).ok()?;
        out.clear();
        if !entry.render(client, Ttls::At(now), max_len, out) {
            return None;
        }
        // Lock held for the insert only.
        self.shard(hash)
            .insert_own(hash, entry, generation, now, &self.hasher);
        Some(Screened::Passed(Origin::Local))
    }

    /// [`Cache::answer_key`] under the shard's lock: a hit answered (or failed), a miss, or
    /// `None` to leave the query to the slow path.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn answer_locked(
        &self,
        shard: &mut Shard,
        key: &Key,
        hash: u64,
        client: &Client<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        screen: Option<(&dyn Screen, &QueryView<'_>)>,
    ) -> Option<Locked> {
        // A miss (a blocked name's first ask) ends before the clock and the policy are read.
        let Some((idx, screened)) = shard.find(hash, key.as_bytes()) else {
            return Some(Locked::Missed);
        };
        if screened & OWN != 0 {
            return self.own_hit(shard, idx, screened, client, max_len, out, screen);
        }
        let now = self.now_ms();
        match shard.lookup_at(idx, hash, now, self.stale_window_ms()) {
            None => Some(Locked::Missed),
            Some(Found::Fresh(mut entry)) => {
                if !entry.render(client, Ttls::At(now), max_len, out) {
                    return None;
                }
                let Some(stamp) = judge(screened, screen, out) else {
                    return Some(Locked::Failed(Origin::Cache));
                };
                self.on_live_hit(&mut entry, key, hash, now);
                shard.counters.hits += 1;
                if let Some(generation) = stamp {
                    shard.set_screened(hash, generation);
                }
                Some(Locked::Answered(Screened::Passed(Origin::Cache)))
            }
            Some(Found::Stale(mut entry)) => {
                let stale = self.policy().stale?;
                // Rendered (and judged) before `stale_now`, which may queue a refresh.
                if !entry.render(client, Ttls::Stale(stale.answer_ttl), max_len, out) {
                    return None;
                }
                let Some(stamp) = judge(screened, screen, out) else {
                    return Some(Locked::Failed(Origin::StaleCache));
                };
                if !self.stale_now(stale, &mut entry, key, hash, now) {
                    return None;
                }
                shard.counters.hits += 1;
                shard.counters.stale += 1;
                if let Some(generation) = stamp {
                    shard.set_screened(hash, generation);
                }
                Some(Locked::Answered(Screened::Passed(Origin::StaleCache)))
            }
        }
    }

    /// A hit on the screen's own answer stored under the stamp `screened`: answered as
    /// [`Origin::Local`] only behind a screen of that very generation, and then like any hit (the
    /// one response writer, TTLs counted down) but not counted as a cache hit, not marked
    /// referenced, never prefetched, refreshed upstream or answered stale. Under any other
    /// generation, or without a screen, it is a miss (and replaced if the screen answers again).
    ///
    /// Once its lifetime (the screen's TTL) is over, its TTLs have counted down to 0 and it is
    /// renewed in place: stored again now, as the screen would store it again, since under the
    /// same generation the screen's answer is the same bytes (the same lists, rule, mode and
    /// TTL). So a blocked name asked now and then costs one hit per ask, not a rebuild every
    /// `block.ttl` seconds; a client never sees a TTL above the screen's, and never one that
    /// counts up within a lifetime.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn own_hit(
        &self,
        shard: &mut Shard,
        idx: usize,
        screened: u32,
        client: &Client<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        screen: Option<(&dyn Screen, &QueryView<'_>)>,
    ) -> Option<Locked> {
        let current = screen.is_some_and(|(s, _)| (s.generation() & !OWN) | OWN == screened);
        if !current {
            return Some(Locked::Missed);
        }
        let now = self.now_ms();
        let mut entry = shard.entry_mut(idx)?;
        if entry.is_expired(now) {
            entry.renew(now);
        }
        entry
            .render(client, Ttls::At(now), max_len, out)
            .then_some(Locked::Answered(Screened::Passed(Origin::Local)))
    }

    /// The slow path: a hit, one run of the rest of the chain per group of identical misses, or a
    /// refresh of stale data that the query waits for at most the client timeout.
    pub(super) async fn resolve(&self, req: &Request, next: Next<'_>) -> HandlerResult {
        let Some(key) = request_key(&req.query) else {
            return next.run(req).await;
        };
        let started = Instant::now();
        let q = &req.query;
        let client = Client {
            id: q.header.id,
            recursion_available: true,
            qname: q.questions[0].name.as_wire(),
            recursion_desired: q.header.recursion_desired,
            checking_disabled: q.header.checking_disabled,
            wants_ad: q.header.authentic_data || q.edns.as_ref().is_some_and(|e| e.dnssec_ok),
            // Always render our OPT so that a cached Extended DNS Error comes back as an option;
            // the server normalises EDNS for the client afterwards.
            edns: Some(q.edns.as_ref().is_some_and(|e| e.dnssec_ok)),
            payload: self.payload,
        };
        let hash = hash_key(&self.hasher, key.as_bytes());
        let deadline = started
            + self
                .policy()
                .stale
                .map_or(Duration::ZERO, |s| s.client_timeout);
        loop {
            let step = {
                // Lock held for this block only; nothing in it awaits.
                let mut guard = self.shard(hash);
                self.step(&mut guard, &key, hash, &client)
            };
            match step {
                Step::Hit(answer) => return Ok(answer),
                Step::Follow(mut rx) => {
                    if let Ok(result) = rx.wait_for(Option::is_some).await {
                        if let Some(result) = result.as_ref() {
                            return result.clone();
                        }
                    }
                    // The leader was cancelled before it had a result: try again.
                }
                Step::Lead => {
                    return self
                        .lead(next.run(req), &key, hash, &client, Fetch::Client)
                        .await
                }
                Step::FollowOrStale(mut rx, stale) => {
                    let result =
                        match tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await
                        {
                            Ok(Ok(result)) => result.as_ref().cloned(),
                            // Late, or the refresh was abandoned.
                            _ => None,
                        };
                    return match result {
                        Some(r) if !is_failure(&r) => {
                            self.count(hash, |c| c.coalesced += 1);
                            r
                        }
                        _ => self.stale_answer(hash, &stale),
                    };
                }
                Step::LeadOrStale(stale) => {
                    let lead = self.lead(next.run(req), &key, hash, &client, Fetch::Client);
                    return match tokio::time::timeout_at(deadline, lead).await {
                        Ok(r) if !is_failure(&r) => {
                            self.count(hash, |c| c.misses += 1);
                            r
                        }
                        _ => self.stale_answer(hash, &stale),
                    };
                }
            }
        }
    }

    /// Decides what a slow-path query does, under its shard's lock.
    fn step(&self, shard: &mut Shard, key: &Key, hash: u64, client: &Client<'_>) -> Step {
        let now = self.now_ms();
        let mut out = Vec::new();
        let stale = self.policy().stale;
        match shard.lookup(hash, key.as_bytes(), now, self.stale_window_ms()) {
            Some(Found::Fresh(mut entry))
                if entry.render(client, Ttls::At(now), MAX_MESSAGE_LEN, &mut out) =>
            {
                self.on_live_hit(&mut entry, key, hash, now);
                let answer = plain_if(key, Answer::checked(out, Origin::Cache, entry.verdict()));
                shard.counters.hits += 1;
                return Step::Hit(answer);
            }
            Some(Found::Stale(mut entry)) => {
                let rendered = stale.filter(|s| {
                    let ttls = Ttls::Stale(s.answer_ttl);
                    entry.render(client, ttls, MAX_MESSAGE_LEN, &mut out)
                });
                if let Some(stale) = rendered {
                    let answer = Answer::checked(out, Origin::StaleCache, entry.verdict());
                    let answer = plain_if(key, answer);
                    if self.stale_now(stale, &mut entry, key, hash, now) {
                        shard.counters.hits += 1;
                        shard.counters.stale += 1;
                        return Step::Hit(answer);
                    }
                    return self.refresh_stale(shard, key, hash, answer);
                }
            }
            _ => {}
        }
        if let Some(flight) = shard.inflight.get_mut(hash, key.as_bytes()) {
            let rx = flight.subscribe();
            shard.counters.coalesced += 1;
            Step::Follow(rx)
        } else {
            // Not registered only when another key of the same hash is in flight: this one then
            // leads alone (see `Flights`).
            shard
                .inflight
                .try_insert(hash, key.as_bytes(), Flight::default());
            shard.counters.misses += 1;
            Step::Lead
        }
    }
}

/// What the fast path found under the shard's lock.
enum Locked {
    /// Answered (or failed the screen) from a stored entry.
    Answered(Screened),
    /// No entry to answer from.
    Missed,
    /// The entry's rendered answer (in `out`) failed the screen.
    Failed(Origin),
}

/// What the slow path does after its critical section.
pub(super) enum Step {
    /// Answered under the lock.
    Hit(Answer),
    /// Wait for the leader of the flight for this key.
    Follow(watch::Receiver<Option<HandlerResult>>),
    /// This query registered the flight: run the rest of the chain.
    Lead,
    /// Wait for a refresh until the client timeout, else answer these stale bytes.
    FollowOrStale(watch::Receiver<Option<HandlerResult>>, Answer),
    /// Lead the refresh in this query, until the client timeout, else answer these stale bytes.
    LeadOrStale(Answer),
}

/// Whether the answer rendered into `out` from an entry that last passed the screen generation
/// `screened` passes `screen` (always, without one): `None` if it fails, else the generation to
/// stamp the entry with, if it must be (`None` when it already carries the screen's generation:
/// then the screen is not asked at all).
#[inline]
fn judge(
    screened: u32,
    screen: Option<(&dyn Screen, &QueryView<'_>)>,
    out: &[u8],
) -> Option<Option<u32>> {
    let Some((screen, query)) = screen else {
        return Some(None);
    };
    let generation = screen.generation();
    if screened == generation {
        return Some(None);
    }
    screen.passes(query, out).then_some(Some(generation))
}

/// The cache key of a parsed query, or `None` if the query must bypass the cache.
fn request_key(q: &Message) -> Option<Key> {
    if q.header.opcode != Opcode::QUERY || q.questions.len() != 1 {
        return None;
    }
    let question = &q.questions[0];
    if !policy::cacheable_question(question.qtype, question.qclass) {
        return None;
    }
    let dnssec_ok = match &q.edns {
        None => false,
        Some(e) if e.version != 0 => return None,
        Some(e) => e.dnssec_ok,
    };
    Key::new(
        question.name.as_wire(),
        question.qtype,
        question.qclass,
        dnssec_ok,
        q.header.checking_disabled,
    )
}

/// True when the options of a fast-path query's OPT record do not parse as the slow path parses them
/// (a Client Subnet address longer than its prefix, a short cookie): those queries are left to the
/// slow path, which answers FORMERR, so that a hit and a miss answer alike.
fn options_malformed(query: &QueryView<'_>) -> bool {
    // QueryView has checked that the OPT record (root owner, 10 fixed octets, RDATA) ends the
    // packet, so its RDATA is the rest.
    query
        .raw
        .get(query.question_end + 11..)
        .map_or(true, |rdata| check_options(rdata).is_err())
}
