//! The answer cache: the first handler of the chain, and the product's hottest path.
//!
//! ```text
//!  server --QueryView--> answer_fast: key on the stack -> shard lock -> copy stored bytes,
//!                        patch ID, question case, RD, TTLs; append OPT        (no allocation)
//!                        live hit in the last 10% of its TTL, popular -> job --> refresher
//!  server --Request----> handle: hit -> Answer | miss -> one leader runs the chain, identical
//!                        misses wait for it -> policy::prepare -> insert -> answer
//!                        stale -> job --> refresher, wait <= client timeout, else stale answer
//!  refresher task -----> runs the handlers after the cache for a key (no client), as a leader
//!  cache file <--------> save: stored responses + insertion times | load: parse, prepare, insert
//! ```
//!
//! Answers are stored as encoded wire bytes (see [`entry`] for the layout) and answered by copying
//! and patching them, never by re-encoding. What is stored and for how long is [`policy`]: positive
//! answers for their smallest TTL clamped to `min_ttl..=max_ttl`, negative ones per RFC 2308
//! (section 5, min(SOA TTL, SOA MINIMUM), capped by `negative_max_ttl`), SERVFAIL for
//! `servfail_ttl` (RFC 2308 section 7.1). TTLs count down in whole seconds of the cache's clock and
//! never exceed what was stored. As in unbound and Knot Resolver, an entry is answered through the
//! second in which its smallest TTL reads 0 and is a miss after it: it outlives its TTL by the share
//! of a second that had passed when it was stored ([`Entry::expires_ms`]).
//!
//! The key ([`key`]) is the lower-cased question plus the DO and CD bits. The hit echoes the
//! client's own spelling of the name (0x20 clients), its ID and RD; AD only if the client set AD or
//! DO (RFC 6840 section 5.8); AA is always clear.
//!
//! Concurrency: the cache is split into a power-of-two number of shards by key hash, each a
//! `std::sync::Mutex` around plain data ([`shard`]). Critical sections are a hash lookup and a copy
//! of a few hundred octets; no lock is ever held across an `.await`. Counters live inside the
//! shards, under the lock the event already holds.
//!
//! The handler's work is one module per concern, mostly `impl Cache` blocks over the struct here:
//! - [`lookup`]: the fast path (a `QueryView` answered from the stored bytes, nothing allocated)
//!   and the slow path (a parsed `Request`: hit, miss, or stale data), each deciding under the
//!   shard's lock and awaiting only after it is released.
//! - [`flight`]: identical misses coalesced; one leader runs the rest of the chain, stores the
//!   result and hands it to the others.
//! - [`stale`]: serve-stale (RFC 8767): expired data answered when a refresh fails or is late, and
//!   held after a failure.
//! - [`prefetch`]: which live hits queue a background refresh of a popular entry near its expiry;
//!   [`refresh`] is the task that runs those refreshes, and those of stale data.
//! - [`ttl_clock`]: the monotonic clock TTLs count on, and how its seconds are put on the wall
//!   clock's grid. The time of day (that grid, the cache file's times) is read from the cache's
//!   [`WallClock`] only ([`Cache::with_clock`]; tests move a [`crate::clock::ManualClock`]).
//!
//! Behind the blocker, the cache also holds the blocker's own answers (blocked names'), each
//! valid under one generation of the block lists only and answered on the screened fast path only
//! ([`lookup`], [`shard`]; why in [`crate::block`]): never on the slow path, never stale,
//! prefetched or saved to the cache file, not counted as hits, at most a quarter of each shard.
//!
//! Warm restarts ([`persist`]): the cache can be written to a file (each entry as the response it
//! stored and its wall-clock insertion time) and read back at start, with TTLs aged by the time
//! that passed and every response checked like network input (`Message::parse`, then
//! `policy::prepare`).
//!
//! Memory is bounded by `capacity` entries and by a byte budget of 1 KiB per entry of capacity
//! (so that huge answers cannot multiply it), with CLOCK eviction per shard. Each entry is one heap
//! allocation (key, TTL offsets and answer together) plus a 16-octet slot and a 16-octet index
//! bucket. The ignored test `memory_per_entry` measures what that costs in RSS per entry
//! (BENCHMARKS.md has the figures).
//!
//! Limitations (those of serve-stale and prefetch are listed in [`stale`] and [`prefetch`]):
//! - EDNS options (Client Subnet, cookies, padding) do not change the answer and are ignored: the
//!   upstream query carries none of them ([`crate::upstream::outgoing_query`]), so an answer never
//!   depends on a client's subnet (RFC 7871 section 7.1.3: a resolver that does not support ECS
//!   ignores the option). Answering such queries from the cache also keeps a client from forcing an
//!   upstream query per packet.
//! - Queries with EDNS version other than 0 bypass the cache (the rest of the chain answers BADVERS).
//! - Entries are counted, not weighed, against `capacity`; only the byte budget weighs them.
//!
//! [`Entry::expires_ms`]: entry::Entry::expires_ms

mod entry;
mod flight;
mod key;
mod lookup;
mod persist;
mod policy;
mod prefetch;
mod refresh;
mod shard;
mod slab;
mod stale;
mod stats;
mod ttl_clock;

#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod fit_tests;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::clock::WallClock;
use crate::handler::{
    BoxFuture, FastNext, Handler, HandlerResult, Next, Origin, Request, Screen, Screened,
};
use crate::wire::builder::MAX_MESSAGE_LEN;
use crate::wire::edns::DEFAULT_PAYLOAD;
use crate::wire::{Name, QueryView};

use policy::Limits;
use shard::{Counters, Shard};
use stale::Stale;
use ttl_clock::TtlClock;

pub use persist::{fuzz_cache_file, LoadReport, PersistError};
pub use stats::CacheStats;

/// Default number of entries.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// Default upper bound on a stored TTL: one day.
pub const DEFAULT_MAX_TTL: u32 = 86_400;
/// Default upper bound on a negative answer's lifetime: one hour (RFC 2308 section 5 suggests 1-3).
pub const DEFAULT_NEGATIVE_MAX_TTL: u32 = 3_600;
/// Default lifetime of a cached SERVFAIL.
pub const DEFAULT_SERVFAIL_TTL: u32 = 5;
/// Default time expired data is kept for serve-stale: one day (RFC 8767 section 5 suggests 1-3).
pub const DEFAULT_STALE_MAX_AGE: u32 = 86_400;
/// Default TTL of a stale answer (RFC 8767 section 4: 30 s).
pub const DEFAULT_STALE_ANSWER_TTL: u32 = 30;
/// Default time a query for stale data waits for its refresh (RFC 8767 section 5: 1.8 s).
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_millis(1800);
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
    /// Answer from expired data when the upstream fails or is late (RFC 8767).
    pub serve_stale: bool,
    /// How long past its expiry an entry may be answered stale, in seconds.
    pub stale_max_age: u32,
    /// The TTL of a stale answer, and how long a failed refresh holds an entry before the next
    /// attempt, in seconds (at least 1).
    pub stale_answer_ttl: u32,
    /// How long a query for stale data waits for its refresh; zero answers stale at once.
    pub client_timeout: Duration,
    /// Refresh popular entries in the background before they expire.
    pub prefetch: bool,
    /// The UDP payload size the OPT record of an answer advertises: the server's
    /// `max_udp_payload`, so that a hit and a miss carry the same OPT record.
    pub edns_payload: u16,
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
            serve_stale: true,
            stale_max_age: DEFAULT_STALE_MAX_AGE,
            stale_answer_ttl: DEFAULT_STALE_ANSWER_TTL,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            prefetch: true,
            edns_payload: DEFAULT_PAYLOAD,
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

/// What a reload may change in a running cache.
#[derive(Clone, Copy, Debug)]
struct Policy {
    limits: Limits,
    stale: Option<Stale>,
    prefetch: bool,
}

impl Policy {
    fn from_config(cfg: &CacheConfig) -> Policy {
        Policy {
            // An entry records lifetimes up to entry::MAX_LIFETIME (194 days; configs allow 7).
            limits: Limits {
                min_ttl: cfg.min_ttl,
                max_ttl: cfg.max_ttl.min(entry::MAX_LIFETIME),
                negative_max_ttl: cfg.negative_max_ttl.min(entry::MAX_LIFETIME),
                servfail_ttl: cfg.servfail_ttl,
            },
            stale: Stale::from_config(cfg),
            prefetch: cfg.prefetch,
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
    /// What TTLs, holds and waits count on.
    clock: TtlClock,
    /// The time of day: the second grid and the cache file's times (TTLs count on `clock`).
    wall_clock: WallClock,
    /// TTL limits, serve-stale and prefetch: swapped whole by [`Cache::set_policy`] (a reload),
    /// read without a lock.
    policy: ArcSwap<Policy>,
    /// See [`CacheConfig::edns_payload`].
    payload: u16,
    /// Where refresh jobs go; set once by [`Cache::spawn_refresher`]. Without it there is no
    /// prefetch, and stale data is refreshed by the waiting query itself.
    refresher: OnceLock<mpsc::Sender<refresh::Job>>,
}

impl Cache {
    /// A cache sized by `cfg`, reading the time of day from the system clock. Its TTL clock starts
    /// now (`tokio::time`, so tests may pause it).
    pub fn new(cfg: CacheConfig) -> Cache {
        Cache::with_clock(cfg, WallClock::system())
    }

    /// A cache sized by `cfg` that reads the time of day from `wall_clock`: to put its seconds on
    /// the wall clock's grid ([`Cache::with_wall_clock_seconds`]) and to date and age the entries
    /// of its file ([`Cache::save`], [`Cache::load`]). Its TTL clock starts now (`tokio::time`).
    pub fn with_clock(cfg: CacheConfig, wall_clock: WallClock) -> Cache {
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
            clock: TtlClock::start(),
            wall_clock,
            policy: ArcSwap::from_pointee(Policy::from_config(&cfg)),
            payload: cfg.edns_payload.max(512),
            refresher: OnceLock::new(),
        }
    }

    /// Takes the TTL limits, serve-stale and prefetch settings of `cfg` (a reload); entries keep
    /// the lifetimes they were stored with. Capacity, shards and the EDNS payload stay as built.
    pub fn set_policy(&self, cfg: &CacheConfig) {
        self.policy.store(Arc::new(Policy::from_config(cfg)));
    }

    /// The policy in force (a copy: one reload-consistent view for the caller).
    fn policy(&self) -> Policy {
        **self.policy.load()
    }

    /// Counters summed over the shards, and the current size.
    pub fn stats(&self) -> CacheStats {
        let mut s = CacheStats::default();
        for shard in self.shards.iter() {
            let g = lock(shard);
            s.hits += g.counters.hits;
            s.stale += g.counters.stale;
            s.misses += g.counters.misses;
            s.coalesced += g.counters.coalesced;
            s.refreshes += g.counters.refreshes;
            s.evictions += g.counters.evictions;
            s.inserts += g.counters.inserts;
            s.entries += g.len() as u64;
        }
        s
    }

    /// Drops every entry (`None`), or every entry for `name` and the names below it; returns
    /// how many were dropped (`dnsveil flush`). Lookups in flight keep going and may store their
    /// answers afterwards.
    pub fn flush(&self, name: Option<&Name>) -> usize {
        let below = |e: &entry::Stored<'_>| {
            name.map_or(true, |n| {
                Name::from_wire(key::qname_of(e.key())).is_ok_and(|q| q.is_subdomain_of(n))
            })
        };
        self.shards
            .iter()
            // Each shard's lock is held for its own sweep only.
            .map(|s| lock(s).remove_matching(&self.hasher, below))
            .sum()
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

    /// Counts under the shard's lock (for outcomes known only after a wait).
    fn count(&self, hash: u64, f: impl FnOnce(&mut Counters)) {
        // Lock held for the increment only.
        f(&mut self.shard(hash).counters);
    }

    /// Stores the encoded response `wire` to the question of `key` (tests build responses by hand).
    #[cfg(test)]
    fn insert_wire(&self, key: &key::Key, wire: &[u8]) -> Result<(), policy::Uncacheable> {
        let now = self.now_ms();
        let entry = policy::prepare(&self.policy().limits, key, wire, now)?;
        let hash = shard::hash_key(&self.hasher, key.as_bytes());
        self.shard(hash).insert(hash, entry, now, &self.hasher);
        Ok(())
    }
}

fn lock(shard: &Padded) -> MutexGuard<'_, Shard> {
    // A panic under the lock cannot leave the shard memory-unsafe, at worst with stale counters;
    // keep serving.
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Handler for Cache {
    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        Box::pin(self.resolve(req, next))
    }

    fn answer_fast(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> Option<Origin> {
        match self.fast_path(query, max_len, out, None)? {
            Screened::Passed(origin) | Screened::Failed(origin) => Some(origin),
            // Not without a screen.
            Screened::Missed => None,
        }
    }

    fn answer_fast_screened(
        &self,
        query: &QueryView<'_>,
        max_len: usize,
        out: &mut Vec<u8>,
        _next: FastNext<'_>,
        screen: &dyn Screen,
    ) -> Option<Screened> {
        self.fast_path(query, max_len, out, Some(screen))
    }

    fn name(&self) -> &'static str {
        "cache"
    }
}
