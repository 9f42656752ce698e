//! The answer cache: the first handler of the chain, and the product's hottest path.
//!
//! ```text
//!  server --QueryView--> answer_fast: key on the stack -> shard lock -> copy stored bytes,
//!                        patch ID, question case, RD, TTLs; append OPT        (no allocation)
//!                        live hit in the last 10% of its TTL, popular -> job --> refresher
//!  server --Request----> handle: hit -> Message | miss -> one leader runs the chain, identical
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
//! of a second that had passed when it was stored ([`Entry::expires_ms`](entry::Entry::expires_ms)).
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
//! Serve-stale (RFC 8767): an expired positive or negative answer is kept until `stale_max_age`
//! past its expiry (or until evicted: expired entries go first). A query for it starts a refresh
//! in the background and waits for it at most `client_timeout` (RFC 8767 section 5's client
//! response timer, 1.8 s by default) from its arrival; if the refresh fails (an upstream failure, a
//! SERVFAIL, or upstreams too busy to be asked) or is late, the query gets the stale data with every
//! TTL set to `stale_answer_ttl` (section 4: 30 s) and an Extended DNS Error "Stale Answer" (RFC
//! 8914 info-code 3). A failed refresh never replaces stale or live data; it holds the entry for `stale_answer_ttl` seconds
//! (section 5's failure recheck timer), during which the entry is answered stale at once, on the
//! fast path, without asking upstream again. A `client_timeout` of 0 answers stale at once and
//! refreshes in the background (unbound's `serve-expired` without a client timeout). A SERVFAIL
//! entry is never served stale, nor will be data that failed DNSSEC validation (there is no
//! validator yet; the rule lives with `entry::Parts::stale_ok`, which such data must set false).
//!
//! Prefetch: a hit while the TTL an entry answers with is at most a tenth of the stored one (in whole
//! seconds: unbound's `prefetch: yes` window) on a popular entry queues a refresh, once per entry.
//! The seconds are the wall clock's, as unbound's are ([`Cache::with_wall_clock_seconds`]): for a
//! TTL under 10 s the window is one second, and which queries fall into it should not depend on
//! when the process happened to start.
//! Popular: asked for at least twice, this hit and the client miss that fetched it included.
//! Popularity belongs to the name, so a refreshed entry takes over the asks of the one it replaces
//! and one hit in each later window keeps it refreshed; a name nobody asks for in its window is
//! not refreshed on and on. Popularity is two bits of the entry's flag octet, counted under the
//! lock the hit already holds.
//! Refreshes are run by one refresher task ([`Cache::spawn_refresher`]) that owns
//! the handlers after the cache, so a refresh needs no client: it joins the same `inflight`
//! flights as client misses (one upstream query per key at a time), its result replaces the entry,
//! and clients keep hitting the old entry meanwhile. The fast path only sends a job into a bounded
//! channel (`try_reserve`; a full queue drops the prefetch, load shedding); at most
//! `refresh::MAX_IN_FLIGHT` refreshes run at once.
//!
//! Warm restarts ([`persist`]): the cache can be written to a file (each entry as the response it
//! stored and its wall-clock insertion time) and read back at start, with TTLs aged by the time
//! that passed and every response checked like network input (`Message::parse`, then
//! `policy::prepare`).
//!
//! Two clocks: TTLs, holds and waits count on the monotonic `tokio::time::Instant` (tests pause
//! it); the time of day (the second grid, the cache file's times) is read from the cache's
//! [`WallClock`] only ([`Cache::with_clock`]; tests move a [`crate::clock::ManualClock`]).
//!
//! Memory is bounded by `capacity` entries and by a byte budget of 1 KiB per entry of capacity
//! (so that huge answers cannot multiply it), with CLOCK eviction per shard. Each entry is one heap
//! allocation (key, TTL offsets and answer together) plus a 16-octet slot and a 16-octet index
//! bucket. The ignored test `memory_per_entry` measures what that costs in RSS per entry
//! (BENCHMARKS.md has the figures).
//!
//! Limitations:
//! - EDNS options (Client Subnet, cookies, padding) do not change the answer and are ignored: the
//!   upstream query carries none of them ([`crate::upstream::outgoing_query`]), so an answer never
//!   depends on a client's subnet (RFC 7871 section 7.1.3: a resolver that does not support ECS
//!   ignores the option). Answering such queries from the cache also keeps a client from forcing an
//!   upstream query per packet.
//! - Queries with EDNS version other than 0 bypass the cache (the rest of the chain answers BADVERS).
//! - Entries are counted, not weighed, against `capacity`; only the byte budget weighs them.
//! - A stale answer reaches only EDNS clients with its Extended DNS Error (others just see TTL 30).
//! - Prefetch popularity is a count of asks (carried over refreshes), not a rate; a refresh that fails
//!   is retried only by the next query after the hold, not on a timer.
//! - Stale answers are not persisted differently from live ones; a hold is not persisted.

mod entry;
mod key;
mod persist;
mod policy;
mod refresh;
mod shard;
mod stats;

#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod fit_tests;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::debug;

use crate::clock::WallClock;
use crate::handler::{
    Answer, BoxFuture, Handler, HandlerError, HandlerResult, Next, Origin, Request,
};
use crate::wire::builder::MAX_MESSAGE_LEN;
use crate::wire::edns::{check_options, DEFAULT_PAYLOAD};
use crate::wire::response;
use crate::wire::{Message, Opcode, QueryView, Rcode};

use entry::{Age, Client, Entry, Ttls};
use key::Key;
use policy::{Limits, Uncacheable};
use shard::{hash_key, Counters, Found, Shard};

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
/// Prefetch window: the TTL left is at most 1/N of the stored one (in whole seconds).
const PREFETCH_WINDOW_DIVISOR: u64 = 10;
/// Asks (hits, the client miss that fetched the entry, and those its predecessor had) an entry must
/// have had before the one in its prefetch window to be prefetched.
const PREFETCH_MIN_ASKS: u8 = 1;
/// The cache's clock starts here (ms) rather than at 0, so that an entry read from a cache file can
/// be dated before the process started (about 795 days: more than any TTL plus stale age). Entries
/// store the clock in 48 bits, which leaves thousands of years of uptime. A whole number of
/// seconds, so the clock's seconds (in which TTLs count, [`Entry::expires_ms`]) begin in step with
/// the cache's start, which keeps tests with paused time exact; the server then moves them onto
/// the wall clock's ([`Cache::with_wall_clock_seconds`]).
const CLOCK_BASE_MS: u64 = (1 << 36) / 1000 * 1000;

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

/// The serve-stale settings, present when serve-stale is on.
#[derive(Clone, Copy, Debug)]
struct Stale {
    max_age_ms: u64,
    answer_ttl: u32,
    client_timeout: Duration,
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
    /// Added to the clock so that its seconds tick with the wall clock's (see
    /// [`Cache::with_wall_clock_seconds`]); 0 by default.
    phase_ms: u64,
    /// The time of day: the second grid and the cache file's times (TTLs count on `epoch`).
    wall_clock: WallClock,
    limits: Limits,
    stale: Option<Stale>,
    prefetch: bool,
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
            epoch: Instant::now(),
            phase_ms: 0,
            wall_clock,
            // An entry records lifetimes up to entry::MAX_LIFETIME (194 days; configs allow 7).
            limits: Limits {
                min_ttl: cfg.min_ttl,
                max_ttl: cfg.max_ttl.min(entry::MAX_LIFETIME),
                negative_max_ttl: cfg.negative_max_ttl.min(entry::MAX_LIFETIME),
                servfail_ttl: cfg.servfail_ttl,
            },
            stale: cfg.serve_stale.then_some(Stale {
                max_age_ms: u64::from(cfg.stale_max_age) * 1000,
                answer_ttl: cfg.stale_answer_ttl.max(1),
                client_timeout: cfg.client_timeout,
            }),
            prefetch: cfg.prefetch,
            payload: cfg.edns_payload.max(512),
            refresher: OnceLock::new(),
        }
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

    /// Moves the clock's second boundaries onto the wall clock's, as `time()` seconds are in
    /// unbound: TTLs then count down, and prefetch windows open, when the wall clock's second
    /// turns, not at an offset set by when this process started. Every cache on a machine (and a
    /// cache file's wall-clock times) then shares one second grid; without it, which queries
    /// fall into a one-second prefetch window depends on the process's start, the same for a
    /// whole run. Call before any entry is stored. The wall clock is the cache's
    /// ([`Cache::with_clock`]), read once here: the grid stays where it was put if the wall clock
    /// is stepped later. [`Cache::new`] leaves the phase at 0, so that tests with paused time see
    /// seconds begin with the cache.
    pub fn with_wall_clock_seconds(mut self) -> Cache {
        let wall_ms = self.wall_clock.unix_ms() % 1000;
        // The cache's clock reads a whole number of seconds (CLOCK_BASE_MS) plus the time since
        // `epoch`; the phase makes its position in the second the wall clock's.
        let elapsed = self.epoch.elapsed().as_millis() as u64 % 1000;
        self.phase_ms = (wall_ms + 1000 - elapsed) % 1000;
        self
    }

    /// Milliseconds on the cache's clock (see [`CLOCK_BASE_MS`]).
    fn now_ms(&self) -> u64 {
        CLOCK_BASE_MS + self.phase_ms + self.epoch.elapsed().as_millis() as u64
    }

    /// How long past expiry an entry may be answered stale, in ms (0 with serve-stale off).
    fn stale_window_ms(&self) -> u64 {
        self.stale.map_or(0, |s| s.max_age_ms)
    }

    /// Counts under the shard's lock (for outcomes known only after a wait).
    fn count(&self, hash: u64, f: impl FnOnce(&mut Counters)) {
        // Lock held for the increment only.
        f(&mut self.shard(hash).counters);
    }

    /// Stores the encoded response `wire` to the question of `key` (tests build responses by hand).
    #[cfg(test)]
    fn insert_wire(&self, key: &Key, wire: &[u8]) -> Result<(), Uncacheable> {
        let now = self.now_ms();
        let entry = policy::prepare(&self.limits, key, wire, now)?;
        let hash = hash_key(&self.hasher, key.as_bytes());
        self.shard(hash).insert(hash, entry, now, &self.hasher);
        Ok(())
    }

    /// Notes a live hit on `entry`; true when it should be prefetched now: prefetch is on, the entry
    /// holds data (a SERVFAIL's lifetime is its retry back-off, RFC 2308 section 7.1), it is
    /// popular (asked for at least twice, this hit and the client miss that fetched it included; a
    /// refreshed entry carries its predecessor's asks), no prefetch was asked for it yet, it is not
    /// held after a failure, and the TTL it answers with is at most a tenth of the stored one. Runs
    /// under the shard lock, allocates nothing.
    fn hit_wants_prefetch(&self, entry: &mut Entry, now_ms: u64) -> bool {
        let before = entry.note_hit();
        if !self.prefetch
            || before < PREFETCH_MIN_ASKS
            || !entry.stale_ok()
            || entry.prefetch_requested()
            || entry.is_held(now_ms)
        {
            return false;
        }
        // In whole seconds, as the client sees it: the TTL it is answered with is at most a
        // tenth of the stored one (a lifetime under 10 s: its last second, where the TTL reads 0).
        entry.ttl_left_s(now_ms) * PREFETCH_WINDOW_DIVISOR <= u64::from(entry.lifetime())
    }

    /// Queues a background refresh of `key` and marks `entry` so that it is asked for once. False
    /// when there is no refresher or its queue is full (the refresh is dropped: load shedding).
    /// Runs under the shard lock; sending into the bounded channel does not wait.
    fn request_refresh(&self, entry: &mut Entry, key: &Key, hash: u64) -> bool {
        let Some(tx) = self.refresher.get() else {
            return false;
        };
        let Ok(permit) = tx.try_reserve() else {
            return false;
        };
        entry.set_prefetch_requested();
        permit.send(refresh::Job {
            key: key.clone(),
            hash,
            claimed: false,
        });
        true
    }

    /// A live hit on `entry` (either path): counts it toward popularity, marks it referenced for the
    /// CLOCK hand, and queues its prefetch when due. Under the shard lock; allocates nothing.
    fn on_live_hit(&self, entry: &mut Entry, key: &Key, hash: u64, now_ms: u64) {
        if self.hit_wants_prefetch(entry, now_ms) {
            self.request_refresh(entry, key, hash);
        }
    }

    /// Stale data was found (either path): true when it is answered at once, because a failed
    /// refresh holds the entry or the client timeout is 0; in the latter case its background
    /// refresh is queued, once. False when the query must first wait for a refresh.
    fn stale_now(
        &self,
        stale: Stale,
        entry: &mut Entry,
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

    /// Writes the cached answer for `key` into `out`; false on a miss (or on stale data the slow
    /// path must first try to refresh).
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
        let mut guard = self.shard(hash);
        let shard = &mut *guard;
        match shard.lookup(hash, key.as_bytes(), now, self.stale_window_ms()) {
            None => false,
            Some(Found::Fresh(entry)) => {
                if !entry.render(client, Ttls::At(now), max_len, out) {
                    return false;
                }
                self.on_live_hit(entry, key, hash, now);
                shard.counters.hits += 1;
                true
            }
            Some(Found::Stale(entry)) => {
                let Some(stale) = self.stale else {
                    return false;
                };
                if !self.stale_now(stale, entry, key, hash, now)
                    || !entry.render(client, Ttls::Stale(stale.answer_ttl), max_len, out)
                {
                    return false;
                }
                shard.counters.hits += 1;
                shard.counters.stale += 1;
                true
            }
        }
    }

    /// The slow path: a hit, one run of the rest of the chain per group of identical misses, or a
    /// refresh of stale data that the query waits for at most the client timeout.
    async fn resolve(&self, req: &Request, next: Next<'_>) -> HandlerResult {
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
        let deadline = started + self.stale.map_or(Duration::ZERO, |s| s.client_timeout);
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
        let stale = self.stale;
        match shard.lookup(hash, key.as_bytes(), now, self.stale_window_ms()) {
            Some(Found::Fresh(entry))
                if entry.render(client, Ttls::At(now), MAX_MESSAGE_LEN, &mut out) =>
            {
                self.on_live_hit(entry, key, hash, now);
                let answer = Answer::checked(out, Origin::Cache, entry.verdict());
                shard.counters.hits += 1;
                return Step::Hit(answer);
            }
            Some(Found::Stale(entry)) => {
                let rendered = stale.filter(|s| {
                    let ttls = Ttls::Stale(s.answer_ttl);
                    entry.render(client, ttls, MAX_MESSAGE_LEN, &mut out)
                });
                if let Some(stale) = rendered {
                    let answer = Answer::checked(out, Origin::StaleCache, entry.verdict());
                    if self.stale_now(stale, entry, key, hash, now) {
                        shard.counters.hits += 1;
                        shard.counters.stale += 1;
                        return Step::Hit(answer);
                    }
                    return self.refresh_stale(shard, key, hash, answer);
                }
            }
            _ => {}
        }
        if let Some(flight) = shard.inflight.get(key.as_bytes()) {
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
    }

    /// Stale data was asked for: join the refresh in flight, or start one (in the refresher, so
    /// that it outlives this query; by this query itself when there is no refresher or its queue
    /// is full). The query keeps `stale` to answer with if the refresh fails or is late. Counted
    /// when the outcome is known.
    fn refresh_stale(&self, shard: &mut Shard, key: &Key, hash: u64, stale: Answer) -> Step {
        if let Some(flight) = shard.inflight.get(key.as_bytes()) {
            return Step::FollowOrStale(flight.subscribe(), stale);
        }
        let tx = watch::channel(None).0;
        let rx = tx.subscribe();
        shard.inflight.insert(key.as_bytes().into(), tx);
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
    fn stale_answer(&self, hash: u64, stale: &Answer) -> HandlerResult {
        self.count(hash, |c| {
            c.hits += 1;
            c.stale += 1;
        });
        Ok(stale.clone())
    }

    /// Runs `fetch` (the rest of the chain, for a miss or a refresh), stores the result and hands
    /// it to the waiters. The flight for `key` must have been registered by the caller.
    async fn lead(
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
            Ok(a) => {
                // An entry for a client without DO holds what that client gets: no DNSSEC
                // records it did not ask for (the upstream query may have asked for them).
                let stripped = (!key.dnssec_ok()
                    && response::has_unasked_dnssec(a.wire(), key.qtype()))
                .then(|| response::without_unasked_dnssec(a.wire()));
                match stripped {
                    Some(Err(e)) => Err(Uncacheable::from(e)),
                    Some(Ok(wire)) => policy::prepare(&self.limits, key, &wire, now),
                    None => policy::prepare(&self.limits, key, a.wire(), now),
                }
                .map(|mut entry| {
                    entry.set_verdict(a.verdict());
                    entry
                })
            }
            Err(e @ (HandlerError::Upstream(_) | HandlerError::Unusable(_))) => {
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
        let answer = match (&stored, result) {
            // Answer the leader from the stored form, so its TTLs are the ones later hits count
            // down from.
            (Ok(entry), Ok(original)) => {
                let mut out = Vec::new();
                if entry.render(client, Ttls::At(now), MAX_MESSAGE_LEN, &mut out) {
                    Ok(Answer::checked(
                        out,
                        original.origin(),
                        original.verdict().clone(),
                    ))
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
            shard.inflight.remove(key.as_bytes())
        };
        if let Some(tx) = waiters {
            if tx.receiver_count() > 0 {
                tx.send_replace(Some(answer.clone()));
            }
        }
        answer
    }

    /// After a failed refresh: true (keep the entry) when the entry is still live, or may still be
    /// answered stale. With serve-stale on, a stale-eligible entry is then held for the stale
    /// answer TTL (RFC 8767 section 5, failure recheck): answered stale at once, and not asked for
    /// again, until then.
    fn keep_after_failure(&self, shard: &mut Shard, hash: u64, key: &Key, now_ms: u64) -> bool {
        let Some(entry) = shard.peek_mut(hash, key.as_bytes()) else {
            return false;
        };
        let stale_ok = entry.stale_ok();
        let keep = entry.age(now_ms, self.stale_window_ms()) != Age::Dead;
        if let (true, true, Some(stale)) = (keep, stale_ok, self.stale) {
            let until = now_ms / 1000 + u64::from(stale.answer_ttl);
            entry.set_held_until_s(until.min(u64::from(u32::MAX)) as u32);
            // Let the next attempt after the hold be asked for again.
            entry.clear_prefetch_requested();
        }
        keep
    }
}

/// Who a leader fetches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fetch {
    /// A client's miss: the new entry has been asked for once.
    Client,
    /// A background refresh: the new entry has not been asked for yet.
    Refresh,
}

/// What the slow path does after its critical section.
enum Step {
    Hit(Answer),
    Follow(watch::Receiver<Option<HandlerResult>>),
    Lead,
    /// Wait for a refresh until the client timeout, else answer these stale bytes.
    FollowOrStale(watch::Receiver<Option<HandlerResult>>, Answer),
    /// Lead the refresh in this query, until the client timeout, else answer these stale bytes.
    LeadOrStale(Answer),
}

/// True for an outcome that serve-stale covers: the upstreams failed, answered SERVFAIL, or could
/// not be asked in time (saturated).
fn is_failure(result: &HandlerResult) -> bool {
    match result {
        Ok(a) => a.rcode() == Rcode::SERVFAIL,
        Err(HandlerError::Upstream(_) | HandlerError::Unusable(_) | HandlerError::Busy(_)) => true,
        Err(_) => false,
    }
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
            Some(e) if e.version != 0 || (e.has_options && options_malformed(query)) => {
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
            recursion_available: true,
            qname: query.qname,
            recursion_desired: h.recursion_desired,
            checking_disabled: h.checking_disabled,
            wants_ad: h.authentic_data || dnssec_ok,
            edns: query.edns.map(|e| e.dnssec_ok),
            payload: self.payload,
        };
        self.answer_key(&key, &client, max_len, out)
    }

    fn name(&self) -> &'static str {
        "cache"
    }
}
