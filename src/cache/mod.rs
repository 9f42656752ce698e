//! The answer cache: the first handler of the chain, and the product's hottest path.
//!
//! ```text
//!  server --QueryView--> answer_fast: key on the stack -> shard lock -> copy stored bytes,
//!                        patch ID, question case, RD, TTLs; append OPT        (no allocation)
//!  server --Request----> handle: hit -> Message | miss -> one leader runs the chain, identical
//!                        misses wait for it -> policy::prepare -> insert -> answer
//! ```
//!
//! Answers are stored as encoded wire bytes (see [`entry`] for the layout) and answered by copying
//! and patching them, never by re-encoding. What is stored and for how long is [`policy`]: positive
//! answers for their smallest TTL clamped to `min_ttl..=max_ttl`, negative ones per RFC 2308
//! (section 5, min(SOA TTL, SOA MINIMUM), capped by `negative_max_ttl`), SERVFAIL for
//! `servfail_ttl` (RFC 2308 section 7.1). TTLs count down from the moment of insertion in whole
//! seconds and never exceed what was stored; an entry is a miss once its smallest TTL would reach 0.
//!
//! The key ([`key`]) is the lower-cased question plus the DO and CD bits. The hit echoes the
//! client's own spelling of the name (0x20 clients), its ID and RD; AD only if the client set AD or
//! DO (RFC 6840 section 5.8); AA is always clear.
//!
//! Concurrency: the cache is split into a power-of-two number of shards by key hash, each a
//! `std::sync::Mutex` around plain data ([`shard`]). Critical sections are a hash lookup and a copy
//! of a few hundred octets; no lock is ever held across an `.await`. Counters live inside the
//! shards, under the lock the event already holds. Identical concurrent misses are coalesced: the
//! first becomes the leader and runs the rest of the chain; the others wait on a `watch` channel
//! for its result. If the leader is cancelled, its waiters see the channel close and retry (one of
//! them becomes the new leader).
//!
//! Memory is bounded by `capacity` entries and by a byte budget of 1 KiB per entry of capacity
//! (so that huge answers cannot multiply it), with CLOCK eviction per shard. Each entry is one heap
//! allocation (key, TTL offsets and answer together) plus a 16-octet slot and a 16-octet index
//! bucket. Measured with the ignored test `memory_per_entry` (one million distinct one-record A
//! answers of 64 octets for 28-octet names): 148 bytes of RSS per entry, about 141 MiB for a
//! million (96 for the entry's allocation, about 35 for the index at its load factor, 17 for the
//! slot).
//!
//! Limitations:
//! - Queries with an EDNS Client Subnet option (RFC 7871) bypass the cache: their answer may depend
//!   on the client. Other EDNS options (cookies, padding) do not change the answer and are ignored.
//! - Queries with EDNS version other than 0 bypass the cache (the rest of the chain answers BADVERS).
//! - No serve-stale (RFC 8767) and no prefetch before expiry.
//! - Entries are counted, not weighed, against `capacity`; only the byte budget weighs them.

mod entry;
mod key;
mod policy;
mod shard;
mod stats;

#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

use crate::handler::{BoxFuture, Handler, HandlerError, HandlerResult, Next, Request};
use crate::wire::builder::MAX_MESSAGE_LEN;
use crate::wire::edns::code;
use crate::wire::{Message, Opcode, QueryView};

use entry::Client;
use key::Key;
use policy::{Limits, Uncacheable};
use shard::{hash_key, Shard};

pub use stats::CacheStats;

/// Default number of entries.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Default upper bound on a stored TTL: one day.
pub const DEFAULT_MAX_TTL: u32 = 86_400;
/// Default upper bound on a negative answer's lifetime: one hour (RFC 2308 section 5 suggests 1-3).
pub const DEFAULT_NEGATIVE_MAX_TTL: u32 = 3_600;
/// Default lifetime of a cached SERVFAIL.
pub const DEFAULT_SERVFAIL_TTL: u32 = 5;
/// Most shards the cache uses (more only adds memory).
pub const MAX_SHARDS: usize = 1024;
/// Shards used by default, fewer for small capacities.
const AUTO_SHARDS: usize = 64;
/// Fewest entries per shard that `shards = 0` will choose.
const MIN_AUTO_SHARD_ENTRIES: usize = 64;
/// Byte budget per entry of capacity.
const BYTES_PER_ENTRY_BUDGET: usize = 1024;
/// Every shard may hold at least one maximal message.
const MIN_SHARD_BYTES: usize = MAX_MESSAGE_LEN + 1024;

/// How the cache is sized and which TTLs it applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held; 0 disables storing (identical misses are still coalesced).
    pub capacity: usize,
    /// Lower clamp for positive TTLs (negative answers are not raised).
    pub min_ttl: u32,
    /// Upper clamp for every TTL; wins over `min_ttl`.
    pub max_ttl: u32,
    /// Upper bound on a negative answer's lifetime.
    pub negative_max_ttl: u32,
    /// Lifetime of a cached SERVFAIL, at most 300; 0 disables SERVFAIL caching.
    pub servfail_ttl: u32,
    /// Number of shards: 0 chooses; other values are rounded up to a power of two, at most
    /// [`MAX_SHARDS`].
    pub shards: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: DEFAULT_CAPACITY,
            min_ttl: 0,
            max_ttl: DEFAULT_MAX_TTL,
            negative_max_ttl: DEFAULT_NEGATIVE_MAX_TTL,
            servfail_ttl: DEFAULT_SERVFAIL_TTL,
            shards: 0,
        }
    }
}

impl CacheConfig {
    /// The number of shards this configuration gets.
    fn shard_count(&self) -> usize {
        if self.shards == 0 {
            let by_size = (self.capacity / MIN_AUTO_SHARD_ENTRIES).max(1);
            // The largest power of two not above by_size, capped.
            let pow = 1usize << (usize::BITS - 1 - by_size.leading_zeros());
            pow.min(AUTO_SHARDS)
        } else {
            self.shards.min(MAX_SHARDS).next_power_of_two()
        }
    }
}

/// A shard on its own cache lines, so that workers locking neighbouring shards do not share one.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// The answer cache handler.
pub struct Cache {
    shards: Box<[Padded]>,
    shard_mask: u64,
    hasher: RandomState,
    epoch: Instant,
    limits: Limits,
}

impl Cache {
    /// A cache sized by `cfg`. Its clock starts now (`tokio::time`, so tests may pause it).
    pub fn new(cfg: CacheConfig) -> Cache {
        let n = cfg.shard_count();
        let per_shard = cfg.capacity.div_ceil(n);
        let bytes = per_shard
            .saturating_mul(BYTES_PER_ENTRY_BUDGET)
            .max(MIN_SHARD_BYTES);
        let shards = (0..n)
            .map(|_| Padded(Mutex::new(Shard::new(per_shard, bytes))))
            .collect();
        Cache {
            shards,
            shard_mask: (n - 1) as u64,
            hasher: RandomState::new(),
            epoch: Instant::now(),
            limits: Limits {
                min_ttl: cfg.min_ttl,
                max_ttl: cfg.max_ttl,
                negative_max_ttl: cfg.negative_max_ttl,
                servfail_ttl: cfg.servfail_ttl,
            },
        }
    }

    /// Counters summed over the shards, and the current size.
    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats::default();
        for shard in self.shards.iter() {
            let g = lock(shard);
            s.hits += g.counters.hits;
            s.misses += g.counters.misses;
            s.coalesced += g.counters.coalesced;
            s.evictions += g.counters.evictions;
            s.inserts += g.counters.inserts;
            s.entries += g.len() as u64;
        }
        s
    }

    /// Entries held (expired ones included until reclaimed).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, hash: u64) -> MutexGuard<'_, Shard> {
        // Bits 40.. choose the shard: the index uses the low bits for its buckets and the top seven
        // for its control bytes, so these stay independent of both.
        lock(&self.shards[((hash >> 40) & self.shard_mask) as usize])
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Stores the encoded response `wire` to the question of `key` (tests build responses by hand).
    #[cfg(test)]
    fn insert_wire(&self, key: &Key, wire: &[u8]) -> Result<(), Uncacheable> {
        let now = self.now_ms();
        let blob = policy::prepare(&self.limits, key, wire, now)?;
        let hash = hash_key(&self.hasher, key.as_bytes());
        self.shard(hash).insert(hash, blob, now, &self.hasher);
        Ok(())
    }

    /// Writes the cached answer for `key` into `out`; false on a miss.
    fn answer_key(
        &self,
        key: &Key,
        client: &Client<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        let hash = hash_key(&self.hasher, key.as_bytes());
        let now = self.now_ms();
        // Lock held for the lookup and the copy only.
        let mut shard = self.shard(hash);
        let Some(blob) = shard.get(hash, key.as_bytes(), now) else {
            return false;
        };
        if !entry::render(blob, client, now, max_len, out) {
            return false;
        }
        shard.counters.hits += 1;
        true
    }

    /// The slow path: a hit, or one run of the rest of the chain per group of identical misses.
    async fn resolve(&self, req: &Request, next: Next<'_>) -> HandlerResult {
        let Some(key) = request_key(&req.query) else {
            return next.run(req).await;
        };
        let q = &req.query;
        let client = Client {
            id: q.header.id,
            qname: q.questions[0].name.as_wire(),
            recursion_desired: q.header.recursion_desired,
            wants_ad: q.header.authentic_data || q.edns.as_ref().is_some_and(|e| e.dnssec_ok),
            // Always render our OPT so that a cached Extended DNS Error comes back as an option;
            // the server normalises EDNS for the client afterwards.
            edns: Some(q.edns.as_ref().is_some_and(|e| e.dnssec_ok)),
        };
        let hash = hash_key(&self.hasher, key.as_bytes());
        loop {
            let step = {
                // Lock held for this block only; nothing in it awaits.
                let mut shard = self.shard(hash);
                let now = self.now_ms();
                let mut out = Vec::new();
                let hit = shard.get(hash, key.as_bytes(), now).is_some_and(|blob| {
                    entry::render(blob, &client, now, MAX_MESSAGE_LEN, &mut out)
                });
                if hit {
                    shard.counters.hits += 1;
                    Step::Hit(out)
                } else if let Some(flight) = shard.inflight.get(key.as_bytes()) {
                    let rx = flight.subscribe();
                    shard.counters.coalesced += 1;
                    Step::Follow(rx)
                } else {
                    shard
                        .inflight
                        .insert(key.as_bytes().into(), watch::channel(None).0);
                    shard.counters.misses += 1;
                    Step::Lead
                }
            };
            match step {
                Step::Hit(wire) => match Message::parse(&wire) {
                    Ok(m) => return Ok(m),
                    Err(e) => {
                        debug!(error = %e, "cached answer does not parse; asking the chain");
                        return next.run(req).await;
                    }
                },
                Step::Follow(mut rx) => {
                    if let Ok(result) = rx.wait_for(Option::is_some).await {
                        if let Some(result) = result.as_ref() {
                            return result.clone();
                        }
                    }
                    // The leader was cancelled before it had a result: try again.
                }
                Step::Lead => return self.lead(req, next, &key, hash, &client).await,
            }
        }
    }

    /// Runs the rest of the chain for a miss, stores the result and hands it to the waiters.
    async fn lead(
        &self,
        req: &Request,
        next: Next<'_>,
        key: &Key,
        hash: u64,
        client: &Client<'_>,
    ) -> HandlerResult {
        let mut flight = FlightGuard {
            cache: self,
            hash,
            key: key.as_bytes(),
            armed: true,
        };
        let result = next.run(req).await;
        let now = self.now_ms();
        let blob = match &result {
            Ok(m) => m
                .encode()
                .map_err(Uncacheable::from)
                .and_then(|wire| policy::prepare(&self.limits, key, &wire, now)),
            Err(e @ HandlerError::Upstream(_)) => {
                let (info, text) = e.extended_error().unzip();
                policy::servfail(
                    &self.limits,
                    key,
                    info,
                    text.as_deref().unwrap_or("").as_bytes(),
                    now,
                )
            }
            Err(_) => Err(Uncacheable::ChainError),
        };
        let answer = match (&blob, result) {
            // Answer the leader from the stored form, so its TTLs are the ones later hits count
            // down from.
            (Ok(b), Ok(original)) => {
                let mut out = Vec::new();
                match entry::render(b, client, now, MAX_MESSAGE_LEN, &mut out)
                    .then(|| Message::parse(&out))
                {
                    Some(Ok(m)) => Ok(m),
                    _ => Ok(original),
                }
            }
            (_, result) => result,
        };
        if let Err(why) = &blob {
            debug!(reason = %why, "answer not cached");
        }
        let waiters = {
            // Lock held to store the entry and end the flight; nothing awaits here.
            let mut shard = self.shard(hash);
            if let Ok(b) = blob {
                shard.insert(hash, b, now, &self.hasher);
            }
            flight.armed = false;
            shard.inflight.remove(key.as_bytes())
        };
        if let Some(tx) = waiters {
            if tx.receiver_count() > 0 {
                tx.send_replace(Some(answer.clone()));
            }
        }
        answer
    }
}

/// What the slow path does after its critical section.
enum Step {
    Hit(Vec<u8>),
    Follow(watch::Receiver<Option<HandlerResult>>),
    Lead,
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
            self.cache.shard(self.hash).inflight.remove(self.key);
        }
    }
}

fn lock(shard: &Padded) -> MutexGuard<'_, Shard> {
    // A panic under the lock cannot leave the shard memory-unsafe, at worst with stale counters;
    // keep serving.
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
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
        Some(e) if e.version != 0 || e.option(code::CLIENT_SUBNET).is_some() => return None,
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

/// True when the OPT record of a fast-path query carries a Client Subnet option or is malformed.
fn has_client_subnet(query: &QueryView<'_>) -> bool {
    // QueryView has checked that the OPT record spans the rest of the packet.
    let Some(mut opts) = query.raw.get(query.question_end + 11..) else {
        return true;
    };
    while !opts.is_empty() {
        if opts.len() < 4 {
            return true;
        }
        let code = u16::from_be_bytes([opts[0], opts[1]]);
        let len = u16::from_be_bytes([opts[2], opts[3]]) as usize;
        if code == code::CLIENT_SUBNET || opts.len() < 4 + len {
            return true;
        }
        opts = &opts[4 + len..];
    }
    false
}

impl Handler for Cache {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(self.resolve(req, next))
    }

    fn answer_fast(&self, query: &QueryView<'_>, max_len: usize, out: &mut Vec<u8>) -> bool {
        let h = &query.header;
        if h.response || h.opcode != Opcode::QUERY {
            return false;
        }
        if !policy::cacheable_question(query.qtype, query.qclass) {
            return false;
        }
        let dnssec_ok = match query.edns {
            None => false,
            Some(e) if e.version != 0 || (e.has_options && has_client_subnet(query)) => {
                return false
            }
            Some(e) => e.dnssec_ok,
        };
        let Some(key) = Key::new(
            query.qname,
            query.qtype,
            query.qclass,
            dnssec_ok,
            h.checking_disabled,
        ) else {
            return false;
        };
        let client = Client {
            id: h.id,
            qname: query.qname,
            recursion_desired: h.recursion_desired,
            wants_ad: h.authentic_data || dnssec_ok,
            edns: query.edns.map(|e| e.dnssec_ok),
        };
        self.answer_key(&key, &client, max_len, out)
    }

    fn name(&self) -> &'static str {
        "cache"
    }
}
