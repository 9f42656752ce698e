//! Per-client rate limiting of UDP queries: a token bucket per client network, with BIND's "slip".
//!
//! A resolver reachable from a LAN (or worse, from anywhere) must not become a reflector, nor let
//! one looping client take every cycle. Each client network (an IPv4 address or /24, an IPv6 /56 by
//! default, see [`RateLimitConfig`]) gets a bucket that refills at `qps` queries per second and holds
//! at most `burst`. A query that finds a token is served as usual. A query that finds none is
//! *limited*: every `slip`-th limited query gets an empty answer with TC=1 (a real client retries
//! over TCP, which a spoofed source cannot complete) and the others get nothing, as in BIND's
//! response rate limiting (`slip 2`: every other one). `slip = 1` truncates every limited query,
//! `slip = 0` drops them all. The TC answer is never larger than the query, so it amplifies nothing.
//!
//! Only UDP is limited here: a TCP client has completed a handshake (its address is real) and is
//! bounded by the connection caps and the fair in-flight budget instead.
//!
//! The bucket is kept as GCRA (the generic cell rate algorithm): one number per client, the
//! "theoretical arrival time" of its next query, so a check is a comparison and an addition. Time
//! is passed in by the caller, once per received batch, so the cached fast path pays for no clock
//! read of its own; with limiting off the listener holds no limiter at all.
//!
//! Memory is bounded: at most `max_clients` networks are tracked, over [`SHARDS`] shards each
//! behind its own lock (held for one map operation, never across `.await`). A shard that is full
//! first forgets the clients whose buckets have refilled (they are indistinguishable from new
//! ones); if that frees too little (a flood of spoofed sources), it forgets an arbitrary eighth of
//! its clients, whose next query then starts with a full bucket. So a flood from many sources costs
//! a bounded table and amortised constant work per query.
//!
//! Counts of limited queries (answered TC, dropped) are kept in [`RateLimitCounters`] for logs and
//! metrics; allowed queries are not counted (that would put a shared atomic on the fast path).
//!
//! Limitations: the limit is on queries, not on responses (BIND RRL counts identical responses);
//! a client's TCP retries are not limited; limiting is off by default (`rate_limit = 0`).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Shards of the client table (a power of two).
pub const SHARDS: usize = 16;
/// Default IPv4 prefix a bucket covers.
pub const DEFAULT_IPV4_PREFIX: u8 = 32;
/// Default IPv6 prefix a bucket covers (a home's usual delegation).
pub const DEFAULT_IPV6_PREFIX: u8 = 56;

/// How the limiter behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Queries per second each client network may send (at least 1).
    pub qps: u32,
    /// Queries a client may send at once after being quiet (at least 1).
    pub burst: u32,
    /// Every `slip`-th limited query gets TC=1, the rest are dropped; 0 drops them all.
    pub slip: u32,
    /// Prefix length that groups IPv4 clients (8 to 32).
    pub ipv4_prefix: u8,
    /// Prefix length that groups IPv6 clients (16 to 128).
    pub ipv6_prefix: u8,
    /// Most client networks tracked at once (at least [`SHARDS`]).
    pub max_clients: usize,
}

/// What to do with a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the client's rate: serve it.
    Allow,
    /// Over the rate: answer with an empty TC=1 response.
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// Counts of limited queries since start, readable from anywhere (logs, metrics).
#[derive(Debug, Default)]
pub struct RateLimitCounters {
    slipped: AtomicU64,
    dropped: AtomicU64,
    /// Clients forgotten because the table was full of clients that had not refilled.
    evicted: AtomicU64,
}

impl RateLimitCounters {
    /// Limited queries answered with TC=1.
    pub fn slipped(&self) -> u64 {
        self.slipped.load(Ordering::Relaxed)
    }

    /// Limited queries dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Clients forgotten early because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

impl std::fmt::Display for RateLimitCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "slipped={} dropped={} evicted={}",
            self.slipped(),
            self.dropped(),
            self.evicted()
        )
    }
}

/// One client network's bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Theoretical arrival time of the next query, in nanoseconds since the limiter's start.
    tat: u64,
    /// Limited queries so far, for the slip rotation.
    limited: u32,
}

/// The limiter: a bounded, sharded table of buckets.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    /// Nanoseconds between two tokens.
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run: `(burst - 1) * interval`.
    tolerance: u64,
    per_shard: usize,
    /// Each locked for one map operation (or a sweep of a full shard), never across `.await`.
    shards: Vec<Mutex<HashMap<u128, Bucket>>>,
    /// Picks a key's shard; seeded per process, so clients cannot aim at one shard.
    spread: RandomState,
    counters: std::sync::Arc<RateLimitCounters>,
}

impl RateLimiter {
    /// A limiter with `config` (values below their minimum are raised to it).
    pub fn new(config: RateLimitConfig) -> Self {
        let mut config = config;
        config.qps = config.qps.max(1);
        config.burst = config.burst.max(1);
        config.ipv4_prefix = config.ipv4_prefix.clamp(8, 32);
        config.ipv6_prefix = config.ipv6_prefix.clamp(16, 128);
        config.max_clients = config.max_clients.max(SHARDS);
        let interval = 1_000_000_000 / u64::from(config.qps);
        RateLimiter {
            interval,
            tolerance: interval * u64::from(config.burst - 1),
            per_shard: config.max_clients / SHARDS,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            spread: RandomState::new(),
            counters: std::sync::Arc::default(),
            config,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The counters of limited queries.
    pub fn counters(&self) -> std::sync::Arc<RateLimitCounters> {
        self.counters.clone()
    }

    /// Client networks tracked now.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Decides about one query from `client` arriving `now` after the limiter's epoch (any fixed
    /// instant; the caller's clock, read once per batch).
    pub fn check(&self, client: IpAddr, now: Duration) -> Verdict {
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let key = self.key(client);
        let shard = &self.shards[(self.spread.hash_one(key) as usize) & (SHARDS - 1)];
        // No .await while the lock is held.
        let mut table = lock(shard);
        if table.len() >= self.per_shard && !table.contains_key(&key) {
            self.make_room(&mut table, now);
        }
        let bucket = table.entry(key).or_insert(Bucket {
            tat: now,
            limited: 0,
        });
        let tat = bucket.tat.max(now);
        if tat - now <= self.tolerance {
            bucket.tat = tat + self.interval;
            return Verdict::Allow;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        let slip = self.config.slip;
        let verdict = if slip != 0 && bucket.limited % slip == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        };
        drop(table);
        match verdict {
            Verdict::Slip => self.counters.slipped.fetch_add(1, Ordering::Relaxed),
            _ => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
        verdict
    }

    /// Frees at least one place in a full shard: clients whose bucket has refilled go first; when
    /// they are fewer than an eighth of the shard, an arbitrary eighth goes.
    fn make_room(&self, table: &mut HashMap<u128, Bucket>, now: u64) {
        let before = table.len();
        // A bucket whose theoretical arrival time has passed is full: forgetting it changes nothing.
        table.retain(|_, b| b.tat > now);
        let freed = before - table.len();
        let want = (self.per_shard / 8).max(1);
        if freed >= want {
            return;
        }
        let victims: Vec<u128> = table.keys().take(want - freed).copied().collect();
        for k in &victims {
            table.remove(k);
        }
        self.counters
            .evicted
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
    }

    /// The client network `ip` belongs to, as a key. IPv4 networks (and IPv4-mapped IPv6
    /// addresses, as a dual-stack socket reports them) are keyed in the IPv4-mapped range
    /// `::ffff:0:0/96`, where no masked IPv6 network can fall (it would have to be a mapped
    /// address, and those are keyed as IPv4), so the two families never share a bucket.
    fn key(&self, ip: IpAddr) -> u128 {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let masked = bits & (u32::MAX << (32 - u32::from(self.config.ipv4_prefix)));
                (0xffff_u128 << 32) | u128::from(masked)
            }
            IpAddr::V6(v6) => {
                let p = u32::from(self.config.ipv6_prefix);
                u128::from(v6) & !(u128::MAX.checked_shr(p).unwrap_or(0))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use super::*;

    fn config(qps: u32, burst: u32, slip: u32) -> RateLimitConfig {
        RateLimitConfig {
            qps,
            burst,
            slip,
            ipv4_prefix: DEFAULT_IPV4_PREFIX,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            max_clients: 1024,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_then_the_rate() {
        let l = RateLimiter::new(config(10, 5, 2));
        let c = ip("192.0.2.1");
        for _ in 0..5 {
            assert_eq!(l.check(c, ms(1000)), Verdict::Allow);
        }
        // The sixth at the same instant is over; limited queries alternate drop, slip.
        assert_eq!(l.check(c, ms(1000)), Verdict::Drop);
        assert_eq!(l.check(c, ms(1000)), Verdict::Slip);
        assert_eq!(l.check(c, ms(1000)), Verdict::Drop);
        // One token every 100 ms.
        assert_eq!(l.check(c, ms(1099)), Verdict::Slip);
        assert_eq!(l.check(c, ms(1100)), Verdict::Allow);
        assert_eq!(l.check(c, ms(1100)), Verdict::Drop);
        // After a quiet second the whole burst is back, and no more.
        let allowed = (0..20)
            .filter(|_| l.check(c, ms(3000)) == Verdict::Allow)
            .count();
        assert_eq!(allowed, 5);
        assert_eq!((l.counters().slipped(), l.counters().dropped()), (10, 10));
    }

    /// Sustained sending at twice the rate gets the rate through, whatever the burst.
    #[test]
    fn sustained_rate_is_the_configured_one() {
        let l = RateLimiter::new(config(100, 20, 1));
        let c = ip("192.0.2.1");
        let allowed = (0..2000u64)
            .filter(|i| l.check(c, Duration::from_micros(i * 5000)) == Verdict::Allow)
            .count();
        // 10 s at 100/s plus the burst.
        assert!((1000..=1021).contains(&allowed), "{allowed}");
    }

    #[test]
    fn clients_and_networks_have_their_own_buckets() {
        let mut cfg = config(1, 1, 0);
        cfg.ipv4_prefix = 24;
        let l = RateLimiter::new(cfg);
        assert_eq!(l.check(ip("10.0.0.1"), ms(0)), Verdict::Allow);
        assert_eq!(l.check(ip("10.0.0.2"), ms(0)), Verdict::Drop, "same /24");
        assert_eq!(l.check(ip("10.0.1.1"), ms(0)), Verdict::Allow);
        assert_eq!(
            l.check(ip("::ffff:10.0.0.9"), ms(0)),
            Verdict::Drop,
            "mapped IPv4"
        );
        assert_eq!(l.check(ip("2001:db8:0:aa::1"), ms(0)), Verdict::Allow);
        assert_eq!(
            l.check(ip("2001:db8:0:bb::1"), ms(0)),
            Verdict::Drop,
            "same /56"
        );
        assert_eq!(l.check(ip("2001:db8:0:100::1"), ms(0)), Verdict::Allow);
        assert_eq!(l.counters().slipped(), 0, "slip 0 drops everything");
    }

    /// A flood from ever new sources keeps the table within its bound, and a client that stays
    /// over its rate is still limited once the flood stops.
    #[test]
    fn the_table_is_bounded() {
        let mut cfg = config(1, 1, 1);
        cfg.max_clients = 256;
        let l = RateLimiter::new(cfg);
        for i in 0..100_000u32 {
            let _ = l.check(IpAddr::V4(i.into()), ms(0));
            assert!(l.tracked() <= 256 || i % 1000 != 0);
        }
        assert!(l.tracked() <= 256, "{}", l.tracked());
        assert!(l.counters().evicted() > 0);
        // Refilled buckets are forgotten first: later, only the new client is tracked in its shard.
        let c = ip("192.0.2.7");
        assert_eq!(l.check(c, ms(5000)), Verdict::Allow);
        assert_eq!(l.check(c, ms(5000)), Verdict::Slip);
    }

    #[test]
    fn ipv6_keys_do_not_meet_ipv4_keys() {
        let l = RateLimiter::new(config(1, 1, 0));
        assert_eq!(l.check(ip("0.0.0.0"), ms(0)), Verdict::Allow);
        assert_eq!(l.check(ip("::"), ms(0)), Verdict::Allow);
    }
}
